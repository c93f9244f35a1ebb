//! MIME header blocks (RFC 2045 / RFC 5322 syntax): `Name: value` lines ended
//! by an empty line, CRLF or bare LF, folded lines joined.

use super::BodyError;

/// One header field, name and value as written (value trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The first header with this name (case-insensitive).
pub fn find<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Splits off one line (without its CRLF / LF); returns (line, rest).
pub fn split_line(input: &[u8]) -> (&[u8], &[u8], bool) {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = input.get(..i).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, input.get(i + 1..).unwrap_or_default(), true)
        }
        None => (input, &[], false),
    }
}

/// Parses a header block up to and including its empty line. Returns the
/// headers and the bytes after the empty line. A block of zero headers is
/// just the empty line.
pub fn parse_headers(input: &[u8]) -> Result<(Vec<Header>, &[u8]), BodyError> {
    let mut headers: Vec<Header> = Vec::new();
    let mut rest = input;
    loop {
        if rest.is_empty() {
            return Err(BodyError::UnterminatedHeaders);
        }
        let (line, after, had_eol) = split_line(rest);
        rest = after;
        if line.is_empty() {
            if !had_eol {
                return Err(BodyError::UnterminatedHeaders);
            }
            return Ok((headers, rest));
        }
        let text = std::str::from_utf8(line).map_err(|_| BodyError::NotUtf8)?;
        if text.starts_with([' ', '\t']) {
            // RFC 5322 §2.2.3 folding
            match headers.last_mut() {
                Some(h) => {
                    h.value.push(' ');
                    h.value.push_str(text.trim());
                    continue;
                }
                None => return Err(BodyError::BadHeaderLine(text.to_owned())),
            }
        }
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| BodyError::BadHeaderLine(text.to_owned()))?;
        let name = name.trim_end();
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(BodyError::BadHeaderLine(text.to_owned()));
        }
        headers.push(Header::new(name, value.trim()));
        if !had_eol {
            return Err(BodyError::UnterminatedHeaders);
        }
    }
}

/// Prints headers, each line ended by CRLF (no empty line). A value that
/// starts with a parameter (`;lang=fr ...`, RFC 3862 §3.2) follows the colon
/// directly.
pub fn write_headers(out: &mut Vec<u8>, headers: &[Header]) {
    for h in headers {
        out.extend_from_slice(h.name.as_bytes());
        if h.value.starts_with(';') {
            out.push(b':');
        } else {
            out.extend_from_slice(b": ");
        }
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// The value of parameter `param` in a header value such as
/// `multipart/mixed; boundary="b42"` (quotes removed).
pub fn param(value: &str, param: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(param) {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        Some(v.to_owned())
    })
}

/// Reads a sub-level entity (`Content-Type: text/xml`, empty line, XML) used by
/// the ISC bodies of seed 000 5.4.3.2 / 5.4.3.3; a body that starts with `<`
/// is taken as bare XML (liberal reader).
pub fn sub_level_xml(body: &[u8]) -> Result<&[u8], BodyError> {
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"<") {
        return Ok(trimmed);
    }
    let (_headers, rest) = parse_headers(body)?;
    Ok(rest)
}

/// Wraps XML as a sub-level `text/xml` entity.
pub fn wrap_sub_level_xml(xml: &str) -> Vec<u8> {
    let mut out = b"Content-Type: text/xml\r\n\r\n".to_vec();
    out.extend_from_slice(xml.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folded_and_lf() {
        let (h, rest) = parse_headers(b"A: 1\n  2\r\nB:x\n\nbody").unwrap();
        assert_eq!(h, vec![Header::new("A", "1 2"), Header::new("B", "x")]);
        assert_eq!(rest, b"body");
    }

    #[test]
    fn params() {
        assert_eq!(
            param("multipart/mixed; boundary=\"b 42\"", "boundary").as_deref(),
            Some("b 42")
        );
        assert_eq!(param("a/b;Boundary=x", "boundary").as_deref(), Some("x"));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_headers(&bytes);
            let _ = sub_level_xml(&bytes);
        }

        #[test]
        fn round_trip(hs in proptest::collection::vec(("[A-Za-z][A-Za-z0-9.-]{0,10}", "[!-~]([ -~]{0,20}[!-~])?"), 0..5)) {
            let headers: Vec<Header> = hs.into_iter().map(|(n, v)| Header::new(n, v)).collect();
            let mut out = Vec::new();
            write_headers(&mut out, &headers);
            out.extend_from_slice(b"\r\nrest");
            let (back, rest) = parse_headers(&out).unwrap();
            prop_assert_eq!(back, headers);
            prop_assert_eq!(rest, b"rest");
        }
    }
}
