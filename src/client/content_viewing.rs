//! Content viewing on the client (seed 000 C.15.1 / C.15.2, 5.4.3.x):
//! [`ContentViewing`] keeps the device's CV dialogs and the requests around
//! them. Sans-IO: it talks SIP through the UA's [`TransactionLayer`] and asks
//! the driver for a player with [`ViewingOut::OpenPlayer`]; the driver
//! answers with [`ContentViewing::player_ready`] (the ports for the SDP).
//!
//! * the content list: `OPTIONS sip:content@<domain>` with `Accept:
//!   application/vnd.isc.content-list+xml` ([`ViewingCommand::FetchContentList`]);
//! * `Watch`: the CV INVITE (Accept-Contact / Contact with the ISC 1-1 ICSI,
//!   P-Preferred-Service, a fresh ISCConvergenceID, multipart SDP recvonly +
//!   `application/ISC-content-request+xml`);
//! * an incoming CV INVITE: 180, [`ViewingEvent::Invited`], then accept (200
//!   with our player's ports) or decline (603);
//! * `cm.recommendation` MESSAGE (5.4.3.2): 200 and
//!   [`ViewingEvent::ChatRecommended`]; the UA may start the chat itself;
//! * CANCEL with `Reason: SIP;cause=200` or a `cv.cancellation` body
//!   (5.4.3.3): [`ViewingEvent::TakenElsewhere`], not a missed invitation;
//! * INFO `isc-playback` both ways; BYE ends the viewing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rsip::prelude::ToTypedHeader;
use rsip::{Method, Request, Response, SipMessage};

use super::outgoing::{OutRequest, uri_of};
use super::{Device, USER_AGENT};
use crate::proto::bodies::cm_recommendation::{self, CmRecommendation};
use crate::proto::bodies::cv_cancellation;
use crate::proto::bodies::isc::SessionType;
use crate::proto::bodies::isc_content_request::{self, IscContentRequest};
use crate::proto::bodies::multipart::{Multipart, Part};
use crate::proto::sdp::{ConnectionAddress, Direction, RtpMedia, Sdp, parse_sdp};
use crate::proto::sip::build::{call_id, response_with};
use crate::proto::sip::dialog::{Dialog, OkRetransmission, OkRetransmissionEvent};
use crate::proto::sip::digest::DigestClient;
use crate::proto::sip::headers::{
    FeatureSet, HeadersExt, IscConvergenceId, NameAddr, TypedHeader, ViaValue, make_header, service,
};
use crate::proto::sip::message::reason_phrase;
use crate::proto::sip::transaction::{LayerEvent, TransactionLayer, Transmit, Transport, TsxKey};
use crate::server::content_list::{self, ContentEntry, ContentList};
use crate::server::isc_playback::{self, PlaybackAction, PlaybackControl};

use super::ids::UaIds;
use crate::proto::ids::IdGen;

/// Names one viewing session of this device.
pub type ViewingId = u64;

/// Methods a CV dialog takes.
pub const CV_ALLOW: &str = "INVITE, ACK, CANCEL, BYE, INFO, MESSAGE, OPTIONS";

/// What the application asks about content viewing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewingCommand {
    /// OPTIONS to the content service; answered by [`ViewingEvent::ContentList`].
    FetchContentList,
    /// Watch `content` with `with` (a user URI or GRUU); `chat_on` names
    /// the sibling device (GRUU or device name) that will chat: it becomes
    /// CommunicationClientAddr with UsingMultipleClient=yes.
    Watch {
        content: String,
        with: String,
        chat_on: Option<String>,
    },
    Accept {
        viewing: ViewingId,
    },
    Decline {
        viewing: ViewingId,
    },
    Pause {
        viewing: ViewingId,
    },
    Resume {
        viewing: ViewingId,
    },
    Seek {
        viewing: ViewingId,
        position_ms: u64,
    },
    /// Stop watching (BYE, or CANCEL while calling).
    Bye {
        viewing: ViewingId,
    },
    /// Start the recommended chat on our own on a `cm.recommendation`.
    SetAutoChat(bool),
}

/// The player's figures, as the events carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewingStats {
    pub audio_packets: u64,
    pub video_packets: u64,
    pub audio_lost: i64,
    pub frames_decoded: u64,
    pub frames_presented: u64,
    pub audio_played_ms: u64,
}

/// Why a viewing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewingEnd {
    /// The peer (or the server) sent BYE.
    RemoteBye,
    /// We ended it.
    LocalBye,
    /// We declined the invitation.
    Declined,
    /// The inviter withdrew before we answered (a missed invitation).
    Cancelled,
    /// The INVITE failed.
    Failed { status: Option<u16>, reason: String },
}

/// What content viewing tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewingEvent {
    /// The server's content list.
    ContentList {
        entries: Vec<ContentEntry>,
    },
    ContentListFailed {
        reason: String,
    },
    /// Our CV INVITE is on its way.
    Calling {
        viewing: ViewingId,
        to: String,
        content: String,
        convergence_id: String,
    },
    /// Someone invites us to watch.
    Invited {
        viewing: ViewingId,
        from: String,
        content: Option<String>,
        convergence_id: Option<String>,
    },
    /// The viewing is up (2xx received and ACKed, or ours sent).
    Started {
        viewing: ViewingId,
        peer: String,
    },
    /// seed 000 5.4.3.3: another of our devices picked it up.
    TakenElsewhere {
        viewing: ViewingId,
        from: String,
    },
    Ended {
        viewing: ViewingId,
        reason: ViewingEnd,
    },
    /// seed 000 5.4.3.2: the server recommends this device chats.
    ChatRecommended {
        with: Vec<String>,
        convergence_id: String,
        content_viewing_client: Option<String>,
    },
    /// Someone paused/resumed/moved the shared timeline.
    PlaybackChanged {
        viewing: ViewingId,
        by: Option<String>,
        action: String,
        position_ms: Option<u64>,
    },
    /// The answer to our own playback INFO.
    PlaybackAnswered {
        viewing: ViewingId,
        status: u16,
    },
    /// The player's figures (every second while playing).
    Stats {
        viewing: ViewingId,
        stats: ViewingStats,
    },
    /// A video frame was presented (on the audio clock); the TUI draws
    /// `rgb`, headless mode prints only its size.
    Frame {
        viewing: ViewingId,
        width: u32,
        height: u32,
        timestamp: u32,
        rgb: std::sync::Arc<crate::proto::rtp::jpeg_codec::RgbFrame>,
    },
}

/// Work for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewingOut {
    /// Bind a player's sockets and call [`ContentViewing::player_ready`].
    OpenPlayer { viewing: ViewingId },
    /// Stop that player.
    ClosePlayer { viewing: ViewingId },
    /// The UA should start a chat (the recommendation, with auto-chat on).
    StartChat { to: String, convergence_id: String },
}

/// Who we are, for building requests.
#[derive(Debug, Clone)]
pub struct CvLocal {
    pub aor: String,
    pub domain: String,
    pub contact_uri: String,
    pub instance_id: String,
    pub sip_local: SocketAddr,
    pub transport: Transport,
    pub server: SocketAddr,
}

/// What the UA lends for one call.
pub struct CvCtx<'a> {
    pub ids: &'a mut dyn IdGen,
    pub digest: &'a mut DigestClient,
    pub layer: &'a mut TransactionLayer,
    pub gruu: Option<&'a str>,
    pub devices: &'a [Device],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the player's ports before sending the INVITE.
    Preparing,
    Calling,
    /// Incoming, 180 sent, waiting for the user.
    Ringing,
    /// Accepted, waiting for the player's ports before the 200.
    Accepting,
    Established,
    Terminated,
}

#[derive(Debug)]
struct Session {
    id: ViewingId,
    state: State,
    outgoing: bool,
    peer: String,
    content: Option<String>,
    convergence_id: Option<String>,
    chat_on: Option<String>,
    local_tag: String,
    call_id: String,
    /// Outgoing: the INVITE parts (re-sent with credentials) and as sent.
    out: Option<OutRequest>,
    invite: Option<Request>,
    invite_key: Option<TsxKey>,
    auth_tries: u8,
    dialog: Option<Dialog>,
    player_open: bool,
    ports: Option<(IpAddr, Option<u16>, Option<u16>)>,
    /// Our 2xx to the INVITE, re-sent until its ACK (RFC 3261 §13.3.1.4).
    ok_retx: Option<OkRetransmission>,
}

/// Why a client transaction of ours was started.
#[derive(Debug, Clone)]
enum Purpose {
    ContentList { out: Box<OutRequest>, tries: u8 },
    Invite(ViewingId),
    Info(ViewingId),
    Bye,
}

/// Every CV session of one device.
#[derive(Debug)]
pub struct ContentViewing {
    local: CvLocal,
    sessions: BTreeMap<ViewingId, Session>,
    keys: HashMap<TsxKey, Purpose>,
    next_id: ViewingId,
    auto_chat: bool,
    events: VecDeque<ViewingEvent>,
    out: VecDeque<ViewingOut>,
}

fn plain_contact_response(resp: &Response) -> Response {
    let mut r = resp.clone();
    if let Some(c) = r.headers.get_raw("Contact") {
        let uri = uri_of(&c);
        r.headers.remove_named("Contact");
        r.headers.push(make_header("Contact", &format!("<{uri}>")));
    }
    r
}

fn plain_contact_request(req: &Request) -> Request {
    let mut r = req.clone();
    if let Some(c) = r.headers.get_raw("Contact") {
        let uri = uri_of(&c);
        r.headers.remove_named("Contact");
        r.headers.push(make_header("Contact", &format!("<{uri}>")));
    }
    r
}

fn media_type(headers: &rsip::Headers) -> Option<String> {
    headers
        .get_raw("Content-Type")
        .and_then(|ct| ct.split(';').next().map(|t| t.trim().to_ascii_lowercase()))
}

/// Does this INVITE ask for content viewing? A multipart body with an ISC
/// content request, or the ISC CV ICSI in Accept-Contact.
pub fn is_cv_invite(req: &Request) -> bool {
    if req.method != Method::Invite {
        return false;
    }
    if content_request_of(req).is_some() {
        return true;
    }
    req.headers.get_raw("Accept-Contact").is_some_and(|ac| {
        let ac = ac.to_ascii_lowercase();
        ac.contains("oma.isc.1-1-cv-cm") || ac.contains("oma.isc.group-cv-cm")
    })
}

/// The ISC content request carried by a request (multipart part or whole body).
pub fn content_request_of(req: &Request) -> Option<IscContentRequest> {
    let ct = req.headers.get_raw("Content-Type")?;
    let mt = media_type(&req.headers)?;
    if mt == isc_content_request::CONTENT_TYPE.to_ascii_lowercase() {
        return IscContentRequest::parse(&req.body).ok();
    }
    let m = Multipart::parse_with_content_type(&ct, &req.body).ok()?;
    let p = m.part_of_type(isc_content_request::CONTENT_TYPE)?;
    IscContentRequest::parse(&p.body).ok()
}

fn sdp_of(req_headers: &rsip::Headers, body: &[u8]) -> Option<Vec<u8>> {
    let ct = req_headers.get_raw("Content-Type")?;
    let mt = media_type(req_headers)?;
    if mt == "application/sdp" {
        return Some(body.to_vec());
    }
    let m = Multipart::parse_with_content_type(&ct, body).ok()?;
    m.part_of_type("application/sdp").map(|p| p.body.clone())
}

/// Is this CANCEL the seed's "taken on another device"? RFC 3326 Reason
/// cause 200, or a `cv.cancellation` body (seed 000 5.4.3.3).
pub fn is_taken_elsewhere(cancel: &Request) -> bool {
    super::chat::is_completed_elsewhere(&cancel.headers)
        || media_type(&cancel.headers)
            .is_some_and(|t| t == cv_cancellation::CONTENT_TYPE.to_ascii_lowercase())
}

impl ContentViewing {
    pub fn new(local: CvLocal) -> Self {
        ContentViewing {
            local,
            sessions: BTreeMap::new(),
            keys: HashMap::new(),
            next_id: 0,
            auto_chat: true,
            events: VecDeque::new(),
            out: VecDeque::new(),
        }
    }

    pub fn local_mut(&mut self) -> &mut CvLocal {
        &mut self.local
    }

    /// Whether a `cm.recommendation` starts the chat on its own.
    pub fn auto_chat(&self) -> bool {
        self.auto_chat
    }

    pub fn poll_event(&mut self) -> Option<ViewingEvent> {
        self.events.pop_front()
    }

    pub fn poll_out(&mut self) -> Option<ViewingOut> {
        self.out.pop_front()
    }

    /// Live viewings: id, peer, established.
    pub fn viewings(&self) -> Vec<(ViewingId, String, bool)> {
        self.sessions
            .values()
            .filter(|s| s.state != State::Terminated)
            .map(|s| (s.id, s.peer.clone(), s.state == State::Established))
            .collect()
    }

    /// Reports the player's figures / frames (from the driver).
    pub fn player_event(&mut self, ev: ViewingEvent) {
        self.events.push_back(ev);
    }

    fn via(&self, ids: &mut dyn IdGen) -> ViaValue {
        ViaValue::new(
            self.local.transport.via_token(),
            &self.local.sip_local.ip().to_string(),
            Some(self.local.sip_local.port()),
            &ids.branch(),
        )
        .with_rport()
    }

    fn typed_via(&self, ids: &mut dyn IdGen) -> Option<rsip::typed::Via> {
        match make_header("Via", &self.via(ids).to_string()) {
            rsip::Header::Via(v) => v.typed().ok(),
            _ => None,
        }
    }

    /// Our Contact with the ISC ICSI feature tag (seed 000 5.4.3.1).
    fn contact(&self) -> String {
        format!(
            "<{}>;+sip.instance=\"<{}>\";{}",
            self.local.contact_uri,
            self.local.instance_id,
            FeatureSet::new()
                .with_icsi(&[service::ISC_1_1_CV_CM])
                .to_string()
                .trim_start_matches("*;")
        )
    }

    fn send_out(&mut self, ctx: &mut CvCtx<'_>, now: Instant, purpose: Purpose, out: &OutRequest) {
        let branch = ctx.ids.branch();
        let mut req = match out.build(self.local.sip_local, self.local.transport, &branch) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "CV request not built");
                return;
            }
        };
        ctx.digest.authorize(&mut req, &ctx.ids.cnonce());
        if let Purpose::Invite(v) = &purpose
            && let Some(s) = self.sessions.get_mut(v)
        {
            s.invite = Some(req.clone());
        }
        match ctx
            .layer
            .send_request(now, req, self.local.server, self.local.transport)
        {
            Ok(key) => {
                if let Purpose::Invite(v) = &purpose
                    && let Some(s) = self.sessions.get_mut(v)
                {
                    s.invite_key = Some(key.clone());
                }
                self.keys.insert(key, purpose);
            }
            Err(e) => tracing::debug!(error = %e, "CV request not sent"),
        }
    }

    fn send_in_dialog(&mut self, ctx: &mut CvCtx<'_>, now: Instant, mut req: Request, p: Purpose) {
        ctx.digest.authorize(&mut req, &ctx.ids.cnonce());
        match ctx
            .layer
            .send_request(now, req, self.local.server, self.local.transport)
        {
            Ok(key) => {
                self.keys.insert(key, p);
            }
            Err(e) => tracing::debug!(error = %e, "CV in-dialog request not sent"),
        }
    }

    // ---- commands ------------------------------------------------------

    pub fn command(&mut self, ctx: &mut CvCtx<'_>, now: Instant, cmd: ViewingCommand) {
        match cmd {
            ViewingCommand::FetchContentList => self.fetch_list(ctx, now),
            ViewingCommand::Watch {
                content,
                with,
                chat_on,
            } => {
                self.next_id += 1;
                let id = self.next_id;
                let chat_on = chat_on.map(|c| resolve_device(&c, ctx.devices));
                let s = Session {
                    id,
                    state: State::Preparing,
                    outgoing: true,
                    peer: with,
                    content: Some(content),
                    // seed 000 5.4.3.1: generated by the initiating device
                    convergence_id: Some(format!("cv-{}", ctx.ids.tag())),
                    chat_on,
                    local_tag: ctx.ids.tag(),
                    call_id: ctx.ids.call_id(),
                    out: None,
                    invite: None,
                    invite_key: None,
                    auth_tries: 0,
                    dialog: None,
                    player_open: true,
                    ports: None,
                    ok_retx: None,
                };
                self.sessions.insert(id, s);
                self.out.push_back(ViewingOut::OpenPlayer { viewing: id });
            }
            ViewingCommand::Accept { viewing } => {
                if let Some(s) = self.sessions.get_mut(&viewing)
                    && s.state == State::Ringing
                {
                    s.state = State::Accepting;
                    s.player_open = true;
                    self.out.push_back(ViewingOut::OpenPlayer { viewing });
                }
            }
            ViewingCommand::Decline { viewing } => {
                if let Some(s) = self.sessions.get(&viewing)
                    && s.state == State::Ringing
                {
                    self.answer_invite(ctx, now, viewing, 603, vec![], None);
                    self.end(viewing, ViewingEnd::Declined);
                }
            }
            ViewingCommand::Pause { viewing } => self.playback(
                ctx,
                now,
                viewing,
                PlaybackControl::new(PlaybackAction::Pause),
            ),
            ViewingCommand::Resume { viewing } => self.playback(
                ctx,
                now,
                viewing,
                PlaybackControl::new(PlaybackAction::Resume),
            ),
            ViewingCommand::Seek {
                viewing,
                position_ms,
            } => self.playback(
                ctx,
                now,
                viewing,
                PlaybackControl::seek(std::time::Duration::from_millis(position_ms)),
            ),
            ViewingCommand::Bye { viewing } => self.hang_up(ctx, now, viewing),
            ViewingCommand::SetAutoChat(on) => self.auto_chat = on,
        }
    }

    fn fetch_list(&mut self, ctx: &mut CvCtx<'_>, now: Instant) {
        let uri = format!(
            "sip:{}@{}",
            content_list::CONTENT_LIST_USER,
            self.local.domain
        );
        let out = OutRequest {
            method: Method::Options,
            uri: uri.clone(),
            from: NameAddr::new(self.local.aor.clone()),
            from_tag: ctx.ids.tag(),
            to: NameAddr::new(uri),
            call_id: ctx.ids.call_id(),
            cseq: 1,
            contact: Some(format!("<{}>", self.local.contact_uri)),
            headers: Vec::new(),
            body: None,
        }
        .header("Accept", content_list::CONTENT_TYPE)
        .header("User-Agent", USER_AGENT);
        self.send_out(
            ctx,
            now,
            Purpose::ContentList {
                out: Box::new(out.clone()),
                tries: 0,
            },
            &out,
        );
    }

    /// The driver bound the player: `audio`/`video` are its RTP ports.
    pub fn player_ready(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        viewing: ViewingId,
        ip: IpAddr,
        audio: Option<u16>,
        video: Option<u16>,
    ) {
        let Some(s) = self.sessions.get_mut(&viewing) else {
            return;
        };
        s.ports = Some((ip, audio, video));
        match s.state {
            State::Preparing => self.send_invite(ctx, now, viewing),
            State::Accepting => {
                let sdp = self.local_sdp(viewing);
                let extra = vec![
                    make_header("Contact", &self.contact()),
                    make_header("Recv-Info", isc_playback::INFO_PACKAGE),
                    make_header("Allow", CV_ALLOW),
                    make_header("User-Agent", USER_AGENT),
                ];
                self.answer_invite(ctx, now, viewing, 200, extra, Some(sdp));
            }
            _ => {}
        }
    }

    /// The driver could not bind a player.
    pub fn player_failed(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        viewing: ViewingId,
        error: &str,
    ) {
        let Some(s) = self.sessions.get(&viewing) else {
            return;
        };
        if s.state == State::Accepting {
            self.answer_invite(ctx, now, viewing, 500, vec![], None);
        }
        self.end(
            viewing,
            ViewingEnd::Failed {
                status: None,
                reason: format!("no player: {error}"),
            },
        );
    }

    /// recvonly PCMU audio + JPEG video at the player's ports.
    fn local_sdp(&self, viewing: ViewingId) -> Vec<u8> {
        let (ip, a, v) = self
            .sessions
            .get(&viewing)
            .and_then(|s| s.ports)
            .unwrap_or((self.local.sip_local.ip(), None, None));
        let user = self
            .local
            .aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .filter(|u| !u.is_empty())
            .unwrap_or("-")
            .to_owned();
        let conn = ConnectionAddress::Ip(ip);
        let mut sdp = Sdp::new(&user, viewing + 1, conn.clone());
        sdp = sdp.with_media(RtpMedia::audio_pcmu(
            a.unwrap_or(0),
            conn.clone(),
            Direction::RecvOnly,
        ));
        sdp = sdp.with_media(RtpMedia::video_jpeg(
            v.unwrap_or(0),
            conn,
            Direction::RecvOnly,
        ));
        sdp.to_bytes()
    }

    fn send_invite(&mut self, ctx: &mut CvCtx<'_>, now: Instant, viewing: ViewingId) {
        let sdp = self.local_sdp(viewing);
        let contact = self.contact();
        let Some(s) = self.sessions.get_mut(&viewing) else {
            return;
        };
        let content = s.content.clone().unwrap_or_default();
        let mut request = IscContentRequest::new(content.clone());
        request.session_type = SessionType::CvCm;
        // seed 000 5.4.3.1: the communication device of our own AOR
        request.using_multiple_client = s.chat_on.is_some();
        request.communication_client_addr = s.chat_on.clone();
        request.content_viewing_client_addr = ctx.gruu.map(str::to_owned);
        request.target_users = vec![s.peer.clone()];
        let body = Multipart::new(vec![
            Part::new("application/sdp", sdp),
            Part::new(isc_content_request::CONTENT_TYPE, request.to_bytes()),
        ]);
        let convergence_id = s.convergence_id.clone().unwrap_or_default();
        let out = OutRequest {
            method: Method::Invite,
            uri: s.peer.clone(),
            from: NameAddr::new(self.local.aor.clone()),
            from_tag: s.local_tag.clone(),
            to: NameAddr::new(s.peer.clone()),
            call_id: s.call_id.clone(),
            cseq: 1,
            contact: Some(contact),
            headers: Vec::new(),
            body: Some((body.content_type(), body.to_bytes())),
        }
        .header(
            "Accept-Contact",
            FeatureSet::new()
                .with_icsi(&[service::ISC_1_1_CV_CM])
                .to_string(),
        )
        .header("P-Preferred-Service", service::ISC_1_1_CV_CM)
        .header(IscConvergenceId::NAME, &convergence_id)
        .header("Recv-Info", isc_playback::INFO_PACKAGE)
        .header("Allow", CV_ALLOW)
        .header("User-Agent", USER_AGENT);
        s.state = State::Calling;
        s.out = Some(out.clone());
        let to = s.peer.clone();
        self.events.push_back(ViewingEvent::Calling {
            viewing,
            to,
            content,
            convergence_id,
        });
        self.send_out(ctx, now, Purpose::Invite(viewing), &out);
    }

    /// Answers the incoming INVITE of `viewing`.
    fn answer_invite(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        viewing: ViewingId,
        code: u16,
        extra: Vec<rsip::Header>,
        sdp: Option<Vec<u8>>,
    ) {
        let Some(s) = self.sessions.get_mut(&viewing) else {
            return;
        };
        let (Some(invite), Some(key)) = (s.invite.clone(), s.invite_key.clone()) else {
            return;
        };
        let mut resp = response_with(&invite, code, Some(&s.local_tag), None, extra);
        if let Some(b) = sdp {
            resp.headers.remove_named("Content-Length");
            resp.headers
                .push(make_header("Content-Type", "application/sdp"));
            resp.headers
                .push(make_header("Content-Length", &b.len().to_string()));
            resp.body = b;
        }
        if (200..300).contains(&code) {
            match Dialog::new_uas(
                &plain_contact_request(&invite),
                &plain_contact_response(&resp),
                1,
            ) {
                Ok(d) => s.dialog = Some(d),
                Err(e) => tracing::debug!(error = %e, "CV dialog not made"),
            }
            s.state = State::Established;
            // RFC 3261 §13.3.1.4: the TU re-sends its 2xx until the ACK
            s.ok_retx = Some(OkRetransmission::new(
                now,
                resp.clone(),
                self.local.server,
                self.local.transport,
            ));
            let peer = s.peer.clone();
            self.events
                .push_back(ViewingEvent::Started { viewing, peer });
        }
        if let Err(e) = ctx.layer.send_response(now, &key, resp) {
            tracing::debug!(error = %e, code, "CV response not sent");
        }
    }

    fn playback(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        viewing: ViewingId,
        control: PlaybackControl,
    ) {
        let Some(via) = self.typed_via(ctx.ids) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&viewing) else {
            return;
        };
        if s.state != State::Established {
            return;
        }
        let Some(mut req) = s
            .dialog
            .as_mut()
            .and_then(|d| d.create_request(Method::Info, via).ok())
        else {
            return;
        };
        // RFC 6086 §7.2
        let body = control.to_bytes();
        req.headers.remove_named("Content-Length");
        req.headers
            .push(make_header("Info-Package", isc_playback::INFO_PACKAGE));
        req.headers
            .push(make_header("Content-Type", isc_playback::CONTENT_TYPE));
        req.headers
            .push(make_header("Content-Length", &body.len().to_string()));
        req.body = body;
        self.send_in_dialog(ctx, now, req, Purpose::Info(viewing));
    }

    fn hang_up(&mut self, ctx: &mut CvCtx<'_>, now: Instant, viewing: ViewingId) {
        let Some(s) = self.sessions.get(&viewing) else {
            return;
        };
        match s.state {
            State::Calling => {
                if let Some(k) = s.invite_key.clone() {
                    match ctx.layer.cancel(now, &k) {
                        Ok(key) => {
                            self.keys.insert(key, Purpose::Bye);
                        }
                        Err(e) => tracing::debug!(error = %e, "no CANCEL"),
                    }
                }
                self.end(viewing, ViewingEnd::LocalBye);
            }
            State::Preparing => self.end(viewing, ViewingEnd::LocalBye),
            State::Ringing | State::Accepting => {
                self.answer_invite(ctx, now, viewing, 603, vec![], None);
                self.end(viewing, ViewingEnd::Declined);
            }
            State::Established => {
                let Some(via) = self.typed_via(ctx.ids) else {
                    return;
                };
                let req = self
                    .sessions
                    .get_mut(&viewing)
                    .and_then(|s| s.dialog.as_mut())
                    .and_then(|d| d.create_request(Method::Bye, via).ok());
                if let Some(mut bye) = req {
                    bye.headers.remove_named("Content-Length");
                    bye.headers.push(make_header("User-Agent", USER_AGENT));
                    bye.headers.push(make_header("Content-Length", "0"));
                    self.send_in_dialog(ctx, now, bye, Purpose::Bye);
                }
                self.end(viewing, ViewingEnd::LocalBye);
            }
            State::Terminated => {}
        }
    }

    fn end(&mut self, viewing: ViewingId, reason: ViewingEnd) {
        let Some(s) = self.sessions.get_mut(&viewing) else {
            return;
        };
        if s.state == State::Terminated {
            return;
        }
        s.state = State::Terminated;
        s.ok_retx = None;
        if let Some(d) = s.dialog.as_mut() {
            d.terminate();
        }
        if s.player_open {
            s.player_open = false;
            self.out.push_back(ViewingOut::ClosePlayer { viewing });
        }
        self.events
            .push_back(ViewingEvent::Ended { viewing, reason });
    }

    // ---- SIP in --------------------------------------------------------

    /// Offers a transaction-layer event; gives it back if it is not ours.
    pub fn handle_layer_event(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        ev: LayerEvent,
    ) -> Option<LayerEvent> {
        match ev {
            LayerEvent::NewRequest {
                key,
                request,
                source,
                transport,
            } => {
                if self.handle_request(ctx, now, &key, &request) {
                    None
                } else {
                    Some(LayerEvent::NewRequest {
                        key,
                        request,
                        source,
                        transport,
                    })
                }
            }
            LayerEvent::Response { key, response } => match self.keys.get(&key).cloned() {
                Some(p) => {
                    if response.status_code.code() >= 200 {
                        self.keys.remove(&key);
                        self.on_response(ctx, now, p, response);
                    }
                    None
                }
                None => Some(LayerEvent::Response { key, response }),
            },
            LayerEvent::Cancel {
                key,
                request,
                source,
                transport,
                invite,
                invite_pending,
            } => {
                let viewing = invite.as_ref().and_then(|k| {
                    self.sessions
                        .values()
                        .find(|s| !s.outgoing && s.invite_key.as_ref() == Some(k))
                        .map(|s| s.id)
                });
                match viewing {
                    Some(viewing) => {
                        // RFC 3261 §9.2: 200 to the CANCEL, 487 to the INVITE
                        let ok = response_with(&request, 200, None, None, vec![]);
                        let _ = ctx.layer.send_response(now, &key, ok);
                        let pending = matches!(
                            self.sessions.get(&viewing).map(|s| s.state),
                            Some(State::Ringing | State::Accepting)
                        );
                        if pending {
                            self.answer_invite(ctx, now, viewing, 487, vec![], None);
                            if is_taken_elsewhere(&request) {
                                // seed 000 5.4.3.3: not a missed invitation
                                let from = self
                                    .sessions
                                    .get(&viewing)
                                    .map(|s| s.peer.clone())
                                    .unwrap_or_default();
                                self.events
                                    .push_back(ViewingEvent::TakenElsewhere { viewing, from });
                                if let Some(s) = self.sessions.get_mut(&viewing) {
                                    // the event above says it all
                                    s.state = State::Terminated;
                                    if s.player_open {
                                        s.player_open = false;
                                        self.out.push_back(ViewingOut::ClosePlayer { viewing });
                                    }
                                }
                            } else {
                                self.end(viewing, ViewingEnd::Cancelled);
                            }
                        }
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
                // a 2xx retransmission: ACK it again (RFC 3261 §13.2.2.4)
                let ack = self.sessions.values().find_map(|s| {
                    let d = s.dialog.as_ref()?;
                    (s.outgoing && call_id(&response.headers).as_deref() == Some(&s.call_id))
                        .then(|| d.ack_for_retransmission(&response))
                        .flatten()
                });
                match ack {
                    Some(ack) => {
                        ctx.layer.send_stateless(Transmit {
                            to: self.local.server,
                            transport: self.local.transport,
                            message: SipMessage::Request(ack),
                        });
                        None
                    }
                    None => Some(LayerEvent::StrayResponse { response, source }),
                }
            }
            LayerEvent::Timeout { key } | LayerEvent::TransportError { key }
                if self.keys.contains_key(&key) =>
            {
                if let Some(p) = self.keys.remove(&key) {
                    match p {
                        Purpose::Invite(v) => self.end(
                            v,
                            ViewingEnd::Failed {
                                status: None,
                                reason: "no response".into(),
                            },
                        ),
                        Purpose::ContentList { .. } => {
                            self.events.push_back(ViewingEvent::ContentListFailed {
                                reason: "no response".into(),
                            })
                        }
                        Purpose::Info(_) | Purpose::Bye => {}
                    }
                }
                None
            }
            LayerEvent::Ack {
                request,
                source,
                transport,
            } => {
                if let Some(v) = self.by_dialog(&request) {
                    if let Some(r) = self.sessions.get_mut(&v).and_then(|s| s.ok_retx.as_mut())
                        && r.matches_ack(&request)
                    {
                        r.handle_ack(now);
                    }
                    None
                } else {
                    Some(LayerEvent::Ack {
                        request,
                        source,
                        transport,
                    })
                }
            }
            other => Some(other),
        }
    }

    /// The soonest 2xx retransmission.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| s.ok_retx.as_ref()?.poll_timeout())
            .min()
    }

    /// Re-sends 2xx responses that wait for their ACK; one never ACKed
    /// ends the viewing with a BYE (RFC 3261 §13.3.1.4).
    pub fn handle_timeout(&mut self, ctx: &mut CvCtx<'_>, now: Instant) {
        let mut no_ack = Vec::new();
        for s in self.sessions.values_mut() {
            let Some(r) = s.ok_retx.as_mut() else {
                continue;
            };
            r.handle_timeout(now);
            while let Some(t) = r.poll_transmit() {
                ctx.layer.send_stateless(t);
            }
            while let Some(e) = r.poll_event() {
                if e == OkRetransmissionEvent::NoAck {
                    no_ack.push(s.id);
                }
            }
            if !r.is_active() {
                s.ok_retx = None;
            }
        }
        for v in no_ack {
            self.hang_up(ctx, now, v);
        }
    }

    fn by_dialog(&self, req: &Request) -> Option<ViewingId> {
        let cid = call_id(&req.headers)?;
        let to_tag = crate::proto::sip::build::to_tag(&req.headers)?;
        self.sessions
            .values()
            .find(|s| s.call_id == cid && s.local_tag == to_tag)
            .map(|s| s.id)
    }

    /// True when the request was ours to handle.
    fn handle_request(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        key: &TsxKey,
        req: &Request,
    ) -> bool {
        if crate::proto::sip::build::to_tag(&req.headers).is_some() {
            let Some(viewing) = self.by_dialog(req) else {
                return false;
            };
            self.in_dialog(ctx, now, key, req, viewing);
            return true;
        }
        if req.method == Method::Message
            && media_type(&req.headers)
                .is_some_and(|t| t == cm_recommendation::CONTENT_TYPE.to_ascii_lowercase())
        {
            self.on_recommendation(ctx, now, key, req);
            return true;
        }
        if !is_cv_invite(req) {
            return false;
        }
        self.next_id += 1;
        let id = self.next_id;
        let from = req
            .headers
            .get_raw("P-Asserted-Identity")
            .or_else(|| req.headers.get_raw("From"))
            .map(|v| uri_of(&v))
            .unwrap_or_default();
        let cr = content_request_of(req);
        let convergence_id = req
            .headers
            .typed::<IscConvergenceId>()
            .ok()
            .flatten()
            .map(|c| c.0);
        let s = Session {
            id,
            state: State::Ringing,
            outgoing: false,
            peer: from.clone(),
            content: cr.as_ref().map(|c| c.content_ref.clone()),
            convergence_id: convergence_id.clone(),
            chat_on: None,
            local_tag: ctx.ids.tag(),
            call_id: call_id(&req.headers).unwrap_or_default(),
            out: None,
            invite: Some(req.clone()),
            invite_key: Some(key.clone()),
            auth_tries: 0,
            dialog: None,
            player_open: false,
            ports: None,
            ok_retx: None,
        };
        self.sessions.insert(id, s);
        if sdp_of(&req.headers, &req.body)
            .and_then(|b| parse_sdp(&b).ok())
            .is_none_or(|sdp| sdp.rtp().next().is_none())
        {
            self.answer_invite(ctx, now, id, 488, vec![], None);
            self.end(
                id,
                ViewingEnd::Failed {
                    status: Some(488),
                    reason: "no RTP media offered".into(),
                },
            );
            return true;
        }
        let contact = self.contact();
        self.answer_invite(
            ctx,
            now,
            id,
            180,
            vec![make_header("Contact", &contact)],
            None,
        );
        self.events.push_back(ViewingEvent::Invited {
            viewing: id,
            from,
            content: cr.map(|c| c.content_ref),
            convergence_id,
        });
        true
    }

    fn on_recommendation(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        key: &TsxKey,
        req: &Request,
    ) {
        match CmRecommendation::parse(&req.body) {
            Ok(rec) => {
                let ok = response_with(req, 200, Some(&ctx.ids.tag()), None, vec![]);
                let _ = ctx.layer.send_response(now, key, ok);
                let with = rec.target_users.clone();
                self.events.push_back(ViewingEvent::ChatRecommended {
                    with: with.clone(),
                    convergence_id: rec.isc_convergence_id.clone(),
                    content_viewing_client: rec.content_viewing_client_addr.clone(),
                });
                if self.auto_chat
                    && let Some(to) = with.first()
                {
                    self.out.push_back(ViewingOut::StartChat {
                        to: to.clone(),
                        convergence_id: rec.isc_convergence_id,
                    });
                }
            }
            Err(e) => {
                let w = crate::proto::sip::headers::Warning::new(
                    399,
                    &self.local.domain,
                    &format!("bad cm.recommendation: {e}"),
                );
                let resp = response_with(
                    req,
                    400,
                    Some(&ctx.ids.tag()),
                    None,
                    vec![make_header("Warning", &w.to_string())],
                );
                let _ = ctx.layer.send_response(now, key, resp);
            }
        }
    }

    fn in_dialog(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        key: &TsxKey,
        req: &Request,
        viewing: ViewingId,
    ) {
        if let Some(d) = self
            .sessions
            .get_mut(&viewing)
            .and_then(|s| s.dialog.as_mut())
        {
            let _ = d.handle_request(req);
        }
        match req.method {
            Method::Bye => {
                let ok = response_with(req, 200, None, None, vec![]);
                let _ = ctx.layer.send_response(now, key, ok);
                self.end(viewing, ViewingEnd::RemoteBye);
            }
            Method::Info => {
                let package = req.headers.get_raw("Info-Package").unwrap_or_default();
                if !package
                    .trim()
                    .eq_ignore_ascii_case(isc_playback::INFO_PACKAGE)
                {
                    // RFC 6086 §4.2.2.1
                    let r = response_with(
                        req,
                        469,
                        None,
                        None,
                        vec![make_header("Recv-Info", isc_playback::INFO_PACKAGE)],
                    );
                    let _ = ctx.layer.send_response(now, key, r);
                    return;
                }
                match PlaybackControl::parse(&req.body) {
                    Ok(c) => {
                        let ok = response_with(req, 200, None, None, vec![]);
                        let _ = ctx.layer.send_response(now, key, ok);
                        self.events.push_back(ViewingEvent::PlaybackChanged {
                            viewing,
                            by: c.by.clone(),
                            action: c.action.as_str().to_owned(),
                            position_ms: c.position_ms,
                        });
                    }
                    Err(e) => {
                        let r = response_with(
                            req,
                            400,
                            None,
                            None,
                            vec![make_header("Warning", &format!("399 isc \"{e}\""))],
                        );
                        let _ = ctx.layer.send_response(now, key, r);
                    }
                }
            }
            Method::Ack => {}
            _ => {
                let r = response_with(req, 405, None, None, vec![make_header("Allow", CV_ALLOW)]);
                let _ = ctx.layer.send_response(now, key, r);
            }
        }
    }

    fn on_response(&mut self, ctx: &mut CvCtx<'_>, now: Instant, p: Purpose, resp: Response) {
        let code = resp.status_code.code();
        match p {
            Purpose::ContentList { out, tries } => {
                if (code == 401 || code == 407)
                    && tries < 2
                    && ctx.digest.handle_challenge(&resp).is_ok()
                {
                    let mut out = out;
                    out.cseq += 1;
                    self.send_out(
                        ctx,
                        now,
                        Purpose::ContentList {
                            out: out.clone(),
                            tries: tries + 1,
                        },
                        &out,
                    );
                    return;
                }
                if (200..300).contains(&code) {
                    match ContentList::parse(&resp.body) {
                        Ok(l) => self
                            .events
                            .push_back(ViewingEvent::ContentList { entries: l.entries }),
                        Err(e) => self.events.push_back(ViewingEvent::ContentListFailed {
                            reason: format!("unreadable list: {e}"),
                        }),
                    }
                } else {
                    self.events.push_back(ViewingEvent::ContentListFailed {
                        reason: format!("{code} {}", reason_phrase(&resp.status_code)),
                    });
                }
            }
            Purpose::Invite(viewing) => self.on_invite_response(ctx, now, viewing, resp),
            Purpose::Info(viewing) => self.events.push_back(ViewingEvent::PlaybackAnswered {
                viewing,
                status: code,
            }),
            Purpose::Bye => {}
        }
    }

    fn on_invite_response(
        &mut self,
        ctx: &mut CvCtx<'_>,
        now: Instant,
        viewing: ViewingId,
        resp: Response,
    ) {
        let code = resp.status_code.code();
        let Some(s) = self.sessions.get_mut(&viewing) else {
            return;
        };
        if s.state != State::Calling {
            return;
        }
        if (code == 401 || code == 407)
            && s.auth_tries < 2
            && ctx.digest.handle_challenge(&resp).is_ok()
        {
            // RFC 3261 §22.2: same Call-ID, CSeq one higher, credentials
            s.auth_tries += 1;
            if let Some(mut out) = s.out.clone() {
                out.cseq += 1;
                s.out = Some(out.clone());
                self.send_out(ctx, now, Purpose::Invite(viewing), &out);
            }
            return;
        }
        if (200..300).contains(&code) {
            let Some(invite) = s.invite.clone() else {
                return;
            };
            let Some(via) = self.typed_via(ctx.ids) else {
                return;
            };
            let Some(s) = self.sessions.get_mut(&viewing) else {
                return;
            };
            match Dialog::new_uac(&invite, &plain_contact_response(&resp)) {
                Ok(mut d) => {
                    if let Ok(ack) = d.create_ack_for_invite(&invite, via) {
                        ctx.layer.send_stateless(Transmit {
                            to: self.local.server,
                            transport: self.local.transport,
                            message: SipMessage::Request(ack),
                        });
                    }
                    s.dialog = Some(d);
                    s.state = State::Established;
                    let peer = s.peer.clone();
                    self.events
                        .push_back(ViewingEvent::Started { viewing, peer });
                }
                Err(e) => {
                    let reason = format!("bad 2xx: {e}");
                    self.end(
                        viewing,
                        ViewingEnd::Failed {
                            status: Some(code),
                            reason,
                        },
                    );
                }
            }
            return;
        }
        let reason = reason_phrase(&resp.status_code);
        let reason = match resp.headers.get_raw("Warning") {
            Some(w) => format!("{reason} ({w})"),
            None => reason,
        };
        self.end(
            viewing,
            ViewingEnd::Failed {
                status: Some(code),
                reason,
            },
        );
    }
}

/// A device name (`phone`) becomes that sibling's GRUU; anything else is
/// taken as the address itself.
fn resolve_device(name: &str, devices: &[Device]) -> String {
    devices
        .iter()
        .find(|d| d.name.as_deref() == Some(name) && !d.is_self)
        .and_then(|d| d.gruu.clone())
        .unwrap_or_else(|| name.to_owned())
}

impl From<&crate::media::player::PlayerStats> for ViewingStats {
    fn from(s: &crate::media::player::PlayerStats) -> Self {
        ViewingStats {
            audio_packets: s.audio.packets_received,
            video_packets: s.video.packets_received,
            audio_lost: s.audio.packets_lost,
            frames_decoded: s.frames_decoded,
            frames_presented: s.frames_presented,
            audio_played_ms: (s.audio_played_s * 1000.0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_resolve_to_sibling_gruus() {
        let d = Device {
            instance: None,
            gruu: Some("sip:alice@isc.local;gr=urn:uuid:a2".into()),
            name: Some("phone".into()),
            contact: "sip:alice@127.0.0.1:5".into(),
            state: "registered".into(),
            is_self: false,
        };
        assert_eq!(
            resolve_device("phone", std::slice::from_ref(&d)),
            "sip:alice@isc.local;gr=urn:uuid:a2"
        );
        assert_eq!(resolve_device("sip:x@y", &[d]), "sip:x@y");
    }
}
