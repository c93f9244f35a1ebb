//! [`UserAgent`]: the client's sans-IO aggregate. It owns a
//! [`TransactionLayer`] and on top of it registers the device (RFC 3261
//! §10, GRUU per RFC 5627, Digest per RFC 3261 §22 / RFC 8760), watches the
//! AOR's registrations (RFC 3680), sends and receives pager MESSAGEs
//! (RFC 3428) with isComposing (RFC 3994) and answers OPTIONS.
//!
//! Driven from outside in the STYLE.md shape: `handle_input`,
//! `handle_command`, `handle_timeout`, then drain `poll_transmit`,
//! `poll_event` and sleep until `poll_timeout`. Identifiers come from the
//! injected [`IdGen`]; no clock, no socket.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::{Method, Request, Response};

use super::composing::{ComposingAction, ComposingReceiver, ComposingSender};
use super::ids::UaIds;
use super::outgoing::{OutRequest, uri_of};
use super::reg_watch::{ReceivedNotify, RegWatch, WatchState};
use super::registration::{RegState, Registration, granted_expires, our_binding};
use super::{ClientEvent, Command, DEVICE_PARAM, Device, USER_AGENT, UaConfig};
use crate::net::sip_transport::Incoming;
use crate::proto::bodies::is_composing::{self, IsComposing};
use crate::proto::bodies::reginfo::{self, Reginfo};
use crate::proto::ids::IdGen;
use crate::proto::sip::build::{call_id, from_tag, response_with, to_tag};
use crate::proto::sip::digest::{AuthKind, DigestClient, DigestError, parse_challenges};
use crate::proto::sip::headers::{
    Event, HeadersExt, NameAddr, SubscriptionState, Warning, make_header, quote,
};
use crate::proto::sip::message::{parse_message, reason_phrase, to_bytes};
use crate::proto::sip::transaction::{LayerEvent, TransactionLayer, Transport, TsxKey};

mod chat_glue;
mod cv_glue;
mod deferred_glue;
mod history_glue;

/// Methods we answer (Allow).
pub const ALLOW: &str = "MESSAGE, OPTIONS, NOTIFY";
/// Bodies we take (Accept).
pub const ACCEPT: &str =
    "text/plain, message/cpim, application/im-iscomposing+xml, application/reginfo+xml";
/// Option tags we support.
pub const SUPPORTED: &str = "gruu";

/// Why a client transaction was started.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Register,
    Unregister,
    Subscribe,
    Unsubscribe,
    Message { id: String, to: String },
    Composing { to: String },
}

impl Purpose {
    fn is_register(&self) -> bool {
        matches!(self, Purpose::Register | Purpose::Unregister)
    }
}

#[derive(Debug, Clone)]
struct Pending {
    purpose: Purpose,
    out: OutRequest,
    /// How many times this request was re-sent with fresh credentials.
    auth_tries: u8,
}

/// The client user agent of one device.
pub struct UserAgent {
    /// 1-1 chats over MSRP ([`super::chats::Chats`], hooks in `chat_glue`).
    chats: super::chats::Chats,
    /// Deferred messages ([`super::deferred::Deferred`], hooks in `deferred_glue`).
    deferred: super::deferred::Deferred,
    /// Content viewing ([`super::content_viewing::ContentViewing`], hooks in `cv_glue`).
    viewing: super::content_viewing::ContentViewing,
    /// Player work for the driver.
    viewing_out: VecDeque<super::content_viewing::ViewingOut>,
    /// History retrievals ([`super::history::History`], hooks in `history_glue`).
    history: super::history::History,
    cfg: UaConfig,
    ids: Box<dyn IdGen>,
    layer: TransactionLayer,
    reg: Registration,
    watch: RegWatch,
    /// Answers 401s to REGISTER.
    reg_digest: DigestClient,
    /// Answers 407s (and 401s) to every other request.
    proxy_digest: DigestClient,
    pending: HashMap<TsxKey, Pending>,
    sender: ComposingSender,
    receiver: ComposingReceiver,
    events: VecDeque<ClientEvent>,
    next_message: u64,
    started: bool,
    /// Shutdown deadline, once asked.
    shutdown: Option<Instant>,
    /// The `opaque` of the server's last Digest challenge.
    server_opaque: Option<String>,
    stopped: bool,
    /// Why the last request could not be sent (a refused connection, a
    /// server certificate we do not trust), told with the failure.
    send_error: Option<String>,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("aor", &self.cfg.aor())
            .field("device", &self.cfg.device)
            .field("registration", &self.reg.state)
            .field("watch", &self.watch.state)
            .finish_non_exhaustive()
    }
}

impl UserAgent {
    pub fn new(cfg: UaConfig, mut ids: Box<dyn IdGen>) -> Self {
        let reg = Registration::new(
            ids.call_id(),
            cfg.register_expires,
            cfg.retry_base,
            cfg.retry_max,
        );
        let chats = Self::default_chats(&cfg, String::new());
        let mut ua = UserAgent {
            chats,
            deferred: deferred_glue::new_deferred(&cfg, String::new()),
            viewing: super::content_viewing::ContentViewing::new(super::content_viewing::CvLocal {
                aor: cfg.aor(),
                domain: cfg.domain.clone(),
                contact_uri: String::new(),
                instance_id: cfg.instance_id.clone(),
                sip_local: cfg.local,
                transport: cfg.transport,
                server: cfg.server,
            }),
            viewing_out: VecDeque::new(),
            history: super::history::History::new(),
            reg_digest: DigestClient::new(cfg.user.clone(), cfg.password.clone()),
            proxy_digest: DigestClient::new(cfg.user.clone(), cfg.password.clone()),
            sender: ComposingSender::new(cfg.composing),
            receiver: ComposingReceiver::new(),
            layer: TransactionLayer::new(),
            watch: RegWatch::new(),
            pending: HashMap::new(),
            events: VecDeque::new(),
            next_message: 0,
            started: false,
            shutdown: None,
            server_opaque: None,
            stopped: false,
            send_error: None,
            reg,
            ids,
            cfg,
        };
        ua.chats.local_mut().contact_uri = ua.contact_uri();
        ua.deferred.local_mut().contact_uri = ua.contact_uri();
        ua.viewing = ua.new_viewing();
        ua
    }

    pub fn config(&self) -> &UaConfig {
        &self.cfg
    }

    /// `sip:user@domain`.
    pub fn aor(&self) -> String {
        self.cfg.aor()
    }

    /// Our public GRUU, once registered.
    pub fn gruu(&self) -> Option<&str> {
        self.reg.gruu.as_deref()
    }

    pub fn is_registered(&self) -> bool {
        self.reg.is_registered()
    }

    pub fn registration_state(&self) -> RegState {
        self.reg.state
    }

    pub fn watch_state(&self) -> WatchState {
        self.watch.state
    }

    /// The AOR's devices, as last notified.
    pub fn devices(&self) -> &[Device] {
        self.watch.devices()
    }

    /// Whether shutdown completed.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The contact URI: `sip:user@ip:port;transport=udp`.
    pub fn contact_uri(&self) -> String {
        let l = self.cfg.local;
        let host = match l {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        format!(
            "sip:{}@{host}:{};transport={}",
            self.cfg.user,
            l.port(),
            self.cfg.transport.uri_param()
        )
    }

    /// The registered Contact: URI, `+sip.instance` (RFC 5626 §4.1) and the
    /// device name ([`DEVICE_PARAM`]).
    pub fn contact(&self) -> String {
        format!(
            "<{}>;+sip.instance=\"<{}>\";{DEVICE_PARAM}={}",
            self.contact_uri(),
            self.cfg.instance_id,
            quote(&self.cfg.device)
        )
    }

    /// Start: the first REGISTER. Also done by [`Command::Register`].
    pub fn start(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        self.send_register(now);
        self.drain(now);
    }

    /// Bytes received from the network.
    pub fn handle_input(&mut self, now: Instant, input: Incoming) {
        let msg = match parse_message(&input.bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, source = %input.source, "dropping unparsable SIP message");
                return;
            }
        };
        if let Err(e) = self
            .layer
            .handle_message(now, msg, input.source, input.transport)
        {
            tracing::debug!(error = %e, source = %input.source, "transaction layer refused message");
        }
        self.drain(now);
    }

    /// The driver could not send `bytes` (e.g. TCP connection refused): the
    /// request's client transaction fails now instead of at Timer F/B
    /// (RFC 3261 §17.1.4).
    pub fn handle_send_error(&mut self, now: Instant, bytes: &[u8], error: &str) {
        if let Ok(rsip::SipMessage::Request(req)) = parse_message(bytes)
            && let Ok(key) = TsxKey::client(&req)
        {
            self.send_error = Some(error.to_owned());
            self.layer.handle_transport_error(now, &key);
            self.drain(now);
        }
    }

    /// An application command.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        if self.stopped || (self.shutdown.is_some() && cmd != Command::Shutdown) {
            return;
        }
        match cmd {
            Command::Register => {
                if self.started {
                    if self.reg.state != RegState::Registering {
                        self.send_register(now);
                    }
                } else {
                    self.start(now);
                }
            }
            Command::SendMessage { to, text, id } => {
                let id = id.unwrap_or_else(|| {
                    self.next_message += 1;
                    format!("m{}", self.next_message)
                });
                self.sender.message_sent(&to);
                if text.len() > super::large_message::PAGER_LIMIT {
                    // seed 003 9.1.1.2: larger than the pager takes
                    self.pager_as_large(now, id, to, &text);
                } else {
                    self.send_message(now, id, to, text);
                }
            }
            Command::Typing { to } => {
                if let Some(a) = self.sender.typing(now, &to) {
                    self.composing_action(now, a);
                }
            }
            Command::StopTyping { to } => {
                if let Some(a) = self.sender.stop(&to) {
                    self.composing_action(now, a);
                }
            }
            Command::Shutdown => self.begin_shutdown(now),
            Command::Chat(c) => self.chat_command(now, c),
            Command::Viewing(c) => self.viewing_command(now, c),
            Command::History(q) => self.history_command(now, q),
            Command::Deferred(c) => self.deferred_command(now, c),
        }
        self.drain(now);
    }

    /// Timers: the transactions', refreshes, retries, isComposing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.drain(now);
        self.chat_timeout(now);
        self.cv_timeout(now);
        self.history_timeout(now);
        self.deferred_timeout(now);
        if self.shutdown.is_none() && self.started {
            if self.reg.due(now) {
                self.send_register(now);
            }
            if self.watch.refresh_due(now) {
                self.send_subscribe(now, false);
            }
            if self.watch.retry_due(now) {
                if self.reg.is_registered() {
                    self.send_subscribe(now, true);
                } else {
                    // resumed once the registration is back
                    self.watch.state = WatchState::Idle;
                }
            }
        }
        for a in self.sender.handle_timeout(now) {
            self.composing_action(now, a);
        }
        for from in self.receiver.handle_timeout(now) {
            self.events.push_back(ClientEvent::ComposingChanged {
                from,
                active: false,
            });
        }
        if self.shutdown.is_some_and(|at| at <= now) {
            self.finish_stop();
        }
        self.drain(now);
    }

    /// The next message to put on the wire: destination, transport, bytes.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Transport, Vec<u8>)> {
        let t = self.layer.poll_transmit()?;
        Some((t.to, t.transport, to_bytes(&t.message)))
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The soonest instant `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return self.layer.poll_timeout();
        }
        let own = if self.shutdown.is_none() {
            [self.reg.poll_timeout(), self.watch.poll_timeout()]
        } else {
            [self.shutdown, None]
        };
        own.into_iter()
            .chain([
                self.layer.poll_timeout(),
                self.chats.poll_timeout(),
                self.deferred.poll_timeout(),
                self.viewing.poll_timeout(),
                self.history.poll_timeout(),
                self.sender.poll_timeout(),
                self.receiver.poll_timeout(),
            ])
            .flatten()
            .min()
    }

    // ---- sending -------------------------------------------------------

    fn aor_name_addr(&self) -> NameAddr {
        let n = NameAddr::new(self.cfg.aor());
        match &self.cfg.display_name {
            Some(d) => n.with_display_name(d.clone()),
            None => n,
        }
    }

    fn base_request(
        &mut self,
        method: Method,
        uri: String,
        to: NameAddr,
        call_id: String,
        cseq: u32,
    ) -> OutRequest {
        OutRequest {
            method,
            uri,
            from: self.aor_name_addr(),
            from_tag: self.ids.tag(),
            to,
            call_id,
            cseq,
            contact: None,
            headers: Vec::new(),
            body: None,
        }
        .header("User-Agent", USER_AGENT)
    }

    /// Starts a client transaction for `out` towards the server.
    fn send(&mut self, now: Instant, purpose: Purpose, out: OutRequest, auth_tries: u8) -> bool {
        let branch = self.ids.branch();
        let mut req = match out.build(self.cfg.local, self.cfg.transport, &branch) {
            Ok(r) => r,
            Err(e) => {
                self.send_failed(
                    now,
                    &purpose,
                    None,
                    format!("cannot build request: {e}"),
                    None,
                );
                return false;
            }
        };
        let cnonce = self.ids.cnonce();
        let digest = if purpose.is_register() {
            &mut self.reg_digest
        } else {
            &mut self.proxy_digest
        };
        // credentials for a realm that challenged us before (RFC 3261 §22.3)
        digest.authorize(&mut req, &cnonce);
        match self
            .layer
            .send_request(now, req, self.cfg.server, self.cfg.transport)
        {
            Ok(key) => {
                self.pending.insert(
                    key,
                    Pending {
                        purpose,
                        out,
                        auth_tries,
                    },
                );
                true
            }
            Err(e) => {
                self.send_failed(
                    now,
                    &purpose,
                    None,
                    format!("cannot send request: {e}"),
                    None,
                );
                false
            }
        }
    }

    fn send_register(&mut self, now: Instant) {
        let cseq = self.reg.next_cseq();
        let aor = self.cfg.aor();
        let mut out = self.base_request(
            Method::Register,
            format!("sip:{}", self.cfg.domain),
            NameAddr::new(aor),
            self.reg.call_id.clone(),
            cseq,
        );
        out.contact = Some(format!("{};expires={}", self.contact(), self.reg.expires));
        let out = out.header("Supported", SUPPORTED).header("Allow", ALLOW);
        self.reg.sending();
        self.send(now, Purpose::Register, out, 0);
    }

    fn send_unregister(&mut self, now: Instant) {
        let cseq = self.reg.next_cseq();
        let aor = self.cfg.aor();
        let mut out = self.base_request(
            Method::Register,
            format!("sip:{}", self.cfg.domain),
            NameAddr::new(aor),
            self.reg.call_id.clone(),
            cseq,
        );
        out.contact = Some(format!("{};expires=0", self.contact()));
        let out = out.header("Expires", 0).header("Supported", SUPPORTED);
        self.reg.unregistering();
        self.send(now, Purpose::Unregister, out, 0);
    }

    /// SUBSCRIBE Event: reg to our AOR: a new subscription (`fresh`) or a
    /// refresh inside the dialog (RFC 6665 §4.1.2.1).
    fn send_subscribe(&mut self, now: Instant, fresh: bool) {
        if fresh || !self.watch.in_dialog() {
            let (cid, tag) = (self.ids.call_id(), self.ids.tag());
            self.watch.start(cid, tag);
        }
        let expires = self.cfg.subscribe_expires;
        self.watch.sending();
        self.subscribe_with(now, expires, Purpose::Subscribe);
    }

    fn subscribe_with(&mut self, now: Instant, expires: u32, purpose: Purpose) {
        let cseq = self.watch.next_cseq();
        let aor = self.cfg.aor();
        let mut to = NameAddr::new(aor.clone());
        if let Some(t) = &self.watch.remote_tag {
            to = to.with_param("tag", Some(t));
        }
        let uri = self.watch.remote_target.clone().unwrap_or(aor);
        let mut out =
            self.base_request(Method::Subscribe, uri, to, self.watch.call_id.clone(), cseq);
        out.from_tag = self.watch.from_tag.clone();
        out.contact = Some(format!("<{}>", self.contact_uri()));
        let out = out
            .header("Event", Event::new("reg"))
            .header("Accept", reginfo::CONTENT_TYPE)
            .header("Expires", expires)
            .header("Allow", ALLOW);
        self.send(now, purpose, out, 0);
    }

    fn send_message(&mut self, now: Instant, id: String, to: String, text: String) {
        let (cid, uri) = (self.ids.call_id(), to.clone());
        let mut out = self.base_request(Method::Message, uri, NameAddr::new(to.clone()), cid, 1);
        out.body = Some(("text/plain;charset=UTF-8".to_owned(), text.into_bytes()));
        self.send(now, Purpose::Message { id, to }, out, 0);
    }

    fn composing_action(&mut self, now: Instant, a: ComposingAction) {
        let (to, doc) = match a {
            ComposingAction::SendActive { to } => (to, self.sender.config().active_body()),
            ComposingAction::SendIdle { to } => (to, IsComposing::idle()),
        };
        let cid = self.ids.call_id();
        let mut out = self.base_request(
            Method::Message,
            to.clone(),
            NameAddr::new(to.clone()),
            cid,
            1,
        );
        out.body = Some((is_composing::CONTENT_TYPE.to_owned(), doc.to_bytes()));
        self.send(now, Purpose::Composing { to }, out, 0);
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        self.shutdown = Some(now + self.cfg.shutdown_grace);
        self.deferred_shutdown(now);
        if self.watch.in_dialog() {
            self.watch.ending();
            self.subscribe_with(now, 0, Purpose::Unsubscribe);
        } else {
            self.watch.ended();
        }
        if self.reg.granted.is_some() || self.reg.state == RegState::Registering {
            self.send_unregister(now);
        } else {
            self.reg.unregistered();
        }
        self.check_stopped();
    }

    fn check_stopped(&mut self) {
        if self.shutdown.is_none() || self.stopped {
            return;
        }
        let waiting = self
            .pending
            .values()
            .any(|p| matches!(p.purpose, Purpose::Unregister | Purpose::Unsubscribe));
        if !waiting {
            self.finish_stop();
        }
    }

    fn finish_stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.events.push_back(ClientEvent::Stopped);
        }
    }

    // ---- receiving -----------------------------------------------------

    fn drain(&mut self, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            let Some(ev) = self.cv_layer_event(now, ev) else {
                continue;
            };
            let Some(ev) = self.history_layer_event(now, ev) else {
                continue;
            };
            let Some(ev) = self.deferred_layer_event(now, ev) else {
                continue;
            };
            let Some(ev) = self.chat_layer_event(now, ev) else {
                continue;
            };
            match ev {
                LayerEvent::NewRequest { key, request, .. } => self.on_request(now, key, request),
                LayerEvent::Cancel {
                    key,
                    request,
                    invite,
                    ..
                } => {
                    // we never leave an INVITE pending, so there is nothing to cancel
                    let code = if invite.is_some() { 200 } else { 481 };
                    self.respond(now, &key, &request, code, vec![]);
                }
                LayerEvent::Response { key, response } => self.on_response(now, key, response),
                LayerEvent::Timeout { key } | LayerEvent::TransportError { key } => {
                    if let Some(p) = self.pending.remove(&key) {
                        self.on_no_response(now, p);
                    }
                }
                LayerEvent::Ack { .. }
                | LayerEvent::StrayResponse { .. }
                | LayerEvent::Terminated { .. } => {}
            }
        }
        self.chat_flush(now);
        self.cv_flush(now);
        self.history_flush(now);
        self.deferred_flush(now);
    }

    fn respond(
        &mut self,
        now: Instant,
        key: &TsxKey,
        req: &Request,
        code: u16,
        extra: Vec<rsip::Header>,
    ) {
        let tag = self.ids.tag();
        let resp = response_with(req, code, Some(&tag), None, extra);
        if let Err(e) = self.layer.send_response(now, key, resp) {
            tracing::debug!(error = %e, code, "response not sent");
        }
    }

    fn capabilities() -> Vec<rsip::Header> {
        vec![
            make_header("Allow", ALLOW),
            make_header("Accept", ACCEPT),
            make_header("Supported", SUPPORTED),
        ]
    }

    fn on_request(&mut self, now: Instant, key: TsxKey, req: Request) {
        match req.method {
            // RFC 3261 §11.2
            Method::Options => self.respond(now, &key, &req, 200, Self::capabilities()),
            Method::Message => self.on_message(now, key, req),
            Method::Notify => self.on_notify(now, key, req),
            // RFC 6665 §8.3.2: we are no notifier
            Method::Subscribe => self.respond(now, &key, &req, 489, vec![]),
            Method::Ack => {}
            Method::Bye => self.respond(now, &key, &req, 481, vec![]),
            Method::Invite => self.decline_call(now, key, req),
            // RFC 3261 §8.2.1
            _ => self.respond(now, &key, &req, 405, vec![make_header("Allow", ALLOW)]),
        }
    }

    /// An INVITE that is neither a chat (MSRP) nor a content viewing, e.g.
    /// an audio call from baresip or Linphone: declined with 488 and a
    /// Warning 304 saying why (RFC 3261 §21.4.26, §20.43), and the user told.
    fn decline_call(&mut self, now: Instant, key: TsxKey, req: Request) {
        let from = req
            .headers
            .get_raw("From")
            .map(|v| uri_of(&v))
            .unwrap_or_default();
        // the offered media, from the SDP's m= lines (RFC 4566 §5.14)
        let media: Vec<String> = String::from_utf8_lossy(&req.body)
            .lines()
            .filter_map(|l| l.strip_prefix("m="))
            .filter_map(|m| m.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        let w = Warning::new(
            304,
            &self.cfg.domain,
            "Media type not available: isc takes MSRP chat and content viewing only, no calls",
        );
        self.respond(
            now,
            &key,
            &req,
            488,
            vec![make_header("Warning", &w.to_string())],
        );
        self.events
            .push_back(ClientEvent::CallDeclined { from, media });
    }

    fn on_message(&mut self, now: Instant, key: TsxKey, req: Request) {
        let from = req
            .headers
            .get_raw("From")
            .map(|v| uri_of(&v))
            .unwrap_or_default();
        let content_type = req.headers.get_raw("Content-Type");
        let is_composing = content_type.as_deref().is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(is_composing::CONTENT_TYPE))
        });
        if is_composing {
            match IsComposing::parse(&req.body) {
                Ok(doc) => {
                    self.respond(now, &key, &req, 200, vec![]);
                    if let Some(active) = self.receiver.indication(now, &from, &doc) {
                        self.events
                            .push_back(ClientEvent::ComposingChanged { from, active });
                    }
                }
                Err(e) => {
                    let w = Warning::new(399, &self.cfg.domain, &format!("bad isComposing: {e}"));
                    self.respond(
                        now,
                        &key,
                        &req,
                        400,
                        vec![make_header("Warning", &w.to_string())],
                    );
                }
            }
            return;
        }
        self.respond(now, &key, &req, 200, vec![]);
        // RFC 3994 §4: a message ends the peer's active state
        if self.receiver.message(&from) {
            self.events.push_back(ClientEvent::ComposingChanged {
                from: from.clone(),
                active: false,
            });
        }
        self.events.push_back(ClientEvent::MessageReceived {
            to: req
                .headers
                .get_raw("To")
                .map(|v| uri_of(&v))
                .unwrap_or_default(),
            from,
            content_type,
            asserted_identity: req
                .headers
                .get_raw("P-Asserted-Identity")
                .map(|v| uri_of(&v)),
            call_id: call_id(&req.headers),
            body: req.body,
        });
    }

    fn on_notify(&mut self, now: Instant, key: TsxKey, req: Request) {
        let is_reg = req
            .headers
            .typed::<Event>()
            .ok()
            .flatten()
            .is_some_and(|e| e.package.eq_ignore_ascii_case("reg"));
        let cid = call_id(&req.headers).unwrap_or_default();
        if !is_reg || !self.watch.matches(&cid, to_tag(&req.headers).as_deref()) {
            // RFC 6665 §4.1.3: no such subscription
            self.respond(now, &key, &req, 481, vec![]);
            return;
        }
        self.respond(now, &key, &req, 200, vec![]);
        let sub_state = req.headers.typed::<SubscriptionState>().ok().flatten();
        let contact = req.headers.get_raw("Contact").map(|v| uri_of(&v));
        let body = if req.body.is_empty() {
            None
        } else {
            match Reginfo::parse(&req.body) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable reginfo in NOTIFY");
                    None
                }
            }
        };
        let (aor, inst) = (self.cfg.aor(), self.cfg.instance_id.clone());
        let notify = ReceivedNotify {
            sub_state,
            from_tag: from_tag(&req.headers),
            contact,
            body,
        };
        let out = self
            .watch
            .handle_notify(now, notify, &aor, &inst, self.cfg.retry_base);
        if let Some(devices) = out.devices {
            self.events
                .push_back(ClientEvent::DevicesChanged { devices });
        }
        if let Some(reason) = out.ended {
            self.events.push_back(ClientEvent::WatchEnded { reason });
        }
    }

    fn on_response(&mut self, now: Instant, key: TsxKey, resp: Response) {
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        if self.shutdown.is_some() && matches!(p.purpose, Purpose::Register | Purpose::Subscribe) {
            // superseded by the un-REGISTER / un-SUBSCRIBE of the shutdown
            return;
        }
        if (code == 401 || code == 407) && self.retry_with_credentials(now, &p, &resp) {
            return;
        }
        let purpose = p.purpose.clone();
        match purpose {
            Purpose::Register => self.on_register_response(now, p, resp),
            Purpose::Unregister => {
                self.reg.unregistered();
                self.events.push_back(ClientEvent::Unregistered);
                self.check_stopped();
            }
            Purpose::Subscribe => self.on_subscribe_response(now, resp),
            Purpose::Unsubscribe => {
                self.watch.ended();
                self.check_stopped();
            }
            Purpose::Message { id, to } => {
                if (200..300).contains(&code) {
                    self.events.push_back(ClientEvent::MessageDelivered {
                        id,
                        to,
                        status: code,
                    });
                } else {
                    let warning = warning_text(&resp);
                    self.events.push_back(ClientEvent::MessageFailed {
                        id,
                        to,
                        status: Some(code),
                        reason: reason_phrase(&resp.status_code),
                        warning,
                    });
                }
            }
            Purpose::Composing { to } => {
                // baresip answers isComposing with 415: stop sending it there
                if code == 415 {
                    self.sender.mark_unsupported(&to);
                    self.events
                        .push_back(ClientEvent::ComposingUnsupported { to });
                }
            }
        }
    }

    /// A 401/407: answer the challenge and re-send (RFC 3261 §22.2). False
    /// when the credentials were refused or the challenge cannot be met.
    fn retry_with_credentials(&mut self, now: Instant, p: &Pending, resp: &Response) -> bool {
        self.check_server_restart(now, p, resp);
        if p.auth_tries >= 2 {
            return false;
        }
        let digest = if p.purpose.is_register() {
            &mut self.reg_digest
        } else {
            &mut self.proxy_digest
        };
        let ok = match digest.handle_challenge(resp) {
            Ok(()) => true,
            // credentials held from an earlier challenge failed (an old
            // nonce without stale=true): answer this challenge afresh once
            Err(DigestError::Rejected { .. }) if p.auth_tries == 0 => {
                digest.clear();
                digest.handle_challenge(resp).is_ok()
            }
            Err(e) => {
                tracing::debug!(error = %e, "challenge not answered");
                false
            }
        };
        if !ok {
            return false;
        }
        let mut out = p.out.clone();
        out.cseq = match p.purpose {
            Purpose::Register | Purpose::Unregister => self.reg.next_cseq(),
            Purpose::Subscribe | Purpose::Unsubscribe => self.watch.next_cseq(),
            _ => out.cseq + 1,
        };
        self.send(now, p.purpose.clone(), out, p.auth_tries + 1)
    }

    /// A challenge whose `opaque` differs from the server's earlier ones
    /// means a restarted server (its opaque is per run): it lost our
    /// binding and subscription, so register and subscribe again now
    /// instead of at the next refresh.
    fn check_server_restart(&mut self, now: Instant, p: &Pending, resp: &Response) {
        let opaque = [AuthKind::Www, AuthKind::Proxy]
            .into_iter()
            .flat_map(|k| k.challenge_values(&resp.headers))
            .flat_map(|v| parse_challenges(v).unwrap_or_default())
            .find_map(|c| c.opaque);
        let Some(opaque) = opaque else { return };
        let restarted = self.server_opaque.as_ref().is_some_and(|o| *o != opaque);
        self.server_opaque = Some(opaque);
        if restarted && !p.purpose.is_register() && self.shutdown.is_none() {
            tracing::info!("server restarted (new digest opaque): registering again");
            self.reg.retry_now(now);
            if self.watch.state == WatchState::Active {
                self.watch.failed(now, Duration::ZERO, Duration::ZERO);
            }
        }
    }

    fn on_register_response(&mut self, now: Instant, _p: Pending, resp: Response) {
        let code = resp.status_code.code();
        if (200..300).contains(&code) {
            let binding = our_binding(&resp, &self.cfg.instance_id, &self.contact_uri());
            let granted = granted_expires(&resp, binding.as_ref(), self.reg.expires);
            if granted == 0 {
                self.registration_failed(now, Some(code), "binding not kept".into(), true);
                return;
            }
            let gruu = binding.as_ref().and_then(|b| b.pub_gruu());
            let news = self.reg.succeeded(now, granted, gruu.clone());
            if news {
                self.events.push_back(ClientEvent::Registered {
                    aor: self.cfg.aor(),
                    gruu,
                    expires: granted,
                });
                self.deferred_registered(now);
                // a new or recovered registration: (re)subscribe, the server may have lost it
                if self.cfg.watch_registrations && self.watch.state != WatchState::Subscribing {
                    self.send_subscribe(now, true);
                }
            } else if self.cfg.watch_registrations && self.watch.state == WatchState::Idle {
                self.send_subscribe(now, true);
            }
            return;
        }
        if code == 423 {
            // RFC 3261 §10.2.8: ask again with at least Min-Expires
            let min = resp
                .headers
                .get_raw("Min-Expires")
                .and_then(|v| v.trim().parse::<u32>().ok());
            if let Some(min) = min.filter(|m| *m > self.reg.expires) {
                self.reg.expires = min;
                self.send_register(now);
                return;
            }
        }
        let retry = !matches!(code, 401 | 403 | 404 | 407);
        let reason = match warning_text(&resp) {
            Some(w) => format!("{} ({w})", reason_phrase(&resp.status_code)),
            None => reason_phrase(&resp.status_code),
        };
        self.registration_failed(now, Some(code), reason, retry);
    }

    fn registration_failed(
        &mut self,
        now: Instant,
        status: Option<u16>,
        reason: String,
        retry: bool,
    ) {
        let retry_in = self.reg.failed(now, retry);
        self.events.push_back(ClientEvent::RegistrationFailed {
            status,
            reason,
            retry_in,
        });
    }

    fn on_subscribe_response(&mut self, now: Instant, resp: Response) {
        let code = resp.status_code.code();
        if (200..300).contains(&code) {
            let expires = resp
                .headers
                .get_raw("Expires")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(self.cfg.subscribe_expires);
            if expires == 0 {
                self.watch.ended();
                return;
            }
            let contact = resp.headers.get_raw("Contact").map(|v| uri_of(&v));
            self.watch
                .subscribed(now, expires, to_tag(&resp.headers), contact);
        } else if matches!(code, 403 | 404 | 489) {
            // not offered to us: give up (RFC 6665 §4.1.2.2)
            self.watch.ended();
            self.events.push_back(ClientEvent::WatchEnded {
                reason: format!("{code} {}", reason_phrase(&resp.status_code)),
            });
        } else {
            if code == 481 {
                // the notifier forgot our dialog: a restarted server, which
                // forgot our binding as well (RFC 6665 §4.1.2.2)
                self.reg.retry_now(now);
            }
            self.watch
                .failed(now, self.cfg.retry_base, self.cfg.retry_max);
        }
    }

    /// Timer F/B or a transport error: no final response will come.
    fn on_no_response(&mut self, now: Instant, p: Pending) {
        if self.shutdown.is_some() && matches!(p.purpose, Purpose::Register | Purpose::Subscribe) {
            return;
        }
        match p.purpose {
            Purpose::Register => {
                let reason = match self.send_error.take() {
                    Some(e) => format!("cannot reach the server: {e}"),
                    None => "no response from server".into(),
                };
                self.registration_failed(now, None, reason, true)
            }
            Purpose::Unregister => {
                self.reg.unregistered();
                self.check_stopped();
            }
            Purpose::Subscribe => {
                self.watch
                    .failed(now, self.cfg.retry_base, self.cfg.retry_max);
                self.reg.retry_now(now);
            }
            Purpose::Unsubscribe => {
                self.watch.ended();
                self.check_stopped();
            }
            Purpose::Message { .. } | Purpose::Composing { .. } => {
                let purpose = p.purpose.clone();
                self.send_failed(now, &purpose, None, "no response (timeout)".into(), None);
                // the server may have restarted and lost our binding
                self.reg.retry_now(now);
            }
        }
    }

    /// A request could not be sent or got no answer.
    fn send_failed(
        &mut self,
        now: Instant,
        purpose: &Purpose,
        status: Option<u16>,
        reason: String,
        warning: Option<String>,
    ) {
        match purpose {
            Purpose::Message { id, to } => self.events.push_back(ClientEvent::MessageFailed {
                id: id.clone(),
                to: to.clone(),
                status,
                reason,
                warning,
            }),
            Purpose::Register => self.registration_failed(now, status, reason, true),
            Purpose::Subscribe => {
                self.watch
                    .failed(now, self.cfg.retry_base, self.cfg.retry_max);
            }
            Purpose::Unregister => self.reg.unregistered(),
            Purpose::Unsubscribe => self.watch.ended(),
            Purpose::Composing { .. } => {}
        }
    }
}

/// The text of the first Warning header, if any.
fn warning_text(resp: &Response) -> Option<String> {
    match resp.headers.typed::<Warning>() {
        Ok(Some(w)) => w.0.first().map(|v| format!("{} {}", v.code, v.text)),
        _ => resp.headers.get_raw("Warning"),
    }
}
