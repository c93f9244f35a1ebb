//! `multipart/mixed` (RFC 2046 §5.1): parse with the boundary from the
//! Content-Type, build with a boundary that occurs in no part; every part keeps
//! its headers in order and its body byte for byte. Plus `message/sip`
//! (a SIP message carried as a body, seed 002 D.2), kept byte-exact.

use super::BodyError;
use super::mime::{Header, find, param, parse_headers, write_headers};

/// `multipart/mixed`.
pub const MULTIPART_MIXED: &str = "multipart/mixed";
/// `message/sip` (RFC 3261 §27.5).
pub const MESSAGE_SIP: &str = "message/sip";
/// RFC 2046 §5.1.1: at most 70 characters.
pub const MAX_BOUNDARY_LEN: usize = 70;

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Part {
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl Part {
    /// A part with a Content-Type.
    pub fn new(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Part {
            headers: vec![Header::new("Content-Type", content_type)],
            body: body.into(),
        }
    }

    /// A `message/sip` part holding `sip` exactly as given.
    pub fn message_sip(sip: impl Into<Vec<u8>>) -> Self {
        Part::new(MESSAGE_SIP, sip)
    }

    /// Appends a header (e.g. `Content-Disposition: recipient-list`).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// First header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// `Content-Type`.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// The media type of `Content-Type`, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.content_type()
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
    }

    /// The disposition type of `Content-Disposition` (e.g. `recipient-list`).
    pub fn disposition(&self) -> Option<String> {
        self.header("Content-Disposition")
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
    }

    /// `Content-ID` without its angle brackets.
    pub fn content_id(&self) -> Option<&str> {
        self.header("Content-ID").map(|v| {
            let v = v.trim();
            v.strip_prefix('<')
                .and_then(|v| v.strip_suffix('>'))
                .unwrap_or(v)
        })
    }
}

/// A multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    pub boundary: String,
    pub parts: Vec<Part>,
}

impl Multipart {
    /// Chooses a boundary that occurs in no part (deterministic: `isc-b<n>`).
    pub fn new(parts: Vec<Part>) -> Self {
        let boundary = choose_boundary(&parts, "isc-b");
        Multipart { boundary, parts }
    }

    /// Uses `preferred` if it occurs in no part, else a variant of it.
    pub fn with_boundary(parts: Vec<Part>, preferred: &str) -> Self {
        // RFC 2046 §5.1.1 bchars, no trailing space
        let mut preferred: String = preferred
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(*c))
            .take(MAX_BOUNDARY_LEN - 12)
            .collect::<String>()
            .trim_end()
            .to_owned();
        if preferred.is_empty() {
            preferred.push_str("isc-b");
        }
        let boundary = if parts.iter().all(|p| !part_contains(p, &preferred)) {
            preferred
        } else {
            choose_boundary(&parts, &preferred)
        };
        Multipart { boundary, parts }
    }

    /// The Content-Type to send: `multipart/mixed;boundary="..."`.
    pub fn content_type(&self) -> String {
        format!("{MULTIPART_MIXED};boundary=\"{}\"", self.boundary)
    }

    /// Parses `body` given its Content-Type header value.
    pub fn parse_with_content_type(content_type: &str, body: &[u8]) -> Result<Self, BodyError> {
        let boundary = param(content_type, "boundary").ok_or(BodyError::MissingBoundary)?;
        Multipart::parse(body, &boundary)
    }

    /// Parses `body` with `boundary` (RFC 2046 §5.1.1). Preamble and epilogue
    /// are dropped; LF-only line ends are accepted. Never panics.
    pub fn parse(body: &[u8], boundary: &str) -> Result<Self, BodyError> {
        if boundary.is_empty()
            || boundary.len() > MAX_BOUNDARY_LEN
            || boundary.ends_with(' ')
            || boundary.contains(['\r', '\n'])
        {
            return Err(BodyError::BadBoundary(boundary.to_owned()));
        }
        let dash = format!("--{boundary}");
        let dash = dash.as_bytes();
        // the first dash-boundary: at the start or at the start of a line
        let mut pos = if body.starts_with(dash) {
            0
        } else {
            find_delimiter(body, dash, 0)
                .map(|(_, after_nl)| after_nl)
                .ok_or_else(|| BodyError::NoDelimiter(boundary.to_owned()))?
        };
        let mut parts = Vec::new();
        loop {
            let after = pos + dash.len();
            let rest = body.get(after..).unwrap_or_default();
            if rest.starts_with(b"--") {
                return Ok(Multipart {
                    boundary: boundary.to_owned(),
                    parts,
                });
            }
            // transport-padding, then CRLF
            let pad = rest
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            let rest = rest.get(pad..).unwrap_or_default();
            let eol = if rest.starts_with(b"\r\n") {
                2
            } else if rest.starts_with(b"\n") {
                1
            } else {
                return Err(BodyError::NoCloseDelimiter);
            };
            let start = after + pad + eol;
            let (part_end, next) =
                find_delimiter(body, dash, start).ok_or(BodyError::NoCloseDelimiter)?;
            let raw = body.get(start..part_end).unwrap_or_default();
            parts.push(parse_part(raw)?);
            pos = next;
        }
    }

    /// The body bytes (CRLF line ends, no preamble or epilogue).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary.as_bytes());
            out.extend_from_slice(b"\r\n");
            write_headers(&mut out, &p.headers);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&p.body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        out
    }

    /// The first part of this media type (e.g. `application/sdp`).
    pub fn part_of_type(&self, media_type: &str) -> Option<&Part> {
        self.parts
            .iter()
            .find(|p| p.media_type().as_deref() == Some(&media_type.to_ascii_lowercase()))
    }

    /// The part a `cid:` URL (RFC 2392) refers to.
    pub fn by_cid(&self, cid_url: &str) -> Option<&Part> {
        let id = cid_url.strip_prefix("cid:").unwrap_or(cid_url);
        let id = percent_encoding::percent_decode_str(id)
            .decode_utf8()
            .ok()?;
        self.parts.iter().find(|p| p.content_id() == Some(&*id))
    }
}

/// Finds the next `CRLF--boundary` (or `LF--boundary`) at or after `from`;
/// returns (end of the part before it, position of `--boundary`).
fn find_delimiter(body: &[u8], dash: &[u8], from: usize) -> Option<(usize, usize)> {
    let hay = body.get(from..)?;
    let mut i = 0;
    while i < hay.len() {
        let nl = hay.get(i..)?.iter().position(|&b| b == b'\n')? + i;
        if hay.get(nl + 1..).is_some_and(|r| r.starts_with(dash)) {
            let end = if nl > 0 && hay.get(nl - 1) == Some(&b'\r') {
                nl - 1
            } else {
                nl
            };
            return Some((from + end, from + nl + 1));
        }
        i = nl + 1;
    }
    None
}

fn parse_part(raw: &[u8]) -> Result<Part, BodyError> {
    let (headers, body) = parse_headers(raw)?;
    Ok(Part {
        headers,
        body: body.to_vec(),
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn part_contains(p: &Part, boundary: &str) -> bool {
    let b = boundary.as_bytes();
    contains(&p.body, b)
        || p.headers
            .iter()
            .any(|h| contains(h.name.as_bytes(), b) || contains(h.value.as_bytes(), b))
}

fn choose_boundary(parts: &[Part], stem: &str) -> String {
    let mut n: u64 = 0;
    loop {
        let candidate = format!("{stem}{n}");
        if parts.iter().all(|p| !part_contains(p, &candidate)) {
            return candidate;
        }
        n += 1;
    }
}

/// A `message/sip` body: the SIP message bytes, untouched (seed 002 D.2:
/// From/To/Call-ID/Date kept intact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSip(pub Vec<u8>);

impl MessageSip {
    /// The Content-Type of this body.
    pub const CONTENT_TYPE: &'static str = MESSAGE_SIP;

    /// Takes the bytes as they are.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        Ok(MessageSip(bytes.to_vec()))
    }

    /// The same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// Fuzz entry point: the boundary is taken from the first line.
pub fn parse(bytes: &[u8]) -> Result<Multipart, BodyError> {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let boundary = std::str::from_utf8(first.strip_prefix(b"--").unwrap_or(first))
        .map_err(|_| BodyError::NotUtf8)?;
    Multipart::parse(bytes, boundary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sdp_and_resource_lists() {
        let m = Multipart::new(vec![
            Part::new("application/sdp", "v=0\r\n"),
            Part::new("application/resource-lists+xml", "<resource-lists/>")
                .with_header("Content-Disposition", "recipient-list"),
        ]);
        let bytes = m.to_bytes();
        let back = Multipart::parse_with_content_type(&m.content_type(), &bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.parts.get(1).and_then(Part::disposition).as_deref(),
            Some("recipient-list")
        );
        assert_eq!(
            back.part_of_type("APPLICATION/SDP").map(|p| &p.body[..]),
            Some(&b"v=0\r\n"[..])
        );
    }

    #[test]
    fn preamble_epilogue_lf_and_padding() {
        let body = b"preamble\n--b42  \nContent-Type: text/plain\nContent-ID: <x@y>\n\nhello\n--b42\n\nno headers\n--b42--\nepilogue";
        let m = Multipart::parse(body, "b42").unwrap();
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.parts[0].body, b"hello");
        assert_eq!(
            m.by_cid("cid:x@y").map(|p| &p.body[..]),
            Some(&b"hello"[..])
        );
        assert!(m.parts[1].headers.is_empty());
        assert_eq!(
            Multipart::parse(b"--b\r\n\r\nx", "b"),
            Err(BodyError::NoCloseDelimiter)
        );
        assert_eq!(
            Multipart::parse_with_content_type("multipart/mixed", b""),
            Err(BodyError::MissingBoundary)
        );
    }

    #[test]
    fn boundary_avoids_content() {
        let m = Multipart::with_boundary(vec![Part::new("text/plain", "--isc-b0 --x")], "x");
        assert!(!m.to_bytes().is_empty());
        assert_ne!(m.boundary, "x");
        let m2 = Multipart::new(vec![Part::new("text/plain", "isc-b0 isc-b1")]);
        assert_eq!(m2.boundary, "isc-b2");
    }

    #[test]
    fn message_sip_is_byte_exact() {
        let sip = b"MESSAGE sip:user2@imserver.com SIP/2.0\r\nCall-ID: asd88asd77a@1.2.3.4\r\nContent-Length: 18\r\n\r\nWatson, come here.";
        let m = Multipart::new(vec![Part::message_sip(&sip[..])]);
        let back = Multipart::parse_with_content_type(&m.content_type(), &m.to_bytes()).unwrap();
        assert_eq!(back.parts[0].body, sip);
        assert_eq!(MessageSip::parse(sip).unwrap().to_bytes(), sip);
    }

    fn part() -> impl Strategy<Value = Part> {
        (
            proptest::collection::vec(
                ("[A-Za-z][A-Za-z0-9-]{0,12}", "[!-~]([ -~]{0,20}[!-~])?")
                    .prop_map(|(n, v)| Header::new(n, v)),
                0..4,
            ),
            proptest::collection::vec(any::<u8>(), 0..128),
        )
            .prop_map(|(headers, body)| Part { headers, body })
    }

    proptest! {
        #[test]
        fn round_trip(parts in proptest::collection::vec(part(), 0..5), pref in "[ -~]{0,20}") {
            let m = Multipart::with_boundary(parts, &pref);
            let back = Multipart::parse_with_content_type(&m.content_type(), &m.to_bytes());
            prop_assert_eq!(back, Ok(m));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), b in "[ -~]{0,8}") {
            let _ = parse(&bytes);
            let _ = Multipart::parse(&bytes, &b);
        }

        #[test]
        fn never_panics_structured(parts in proptest::collection::vec(part(), 0..3), cut in any::<usize>()) {
            let m = Multipart::new(parts);
            let bytes = m.to_bytes();
            let cut = cut % (bytes.len() + 1);
            let _ = Multipart::parse(&bytes[..cut], &m.boundary);
        }
    }
}
