//! SIP over a byte stream (TCP/TLS): cut one message at a time by Content-Length.
//!
//! RFC 3261 §18.3: on a stream the Content-Length header is mandatory and frames the body.
//! RFC 5626 §4.4.1: a double CRLF between messages is a keep-alive "ping" (answer with a
//! single CRLF "pong"); lone CRLFs are skipped. After an error the stream cannot be resynced:
//! the framer drops what it buffered and the driver should close the connection.

/// Limits that keep a peer from making us buffer without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerConfig {
    /// Largest start line + header section, including the blank line.
    pub max_header_size: usize,
    /// Largest Content-Length accepted.
    pub max_body_size: usize,
}

impl Default for FramerConfig {
    fn default() -> Self {
        Self {
            max_header_size: 16 * 1024,
            max_body_size: 1024 * 1024,
        }
    }
}

/// Why a stream could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    #[error("header section exceeds {limit} bytes")]
    HeaderTooLarge { limit: usize },
    #[error("Content-Length {length} exceeds the body limit of {limit} bytes")]
    BodyTooLarge { length: u64, limit: usize },
    /// RFC 3261 §18.3: mandatory on a stream transport.
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    #[error("bad Content-Length value {0:?}")]
    BadContentLength(String),
    #[error("header section is not valid text")]
    BadHeaderSection,
}

/// Accumulates stream bytes and yields whole SIP messages.
#[derive(Debug, Default)]
pub struct StreamFramer {
    config: FramerConfig,
    buf: Vec<u8>,
    /// Where the search for the end of the header section resumes.
    scanned: usize,
    /// End of the current message's header section once found.
    header_end: Option<usize>,
    /// CRLFs skipped in a row between messages (two make a ping).
    crlf_run: usize,
    pings: usize,
}

impl StreamFramer {
    pub fn new(config: FramerConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many double-CRLF keep-alive pings were seen since the last call (RFC 5626 §4.4.1);
    /// the driver answers each with a single CRLF.
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// Cuts the next complete message, or `None` if more bytes are needed.
    pub fn next_message(&mut self) -> Option<Result<Vec<u8>, FramingError>> {
        self.skip_keepalives();
        if self.buf.is_empty() {
            return None;
        }
        let header_end = match self
            .header_end
            .or_else(|| find_header_end(&self.buf, self.scanned))
        {
            Some(end) => end,
            None => {
                if self.buf.len() > self.config.max_header_size {
                    return Some(Err(self.fail(FramingError::HeaderTooLarge {
                        limit: self.config.max_header_size,
                    })));
                }
                // The terminator may straddle the next push: rescan the last 3 bytes.
                self.scanned = self.buf.len().saturating_sub(3);
                return None;
            }
        };
        self.header_end = Some(header_end);
        if header_end > self.config.max_header_size {
            return Some(Err(self.fail(FramingError::HeaderTooLarge {
                limit: self.config.max_header_size,
            })));
        }
        let length = match content_length(self.buf.get(..header_end).unwrap_or_default()) {
            Ok(length) => length,
            Err(e) => return Some(Err(self.fail(e))),
        };
        if length > self.config.max_body_size as u64 {
            return Some(Err(self.fail(FramingError::BodyTooLarge {
                length,
                limit: self.config.max_body_size,
            })));
        }
        // Bounded by max_body_size above, so this fits in usize.
        let total = header_end + length as usize;
        if self.buf.len() < total {
            return None;
        }
        let rest = self.buf.split_off(total);
        let message = std::mem::replace(&mut self.buf, rest);
        self.scanned = 0;
        self.header_end = None;
        Some(Ok(message))
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.buf.clear();
        self.scanned = 0;
        self.header_end = None;
        self.crlf_run = 0;
        e
    }

    /// RFC 5626 §4.4.1 / RFC 3261 §7.5: CRLFs before a start line are not part of a message;
    /// two in a row are a keep-alive ping, however the bytes were split.
    fn skip_keepalives(&mut self) {
        if self.header_end.is_some() {
            return;
        }
        let mut i = 0;
        loop {
            match (self.buf.get(i), self.buf.get(i + 1)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 2;
                    self.crlf_run += 1;
                    if self.crlf_run == 2 {
                        self.pings += 1;
                        self.crlf_run = 0;
                    }
                }
                // A lone CR at the end: wait to see whether LF follows.
                (Some(b'\r'), None) => break,
                (Some(b'\n'), _) => i += 1,
                (Some(_), _) => {
                    self.crlf_run = 0;
                    break;
                }
                (None, _) => break,
            }
        }
        if i > 0 {
            self.buf.drain(..i);
            self.scanned = 0;
        }
    }
}

/// Index just past the blank line ending the header section (CRLFCRLF, or LFLF / CRLFLF
/// from LF-only peers).
pub(crate) fn find_header_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf.get(i) == Some(&b'\n') {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Reads Content-Length (or compact `l`) from a header section, unfolding as it goes.
fn content_length(head: &[u8]) -> Result<u64, FramingError> {
    // Header values may carry stray bytes; only the ASCII name and digits matter here.
    let text = String::from_utf8_lossy(head);
    let mut found: Option<u64> = None;
    for line in crate::proto::sip::message::logical_lines(&text)
        .iter()
        .skip(1)
    {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
            let value = value.trim();
            let n = parse_content_length(value)
                .ok_or_else(|| FramingError::BadContentLength(value.to_owned()))?;
            if found.is_some_and(|f| f != n) {
                return Err(FramingError::BadContentLength(value.to_owned()));
            }
            found = Some(n);
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

/// `1*DIGIT`, at most 10 digits (anything larger is refused rather than wrapped).
pub(crate) fn parse_content_length(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    #[test]
    fn cuts_by_content_length_and_keeps_the_rest() {
        let mut f = StreamFramer::default();
        f.push(MSG);
        f.push(b"\r\n\r\n");
        f.push(MSG);
        assert_eq!(f.next_message(), Some(Ok(MSG.to_vec())));
        assert_eq!(f.next_message(), Some(Ok(MSG.to_vec())));
        assert_eq!(f.take_pings(), 1);
        assert_eq!(f.next_message(), None);
    }

    #[test]
    fn every_split_point() {
        let mut stream = b"\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut f = StreamFramer::default();
                let mut out = Vec::new();
                for part in [&stream[..a], &stream[a..b], &stream[b..]] {
                    f.push(part);
                    while let Some(m) = f.next_message() {
                        out.push(m.unwrap());
                    }
                }
                assert_eq!(out, vec![MSG.to_vec(), MSG.to_vec()], "split {a}/{b}");
                assert_eq!(f.take_pings(), 1, "split {a}/{b}");
            }
        }
    }

    #[test]
    fn errors() {
        let cases: [(&[u8], FramingError); 4] = [
            (
                b"OPTIONS sip:a SIP/2.0\r\n\r\n",
                FramingError::MissingContentLength,
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n",
                FramingError::BadContentLength("-1".into()),
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n",
                FramingError::BadContentLength("99999999999".into()),
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 2000000\r\n\r\n",
                FramingError::BodyTooLarge {
                    length: 2_000_000,
                    limit: 1024 * 1024,
                },
            ),
        ];
        for (input, want) in cases {
            let mut f = StreamFramer::default();
            f.push(input);
            assert_eq!(f.next_message(), Some(Err(want)));
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn header_limit() {
        let mut f = StreamFramer::new(FramerConfig {
            max_header_size: 64,
            max_body_size: 10,
        });
        f.push(&[b'a'; 65]);
        assert_eq!(
            f.next_message(),
            Some(Err(FramingError::HeaderTooLarge { limit: 64 }))
        );
    }

    #[test]
    fn lf_only_and_folded_content_length() {
        let mut f = StreamFramer::default();
        let input = b"OPTIONS sip:a SIP/2.0\nContent-Length:\n 2\n\nok";
        f.push(input);
        assert_eq!(f.next_message(), Some(Ok(input.to_vec())));
    }
}
