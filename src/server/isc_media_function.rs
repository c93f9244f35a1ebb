//! ISC Server Media Function (seed 000 5.11.1, 5.12.1, 5.12.4, 5.4.3.2,
//! 5.4.3.3), sans-IO, on the shared [`B2bua`].
//!
//! An initial INVITE whose Accept-Contact (or P-Preferred-Service) names an
//! ISC ICSI comes here from the core after authentication. The checks run in
//! the seed's order, each with its own answer ([`MfReject`]):
//! 1. the originator may use ISC, else 403 + `127 Service not authorised`;
//! 2. the feature tag is one the function serves (1-1-cv-cm, group-cv-cm),
//!    else 403 + `122 Function not allowed`;
//! 3. the User-Agent version, when the server requires one, else 403 +
//!    `132 Version not supported`;
//! 4. P-Preferred-Service → P-Asserted-Service; a P-Asserted-Service naming
//!    another service gets 403;
//! 5. the SDP against the service provider's policy, else 488;
//!
//! then (project checks) the content request body (400/415), the content
//! (404), CommunicationClientAddr a device of the originator's own AOR
//! (403), the recipients (404/480).
//!
//! The function then acts as a B2BUA: one outgoing INVITE per registered
//! device of every recipient (1-1: the Request-URI's user; pre-defined group:
//! the configured members; ad-hoc: the resource-lists entries), each with
//! the device's GRUU as Request-URI, Accept-Contact, ISCConvergenceID and the
//! content-request body copied, the server's own Contact, and the server's
//! sendonly SDP offer. With UsingMultipleClient=yes it sends the MESSAGE
//! `cm.recommendation` to the CommunicationClientAddr (5.4.3.2).
//!
//! On the first 2xx of a recipient: the B2BUA has ACKed it; the originator
//! gets 200 (once) with the sendonly SDP answer; the device and the
//! originator's viewing device become viewers of the session's shared RTP
//! timeline ([`RtpStreamer`]); if the recipient wants one device for content
//! viewing, every other pending branch of that recipient gets CANCEL with
//! `Reason: SIP;cause=200;text="Call completed elsewhere"` (5.4.3.3), and a
//! device that answered 200 as well gets BYE with the same Reason (it was
//! ACKed; a CANCEL is only valid before a final response).
//!
//! Playback control: INFO with the `isc-playback` Info Package (see
//! [`super::isc_playback`]) in any CV dialog.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{GroupConfig, SdpPolicy, ServerConfig, UserConfig};
use crate::proto::bodies::cm_recommendation::{self, CmRecommendation};
use crate::proto::bodies::cv_cancellation::{self, CvCancellation};
use crate::proto::bodies::isc_content_request::{self, IscContentRequest};
use crate::proto::bodies::multipart::{MULTIPART_MIXED, Multipart, Part};
use crate::proto::bodies::resource_lists::{self, ResourceLists};
use crate::proto::rtp::NtpTime;
use crate::proto::sdp::{ConnectionAddress, Direction, MediaLine, Sdp, parse_sdp};
use crate::proto::sdp::{MediaKind as SdpMediaKind, RtpMap, RtpMedia, codecs};
use crate::proto::sip::build::response_with;
use crate::proto::sip::headers::{
    AcceptContact, HeadersExt, IscConvergenceId, PAssertedService, UserAgent, Warning, make_header,
};
use crate::proto::sip::headers::{FeatureSet, service};
use crate::proto::sip::message::parse_uri;
use crate::proto::sip::transaction::{Transport, TsxKey};

use super::b2bua::{
    B2bua, B2buaTimeout, CallRef, LegResponse, REASON_COMPLETED_ELSEWHERE, Side, SipCtx,
};
use super::content_list::ContentLibrary;
use super::core::SERVER_AGENT;
use super::isc_playback::{self, PlaybackAction, PlaybackControl};
use super::location_service::{LocationService, canonical_aor};
use super::proxy_core::Target;
use super::rtp_streamer::{
    MediaDest, RtpStreamer, RtpTransmit, StreamIds, StreamerConfig, StreamerSet, ViewerDest,
    ViewerId,
};
use super::sip_util::{host_of, local_for, via_text};

/// Methods the function answers in its dialogs.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS";

/// What the function needs from the server configuration.
#[derive(Debug, Clone)]
pub struct MfConfig {
    pub domain: String,
    pub users: Vec<UserConfig>,
    pub groups: Vec<GroupConfig>,
    pub required_user_agent_version: Option<String>,
    pub sdp_policy: SdpPolicy,
    pub streamer: StreamerConfig,
}

impl MfConfig {
    pub fn from_server_config(c: &ServerConfig) -> Self {
        MfConfig {
            domain: c.domain.clone(),
            users: c.effective_users(),
            groups: c.groups.clone(),
            required_user_agent_version: c.required_user_agent_version.clone(),
            sdp_policy: c.sdp_policy.clone(),
            streamer: StreamerConfig {
                cname: format!("isc-server@{}", c.domain),
                ..StreamerConfig::default()
            },
        }
    }
}

/// Where the server's media leave from (the driver's [`super::rtp_sender::MediaSockets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPorts {
    pub ip: IpAddr,
    pub audio: u16,
    pub video: u16,
}

/// Why an ISC INVITE is refused: one place maps each to status and Warning.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MfReject {
    /// seed 000 5.11.1 step 1
    #[error("Service not authorised")]
    NotAuthorised,
    /// step 2
    #[error("Function not allowed")]
    FunctionNotAllowed,
    /// step 3
    #[error("Version not supported")]
    VersionNotSupported,
    /// step 4.B
    #[error("P-Asserted-Service {0} is not the ISC service of this request")]
    ForeignService(String),
    /// step 5: a media type the policy does not allow (or none at all).
    #[error("media type not available: {0}")]
    MediaNotAllowed(String),
    /// step 5: no codec of a media line is allowed.
    #[error("incompatible media format: {0}")]
    CodecNotAllowed(String),
    #[error("unsupported body type {0}")]
    UnsupportedBody(String),
    #[error("bad body: {0}")]
    BadBody(String),
    #[error("unknown ContentRef {0}")]
    UnknownContent(String),
    #[error("CommunicationClientAddr {addr} is not a device of {aor}")]
    ForeignCommunicationClient { addr: String, aor: String },
    #[error("unknown target {0}")]
    UnknownTarget(String),
    #[error("no registered device of any recipient")]
    NoDevice,
    #[error("content viewing is not available on this server")]
    MediaUnavailable,
}

impl MfReject {
    /// Status code and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            MfReject::NotAuthorised
            | MfReject::FunctionNotAllowed
            | MfReject::VersionNotSupported
            | MfReject::ForeignService(_)
            | MfReject::ForeignCommunicationClient { .. } => (403, "Forbidden"),
            MfReject::MediaNotAllowed(_) | MfReject::CodecNotAllowed(_) => {
                (488, "Not Acceptable Here")
            }
            MfReject::UnsupportedBody(_) => (415, "Unsupported Media Type"),
            MfReject::BadBody(_) => (400, "Bad Request"),
            MfReject::UnknownContent(_) | MfReject::UnknownTarget(_) => (404, "Not Found"),
            MfReject::NoDevice => (480, "Temporarily Unavailable"),
            MfReject::MediaUnavailable => (503, "Service Unavailable"),
        }
    }

    /// The Warning (RFC 3261 §20.43): the seed's codes 127/122/132, RFC
    /// 3261's 304/305 for SDP, 399 with the reason otherwise.
    pub fn warning(&self, agent: &str) -> Warning {
        let code = match self {
            MfReject::NotAuthorised => 127,
            MfReject::FunctionNotAllowed => 122,
            MfReject::VersionNotSupported => 132,
            MfReject::MediaNotAllowed(_) => 304,
            MfReject::CodecNotAllowed(_) => 305,
            _ => 399,
        };
        Warning::new(code, agent, &self.to_string().replace('"', "'"))
    }
}

/// Which ISC service an INVITE asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IscService {
    OneToOne,
    Group,
}

impl IscService {
    pub fn icsi(self) -> &'static str {
        match self {
            IscService::OneToOne => service::ISC_1_1_CV_CM,
            IscService::Group => service::ISC_GROUP_CV_CM,
        }
    }
}

/// The ISC services named by a request's Accept-Contact (seed 000 5.11.1:
/// "the ISC feature tag included in the Accept-Contact header"; a
/// P-Preferred-Service alone does not make a request ours), normalised (the seeds' doubled
/// `urn:urn-7:3gpp-service.ims.urn:urn-7:...` form is read as the clean one).
fn isc_services(req: &rsip::Request) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(sets) = req.headers.all::<AcceptContact>() {
        for set in sets.iter().flat_map(|a| a.0.iter()) {
            out.extend(set.service_refs());
        }
    }
    out.into_iter()
        .filter_map(|s| {
            let i = s.find("icsi.oma.isc.")?;
            Some(format!("urn:urn-7:3gpp-service.ims.{}", &s[i..]))
        })
        .collect()
}

/// Does this initial request belong to the Media Function? (An INVITE that
/// names any ISC ICSI.)
pub fn handles(req: &rsip::Request) -> bool {
    req.method == rsip::Method::Invite && !isc_services(req).is_empty()
}

/// seed 000 5.11.1 step 2: the tag must be one this function serves.
fn requested_service(req: &rsip::Request) -> Option<IscService> {
    let services = isc_services(req);
    if services.iter().any(|s| s == service::ISC_1_1_CV_CM) {
        Some(IscService::OneToOne)
    } else if services.iter().any(|s| s == service::ISC_GROUP_CV_CM) {
        Some(IscService::Group)
    } else {
        None
    }
}

/// Numeric components of a version (`OMA1.0` → [1, 0]).
fn version_numbers(v: &str) -> Vec<u64> {
    let start = v.find(|c: char| c.is_ascii_digit()).unwrap_or(v.len());
    v[start..]
        .split(['.', '-', '_'])
        .map_while(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// seed 000 5.11.1 step 3: some product of User-Agent has at least `required`.
pub fn user_agent_supports(req: &rsip::Request, required: &str) -> bool {
    let want = version_numbers(required);
    let Ok(Some(ua)) = req.headers.typed::<UserAgent>() else {
        return false;
    };
    ua.products.iter().any(|p| {
        let have = p
            .version
            .as_deref()
            .map(version_numbers)
            .unwrap_or_default();
        !have.is_empty() && have >= want
    })
}

/// The parts of an ISC INVITE body.
#[derive(Debug, Default)]
struct Bodies {
    sdp: Option<Vec<u8>>,
    content_request: Option<Vec<u8>>,
    resource_lists: Option<Vec<u8>>,
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or(ct)
        .trim()
        .to_ascii_lowercase()
}

fn split_bodies(req: &rsip::Request) -> Result<Bodies, MfReject> {
    let mut b = Bodies::default();
    if req.body.is_empty() {
        return Ok(b);
    }
    let ct = req.headers.get_raw("Content-Type").unwrap_or_default();
    let mut take = |t: &str, body: Vec<u8>| -> Result<(), MfReject> {
        match t {
            "application/sdp" => b.sdp = Some(body),
            t if t.eq_ignore_ascii_case(isc_content_request::CONTENT_TYPE) => {
                b.content_request = Some(body)
            }
            t if t == resource_lists::CONTENT_TYPE => b.resource_lists = Some(body),
            other => return Err(MfReject::UnsupportedBody(other.to_owned())),
        }
        Ok(())
    };
    let t = media_type(&ct);
    if t == MULTIPART_MIXED {
        let m = Multipart::parse_with_content_type(&ct, &req.body)
            .map_err(|e| MfReject::BadBody(e.to_string()))?;
        for p in m.parts {
            let pt = p.media_type().unwrap_or_default();
            take(&pt, p.body)?;
        }
    } else {
        take(&t, req.body.clone())?;
    }
    Ok(b)
}

/// seed 000 5.11.1 step 5: every offered line must be a media type the
/// policy allows with at least one allowed codec we can stream.
fn check_sdp(policy: &SdpPolicy, sdp: Option<&[u8]>) -> Result<Sdp, MfReject> {
    let bytes = sdp.ok_or_else(|| MfReject::MediaNotAllowed("no SDP offer".into()))?;
    let sdp = parse_sdp(bytes).map_err(|e| MfReject::MediaNotAllowed(e.to_string()))?;
    let mut rtp_lines = 0;
    for line in &sdp.media {
        if line.port() == 0 {
            continue;
        }
        let kind = line.media_type().to_owned();
        if !policy.allows_media(&kind) {
            return Err(MfReject::MediaNotAllowed(kind));
        }
        match line {
            MediaLine::Rtp(r) => {
                rtp_lines += 1;
                if streamable(policy, r).is_empty() {
                    return Err(MfReject::CodecNotAllowed(kind));
                }
            }
            _ => return Err(MfReject::MediaNotAllowed(kind)),
        }
    }
    if rtp_lines == 0 {
        return Err(MfReject::MediaNotAllowed("no RTP media".into()));
    }
    Ok(sdp)
}

/// The codecs of `line` the server streams and the policy allows.
fn streamable(policy: &SdpPolicy, line: &RtpMedia) -> Vec<RtpMap> {
    let ours = match line.kind {
        SdpMediaKind::Audio => vec![codecs::pcmu()],
        SdpMediaKind::Video => vec![codecs::jpeg()],
        SdpMediaKind::Other(_) => vec![],
    };
    let allowed: Vec<_> = ours
        .into_iter()
        .filter(|c| policy.allows_codec(&c.encoding))
        .collect();
    line.common_codecs(&allowed)
}

/// Where the RTP of a description's receiving lines goes.
fn viewer_dest(sdp: &Sdp, has_video: bool) -> ViewerDest {
    let mut d = ViewerDest::default();
    for r in sdp.rtp() {
        if r.port == 0 || !r.direction.receives() {
            continue;
        }
        let Some(ip) = r.connection.as_ref().and_then(ConnectionAddress::ip) else {
            continue;
        };
        let mut dest = MediaDest::new(SocketAddr::new(ip, r.port));
        // RFC 3605: a=rtcp:<port> [IN IP4 <addr>]
        if let Some(port) = r
            .other
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case("rtcp"))
            .and_then(|a| a.value.as_deref())
            .and_then(|v| v.split_whitespace().next())
            .and_then(|p| p.parse().ok())
        {
            dest.rtcp.set_port(port);
        }
        match r.kind {
            SdpMediaKind::Audio if !r.common_codecs(&[codecs::pcmu()]).is_empty() => {
                d.audio.get_or_insert(dest);
            }
            SdpMediaKind::Video if has_video && !r.common_codecs(&[codecs::jpeg()]).is_empty() => {
                d.video.get_or_insert(dest);
            }
            _ => {}
        }
    }
    d
}

/// The SDP body of a message (bare or in a multipart).
fn sdp_of(headers: &rsip::Headers, body: &[u8]) -> Option<Sdp> {
    let ct = headers.get_raw("Content-Type")?;
    let t = media_type(&ct);
    if t == "application/sdp" {
        return parse_sdp(body).ok();
    }
    if t == MULTIPART_MIXED {
        let m = Multipart::parse_with_content_type(&ct, body).ok()?;
        return parse_sdp(&m.part_of_type("application/sdp")?.body).ok();
    }
    None
}

/// One invited user.
#[derive(Debug)]
struct Recipient {
    aor: String,
    cv_single_device: bool,
    legs: Vec<usize>,
    /// The leg whose 2xx was first.
    taken: Option<usize>,
}

/// One content-viewing session (one B2BUA call).
#[derive(Debug)]
struct CvSession {
    originator: String,
    convergence_id: String,
    recipients: Vec<Recipient>,
    /// leg → recipient index
    leg_recipient: HashMap<usize, usize>,
    /// Our answer to the originator.
    answer: Sdp,
    /// Our offer to the recipients' devices.
    offer: Sdp,
    originator_dest: ViewerDest,
    answered: bool,
    ringing_sent: bool,
    /// Legs we CANCELled ourselves.
    cancelled: HashSet<usize>,
    /// Legs whose 2xx made them viewers.
    viewing: HashSet<usize>,
    /// Sides that announced `Recv-Info: isc-playback`.
    receives_info: HashSet<Side>,
    /// Whether the content has video (its streamer is in
    /// [`IscMediaFunction`]'s `streams`).
    has_video: bool,
    ended: bool,
}

impl CvSession {
    fn pending_or_viewing(&self, b2bua: &B2bua, call: CallRef) -> bool {
        let Some(c) = b2bua.call(call) else {
            return false;
        };
        c.outgoing
            .iter()
            .enumerate()
            .any(|(i, o)| o.is_pending() || (self.viewing.contains(&i) && o.is_up()))
    }
}

fn viewer_of(side: Side) -> ViewerId {
    match side {
        Side::Incoming => ViewerId(0),
        Side::Outgoing(n) => ViewerId(n as u64 + 1),
    }
}

fn announces_playback(headers: &rsip::Headers) -> bool {
    headers
        .get_all_raw("Recv-Info")
        .iter()
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(isc_playback::INFO_PACKAGE))
}

/// See the module docs.
pub struct IscMediaFunction {
    config: MfConfig,
    library: ContentLibrary,
    media: Option<MediaPorts>,
    b2bua: B2bua,
    sessions: HashMap<CallRef, CvSession>,
    /// Each session's streamer, scheduled by wake-up.
    streams: StreamerSet<CallRef>,
    /// Ended sessions, removed once their last datagram is out and no
    /// branch is pending.
    ended: BTreeSet<CallRef>,
    /// Our MESSAGE, CANCEL and INFO client transactions.
    own_requests: HashSet<TsxKey>,
    /// The last (monotonic, wall) reading the driver gave.
    wall_anchor: Option<(Instant, NtpTime)>,
    next_session_id: u64,
}

impl IscMediaFunction {
    pub fn new(config: MfConfig, library: ContentLibrary, media: Option<MediaPorts>) -> Self {
        IscMediaFunction {
            config,
            library,
            media,
            b2bua: B2bua::new(),
            sessions: HashMap::new(),
            streams: StreamerSet::new(),
            ended: BTreeSet::new(),
            own_requests: HashSet::new(),
            wall_anchor: None,
            next_session_id: 1,
        }
    }

    /// A function with no content and no media sockets (answers 503).
    pub fn disabled(domain: &str) -> Self {
        let config = MfConfig::from_server_config(&ServerConfig {
            domain: domain.to_owned(),
            ..ServerConfig::default()
        });
        Self::new(config, ContentLibrary::default(), None)
    }

    pub fn library(&self) -> &ContentLibrary {
        &self.library
    }

    /// Sessions in progress.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn user(&self, aor: &str) -> Option<&UserConfig> {
        let canon = canonical_aor(aor)?;
        self.config
            .users
            .iter()
            .find(|u| format!("sip:{}@{}", u.name, self.config.domain) == canon)
    }

    fn warning_agent(&self) -> String {
        self.config.domain.clone()
    }

    fn reject(&self, ctx: &mut SipCtx<'_>, key: &TsxKey, req: &rsip::Request, why: &MfReject) {
        let (code, reason) = why.status();
        tracing::info!(code, %why, "ISC INVITE refused");
        let mut extra = vec![
            make_header("Warning", &why.warning(&self.warning_agent()).to_string()),
            make_header("Server", SERVER_AGENT),
        ];
        if code == 415 {
            extra.push(make_header(
                "Accept",
                "application/sdp, multipart/mixed, application/ISC-content-request+xml, application/resource-lists+xml",
            ));
        }
        let tag = ctx.ids.token();
        let resp = response_with(req, code, Some(&tag), Some(reason), extra);
        if let Err(e) = ctx.tsx.send_response(ctx.now, key, resp) {
            tracing::debug!(error = %e, "refusal not sent");
        }
    }

    // --- initial INVITE -------------------------------------------------------

    /// An authenticated initial ISC INVITE (`user` is the authenticated
    /// originator's user name).
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
        let (service, bodies, offer, request, recipients) = match checked {
            Ok(c) => c,
            Err(why) => {
                self.reject(ctx, &key, &req, &why);
                return;
            }
        };
        let (Some(media), Some(content)) = (self.media, self.library.get(&request.content_ref))
        else {
            self.reject(ctx, &key, &req, &MfReject::MediaUnavailable);
            return;
        };
        let has_video = content.video.is_some();
        // Our answer to the originator: sendonly, from the server's ports.
        let conn = ConnectionAddress::Ip(media.ip);
        let sid = self.next_session_id;
        self.next_session_id += 1;
        let policy = self.config.sdp_policy.clone();
        let answer = offer.answer("isc", sid, conn.clone(), |line| match line {
            MediaLine::Rtp(r) => {
                let port = match r.kind {
                    SdpMediaKind::Audio => media.audio,
                    SdpMediaKind::Video if has_video => media.video,
                    _ => return None,
                };
                let common = streamable(&policy, r);
                r.answer(&common, port, conn.clone(), Direction::SendOnly)
                    .ok()
                    .map(MediaLine::Rtp)
            }
            _ => None,
        });
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.reject(ctx, &key, &req, &MfReject::CodecNotAllowed(e.to_string()));
                return;
            }
        };
        // seed 000 5.11.1 7.e: our offer to the recipients, built from the
        // originator's: the same media, sendonly, from our ports.
        let mut our_offer = Sdp::new("isc", sid, conn.clone());
        for line in answer.rtp().filter(|r| r.port != 0) {
            our_offer = our_offer.with_media(RtpMedia::new(
                line.kind.clone(),
                line.port,
                conn.clone(),
                &line.rtpmaps,
                Direction::SendOnly,
            ));
        }
        // The devices to fork to (seed 000 5.11.1 step 8, 5.12.1 step 9).
        let mut forks: Vec<(usize, Target)> = Vec::new();
        let mut recips = Vec::new();
        for aor in &recipients {
            let idx = recips.len();
            for b in location.active_bindings(ctx.now, aor) {
                let uri_text = b.gruu.clone().unwrap_or_else(|| b.contact.clone());
                let Ok(uri) = parse_uri(&uri_text) else {
                    continue;
                };
                forks.push((
                    idx,
                    Target {
                        uri,
                        addr: b.source.addr,
                        transport: Transport::from_rsip(b.source.transport),
                    },
                ));
            }
            recips.push(Recipient {
                aor: aor.clone(),
                cv_single_device: self.user(aor).is_some_and(|u| u.cv_single_device),
                legs: Vec::new(),
                taken: None,
            });
        }
        if forks.is_empty() {
            self.reject(ctx, &key, &req, &MfReject::NoDevice);
            return;
        }
        // ISCConvergenceID: generated by the initiating device; if it sent
        // none, the server names the session itself.
        let convergence_id = match req.headers.typed::<IscConvergenceId>() {
            Ok(Some(id)) => id.0,
            _ => format!("cv-{}", ctx.ids.token()),
        };
        let originator_dest = viewer_dest(&offer, has_video);
        let receives_info = announces_playback(&req.headers);
        let call = self.b2bua.open(ctx, key, req.clone(), source, transport);
        let has_video = content.video.is_some();
        let streamer = RtpStreamer::new(
            content,
            self.config.streamer.clone(),
            StreamIds::generate(ctx.ids),
        );
        let mut session = CvSession {
            originator: originator.clone(),
            convergence_id: convergence_id.clone(),
            recipients: recips,
            leg_recipient: HashMap::new(),
            answer,
            offer: our_offer.clone(),
            originator_dest,
            answered: false,
            ringing_sent: false,
            cancelled: HashSet::new(),
            viewing: HashSet::new(),
            receives_info: HashSet::new(),
            has_video,
            ended: false,
        };
        if receives_info {
            session.receives_info.insert(Side::Incoming);
        }
        for (idx, target) in forks {
            let aor = session.recipients[idx].aor.clone();
            let out = self.outgoing_invite(
                ctx,
                &req,
                &aor,
                &target,
                &our_offer,
                bodies.content_request.as_deref(),
                &convergence_id,
                service,
            );
            if let Some(leg) = self.b2bua.send_invite(ctx, call, target, out) {
                session.recipients[idx].legs.push(leg);
                session.leg_recipient.insert(leg, idx);
            }
        }
        if session.leg_recipient.is_empty() {
            self.b2bua.answer(
                ctx,
                call,
                500,
                Some("No branch could be started"),
                vec![],
                None,
            );
            self.b2bua.remove(call);
            return;
        }
        self.sessions.insert(call, session);
        self.streams.insert(call, streamer);
        // seed 000 5.11.1 step 9 / 5.12.x step 10 → 5.4.3.2
        if request.using_multiple_client
            && let Some(cca) = request.communication_client_addr.as_deref()
        {
            self.send_recommendation(ctx, location, &originator, cca, &request, &convergence_id);
        }
    }

    /// The seed's checks, in order, then the project's.
    #[allow(clippy::type_complexity)]
    fn check(
        &self,
        now: Instant,
        location: &LocationService,
        req: &mut rsip::Request,
        originator: &str,
    ) -> Result<(IscService, Bodies, Sdp, IscContentRequest, Vec<String>), MfReject> {
        // seed 000 5.11.1 step 1
        if !self.user(originator).is_some_and(|u| u.isc_authorised) {
            return Err(MfReject::NotAuthorised);
        }
        // step 2
        let service = requested_service(req).ok_or(MfReject::FunctionNotAllowed)?;
        // step 3
        if let Some(required) = &self.config.required_user_agent_version
            && !user_agent_supports(req, required)
        {
            return Err(MfReject::VersionNotSupported);
        }
        // step 4.A: P-Preferred-Service → P-Asserted-Service (RFC 6050)
        let icsi = service.icsi();
        if let Ok(Some(pas)) = req.headers.typed::<PAssertedService>()
            && !pas.contains(icsi)
        {
            // step 4.B
            return Err(MfReject::ForeignService(pas.0.join(",")));
        }
        req.headers.remove_named("P-Preferred-Service");
        req.headers.remove_named("P-Asserted-Service");
        req.headers.push(make_header("P-Asserted-Service", icsi));
        // step 5
        let bodies = split_bodies(req)?;
        let offer = check_sdp(&self.config.sdp_policy, bodies.sdp.as_deref())?;
        // the content request (seed 000 5.11.1 step 7.f)
        let cr = bodies.content_request.as_deref().ok_or_else(|| {
            MfReject::BadBody(format!("no {} part", isc_content_request::CONTENT_TYPE))
        })?;
        let request = IscContentRequest::parse(cr).map_err(|e| MfReject::BadBody(e.to_string()))?;
        if self.library.get(&request.content_ref).is_none() {
            return Err(MfReject::UnknownContent(request.content_ref.clone()));
        }
        // CommunicationClientAddr must be one of the originator's own devices.
        if request.using_multiple_client
            && let Some(cca) = request.communication_client_addr.as_deref()
        {
            let own = location
                .lookup_gruu(now, cca)
                .is_some_and(|b| canonical_aor(&b.aor).as_deref() == Some(originator))
                || location
                    .active_bindings(now, originator)
                    .iter()
                    .any(|b| b.contact == cca);
            if !own {
                return Err(MfReject::ForeignCommunicationClient {
                    addr: cca.to_owned(),
                    aor: originator.to_owned(),
                });
            }
        }
        let recipients = self.recipients(service, req, &bodies, originator)?;
        Ok((service, bodies, offer, request, recipients))
    }

    /// 1-1: the Request-URI's user; pre-defined group: the configured
    /// members (seed 000 5.12.1 step 6); ad-hoc: the resource-lists entries
    /// (5.12.4 step 7). The originator is never among them.
    fn recipients(
        &self,
        service: IscService,
        req: &rsip::Request,
        bodies: &Bodies,
        originator: &str,
    ) -> Result<Vec<String>, MfReject> {
        let target = super::sip_util::uri_string(&req.uri);
        let known = |aor: &str| self.user(aor).is_some();
        let mut out: Vec<String> = match service {
            IscService::OneToOne => {
                let aor = canonical_aor(&target).filter(|a| known(a));
                vec![aor.ok_or_else(|| MfReject::UnknownTarget(target.clone()))?]
            }
            IscService::Group => {
                let view = super::sip_util::UriView::of(&req.uri);
                let group = self.config.groups.iter().find(|g| {
                    view.user.as_deref() == Some(g.name.as_str())
                        && view.host.eq_ignore_ascii_case(&self.config.domain)
                });
                if let Some(g) = group {
                    g.member_uris(&self.config.domain)
                } else if let Some(rl) = bodies.resource_lists.as_deref() {
                    let lists =
                        ResourceLists::parse(rl).map_err(|e| MfReject::BadBody(e.to_string()))?;
                    lists
                        .entries()
                        .iter()
                        .map(|e| e.target().to_owned())
                        .collect()
                } else {
                    return Err(MfReject::UnknownTarget(target));
                }
            }
        };
        out = out
            .into_iter()
            .filter_map(|u| canonical_aor(&u))
            .filter(|a| a != originator && known(a))
            .collect();
        out.dedup();
        if out.is_empty() {
            return Err(MfReject::UnknownTarget(target));
        }
        Ok(out)
    }

    /// seed 000 5.11.1 step 7: the INVITE to one device.
    #[allow(clippy::too_many_arguments)]
    fn outgoing_invite(
        &self,
        ctx: &mut SipCtx<'_>,
        incoming: &rsip::Request,
        recipient: &str,
        target: &Target,
        offer: &Sdp,
        content_request: Option<&[u8]>,
        convergence_id: &str,
        service: IscService,
    ) -> rsip::Request {
        let from_uri = incoming
            .headers
            .get_raw("From")
            .and_then(|f| crate::proto::sip::headers::NameAddr::parse(&f).ok())
            .map(|n| n.uri)
            .unwrap_or_default();
        let mut h = rsip::Headers::default();
        let mut push = |n: &str, v: &str| h.push(make_header(n, v));
        push("Max-Forwards", "70");
        push("From", &format!("<{from_uri}>;tag={}", ctx.ids.token()));
        push("To", &format!("<{recipient}>"));
        push(
            "Call-ID",
            &format!("{}@{}", ctx.ids.token(), host_of(ctx.local)),
        );
        push("CSeq", "1 INVITE");
        // 7.c: our own Contact. The seed (7.b) also says to copy the
        // originator's Contact; doing so would route the recipient's
        // in-dialog requests (BYE, INFO) around the B2BUA straight to the
        // originating device, so the server never saw the session end and
        // could not control the media. RFC 3261 §8.1.1.8: the Contact of a
        // request names whoever should receive the dialog's requests — us.
        let contact = format!(
            "{};{}",
            ctx.contact(target.transport),
            FeatureSet::new()
                .with_icsi(&[service.icsi()])
                .to_string()
                .trim_start_matches("*;")
        );
        push("Contact", &contact);
        // 7.b: Accept-Contact copied
        for ac in incoming.headers.get_all_raw("Accept-Contact") {
            push("Accept-Contact", &ac);
        }
        // 7.d: ISCConvergenceID copied
        push("ISCConvergenceID", convergence_id);
        for pai in incoming.headers.get_all_raw("P-Asserted-Identity") {
            push("P-Asserted-Identity", &pai);
        }
        push("P-Asserted-Service", service.icsi());
        push("Allow", ALLOW);
        // RFC 6086 §5.2.1: we accept the playback package in this dialog
        push("Recv-Info", isc_playback::INFO_PACKAGE);
        push("User-Agent", SERVER_AGENT);
        // 7.e + 7.f: our SDP offer and the content request copied verbatim
        let mut parts = vec![Part::new("application/sdp", offer.to_bytes())];
        if let Some(cr) = content_request {
            parts.push(Part::new(isc_content_request::CONTENT_TYPE, cr.to_vec()));
        }
        let body = Multipart::new(parts);
        push("Content-Type", &body.content_type());
        let bytes = body.to_bytes();
        push("Content-Length", &bytes.len().to_string());
        rsip::Request {
            method: rsip::Method::Invite,
            uri: target.uri.clone(),
            version: rsip::Version::V2,
            headers: h,
            body: bytes,
        }
    }

    /// seed 000 5.4.3.2: MESSAGE `cm.recommendation` to the device the
    /// originator chose for communication.
    fn send_recommendation(
        &mut self,
        ctx: &mut SipCtx<'_>,
        location: &LocationService,
        originator: &str,
        cca: &str,
        request: &IscContentRequest,
        convergence_id: &str,
    ) {
        let Some(b) = location.lookup_gruu(ctx.now, cca).or_else(|| {
            location
                .active_bindings(ctx.now, originator)
                .into_iter()
                .find(|b| b.contact == cca)
        }) else {
            tracing::info!(%cca, "communication device not registered: no recommendation");
            return;
        };
        let transport = Transport::from_rsip(b.source.transport);
        let addr = b.source.addr;
        let Ok(uri) = parse_uri(cca) else { return };
        let cvca = request
            .content_viewing_client_addr
            .clone()
            .unwrap_or_else(|| originator.to_owned());
        let mut rec = CmRecommendation::new(cca, cvca, convergence_id);
        rec.target_users = request.target_users.clone();
        let body = rec.to_bytes();
        let branch = format!("z9hG4bK{}", ctx.ids.token());
        let mut h = rsip::Headers::default();
        let mut push = |n: &str, v: &str| h.push(make_header(n, v));
        push(
            "Via",
            &via_text(ctx.local_for(transport), transport, &branch),
        );
        push("Max-Forwards", "70");
        // 2: the authenticated originator
        push("From", &format!("<{originator}>;tag={}", ctx.ids.token()));
        push("To", &format!("<{originator}>"));
        push(
            "Call-ID",
            &format!("{}@{}", ctx.ids.token(), host_of(ctx.local)),
        );
        push("CSeq", "1 MESSAGE");
        push("P-Asserted-Identity", &format!("<{originator}>"));
        // 3: ICSI cv-cm + the recommendation IARI (under 3gpp-application)
        push(
            "Accept-Contact",
            &FeatureSet::new()
                .with_icsi(&[service::ISC_CV_CM])
                .with_iari(&[service::ISC_CM_RECOMMENDATION])
                .to_string(),
        );
        // 4: Contact with the ICSI
        let contact = format!(
            "{};{}",
            ctx.contact(transport),
            FeatureSet::new()
                .with_icsi(&[service::ISC_CV_CM])
                .to_string()
                .trim_start_matches("*;")
        );
        push("Contact", &contact);
        // 5
        push("P-Preferred-Service", service::ISC_CV_CM);
        push("User-Agent", SERVER_AGENT);
        // 6.a / 6.b
        push("Content-Type", cm_recommendation::CONTENT_TYPE);
        push("Content-Length", &body.len().to_string());
        let msg = rsip::Request {
            method: rsip::Method::Message,
            uri,
            version: rsip::Version::V2,
            headers: h,
            body,
        };
        match ctx.tsx.send_request(ctx.now, msg, addr, transport) {
            Ok(k) => {
                self.own_requests.insert(k);
            }
            Err(e) => tracing::warn!(error = %e, "recommendation not sent"),
        }
    }

    // --- responses ------------------------------------------------------------

    /// Is this client transaction ours?
    pub fn owns_client(&self, key: &TsxKey) -> bool {
        self.b2bua.owns_client(key) || self.own_requests.contains(key)
    }

    /// Is this server transaction one of our originators' INVITEs?
    pub fn owns_server(&self, key: &TsxKey) -> bool {
        self.b2bua.call_of_server(key).is_some()
    }

    pub fn on_response(&mut self, ctx: &mut SipCtx<'_>, key: &TsxKey, response: rsip::Response) {
        if self.own_requests.contains(key) {
            tracing::debug!(code = response.status_code.code(), method = %key.method, "response to our request");
            return;
        }
        if let Some(lr) = self.b2bua.on_response(ctx, key, response) {
            self.on_leg(ctx, lr);
        }
    }

    /// A client transaction failed (408 timeout, 503 transport).
    pub fn on_failure(&mut self, ctx: &mut SipCtx<'_>, key: &TsxKey, code: u16) {
        if self.own_requests.remove(key) {
            return;
        }
        if let Some(lr) = self.b2bua.on_failure(key, code) {
            self.on_leg(ctx, lr);
        }
    }

    pub fn on_terminated(&mut self, key: &TsxKey) {
        self.own_requests.remove(key);
        self.b2bua.on_terminated(key);
    }

    fn on_leg(&mut self, ctx: &mut SipCtx<'_>, lr: LegResponse) {
        let LegResponse {
            call,
            leg,
            code,
            response,
            retransmission,
        } = lr;
        if retransmission {
            return;
        }
        let Some(s) = self.sessions.get_mut(&call) else {
            // a late answer to a session that is gone
            if (200..300).contains(&code) {
                self.b2bua.send_bye(
                    ctx,
                    call,
                    Side::Outgoing(leg),
                    Some(REASON_COMPLETED_ELSEWHERE),
                );
            }
            return;
        };
        let Some(&r) = s.leg_recipient.get(&leg) else {
            return;
        };
        match code {
            101..=199 => {
                if !s.answered && !s.ringing_sent && code == 180 {
                    s.ringing_sent = true;
                    self.b2bua.answer(ctx, call, 180, None, vec![], None);
                }
            }
            200..=299 => {
                let Some(response) = response else { return };
                self.on_leg_ok(ctx, call, leg, r, &response);
            }
            _ => self.on_leg_failed(ctx, call, code),
        }
    }

    fn on_leg_ok(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        leg: usize,
        r: usize,
        response: &rsip::Response,
    ) {
        let Some(s) = self.sessions.get_mut(&call) else {
            return;
        };
        let recipient = &mut s.recipients[r];
        // RFC 3261 §9.1: CANCEL only before a final response; a sibling that
        // answered 200 as well was ACKed by the B2BUA and now gets BYE.
        if s.ended
            || (recipient.cv_single_device && recipient.taken.is_some_and(|t| t != leg))
            || s.cancelled.contains(&leg)
        {
            self.b2bua.send_bye(
                ctx,
                call,
                Side::Outgoing(leg),
                Some(REASON_COMPLETED_ELSEWHERE),
            );
            return;
        }
        recipient.taken.get_or_insert(leg);
        let siblings: Vec<usize> = if recipient.cv_single_device {
            recipient
                .legs
                .iter()
                .copied()
                .filter(|l| *l != leg)
                .collect()
        } else {
            Vec::new()
        };
        let has_video = s.has_video;
        let Some(streamer) = self.streams.get_mut(call) else {
            return;
        };
        let dest = sdp_of(&response.headers, &response.body)
            .map(|sdp| viewer_dest(&sdp, has_video))
            .unwrap_or_default();
        if announces_playback(&response.headers) {
            s.receives_info.insert(Side::Outgoing(leg));
        }
        s.viewing.insert(leg);
        // seed 000 5.11.1 "upon receiving 200" step 2: RTP to both sides
        streamer.add_viewer(ctx.now, viewer_of(Side::Outgoing(leg)), dest);
        if !s.answered {
            // step 1: 200 to the originator, with our sendonly answer
            s.answered = true;
            let dest = s.originator_dest;
            streamer.add_viewer(ctx.now, viewer_of(Side::Incoming), dest);
            streamer.resume(ctx.now);
            let body = s.answer.to_bytes();
            let extra = vec![
                make_header("Allow", ALLOW),
                make_header("Recv-Info", isc_playback::INFO_PACKAGE),
                make_header("ISCConvergenceID", &s.convergence_id),
            ];
            self.b2bua
                .answer(ctx, call, 200, None, extra, Some(("application/sdp", body)));
        }
        // step 3 → 5.4.3.3: the recipient's other devices
        for other in siblings {
            self.cancel_leg(ctx, call, other);
        }
    }

    /// seed 000 5.4.3.3: CANCEL one pending branch with the RFC 3326 Reason
    /// and the seed's `cv.cancellation` body.
    ///
    /// RFC 3261 §9.1 gives CANCEL no body and a stateful proxy between us and
    /// the device would build its own CANCEL without it, so the body is only
    /// an extra that reaches the device because the server reaches it
    /// directly; what a device may rely on is the Reason. Nothing here
    /// depends on the body being read.
    fn cancel_leg(&mut self, ctx: &mut SipCtx<'_>, call: CallRef, leg: usize) {
        let Some(s) = self.sessions.get_mut(&call) else {
            return;
        };
        let Some(o) = self.b2bua.call(call).and_then(|c| c.outgoing.get(leg)) else {
            return;
        };
        if !o.is_pending() || !s.cancelled.insert(leg) {
            return;
        }
        let mut headers = rsip::Headers::default();
        // RFC 3261 §9.1: the INVITE's top Via (same branch), Request-URI,
        // Call-ID, To, From, Route, CSeq number.
        if let Some(via) = o.request.headers.get_all_raw("Via").into_iter().next() {
            headers.push(make_header(
                "Via",
                via.split(',').next().unwrap_or_default().trim(),
            ));
        }
        for name in ["Max-Forwards", "From", "To", "Call-ID", "Route"] {
            for v in o.request.headers.get_all_raw(name) {
                headers.push(make_header(name, &v));
            }
        }
        let seq = crate::proto::sip::build::cseq(&o.request.headers)
            .map(|(n, _)| n)
            .unwrap_or(1);
        headers.push(make_header("CSeq", &format!("{seq} CANCEL")));
        headers.push(make_header("Reason", REASON_COMPLETED_ELSEWHERE));
        // 5.4.3.3 items 2 and 4 (Contact, item 3, is not allowed in CANCEL
        // by RFC 3261 table 2, so it is left out).
        headers.push(make_header(
            "Accept-Contact",
            &FeatureSet::new()
                .with_icsi(&[service::ISC_CV_CM, service::ISC_CV_CANCELLATION])
                .to_string(),
        ));
        headers.push(make_header("P-Preferred-Service", service::ISC_CV_CM));
        let invite_id = crate::proto::sip::build::call_id(&o.request.headers).unwrap_or_default();
        let body = CvCancellation::new(invite_id, "cv-accepted-on-another-device").to_bytes();
        headers.push(make_header("Content-Type", cv_cancellation::CONTENT_TYPE));
        headers.push(make_header("Content-Length", &body.len().to_string()));
        let cancel = rsip::Request {
            method: rsip::Method::Cancel,
            uri: o.request.uri.clone(),
            version: rsip::Version::V2,
            headers,
            body,
        };
        match ctx
            .tsx
            .send_request(ctx.now, cancel, o.target.addr, o.target.transport)
        {
            Ok(k) => {
                self.own_requests.insert(k);
            }
            Err(e) => tracing::info!(error = %e, "CANCEL not sent"),
        }
    }

    fn on_leg_failed(&mut self, ctx: &mut SipCtx<'_>, call: CallRef, code: u16) {
        let Some(s) = self.sessions.get(&call) else {
            return;
        };
        if s.pending_or_viewing(&self.b2bua, call) {
            return;
        }
        if !s.answered && !s.ended {
            // every branch failed: the best error upstream (RFC 3261 §16.7.6)
            let worst = self
                .b2bua
                .call(call)
                .map(|c| {
                    c.outgoing
                        .iter()
                        .filter_map(|o| o.final_code)
                        .filter(|c| *c >= 300)
                        .min_by_key(|c| {
                            if (400..500).contains(c) && *c != 408 {
                                0
                            } else {
                                1
                            }
                        })
                        .unwrap_or(code)
                })
                .unwrap_or(code);
            self.b2bua.answer(ctx, call, worst, None, vec![], None);
            self.end(ctx, call);
        } else if s.answered && !s.ended {
            // nobody watches with the originator any more
            self.b2bua.send_bye(ctx, call, Side::Incoming, None);
            self.end(ctx, call);
        }
    }

    /// Ends a session: every viewer's stream stops (RTCP BYE), pending
    /// branches are cancelled, confirmed ones get BYE.
    fn end(&mut self, ctx: &mut SipCtx<'_>, call: CallRef) {
        let wall = self.wall_at(ctx.now);
        let Some(s) = self.sessions.get_mut(&call) else {
            return;
        };
        s.ended = true;
        self.ended.insert(call);
        if let Some(streamer) = self.streams.get_mut(call) {
            let viewers: Vec<ViewerId> = streamer.viewers().map(|(id, _)| id).collect();
            for id in viewers {
                streamer.remove_viewer(ctx.now, id, wall);
            }
        }
        let legs: Vec<(usize, bool, bool)> = self
            .b2bua
            .call(call)
            .map(|c| {
                c.outgoing
                    .iter()
                    .enumerate()
                    .map(|(i, o)| (i, o.is_pending(), o.is_up()))
                    .collect()
            })
            .unwrap_or_default();
        for (leg, pending, up) in legs {
            if pending {
                self.b2bua.cancel_leg(ctx, call, leg, None);
            } else if up {
                self.b2bua.send_bye(ctx, call, Side::Outgoing(leg), None);
            }
        }
    }

    // --- ACK, CANCEL, in-dialog requests -------------------------------------

    /// An ACK: true if it belongs to one of our dialogs.
    pub fn on_ack(&mut self, now: Instant, ack: &rsip::Request) -> bool {
        self.b2bua.on_ack(now, ack)
    }

    /// A CANCEL of an originator's INVITE (the core answered the CANCEL).
    pub fn on_cancel(&mut self, ctx: &mut SipCtx<'_>, invite: &TsxKey) -> bool {
        let Some(call) = self.b2bua.call_of_server(invite) else {
            return false;
        };
        let answered = self.sessions.get(&call).is_none_or(|s| s.answered);
        if !answered {
            self.b2bua
                .answer(ctx, call, 487, Some("Request Terminated"), vec![], None);
            self.end(ctx, call);
        }
        true
    }

    /// Is this (stray) response in one of our dialogs?
    pub fn knows_response_dialog(&self, response: &rsip::Response) -> bool {
        self.b2bua.knows_response_dialog(response)
    }

    /// A 2xx retransmission after the INVITE transaction ended: re-ACK it.
    pub fn on_stray_response(&mut self, ctx: &mut SipCtx<'_>, response: &rsip::Response) {
        self.b2bua.on_stray_response(ctx, response);
    }

    /// Does this in-dialog request belong to one of our dialogs?
    pub fn knows_dialog(&self, req: &rsip::Request) -> bool {
        self.b2bua.knows_dialog(req)
    }

    /// An in-dialog request of one of our dialogs (see [`Self::knows_dialog`]).
    pub fn on_in_dialog(&mut self, ctx: &mut SipCtx<'_>, key: TsxKey, req: rsip::Request) {
        let (call, side) = match self.b2bua.match_request(&req) {
            Some(Ok(m)) => m,
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
                self.on_bye(ctx, call, side);
            }
            rsip::Method::Info => self.on_info(ctx, key, &req, call, side),
            rsip::Method::Options => B2bua::respond(
                ctx,
                &key,
                &req,
                200,
                vec![make_header("Allow", ALLOW)],
                None,
            ),
            // A session refresh (RFC 4028 §9) or re-offer: the media stay
            // as negotiated, so the answer repeats our description.
            rsip::Method::Invite | rsip::Method::Update => {
                let mut extra = match self.b2bua.refresh_received(ctx.now, call, side, &req) {
                    Ok(h) => h,
                    Err((code, headers)) => {
                        B2bua::respond(ctx, &key, &req, code, headers, None);
                        return;
                    }
                };
                extra.push(make_header("Contact", &ctx.contact(Transport::Udp)));
                let with_body = !req.body.is_empty() || req.method == rsip::Method::Invite;
                let body = self.sessions.get(&call).map(|s| {
                    let sdp = match side {
                        Side::Incoming => &s.answer,
                        Side::Outgoing(_) => &s.offer,
                    };
                    sdp.to_bytes()
                });
                B2bua::respond(
                    ctx,
                    &key,
                    &req,
                    200,
                    extra,
                    body.filter(|_| with_body).map(|b| ("application/sdp", b)),
                );
            }
            _ => B2bua::respond(
                ctx,
                &key,
                &req,
                405,
                vec![make_header("Allow", ALLOW)],
                None,
            ),
        }
    }

    fn on_bye(&mut self, ctx: &mut SipCtx<'_>, call: CallRef, side: Side) {
        match side {
            Side::Incoming => {
                if let Some(s) = self.sessions.get_mut(&call) {
                    // the originator left: the session ends for everyone
                    s.ended = true;
                }
                self.end(ctx, call);
            }
            Side::Outgoing(leg) => {
                let wall = self.wall_at(ctx.now);
                let Some(s) = self.sessions.get_mut(&call) else {
                    return;
                };
                s.viewing.remove(&leg);
                if let Some(streamer) = self.streams.get_mut(call) {
                    streamer.remove_viewer(ctx.now, viewer_of(Side::Outgoing(leg)), wall);
                }
                if !s.ended && !s.pending_or_viewing(&self.b2bua, call) {
                    self.b2bua.send_bye(ctx, call, Side::Incoming, None);
                    self.end(ctx, call);
                }
            }
        }
    }

    /// RFC 6086 INFO: the `isc-playback` package moves the shared timeline.
    fn on_info(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        req: &rsip::Request,
        call: CallRef,
        side: Side,
    ) {
        let package = req.headers.get_raw("Info-Package").unwrap_or_default();
        let package = package.split(';').next().unwrap_or_default().trim();
        if !package.eq_ignore_ascii_case(isc_playback::INFO_PACKAGE) {
            // RFC 6086 §4.2.2.1: 469, with the packages we take
            B2bua::respond(
                ctx,
                &key,
                req,
                469,
                vec![make_header("Recv-Info", isc_playback::INFO_PACKAGE)],
                None,
            );
            return;
        }
        let control = match PlaybackControl::parse(&req.body) {
            Ok(c) => c,
            Err(e) => {
                let w = Warning::new(399, &self.config.domain, &e.to_string());
                B2bua::respond(
                    ctx,
                    &key,
                    req,
                    400,
                    vec![make_header("Warning", &w.to_string())],
                    None,
                );
                return;
            }
        };
        let by = match side {
            Side::Incoming => self.sessions.get(&call).map(|s| s.originator.clone()),
            Side::Outgoing(leg) => self.sessions.get(&call).and_then(|s| {
                s.leg_recipient
                    .get(&leg)
                    .map(|r| s.recipients[*r].aor.clone())
            }),
        };
        let (Some(s), Some(streamer)) = (self.sessions.get_mut(&call), self.streams.get_mut(call))
        else {
            B2bua::respond(ctx, &key, req, 481, vec![], None);
            return;
        };
        match control.action {
            PlaybackAction::Pause => streamer.pause(ctx.now),
            PlaybackAction::Resume => streamer.resume(ctx.now),
            PlaybackAction::Seek => {
                if let Some(p) = control.position() {
                    streamer.seek(ctx.now, p)
                }
            }
        }
        B2bua::respond(ctx, &key, req, 200, vec![], None);
        let notice = PlaybackControl {
            action: control.action,
            position_ms: Some(
                u64::try_from(streamer.position(ctx.now).as_millis()).unwrap_or(u64::MAX),
            ),
            by,
        };
        // every other viewer learns who did what
        let mut others: Vec<Side> = Vec::new();
        if side != Side::Incoming && s.answered {
            others.push(Side::Incoming);
        }
        others.extend(
            s.viewing
                .iter()
                .map(|l| Side::Outgoing(*l))
                .filter(|o| *o != side),
        );
        others.retain(|o| s.receives_info.contains(o));
        for other in others {
            self.send_info(ctx, call, other, &notice);
        }
    }

    fn send_info(&mut self, ctx: &mut SipCtx<'_>, call: CallRef, side: Side, c: &PlaybackControl) {
        let (local, tls_local) = (ctx.local, ctx.tls_local);
        let branch = format!("z9hG4bK{}", ctx.ids.token());
        let Some((dialog, to, transport)) = self.b2bua.dialog_mut(call, side) else {
            return;
        };
        let via = via_text(local_for(local, tls_local, transport), transport, &branch);
        let Ok(via) = rsip::typed::Via::try_from(rsip::headers::Via::from(via)) else {
            return;
        };
        let Ok(mut info) = dialog.create_request(rsip::Method::Info, via) else {
            return;
        };
        let body = c.to_bytes();
        info.headers.remove_named("Content-Length");
        info.headers
            .push(make_header("Info-Package", isc_playback::INFO_PACKAGE));
        info.headers
            .push(make_header("Content-Type", isc_playback::CONTENT_TYPE));
        info.headers
            .push(make_header("Content-Disposition", "Info-Package"));
        info.headers
            .push(make_header("Content-Length", &body.len().to_string()));
        info.body = body;
        match ctx.tsx.send_request(ctx.now, info, to, transport) {
            Ok(k) => {
                self.own_requests.insert(k);
            }
            Err(e) => tracing::info!(error = %e, "INFO not sent"),
        }
    }

    // --- timers and media -----------------------------------------------------

    /// The B2BUA's 2xx retransmissions.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.b2bua.poll_timeout()
    }

    pub fn handle_timeout(&mut self, ctx: &mut SipCtx<'_>) {
        for t in self.b2bua.handle_timeout(ctx) {
            match t {
                // RFC 3261 §13.3.1.4 (no ACK for our 2xx) / RFC 4028 §10 on
                // the originator's leg: the session ends
                B2buaTimeout::NoAck(call) | B2buaTimeout::SessionExpired(call, Side::Incoming) => {
                    self.b2bua.send_bye(ctx, call, Side::Incoming, None);
                    self.end(ctx, call);
                }
                // a device's leg expired (its BYE went out): as if it left
                B2buaTimeout::SessionExpired(call, side) => self.on_bye(ctx, call, side),
            }
        }
    }

    fn wall_at(&self, now: Instant) -> NtpTime {
        match self.wall_anchor {
            Some((at, wall)) => NtpTime::from_unix(
                (wall.to_unix() + now.saturating_duration_since(at))
                    .saturating_sub(at.saturating_duration_since(now)),
            ),
            None => NtpTime::default(),
        }
    }

    /// When the media must be served next (the soonest streamer's
    /// wake-up, kept ordered: no scan of the sessions).
    pub fn poll_media_timeout(&self) -> Option<Instant> {
        self.streams.poll_timeout()
    }

    /// Sends the media due at `now` (only the streamers due are served);
    /// `wall` is the wall clock at `now`.
    pub fn handle_media_timeout(&mut self, now: Instant, wall: NtpTime) {
        self.wall_anchor = Some((now, wall));
        self.streams.handle_timeout(now, wall);
        while self.streams.poll_event().is_some() {}
    }

    /// The next RTP/RTCP datagram (send it from the matching media socket):
    /// O(1) each, one session's in their order. Once none is left, ended
    /// sessions with no branch pending are removed.
    pub fn poll_rtp_transmit(&mut self) -> Option<RtpTransmit> {
        if let Some(t) = self.streams.poll_transmit() {
            return Some(t);
        }
        if !self.ended.is_empty() {
            let done: Vec<CallRef> = self
                .ended
                .iter()
                .copied()
                .filter(|call| {
                    !self
                        .b2bua
                        .call(*call)
                        .is_some_and(|c| c.outgoing.iter().any(|o| o.is_pending()))
                })
                .collect();
            for call in done {
                self.ended.remove(&call);
                self.sessions.remove(&call);
                self.streams.remove(call);
                self.b2bua.remove(call);
            }
            // their last RTCP BYEs, if any were still held
            return self.streams.poll_transmit();
        }
        None
    }

    /// The media position of the session the dialog of `req` belongs to.
    pub fn position_of(&self, call: CallRef, now: Instant) -> Option<Duration> {
        self.streams.get(call).map(|s| s.position(now))
    }

    /// The content of a session, for tests and the ladder.
    pub fn content_of(&self, call: CallRef) -> Option<Arc<crate::media::content::Content>> {
        self.streams
            .get(call)
            .and_then(|s| self.library.get(&s.content().id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> rsip::Request {
        match crate::proto::sip::message::parse_message(text.replace('\n', "\r\n").as_bytes())
            .unwrap()
        {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    const INVITE: &str = "INVITE sip:bob@isc.local SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\nFrom: <sip:alice@isc.local>;tag=1\nTo: <sip:bob@isc.local>\nCall-ID: c1\nCSeq: 1 INVITE\nMax-Forwards: 70\n";

    #[test]
    fn dispatch_and_service() {
        let r = req(&format!(
            "{INVITE}Accept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\"\nContent-Length: 0\n\n"
        ));
        assert!(handles(&r));
        assert_eq!(requested_service(&r), Some(IscService::OneToOne));
        let r = req(&format!(
            "{INVITE}Accept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.isc.cv-cm\"\nContent-Length: 0\n\n"
        ));
        assert!(handles(&r));
        assert_eq!(requested_service(&r), None);
        let r = req(&format!(
            "{INVITE}P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\nContent-Length: 0\n\n"
        ));
        assert!(!handles(&r), "a PPS alone is not enough");
        let r = req(&format!("{INVITE}Content-Length: 0\n\n"));
        assert!(!handles(&r));
    }

    #[test]
    fn user_agent_versions() {
        let r = req(&format!(
            "{INVITE}User-Agent: ISC-client/OMA1.0 isc/0.3.1\nContent-Length: 0\n\n"
        ));
        assert!(user_agent_supports(&r, "0.3"));
        assert!(user_agent_supports(&r, "OMA1.0"));
        assert!(!user_agent_supports(&r, "1.1"));
        let r = req(&format!("{INVITE}Content-Length: 0\n\n"));
        assert!(!user_agent_supports(&r, "1.0"));
    }

    #[test]
    fn warnings_carry_the_seed_texts() {
        assert_eq!(
            MfReject::NotAuthorised.warning("isc.local").to_string(),
            "127 isc.local \"Service not authorised\""
        );
        assert_eq!(
            MfReject::FunctionNotAllowed
                .warning("isc.local")
                .to_string(),
            "122 isc.local \"Function not allowed\""
        );
        assert_eq!(
            MfReject::VersionNotSupported
                .warning("isc.local")
                .to_string(),
            "132 isc.local \"Version not supported\""
        );
        assert_eq!(MfReject::MediaNotAllowed("x".into()).status().0, 488);
    }

    #[test]
    fn sdp_policy() {
        let policy = SdpPolicy::default();
        let ok = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=recvonly\r\nm=video 4002 RTP/AVP 26\r\na=recvonly\r\n";
        let sdp = check_sdp(&policy, Some(ok)).unwrap();
        let d = viewer_dest(&sdp, true);
        assert_eq!(d.audio.unwrap().rtp.port(), 4000);
        assert_eq!(d.video.unwrap().rtcp.port(), 4003);
        let codec = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";
        assert!(matches!(
            check_sdp(&policy, Some(codec)),
            Err(MfReject::CodecNotAllowed(_))
        ));
        let msrp = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 7394 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:msrp://127.0.0.1:7394/x;tcp\r\n";
        assert!(matches!(
            check_sdp(&policy, Some(msrp)),
            Err(MfReject::MediaNotAllowed(_))
        ));
        assert!(check_sdp(&policy, None).is_err());
    }
}
