//! Builders and readers everybody needs: responses to a request (RFC 3261 §8.2.6), initial
//! requests (§8.1.1), and the top Via / tags / CSeq. Tags, branches and Call-IDs are passed in.
//!
//! The readers use our lenient header parsers, so they also work on messages whose URIs
//! rsip's typed headers refuse.

use super::headers::{HeadersExt, NameAddr, TypedHeader, ViaValue, make_header, name_value};
use super::message::parse_cseq;
use std::net::IpAddr;

/// A response to `req`: Via (all, in order), From, To (+ `to_tag` if the To has none),
/// Call-ID and CSeq copied (RFC 3261 §8.2.6.2), Record-Route too for 101-299 (§12.1.1),
/// `Content-Length: 0`.
pub fn response_to(req: &rsip::Request, code: u16, to_tag: Option<&str>) -> rsip::Response {
    response_with(req, code, to_tag, None, Vec::new())
}

/// [`response_to`] with a reason phrase and extra headers. A custom phrase is carried as
/// `StatusCode::Other(code, phrase)`: compare responses with `status_code.code()`.
pub fn response_with(
    req: &rsip::Request,
    code: u16,
    to_tag: Option<&str>,
    reason: Option<&str>,
    extra: Vec<rsip::Header>,
) -> rsip::Response {
    let mut headers = rsip::Headers::default();
    for h in req.headers.iter() {
        let (name, value) = name_value(h);
        let full = super::headers::expand_compact(&name)
            .unwrap_or(&name)
            .to_owned();
        let copy = ["Via", "From", "To", "Call-ID", "CSeq"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&full))
            // RFC 3261 §12.1.1: a response that can create a dialog carries Record-Route.
            || (full.eq_ignore_ascii_case("Record-Route") && (101..300).contains(&code));
        if !copy {
            continue;
        }
        // RFC 3261 §8.2.6.2: add a To tag if the request had none (not on 100 Trying).
        let value = match (full.eq_ignore_ascii_case("To"), to_tag) {
            (true, Some(tag)) if code != 100 => match NameAddr::parse(&value) {
                Ok(mut to) if to.tag().is_none() => {
                    to.params.set("tag", Some(tag));
                    to.to_string()
                }
                _ => value,
            },
            _ => value,
        };
        headers.push(make_header(&full, &value));
    }
    headers.extend(extra);
    headers.push(rsip::Header::ContentLength(
        rsip::headers::ContentLength::from(0u32),
    ));
    let status_code = match (reason, rsip::StatusCode::from(code)) {
        (Some(r), _) => rsip::StatusCode::Other(code, r.to_owned()),
        (None, s) => s,
    };
    rsip::Response {
        status_code,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Builds an initial request outside a dialog (RFC 3261 §8.1.1).
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: rsip::Method,
    uri: rsip::Uri,
    via: ViaValue,
    from: NameAddr,
    to: NameAddr,
    call_id: String,
    cseq: u32,
    max_forwards: u32,
    contact: Option<String>,
    extra: Vec<rsip::Header>,
    body: Vec<u8>,
    content_type: Option<String>,
}

impl RequestBuilder {
    /// `from` and `to` are name-addrs or URIs (`"Alice" <sip:alice@isc.local>`); `from_tag` is
    /// added to From; `via` carries the branch (`z9hG4bK...`) chosen by the caller.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        method: rsip::Method,
        uri: rsip::Uri,
        via: ViaValue,
        from: NameAddr,
        from_tag: &str,
        to: NameAddr,
        call_id: &str,
        cseq: u32,
    ) -> Self {
        let from = from.with_param("tag", Some(from_tag));
        Self {
            method,
            uri,
            via,
            from,
            to,
            call_id: call_id.to_owned(),
            cseq,
            max_forwards: 70,
            contact: None,
            extra: Vec::new(),
            body: Vec::new(),
            content_type: None,
        }
    }

    pub fn max_forwards(mut self, n: u32) -> Self {
        self.max_forwards = n;
        self
    }

    /// Contact value, e.g. `<sip:alice@192.0.2.1:5060>;+sip.instance="<urn:uuid:...>"`.
    pub fn contact(mut self, value: impl std::fmt::Display) -> Self {
        self.contact = Some(value.to_string());
        self
    }

    pub fn header(mut self, h: rsip::Header) -> Self {
        self.extra.push(h);
        self
    }

    pub fn typed<T: TypedHeader>(mut self, h: T) -> Self {
        self.extra.push(make_header(T::NAME, &h.to_string()));
        self
    }

    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.content_type = Some(content_type.to_owned());
        self.body = body;
        self
    }

    pub fn build(self) -> rsip::Request {
        let mut h = rsip::Headers::default();
        h.push(make_header("Via", &self.via.to_string()));
        h.push(make_header("Max-Forwards", &self.max_forwards.to_string()));
        h.push(make_header("From", &self.from.to_string()));
        h.push(make_header("To", &self.to.to_string()));
        h.push(make_header("Call-ID", &self.call_id));
        h.push(make_header(
            "CSeq",
            &format!("{} {}", self.cseq, self.method),
        ));
        if let Some(c) = &self.contact {
            h.push(make_header("Contact", c));
        }
        h.extend(self.extra);
        if let Some(ct) = &self.content_type {
            h.push(make_header("Content-Type", ct));
        }
        h.push(make_header("Content-Length", &self.body.len().to_string()));
        rsip::Request {
            method: self.method,
            uri: self.uri,
            version: rsip::Version::V2,
            headers: h,
            body: self.body,
        }
    }
}

/// The top Via, parsed.
pub fn top_via(headers: &rsip::Headers) -> Option<ViaValue> {
    ViaValue::parse(&headers.get_raw("Via")?).ok()
}

/// The top Via's branch.
pub fn top_via_branch(headers: &rsip::Headers) -> Option<String> {
    top_via(headers)?.branch().map(str::to_owned)
}

/// The top Via's sent-by (host, port).
pub fn top_via_sent_by(headers: &rsip::Headers) -> Option<(String, Option<u16>)> {
    let v = top_via(headers)?;
    Some((v.host, v.port))
}

pub fn from_tag(headers: &rsip::Headers) -> Option<String> {
    NameAddr::parse(&headers.get_raw("From")?).ok()?.tag()
}

pub fn to_tag(headers: &rsip::Headers) -> Option<String> {
    NameAddr::parse(&headers.get_raw("To")?).ok()?.tag()
}

pub fn call_id(headers: &rsip::Headers) -> Option<String> {
    headers.get_raw("Call-ID")
}

/// CSeq number and method name (as written, extension methods included).
pub fn cseq(headers: &rsip::Headers) -> Option<(u32, String)> {
    let raw = headers.get_raw("CSeq")?;
    parse_cseq(&raw).map(|(n, m)| (n, m.to_owned()))
}

/// Server side of RFC 3581 / RFC 3261 §18.2.1: adds `received` to the top Via when the
/// packet came from another address than its sent-by, and fills an empty `rport` with the
/// source port. Returns false if there is no parsable top Via.
pub fn add_received_rport(headers: &mut rsip::Headers, source: IpAddr, source_port: u16) -> bool {
    let mut done = false;
    for h in headers.iter_mut() {
        let (name, value) = name_value(h);
        if !super::headers::name_matches(&name, "Via") {
            continue;
        }
        let Ok(mut via) = ViaValue::parse(&value) else {
            return false;
        };
        let wants_rport = via.rport().is_some();
        if via.host.trim_matches(['[', ']']) != source.to_string() || wants_rport {
            via.params.set("received", Some(&source.to_string()));
        }
        if wants_rport {
            via.params.set("rport", Some(&source_port.to_string()));
        }
        *h = make_header("Via", &via.to_string());
        done = true;
        break;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> rsip::Request {
        RequestBuilder::new(
            rsip::Method::Invite,
            super::super::message::parse_uri("sip:bob@isc.local").unwrap(),
            ViaValue::new("UDP", "192.0.2.1", Some(5060), "z9hG4bKabc").with_rport(),
            NameAddr::parse("Alice <sip:alice@isc.local>").unwrap(),
            "f1",
            NameAddr::parse("<sip:bob@isc.local>").unwrap(),
            "cid1",
            1,
        )
        .contact("<sip:alice@192.0.2.1:5060>")
        .body("application/sdp", b"v=0\r\n".to_vec())
        .build()
    }

    #[test]
    fn builder_and_readers() {
        let r = invite();
        assert_eq!(top_via_branch(&r.headers).as_deref(), Some("z9hG4bKabc"));
        assert_eq!(
            top_via_sent_by(&r.headers),
            Some(("192.0.2.1".into(), Some(5060)))
        );
        assert_eq!(from_tag(&r.headers).as_deref(), Some("f1"));
        assert_eq!(to_tag(&r.headers), None);
        assert_eq!(cseq(&r.headers), Some((1, "INVITE".into())));
        assert_eq!(r.headers.get_raw("Max-Forwards").as_deref(), Some("70"));
        assert_eq!(r.headers.get_raw("Content-Length").as_deref(), Some("5"));
        use rsip::prelude::HeadersExt as _;
        assert!(r.via_header().is_ok() && r.cseq_header().is_ok());
    }

    #[test]
    fn response_copies_and_tags() {
        let r = invite();
        let resp = response_to(&r, 180, Some("t9"));
        assert_eq!(to_tag(&resp.headers).as_deref(), Some("t9"));
        assert_eq!(from_tag(&resp.headers).as_deref(), Some("f1"));
        assert_eq!(call_id(&resp.headers).as_deref(), Some("cid1"));
        assert_eq!(cseq(&resp.headers), Some((1, "INVITE".into())));
        assert!(resp.headers.get_raw("Contact").is_none());
        let mut rr = r.clone();
        rr.headers
            .push(make_header("Record-Route", "<sip:p.isc.local;lr>"));
        assert!(
            response_to(&rr, 200, Some("t"))
                .headers
                .get_raw("Record-Route")
                .is_some()
        );
        assert!(
            response_to(&rr, 486, Some("t"))
                .headers
                .get_raw("Record-Route")
                .is_none()
        );
        let trying = response_to(&r, 100, Some("t9"));
        assert_eq!(to_tag(&trying.headers), None);
        let custom = response_with(&r, 480, None, Some("Gone Fishing"), vec![]);
        assert_eq!(custom.status_code.code(), 480);
    }

    #[test]
    fn received_and_rport() {
        let mut r = invite();
        assert!(add_received_rport(
            &mut r.headers,
            "203.0.113.9".parse().unwrap(),
            40000
        ));
        let v = top_via(&r.headers).unwrap();
        assert_eq!(v.received(), Some("203.0.113.9"));
        assert_eq!(v.rport(), Some(Some(40000)));
    }
}
