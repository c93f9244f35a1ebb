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
use crate::proto::msrp::{
    ContinuationFlag, MsrpMessage, MsrpMethod, MsrpParser, MsrpUri, ParserConfig,
};
use crate::proto::sdp::{
    ConnectionAddress, Direction, MsrpAnswerParams, MsrpMedia, Sdp, Setup, SetupPreference,
    parse_sdp,
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
pub const DEFERRED_WRAPPED_TYPES: &[&str] = &[
    "message/msrp",
    "message/sip",
    "message/cpim",
    "text/plain",
    "*",
];
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
    /// Connections made to us, not yet claimed: their first bytes.
    fresh: HashMap<MsrpConn, Vec<u8>>,
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
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        return None;
    }
    parse_sdp(body).ok()?.msrp().find(|m| m.port != 0).cloned()
}

fn typed_via(local: SocketAddr, transport: Transport, branch: &str) -> Option<rsip::typed::Via> {
    match make_header(
        "Via",
        &super::chat::via(local, transport, branch).to_string(),
    ) {
        rsip::Header::Via(v) => v.typed().ok(),
        _ => None,
    }
}

/// An MSRP `To-Path:` header line (RFC 4975 §7.1)?
fn is_to_path(line: &str) -> bool {
    line.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("to-path:"))
}

/// Where the bytes of an MSRP connection go ([`Deferred::route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpRoute {
    /// Taken by the deferred sessions.
    Ours,
    /// Not ours: these bytes (or, `None`, the bytes given) go to the chats.
    NotOurs(Option<Vec<u8>>),
    /// A new connection whose first To-Path is not complete yet: held.
    Undecided,
}

/// How much of a new connection's start is held while its To-Path is read.
const MAX_HELD: usize = 8192;

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
        && from.to_ascii_lowercase().contains(
            &deferred_uri
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        );
    let automata = req.headers.get_all_raw("Contact").iter().any(|c| {
        c.to_ascii_lowercase()
            .split(';')
            .any(|p| p.trim() == "automata")
    });
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
            fresh: HashMap::new(),
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

    fn new_session(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        mode: DeferredMode,
        call_id: String,
        local_tag: String,
    ) -> DeferredSessionId {
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
        let sid = self
            .sessions
            .get(&id)
            .map(|s| s.msrp_sid.clone())
            .unwrap_or_default();
        let l = self.local.msrp_local;
        // Step 4.a: recvonly; RFC 6135: we listen (passive), the store connects.
        let mut media = MsrpMedia::offer(
            l.port(),
            ConnectionAddress::Ip(l.ip()),
            vec![self.our_path(&sid)],
            DEFERRED_ACCEPT_TYPES,
        );
        media.accept_wrapped_types = DEFERRED_WRAPPED_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect();
        media.direction = Direction::RecvOnly;
        media.setup = Some(Setup::Passive);
        let sdp = Sdp::new(
            "isc",
            u64::from(id as u32).wrapping_add(1),
            ConnectionAddress::Ip(l.ip()),
        )
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
        if self
            .summary
            .as_ref()
            .is_some_and(|w| !w.ended && w.to_tag.is_some())
        {
            self.subscribe(ctx, 0);
        }
    }

    // ---- SIP in --------------------------------------------------------

    /// Offers a transaction-layer event; gives it back when it is not ours.
    pub fn handle_layer_event(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        ev: LayerEvent,
    ) -> Option<LayerEvent> {
        match ev {
            LayerEvent::NewRequest {
                key,
                request,
                source,
                transport,
            } => self
                .handle_request(ctx, now, key, request)
                .map(|(key, request)| LayerEvent::NewRequest {
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
                match self
                    .sessions
                    .values_mut()
                    .find(|s| s.call_id == cid && s.mode == DeferredMode::Push)
                {
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
            LayerEvent::Timeout { key } | LayerEvent::TransportError { key }
                if self.keys.contains_key(&key) =>
            {
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

    fn respond(
        &mut self,
        key: &TsxKey,
        req: &Request,
        code: u16,
        tag: Option<&str>,
        extra: Vec<rsip::Header>,
    ) {
        let resp = response_with(req, code, tag, None, extra);
        self.sip_out.push_back(SipOut::Response {
            key: key.clone(),
            response: resp,
        });
    }

    fn handle_request(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        key: TsxKey,
        req: Request,
    ) -> Option<(TsxKey, Request)> {
        let cid = call_id(&req.headers).unwrap_or_default();
        if req.method == Method::Notify && self.summary.as_ref().is_some_and(|w| w.call_id == cid) {
            self.on_summary_notify(ctx, now, &key, &req);
            return None;
        }
        if let Some(ours) = to_tag(&req.headers) {
            let Some(id) = self
                .sessions
                .iter()
                .find(|(_, s)| s.call_id == cid && s.local_tag == ours)
                .map(|(id, _)| *id)
            else {
                // another dialog's request: not ours
                return Some((key, req));
            };
            match req.method {
                // seed 002 D.2 steps 11–12
                Method::Bye => {
                    self.respond(&key, &req, 200, None, vec![]);
                    self.end(id);
                }
                Method::Update | Method::Options => self.respond(
                    &key,
                    &req,
                    200,
                    None,
                    vec![make_header("Allow", DEFERRED_ALLOW)],
                ),
                // RFC 3261 §8.2.1
                _ => self.respond(
                    &key,
                    &req,
                    405,
                    None,
                    vec![make_header("Allow", DEFERRED_ALLOW)],
                ),
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
        let sid = self
            .sessions
            .get(&id)
            .map(|s| s.msrp_sid.clone())
            .unwrap_or_default();
        let l = self.local.msrp_local;
        let offer = sdp_of(&req.headers, &req.body);
        let params = MsrpAnswerParams {
            port: l.port(),
            connection: ConnectionAddress::Ip(l.ip()),
            path: vec![self.our_path(&sid)],
            accept_types: DEFERRED_ACCEPT_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            accept_wrapped_types: DEFERRED_WRAPPED_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
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
                self.respond(
                    &key,
                    &req,
                    488,
                    Some(&tag),
                    vec![make_header("Warning", &w)],
                );
                tracing::info!(%why, "deferred push refused");
                return;
            }
        };
        let body = Sdp::new(
            "isc",
            u64::from(id as u32).wrapping_add(1),
            ConnectionAddress::Ip(l.ip()),
        )
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
            extra.push(make_header(
                "Session-Expires",
                &format!("{secs};refresher=uac"),
            ));
            extra.push(make_header("Require", "timer"));
        }
        let mut resp = response_with(&req, 200, Some(&tag), None, extra);
        resp.headers.remove_named("Content-Length");
        resp.headers
            .push(make_header("Content-Type", "application/sdp"));
        resp.headers
            .push(make_header("Content-Length", &body.len().to_string()));
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
        self.sip_out.push_back(SipOut::Response {
            key,
            response: resp,
        });
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
            w.remote_target = resp
                .headers
                .get_raw("Contact")
                .map(|c| super::outgoing::uri_of(&c));
            let expires = resp
                .headers
                .get_raw("Expires")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(u64::from(SUMMARY_EXPIRES));
            // refresh before it runs out (RFC 6665 §4.1.2.1)
            w.refresh_at = Some(
                now + Duration::from_secs(expires.saturating_mul(9) / 10)
                    .max(Duration::from_secs(1)),
            );
        } else {
            w.ended = true;
            self.events.push_back(DeferredEvent::WaitingUnavailable {
                reason: format!("{code} {}", reason_phrase(&resp.status_code)),
            });
        }
    }

    /// RFC 3842 §3.4 / RFC 6665 §4.1.3: 200, then the count.
    fn on_summary_notify(
        &mut self,
        _ctx: &mut ChatCtx<'_>,
        _now: Instant,
        key: &TsxKey,
        req: &Request,
    ) {
        let is_summary = req.headers.get_raw("Event").is_some_and(|e| {
            e.split(';')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("message-summary"))
        });
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
        let Some(to_path) = text.lines().find(|l| is_to_path(l)) else {
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
            .find(|(_, s)| sids.contains(&s.msrp_sid))
            .map(|(id, _)| *id)
    }

    /// A peer connected to our MSRP listener: its first bytes decide whose it is.
    pub fn msrp_accepted(&mut self, conn: MsrpConn) {
        self.fresh.insert(conn, Vec::new());
    }

    /// Routes bytes of `conn`: ours (taken here), not ours (for the chats),
    /// or held — a connection made to us is decided by the To-Path of its
    /// first request (RFC 4975 §7.3 / RFC 6135), which may come in pieces.
    pub fn route(&mut self, conn: MsrpConn, bytes: &[u8]) -> MsrpRoute {
        if self.conns.contains_key(&conn) {
            self.msrp_data(conn, bytes);
            return MsrpRoute::Ours;
        }
        let Some(held) = self.fresh.get_mut(&conn) else {
            return MsrpRoute::NotOurs(None);
        };
        held.extend_from_slice(bytes);
        let text = String::from_utf8_lossy(&held[..held.len().min(MAX_HELD)]).into_owned();
        // the To-Path line is complete when a line break follows it
        let complete = text
            .rsplit_once("\r\n")
            .is_some_and(|(lines, _)| lines.split("\r\n").any(is_to_path));
        if !complete && held.len() < MAX_HELD && !text.contains("\r\n\r\n") {
            return MsrpRoute::Undecided;
        }
        let held = self.fresh.remove(&conn).unwrap_or_default();
        if self.claims_conn(conn, &held) {
            self.msrp_data(conn, &held);
            MsrpRoute::Ours
        } else {
            MsrpRoute::NotOurs(Some(held))
        }
    }

    /// Bytes from a connection [`Self::claims_conn`] accepted.
    pub fn msrp_data(&mut self, conn: MsrpConn, bytes: &[u8]) {
        if !self.conns.contains_key(&conn) {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).into_owned();
            let id = text
                .lines()
                .find(|l| is_to_path(l))
                .and_then(|l| self.session_by_path(l));
            let Some(id) = id else {
                return;
            };
            self.conns
                .insert(conn, (id, MsrpParser::new(ParserConfig::default())));
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
        self.fresh.remove(&conn);
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
                let e = s.partial.entry(mid).or_insert_with(|| {
                    (f.content_type().unwrap_or_default().to_string(), Vec::new())
                });
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
                    self.events.push_back(DeferredEvent::Message {
                        session: id,
                        message,
                    });
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
                let code = if matches!(e, UnwrapError::UnsupportedType(_)) {
                    415
                } else {
                    400
                };
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
    pub fn flush_sip(
        &mut self,
        layer: &mut TransactionLayer,
        now: Instant,
        server: SocketAddr,
        transport: Transport,
    ) {
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

#[cfg(test)]
mod tests {
    //! The machine driven through a real [`TransactionLayer`], no sockets:
    //! SIP in as bytes, SIP out from the layer, MSRP as [`MsrpOut`].
    use super::*;
    use crate::proto::ids::SeqIds;
    use crate::proto::sip::digest::DigestClient;
    use crate::proto::sip::message::{parse_message, to_bytes};
    use crate::server::deferred_message_store::function::encapsulate;
    use crate::server::deferred_message_store::{DeferredKind, DeferredMessage, NewDeferred};

    const SERVER: &str = "127.0.0.1:5060";

    struct T {
        d: Deferred,
        layer: TransactionLayer,
        ids: SeqIds,
        digest: DigestClient,
        now: Instant,
        sip: Vec<SipMessage>,
        msrp: Vec<MsrpOut>,
        events: Vec<DeferredEvent>,
        conns: HashSet<MsrpConn>,
    }

    impl T {
        fn new() -> Self {
            T {
                d: Deferred::new(DeferredLocal {
                    aor: "sip:bob@isc.local".into(),
                    deferred_uri: "sip:Deferred@isc.local".into(),
                    contact_uri: "sip:bob@127.0.0.1:5080;transport=udp".into(),
                    sip_local: "127.0.0.1:5080".parse().unwrap(),
                    transport: Transport::Udp,
                    msrp_local: "127.0.0.1:7000".parse().unwrap(),
                    user_agent: "isc/test".into(),
                }),
                layer: TransactionLayer::new(),
                ids: SeqIds::new("u"),
                digest: DigestClient::new("bob", "bob"),
                now: Instant::now(),
                sip: Vec::new(),
                msrp: Vec::new(),
                events: Vec::new(),
                conns: HashSet::new(),
            }
        }

        fn pump(&mut self) {
            loop {
                let mut any = false;
                while let Some(ev) = self.layer.poll_event() {
                    any = true;
                    let mut ctx = ChatCtx {
                        ids: &mut self.ids,
                        digest: &mut self.digest,
                    };
                    let rest = self.d.handle_layer_event(&mut ctx, self.now, ev);
                    assert!(
                        !matches!(
                            rest,
                            Some(LayerEvent::NewRequest { .. } | LayerEvent::Response { .. })
                        ),
                        "not taken: {rest:?}"
                    );
                }
                self.d.flush_sip(
                    &mut self.layer,
                    self.now,
                    SERVER.parse().unwrap(),
                    Transport::Udp,
                );
                while let Some(t) = self.layer.poll_transmit() {
                    any = true;
                    self.sip.push(t.message);
                }
                while let Some(o) = self.d.poll_msrp() {
                    self.msrp.push(o);
                }
                while let Some(e) = self.d.poll_event() {
                    self.events.push(e);
                }
                if !any {
                    break;
                }
            }
        }

        fn server_sends(&mut self, text: &str) {
            let msg = parse_message(text.as_bytes()).unwrap();
            self.layer
                .handle_message(self.now, msg, SERVER.parse().unwrap(), Transport::Udp)
                .unwrap();
            self.pump();
        }

        fn msrp_in(&mut self, conn: MsrpConn, bytes: &[u8]) {
            if self.conns.insert(conn) {
                self.d.msrp_accepted(conn);
            }
            assert_eq!(self.d.route(conn, bytes), MsrpRoute::Ours);
            self.pump();
        }

        fn timeout(&mut self, at: Instant) {
            self.now = at;
            self.layer.handle_timeout(at);
            let mut ctx = ChatCtx {
                ids: &mut self.ids,
                digest: &mut self.digest,
            };
            self.d.handle_timeout(&mut ctx, at);
            self.pump();
        }

        fn last_response(&self) -> Response {
            self.sip
                .iter()
                .rev()
                .find_map(|m| match m {
                    SipMessage::Response(r) => Some(r.clone()),
                    _ => None,
                })
                .expect("a response")
        }

        fn msrp_responses(&self) -> Vec<u16> {
            self.msrp
                .iter()
                .filter_map(|o| match o {
                    MsrpOut::Send { bytes, .. } => {
                        crate::proto::msrp::parse_message(bytes).ok()?.code()
                    }
                    _ => None,
                })
                .collect()
        }
    }

    fn push_invite(call: &str, direction: &str) -> String {
        let sdp = format!(
            "v=0\r\no=isc 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 6000 TCP/MSRP *\r\na=accept-types:message/sip message/cpim multipart/mixed\r\na=accept-wrapped-types:message/msrp *\r\na=path:msrp://127.0.0.1:6000/store1;tcp\r\na=setup:active\r\na={direction}\r\n"
        );
        format!(
            "INVITE sip:bob@127.0.0.1:5080;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{call}\r\nMax-Forwards: 70\r\nFrom: <sip:Deferred@isc.local>;tag=st\r\nTo: <sip:bob@isc.local>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:127.0.0.1:5060;transport=udp>;+g.oma.sip-im;automata\r\nSession-Expires: 1800;refresher=uac\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    fn stored_pager(n: u32) -> Vec<u8> {
        let m = DeferredMessage {
            id: i64::from(n),
            message: NewDeferred {
                recipient: "sip:bob@isc.local".into(),
                sender: "sip:carol@isc.local".into(),
                key: String::new(),
                kind: DeferredKind::Pager,
                call_id: format!("c{n}"),
                message_id: None,
                request: format!("MESSAGE sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKp{n}\r\nFrom: <sip:carol@isc.local>;tag=c\r\nTo: <sip:bob@isc.local>\r\nCall-ID: c{n}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhi #{n}").into_bytes(),
                response: Vec::new(),
                msrp: Vec::new(),
                arrived_unix_ms: 1_000_000_000_000 + i64::from(n) * 1000,
            },
        };
        let (ct, body) = encapsulate(&m);
        send_bytes(&format!("t{n}"), &format!("m{n}"), &ct, &body, '$')
    }

    fn send_bytes(tid: &str, mid: &str, ct: &str, body: &[u8], flag: char) -> Vec<u8> {
        let mut out = format!(
            "MSRP {tid} SEND\r\nTo-Path: msrp://127.0.0.1:7000/{sid};tcp\r\nFrom-Path: msrp://127.0.0.1:6000/store1;tcp\r\nMessage-ID: {mid}\r\nContent-Type: {ct}\r\n\r\n",
            sid = "SID"
        )
        .into_bytes();
        out.extend_from_slice(body);
        out.extend_from_slice(format!("\r\n-------{tid}{flag}\r\n").as_bytes());
        out
    }

    /// Our path's session id, from the SDP answer we sent.
    fn our_sid(r: &Response) -> String {
        let m = parse_sdp(&r.body).unwrap().msrp().next().cloned().unwrap();
        MsrpUri::parse(m.path.last().unwrap())
            .unwrap()
            .session_id
            .unwrap()
    }

    fn to(sid: &str, bytes: Vec<u8>) -> Vec<u8> {
        String::from_utf8(bytes)
            .unwrap()
            .replace("/SID;", &format!("/{sid};"))
            .into_bytes()
    }

    #[test]
    fn push_answered_recvonly_passive_and_each_message_once() {
        let mut t = T::new();
        t.server_sends(&push_invite("p1", "sendonly"));
        let ok = t.last_response();
        assert_eq!(ok.status_code.code(), 200);
        let sdp = String::from_utf8_lossy(&ok.body).to_string();
        assert!(
            sdp.contains("a=recvonly") && sdp.contains("a=setup:passive"),
            "{sdp}"
        );
        assert!(sdp.contains("a=path:msrp://127.0.0.1:7000/"), "{sdp}");
        assert_eq!(
            ok.headers.get_raw("Session-Expires").as_deref(),
            Some("1800;refresher=uac")
        );
        assert!(matches!(
            t.events[..],
            [DeferredEvent::Started {
                mode: DeferredMode::Push,
                ..
            }]
        ));
        let sid = our_sid(&ok);
        // Not ours: another session id on a fresh connection; the bytes
        // held while its To-Path came in pieces go back whole.
        let other = stored_pager(0);
        t.d.msrp_accepted(9);
        assert_eq!(t.d.route(9, &other[..12]), MsrpRoute::Undecided);
        assert_eq!(
            t.d.route(9, &other[12..]),
            MsrpRoute::NotOurs(Some(other.clone()))
        );
        assert_eq!(t.d.route(9, b"more"), MsrpRoute::NotOurs(None));
        // Ours, its first SEND cut inside the To-Path line.
        let first = to(&sid, stored_pager(4));
        t.d.msrp_accepted(2);
        assert_eq!(t.d.route(2, &first[..30]), MsrpRoute::Undecided);
        assert_eq!(t.d.route(2, &first[30..]), MsrpRoute::Ours);
        t.pump();
        assert!(
            matches!(t.events.last(), Some(DeferredEvent::Message { message, .. }) if message.text() == "hi #4")
        );

        t.msrp_in(1, &to(&sid, stored_pager(1)));
        t.msrp_in(1, &to(&sid, stored_pager(2)));
        // The store resends message 1 (its delete was lost): 200, not shown.
        t.msrp_in(1, &to(&sid, stored_pager(1)));
        assert_eq!(t.msrp_responses(), [200, 200, 200, 200]);
        let shown: Vec<(String, Option<i64>)> = t
            .events
            .iter()
            .skip(2)
            .filter_map(|e| match e {
                DeferredEvent::Message { message, .. } => Some((message.text(), message.sent_unix)),
                _ => None,
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("hi #1".to_string(), Some(1_000_000_001)),
                ("hi #2".to_string(), Some(1_000_000_002))
            ]
        );
        assert!(
            matches!(t.events.last(), Some(DeferredEvent::Duplicate { key, .. }) if key == "sip:c1 1")
        );

        // A type we do not take: 415, the store keeps it.
        t.msrp_in(
            1,
            &to(
                &sid,
                send_bytes("tx", "mx", "application/pdf", b"%PDF", '$'),
            ),
        );
        assert_eq!(t.msrp_responses().last(), Some(&415));
        assert!(matches!(
            t.events.last(),
            Some(DeferredEvent::Unreadable { .. })
        ));

        // A chunked message: 200 per chunk, one message.
        let whole = stored_pager(3);
        let body_at = whole.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body_end = whole.len() - "\r\n-------t3$\r\n".len();
        let (a, b) = whole[body_at..body_end].split_at(40);
        let ct = "message/sip";
        t.msrp_in(1, &to(&sid, send_bytes("c1", "m3", ct, a, '+')));
        t.msrp_in(1, &to(&sid, send_bytes("c2", "m3", ct, b, '$')));
        assert!(
            matches!(t.events.last(), Some(DeferredEvent::Message { message, .. }) if message.text() == "hi #3")
        );

        // Seed 002 D.2 steps 11–12: the BYE.
        t.server_sends("BYE sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbye\r\nFrom: <sip:Deferred@isc.local>;tag=st\r\nTo: <sip:bob@isc.local>;tag=TAG\r\nCall-ID: p1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n".replace("TAG", &crate::proto::sip::build::to_tag(&ok.headers).unwrap()).as_str());
        assert_eq!(t.last_response().status_code.code(), 200);
        assert!(matches!(
            t.events.last(),
            Some(DeferredEvent::Ended { received: 4, .. })
        ));
        assert_eq!(t.d.active_sessions(), 0);
        assert_eq!(t.d.shown(), 4);
    }

    #[test]
    fn the_200_is_repeated_until_the_ack_and_a_silent_store_ends_it() {
        let mut t = T::new();
        let t0 = t.now;
        t.server_sends(&push_invite("p2", "sendonly"));
        let oks = |t: &T| {
            t.sip
                .iter()
                .filter(|m| matches!(m, SipMessage::Response(r) if r.status_code.code() == 200))
                .count()
        };
        assert_eq!(oks(&t), 1);
        t.timeout(t0 + T1);
        assert_eq!(oks(&t), 2, "RFC 3261 §13.3.1.4: again after T1");
        t.timeout(t0 + 64 * T1);
        assert!(
            matches!(
                t.events.last(),
                Some(DeferredEvent::Ended { received: 0, .. })
            ),
            "{:?}",
            t.events
        );

        // A store that dies after connecting: the session ends after the grace.
        let mut t = T::new();
        t.server_sends(&push_invite("p3", "sendonly"));
        let sid = our_sid(&t.last_response());
        let ack = "ACK sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack\r\nFrom: <sip:Deferred@isc.local>;tag=st\r\nTo: <sip:bob@isc.local>;tag=x\r\nCall-ID: p3\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";
        t.server_sends(ack);
        assert_eq!(t.d.poll_timeout(), None, "ACKed: nothing to repeat");
        t.msrp_in(4, &to(&sid, stored_pager(1)));
        assert!(t.d.msrp_closed(t.now, 4));
        assert!(!t.d.msrp_closed(t.now, 5), "not ours");
        let at = t.d.poll_timeout().unwrap();
        t.timeout(at);
        assert!(matches!(
            t.events.last(),
            Some(DeferredEvent::Ended { received: 1, .. })
        ));
    }

    #[test]
    fn requests_of_other_dialogs_go_back_to_the_user_agent() {
        let mut t = T::new();
        t.server_sends(&push_invite("p5", "sendonly"));
        for text in [
            "NOTIFY sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr1\r\nFrom: <sip:bob@isc.local>;tag=a\r\nTo: <sip:bob@isc.local>;tag=b\r\nCall-ID: reg-watch\r\nCSeq: 1 NOTIFY\r\nEvent: reg\r\nContent-Length: 0\r\n\r\n",
            "BYE sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr2\r\nFrom: <sip:carol@isc.local>;tag=a\r\nTo: <sip:bob@isc.local>;tag=b\r\nCall-ID: p5\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            "MESSAGE sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr3\r\nFrom: <sip:carol@isc.local>;tag=a\r\nTo: <sip:bob@isc.local>\r\nCall-ID: m\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
        ] {
            let msg = parse_message(text.as_bytes()).unwrap();
            t.layer
                .handle_message(t.now, msg, SERVER.parse().unwrap(), Transport::Udp)
                .unwrap();
            let ev = t.layer.poll_event().unwrap();
            let mut ctx = ChatCtx {
                ids: &mut t.ids,
                digest: &mut t.digest,
            };
            let back = t.d.handle_layer_event(&mut ctx, t.now, ev);
            assert!(
                matches!(back, Some(LayerEvent::NewRequest { .. })),
                "{text}"
            );
        }
        assert_eq!(
            t.d.active_sessions(),
            1,
            "the push is untouched by a BYE of another tag"
        );
    }

    #[test]
    fn a_chat_invite_is_not_a_push_and_a_bad_offer_gets_488() {
        let chat = push_invite("c9", "sendrecv")
            .replace("<sip:Deferred@isc.local>", "<sip:carol@isc.local>")
            .replace(";automata", "");
        let req = match parse_message(chat.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        };
        assert!(!is_push_invite(&req, "sip:Deferred@isc.local"));
        let push = match parse_message(push_invite("p", "sendonly").as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        };
        assert!(is_push_invite(&push, "sip:Deferred@isc.local"));
        // RFC 6135: a store that wants us to connect (passive) is refused.
        let mut t = T::new();
        t.server_sends(&push_invite("p4", "sendonly").replace("a=setup:active", "a=setup:passive"));
        let r = t.last_response();
        assert_eq!(r.status_code.code(), 488);
        assert!(
            r.headers
                .get_raw("Warning")
                .unwrap()
                .contains("must connect")
        );
        assert!(t.events.is_empty());
    }

    fn invite_sent(t: &T) -> Request {
        t.sip
            .iter()
            .rev()
            .find_map(|m| match m {
                SipMessage::Request(r) if r.method == Method::Invite => Some(r.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn answer(req: &Request, code: u16, extra: &str, body: &str) -> String {
        let mut text = String::from_utf8(to_bytes(&SipMessage::Response(response_with(
            req,
            code,
            Some("srv"),
            None,
            vec![],
        ))))
        .unwrap();
        text = text.replacen(
            "Content-Length: 0\r\n\r\n",
            &format!("{extra}Content-Length: {}\r\n\r\n{body}", body.len()),
            1,
        );
        text
    }

    #[test]
    fn retrieval_offers_recvonly_with_the_list_then_acks_or_reports() {
        let mut t = T::new();
        let mut ctx = ChatCtx {
            ids: &mut t.ids,
            digest: &mut t.digest,
        };
        t.d.command(
            &mut ctx,
            DeferredCommand::Retrieve {
                ids: vec!["m1".into(), "deferred:7".into()],
                service: None,
            },
        );
        t.pump();
        let inv = invite_sent(&t);
        assert_eq!(inv.uri.to_string(), "sip:Deferred@isc.local");
        let body = String::from_utf8_lossy(&inv.body).to_string();
        assert!(
            body.contains("a=recvonly") && body.contains("a=setup:passive"),
            "{body}"
        );
        assert!(
            body.contains("<entry uri=\"m1\"") && body.contains("deferred:7"),
            "{body}"
        );
        let sdp = "v=0\r\no=s 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 6000 TCP/MSRP *\r\na=path:msrp://127.0.0.1:6000/st;tcp\r\na=sendonly\r\na=setup:active\r\n";
        t.server_sends(&answer(&inv, 200, "Contact: <sip:127.0.0.1:5060>;automata\r\nAllow: INVITE, ACK, BYE\r\nContent-Type: application/sdp\r\n", sdp));
        assert!(
            t.sip
                .iter()
                .any(|m| matches!(m, SipMessage::Request(r) if r.method == Method::Ack)),
            "ACKed"
        );
        assert!(matches!(
            t.events.last(),
            Some(DeferredEvent::Started {
                mode: DeferredMode::Retrieval,
                ..
            })
        ));

        // A refusal: status, reason and the Warning's text for the user.
        let mut ctx = ChatCtx {
            ids: &mut t.ids,
            digest: &mut t.digest,
        };
        t.d.command(
            &mut ctx,
            DeferredCommand::Retrieve {
                ids: vec![],
                service: None,
            },
        );
        t.pump();
        let inv = invite_sent(&t);
        assert!(
            inv.headers
                .get_raw("Content-Type")
                .unwrap()
                .starts_with("application/sdp"),
            "none listed: all"
        );
        t.server_sends(&answer(
            &inv,
            403,
            "Warning: 399 isc.local \"the SDP must be recvonly\"\r\n",
            "",
        ));
        assert_eq!(
            t.events.last(),
            Some(&DeferredEvent::RetrievalFailed {
                status: Some(403),
                reason: "Forbidden".into(),
                warning: Some("the SDP must be recvonly".into())
            })
        );
    }

    #[test]
    fn message_summary_notify_gives_the_count() {
        let mut t = T::new();
        let mut ctx = ChatCtx {
            ids: &mut t.ids,
            digest: &mut t.digest,
        };
        t.d.command(&mut ctx, DeferredCommand::WatchWaiting);
        t.pump();
        let sub = match t.sip.last() {
            Some(SipMessage::Request(r)) if r.method == Method::Subscribe => r.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            sub.headers.get_raw("Event").as_deref(),
            Some("message-summary")
        );
        assert_eq!(
            sub.headers.get_raw("Accept").as_deref(),
            Some(summary::CONTENT_TYPE)
        );
        t.server_sends(&answer(
            &sub,
            200,
            "Expires: 600\r\nContact: <sip:127.0.0.1:5060>\r\n",
            "",
        ));
        let cid = sub.headers.get_raw("Call-ID").unwrap();
        let tag = crate::proto::sip::build::from_tag(&sub.headers).unwrap();
        let body = "Messages-Waiting: yes\r\nMessage-Account: sip:Deferred@isc.local\r\nText-Message: 4/0\r\n";
        t.server_sends(&format!("NOTIFY sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKn1\r\nFrom: <sip:bob@isc.local>;tag=srv\r\nTo: <sip:bob@isc.local>;tag={tag}\r\nCall-ID: {cid}\r\nCSeq: 1 NOTIFY\r\nEvent: message-summary\r\nSubscription-State: active;expires=600\r\nContent-Type: application/simple-message-summary\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        assert_eq!(t.last_response().status_code.code(), 200);
        assert_eq!(
            t.events.last(),
            Some(&DeferredEvent::Waiting {
                count: 4,
                account: Some("sip:Deferred@isc.local".into())
            })
        );
        // Refreshed in the dialog before it runs out (RFC 6665 §4.1.2.1).
        let at = t.d.poll_timeout().unwrap();
        assert!(at > t.now + Duration::from_secs(500));
        t.timeout(at);
        let refresh = t
            .sip
            .iter()
            .rev()
            .find_map(|m| match m {
                SipMessage::Request(r) if r.method == Method::Subscribe => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(refresh.headers.get_raw("Call-ID"), Some(cid));
        assert_eq!(
            crate::proto::sip::build::to_tag(&refresh.headers).as_deref(),
            Some("srv")
        );
    }
}
