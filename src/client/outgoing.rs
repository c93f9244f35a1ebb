//! A request the UA may have to send more than once: after a 401/407
//! (RFC 3261 §22.2: same Call-ID, CSeq one higher, fresh branch, with
//! credentials) or as a refresh. It keeps the parts and builds the
//! `rsip::Request` on demand.

use crate::proto::sip::build::RequestBuilder;
use crate::proto::sip::headers::{NameAddr, ViaValue, make_header};
use crate::proto::sip::message::{SipParseError, parse_uri};
use crate::proto::sip::transaction::Transport;
use std::net::SocketAddr;

/// The parts of an outgoing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRequest {
    pub method: rsip::Method,
    /// Request-URI.
    pub uri: String,
    pub from: NameAddr,
    pub from_tag: String,
    /// To, with the remote tag inside a dialog.
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub contact: Option<String>,
    /// Extra headers, name and value, in order.
    pub headers: Vec<(String, String)>,
    pub body: Option<(String, Vec<u8>)>,
}

impl OutRequest {
    pub fn header(mut self, name: &str, value: impl ToString) -> Self {
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }

    /// The request with a Via for `local`/`transport` and `branch`.
    pub fn build(
        &self,
        local: SocketAddr,
        transport: Transport,
        branch: &str,
    ) -> Result<rsip::Request, SipParseError> {
        let via = ViaValue::new(
            transport.via_token(),
            &local.ip().to_string(),
            Some(local.port()),
            branch,
        )
        .with_rport();
        let mut b = RequestBuilder::new(
            self.method,
            parse_uri(&self.uri)?,
            via,
            self.from.clone(),
            &self.from_tag,
            self.to.clone(),
            &self.call_id,
            self.cseq,
        );
        if let Some(c) = &self.contact {
            b = b.contact(c);
        }
        for (n, v) in &self.headers {
            b = b.header(make_header(n, v));
        }
        if let Some((ct, body)) = &self.body {
            b = b.body(ct, body.clone());
        }
        Ok(b.build())
    }
}

/// The URI of a name-addr header value (`"Bob" <sip:bob@x>;tag=1` → `sip:bob@x`),
/// or the trimmed value when it does not parse.
pub fn uri_of(value: &str) -> String {
    NameAddr::parse(value)
        .map(|n| n.uri)
        .unwrap_or_else(|_| value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sip::build::{call_id, cseq, from_tag, top_via_branch};
    use crate::proto::sip::headers::HeadersExt;

    #[test]
    fn builds_with_via_and_headers() {
        let out = OutRequest {
            method: rsip::Method::Message,
            uri: "sip:bob@isc.local".into(),
            from: NameAddr::new("sip:alice@isc.local"),
            from_tag: "t1".into(),
            to: NameAddr::new("sip:bob@isc.local"),
            call_id: "c1".into(),
            cseq: 7,
            contact: None,
            headers: vec![],
            body: Some(("text/plain".into(), b"hi".to_vec())),
        }
        .header("User-Agent", "isc/0");
        let local: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let r = out.build(local, Transport::Udp, "z9hG4bKx").unwrap();
        assert_eq!(top_via_branch(&r.headers).as_deref(), Some("z9hG4bKx"));
        assert_eq!(from_tag(&r.headers).as_deref(), Some("t1"));
        assert_eq!(call_id(&r.headers).as_deref(), Some("c1"));
        assert_eq!(cseq(&r.headers), Some((7, "MESSAGE".into())));
        assert_eq!(r.headers.get_raw("User-Agent").as_deref(), Some("isc/0"));
        assert_eq!(r.body, b"hi");
        assert_eq!(uri_of("\"Bob\" <sip:bob@x>;tag=1"), "sip:bob@x");
    }
}
