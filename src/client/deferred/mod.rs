//! Deferred messages on the client side (seed 002 D.2; seed 003 12.1.1,
//! 12.4.1, 12.4.2.2, 12.4.2.6), sans-IO like the chats:
//!
//! - **push**: the server's INVITE from `Deferred@domain` (Contact
//!   `automata`, `a=sendonly`) is answered at once with `a=recvonly` and
//!   `a=setup:passive` (RFC 6135: the server connects, as it offers
//!   `active`); each MSRP SEND of `message/sip` or `multipart/mixed` is
//!   unwrapped ([`unwrap`]), reported as a [`LateMessage`] and answered
//!   200; the BYE ends it;
//! - **retrieval**: [`DeferredCommand::Retrieve`] INVITEs `Deferred@domain`
//!   recvonly with a URI list of message ids (none = all), then receives
//!   as above; a refusal is reported with its status and Warning;
//! - **waiting**: [`DeferredCommand::WatchWaiting`] subscribes to
//!   `message-summary` (RFC 3842) and each NOTIFY is reported as a count.
//!
//! A message whose key (the store's: Message-ID, or Call-ID + CSeq) was
//! already shown is answered 200 and dropped ([`DeferredEvent::Duplicate`]):
//! a resend after a server crash between our 200 and its delete shows once.

pub mod summary;
pub mod unwrap;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Method, Request, Response, SipMessage};

use super::chat::{ChatCtx, MsrpConn, MsrpOut, SipOut};
use super::ids::UaIds;
use super::outgoing::OutRequest;
use crate::proto::msrp::{ContinuationFlag, MsrpMessage, MsrpMethod, MsrpParser, MsrpUri, ParserConfig};
use crate::proto::sdp::{
    ConnectionAddress, Direction, MsrpAnswerParams, MsrpMedia, Sdp, Setup, SetupPreference, parse_sdp,
};
use crate::proto::sip::build::{call_id, response_with, to_tag};
use crate::proto::sip::dialog::Dialog;
use crate::proto::sip::headers::{HeadersExt, NameAddr, make_header};
use crate::proto::sip::message::reason_phrase;
use crate::proto::sip::transaction::{LayerEvent, TransactionLayer, Transmit, Transport, TsxKey};

pub use unwrap::{LateKind, LateMessage, UnwrapError};

/// Names one push or retrieval session for the life of the user agent.
pub type DeferredSessionId = u64;

/// What the payload of a deferred SEND may be (seed 002 D.2 B).
pub const DEFERRED_ACCEPT_TYPES: &[&str] = &["message/sip", "multipart/mixed", "message/cpim"];
/// What those may wrap.
pub const DEFERRED_WRAPPED_TYPES: &[&str] = &["message/msrp", "message/sip", "message/cpim", "text/plain", "*"];
/// Methods we take in a push / retrieval dialog.
pub const DEFERRED_ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, NOTIFY";
/// The IM service feature tag (seed 003 Appendix C).
pub const IM_FEATURE_TAG: &str = "+g.oma.sip-im";
/// Lifetime asked for the message-summary subscription (seconds).
pub const SUMMARY_EXPIRES: u32 = 3600;
/// RFC 3261 §17.1.1.1 timers for our 2xx retransmission (§13.3.1.4).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// How long a session outlives its MSRP connection waiting for the BYE.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Where the client is (filled from the UA's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredLocal {
    /// `sip:bob@isc.local`.
    pub aor: String,
    /// `sip:Deferred@isc.local` (seed 003 12.1.1: `Deferred@hostname`).
    pub deferred_uri: String,
    pub contact_uri: String,
    pub sip_local: SocketAddr,
    pub transport: Transport,
    /// Our MSRP listener.
    pub msrp_local: SocketAddr,
    pub user_agent: String,
}

/// How the messages of a session come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferredMode {
    /// The server INVITEd us after our registration (seed 003 12.4.2.2).
    Push,
    /// We asked `Deferred@domain` (seed 003 12.1.1).
    Retrieval,
}

impl DeferredMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Retrieval => "retrieval",
        }
    }
}

/// What the application asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeferredCommand {
    /// Seed 003 12.1.1: retrieve these messages (their Message-IDs, store
    /// ids `deferred:N`, or pager Call-IDs); none = all. `service` replaces
    /// `Deferred@domain` (another store's URI).
    Retrieve {
        ids: Vec<String>,
        service: Option<String>,
    },
    /// RFC 3842: subscribe to `message-summary` for our AOR.
    WatchWaiting,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeferredEvent {
    /// A session that carries deferred messages is up.
    Started {
        session: DeferredSessionId,
        mode: DeferredMode,
    },
    /// A message that waited for us, to show at its original time.
    Message {
        session: DeferredSessionId,
        message: LateMessage,
    },
    /// A message we already showed came again (answered 200, not shown).
    Duplicate {
        session: DeferredSessionId,
        key: String,
    },
    /// A SEND we could not read (answered 415 or 400: the server keeps it).
    Unreadable {
        session: DeferredSessionId,
        reason: String,
    },
    /// The session ended (the server's BYE); `received` messages were new.
    Ended {
        session: DeferredSessionId,
        mode: DeferredMode,
        received: usize,
    },
    /// The retrieval was refused or got no answer.
    RetrievalFailed {
        status: Option<u16>,
        reason: String,
        warning: Option<String>,
    },
    /// RFC 3842 NOTIFY: this many messages wait for retrieval.
    Waiting { count: u32, account: Option<String> },
    /// The message-summary subscription was refused or ended.
    WaitingUnavailable { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracked {
    Invite(DeferredSessionId),
    Summary,
}

/// Our 2xx to a push INVITE, repeated until its ACK (RFC 3261 §13.3.1.4).
#[derive(Debug, Clone)]
struct OkRetx {
    response: Response,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

#[derive(Debug)]
struct Session {
    mode: DeferredMode,
    call_id: String,
    local_tag: String,
    /// Our path's session id (To-Path of the server's SENDs).
    msrp_sid: String,
    /// Retrieval: the INVITE's parts (for a re-send with credentials) and the request sent.
    out: Option<OutRequest>,
    invite: Option<Request>,
    auth_tries: u8,
    dialog: Option<Dialog>,
    /// Push: our 2xx until ACKed.
    ok: Option<OkRetx>,
    /// Methods the server allows in the dialog (seed 003 12.1.1: stored).
    peer_allow: Option<String>,
    received: usize,
    /// The MSRP connection went: the session ends here unless the BYE comes first.
    close_deadline: Option<Instant>,
    /// Chunks of a message under way: Message-ID → (content type, body so far).
    partial: HashMap<String, (String, Vec<u8>)>,
}

#[derive(Debug, Default)]
struct SummaryWatch {
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    remote_target: Option<String>,
    cseq: u32,
    auth_tries: u8,
    out: Option<OutRequest>,
    refresh_at: Option<Instant>,
    ended: bool,
}

/// Every deferred session and the message-summary watch of one user agent.
pub struct Deferred {
    local: DeferredLocal,
    sessions: BTreeMap<DeferredSessionId, Session>,
    next_id: DeferredSessionId,
    keys: HashMap<TsxKey, Tracked>,
    conns: HashMap<MsrpConn, (DeferredSessionId, MsrpParser)>,
    /// Keys of every deferred message shown so far.
    seen: HashSet<String>,
    summary: Option<SummaryWatch>,
    sip_out: VecDeque<SipOut>,
    /// Requests to start as client transactions, with what they are for.
    requests: VecDeque<(Tracked, Request)>,
    msrp_out: VecDeque<MsrpOut>,
    events: VecDeque<DeferredEvent>,
    /// The outbound proxy, once known (2xx retransmissions go there).
    server: Option<SocketAddr>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("sessions", &self.sessions.len())
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

fn sdp_of(headers: &rsip::Headers, body: &[u8]) -> Option<MsrpMedia> {
    let ct = headers.get_raw("Content-Type")?;
    if !ct.trim().to_ascii_lowercase().starts_with("application/sdp") {
        return None;
    }
    parse_sdp(body).ok()?.msrp().find(|m| m.port != 0).cloned()
}

fn typed_via(local: SocketAddr, transport: Transport, branch: &str) -> Option<rsip::typed::Via> {
    match make_header("Via", &super::chat::via(local, transport, branch).to_string()) {
        rsip::Header::Via(v) => v.typed().ok(),
        _ => None,
    }
}

fn user_part(uri: &str) -> &str {
    uri.trim()
        .trim_start_matches("sips:")
        .trim_start_matches("sip:")
        .split(['@', ';', '>'])
        .next()
        .unwrap_or_default()
}

fn warning_of(headers: &rsip::Headers) -> Option<String> {
    headers.get_raw("Warning").map(|w| {
        // `399 host "text"` → the text
        match (w.find('"'), w.rfind('"')) {
            (Some(a), Some(b)) if b > a => w[a + 1..b].to_string(),
            _ => w.trim().to_string(),
        }
    })
}

/// Is this the Deferred Messaging Function pushing (seed 003 12.4.2.2 b):
/// an initial INVITE with an MSRP `a=sendonly` offer, from the Deferred URI
/// or with `automata` in Contact?
pub fn is_push_invite(req: &Request, deferred_uri: &str) -> bool {
    if req.method != Method::Invite || to_tag(&req.headers).is_some() {
        return false;
    }
    let Some(m) = sdp_of(&req.headers, &req.body) else {
        return false;
    };
    let from = req
        .headers
        .get_raw("From")
        .map(|v| NameAddr::parse(&v).map(|n| n.uri).unwrap_or(v))
        .unwrap_or_default();
    let from_store = user_part(&from).eq_ignore_ascii_case(user_part(deferred_uri))
        && from.to_ascii_lowercase().contains(&deferred_uri.rsplit('@').next().unwrap_or_default().to_ascii_lowercase());
    let automata = req
        .headers
        .get_all_raw("Contact")
        .iter()
        .any(|c| c.to_ascii_lowercase().split(';').any(|p| p.trim() == "automata"));
    m.direction == Direction::SendOnly && (from_store || automata)
}

impl Deferred {
    pub fn new(local: DeferredLocal) -> Self {
        Deferred {
            local,
            sessions: BTreeMap::new(),
            next_id: 0,
            keys: HashMap::new(),
            conns: HashMap::new(),
            seen: HashSet::new(),
            summary: None,
            sip_out: VecDeque::new(),
            requests: VecDeque::new(),
            msrp_out: VecDeque::new(),
            events: VecDeque::new(),
            server: None,
        }
    }

    pub fn local(&self) -> &DeferredLocal {
        &self.local
    }

    pub fn local_mut(&mut self) -> &mut DeferredLocal {
        &mut self.local
    }

    /// How many distinct deferred messages were shown.
    pub fn shown(&self) -> usize {
        self.seen.len()
    }

    /// Sessions under way.
    pub fn active_sessions(&self) -> usize {
        self.sessions.len()
    }

    fn new_session(&mut self, ctx: &mut ChatCtx<'_>, mode: DeferredMode, call_id: String, local_tag: String) -> DeferredSessionId {
        self.next_id += 1;
        let msrp_sid: String = format!("d{}", ctx.ids.tag())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        self.sessions.insert(
            self.next_id,
            Session {
                mode,
                call_id,
                local_tag,
                msrp_sid,
                out: None,
                invite: None,
                auth_tries: 0,
                dialog: None,
                ok: None,
                peer_allow: None,
                received: 0,
                close_deadline: None,
                partial: HashMap::new(),
            },
        );
        self.next_id
    }

    fn our_path(&self, sid: &str) -> String {
        let l = self.local.msrp_local;
        MsrpUri::new(l.ip().to_string(), l.port(), sid.to_string()).to_string()
    }

    fn contact(&self) -> String {
        format!("<{}>;{IM_FEATURE_TAG}", self.local.contact_uri)
    }

    // ---- commands ------------------------------------------------------

    pub fn command(&mut self, ctx: &mut ChatCtx<'_>, cmd: DeferredCommand) {
        match cmd {
            DeferredCommand::Retrieve { ids, service } => self.retrieve(ctx, ids, service),
            DeferredCommand::WatchWaiting => self.watch_waiting(ctx),
        }
    }

    /// Seed 003 12.1.1 steps 1–5.
    fn retrieve(&mut self, ctx: &mut ChatCtx<'_>, ids: Vec<String>, service: Option<String>) {
        let uri = service.unwrap_or_else(|| self.local.deferred_uri.clone());
        let (cid, tag) = (ctx.ids.call_id(), ctx.ids.tag());
        let id = self.new_session(ctx, DeferredMode::Retrieval, cid.clone(), tag.clone());
        let sid = self.sessions.get(&id).map(|s| s.msrp_sid.clone()).unwrap_or_default();
        let l = self.local.msrp_local;
        // Step 4.a: recvonly; RFC 6135: we listen (passive), the store connects.
        let mut media = MsrpMedia::offer(
            l.port(),
            ConnectionAddress::Ip(l.ip()),
            vec![self.our_path(&sid)],
            DEFERRED_ACCEPT_TYPES,
        );
        media.accept_wrapped_types = DEFERRED_WRAPPED_TYPES.iter().map(|s| s.to_string()).collect();
        media.direction = Direction::RecvOnly;
        media.setup = Some(Setup::Passive);
        let sdp = Sdp::new("isc", u64::from(id as u32).wrapping_add(1), ConnectionAddress::Ip(l.ip()))
            .with_media(media)
            .to_string()
            .into_bytes();
        // Step 1.b/c: the URI list names the messages (7.1.1.3's body); step 2: none = all.
        let body = if ids.is_empty() {
            ("application/sdp".to_string(), sdp)
        } else {
            super::group::factory_body(sdp, super::group::recipient_list(None, &ids))
        };
        let out = OutRequest {
            method: Method::Invite,
            uri: uri.clone(),
            from: NameAddr::new(self.local.aor.clone()),
            from_tag: tag,
            to: NameAddr::new(uri),
            call_id: cid,
            cseq: 1,
            contact: Some(self.contact()),
            headers: Vec::new(),
            body: Some(body),
        }
        .header("Accept-Contact", format!("*;{IM_FEATURE_TAG}"))
        .header("User-Agent", &self.local.user_agent)
        .header("Allow", DEFERRED_ALLOW);
        if let Some(s) = self.sessions.get_mut(&id) {
            s.out = Some(out);
        }
        self.send_invite(ctx, id);
    }

    fn build(&self, ctx: &mut ChatCtx<'_>, out: &OutRequest) -> Option<Request> {
        let branch = ctx.ids.branch();
        match out.build(self.local.sip_local, self.local.transport, &branch) {
            Ok(mut req) => {
                ctx.digest.authorize(&mut req, &ctx.ids.cnonce());
                Some(req)
            }
            Err(e) => {
                tracing::warn!(error = %e, "deferred request not built");
                None
            }
        }
    }

    fn send_invite(&mut self, ctx: &mut ChatCtx<'_>, id: DeferredSessionId) {
        let Some(out) = self.sessions.get(&id).and_then(|s| s.out.clone()) else {
            return;
        };
        match self.build(ctx, &out) {
            Some(req) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.invite = Some(req.clone());
                }
                self.requests.push_back((Tracked::Invite(id), req));
            }
            None => {
                self.sessions.remove(&id);
                self.events.push_back(DeferredEvent::RetrievalFailed {
                    status: None,
                    reason: format!("cannot address {}", out.uri),
                    warning: None,
                });
            }
        }
    }

    /// RFC 3842 §4 / RFC 6665 §4.1.2: SUBSCRIBE `message-summary` to our AOR.
    fn watch_waiting(&mut self, ctx: &mut ChatCtx<'_>) {
        if self.summary.as_ref().is_some_and(|w| !w.ended) {
            return;
        }
        self.summary = Some(SummaryWatch {
            call_id: ctx.ids.call_id(),
            from_tag: ctx.ids.tag(),
            ..SummaryWatch::default()
        });
        self.subscribe(ctx, SUMMARY_EXPIRES);
    }

    fn subscribe(&mut self, ctx: &mut ChatCtx<'_>, expires: u32) {
        let contact = self.contact();
        let aor = self.local.aor.clone();
        let Some(w) = self.summary.as_mut() else {
            return;
        };
        w.cseq += 1;
        let mut to = NameAddr::new(aor.clone());
        if let Some(t) = &w.to_tag {
            to = to.with_param("tag", Some(t));
        }
        let out = OutRequest {
            method: Method::Subscribe,
            uri: w.remote_target.clone().unwrap_or(aor),
            from: NameAddr::new(self.local.aor.clone()),
            from_tag: w.from_tag.clone(),
            to,
            call_id: w.call_id.clone(),
            cseq: w.cseq,
            contact: Some(contact),
            headers: Vec::new(),
            body: None,
        }
        .header("Event", "message-summary")
        .header("Accept", summary::CONTENT_TYPE)
        .header("Expires", expires)
        .header("User-Agent", &self.local.user_agent)
        .header("Allow", DEFERRED_ALLOW);
        w.out = Some(out.clone());
        if expires == 0 {
            w.ended = true;
        }
        if let Some(req) = self.build(ctx, &out) {
            self.requests.push_back((Tracked::Summary, req));
        }
    }

    /// Ends the message-summary subscription (on shutdown).
    pub fn unwatch(&mut self, ctx: &mut ChatCtx<'_>) {
        if self.summary.as_ref().is_some_and(|w| !w.ended && w.to_tag.is_some()) {
            self.subscribe(ctx, 0);
        }
    }

    // ---- SIP in --------------------------------------------------------

    /// Offers a transaction-layer event; gives it back when it is not ours.
    pub fn handle_layer_event(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, ev: LayerEvent) -> Option<LayerEvent> {
        match ev {
            LayerEvent::NewRequest {
                key,
                request,
                source,
                transport,
            } => self.handle_request(ctx, now, key, request).map(|(key, request)| LayerEvent::NewRequest {
                key,
                request,
                source,
                transport,
            }),
            LayerEvent::Response { key, response } => match self.keys.get(&key).copied() {
                Some(t) => {
                    if response.status_code.code() >= 200 {
                        self.keys.remove(&key);
                    }
                    self.handle_response(ctx, now, t, response);
                    None
                }
                None => Some(LayerEvent::Response { key, response }),
            },
            LayerEvent::Ack {
                request,
                source,
                transport,
            } => {
                let cid = call_id(&request.headers).unwrap_or_default();
                match self.sessions.values_mut().find(|s| s.call_id == cid && s.mode == DeferredMode::Push) {
                    Some(s) => {
                        s.ok = None;
                        None
                    }
                    None => Some(LayerEvent::Ack {
                        request,
                        source,
                        transport,
                    }),
                }
            }
            LayerEvent::StrayResponse { response, source } => {
                // a 2xx to our INVITE again: the same ACK (RFC 3261 §13.2.2.4)
                let cid = call_id(&response.headers).unwrap_or_default();
                let ack = self
                    .sessions
                    .values()
                    .find(|s| s.call_id == cid)
                    .and_then(|s| s.dialog.as_ref()?.ack_for_retransmission(&response));
                match ack {
                    Some(ack) => {
                        self.sip_out.push_back(SipOut::Ack(ack));
                        None
                    }
                    None if self.sessions.values().any(|s| s.call_id == cid) => None,
                    None => Some(LayerEvent::StrayResponse { response, source }),
                }
            }
            LayerEvent::Timeout { key } | LayerEvent::TransportError { key } if self.keys.contains_key(&key) => {
                match self.keys.remove(&key) {
                    Some(Tracked::Invite(id)) => {
                        self.sessions.remove(&id);
                        self.events.push_back(DeferredEvent::RetrievalFailed {
                            status: None,
                            reason: "no response from the deferred message store".into(),
                            warning: None,
                        });
                    }
                    Some(Tracked::Summary) => {
                        if let Some(w) = self.summary.as_mut() {
                            w.ended = true;
                        }
                        self.events.push_back(DeferredEvent::WaitingUnavailable {
                            reason: "no response to the message-summary SUBSCRIBE".into(),
                        });
                    }
                    None => {}
                }
                None
            }
            other => Some(other),
        }
    }

    fn respond(&mut self, key: &TsxKey, req: &Request, code: u16, tag: Option<&str>, extra: Vec<rsip::Header>) {
        let resp = response_with(req, code, tag, None, extra);
        self.sip_out.push_back(SipOut::Response {
            key: key.clone(),
            response: resp,
        });
    }

    fn handle_request(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, key: TsxKey, req: Request) -> Option<(TsxKey, Request)> {
        let cid = call_id(&req.headers).unwrap_or_default();
        if req.method == Method::Notify && self.summary.as_ref().is_some_and(|w| w.call_id == cid) {
            self.on_summary_notify(ctx, now, &key, &req);
            return None;
        }
        if let Some(ours) = to_tag(&req.headers) {
            let id = self
                .sessions
                .iter()
                .find(|(_, s)| s.call_id == cid && s.local_tag == ours)
                .map(|(id, _)| *id)?;
            match req.method {
                // seed 002 D.2 steps 11–12
                Method::Bye => {
                    self.respond(&key, &req, 200, None, vec![]);
                    self.end(id);
                }
                Method::Update | Method::Options => self.respond(&key, &req, 200, None, vec![make_header("Allow", DEFERRED_ALLOW)]),
                // RFC 3261 §8.2.1
                _ => self.respond(&key, &req, 405, None, vec![make_header("Allow", DEFERRED_ALLOW)]),
            }
            return None;
        }
        if !is_push_invite(&req, &self.local.deferred_uri) {
            return Some((key, req));
        }
        self.accept_push(ctx, now, key, req);
        None
    }

    /// Seed 002 D.2 step 4: the IM Client analyses the MSRP parameters and
    /// answers 200 (recvonly, passive: the server is `active`).
    fn accept_push(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, key: TsxKey, req: Request) {
        let tag = ctx.ids.tag();
        let cid = call_id(&req.headers).unwrap_or_default();
        let id = self.new_session(ctx, DeferredMode::Push, cid, tag.clone());
        let sid = self.sessions.get(&id).map(|s| s.msrp_sid.clone()).unwrap_or_default();
        let l = self.local.msrp_local;
        let offer = sdp_of(&req.headers, &req.body);
        let params = MsrpAnswerParams {
            port: l.port(),
            connection: ConnectionAddress::Ip(l.ip()),
            path: vec![self.our_path(&sid)],
            accept_types: DEFERRED_ACCEPT_TYPES.iter().map(|s| s.to_string()).collect(),
            accept_wrapped_types: DEFERRED_WRAPPED_TYPES.iter().map(|s| s.to_string()).collect(),
            setup_preference: SetupPreference::Passive,
            direction: Direction::RecvOnly,
            max_size: None,
        };
        let answer = match offer.as_ref().map(|o| o.answer(&params)) {
            // RFC 6135 §4.2: we only listen; an offer that would have us connect is refused
            Some(Ok(m)) if m.setup == Some(Setup::Passive) => Ok(m),
            Some(Ok(_)) => Err("the store must connect (a=setup:active or actpass)".to_string()),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no MSRP offer".to_string()),
        };
        let media = match answer {
            Ok(m) => m,
            Err(why) => {
                self.sessions.remove(&id);
                let w = format!("399 {} \"{why}\"", self.local.sip_local.ip());
                self.respond(&key, &req, 488, Some(&tag), vec![make_header("Warning", &w)]);
                tracing::info!(%why, "deferred push refused");
                return;
            }
        };
        let body = Sdp::new("isc", u64::from(id as u32).wrapping_add(1), ConnectionAddress::Ip(l.ip()))
            .with_media(media)
            .to_string()
            .into_bytes();
        let mut extra = vec![
            make_header("Contact", &self.contact()),
            make_header("Allow", DEFERRED_ALLOW),
            make_header("Supported", "timer"),
            make_header("Server", &self.local.user_agent),
        ];
        // RFC 4028 §9: the 2xx carries the interval; the store refreshes (uac).
        if let Some(se) = req.headers.get_raw("Session-Expires") {
            let secs = se.split(';').next().unwrap_or("1800").trim().to_string();
            extra.push(make_header("Session-Expires", &format!("{secs};refresher=uac")));
            extra.push(make_header("Require", "timer"));
        }
        let mut resp = response_with(&req, 200, Some(&tag), None, extra);
        resp.headers.remove_named("Content-Length");
        resp.headers.push(make_header("Content-Type", "application/sdp"));
        resp.headers.push(make_header("Content-Length", &body.len().to_string()));
        resp.body = body;
        if let Some(s) = self.sessions.get_mut(&id) {
            s.ok = Some(OkRetx {
                response: resp.clone(),
                next: now + T1,
                interval: T1,
                give_up: now + 64 * T1,
            });
            s.peer_allow = req.headers.get_raw("Allow");
        }
        self.sip_out.push_back(SipOut::Response { key, response: resp });
        self.events.push_back(DeferredEvent::Started {
            session: id,
            mode: DeferredMode::Push,
        });
    }

    fn handle_response(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, t: Tracked, resp: Response) {
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        match t {
            Tracked::Invite(id) => self.invite_response(ctx, id, resp),
            Tracked::Summary => self.summary_response(ctx, now, resp),
        }
        let _ = code;
    }

    fn invite_response(&mut self, ctx: &mut ChatCtx<'_>, id: DeferredSessionId, resp: Response) {
        let code = resp.status_code.code();
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if matches!(code, 401 | 407) && s.auth_tries < 2 {
            s.auth_tries += 1;
            if super::chat::answer_challenge(ctx.digest, &resp, s.auth_tries - 1) {
                if let Some(out) = s.out.as_mut() {
                    out.cseq += 1;
                }
                self.send_invite(ctx, id);
                return;
            }
        }
        if !(200..300).contains(&code) {
            self.sessions.remove(&id);
            self.events.push_back(DeferredEvent::RetrievalFailed {
                status: Some(code),
                reason: reason_phrase(&resp.status_code),
                warning: warning_of(&resp.headers),
            });
            return;
        }
        let Some(invite) = s.invite.clone() else {
            return;
        };
        match Dialog::new_uac(&invite, &resp) {
            Ok(mut d) => {
                let branch = ctx.ids.branch();
                if let Some(via) = typed_via(self.local.sip_local, self.local.transport, &branch)
                    && let Ok(ack) = d.create_ack_for_invite(&invite, via)
                {
                    self.sip_out.push_back(SipOut::Ack(ack));
                }
                s.dialog = Some(d);
                s.peer_allow = resp.headers.get_raw("Allow");
                self.events.push_back(DeferredEvent::Started {
                    session: id,
                    mode: DeferredMode::Retrieval,
                });
            }
            Err(e) => {
                self.sessions.remove(&id);
                self.events.push_back(DeferredEvent::RetrievalFailed {
                    status: Some(code),
                    reason: format!("unusable 200 from the store: {e}"),
                    warning: None,
                });
            }
        }
    }

    fn summary_response(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, resp: Response) {
        let code = resp.status_code.code();
        let Some(w) = self.summary.as_mut() else {
            return;
        };
        if matches!(code, 401 | 407) && w.auth_tries < 2 {
            w.auth_tries += 1;
            if super::chat::answer_challenge(ctx.digest, &resp, w.auth_tries - 1) {
                let out = w.out.clone();
                if let Some(mut out) = out {
                    w.cseq += 1;
                    out.cseq = w.cseq;
                    if let Some(req) = self.build(ctx, &out) {
                        self.requests.push_back((Tracked::Summary, req));
                    }
                }
                return;
            }
        }
        w.auth_tries = 0;
        if w.ended {
            return;
        }
        if (200..300).contains(&code) {
            w.to_tag = to_tag(&resp.headers);
            w.remote_target = resp.headers.get_raw("Contact").map(|c| super::outgoing::uri_of(&c));
            let expires = resp
                .headers
                .get_raw("Expires")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(u64::from(SUMMARY_EXPIRES));
            // refresh before it runs out (RFC 6665 §4.1.2.1)
            w.refresh_at = Some(now + Duration::from_secs(expires.saturating_mul(9) / 10).max(Duration::from_secs(1)));
        } else {
            w.ended = true;
            self.events.push_back(DeferredEvent::WaitingUnavailable {
                reason: format!("{code} {}", reason_phrase(&resp.status_code)),
            });
        }
    }

    /// RFC 3842 §3.4 / RFC 6665 §4.1.3: 200, then the count.
    fn on_summary_notify(&mut self, _ctx: &mut ChatCtx<'_>, _now: Instant, key: &TsxKey, req: &Request) {
        let is_summary = req
            .headers
            .get_raw("Event")
            .is_some_and(|e| e.split(';').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("message-summary")));
        if !is_summary {
            self.respond(key, req, 489, None, vec![]);
            return;
        }
        match summary::MessageSummary::parse(&req.body) {
            Ok(s) => {
                self.respond(key, req, 200, None, vec![]);
                self.events.push_back(DeferredEvent::Waiting {
                    count: if s.waiting { s.new_messages() } else { 0 },
                    account: s.account,
                });
            }
            Err(e) if req.body.is_empty() => {
                // RFC 6665 §4.1.3: a NOTIFY without state is still answered
                tracing::debug!(error = %e, "message-summary NOTIFY without a body");
                self.respond(key, req, 200, None, vec![]);
            }
            Err(e) => {
                let w = format!("399 {} \"{e}\"", self.local.sip_local.ip());
                self.respond(key, req, 400, None, vec![make_header("Warning", &w)]);
            }
        }
        if req
            .headers
            .get_raw("Subscription-State")
            .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"))
            && let Some(w) = self.summary.as_mut()
        {
            w.refresh_at = None;
            if !w.ended {
                w.ended = true;
                self.events.push_back(DeferredEvent::WaitingUnavailable {
                    reason: "the server ended the message-summary subscription".into(),
                });
            }
        }
    }

    fn end(&mut self, id: DeferredSessionId) {
        let Some(s) = self.sessions.remove(&id) else {
            return;
        };
        let conns: Vec<MsrpConn> = self
            .conns
            .iter()
            .filter(|(_, (sid, _))| *sid == id)
            .map(|(c, _)| *c)
            .collect();
        for conn in conns {
            self.conns.remove(&conn);
            self.msrp_out.push_back(MsrpOut::Close { conn });
        }
        self.events.push_back(DeferredEvent::Ended {
            session: id,
            mode: s.mode,
            received: s.received,
        });
    }

    // ---- MSRP in -------------------------------------------------------

    /// Is this connection (or, for a new one, its first bytes' To-Path) ours?
    /// The store connects and sends its first SEND at once; its To-Path,
    /// on the second line, names one of our session ids (RFC 4975 §7.3).
    pub fn claims_conn(&self, conn: MsrpConn, bytes: &[u8]) -> bool {
        if self.conns.contains_key(&conn) {
            return true;
        }
        if self.sessions.is_empty() {
            return false;
        }
        let head = &bytes[..bytes.len().min(2048)];
        let text = String::from_utf8_lossy(head);
        let Some(to_path) = text
            .lines()
            .find(|l| l.len() > 8 && l[..8].eq_ignore_ascii_case("to-path:"))
        else {
            return false;
        };
        self.session_by_path(to_path).is_some()
    }

    fn session_by_path(&self, to_path: &str) -> Option<DeferredSessionId> {
        let value = to_path.split_once(':').map(|(_, v)| v).unwrap_or(to_path);
        let sids: Vec<String> = value
            .split_whitespace()
            .filter_map(|u| MsrpUri::parse(u.trim()).ok())
            .filter_map(|u| u.session_id)
            .collect();
        self.sessions
            .iter()
            .find(|(_, s)| sids.iter().any(|x| *x == s.msrp_sid))
            .map(|(id, _)| *id)
    }

    /// Bytes from a connection [`Self::claims_conn`] accepted.
    pub fn msrp_data(&mut self, conn: MsrpConn, bytes: &[u8]) {
        if !self.conns.contains_key(&conn) {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).into_owned();
            let id = text
                .lines()
                .find(|l| l.len() > 8 && l[..8].eq_ignore_ascii_case("to-path:"))
                .and_then(|l| self.session_by_path(l));
            let Some(id) = id else {
                return;
            };
            self.conns.insert(conn, (id, MsrpParser::new(ParserConfig::default())));
        }
        let mut frames = Vec::new();
        let mut fatal = false;
        let mut id = 0;
        if let Some((sid, parser)) = self.conns.get_mut(&conn) {
            id = *sid;
            parser.push(bytes);
            while let Some(r) = parser.next() {
                match r {
                    Ok(f) => frames.push(f),
                    Err(e) => {
                        tracing::debug!(error = %e, conn, "deferred MSRP framing error");
                        fatal |= e.is_fatal();
                    }
                }
            }
        }
        for f in frames {
            self.on_frame(id, conn, f);
        }
        if fatal {
            self.conns.remove(&conn);
            self.msrp_out.push_back(MsrpOut::Close { conn });
        }
    }

    /// A connection closed. The store closes it just before its BYE
    /// (seed 002 D.2 step 10); a store that died sends none, so the session
    /// ends after [`CLOSE_GRACE`] without one.
    pub fn msrp_closed(&mut self, now: Instant, conn: MsrpConn) -> bool {
        let Some((id, _)) = self.conns.remove(&conn) else {
            return false;
        };
        if let Some(s) = self.sessions.get_mut(&id) {
            s.close_deadline = Some(now + CLOSE_GRACE);
        }
        true
    }

    fn answer_frame(&mut self, conn: MsrpConn, f: &MsrpMessage, code: u16, comment: Option<&str>) {
        if let Some(r) = f.response(code, comment)
            && let Ok(bytes) = r.to_bytes()
        {
            self.msrp_out.push_back(MsrpOut::Send { conn, bytes });
        }
    }

    /// Seed 002 D.2 steps 8–9: one SEND (or chunk); the 200 goes after
    /// the message is taken, so the store deletes only what we have.
    fn on_frame(&mut self, id: DeferredSessionId, conn: MsrpConn, f: MsrpMessage) {
        if !f.is_request() {
            return;
        }
        if f.method() != Some(&MsrpMethod::Send) {
            // RFC 4975 §7.3 / §12: REPORTs get nothing, unknown methods 501
            self.answer_frame(conn, &f, 501, None);
            return;
        }
        let body = f.body.clone().unwrap_or_default();
        let mid = f.message_id().unwrap_or_default().to_string();
        let Some(s) = self.sessions.get_mut(&id) else {
            self.answer_frame(conn, &f, 481, None);
            return;
        };
        let whole = match f.flag {
            ContinuationFlag::Continuation => {
                let e = s
                    .partial
                    .entry(mid)
                    .or_insert_with(|| (f.content_type().unwrap_or_default().to_string(), Vec::new()));
                e.1.extend_from_slice(&body);
                None
            }
            ContinuationFlag::Aborted => {
                s.partial.remove(&mid);
                None
            }
            ContinuationFlag::Complete => Some(match s.partial.remove(&mid) {
                Some((ct, mut head)) => {
                    head.extend_from_slice(&body);
                    (ct, head)
                }
                None => (f.content_type().unwrap_or_default().to_string(), body),
            }),
        };
        let Some((ct, body)) = whole else {
            self.answer_frame(conn, &f, 200, None);
            return;
        };
        if body.is_empty() {
            // RFC 4975 §5.4: a bodiless SEND binds the connection
            self.answer_frame(conn, &f, 200, None);
            return;
        }
        match unwrap::unwrap_deferred(&ct, &body) {
            Ok(message) => {
                self.answer_frame(conn, &f, 200, None);
                if self.seen.insert(message.key.clone()) {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.received += 1;
                    }
                    self.events.push_back(DeferredEvent::Message { session: id, message });
                } else {
                    tracing::info!(key = %message.key, "deferred message already shown: dropped");
                    self.events.push_back(DeferredEvent::Duplicate {
                        session: id,
                        key: message.key,
                    });
                }
            }
            Err(e) => {
                // RFC 4975 §7.3.1: 415 for a type we do not take; the store keeps it
                let code = if matches!(e, UnwrapError::UnsupportedType(_)) { 415 } else { 400 };
                self.answer_frame(conn, &f, code, None);
                self.events.push_back(DeferredEvent::Unreadable {
                    session: id,
                    reason: e.to_string(),
                });
            }
        }
    }

    // ---- time and output -----------------------------------------------

    pub fn handle_timeout(&mut self, ctx: &mut ChatCtx<'_>, now: Instant) {
        let server = (self.local.transport, self.server_hint());
        let mut gave_up: Vec<DeferredSessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.close_deadline.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for (id, s) in self.sessions.iter_mut() {
            let Some(ok) = s.ok.as_mut() else { continue };
            if ok.give_up <= now {
                gave_up.push(*id);
                continue;
            }
            if ok.next <= now {
                if let Some(to) = server.1 {
                    self.sip_out.push_back(SipOut::Raw(Transmit {
                        to,
                        transport: server.0,
                        message: SipMessage::Response(ok.response.clone()),
                    }));
                }
                ok.interval = (ok.interval * 2).min(T2);
                ok.next = now + ok.interval;
            }
        }
        // RFC 3261 §13.3.1.4: no ACK in 64·T1, the session is over
        for id in gave_up {
            self.end(id);
        }
        if let Some(w) = self.summary.as_mut()
            && w.refresh_at.is_some_and(|t| t <= now)
        {
            w.refresh_at = None;
            self.subscribe(ctx, SUMMARY_EXPIRES);
        }
    }

    /// Where retransmitted 2xx go: the server (every request comes from it).
    fn server_hint(&self) -> Option<SocketAddr> {
        self.server
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| s.ok.as_ref().map(|o| o.next.min(o.give_up)))
            .chain(self.sessions.values().filter_map(|s| s.close_deadline))
            .chain(self.summary.as_ref().and_then(|w| w.refresh_at))
            .min()
    }

    /// Hands our SIP to `layer`: requests as client transactions to
    /// `server`, responses through their transactions, ACKs as they are.
    pub fn flush_sip(&mut self, layer: &mut TransactionLayer, now: Instant, server: SocketAddr, transport: Transport) {
        self.server = Some(server);
        while let Some((t, req)) = self.requests.pop_front() {
            match layer.send_request(now, req, server, transport) {
                Ok(key) => {
                    self.keys.insert(key, t);
                }
                Err(e) => tracing::debug!(error = %e, "deferred request not sent"),
            }
        }
        while let Some(o) = self.sip_out.pop_front() {
            match o {
                SipOut::Request(req) => {
                    if let Err(e) = layer.send_request(now, req, server, transport) {
                        tracing::debug!(error = %e, "deferred request not sent");
                    }
                }
                SipOut::Response { key, response } => {
                    if let Err(e) = layer.send_response(now, &key, response) {
                        tracing::debug!(error = %e, "deferred response not sent");
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
    }

    pub fn poll_msrp(&mut self) -> Option<MsrpOut> {
        self.msrp_out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<DeferredEvent> {
        self.events.pop_front()
    }
}
