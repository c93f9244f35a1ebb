//! The IM Controlling Function: the conference focus (seed 003 7.2.1.1–
//! 7.2.1.5, 7.2.2.2, 7.2.2.6; seed 004 7.2.2.10), a B2BUA in the media path.
//!
//! - The conference factory ([`FocusConfig::factory_uri`]) takes an INVITE
//!   with SDP + a `recipient-list` resource-lists body (RFC 5366) and
//!   creates an ad-hoc session with its own identity `sip:conf-<id>@domain`
//!   (Contact of our 200 with `isfocus`, RFC 4579 §5.3). Every listed user
//!   is invited on each of its registered devices (the CPM function's
//!   [`device_target`]); an entry with `?Replaces=` goes only to the device
//!   holding the replaced dialog, the Replaces translated by the CPM
//!   function ([`CpmParticipatingFunction::peer_leg`], seed 002 App. M).
//! - Pre-defined groups (`[[server.groups]]`) and the session identity are
//!   joined by INVITE after the seed's checks ([`FocusRejection`] holds the
//!   one mapping to status and Warning); REFER (one Refer-To, or RFC 5368
//!   multiple-refer) invites more users.
//! - The MSRP switch ([`MsrpRelay`] with [`LegRole::Participant`] legs)
//!   sends every message to all other participants, a private one (CPIM To
//!   = a participant) to that participant only; chat goes to history.
//! - The conference event package (RFC 4575): SUBSCRIBE from a participant
//!   gets a full NOTIFY (version 1) and then partial ones, coalesced within
//!   [`FocusConfig::notify_interval`].
//!
//! MSRP: our session ids start with [`FOCUS_SESSION_PREFIX`] and our relay
//! legs at [`FOCUS_LEG_BASE`], so the core can tell our connections from
//! the CPM function's ([`is_focus_msrp`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{GroupConfig, JoiningPolicy, SdpPolicy, UserConfig};
use crate::proto::bodies::conference_info::{
    ConferenceInfo, ElementState, Endpoint, EndpointStatus, User,
};
use crate::proto::bodies::multipart::Multipart;
use crate::proto::bodies::resource_lists::ResourceLists;
use crate::proto::msrp::{MsrpPath, MsrpUri};
use crate::proto::sdp::{
    ConnectionAddress, MsrpAnswerParams, MsrpMedia, Sdp, Setup, SetupPreference, TcpActiveSide,
    parse_sdp, tcp_active_side,
};
use crate::proto::sip::build::response_with;
use crate::proto::sip::dialog::{Dialog, DialogId};
use crate::proto::sip::headers::{HeadersExt, make_header};
use crate::proto::sip::transaction::{Transport, TsxKey};
use crate::server::location_service::LocationService;

use super::b2bua::{
    B2bua, B2buaTimeout, CallRef, LegResponse, REASON_COMPLETED_ELSEWHERE, Side, SipCtx,
};
use super::core::{ANONYMOUS_HOST, SERVER_AGENT};
use super::cpm_participating_function::{
    CpmParticipatingFunction, better_error, device_target, ip_host, msrp_addr,
};
use super::history_store::{HistoryEntry, HistoryStore};
use super::msrp_relay::{LegId, LegRole, MsrpRelay, RelayEvent, RelayInput, RelayOutput};
use super::proxy_core::Target;
use super::sip_util::{UriView, host_of};

/// Our relay's first leg id (the CPM function's start at 1).
pub const FOCUS_LEG_BASE: LegId = 1 << 40;
/// Every MSRP session id of ours starts with this.
pub const FOCUS_SESSION_PREFIX: &str = "focus";
/// Seed 004 7.2.2.10 "SHOULD limit the rate": changes within this window
/// share one NOTIFY.
pub const NOTIFY_INTERVAL: Duration = Duration::from_millis(200);
/// RFC 6665 §4.2.1.1: what we grant at most / by default.
pub const MAX_SUBSCRIPTION_EXPIRES: u32 = 3600;
/// The IM feature tag (SPEC.md).
pub const IM_FEATURE_TAG: &str = "+g.oma.sip-im";

/// True if the first bytes of an MSRP connection we accepted are for our
/// relay (the To-Path names one of our session ids).
pub fn is_focus_msrp(bytes: &[u8]) -> bool {
    let needle = format!("/{FOCUS_SESSION_PREFIX}");
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Why a request to the focus is refused (seed 003 7.2.1.x), mapped to
/// status and Warning in [`FocusRejection::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FocusRejection {
    /// 7.2.1.1 step 5 / 7.2.1.3 step 3
    #[error("too many participants")]
    TooManyParticipants,
    /// 7.2.1.2 step 1: a group URI we do not own.
    #[error("no such group or session")]
    NotFound,
    /// 7.2.1.2 step 2 / 7.2.1.3 step 1
    #[error("isfocus already assigned")]
    IsfocusAlreadyAssigned,
    /// 7.2.2.9 joining policy
    #[error("not allowed to join")]
    NotAllowedToJoin,
    /// 7.2.1.2 step 5: Privacy id not allowed in the group.
    #[error("anonymity not allowed")]
    AnonymityNotAllowed,
    #[error("SDP not acceptable: {0}")]
    SdpPolicy(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Only participants may subscribe (seed 004 7.2.2.10).
    #[error("not a participant")]
    NotParticipant,
    #[error("nobody could be invited")]
    NoInvitee,
}

impl FocusRejection {
    /// Status, reason phrase and Warning text.
    pub fn status(&self) -> (u16, &'static str, Option<&'static str>) {
        match self {
            Self::TooManyParticipants => (486, "Busy Here", Some("too many participants")),
            Self::NotFound => (404, "Not Found", None),
            Self::IsfocusAlreadyAssigned => (403, "Forbidden", Some("isfocus already assigned")),
            Self::NotAllowedToJoin => (403, "Forbidden", Some("not allowed to join")),
            Self::AnonymityNotAllowed => (403, "Forbidden", Some("anonymity not allowed")),
            Self::SdpPolicy(_) => (488, "Not Acceptable Here", None),
            Self::BadRequest(_) => (400, "Bad Request", None),
            Self::NotParticipant => (403, "Forbidden", Some("only participants may subscribe")),
            Self::NoInvitee => (480, "Temporarily Unavailable", None),
        }
    }

    fn headers(&self, domain: &str) -> Vec<rsip::Header> {
        let text = match (self, self.status().2) {
            (Self::SdpPolicy(t) | Self::BadRequest(t), _) => Some(t.replace('"', "'")),
            (_, w) => w.map(str::to_string),
        };
        text.map(|t| vec![make_header("Warning", &format!("399 {domain} \"{t}\""))])
            .unwrap_or_default()
    }
}

/// What the focus needs from the deployment.
#[derive(Debug, Clone)]
pub struct FocusConfig {
    pub domain: String,
    pub msrp_local: SocketAddr,
    /// The `msrps:` listener (RFC 4975 §14.1), when `[server.tls]` is on.
    pub msrps_local: Option<SocketAddr>,
    /// `sip:conf-factory@domain` by default.
    pub factory_uri: String,
    /// Participants of an ad-hoc session, its creator included.
    pub max_adhoc_group_size: u32,
    pub groups: Vec<GroupConfig>,
    /// By user name (display names, anonymity).
    pub users: HashMap<String, UserConfig>,
    pub sdp_policy: SdpPolicy,
    pub notify_interval: Duration,
    pub wall_clock_ms: fn() -> i64,
    /// Scale-out: this instance's number, written into the session
    /// identities it mints (`conf-i<N>.<id>`) so that a dispatcher in front
    /// routes their requests back to this instance.
    pub instance: Option<u16>,
}

/// Where a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    /// Invited, no answer yet.
    Pending,
    /// A device rang (180).
    Alerting,
    Connected,
    /// Left since the last NOTIFY (shown once as disconnected).
    Left,
}

#[derive(Debug)]
struct Participant {
    /// The user's AOR (lower-case).
    aor: String,
    /// What the NOTIFY shows (the anonymous URI under privacy).
    entity: String,
    display: Option<String>,
    presence: Presence,
    /// The B2BUA call and the side the participant is on; for an invitee
    /// still ringing, every device leg.
    call: CallRef,
    side: Option<Side>,
    pending_legs: Vec<usize>,
    relay_leg: Option<LegId>,
    /// Our offer per outgoing leg (leg → (our URI, our media)).
    offers: HashMap<usize, (MsrpUri, MsrpMedia)>,
    /// For a participant that dialled in: our SDP answer (re-INVITEs).
    answer_sdp: Option<Vec<u8>>,
    best_error: Option<(u16, String)>,
}

#[derive(Debug)]
struct Subscription {
    dialog: Dialog,
    subscriber: String,
    expires_at: Instant,
    dest: SocketAddr,
    transport: Transport,
    version: u32,
    /// The state as last sent to this subscriber.
    sent: ConferenceInfo,
}

#[derive(Debug)]
struct Conference {
    identity: String,
    group: Option<String>,
    participants: Vec<Participant>,
    calls: Vec<CallRef>,
    /// The ad-hoc creator's call, until it is answered.
    creator: Option<CallRef>,
    ringing: bool,
    /// Everybody ever in (rejoin, seed 003 7.2.1.4).
    members: Vec<String>,
    subs: Vec<Subscription>,
    notify_due: Option<Instant>,
    accept_types: Vec<String>,
    accept_wrapped_types: Vec<String>,
    best_error: Option<(u16, String)>,
    /// A Large Message session (seed 003 9.3.1.1): the creator's offer,
    /// whose attributes the invitees' offers and the creator's answer keep.
    large: Option<MsrpMedia>,
}

/// The conference focus. See the module docs.
pub struct ImControllingFunction {
    config: FocusConfig,
    b2bua: B2bua,
    relay: MsrpRelay,
    confs: HashMap<u64, Conference>,
    by_call: HashMap<CallRef, u64>,
    by_relay_leg: HashMap<LegId, u64>,
    next_conf: u64,
    history: Box<dyn HistoryStore>,
    outputs: VecDeque<RelayOutput>,
}

impl std::fmt::Debug for ImControllingFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImControllingFunction")
            .field("conferences", &self.confs.len())
            .finish_non_exhaustive()
    }
}

/// Who is in a session, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub identity: String,
    pub group: Option<String>,
    /// (AOR, connected)
    pub participants: Vec<(String, bool)>,
    pub subscriptions: usize,
}

impl ImControllingFunction {
    pub fn new(
        config: FocusConfig,
        history: Box<dyn HistoryStore>,
        relay_tid_prefix: &str,
    ) -> Self {
        ImControllingFunction {
            config,
            b2bua: B2bua::new(),
            relay: MsrpRelay::new(format!("f{relay_tid_prefix}")).with_first_leg(FOCUS_LEG_BASE),
            confs: HashMap::new(),
            by_call: HashMap::new(),
            by_relay_leg: HashMap::new(),
            next_conf: 0,
            history,
            outputs: VecDeque::new(),
        }
    }

    pub fn history(&self) -> &dyn HistoryStore {
        self.history.as_ref()
    }

    /// The sessions in progress.
    pub fn sessions(&self) -> Vec<SessionView> {
        self.confs
            .values()
            .map(|c| SessionView {
                identity: c.identity.clone(),
                group: c.group.clone(),
                participants: c
                    .participants
                    .iter()
                    .map(|p| (p.aor.clone(), p.presence == Presence::Connected))
                    .collect(),
                subscriptions: c.subs.len(),
            })
            .collect()
    }

    // --- dispatch predicates ------------------------------------------------

    /// An out-of-dialog INVITE / SUBSCRIBE / REFER for the factory, a session
    /// identity or a group of ours.
    pub fn claims(&self, req: &rsip::Request) -> bool {
        if !matches!(
            req.method,
            rsip::Method::Invite | rsip::Method::Subscribe | rsip::Method::Refer
        ) {
            return false;
        }
        let v = UriView::of(&req.uri);
        let Some(user) = v.user.as_deref() else {
            return false;
        };
        if !v.host.eq_ignore_ascii_case(&self.config.domain) && !self.is_local_host(&v.host) {
            return false;
        }
        let factory = UriView::parse(&self.config.factory_uri);
        factory.is_some_and(|f| f.user.as_deref() == Some(user))
            || user.starts_with("conf-")
            || self.group(user).is_some()
    }

    fn is_local_host(&self, host: &str) -> bool {
        host == host_of(self.config.msrp_local) || host.eq_ignore_ascii_case("localhost")
    }

    pub fn owns_client(&self, key: &TsxKey) -> bool {
        self.b2bua.owns_client(key)
    }

    pub fn owns_invite(&self, key: &TsxKey) -> bool {
        self.b2bua.call_of_server(key).is_some()
    }

    pub fn knows_dialog(&self, req: &rsip::Request) -> bool {
        self.b2bua.knows_dialog(req) || self.subscription_of(req).is_some()
    }

    fn subscription_of(&self, req: &rsip::Request) -> Option<(u64, usize)> {
        let id = DialogId::for_received_request(req).ok()?;
        self.confs.iter().find_map(|(k, c)| {
            c.subs
                .iter()
                .position(|s| s.dialog.id() == &id)
                .map(|i| (*k, i))
        })
    }

    fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.config
            .groups
            .iter()
            .find(|g| g.name.eq_ignore_ascii_case(name))
    }

    fn conf_by_uri(&self, uri: &rsip::Uri) -> Option<u64> {
        let user = UriView::of(uri).user?;
        self.confs.iter().find_map(|(k, c)| {
            let id_user = UriView::parse(&c.identity).and_then(|v| v.user);
            let hit = id_user
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&user))
                || c.group
                    .as_deref()
                    .is_some_and(|g| g.eq_ignore_ascii_case(&user));
            hit.then_some(*k)
        })
    }

    fn aor(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.config.domain)
    }

    fn identity_contact(identity: &str) -> String {
        format!("<{identity}>;isfocus")
    }

    // --- INVITE ---------------------------------------------------------------

    /// An authenticated INVITE from `user` to the factory, a session identity
    /// or a group (seed 003 7.2.1.1–7.2.1.4).
    #[allow(clippy::too_many_arguments)]
    pub fn on_invite(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        cpm: Option<&CpmParticipatingFunction>,
        key: TsxKey,
        req: rsip::Request,
        user: &str,
        source: SocketAddr,
        transport: Transport,
    ) {
        let call = self.b2bua.open(ctx, key, req.clone(), source, transport);
        let result = if self.is_factory(&req.uri) {
            self.create_adhoc(ctx, location, cpm, call, &req, user)
        } else {
            self.join(ctx, location, cpm, call, &req, user)
        };
        if let Err(rejection) = result {
            tracing::info!(%rejection, "focus refused an INVITE");
            let (code, reason, _) = rejection.status();
            let extra = rejection.headers(&self.config.domain);
            self.b2bua
                .answer(ctx, call, code, Some(reason), extra, None);
            if !self.by_call.contains_key(&call) {
                self.b2bua.remove(call);
            }
        }
    }

    fn is_factory(&self, uri: &rsip::Uri) -> bool {
        let v = UriView::of(uri);
        UriView::parse(&self.config.factory_uri)
            .is_some_and(|f| f.user.is_some() && f.user == v.user)
    }

    fn has_isfocus(req: &rsip::Request) -> bool {
        req.headers
            .get_all_raw("Contact")
            .iter()
            .any(|c| c.to_ascii_lowercase().contains("isfocus"))
    }

    fn wants_privacy(req: &rsip::Request) -> bool {
        req.headers
            .get_all_raw("Privacy")
            .iter()
            .any(|p| p.split(';').any(|v| v.trim().eq_ignore_ascii_case("id")))
    }

    /// Seed 003 7.2.1.1: the ad-hoc session.
    fn create_adhoc(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        cpm: Option<&CpmParticipatingFunction>,
        call: CallRef,
        req: &rsip::Request,
        user: &str,
    ) -> Result<(), FocusRejection> {
        if Self::has_isfocus(req) {
            return Err(FocusRejection::IsfocusAlreadyAssigned);
        }
        let ct = req.headers.get_raw("Content-Type").unwrap_or_default();
        let (sdp_body, list) = if ct.to_ascii_lowercase().starts_with("multipart/") {
            let mp = Multipart::parse_with_content_type(&ct, &req.body)
                .map_err(|e| FocusRejection::BadRequest(e.to_string()))?;
            let sdp = mp
                .parts
                .iter()
                .find(|p| p.media_type().as_deref() == Some("application/sdp"))
                .map(|p| p.body.clone())
                .ok_or_else(|| FocusRejection::SdpPolicy("no SDP part".into()))?;
            // RFC 5366 §4: the URI list is the part with disposition recipient-list.
            let list = mp
                .parts
                .iter()
                .find(|p| {
                    p.media_type().as_deref() == Some("application/resource-lists+xml")
                        && p.disposition()
                            .is_none_or(|d| d.eq_ignore_ascii_case("recipient-list"))
                })
                .map(|p| ResourceLists::parse(&p.body))
                .transpose()
                .map_err(|e| FocusRejection::BadRequest(e.to_string()))?;
            (sdp, list)
        } else {
            (req.body.clone(), None)
        };
        let offer = self.check_sdp(&sdp_body)?;
        let entries: Vec<_> = list
            .as_ref()
            .map(|l| l.entries().into_iter().cloned().collect())
            .unwrap_or_default();
        // Step 5: the creator counts as a participant.
        if entries.len() as u64 + 1 > u64::from(self.config.max_adhoc_group_size) {
            return Err(FocusRejection::TooManyParticipants);
        }
        if entries.is_empty() {
            return Err(FocusRejection::BadRequest("empty URI list".into()));
        }
        let conf = self.new_conference(ctx, None, call);
        if offer.is_large_message()
            && let Some(c) = self.confs.get_mut(&conf)
        {
            // seed 003 9.3.1.1 step 1 with 3: an ad-hoc Large Message session
            c.large = Some(offer.clone());
        }
        let creator_aor = self.aor(user);
        self.add_dialled_in(ctx, conf, call, req, &creator_aor, offer, false);
        if let Some(c) = self.confs.get_mut(&conf) {
            c.creator = Some(call);
        }
        self.b2bua.answer(ctx, call, 100, None, vec![], None);
        let referred_by = format!("<{creator_aor}>");
        let mut started = 0;
        for e in &entries {
            let target_aor = e.target().to_ascii_lowercase();
            if target_aor == creator_aor {
                continue;
            }
            let replaces = e.replaces();
            if self.invite_user(
                ctx,
                location,
                cpm,
                conf,
                &target_aor,
                replaces,
                Some(&referred_by),
            ) {
                started += 1;
            }
        }
        if started == 0 {
            self.nobody_reached(ctx, conf, call);
        }
        Ok(())
    }

    /// Not one invitee could be tried (none registered, or only the
    /// creator): the creator gets 480 and the conference ends.
    fn nobody_reached(&mut self, ctx: &mut SipCtx<'_>, conf: u64, call: CallRef) {
        self.b2bua.answer(
            ctx,
            call,
            480,
            Some("Temporarily Unavailable"),
            vec![],
            None,
        );
        self.end_conference(ctx, conf);
    }

    fn check_sdp(&self, body: &[u8]) -> Result<MsrpMedia, FocusRejection> {
        let sdp = parse_sdp(body).map_err(|e| FocusRejection::SdpPolicy(e.to_string()))?;
        for m in &sdp.media {
            if m.port() != 0 && !self.config.sdp_policy.allows_media(m.media_type()) {
                return Err(FocusRejection::SdpPolicy(format!(
                    "media {} not allowed",
                    m.media_type()
                )));
            }
        }
        let m = sdp
            .msrp()
            .find(|m| m.port != 0 && !m.path.is_empty())
            .cloned()
            .ok_or_else(|| FocusRejection::SdpPolicy("no MSRP stream".into()))?;
        // RFC 4975 §8.1, §14.1: proto and path agree; msrps: only where we
        // listen for TLS, and then the participant connects (we check no
        // participant's certificate).
        m.check_transport()
            .map_err(|e| FocusRejection::SdpPolicy(e.to_string()))?;
        if m.is_tls() {
            if self.config.msrps_local.is_none() {
                return Err(FocusRejection::SdpPolicy(
                    "MSRP over TLS (TCP/TLS/MSRP) is not enabled here".into(),
                ));
            }
            if m.setup == Some(Setup::Passive) {
                return Err(FocusRejection::SdpPolicy(
                    "over TCP/TLS/MSRP the participant connects: a=setup:active or actpass".into(),
                ));
            }
        }
        Ok(m)
    }

    fn new_conference(
        &mut self,
        ctx: &mut SipCtx<'_>,
        group: Option<String>,
        call: CallRef,
    ) -> u64 {
        self.next_conf += 1;
        let id = self.next_conf;
        let mut raw = [0u8; 4];
        ctx.ids.fill(&mut raw);
        let identity = match &group {
            Some(g) => self.aor(g),
            None => match self.config.instance {
                Some(n) => format!(
                    "sip:conf-i{n}.{}{id}@{}",
                    hex::encode(raw),
                    self.config.domain
                ),
                None => format!("sip:conf-{}{id}@{}", hex::encode(raw), self.config.domain),
            },
        };
        self.confs.insert(
            id,
            Conference {
                identity,
                group,
                participants: Vec::new(),
                calls: vec![call],
                creator: None,
                ringing: false,
                members: Vec::new(),
                subs: Vec::new(),
                notify_due: None,
                accept_types: Vec::new(),
                accept_wrapped_types: Vec::new(),
                best_error: None,
                large: None,
            },
        );
        self.by_call.insert(call, id);
        id
    }

    /// Seed 003 7.2.1.2 – 7.2.1.4: join a group (starting its session when
    /// none is active) or join / rejoin a session by its identity.
    fn join(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        cpm: Option<&CpmParticipatingFunction>,
        call: CallRef,
        req: &rsip::Request,
        user: &str,
    ) -> Result<(), FocusRejection> {
        let aor = self.aor(user);
        let name = UriView::of(&req.uri).user.unwrap_or_default();
        let group = self.group(&name).cloned();
        let existing = self.conf_by_uri(&req.uri);
        if group.is_none() && existing.is_none() {
            // 7.2.1.2 step 1: not a group or session we own.
            return Err(FocusRejection::NotFound);
        }
        // 7.2.1.2 step 2 / 7.2.1.3 step 1
        if Self::has_isfocus(req) {
            return Err(FocusRejection::IsfocusAlreadyAssigned);
        }
        // 7.2.2.9 joining policy
        let allowed = match (&group, existing) {
            (Some(g), _) => {
                g.public
                    || g.joining_policy == JoiningPolicy::Open
                    || g.member_uris(&self.config.domain)
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(&aor))
            }
            // An ad-hoc session has no authorisation rules of its own (seed
            // 003 7.2.1.4 names none): a user of ours who knows its identity
            // may join it (flow D.1: carol joins) and rejoin it.
            (None, Some(c)) => self.confs.contains_key(&c),
            (None, None) => false,
        };
        if !allowed {
            return Err(FocusRejection::NotAllowedToJoin);
        }
        // 7.2.1.3 step 3: <max-participant-count>
        if let Some(g) = &group {
            let inside = existing
                .and_then(|c| self.confs.get(&c))
                .map(|c| {
                    c.participants
                        .iter()
                        .filter(|p| p.presence != Presence::Left && p.aor != aor)
                        .count()
                })
                .unwrap_or(0);
            if inside as u64 + 1 > u64::from(g.max_participants) {
                return Err(FocusRejection::TooManyParticipants);
            }
        }
        // step 4: privacy
        let name_of = user.to_string();
        if Self::wants_privacy(req)
            && !self
                .config
                .users
                .get(&name_of)
                .is_some_and(|u| u.anonymity_allowed)
        {
            return Err(FocusRejection::AnonymityNotAllowed);
        }
        let offer = self.check_sdp(&req.body)?;
        if let (Some(g), None, true) = (&group, existing, offer.is_large_message()) {
            return self.large_to_group(ctx, location, cpm, call, req, &aor, g, offer);
        }
        let conf = match existing {
            Some(c) => {
                self.by_call.insert(call, c);
                if let Some(cf) = self.confs.get_mut(&c) {
                    cf.calls.push(call);
                }
                c
            }
            None => self.new_conference(ctx, group.map(|g| g.name), call),
        };
        if !self.add_dialled_in(ctx, conf, call, req, &aor, offer, true) {
            return Err(FocusRejection::SdpPolicy("no answer to the offer".into()));
        }
        Ok(())
    }

    /// Seed 003 9.1.1.2 step 4, 9.3.1.1 step 2, 9.3.2.1 step 3: a Large
    /// Message to a pre-defined group with no session running goes to its
    /// members, invited as for an ad-hoc session.
    #[allow(clippy::too_many_arguments)]
    fn large_to_group(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        cpm: Option<&CpmParticipatingFunction>,
        call: CallRef,
        req: &rsip::Request,
        aor: &str,
        group: &GroupConfig,
        offer: MsrpMedia,
    ) -> Result<(), FocusRejection> {
        let conf = self.new_conference(ctx, Some(group.name.clone()), call);
        if let Some(c) = self.confs.get_mut(&conf) {
            c.large = Some(offer.clone());
            c.creator = Some(call);
        }
        self.add_dialled_in(ctx, conf, call, req, aor, offer, false);
        self.b2bua.answer(ctx, call, 100, None, vec![], None);
        let mut started = 0;
        for m in group.member_uris(&self.config.domain) {
            let m = m.to_ascii_lowercase();
            if m != aor && self.invite_user(ctx, location, cpm, conf, &m, None, None) {
                started += 1;
            }
        }
        if started == 0 {
            self.nobody_reached(ctx, conf, call);
        }
        Ok(())
    }

    /// A participant that dialled in: its MSRP leg and (when `answer_now`)
    /// our 200 with the session identity.
    #[allow(clippy::too_many_arguments)]
    fn add_dialled_in(
        &mut self,
        ctx: &mut SipCtx<'_>,
        conf: u64,
        call: CallRef,
        req: &rsip::Request,
        aor: &str,
        offer: MsrpMedia,
        answer_now: bool,
    ) -> bool {
        let privacy = Self::wants_privacy(req);
        let local = self.local_uri(ctx, offer.is_tls());
        let mut p = self.participant(aor, privacy, call);
        p.side = Some(Side::Incoming);
        p.offers.insert(usize::MAX, (local, offer));
        let Some(c) = self.confs.get_mut(&conf) else {
            return false;
        };
        // A rejoin replaces the old entry.
        c.participants
            .retain(|x| x.aor != aor || x.presence == Presence::Connected);
        if !c.members.iter().any(|m| m == aor) {
            c.members.push(aor.to_string());
        }
        c.participants.push(p);
        if answer_now {
            let accept = offer_types(c, &self.config);
            return self.answer_participant(ctx, conf, call, accept);
        }
        true
    }

    fn participant(&self, aor: &str, privacy: bool, call: CallRef) -> Participant {
        let name = UriView::parse(aor).and_then(|v| v.user).unwrap_or_default();
        let display = self
            .config
            .users
            .get(&name)
            .and_then(|u| u.display_name.clone());
        Participant {
            aor: aor.to_string(),
            // seed 004 7.2.2.10 2.a.iv: an anonymous identity under privacy
            entity: if privacy {
                format!("sip:anonymous@{ANONYMOUS_HOST}")
            } else {
                aor.to_string()
            },
            display: if privacy { None } else { display },
            presence: Presence::Pending,
            call,
            side: None,
            pending_legs: Vec::new(),
            relay_leg: None,
            offers: HashMap::new(),
            answer_sdp: None,
            best_error: None,
        }
    }

    /// Our 200 to a participant that dialled in (the creator on the first
    /// acceptance, a joiner at once): SDP answer, Contact = the session
    /// identity with `isfocus`, its MSRP leg.
    fn answer_participant(
        &mut self,
        ctx: &mut SipCtx<'_>,
        conf: u64,
        call: CallRef,
        accept: (Vec<String>, Vec<String>),
    ) -> bool {
        let connection = ConnectionAddress::Ip(self.config.msrp_local.ip());
        let Some(c) = self.confs.get_mut(&conf) else {
            return false;
        };
        let identity = c.identity.clone();
        let large = c.large.clone();
        let Some(p) = c
            .participants
            .iter_mut()
            .find(|p| p.call == call && p.side == Some(Side::Incoming))
        else {
            return false;
        };
        let Some((local, offer)) = p.offers.get(&usize::MAX).cloned() else {
            return false;
        };
        let params = MsrpAnswerParams {
            // our URI's port: the TLS listener's for an msrps: offer
            port: local.port.unwrap_or_default(),
            connection: connection.clone(),
            path: vec![local.to_string()],
            accept_types: accept.0,
            accept_wrapped_types: accept.1,
            setup_preference: SetupPreference::Passive,
            direction: crate::proto::sdp::Direction::SendRecv,
            max_size: None,
        };
        let mut media = match offer.answer(&params) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(error = %e, "no answer to a participant's offer");
                return false;
            }
        };
        if let Some(l) = &large {
            // seed 003 9.3.1.1 step 3.b.i: the offer's attributes in the answer
            media.file_size = l.file_size;
            media.file_disposition = l.file_disposition.clone();
        }
        let remote = MsrpPath(
            offer
                .path
                .iter()
                .filter_map(|x| MsrpUri::parse(x).ok())
                .collect(),
        );
        let connect_to = match tcp_active_side(&offer, &media) {
            Ok(TcpActiveSide::Answerer) => remote.first().and_then(msrp_addr),
            _ => None,
        };
        let mut sid = [0u8; 4];
        ctx.ids.fill(&mut sid);
        let body = Sdp::new("isc", u64::from(u32::from_be_bytes(sid)), connection)
            .with_media(media)
            .to_string()
            .into_bytes();
        p.answer_sdp = Some(body.clone());
        p.presence = Presence::Connected;
        let aor = p.aor.clone();
        let leg = self
            .relay
            .add_leg(conf, LegRole::Participant, local, remote, connect_to);
        if large.is_some() {
            self.relay.set_streaming(conf);
        }
        self.relay.set_leg_address(leg, &aor);
        self.by_relay_leg.insert(leg, conf);
        if let Some(p) = self.confs.get_mut(&conf).and_then(|c| {
            c.participants
                .iter_mut()
                .find(|p| p.call == call && p.side == Some(Side::Incoming))
        }) {
            p.relay_leg = Some(leg);
        }
        self.b2bua.answer(
            ctx,
            call,
            200,
            None,
            vec![
                make_header("Contact", &Self::identity_contact(&identity)),
                make_header("Allow", super::core::ALLOW),
            ],
            Some(("application/sdp", body)),
        );
        self.changed(ctx.now, conf);
        self.flush_relay();
        true
    }

    /// Invites `aor` into `conf`: every registered device, or with
    /// `replaces` only the device holding the replaced dialog.
    #[allow(clippy::too_many_arguments)]
    fn invite_user(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        cpm: Option<&CpmParticipatingFunction>,
        conf: u64,
        aor: &str,
        replaces: Option<crate::proto::bodies::resource_lists::Replaces>,
        referred_by: Option<&str>,
    ) -> bool {
        let Some(c) = self.confs.get(&conf) else {
            return false;
        };
        if c.participants.iter().any(|p| {
            p.aor == aor
                && matches!(
                    p.presence,
                    Presence::Connected | Presence::Pending | Presence::Alerting
                )
        }) {
            return false;
        }
        let Some(&call) = c.calls.first() else {
            return false;
        };
        let identity = c.identity.clone();
        let large = c.large.clone();
        // The targets: (target, Accept-Contact instance, Replaces value).
        let targets: Vec<(Target, Option<String>, Option<String>)> = match replaces {
            Some(r) => {
                // Seed 002 App. M: translate to the peer's leg of the same conversation.
                let found = cpm.and_then(|cpm| cpm.peer_leg(&r.call_id, &r.from_tag, &r.to_tag));
                match found {
                    Some((t, value)) => vec![(t, None, Some(value))],
                    None => {
                        tracing::info!(%aor, "replaced dialog unknown: inviting every device");
                        Vec::new()
                    }
                }
            }
            None => Vec::new(),
        };
        let targets = if targets.is_empty() {
            location
                .lookup(ctx.now, aor)
                .into_iter()
                .filter_map(device_target)
                .map(|(t, i)| (t, i, None))
                .collect()
        } else {
            targets
        };
        let mut p = self.participant(aor, false, call);
        for (target, instance, replaces) in targets {
            let local = self.local_uri(ctx, false);
            let connection = ConnectionAddress::Ip(self.config.msrp_local.ip());
            // RFC 4975 §8.2: an MSRP offer lists what it accepts.
            let mut media = MsrpMedia::offer(
                self.config.msrp_local.port(),
                connection.clone(),
                vec![local.to_string()],
                crate::proto::sdp::CHAT_ACCEPT_TYPES,
            );
            media.accept_wrapped_types = crate::proto::sdp::CHAT_ACCEPT_WRAPPED_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect();
            media.setup = Some(Setup::Active);
            if let Some(l) = &large {
                // seed 003 9.3.2.1 step 4.c: the original offer's attributes
                media.accept_types = l.accept_types.clone();
                media.accept_wrapped_types = l.accept_wrapped_types.clone();
                media.direction = l.direction;
                media.file_size = l.file_size;
                media.file_disposition = l.file_disposition.clone();
            }
            let mut sid = [0u8; 4];
            ctx.ids.fill(&mut sid);
            let body = Sdp::new("isc", u64::from(u32::from_be_bytes(sid)), connection)
                .with_media(media.clone())
                .to_string()
                .into_bytes();
            let mut headers = rsip::Headers::default();
            headers.push(make_header("Max-Forwards", "70"));
            headers.push(make_header(
                "From",
                &format!("<{identity}>;tag={}", ctx.ids.token()),
            ));
            headers.push(make_header("To", &format!("<{aor}>")));
            headers.push(make_header(
                "Call-ID",
                &format!("{}@{}", ctx.ids.token(), ctx.domain),
            ));
            headers.push(make_header("CSeq", "1 INVITE"));
            // RFC 4579 §5.3: the session identity with isfocus.
            headers.push(make_header("Contact", &Self::identity_contact(&identity)));
            headers.push(make_header(
                "Accept-Contact",
                &format!("*;{IM_FEATURE_TAG}"),
            ));
            if let Some(i) = instance {
                headers.push(make_header(
                    "Accept-Contact",
                    &format!("*;+sip.instance=\"{i}\";explicit;require"),
                ));
            }
            if let Some(r) = &replaces {
                // RFC 3891
                headers.push(make_header("Replaces", r));
                headers.push(make_header("Require", "replaces"));
            }
            if let Some(by) = referred_by {
                // RFC 3892
                headers.push(make_header("Referred-By", by));
            }
            headers.push(make_header("P-Asserted-Identity", &format!("<{identity}>")));
            headers.push(make_header("Allow", super::core::ALLOW));
            headers.push(make_header("User-Agent", SERVER_AGENT));
            headers.push(make_header("Content-Type", "application/sdp"));
            headers.push(make_header("Content-Length", &body.len().to_string()));
            let request = rsip::Request {
                method: rsip::Method::Invite,
                uri: target.uri.clone(),
                version: rsip::Version::V2,
                headers,
                body,
            };
            if let Some(leg) = self.b2bua.send_invite(ctx, call, target, request) {
                p.pending_legs.push(leg);
                p.offers.insert(leg, (local, media));
            }
        }
        if p.pending_legs.is_empty() {
            return false;
        }
        if let Some(c) = self.confs.get_mut(&conf) {
            c.participants.retain(|x| x.aor != aor);
            if !c.members.iter().any(|m| m == aor) {
                c.members.push(aor.to_string());
            }
            c.participants.push(p);
        }
        true
    }

    /// A fresh focus URI; `msrps:` on the TLS listener when `tls` (its
    /// existence checked by `check_sdp`).
    fn local_uri(&self, ctx: &mut SipCtx<'_>, tls: bool) -> MsrpUri {
        let mut raw = [0u8; 16];
        ctx.ids.fill(&mut raw);
        let local = match self.config.msrps_local {
            Some(l) if tls => l,
            _ => self.config.msrp_local,
        };
        MsrpUri::new(
            ip_host(local.ip()),
            local.port(),
            format!("{FOCUS_SESSION_PREFIX}{}", hex::encode(raw)),
        )
        .with_secure(tls)
    }

    // --- responses on our INVITEs -------------------------------------------------

    pub fn on_response(&mut self, ctx: &mut SipCtx<'_>, key: &TsxKey, response: rsip::Response) {
        if let Some(r) = self.b2bua.on_response(ctx, key, response) {
            self.on_leg_response(ctx, r);
        }
    }

    pub fn on_failure(&mut self, ctx: &mut SipCtx<'_>, key: &TsxKey, code: u16) {
        if let Some(r) = self.b2bua.on_failure(key, code) {
            self.on_leg_response(ctx, r);
        }
    }

    pub fn on_terminated(&mut self, key: &TsxKey) {
        self.b2bua.on_terminated(key);
    }

    fn find_invitee(&self, call: CallRef, leg: usize) -> Option<(u64, usize)> {
        let conf = *self.by_call.get(&call)?;
        let c = self.confs.get(&conf)?;
        let i = c.participants.iter().position(|p| {
            p.call == call && (p.pending_legs.contains(&leg) || p.side == Some(Side::Outgoing(leg)))
        })?;
        Some((conf, i))
    }

    fn on_leg_response(&mut self, ctx: &mut SipCtx<'_>, r: LegResponse) {
        let LegResponse {
            call,
            leg,
            code,
            response,
            retransmission,
        } = r;
        if retransmission {
            return;
        }
        let Some((conf, idx)) = self.find_invitee(call, leg) else {
            if (200..300).contains(&code) {
                self.b2bua.send_bye(ctx, call, Side::Outgoing(leg), None);
            }
            return;
        };
        if code < 200 {
            if code == 180 {
                let mut ring_creator = None;
                if let Some(c) = self.confs.get_mut(&conf) {
                    if let Some(p) = c.participants.get_mut(idx)
                        && p.presence == Presence::Pending
                    {
                        p.presence = Presence::Alerting;
                    }
                    // Seed 003 7.2.1.1: 180 once, when the first invitee rings.
                    if !c.ringing
                        && let Some(cr) = c.creator
                    {
                        c.ringing = true;
                        ring_creator = Some(cr);
                    }
                }
                if let Some(cr) = ring_creator {
                    self.b2bua.answer(ctx, cr, 180, None, vec![], None);
                }
                self.changed(ctx.now, conf);
            }
            return;
        }
        if (200..300).contains(&code) {
            self.on_invitee_ok(ctx, conf, idx, call, leg, response.as_ref());
            return;
        }
        let reason = response
            .as_ref()
            .map(|r| crate::proto::sip::message::reason_phrase(&r.status_code))
            .unwrap_or_else(|| crate::proto::sip::message::default_reason(code).to_string());
        let Some(c) = self.confs.get_mut(&conf) else {
            return;
        };
        let Some(p) = c.participants.get_mut(idx) else {
            return;
        };
        p.pending_legs.retain(|l| *l != leg);
        if better_error(p.best_error.as_ref().map(|b| b.0), code) {
            p.best_error = Some((code, reason.clone()));
        }
        if p.pending_legs.is_empty() && p.side.is_none() {
            // Every device of this invitee failed.
            if lower_error(c.best_error.as_ref().map(|b| b.0), code) {
                c.best_error = p.best_error.clone();
            }
            c.participants.remove(idx);
            self.changed(ctx.now, conf);
            self.finish_if_all_failed(ctx, conf);
            self.large_creator_ready(ctx, conf);
        }
    }

    /// Seed 003 7.2.1.1: all invitees failed → the lowest error to the creator.
    fn finish_if_all_failed(&mut self, ctx: &mut SipCtx<'_>, conf: u64) {
        let Some(c) = self.confs.get(&conf) else {
            return;
        };
        let Some(creator) = c.creator else {
            self.end_if_empty(ctx, conf);
            return;
        };
        let others_alive = c
            .participants
            .iter()
            .any(|p| p.call != creator || p.side != Some(Side::Incoming));
        if others_alive {
            return;
        }
        let (code, reason) = c
            .best_error
            .clone()
            .unwrap_or((480, "Temporarily Unavailable".into()));
        let code = if code == 503 { 500 } else { code };
        self.b2bua
            .answer(ctx, creator, code, Some(&reason), vec![], None);
        self.end_conference(ctx, conf);
    }

    fn on_invitee_ok(
        &mut self,
        ctx: &mut SipCtx<'_>,
        conf: u64,
        idx: usize,
        call: CallRef,
        leg: usize,
        response: Option<&rsip::Response>,
    ) {
        let Some(c) = self.confs.get_mut(&conf) else {
            return;
        };
        let Some(p) = c.participants.get_mut(idx) else {
            return;
        };
        if p.side.is_some() {
            // A sibling device answered after another one: it is not needed.
            self.b2bua.send_bye(
                ctx,
                call,
                Side::Outgoing(leg),
                Some(REASON_COMPLETED_ELSEWHERE),
            );
            return;
        }
        let answer = response
            .and_then(|r| parse_sdp(&r.body).ok())
            .and_then(|s| s.msrp().find(|m| m.port != 0).cloned());
        let (Some(answer), Some((local, offer))) = (answer, p.offers.get(&leg).cloned()) else {
            self.b2bua.send_bye(ctx, call, Side::Outgoing(leg), None);
            return;
        };
        p.side = Some(Side::Outgoing(leg));
        p.presence = Presence::Connected;
        let siblings: Vec<usize> = p.pending_legs.drain(..).filter(|l| *l != leg).collect();
        let aor = p.aor.clone();
        // Accept-types: those the creator offered and this invitee answered.
        if c.accept_types.is_empty() {
            c.accept_types = answer.accept_types.clone();
            c.accept_wrapped_types = answer.accept_wrapped_types.clone();
        }
        // A Large Message's creator waits for every invitee (see
        // `large_creator_ready`).
        let large = c.large.is_some();
        let creator = if large { None } else { c.creator.take() };
        for s in siblings {
            self.b2bua
                .cancel_leg(ctx, call, s, Some(REASON_COMPLETED_ELSEWHERE));
        }
        let remote = MsrpPath(
            answer
                .path
                .iter()
                .filter_map(|x| MsrpUri::parse(x).ok())
                .collect(),
        );
        let connect_to = match tcp_active_side(&offer, &answer) {
            Ok(TcpActiveSide::Offerer) => remote.first().and_then(msrp_addr),
            _ => None,
        };
        let rl = self
            .relay
            .add_leg(conf, LegRole::Participant, local, remote, connect_to);
        if large {
            self.relay.set_streaming(conf);
        }
        self.relay.set_leg_address(rl, &aor);
        self.by_relay_leg.insert(rl, conf);
        if let Some(p) = self
            .confs
            .get_mut(&conf)
            .and_then(|c| c.participants.get_mut(idx))
        {
            p.relay_leg = Some(rl);
        }
        if let Some(creator) = creator {
            // Seed 003 7.2.1.1: the creator's 200 on the first acceptance.
            let accept = self
                .confs
                .get(&conf)
                .map(|c| offer_types(c, &self.config))
                .unwrap_or_default();
            self.answer_participant(ctx, conf, creator, accept);
        }
        self.large_creator_ready(ctx, conf);
        self.changed(ctx.now, conf);
        self.flush_relay();
    }

    /// Large Message (seed 003 9.3.1.1): the creator starts sending on our
    /// 200, so it is answered once every invitee has answered or failed —
    /// an invitee joining later would miss the first chunks.
    fn large_creator_ready(&mut self, ctx: &mut SipCtx<'_>, conf: u64) {
        let Some(c) = self.confs.get_mut(&conf) else {
            return;
        };
        if c.large.is_none() {
            return;
        }
        let invitee = |x: &&Participant| x.side != Some(Side::Incoming);
        let waiting = c
            .participants
            .iter()
            .filter(invitee)
            .any(|x| matches!(x.presence, Presence::Pending | Presence::Alerting));
        let connected = c
            .participants
            .iter()
            .filter(invitee)
            .any(|x| x.presence == Presence::Connected);
        if waiting || !connected {
            return;
        }
        let Some(creator) = c.creator.take() else {
            return;
        };
        let accept = offer_types(c, &self.config);
        self.answer_participant(ctx, conf, creator, accept);
    }

    // --- CANCEL, ACK, in-dialog -------------------------------------------------

    pub fn on_cancel(&mut self, ctx: &mut SipCtx<'_>, invite: &TsxKey) {
        let Some(call) = self.b2bua.call_of_server(invite) else {
            return;
        };
        if self.b2bua.call(call).is_some_and(|b| b.incoming.final_sent) {
            return;
        }
        self.b2bua
            .answer(ctx, call, 487, Some("Request Terminated"), vec![], None);
        if let Some(conf) = self.by_call.get(&call).copied() {
            let creator = self.confs.get(&conf).and_then(|c| c.creator) == Some(call);
            if creator {
                self.end_conference(ctx, conf);
            } else {
                self.participant_left(ctx, conf, call, Side::Incoming);
            }
        }
    }

    pub fn on_ack(&mut self, now: Instant, ack: &rsip::Request) -> bool {
        self.b2bua.on_ack(now, ack)
    }

    pub fn on_stray_response(&mut self, ctx: &mut SipCtx<'_>, response: &rsip::Response) {
        self.b2bua.on_stray_response(ctx, response);
    }

    /// An in-dialog request: BYE, re-INVITE/UPDATE, REFER, a SUBSCRIBE refresh.
    #[allow(clippy::too_many_arguments)]
    pub fn on_in_dialog(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        cpm: Option<&CpmParticipatingFunction>,
        key: TsxKey,
        req: rsip::Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        if req.method == rsip::Method::Subscribe
            && let Some((conf, i)) = self.subscription_of(&req)
        {
            self.on_resubscribe(ctx, conf, i, key, &req, source, transport);
            return;
        }
        let (call, side) = match self.b2bua.match_request(&req) {
            Some(Ok(x)) => x,
            Some(Err(code)) => {
                B2bua::respond(ctx, &key, &req, code, vec![], None);
                return;
            }
            None => {
                B2bua::respond(ctx, &key, &req, 481, vec![], None);
                return;
            }
        };
        let Some(conf) = self.by_call.get(&call).copied() else {
            B2bua::respond(ctx, &key, &req, 481, vec![], None);
            return;
        };
        match req.method {
            rsip::Method::Bye => {
                B2bua::respond(ctx, &key, &req, 200, vec![], None);
                // Seed 003 7.2.1.9: the participant leaves.
                self.participant_left(ctx, conf, call, side);
            }
            rsip::Method::Refer => {
                let referrer = self
                    .confs
                    .get(&conf)
                    .and_then(|c| {
                        c.participants
                            .iter()
                            .find(|p| p.call == call && p.side == Some(side))
                    })
                    .map(|p| p.aor.clone())
                    .unwrap_or_default();
                self.on_refer_in(ctx, location, cpm, conf, key, &req, &referrer);
            }
            rsip::Method::Invite | rsip::Method::Update => {
                // A refresh or modification: we keep our description (RFC 3264 §8).
                let body = self.confs.get(&conf).and_then(|c| {
                    let p = c
                        .participants
                        .iter()
                        .find(|p| p.call == call && p.side == Some(side))?;
                    match side {
                        Side::Incoming => p.answer_sdp.clone(),
                        Side::Outgoing(leg) => p.offers.get(&leg).map(|(_, m)| {
                            Sdp::new("isc", 1, ConnectionAddress::Ip(self.config.msrp_local.ip()))
                                .with_media(m.clone())
                                .to_string()
                                .into_bytes()
                        }),
                    }
                });
                let mut extra = match self.b2bua.refresh_received(ctx.now, call, side, &req) {
                    Ok(h) => h,
                    Err((code, headers)) => {
                        B2bua::respond(ctx, &key, &req, code, headers, None);
                        return;
                    }
                };
                let identity = self
                    .confs
                    .get(&conf)
                    .map(|c| c.identity.clone())
                    .unwrap_or_default();
                extra.push(make_header("Contact", &Self::identity_contact(&identity)));
                let with_body = !req.body.is_empty() || req.method == rsip::Method::Invite;
                B2bua::respond(
                    ctx,
                    &key,
                    &req,
                    200,
                    extra,
                    body.filter(|_| with_body).map(|b| ("application/sdp", b)),
                );
            }
            _ => B2bua::respond(ctx, &key, &req, 200, vec![], None),
        }
    }

    /// A participant's dialog ended (BYE, CANCEL, session expiry).
    fn participant_left(&mut self, ctx: &mut SipCtx<'_>, conf: u64, call: CallRef, side: Side) {
        let Some(c) = self.confs.get_mut(&conf) else {
            return;
        };
        let Some(p) = c
            .participants
            .iter_mut()
            .find(|p| p.call == call && p.side == Some(side))
        else {
            return;
        };
        p.presence = Presence::Left;
        if let Some(rl) = p.relay_leg.take() {
            self.relay.release_leg(rl);
            self.by_relay_leg.remove(&rl);
        }
        if c.large.is_some() && side == Side::Incoming {
            // seed 003 9.3.2.1 Editor's note 1: a Large Message session ends
            // once the message is sent, i.e. when its sender leaves
            self.end_conference(ctx, conf);
            return;
        }
        self.changed(ctx.now, conf);
        self.end_if_empty(ctx, conf);
    }

    /// The session ends when its last participant left (nobody connected
    /// nor invited).
    fn end_if_empty(&mut self, ctx: &mut SipCtx<'_>, conf: u64) {
        let alive = self
            .confs
            .get(&conf)
            .is_some_and(|c| c.participants.iter().any(|p| p.presence != Presence::Left));
        if !alive {
            self.end_conference(ctx, conf);
        }
    }

    /// Ends a session: BYE / CANCEL to every leg still up, final NOTIFYs.
    fn end_conference(&mut self, ctx: &mut SipCtx<'_>, conf: u64) {
        let Some(mut c) = self.confs.remove(&conf) else {
            return;
        };
        for p in &c.participants {
            match p.side {
                Some(side) if p.presence == Presence::Connected => {
                    self.b2bua.send_bye(ctx, p.call, side, None)
                }
                _ => {
                    for leg in &p.pending_legs {
                        self.b2bua.cancel_leg(ctx, p.call, *leg, None);
                    }
                }
            }
        }
        for p in &mut c.participants {
            p.presence = Presence::Left;
        }
        let state = state_of(&c);
        for mut sub in std::mem::take(&mut c.subs) {
            // RFC 6665 §4.2.2: the conference is gone.
            self.send_notify(ctx, &mut sub, &state, Some("noresource"));
        }
        self.relay.remove_call(conf);
        self.by_relay_leg.retain(|_, x| *x != conf);
        for call in &c.calls {
            self.by_call.remove(call);
            self.b2bua.remove(*call);
        }
        self.flush_relay();
        tracing::info!(identity = %c.identity, "conference ended");
    }

    // --- REFER (seed 004 7.1.1.x, RFC 3515 / RFC 5368) --------------------------------

    /// An out-of-dialog REFER to a session identity, from `user`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_refer(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        cpm: Option<&CpmParticipatingFunction>,
        key: TsxKey,
        req: rsip::Request,
        user: &str,
    ) {
        let aor = self.aor(user);
        let conf = self.conf_by_uri(&req.uri);
        let Some(conf) = conf else {
            let r = FocusRejection::NotFound;
            self.reject_request(ctx, &key, &req, &r);
            return;
        };
        let inside = self.confs.get(&conf).is_some_and(|c| {
            c.participants
                .iter()
                .any(|p| p.aor == aor && p.presence == Presence::Connected)
        });
        if !inside {
            self.reject_request(ctx, &key, &req, &FocusRejection::NotAllowedToJoin);
            return;
        }
        self.on_refer_in(ctx, location, cpm, conf, key, &req, &aor);
    }

    fn reject_request(
        &self,
        ctx: &mut SipCtx<'_>,
        key: &TsxKey,
        req: &rsip::Request,
        r: &FocusRejection,
    ) {
        let (code, _, _) = r.status();
        B2bua::respond(ctx, key, req, code, r.headers(&self.config.domain), None);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_refer_in(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        cpm: Option<&CpmParticipatingFunction>,
        conf: u64,
        key: TsxKey,
        req: &rsip::Request,
        referrer: &str,
    ) {
        let targets = match refer_targets(req) {
            Ok(t) => t,
            Err(r) => {
                self.reject_request(ctx, &key, req, &r);
                return;
            }
        };
        if let Some(g) = self
            .confs
            .get(&conf)
            .and_then(|c| c.group.clone())
            .and_then(|g| self.group(&g).cloned())
        {
            let inside = self
                .confs
                .get(&conf)
                .map(|c| {
                    c.participants
                        .iter()
                        .filter(|p| p.presence != Presence::Left)
                        .count()
                })
                .unwrap_or(0);
            if (inside + targets.len()) as u64 > u64::from(g.max_participants) {
                self.reject_request(ctx, &key, req, &FocusRejection::TooManyParticipants);
                return;
            }
        }
        // RFC 4488 §4: we create no implicit subscription. Seed 004 asks
        // Refer-Sub "true" with multiple-refer, which contradicts its own
        // `norefersub` option tag (RFC 5368 §3): we follow the RFC.
        B2bua::respond(
            ctx,
            &key,
            req,
            202,
            vec![make_header("Refer-Sub", "false")],
            None,
        );
        let referred_by = format!("<{referrer}>");
        for (aor, replaces) in targets {
            self.invite_user(ctx, location, cpm, conf, &aor, replaces, Some(&referred_by));
        }
        self.changed(ctx.now, conf);
    }

    // --- SUBSCRIBE / NOTIFY (RFC 4575, seed 004 7.2.2.10) -----------------------------

    /// An out-of-dialog SUBSCRIBE (Event: conference) from `user`.
    pub fn on_subscribe(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        req: rsip::Request,
        user: &str,
        source: SocketAddr,
        transport: Transport,
    ) {
        let event_ok = req
            .headers
            .typed::<crate::proto::sip::headers::Event>()
            .ok()
            .flatten()
            .is_some_and(|e| e.package.eq_ignore_ascii_case("conference"));
        if !event_ok {
            B2bua::respond(
                ctx,
                &key,
                &req,
                489,
                vec![make_header("Allow-Events", "conference")],
                None,
            );
            return;
        }
        let aor = self.aor(user);
        let Some(conf) = self.conf_by_uri(&req.uri) else {
            self.reject_request(ctx, &key, &req, &FocusRejection::NotFound);
            return;
        };
        let participant = self.confs.get(&conf).is_some_and(|c| {
            c.participants
                .iter()
                .any(|p| p.aor == aor && p.presence != Presence::Left)
        });
        if !participant {
            self.reject_request(ctx, &key, &req, &FocusRejection::NotParticipant);
            return;
        }
        let expires = grant(&req);
        let tag = ctx.ids.token();
        let identity = self
            .confs
            .get(&conf)
            .map(|c| c.identity.clone())
            .unwrap_or_default();
        let response = response_with(
            &req,
            200,
            Some(&tag),
            None,
            vec![
                make_header("Expires", &expires.to_string()),
                make_header("Contact", &Self::identity_contact(&identity)),
                make_header("Server", SERVER_AGENT),
            ],
        );
        let dialog = match Dialog::new_uas(&req, &response, 1) {
            Ok(d) => d,
            Err(e) => {
                self.reject_request(ctx, &key, &req, &FocusRejection::BadRequest(e.to_string()));
                return;
            }
        };
        let _ = ctx.tsx.send_response(ctx.now, &key, response);
        let Some(c) = self.confs.get(&conf) else {
            return;
        };
        let mut sub = Subscription {
            dialog,
            subscriber: aor,
            expires_at: ctx.now + Duration::from_secs(u64::from(expires)),
            dest: source,
            transport,
            version: 0,
            sent: ConferenceInfo::new(c.identity.clone(), 0),
        };
        let state = state_of(c);
        if expires == 0 {
            self.send_notify(ctx, &mut sub, &state, Some("timeout"));
            return;
        }
        self.send_notify(ctx, &mut sub, &state, None);
        if let Some(c) = self.confs.get_mut(&conf) {
            c.subs.push(sub);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_resubscribe(
        &mut self,
        ctx: &mut SipCtx<'_>,
        conf: u64,
        i: usize,
        key: TsxKey,
        req: &rsip::Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        let expires = grant(req);
        B2bua::respond(
            ctx,
            &key,
            req,
            200,
            vec![make_header("Expires", &expires.to_string())],
            None,
        );
        let Some(c) = self.confs.get_mut(&conf) else {
            return;
        };
        if i >= c.subs.len() {
            return;
        }
        let mut sub = c.subs.remove(i);
        let _ = sub.dialog.handle_request(req);
        sub.expires_at = ctx.now + Duration::from_secs(u64::from(expires));
        sub.dest = source;
        sub.transport = transport;
        let state = state_of(c);
        if expires == 0 {
            self.send_notify(ctx, &mut sub, &state, Some("timeout"));
            return;
        }
        // RFC 6665 §4.2.1.2: a refresh gets a NOTIFY (full state again).
        sub.sent = ConferenceInfo::new(state.entity.clone(), 0);
        self.send_notify(ctx, &mut sub, &state, None);
        if let Some(c) = self.confs.get_mut(&conf) {
            c.subs.push(sub);
        }
    }

    /// A subscriber that answered 481 forgot its subscription.
    pub fn on_notify_rejected(&mut self, id: &DialogId) {
        for c in self.confs.values_mut() {
            c.subs.retain(|s| s.dialog.id() != id);
        }
    }

    /// Something a subscriber sees changed: a NOTIFY within the interval.
    fn changed(&mut self, now: Instant, conf: u64) {
        let interval = self.config.notify_interval;
        if let Some(c) = self.confs.get_mut(&conf)
            && c.notify_due.is_none()
        {
            c.notify_due = Some(now + interval);
        }
    }

    /// The partial NOTIFYs of `conf`; participants shown as disconnected
    /// are dropped afterwards.
    fn flush_notifies(&mut self, ctx: &mut SipCtx<'_>, conf: u64) {
        let Some(c) = self.confs.get_mut(&conf) else {
            return;
        };
        c.notify_due = None;
        let state = state_of(c);
        let mut subs = std::mem::take(&mut c.subs);
        c.participants.retain(|p| p.presence != Presence::Left);
        for sub in &mut subs {
            self.send_notify(ctx, sub, &state, None);
        }
        if let Some(c) = self.confs.get_mut(&conf) {
            c.subs = subs;
        }
    }

    /// A NOTIFY with `state` for `sub`: full the first time (version 1),
    /// then the partial difference from what it saw (RFC 4575 §4.6).
    fn send_notify(
        &mut self,
        ctx: &mut SipCtx<'_>,
        sub: &mut Subscription,
        state: &ConferenceInfo,
        terminated: Option<&str>,
    ) {
        let mine = state.for_subscriber(&sub.subscriber);
        let body_info = if sub.version == 0 {
            let mut full = mine.clone();
            full.version = 1;
            full
        } else {
            let d = ConferenceInfo::diff(&sub.sent, &mine, sub.version + 1);
            if d.users.is_empty() && d.description.is_none() && terminated.is_none() {
                return;
            }
            d
        };
        sub.version = body_info.version;
        sub.sent = mine;
        let body = body_info.to_bytes();
        let Some(via) = ctx.via(sub.transport) else {
            return;
        };
        let Ok(mut notify) = sub.dialog.create_request(rsip::Method::Notify, via) else {
            return;
        };
        let state_value = match terminated {
            Some(reason) => format!("terminated;reason={reason}"),
            None => format!(
                "active;expires={}",
                sub.expires_at.saturating_duration_since(ctx.now).as_secs()
            ),
        };
        let h = &mut notify.headers;
        h.remove_named("Content-Length");
        h.push(make_header("Event", "conference"));
        h.push(make_header("Subscription-State", &state_value));
        h.push(make_header("Contact", &ctx.contact(sub.transport)));
        h.push(make_header(
            "Content-Type",
            crate::proto::bodies::conference_info::CONTENT_TYPE,
        ));
        h.push(make_header("Content-Length", &body.len().to_string()));
        notify.body = body;
        if let Err(e) = ctx
            .tsx
            .send_request(ctx.now, notify, sub.dest, sub.transport)
        {
            tracing::warn!(error = %e, "conference NOTIFY not sent");
        }
    }

    // --- MSRP -----------------------------------------------------------------

    pub fn handle_msrp(&mut self, ctx: &mut SipCtx<'_>, input: RelayInput) {
        self.relay.handle_input(input);
        let _ = ctx;
        self.flush_relay();
    }

    pub fn poll_msrp(&mut self) -> Option<RelayOutput> {
        while let Some(o) = self.relay.poll_output() {
            self.outputs.push_back(o);
        }
        self.outputs.pop_front()
    }

    /// True if `leg` is one of our relay legs.
    pub fn owns_leg(&self, leg: LegId) -> bool {
        leg >= FOCUS_LEG_BASE
    }

    fn flush_relay(&mut self) {
        loop {
            while let Some(o) = self.relay.poll_output() {
                self.outputs.push_back(o);
            }
            let Some(ev) = self.relay.poll_event() else {
                break;
            };
            match ev {
                RelayEvent::ChatMessage {
                    call,
                    message_id,
                    content_type,
                    body,
                    ..
                } => self.store_history(call, message_id, content_type, body),
                RelayEvent::LegDisconnected { leg, .. } => {
                    tracing::debug!(leg, "participant MSRP connection closed");
                }
                RelayEvent::DeviceActivity { .. } => {}
            }
        }
    }

    /// Seed 003 13.x: every message of the session, keyed by its identity.
    fn store_history(
        &mut self,
        conf: u64,
        message_id: String,
        content_type: String,
        body: Vec<u8>,
    ) {
        let Some(c) = self.confs.get(&conf) else {
            return;
        };
        let entry = HistoryEntry::from_msrp(
            c.identity.clone(),
            message_id,
            content_type,
            body,
            (self.config.wall_clock_ms)(),
        );
        if let Err(e) = self.history.store(&entry) {
            tracing::warn!(error = %e, "conference history not stored");
        }
    }

    // --- timers -------------------------------------------------------------------

    pub fn poll_timeout(&self) -> Option<Instant> {
        let notify = self.confs.values().filter_map(|c| c.notify_due).min();
        let expiry = self
            .confs
            .values()
            .flat_map(|c| c.subs.iter().map(|s| s.expires_at))
            .min();
        [self.b2bua.poll_timeout(), notify, expiry]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, ctx: &mut SipCtx<'_>) {
        for t in self.b2bua.handle_timeout(ctx) {
            let (call, side) = match t {
                B2buaTimeout::NoAck(call) => (call, Side::Incoming),
                B2buaTimeout::SessionExpired(call, side) => (call, side),
            };
            if let B2buaTimeout::NoAck(call) = t {
                self.b2bua.send_bye(ctx, call, Side::Incoming, None);
            }
            if let Some(conf) = self.by_call.get(&call).copied() {
                self.participant_left(ctx, conf, call, side);
            }
        }
        let due: Vec<u64> = self
            .confs
            .iter()
            .filter(|(_, c)| c.notify_due.is_some_and(|d| d <= ctx.now))
            .map(|(k, _)| *k)
            .collect();
        for conf in due {
            self.flush_notifies(ctx, conf);
        }
        // RFC 6665 §4.2.2: expired subscriptions end with a final NOTIFY.
        let keys: Vec<u64> = self.confs.keys().copied().collect();
        for conf in keys {
            let Some(c) = self.confs.get_mut(&conf) else {
                continue;
            };
            let now = ctx.now;
            let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut c.subs)
                .into_iter()
                .partition(|s| s.expires_at <= now);
            c.subs = kept;
            let state = state_of(c);
            for mut s in expired {
                self.send_notify(ctx, &mut s, &state, Some("timeout"));
            }
        }
        self.flush_relay();
    }
}

/// The full state of a session (seed 004 7.2.2.10): a user per
/// participant with one endpoint and its status.
fn state_of(c: &Conference) -> ConferenceInfo {
    let mut info = ConferenceInfo::new(c.identity.clone(), 0);
    for p in &c.participants {
        let status = match p.presence {
            Presence::Pending => EndpointStatus::Pending,
            Presence::Alerting => EndpointStatus::Alerting,
            Presence::Connected => EndpointStatus::Connected,
            Presence::Left => EndpointStatus::Disconnected,
        };
        if p.presence == Presence::Pending {
            // Not shown until it rings or answers (seed 004: connected /
            // disconnected / alerting only).
            continue;
        }
        let mut u = User::new(p.entity.clone());
        u.display_text = p.display.clone();
        u.endpoints.push(Endpoint::new(p.entity.clone(), status));
        u.state = ElementState::Full;
        info.users.push(u);
    }
    info
}

/// RFC 6665 §4.2.1.1: the Expires we grant.
fn grant(req: &rsip::Request) -> u32 {
    req.headers
        .get_raw("Expires")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(MAX_SUBSCRIPTION_EXPIRES)
        .min(MAX_SUBSCRIPTION_EXPIRES)
}

/// The users a REFER asks for: its Refer-To (RFC 3515), or with
/// `Require: multiple-refer` the resource-lists part a `cid:` Refer-To
/// names (RFC 5368 §3, with `Content-Disposition: recipient-list`).
pub fn refer_targets(
    req: &rsip::Request,
) -> Result<
    Vec<(
        String,
        Option<crate::proto::bodies::resource_lists::Replaces>,
    )>,
    FocusRejection,
> {
    let refer_to = req
        .headers
        .get_raw("Refer-To")
        .or_else(|| req.headers.get_raw("r"))
        .ok_or_else(|| FocusRejection::BadRequest("no Refer-To".into()))?;
    let uri = refer_to
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if let Some(cid) = uri.strip_prefix("cid:") {
        let ct = req.headers.get_raw("Content-Type").unwrap_or_default();
        let lists = if ct.to_ascii_lowercase().starts_with("multipart/") {
            let mp = Multipart::parse_with_content_type(&ct, &req.body)
                .map_err(|e| FocusRejection::BadRequest(e.to_string()))?;
            let part = mp
                .parts
                .iter()
                .find(|p| {
                    p.content_id()
                        .is_some_and(|id| id.trim_matches(['<', '>']) == cid)
                })
                .ok_or_else(|| FocusRejection::BadRequest(format!("no body part {cid}")))?;
            ResourceLists::parse(&part.body)
        } else {
            ResourceLists::parse(&req.body)
        }
        .map_err(|e| FocusRejection::BadRequest(e.to_string()))?;
        let out: Vec<_> = lists
            .entries()
            .into_iter()
            .map(|e| (e.target().to_ascii_lowercase(), e.replaces()))
            .collect();
        if out.is_empty() {
            return Err(FocusRejection::BadRequest("empty URI list".into()));
        }
        return Ok(out);
    }
    let entry = crate::proto::bodies::resource_lists::Entry::new(uri);
    Ok(vec![(
        entry.target().to_ascii_lowercase(),
        entry.replaces(),
    )])
}

/// RFC 3261 §16.7 step 6 asks for the "best" response; the seed asks for
/// the lowest code when every invitee failed.
fn lower_error(current: Option<u16>, code: u16) -> bool {
    current.is_none_or(|c| code < c)
}

/// The accept-types we answer with: the offer's, limited to what the
/// invitees answered (when any did).
fn offer_types(c: &Conference, _config: &FocusConfig) -> (Vec<String>, Vec<String>) {
    let types = if c.accept_types.is_empty() {
        crate::proto::sdp::CHAT_ACCEPT_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        c.accept_types.clone()
    };
    (types, c.accept_wrapped_types.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(text: &str) -> rsip::Request {
        match crate::proto::sip::message::parse_message(text.as_bytes()).unwrap() {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn refer(extra: &str, body: &str) -> rsip::Request {
        req(&format!(
            "REFER sip:conf-1@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:alice@isc.local>;tag=a\r\nTo: <sip:conf-1@isc.local>\r\nCall-ID: c1\r\nCSeq: 1 REFER\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    #[test]
    fn rejection_mapping() {
        assert_eq!(FocusRejection::TooManyParticipants.status().0, 486);
        assert_eq!(
            FocusRejection::IsfocusAlreadyAssigned.status(),
            (403, "Forbidden", Some("isfocus already assigned"))
        );
        assert_eq!(FocusRejection::NotFound.status().0, 404);
        assert_eq!(FocusRejection::SdpPolicy("x".into()).status().0, 488);
        let h = FocusRejection::TooManyParticipants.headers("isc.local");
        let (_, v) = crate::proto::sip::headers::name_value(&h[0]);
        assert_eq!(v, "399 isc.local \"too many participants\"");
    }

    #[test]
    fn refer_to_one_user_and_to_a_list() {
        let one = refer(
            "Refer-To: <sip:Carol@isc.local>\r\nRefer-Sub: false\r\n",
            "",
        );
        assert_eq!(
            refer_targets(&one).unwrap(),
            vec![("sip:carol@isc.local".to_string(), None)]
        );
        let list = crate::proto::bodies::resource_lists::ResourceLists::of(vec![
            crate::proto::bodies::resource_lists::Entry::new("sip:bob@isc.local"),
            crate::proto::bodies::resource_lists::Entry::new("sip:ted@isc.local"),
        ]);
        let mp = Multipart::new(vec![
            crate::proto::bodies::multipart::Part::new(
                "application/resource-lists+xml",
                list.to_bytes(),
            )
            .with_header("Content-Disposition", "recipient-list")
            .with_header("Content-ID", "<l1@isc.local>"),
        ]);
        let many = refer(
            &format!(
                "Refer-To: <cid:l1@isc.local>\r\nRequire: multiple-refer, norefersub\r\nContent-Type: {}\r\n",
                mp.content_type()
            ),
            &String::from_utf8(mp.to_bytes()).unwrap(),
        );
        let t = refer_targets(&many).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].0, "sip:ted@isc.local");
        let missing = refer("", "");
        assert!(matches!(
            refer_targets(&missing),
            Err(FocusRejection::BadRequest(_))
        ));
    }

    #[test]
    fn focus_msrp_is_told_by_its_session_prefix() {
        assert!(is_focus_msrp(
            b"MSRP t1 SEND\r\nTo-Path: msrp://127.0.0.1:9/focus0a1b;tcp\r\n"
        ));
        assert!(!is_focus_msrp(
            b"MSRP t1 SEND\r\nTo-Path: msrp://127.0.0.1:9/0a1b;tcp\r\n"
        ));
    }

    #[test]
    fn state_shows_alerting_connected_disconnected_and_hides_pending() {
        let mut c = Conference {
            identity: "sip:conf-1@isc.local".into(),
            group: None,
            participants: Vec::new(),
            calls: Vec::new(),
            creator: None,
            ringing: false,
            members: Vec::new(),
            subs: Vec::new(),
            notify_due: None,
            accept_types: Vec::new(),
            accept_wrapped_types: Vec::new(),
            best_error: None,
            large: None,
        };
        for (who, presence) in [
            ("a", Presence::Connected),
            ("b", Presence::Alerting),
            ("c", Presence::Left),
            ("d", Presence::Pending),
        ] {
            c.participants.push(Participant {
                aor: format!("sip:{who}@isc.local"),
                entity: format!("sip:{who}@isc.local"),
                display: None,
                presence,
                call: 1,
                side: None,
                pending_legs: Vec::new(),
                relay_leg: None,
                offers: HashMap::new(),
                answer_sdp: None,
                best_error: None,
            });
        }
        let s = state_of(&c);
        let st: Vec<_> = s
            .users
            .iter()
            .map(|u| (u.entity.clone(), u.status().cloned()))
            .collect();
        assert_eq!(
            st,
            vec![
                ("sip:a@isc.local".into(), Some(EndpointStatus::Connected)),
                ("sip:b@isc.local".into(), Some(EndpointStatus::Alerting)),
                ("sip:c@isc.local".into(), Some(EndpointStatus::Disconnected)),
            ]
        );
        let mine = s.for_subscriber("sip:b@isc.local");
        assert_eq!(mine.own_user().unwrap().entity, "sip:b@isc.local");
    }

    /// A store that keeps what it is given, shared with the test.
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<HistoryEntry>>>);

    impl HistoryStore for Captured {
        fn store(
            &mut self,
            entry: &HistoryEntry,
        ) -> Result<(), super::super::history_store::HistoryError> {
            self.0.lock().unwrap().push(entry.clone());
            Ok(())
        }
        fn conversation(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Vec<HistoryEntry>, super::super::history_store::HistoryError> {
            Ok(self.0.lock().unwrap().clone())
        }
    }

    #[test]
    fn chat_is_stored_under_the_session_identity() {
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let config = FocusConfig {
            domain: "isc.local".into(),
            msrp_local: "127.0.0.1:9000".parse().unwrap(),
            msrps_local: None,
            factory_uri: "sip:conf-factory@isc.local".into(),
            max_adhoc_group_size: 8,
            groups: Vec::new(),
            users: HashMap::new(),
            sdp_policy: SdpPolicy::default(),
            notify_interval: NOTIFY_INTERVAL,
            wall_clock_ms: || 1_700_000_000_000,
            instance: None,
        };
        let mut f = ImControllingFunction::new(config, Box::new(Captured(kept.clone())), "t");
        f.confs.insert(
            5,
            Conference {
                identity: "sip:conf-5@isc.local".into(),
                group: None,
                participants: Vec::new(),
                calls: Vec::new(),
                creator: None,
                ringing: false,
                members: Vec::new(),
                subs: Vec::new(),
                notify_due: None,
                accept_types: Vec::new(),
                accept_wrapped_types: Vec::new(),
                best_error: None,
                large: None,
            },
        );
        let body = b"From: <sip:alice@isc.local>\r\nTo: <sip:conf-5@isc.local>\r\nDateTime: 2026-11-23T15:00:00Z\r\n\r\nContent-Type: text/plain\r\n\r\nhi".to_vec();
        f.store_history(5, "m1".into(), "message/cpim".into(), body);
        let kept = kept.lock().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].conversation, "sip:conf-5@isc.local");
        assert_eq!(kept[0].cpim_from, "<sip:alice@isc.local>");
        assert_eq!(kept[0].cpim_date_time, "2026-11-23T15:00:00Z");
        assert_eq!(kept[0].arrived_unix_ms, 1_700_000_000_000);
    }

    proptest! {
        /// REFER bodies and headers from the network never panic the reader.
        #[test]
        fn refer_targets_never_panics(refer_to in "\\PC{0,60}", body in "\\PC{0,200}", ct in "\\PC{0,40}") {
            let r = rsip::Request {
                method: rsip::Method::Refer,
                uri: rsip::Uri::default(),
                version: rsip::Version::V2,
                headers: vec![
                    make_header("Refer-To", &refer_to),
                    make_header("Content-Type", &ct),
                ]
                .into(),
                body: body.into_bytes(),
            };
            let _ = refer_targets(&r);
        }

        #[test]
        fn is_focus_msrp_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = is_focus_msrp(&bytes);
        }
    }
}
