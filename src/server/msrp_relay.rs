//! The B2BUA's MSRP relay, sans-IO (seed 001 8.3.2.1.1, RFC 4975).
//!
//! Per call: one leg towards the originator and one per device. Each leg
//! is its own MSRP session with a local URI of ours (a random session id)
//! and the remote path from that leg's SDP. Connections are the driver's
//! (by [`ConnRef`]); the relay frames their bytes, matches each request to
//! a leg by the first To-Path URI, answers every SEND chunk itself and
//! rewrites To-Path / From-Path on what it forwards (body, Message-ID,
//! Byte-Range and Content-Type untouched).
//!
//! While a call is an *exploder* every SEND from the originator goes to
//! every device leg; the first chat message or isComposing from a device
//! raises [`RelayEvent::DeviceActivity`] and the role tears the siblings
//! down ([`MsrpRelay::release_leg`]). The success REPORT a sender asks for
//! is the relay's own (it is the endpoint of the sender's session); REPORTs
//! from the far side are consumed.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::proto::bodies::cpim::CpimMessage;
use crate::proto::msrp::{
    ByteRange, ContinuationFlag, MsrpHeader, MsrpMessage, MsrpMethod, MsrpParseError, MsrpParser,
    MsrpPath, MsrpUri, ParserConfig, Reassembler, ReassemblyOutcome, Status,
};

/// A driver connection id.
pub type ConnRef = u64;
/// A leg of the relay.
pub type LegId = u64;
/// A call of the relay (the role's call id).
pub type RelayCallId = u64;

/// The biggest message the relay reassembles for history.
pub const MAX_STORED_MESSAGE: u64 = 16 * 1024 * 1024;
/// isComposing (RFC 3994).
pub const IS_COMPOSING: &str = "application/im-iscomposing+xml";

/// Which side of the call a leg faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegRole {
    Originator,
    Device,
    /// A conference participant (the focus's MSRP switch, seed 003
    /// 7.2.2.6): its messages go to every other participant, or to one
    /// when the CPIM To names it (private message, seed 003 7.1.3.2.2).
    Participant,
}

/// What the driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayInput {
    /// A peer connected to our port; `tls`: to the `msrps:` one, handshake done.
    Accepted {
        conn: ConnRef,
        tls: bool,
    },
    /// The connection asked for with [`RelayOutput::Connect`] is up.
    Connected {
        leg: LegId,
        conn: ConnRef,
    },
    /// It could not be opened.
    ConnectFailed {
        leg: LegId,
    },
    Data {
        conn: ConnRef,
        bytes: Vec<u8>,
    },
    Closed {
        conn: ConnRef,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayOutput {
    /// Open a TCP connection for `leg` (we are its active side, RFC 6135).
    Connect {
        leg: LegId,
        addr: SocketAddr,
    },
    Send {
        conn: ConnRef,
        bytes: Vec<u8>,
    },
    Close {
        conn: ConnRef,
    },
}

/// What the relay tells the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// Seed 001 8.3.2.1.1 step 4.a: a device sent a chat message or
    /// isComposing while the call was an exploder.
    DeviceActivity { call: RelayCallId, leg: LegId },
    /// A whole chat message arrived on `leg` (for history).
    ChatMessage {
        call: RelayCallId,
        leg: LegId,
        role: LegRole,
        message_id: String,
        content_type: String,
        body: Vec<u8>,
    },
    /// The connection of `leg` failed or closed.
    LegDisconnected { call: RelayCallId, leg: LegId },
}

#[derive(Debug)]
struct Leg {
    call: RelayCallId,
    role: LegRole,
    local: MsrpUri,
    remote: MsrpPath,
    conn: Option<ConnRef>,
    /// SENDs waiting for the connection (RFC 4975 §5.4: nothing before the bind).
    queued: Vec<MsrpMessage>,
    reassembler: Reassembler,
    /// The participant's address, for private messages (CPIM To).
    address: Option<String>,
    /// Message-ID → the one leg a private message goes to (later chunks).
    private: HashMap<String, LegId>,
    /// Released while relayed SENDs still waited for its connection: kept
    /// only to deliver them (see [`MsrpRelay::release_leg`]).
    lingering: bool,
}

/// Released legs kept at most to deliver what was queued for them.
const MAX_LINGERING: usize = 1024;

#[derive(Debug)]
struct Call {
    legs: Vec<LegId>,
    exploder: bool,
    /// Chunks are passed on as they come, never reassembled (Large
    /// Message, seed 003 9.x: no chat activity, no history, no copy of the
    /// whole message in memory).
    streaming: bool,
}

#[derive(Debug, Default)]
struct Conn {
    parser: MsrpParser,
    leg: Option<LegId>,
    /// Accepted on the TLS listener (an `msrps:` leg binds only such).
    tls: bool,
}

/// The relay. See the module docs.
#[derive(Debug)]
pub struct MsrpRelay {
    calls: HashMap<RelayCallId, Call>,
    legs: HashMap<LegId, Leg>,
    by_session: HashMap<String, LegId>,
    conns: HashMap<ConnRef, Conn>,
    next_leg: LegId,
    next_tid: u64,
    tid_prefix: String,
    /// How many released legs still wait to deliver their queue.
    lingering: usize,
    outputs: VecDeque<RelayOutput>,
    events: VecDeque<RelayEvent>,
}

impl MsrpRelay {
    /// `tid_prefix` keeps transaction ids apart between runs (from the
    /// injected id generator).
    pub fn new(tid_prefix: impl Into<String>) -> Self {
        MsrpRelay {
            calls: HashMap::new(),
            legs: HashMap::new(),
            by_session: HashMap::new(),
            conns: HashMap::new(),
            next_leg: 1,
            next_tid: 0,
            tid_prefix: tid_prefix.into(),
            lingering: 0,
            outputs: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Adds a leg to `call` (created on first use, an exploder until
    /// [`Self::set_plain_relay`]). `local` must carry a session id.
    /// `connect_to`: we are the active side and open the connection there.
    pub fn add_leg(
        &mut self,
        call: RelayCallId,
        role: LegRole,
        local: MsrpUri,
        remote: MsrpPath,
        connect_to: Option<SocketAddr>,
    ) -> LegId {
        let id = self.next_leg;
        self.next_leg += 1;
        if let Some(sid) = &local.session_id {
            self.by_session.insert(sid.clone(), id);
        }
        self.legs.insert(
            id,
            Leg {
                call,
                role,
                local,
                remote,
                conn: None,
                queued: Vec::new(),
                lingering: false,
                reassembler: Reassembler::new(MAX_STORED_MESSAGE, 8),
                address: None,
                private: HashMap::new(),
            },
        );
        self.calls
            .entry(call)
            .or_insert_with(|| Call {
                legs: Vec::new(),
                exploder: true,
                streaming: false,
            })
            .legs
            .push(id);
        if let Some(addr) = connect_to {
            self.outputs
                .push_back(RelayOutput::Connect { leg: id, addr });
        }
        id
    }

    /// Leg ids start at `first` (keeps two relays of one server apart).
    pub fn with_first_leg(mut self, first: LegId) -> Self {
        self.next_leg = first;
        self
    }

    /// The user address of a [`LegRole::Participant`] leg (private messages).
    pub fn set_leg_address(&mut self, leg: LegId, address: &str) {
        if let Some(l) = self.legs.get_mut(&leg) {
            l.address = Some(address.to_ascii_lowercase());
        }
    }

    /// From now on the call is a plain relay (one device left).
    pub fn set_plain_relay(&mut self, call: RelayCallId) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.exploder = false;
        }
    }

    /// From now on `call`'s chunks are relayed one by one and never
    /// reassembled (a Large Message session).
    pub fn set_streaming(&mut self, call: RelayCallId) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.streaming = true;
        }
    }

    /// Seed 001 8.3.2.1.1 step 4.a.iii: drops a leg and closes its connection.
    ///
    /// A leg still waiting for its connection with relayed SENDs queued is
    /// kept until they are delivered: the sender may hang up as soon as we
    /// acknowledged its last chunk (we are its session's end, seed 003
    /// 9.4.2), before the recipient's connection is even up. It leaves the
    /// call at once, is flushed and closed when its connection binds, and is
    /// dropped if that connection fails ([`MAX_LINGERING`] at most).
    pub fn release_leg(&mut self, leg: LegId) {
        if self.lingering < MAX_LINGERING
            && let Some(l) = self.legs.get_mut(&leg)
            && l.conn.is_none()
            && !l.queued.is_empty()
            && !l.lingering
        {
            l.lingering = true;
            self.lingering += 1;
            let call = l.call;
            if let Some(c) = self.calls.get_mut(&call) {
                c.legs.retain(|x| *x != leg);
            }
            return;
        }
        self.drop_leg(leg);
    }

    fn drop_leg(&mut self, leg: LegId) {
        let Some(l) = self.legs.remove(&leg) else {
            return;
        };
        if l.lingering {
            self.lingering = self.lingering.saturating_sub(1);
        }
        if let Some(sid) = &l.local.session_id {
            self.by_session.remove(sid);
        }
        if let Some(c) = self.calls.get_mut(&l.call) {
            c.legs.retain(|x| *x != leg);
        }
        if let Some(conn) = l.conn {
            self.conns.remove(&conn);
            self.outputs.push_back(RelayOutput::Close { conn });
        }
    }

    /// Drops a whole call.
    pub fn remove_call(&mut self, call: RelayCallId) {
        if let Some(c) = self.calls.remove(&call) {
            for leg in c.legs {
                self.release_leg(leg);
            }
        }
    }

    /// The legs of `call`.
    pub fn legs_of(&self, call: RelayCallId) -> Vec<LegId> {
        self.calls
            .get(&call)
            .map(|c| c.legs.clone())
            .unwrap_or_default()
    }

    /// Whether `leg` has its connection.
    pub fn is_connected(&self, leg: LegId) -> bool {
        self.legs.get(&leg).is_some_and(|l| l.conn.is_some())
    }

    pub fn handle_input(&mut self, input: RelayInput) {
        match input {
            RelayInput::Accepted { conn, tls } => {
                self.conns.insert(
                    conn,
                    Conn {
                        tls,
                        ..Conn::default()
                    },
                );
            }
            RelayInput::Connected { leg, conn } => {
                let Some(l) = self.legs.get_mut(&leg) else {
                    self.outputs.push_back(RelayOutput::Close { conn });
                    return;
                };
                l.conn = Some(conn);
                self.conns.insert(
                    conn,
                    Conn {
                        parser: MsrpParser::new(ParserConfig::default()),
                        leg: Some(leg),
                        tls: false,
                    },
                );
                // RFC 4975 §5.4: the active side binds the connection with
                // a SEND (empty here) before anything else.
                let bind = MsrpMessage::request(
                    MsrpMethod::Send,
                    String::new(),
                    l.remote.clone(),
                    MsrpPath::single(l.local.clone()),
                )
                .with_header(MsrpHeader::MessageId(format!("bind{leg}")));
                self.send_on(leg, bind);
                self.flush(leg);
            }
            RelayInput::ConnectFailed { leg } => {
                if self.legs.get(&leg).is_some_and(|l| l.lingering) {
                    self.drop_leg(leg);
                } else if let Some(l) = self.legs.get(&leg) {
                    self.events
                        .push_back(RelayEvent::LegDisconnected { call: l.call, leg });
                }
            }
            RelayInput::Data { conn, bytes } => self.on_data(conn, &bytes),
            RelayInput::Closed { conn } => {
                if let Some(c) = self.conns.remove(&conn)
                    && let Some(leg) = c.leg
                    && let Some(l) = self.legs.get_mut(&leg)
                {
                    l.conn = None;
                    self.events
                        .push_back(RelayEvent::LegDisconnected { call: l.call, leg });
                }
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<RelayOutput> {
        self.outputs.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    fn tid(&mut self) -> String {
        self.next_tid += 1;
        format!("{}{:06}", self.tid_prefix, self.next_tid)
    }

    fn on_data(&mut self, conn: ConnRef, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.parser.push(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(next) = c.parser.next() else { return };
            match next {
                Ok(frame) => self.on_frame(conn, frame),
                Err(e) if e.is_fatal() => {
                    // Input that cannot be framed: this connection only.
                    tracing::info!(conn, error = %e, "MSRP stream unframeable, closing");
                    self.close_conn(conn);
                    return;
                }
                Err(e) => self.on_bad_frame(conn, &e),
            }
        }
    }

    fn close_conn(&mut self, conn: ConnRef) {
        if let Some(c) = self.conns.remove(&conn)
            && let Some(leg) = c.leg
            && let Some(l) = self.legs.get_mut(&leg)
        {
            l.conn = None;
            self.events
                .push_back(RelayEvent::LegDisconnected { call: l.call, leg });
        }
        self.outputs.push_back(RelayOutput::Close { conn });
    }

    /// RFC 4975 §7.3: a well-framed request with bad headers gets 400
    /// (413 for an oversize chunk); the stream goes on.
    fn on_bad_frame(&mut self, conn: ConnRef, e: &MsrpParseError) {
        let (tid, is_request) = match e {
            MsrpParseError::Malformed {
                transaction_id,
                is_request,
                ..
            } => (transaction_id.clone(), *is_request),
            MsrpParseError::ChunkTooLarge {
                transaction_id,
                is_request,
                ..
            } => (transaction_id.clone(), *is_request),
            _ => return,
        };
        if !is_request {
            return;
        }
        let code = if matches!(e, MsrpParseError::ChunkTooLarge { .. }) {
            413
        } else {
            400
        };
        let paths = self
            .conns
            .get(&conn)
            .and_then(|c| c.leg)
            .and_then(|l| self.legs.get(&l))
            .map(|l| (l.remote.first().cloned(), l.local.clone()));
        let mut text = format!(
            "MSRP {tid} {code} {}\r\n",
            crate::proto::msrp::reason_phrase(code)
        );
        if let Some((Some(to), from)) = paths {
            text.push_str(&format!("To-Path: {to}\r\nFrom-Path: {from}\r\n"));
        }
        text.push_str(&format!("-------{tid}$\r\n"));
        self.outputs.push_back(RelayOutput::Send {
            conn,
            bytes: text.into_bytes(),
        });
    }

    fn respond(&mut self, conn: ConnRef, req: &MsrpMessage, code: u16) {
        if let Some(r) = req.response(code, None)
            && let Ok(bytes) = r.to_bytes()
        {
            self.outputs.push_back(RelayOutput::Send { conn, bytes });
        }
    }

    fn on_frame(&mut self, conn: ConnRef, frame: MsrpMessage) {
        let Some(method) = frame.method().cloned() else {
            // A response to something we forwarded: hop by hop, consumed.
            return;
        };
        if frame.check_mandatory().is_err() {
            let r = frame.response_unchecked(400, None);
            if let Ok(bytes) = r.to_bytes() {
                self.outputs.push_back(RelayOutput::Send { conn, bytes });
            }
            return;
        }
        // RFC 4975 §7.3.1: the first To-Path URI must be ours, by session.
        let leg = frame
            .to_path()
            .and_then(MsrpPath::first)
            .and_then(|u| u.session_id.as_deref())
            .and_then(|sid| self.by_session.get(sid).copied());
        let Some(leg) = leg else {
            self.respond(conn, &frame, 481);
            return;
        };
        let bound = self.conns.get(&conn).and_then(|c| c.leg);
        match bound {
            None => {
                // A passive leg is bound by the first request on it, and only
                // by the peer negotiated in SDP: its From-Path must end with
                // the remote path (RFC 4975 §7.3.1, §14.1: knowing a session
                // id alone does not let a connection in).
                let expected = self.legs.get(&leg).and_then(|l| l.remote.last());
                let from = frame.from_path().and_then(MsrpPath::last);
                if let Some(expected) = expected
                    && from != Some(expected)
                {
                    tracing::warn!(
                        conn,
                        from = ?from.map(ToString::to_string),
                        "MSRP request for a session from another peer refused"
                    );
                    self.respond(conn, &frame, 403);
                    return;
                }
                // RFC 4975 §14.1: an msrps: session is reached over TLS only.
                let secure = self.legs.get(&leg).is_some_and(|l| l.local.secure);
                if secure && !self.conns.get(&conn).is_some_and(|c| c.tls) {
                    tracing::warn!(conn, "msrps: session addressed over a plain connection");
                    self.respond(conn, &frame, 403);
                    return;
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.leg = Some(leg);
                }
                if let Some(l) = self.legs.get_mut(&leg)
                    && let Some(old) = l.conn.replace(conn)
                    && old != conn
                {
                    self.conns.remove(&old);
                    self.outputs.push_back(RelayOutput::Close { conn: old });
                }
                self.flush(leg);
            }
            Some(b) if b != leg => {
                // RFC 4975 §7.3.1: a session not bound to this connection.
                self.respond(conn, &frame, 481);
                return;
            }
            Some(_) => {}
        }
        match method {
            MsrpMethod::Send => self.on_send(conn, leg, frame),
            MsrpMethod::Report => {}
            _ => self.respond(conn, &frame, 501),
        }
    }

    fn on_send(&mut self, conn: ConnRef, leg: LegId, frame: MsrpMessage) {
        // Seed 001 8.3.2.1.1 "Upon receiving an MSRP SEND" step 1: answer each chunk.
        self.respond(conn, &frame, 200);
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let (call, role) = (l.call, l.role);
        if frame.body.is_none() {
            // An empty SEND binds the connection (RFC 4975 §5.4): not relayed.
            return;
        }
        let content_type = frame.content_type().unwrap_or_default().to_string();
        // The success REPORT is ours: we are the end of this session.
        if frame.success_report()
            && frame.flag == ContinuationFlag::Complete
            && let Some(range) = frame.byte_range()
            && let Some(end) = range.end.or(frame
                .body
                .as_ref()
                .map(|b| range.start.saturating_add(b.len() as u64).saturating_sub(1)))
        {
            let total = range.total.unwrap_or(end);
            let tid = self.tid();
            if let Some(r) = frame.report(
                tid,
                Status::new(200, None),
                ByteRange {
                    start: 1,
                    end: Some(total),
                    total: Some(total),
                },
            ) && let Ok(bytes) = r.to_bytes()
            {
                self.outputs.push_back(RelayOutput::Send { conn, bytes });
            }
        }
        // Whole messages, for activity detection and history.
        let streaming = self.calls.get(&call).is_some_and(|c| c.streaming);
        if !streaming
            && let Some(l) = self.legs.get_mut(&leg)
            && let Ok(ReassemblyOutcome::Complete {
                message_id,
                content_type: ct,
                body,
            }) = l.reassembler.feed(&frame)
        {
            let ct = ct.unwrap_or(content_type.clone());
            let kind = classify(&ct, &body);
            let exploder = self.calls.get(&call).is_some_and(|c| c.exploder);
            if role == LegRole::Device && exploder && kind != Activity::None {
                // Seed 001 8.3.2.1.1 step 4.a
                self.events
                    .push_back(RelayEvent::DeviceActivity { call, leg });
            }
            if kind == Activity::Chat {
                self.events.push_back(RelayEvent::ChatMessage {
                    call,
                    leg,
                    role,
                    message_id,
                    content_type: ct,
                    body,
                });
            }
        }
        // Step 3 (from the originator: to every device) and 4.b (from a
        // device: to the originator).
        let private = if role == LegRole::Participant {
            self.private_target(call, leg, &frame)
        } else {
            None
        };
        let targets: Vec<LegId> = match private {
            // Seed 003 7.1.3.2.2: a private message reaches its addressee only.
            Some(t) => vec![t],
            None => self
                .calls
                .get(&call)
                .map(|c| {
                    c.legs
                        .iter()
                        .copied()
                        .filter(|x| *x != leg)
                        .filter(|x| {
                            self.legs.get(x).is_some_and(|o| match role {
                                // seed 003 7.2.2.6: to every other participant
                                LegRole::Participant => o.role == LegRole::Participant,
                                _ => role == LegRole::Originator || o.role == LegRole::Originator,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        for target in targets {
            let Some(t) = self.legs.get(&target) else {
                continue;
            };
            let out = rewrite(&frame, &t.remote, &t.local);
            self.send_on(target, out);
        }
    }

    /// The one participant a CPIM message from `leg` is addressed to, when
    /// its To names a participant other than the sender (read on the first
    /// chunk, remembered by Message-ID for the later ones). A first chunk
    /// that ends before the CPIM To line is treated as a group message.
    fn private_target(
        &mut self,
        call: RelayCallId,
        leg: LegId,
        frame: &MsrpMessage,
    ) -> Option<LegId> {
        let mid = frame.message_id()?.to_string();
        if let Some(t) = self
            .legs
            .get(&leg)
            .and_then(|l| l.private.get(&mid))
            .copied()
        {
            if frame.flag != ContinuationFlag::Continuation
                && let Some(l) = self.legs.get_mut(&leg)
            {
                l.private.remove(&mid);
            }
            return Some(t);
        }
        let first = frame.byte_range().is_none_or(|r| r.start == 1);
        let ct = frame
            .content_type()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !first || !ct.starts_with("message/cpim") {
            return None;
        }
        let to = cpim_to(frame.body.as_deref()?)?;
        let target = self.calls.get(&call)?.legs.iter().copied().find(|x| {
            *x != leg
                && self
                    .legs
                    .get(x)
                    .is_some_and(|o| o.address.as_deref() == Some(to.as_str()))
        })?;
        if frame.flag == ContinuationFlag::Continuation
            && let Some(l) = self.legs.get_mut(&leg)
        {
            l.private.insert(mid, target);
        }
        Some(target)
    }

    /// Sends on the leg's connection or queues until it is bound.
    fn send_on(&mut self, leg: LegId, mut msg: MsrpMessage) {
        let tid = self.tid();
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        match l.conn {
            Some(conn) => {
                msg.transaction_id = tid;
                if let Ok(bytes) = msg.to_bytes() {
                    self.outputs.push_back(RelayOutput::Send { conn, bytes });
                }
            }
            None => l.queued.push(msg),
        }
    }

    fn flush(&mut self, leg: LegId) {
        let queued = match self.legs.get_mut(&leg) {
            Some(l) if l.conn.is_some() => std::mem::take(&mut l.queued),
            _ => return,
        };
        for m in queued {
            self.send_on(leg, m);
        }
        // A released leg has delivered what it waited for: now it goes.
        if self.legs.get(&leg).is_some_and(|l| l.lingering) {
            self.drop_leg(leg);
        }
    }
}

/// The address in the CPIM `To:` header (RFC 3862 §3.2), lower-cased.
fn cpim_to(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body.get(..body.len().min(4096))?);
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("To:") {
            let v = v.trim();
            let uri = match (v.find('<'), v.rfind('>')) {
                (Some(a), Some(b)) if a < b => v.get(a + 1..b)?,
                _ => v,
            };
            return Some(uri.trim().to_ascii_lowercase());
        }
    }
    None
}

/// A frame for another leg: To-Path and From-Path of that leg, the rest as is
/// (seed 001 8.3.2.1.1 step 3.a/3.b).
fn rewrite(frame: &MsrpMessage, to: &MsrpPath, from: &MsrpUri) -> MsrpMessage {
    let mut out = frame.clone();
    for h in &mut out.headers {
        match h {
            MsrpHeader::ToPath(p) => *p = to.clone(),
            MsrpHeader::FromPath(p) => *p = MsrpPath::single(from.clone()),
            _ => {}
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    None,
    Chat,
    Composing,
}

/// Seed 001 8.3.2.1.1 step 4.a: a CPM Chat Message (CPIM or text) or an
/// isComposing notification (bare or inside CPIM).
fn classify(content_type: &str, body: &[u8]) -> Activity {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        IS_COMPOSING => Activity::Composing,
        "message/cpim" => match CpimMessage::parse(body) {
            Ok(c)
                if c.content_type()
                    .is_some_and(|t| t.to_ascii_lowercase().starts_with(IS_COMPOSING)) =>
            {
                Activity::Composing
            }
            _ => Activity::Chat,
        },
        t if t.starts_with("text/") => Activity::Chat,
        _ => Activity::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msrp::parse_message;

    fn uri(port: u16, sid: &str) -> MsrpUri {
        MsrpUri::new("127.0.0.1", port, sid)
    }

    fn sends(relay: &mut MsrpRelay) -> Vec<(ConnRef, MsrpMessage)> {
        let mut out = Vec::new();
        while let Some(o) = relay.poll_output() {
            if let RelayOutput::Send { conn, bytes } = o {
                out.push((conn, parse_message(&bytes).expect("relay output parses")));
            }
        }
        out
    }

    fn chat(to: &MsrpUri, from: &MsrpUri, tid: &str, mid: &str, text: &str) -> Vec<u8> {
        let cpim = format!(
            "From: <sip:alice@isc.local>\r\nTo: <sip:bob@isc.local>\r\n\r\nContent-Type: text/plain\r\n\r\n{text}"
        );
        MsrpMessage::request(
            MsrpMethod::Send,
            tid,
            MsrpPath::single(to.clone()),
            MsrpPath::single(from.clone()),
        )
        .with_header(MsrpHeader::MessageId(mid.into()))
        .with_header(MsrpHeader::ByteRange(ByteRange {
            start: 1,
            end: Some(cpim.len() as u64),
            total: Some(cpim.len() as u64),
        }))
        .with_body("message/cpim", cpim.into_bytes())
        .to_bytes()
        .unwrap()
    }

    /// Alice's leg (passive, conn 1) and two device legs (active, conns 2, 3).
    fn setup() -> (MsrpRelay, [LegId; 3], MsrpUri) {
        let mut r = MsrpRelay::new("t");
        let alice = uri(4000, "alicesess");
        let a = r.add_leg(
            7,
            LegRole::Originator,
            uri(9000, "srvA"),
            MsrpPath::single(alice.clone()),
            None,
        );
        let d1 = r.add_leg(
            7,
            LegRole::Device,
            uri(9000, "srvD1"),
            MsrpPath::single(uri(5001, "dev1")),
            Some("127.0.0.1:5001".parse().unwrap()),
        );
        let d2 = r.add_leg(
            7,
            LegRole::Device,
            uri(9000, "srvD2"),
            MsrpPath::single(uri(5002, "dev2")),
            Some("127.0.0.1:5002".parse().unwrap()),
        );
        let connects: Vec<_> = std::iter::from_fn(|| r.poll_output()).collect();
        assert_eq!(connects.len(), 2);
        (r, [a, d1, d2], alice)
    }

    /// Seed 003 7.2.2.6 / 7.1.3.2.2: participants get every other's
    /// message; a private one (CPIM To = a participant), in two chunks,
    /// reaches that participant only.
    #[test]
    fn conference_switch_sends_to_all_others_and_private_to_one() {
        let mut r = MsrpRelay::new("t").with_first_leg(100);
        let mut legs = Vec::new();
        for (i, who) in ["alice", "bob", "carol"].iter().enumerate() {
            let port = 5000 + i as u16;
            let leg = r.add_leg(
                9,
                LegRole::Participant,
                uri(9000, &format!("focus{who}")),
                MsrpPath::single(uri(port, who)),
                Some(format!("127.0.0.1:{port}").parse().unwrap()),
            );
            assert!(leg >= 100);
            r.set_leg_address(leg, &format!("sip:{who}@isc.local"));
            r.handle_input(RelayInput::Connected {
                leg,
                conn: i as u64 + 1,
            });
            legs.push(leg);
        }
        let _ = sends(&mut r);
        // alice → all: bob (conn 2) and carol (conn 3), not alice.
        let to_all = chat(
            &uri(9000, "focusalice"),
            &uri(5000, "alice"),
            "x1",
            "m1",
            "hi",
        );
        let to_all = String::from_utf8(to_all)
            .unwrap()
            .replace("To: <sip:bob@isc.local>", "To: <sip:conf-1@isc.local>");
        r.handle_input(RelayInput::Data {
            conn: 1,
            bytes: to_all.into_bytes(),
        });
        let mut got: Vec<ConnRef> = sends(&mut r)
            .into_iter()
            .filter(|(_, m)| m.is_request())
            .map(|(c, _)| c)
            .collect();
        got.sort();
        assert_eq!(got, vec![2, 3]);
        // alice → bob privately, in two chunks.
        let cpim = "From: <sip:alice@isc.local>\r\nTo: <sip:bob@isc.local>\r\n\r\nContent-Type: text/plain\r\n\r\nsecret";
        let total = cpim.len() as u64;
        // The first chunk holds the CPIM To (chunks are KiB in practice).
        let (a, b) = cpim.split_at(60);
        for (tid, start, part, flag) in [
            ("p1", 1u64, a, ContinuationFlag::Continuation),
            ("p2", 61, b, ContinuationFlag::Complete),
        ] {
            let mut m = MsrpMessage::request(
                MsrpMethod::Send,
                tid,
                MsrpPath::single(uri(9000, "focusalice")),
                MsrpPath::single(uri(5000, "alice")),
            )
            .with_header(MsrpHeader::MessageId("pm".into()))
            .with_header(MsrpHeader::ByteRange(ByteRange {
                start,
                end: Some(start + part.len() as u64 - 1),
                total: Some(total),
            }))
            .with_body("message/cpim", part.as_bytes().to_vec());
            m.flag = flag;
            r.handle_input(RelayInput::Data {
                conn: 1,
                bytes: m.to_bytes().unwrap(),
            });
            let to: Vec<ConnRef> = sends(&mut r)
                .into_iter()
                .filter(|(_, m)| m.is_request())
                .map(|(c, _)| c)
                .collect();
            assert_eq!(to, vec![2], "chunk {tid} goes to bob only");
        }
    }

    /// Large Message (seed 003 9.x): a streaming call passes each chunk on
    /// with its MIME headers, answers it, and keeps nothing for history.
    #[test]
    fn streaming_call_relays_chunks_without_reassembly() {
        let (mut r, [_a, d1, _d2], alice) = setup();
        r.set_streaming(7);
        r.handle_input(RelayInput::Connected { leg: d1, conn: 2 });
        let _ = sends(&mut r);
        r.handle_input(RelayInput::Accepted {
            conn: 1,
            tls: false,
        });
        let body = vec![b'x'; 10];
        let mut chunker = crate::proto::msrp::Chunker::new(
            MsrpPath::single(uri(9000, "srvA")),
            MsrpPath::single(alice.clone()),
            "big1",
            Some("application/zip".into()),
            body,
            4,
        )
        .with_mime_headers(vec![("Content-Disposition".into(), "attachment".into())]);
        let mut ids = crate::proto::msrp::SequentialIds::new("c");
        let mut forwarded = Vec::new();
        while let Some(f) = chunker.next_frame(&mut ids) {
            r.handle_input(RelayInput::Data {
                conn: 1,
                bytes: f.unwrap().1,
            });
            let out = sends(&mut r);
            assert_eq!(out.len(), 2, "a 200 and the chunk, at once");
            assert_eq!(out[0].1.code(), Some(200));
            assert_eq!(out[1].0, 2);
            forwarded.push(out[1].1.clone());
        }
        assert_eq!(forwarded.len(), 3);
        assert!(
            forwarded
                .iter()
                .all(|m| m.header("Content-Disposition") == Some("attachment"))
        );
        let joined: Vec<u8> = forwarded
            .iter()
            .flat_map(|m| m.body.clone().unwrap_or_default())
            .collect();
        assert_eq!(joined, vec![b'x'; 10]);
        assert_eq!(r.poll_event(), None, "no ChatMessage, no activity");
    }

    #[test]
    fn msrps_leg_binds_only_a_tls_connection() {
        // RFC 4975 §14.1: our msrps: URI is reached over TLS only.
        let mut r = MsrpRelay::new("t");
        let ours = uri(9001, "srvS").with_secure(true);
        let peer = uri(4000, "alicesess").with_secure(true);
        let leg = r.add_leg(
            1,
            LegRole::Originator,
            ours.clone(),
            MsrpPath::single(peer.clone()),
            None,
        );
        r.handle_input(RelayInput::Accepted {
            conn: 1,
            tls: false,
        });
        r.handle_input(RelayInput::Data {
            conn: 1,
            bytes: chat(&ours, &peer, "tx1", "m1", "hi"),
        });
        let out = sends(&mut r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.code(), Some(403), "plain connection refused");
        assert!(!r.is_connected(leg));
        r.handle_input(RelayInput::Accepted { conn: 2, tls: true });
        r.handle_input(RelayInput::Data {
            conn: 2,
            bytes: chat(&ours, &peer, "tx2", "m2", "hi"),
        });
        let out = sends(&mut r);
        assert_eq!(out[0].1.code(), Some(200));
        assert!(r.is_connected(leg));
    }

    #[test]
    fn exploder_rewrites_paths_and_queues_until_bound() {
        let (mut r, [_a, d1, d2], alice) = setup();
        r.handle_input(RelayInput::Connected { leg: d1, conn: 2 });
        let bind = sends(&mut r);
        assert_eq!(bind.len(), 1);
        assert!(bind[0].1.body.is_none(), "binding SEND is empty");
        r.handle_input(RelayInput::Accepted {
            conn: 1,
            tls: false,
        });
        r.handle_input(RelayInput::Data {
            conn: 1,
            bytes: chat(&uri(9000, "srvA"), &alice, "tx1", "m1", "hi"),
        });
        let out = sends(&mut r);
        // 200 to alice, the SEND to dev1; dev2 not bound yet
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, 1);
        assert_eq!(out[0].1.code(), Some(200));
        let fwd = &out[1].1;
        assert_eq!(out[1].0, 2);
        assert_eq!(
            fwd.to_path().unwrap().to_string(),
            "msrp://127.0.0.1:5001/dev1;tcp"
        );
        assert_eq!(
            fwd.from_path().unwrap().to_string(),
            "msrp://127.0.0.1:9000/srvD1;tcp"
        );
        assert_eq!(fwd.message_id(), Some("m1"));
        r.handle_input(RelayInput::Connected { leg: d2, conn: 3 });
        let out = sends(&mut r);
        assert_eq!(out.len(), 2, "bind then the queued SEND");
        assert_eq!(out[1].1.message_id(), Some("m1"));
        assert_eq!(out[1].1.body, fwd.body);
    }

    /// The sender hangs up right after our 200 for its last chunk, before
    /// a device's connection is up: the device still gets the message,
    /// then its connection closes; a released leg whose connection fails
    /// is dropped without a word.
    #[test]
    fn a_released_leg_delivers_what_was_queued_then_goes() {
        let (mut r, [a, d1, d2], alice) = setup();
        r.handle_input(RelayInput::Accepted {
            conn: 1,
            tls: false,
        });
        r.handle_input(RelayInput::Data {
            conn: 1,
            bytes: chat(&uri(9000, "srvA"), &alice, "tx1", "m1", "last words"),
        });
        let _ = sends(&mut r);
        r.remove_call(7);
        // Only the originator's leg had a connection: it closes now.
        let out: Vec<_> = std::iter::from_fn(|| r.poll_output()).collect();
        assert!(
            matches!(out[..], [RelayOutput::Close { conn: 1 }]),
            "{out:?}"
        );
        assert!(!r.is_connected(a));
        r.handle_input(RelayInput::Connected { leg: d1, conn: 2 });
        let out: Vec<_> = std::iter::from_fn(|| r.poll_output()).collect();
        let frames: Vec<MsrpMessage> = out
            .iter()
            .filter_map(|o| match o {
                RelayOutput::Send { bytes, .. } => parse_message(bytes).ok(),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 2, "bind, then the queued SEND: {out:?}");
        assert_eq!(frames[1].message_id(), Some("m1"));
        assert!(matches!(out.last(), Some(RelayOutput::Close { conn: 2 })));
        assert!(!r.is_connected(d1), "gone once delivered");
        while r.poll_event().is_some() {}
        r.handle_input(RelayInput::ConnectFailed { leg: d2 });
        assert!(
            r.poll_event().is_none(),
            "nothing to tell about a released leg"
        );
        assert!(!r.is_connected(d2));
    }

    #[test]
    fn device_activity_is_reported_once_and_forwarded_to_originator() {
        let (mut r, [a, d1, d2], alice) = setup();
        r.handle_input(RelayInput::Connected { leg: d1, conn: 2 });
        r.handle_input(RelayInput::Connected { leg: d2, conn: 3 });
        r.handle_input(RelayInput::Accepted {
            conn: 1,
            tls: false,
        });
        r.handle_input(RelayInput::Data {
            conn: 1,
            bytes: chat(&uri(9000, "srvA"), &alice, "tx1", "m1", "hi"),
        });
        let _ = sends(&mut r);
        while r.poll_event().is_some() {}
        let composing = MsrpMessage::request(
            MsrpMethod::Send,
            "dv1",
            MsrpPath::single(uri(9000, "srvD2")),
            MsrpPath::single(uri(5002, "dev2")),
        )
        .with_header(MsrpHeader::MessageId("c1".into()))
        .with_body(IS_COMPOSING, b"<isComposing/>".to_vec());
        r.handle_input(RelayInput::Data {
            conn: 3,
            bytes: composing.to_bytes().unwrap(),
        });
        assert_eq!(
            r.poll_event(),
            Some(RelayEvent::DeviceActivity { call: 7, leg: d2 })
        );
        assert_eq!(r.poll_event(), None, "isComposing is not stored");
        let out = sends(&mut r);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].0, 1, "to alice");
        assert_eq!(out[1].1.to_path().unwrap().to_string(), alice.to_string());
        r.release_leg(d1);
        r.set_plain_relay(7);
        assert!(matches!(
            r.poll_output(),
            Some(RelayOutput::Close { conn: 2 })
        ));
        assert_eq!(r.legs_of(7), vec![a, d2]);
        // A plain relay reports no activity any more.
        r.handle_input(RelayInput::Data {
            conn: 3,
            bytes: composing.to_bytes().unwrap(),
        });
        assert_eq!(r.poll_event(), None);
    }

    #[test]
    fn unknown_session_gets_481_bad_headers_400_garbage_closes() {
        let (mut r, _, alice) = setup();
        r.handle_input(RelayInput::Accepted {
            conn: 9,
            tls: false,
        });
        r.handle_input(RelayInput::Data {
            conn: 9,
            bytes: chat(&uri(9000, "nosuch"), &alice, "tx1", "m1", "x"),
        });
        let out = sends(&mut r);
        assert_eq!(out[0].1.code(), Some(481));
        r.handle_input(RelayInput::Data {
            conn: 9,
            bytes: b"MSRP tx2 SEND\r\nTo-Path: msrp://127.0.0.1:9000/srvA;tcp\r\nFrom-Path: msrp://127.0.0.1:4000/alicesess;tcp\r\nByte-Range: nonsense\r\n-------tx2$\r\n".to_vec(),
        });
        let out = sends(&mut r);
        assert_eq!(out[0].1.code(), Some(400));
        r.handle_input(RelayInput::Data {
            conn: 9,
            bytes: b"GARBAGE\r\n\r\n".to_vec(),
        });
        assert_eq!(r.poll_output(), Some(RelayOutput::Close { conn: 9 }));
    }

    proptest::proptest! {
        /// Hostile bytes on any connection never panic the relay.
        #[test]
        fn arbitrary_input_never_panics(chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..6)) {
            let (mut r, [_, d1, _], _) = setup();
            r.handle_input(RelayInput::Connected { leg: d1, conn: 2 });
            r.handle_input(RelayInput::Accepted { conn: 1, tls: false });
            for (i, c) in chunks.into_iter().enumerate() {
                r.handle_input(RelayInput::Data { conn: 1 + (i as u64 % 2), bytes: c });
            }
            while r.poll_output().is_some() {}
        }
    }

    proptest::proptest! {
        /// Well-framed SENDs with any Byte-Range and flags never panic it.
        #[test]
        fn hostile_byte_ranges_never_panic(
            start in proptest::prelude::any::<u64>(),
            end in proptest::prelude::any::<Option<u64>>(),
            total in proptest::prelude::any::<Option<u64>>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            report in proptest::prelude::any::<bool>(),
            last in proptest::prelude::any::<bool>(),
        ) {
            let (mut r, _, alice) = setup();
            r.handle_input(RelayInput::Accepted { conn: 1, tls: false });
            let mut m = MsrpMessage::request(
                MsrpMethod::Send,
                "tx1",
                MsrpPath::single(uri(9000, "srvA")),
                MsrpPath::single(alice),
            )
            .with_header(MsrpHeader::MessageId("m1".into()))
            .with_header(MsrpHeader::ByteRange(ByteRange { start, end, total }))
            .with_header(MsrpHeader::SuccessReport(report))
            .with_body("message/cpim", body);
            if !last {
                m = m.with_flag(ContinuationFlag::Continuation);
            }
            if let Ok(bytes) = m.to_bytes() {
                r.handle_input(RelayInput::Data { conn: 1, bytes });
            }
            while r.poll_output().is_some() {}
            while r.poll_event().is_some() {}
        }
    }

    #[test]
    fn success_report_comes_from_the_relay() {
        let (mut r, _, alice) = setup();
        r.handle_input(RelayInput::Accepted {
            conn: 1,
            tls: false,
        });
        let mut m = parse_message(&chat(&uri(9000, "srvA"), &alice, "tx1", "m1", "hi")).unwrap();
        m.headers.push(MsrpHeader::SuccessReport(true));
        r.handle_input(RelayInput::Data {
            conn: 1,
            bytes: m.to_bytes().unwrap(),
        });
        let out = sends(&mut r);
        let report = out
            .iter()
            .find(|(_, m)| m.method() == Some(&MsrpMethod::Report))
            .unwrap();
        assert_eq!(report.0, 1);
        assert_eq!(report.1.message_id(), Some("m1"));
        assert_eq!(report.1.status().map(|s| s.code), Some(200));
    }
}
