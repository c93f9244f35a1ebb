//! [`Chats`]: every [`ChatSession`] of one user agent, and the routing
//! around them: SIP by transaction key and dialog, MSRP by connection (an
//! unbound connection is bound by the To-Path of its first request, RFC 4975
//! §7.3 / RFC 6135). Sans-IO like the sessions; [`Chats::flush_sip`] hands
//! what they want sent to the UA's [`TransactionLayer`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rsip::{Method, Request, Response, SipMessage};

use super::chat::{
    ChatCtx, ChatEvent, ChatId, ChatLocal, ChatSession, MsrpConn, MsrpOut, SipOut, is_chat_invite,
};
use crate::proto::msrp::{MsrpParser, ParserConfig};
use crate::proto::sip::build::{call_id, from_tag, to_tag};
use crate::proto::sip::transaction::{LayerEvent, TransactionLayer, Transmit, Transport, TsxKey};

/// What the application asks of the chats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    /// Start a chat with a user URI or a GRUU; [`ChatEvent::Calling`] names it.
    Start {
        to: String,
        convergence_id: Option<String>,
    },
    /// Send a text; [`ChatEvent::Sent`] gives its Message-ID.
    Send {
        chat: ChatId,
        text: String,
    },
    /// The user typed.
    Typing {
        chat: ChatId,
    },
    /// The user cleared the input.
    StopTyping {
        chat: ChatId,
    },
    Accept {
        chat: ChatId,
    },
    Decline {
        chat: ChatId,
    },
    Bye {
        chat: ChatId,
    },
}

/// A wall clock for CPIM DateTime (RFC 3339), injected so tests replay.
pub type WallClock = Box<dyn FnMut() -> String + Send>;

/// The system clock as `YYYY-MM-DDThh:mm:ssZ`.
pub fn system_clock() -> WallClock {
    Box::new(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        rfc3339(secs)
    })
}

/// Seconds since 1970 as `YYYY-MM-DDThh:mm:ssZ` (civil-from-days).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

struct ConnState {
    parser: MsrpParser,
    chat: Option<ChatId>,
}

/// Every chat of a user agent.
pub struct Chats {
    local: ChatLocal,
    sessions: BTreeMap<ChatId, ChatSession>,
    next_id: ChatId,
    /// Our client transactions: whose, and for which method.
    keys: HashMap<TsxKey, (ChatId, Method)>,
    conns: HashMap<MsrpConn, ConnState>,
    clock: WallClock,
    events: VecDeque<ChatEvent>,
    msrp_out: VecDeque<MsrpOut>,
    /// Our INVITEs to CANCEL at the next flush.
    cancels: Vec<(ChatId, TsxKey)>,
    /// 200s to CANCELs, sent at the next flush.
    pending_responses: VecDeque<(TsxKey, Response)>,
}

impl std::fmt::Debug for Chats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chats")
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl Chats {
    pub fn new(local: ChatLocal, clock: WallClock) -> Self {
        Chats {
            local,
            sessions: BTreeMap::new(),
            next_id: 0,
            keys: HashMap::new(),
            conns: HashMap::new(),
            clock,
            events: VecDeque::new(),
            msrp_out: VecDeque::new(),
            pending_responses: VecDeque::new(),
            cancels: Vec::new(),
        }
    }

    /// Replaces the CPIM DateTime clock.
    pub fn set_clock(&mut self, clock: WallClock) {
        self.clock = clock;
    }

    pub fn local(&self) -> &ChatLocal {
        &self.local
    }

    /// Where the MSRP listener is, once bound (the runner sets it).
    pub fn set_msrp_local(&mut self, addr: SocketAddr) {
        self.local.msrp_local = addr;
    }

    pub fn local_mut(&mut self) -> &mut ChatLocal {
        &mut self.local
    }

    pub fn session(&self, chat: ChatId) -> Option<&ChatSession> {
        self.sessions.get(&chat)
    }

    /// Chats not yet over.
    pub fn live(&self) -> impl Iterator<Item = &ChatSession> {
        self.sessions.values().filter(|s| !s.is_terminated())
    }

    fn new_id(&mut self) -> ChatId {
        self.next_id += 1;
        self.next_id
    }

    // ---- commands ------------------------------------------------------

    /// Runs a command; `Start` returns the new chat's id.
    pub fn command(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        cmd: ChatCommand,
    ) -> Option<ChatId> {
        let mut created = None;
        match cmd {
            ChatCommand::Start { to, convergence_id } => {
                let id = self.new_id();
                self.events.push_back(ChatEvent::Calling {
                    chat: id,
                    to: to.clone(),
                });
                let s =
                    ChatSession::outgoing(ctx, now, id, self.local.clone(), &to, convergence_id);
                self.sessions.insert(id, s);
                created = Some(id);
            }
            ChatCommand::Send { chat, text } => {
                let at = (self.clock)();
                if let Some(s) = self.sessions.get_mut(&chat) {
                    match s.send_text(now, &text, &at) {
                        Some(message_id) => self.events.push_back(ChatEvent::Sent {
                            chat,
                            message_id,
                            text,
                        }),
                        None => self.events.push_back(ChatEvent::SendFailed {
                            chat,
                            message_id: String::new(),
                            code: 481,
                        }),
                    }
                }
            }
            ChatCommand::Typing { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.typing(now);
                }
            }
            ChatCommand::StopTyping { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.stop_typing(now);
                }
            }
            ChatCommand::Accept { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.accept(ctx, now);
                }
            }
            ChatCommand::Decline { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.decline(now);
                }
            }
            ChatCommand::Bye { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    // RFC 3261 §9.1: an unanswered INVITE is CANCELled
                    if s.is_calling() {
                        let key = self
                            .keys
                            .iter()
                            .find(|(_, (c, m))| *c == chat && *m == Method::Invite)
                            .map(|(k, _)| k.clone());
                        self.cancels.extend(key.map(|k| (chat, k)));
                    }
                    s.bye(ctx, now);
                }
            }
        }
        self.collect();
        created
    }

    // ---- SIP in --------------------------------------------------------

    /// Offers a transaction-layer event to the chats. Returns it back when
    /// it is not theirs, for the UA's own handling.
    pub fn handle_layer_event(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        ev: LayerEvent,
    ) -> Option<LayerEvent> {
        let rest = match ev {
            LayerEvent::NewRequest {
                key,
                request,
                source,
                transport,
            } => self
                .handle_request(ctx, now, key, request, source, transport)
                .map(|(key, request)| LayerEvent::NewRequest {
                    key,
                    request,
                    source,
                    transport,
                }),
            LayerEvent::Response { key, response } => match self.keys.get(&key).cloned() {
                Some((chat, _)) => {
                    if response.status_code.code() >= 200 {
                        self.keys.remove(&key);
                    }
                    if let Some(s) = self.sessions.get_mut(&chat) {
                        s.handle_response(ctx, now, response);
                    }
                    None
                }
                None => Some(LayerEvent::Response { key, response }),
            },
            LayerEvent::Ack {
                request,
                source,
                transport,
            } => match self.by_dialog(&request) {
                Some(chat) => {
                    if let Some(s) = self.sessions.get_mut(&chat) {
                        s.handle_ack(now, &request);
                    }
                    None
                }
                None => Some(LayerEvent::Ack {
                    request,
                    source,
                    transport,
                }),
            },
            LayerEvent::Cancel {
                key,
                request,
                source,
                transport,
                invite,
                invite_pending,
            } => {
                let chat = invite.as_ref().and_then(|k| {
                    self.sessions
                        .values()
                        .find(|s| s.is_invite_key(k))
                        .map(|s| s.id())
                });
                match chat {
                    Some(chat) => {
                        // RFC 3261 §9.2: 200 to the CANCEL, 487 to the INVITE
                        let resp = crate::proto::sip::build::response_to(&request, 200, None);
                        if let Some(s) = self.sessions.get_mut(&chat) {
                            s.handle_cancel(now, &request);
                        }
                        self.pending_responses.push_back((key, resp));
                        None
                    }
                    None => Some(LayerEvent::Cancel {
                        key,
                        request,
                        source,
                        transport,
                        invite,
                        invite_pending,
                    }),
                }
            }
            LayerEvent::StrayResponse { response, source } => {
                // a 2xx retransmission after the INVITE transaction ended
                let chat = self.by_response_dialog(&response);
                match chat {
                    Some(chat) => {
                        if let Some(s) = self.sessions.get_mut(&chat) {
                            s.handle_response(ctx, now, response);
                        }
                        None
                    }
                    None => Some(LayerEvent::StrayResponse { response, source }),
                }
            }
            LayerEvent::Timeout { key } | LayerEvent::TransportError { key }
                if self.keys.contains_key(&key) =>
            {
                if let Some((chat, method)) = self.keys.remove(&key)
                    && let Some(s) = self.sessions.get_mut(&chat)
                {
                    s.handle_request_timeout(ctx, now, method);
                }
                None
            }
            other => Some(other),
        };
        self.collect();
        rest
    }

    /// A new request: a chat INVITE starts a session; an in-dialog request
    /// of ours goes to its session. Others come back.
    fn handle_request(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        key: TsxKey,
        req: Request,
        source: SocketAddr,
        transport: Transport,
    ) -> Option<(TsxKey, Request)> {
        if to_tag(&req.headers).is_some() {
            return match self.by_dialog(&req) {
                Some(chat) => {
                    if let Some(s) = self.sessions.get_mut(&chat) {
                        s.handle_request(ctx, now, key, req, (source, transport));
                    }
                    None
                }
                None => Some((key, req)),
            };
        }
        if !is_chat_invite(&req) {
            return Some((key, req));
        }
        let id = self.new_id();
        let s = ChatSession::incoming(
            ctx,
            now,
            id,
            self.local.clone(),
            key,
            req,
            (source, transport),
        );
        self.sessions.insert(id, s);
        None
    }

    /// The chat whose dialog a received request belongs to (Call-ID, our tag in To).
    fn by_dialog(&self, req: &Request) -> Option<ChatId> {
        let cid = call_id(&req.headers)?;
        let ours = to_tag(&req.headers)?;
        self.sessions
            .values()
            .find(|s| s.call_id() == cid && s.local_tag() == ours)
            .map(|s| s.id())
    }

    fn by_response_dialog(&self, resp: &Response) -> Option<ChatId> {
        let cid = call_id(&resp.headers)?;
        let ours = from_tag(&resp.headers)?;
        self.sessions
            .values()
            .find(|s| s.call_id() == cid && s.local_tag() == ours)
            .map(|s| s.id())
    }

    // ---- MSRP in -------------------------------------------------------

    /// Our connection for `chat` is up.
    pub fn msrp_connected(&mut self, now: Instant, chat: ChatId, conn: MsrpConn) {
        self.conns.insert(
            conn,
            ConnState {
                parser: MsrpParser::new(ParserConfig::default()),
                chat: Some(chat),
            },
        );
        match self.sessions.get_mut(&chat) {
            Some(s) => s.msrp_connected(now, conn),
            None => self.msrp_out.push_back(MsrpOut::Close { conn }),
        }
        self.collect();
    }

    /// Connecting for `chat` failed.
    pub fn msrp_connect_failed(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        chat: ChatId,
        error: &str,
    ) {
        if let Some(s) = self.sessions.get_mut(&chat) {
            s.msrp_connect_failed(ctx, now, error);
        }
        self.collect();
    }

    /// A peer connected to our listener.
    pub fn msrp_accepted(&mut self, conn: MsrpConn) {
        self.conns.entry(conn).or_insert_with(|| ConnState {
            parser: MsrpParser::new(ParserConfig::default()),
            chat: None,
        });
    }

    /// Bytes from a connection.
    pub fn msrp_data(&mut self, now: Instant, conn: MsrpConn, bytes: &[u8]) {
        let st = self.conns.entry(conn).or_insert_with(|| ConnState {
            parser: MsrpParser::new(ParserConfig::default()),
            chat: None,
        });
        st.parser.push(bytes);
        let mut frames = Vec::new();
        let mut fatal = false;
        while let Some(r) = st.parser.next() {
            match r {
                Ok(f) => frames.push(f),
                Err(e) => {
                    tracing::debug!(error = %e, conn, "MSRP framing error");
                    fatal |= e.is_fatal();
                }
            }
        }
        for f in frames {
            let bound = self.conns.get(&conn).and_then(|c| c.chat);
            let chat = bound.or_else(|| {
                let sid = f.to_path()?.first()?.session_id.clone()?;
                self.sessions
                    .values()
                    .find(|s| s.msrp_session_id() == sid && !s.is_terminated())
                    .map(|s| s.id())
            });
            let Some(chat) = chat else {
                tracing::debug!(conn, "MSRP frame for no session of ours");
                continue;
            };
            if bound.is_none() {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.chat = Some(chat);
                }
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.msrp_accepted(conn);
                }
            }
            if let Some(s) = self.sessions.get_mut(&chat) {
                s.msrp_frame(now, f);
            }
        }
        if fatal {
            self.msrp_closed(now, conn);
            self.msrp_out.push_back(MsrpOut::Close { conn });
        }
        self.collect();
    }

    /// A connection closed.
    pub fn msrp_closed(&mut self, now: Instant, conn: MsrpConn) {
        if let Some(c) = self.conns.remove(&conn)
            && let Some(chat) = c.chat
            && let Some(s) = self.sessions.get_mut(&chat)
        {
            s.msrp_closed(now, conn);
        }
        self.collect();
    }

    // ---- time and output -----------------------------------------------

    pub fn handle_timeout(&mut self, ctx: &mut ChatCtx<'_>, now: Instant) {
        for s in self.sessions.values_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(ctx, now);
            }
        }
        self.collect();
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| s.poll_timeout())
            .min()
    }

    /// Moves the sessions' MSRP output and events up, forgets ended
    /// sessions with nothing left to send.
    fn collect(&mut self) {
        for s in self.sessions.values_mut() {
            while let Some(o) = s.poll_msrp() {
                if let MsrpOut::Close { conn } = &o {
                    self.conns.remove(conn);
                }
                self.msrp_out.push_back(o);
            }
            while let Some(e) = s.poll_event() {
                self.events.push_back(e);
            }
        }
    }

    /// Hands the sessions' SIP to `layer`: requests as client transactions
    /// to `server` (tracked, so their responses come back here), responses
    /// through their server transactions, ACKs and retransmissions as they are.
    pub fn flush_sip(
        &mut self,
        layer: &mut TransactionLayer,
        now: Instant,
        server: SocketAddr,
        transport: Transport,
    ) {
        while let Some((key, resp)) = self.pending_responses.pop_front() {
            let _ = layer.send_response(now, &key, resp);
        }
        for (chat, invite) in std::mem::take(&mut self.cancels) {
            match layer.cancel(now, &invite) {
                Ok(key) => {
                    self.keys.insert(key, (chat, Method::Cancel));
                }
                Err(e) => tracing::debug!(error = %e, "no CANCEL"),
            }
        }
        let mut outs = Vec::new();
        for s in self.sessions.values_mut() {
            while let Some(o) = s.poll_sip() {
                outs.push((s.id(), o));
            }
        }
        for (chat, o) in outs {
            match o {
                SipOut::Request(req) => {
                    let method = req.method;
                    match layer.send_request(now, req, server, transport) {
                        Ok(key) => {
                            self.keys.insert(key, (chat, method));
                        }
                        Err(e) => tracing::debug!(error = %e, "chat request not sent"),
                    }
                }
                SipOut::Response { key, response } => {
                    if let Err(e) = layer.send_response(now, &key, response) {
                        tracing::debug!(error = %e, "chat response not sent");
                    }
                }
                SipOut::Ack(ack) => layer.send_stateless(Transmit {
                    to: server,
                    transport,
                    message: SipMessage::Request(ack),
                }),
                SipOut::Raw(t) => layer.send_stateless(t),
            }
        }
        // drop sessions that are over and quiet
        let keys = &self.keys;
        self.sessions.retain(|id, s| {
            !s.is_terminated() || s.poll_timeout().is_some() || keys.values().any(|(c, _)| c == id)
        });
    }

    pub fn poll_msrp(&mut self) -> Option<MsrpOut> {
        self.msrp_out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ChatEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_446_000), "2026-11-23T15:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
