//! One MSRP session endpoint, sans-IO (RFC 4975 §7): matches incoming requests
//! against our URI, answers them, reassembles messages, sends REPORTs when
//! asked, chunks and sends outgoing messages and tracks their transactions.
//!
//! Drive it with [`MsrpSession::handle_input`], [`MsrpSession::handle_timeout`],
//! then drain [`MsrpSession::poll_transmit`] and [`MsrpSession::poll_event`];
//! sleep until [`MsrpSession::poll_timeout`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::IdGenerator;
use super::chunking::{Chunker, Reassembler, ReassemblyOutcome};
use super::message::{
    ByteRange, ContinuationFlag, FailureReport, MsrpHeader, MsrpMessage, MsrpMethod, StartLine,
    Status, reason_phrase,
};
use super::parser::{MsrpParseError, MsrpParser, ParserConfig};
use super::uri::{MsrpPath, MsrpUri};

/// RFC 4975 §7.1: a sender waits 30 s for a transaction response.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Session parameters (mostly from the SDP offer/answer).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our URI (the `a=path` we advertised).
    pub local_uri: MsrpUri,
    /// The peer's `a=path`: To-Path of what we send.
    pub remote_path: MsrpPath,
    /// Body bytes per outgoing chunk.
    pub chunk_size: usize,
    /// Largest incoming message we reassemble (413 above).
    pub max_message_size: u64,
    /// Incoming messages in reassembly at once.
    pub max_pending_messages: usize,
    pub transaction_timeout: Duration,
    pub parser: ParserConfig,
    /// `Success-Report` on our SENDs (`None`: header left out, meaning no).
    pub success_report: Option<bool>,
    /// `Failure-Report` on our SENDs (`None`: left out, meaning yes).
    pub failure_report: Option<FailureReport>,
    /// `a=accept-types`; empty or `*` accepts everything, else 415.
    pub accept_types: Vec<String>,
}

impl SessionConfig {
    pub fn new(local_uri: MsrpUri, remote_path: MsrpPath) -> Self {
        SessionConfig {
            local_uri,
            remote_path,
            chunk_size: 2048,
            max_message_size: 16 * 1024 * 1024,
            max_pending_messages: 16,
            transaction_timeout: TRANSACTION_TIMEOUT,
            parser: ParserConfig::default(),
            success_report: None,
            failure_report: None,
            accept_types: Vec::new(),
        }
    }
}

/// What the session is fed.
#[derive(Debug, Clone)]
pub enum MsrpInput<'a> {
    /// Bytes read from the connection.
    Bytes(&'a [u8]),
    /// A frame parsed elsewhere (e.g. by a shared connection's parser).
    Frame(MsrpMessage),
}

/// What the session tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpEvent {
    /// A complete incoming message.
    MessageReceived {
        message_id: String,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// Bytes of an incoming message received so far.
    Progress {
        message_id: String,
        bytes: u64,
        total: Option<u64>,
    },
    /// Bytes of an outgoing message acknowledged so far.
    SendProgress {
        message_id: String,
        bytes: u64,
        total: u64,
    },
    /// Every chunk of an outgoing message got its 200 (or, with
    /// `Failure-Report: no`/`partial`, was handed to the transport).
    Delivered { message_id: String },
    /// An outgoing message failed: an error response, or 408 on timeout.
    SendFailed {
        message_id: String,
        code: u16,
        comment: Option<String>,
    },
    /// A REPORT about one of our messages.
    ReportReceived {
        message_id: String,
        success: bool,
        status: Status,
        byte_range: Option<ByteRange>,
    },
    /// The peer aborted an incoming message (`#`).
    MessageAborted { message_id: String },
    /// An empty SEND arrived (connection binding, RFC 4975 §5.4).
    EmptySendReceived { message_id: Option<String> },
    /// A framing error. When `error.is_fatal()` the driver closes the connection.
    StreamError { error: MsrpParseError },
}

#[derive(Debug)]
struct OutState {
    total: u64,
    acked: u64,
    outstanding: usize,
    all_sent: bool,
}

#[derive(Debug)]
struct PendingTsx {
    message_id: String,
    deadline: Instant,
    bytes: u64,
}

/// One MSRP session endpoint.
pub struct MsrpSession {
    config: SessionConfig,
    ids: Box<dyn IdGenerator + Send>,
    parser: MsrpParser,
    reassembler: Reassembler,
    /// Responses and REPORTs, sent before new chunks.
    urgent: VecDeque<Vec<u8>>,
    /// Messages with chunks left to send, served round-robin.
    queue: VecDeque<Chunker>,
    out: HashMap<String, OutState>,
    pending: HashMap<String, PendingTsx>,
    events: VecDeque<MsrpEvent>,
    now: Option<Instant>,
}

impl std::fmt::Debug for MsrpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsrpSession")
            .field("local_uri", &self.config.local_uri.to_string())
            .field("queued", &self.queue.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl MsrpSession {
    pub fn new(config: SessionConfig, ids: Box<dyn IdGenerator + Send>) -> Self {
        MsrpSession {
            parser: MsrpParser::new(config.parser),
            reassembler: Reassembler::new(config.max_message_size, config.max_pending_messages),
            config,
            ids,
            urgent: VecDeque::new(),
            queue: VecDeque::new(),
            out: HashMap::new(),
            pending: HashMap::new(),
            events: VecDeque::new(),
            now: None,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    fn local_path(&self) -> MsrpPath {
        MsrpPath::single(self.config.local_uri.clone())
    }

    /// Queues a message; returns its Message-ID.
    pub fn send_message(&mut self, now: Instant, content_type: &str, body: Vec<u8>) -> String {
        self.enqueue(now, Some(content_type.to_string()), body, Vec::new())
    }

    /// Queues a message whose chunks carry MIME headers besides Content-Type
    /// (`Content-Disposition`, `Content-Description`; RFC 4975 §9); returns
    /// its Message-ID.
    pub fn send_message_with_headers(
        &mut self,
        now: Instant,
        content_type: &str,
        mime_headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> String {
        self.enqueue(now, Some(content_type.to_string()), body, mime_headers)
    }

    /// Queues an empty SEND, which binds the connection to the session
    /// (RFC 4975 §5.4); returns its Message-ID.
    pub fn send_empty(&mut self, now: Instant) -> String {
        self.enqueue(now, None, Vec::new(), Vec::new())
    }

    fn enqueue(
        &mut self,
        now: Instant,
        content_type: Option<String>,
        body: Vec<u8>,
        mime_headers: Vec<(String, String)>,
    ) -> String {
        self.now = Some(now);
        let message_id = self.ids.next_id();
        self.out.insert(
            message_id.clone(),
            OutState {
                total: body.len() as u64,
                acked: 0,
                outstanding: 0,
                all_sent: false,
            },
        );
        let chunker = Chunker::new(
            self.config.remote_path.clone(),
            self.local_path(),
            message_id.clone(),
            content_type,
            body,
            self.config.chunk_size,
        )
        .with_reports(self.config.success_report, self.config.failure_report)
        .with_mime_headers(mime_headers);
        self.queue.push_back(chunker);
        message_id
    }

    /// Stops sending a queued message: a `#` chunk goes out if some of it
    /// was already sent (RFC 4975 §7.1.1).
    pub fn abort_message(&mut self, message_id: &str) {
        if let Some(i) = self.queue.iter().position(|c| c.message_id() == message_id)
            && let Some(mut c) = self.queue.remove(i)
        {
            if c.sent() > 0
                && let Some(mut m) = c.abort()
                && let Ok(b) = m.assign_transaction_id_and_serialize(self.ids.as_mut())
            {
                self.urgent.push_back(b);
            }
            self.fail(message_id, 0, Some("aborted".into()), false);
        }
    }

    /// Feeds bytes or a frame from the connection.
    pub fn handle_input(&mut self, now: Instant, input: MsrpInput<'_>) {
        self.now = Some(now);
        match input {
            MsrpInput::Frame(m) => self.handle_frame(now, m),
            MsrpInput::Bytes(b) => {
                self.parser.push(b);
                while let Some(r) = self.parser.next() {
                    match r {
                        Ok(m) => self.handle_frame(now, m),
                        Err(e) => self.handle_parse_error(e),
                    }
                }
            }
        }
    }

    fn handle_parse_error(&mut self, error: MsrpParseError) {
        // A bad but well-framed request gets 400 (413 when too big) and the
        // stream goes on; its paths are unknown, so answer on the session's.
        let answer = match &error {
            MsrpParseError::Malformed {
                transaction_id,
                is_request: true,
                ..
            } => Some((transaction_id.clone(), 400)),
            MsrpParseError::ChunkTooLarge {
                transaction_id,
                is_request: true,
                ..
            } => Some((transaction_id.clone(), 413)),
            _ => None,
        };
        if let Some((tid, code)) = answer {
            self.bad_request(&tid, code);
        }
        self.events.push_back(MsrpEvent::StreamError { error });
    }

    /// Answers a request whose own paths are unusable, on the session's paths.
    fn bad_request(&mut self, tid: &str, code: u16) {
        {
            let r = MsrpMessage {
                transaction_id: tid.to_string(),
                start: StartLine::Response {
                    code,
                    comment: Some(reason_phrase(code).into()),
                },
                headers: vec![
                    MsrpHeader::ToPath(self.config.remote_path.clone()),
                    MsrpHeader::FromPath(self.local_path()),
                ],
                body: None,
                flag: ContinuationFlag::Complete,
            };
            self.push_urgent(&r);
        }
    }

    fn push_urgent(&mut self, m: &MsrpMessage) {
        if let Ok(b) = m.to_bytes() {
            self.urgent.push_back(b);
        }
    }

    fn respond(&mut self, req: &MsrpMessage, code: u16) {
        if let Some(r) = req.response(code, None) {
            self.push_urgent(&r);
        }
    }

    fn accepts(&self, content_type: &str) -> bool {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        self.config.accept_types.is_empty()
            || self.config.accept_types.iter().any(|a| {
                let a = a.to_ascii_lowercase();
                a == "*"
                    || a == ct
                    || a.strip_suffix("/*")
                        .is_some_and(|p| ct.split('/').next() == Some(p))
            })
    }

    fn handle_frame(&mut self, now: Instant, m: MsrpMessage) {
        match m.start.clone() {
            StartLine::Response { code, comment } => {
                self.handle_response(&m.transaction_id, code, comment)
            }
            StartLine::Request(method) => {
                if m.check_mandatory().is_err() {
                    // RFC 4975 §7.3: a request missing mandatory headers gets 400
                    // (a REPORT gets nothing, and without paths we answer on ours).
                    if method != MsrpMethod::Report {
                        self.bad_request(&m.transaction_id, 400);
                    }
                    return;
                }
                // RFC 4975 §7.3: the first To-Path URI must be ours, else 481.
                let ours = m
                    .to_path()
                    .and_then(MsrpPath::first)
                    .is_some_and(|u| *u == self.config.local_uri);
                if !ours {
                    self.respond(&m, 481);
                    return;
                }
                match method {
                    MsrpMethod::Send => self.handle_send(now, m),
                    MsrpMethod::Report => self.handle_report(&m),
                    // RFC 4975 §12: unknown methods get 501.
                    _ => self.respond(&m, 501),
                }
            }
        }
    }

    fn handle_send(&mut self, _now: Instant, m: MsrpMessage) {
        if m.body.is_none() {
            self.respond(&m, 200);
            self.events.push_back(MsrpEvent::EmptySendReceived {
                message_id: m.message_id().map(str::to_string),
            });
            return;
        }
        if let Some(ct) = m.content_type()
            && !self.accepts(ct)
        {
            self.respond(&m, 415);
            return;
        }
        match self.reassembler.feed(&m) {
            Err(e) => {
                let code = e.response_code();
                self.respond(&m, code);
            }
            Ok(outcome) => {
                self.respond(&m, 200);
                match outcome {
                    ReassemblyOutcome::Progress {
                        message_id,
                        bytes,
                        total,
                    } => {
                        self.events.push_back(MsrpEvent::Progress {
                            message_id,
                            bytes,
                            total,
                        });
                    }
                    ReassemblyOutcome::Complete {
                        message_id,
                        content_type,
                        body,
                    } => {
                        // RFC 4975 §7.1.2: Success-Report yes → REPORT 200
                        // covering the whole message.
                        if m.success_report() {
                            let total = body.len() as u64;
                            let range = ByteRange {
                                start: 1,
                                end: Some(total),
                                total: Some(total),
                            };
                            self.send_report(&m, Status::new(200, Some("OK")), range);
                        }
                        self.events.push_back(MsrpEvent::MessageReceived {
                            message_id,
                            content_type,
                            body,
                        });
                    }
                    ReassemblyOutcome::Aborted { message_id, .. } => {
                        self.events
                            .push_back(MsrpEvent::MessageAborted { message_id });
                    }
                }
            }
        }
    }

    fn send_report(&mut self, about: &MsrpMessage, status: Status, range: ByteRange) {
        if let Some(mut r) = about.report(String::new(), status, range)
            && let Ok(b) = r.assign_transaction_id_and_serialize(self.ids.as_mut())
        {
            self.urgent.push_back(b);
        }
    }

    fn handle_report(&mut self, m: &MsrpMessage) {
        // REPORTs never get responses (RFC 4975 §7.1.2).
        let (Some(id), Some(status)) = (m.message_id(), m.status()) else {
            return;
        };
        self.events.push_back(MsrpEvent::ReportReceived {
            message_id: id.to_string(),
            success: status.code == 200,
            status: status.clone(),
            byte_range: m.byte_range(),
        });
    }

    fn handle_response(&mut self, tid: &str, code: u16, comment: Option<String>) {
        let Some(p) = self.pending.remove(tid) else {
            return; // late or unknown: ignore
        };
        if code == 200 {
            let mut done = false;
            if let Some(s) = self.out.get_mut(&p.message_id) {
                s.outstanding = s.outstanding.saturating_sub(1);
                s.acked += p.bytes;
                self.events.push_back(MsrpEvent::SendProgress {
                    message_id: p.message_id.clone(),
                    bytes: s.acked,
                    total: s.total,
                });
                done = s.all_sent && s.outstanding == 0;
            }
            if done {
                self.out.remove(&p.message_id);
                self.events.push_back(MsrpEvent::Delivered {
                    message_id: p.message_id,
                });
            }
        } else {
            self.fail(&p.message_id, code, comment, true);
        }
    }

    /// Stops a message: drops its queue entry and open transactions.
    fn fail(&mut self, message_id: &str, code: u16, comment: Option<String>, event: bool) {
        self.queue.retain(|c| c.message_id() != message_id);
        self.pending.retain(|_, p| p.message_id != message_id);
        if self.out.remove(message_id).is_some() && event {
            self.events.push_back(MsrpEvent::SendFailed {
                message_id: message_id.to_string(),
                code,
                comment,
            });
        }
    }

    /// Expires transactions whose 200 did not come in time (408).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        let mut expired: Vec<String> = self
            .pending
            .values()
            .filter(|p| p.deadline <= now)
            .map(|p| p.message_id.clone())
            .collect();
        expired.sort();
        expired.dedup();
        for id in expired {
            // RFC 4975 §7.1: no response in 30 s counts as a 408.
            self.fail(&id, 408, Some(reason_phrase(408).into()), true);
        }
    }

    /// The next bytes to write: responses and REPORTs first, then one chunk
    /// of the next queued message (round-robin, so messages interleave).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(b) = self.urgent.pop_front() {
            return Some(b);
        }
        while let Some(mut chunker) = self.queue.pop_front() {
            let message_id = chunker.message_id().to_string();
            let Some(frame) = chunker.next_frame(self.ids.as_mut()) else {
                continue;
            };
            let (m, bytes) = match frame {
                Ok(x) => x,
                Err(e) => {
                    self.fail(&message_id, 0, Some(e.to_string()), true);
                    continue;
                }
            };
            let done = chunker.is_done();
            if !done {
                self.queue.push_back(chunker);
            }
            let wants_response = m.failure_report() == FailureReport::Yes;
            let chunk_bytes = m.body.as_ref().map_or(0, Vec::len) as u64;
            // `now` was set by `send_message`, which queued this chunk.
            if wants_response && let Some(now) = self.now {
                self.pending.insert(
                    m.transaction_id.clone(),
                    PendingTsx {
                        message_id: message_id.clone(),
                        deadline: now
                            .checked_add(self.config.transaction_timeout)
                            .unwrap_or(now),
                        bytes: chunk_bytes,
                    },
                );
            }
            if let Some(s) = self.out.get_mut(&message_id) {
                if wants_response {
                    s.outstanding += 1;
                }
                s.all_sent = done;
                if done && !wants_response {
                    self.out.remove(&message_id);
                    self.events.push_back(MsrpEvent::Delivered { message_id });
                }
            }
            return Some(bytes);
        }
        None
    }

    pub fn poll_event(&mut self) -> Option<MsrpEvent> {
        self.events.pop_front()
    }

    /// The earliest transaction deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Whether the byte stream could not be framed (a fatal
    /// [`MsrpEvent::StreamError`] was reported): the driver closes the
    /// connection; further bytes are ignored.
    pub fn is_stream_broken(&self) -> bool {
        self.parser.is_poisoned()
    }

    /// Outgoing messages not yet delivered or failed.
    pub fn outgoing(&self) -> usize {
        self.out.len()
    }
}
