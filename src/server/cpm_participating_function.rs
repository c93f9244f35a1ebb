//! The CPM Participating Function on the terminating side (seed 001
//! 8.3.2.1 "Handle a CPM Session Invitation", 8.3.2.1.1 "Media Plane
//! Handling for Multiple Devices"), staying in the media path as a B2BUA.
//!
//! An INVITE with the CPM session ICSI passes the seed's checks in order
//! ([`CpmRejection`] holds the one mapping to status and Warning), then is
//! actively forked: one INVITE per registered device of the recipient, each
//! with our own SDP offer (`a=setup:active`: we connect to every device).
//! The first 200 answers the originator; every 200 is ACKed and gets an
//! MSRP leg in the [`MsrpRelay`], which explodes the originator's messages
//! to every device until one device shows activity; then its siblings get
//! BYE with `Reason: SIP;cause=200;text="Call completed elsewhere"`.
//! Every chat message is written to the [`HistoryStore`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::config::{SdpPolicy, UserConfig};
use crate::proto::msrp::{MsrpPath, MsrpUri};
use crate::proto::sdp::{
    ConnectionAddress, MediaLine, MsrpAnswerParams, MsrpMedia, Sdp, Setup, SetupPreference,
    TcpActiveSide, parse_sdp, tcp_active_side,
};
use crate::proto::sip::headers::{HeadersExt, make_header};
use crate::proto::sip::transaction::{Transport, TsxKey};
use crate::server::location_service::{Binding, LocationService};

use super::b2bua::{
    B2bua, B2buaTimeout, CallRef, LegResponse, REASON_COMPLETED_ELSEWHERE, Side, SipCtx,
};
use super::core::{ANONYMOUS_HOST, SERVER_AGENT};
use super::history_store::{HistoryEntry, HistoryStore, conversation_key};
use super::msrp_relay::{LegId, LegRole, MsrpRelay, RelayEvent, RelayInput, RelayOutput};
use super::proxy_core::Target;
use super::sip_util::{UriView, name_addr_uri};

/// The CPM session ICSI (SPEC.md service identifiers).
pub const CPM_SESSION_ICSI: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session";
/// The CPM release version we put in User-Agent (seed 001 8.3.2.1 step
/// 8.b.iii.4, Appendix D).
pub const CPM_RELEASE: &str = "CPM-serv/OMA2.0";

/// Why an invitation is refused (seed 001 8.3.2.1 steps 1–7), mapped to
/// status and Warning in [`CpmRejection::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpmRejection {
    #[error("User-Agent version not supported")]
    VersionNotSupported,
    #[error("anonymity not allowed")]
    AnonymityNotAllowed,
    #[error("originator on the recipient's chat blacklist")]
    Blacklisted,
    #[error("recipient does not want to be disturbed")]
    DoNotDisturb,
    #[error("SDP not acceptable: {0}")]
    SdpPolicy(String),
    #[error("no registered device")]
    NoDevice,
    #[error("service {0} not served here")]
    ForeignService(String),
    #[error("no such user")]
    UnknownUser,
}

impl CpmRejection {
    /// Status code, reason phrase and Warning text (code and text).
    pub fn status(&self) -> (u16, &'static str, Option<(u16, &'static str)>) {
        match self {
            // step 1
            Self::VersionNotSupported => (403, "Forbidden", Some((132, "Version not supported"))),
            // step 2
            Self::AnonymityNotAllowed => (403, "Forbidden", Some((119, "Anonymity not allowed"))),
            // step 3
            Self::Blacklisted => (403, "Forbidden", Some((122, "Function not allowed"))),
            // step 4
            Self::DoNotDisturb => (480, "Temporarily Unavailable", None),
            // step 5
            Self::SdpPolicy(_) => (488, "Not Acceptable Here", None),
            // step 6.a
            Self::NoDevice => (480, "Temporarily Unavailable", None),
            // step 7.ii
            Self::ForeignService(_) => (403, "Forbidden", Some((122, "Function not allowed"))),
            Self::UnknownUser => (404, "Not Found", None),
        }
    }
}

/// What the function needs from the deployment.
#[derive(Debug, Clone)]
pub struct CpmConfig {
    pub domain: String,
    /// Where the server's MSRP listener is bound.
    pub msrp_local: SocketAddr,
    /// Its `msrps:` listener (RFC 4975 §14.1), when `[server.tls]` is on.
    pub msrps_local: Option<SocketAddr>,
    /// Step 1: a User-Agent older than this gets 403 / 132.
    pub required_user_agent_version: Option<String>,
    pub sdp_policy: SdpPolicy,
    /// Per-user preferences (anonymity, blacklist, do-not-disturb), by user name.
    pub users: HashMap<String, UserConfig>,
    /// Wall clock for history arrival times (ms since the Unix epoch).
    pub wall_clock_ms: fn() -> i64,
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn system_wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seed 001 8.3.2.1 step 8.b.iii.3: where one registered device is
/// reached — Request-URI = its GRUU, else its contact with an
/// Accept-Contact naming its instance (`Some(instance)`). Shared with the
/// conference focus's forking.
pub fn device_target(b: &Binding) -> Option<(Target, Option<String>)> {
    let (uri_text, accept_instance) = match (&b.gruu, &b.instance) {
        (Some(g), _) => (g.clone(), None),
        // step 8.b.iii.3.a: no GRUU → Accept-Contact with the instance.
        (None, Some(i)) => (b.contact.clone(), Some(i.clone())),
        (None, None) => (b.contact.clone(), None),
    };
    let uri = crate::proto::sip::message::parse_uri(&uri_text).ok()?;
    let target = Target {
        uri,
        addr: b.source.addr,
        transport: Transport::from_rsip(b.source.transport),
    };
    Some((target, accept_instance))
}

/// True if the request asks for the CPM session service: the ICSI in an
/// Accept-Contact `+g.3gpp.icsi-ref` (percent-encoded, 3GPP TS 24.229
/// 7.2A.8.2) or in P-Preferred-Service / P-Asserted-Service.
pub fn is_cpm_session(req: &rsip::Request) -> bool {
    if req.method != rsip::Method::Invite {
        return false;
    }
    let in_accept_contact = req.headers.get_all_raw("Accept-Contact").iter().any(|v| {
        let decoded = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
        decoded.contains("+g.3gpp.icsi-ref") && decoded.contains(CPM_SESSION_ICSI)
    });
    in_accept_contact
        || ["P-Preferred-Service", "P-Asserted-Service"]
            .iter()
            .any(|h| {
                req.headers
                    .get_all_raw(h)
                    .iter()
                    .any(|v| v.split(',').any(|s| s.trim() == CPM_SESSION_ICSI))
            })
}

/// One device leg's media.
#[derive(Debug)]
struct DeviceMedia {
    local: MsrpUri,
    offer: MsrpMedia,
    relay_leg: Option<LegId>,
}

#[derive(Debug)]
struct CpmCall {
    originator: String,
    recipient: String,
    offer: MsrpMedia,
    group: bool,
    orig_local: MsrpUri,
    orig_leg: Option<LegId>,
    /// Our SDP answer to the originator (for re-INVITEs).
    answer_sdp: Option<Vec<u8>>,
    devices: Vec<DeviceMedia>,
    /// The device leg whose user was active (seed 001 8.3.2.1.1 step 4.a).
    chosen: Option<usize>,
    /// 302 targets already tried.
    redirects: usize,
    /// A 180 went to the originator.
    ringing: bool,
    /// The best error so far (code, reason, Warning headers).
    best_error: Option<(u16, String, Vec<String>)>,
    request_template: rsip::Request,
}

/// The CPM Participating Function. See the module docs.
pub struct CpmParticipatingFunction {
    config: CpmConfig,
    b2bua: B2bua,
    relay: MsrpRelay,
    calls: HashMap<CallRef, CpmCall>,
    relay_legs: HashMap<LegId, (CallRef, Option<usize>)>,
    history: Box<dyn HistoryStore>,
    outputs: VecDeque<RelayOutput>,
}

impl std::fmt::Debug for CpmParticipatingFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpmParticipatingFunction")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl CpmParticipatingFunction {
    pub fn new(config: CpmConfig, history: Box<dyn HistoryStore>, relay_tid_prefix: &str) -> Self {
        CpmParticipatingFunction {
            config,
            b2bua: B2bua::new(),
            relay: MsrpRelay::new(relay_tid_prefix),
            calls: HashMap::new(),
            relay_legs: HashMap::new(),
            history,
            outputs: VecDeque::new(),
        }
    }

    pub fn history(&self) -> &dyn HistoryStore {
        self.history.as_ref()
    }

    pub fn b2bua(&self) -> &B2bua {
        &self.b2bua
    }

    /// Number of calls in progress.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    // --- dispatch predicates (the core asks these) -------------------------

    pub fn owns_client(&self, key: &TsxKey) -> bool {
        self.b2bua.owns_client(key)
    }

    pub fn owns_invite(&self, key: &TsxKey) -> bool {
        self.b2bua.call_of_server(key).is_some()
    }

    pub fn knows_dialog(&self, req: &rsip::Request) -> bool {
        self.b2bua.knows_dialog(req)
    }

    // --- the invitation ------------------------------------------------------

    /// Seed 001 8.3.2.1: an authenticated CPM session INVITE from `user`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_invite(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        key: TsxKey,
        mut req: rsip::Request,
        user: &str,
        source: SocketAddr,
        transport: Transport,
    ) {
        let originator = format!("sip:{user}@{}", self.config.domain);
        let checked = self.check(ctx.now, location, &mut req, &originator);
        let (recipient, offer, bindings) = match checked {
            Ok(ok) => ok,
            Err(rejection) => {
                tracing::info!(%rejection, "CPM invitation refused");
                let call = self.b2bua.open(ctx, key, req, source, transport);
                self.reject(ctx, call, &rejection);
                self.b2bua.remove(call);
                return;
            }
        };
        // RFC 4028 §9: an interval below our Min-SE gets 422.
        if let Err((code, headers)) = self.b2bua.check_session_timer(&req) {
            let call = self.b2bua.open(ctx, key, req, source, transport);
            self.b2bua.answer(
                ctx,
                call,
                code,
                Some("Session Interval Too Small"),
                headers,
                None,
            );
            self.b2bua.remove(call);
            return;
        }
        let group = req
            .headers
            .get_all_raw("Contact")
            .iter()
            .any(|c| c.to_ascii_lowercase().contains("isfocus"));
        let orig_local = self.local_uri(ctx, offer.is_tls());
        let call = self.b2bua.open(ctx, key, req.clone(), source, transport);
        self.calls.insert(
            call,
            CpmCall {
                originator,
                recipient,
                offer,
                group,
                orig_local,
                orig_leg: None,
                answer_sdp: None,
                devices: Vec::new(),
                chosen: None,
                redirects: 0,
                ringing: false,
                best_error: None,
                request_template: req,
            },
        );
        self.b2bua.answer(ctx, call, 100, None, vec![], None);
        // Step 8.b: one INVITE per registered device (active forking).
        let mut started = 0;
        for b in bindings {
            if self.fork_to(ctx, call, b).is_some() {
                started += 1;
            }
        }
        if started == 0 {
            self.reject(ctx, call, &CpmRejection::NoDevice);
            self.drop_call(call);
        }
    }

    /// The "deliver later" hook (seed 003 12.4.2.1): true when the INVITE
    /// passes steps 1–5 and fails only step 6 — no registered device — so
    /// the Deferred Messaging Function may accept it for the user.
    pub fn only_no_device(
        &self,
        now: Instant,
        location: &LocationService,
        req: &rsip::Request,
        originator: &str,
    ) -> bool {
        let mut r = req.clone();
        matches!(
            self.check(now, location, &mut r, originator),
            Err(CpmRejection::NoDevice)
        )
    }

    /// Steps 1–7 in the seed's order. Returns the recipient AOR, the
    /// originator's MSRP offer and the devices to fork to.
    fn check<'l>(
        &self,
        now: Instant,
        location: &'l LocationService,
        req: &mut rsip::Request,
        originator: &str,
    ) -> Result<(String, MsrpMedia, Vec<&'l Binding>), CpmRejection> {
        let target = UriView::of(&req.uri);
        let name = target.user.clone().ok_or(CpmRejection::UnknownUser)?;
        let prefs = self
            .config
            .users
            .get(&name)
            .ok_or(CpmRejection::UnknownUser)?;
        let recipient = format!("sip:{name}@{}", self.config.domain);
        // Step 1
        if let Some(required) = &self.config.required_user_agent_version {
            let ua = req.headers.get_raw("User-Agent").unwrap_or_default();
            if !user_agent_at_least(&ua, required) {
                return Err(CpmRejection::VersionNotSupported);
            }
        }
        // Step 2 (RFC 3323: Privacy id/user/header, or the anonymous From)
        let anonymous = req.headers.get_all_raw("Privacy").iter().any(|p| {
            p.split(';').any(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "id" | "user" | "header"
                )
            })
        }) || name_addr_uri(&req.headers, "From")
            .is_some_and(|(_, f)| f.host.eq_ignore_ascii_case(ANONYMOUS_HOST));
        if anonymous && !prefs.anonymity_allowed {
            return Err(CpmRejection::AnonymityNotAllowed);
        }
        // Step 3
        if prefs
            .chat_blacklist
            .iter()
            .any(|b| b.eq_ignore_ascii_case(originator))
        {
            return Err(CpmRejection::Blacklisted);
        }
        // Step 4
        if prefs.do_not_disturb {
            return Err(CpmRejection::DoNotDisturb);
        }
        // Step 5
        let offer = self.check_sdp(req)?;
        // Step 6
        let bindings = location.lookup(now, &recipient);
        if bindings.is_empty() {
            return Err(CpmRejection::NoDevice);
        }
        // Step 7
        let pps = req.headers.get_raw("P-Preferred-Service");
        let pas = req.headers.get_raw("P-Asserted-Service");
        for v in pps.iter().chain(pas.iter()) {
            if v.split(',').any(|s| s.trim() != CPM_SESSION_ICSI) {
                return Err(CpmRejection::ForeignService(v.clone()));
            }
        }
        req.headers.remove_named("P-Preferred-Service");
        req.headers.remove_named("P-Asserted-Service");
        req.headers
            .push(make_header("P-Asserted-Service", CPM_SESSION_ICSI));
        Ok((recipient, offer, bindings))
    }

    /// Seed 001 8.3.2.1 step 5: every offered stream must be a media type
    /// the policy allows, and there must be an MSRP stream.
    fn check_sdp(&self, req: &rsip::Request) -> Result<MsrpMedia, CpmRejection> {
        let sdp = parse_sdp(&req.body).map_err(|e| CpmRejection::SdpPolicy(e.to_string()))?;
        for m in &sdp.media {
            if m.port() == 0 {
                continue;
            }
            if !self.config.sdp_policy.allows_media(m.media_type()) {
                return Err(CpmRejection::SdpPolicy(format!(
                    "media {} not allowed",
                    m.media_type()
                )));
            }
            if let MediaLine::Rtp(r) = m
                && !r
                    .rtpmaps
                    .iter()
                    .any(|map| self.config.sdp_policy.allows_codec(&map.encoding))
            {
                return Err(CpmRejection::SdpPolicy("no allowed codec".into()));
            }
        }
        let m = sdp
            .msrp()
            .find(|m| m.port != 0 && !m.path.is_empty())
            .cloned()
            .ok_or_else(|| CpmRejection::SdpPolicy("no MSRP stream".into()))?;
        self.check_msrp_transport(&m)?;
        Ok(m)
    }

    /// RFC 4975 §8.1, §14.1: proto and path agree, and `msrps:` only where
    /// we listen for TLS. Over TLS the devices always connect to us (we
    /// verify nobody's certificate, they verify ours), so an offer that
    /// wants us to open the connection (`a=setup:passive`) is refused.
    fn check_msrp_transport(&self, m: &MsrpMedia) -> Result<(), CpmRejection> {
        m.check_transport()
            .map_err(|e| CpmRejection::SdpPolicy(e.to_string()))?;
        if m.is_tls() {
            if self.config.msrps_local.is_none() {
                return Err(CpmRejection::SdpPolicy(
                    "MSRP over TLS (TCP/TLS/MSRP) is not enabled here".into(),
                ));
            }
            if m.setup == Some(Setup::Passive) {
                return Err(CpmRejection::SdpPolicy(
                    "over TCP/TLS/MSRP the device connects: a=setup:active or actpass".into(),
                ));
            }
        }
        Ok(())
    }

    fn reject(&mut self, ctx: &mut SipCtx<'_>, call: CallRef, rejection: &CpmRejection) {
        let (code, reason, warning) = rejection.status();
        // The seed's warn-code where it names one; for an SDP refused, 399
        // (RFC 3261 §20.43) with the parser's or the policy's words.
        let text = match (warning, rejection) {
            (Some((w, text)), _) => Some(format!("{w} {} \"{text}\"", self.config.domain)),
            (None, CpmRejection::SdpPolicy(_)) => Some(format!(
                "399 {} \"{}\"",
                self.config.domain,
                rejection.to_string().replace('"', "'")
            )),
            // 480 and 404 say no more (a do-not-disturb is not disclosed).
            (None, _) => None,
        };
        let extra = text
            .map(|t| vec![make_header("Warning", &t)])
            .unwrap_or_default();
        self.b2bua
            .answer(ctx, call, code, Some(reason), extra, None);
    }

    /// A fresh local MSRP URI (session id of 128 random bits, RFC 4975 §14.1),
    /// `msrps:` on the TLS listener when `tls`.
    fn local_uri(&self, ctx: &mut SipCtx<'_>, tls: bool) -> MsrpUri {
        let mut raw = [0u8; 16];
        ctx.ids.fill(&mut raw);
        let local = self.msrp_listener(tls);
        MsrpUri::new(ip_host(local.ip()), local.port(), hex::encode(raw)).with_secure(tls)
    }

    /// The plain or the TLS listener (checked to exist by `check_sdp`).
    fn msrp_listener(&self, tls: bool) -> SocketAddr {
        match self.config.msrps_local {
            Some(l) if tls => l,
            _ => self.config.msrp_local,
        }
    }

    fn connection(&self) -> ConnectionAddress {
        ConnectionAddress::Ip(self.config.msrp_local.ip())
    }

    /// Step 8.b.iii: the INVITE towards one device.
    fn fork_to(&mut self, ctx: &mut SipCtx<'_>, call: CallRef, b: &Binding) -> Option<usize> {
        let (target, accept_instance) = device_target(b)?;
        self.fork_to_target(ctx, call, target, accept_instance)
    }

    /// The device leg that continues `dialog` (Call-ID and the two tags of
    /// some user's leg of one of our calls, in either order) on the other
    /// side: its target (Request-URI = the device's GRUU) and the Replaces
    /// value that names that leg's dialog as the device sees it (RFC 3891
    /// §3: to-tag = the device's tag, from-tag = ours). Seed 002 App. M: the
    /// originator knows only her own leg.
    pub fn peer_leg(&self, call_id: &str, tag_a: &str, tag_b: &str) -> Option<(Target, String)> {
        let tags = |l: &str, r: &str| (l == tag_a && r == tag_b) || (l == tag_b && r == tag_a);
        for (_, c) in self.b2bua.calls() {
            let inc = c.incoming.dialog.as_ref().map(|d| d.id());
            let incoming_match =
                inc.is_some_and(|id| id.call_id == call_id && tags(&id.local_tag, &id.remote_tag));
            if incoming_match {
                let o = c.outgoing.iter().find(|o| o.is_up())?;
                let id = o.dialog.as_ref()?.id();
                let value = format!(
                    "{};to-tag={};from-tag={}",
                    id.call_id, id.remote_tag, id.local_tag
                );
                return Some((o.target.clone(), value));
            }
            let outgoing_match = c.outgoing.iter().any(|o| {
                o.is_up()
                    && o.dialog.as_ref().is_some_and(|d| {
                        let id = d.id();
                        id.call_id == call_id && tags(&id.local_tag, &id.remote_tag)
                    })
            });
            if outgoing_match {
                let id = c.incoming.dialog.as_ref()?.id();
                let value = format!(
                    "{};to-tag={};from-tag={}",
                    id.call_id, id.remote_tag, id.local_tag
                );
                let uri = c
                    .incoming
                    .request
                    .headers
                    .get_raw("Contact")
                    .and_then(|v| {
                        let v = v.trim().trim_start_matches('<');
                        crate::proto::sip::message::parse_uri(v.split('>').next()?).ok()
                    })?;
                let target = Target {
                    uri,
                    addr: c.incoming.source,
                    transport: c.incoming.transport,
                };
                return Some((target, value));
            }
        }
        None
    }

    fn fork_to_target(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        target: Target,
        accept_instance: Option<String>,
    ) -> Option<usize> {
        // RFC 4975 §14.1: a device that reaches us over SIP over TLS gets
        // msrps: (it has TLS set up and will check our certificate); one on
        // plain SIP gets plain msrp:, whatever the originator used.
        let tls = target.transport == Transport::Tls && self.config.msrps_local.is_some();
        let local = self.local_uri(ctx, tls);
        let port = self.msrp_listener(tls).port();
        let connection = self.connection();
        let c = self.calls.get_mut(&call)?;
        // Step 8.b.iii.5 / RFC 6135: our own offer; we connect to the device.
        let mut media =
            MsrpMedia::offer(port, connection.clone(), vec![local.to_string()], &[]).with_tls(tls);
        media.accept_types = c.offer.accept_types.clone();
        media.accept_wrapped_types = c.offer.accept_wrapped_types.clone();
        media.max_size = c.offer.max_size;
        // Over TLS the device connects to our TLS listener instead and
        // checks our certificate (devices have none we could check).
        media.setup = Some(if tls { Setup::Passive } else { Setup::Active });
        // Large Message (seed 003 9.3.2.1 step 4.c, by analogy for the
        // participating side): the device sees the originator's direction
        // and file attributes, so it can tell Large Message, file transfer
        // (RFC 5547) and chat apart (9.2.2 step 2)
        media.direction = c.offer.direction;
        media.file_size = c.offer.file_size;
        media.file_selector = c.offer.file_selector.clone();
        media.file_transfer_id = c.offer.file_transfer_id.clone();
        media.file_disposition = c.offer.file_disposition.clone();
        let mut sid = [0u8; 4];
        ctx.ids.fill(&mut sid);
        let session_id = u64::from(u32::from_be_bytes(sid));
        let sdp = Sdp::new("isc", session_id, connection).with_media(media.clone());
        let body = sdp.to_string().into_bytes();

        let t = &c.request_template;
        let from = t.headers.get_raw("From").unwrap_or_default();
        let from = replace_tag(&from, &ctx.ids.token());
        let to = t.headers.get_raw("To").unwrap_or_default();
        let call_id = format!("{}@{}", ctx.ids.token(), ctx.domain);
        let mut headers = rsip::Headers::default();
        headers.push(make_header("Max-Forwards", "70"));
        headers.push(make_header("From", &from));
        headers.push(make_header("To", &to));
        headers.push(make_header("Call-ID", &call_id));
        headers.push(make_header("CSeq", "1 INVITE"));
        // Step 8.b.iii.2: our own Contact (never the originator's).
        headers.push(make_header("Contact", &ctx.contact(target.transport)));
        // RFC 3325 §5: Privacy: id keeps the identity from the devices.
        let hide_identity = t
            .headers
            .get_all_raw("Privacy")
            .iter()
            .any(|p| p.split(';').any(|v| v.trim().eq_ignore_ascii_case("id")));
        if !hide_identity {
            for v in t.headers.get_all_raw("P-Asserted-Identity") {
                headers.push(make_header("P-Asserted-Identity", &v));
            }
        }
        for name in [
            "Accept-Contact",
            "P-Asserted-Service",
            "Privacy",
            "Supported",
            "Allow",
            "Subject",
            "Contribution-ID",
            "Conversation-ID",
            "ISCConvergenceID",
        ] {
            for v in t.headers.get_all_raw(name) {
                headers.push(make_header(name, &v));
            }
        }
        if let Some(i) = accept_instance {
            headers.push(make_header(
                "Accept-Contact",
                &format!("*;+sip.instance=\"{i}\";explicit;require"),
            ));
        }
        // Step 8.b.iii.4
        headers.push(make_header(
            "User-Agent",
            &format!("{SERVER_AGENT} {CPM_RELEASE}"),
        ));
        headers.push(make_header("Content-Type", "application/sdp"));
        headers.push(make_header("Content-Length", &body.len().to_string()));
        let request = rsip::Request {
            method: rsip::Method::Invite,
            uri: target.uri.clone(),
            version: rsip::Version::V2,
            headers,
            body,
        };
        let leg = self.b2bua.send_invite(ctx, call, target, request)?;
        let c = self.calls.get_mut(&call)?;
        while c.devices.len() < leg {
            // Legs the B2BUA holds but we never sent (cannot happen); keep indexes aligned.
            c.devices.push(DeviceMedia {
                local: local.clone(),
                offer: media.clone(),
                relay_leg: None,
            });
        }
        c.devices.push(DeviceMedia {
            local,
            offer: media,
            relay_leg: None,
        });
        Some(leg)
    }

    // --- responses from devices ------------------------------------------------

    pub fn on_response(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        key: &TsxKey,
        response: rsip::Response,
    ) {
        if let Some(r) = self.b2bua.on_response(ctx, key, response) {
            self.on_leg_response(ctx, location, r);
        }
    }

    /// Timer B / transport failure on a device leg.
    pub fn on_failure(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        key: &TsxKey,
        code: u16,
    ) {
        if let Some(r) = self.b2bua.on_failure(key, code) {
            self.on_leg_response(ctx, location, r);
        }
    }

    pub fn on_terminated(&mut self, key: &TsxKey) {
        self.b2bua.on_terminated(key);
    }

    fn on_leg_response(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        r: LegResponse,
    ) {
        let LegResponse {
            call,
            leg,
            code,
            response,
            retransmission,
        } = r;
        if retransmission || !self.calls.contains_key(&call) {
            return;
        }
        if code < 200 {
            // The first device ringing → one 180 to the originator.
            if code == 180
                && let Some(c) = self.calls.get_mut(&call)
                && !c.ringing
            {
                c.ringing = true;
                self.b2bua.answer(ctx, call, 180, None, vec![], None);
            }
            return;
        }
        if (200..300).contains(&code) {
            self.on_device_ok(ctx, call, leg, response.as_ref());
            return;
        }
        // A non-2xx final response.
        let redirects = self.calls.get(&call).map(|c| c.redirects).unwrap_or(99);
        if code == 302
            && redirects < 3
            && let Some(resp) = &response
            && let Some((_, contact)) = name_addr_uri(&resp.headers, "Contact")
        {
            // "Upon receiving a SIP final response other than 200" step 3.
            if let Some(c) = self.calls.get_mut(&call) {
                c.redirects += 1;
            }
            let contact_text = resp.headers.get_raw("Contact").unwrap_or_default();
            let target = redirect_target(ctx.now, location, &contact_text, &contact);
            if let Some(t) = target
                && self.fork_to_target(ctx, call, t, None).is_some()
            {
                return;
            }
        }
        let reason = response
            .as_ref()
            .map(|r| crate::proto::sip::message::reason_phrase(&r.status_code))
            .unwrap_or_else(|| crate::proto::sip::message::default_reason(code).to_string());
        let warnings = response
            .as_ref()
            .map(|r| r.headers.get_all_raw("Warning"))
            .unwrap_or_default();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if better_error(c.best_error.as_ref().map(|b| b.0), code) {
            c.best_error = Some((code, reason, warnings));
        }
        self.finish_if_all_failed(ctx, call);
    }

    fn finish_if_all_failed(&mut self, ctx: &mut SipCtx<'_>, call: CallRef) {
        let Some(b) = self.b2bua.call(call) else {
            return;
        };
        if b.incoming.final_sent || b.outgoing.iter().any(|o| o.is_pending() || o.is_up()) {
            return;
        }
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let (code, reason, warnings) =
            c.best_error
                .clone()
                .unwrap_or((480, "Temporarily Unavailable".into(), vec![]));
        // Step 4: a group session stays in the path with a 200.
        if c.group && matches!(code, 480 | 408 | 487 | 500 | 503 | 504) {
            let accept = crate::proto::sdp::CHAT_ACCEPT_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect();
            if self.answer_originator(ctx, call, accept, Vec::new()) {
                return;
            }
        }
        // Step 5.b: forward one of the errors (RFC 3261 §16.7 step 6 choice).
        let code = if code == 503 { 500 } else { code };
        let extra = warnings.iter().map(|w| make_header("Warning", w)).collect();
        self.b2bua
            .answer(ctx, call, code, Some(&reason), extra, None);
        self.drop_call(call);
    }

    /// "For each SIP 200 OK response": ACK (done by the B2BUA), an MSRP leg,
    /// and for the first one the 200 to the originator.
    fn on_device_ok(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        leg: usize,
        response: Option<&rsip::Response>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.chosen.is_some_and(|x| x != leg) {
            // A sibling answered after the user chose a device: end it.
            self.b2bua.send_bye(
                ctx,
                call,
                Side::Outgoing(leg),
                Some(REASON_COMPLETED_ELSEWHERE),
            );
            return;
        }
        // seed 000 5.4.3.4 (added by the ISC Media Function work, branch
        // mf): a recipient who wants one device for communication keeps the
        // first device that answers; its other pending branches get CANCEL,
        // any that answered BYE, with the RFC 3326 Reason.
        let name = c
            .recipient
            .strip_prefix("sip:")
            .and_then(|r| r.split('@').next())
            .unwrap_or_default();
        // A Large Message goes to one device: the first to accept it (it
        // never shows chat activity, so seed 001 8.3.2.1.1 step 4.a would
        // leave every device a half-received copy).
        let single = c.chosen.is_none()
            && (c.offer.is_large_message()
                || self
                    .config
                    .users
                    .get(name)
                    .is_some_and(|u| u.cm_single_device));
        if single {
            if let Some(c) = self.calls.get_mut(&call) {
                c.chosen = Some(leg);
            }
            self.end_device_legs(ctx, call, Some(leg), Some(REASON_COMPLETED_ELSEWHERE));
        }
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let answer = response
            .and_then(|r| parse_sdp(&r.body).ok())
            .and_then(|s| s.msrp().find(|m| m.port != 0).cloned());
        let Some(answer) = answer else {
            tracing::info!(leg, "device 200 without an MSRP answer: BYE");
            self.b2bua.send_bye(ctx, call, Side::Outgoing(leg), None);
            return;
        };
        let Some(dev) = c.devices.get(leg) else {
            return;
        };
        let remote = MsrpPath(
            answer
                .path
                .iter()
                .filter_map(|p| MsrpUri::parse(p).ok())
                .collect(),
        );
        let connect_to = match tcp_active_side(&dev.offer, &answer) {
            Ok(TcpActiveSide::Offerer) => remote.first().and_then(msrp_addr),
            _ => None,
        };
        let local = dev.local.clone();
        let relay_leg = self
            .relay
            .add_leg(call, LegRole::Device, local, remote, connect_to);
        if c.offer.is_large_message() {
            self.relay.set_streaming(call);
        }
        self.relay_legs.insert(relay_leg, (call, Some(leg)));
        if let Some(c) = self.calls.get_mut(&call)
            && let Some(d) = c.devices.get_mut(leg)
        {
            d.relay_leg = Some(relay_leg);
        }
        let answered = self.b2bua.call(call).is_some_and(|b| b.incoming.final_sent);
        if !answered {
            // "Upon receiving the first SIP 200 OK" steps 1–4.
            self.answer_originator(
                ctx,
                call,
                answer.accept_types.clone(),
                answer.accept_wrapped_types.clone(),
            );
        }
        self.flush_relay(ctx);
    }

    /// The 200 with our SDP answer to the originator; its MSRP leg.
    fn answer_originator(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        accept_types: Vec<String>,
        accept_wrapped_types: Vec<String>,
    ) -> bool {
        let connection = self.connection();
        let tls = self.calls.get(&call).is_some_and(|c| c.offer.is_tls());
        let port = self.msrp_listener(tls).port();
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let params = MsrpAnswerParams {
            port,
            connection: connection.clone(),
            path: vec![c.orig_local.to_string()],
            accept_types,
            accept_wrapped_types,
            // We wait for the originator's connection when it may choose.
            setup_preference: SetupPreference::Passive,
            direction: crate::proto::sdp::Direction::SendRecv,
            max_size: None,
        };
        let media = match c.offer.answer(&params) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(error = %e, "no answer to the originator's offer");
                return false;
            }
        };
        let remote = MsrpPath(
            c.offer
                .path
                .iter()
                .filter_map(|p| MsrpUri::parse(p).ok())
                .collect(),
        );
        let connect_to = match tcp_active_side(&c.offer, &media) {
            Ok(TcpActiveSide::Answerer) => remote.first().and_then(msrp_addr),
            _ => None,
        };
        let mut sid = [0u8; 4];
        ctx.ids.fill(&mut sid);
        let sdp = Sdp::new("isc", u64::from(u32::from_be_bytes(sid)), connection).with_media(media);
        let body = sdp.to_string().into_bytes();
        c.answer_sdp = Some(body.clone());
        let orig_local = c.orig_local.clone();
        let orig_leg =
            self.relay
                .add_leg(call, LegRole::Originator, orig_local, remote, connect_to);
        self.relay_legs.insert(orig_leg, (call, None));
        if let Some(c) = self.calls.get_mut(&call) {
            c.orig_leg = Some(orig_leg);
        }
        self.b2bua.answer(
            ctx,
            call,
            200,
            None,
            vec![make_header("P-Asserted-Service", CPM_SESSION_ICSI)],
            Some(("application/sdp", body)),
        );
        self.flush_relay(ctx);
        true
    }

    // --- CANCEL, ACK, in-dialog requests ---------------------------------------

    /// The originator CANCELled its INVITE (the core answered the CANCEL).
    pub fn on_cancel(&mut self, ctx: &mut SipCtx<'_>, invite: &TsxKey) {
        let Some(call) = self.b2bua.call_of_server(invite) else {
            return;
        };
        if self.b2bua.call(call).is_some_and(|b| b.incoming.final_sent) {
            return;
        }
        self.end_device_legs(ctx, call, None, None);
        self.b2bua
            .answer(ctx, call, 487, Some("Request Terminated"), vec![], None);
        self.drop_call(call);
    }

    /// An ACK without transaction. True if it was one of ours.
    pub fn on_ack(&mut self, now: Instant, ack: &rsip::Request) -> bool {
        self.b2bua.on_ack(now, ack)
    }

    pub fn on_stray_response(&mut self, ctx: &mut SipCtx<'_>, response: &rsip::Response) {
        self.b2bua.on_stray_response(ctx, response);
    }

    /// An in-dialog request for one of our dialogs (RFC 3261 §12.2.2).
    pub fn on_in_dialog(&mut self, ctx: &mut SipCtx<'_>, key: TsxKey, req: rsip::Request) {
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
        match req.method {
            rsip::Method::Bye => {
                B2bua::respond(ctx, &key, &req, 200, vec![], None);
                match side {
                    Side::Incoming => {
                        // The originator left: every device leg goes.
                        self.end_device_legs(ctx, call, None, None);
                        self.drop_call(call);
                    }
                    Side::Outgoing(leg) => {
                        self.release_device_media(call, leg);
                        self.end_if_no_device_left(ctx, call);
                    }
                }
            }
            rsip::Method::Invite | rsip::Method::Update => {
                // Session refresh or modification: we keep our description
                // (RFC 3264 §8: an unchanged SDP is a valid answer).
                let body = match side {
                    Side::Incoming => self.calls.get(&call).and_then(|c| c.answer_sdp.clone()),
                    Side::Outgoing(leg) => self.calls.get(&call).and_then(|c| {
                        let d = c.devices.get(leg)?;
                        Some(
                            Sdp::new("isc", 1, self.connection())
                                .with_media(d.offer.clone())
                                .to_string()
                                .into_bytes(),
                        )
                    }),
                };
                let with_body = !req.body.is_empty() || req.method == rsip::Method::Invite;
                // RFC 4028 §9: a refresh renews the leg's session timer.
                let mut extra = match self.b2bua.refresh_received(ctx.now, call, side, &req) {
                    Ok(h) => h,
                    Err((code, headers)) => {
                        B2bua::respond(ctx, &key, &req, code, headers, None);
                        return;
                    }
                };
                extra.push(make_header("Contact", &ctx.contact(Transport::Udp)));
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

    /// When the last device leg is gone, the originator's leg goes too
    /// (a group session stays in the path).
    fn end_if_no_device_left(&mut self, ctx: &mut SipCtx<'_>, call: CallRef) {
        let any_left = self
            .b2bua
            .call(call)
            .is_some_and(|b| b.outgoing.iter().any(|o| o.is_pending() || o.is_up()));
        let group = self.calls.get(&call).is_some_and(|c| c.group);
        if !any_left && !group {
            self.b2bua.send_bye(ctx, call, Side::Incoming, None);
            self.drop_call(call);
        }
    }

    /// BYE to every confirmed device leg except `keep`, CANCEL to the
    /// pending ones, with `reason`; their media released.
    fn end_device_legs(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        keep: Option<usize>,
        reason: Option<&str>,
    ) {
        let Some(b) = self.b2bua.call(call) else {
            return;
        };
        let legs: Vec<(usize, bool, bool)> = b
            .outgoing
            .iter()
            .enumerate()
            .map(|(i, o)| (i, o.is_up(), o.is_pending()))
            .collect();
        for (i, up, pending) in legs {
            if Some(i) == keep {
                continue;
            }
            if up {
                self.b2bua.send_bye(ctx, call, Side::Outgoing(i), reason);
            } else if pending {
                self.b2bua.cancel_leg(ctx, call, i, reason);
            }
            self.release_device_media(call, i);
        }
    }

    fn release_device_media(&mut self, call: CallRef, leg: usize) {
        if let Some(c) = self.calls.get_mut(&call)
            && let Some(d) = c.devices.get_mut(leg)
            && let Some(rl) = d.relay_leg.take()
        {
            self.relay.release_leg(rl);
            self.relay_legs.remove(&rl);
        }
    }

    fn drop_call(&mut self, call: CallRef) {
        self.relay.remove_call(call);
        self.relay_legs.retain(|_, (c, _)| *c != call);
        self.calls.remove(&call);
        self.b2bua.remove(call);
    }

    // --- MSRP ---------------------------------------------------------------

    /// What the MSRP transport reported.
    pub fn handle_msrp(&mut self, ctx: &mut SipCtx<'_>, input: RelayInput) {
        self.relay.handle_input(input);
        self.flush_relay(ctx);
    }

    /// The next thing for the MSRP transport to do.
    pub fn poll_msrp(&mut self) -> Option<RelayOutput> {
        while let Some(o) = self.relay.poll_output() {
            self.outputs.push_back(o);
        }
        self.outputs.pop_front()
    }

    fn flush_relay(&mut self, ctx: &mut SipCtx<'_>) {
        loop {
            while let Some(o) = self.relay.poll_output() {
                self.outputs.push_back(o);
            }
            let Some(ev) = self.relay.poll_event() else {
                break;
            };
            match ev {
                RelayEvent::DeviceActivity { call, leg } => {
                    let Some((_, Some(dev))) = self.relay_legs.get(&leg).copied() else {
                        continue;
                    };
                    // Seed 001 8.3.2.1.1 step 4.a.i–iv
                    tracing::info!(call, device_leg = dev, "user active on one device");
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.chosen = Some(dev);
                    }
                    self.end_device_legs(ctx, call, Some(dev), Some(REASON_COMPLETED_ELSEWHERE));
                    self.relay.set_plain_relay(call);
                }
                RelayEvent::ChatMessage {
                    call,
                    message_id,
                    content_type,
                    body,
                    ..
                } => self.store_history(call, message_id, content_type, body),
                RelayEvent::LegDisconnected { call, leg } => {
                    if let Some((_, Some(dev))) = self.relay_legs.get(&leg).copied() {
                        tracing::info!(call, dev, "device MSRP leg lost: BYE");
                        self.b2bua.send_bye(ctx, call, Side::Outgoing(dev), None);
                        self.release_device_media(call, dev);
                    }
                }
            }
        }
    }

    /// Seed 001 8.3.2.1.1 "Upon receiving an MSRP SEND" step 2.
    fn store_history(
        &mut self,
        call: CallRef,
        message_id: String,
        content_type: String,
        body: Vec<u8>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let entry = HistoryEntry::from_msrp(
            conversation_key(&c.originator, &c.recipient),
            message_id,
            content_type,
            body,
            (self.config.wall_clock_ms)(),
        );
        if let Err(e) = self.history.store(&entry) {
            tracing::warn!(error = %e, "history not stored");
        }
    }

    // --- timers ---------------------------------------------------------------

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.b2bua.poll_timeout()
    }

    pub fn handle_timeout(&mut self, ctx: &mut SipCtx<'_>) {
        for t in self.b2bua.handle_timeout(ctx) {
            match t {
                // RFC 3261 §13.3.1.4 / RFC 4028 §10 on the originator's
                // leg: the session is over.
                B2buaTimeout::NoAck(call) | B2buaTimeout::SessionExpired(call, Side::Incoming) => {
                    self.b2bua.send_bye(ctx, call, Side::Incoming, None);
                    self.end_device_legs(ctx, call, None, None);
                    self.drop_call(call);
                }
                // A device leg expired (its BYE is sent): as if it hung up.
                B2buaTimeout::SessionExpired(call, Side::Outgoing(leg)) => {
                    self.release_device_media(call, leg);
                    self.end_if_no_device_left(ctx, call);
                }
            }
        }
    }
}

/// Seed 001 step 1: does a User-Agent product token carry a version at
/// least `required` (numeric dot-separated comparison)?
pub fn user_agent_at_least(user_agent: &str, required: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.split(['.', '-'])
            .map_while(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect()
    };
    let want = parse(required.trim_start_matches(|c: char| !c.is_ascii_digit()));
    user_agent.split_whitespace().any(|token| {
        let Some((_, version)) = token.split_once('/') else {
            return false;
        };
        let version = version.trim_start_matches(|c: char| !c.is_ascii_digit());
        let have = parse(version);
        !have.is_empty() && have >= want
    })
}

/// RFC 3261 §16.7 step 6 for a B2BUA: 6xx first, else the lowest class.
pub(crate) fn better_error(current: Option<u16>, code: u16) -> bool {
    let Some(cur) = current else { return true };
    if cur >= 600 {
        return false;
    }
    code >= 600 || code / 100 < cur / 100
}

pub(crate) fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The TCP address of an MSRP URI with an IP literal host.
pub(crate) fn msrp_addr(u: &MsrpUri) -> Option<SocketAddr> {
    let host = u.host.trim_start_matches('[').trim_end_matches(']');
    Some(SocketAddr::new(host.parse().ok()?, u.port?))
}

/// `From` value with its tag replaced by `tag`.
fn replace_tag(value: &str, tag: &str) -> String {
    match crate::proto::sip::headers::NameAddr::parse(value) {
        Ok(mut n) => {
            n.params.set("tag", Some(tag));
            n.to_string()
        }
        Err(_) => value.to_string(),
    }
}

/// Where a 302's Contact leads: a registered contact/GRUU of ours over its
/// flow, else the URI's own address.
fn redirect_target(
    now: Instant,
    location: &LocationService,
    contact_text: &str,
    contact: &UriView,
) -> Option<Target> {
    let uri_text = contact_text
        .split('<')
        .nth(1)
        .and_then(|r| r.split('>').next())
        .unwrap_or(contact_text)
        .to_string();
    let uri = crate::proto::sip::message::parse_uri(&uri_text).ok()?;
    if let Some(b) = location.lookup(now, &uri_text).into_iter().next() {
        return Some(Target {
            uri,
            addr: b.source.addr,
            transport: Transport::Udp,
        });
    }
    Some(Target {
        uri,
        addr: contact.socket_addr()?,
        transport: contact.transport.unwrap_or(Transport::Udp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_versions() {
        assert!(user_agent_at_least("isc/1.2.0 CPM-client/OMA2.0", "1.2"));
        assert!(user_agent_at_least("CPM-client/OMA2.1", "2.0"));
        assert!(!user_agent_at_least("isc/0.9", "1.0"));
        assert!(!user_agent_at_least("", "1.0"));
    }

    #[test]
    fn rejection_mapping() {
        assert_eq!(
            CpmRejection::AnonymityNotAllowed.status(),
            (403, "Forbidden", Some((119, "Anonymity not allowed")))
        );
        assert_eq!(CpmRejection::DoNotDisturb.status().0, 480);
        assert_eq!(CpmRejection::SdpPolicy(String::new()).status().0, 488);
    }

    #[test]
    fn error_choice() {
        assert!(!better_error(Some(486), 404));
        assert!(better_error(Some(500), 404));
        assert!(better_error(Some(404), 603));
        assert!(!better_error(Some(603), 404));
    }
}
