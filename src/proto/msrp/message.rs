//! MSRP requests and responses: typed headers, start line, end line, printing
//! and the builders for responses and REPORTs (RFC 4975 §7, §9).

use std::fmt;

use super::IdGenerator;
use super::uri::{MsrpPath, UriError};

/// What is wrong with a message's start line, headers or body.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("bad start line")]
    BadStartLine,
    #[error("bad transaction id {0:?}")]
    BadTransactionId(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("malformed header line")]
    BadHeaderLine,
    #[error("header is not UTF-8")]
    NotUtf8,
    #[error("bad {header} value: {source}")]
    BadUri {
        header: &'static str,
        source: UriError,
    },
    #[error("bad Byte-Range {0:?}")]
    BadByteRange(String),
    #[error("bad Status {0:?}")]
    BadStatus(String),
    #[error("bad {header} value {value:?}")]
    BadReportValue { header: &'static str, value: String },
    #[error("bad Message-ID {0:?}")]
    BadMessageId(String),
    #[error("body contains the end-line of transaction {0}")]
    BodyContainsEndLine(String),
    #[error("no usable transaction id after {0} tries")]
    NoTransactionId(usize),
}

/// A request method. Unknown methods are kept by name (RFC 4975 §7.3 lets the
/// receiver answer them with 501).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpMethod {
    Send,
    Report,
    /// RFC 7701.
    Nickname,
    Other(String),
}

impl MsrpMethod {
    pub fn as_str(&self) -> &str {
        match self {
            MsrpMethod::Send => "SEND",
            MsrpMethod::Report => "REPORT",
            MsrpMethod::Nickname => "NICKNAME",
            MsrpMethod::Other(m) => m,
        }
    }

    /// The method named by a start-line token.
    pub fn from_token(t: &str) -> Self {
        match t {
            "SEND" => MsrpMethod::Send,
            "REPORT" => MsrpMethod::Report,
            "NICKNAME" => MsrpMethod::Nickname,
            o => MsrpMethod::Other(o.to_string()),
        }
    }
}

/// Request method or response status with comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request(MsrpMethod),
    Response { code: u16, comment: Option<String> },
}

/// The flag after the transaction id on the end-line (RFC 4975 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContinuationFlag {
    /// `$`: the last (or only) chunk.
    Complete,
    /// `+`: more chunks follow.
    Continuation,
    /// `#`: the message is aborted.
    Aborted,
}

impl ContinuationFlag {
    pub fn as_byte(self) -> u8 {
        match self {
            ContinuationFlag::Complete => b'$',
            ContinuationFlag::Continuation => b'+',
            ContinuationFlag::Aborted => b'#',
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'$' => Some(ContinuationFlag::Complete),
            b'+' => Some(ContinuationFlag::Continuation),
            b'#' => Some(ContinuationFlag::Aborted),
            _ => None,
        }
    }
}

/// `Byte-Range: start-end/total`, 1-based and inclusive; `None` is `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
    pub total: Option<u64>,
}

impl ByteRange {
    pub fn parse(s: &str) -> Result<Self, MessageError> {
        let bad = || MessageError::BadByteRange(s.to_string());
        let (range, total) = s.trim().split_once('/').ok_or_else(bad)?;
        let (start, end) = range.split_once('-').ok_or_else(bad)?;
        let num = |t: &str| -> Result<u64, MessageError> {
            if t.is_empty() || t.len() > 19 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let star = |t: &str| -> Result<Option<u64>, MessageError> {
            if t == "*" { Ok(None) } else { num(t).map(Some) }
        };
        let br = ByteRange {
            start: num(start)?,
            end: star(end)?,
            total: star(total)?,
        };
        if br.start == 0 {
            return Err(bad());
        }
        if let Some(e) = br.end {
            if e + 1 < br.start {
                return Err(bad());
            }
            if br.total.is_some_and(|t| e > t) {
                return Err(bad());
            }
        }
        Ok(br)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(e) => write!(f, "{e}/")?,
            None => f.write_str("*/")?,
        }
        match self.total {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("*"),
        }
    }
}

/// `Failure-Report` (RFC 4975 §7.1.2): absent means `yes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureReport {
    #[default]
    Yes,
    No,
    Partial,
}

impl FailureReport {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReport::Yes => "yes",
            FailureReport::No => "no",
            FailureReport::Partial => "partial",
        }
    }
}

/// `Status: 000 200 OK` carried in REPORTs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub namespace: u16,
    pub code: u16,
    pub comment: Option<String>,
}

impl Status {
    pub fn new(code: u16, comment: Option<&str>) -> Self {
        Status {
            namespace: 0,
            code,
            comment: comment.map(str::to_string),
        }
    }

    pub fn parse(s: &str) -> Result<Self, MessageError> {
        let bad = || MessageError::BadStatus(s.to_string());
        let s = s.trim();
        let three = |t: &str| -> Result<u16, MessageError> {
            if t.len() != 3 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let mut it = s.splitn(3, ' ');
        let namespace = three(it.next().unwrap_or_default())?;
        let code = three(it.next().unwrap_or_default())?;
        let comment = it.next().map(str::to_string).filter(|c| !c.is_empty());
        Ok(Status {
            namespace,
            code,
            comment,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.namespace, self.code)?;
        if let Some(c) = &self.comment {
            write!(f, " {c}")?;
        }
        Ok(())
    }
}

/// One header line, typed where RFC 4975 defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpHeader {
    ToPath(MsrpPath),
    FromPath(MsrpPath),
    MessageId(String),
    ByteRange(ByteRange),
    SuccessReport(bool),
    FailureReport(FailureReport),
    Status(Status),
    ContentType(String),
    /// Any other header (extension or MIME header), kept in order.
    Other {
        name: String,
        value: String,
    },
}

impl MsrpHeader {
    /// Parses the value of header `name`.
    pub fn parse(name: &str, value: &str) -> Result<Self, MessageError> {
        let value = value.trim();
        let yes_no = |header: &'static str| match value.to_ascii_lowercase().as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(MessageError::BadReportValue {
                header,
                value: value.to_string(),
            }),
        };
        let n = name.to_ascii_lowercase();
        Ok(match n.as_str() {
            "to-path" => MsrpHeader::ToPath(MsrpPath::parse(value).map_err(|source| {
                MessageError::BadUri {
                    header: "To-Path",
                    source,
                }
            })?),
            "from-path" => MsrpHeader::FromPath(MsrpPath::parse(value).map_err(|source| {
                MessageError::BadUri {
                    header: "From-Path",
                    source,
                }
            })?),
            "message-id" => {
                if !is_ident(value) {
                    return Err(MessageError::BadMessageId(value.to_string()));
                }
                MsrpHeader::MessageId(value.to_string())
            }
            "byte-range" => MsrpHeader::ByteRange(ByteRange::parse(value)?),
            "success-report" => MsrpHeader::SuccessReport(yes_no("Success-Report")?),
            "failure-report" => {
                MsrpHeader::FailureReport(match value.to_ascii_lowercase().as_str() {
                    "yes" => FailureReport::Yes,
                    "no" => FailureReport::No,
                    "partial" => FailureReport::Partial,
                    _ => {
                        return Err(MessageError::BadReportValue {
                            header: "Failure-Report",
                            value: value.to_string(),
                        });
                    }
                })
            }
            "status" => MsrpHeader::Status(Status::parse(value)?),
            "content-type" => {
                if value.is_empty() {
                    return Err(MessageError::MissingHeader("Content-Type"));
                }
                MsrpHeader::ContentType(value.to_string())
            }
            _ => MsrpHeader::Other {
                name: name.to_string(),
                value: value.to_string(),
            },
        })
    }

    pub fn name(&self) -> &str {
        match self {
            MsrpHeader::ToPath(_) => "To-Path",
            MsrpHeader::FromPath(_) => "From-Path",
            MsrpHeader::MessageId(_) => "Message-ID",
            MsrpHeader::ByteRange(_) => "Byte-Range",
            MsrpHeader::SuccessReport(_) => "Success-Report",
            MsrpHeader::FailureReport(_) => "Failure-Report",
            MsrpHeader::Status(_) => "Status",
            MsrpHeader::ContentType(_) => "Content-Type",
            MsrpHeader::Other { name, .. } => name,
        }
    }
}

impl fmt::Display for MsrpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            MsrpHeader::ToPath(p) | MsrpHeader::FromPath(p) => write!(f, "{p}"),
            MsrpHeader::MessageId(v) | MsrpHeader::ContentType(v) => f.write_str(v),
            MsrpHeader::ByteRange(b) => write!(f, "{b}"),
            MsrpHeader::SuccessReport(b) => f.write_str(if *b { "yes" } else { "no" }),
            MsrpHeader::FailureReport(r) => f.write_str(r.as_str()),
            MsrpHeader::Status(s) => write!(f, "{s}"),
            MsrpHeader::Other { value, .. } => f.write_str(value),
        }
    }
}

/// `ident` of RFC 4975 §9 (transaction and message ids), with a liberal length
/// bound of 1..=64 so that peers with long ids still frame.
pub fn is_ident(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b".-+%=".contains(c))
}

/// `ident` with RFC 4975's own bounds (4..=32 characters): what we generate.
pub fn is_rfc_ident(s: &str) -> bool {
    (4..=32).contains(&s.len()) && is_ident(s)
}

/// One MSRP request or response, i.e. one frame on the wire (a whole message
/// or one chunk of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpMessage {
    pub transaction_id: String,
    pub start: StartLine,
    /// Headers in wire order; To-Path and From-Path are printed where they are.
    pub headers: Vec<MsrpHeader>,
    /// `None`: no body at all (no blank line). `Some(empty)` is a body of zero bytes.
    pub body: Option<Vec<u8>>,
    pub flag: ContinuationFlag,
}

/// What the streaming parser yields: one frame.
pub type MsrpFrame = MsrpMessage;

/// Default comment for a response code (RFC 4975 §10).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        413 => "Message Too Large",
        415 => "Unsupported Media Type",
        423 => "Parameter Out Of Bounds",
        481 => "Session Does Not Exist",
        501 => "Not Implemented",
        506 => "Session Already In Use",
        _ => "Unknown",
    }
}

impl MsrpMessage {
    /// A request with only To-Path and From-Path.
    pub fn request(
        method: MsrpMethod,
        transaction_id: impl Into<String>,
        to_path: MsrpPath,
        from_path: MsrpPath,
    ) -> Self {
        MsrpMessage {
            transaction_id: transaction_id.into(),
            start: StartLine::Request(method),
            headers: vec![MsrpHeader::ToPath(to_path), MsrpHeader::FromPath(from_path)],
            body: None,
            flag: ContinuationFlag::Complete,
        }
    }

    /// Appends a header (builder style).
    pub fn with_header(mut self, h: MsrpHeader) -> Self {
        self.headers.push(h);
        self
    }

    /// Sets Content-Type (appended last) and the body.
    pub fn with_body(mut self, content_type: impl Into<String>, body: Vec<u8>) -> Self {
        self.headers
            .retain(|h| !matches!(h, MsrpHeader::ContentType(_)));
        self.headers
            .push(MsrpHeader::ContentType(content_type.into()));
        self.body = Some(body);
        self
    }

    pub fn with_flag(mut self, flag: ContinuationFlag) -> Self {
        self.flag = flag;
        self
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    pub fn method(&self) -> Option<&MsrpMethod> {
        match &self.start {
            StartLine::Request(m) => Some(m),
            StartLine::Response { .. } => None,
        }
    }

    /// Response code, if this is a response.
    pub fn code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request(_) => None,
        }
    }

    pub fn to_path(&self) -> Option<&MsrpPath> {
        self.headers.iter().find_map(|h| match h {
            MsrpHeader::ToPath(p) => Some(p),
            _ => None,
        })
    }

    pub fn from_path(&self) -> Option<&MsrpPath> {
        self.headers.iter().find_map(|h| match h {
            MsrpHeader::FromPath(p) => Some(p),
            _ => None,
        })
    }

    pub fn message_id(&self) -> Option<&str> {
        self.headers.iter().find_map(|h| match h {
            MsrpHeader::MessageId(p) => Some(p.as_str()),
            _ => None,
        })
    }

    pub fn byte_range(&self) -> Option<ByteRange> {
        self.headers.iter().find_map(|h| match h {
            MsrpHeader::ByteRange(b) => Some(*b),
            _ => None,
        })
    }

    /// `Success-Report`; absent means `no` (RFC 4975 §7.1.1).
    pub fn success_report(&self) -> bool {
        self.headers
            .iter()
            .find_map(|h| match h {
                MsrpHeader::SuccessReport(b) => Some(*b),
                _ => None,
            })
            .unwrap_or(false)
    }

    /// `Failure-Report`; absent means `yes`.
    pub fn failure_report(&self) -> FailureReport {
        self.headers
            .iter()
            .find_map(|h| match h {
                MsrpHeader::FailureReport(r) => Some(*r),
                _ => None,
            })
            .unwrap_or_default()
    }

    pub fn status(&self) -> Option<&Status> {
        self.headers.iter().find_map(|h| match h {
            MsrpHeader::Status(s) => Some(s),
            _ => None,
        })
    }

    pub fn content_type(&self) -> Option<&str> {
        self.headers.iter().find_map(|h| match h {
            MsrpHeader::ContentType(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// Value of an extension header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| match h {
            MsrpHeader::Other { name: n, value } if n.eq_ignore_ascii_case(name) => {
                Some(value.as_str())
            }
            _ => None,
        })
    }

    /// RFC 4975 §7.3: every request and response carries To-Path and
    /// From-Path; a SEND with a body carries Message-ID and Content-Type, a
    /// REPORT Message-ID and Status. A request failing this gets 400.
    pub fn check_mandatory(&self) -> Result<(), MessageError> {
        if self.to_path().is_none() {
            return Err(MessageError::MissingHeader("To-Path"));
        }
        if self.from_path().is_none() {
            return Err(MessageError::MissingHeader("From-Path"));
        }
        match self.method() {
            Some(MsrpMethod::Send) => {
                if self.message_id().is_none() {
                    return Err(MessageError::MissingHeader("Message-ID"));
                }
                if self.body.is_some() && self.content_type().is_none() {
                    return Err(MessageError::MissingHeader("Content-Type"));
                }
            }
            Some(MsrpMethod::Report) => {
                if self.message_id().is_none() {
                    return Err(MessageError::MissingHeader("Message-ID"));
                }
                if self.status().is_none() {
                    return Err(MessageError::MissingHeader("Status"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The end-line without CRLF: `-------<tid><flag>`.
    pub fn end_line(&self) -> String {
        format!(
            "-------{}{}",
            self.transaction_id,
            self.flag.as_byte() as char
        )
    }

    /// Whether `body` could be cut short by this transaction's end-line.
    fn body_conflicts(body: &[u8], tid: &str) -> bool {
        let pat = format!("-------{tid}");
        body.windows(pat.len()).any(|w| w == pat.as_bytes())
    }

    /// Serializes; fails when the transaction id is not an ident or the body
    /// contains the end-line (RFC 4975 §7.1).
    pub fn to_bytes(&self) -> Result<Vec<u8>, MessageError> {
        if !is_ident(&self.transaction_id) {
            return Err(MessageError::BadTransactionId(self.transaction_id.clone()));
        }
        if let Some(b) = &self.body
            && Self::body_conflicts(b, &self.transaction_id)
        {
            return Err(MessageError::BodyContainsEndLine(
                self.transaction_id.clone(),
            ));
        }
        let mut out = Vec::with_capacity(128 + self.body.as_ref().map_or(0, Vec::len));
        out.extend_from_slice(b"MSRP ");
        out.extend_from_slice(self.transaction_id.as_bytes());
        out.push(b' ');
        match &self.start {
            StartLine::Request(m) => out.extend_from_slice(m.as_str().as_bytes()),
            StartLine::Response { code, comment } => {
                out.extend_from_slice(format!("{code:03}").as_bytes());
                if let Some(c) = comment {
                    out.push(b' ');
                    out.extend_from_slice(c.as_bytes());
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            out.extend_from_slice(h.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(b) = &self.body {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(self.end_line().as_bytes());
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }

    /// Picks a transaction id from `ids` that does not appear in the body
    /// (RFC 4975 §7.1), stores it and serializes.
    pub fn assign_transaction_id_and_serialize(
        &mut self,
        ids: &mut dyn IdGenerator,
    ) -> Result<Vec<u8>, MessageError> {
        const TRIES: usize = 32;
        for _ in 0..TRIES {
            let tid = ids.next_id();
            if !is_rfc_ident(&tid) {
                continue;
            }
            if self
                .body
                .as_deref()
                .is_some_and(|b| Self::body_conflicts(b, &tid))
            {
                continue;
            }
            self.transaction_id = tid;
            return self.to_bytes();
        }
        Err(MessageError::NoTransactionId(TRIES))
    }

    /// The transaction response to this request, or `None` when none may be
    /// sent: REPORTs are never answered (RFC 4975 §7.1.2); `Failure-Report: no`
    /// forbids every response and `partial` forbids 200 (§7.2).
    pub fn response(&self, code: u16, comment: Option<&str>) -> Option<MsrpMessage> {
        let method = self.method()?;
        if *method == MsrpMethod::Report {
            return None;
        }
        match self.failure_report() {
            FailureReport::No => return None,
            FailureReport::Partial if code == 200 => return None,
            _ => {}
        }
        Some(self.response_unchecked(code, comment))
    }

    /// The response without the Failure-Report checks (for methods other
    /// than SEND whose rules differ, and for tests).
    pub fn response_unchecked(&self, code: u16, comment: Option<&str>) -> MsrpMessage {
        // RFC 4975 §7.2: To-Path is the previous hop (first From-Path URI),
        // From-Path is us (first To-Path URI).
        let mut headers = Vec::new();
        if let Some(u) = self.from_path().and_then(MsrpPath::first) {
            headers.push(MsrpHeader::ToPath(MsrpPath::single(u.clone())));
        }
        if let Some(u) = self.to_path().and_then(MsrpPath::first) {
            headers.push(MsrpHeader::FromPath(MsrpPath::single(u.clone())));
        }
        MsrpMessage {
            transaction_id: self.transaction_id.clone(),
            start: StartLine::Response {
                code,
                comment: Some(comment.unwrap_or(reason_phrase(code)).to_string()),
            },
            headers,
            body: None,
            flag: ContinuationFlag::Complete,
        }
    }

    /// 200 OK to a SEND, when one may be sent.
    pub fn ok_response(&self) -> Option<MsrpMessage> {
        self.response(200, None)
    }

    /// A REPORT on this SEND (RFC 4975 §7.1.2): To-Path = the SEND's From-Path,
    /// From-Path = its final To-Path URI; same Message-ID; given Status and range.
    pub fn report(
        &self,
        transaction_id: impl Into<String>,
        status: Status,
        byte_range: ByteRange,
    ) -> Option<MsrpMessage> {
        let to = self.from_path()?.clone();
        let from = MsrpPath::single(self.to_path()?.last()?.clone());
        let mut r = MsrpMessage::request(MsrpMethod::Report, transaction_id, to, from);
        if let Some(id) = self.message_id() {
            r.headers.push(MsrpHeader::MessageId(id.to_string()));
        }
        r.headers.push(MsrpHeader::ByteRange(byte_range));
        r.headers.push(MsrpHeader::Status(status));
        Some(r)
    }
}

/// Parses the start line (without CRLF): `MSRP <tid> <method>` or
/// `MSRP <tid> <code>[ <comment>]`.
pub(crate) fn parse_start_line(line: &[u8]) -> Result<(String, StartLine), MessageError> {
    let line = std::str::from_utf8(line).map_err(|_| MessageError::BadStartLine)?;
    let rest = line
        .strip_prefix("MSRP ")
        .ok_or(MessageError::BadStartLine)?;
    let (tid, rest) = rest.split_once(' ').ok_or(MessageError::BadStartLine)?;
    if !is_ident(tid) {
        return Err(MessageError::BadTransactionId(tid.to_string()));
    }
    let (word, comment) = match rest.split_once(' ') {
        Some((w, c)) => (w, Some(c)),
        None => (rest, None),
    };
    let start = if word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit()) {
        let code = word.parse().map_err(|_| MessageError::BadStartLine)?;
        StartLine::Response {
            code,
            comment: comment.map(str::to_string),
        }
    } else if !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase()) && comment.is_none()
    {
        StartLine::Request(MsrpMethod::from_token(word))
    } else {
        return Err(MessageError::BadStartLine);
    };
    Ok((tid.to_string(), start))
}

/// Parses header lines (each without CRLF). Which headers are mandatory is
/// checked by [`MsrpMessage::check_mandatory`], not here, so that the RFC's
/// illustrative fragments (RFC 4975 §5.1) still parse.
pub(crate) fn parse_headers<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<MsrpHeader>, MessageError> {
    let mut headers = Vec::new();
    for line in lines {
        let line = std::str::from_utf8(line).map_err(|_| MessageError::NotUtf8)?;
        if line.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(MessageError::BadHeaderLine);
        }
        let (name, value) = line.split_once(':').ok_or(MessageError::BadHeaderLine)?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b))
        {
            return Err(MessageError::BadHeaderLine);
        }
        headers.push(MsrpHeader::parse(name, value)?);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msrp::uri::MsrpUri;

    fn alice() -> MsrpPath {
        MsrpPath::single(MsrpUri::new("alicepc.example.com", 7777, "iau39soe2843z"))
    }
    fn bob() -> MsrpPath {
        MsrpPath::single(MsrpUri::new("bob.example.com", 8888, "9di4eae923wzd"))
    }

    #[test]
    fn byte_range_parse_print() {
        for s in ["1-25/25", "1-*/*", "2049-4096/*", "1-0/0", "5-*/100"] {
            assert_eq!(ByteRange::parse(s).unwrap().to_string(), s);
        }
        for s in ["0-1/1", "1-2", "a-2/3", "5-3/9", "1-10/5", "-1/1"] {
            assert!(ByteRange::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn status_parse_print() {
        let s = Status::parse("000 200 OK").unwrap();
        assert_eq!(s.code, 200);
        assert_eq!(s.comment.as_deref(), Some("OK"));
        assert_eq!(s.to_string(), "000 200 OK");
        assert_eq!(Status::parse("000 413").unwrap().comment, None);
        assert!(Status::parse("0 200 OK").is_err());
    }

    #[test]
    fn start_line() {
        let (tid, s) = parse_start_line(b"MSRP a786hjs2 SEND").unwrap();
        assert_eq!(tid, "a786hjs2");
        assert_eq!(s, StartLine::Request(MsrpMethod::Send));
        let (_, s) = parse_start_line(b"MSRP a786hjs2 200 OK").unwrap();
        assert_eq!(
            s,
            StartLine::Response {
                code: 200,
                comment: Some("OK".into())
            }
        );
        let (_, s) = parse_start_line(b"MSRP a786hjs2 NICKNAME").unwrap();
        assert_eq!(s, StartLine::Request(MsrpMethod::Nickname));
        let (_, s) = parse_start_line(b"MSRP a786hjs2 FOO").unwrap();
        assert_eq!(s, StartLine::Request(MsrpMethod::Other("FOO".into())));
        assert!(parse_start_line(b"HTTP/1.1 200 OK").is_err());
        assert!(parse_start_line(b"MSRP a786hjs2 send").is_err());
    }

    #[test]
    fn response_rules() {
        let send = MsrpMessage::request(MsrpMethod::Send, "abcd1234", bob(), alice())
            .with_header(MsrpHeader::MessageId("m1".into()));
        let ok = send.ok_response().unwrap();
        assert_eq!(ok.to_path(), Some(&alice()));
        assert_eq!(ok.from_path(), Some(&bob()));
        assert_eq!(ok.code(), Some(200));
        let no = send
            .clone()
            .with_header(MsrpHeader::FailureReport(FailureReport::No));
        assert!(no.ok_response().is_none());
        assert!(no.response(400, None).is_none());
        let partial = send
            .clone()
            .with_header(MsrpHeader::FailureReport(FailureReport::Partial));
        assert!(partial.ok_response().is_none());
        assert_eq!(partial.response(413, None).unwrap().code(), Some(413));
        let rep = send
            .report(
                "rep1",
                Status::new(200, Some("OK")),
                ByteRange::parse("1-5/5").unwrap(),
            )
            .unwrap();
        assert!(rep.response(200, None).is_none(), "REPORTs get no response");
        assert_eq!(rep.to_path(), Some(&alice()));
        assert_eq!(rep.message_id(), Some("m1"));
    }

    #[test]
    fn serializer_refuses_end_line_in_body() {
        let m = MsrpMessage::request(MsrpMethod::Send, "abcd", bob(), alice())
            .with_body("text/plain", b"x\r\n-------abcd$\r\n".to_vec());
        assert_eq!(
            m.to_bytes(),
            Err(MessageError::BodyContainsEndLine("abcd".into()))
        );
        let mut m = m;
        let mut ids = ["abcd".to_string(), "efgh".to_string()].into_iter();
        let mut gen_ids = move || ids.next().unwrap_or_default();
        let bytes = m.assign_transaction_id_and_serialize(&mut gen_ids).unwrap();
        assert_eq!(m.transaction_id, "efgh");
        assert!(bytes.ends_with(b"-------efgh$\r\n"));
    }

    mod round_trip {
        use super::super::*;
        use crate::proto::msrp::parser::parse_message;
        use crate::proto::msrp::uri::MsrpUri;
        use proptest::prelude::*;

        fn arb_path() -> impl Strategy<Value = MsrpPath> {
            proptest::collection::vec(
                (
                    "[a-z]{1,8}\\.example\\.com",
                    any::<u16>(),
                    "[A-Za-z0-9]{4,12}",
                )
                    .prop_map(|(h, p, s)| MsrpUri::new(h, p, s)),
                1..3,
            )
            .prop_map(MsrpPath)
        }

        fn arb_range() -> impl Strategy<Value = ByteRange> {
            (
                1u64..1_000_000,
                proptest::option::of(0u64..1000),
                any::<bool>(),
            )
                .prop_map(|(start, len, total_known)| {
                    let end = len.map(|l| start + l - 1);
                    ByteRange {
                        start,
                        end,
                        total: total_known.then(|| end.unwrap_or(start) + 7),
                    }
                })
        }

        fn arb_header() -> impl Strategy<Value = MsrpHeader> {
            prop_oneof![
                "[A-Za-z0-9][A-Za-z0-9.+=-]{0,20}".prop_map(MsrpHeader::MessageId),
                arb_range().prop_map(MsrpHeader::ByteRange),
                any::<bool>().prop_map(MsrpHeader::SuccessReport),
                prop_oneof![
                    Just(FailureReport::Yes),
                    Just(FailureReport::No),
                    Just(FailureReport::Partial)
                ]
                .prop_map(MsrpHeader::FailureReport),
                (
                    0u16..1000,
                    100u16..1000,
                    proptest::option::of("[A-Za-z]{1,6}( [A-Za-z]{1,6})?")
                )
                    .prop_map(|(namespace, code, comment)| MsrpHeader::Status(
                        Status {
                            namespace,
                            code,
                            comment
                        }
                    )),
                ("X-[A-Za-z]{1,8}", "[!-~]([ -~]{0,30}[!-~])?")
                    .prop_map(|(name, value)| MsrpHeader::Other { name, value }),
            ]
        }

        prop_compose! {
            fn arb_message()(
                tid in "[A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}",
                start in prop_oneof![
                    prop_oneof![
                        Just("SEND".to_string()),
                        Just("REPORT".to_string()),
                        Just("NICKNAME".to_string()),
                        "[A-Z]{1,10}"
                    ]
                        .prop_map(|m| StartLine::Request(MsrpMethod::from_token(&m))),
                    (100u16..1000, proptest::option::of("[ -~]{0,20}"))
                        .prop_map(|(code, comment)| StartLine::Response { code, comment }),
                ],
                to in arb_path(),
                from in arb_path(),
                extra in proptest::collection::vec(arb_header(), 0..6),
                body in proptest::option::of((
                    "[a-z]{1,8}/[a-z0-9.+-]{1,10}",
                    proptest::collection::vec(any::<u8>(), 0..300),
                )),
                flag in prop_oneof![
                    Just(ContinuationFlag::Complete),
                    Just(ContinuationFlag::Continuation),
                    Just(ContinuationFlag::Aborted)
                ],
            ) -> MsrpMessage {
                let mut headers = vec![MsrpHeader::ToPath(to), MsrpHeader::FromPath(from)];
                headers.extend(extra);
                let mut m = MsrpMessage { transaction_id: tid, start, headers, body: None, flag };
                if let Some((ct, b)) = body {
                    m = m.with_body(ct, b);
                }
                m
            }
        }

        proptest! {
            #[test]
            fn parse_of_serialize_is_identity(m in arb_message()) {
                let bytes = m.to_bytes();
                prop_assume!(bytes.is_ok());
                let bytes = bytes.unwrap();
                let back = parse_message(&bytes);
                prop_assert_eq!(back.as_ref(), Ok(&m));
                prop_assert_eq!(back.unwrap().to_bytes().unwrap(), bytes);
            }
        }
    }
}
