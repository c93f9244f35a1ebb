//! Conversation history retrieval, client side (seed 003 13.1.3), sans-IO.
//!
//! [`History`] runs retrievals: an INVITE to `sip:history@<domain>` whose
//! body is `multipart/mixed` of an MSRP offer with `a=recvonly` and an
//! RFC 4826 resource-lists URI list of history references (13.1.3 steps
//! 2–4); the History Function answers `a=sendonly` (13.2.1.1 step 5.a),
//! opens the MSRP connection to us (`a=setup:active`, RFC 6135), streams
//! one CPIM message per stored item and BYEs. Each item becomes a
//! [`HistoryItem`] (sender, original CPIM DateTime, text);
//! [`HistoryEvent::Retrieved`] hands them over at the BYE.
//!
//! **History references.** The seed defers their form to the History XDMS,
//! which it does not include. Our History Function
//! (`server/deferred_message_store/function.rs`, `on_history`) takes two
//! kinds, and so the client asks for them:
//! - a user's AOR (`sip:bob@isc.local`): the requester's whole 1-1
//!   conversation with that user. A device learns it from the conversation
//!   itself (its peer), so a device that was never part of it can still ask:
//!   this is what [`HistoryQuery::conversation`] sends when no reference is
//!   given;
//! - an MSRP Message-ID (as reported in [`super::chat::ChatEvent::Message`]):
//!   that one message, if the requester took part in its conversation.
//!
//! The server answers 404 when no reference names anything stored and 403
//! for a Message-ID of another user's conversation; both, like a 403 for a
//! missing `recvonly`, come out as [`HistoryEvent::Failed`] whose
//! [`HistoryError`] reads as a sentence for the user.
//!
//! Items already on screen are not shown twice: [`unseen`] matches them by
//! sender, text and time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rsip::{Header, Method, Request, Response, SipMessage};

use super::USER_AGENT;
use super::chat::{ChatCtx, ChatLocal, MsrpConn, MsrpOut, SipOut, answer_challenge, via};
use super::group::IM_FEATURE_TAG;
use super::ids::UaIds;
use super::outgoing::uri_of;
use crate::proto::bodies::cpim::CpimMessage;
use crate::proto::bodies::resource_lists::{Entry, ResourceLists};
use crate::proto::msrp::{
    MsrpEvent, MsrpFrame, MsrpInput, MsrpPath, MsrpSession, MsrpUri, SequentialIds, SessionConfig,
};
use crate::proto::sdp::{
    ConnectionAddress, Direction, MediaLine, MsrpMedia, Sdp, Setup, parse_sdp,
};
use crate::proto::sip::build::{RequestBuilder, call_id, cseq, from_tag, response_with, to_tag};
use crate::proto::sip::dialog::Dialog;
use crate::proto::sip::headers::{HeadersExt, NameAddr, Warning, make_header};
use crate::proto::sip::message::{parse_uri, reason_phrase};
use crate::proto::sip::transaction::{LayerEvent, TransactionLayer, Transmit, Transport, TsxKey};

/// Names one retrieval for the life of the user agent.
pub type HistoryId = u64;

/// The user part of the History Function's URI (SPEC.md: `sip:history@domain`).
pub const HISTORY_USER: &str = "history";
/// How long a retrieval waits, after the 2xx or its last item, for the next
/// item or the server's BYE before it ends the session itself.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Methods we take inside a history dialog (Allow).
pub const HISTORY_ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";
/// What our offer accepts: the stored chat messages are CPIM wrapping text.
pub const HISTORY_ACCEPT_TYPES: &[&str] = &["message/cpim", "text/plain"];
/// Two messages closer than this, from the same sender with the same
/// text, are the same message ([`unseen`]): our own clock stamps what we
/// sent or received, the CPIM DateTime is the sender's.
pub const SAME_MESSAGE_WINDOW: Duration = Duration::from_secs(120);

/// What the application asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The conversation the items belong to: the peer's AOR (1-1).
    pub conversation: String,
    /// History references; empty = the whole conversation (its AOR).
    pub references: Vec<String>,
}

impl HistoryQuery {
    /// The whole conversation with `peer`.
    pub fn conversation(peer: &str) -> Self {
        HistoryQuery {
            conversation: peer.to_string(),
            references: Vec::new(),
        }
    }

    /// The references the URI list carries.
    pub fn list(&self) -> Vec<String> {
        if self.references.is_empty() {
            vec![self.conversation.clone()]
        } else {
            self.references.clone()
        }
    }
}

/// One stored message as the History Function delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// CPIM From (the sender's URI); empty when the item was not CPIM.
    pub from: String,
    /// CPIM To.
    pub to: String,
    /// CPIM DateTime as written (RFC 3339), the original sending time.
    pub at: Option<String>,
    /// The text; other contents as `[type, N bytes]`.
    pub text: String,
}

impl HistoryItem {
    /// The item of one MSRP message (RFC 3862 CPIM, or bare text).
    pub fn from_msrp(content_type: Option<&str>, body: &[u8]) -> Self {
        let ct = content_type
            .unwrap_or("text/plain")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if ct == crate::proto::bodies::cpim::CONTENT_TYPE
            && let Ok(m) = CpimMessage::parse(body)
        {
            return HistoryItem {
                from: m.from().map(|a| a.uri).unwrap_or_default(),
                to: m.to().into_iter().next().map(|a| a.uri).unwrap_or_default(),
                at: m.date_time().map(str::to_owned),
                text: text_of(m.content_type().unwrap_or("text/plain"), &m.body),
            };
        }
        HistoryItem {
            from: String::new(),
            to: String::new(),
            at: None,
            text: text_of(&ct, body),
        }
    }

    /// [`Self::at`] as seconds since the Unix epoch, when it reads.
    pub fn at_unix(&self) -> Option<u64> {
        self.at.as_deref().and_then(parse_rfc3339)
    }
}

fn text_of(content_type: &str, body: &[u8]) -> String {
    if content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("text/")
    {
        String::from_utf8_lossy(body).into_owned()
    } else {
        format!("[{}, {} bytes]", content_type.trim(), body.len())
    }
}

/// Why a retrieval failed. The Display is the sentence the user reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// A final error response (403 not recvonly / foreign reference, 404
    /// unknown reference, ...), with the server's Warning text.
    #[error("{}", refused_text(*status, reason, warning.as_deref()))]
    Refused {
        status: u16,
        reason: String,
        warning: Option<String>,
    },
    /// Seed 003 13.2.1.1 step 5.a: the answer must be `a=sendonly`.
    #[error("the history server's answer is not sendonly (seed 003 13.2.1.1)")]
    NotSendOnly,
    /// No MSRP media, or one we cannot use.
    #[error("the history server's answer is unusable: {0}")]
    BadAnswer(String),
    #[error("no response from the history server")]
    NoResponse,
    #[error("cannot ask for history: {0}")]
    BadRequest(String),
}

fn refused_text(status: u16, reason: &str, warning: Option<&str>) -> String {
    let what = match status {
        404 => "no such history on the server",
        403 => "history refused by the server",
        _ => "history retrieval failed",
    };
    match warning {
        Some(w) => format!("{what}: {w} ({status} {reason})"),
        None => format!("{what} ({status} {reason})"),
    }
}

impl HistoryError {
    /// The SIP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            HistoryError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What retrievals tell the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryEvent {
    /// Our INVITE is on its way.
    Requested {
        id: HistoryId,
        conversation: String,
        references: Vec<String>,
    },
    /// The server ended the stream (BYE): every item, in the order stored.
    /// `complete` is false when the server went silent and we ended it.
    Retrieved {
        id: HistoryId,
        conversation: String,
        items: Vec<HistoryItem>,
        complete: bool,
    },
    Failed {
        id: HistoryId,
        conversation: String,
        error: HistoryError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Our INVITE is out.
    Inviting,
    /// 2xx received and ACKed; items arrive.
    Streaming,
    /// Reported; kept until its last transaction ends.
    Done,
}

/// Everything the retrievals want done, gathered for the owner.
#[derive(Default)]
struct Out {
    sip: VecDeque<(HistoryId, SipOut)>,
    msrp: VecDeque<MsrpOut>,
    events: VecDeque<HistoryEvent>,
}

/// One retrieval.
struct Retrieval {
    id: HistoryId,
    query: HistoryQuery,
    local: ChatLocal,
    call_id: String,
    local_tag: String,
    /// Our INVITE as last sent.
    invite: Option<Request>,
    auth_tries: u8,
    dialog: Option<Dialog>,
    /// Our `a=path` URI; its session-id names incoming connections.
    local_uri: MsrpUri,
    msrp: Option<MsrpSession>,
    conn: Option<MsrpConn>,
    /// Frames that came before the 2xx (the server connects at once).
    early: Vec<MsrpFrame>,
    items: Vec<HistoryItem>,
    state: State,
    deadline: Option<Instant>,
}

/// Every history retrieval of a user agent.
#[derive(Default)]
pub struct History {
    retrievals: BTreeMap<HistoryId, Retrieval>,
    next_id: HistoryId,
    /// Our client transactions (INVITE, BYE) by retrieval.
    keys: HashMap<TsxKey, HistoryId>,
    /// MSRP connections bound to a retrieval.
    conns: HashMap<MsrpConn, HistoryId>,
    out: Out,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("retrievals", &self.retrievals.len())
            .finish_non_exhaustive()
    }
}

fn alnum(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// `sip:history@<domain of aor>`.
pub fn history_uri(aor: &str) -> String {
    let domain = aor.rsplit('@').next().unwrap_or("localhost");
    format!("sip:{HISTORY_USER}@{domain}")
}

/// The body of a history INVITE: `multipart/mixed` of the SDP and the URI
/// list (seed 003 13.1.3 steps 3–4). The list part carries
/// `Content-Disposition: recipient-list`, the one disposition RFC 5363
/// (the seed's [draft-URI-list]) defines for URI lists. Returns the
/// Content-Type and bytes.
pub fn history_body(sdp: Vec<u8>, references: &[String]) -> (String, Vec<u8>) {
    let list = ResourceLists::of(references.iter().map(|r| Entry::new(r.clone())).collect());
    super::group::factory_body(sdp, list.to_bytes())
}

/// Our SDP offer: one MSRP line, `a=recvonly` (13.1.3 step 3.b),
/// `a=setup:actpass` (the function takes the active role).
pub fn history_offer(local: &ChatLocal, path: &MsrpUri, session_id: u64) -> Vec<u8> {
    let ip: IpAddr = local.msrp_local.ip();
    let mut media = MsrpMedia::offer(
        local.msrp_local.port(),
        ConnectionAddress::Ip(ip),
        vec![path.to_string()],
        HISTORY_ACCEPT_TYPES,
    );
    media.accept_wrapped_types = vec!["text/plain".into()];
    media.direction = Direction::RecvOnly;
    media.setup = Some(Setup::ActPass);
    let user = local
        .aor
        .trim_start_matches("sip:")
        .split('@')
        .next()
        .filter(|u| !u.is_empty())
        .unwrap_or("-")
        .to_string();
    Sdp::new(&user, session_id, ConnectionAddress::Ip(ip))
        .with_media(MediaLine::Msrp(media))
        .to_bytes()
}

fn typed_via(local: &ChatLocal, branch: &str) -> Option<rsip::typed::Via> {
    use rsip::prelude::*;
    match make_header(
        "Via",
        &via(local.sip_local, local.transport, branch).to_string(),
    ) {
        Header::Via(v) => v.typed().ok(),
        _ => None,
    }
}

/// A copy whose Contact is the bare `<uri>` (rsip's typed Contact refuses
/// feature tags such as `automata` with the server's parameters).
fn bare_contact_response(resp: &Response) -> Response {
    let mut r = resp.clone();
    if let Some(c) = r.headers.get_raw("Contact") {
        let uri = uri_of(&c);
        r.headers.remove_named("Contact");
        r.headers.push(make_header("Contact", &format!("<{uri}>")));
    }
    r
}

fn bare_contact_request(req: &Request) -> Request {
    let mut r = req.clone();
    if let Some(c) = r.headers.get_raw("Contact") {
        let uri = uri_of(&c);
        r.headers.remove_named("Contact");
        r.headers.push(make_header("Contact", &format!("<{uri}>")));
    }
    r
}

fn warning_text(headers: &rsip::Headers) -> Option<String> {
    match headers.typed::<Warning>() {
        Ok(Some(w)) => w.0.first().map(|v| v.text.clone()),
        _ => headers.get_raw("Warning"),
    }
}

/// The MSRP line of an SDP body.
fn msrp_line(body: &[u8]) -> Option<MsrpMedia> {
    parse_sdp(body).ok()?.msrp().find(|m| m.port != 0).cloned()
}

impl Retrieval {
    fn build_invite(&self, ctx: &mut ChatCtx<'_>, cseq: u32, sdp_id: u64) -> Option<Request> {
        let target = history_uri(&self.local.aor);
        let uri = parse_uri(&target).ok()?;
        let sdp = history_offer(&self.local, &self.local_uri, sdp_id);
        let (ct, body) = history_body(sdp, &self.query.list());
        let from = match &self.local.display_name {
            Some(d) => NameAddr::new(self.local.aor.clone()).with_display_name(d.clone()),
            None => NameAddr::new(self.local.aor.clone()),
        };
        // Seed 003 13.1.3 step 1 → 7.1.1.1: the IM feature tag in Contact and
        // Accept-Contact, User-Agent, Allow.
        let req = RequestBuilder::new(
            Method::Invite,
            uri,
            via(
                self.local.sip_local,
                self.local.transport,
                &ctx.ids.branch(),
            ),
            from,
            &self.local_tag,
            NameAddr::new(target),
            &self.call_id,
            cseq,
        )
        .contact(format!("<{}>;{IM_FEATURE_TAG}", self.local.contact_uri))
        .header(make_header(
            "Accept-Contact",
            &format!("*;{IM_FEATURE_TAG}"),
        ))
        .header(make_header("User-Agent", USER_AGENT))
        .header(make_header("Allow", HISTORY_ALLOW))
        .body(&ct, body)
        .build();
        Some(req)
    }

    fn fail(&mut self, out: &mut Out, error: HistoryError) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.deadline = None;
        if let Some(conn) = self.conn.take() {
            out.msrp.push_back(MsrpOut::Close { conn });
        }
        out.events.push_back(HistoryEvent::Failed {
            id: self.id,
            conversation: self.query.conversation.clone(),
            error,
        });
    }

    fn finish(&mut self, out: &mut Out, complete: bool) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.deadline = None;
        if let Some(conn) = self.conn.take() {
            out.msrp.push_back(MsrpOut::Close { conn });
        }
        out.events.push_back(HistoryEvent::Retrieved {
            id: self.id,
            conversation: self.query.conversation.clone(),
            items: std::mem::take(&mut self.items),
            complete,
        });
    }

    fn send_bye(&mut self, ctx: &mut ChatCtx<'_>, out: &mut Out) {
        let Some(v) = typed_via(&self.local, &ctx.ids.branch()) else {
            return;
        };
        let Some(d) = self.dialog.as_mut() else {
            return;
        };
        if let Ok(mut bye) = d.create_request(Method::Bye, v) {
            bye.headers.remove_named("Content-Length");
            bye.headers.push(make_header("User-Agent", USER_AGENT));
            bye.headers.push(make_header("Content-Length", "0"));
            ctx.digest.authorize(&mut bye, &ctx.ids.cnonce());
            out.sip.push_back((self.id, SipOut::Request(bye)));
        }
    }

    fn handle_response(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        out: &mut Out,
        resp: Response,
    ) {
        let code = resp.status_code.code();
        let Some((seq, method)) = cseq(&resp.headers) else {
            return;
        };
        if method != "INVITE" {
            return;
        }
        match code {
            100..=199 => {}
            200..=299 => self.on_2xx(ctx, now, out, resp),
            401 | 407 if self.state == State::Inviting && self.auth_tries < 2 => {
                if answer_challenge(ctx.digest, &resp, self.auth_tries) {
                    self.auth_tries += 1;
                    let sdp_id = self.id + 1;
                    match self.build_invite(ctx, seq + 1, sdp_id) {
                        Some(mut again) => {
                            ctx.digest.authorize(&mut again, &ctx.ids.cnonce());
                            self.invite = Some(again.clone());
                            out.sip.push_back((self.id, SipOut::Request(again)));
                        }
                        None => self.fail(out, HistoryError::BadRequest("cannot rebuild".into())),
                    }
                } else {
                    self.refused(out, &resp);
                }
            }
            _ => {
                if self.state == State::Inviting {
                    self.refused(out, &resp);
                }
            }
        }
    }

    fn refused(&mut self, out: &mut Out, resp: &Response) {
        self.fail(
            out,
            HistoryError::Refused {
                status: resp.status_code.code(),
                reason: reason_phrase(&resp.status_code),
                warning: warning_text(&resp.headers),
            },
        );
    }

    fn on_2xx(&mut self, ctx: &mut ChatCtx<'_>, now: Instant, out: &mut Out, resp: Response) {
        if let Some(d) = &self.dialog {
            // a 2xx retransmission: the same ACK again (RFC 3261 §13.2.2.4)
            if let Some(ack) = d.ack_for_retransmission(&resp) {
                out.sip.push_back((self.id, SipOut::Ack(ack)));
            }
            return;
        }
        let Some(invite) = self.invite.clone() else {
            return;
        };
        let mut dialog = match Dialog::new_uac(
            &bare_contact_request(&invite),
            &bare_contact_response(&resp),
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "2xx to history INVITE makes no dialog");
                return;
            }
        };
        if let Some(v) = typed_via(&self.local, &ctx.ids.branch())
            && let Ok(ack) = dialog.create_ack_for_invite(&invite, v)
        {
            out.sip.push_back((self.id, SipOut::Ack(ack)));
        }
        self.dialog = Some(dialog);
        if self.state != State::Inviting {
            // we gave up meanwhile: ACK and BYE it (RFC 3261 §13.2.2.4)
            self.send_bye(ctx, out);
            return;
        }
        let answer = msrp_line(&resp.body);
        let checked = match answer {
            None => Err(HistoryError::BadAnswer("no MSRP media".into())),
            // Seed 003 13.2.1.1 step 5.a.
            Some(a) if a.direction != Direction::SendOnly => Err(HistoryError::NotSendOnly),
            // RFC 6135: we offered actpass; the function connects to us.
            Some(a) if a.setup == Some(Setup::Passive) => Err(HistoryError::BadAnswer(
                "the server wants us to open the MSRP connection (a=setup:passive)".into(),
            )),
            Some(a) => MsrpPath::parse(&a.path.join(" "))
                .map_err(|e| HistoryError::BadAnswer(format!("a=path: {e}"))),
        };
        let remote = match checked {
            Ok(p) => p,
            Err(e) => {
                self.send_bye(ctx, out);
                self.fail(out, e);
                return;
            }
        };
        let mut cfg = SessionConfig::new(self.local_uri.clone(), remote);
        cfg.accept_types = HISTORY_ACCEPT_TYPES.iter().map(|s| s.to_string()).collect();
        let sid = self.local_uri.session_id.clone().unwrap_or_default();
        self.msrp = Some(MsrpSession::new(
            cfg,
            Box::new(SequentialIds::new(format!("{sid}x"))),
        ));
        self.state = State::Streaming;
        self.deadline = Some(now + IDLE_TIMEOUT);
        for f in std::mem::take(&mut self.early) {
            self.feed(now, out, f);
        }
    }

    fn feed(&mut self, now: Instant, out: &mut Out, frame: MsrpFrame) {
        let Some(msrp) = self.msrp.as_mut() else {
            self.early.push(frame);
            return;
        };
        msrp.handle_input(now, MsrpInput::Frame(frame));
        if let Some(conn) = self.conn {
            while let Some(bytes) = msrp.poll_transmit() {
                out.msrp.push_back(MsrpOut::Send { conn, bytes });
            }
        }
        while let Some(ev) = msrp.poll_event() {
            if let MsrpEvent::MessageReceived {
                content_type, body, ..
            } = ev
            {
                self.items
                    .push(HistoryItem::from_msrp(content_type.as_deref(), &body));
                self.deadline = Some(now + IDLE_TIMEOUT);
            }
        }
    }

    /// An in-dialog request from the function: its BYE ends the stream.
    fn handle_request(&mut self, out: &mut Out, key: TsxKey, req: &Request) {
        let (code, extra) = match req.method {
            Method::Bye | Method::Options => (200, vec![]),
            // no re-INVITE / UPDATE in a history session (RFC 3261 §21.4.6)
            _ => (405, vec![make_header("Allow", HISTORY_ALLOW)]),
        };
        let response = response_with(req, code, None, None, extra);
        out.sip
            .push_back((self.id, SipOut::Response { key, response }));
        if req.method == Method::Bye {
            if let Some(d) = self.dialog.as_mut() {
                d.terminate();
            }
            self.finish(out, true);
        }
    }

    fn owns_dialog(&self, call_id: &str, our_tag: &str) -> bool {
        self.call_id == call_id && self.local_tag == our_tag
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.deadline,
            self.msrp.as_ref().and_then(|m| m.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a retrieval (seed 003 13.1.3); [`HistoryEvent::Requested`]
    /// names it.
    pub fn start(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        local: &ChatLocal,
        query: HistoryQuery,
    ) -> HistoryId {
        self.next_id += 1;
        let id = self.next_id;
        let references = query.list();
        let sid = format!("h{}", alnum(&ctx.ids.tag()));
        let local_uri = MsrpUri::new(
            local.msrp_local.ip().to_string(),
            local.msrp_local.port(),
            sid,
        );
        let mut r = Retrieval {
            id,
            query: query.clone(),
            local: local.clone(),
            call_id: ctx.ids.call_id(),
            local_tag: ctx.ids.tag(),
            invite: None,
            auth_tries: 0,
            dialog: None,
            local_uri,
            msrp: None,
            conn: None,
            early: Vec::new(),
            items: Vec::new(),
            state: State::Inviting,
            deadline: None,
        };
        self.out.events.push_back(HistoryEvent::Requested {
            id,
            conversation: query.conversation.clone(),
            references: references.clone(),
        });
        if references.iter().all(|r| r.trim().is_empty()) {
            r.fail(
                &mut self.out,
                HistoryError::BadRequest("no history reference given".into()),
            );
        } else {
            match r.build_invite(ctx, 1, id) {
                Some(mut invite) => {
                    ctx.digest.authorize(&mut invite, &ctx.ids.cnonce());
                    r.invite = Some(invite.clone());
                    self.out.sip.push_back((id, SipOut::Request(invite)));
                }
                None => r.fail(
                    &mut self.out,
                    HistoryError::BadRequest(format!("cannot address {}", history_uri(&local.aor))),
                ),
            }
        }
        self.retrievals.insert(id, r);
        id
    }

    /// Offers a transaction-layer event; gives it back when it is not ours.
    pub fn handle_layer_event(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        ev: LayerEvent,
    ) -> Option<LayerEvent> {
        match ev {
            LayerEvent::Response { key, response } => {
                let Some(&id) = self.keys.get(&key) else {
                    return Some(LayerEvent::Response { key, response });
                };
                if response.status_code.code() >= 200 {
                    self.keys.remove(&key);
                }
                if let Some(r) = self.retrievals.get_mut(&id) {
                    r.handle_response(ctx, now, &mut self.out, response);
                }
                None
            }
            LayerEvent::StrayResponse { response, source } => {
                let found = call_id(&response.headers)
                    .zip(from_tag(&response.headers))
                    .and_then(|(c, t)| {
                        self.retrievals.values_mut().find(|r| r.owns_dialog(&c, &t))
                    });
                match found {
                    Some(r) => {
                        r.handle_response(ctx, now, &mut self.out, response);
                        None
                    }
                    None => Some(LayerEvent::StrayResponse { response, source }),
                }
            }
            LayerEvent::NewRequest {
                key,
                request,
                source,
                transport,
            } => {
                let found = call_id(&request.headers)
                    .zip(to_tag(&request.headers))
                    .and_then(|(c, t)| {
                        self.retrievals.values_mut().find(|r| r.owns_dialog(&c, &t))
                    });
                match found {
                    Some(r) => {
                        r.handle_request(&mut self.out, key, &request);
                        None
                    }
                    None => Some(LayerEvent::NewRequest {
                        key,
                        request,
                        source,
                        transport,
                    }),
                }
            }
            LayerEvent::Timeout { key } | LayerEvent::TransportError { key }
                if self.keys.contains_key(&key) =>
            {
                if let Some(id) = self.keys.remove(&key)
                    && let Some(r) = self.retrievals.get_mut(&id)
                    && r.state == State::Inviting
                {
                    r.fail(&mut self.out, HistoryError::NoResponse);
                }
                None
            }
            other => Some(other),
        }
    }

    /// An MSRP frame no chat claimed: ours when its connection is bound to
    /// a retrieval or its To-Path names one (RFC 4975 §7.3); given back
    /// otherwise.
    pub fn msrp_frame(
        &mut self,
        now: Instant,
        conn: MsrpConn,
        frame: MsrpFrame,
    ) -> Option<MsrpFrame> {
        let id = self.conns.get(&conn).copied().or_else(|| {
            let sid = frame.to_path()?.first()?.session_id.clone()?;
            self.retrievals
                .values()
                .find(|r| r.state != State::Done && r.local_uri.session_id.as_deref() == Some(&sid))
                .map(|r| r.id)
        });
        let Some(r) = id.and_then(|id| self.retrievals.get_mut(&id)) else {
            return Some(frame);
        };
        if r.conn.is_none() && r.state != State::Done {
            r.conn = Some(conn);
            self.conns.insert(conn, r.id);
        }
        if r.state != State::Done {
            r.feed(now, &mut self.out, frame);
        }
        None
    }

    /// An MSRP connection closed: the BYE that follows ends the retrieval.
    pub fn msrp_closed(&mut self, conn: MsrpConn) {
        if let Some(id) = self.conns.remove(&conn)
            && let Some(r) = self.retrievals.get_mut(&id)
        {
            r.conn = None;
        }
    }

    /// Deadlines: a silent server is BYEd and what arrived reported.
    pub fn handle_timeout(&mut self, ctx: &mut ChatCtx<'_>, now: Instant) {
        for r in self.retrievals.values_mut() {
            if let Some(m) = r.msrp.as_mut() {
                m.handle_timeout(now);
            }
            if r.deadline.is_some_and(|d| d <= now) && r.state == State::Streaming {
                tracing::info!(id = r.id, "history server went silent; ending");
                r.send_bye(ctx, &mut self.out);
                r.finish(&mut self.out, false);
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.retrievals
            .values()
            .filter_map(Retrieval::poll_timeout)
            .min()
    }

    /// Hands SIP to `layer` (requests as client transactions to `server`).
    pub fn flush_sip(
        &mut self,
        layer: &mut TransactionLayer,
        now: Instant,
        server: std::net::SocketAddr,
        transport: Transport,
    ) {
        while let Some((id, o)) = self.out.sip.pop_front() {
            match o {
                SipOut::Request(req) => match layer.send_request(now, req, server, transport) {
                    Ok(key) => {
                        self.keys.insert(key, id);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "history request not sent");
                        if let Some(r) = self.retrievals.get_mut(&id) {
                            r.fail(&mut self.out, HistoryError::NoResponse);
                        }
                    }
                },
                SipOut::Response { key, response } => {
                    if let Err(e) = layer.send_response(now, &key, response) {
                        tracing::debug!(error = %e, "history response not sent");
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
        let keys = &self.keys;
        self.retrievals
            .retain(|id, r| r.state != State::Done || keys.values().any(|k| k == id));
        let live = &self.retrievals;
        self.conns.retain(|_, id| live.contains_key(id));
    }

    pub fn poll_msrp(&mut self) -> Option<MsrpOut> {
        self.out.msrp.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<HistoryEvent> {
        self.out.events.pop_front()
    }

    /// Retrievals not yet reported.
    pub fn pending(&self) -> usize {
        self.retrievals
            .values()
            .filter(|r| r.state != State::Done)
            .count()
    }
}

/// One message a view already shows: its sender (as the view names it),
/// text and time (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown<'a> {
    pub sender: &'a str,
    pub text: &'a str,
    pub at_unix: Option<u64>,
}

/// The items a view does not show yet, in the order given (the server's
/// stored order). An item is shown when a message of the view has the same
/// sender (`sender_of` names the item's the way the view does) and text, at
/// a time within [`SAME_MESSAGE_WINDOW`] when both times are known; each
/// shown message stands for one item only, so a text said twice is kept twice.
pub fn unseen<'a>(
    shown: &[Shown<'_>],
    items: &'a [HistoryItem],
    sender_of: impl Fn(&HistoryItem) -> String,
) -> Vec<&'a HistoryItem> {
    let mut used = vec![false; shown.len()];
    let window = SAME_MESSAGE_WINDOW.as_secs();
    items
        .iter()
        .filter(|item| {
            let sender = sender_of(item);
            let at = item.at_unix();
            let hit = shown.iter().enumerate().position(|(i, s)| {
                !used[i]
                    && s.sender == sender
                    && s.text == item.text
                    && match (s.at_unix, at) {
                        (Some(a), Some(b)) => a.abs_diff(b) <= window,
                        _ => true,
                    }
            });
            match hit {
                Some(i) => {
                    used[i] = true;
                    false
                }
                None => true,
            }
        })
        .collect()
}

/// Reads an RFC 3339 date-time (`2026-11-23T15:00:00Z`, fractions and
/// `±hh:mm` offsets allowed) as seconds since the Unix epoch. Never panics;
/// `None` for anything else or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6
            && (o.starts_with('+') || o.starts_with('-'))
            && o.get(3..4) == Some(":") =>
        {
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    // days from civil (H. Hinnant), the inverse of chats::rfc3339
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests;
