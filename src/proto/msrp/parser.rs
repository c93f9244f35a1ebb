//! Incremental MSRP framing over a byte stream (RFC 4975 §5.1, §9): the body
//! of a frame ends at the end-line of its transaction, found by scanning, not
//! by length. Bounded by [`ParserConfig`].

use super::message::{
    ContinuationFlag, MessageError, MsrpFrame, MsrpMessage, parse_headers, parse_start_line,
};

/// Limits of the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserConfig {
    /// Start line plus header lines, in bytes.
    pub max_header_size: usize,
    /// Body of one frame (one chunk), in bytes.
    pub max_chunk_size: usize,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            max_header_size: 16 * 1024,
            max_chunk_size: 1024 * 1024,
        }
    }
}

/// A framing or content error. [`MsrpParseError::is_fatal`] says whether the
/// stream can go on: a recoverable error was one well-framed but bad frame
/// (the driver answers it, e.g. 400 or 413, and keeps reading); a fatal one
/// means the stream cannot be framed any more (close the connection).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsrpParseError {
    /// The start line is not `MSRP <tid> ...`: nothing can be framed.
    #[error("bad start line: {0}")]
    BadStartLine(MessageError),
    /// The start line and headers exceed `max_header_size`.
    #[error("header section longer than {limit} bytes")]
    HeaderTooLarge { limit: usize },
    /// The body exceeds `max_chunk_size`; the parser skips to its end-line.
    #[error("chunk of transaction {transaction_id} longer than {limit} bytes")]
    ChunkTooLarge {
        transaction_id: String,
        is_request: bool,
        limit: usize,
    },
    /// A well-framed frame whose headers are bad; the stream goes on.
    #[error("malformed frame {transaction_id}: {error}")]
    Malformed {
        transaction_id: String,
        is_request: bool,
        error: MessageError,
    },
    /// Bytes left over after a frame (only from [`parse_message`]).
    #[error("{0} bytes after the end-line")]
    TrailingData(usize),
    /// The input ended before the end-line (only from [`parse_message`]).
    #[error("incomplete frame")]
    Incomplete,
}

impl MsrpParseError {
    /// Whether the connection must be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            MsrpParseError::BadStartLine(_) | MsrpParseError::HeaderTooLarge { .. }
        )
    }

    /// The transaction the error belongs to, when it is known.
    pub fn transaction_id(&self) -> Option<&str> {
        match self {
            MsrpParseError::ChunkTooLarge { transaction_id, .. }
            | MsrpParseError::Malformed { transaction_id, .. } => Some(transaction_id),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum State {
    /// Waiting for a complete start line.
    Start,
    /// Start line parsed; scanning header lines from `line` (offset in frame).
    Headers {
        tid: String,
        is_request: bool,
        start_line_end: usize,
        line: usize,
    },
    /// Scanning the body for `CRLF -------tid flag CRLF`.
    Body {
        tid: String,
        is_request: bool,
        start_line_end: usize,
        headers_end: usize,
        body_start: usize,
        scan: usize,
    },
    /// Discarding an oversize body up to its end-line.
    Skipping { pattern: Vec<u8> },
    /// A fatal error happened: nothing more is parsed.
    Poisoned,
}

/// Streaming parser: `push` bytes as they arrive, then call `next` until it
/// returns `None`.
#[derive(Debug)]
pub struct MsrpParser {
    config: ParserConfig,
    buf: Vec<u8>,
    /// Offset in `buf` of the current frame.
    start: usize,
    state: State,
}

impl Default for MsrpParser {
    fn default() -> Self {
        Self::new(ParserConfig::default())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl MsrpParser {
    pub fn new(config: ParserConfig) -> Self {
        MsrpParser {
            config,
            buf: Vec::new(),
            start: 0,
            state: State::Start,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if matches!(self.state, State::Poisoned) {
            return;
        }
        // Compact lazily so a long stream does not keep consumed bytes.
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes held but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether a fatal error stopped the parser.
    pub fn is_poisoned(&self) -> bool {
        matches!(self.state, State::Poisoned)
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    fn poison(&mut self, e: MsrpParseError) -> Option<Result<MsrpFrame, MsrpParseError>> {
        self.state = State::Poisoned;
        self.buf = Vec::new();
        self.start = 0;
        Some(Err(e))
    }

    /// The next complete frame or error, or `None` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<MsrpFrame, MsrpParseError>> {
        loop {
            let frame = self.buf.get(self.start..).unwrap_or_default();
            match &mut self.state {
                State::Poisoned => return None,
                State::Start => {
                    // Tolerate CRLFs between frames.
                    let skip = frame
                        .iter()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                    if skip > 0 {
                        self.consume(skip);
                        continue;
                    }
                    let Some(eol) = find(frame, b"\r\n") else {
                        if frame.len() > self.config.max_header_size {
                            return self.poison(MsrpParseError::HeaderTooLarge {
                                limit: self.config.max_header_size,
                            });
                        }
                        // An early check so garbage is refused before a CRLF arrives.
                        let n = frame.len().min(5);
                        if frame.get(..n) != b"MSRP ".get(..n) {
                            return self
                                .poison(MsrpParseError::BadStartLine(MessageError::BadStartLine));
                        }
                        return None;
                    };
                    let (tid, start) = match parse_start_line(frame.get(..eol)?) {
                        Ok(x) => x,
                        Err(e) => return self.poison(MsrpParseError::BadStartLine(e)),
                    };
                    self.state = State::Headers {
                        tid,
                        is_request: matches!(start, super::StartLine::Request(_)),
                        start_line_end: eol,
                        line: eol + 2,
                    };
                }
                State::Headers {
                    tid,
                    is_request,
                    start_line_end,
                    line,
                } => {
                    let rest = frame.get(*line..).unwrap_or_default();
                    let Some(eol) = find(rest, b"\r\n") else {
                        if frame.len() > self.config.max_header_size {
                            return self.poison(MsrpParseError::HeaderTooLarge {
                                limit: self.config.max_header_size,
                            });
                        }
                        return None;
                    };
                    if *line + eol > self.config.max_header_size {
                        return self.poison(MsrpParseError::HeaderTooLarge {
                            limit: self.config.max_header_size,
                        });
                    }
                    let text = rest.get(..eol).unwrap_or_default();
                    if text.is_empty() {
                        // Blank line: the body follows (RFC 4975 §9 `2CRLF data`).
                        let body_start = *line + 2;
                        self.state = State::Body {
                            tid: std::mem::take(tid),
                            is_request: *is_request,
                            start_line_end: *start_line_end,
                            headers_end: *line,
                            body_start,
                            scan: body_start,
                        };
                        continue;
                    }
                    if let Some(flag) = end_line_flag(text, tid) {
                        let headers_end = *line;
                        let total = *line + eol + 2;
                        let (tid, is_request, sle) =
                            (std::mem::take(tid), *is_request, *start_line_end);
                        let result = build(frame, tid, is_request, sle, headers_end, None, flag);
                        self.state = State::Start;
                        self.consume(total);
                        return Some(result);
                    }
                    *line += eol + 2;
                }
                State::Body {
                    tid,
                    is_request,
                    start_line_end,
                    headers_end,
                    body_start,
                    scan,
                } => {
                    let pattern_len = 2 + 7 + tid.len();
                    let mut found = None;
                    let mut from = *scan;
                    while let Some(rel) = frame
                        .get(from..)
                        .and_then(|h| find_end_pattern(h, tid.as_bytes()))
                    {
                        let at = from + rel;
                        // need flag + CRLF after the pattern
                        let tail = frame.get(at + pattern_len..at + pattern_len + 3);
                        match tail {
                            None => break, // wait for more bytes
                            Some(t) => {
                                if let Some(flag) =
                                    t.first().and_then(|b| ContinuationFlag::from_byte(*b))
                                    && t.get(1..3) == Some(b"\r\n")
                                {
                                    found = Some((at, flag));
                                    break;
                                }
                                from = at + 1;
                            }
                        }
                    }
                    if let Some((at, flag)) = found {
                        let total = at + pattern_len + 3;
                        if at - *body_start > self.config.max_chunk_size {
                            let err = MsrpParseError::ChunkTooLarge {
                                transaction_id: std::mem::take(tid),
                                is_request: *is_request,
                                limit: self.config.max_chunk_size,
                            };
                            self.state = State::Start;
                            self.consume(total);
                            return Some(Err(err));
                        }
                        let body = frame.get(*body_start..at).map(<[u8]>::to_vec);
                        let (tid, is_request, sle, he) = (
                            std::mem::take(tid),
                            *is_request,
                            *start_line_end,
                            *headers_end,
                        );
                        let result = build(frame, tid, is_request, sle, he, body, flag);
                        self.state = State::Start;
                        self.consume(total);
                        return Some(result);
                    }
                    // Resume later just before where a pattern could start.
                    *scan = from
                        .max(frame.len().saturating_sub(pattern_len + 2))
                        .max(*body_start);
                    let body_len = frame.len().saturating_sub(*body_start);
                    if body_len > self.config.max_chunk_size + pattern_len + 3 {
                        let err = MsrpParseError::ChunkTooLarge {
                            transaction_id: tid.clone(),
                            is_request: *is_request,
                            limit: self.config.max_chunk_size,
                        };
                        let mut pattern = b"\r\n-------".to_vec();
                        pattern.extend_from_slice(tid.as_bytes());
                        let keep = pattern.len() + 3;
                        let drop = frame.len().saturating_sub(keep);
                        self.state = State::Skipping { pattern };
                        self.consume(drop);
                        return Some(Err(err));
                    }
                    return None;
                }
                State::Skipping { pattern } => {
                    let mut from = 0;
                    let mut done = None;
                    while let Some(rel) = frame.get(from..).and_then(|h| find(h, pattern)) {
                        let at = from + rel;
                        match frame.get(at + pattern.len()..at + pattern.len() + 3) {
                            None => break,
                            Some(t) => {
                                if t.first()
                                    .and_then(|b| ContinuationFlag::from_byte(*b))
                                    .is_some()
                                    && t.get(1..3) == Some(b"\r\n")
                                {
                                    done = Some(at + pattern.len() + 3);
                                    break;
                                }
                                from = at + 1;
                            }
                        }
                    }
                    if let Some(n) = done {
                        self.state = State::Start;
                        self.consume(n);
                        continue;
                    }
                    let keep = pattern.len() + 3;
                    let drop = frame.len().saturating_sub(keep);
                    self.consume(drop);
                    return None;
                }
            }
        }
    }
}

/// Finds `CRLF -------<tid>` in `hay`.
fn find_end_pattern(hay: &[u8], tid: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = hay.get(from..).and_then(|h| find(h, b"\r\n-------")) {
        let at = from + rel;
        let t = hay.get(at + 9..at + 9 + tid.len());
        match t {
            Some(t) if t == tid => return Some(at),
            // Not enough bytes to decide: report it so the caller waits.
            None if hay.len() < at + 9 + tid.len() => {
                let have = hay.get(at + 9..).unwrap_or_default();
                if tid.starts_with(have) {
                    return Some(at);
                }
                from = at + 1;
            }
            _ => from = at + 1,
        }
    }
    None
}

/// If `line` is `-------<tid><flag>`, the flag.
fn end_line_flag(line: &[u8], tid: &str) -> Option<ContinuationFlag> {
    let rest = line.strip_prefix(b"-------")?;
    let rest = rest.strip_prefix(tid.as_bytes())?;
    match rest {
        [f] => ContinuationFlag::from_byte(*f),
        _ => None,
    }
}

fn build(
    frame: &[u8],
    tid: String,
    is_request: bool,
    start_line_end: usize,
    headers_end: usize,
    body: Option<Vec<u8>>,
    flag: ContinuationFlag,
) -> Result<MsrpFrame, MsrpParseError> {
    let malformed = |tid: String, error| MsrpParseError::Malformed {
        transaction_id: tid,
        is_request,
        error,
    };
    let start_line = frame.get(..start_line_end).unwrap_or_default();
    let (_, start) = match parse_start_line(start_line) {
        Ok(x) => x,
        Err(e) => return Err(malformed(tid, e)),
    };
    let block = frame
        .get(start_line_end + 2..headers_end)
        .unwrap_or_default();
    let lines = CrlfLines(block);
    let headers = match parse_headers(lines) {
        Ok(h) => h,
        Err(e) => return Err(malformed(tid, e)),
    };
    Ok(MsrpMessage {
        transaction_id: tid,
        start,
        headers,
        body,
        flag,
    })
}

/// Iterates over CRLF-terminated lines (the last one may lack its CRLF).
struct CrlfLines<'a>(&'a [u8]);

impl<'a> Iterator for CrlfLines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        match find(self.0, b"\r\n") {
            Some(i) => {
                let (line, rest) = self.0.split_at(i);
                self.0 = rest.get(2..).unwrap_or_default();
                Some(line)
            }
            None => Some(std::mem::take(&mut self.0)),
        }
    }
}

/// Parses exactly one complete frame (for fuzz targets and tests): no limits
/// beyond the defaults, no bytes after the end-line.
pub fn parse_message(bytes: &[u8]) -> Result<MsrpMessage, MsrpParseError> {
    let mut p = MsrpParser::new(ParserConfig {
        max_header_size: ParserConfig::default().max_header_size,
        max_chunk_size: bytes.len(),
    });
    p.push(bytes);
    match p.next() {
        None => Err(MsrpParseError::Incomplete),
        Some(Err(e)) => Err(e),
        Some(Ok(m)) => match p.buffered() {
            0 => Ok(m),
            n => Err(MsrpParseError::TrailingData(n)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msrp::message::{ByteRange, MsrpHeader, MsrpMethod};
    use crate::proto::msrp::uri::{MsrpPath, MsrpUri};
    use proptest::prelude::*;

    const SEND: &[u8] = b"MSRP a786hjs2 SEND\r\n\
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
Message-ID: 87652491\r\n\
Byte-Range: 1-25/25\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hey Bob, are you there?\r\n\
-------a786hjs2$\r\n";

    #[test]
    fn one_frame_every_split() {
        for cut in 0..=SEND.len() {
            let mut p = MsrpParser::default();
            p.push(&SEND[..cut]);
            let first = p.next();
            p.push(&SEND[cut..]);
            let m = match first {
                Some(r) => r.unwrap(),
                None => p.next().unwrap().unwrap(),
            };
            assert_eq!(
                m.body.as_deref(),
                Some(&b"Hey Bob, are you there?"[..]),
                "cut {cut}"
            );
            assert!(p.next().is_none());
        }
    }

    #[test]
    fn round_trip_send() {
        let m = parse_message(SEND).unwrap();
        assert_eq!(m.to_bytes().unwrap(), SEND);
        assert_eq!(m.byte_range(), Some(ByteRange::parse("1-25/25").unwrap()));
    }

    #[test]
    fn body_with_lookalike_end_lines() {
        let to = MsrpPath::single(MsrpUri::new("b", 1, "s1"));
        let from = MsrpPath::single(MsrpUri::new("a", 2, "s2"));
        let body = b"x\r\n-------abcdX\r\n-------abc$\r\n-------abcd".to_vec();
        let m = MsrpMessage::request(MsrpMethod::Send, "abcd", to, from)
            .with_body("text/plain", body.clone());
        // the body contains "-------abcd" so the serializer refuses it
        assert!(m.to_bytes().is_err());
        let body2 = b"x\r\n-------abcX\r\n-------abc$\r\n-------ab".to_vec();
        let m = m.with_body("text/plain", body2.clone());
        let bytes = m.to_bytes().unwrap();
        for cut in 0..bytes.len() {
            let mut p = MsrpParser::default();
            p.push(&bytes[..cut]);
            let mut got = p.next();
            p.push(&bytes[cut..]);
            if got.is_none() {
                got = p.next();
            }
            assert_eq!(got.unwrap().unwrap(), m, "cut {cut}");
        }
    }

    #[test]
    fn empty_body_and_no_body() {
        let to = MsrpPath::single(MsrpUri::new("b", 1, "s1"));
        let from = MsrpPath::single(MsrpUri::new("a", 2, "s2"));
        let none = MsrpMessage::request(MsrpMethod::Send, "t1234", to.clone(), from.clone());
        let empty = none.clone().with_body("text/plain", Vec::new());
        for m in [none, empty] {
            assert_eq!(parse_message(&m.to_bytes().unwrap()).unwrap(), m);
        }
    }

    #[test]
    fn bad_headers_are_recoverable() {
        let mut bad = b"MSRP tx11 SEND\r\nTo-Path: nonsense\r\nFrom-Path: msrp://a:1/b;tcp\r\n-------tx11$\r\n".to_vec();
        bad.extend_from_slice(SEND);
        let mut p = MsrpParser::default();
        p.push(&bad);
        let e = p.next().unwrap().unwrap_err();
        assert!(!e.is_fatal());
        assert_eq!(e.transaction_id(), Some("tx11"));
        assert!(matches!(
            e,
            MsrpParseError::Malformed {
                is_request: true,
                ..
            }
        ));
        assert!(p.next().unwrap().is_ok(), "stream continues");
    }

    #[test]
    fn garbage_is_fatal() {
        let mut p = MsrpParser::default();
        p.push(b"GET / HTTP/1.1\r\n");
        let e = p.next().unwrap().unwrap_err();
        assert!(e.is_fatal());
        assert!(p.next().is_none());
        assert!(p.is_poisoned());
    }

    #[test]
    fn header_limit_is_fatal() {
        let mut p = MsrpParser::new(ParserConfig {
            max_header_size: 64,
            max_chunk_size: 1024,
        });
        p.push(b"MSRP abcd SEND\r\nX-Long: ");
        assert!(p.next().is_none());
        p.push(&[b'a'; 100]);
        let e = p.next().unwrap().unwrap_err();
        assert!(e.is_fatal());
        assert!(matches!(e, MsrpParseError::HeaderTooLarge { limit: 64 }));
    }

    #[test]
    fn chunk_limit_skips_frame() {
        let mut p = MsrpParser::new(ParserConfig {
            max_header_size: 1024,
            max_chunk_size: 8,
        });
        let mut big = b"MSRP big1 SEND\r\nTo-Path: msrp://a:1/b;tcp\r\nFrom-Path: msrp://c:2/d;tcp\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        big.extend_from_slice(&[b'z'; 200]);
        big.extend_from_slice(b"\r\n-------big1$\r\n");
        big.extend_from_slice(b"MSRP ok11 200 OK\r\nTo-Path: msrp://a:1/b;tcp\r\nFrom-Path: msrp://c:2/d;tcp\r\n-------ok11$\r\n");
        for step in [1usize, 7, 50, 1000] {
            let mut errs = 0;
            let mut oks = 0;
            for c in big.chunks(step) {
                p.push(c);
                while let Some(r) = p.next() {
                    match r {
                        Ok(m) => {
                            assert_eq!(m.code(), Some(200));
                            oks += 1;
                        }
                        Err(e) => {
                            assert!(!e.is_fatal());
                            assert!(matches!(e, MsrpParseError::ChunkTooLarge { .. }));
                            errs += 1;
                        }
                    }
                }
                assert!(p.buffered() < 400);
            }
            assert_eq!((errs, oks), (1, 1), "step {step}");
        }
    }

    #[test]
    fn extension_headers_in_order() {
        let raw = b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/b;tcp\r\nFrom-Path: msrp://c:2/d;tcp\r\nX-B: 2\r\nX-A: 1\r\n-------abcd+\r\n";
        let m = parse_message(raw).unwrap();
        assert_eq!(m.flag, ContinuationFlag::Continuation);
        let names: Vec<_> = m.headers.iter().map(MsrpHeader::name).collect();
        assert_eq!(names, ["To-Path", "From-Path", "X-B", "X-A"]);
        assert_eq!(m.to_bytes().unwrap(), raw);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), split in 0usize..512) {
            let mut p = MsrpParser::new(ParserConfig { max_header_size: 128, max_chunk_size: 64 });
            let cut = split.min(data.len());
            p.push(&data[..cut]);
            while p.next().is_some() {}
            p.push(&data[cut..]);
            while p.next().is_some() {}
            let _ = parse_message(&data);
        }

        #[test]
        fn never_panics_msrp_prefixed(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut data = b"MSRP abcd SEND\r\n".to_vec();
            data.extend_from_slice(&tail);
            let _ = parse_message(&data);
            let mut p = MsrpParser::default();
            for b in &data {
                p.push(std::slice::from_ref(b));
                while p.next().is_some() {}
            }
        }
    }
}
