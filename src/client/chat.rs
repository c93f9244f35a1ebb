//! [`ChatSession`]: one CPM 1-1 chat (OMA CPM session, seed 001 / seed 004
//! 7.1.1.x client side), sans-IO. SIP goes through the user agent's
//! transaction layer as [`SipOut`] items; MSRP bytes go in and out by
//! connection handle as [`MsrpOut`] items; what the user sees comes out as
//! [`ChatEvent`]s. Session timers per RFC 4028
//! ([`crate::proto::sip::session_timer`]).
//!
//! Outgoing: INVITE with the CPM feature tag, an MSRP offer (`a=setup:actpass`,
//! RFC 6135), Session-Expires refresher=uac; 401/407 answered with the UA's
//! Digest credentials, 422 retried with the larger Min-SE; on 2xx ACK and
//! connect (when active, sending the binding empty SEND) or wait. Incoming:
//! 180, then [`ChatSession::accept`] (200 with the answer) or
//! [`ChatSession::decline`] (603). Messages are `message/cpim` wrapping
//! `text/plain`; isComposing (RFC 3994) goes as its own MSRP SEND.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Header, Method, Request, Response};

use super::USER_AGENT;
use super::composing::{ComposingAction, ComposingConfig, ComposingReceiver, ComposingSender};
use super::ids::UaIds;
use super::large_message::{
    DRAIN_GRACE, LARGE_CHUNK_SIZE, LargeIn, LargeLeg, LargeMessage, LargeOut, LargeSettings,
    SessionKind, session_kind,
};
use super::outgoing::uri_of;
use crate::proto::bodies::cpim::{self, CpimAddress, CpimMessage};
use crate::proto::bodies::is_composing::{self, IsComposing};
use crate::proto::ids::IdGen;
use crate::proto::msrp::{
    MsrpEvent, MsrpFrame, MsrpInput, MsrpPath, MsrpSession, MsrpUri, SequentialIds, SessionConfig,
};
use crate::proto::sdp::{ConnectionAddress, MediaLine, Sdp, parse_sdp};
use crate::proto::sdp::{MsrpAnswerParams, MsrpMedia, Setup, TcpActiveSide, tcp_active_side};
use crate::proto::sip::build::{RequestBuilder, call_id, response_with, to_tag};
use crate::proto::sip::dialog::{Dialog, OkRetransmission, OkRetransmissionEvent};
use crate::proto::sip::digest::DigestClient;
use crate::proto::sip::headers::{
    FeatureSet, HeadersExt, IscConvergenceId, NameAddr, Reason, TypedHeader, ViaValue, Warning,
    make_header, service,
};
use crate::proto::sip::message::{parse_uri, reason_phrase};
use crate::proto::sip::session_timer::{
    SessionTimer, SessionTimerAction, SessionTimerConfig, supports_timer,
};
use crate::proto::sip::transaction::{Transmit, Transport, TsxKey};

/// Names one chat for the life of the user agent.
pub type ChatId = u64;
/// One MSRP TCP connection, as the driver numbers them.
pub type MsrpConn = u64;

/// Methods we accept inside a chat dialog (Allow).
pub const CHAT_ALLOW: &str = "INVITE, ACK, CANCEL, BYE, UPDATE, MESSAGE, OPTIONS, NOTIFY";
/// How long an MSRP connection loss waits for the BYE that explains it.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// `Reason: SIP;cause=200` means "completed elsewhere" (RFC 3326, seed 001 8.3.2.1.1 4.a.i).
pub const COMPLETED_ELSEWHERE_CAUSE: u16 = 200;

/// What a chat knows about its own device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLocal {
    /// `sip:alice@isc.local`.
    pub aor: String,
    pub display_name: Option<String>,
    /// Our contact URI (`sip:alice@127.0.0.1:5070;transport=udp`).
    pub contact_uri: String,
    /// `urn:uuid:...`, put as `+sip.instance` on Contact.
    pub instance_id: Option<String>,
    /// SIP address and transport (Via).
    pub sip_local: SocketAddr,
    pub transport: Transport,
    /// Where our MSRP listener is (a=path, c=).
    pub msrp_local: SocketAddr,
    pub timer: SessionTimerConfig,
    pub composing: ComposingConfig,
    /// Chunk size of outgoing MSRP messages.
    pub msrp_chunk_size: usize,
    /// MSRP over TLS (RFC 4975 §14.1): our offers are `TCP/TLS/MSRP` with
    /// an `msrps:` path and `a=setup:active` (we connect, as TLS client,
    /// and never accept TLS: the port in our path is nominal).
    pub msrp_tls: bool,
}

impl ChatLocal {
    /// Contact with the CPM service tag (seed 004 7.1.1: the feature tag in
    /// Contact). `+sip.instance` is left out: its quoted `<urn:...>` makes
    /// rsip's typed Contact (and so peers' dialogs built on it) fail; the
    /// registration carries it.
    pub fn contact(&self) -> String {
        format!(
            "<{}>;{}={}",
            self.contact_uri,
            service::ICSI_REF,
            crate::proto::sip::headers::encode_service_ref(&[service::CPM_SESSION])
        )
    }
}

/// Why a chat ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// A BYE (ours or theirs), a decline we sent, a CANCEL.
    Normal,
    /// `Reason: SIP;cause=200` (e.g. "Call completed elsewhere"): the chat
    /// continues on another device of ours (seed 001 8.3.2.1.1 step 4.a).
    CompletedElsewhere,
    /// A failure: final status (None: timeout / transport / MSRP), reason and Warning.
    Error {
        status: Option<u16>,
        reason: String,
        warning: Option<String>,
    },
}

/// What a chat tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// We started a chat (our INVITE is on its way).
    Calling { chat: ChatId, to: String },
    /// Someone invites us (accept or decline it).
    Invited {
        chat: ChatId,
        from: String,
        convergence_id: Option<String>,
    },
    /// The peer is being alerted (180).
    Ringing { chat: ChatId },
    /// The session is up (2xx sent and ACKed, or 2xx received).
    Started { chat: ChatId, peer: String },
    /// A chat message.
    Message {
        chat: ChatId,
        from: String,
        text: String,
        /// CPIM DateTime, as written.
        at: Option<String>,
        message_id: String,
    },
    /// The peer started or stopped composing.
    Composing {
        chat: ChatId,
        from: String,
        active: bool,
    },
    /// Our message was queued with this Message-ID.
    Sent {
        chat: ChatId,
        message_id: String,
        text: String,
    },
    /// Our message got its 200s.
    Delivered { chat: ChatId, message_id: String },
    /// Our message failed (MSRP error response, timeout or failure REPORT).
    SendFailed {
        chat: ChatId,
        message_id: String,
        code: u16,
    },
    /// The chat is over.
    Ended { chat: ChatId, reason: EndReason },
    /// A group session is up with this session identity; `continues` is
    /// the 1-1 chat it replaced (one conversation for the user).
    GroupStarted {
        chat: ChatId,
        identity: String,
        continues: Option<ChatId>,
    },
    /// The conference's participants changed (RFC 4575 NOTIFY).
    Roster {
        chat: ChatId,
        identity: String,
        entries: Vec<super::group::RosterEntry>,
    },
    /// A message in a group sent to us alone (CPIM To = us).
    PrivateMessage {
        chat: ChatId,
        from: String,
        text: String,
        at: Option<String>,
        message_id: String,
    },
    /// A group procedure could not run (no stored identity, too many users).
    GroupError {
        chat: Option<ChatId>,
        reason: String,
    },
    /// A Large Message comes in (seed 003 9.2.2: accepted at once).
    LargeIncoming {
        chat: ChatId,
        from: String,
        content_type: Option<String>,
        size: u64,
    },
    /// Bytes of a Large Message acknowledged (`outgoing`) or received so far.
    LargeProgress {
        chat: ChatId,
        outgoing: bool,
        bytes: u64,
        total: u64,
    },
    /// Our Large Message got its last 200 or success REPORT (seed 003
    /// 9.4.2); the BYE follows.
    LargeSent {
        chat: ChatId,
        message_id: String,
        size: u64,
    },
    /// A whole Large Message that is not rendered as text (an attachment):
    /// the runner saves it and reports [`ChatEvent::LargeSaved`].
    LargeReceived {
        chat: ChatId,
        from: String,
        content_type: String,
        disposition: super::large_message::Disposition,
        filename: Option<String>,
        description: Option<String>,
        body: Vec<u8>,
    },
    /// A received attachment was written to `path` (never over a file).
    LargeSaved {
        chat: ChatId,
        from: String,
        path: std::path::PathBuf,
        size: u64,
        description: Option<String>,
    },
    /// A Large Message could not be read, sent or saved.
    LargeFailed {
        chat: Option<ChatId>,
        reason: String,
    },
}

/// SIP the chat wants sent, through the user agent's transaction layer.
#[derive(Debug, Clone, PartialEq)]
pub enum SipOut {
    /// Start a client transaction (to the outbound proxy); report its key
    /// back with [`ChatSession::track`] so responses come here.
    Request(Request),
    /// Answer through server transaction `key`.
    Response { key: TsxKey, response: Response },
    /// An ACK for a 2xx: sent outside any transaction, to the outbound proxy.
    Ack(Request),
    /// A message with its own destination (2xx retransmissions).
    Raw(Transmit),
}

/// MSRP work for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpOut {
    /// Open a connection to `peer`, then call [`ChatSession::msrp_connected`].
    Connect {
        chat: ChatId,
        peer: SocketAddr,
        /// The peer's URI is `msrps:`: connect with TLS (RFC 4975 §14.1).
        tls: bool,
    },
    Send {
        conn: MsrpConn,
        bytes: Vec<u8>,
    },
    Close {
        conn: MsrpConn,
    },
}

/// What a chat borrows from its user agent for one call.
pub struct ChatCtx<'a> {
    pub ids: &'a mut dyn IdGen,
    /// The UA's proxy Digest client (RFC 3261 §22.3: credentials are kept
    /// per realm and reused).
    pub digest: &'a mut DigestClient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Our INVITE is out.
    Calling,
    /// An INVITE came in; the user decides.
    Ringing,
    /// We sent 200, waiting for the ACK.
    Accepted,
    Established,
    Terminated,
}

/// One 1-1 chat session.
pub struct ChatSession {
    id: ChatId,
    local: ChatLocal,
    outgoing: bool,
    state: State,
    /// The remote user's URI (To of ours, From of theirs).
    peer: String,
    convergence_id: Option<String>,
    call_id: String,
    local_tag: String,
    /// Outgoing: the INVITE as last sent. Incoming: the INVITE received.
    invite: Option<Request>,
    /// Incoming: the INVITE's server transaction and where it came from.
    invite_key: Option<TsxKey>,
    invite_source: Option<(SocketAddr, Transport)>,
    /// Where the last in-dialog request came from (2xx retransmissions).
    last_source: Option<(SocketAddr, Transport)>,
    auth_tries: u8,
    timer_retries: u8,
    dialog: Option<Dialog>,
    timer: SessionTimer,
    ok_retx: Option<OkRetransmission>,
    /// Our m=message line (offer or answer).
    local_media: MsrpMedia,
    remote_media: Option<MsrpMedia>,
    sdp_session_id: u64,
    sdp_version: u64,
    msrp_session_id: String,
    msrp: Option<MsrpSession>,
    conn: Option<MsrpConn>,
    /// We open the MSRP connection (RFC 6135).
    active: bool,
    connecting: bool,
    peer_allows_update: bool,
    /// Our re-INVITE / UPDATE under way, kept for 401/407/422 retries.
    refresh: Option<Request>,
    sender: ComposingSender,
    receiver: ComposingReceiver,
    /// Deadline after the MSRP connection was lost.
    close_grace: Option<Instant>,
    /// We sent a BYE.
    bye_sent: bool,
    /// Our MSRP connection, kept open until our BYE is answered (a peer
    /// that sees the connection drop first may forget the dialog the BYE
    /// names), or until the deadline.
    pending_close: Option<(MsrpConn, Instant)>,
    /// Message-IDs of binding SENDs and isComposing: not reported.
    internal: HashSet<String>,
    sip_out: VecDeque<SipOut>,
    msrp_out: VecDeque<MsrpOut>,
    events: VecDeque<ChatEvent>,
    /// A group session (seed 004 7.1.1.3–7.1.1.11): its Request-URI, list
    /// and, once known, the session identity.
    group: Option<super::group::GroupLeg>,
    /// CPIM To of the content being read (private messages).
    cpim_to: Option<String>,
    /// A Large Message session (seed 003 9.x).
    large: Option<LargeLeg>,
}

impl std::fmt::Debug for ChatSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSession")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("state", &self.state)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

pub(crate) fn via(local: SocketAddr, transport: Transport, branch: &str) -> ViaValue {
    ViaValue::new(
        transport.via_token(),
        &local.ip().to_string(),
        Some(local.port()),
        branch,
    )
    .with_rport()
}

fn typed_via(local: SocketAddr, transport: Transport, branch: &str) -> Option<rsip::typed::Via> {
    match make_header("Via", &via(local, transport, branch).to_string()) {
        Header::Via(v) => v.typed().ok(),
        _ => None,
    }
}

/// Replaces Content-Length, appends `extra`, then the body.
fn finish_request(req: &mut Request, extra: Vec<Header>, body: Option<(&str, Vec<u8>)>) {
    req.headers.remove_named("Content-Length");
    req.headers.extend(extra);
    match body {
        Some((ct, b)) => {
            req.headers.push(make_header("Content-Type", ct));
            req.headers
                .push(make_header("Content-Length", &b.len().to_string()));
            req.body = b;
        }
        None => req.headers.push(make_header("Content-Length", "0")),
    }
}

/// A copy whose Contact is the bare `<uri>`: rsip's typed Contact refuses
/// quoted feature-tag values such as `+sip.instance="<urn:...>"`.
fn plain_contact<M: Clone + HasHeaders>(m: &M) -> M {
    let mut m = m.clone();
    if let Some(c) = m.headers_mut().get_raw("Contact") {
        let uri = uri_of(&c);
        m.headers_mut().remove_named("Contact");
        m.headers_mut()
            .push(make_header("Contact", &format!("<{uri}>")));
    }
    m
}

trait HasHeaders {
    fn headers_mut(&mut self) -> &mut rsip::Headers;
}

impl HasHeaders for Request {
    fn headers_mut(&mut self) -> &mut rsip::Headers {
        &mut self.headers
    }
}

impl HasHeaders for Response {
    fn headers_mut(&mut self) -> &mut rsip::Headers {
        &mut self.headers
    }
}

fn with_body(mut resp: Response, content_type: &str, body: Vec<u8>) -> Response {
    resp.headers.remove_named("Content-Length");
    resp.headers.push(make_header("Content-Type", content_type));
    resp.headers
        .push(make_header("Content-Length", &body.len().to_string()));
    resp.body = body;
    resp
}

fn warning_text(headers: &rsip::Headers) -> Option<String> {
    match headers.typed::<Warning>() {
        Ok(Some(w)) => w.0.first().map(|v| format!("{} {}", v.code, v.text)),
        _ => headers.get_raw("Warning"),
    }
}

fn is_sdp(headers: &rsip::Headers) -> bool {
    headers.get_raw("Content-Type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    })
}

/// The first MSRP line of an SDP body.
fn msrp_line(body: &[u8]) -> Option<MsrpMedia> {
    let sdp = parse_sdp(body).ok()?;
    sdp.msrp().find(|m| m.port != 0).cloned()
}

/// Host and port of an MSRP URI as a socket address (IP literals only).
fn msrp_addr(uri: &MsrpUri) -> Option<SocketAddr> {
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, uri.port?))
}

fn alnum(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// Does a Reason header say `SIP;cause=200`?
pub fn is_completed_elsewhere(headers: &rsip::Headers) -> bool {
    headers
        .all::<Reason>()
        .unwrap_or_default()
        .iter()
        .flat_map(|r| r.0.iter())
        .any(|v| {
            v.protocol.eq_ignore_ascii_case("SIP") && v.cause == Some(COMPLETED_ELSEWHERE_CAUSE)
        })
}

/// Our chat line for `msrp_session_id`: `TCP/MSRP` + `msrp:` path, or over
/// TLS `TCP/TLS/MSRP` + `msrps:` path with `a=setup:active` (RFC 4975 §8.1,
/// §14.1; we are always the TLS client).
fn chat_media(local: &ChatLocal, msrp_session_id: &str, tls: bool) -> MsrpMedia {
    let path = MsrpUri::new(
        local.msrp_local.ip().to_string(),
        local.msrp_local.port(),
        msrp_session_id,
    )
    .with_secure(tls);
    let mut media = MsrpMedia::chat_offer(
        local.msrp_local.port(),
        ConnectionAddress::Ip(local.msrp_local.ip()),
        vec![path.to_string()],
    )
    .with_tls(tls);
    if tls {
        media.setup = Some(Setup::Active);
    }
    media
}

/// Can we answer `offer`'s transport? Its proto and path agree (RFC 4975
/// §8.1), and over TLS we are set up for it and may connect (we accept no
/// TLS connection, so an `a=setup:active` msrps offer cannot be met).
fn offer_transport_usable(offer: &MsrpMedia, tls_configured: bool) -> Result<(), String> {
    offer.check_transport().map_err(|e| e.to_string())?;
    if offer.is_tls() {
        if !tls_configured {
            return Err("MSRP over TLS (msrps:) is not set up on this device".into());
        }
        if offer.setup == Some(Setup::Active) {
            return Err(
                "over TCP/TLS/MSRP this device connects: a=setup:active cannot be answered".into(),
            );
        }
    }
    Ok(())
}

/// Does this INVITE ask for a chat (an MSRP media line)?
pub fn is_chat_invite(req: &Request) -> bool {
    req.method == Method::Invite && is_sdp(&req.headers) && msrp_line(&req.body).is_some()
}

impl ChatSession {
    fn base(
        id: ChatId,
        local: ChatLocal,
        ctx: &mut ChatCtx<'_>,
        outgoing: bool,
        peer: String,
    ) -> Self {
        let msrp_session_id = format!("s{}", alnum(&ctx.ids.tag()));
        let local_media = chat_media(&local, &msrp_session_id, local.msrp_tls);
        let sdp_session_id = u64::from(
            u32::from_str_radix(
                &alnum(&ctx.ids.tag())
                    .chars()
                    .rev()
                    .take(7)
                    .collect::<String>(),
                36,
            )
            .unwrap_or(1),
        );
        ChatSession {
            id,
            timer: SessionTimer::new(local.timer),
            sender: ComposingSender::new(local.composing),
            receiver: ComposingReceiver::new(),
            local,
            outgoing,
            state: State::Calling,
            peer,
            convergence_id: None,
            call_id: String::new(),
            local_tag: ctx.ids.tag(),
            invite: None,
            invite_key: None,
            invite_source: None,
            last_source: None,
            auth_tries: 0,
            timer_retries: 0,
            dialog: None,
            ok_retx: None,
            local_media,
            remote_media: None,
            sdp_session_id,
            sdp_version: sdp_session_id,
            msrp_session_id,
            msrp: None,
            conn: None,
            active: false,
            connecting: false,
            peer_allows_update: false,
            refresh: None,
            close_grace: None,
            bye_sent: false,
            pending_close: None,
            internal: HashSet::new(),
            sip_out: VecDeque::new(),
            msrp_out: VecDeque::new(),
            events: VecDeque::new(),
            group: None,
            cpim_to: None,
            large: None,
        }
    }

    /// Starts a Large Message session (seed 003 9.1.1.2): to one user, or
    /// to a group (`group`: the factory with its list, or a group URI).
    /// The offer is `a=sendonly` with `a=file-size`, `a=file-disposition`
    /// and the message's type as `a=accept-types`.
    pub fn outgoing_large(
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        id: ChatId,
        local: ChatLocal,
        to: &str,
        group: Option<super::group::GroupLeg>,
        message: LargeMessage,
    ) -> Self {
        let peer = group
            .as_ref()
            .map_or_else(|| to.to_owned(), |g| g.request_uri.clone());
        let mut s = Self::base(id, local, ctx, true, peer);
        s.call_id = ctx.ids.call_id();
        s.group = group;
        // seed 003 9.1.1.2 steps 5.a and 6; RFC 5547 §6 file-disposition
        s.local_media.direction = crate::proto::sdp::Direction::SendOnly;
        s.local_media.accept_types = vec![message.media_type().to_owned()];
        s.local_media.accept_wrapped_types = Vec::new();
        s.local_media.file_size = Some(message.body.len() as u64);
        s.local_media.file_disposition = Some(message.disposition.as_str().to_owned());
        s.large = Some(LargeLeg::Out(LargeOut::new(message)));
        match s.build_invite(ctx, 1) {
            Some(invite) => s.send_invite(ctx, invite),
            None => s.end(
                now,
                EndReason::Error {
                    status: None,
                    reason: format!("cannot address {}", s.peer),
                    warning: None,
                },
            ),
        }
        s
    }

    /// Whether this is a Large Message session.
    pub fn is_large(&self) -> bool {
        self.large.is_some()
    }

    /// Starts a group session: INVITE to the conference factory (with its
    /// recipient list), a pre-defined group or a session identity.
    pub fn outgoing_group(
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        id: ChatId,
        local: ChatLocal,
        leg: super::group::GroupLeg,
    ) -> Self {
        let mut s = Self::base(id, local, ctx, true, leg.request_uri.clone());
        s.call_id = ctx.ids.call_id();
        s.group = Some(leg);
        match s.build_invite(ctx, 1) {
            Some(invite) => s.send_invite(ctx, invite),
            None => s.end(
                now,
                EndReason::Error {
                    status: None,
                    reason: format!("cannot address {}", s.peer),
                    warning: None,
                },
            ),
        }
        s
    }

    /// The group part, if this is a group session.
    pub fn group(&self) -> Option<&super::group::GroupLeg> {
        self.group.as_ref()
    }

    /// The conference's session identity (Contact with `isfocus`), once known.
    pub fn session_identity(&self) -> Option<&str> {
        self.group.as_ref()?.identity.as_deref()
    }

    /// The remote tag of our dialog, once it exists.
    pub fn remote_tag(&self) -> Option<&str> {
        self.dialog.as_ref().map(|d| d.id().remote_tag.as_str())
    }

    /// The Replaces header of an INVITE we were sent (RFC 3891), if any.
    pub fn replaces(&self) -> Option<crate::proto::bodies::resource_lists::Replaces> {
        let v = self.invite.as_ref()?.headers.get_raw("Replaces")?;
        crate::proto::bodies::resource_lists::Replaces::parse_header_value(&v)
    }

    /// REFERs `users` to the conference (seed 004 7.1.1.7): one with
    /// `Refer-Sub: false`, several as RFC 5368 multiple-refer.
    pub fn refer(&mut self, ctx: &mut ChatCtx<'_>, users: &[String]) -> bool {
        if self.state != State::Established || users.is_empty() {
            return false;
        }
        let Some(mut req) = self.dialog_request(ctx, Method::Refer) else {
            return false;
        };
        let (extra, body) = super::group::refer_parts(users, &ctx.ids.tag(), &self.local.aor);
        finish_request(
            &mut req,
            extra,
            body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        );
        self.send_in_dialog(ctx, req);
        true
    }

    /// Sends a text to one participant only (seed 004 7.1.1.9: CPIM To =
    /// that participant).
    pub fn send_private(&mut self, now: Instant, to: &str, text: &str, at: &str) -> Option<String> {
        self.send_text_to(now, Some(to), text, at)
    }

    /// Starts a chat with `to` (a user URI or a GRUU): builds and queues the
    /// INVITE (seed 004 7.1.1.1; SPEC "Client procedures"). `convergence_id`
    /// ties it to a content-viewing session (ISCConvergenceID, seed 000).
    pub fn outgoing(
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        id: ChatId,
        local: ChatLocal,
        to: &str,
        convergence_id: Option<String>,
    ) -> Self {
        let mut s = Self::base(id, local, ctx, true, to.to_owned());
        s.call_id = ctx.ids.call_id();
        s.convergence_id = convergence_id;
        match s.build_invite(ctx, 1) {
            Some(invite) => s.send_invite(ctx, invite),
            None => s.end(
                now,
                EndReason::Error {
                    status: None,
                    reason: format!("cannot address {to}"),
                    warning: None,
                },
            ),
        }
        s
    }

    /// An incoming chat INVITE (server transaction `key`): checks it, answers
    /// 180 (or an error, ending at once) and reports [`ChatEvent::Invited`].
    pub fn incoming(
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        id: ChatId,
        local: ChatLocal,
        key: TsxKey,
        invite: Request,
        source: (SocketAddr, Transport),
    ) -> Self {
        Self::incoming_with(
            ctx,
            now,
            id,
            local,
            key,
            invite,
            source,
            &LargeSettings::default(),
        )
    }

    /// [`Self::incoming`] with the receiver's Large Message settings: a
    /// Large Message offer is checked (488) and accepted at once, a file
    /// transfer refused (seed 003 9.2.2).
    #[allow(clippy::too_many_arguments)]
    pub fn incoming_with(
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        id: ChatId,
        local: ChatLocal,
        key: TsxKey,
        invite: Request,
        source: (SocketAddr, Transport),
        large: &LargeSettings,
    ) -> Self {
        let from = invite
            .headers
            .get_raw("From")
            .map(|v| uri_of(&v))
            .unwrap_or_default();
        let mut s = Self::base(id, local, ctx, false, from.clone());
        s.state = State::Ringing;
        s.call_id = call_id(&invite.headers).unwrap_or_default();
        s.convergence_id = invite
            .headers
            .typed::<IscConvergenceId>()
            .ok()
            .flatten()
            .map(|c| c.0);
        s.invite_key = Some(key.clone());
        s.invite_source = Some(source);
        if let Some(id) = invite
            .headers
            .get_raw("Contact")
            .and_then(|c| super::group::focus_identity(&c))
        {
            // invited into a conference (seed 004 7.1.1.5)
            s.group = Some(super::group::GroupLeg {
                request_uri: id.clone(),
                list: None,
                identity: Some(id),
            });
        }
        s.peer_allows_update = allows_update(&invite.headers);
        s.remote_media = msrp_line(&invite.body);
        s.invite = Some(invite.clone());
        // RFC 4028 §9
        if let Err(e) = s.timer.check_request(&invite) {
            s.respond(&key, &invite, e.status_code(), e.response_headers());
            s.end(
                now,
                EndReason::Error {
                    status: Some(e.status_code()),
                    reason: e.to_string(),
                    warning: None,
                },
            );
            return s;
        }
        let Some(offer) = s.remote_media.clone() else {
            s.respond(&key, &invite, 488, vec![]);
            s.end(
                now,
                EndReason::Error {
                    status: Some(488),
                    reason: "no MSRP media offered".into(),
                    warning: None,
                },
            );
            return s;
        };
        // RFC 4975 §8.1, §14.1: we answer in the offer's transport, when we can.
        if let Err(why) = offer_transport_usable(&offer, s.local.msrp_tls) {
            let w = Warning::new(399, "isc", &why);
            s.respond(
                &key,
                &invite,
                488,
                vec![make_header("Warning", &w.to_string())],
            );
            s.end(
                now,
                EndReason::Error {
                    status: Some(488),
                    reason: why,
                    warning: None,
                },
            );
            return s;
        }
        s.local_media = chat_media(&s.local, &s.msrp_session_id, offer.is_tls());
        // seed 003 9.2.2 step 2: Large Message, file transfer or chat
        let kind = session_kind(&offer);
        if kind != SessionKind::Chat {
            // step 1: accept-types (and size) we can take, else 488
            if let Err(e) = large.check(&offer) {
                let w = Warning::new(399, "isc", &e.to_string());
                s.respond(
                    &key,
                    &invite,
                    488,
                    vec![make_header("Warning", &w.to_string())],
                );
                s.end(
                    now,
                    EndReason::Error {
                        status: Some(488),
                        reason: e.to_string(),
                        warning: None,
                    },
                );
                return s;
            }
            s.large = Some(LargeLeg::In(LargeIn::new(&offer)));
            s.events.push_back(ChatEvent::LargeIncoming {
                chat: id,
                from,
                content_type: offer.accept_types.first().cloned(),
                size: offer.file_size.unwrap_or(0),
            });
            // step 3: accept at once
            s.accept(ctx, now);
            return s;
        }
        s.respond(
            &key,
            &invite,
            180,
            vec![make_header("Contact", &s.local.contact())],
        );
        s.events.push_back(ChatEvent::Invited {
            chat: id,
            from,
            convergence_id: s.convergence_id.clone(),
        });
        s
    }

    pub fn id(&self) -> ChatId {
        self.id
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// The session-id of our MSRP URI: incoming connections name it in To-Path.
    pub fn msrp_session_id(&self) -> &str {
        &self.msrp_session_id
    }

    pub fn conn(&self) -> Option<MsrpConn> {
        self.conn
    }

    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// Whether this INVITE server transaction is ours (for CANCEL).
    pub fn is_invite_key(&self, key: &TsxKey) -> bool {
        self.invite_key.as_ref() == Some(key)
    }

    /// The session timer, for inspection.
    pub fn session_timer(&self) -> &SessionTimer {
        &self.timer
    }

    // ---- SIP out -------------------------------------------------------

    fn our_name_addr(&self) -> NameAddr {
        let n = NameAddr::new(self.local.aor.clone());
        match &self.local.display_name {
            Some(d) => n.with_display_name(d.clone()),
            None => n,
        }
    }

    fn build_invite(&mut self, ctx: &mut ChatCtx<'_>, cseq: u32) -> Option<Request> {
        let uri = parse_uri(&self.peer).ok()?;
        let mut b = RequestBuilder::new(
            Method::Invite,
            uri,
            via(
                self.local.sip_local,
                self.local.transport,
                &ctx.ids.branch(),
            ),
            self.our_name_addr(),
            &self.local_tag,
            NameAddr::new(self.peer.clone()),
            &self.call_id,
            cseq,
        )
        .contact(self.local.contact());
        b = match &self.group {
            // seed 004 7.1.1.3: the IM feature tag for the group
            Some(_) => b.header(make_header(
                "Accept-Contact",
                &format!("*;{}", super::group::IM_FEATURE_TAG),
            )),
            None => b
                .header(make_header(
                    "Accept-Contact",
                    &FeatureSet::new()
                        .with_icsi(&[service::CPM_SESSION])
                        .to_string(),
                ))
                .header(make_header("P-Preferred-Service", service::CPM_SESSION)),
        };
        b = b
            .header(make_header("User-Agent", USER_AGENT))
            .header(make_header("Allow", CHAT_ALLOW))
            .header(make_header("Supported", "timer"));
        for h in self.timer.request_headers() {
            b = b.header(h);
        }
        if let Some(c) = &self.convergence_id {
            b = b.header(make_header(IscConvergenceId::NAME, c));
        }
        let sdp = self.local_sdp();
        if let Some(list) = self.group.as_ref().and_then(|g| g.list.clone()) {
            // RFC 5366 §4: SDP + the recipient list
            let (ct, body) = super::group::factory_body(sdp, list);
            b = b.header(make_header("Require", "recipient-list-invite"));
            return Some(b.body(&ct, body).build());
        }
        Some(b.body("application/sdp", sdp).build())
    }

    fn local_sdp(&self) -> Vec<u8> {
        let ip = self.local.msrp_local.ip();
        let user = self
            .local
            .aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("-")
            .to_owned();
        let mut sdp = Sdp::new(
            if user.is_empty() { "-" } else { &user },
            self.sdp_session_id,
            ConnectionAddress::Ip(ip),
        )
        .with_media(MediaLine::Msrp(self.local_media.clone()));
        sdp.origin.session_version = self.sdp_version;
        sdp.to_bytes()
    }

    fn send_invite(&mut self, ctx: &mut ChatCtx<'_>, mut invite: Request) {
        ctx.digest.authorize(&mut invite, &ctx.ids.cnonce());
        self.timer.request_sent();
        self.invite = Some(invite.clone());
        self.sip_out.push_back(SipOut::Request(invite));
    }

    fn respond(&mut self, key: &TsxKey, req: &Request, code: u16, extra: Vec<Header>) {
        let tag = (code != 100).then_some(self.local_tag.as_str());
        let resp = response_with(req, code, tag, None, extra);
        self.sip_out.push_back(SipOut::Response {
            key: key.clone(),
            response: resp,
        });
    }

    /// An in-dialog request (BYE, re-INVITE, UPDATE) with our Via.
    fn dialog_request(&mut self, ctx: &mut ChatCtx<'_>, method: Method) -> Option<Request> {
        let v = typed_via(
            self.local.sip_local,
            self.local.transport,
            &ctx.ids.branch(),
        )?;
        let req = self.dialog.as_mut()?.create_request(method, v).ok()?;
        Some(req)
    }

    fn send_in_dialog(&mut self, ctx: &mut ChatCtx<'_>, mut req: Request) {
        ctx.digest.authorize(&mut req, &ctx.ids.cnonce());
        self.sip_out.push_back(SipOut::Request(req));
    }

    fn send_bye(&mut self, ctx: &mut ChatCtx<'_>) {
        if let Some(mut bye) = self.dialog_request(ctx, Method::Bye) {
            finish_request(&mut bye, vec![make_header("User-Agent", USER_AGENT)], None);
            self.bye_sent = true;
            self.send_in_dialog(ctx, bye);
        }
    }

    /// A session refresh (RFC 4028 §7.4): UPDATE when the peer allows it,
    /// else a re-INVITE with our unchanged SDP (a new version).
    fn send_refresh(&mut self, ctx: &mut ChatCtx<'_>) {
        let method = if self.peer_allows_update {
            Method::Update
        } else {
            Method::Invite
        };
        let Some(mut req) = self.dialog_request(ctx, method) else {
            return;
        };
        let mut extra = vec![
            make_header("Supported", "timer"),
            make_header("User-Agent", USER_AGENT),
            make_header("Allow", CHAT_ALLOW),
        ];
        extra.extend(self.timer.request_headers());
        let body = if method == Method::Invite {
            self.sdp_version += 1;
            Some(("application/sdp", self.local_sdp()))
        } else {
            None
        };
        finish_request(&mut req, extra, body);
        self.timer.request_sent();
        self.refresh = Some(req.clone());
        self.send_in_dialog(ctx, req);
    }

    /// The same request again with CSeq one higher and a fresh branch
    /// (RFC 3261 §22.2), after a 401/407 or a 422.
    fn resend(&self, ctx: &mut ChatCtx<'_>, old: &Request, cseq: u32) -> Request {
        let mut req = old.clone();
        req.headers.remove_named("Via");
        req.headers.remove_named("CSeq");
        let mut headers: Vec<Header> = req.headers.iter().cloned().collect();
        headers.insert(
            0,
            make_header(
                "Via",
                &via(
                    self.local.sip_local,
                    self.local.transport,
                    &ctx.ids.branch(),
                )
                .to_string(),
            ),
        );
        headers.push(make_header("CSeq", &format!("{cseq} {}", old.method)));
        req.headers = headers.into();
        // move the body's headers last again
        let ct = req.headers.get_raw("Content-Type");
        req.headers.remove_named("Content-Type");
        req.headers.remove_named("Content-Length");
        if let Some(ct) = ct {
            req.headers.push(make_header("Content-Type", &ct));
        }
        req.headers
            .push(make_header("Content-Length", &req.body.len().to_string()));
        req
    }

    // ---- user commands -------------------------------------------------

    /// Accepts an incoming chat: 200 with our SDP answer (RFC 6135: we take
    /// `active` when offered `actpass`) and the session timer's headers.
    pub fn accept(&mut self, _ctx: &mut ChatCtx<'_>, now: Instant) {
        if self.state != State::Ringing {
            return;
        }
        let (Some(invite), Some(key), Some(offer)) = (
            self.invite.clone(),
            self.invite_key.clone(),
            self.remote_media.clone(),
        ) else {
            return;
        };
        let mut ours = MsrpAnswerParams::chat(
            self.local_media.port,
            ConnectionAddress::Ip(self.local.msrp_local.ip()),
            self.local_media.path.clone(),
        );
        if matches!(self.large, Some(LargeLeg::In(_))) {
            // seed 003 9.2.2 step 4: the types were checked; we only receive
            ours.accept_types = offer.accept_types.clone();
            ours.accept_wrapped_types = Vec::new();
            ours.direction = crate::proto::sdp::Direction::RecvOnly;
        }
        let mut offer = offer;
        if offer.accept_types.is_empty() {
            // RFC 4975 §8.2 makes accept-types mandatory; the focus's
            // offers leave it out: take it as "what we accept"
            offer.accept_types = ours.accept_types.clone();
        }
        let answer = match offer.answer(&ours) {
            Ok(a) => a,
            Err(e) => {
                let w = Warning::new(399, "isc", &e.to_string());
                self.respond(
                    &key,
                    &invite,
                    488,
                    vec![make_header("Warning", &w.to_string())],
                );
                self.end(
                    now,
                    EndReason::Error {
                        status: Some(488),
                        reason: e.to_string(),
                        warning: None,
                    },
                );
                return;
            }
        };
        self.active = matches!(
            tcp_active_side(&offer, &answer),
            Ok(TcpActiveSide::Answerer)
        );
        self.local_media = answer;
        let mut extra = vec![
            make_header("Contact", &self.local.contact()),
            make_header("User-Agent", USER_AGENT),
            make_header("Allow", CHAT_ALLOW),
            make_header("Supported", "timer"),
        ];
        extra.extend(self.timer.answer_request(now, &invite));
        let resp = with_body(
            response_with(&invite, 200, Some(&self.local_tag), None, extra),
            "application/sdp",
            self.local_sdp(),
        );
        match Dialog::new_uas(&plain_contact(&invite), &plain_contact(&resp), 1) {
            Ok(d) => self.dialog = Some(d),
            Err(e) => {
                tracing::debug!(error = %e, "chat INVITE cannot make a dialog");
                self.respond(&key, &invite, 400, vec![]);
                self.end(
                    now,
                    EndReason::Error {
                        status: Some(400),
                        reason: e.to_string(),
                        warning: None,
                    },
                );
                return;
            }
        }
        if let Some((to, transport)) = self.invite_source {
            self.ok_retx = Some(OkRetransmission::new(now, resp.clone(), to, transport));
        }
        self.sip_out.push_back(SipOut::Response {
            key,
            response: resp,
        });
        self.state = State::Accepted;
        // When we are the active side we connect once the ACK shows the
        // offerer has our answer: a B2BUA binds our connection to the leg
        // that answer creates, and a bind SEND ahead of it gets 481.
        if !self.active {
            self.start_msrp(now);
        }
    }

    /// Declines an incoming chat (603 Decline, RFC 3261 §21.6.2).
    pub fn decline(&mut self, now: Instant) {
        if self.state != State::Ringing {
            return;
        }
        if let (Some(invite), Some(key)) = (self.invite.clone(), self.invite_key.clone()) {
            self.respond(&key, &invite, 603, vec![]);
        }
        self.end(now, EndReason::Normal);
    }

    /// Ends the chat: BYE when established, CANCEL is not offered (the
    /// INVITE is left to time out), 603 when ringing.
    pub fn bye(&mut self, ctx: &mut ChatCtx<'_>, now: Instant) {
        match self.state {
            State::Ringing => self.decline(now),
            State::Accepted | State::Established => {
                self.send_bye(ctx);
                self.end(now, EndReason::Normal);
            }
            State::Calling => {
                // RFC 3261 §15: once a 2xx comes we ACK and BYE it
                self.end(now, EndReason::Normal);
            }
            State::Terminated => {}
        }
    }

    /// Sends a chat message as `message/cpim` (From, To, DateTime =
    /// `date_time`, RFC 3862) wrapping `text/plain`. Returns the MSRP
    /// Message-ID, or None when the session cannot carry it.
    pub fn send_text(&mut self, now: Instant, text: &str, date_time: &str) -> Option<String> {
        self.send_text_to(now, None, text, date_time)
    }

    fn send_text_to(
        &mut self,
        now: Instant,
        to: Option<&str>,
        text: &str,
        date_time: &str,
    ) -> Option<String> {
        if !matches!(self.state, State::Established | State::Accepted) {
            return None;
        }
        // seed 004 7.1.1.9: a group message is addressed to the session
        // identity (or the group), a private one to the participant
        let to = to
            .map(str::to_owned)
            .or_else(|| self.session_identity().map(str::to_owned))
            .unwrap_or_else(|| self.peer.clone());
        let msg = CpimMessage::new(
            &CpimAddress::new(self.local.aor.clone()),
            &CpimAddress::new(to),
            "text/plain;charset=UTF-8",
            text.as_bytes().to_vec(),
        )
        .with_header("DateTime", date_time);
        // RFC 3994 §3.2: a message ends our active state without an idle
        self.sender.message_sent(&self.peer.clone());
        let id = self
            .msrp
            .as_mut()?
            .send_message(now, cpim::CONTENT_TYPE, msg.to_bytes());
        self.flush_msrp();
        Some(id)
    }

    /// The user typed (RFC 3994 over MSRP): `active` when starting and at
    /// each refresh, `idle` after the idle timeout.
    pub fn typing(&mut self, now: Instant) {
        if !matches!(self.state, State::Established | State::Accepted) {
            return;
        }
        let peer = self.peer.clone();
        if let Some(a) = self.sender.typing(now, &peer) {
            self.composing_action(now, a);
        }
    }

    /// The user cleared the input: `idle` now.
    pub fn stop_typing(&mut self, now: Instant) {
        let peer = self.peer.clone();
        if let Some(a) = self.sender.stop(&peer) {
            self.composing_action(now, a);
        }
    }

    fn composing_action(&mut self, now: Instant, a: ComposingAction) {
        let doc = match a {
            ComposingAction::SendActive { .. } => self.sender.config().active_body(),
            ComposingAction::SendIdle { .. } => IsComposing::idle(),
        };
        if let Some(m) = self.msrp.as_mut() {
            let id = m.send_message(now, is_composing::CONTENT_TYPE, doc.to_bytes());
            self.internal.insert(id);
            self.flush_msrp();
        }
    }

    // ---- SIP in --------------------------------------------------------

    /// A response to one of our requests.
    pub fn handle_response(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, resp: Response) {
        let code = resp.status_code.code();
        let Some((seq, method)) = crate::proto::sip::build::cseq(&resp.headers) else {
            return;
        };
        match method.as_str() {
            "INVITE" if self.is_initial_invite(seq) => self.on_invite_response(ctx, now, resp),
            "INVITE" | "UPDATE" => {
                self.on_refresh_response(ctx, now, resp, seq, method == "INVITE")
            }
            // our BYE is answered: now the MSRP connection can go
            "BYE" if code >= 200 => self.close_now(),
            _ => {
                if code >= 300 {
                    tracing::debug!(code, method, "chat request failed");
                }
            }
        }
    }

    fn is_initial_invite(&self, seq: u32) -> bool {
        self.outgoing
            && self
                .invite
                .as_ref()
                .and_then(|i| crate::proto::sip::build::cseq(&i.headers))
                .is_some_and(|(s, _)| s == seq)
    }

    fn on_invite_response(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, resp: Response) {
        let code = resp.status_code.code();
        let Some(invite) = self.invite.clone() else {
            return;
        };
        match code {
            100 => {}
            101..=199 => {
                if code == 180 && self.state == State::Calling {
                    self.events.push_back(ChatEvent::Ringing { chat: self.id });
                }
            }
            200..=299 => self.on_invite_2xx(ctx, now, &invite, resp),
            401 | 407 if self.state == State::Calling && self.auth_tries < 2 => {
                if answer_challenge(ctx.digest, &resp, self.auth_tries) {
                    self.auth_tries += 1;
                    let seq = crate::proto::sip::build::cseq(&invite.headers).map_or(1, |c| c.0);
                    let mut again = self.resend(ctx, &invite, seq + 1);
                    again.headers.retain(|h| {
                        !matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_))
                    });
                    self.send_invite(ctx, again);
                } else {
                    self.failed(now, &resp);
                }
            }
            // RFC 4028 §7.3
            422 if self.state == State::Calling && self.timer_retries < 2 => {
                if self.timer.handle_422(&resp).is_ok() {
                    self.timer_retries += 1;
                    let seq = crate::proto::sip::build::cseq(&invite.headers).map_or(1, |c| c.0);
                    match self.build_invite(ctx, seq + 1) {
                        Some(again) => self.send_invite(ctx, again),
                        None => self.failed(now, &resp),
                    }
                } else {
                    self.failed(now, &resp);
                }
            }
            _ => {
                if self.state == State::Calling {
                    self.failed(now, &resp);
                }
            }
        }
    }

    fn failed(&mut self, now: Instant, resp: &Response) {
        let reason = EndReason::Error {
            status: Some(resp.status_code.code()),
            reason: reason_phrase(&resp.status_code),
            warning: warning_text(&resp.headers),
        };
        self.end(now, reason);
    }

    fn on_invite_2xx(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        invite: &Request,
        resp: Response,
    ) {
        let tag = to_tag(&resp.headers);
        let same = self
            .dialog
            .as_ref()
            .is_some_and(|d| Some(&d.id().remote_tag) == tag.as_ref());
        if same {
            // a 2xx retransmission: the same ACK again (RFC 3261 §13.2.2.4)
            if let Some(ack) = self
                .dialog
                .as_ref()
                .and_then(|d| d.ack_for_retransmission(&resp))
            {
                self.sip_out.push_back(SipOut::Ack(ack));
            }
            return;
        }
        let mut dialog = match Dialog::new_uac(&plain_contact(invite), &plain_contact(&resp)) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "2xx to chat INVITE makes no dialog");
                return;
            }
        };
        if let Some(v) = typed_via(
            self.local.sip_local,
            self.local.transport,
            &ctx.ids.branch(),
        ) && let Ok(ack) = dialog.create_ack_for_invite(invite, v)
        {
            self.sip_out.push_back(SipOut::Ack(ack));
        }
        if self.dialog.is_some() || self.state != State::Calling {
            // another fork answered, or we gave up meanwhile: ACK and BYE it (§13.2.2.4)
            if let Some(v) = typed_via(
                self.local.sip_local,
                self.local.transport,
                &ctx.ids.branch(),
            ) && let Ok(mut bye) = dialog.create_request(Method::Bye, v)
            {
                finish_request(&mut bye, vec![], None);
                self.send_in_dialog(ctx, bye);
            }
            return;
        }
        self.dialog = Some(dialog);
        self.peer_allows_update = allows_update(&resp.headers);
        self.timer.handle_2xx(now, &resp);
        if let Some(g) = self.group.as_mut()
            && let Some(id) = resp
                .headers
                .get_raw("Contact")
                .and_then(|c| super::group::focus_identity(&c))
        {
            // RFC 4579 §5.3: the Contact with isfocus is the conference
            g.identity = Some(id);
        }
        let answer = if is_sdp(&resp.headers) {
            msrp_line(&resp.body)
        } else {
            None
        };
        let Some(answer) = answer else {
            self.send_bye(ctx);
            self.end(
                now,
                EndReason::Error {
                    status: Some(code_of(&resp)),
                    reason: "no MSRP media in the answer".into(),
                    warning: None,
                },
            );
            return;
        };
        self.active = match tcp_active_side(&self.local_media, &answer) {
            Ok(TcpActiveSide::Offerer) => true,
            Ok(_) => false,
            Err(e) => {
                self.send_bye(ctx);
                self.end(
                    now,
                    EndReason::Error {
                        status: None,
                        reason: e.to_string(),
                        warning: None,
                    },
                );
                return;
            }
        };
        self.remote_media = Some(answer);
        self.state = State::Established;
        self.start_msrp(now);
        self.events.push_back(ChatEvent::Started {
            chat: self.id,
            peer: self.peer.clone(),
        });
    }

    fn on_refresh_response(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        resp: Response,
        seq: u32,
        invite: bool,
    ) {
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        if invite && (200..300).contains(&code) {
            // ACK the re-INVITE's 2xx
            if let (Some(d), Some(v)) = (
                self.dialog.as_mut(),
                typed_via(
                    self.local.sip_local,
                    self.local.transport,
                    &ctx.ids.branch(),
                ),
            ) {
                let mut ack = d.create_ack(seq, v);
                finish_request(&mut ack, vec![], None);
                self.sip_out.push_back(SipOut::Ack(ack));
            }
        }
        if let Some(d) = self.dialog.as_mut() {
            let _ = d.handle_response(&resp);
        }
        let Some(old) = self.refresh.take() else {
            return;
        };
        match code {
            200..=299 => {
                self.timer.handle_2xx(now, &resp);
                if allows_update(&resp.headers) {
                    self.peer_allows_update = true;
                }
            }
            401 | 407 if answer_challenge(ctx.digest, &resp, 0) => {
                if let Some(req) = self.reissue(ctx, &old) {
                    self.refresh = Some(req.clone());
                    self.send_in_dialog(ctx, req);
                }
            }
            422 if self.timer.handle_422(&resp).is_ok() => {
                self.send_refresh(ctx);
            }
            // RFC 3261 §12.2.1.2 / RFC 4028 §10: the dialog is gone
            408 | 481 => {
                self.end(
                    now,
                    EndReason::Error {
                        status: Some(code),
                        reason: reason_phrase(&resp.status_code),
                        warning: None,
                    },
                );
            }
            405 | 501 if !invite => {
                // no UPDATE after all: refresh with re-INVITE
                self.peer_allows_update = false;
                self.send_refresh(ctx);
            }
            _ => self.timer.refresh_failed(),
        }
    }

    /// An in-dialog request again, numbered by the dialog.
    fn reissue(&mut self, ctx: &mut ChatCtx<'_>, old: &Request) -> Option<Request> {
        let mut req = self.dialog_request(ctx, old.method)?;
        let keep: Vec<Header> = old
            .headers
            .iter()
            .filter(|h| {
                let n = crate::proto::sip::headers::name_value(h).0;
                ![
                    "Via",
                    "Max-Forwards",
                    "From",
                    "To",
                    "Call-ID",
                    "CSeq",
                    "Contact",
                    "Route",
                    "Content-Length",
                    "Content-Type",
                    "Authorization",
                    "Proxy-Authorization",
                ]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&n))
            })
            .cloned()
            .collect();
        let body = (!old.body.is_empty()).then(|| ("application/sdp", old.body.clone()));
        finish_request(&mut req, keep, body);
        Some(req)
    }

    /// A request inside our dialog (BYE, re-INVITE, UPDATE, ...).
    pub fn handle_request(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        key: TsxKey,
        req: Request,
        source: (SocketAddr, Transport),
    ) {
        self.last_source = Some(source);
        if let Some(d) = self.dialog.as_mut()
            && let Err(e) = d.handle_request(&req)
        {
            let code = e.status_code();
            self.respond(&key, &req, code, vec![]);
            return;
        }
        match req.method {
            Method::Bye => {
                self.respond(&key, &req, 200, vec![]);
                // A connection that is up, or not up yet, may still bring
                // the rest; one already lost will not.
                let may_bring = self.conn.is_some() || self.close_grace.is_none();
                if let Some(LargeLeg::In(l)) = self.large.as_mut()
                    && !l.complete
                    && may_bring
                    && !is_completed_elsewhere(&req.headers)
                {
                    // The BYE overtook the last chunks (SIP and MSRP go
                    // their own ways; the server may still be connecting to
                    // us with them): read on for a while.
                    l.drain_until = Some(now + DRAIN_GRACE);
                    return;
                }
                let reason = if is_completed_elsewhere(&req.headers) {
                    EndReason::CompletedElsewhere
                } else {
                    EndReason::Normal
                };
                self.end(now, reason);
            }
            Method::Invite | Method::Update => self.on_reinvite(ctx, now, key, req),
            Method::Options => {
                self.respond(&key, &req, 200, vec![make_header("Allow", CHAT_ALLOW)])
            }
            _ => self.respond(&key, &req, 405, vec![make_header("Allow", CHAT_ALLOW)]),
        }
    }

    /// Re-INVITE / UPDATE (RFC 3311, RFC 4028 §9): a refresh, maybe a new
    /// offer. We accept an offer that keeps an MSRP line we can use (its
    /// accept-types a subset of ours in common), else 488.
    fn on_reinvite(&mut self, _ctx: &mut ChatCtx<'_>, now: Instant, key: TsxKey, req: Request) {
        if let Err(e) = self.timer.check_request(&req) {
            self.respond(&key, &req, e.status_code(), e.response_headers());
            return;
        }
        if allows_update(&req.headers) {
            self.peer_allows_update = true;
        }
        let mut body = None;
        if !req.body.is_empty() {
            let offer = if is_sdp(&req.headers) {
                msrp_line(&req.body)
            } else {
                None
            };
            let Some(offer) = offer else {
                self.respond(&key, &req, 488, vec![]);
                return;
            };
            let ours = MsrpAnswerParams::chat(
                self.local_media.port,
                ConnectionAddress::Ip(self.local.msrp_local.ip()),
                self.local_media.path.clone(),
            );
            let mut answer = match offer.answer(&ours) {
                Ok(a) => a,
                Err(_) => {
                    self.respond(&key, &req, 488, vec![]);
                    return;
                }
            };
            // keep the connection we have (RFC 6135 §4.3: a re-offer needs no new one)
            if self.conn.is_some() || self.connecting {
                answer.setup = Some(if self.active {
                    Setup::Active
                } else {
                    Setup::Passive
                });
            }
            answer.accept_types = self.local_media.accept_types.clone();
            self.local_media = answer;
            self.remote_media = Some(offer);
            self.sdp_version += 1;
            body = Some(self.local_sdp());
        } else if req.method == Method::Invite {
            // an offerless re-INVITE: our SDP goes as the offer
            self.sdp_version += 1;
            body = Some(self.local_sdp());
        }
        let mut extra = vec![
            make_header("Contact", &self.local.contact()),
            make_header("Allow", CHAT_ALLOW),
            make_header("Supported", "timer"),
        ];
        extra.extend(self.timer.answer_request(now, &req));
        let mut resp = response_with(&req, 200, Some(&self.local_tag), None, extra);
        if let Some(b) = body {
            resp = with_body(resp, "application/sdp", b);
        }
        if req.method == Method::Invite
            && let Some((to, transport)) = self.source_for(&req)
        {
            self.ok_retx = Some(OkRetransmission::new(now, resp.clone(), to, transport));
        }
        self.sip_out.push_back(SipOut::Response {
            key,
            response: resp,
        });
    }

    fn source_for(&self, _req: &Request) -> Option<(SocketAddr, Transport)> {
        self.last_source.or(self.invite_source)
    }

    /// Whether our INVITE is still unanswered (a BYE now needs a CANCEL).
    pub fn is_calling(&self) -> bool {
        self.state == State::Calling
    }

    /// The ACK for our 2xx (RFC 3261 §13.3.1.4).
    pub fn handle_ack(&mut self, now: Instant, ack: &Request) {
        if let Some(r) = self.ok_retx.as_mut()
            && r.matches_ack(ack)
        {
            r.handle_ack(now);
        }
        if self.state == State::Accepted {
            self.state = State::Established;
            if self.active && self.msrp.is_none() {
                self.start_msrp(now);
            }
            self.events.push_back(ChatEvent::Started {
                chat: self.id,
                peer: self.peer.clone(),
            });
        }
    }

    /// The peer CANCELled its INVITE (RFC 3261 §9.2): 487 to the INVITE.
    pub fn handle_cancel(&mut self, now: Instant, cancel: &Request) {
        if self.state != State::Ringing {
            return;
        }
        if let (Some(invite), Some(key)) = (self.invite.clone(), self.invite_key.clone()) {
            self.respond(&key, &invite, 487, vec![]);
        }
        let reason = if is_completed_elsewhere(&cancel.headers) {
            EndReason::CompletedElsewhere
        } else {
            EndReason::Normal
        };
        self.end(now, reason);
    }

    /// Our request got no answer (Timer B/F) or the transport failed.
    pub fn handle_request_timeout(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, method: Method) {
        match (method, self.state) {
            (Method::Invite, State::Calling) => self.end(
                now,
                EndReason::Error {
                    status: Some(408),
                    reason: "no answer".into(),
                    warning: None,
                },
            ),
            (Method::Invite | Method::Update, State::Established) => {
                // RFC 4028 §10: a refresh that times out ends the session
                self.send_bye(ctx);
                self.end(
                    now,
                    EndReason::Error {
                        status: Some(408),
                        reason: "session refresh timed out".into(),
                        warning: None,
                    },
                );
            }
            _ => {}
        }
    }

    // ---- MSRP ----------------------------------------------------------

    fn start_msrp(&mut self, now: Instant) {
        let Some(remote) = self.remote_media.as_ref() else {
            return;
        };
        let Ok(local_uri) = MsrpUri::parse(self.local_media.own_uri().unwrap_or_default()) else {
            return;
        };
        let Ok(remote_path) = MsrpPath::parse(&remote.path.join(" ")) else {
            tracing::debug!(path = ?remote.path, "peer's a=path does not parse");
            return;
        };
        let mut cfg = SessionConfig::new(local_uri, remote_path.clone());
        cfg.chunk_size = self.local.msrp_chunk_size.max(64);
        cfg.accept_types = self.local_media.accept_types.clone();
        match &self.large {
            Some(LargeLeg::Out(out)) => {
                cfg.chunk_size = LARGE_CHUNK_SIZE;
                // RFC 4975 §7.1 gives a chunk 30 s from when it is sent; we
                // hand every chunk to the transport at once, so each one's
                // clock also covers the chunks ahead of it (at 64 KiB/s)
                cfg.transaction_timeout = crate::proto::msrp::session::TRANSACTION_TIMEOUT
                    + Duration::from_secs(out.total / LARGE_CHUNK_SIZE as u64);
                // seed 003 9.1.1.2 "on receiving a 200" step 3: ask for the REPORT
                cfg.success_report = Some(true);
            }
            Some(LargeLeg::In(l)) => {
                cfg.max_message_size = cfg.max_message_size.max(l.total);
            }
            None => {}
        }
        let ids = SequentialIds::new(format!("{}x", self.msrp_session_id));
        self.msrp = Some(MsrpSession::new(cfg, Box::new(ids)));
        if self.active
            && let Some(peer) = remote_path.first().and_then(msrp_addr)
        {
            self.connecting = true;
            self.msrp_out.push_back(MsrpOut::Connect {
                chat: self.id,
                peer,
                tls: remote_path.first().is_some_and(|u| u.secure),
            });
        }
        let _ = now;
    }

    /// Our connection to the peer is up (we are active): bind it with an
    /// empty SEND (RFC 4975 §5.4, RFC 6135 §4.2).
    pub fn msrp_connected(&mut self, now: Instant, conn: MsrpConn) {
        self.connecting = false;
        if self.state == State::Terminated {
            self.msrp_out.push_back(MsrpOut::Close { conn });
            return;
        }
        self.conn = Some(conn);
        if let Some(m) = self.msrp.as_mut() {
            let id = m.send_empty(now);
            self.internal.insert(id);
        }
        self.large_start(now);
        self.flush_msrp();
    }

    /// Queues our Large Message once the session is up and the connection
    /// ours (seed 003 9.4.2): one MSRP message, chunked (RFC 4975 §5.1),
    /// with Content-Disposition and Content-Description on its SENDs.
    fn large_start(&mut self, now: Instant) {
        if self.state != State::Established || self.conn.is_none() {
            return;
        }
        let Some(LargeLeg::Out(out)) = self.large.as_mut() else {
            return;
        };
        let (Some(m), Some(msrp)) = (out.message.take(), self.msrp.as_mut()) else {
            return;
        };
        let id = msrp.send_message_with_headers(now, &m.content_type, m.mime_headers(), m.body);
        out.message_id = Some(id);
        self.flush_msrp();
    }

    /// We could not connect.
    pub fn msrp_connect_failed(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, error: &str) {
        self.connecting = false;
        if matches!(self.state, State::Established | State::Accepted) {
            self.send_bye(ctx);
            self.end(
                now,
                EndReason::Error {
                    status: None,
                    reason: format!("MSRP connect failed: {error}"),
                    warning: None,
                },
            );
        }
    }

    /// A connection the peer opened to us, recognised by its To-Path.
    pub fn msrp_accepted(&mut self, conn: MsrpConn) {
        if self.conn.is_none() {
            self.conn = Some(conn);
        }
    }

    /// A frame from our connection.
    pub fn msrp_frame(&mut self, now: Instant, frame: MsrpFrame) {
        if let Some(LargeLeg::In(l)) = self.large.as_mut()
            && frame.method() == Some(&crate::proto::msrp::MsrpMethod::Send)
        {
            l.read_headers(&frame);
        }
        // passive side: the peer's connection is up with its first request
        self.large_start(now);
        if let Some(m) = self.msrp.as_mut() {
            m.handle_input(now, MsrpInput::Frame(frame));
        }
        self.pump_msrp(now);
    }

    /// The connection closed. If no BYE explains it soon, we end the chat.
    pub fn msrp_closed(&mut self, now: Instant, conn: MsrpConn) {
        if self.conn == Some(conn) {
            self.conn = None;
            if self.state != State::Terminated {
                self.close_grace = Some(now + CLOSE_GRACE);
            }
        }
    }

    fn flush_msrp(&mut self) {
        let Some(conn) = self.conn else { return };
        if let Some(m) = self.msrp.as_mut() {
            while let Some(bytes) = m.poll_transmit() {
                self.msrp_out.push_back(MsrpOut::Send { conn, bytes });
            }
        }
    }

    fn pump_msrp(&mut self, now: Instant) {
        self.flush_msrp();
        let mut evs = Vec::new();
        if let Some(m) = self.msrp.as_mut() {
            while let Some(e) = m.poll_event() {
                evs.push(e);
            }
        }
        for e in evs {
            self.on_msrp_event(now, e);
        }
        self.flush_msrp();
    }

    fn on_msrp_event(&mut self, now: Instant, e: MsrpEvent) {
        let chat = self.id;
        let e = match self.large_msrp_event(now, e) {
            Some(e) => e,
            None => return,
        };
        match e {
            MsrpEvent::MessageReceived {
                message_id,
                content_type,
                body,
            } => {
                self.on_content(
                    now,
                    message_id,
                    content_type.as_deref().unwrap_or(""),
                    &body,
                    None,
                    None,
                );
            }
            MsrpEvent::Delivered { message_id } if !self.is_internal(&message_id) => {
                self.events
                    .push_back(ChatEvent::Delivered { chat, message_id });
            }
            MsrpEvent::SendFailed {
                message_id, code, ..
            } => {
                if self.is_internal(&message_id) {
                    return;
                }
                self.events.push_back(ChatEvent::SendFailed {
                    chat,
                    message_id,
                    code,
                });
            }
            MsrpEvent::ReportReceived {
                message_id,
                success: false,
                status,
                ..
            } => {
                self.events.push_back(ChatEvent::SendFailed {
                    chat,
                    message_id,
                    code: status.code,
                });
            }
            MsrpEvent::StreamError { error } if error.is_fatal() => {
                tracing::debug!(%error, "fatal MSRP stream error");
                if let Some(c) = self.conn.take() {
                    self.msrp_out.push_back(MsrpOut::Close { conn: c });
                    self.close_grace = Some(now + CLOSE_GRACE);
                }
            }
            _ => {}
        }
    }

    /// Large Message progress and completion; other events come back.
    fn large_msrp_event(&mut self, now: Instant, e: MsrpEvent) -> Option<MsrpEvent> {
        let chat = self.id;
        match (self.large.as_mut(), e) {
            (Some(LargeLeg::Out(out)), e) => {
                let ours = |id: &str| out.message_id.as_deref() == Some(id);
                match e {
                    MsrpEvent::SendProgress {
                        message_id,
                        bytes,
                        total,
                    } if ours(&message_id) => {
                        if out.progress.step(bytes, total) {
                            self.events.push_back(ChatEvent::LargeProgress {
                                chat,
                                outgoing: true,
                                bytes,
                                total,
                            });
                        }
                        None
                    }
                    // seed 003 9.4.2: the last chunk's 200, or a success REPORT
                    // for the whole message, ends the session
                    MsrpEvent::Delivered { message_id } if ours(&message_id) => {
                        Self::large_sent(&mut self.events, chat, out, now, message_id);
                        None
                    }
                    MsrpEvent::ReportReceived {
                        message_id,
                        success: true,
                        byte_range,
                        ..
                    } if ours(&message_id) => {
                        if byte_range.and_then(|r| r.end) == Some(out.total) {
                            Self::large_sent(&mut self.events, chat, out, now, message_id);
                        }
                        None
                    }
                    MsrpEvent::SendFailed {
                        ref message_id,
                        code,
                        ..
                    }
                    | MsrpEvent::ReportReceived {
                        ref message_id,
                        success: false,
                        status: crate::proto::msrp::Status { code, .. },
                        ..
                    } if ours(message_id) && !out.done => {
                        out.failed = Some(code);
                        out.close_at = Some(now);
                        Some(e)
                    }
                    e => Some(e),
                }
            }
            (Some(LargeLeg::In(l)), MsrpEvent::Progress { bytes, total, .. }) => {
                let total = total.unwrap_or(l.total).max(1);
                l.received = bytes;
                if l.progress.step(bytes, total) {
                    self.events.push_back(ChatEvent::LargeProgress {
                        chat,
                        outgoing: false,
                        bytes,
                        total,
                    });
                }
                None
            }
            (
                Some(LargeLeg::In(l)),
                MsrpEvent::MessageReceived {
                    message_id,
                    content_type,
                    body,
                },
            ) if !l.complete => {
                l.complete = true;
                let size = body.len() as u64;
                l.received = size;
                if l.progress.step(size, size.max(1)) {
                    self.events.push_back(ChatEvent::LargeProgress {
                        chat,
                        outgoing: false,
                        bytes: size,
                        total: size,
                    });
                }
                let ct = content_type.unwrap_or_else(|| "application/octet-stream".into());
                let disposition = l
                    .disposition
                    .unwrap_or(super::large_message::Disposition::Attachment);
                let text = ct.trim().to_ascii_lowercase().starts_with("text/");
                if disposition == super::large_message::Disposition::Render && text {
                    // seed 003 9.4.2 step 1: rendered at once, in the conversation
                    self.events.push_back(ChatEvent::Message {
                        chat,
                        from: self.peer.clone(),
                        text: String::from_utf8_lossy(&body).into_owned(),
                        at: None,
                        message_id,
                    });
                } else {
                    self.events.push_back(ChatEvent::LargeReceived {
                        chat,
                        from: self.peer.clone(),
                        content_type: ct,
                        disposition,
                        filename: l.filename.clone(),
                        description: l.description.clone(),
                        body,
                    });
                }
                if l.drain_until.is_some() {
                    // the BYE came already
                    self.end(now, EndReason::Normal);
                }
                None
            }
            (_, e) => Some(e),
        }
    }

    fn large_sent(
        events: &mut VecDeque<ChatEvent>,
        chat: ChatId,
        out: &mut LargeOut,
        now: Instant,
        message_id: String,
    ) {
        if out.done {
            return;
        }
        out.done = true;
        out.close_at = Some(now);
        events.push_back(ChatEvent::LargeSent {
            chat,
            message_id,
            size: out.total,
        });
    }

    /// Binding SENDs and isComposing are not reported as delivered.
    fn is_internal(&mut self, message_id: &str) -> bool {
        self.internal.remove(message_id)
    }

    fn on_content(
        &mut self,
        now: Instant,
        message_id: String,
        content_type: &str,
        body: &[u8],
        from: Option<String>,
        at: Option<String>,
    ) {
        let chat = self.id;
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let from_or_peer = from.clone().unwrap_or_else(|| self.peer.clone());
        match ct.as_str() {
            "" if body.is_empty() => {}
            cpim::CONTENT_TYPE if from.is_none() => match CpimMessage::parse(body) {
                Ok(m) => {
                    let inner_from = m.from().map(|a| a.uri).unwrap_or_else(|| self.peer.clone());
                    let at = m.date_time().map(str::to_owned);
                    self.cpim_to = m.to().into_iter().next().map(|a| a.uri);
                    let inner_ct = m.content_type().unwrap_or("text/plain").to_owned();
                    self.on_content(now, message_id, &inner_ct, &m.body, Some(inner_from), at);
                }
                Err(e) => tracing::debug!(error = %e, "unreadable CPIM in chat"),
            },
            is_composing::CONTENT_TYPE => match IsComposing::parse(body) {
                Ok(doc) => {
                    if let Some(active) = self.receiver.indication(now, &from_or_peer, &doc) {
                        self.events.push_back(ChatEvent::Composing {
                            chat,
                            from: from_or_peer,
                            active,
                        });
                    }
                }
                Err(e) => tracing::debug!(error = %e, "unreadable isComposing in chat"),
            },
            t if t.starts_with("text/") => {
                // RFC 3994 §4: a message ends the peer's active state
                if self.receiver.message(&from_or_peer) {
                    self.events.push_back(ChatEvent::Composing {
                        chat,
                        from: from_or_peer.clone(),
                        active: false,
                    });
                }
                let text = String::from_utf8_lossy(body).into_owned();
                // seed 004 7.1.1.9: CPIM To naming a participant, not the conference
                let cpim_to = self.cpim_to.take();
                let private = match (self.session_identity(), cpim_to) {
                    (Some(identity), Some(to)) => !super::group::same_uri(identity, &to),
                    _ => false,
                };
                if private {
                    self.events.push_back(ChatEvent::PrivateMessage {
                        chat,
                        from: from_or_peer,
                        text,
                        at,
                        message_id,
                    });
                } else {
                    self.events.push_back(ChatEvent::Message {
                        chat,
                        from: from_or_peer,
                        text,
                        at,
                        message_id,
                    });
                }
            }
            other => tracing::debug!(content_type = other, "chat content ignored"),
        }
    }

    // ---- time ----------------------------------------------------------

    fn end(&mut self, now: Instant, reason: EndReason) {
        if self.state == State::Terminated {
            return;
        }

        self.state = State::Terminated;
        self.timer.stop();
        if let Some(d) = self.dialog.as_mut() {
            d.terminate();
        }
        if let Some(conn) = self.conn.take() {
            if self.bye_sent {
                self.flush_msrp_to(conn);
                self.pending_close = Some((conn, now + CLOSE_GRACE));
            } else {
                self.flush_pending_close(conn);
            }
        }
        self.close_grace = None;
        self.events.push_back(ChatEvent::Ended {
            chat: self.id,
            reason,
        });
    }

    fn flush_msrp_to(&mut self, conn: MsrpConn) {
        if let Some(m) = self.msrp.as_mut() {
            while let Some(bytes) = m.poll_transmit() {
                self.msrp_out.push_back(MsrpOut::Send { conn, bytes });
            }
        }
    }

    fn close_now(&mut self) {
        if let Some((conn, _)) = self.pending_close.take() {
            self.msrp_out.push_back(MsrpOut::Close { conn });
        }
    }

    fn flush_pending_close(&mut self, conn: MsrpConn) {
        if let Some(m) = self.msrp.as_mut() {
            while let Some(bytes) = m.poll_transmit() {
                self.msrp_out.push_back(MsrpOut::Send { conn, bytes });
            }
        }
        self.msrp_out.push_back(MsrpOut::Close { conn });
    }

    /// Timers: session timer, 2xx retransmission, MSRP, isComposing, the
    /// grace after an MSRP loss.
    pub fn handle_timeout(&mut self, ctx: &mut ChatCtx<'_>, now: Instant) {
        if let Some(r) = self.ok_retx.as_mut() {
            r.handle_timeout(now);
            while let Some(t) = r.poll_transmit() {
                self.sip_out.push_back(SipOut::Raw(t));
            }
            let mut no_ack = false;
            while let Some(e) = r.poll_event() {
                no_ack |= e == OkRetransmissionEvent::NoAck;
            }
            if !r.is_active() {
                self.ok_retx = None;
            }
            if no_ack && self.state == State::Accepted {
                // RFC 3261 §13.3.1.4: confirm, then BYE
                self.send_bye(ctx);
                self.end(
                    now,
                    EndReason::Error {
                        status: None,
                        reason: "no ACK".into(),
                        warning: None,
                    },
                );
            }
        }
        match self.timer.handle_timeout(now) {
            Some(SessionTimerAction::Refresh) if self.state == State::Established => {
                self.send_refresh(ctx)
            }
            Some(SessionTimerAction::Bye) if self.state != State::Terminated => {
                self.send_bye(ctx);
                self.end(
                    now,
                    EndReason::Error {
                        status: None,
                        reason: "session expired".into(),
                        warning: None,
                    },
                );
            }
            _ => {}
        }
        if let Some(m) = self.msrp.as_mut() {
            m.handle_timeout(now);
        }
        self.pump_msrp(now);
        for a in self.sender.handle_timeout(now) {
            self.composing_action(now, a);
        }
        for from in self.receiver.handle_timeout(now) {
            self.events.push_back(ChatEvent::Composing {
                chat: self.id,
                from,
                active: false,
            });
        }
        if self.pending_close.is_some_and(|(_, t)| t <= now) {
            self.close_now();
        }
        self.large_timeout(ctx, now);
        if self.close_grace.is_some_and(|t| t <= now) {
            self.close_grace = None;
            self.send_bye(ctx);
            self.end(
                now,
                EndReason::Error {
                    status: None,
                    reason: "MSRP connection lost".into(),
                    warning: None,
                },
            );
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.ok_retx.as_ref().and_then(|r| r.poll_timeout()),
            self.timer.poll_timeout(),
            self.msrp.as_ref().and_then(|m| m.poll_timeout()),
            self.sender.poll_timeout(),
            self.receiver.poll_timeout(),
            self.close_grace,
            self.pending_close.map(|(_, t)| t),
            self.large_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn large_deadline(&self) -> Option<Instant> {
        if self.state == State::Terminated {
            return None;
        }
        match self.large.as_ref()? {
            LargeLeg::Out(o) => o.close_at,
            LargeLeg::In(i) => i.drain_until,
        }
    }

    /// Seed 003 9.4.2: BYE once our message is acknowledged (or failed);
    /// a receiver whose message never completed after the BYE gives up.
    fn large_timeout(&mut self, ctx: &mut ChatCtx<'_>, now: Instant) {
        if self.large_deadline().is_none_or(|t| t > now) {
            return;
        }
        match self.large.as_mut() {
            Some(LargeLeg::Out(o)) => {
                o.close_at = None;
                let failed = o.failed;
                self.send_bye(ctx);
                let reason = match failed {
                    None => EndReason::Normal,
                    Some(code) => EndReason::Error {
                        status: None,
                        reason: format!("MSRP {code} {}", crate::proto::msrp::reason_phrase(code)),
                        warning: None,
                    },
                };
                self.end(now, reason);
            }
            Some(LargeLeg::In(i)) => {
                let (got, total) = (i.progress_bytes(), i.total);
                i.drain_until = None;
                self.end(
                    now,
                    EndReason::Error {
                        status: None,
                        reason: format!("large message incomplete: {got} of {total} bytes"),
                        warning: None,
                    },
                );
            }
            None => {}
        }
    }

    pub fn poll_sip(&mut self) -> Option<SipOut> {
        self.sip_out.pop_front()
    }

    pub fn poll_msrp(&mut self) -> Option<MsrpOut> {
        self.msrp_out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ChatEvent> {
        self.events.pop_front()
    }
}

/// Reads a 401/407's challenge into the UA's Digest client (RFC 3261
/// §22.2). Credentials held from an earlier challenge may be refused
/// without `stale=true` (another request of the UA used the nonce): on a
/// first try we forget them and answer this challenge afresh, as the UA does.
pub(crate) fn answer_challenge(digest: &mut DigestClient, resp: &Response, tries: u8) -> bool {
    match digest.handle_challenge(resp) {
        Ok(()) => true,
        Err(crate::proto::sip::digest::DigestError::Rejected { .. }) if tries == 0 => {
            digest.clear();
            digest.handle_challenge(resp).is_ok()
        }
        Err(e) => {
            tracing::debug!(error = %e, "chat challenge not answered");
            false
        }
    }
}

fn code_of(resp: &Response) -> u16 {
    resp.status_code.code()
}

fn allows_update(headers: &rsip::Headers) -> bool {
    headers.get_all_raw("Allow").iter().any(|v| {
        v.split(',')
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"))
    })
}

/// Whether a received request asks for the session timer (for logs/tests).
pub fn wants_timer(req: &Request) -> bool {
    supports_timer(&req.headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(tls: bool) -> ChatLocal {
        ChatLocal {
            aor: "sip:bob@isc.local".into(),
            display_name: None,
            contact_uri: "sip:bob@127.0.0.1:5080;transport=udp".into(),
            instance_id: None,
            sip_local: "127.0.0.1:5080".parse().unwrap(),
            transport: Transport::Udp,
            msrp_local: "127.0.0.1:6080".parse().unwrap(),
            msrp_tls: tls,
            timer: SessionTimerConfig::default(),
            composing: ComposingConfig::default(),
            msrp_chunk_size: 2048,
        }
    }

    #[test]
    fn our_line_over_tls_is_msrps_and_active() {
        // RFC 4975 §8.1, §14.1: TCP/TLS/MSRP with an msrps: path; we connect.
        let m = chat_media(&local(true), "s1", true);
        assert_eq!(m.transport, "TCP/TLS/MSRP");
        assert_eq!(m.path, ["msrps://127.0.0.1:6080/s1;tcp"]);
        assert_eq!(m.setup, Some(Setup::Active));
        assert_eq!(m.check_transport(), Ok(()));
        let m = chat_media(&local(false), "s1", false);
        assert_eq!(m.transport, "TCP/MSRP");
        assert_eq!(m.path, ["msrp://127.0.0.1:6080/s1;tcp"]);
        assert_eq!(m.setup, Some(Setup::ActPass));
    }

    #[test]
    fn msrps_offers_we_cannot_meet_are_named() {
        let mut offer = chat_media(&local(true), "peer", true);
        offer.setup = Some(Setup::Passive);
        assert_eq!(offer_transport_usable(&offer, true), Ok(()));
        let why = offer_transport_usable(&offer, false).unwrap_err();
        assert!(why.contains("not set up on this device"), "{why}");
        offer.setup = Some(Setup::Active);
        let why = offer_transport_usable(&offer, true).unwrap_err();
        assert!(why.contains("a=setup:active"), "{why}");
        // a plain offer is fine either way; a mixed one is not
        let mut plain = chat_media(&local(false), "peer", false);
        assert_eq!(offer_transport_usable(&plain, true), Ok(()));
        plain.transport = "TCP/TLS/MSRP".into();
        let why = offer_transport_usable(&plain, true).unwrap_err();
        assert!(why.contains("does not match"), "{why}");
    }

    /// Our Contact must survive rsip's typed Contact: peers (the server's
    /// B2BUA among them) build dialogs from it.
    #[test]
    fn dialogs_form_on_our_contact_with_its_feature_tag() {
        let local = ChatLocal {
            aor: "sip:bob@isc.local".into(),
            display_name: None,
            contact_uri: "sip:bob@127.0.0.1:5080;transport=udp".into(),
            instance_id: Some("urn:uuid:37d07317-e1e2-49ce-8d12-715ce0fae97a".into()),
            sip_local: "127.0.0.1:5080".parse().unwrap(),
            transport: Transport::Udp,
            msrp_local: "127.0.0.1:6080".parse().unwrap(),
            msrp_tls: false,
            timer: SessionTimerConfig::default(),
            composing: ComposingConfig::default(),
            msrp_chunk_size: 2048,
        };
        let invite = RequestBuilder::new(
            Method::Invite,
            parse_uri("sip:bob@isc.local").unwrap(),
            via(local.sip_local, Transport::Udp, "z9hG4bK1"),
            NameAddr::new("sip:alice@isc.local"),
            "a1",
            NameAddr::new("sip:bob@isc.local"),
            "c1",
            1,
        )
        .contact(local.contact())
        .build();
        let ok = response_with(
            &invite,
            200,
            Some("b1"),
            None,
            vec![make_header("Contact", &local.contact())],
        );
        let d = Dialog::new_uac(&invite, &ok).expect("a dialog from our raw Contact");
        assert!(
            d.remote_target()
                .to_string()
                .eq_ignore_ascii_case("sip:bob@127.0.0.1:5080;transport=udp")
        );
        assert!(Dialog::new_uas(&invite, &ok, 1).is_ok());
        assert!(
            local.contact().contains(
                "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\""
            )
        );
    }
}
