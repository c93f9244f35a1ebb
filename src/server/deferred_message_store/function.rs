//! The Deferred Messaging Function, sans-IO (seed 002 D.2, seed 003
//! 12.4.2.x): stores what reaches a user with no registered device and
//! pushes it over MSRP on the user's next registration.
//!
//! Push (`offline_delivery = true`), per registered device:
//! INVITE (sendonly, Contact `automata`, Session-Expires) → 200 → ACK →
//! MSRP connection (we are active, RFC 6135) → one SEND per stored message,
//! oldest first, the next only after the previous one's 200, each removed
//! from the store on its 200 (seed 002 D.2 step 9) → BYE after the last.
//! One push per user at a time: a registration during a push adds nothing.
//!
//! Store (seed 003 12.4.2.1): a pager MESSAGE is stored, then answered 202
//! ([`DeferredFunction::on_offline_message`]); a chat session INVITE is
//! answered 200 on the user's behalf (Contact `automata`, Date, Server,
//! P-Asserted-Identity of the store), we connect to the originator's MSRP
//! path (so the offer must allow us to be active: `actpass` or `passive`,
//! else 488) and every SEND is stored before its MSRP 200.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::bodies::multipart::{Multipart, Part};
use crate::proto::msrp::{
    ByteRange, MsrpHeader, MsrpMessage, MsrpMethod, MsrpParser, MsrpPath, MsrpUri, ParserConfig,
};
use crate::proto::sdp::{ConnectionAddress, Direction, MsrpMedia, Sdp, Setup};
use crate::proto::sip::dialog::Dialog;
use crate::proto::sip::headers::{HeadersExt, make_header};
use crate::proto::sip::message::parse_message;
use crate::proto::sip::transaction::{Transmit, Transport, TsxKey};
use crate::server::b2bua::SipCtx;
use crate::server::core::SERVER_AGENT;
use crate::server::location_service::Binding;
use crate::server::msrp_relay::{ConnRef, LegId, RelayInput, RelayOutput};
use crate::server::proxy_core::Target;
use crate::server::sip_util::push_via;

use crate::server::history_store::{HistoryEntry, HistoryStore};

use super::{DeferredKind, DeferredMessage, DeferredStore, NewDeferred, StoreOutcome, pager_key};

/// The Contact of the store's own sessions: an automaton (RFC 3840 §9),
/// with the IM feature tag (seed 003 12.4.2.2 b.ii).
fn automata_contact(ctx: &SipCtx<'_>, transport: Transport) -> String {
    format!("{};+g.oma.sip-im;automata", ctx.contact(transport))
}

/// MSRP leg ids of this function start here (the CPM relay's are small).
pub const LEG_BASE: LegId = 1 << 62;
/// The IM release in User-Agent / Server (seed 003 Appendix F).
pub const IM_RELEASE: &str = "IM-serv/OMA1.0";
/// Session-Expires asked for on the push INVITE (RFC 4028), seconds.
pub const PUSH_SESSION_EXPIRES: u32 = 1800;
/// How long one instance holds the right to push a user's messages
/// ([`super::DeferredStore::lease_push`]); renewed by each push it starts,
/// given back when the push ends, run out if the instance died.
pub const PUSH_LEASE_MS: i64 = 60_000;
/// What the push session's dialog allows.
pub const PUSH_ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE";

/// What the function needs to know.
#[derive(Debug, Clone)]
pub struct DeferredConfig {
    pub domain: String,
    /// The MSRP listener (our address in SDP and MSRP URIs).
    pub msrp_local: SocketAddr,
    /// `sip:Deferred@domain`: the originator of pushes, the retrieval URI.
    pub deferred_uri: String,
    /// `sip:history@domain`: the history retrieval URI.
    pub history_uri: String,
    /// Per user (name): true = push on registration, false = retrieval.
    pub offline_delivery: HashMap<String, bool>,
    /// Wall clock, ms since the Unix epoch (arrival dates).
    pub wall_clock_ms: fn() -> i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushState {
    Inviting,
    Connecting,
    Sending,
    Ending,
}

/// Which of our entities a connection or leg belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Push(u64),
    Session(u64),
}

/// A chat session accepted on an offline user's behalf.
struct Inbound {
    recipient: String,
    sender: String,
    call_id: String,
    invite_bytes: Vec<u8>,
    ok_bytes: Vec<u8>,
    dialog: Dialog,
    local: MsrpUri,
    remote: MsrpPath,
    conn: Option<ConnRef>,
    parser: MsrpParser,
    /// Chunks of a message in progress: Message-ID → (first chunk, body so far).
    partial: HashMap<String, (MsrpMessage, Vec<u8>)>,
}

/// The biggest message a deferred session stores.
pub const MAX_DEFERRED_MESSAGE: usize = 4 * 1024 * 1024;

struct Push {
    recipient: String,
    target: Target,
    invite: rsip::Request,
    invite_key: TsxKey,
    dialog: Option<Dialog>,
    state: PushState,
    local: MsrpUri,
    remote: Option<MsrpPath>,
    leg: LegId,
    conn: Option<ConnRef>,
    parser: MsrpParser,
    queue: VecDeque<Item>,
    /// The SEND awaiting its 200: (transaction id, store row id if a
    /// deferred message).
    in_flight: Option<(String, Option<i64>)>,
    /// When the SEND in flight fails for lack of a response.
    in_flight_deadline: Option<Instant>,
    /// Started by a registration (holds the user's `busy` mark).
    from_registration: bool,
}

/// Which service URI an INVITE addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceUri {
    /// `Deferred@domain` (seed 003 12.1.1, 12.4.1).
    Deferred,
    /// `history@domain` (seed 003 13.1.3, 13.2.1.1).
    History,
}

/// Why a retrieval or history INVITE is refused: its status, reason and Warning text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetrievalRejection {
    #[error("not allowed to retrieve deferred messages")]
    NotAuthorised,
    #[error("deferred messages are pushed to this user (offline-delivery active)")]
    PolicyPush,
    #[error("the Request-URI is not owned by this message store")]
    NotOwned,
    #[error("the SDP must be recvonly")]
    NotRecvOnly,
    #[error("no P-Asserted-Identity")]
    NoAssertedIdentity,
    #[error("the INVITE carries no URI list")]
    NoUriList,
    #[error("no usable MSRP offer (setup actpass or passive needed)")]
    BadOffer,
    /// Seed 003 13.2.1.1 step 1 ("an appropriate reject code"): no history
    /// reference of the list names anything stored.
    #[error("no stored history for {0}")]
    UnknownReference(String),
    /// A Message-ID of a conversation the requester was not part of.
    #[error("history reference {0} belongs to another user's conversation")]
    ForeignReference(String),
}

impl RetrievalRejection {
    /// The one place mapping a refusal to a status (seed 003 12.4.1, 13.2.1.1).
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Self::NotOwned | Self::UnknownReference(_) => (404, "Not Found"),
            Self::NoUriList => (400, "Bad Request"),
            Self::BadOffer => (488, "Not Acceptable Here"),
            _ => (403, "Forbidden"),
        }
    }
}

/// What a push / retrieval / history session streams.
#[derive(Debug, Clone)]
enum Item {
    /// Removed from the store on its MSRP 200.
    Deferred(DeferredMessage),
    /// A history item, sent as stored (message/cpim with its DateTime).
    History(HistoryEntry),
}

/// The message-summary body type (RFC 3842 §5).
pub const MESSAGE_SUMMARY: &str = "application/simple-message-summary";
/// Longest message-summary subscription granted, seconds.
pub const SUMMARY_MAX_EXPIRES: u32 = 3600;

/// A watcher of a user's deferred messages (RFC 3842, seed 003 12.4.2.6).
struct SummarySub {
    aor: String,
    dialog: Dialog,
    dest: SocketAddr,
    transport: Transport,
    expires_at: std::time::Instant,
}

/// RFC 4975 §7.3: a SEND with no response for this long fails; the push
/// ends (BYE) and what was not confirmed stays stored.
pub const MSRP_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A 2xx we retransmit until its ACK (RFC 3261 §13.3.1.4: T1 doubling up
/// to T2, given up after 64·T1).
struct UnackedOk {
    key: TsxKey,
    response: rsip::Response,
    call_id: String,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// The function. See the module docs.
pub struct DeferredFunction {
    config: DeferredConfig,
    store: Box<dyn DeferredStore>,
    pushes: HashMap<u64, Push>,
    sessions: HashMap<u64, Inbound>,
    by_client: HashMap<TsxKey, u64>,
    by_leg: HashMap<LegId, Owner>,
    by_conn: HashMap<ConnRef, Owner>,
    busy: HashSet<String>,
    msrp_out: VecDeque<RelayOutput>,
    next: u64,
    summaries: Vec<SummarySub>,
    /// Our 2xx to INVITEs awaiting their ACK (RFC 3261 §13.3.1.4).
    unacked: Vec<UnackedOk>,
    /// Users whose message count changed since the last [`DeferredFunction::flush`].
    dirty: HashSet<String>,
    /// This instance's name in push leases ([`Self::with_lease_owner`]).
    lease_owner: String,
}

impl std::fmt::Debug for DeferredFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredFunction")
            .field("pushes", &self.pushes.len())
            .finish_non_exhaustive()
    }
}

impl DeferredFunction {
    pub fn new(config: DeferredConfig, store: Box<dyn DeferredStore>) -> Self {
        DeferredFunction {
            config,
            store,
            pushes: HashMap::new(),
            sessions: HashMap::new(),
            by_client: HashMap::new(),
            by_leg: HashMap::new(),
            by_conn: HashMap::new(),
            busy: HashSet::new(),
            msrp_out: VecDeque::new(),
            next: 0,
            summaries: Vec::new(),
            unacked: Vec::new(),
            dirty: HashSet::new(),
            lease_owner: "local".into(),
        }
    }

    /// Names this instance in push leases (default `local`). Instances
    /// sharing a store need distinct names; a restarted instance with the
    /// same name resumes its own lease at once.
    pub fn with_lease_owner(mut self, owner: String) -> Self {
        self.lease_owner = owner;
        self
    }

    pub fn store(&self) -> &dyn DeferredStore {
        self.store.as_ref()
    }

    /// Is `user` (name) a user whose messages we defer?
    pub fn serves(&self, user: &str) -> bool {
        self.config.offline_delivery.contains_key(user)
    }

    /// Number of pushes under way.
    pub fn active_pushes(&self) -> usize {
        self.pushes.len()
    }

    /// Seed 003 12.4.2.1: a pager MESSAGE for `recipient` (AOR) with no
    /// registered device. Stored before the caller answers; returns the
    /// status to answer (202 stored or already stored, 500 if not stored).
    pub fn on_offline_message(
        &mut self,
        req: &rsip::Request,
        recipient: &str,
        sender: &str,
    ) -> u16 {
        let call_id = crate::proto::sip::build::call_id(&req.headers).unwrap_or_default();
        let seq = crate::proto::sip::build::cseq(&req.headers)
            .map(|c| c.0)
            .unwrap_or(0);
        // A resend keeps its Message-ID (when the sender gives one; the
        // digest retry bumps CSeq) or its Call-ID and CSeq.
        let message_id = req
            .headers
            .get_raw("Message-ID")
            .map(|m| m.trim().to_string());
        let key = match &message_id {
            Some(m) => format!("mid:{m}"),
            None => pager_key(&call_id, seq),
        };
        let mut stored = req.clone();
        stored.headers.remove_named("Proxy-Authorization");
        let m = NewDeferred {
            recipient: recipient.to_string(),
            sender: sender.to_string(),
            key,
            kind: DeferredKind::Pager,
            call_id,
            message_id,
            request: crate::proto::sip::message::to_bytes(&stored.into()),
            response: Vec::new(),
            msrp: Vec::new(),
            arrived_unix_ms: (self.config.wall_clock_ms)(),
        };
        match self.store.store(&m) {
            Ok(StoreOutcome::Stored(id)) => {
                tracing::info!(id, recipient, "deferred message stored");
                self.dirty.insert(recipient.to_string());
                202
            }
            Ok(StoreOutcome::Duplicate(_)) => 202,
            Err(e) => {
                tracing::warn!(error = %e, "deferred message not stored");
                500
            }
        }
    }

    /// Seed 003 12.4.2.2: a device of `binding.aor` registered (or
    /// refreshed). With `offline_delivery` and messages waiting, the push
    /// starts towards that device.
    pub fn on_registered(&mut self, ctx: &mut SipCtx<'_>, binding: &Binding) {
        let user = binding
            .aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        if !self
            .config
            .offline_delivery
            .get(&user)
            .copied()
            .unwrap_or(false)
        {
            // Seed 003 12.4.2.2 a.i: retrieval users learn what waits.
            self.dirty.insert(binding.aor.clone());
            return;
        }
        if self.busy.contains(&binding.aor) {
            return;
        }
        // Scale-out: every instance behind a dispatcher hears of the
        // registration; the one holding the lease pushes. Leased before the
        // queue is read, so nobody pushes what another just delivered.
        let now_ms = (self.config.wall_clock_ms)();
        match self.store.lease_push(
            &binding.aor,
            &self.lease_owner,
            now_ms,
            now_ms + PUSH_LEASE_MS,
        ) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(aor = %binding.aor, "another instance pushes these messages");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "deferred store unreachable");
                return;
            }
        }
        let queue: VecDeque<Item> = match self.store.pending(&binding.aor) {
            Ok(q) => q.into_iter().map(Item::Deferred).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "deferred store unreadable");
                self.release_lease(&binding.aor);
                return;
            }
        };
        if queue.is_empty() {
            self.release_lease(&binding.aor);
            return;
        }
        let uri_text = binding
            .gruu
            .clone()
            .unwrap_or_else(|| binding.contact.clone());
        let Ok(uri) = crate::proto::sip::message::parse_uri(&uri_text) else {
            return;
        };
        let target = Target {
            uri,
            addr: binding.source.addr,
            transport: Transport::from_rsip(binding.source.transport),
        };
        self.start_push(ctx, binding.aor.clone(), target, queue);
    }

    fn local_uri(&self, ctx: &mut SipCtx<'_>) -> MsrpUri {
        let mut raw = [0u8; 12];
        ctx.ids.fill(&mut raw);
        let l = self.config.msrp_local;
        MsrpUri::new(ip_host(l), l.port(), hex::encode(raw))
    }

    /// A fresh MSRP URI of ours and the SDP carrying it: one `m=message` line
    /// with `direction`, `a=setup:active` (the store always connects, RFC
    /// 6135) and the given accept-types / accept-wrapped-types.
    fn our_sdp(
        &self,
        ctx: &mut SipCtx<'_>,
        direction: Direction,
        accept_types: Vec<String>,
        accept_wrapped_types: Vec<String>,
    ) -> (MsrpUri, Vec<u8>) {
        let local = self.local_uri(ctx);
        let connection = ConnectionAddress::Ip(self.config.msrp_local.ip());
        let mut media = MsrpMedia::offer(
            self.config.msrp_local.port(),
            connection.clone(),
            vec![local.to_string()],
            &[],
        );
        media.accept_types = accept_types;
        media.accept_wrapped_types = accept_wrapped_types;
        media.direction = direction;
        media.setup = Some(Setup::Active);
        let mut sid = [0u8; 4];
        ctx.ids.fill(&mut sid);
        let body = Sdp::new("isc", u64::from(u32::from_be_bytes(sid)), connection)
            .with_media(media)
            .to_string()
            .into_bytes();
        (local, body)
    }

    fn start_push(
        &mut self,
        ctx: &mut SipCtx<'_>,
        recipient: String,
        target: Target,
        queue: VecDeque<Item>,
    ) {
        // Seed 003 12.4.2.2 b.viii: sendonly; RFC 6135: we connect.
        let (local, body) = self.our_sdp(
            ctx,
            Direction::SendOnly,
            vec![
                "message/sip".into(),
                "message/cpim".into(),
                "multipart/mixed".into(),
            ],
            vec!["message/msrp".into(), "*".into()],
        );
        let t = target.transport;
        let contact = automata_contact(ctx, t);
        let mut h = rsip::Headers::default();
        let branch = format!("z9hG4bK{}", ctx.ids.token());
        h.push(make_header("Max-Forwards", "70"));
        h.push(make_header(
            "From",
            &format!("<{}>;tag={}", self.config.deferred_uri, ctx.ids.token()),
        ));
        h.push(make_header("To", &format!("<{recipient}>")));
        h.push(make_header(
            "Call-ID",
            &format!("{}@{}", ctx.ids.token(), ctx.domain),
        ));
        h.push(make_header("CSeq", "1 INVITE"));
        // Seed 003 12.4.2.2 b.ii–vii.
        h.push(make_header("Contact", &contact));
        h.push(make_header("Accept-Contact", "*;+g.oma.sip-im"));
        h.push(make_header(
            "User-Agent",
            &format!("{SERVER_AGENT} {IM_RELEASE}"),
        ));
        h.push(make_header("Allow", PUSH_ALLOW));
        h.push(make_header("Supported", "timer"));
        h.push(make_header(
            "Session-Expires",
            &format!("{PUSH_SESSION_EXPIRES};refresher=uac"),
        ));
        h.push(make_header(
            "P-Asserted-Identity",
            &format!("<{}>", self.config.deferred_uri),
        ));
        h.push(make_header("Content-Type", "application/sdp"));
        h.push(make_header("Content-Length", &body.len().to_string()));
        let mut invite = rsip::Request {
            method: rsip::Method::Invite,
            uri: target.uri.clone(),
            version: rsip::Version::V2,
            headers: h,
            body,
        };
        push_via(&mut invite.headers, ctx.local_for(t), t, &branch);
        let key = match ctx
            .tsx
            .send_request(ctx.now, invite.clone(), target.addr, t)
        {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "push INVITE not sent");
                return;
            }
        };
        self.next += 1;
        let id = self.next;
        let leg = LEG_BASE + id;
        tracing::info!(%recipient, n = queue.len(), "pushing deferred messages");
        self.busy.insert(recipient.clone());
        self.by_client.insert(key.clone(), id);
        self.by_leg.insert(leg, Owner::Push(id));
        self.pushes.insert(
            id,
            Push {
                recipient,
                target,
                invite,
                invite_key: key,
                dialog: None,
                state: PushState::Inviting,
                local,
                remote: None,
                leg,
                conn: None,
                parser: MsrpParser::new(ParserConfig::default()),
                queue,
                in_flight: None,
                in_flight_deadline: None,
                from_registration: true,
            },
        );
    }

    // --- SIP ----------------------------------------------------------------

    pub fn owns_client(&self, key: &TsxKey) -> bool {
        self.by_client.contains_key(key)
    }

    /// Is `req` (in-dialog) for one of our push or deferred-session dialogs?
    pub fn knows_dialog(&self, req: &rsip::Request) -> bool {
        let Some(call_id) = crate::proto::sip::build::call_id(&req.headers) else {
            return false;
        };
        self.pushes
            .values()
            .any(|p| p.dialog.as_ref().is_some_and(|d| d.id().call_id == call_id))
            || self
                .sessions
                .values()
                .any(|s| s.dialog.id().call_id == call_id)
            || self
                .summaries
                .iter()
                .any(|s| s.dialog.id().call_id == call_id)
    }

    /// A request in a push dialog: BYE ends the push early (messages not
    /// yet confirmed stay stored); anything else gets 200.
    pub fn on_in_dialog(&mut self, ctx: &mut SipCtx<'_>, key: TsxKey, req: rsip::Request) {
        if req.method == rsip::Method::Subscribe {
            self.on_summary_resubscribe(ctx, key, &req);
            return;
        }
        let call_id = crate::proto::sip::build::call_id(&req.headers).unwrap_or_default();
        let id = self.pushes.iter().find_map(|(id, p)| {
            p.dialog
                .as_ref()
                .is_some_and(|d| d.id().call_id == call_id)
                .then_some(*id)
        });
        let resp = crate::proto::sip::build::response_with(
            &req,
            200,
            None,
            None,
            vec![make_header("Server", SERVER_AGENT)],
        );
        let _ = ctx.tsx.send_response(ctx.now, &key, resp);
        if req.method == rsip::Method::Bye {
            let sid = self
                .sessions
                .iter()
                .find_map(|(sid, s)| (s.dialog.id().call_id == call_id).then_some(*sid));
            if let Some(sid) = sid {
                self.end_session(sid);
            }
        }
        if req.method == rsip::Method::Bye
            && let Some(id) = id
        {
            if let Some(p) = self.pushes.get_mut(&id)
                && let Some(d) = p.dialog.as_mut()
            {
                d.terminate();
            }
            self.finish(id);
        }
    }

    /// A response on the push INVITE or BYE.
    pub fn on_response(&mut self, ctx: &mut SipCtx<'_>, key: &TsxKey, response: rsip::Response) {
        let Some(&id) = self.by_client.get(key) else {
            return;
        };
        let code = response.status_code.code();
        let Some(p) = self.pushes.get_mut(&id) else {
            return;
        };
        if *key != p.invite_key {
            // The BYE's final response.
            if code >= 200 {
                self.by_client.remove(key);
                self.finish(id);
            }
            return;
        }
        if code < 200 {
            return;
        }
        self.by_client.remove(key);
        if code >= 300 || p.state != PushState::Inviting {
            tracing::info!(code, "push INVITE refused; messages stay stored");
            self.finish(id);
            return;
        }
        let Ok(mut dialog) = Dialog::new_uac(&p.invite, &response) else {
            self.finish(id);
            return;
        };
        if let Some(via) = ctx.via(p.target.transport)
            && let Ok(ack) = dialog.create_ack_for_invite(&p.invite, via)
        {
            ctx.tsx.send_stateless(Transmit {
                to: p.target.addr,
                transport: p.target.transport,
                message: ack.into(),
            });
        }
        p.dialog = Some(dialog);
        let remote = crate::proto::sdp::parse_sdp(&response.body)
            .ok()
            .and_then(|s| s.msrp().next().cloned())
            .map(|m| {
                MsrpPath(
                    m.path
                        .iter()
                        .filter_map(|u| MsrpUri::parse(u).ok())
                        .collect(),
                )
            })
            .filter(|p| !p.0.is_empty());
        let addr = remote.as_ref().and_then(|r| r.first()).and_then(msrp_addr);
        match (remote, addr) {
            (Some(remote), Some(addr)) => {
                p.remote = Some(remote);
                p.state = PushState::Connecting;
                self.msrp_out
                    .push_back(RelayOutput::Connect { leg: p.leg, addr });
            }
            _ => {
                tracing::info!("push answer without a usable MSRP path");
                self.end(ctx, id);
            }
        }
    }

    /// Timer B / transport error on our INVITE or BYE.
    pub fn on_failure(&mut self, key: &TsxKey) {
        if let Some(id) = self.by_client.remove(key) {
            self.finish(id);
        }
    }

    /// A 2xx retransmission after our INVITE transaction ended: ACK again.
    pub fn on_stray_response(&mut self, ctx: &mut SipCtx<'_>, response: &rsip::Response) {
        for p in self.pushes.values() {
            if let Some(d) = &p.dialog
                && let Some(ack) = d.ack_for_retransmission(response)
                && crate::proto::sip::build::call_id(&response.headers).as_deref()
                    == Some(d.id().call_id.as_str())
            {
                ctx.tsx.send_stateless(Transmit {
                    to: p.target.addr,
                    transport: p.target.transport,
                    message: ack.into(),
                });
            }
        }
    }

    /// Step 10: BYE, and the MSRP connection closed.
    fn end(&mut self, ctx: &mut SipCtx<'_>, id: u64) {
        let Some(p) = self.pushes.get_mut(&id) else {
            return;
        };
        if p.state == PushState::Ending {
            return;
        }
        p.state = PushState::Ending;
        if let Some(conn) = p.conn.take() {
            self.by_conn.remove(&conn);
            self.msrp_out.push_back(RelayOutput::Close { conn });
        }
        let via = ctx.via(p.target.transport);
        let bye = match (p.dialog.as_mut(), via) {
            (Some(d), Some(via)) => d.create_request(rsip::Method::Bye, via).ok(),
            _ => None,
        };
        let Some(mut bye) = bye else {
            self.finish(id);
            return;
        };
        bye.headers.push(make_header("Content-Length", "0"));
        match ctx
            .tsx
            .send_request(ctx.now, bye, p.target.addr, p.target.transport)
        {
            Ok(k) => {
                self.by_client.insert(k, id);
            }
            Err(_) => self.finish(id),
        }
    }

    fn release_lease(&mut self, recipient: &str) {
        if let Err(e) = self.store.release_push(recipient, &self.lease_owner) {
            tracing::warn!(error = %e, "push lease not given back (it runs out)");
        }
    }

    /// Forgets push `id` (what was not confirmed stays stored).
    fn finish(&mut self, id: u64) {
        if let Some(p) = self.pushes.remove(&id) {
            if p.from_registration {
                self.busy.remove(&p.recipient);
                self.release_lease(&p.recipient);
            }
            self.by_leg.remove(&p.leg);
            self.by_client.retain(|_, v| *v != id);
            if let Some(conn) = p.conn {
                self.by_conn.remove(&conn);
                self.msrp_out.push_back(RelayOutput::Close { conn });
            }
        }
    }

    // --- MSRP ---------------------------------------------------------------

    /// Is this MSRP input ours (our legs and connections)?
    pub fn claims(&self, input: &RelayInput) -> bool {
        match input {
            RelayInput::Connected { leg, .. } | RelayInput::ConnectFailed { leg } => {
                *leg >= LEG_BASE
            }
            RelayInput::Data { conn, .. } | RelayInput::Closed { conn } => {
                self.by_conn.contains_key(conn)
            }
            RelayInput::Accepted { .. } => false,
        }
    }

    pub fn handle_msrp(&mut self, ctx: &mut SipCtx<'_>, input: RelayInput) {
        match input {
            RelayInput::Connected { leg, conn } => match self.by_leg.get(&leg).copied() {
                Some(Owner::Push(id)) => {
                    self.by_conn.insert(conn, Owner::Push(id));
                    if let Some(p) = self.pushes.get_mut(&id) {
                        p.conn = Some(conn);
                        p.state = PushState::Sending;
                    }
                    self.send_next(ctx, id);
                }
                Some(Owner::Session(sid)) => {
                    self.by_conn.insert(conn, Owner::Session(sid));
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.conn = Some(conn);
                        // RFC 4975 §5.4: the active side binds the connection
                        // with a SEND at once (no body).
                        let bind = MsrpMessage::request(
                            MsrpMethod::Send,
                            ctx.ids.token(),
                            s.remote.clone(),
                            MsrpPath::single(s.local.clone()),
                        )
                        .with_header(MsrpHeader::MessageId(ctx.ids.token()))
                        .with_header(MsrpHeader::ByteRange(ByteRange {
                            start: 1,
                            end: Some(0),
                            total: Some(0),
                        }));
                        if let Ok(bytes) = bind.to_bytes() {
                            self.msrp_out.push_back(RelayOutput::Send { conn, bytes });
                        }
                    }
                }
                None => self.msrp_out.push_back(RelayOutput::Close { conn }),
            },
            RelayInput::ConnectFailed { leg } => match self.by_leg.get(&leg).copied() {
                Some(Owner::Push(id)) => self.end(ctx, id),
                Some(Owner::Session(sid)) => {
                    tracing::info!(sid, "deferred session: originator unreachable over MSRP")
                }
                None => {}
            },
            RelayInput::Data { conn, bytes } => match self.by_conn.get(&conn).copied() {
                Some(Owner::Push(id)) => {
                    let mut frames = Vec::new();
                    if let Some(p) = self.pushes.get_mut(&id) {
                        frames = drain_frames(&mut p.parser, &bytes);
                    }
                    for m in frames {
                        self.on_frame(ctx, id, conn, m);
                    }
                }
                Some(Owner::Session(sid)) => {
                    let mut frames = Vec::new();
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        frames = drain_frames(&mut s.parser, &bytes);
                    }
                    for m in frames {
                        self.on_session_frame(sid, conn, m);
                    }
                }
                None => {}
            },
            RelayInput::Closed { conn } => match self.by_conn.remove(&conn) {
                Some(Owner::Push(id)) => {
                    if let Some(p) = self.pushes.get_mut(&id) {
                        p.conn = None;
                    }
                    self.end(ctx, id);
                }
                Some(Owner::Session(sid)) => {
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.conn = None;
                    }
                }
                None => {}
            },
            RelayInput::Accepted { .. } => {}
        }
    }

    fn on_frame(&mut self, ctx: &mut SipCtx<'_>, id: u64, conn: ConnRef, m: MsrpMessage) {
        if m.is_request() {
            // Nothing is expected from the device; answer what asks for it.
            if let Some(r) = m.response(200, None)
                && let Ok(bytes) = r.to_bytes()
            {
                self.msrp_out.push_back(RelayOutput::Send { conn, bytes });
            }
            return;
        }
        let Some(p) = self.pushes.get_mut(&id) else {
            return;
        };
        let Some((tid, row)) = p.in_flight.clone() else {
            return;
        };
        if m.transaction_id != tid {
            return;
        }
        p.in_flight = None;
        p.in_flight_deadline = None;
        let Some(row) = row else {
            self.send_next(ctx, id);
            return;
        };
        if m.code() == Some(200) {
            // Seed 002 D.2 step 9: only now is it removed.
            match self.store.remove(row) {
                Ok(_) => {
                    tracing::debug!(row, "deferred message delivered");
                    self.dirty.insert(p.recipient.clone());
                }
                Err(e) => tracing::warn!(error = %e, row, "delivered message not removed"),
            }
        } else {
            tracing::info!(code = ?m.code(), row, "deferred message refused; kept");
        }
        self.send_next(ctx, id);
    }

    fn send_next(&mut self, ctx: &mut SipCtx<'_>, id: u64) {
        let Some(p) = self.pushes.get_mut(&id) else {
            return;
        };
        let (Some(conn), Some(remote)) = (p.conn, p.remote.clone()) else {
            return;
        };
        let Some(next) = p.queue.pop_front() else {
            self.end(ctx, id);
            return;
        };
        let (row, (content_type, body)) = match &next {
            Item::Deferred(m) => (Some(m.id), encapsulate(m)),
            Item::History(h) => (None, (h.content_type.clone(), h.body.clone())),
        };
        let tid = ctx.ids.token();
        let total = body.len() as u64;
        let msg = MsrpMessage::request(
            MsrpMethod::Send,
            tid.clone(),
            remote,
            MsrpPath::single(p.local.clone()),
        )
        .with_header(MsrpHeader::MessageId(ctx.ids.token()))
        .with_header(MsrpHeader::ByteRange(ByteRange {
            start: 1,
            end: Some(total),
            total: Some(total),
        }))
        .with_body(content_type, body);
        match msg.to_bytes() {
            Ok(bytes) => {
                p.in_flight = Some((tid, row));
                p.in_flight_deadline = Some(ctx.now + MSRP_TRANSACTION_TIMEOUT);
                self.msrp_out.push_back(RelayOutput::Send { conn, bytes });
            }
            Err(e) => {
                tracing::warn!(error = %e, "deferred SEND not built");
                self.send_next(ctx, id);
            }
        }
    }

    // --- retrieval and history (seed 003 12.4.1, 13.2.1.1) -------------------

    /// Does `user` (the Request-URI's user part) name one of our service URIs?
    pub fn service_of(&self, user: &str) -> Option<ServiceUri> {
        let user_of = |uri: &str| {
            uri.trim_start_matches("sip:")
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        if user.eq_ignore_ascii_case(&user_of(&self.config.deferred_uri)) {
            Some(ServiceUri::Deferred)
        } else if user.eq_ignore_ascii_case(&user_of(&self.config.history_uri)) {
            Some(ServiceUri::History)
        } else {
            None
        }
    }

    /// Seed 003 12.4.1: an INVITE to `Deferred@domain` from `user` (the
    /// authenticated name); `owned` = its host is ours. Checks in the seed's
    /// order, then 200 and the chosen messages streamed (each removed on
    /// its MSRP 200), BYE after the last.
    #[allow(clippy::too_many_arguments)]
    pub fn on_retrieve(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        source: SocketAddr,
        transport: Transport,
        req: &rsip::Request,
        user: &str,
        owned: bool,
    ) {
        let aor = format!("sip:{user}@{}", self.config.domain);
        let (sdp, list) = split_body(req);
        let checked = (|| {
            // Step 2
            let policy = self
                .config
                .offline_delivery
                .get(user)
                .ok_or(RetrievalRejection::NotAuthorised)?;
            // Step 3
            if *policy {
                return Err(RetrievalRejection::PolicyPush);
            }
            // Step 4
            if !owned {
                return Err(RetrievalRejection::NotOwned);
            }
            // Step 5
            if !is_recvonly(&sdp) {
                return Err(RetrievalRejection::NotRecvOnly);
            }
            Ok(())
        })();
        if let Err(r) = checked {
            self.refuse(ctx, &key, req, &r);
            return;
        }
        let pending = match self.store.pending(&aor) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "deferred store unreadable");
                Vec::new()
            }
        };
        // Seed 003 12.1.1: no URI list = all messages.
        let chosen: VecDeque<Item> = match list {
            None => pending.into_iter().map(Item::Deferred).collect(),
            Some(entries) => pending
                .into_iter()
                .filter(|m| entries.iter().any(|e| m.is_named_by(e)))
                .map(Item::Deferred)
                .collect(),
        };
        self.accept_streaming(ctx, key, source, transport, req, &sdp, aor, chosen);
    }

    /// Seed 003 13.2.1.1: an INVITE to `history@domain`. The URI list names
    /// history references: a user's AOR (the whole conversation with that
    /// user) or an MSRP Message-ID (that message, if the requester took part).
    #[allow(clippy::too_many_arguments)]
    pub fn on_history(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        source: SocketAddr,
        transport: Transport,
        req: &rsip::Request,
        history: Option<&dyn HistoryStore>,
    ) {
        let (sdp, list) = split_body(req);
        // Step 1.a: the asserted identity is the requester.
        let asserted = req.headers.get_raw("P-Asserted-Identity").map(|v| {
            v.trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default()
                .to_string()
        });
        let checked = (|| {
            let aor = asserted.ok_or(RetrievalRejection::NoAssertedIdentity)?;
            if !is_recvonly(&sdp) {
                return Err(RetrievalRejection::NotRecvOnly);
            }
            let list = list.ok_or(RetrievalRejection::NoUriList)?;
            Ok((aor, list))
        })();
        let (aor, list) = match checked {
            Ok(ok) => ok,
            Err(r) => {
                self.refuse(ctx, &key, req, &r);
                return;
            }
        };
        let mut items = VecDeque::new();
        let mut unknown = Vec::new();
        if let Some(h) = history {
            for entry in &list {
                let e = entry.trim();
                let found = if e.starts_with("sip:") || e.starts_with("sips:") {
                    h.conversation(&aor, e)
                } else {
                    match h.by_message_id(e) {
                        // Only the requester's own conversations (13.2.1.1:
                        // the history of the asserted identity).
                        Ok(v) if !v.is_empty() => {
                            let own: Vec<_> = v
                                .into_iter()
                                .filter(|m| m.conversation.split(' ').any(|p| p == aor))
                                .collect();
                            if own.is_empty() {
                                let r = RetrievalRejection::ForeignReference(e.to_string());
                                self.refuse(ctx, &key, req, &r);
                                return;
                            }
                            Ok(own)
                        }
                        other => other,
                    }
                };
                match found {
                    Ok(v) if v.is_empty() => unknown.push(e.to_string()),
                    Ok(v) => items.extend(v.into_iter().map(Item::History)),
                    Err(err) => tracing::warn!(error = %err, "history unreadable"),
                }
            }
        }
        // Some references found: stream those; none at all: 404.
        if items.is_empty() && !unknown.is_empty() {
            let r = RetrievalRejection::UnknownReference(unknown.join(", "));
            self.refuse(ctx, &key, req, &r);
            return;
        }
        self.accept_streaming(ctx, key, source, transport, req, &sdp, aor, items);
    }

    fn refuse(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: &TsxKey,
        req: &rsip::Request,
        r: &RetrievalRejection,
    ) {
        let (code, reason) = r.status();
        tracing::info!(%r, code, "retrieval refused");
        let resp = crate::proto::sip::build::response_with(
            req,
            code,
            Some(&ctx.ids.token()),
            Some(reason),
            vec![
                // RFC 3261 §20.43: the warn-text is a quoted-string.
                make_header(
                    "Warning",
                    &format!(
                        "399 {} \"{}\"",
                        ctx.domain,
                        r.to_string().replace(['"', '\\'], "'")
                    ),
                ),
                make_header("Server", &format!("{SERVER_AGENT} {IM_RELEASE}")),
            ],
        );
        let _ = ctx.tsx.send_response(ctx.now, key, resp);
    }

    /// 200 (sendonly, Contact `automata`, Server, Allow) and a stream of `items`.
    #[allow(clippy::too_many_arguments)]
    fn accept_streaming(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        source: SocketAddr,
        transport: Transport,
        req: &rsip::Request,
        sdp: &[u8],
        recipient: String,
        items: VecDeque<Item>,
    ) {
        let offer = crate::proto::sdp::parse_sdp(sdp).ok().and_then(|s| {
            s.msrp()
                .find(|m| m.port != 0 && !m.path.is_empty())
                .cloned()
        });
        let remote = offer.as_ref().map(|m| {
            MsrpPath(
                m.path
                    .iter()
                    .filter_map(|u| MsrpUri::parse(u).ok())
                    .collect(),
            )
        });
        let addr = remote.as_ref().and_then(|r| r.first()).and_then(msrp_addr);
        let ok = offer
            .as_ref()
            .is_some_and(|m| !matches!(m.setup, Some(Setup::Active)));
        let (Some(offer), Some(remote), Some(addr), true) = (offer, remote, addr, ok) else {
            self.refuse(ctx, &key, req, &RetrievalRejection::BadOffer);
            return;
        };
        // Seed 003 13.2.1.1 step 5.a: sendonly.
        let (local, body) = self.our_sdp(
            ctx,
            Direction::SendOnly,
            offer.accept_types.clone(),
            offer.accept_wrapped_types.clone(),
        );
        let contact = automata_contact(ctx, transport);
        let mut resp = crate::proto::sip::build::response_with(
            req,
            200,
            Some(&ctx.ids.token()),
            None,
            vec![
                make_header("Contact", &contact),
                make_header("Server", &format!("{SERVER_AGENT} {IM_RELEASE}")),
                make_header("Allow", PUSH_ALLOW),
                make_header("Content-Type", "application/sdp"),
            ],
        );
        resp.headers.remove_named("Content-Length");
        resp.headers
            .push(make_header("Content-Length", &body.len().to_string()));
        resp.body = body;
        let Ok(dialog) = Dialog::new_uas(req, &resp, 1) else {
            return;
        };
        if ctx.tsx.send_response(ctx.now, &key, resp.clone()).is_err() {
            return;
        }
        self.retransmit_until_ack(ctx, key.clone(), resp);
        self.next += 1;
        let id = self.next;
        let leg = LEG_BASE + id;
        self.by_leg.insert(leg, Owner::Push(id));
        self.msrp_out.push_back(RelayOutput::Connect { leg, addr });
        tracing::info!(%recipient, n = items.len(), "streaming stored messages");
        self.pushes.insert(
            id,
            Push {
                recipient,
                target: Target {
                    uri: req.uri.clone(),
                    addr: source,
                    transport,
                },
                invite: req.clone(),
                invite_key: key,
                dialog: Some(dialog),
                state: PushState::Connecting,
                local,
                remote: Some(remote),
                leg,
                conn: None,
                parser: MsrpParser::new(ParserConfig::default()),
                queue: items,
                in_flight: None,
                in_flight_deadline: None,
                from_registration: false,
            },
        );
    }

    // --- timers --------------------------------------------------------------

    fn retransmit_until_ack(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        response: rsip::Response,
    ) {
        use crate::proto::sip::transaction::timers::T1;
        let call_id = crate::proto::sip::build::call_id(&response.headers).unwrap_or_default();
        self.unacked.push(UnackedOk {
            key,
            response,
            call_id,
            next: ctx.now + T1,
            interval: T1,
            give_up: ctx.now + 64 * T1,
        });
    }

    /// An ACK: ours if it is for one of our UAS dialogs (then consumed).
    pub fn on_ack(&mut self, ack: &rsip::Request) -> bool {
        let Some(call_id) = crate::proto::sip::build::call_id(&ack.headers) else {
            return false;
        };
        let before = self.unacked.len();
        self.unacked.retain(|u| u.call_id != call_id);
        before != self.unacked.len() || self.knows_dialog(ack)
    }

    /// When [`Self::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let oks = self.unacked.iter().map(|u| u.next.min(u.give_up));
        let sends = self.pushes.values().filter_map(|p| p.in_flight_deadline);
        oks.chain(sends).min()
    }

    /// 2xx retransmissions; SENDs without a response end their push.
    pub fn handle_timeout(&mut self, ctx: &mut SipCtx<'_>) {
        use crate::proto::sip::transaction::timers::T2;
        let now = ctx.now;
        let mut keep = Vec::new();
        for mut u in std::mem::take(&mut self.unacked) {
            if now >= u.give_up {
                tracing::info!(call_id = %u.call_id, "no ACK for our 2xx");
                continue;
            }
            if now >= u.next {
                if ctx
                    .tsx
                    .send_response(now, &u.key, u.response.clone())
                    .is_err()
                {
                    continue;
                }
                u.interval = (u.interval * 2).min(T2);
                u.next = now + u.interval;
            }
            keep.push(u);
        }
        self.unacked = keep;
        let late: Vec<u64> = self
            .pushes
            .iter()
            .filter(|(_, p)| p.in_flight_deadline.is_some_and(|d| now >= d))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            tracing::info!(id, "deferred SEND unanswered: push ended, message kept");
            if let Some(p) = self.pushes.get_mut(&id) {
                p.in_flight = None;
                p.in_flight_deadline = None;
                p.queue.clear();
            }
            self.end(ctx, id);
        }
    }

    // --- message waiting indication (RFC 3842, seed 003 12.4.2.6) -------------

    /// Is this an initial SUBSCRIBE for `Event: message-summary`?
    pub fn is_summary_subscribe(req: &rsip::Request) -> bool {
        req.method == rsip::Method::Subscribe
            && req.headers.get_raw("Event").is_some_and(|e| {
                e.split(';')
                    .next()
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("message-summary"))
            })
    }

    /// RFC 3842 §4: `user` subscribes to its own account (its AOR or the
    /// Deferred URI); anything else is 403. 200, then a NOTIFY at once and
    /// on every change of the count.
    pub fn on_summary_subscribe(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        req: &rsip::Request,
        user: &str,
        source: SocketAddr,
        transport: Transport,
    ) {
        let aor = format!("sip:{user}@{}", self.config.domain);
        let target = crate::server::sip_util::UriView::of(&req.uri);
        let own = target.user.as_deref() == Some(user)
            || target
                .user
                .as_deref()
                .is_some_and(|u| self.service_of(u) == Some(ServiceUri::Deferred));
        if !own {
            let resp = crate::proto::sip::build::response_with(
                req,
                403,
                Some(&ctx.ids.token()),
                Some("Forbidden"),
                vec![make_header(
                    "Warning",
                    &format!("399 {} \"only your own messages\"", ctx.domain),
                )],
            );
            let _ = ctx.tsx.send_response(ctx.now, &key, resp);
            return;
        }
        let expires = summary_expires(req);
        let resp = crate::proto::sip::build::response_with(
            req,
            200,
            Some(&ctx.ids.token()),
            None,
            vec![
                make_header("Expires", &expires.to_string()),
                make_header("Contact", &ctx.contact(transport)),
                make_header("Server", SERVER_AGENT),
            ],
        );
        let Ok(dialog) = Dialog::new_uas(req, &resp, 1) else {
            return;
        };
        let _ = ctx.tsx.send_response(ctx.now, &key, resp);
        let mut sub = SummarySub {
            aor,
            dialog,
            dest: source,
            transport,
            expires_at: ctx.now + std::time::Duration::from_secs(u64::from(expires)),
        };
        let terminated = expires == 0;
        self.send_summary(ctx, &mut sub, terminated);
        if !terminated {
            self.summaries.push(sub);
        }
    }

    /// A SUBSCRIBE refresh / unsubscribe in one of our summary dialogs.
    fn on_summary_resubscribe(&mut self, ctx: &mut SipCtx<'_>, key: TsxKey, req: &rsip::Request) {
        let call_id = crate::proto::sip::build::call_id(&req.headers).unwrap_or_default();
        let Some(i) = self
            .summaries
            .iter()
            .position(|s| s.dialog.id().call_id == call_id)
        else {
            return;
        };
        let expires = summary_expires(req);
        let resp = crate::proto::sip::build::response_with(
            req,
            200,
            None,
            None,
            vec![make_header("Expires", &expires.to_string())],
        );
        let _ = ctx.tsx.send_response(ctx.now, &key, resp);
        let mut sub = self.summaries.swap_remove(i);
        let _ = sub.dialog.handle_request(req);
        sub.expires_at = ctx.now + std::time::Duration::from_secs(u64::from(expires));
        let terminated = expires == 0;
        self.send_summary(ctx, &mut sub, terminated);
        if !terminated {
            self.summaries.push(sub);
        }
    }

    /// Sends the NOTIFYs that the changes since the last call call for.
    pub fn flush(&mut self, ctx: &mut SipCtx<'_>) {
        let now = ctx.now;
        self.summaries.retain(|s| s.expires_at > now);
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut subs = std::mem::take(&mut self.summaries);
        for sub in subs.iter_mut().filter(|s| dirty.contains(&s.aor)) {
            self.send_summary(ctx, sub, false);
        }
        self.summaries = subs;
    }

    fn send_summary(&mut self, ctx: &mut SipCtx<'_>, sub: &mut SummarySub, terminated: bool) {
        let waiting = self.store.count(&sub.aor).unwrap_or(0);
        let body = summary_body(&self.config.deferred_uri, waiting).into_bytes();
        let Some(via) = ctx.via(sub.transport) else {
            return;
        };
        let Ok(mut notify) = sub.dialog.create_request(rsip::Method::Notify, via) else {
            return;
        };
        let state = if terminated {
            "terminated;reason=timeout".to_string()
        } else {
            let left = sub.expires_at.saturating_duration_since(ctx.now).as_secs();
            format!("active;expires={left}")
        };
        let h = &mut notify.headers;
        h.push(make_header("Event", "message-summary"));
        h.push(make_header("Subscription-State", &state));
        h.push(make_header("Contact", &ctx.contact(sub.transport)));
        h.push(make_header("Content-Type", MESSAGE_SUMMARY));
        h.remove_named("Content-Length");
        h.push(make_header("Content-Length", &body.len().to_string()));
        notify.body = body;
        if let Err(e) = ctx
            .tsx
            .send_request(ctx.now, notify, sub.dest, sub.transport)
        {
            tracing::info!(error = %e, "message-summary NOTIFY not sent");
        }
    }

    // --- chat sessions to offline users (seed 003 12.4.2.1) ------------------

    /// A CPM / IM session INVITE for `recipient` (AOR) with no registered
    /// device, from `sender` (the authenticated AOR), that passed the
    /// participating function's checks: answered 200 on the user's behalf.
    pub fn on_offline_session(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        transport: Transport,
        req: &rsip::Request,
        recipient: &str,
        sender: &str,
    ) {
        let offer = crate::proto::sdp::parse_sdp(&req.body).ok().and_then(|s| {
            s.msrp()
                .find(|m| m.port != 0 && !m.path.is_empty())
                .cloned()
        });
        let remote = offer.as_ref().map(|m| {
            MsrpPath(
                m.path
                    .iter()
                    .filter_map(|u| MsrpUri::parse(u).ok())
                    .collect(),
            )
        });
        let addr = remote.as_ref().and_then(|r| r.first()).and_then(msrp_addr);
        // RFC 6135: we take the active role; an offer that insists on being
        // active itself is refused.
        let can_connect = offer
            .as_ref()
            .is_some_and(|m| !matches!(m.setup, Some(Setup::Active)));
        let (Some(offer), Some(remote), Some(addr), true) = (offer, remote, addr, can_connect)
        else {
            let resp = crate::proto::sip::build::response_with(
                req,
                488,
                Some(&ctx.ids.token()),
                Some("Not Acceptable Here"),
                vec![
                    make_header(
                        "Warning",
                        &format!(
                            "399 {} \"deferred sessions need an MSRP offer with setup actpass or passive\"",
                            ctx.domain
                        ),
                    ),
                    make_header("Server", SERVER_AGENT),
                ],
            );
            let _ = ctx.tsx.send_response(ctx.now, &key, resp);
            return;
        };
        let (local, body) = self.our_sdp(
            ctx,
            Direction::RecvOnly,
            offer.accept_types.clone(),
            offer.accept_wrapped_types.clone(),
        );
        let contact = automata_contact(ctx, transport);
        let mut resp = crate::proto::sip::build::response_with(
            req,
            200,
            Some(&ctx.ids.token()),
            None,
            vec![
                make_header("Contact", &contact),
                make_header("Server", &format!("{SERVER_AGENT} {IM_RELEASE}")),
                make_header("Allow", PUSH_ALLOW),
                make_header("Date", &http_date((self.config.wall_clock_ms)())),
                make_header(
                    "P-Asserted-Identity",
                    &format!("<{}>", self.config.deferred_uri),
                ),
                make_header("Content-Type", "application/sdp"),
            ],
        );
        resp.headers.remove_named("Content-Length");
        resp.headers
            .push(make_header("Content-Length", &body.len().to_string()));
        resp.body = body;
        let Ok(dialog) = Dialog::new_uas(req, &resp, 1) else {
            return;
        };
        let ok_bytes = crate::proto::sip::message::to_bytes(&resp.clone().into());
        if let Err(e) = ctx.tsx.send_response(ctx.now, &key, resp.clone()) {
            tracing::info!(error = %e, "deferred session 200 not sent");
            return;
        }
        self.retransmit_until_ack(ctx, key.clone(), resp);
        let mut stored = req.clone();
        stored.headers.remove_named("Proxy-Authorization");
        self.next += 1;
        let id = self.next;
        let leg = LEG_BASE + id;
        self.by_leg.insert(leg, Owner::Session(id));
        self.msrp_out.push_back(RelayOutput::Connect { leg, addr });
        tracing::info!(
            recipient,
            sender,
            "chat session accepted for later delivery"
        );
        self.sessions.insert(
            id,
            Inbound {
                recipient: recipient.to_string(),
                sender: sender.to_string(),
                call_id: crate::proto::sip::build::call_id(&req.headers).unwrap_or_default(),
                invite_bytes: crate::proto::sip::message::to_bytes(&stored.into()),
                ok_bytes,
                dialog,
                local,
                remote,
                conn: None,
                parser: MsrpParser::new(ParserConfig::default()),
                partial: HashMap::new(),
            },
        );
    }

    fn on_session_frame(&mut self, sid: u64, conn: ConnRef, m: MsrpMessage) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if m.method() != Some(&MsrpMethod::Send) {
            // REPORTs are never answered; other methods get 501 (RFC 4975 §12).
            if m.is_request()
                && let Some(r) = m.response(501, None)
                && let Ok(bytes) = r.to_bytes()
            {
                self.msrp_out.push_back(RelayOutput::Send { conn, bytes });
            }
            return;
        }
        let Some(mid) = m.message_id().map(str::to_string) else {
            return;
        };
        let body = m.body.clone().unwrap_or_default();
        if m.flag == crate::proto::msrp::ContinuationFlag::Aborted {
            // RFC 4975 §7.1.1: an aborted message is not kept.
            s.partial.remove(&mid);
            if let Some(r) = m.response(200, None)
                && let Ok(bytes) = r.to_bytes()
            {
                self.msrp_out.push_back(RelayOutput::Send { conn, bytes });
            }
            return;
        }
        let last = m.flag == crate::proto::msrp::ContinuationFlag::Complete;
        let whole = {
            let entry = s
                .partial
                .entry(mid.clone())
                .or_insert_with(|| (m.clone(), Vec::new()));
            entry.1.extend_from_slice(&body);
            if entry.1.len() > MAX_DEFERRED_MESSAGE {
                s.partial.remove(&mid);
                if let Some(r) = m.response(413, None)
                    && let Ok(bytes) = r.to_bytes()
                {
                    self.msrp_out.push_back(RelayOutput::Send { conn, bytes });
                }
                return;
            }
            if last { s.partial.remove(&mid) } else { None }
        };
        let code = match whole {
            None => 200,
            Some((first, body)) if body.is_empty() && first.body.is_none() => 200,
            Some((first, body)) => {
                // The SEND as one message: the first chunk's headers, the
                // whole body, Byte-Range 1-N/N.
                let total = body.len() as u64;
                let mut one = first
                    .clone()
                    .with_flag(crate::proto::msrp::ContinuationFlag::Complete);
                for h in one.headers.iter_mut() {
                    if let MsrpHeader::ByteRange(r) = h {
                        *r = ByteRange {
                            start: 1,
                            end: Some(total),
                            total: Some(total),
                        };
                    }
                }
                let ct = one.content_type().unwrap_or("text/plain").to_string();
                one = one.with_body(ct, body);
                let msrp = one.to_bytes().unwrap_or_default();
                let record = NewDeferred {
                    recipient: s.recipient.clone(),
                    sender: s.sender.clone(),
                    key: super::session_key(&s.call_id, &mid),
                    kind: DeferredKind::Session,
                    call_id: s.call_id.clone(),
                    message_id: Some(mid.clone()),
                    request: s.invite_bytes.clone(),
                    response: s.ok_bytes.clone(),
                    msrp,
                    arrived_unix_ms: (self.config.wall_clock_ms)(),
                };
                match self.store.store(&record) {
                    Ok(_) => {
                        self.dirty.insert(s.recipient.clone());
                        200
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "deferred session message not stored");
                        // Not acknowledged: the sender may resend.
                        403
                    }
                }
            }
        };
        if let Some(r) = m.response(code, None)
            && let Ok(bytes) = r.to_bytes()
        {
            self.msrp_out.push_back(RelayOutput::Send { conn, bytes });
        }
    }

    fn end_session(&mut self, sid: u64) {
        if let Some(s) = self.sessions.remove(&sid) {
            self.by_leg.retain(|_, o| *o != Owner::Session(sid));
            if let Some(conn) = s.conn {
                self.by_conn.remove(&conn);
                self.msrp_out.push_back(RelayOutput::Close { conn });
            }
        }
    }

    pub fn poll_msrp(&mut self) -> Option<RelayOutput> {
        self.msrp_out.pop_front()
    }
}

/// The granted subscription length: the asked Expires, at most
/// [`SUMMARY_MAX_EXPIRES`] (RFC 6665 §4.2.1.1).
fn summary_expires(req: &rsip::Request) -> u32 {
    req.headers
        .get_raw("Expires")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(SUMMARY_MAX_EXPIRES)
        .min(SUMMARY_MAX_EXPIRES)
}

/// RFC 3842 §5.2 body: Messages-Waiting, Message-Account, and the count as
/// `Text-Message: new/old` (message-context-class of RFC 3458).
pub fn summary_body(account: &str, waiting: u64) -> String {
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: {account}\r\nText-Message: {waiting}/0\r\n",
        if waiting > 0 { "yes" } else { "no" }
    )
}

/// The SDP and the URI list (entries' URIs) of an INVITE body: plain SDP,
/// or multipart with `application/sdp` and `application/resource-lists+xml`.
fn split_body(req: &rsip::Request) -> (Vec<u8>, Option<Vec<String>>) {
    let ct = req.headers.get_raw("Content-Type").unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("multipart/") {
        return (req.body.clone(), None);
    }
    let Ok(mp) = Multipart::parse_with_content_type(&ct, &req.body) else {
        return (Vec::new(), None);
    };
    let sdp = mp
        .part_of_type("application/sdp")
        .map(|p| p.body.clone())
        .unwrap_or_default();
    let list = mp
        .part_of_type(crate::proto::bodies::resource_lists::CONTENT_TYPE)
        .and_then(|p| crate::proto::bodies::resource_lists::ResourceLists::parse(&p.body).ok())
        .map(|l| l.entries().into_iter().map(|e| e.uri.clone()).collect());
    (sdp, list)
}

/// Seed 003 12.4.1 step 5: a session or `m=message` attribute `recvonly`.
fn is_recvonly(sdp: &[u8]) -> bool {
    let parsed = crate::proto::sdp::parse_sdp(sdp)
        .ok()
        .and_then(|s| s.msrp().next().map(|m| m.direction == Direction::RecvOnly))
        .unwrap_or(false);
    parsed
        || String::from_utf8_lossy(sdp)
            .lines()
            .any(|l| l.trim() == "a=recvonly")
}

fn drain_frames(parser: &mut MsrpParser, bytes: &[u8]) -> Vec<MsrpMessage> {
    parser.push(bytes);
    let mut frames = Vec::new();
    while let Some(f) = parser.next() {
        match f {
            Ok(m) => frames.push(m),
            Err(e) if e.is_fatal() => {
                tracing::info!(error = %e, "deferred MSRP stream broken");
                break;
            }
            Err(_) => {}
        }
    }
    frames
}

fn ip_host(a: SocketAddr) -> String {
    match a.ip() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn msrp_addr(u: &MsrpUri) -> Option<SocketAddr> {
    let host = u.host.trim_start_matches('[').trim_end_matches(']');
    Some(SocketAddr::new(host.parse().ok()?, u.port?))
}

/// Seed 002 D.2 B: the payload of the push SEND. A pager message goes as
/// `message/sip` with a Date (its arrival) added; a session message as a
/// multipart of the INVITE and the 200 (`message/sip`) and the SEND
/// (`message/msrp`), each with the Date.
pub fn encapsulate(m: &DeferredMessage) -> (String, Vec<u8>) {
    let date = http_date(m.message.arrived_unix_ms);
    match m.message.kind {
        DeferredKind::Pager => (
            "message/sip".into(),
            with_sip_date(&m.message.request, &date),
        ),
        DeferredKind::Session => {
            let mut parts = vec![Part::message_sip(with_sip_date(&m.message.request, &date))];
            if !m.message.response.is_empty() {
                parts.push(Part::message_sip(with_sip_date(&m.message.response, &date)));
            }
            parts.push(Part::new(
                "message/msrp",
                with_msrp_date(&m.message.msrp, &date),
            ));
            let mp = Multipart::with_boundary(parts, "deferred-boundary");
            (mp.content_type(), mp.to_bytes())
        }
    }
}

/// `sip` with a `Date:` header (RFC 3261 §20.17) added after Call-ID when
/// it has none; the rest byte for byte.
pub fn with_sip_date(sip: &[u8], date: &str) -> Vec<u8> {
    let head_end = find(sip, b"\r\n\r\n").unwrap_or(sip.len());
    let head = &sip[..head_end];
    let has_date = head
        .split(|b| *b == b'\n')
        .any(|l| l.len() >= 5 && l[..5].eq_ignore_ascii_case(b"date:"));
    if has_date {
        return sip.to_vec();
    }
    let mut out = Vec::with_capacity(sip.len() + 40);
    let mut inserted = false;
    let mut rest = sip;
    while let Some(i) = find(rest, b"\r\n") {
        let line = &rest[..i];
        out.extend_from_slice(&rest[..i + 2]);
        rest = &rest[i + 2..];
        if line.is_empty() {
            break;
        }
        if !inserted
            && (line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"call-id:")
                || line.len() >= 2 && line[..2].eq_ignore_ascii_case(b"i:"))
        {
            out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
            inserted = true;
        }
    }
    out.extend_from_slice(rest);
    if !inserted {
        // No Call-ID line seen: put it after the start line.
        let first = find(sip, b"\r\n").map(|i| i + 2).unwrap_or(0);
        let mut o = sip[..first].to_vec();
        o.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
        o.extend_from_slice(&sip[first..]);
        return o;
    }
    out
}

/// An MSRP SEND with a `Date:` header put before its Content-Type.
pub fn with_msrp_date(msrp: &[u8], date: &str) -> Vec<u8> {
    let Ok(mut m) = crate::proto::msrp::parse_message(msrp) else {
        return msrp.to_vec();
    };
    let at = m
        .headers
        .iter()
        .position(|h| matches!(h, MsrpHeader::ContentType(_)))
        .unwrap_or(m.headers.len());
    m.headers.insert(
        at,
        MsrpHeader::Other {
            name: "Date".into(),
            value: date.into(),
        },
    );
    m.to_bytes().unwrap_or_else(|_| msrp.to_vec())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// RFC 1123 date (RFC 3261 §20.17), e.g. `Thu, 21 Feb 2002 13:02:03 GMT`.
pub fn http_date(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = WD
        .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("Thu");
    let mo = MO
        .get(usize::try_from(m - 1).unwrap_or(0))
        .copied()
        .unwrap_or("Jan");
    format!("{wd}, {d:02} {mo} {y} {h:02}:{mi:02}:{s:02} GMT")
}

/// Reads the SIP request stored for a message (tests, retrieval).
pub fn stored_request(m: &DeferredMessage) -> Option<rsip::Request> {
    match parse_message(&m.message.request).ok()? {
        rsip::SipMessage::Request(r) => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc1123() {
        // The seed's example date.
        assert_eq!(
            http_date(1_014_296_523_000),
            "Thu, 21 Feb 2002 13:02:03 GMT"
        );
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn date_goes_after_call_id() {
        let sip = b"MESSAGE sip:b@x SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi";
        let out = String::from_utf8(with_sip_date(sip, "D")).unwrap();
        assert_eq!(
            out,
            "MESSAGE sip:b@x SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c1\r\nDate: D\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"
        );
        // Already dated: untouched.
        let dated = with_sip_date(out.as_bytes(), "E");
        assert_eq!(dated, out.as_bytes());
    }

    proptest::proptest! {
        #[test]
        fn dating_and_body_splitting_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let out = with_sip_date(&bytes, "D");
            proptest::prop_assert!(out.len() >= bytes.len());
            let _ = with_msrp_date(&bytes, "D");
            let _ = is_recvonly(&bytes);
        }

        #[test]
        fn dates_always_format(ms in proptest::num::i64::ANY) {
            let d = http_date(ms / 4);
            proptest::prop_assert!(d.ends_with(" GMT"));
        }
    }

    #[test]
    fn summary_body_counts() {
        assert_eq!(
            summary_body("sip:Deferred@x", 2),
            "Messages-Waiting: yes\r\nMessage-Account: sip:Deferred@x\r\nText-Message: 2/0\r\n"
        );
        assert!(summary_body("a", 0).starts_with("Messages-Waiting: no\r\n"));
    }

    #[test]
    fn rejections_map_to_the_seed_codes() {
        assert_eq!(RetrievalRejection::NotAuthorised.status().0, 403);
        assert_eq!(RetrievalRejection::PolicyPush.status().0, 403);
        assert_eq!(RetrievalRejection::NotOwned.status().0, 404);
        assert_eq!(RetrievalRejection::NotRecvOnly.status().0, 403);
        assert_eq!(RetrievalRejection::NoUriList.status().0, 400);
    }

    /// A sans-IO run of the push: the device accepts the INVITE, the MSRP
    /// connection comes up, the SEND is never answered.
    #[test]
    fn unanswered_send_ends_the_push_and_keeps_the_message() {
        use crate::proto::ids::SeqIds;
        use crate::proto::sip::transaction::{LayerEvent, TransactionLayer};
        use crate::server::deferred_message_store::SqliteDeferred;
        use crate::server::location_service::Source;

        let now = Instant::now();
        let mut tsx = TransactionLayer::new();
        let mut ids = SeqIds::new("t");
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let device: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        let mut store = SqliteDeferred::in_memory().unwrap();
        store
            .store(&NewDeferred {
                recipient: "sip:bob@isc.local".into(),
                sender: "sip:carol@isc.local".into(),
                key: pager_key("c1", 1),
                kind: DeferredKind::Pager,
                call_id: "c1".into(),
                message_id: None,
                request:
                    b"MESSAGE sip:bob@isc.local SIP/2.0\r\nCall-ID: c1\r\nContent-Length: 0\r\n\r\n"
                        .to_vec(),
                response: Vec::new(),
                msrp: Vec::new(),
                arrived_unix_ms: 0,
            })
            .unwrap();
        let mut f = DeferredFunction::new(
            DeferredConfig {
                domain: "isc.local".into(),
                msrp_local: "127.0.0.1:6000".parse().unwrap(),
                deferred_uri: "sip:Deferred@isc.local".into(),
                history_uri: "sip:history@isc.local".into(),
                offline_delivery: [("bob".to_string(), true)].into_iter().collect(),
                wall_clock_ms: || 0,
            },
            Box::new(store),
        );
        macro_rules! ctx {
            ($at:expr) => {
                SipCtx {
                    now: $at,
                    tsx: &mut tsx,
                    ids: &mut ids,
                    local,
                    tls_local: None,
                    domain: "isc.local",
                }
            };
        }
        let binding = Binding {
            id: "b1".into(),
            aor: "sip:bob@isc.local".into(),
            contact: format!("sip:bob@{device};transport=udp"),
            display_name: None,
            instance: None,
            reg_id: None,
            expires_at: now + Duration::from_secs(600),
            registered_at: now,
            refreshed_at: now,
            q: None,
            call_id: "r1".into(),
            cseq: 1,
            path: Vec::new(),
            source: Source {
                addr: device,
                transport: rsip::Transport::Udp,
            },
            device_name: None,
            user_agent: None,
            gruu: None,
            params: Vec::new(),
        };
        f.on_registered(&mut ctx!(now), &binding);
        let invite = match tsx.poll_transmit().unwrap().message {
            rsip::SipMessage::Request(r) => r,
            other => panic!("expected the INVITE, got {other:?}"),
        };
        assert_eq!(invite.method, rsip::Method::Invite);
        // The device's 200.
        let sdp = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 7000 TCP/MSRP *\r\na=accept-types:message/sip\r\na=path:msrp://127.0.0.1:7000/bob;tcp\r\na=recvonly\r\na=setup:passive\r\n";
        let mut ok = crate::proto::sip::build::response_to(&invite, 200, Some("dev"));
        ok.headers.remove_named("Content-Length");
        ok.headers
            .push(make_header("Contact", &format!("<sip:bob@{device}>")));
        ok.headers
            .push(make_header("Content-Type", "application/sdp"));
        ok.headers
            .push(make_header("Content-Length", &sdp.len().to_string()));
        ok.body = sdp.as_bytes().to_vec();
        tsx.handle_message(now, ok.into(), device, Transport::Udp)
            .unwrap();
        let (key, response) = match tsx.poll_event() {
            Some(LayerEvent::Response { key, response }) => (key, response),
            other => panic!("expected the 200, got {other:?}"),
        };
        f.on_response(&mut ctx!(now), &key, response);
        let Some(RelayOutput::Connect { leg, .. }) = f.poll_msrp() else {
            panic!("expected a connect");
        };
        f.handle_msrp(&mut ctx!(now), RelayInput::Connected { leg, conn: 7 });
        assert!(matches!(
            f.poll_msrp(),
            Some(RelayOutput::Send { conn: 7, .. })
        ));
        assert_eq!(
            f.poll_timeout(),
            Some(now + MSRP_TRANSACTION_TIMEOUT),
            "the SEND's deadline"
        );
        while tsx.poll_transmit().is_some() {}
        let late = now + MSRP_TRANSACTION_TIMEOUT + Duration::from_millis(1);
        f.handle_timeout(&mut ctx!(late));
        assert_eq!(f.poll_msrp(), Some(RelayOutput::Close { conn: 7 }));
        let bye = std::iter::from_fn(|| tsx.poll_transmit()).find_map(|t| match t.message {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Bye => Some(r),
            _ => None,
        });
        assert!(bye.is_some(), "BYE after the timeout");
        assert_eq!(f.store().count("sip:bob@isc.local").unwrap(), 1, "kept");
    }

    #[test]
    fn no_panic_on_odd_bytes() {
        for s in [&b""[..], b"\r\n", b"X", b"a\r\nCall-ID: x", b"\r\n\r\n"] {
            let _ = with_sip_date(s, "D");
            let _ = with_msrp_date(s, "D");
        }
    }
}
