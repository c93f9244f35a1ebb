//! `message/cpim` (RFC 3862): the MSRP chat payload. Message headers (From,
//! To, cc, DateTime, Subject, NS, Require and namespace-prefixed ones such as
//! `imdn.Message-ID`), an empty line, the encapsulated MIME headers, an empty
//! line, the content. Headers are kept in order, as written, so printing what
//! was parsed gives the same bytes (with CRLF line ends).

use super::BodyError;
use super::mime::{Header, find, parse_headers, write_headers};

/// The Content-Type of this body.
pub const CONTENT_TYPE: &str = "message/cpim";

/// A CPIM address: `Display Name <uri>` or `<uri>` (RFC 3862 §3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimAddress {
    pub display_name: Option<String>,
    pub uri: String,
}

impl CpimAddress {
    pub fn new(uri: impl Into<String>) -> Self {
        CpimAddress {
            display_name: None,
            uri: uri.into(),
        }
    }

    /// Reads `Name <uri>`, `"Name" <uri>`, `<uri>` or a bare URI.
    pub fn parse(v: &str) -> Option<Self> {
        let v = v.trim();
        match (v.find('<'), v.rfind('>')) {
            (Some(l), Some(r)) if l < r => {
                let name = v.get(..l)?.trim();
                let name = name
                    .strip_prefix('"')
                    .and_then(|n| n.strip_suffix('"'))
                    .unwrap_or(name);
                Some(CpimAddress {
                    display_name: (!name.is_empty()).then(|| name.to_owned()),
                    uri: v.get(l + 1..r)?.trim().to_owned(),
                })
            }
            _ if !v.is_empty() && !v.contains(['<', '>']) => Some(CpimAddress::new(v)),
            _ => None,
        }
    }
}

impl std::fmt::Display for CpimAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.display_name {
            Some(n) => write!(f, "{n} <{}>", self.uri),
            None => write!(f, "<{}>", self.uri),
        }
    }
}

/// A CPIM message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpimMessage {
    /// Message headers, in order.
    pub headers: Vec<Header>,
    /// Encapsulated MIME headers (Content-Type, Content-ID, ...), in order.
    pub content_headers: Vec<Header>,
    /// The content, byte for byte.
    pub body: Vec<u8>,
}

impl CpimMessage {
    /// `From`, `To` and a content of `content_type`.
    pub fn new(
        from: &CpimAddress,
        to: &CpimAddress,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        CpimMessage {
            headers: vec![
                Header::new("From", from.to_string()),
                Header::new("To", to.to_string()),
            ],
            content_headers: vec![Header::new("Content-Type", content_type)],
            body: body.into(),
        }
    }

    /// Appends a message header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Declares a namespace (`NS: prefix <uri>`) and adds `prefix.name: value`,
    /// declaring the namespace first if it is new (RFC 3862 §3.3.7, §4).
    pub fn with_ns_header(mut self, prefix: &str, ns_uri: &str, name: &str, value: &str) -> Self {
        if !self.ns().iter().any(|(p, u)| p == prefix && u == ns_uri) {
            self.headers
                .push(Header::new("NS", format!("{prefix} <{ns_uri}>")));
        }
        self.headers
            .push(Header::new(format!("{prefix}.{name}"), value));
        self
    }

    /// Reads a CPIM body. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let (headers, rest) = parse_headers(bytes)?;
        let (content_headers, body) = parse_headers(rest)?;
        Ok(CpimMessage {
            headers,
            content_headers,
            body: body.to_vec(),
        })
    }

    /// The body bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        write_headers(&mut out, &self.headers);
        out.extend_from_slice(b"\r\n");
        write_headers(&mut out, &self.content_headers);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// First message header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// `From`.
    pub fn from(&self) -> Option<CpimAddress> {
        self.header("From").and_then(CpimAddress::parse)
    }

    /// Every `To` (group identity, or one participant for a private message).
    pub fn to(&self) -> Vec<CpimAddress> {
        self.all("To").filter_map(CpimAddress::parse).collect()
    }

    /// Every `cc`.
    pub fn cc(&self) -> Vec<CpimAddress> {
        self.all("cc").filter_map(CpimAddress::parse).collect()
    }

    /// `DateTime` as written (RFC 3339).
    pub fn date_time(&self) -> Option<&str> {
        self.header("DateTime")
    }

    /// Every `Subject` as (language, text); `Subject:;lang=fr text`.
    pub fn subjects(&self) -> Vec<(Option<String>, String)> {
        self.all("Subject")
            .map(|v| match v.strip_prefix(';') {
                Some(rest) => {
                    let (param, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    let lang = param
                        .split_once('=')
                        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("lang"))
                        .map(|(_, l)| l.trim().to_owned());
                    (lang, text.trim().to_owned())
                }
                None => (None, v.to_owned()),
            })
            .collect()
    }

    /// `NS` declarations as (prefix, namespace URI); an empty prefix is the
    /// default namespace.
    pub fn ns(&self) -> Vec<(String, String)> {
        self.all("NS")
            .filter_map(|v| {
                let a = CpimAddress::parse(v)?;
                Some((a.display_name.unwrap_or_default(), a.uri))
            })
            .collect()
    }

    /// Every `Require` header field name.
    pub fn require(&self) -> Vec<String> {
        self.all("Require")
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The value of header `name` in namespace `ns_uri`, whatever prefix the
    /// sender bound it to (e.g. `("urn:ietf:params:imdn", "Message-ID")`).
    pub fn ns_header(&self, ns_uri: &str, name: &str) -> Option<&str> {
        self.ns()
            .into_iter()
            .filter(|(_, u)| u == ns_uri)
            .find_map(|(p, _)| {
                self.headers
                    .iter()
                    .find(|h| {
                        h.name
                            .split_once('.')
                            .is_some_and(|(hp, hn)| hp == p && hn.eq_ignore_ascii_case(name))
                    })
                    .map(|h| h.value.as_str())
            })
    }

    /// The encapsulated `Content-Type`.
    pub fn content_type(&self) -> Option<&str> {
        find(&self.content_headers, "Content-Type")
    }
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<CpimMessage, BodyError> {
    CpimMessage::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn build_and_read() {
        let m = CpimMessage::new(
            &CpimAddress::new("sip:alice@isc.local"),
            &CpimAddress {
                display_name: Some("Chat".into()),
                uri: "sip:group@isc.local".into(),
            },
            "text/plain;charset=UTF-8",
            "hi",
        )
        .with_header("DateTime", "2026-11-23T14:00:00Z")
        .with_ns_header("imdn", "urn:ietf:params:imdn", "Message-ID", "34jk324j");
        let b = m.to_bytes();
        assert!(
            b.starts_with(b"From: <sip:alice@isc.local>\r\nTo: Chat <sip:group@isc.local>\r\n")
        );
        let back = CpimMessage::parse(&b).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to()[0].uri, "sip:group@isc.local");
        assert_eq!(
            back.ns_header("urn:ietf:params:imdn", "Message-ID"),
            Some("34jk324j")
        );
        assert_eq!(back.content_type(), Some("text/plain;charset=UTF-8"));
        assert_eq!(back.body, b"hi");
    }

    fn headers() -> impl Strategy<Value = Vec<Header>> {
        proptest::collection::vec(
            ("[A-Za-z][A-Za-z0-9.-]{0,12}", "[!-~]([ -~]{0,30}[!-~])?")
                .prop_map(|(n, v)| Header::new(n, v)),
            0..6,
        )
    }

    proptest! {
        #[test]
        fn round_trip(h in headers(), c in headers(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let m = CpimMessage { headers: h, content_headers: c, body };
            let bytes = m.to_bytes();
            let back = CpimMessage::parse(&bytes).unwrap();
            prop_assert_eq!(back.to_bytes(), bytes);
            prop_assert_eq!(back, m);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), s in "[ -~]{0,40}") {
            if let Ok(m) = parse(&bytes) {
                let _ = (m.from(), m.to(), m.subjects(), m.ns(), m.require(), m.ns_header("x", "y"));
            }
            let _ = CpimAddress::parse(&s);
        }
    }
}
