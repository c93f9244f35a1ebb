//! The server's IO-free core: parses what the driver received, runs it
//! through the transaction layer and dispatches it to the roles — the
//! registrar (with digest authentication), the registration event notifier,
//! the proxy, the B2BUA roles in the media path — and hands back what to
//! send and when to wake.
//!
//! Dispatch to a B2BUA role (today the ISC Media Function and the CPM
//! Participating Function; the conference focus plugs in the same way):
//! - an initial request, after digest authentication, the From check and
//!   P-Asserted-Identity insertion, goes to the role whose predicate claims
//!   it (`isc_media_function::handles`: an INVITE whose Accept-Contact names
//!   an ISC ICSI; `is_cpm_session`: an INVITE with the CPM ICSI);
//! - `OPTIONS sip:content@<domain>` is answered with the content list
//!   ([`super::content_list`]);
//! - the Media Function's RTP/RTCP: [`ServerCore::poll_media_timeout`],
//!   [`ServerCore::handle_media_timeout`] (with the wall clock),
//!   [`ServerCore::poll_rtp_transmit`];
//! - a response / Timer B-F timeout / transport error on a client
//!   transaction the role `owns_client` goes to it, as do stray 2xx;
//! - an in-dialog request whose dialog the role `knows_dialog`, an ACK the
//!   role's `on_ack` accepts, a CANCEL of an INVITE it `owns_invite`;
//! - MSRP transport events go to [`ServerCore::handle_msrp`], its actions come
//!   back from [`ServerCore::poll_msrp`];
//! - everything else keeps the proxy path.
//!
//! A role acts through a [`SipCtx`] (now, transaction layer, id generator,
//! our address) built from the core's fields.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::ids::IdGen;
use crate::proto::sip::build::response_with;
use crate::proto::sip::dialog::{Dialog, DialogId};
use crate::proto::sip::digest::server::{
    AuthKind, DigestOutcome, DigestServer, DigestServerConfig,
};
use crate::proto::sip::headers::{Event, HeadersExt, make_header};
use crate::proto::sip::message::{SipParseError, parse_message, to_bytes};
use crate::proto::sip::transaction::{LayerEvent, TransactionLayer, Transmit, Transport, TsxKey};
use crate::server::location_service::{Binding, Source};
use crate::server::registrar::{BindingChange, Registrar, RegistrarConfig};

use super::b2bua::SipCtx;
use super::cpm_participating_function::{CpmParticipatingFunction, is_cpm_session};
use super::deferred_message_store::function::{DeferredFunction, ServiceUri};
use super::im_controlling_function::{ImControllingFunction, is_focus_msrp};
use super::isc_media_function::{self, IscMediaFunction};
use super::limits::SourceLimits;
use super::msrp_relay::{RelayInput, RelayOutput};
use super::proxy_core::{ProxyCore, Target};
use super::reg_notifier::{self, RegNotifier, RegSubscription};
use super::request_checks;
use super::rtp_streamer::RtpTransmit;
use super::sip_util::{
    UriView, contact_uri, decrement_max_forwards, host_of, insert_first, local_for, name_addr_uri,
    pop_own_route, push_via, record_route_value, response_destination, top_via, via_text,
};

/// The context a B2BUA role acts through: `now`, the transaction layer,
/// the id generator and our address (disjoint borrows of the core's fields).
macro_rules! role_ctx {
    ($self:ident, $now:expr) => {
        SipCtx {
            now: $now,
            tsx: &mut $self.tsx,
            ids: &mut *$self.ids,
            local: $self.settings.local,
            tls_local: $self.settings.tls_local,
            domain: &$self.settings.domain,
        }
    };
}

/// The `Server` header value.
pub const SERVER_AGENT: &str = concat!("isc/", env!("CARGO_PKG_VERSION"));
/// What the server itself answers to (RFC 3261 §11, OPTIONS).
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REFER, INFO, UPDATE, REGISTER";
/// RFC 3323 §4.1.1: the anonymous URI.
pub const ANONYMOUS_HOST: &str = "anonymous.invalid";

/// One user the server knows.
#[derive(Debug, Clone)]
pub struct UserAccount {
    pub name: String,
    pub password: String,
}

/// What the core needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub domain: String,
    /// The bound address, used in our Via, Record-Route and Contact.
    pub local: SocketAddr,
    /// The SIP-over-TLS address, used instead on TLS legs.
    pub tls_local: Option<SocketAddr>,
    pub users: Vec<UserAccount>,
    pub nonce_lifetime: Duration,
    /// `Some` in AS mode (`[server] mode = "as"`): behind a SIP/IP core.
    pub app_server: Option<AppServer>,
}

impl CoreSettings {
    /// Our address on a leg over `t` (TLS has its own port).
    pub fn local_for(&self, t: Transport) -> SocketAddr {
        local_for(self.local, self.tls_local, t)
    }

    /// Every address that is this server (a Route naming one is ours).
    pub fn locals(&self) -> Vec<SocketAddr> {
        std::iter::once(self.local).chain(self.tls_local).collect()
    }
}

/// Application-server mode: devices register at the SIP/IP core (Kamailio,
/// `assets/deploy/kamailio`), which authenticates them, asserts their
/// identity and hands requests for the services to this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppServer {
    /// Where every request to a device goes, its Request-URI the device's
    /// GRUU (one leg per device; the core does not fork it).
    pub core: SocketAddr,
    /// Sources whose P-Asserted-Identity (RFC 3325 §5: a trust domain) and
    /// third-party REGISTERs are believed; anything else gets 403.
    pub trusted: Vec<SocketAddr>,
}

/// A message to put on the wire, serialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: SocketAddr,
    pub transport: Transport,
    pub bytes: Vec<u8>,
}

/// The server core. See the module docs.
pub struct ServerCore {
    settings: CoreSettings,
    passwords: HashMap<String, String>,
    tsx: TransactionLayer,
    digest: DigestServer,
    registrar: Registrar,
    notifier: RegNotifier,
    /// Dialogs set up through the proxy: only their in-dialog requests are
    /// relayed.
    dialogs: super::proxy_dialogs::ProxiedDialogs,
    proxy: ProxyCore,
    /// The CPM Participating Function, when enabled ([`Self::enable_cpm`]).
    cpm: Option<CpmParticipatingFunction>,
    /// ISC Server Media Function (seed 000).
    mf: IscMediaFunction,
    /// The IM Controlling Function, when enabled ([`Self::enable_focus`]).
    focus: Option<ImControllingFunction>,
    /// MSRP connections that belong to the focus's relay.
    focus_conns: std::collections::HashSet<u64>,
    /// Accepted MSRP connections no role has yet, and whether each is TLS.
    unclaimed_conns: std::collections::HashMap<u64, bool>,
    /// The Deferred Messaging Function, when enabled ([`Self::enable_deferred`]).
    deferred: Option<DeferredFunction>,
    /// Per-source rate limits ([`Self::set_limits`]).
    limits: SourceLimits,
    ids: Box<dyn IdGen>,
}

impl ServerCore {
    pub fn new(settings: CoreSettings, mut ids: Box<dyn IdGen>, now: Instant) -> Self {
        let mut key = [0u8; 32];
        ids.fill(&mut key);
        let mut digest_config = DigestServerConfig::new(settings.domain.clone());
        digest_config.nonce_lifetime = settings.nonce_lifetime;
        // qop=auth required: RFC 2069 answers carry no nonce-count, so they
        // could be replayed for the nonce's lifetime (RFC 7616 §5.9).
        // `ServerOptions::digest` may allow them for old clients.
        digest_config.allow_rfc2069 = false;
        let mut reg_config = RegistrarConfig::new(settings.domain.clone());
        reg_config.local_hosts.push(host_of(settings.local));
        reg_config.local_hosts.push(format!(
            "{}:{}",
            host_of(settings.local),
            settings.local.port()
        ));
        let passwords = settings
            .users
            .iter()
            .map(|u| (u.name.clone(), u.password.clone()))
            .collect();
        ServerCore {
            passwords,
            tsx: TransactionLayer::new(),
            digest: DigestServer::new(digest_config, key, now),
            registrar: Registrar::new(reg_config),
            notifier: RegNotifier::new(),
            dialogs: Default::default(),
            proxy: ProxyCore::new(),
            cpm: None,
            mf: IscMediaFunction::disabled(&settings.domain),
            focus: None,
            focus_conns: Default::default(),
            unclaimed_conns: Default::default(),
            deferred: None,
            limits: SourceLimits::new(&crate::config::LimitsConfig::default(), now),
            ids,
            settings,
        }
    }

    /// Replaces the per-source rate limits (`[server.limits]`).
    pub fn set_limits(&mut self, limits: SourceLimits) {
        self.limits = limits;
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// Changes the Digest settings (algorithms offered, uri check, ...),
    /// e.g. for SIPp 3.6.1, which reads only the first challenge, computes
    /// MD5 only and puts `sip:<server ip>:<port>` (or `-auth_uri`) in the
    /// credentials' uri. Outstanding nonces are dropped.
    pub fn configure_digest(&mut self, now: Instant, change: impl FnOnce(&mut DigestServerConfig)) {
        let mut config = self.digest.config().clone();
        change(&mut config);
        let mut key = [0u8; 32];
        self.ids.fill(&mut key);
        self.digest = DigestServer::new(config, key, now);
    }

    /// Installs the ISC Server Media Function (its content and media ports
    /// come from the driver, which loads and binds them).
    pub fn set_media_function(&mut self, mf: IscMediaFunction) {
        self.mf = mf;
    }

    pub fn media_function(&self) -> &IscMediaFunction {
        &self.mf
    }

    /// When the media (RTP/RTCP) must be served next.
    pub fn poll_media_timeout(&self) -> Option<Instant> {
        self.mf.poll_media_timeout()
    }

    /// Serves the media due at `now`; `wall` is the wall clock read with it.
    pub fn handle_media_timeout(&mut self, now: Instant, wall: crate::proto::rtp::NtpTime) {
        self.mf.handle_media_timeout(now, wall);
    }

    /// The next RTP/RTCP datagram to send.
    pub fn poll_rtp_transmit(&mut self) -> Option<RtpTransmit> {
        self.mf.poll_rtp_transmit()
    }

    /// The registrar's bindings (the roles built on this core look devices up here).
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Puts the CPM Participating Function in the path of CPM session
    /// INVITEs (without it they are proxied like any INVITE).
    pub fn enable_cpm(&mut self, cpm: CpmParticipatingFunction) {
        self.cpm = Some(cpm);
    }

    pub fn cpm(&self) -> Option<&CpmParticipatingFunction> {
        self.cpm.as_ref()
    }

    /// Puts the IM Controlling Function (conference focus) in the path of
    /// requests to the conference factory, session identities and groups.
    pub fn enable_focus(&mut self, focus: ImControllingFunction) {
        self.focus = Some(focus);
    }

    pub fn focus(&self) -> Option<&ImControllingFunction> {
        self.focus.as_ref()
    }

    /// What the MSRP transport reported (for the B2BUA roles' relays). A
    /// connection goes to the focus when it opened it, or when its first
    /// bytes name one of the focus's sessions; else to the CPM function.
    /// Stores messages for users with no registered device and pushes them
    /// on registration (seed 002 D.2, seed 003 12.4.2).
    pub fn enable_deferred(&mut self, deferred: DeferredFunction) {
        self.deferred = Some(deferred);
    }

    pub fn deferred(&self) -> Option<&DeferredFunction> {
        self.deferred.as_ref()
    }

    pub fn handle_msrp(&mut self, now: Instant, input: RelayInput) {
        if let Some(d) = self.deferred.as_mut()
            && d.claims(&input)
        {
            let mut ctx = role_ctx!(self, now);
            d.handle_msrp(&mut ctx, input);
            self.drain(now);
            return;
        }
        let to_focus = match &input {
            RelayInput::Accepted { conn, tls } => {
                self.unclaimed_conns.insert(*conn, *tls);
                false
            }
            RelayInput::Connected { leg, conn } => {
                let ours = self.focus.as_ref().is_some_and(|f| f.owns_leg(*leg));
                if ours {
                    self.focus_conns.insert(*conn);
                }
                ours
            }
            RelayInput::ConnectFailed { leg } => {
                self.focus.as_ref().is_some_and(|f| f.owns_leg(*leg))
            }
            RelayInput::Data { conn, bytes } => {
                if let Some(tls) = self.unclaimed_conns.remove(conn)
                    && self.focus.is_some()
                    && is_focus_msrp(bytes)
                {
                    self.focus_conns.insert(*conn);
                    if let Some(f) = self.focus.as_mut() {
                        let mut ctx = role_ctx!(self, now);
                        f.handle_msrp(&mut ctx, RelayInput::Accepted { conn: *conn, tls });
                    }
                }
                self.focus_conns.contains(conn)
            }
            RelayInput::Closed { conn } => {
                self.unclaimed_conns.remove(conn);
                self.focus_conns.remove(conn)
            }
        };
        if to_focus {
            if let Some(f) = self.focus.as_mut() {
                let mut ctx = role_ctx!(self, now);
                f.handle_msrp(&mut ctx, input);
            }
        } else if let Some(cpm) = self.cpm.as_mut() {
            let mut ctx = role_ctx!(self, now);
            cpm.handle_msrp(&mut ctx, input);
        }
        self.drain(now);
    }

    /// The next MSRP action for the driver: connect / send / close.
    pub fn poll_msrp(&mut self) -> Option<RelayOutput> {
        if let Some(o) = self.focus.as_mut().and_then(|f| f.poll_msrp()) {
            if let RelayOutput::Close { conn } = &o {
                self.focus_conns.remove(conn);
            }
            return Some(o);
        }
        if let Some(out) = self.cpm.as_mut().and_then(|c| c.poll_msrp()) {
            return Some(out);
        }
        self.deferred.as_mut()?.poll_msrp()
    }

    /// Bytes from the network.
    pub fn handle_input(
        &mut self,
        now: Instant,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
    ) {
        // A flood is cut before any parsing (logged by the limiter).
        if !self.limits.admit_message(now, source.ip()) {
            return;
        }
        match parse_message(bytes) {
            Ok(mut message) => {
                if let rsip::SipMessage::Request(req) = &mut message {
                    // A request no transaction can be keyed on (a Via that does
                    // not parse, no Call-ID): 400 naming the fault (RFC 4475 §3.1.2.1).
                    if let Err(e) = TsxKey::server(req) {
                        tracing::info!(error = %e, %source, "400 for a request without a transaction key");
                        let warning = format!(
                            "399 {} \"{}\"",
                            self.settings.domain,
                            e.to_string().replace('"', "'")
                        );
                        let resp = response_with(
                            req,
                            400,
                            Some(&self.ids.token()),
                            Some("Bad Request"),
                            vec![
                                make_header("Warning", &warning),
                                make_header("Server", SERVER_AGENT),
                            ],
                        );
                        self.send_stateless_response(resp, source, transport);
                        self.drain(now);
                        return;
                    }
                    // RFC 3581 §4 / RFC 3261 §18.2.1: note where it came from.
                    crate::proto::sip::build::add_received_rport(
                        &mut req.headers,
                        source.ip(),
                        source.port(),
                    );
                }
                if let Err(e) = self.tsx.handle_message(now, message, source, transport) {
                    tracing::debug!(error = %e, %source, "message refused by the transaction layer");
                }
            }
            Err(SipParseError::UnknownMethod { method, request }) => {
                // RFC 3261 §8.2.1: a method we do not implement gets 501, with Allow.
                let resp = response_with(
                    &request,
                    501,
                    Some(&self.ids.token()),
                    None,
                    vec![
                        make_header("Allow", ALLOW),
                        make_header("Server", SERVER_AGENT),
                    ],
                );
                tracing::info!(%method, %source, "501 for an unknown method");
                self.send_stateless_response(resp, source, transport);
            }
            Err(e) => {
                tracing::info!(error = %e, %source, "unparseable SIP message refused");
                self.answer_malformed(bytes, &e, source, transport);
            }
        }
        self.drain(now);
    }

    /// Bytes from the network while the server is past capacity: a new
    /// request is answered 503 with Retry-After and not processed (RFC 3261
    /// §21.5.4); responses, ACKs and in-dialog requests, which finish work
    /// already admitted, go through [`Self::handle_input`].
    pub fn handle_input_overloaded(
        &mut self,
        now: Instant,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
    ) {
        let req = match parse_message(bytes) {
            Ok(rsip::SipMessage::Request(req))
                if req.method != rsip::Method::Ack
                    && crate::proto::sip::build::to_tag(&req.headers).is_none() =>
            {
                req
            }
            _ => return self.handle_input(now, bytes, source, transport),
        };
        let retry = self.limits.retry_after().to_string();
        let resp = response_with(
            &req,
            503,
            Some(&self.ids.token()),
            Some("Service Unavailable"),
            vec![
                make_header("Retry-After", &retry),
                make_header(
                    "Warning",
                    &format!("399 {} \"server overloaded\"", self.settings.domain),
                ),
                make_header("Server", SERVER_AGENT),
            ],
        );
        self.send_stateless_response(resp, source, transport);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tsx.handle_timeout(now);
        if let Some(cpm) = self.cpm.as_mut() {
            let mut ctx = role_ctx!(self, now);
            cpm.handle_timeout(&mut ctx);
        }
        if let Some(f) = self.focus.as_mut() {
            let mut ctx = role_ctx!(self, now);
            f.handle_timeout(&mut ctx);
        }
        if let Some(d) = self.deferred.as_mut() {
            let mut ctx = role_ctx!(self, now);
            d.handle_timeout(&mut ctx);
        }
        let expired = self.registrar.location_mut().expire(now);
        if !expired.is_empty() {
            let changes: Vec<BindingChange> = expired
                .into_iter()
                .map(|binding| BindingChange {
                    event: crate::server::registrar::BindingEvent::Expired,
                    binding,
                })
                .collect();
            self.notify_changes(now, &changes);
        }
        {
            let mut ctx = role_ctx!(self, now);
            self.mf.handle_timeout(&mut ctx);
        }
        for sub in self.notifier.take_expired(now) {
            // RFC 6665 §4.2.2: a final NOTIFY with Subscription-State terminated.
            let mut sub = sub;
            self.send_reg_notify(now, &mut sub, Some("timeout"));
        }
        self.drain(now);
    }

    /// The next message to send, serialised.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        let Transmit {
            to,
            transport,
            message,
        } = self.tsx.poll_transmit()?;
        Some(Outgoing {
            to,
            transport,
            bytes: to_bytes(&message),
        })
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.tsx.poll_timeout(),
            self.registrar.location().poll_timeout(),
            self.notifier.poll_timeout(),
            self.cpm.as_ref().and_then(|c| c.poll_timeout()),
            self.mf.poll_timeout(),
            self.focus.as_ref().and_then(|f| f.poll_timeout()),
            self.deferred.as_ref().and_then(|d| d.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn drain(&mut self, now: Instant) {
        self.drain_events(now);
        // Message-summary NOTIFYs for what changed (their own events drain next time).
        if let Some(d) = self.deferred.as_mut() {
            let mut ctx = role_ctx!(self, now);
            d.flush(&mut ctx);
        }
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(ev) = self.tsx.poll_event() {
            match ev {
                LayerEvent::NewRequest {
                    key,
                    request,
                    source,
                    transport,
                } => self.on_request(now, key, request, source, transport),
                LayerEvent::Cancel {
                    key,
                    request,
                    invite,
                    invite_pending,
                    ..
                } => self.on_cancel(now, key, request, invite, invite_pending),
                LayerEvent::Ack {
                    request, source, ..
                } => {
                    // The ACK for a B2BUA's 2xx ends at the B2BUA.
                    if !self.deferred.as_mut().is_some_and(|d| d.on_ack(&request))
                        && !self.cpm.as_mut().is_some_and(|c| c.on_ack(now, &request))
                        && !self.focus.as_mut().is_some_and(|f| f.on_ack(now, &request))
                    {
                        self.on_ack(now, request, source)
                    }
                }
                LayerEvent::Response { key, response } => {
                    if let Some(d) = self.deferred.as_mut()
                        && d.owns_client(&key)
                    {
                        let mut ctx = role_ctx!(self, now);
                        d.on_response(&mut ctx, &key, response);
                    } else if let Some(cpm) = self.cpm.as_mut()
                        && cpm.owns_client(&key)
                    {
                        let mut ctx = role_ctx!(self, now);
                        cpm.on_response(&mut ctx, self.registrar.location(), &key, response);
                    } else if let Some(f) = self.focus.as_mut()
                        && f.owns_client(&key)
                    {
                        let mut ctx = role_ctx!(self, now);
                        f.on_response(&mut ctx, &key, response);
                    } else if self.proxy.owns_branch(&key) {
                        self.admit_dialog(now, &response);
                        let actions = self.proxy.on_response(now, &mut self.tsx, &key, response);
                        for branch in actions.cancel {
                            let _ = self.tsx.cancel(now, &branch);
                        }
                    } else if self.mf.owns_client(&key) {
                        let mut ctx = role_ctx!(self, now);
                        self.mf.on_response(&mut ctx, &key, response);
                    } else if response.status_code.code() == 481 {
                        // A subscriber that forgot its subscription (RFC 6665 §4.2.2).
                        if let Ok(id) = DialogId::for_received_response(&response) {
                            self.notifier.remove(&id);
                            if let Some(f) = self.focus.as_mut() {
                                f.on_notify_rejected(&id);
                            }
                        }
                    }
                }
                LayerEvent::StrayResponse { response, .. } => {
                    if let Some(d) = self.deferred.as_mut() {
                        let mut ctx = role_ctx!(self, now);
                        d.on_stray_response(&mut ctx, &response);
                    }
                    if self.mf.knows_response_dialog(&response) {
                        let mut ctx = role_ctx!(self, now);
                        self.mf.on_stray_response(&mut ctx, &response);
                    } else {
                        if let Some(cpm) = self.cpm.as_mut() {
                            let mut ctx = role_ctx!(self, now);
                            cpm.on_stray_response(&mut ctx, &response);
                        }
                        if let Some(f) = self.focus.as_mut() {
                            let mut ctx = role_ctx!(self, now);
                            f.on_stray_response(&mut ctx, &response);
                        }
                        self.forward_stray_response(response)
                    }
                }
                LayerEvent::Timeout { key } => self.on_branch_failure(now, &key, 408),
                LayerEvent::TransportError { key } => self.on_branch_failure(now, &key, 503),
                LayerEvent::Terminated { key } => {
                    self.mf.on_terminated(&key);
                    if let Some(cpm) = self.cpm.as_mut() {
                        cpm.on_terminated(&key);
                    }
                    if let Some(f) = self.focus.as_mut() {
                        f.on_terminated(&key);
                    }
                    self.proxy.on_branch_terminated(&key)
                }
            }
        }
    }

    /// Timer B/F or a transport failure on a client transaction.
    fn on_branch_failure(&mut self, now: Instant, key: &TsxKey, code: u16) {
        if let Some(d) = self.deferred.as_mut()
            && d.owns_client(key)
        {
            d.on_failure(key);
        } else if self.mf.owns_client(key) {
            let mut ctx = role_ctx!(self, now);
            self.mf.on_failure(&mut ctx, key, code);
        } else if let Some(cpm) = self.cpm.as_mut()
            && cpm.owns_client(key)
        {
            let mut ctx = role_ctx!(self, now);
            cpm.on_failure(&mut ctx, self.registrar.location(), key, code);
        } else if let Some(f) = self.focus.as_mut()
            && f.owns_client(key)
        {
            let mut ctx = role_ctx!(self, now);
            f.on_failure(&mut ctx, key, code);
        } else {
            self.proxy.on_branch_failure(now, &mut self.tsx, key, code)
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        key: TsxKey,
        req: rsip::Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        let has_to_tag = crate::proto::sip::build::to_tag(&req.headers).is_some();
        // RFC 3261 §16.3 steps 1-5 / §8.2.2: refused before authentication.
        let role = if req.method == rsip::Method::Register
            || (req.method == rsip::Method::Options && self.addresses_server(&req))
        {
            request_checks::Role::Uas
        } else {
            request_checks::Role::Proxy
        };
        if let Some(r) = request_checks::check(&req, role) {
            tracing::info!(code = r.code, warning = %r.warning, %source, "request refused");
            let warning = format!(
                "399 {} \"{}\"",
                self.settings.domain,
                r.warning.replace('"', "'")
            );
            let mut extra = vec![make_header("Warning", &warning)];
            if !r.unsupported.is_empty() {
                extra.push(make_header("Unsupported", &r.unsupported.join(", ")));
            }
            self.respond(now, &key, &req, r.code, Some(r.reason), extra);
            return;
        }
        // A storm of new subscriptions from one source: 503 with
        // Retry-After (RFC 3261 §21.5.4, RFC 6665 §4.1.2.5 rate control).
        if req.method == rsip::Method::Subscribe
            && !has_to_tag
            && !self.limits.admit_subscribe(now, source.ip())
        {
            let retry = self.limits.retry_after().to_string();
            let warning = format!(
                "399 {} \"too many SUBSCRIBEs from {}\"",
                self.settings.domain,
                source.ip()
            );
            self.respond(
                now,
                &key,
                &req,
                503,
                Some("Service Unavailable"),
                vec![
                    make_header("Retry-After", &retry),
                    make_header("Warning", &warning),
                ],
            );
            return;
        }
        match req.method {
            rsip::Method::Register => self.on_register(now, key, req, source, transport),
            _ if has_to_tag => self.on_in_dialog(now, key, req, source, transport),
            rsip::Method::Options if self.addresses_server(&req) => {
                let extra = vec![
                    make_header("Allow", ALLOW),
                    make_header("Accept", "application/sdp, message/cpim, text/plain"),
                    make_header(
                        "Supported",
                        "gruu, timer, replaces, norefersub, multiple-refer",
                    ),
                ];
                self.respond(now, &key, &req, 200, None, extra);
            }
            _ => self.on_initial(now, key, req, source, transport),
        }
    }

    // --- registrar -------------------------------------------------------

    fn on_register(
        &mut self,
        now: Instant,
        key: TsxKey,
        req: rsip::Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        let user = if self.settings.app_server.is_some() {
            // AS mode: our registrar is off; the core's copy of a REGISTER it
            // accepted (third-party registration, RFC 3261 §10) feeds the
            // location service, so the roles find every device and its GRUU.
            match self.asserted_identity(now, &key, &req, source) {
                Some(user) => user,
                None => return,
            }
        } else {
            match self.authenticate(now, &key, &req, AuthKind::for_method(&req.method)) {
                Some(user) => user,
                None => return,
            }
        };
        let source = Source {
            addr: source,
            transport: transport.to_rsip(),
        };
        let outcome = self
            .registrar
            .handle_register(now, &req, source, Some(&user));
        let mut response = outcome.response;
        response.headers.push(make_header("Server", SERVER_AGENT));
        let _ = self.tsx.send_response(now, &key, response);
        if !outcome.changes.is_empty() {
            self.notify_changes(now, &outcome.changes);
            // Seed 003 12.4.2.2: each (re-)registration may release deferred messages.
            if let Some(d) = self.deferred.as_mut() {
                for change in &outcome.changes {
                    if matches!(
                        change.event,
                        crate::server::registrar::BindingEvent::Registered
                            | crate::server::registrar::BindingEvent::Refreshed
                    ) {
                        let mut ctx = role_ctx!(self, now);
                        d.on_registered(&mut ctx, &change.binding);
                    }
                }
            }
        }
    }

    // --- out-of-dialog requests -----------------------------------------

    fn on_initial(
        &mut self,
        now: Instant,
        key: TsxKey,
        mut req: rsip::Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        let user = if self.settings.app_server.is_some() {
            self.asserted_identity(now, &key, &req, source)
        } else {
            self.authenticate(now, &key, &req, AuthKind::Proxy)
        };
        let Some(user) = user else {
            return;
        };
        // The authenticated identity is the originator, never a From the
        // device chose (RFC 3325 §9.1): a From naming another user is refused,
        // the anonymous URI of RFC 3323 is allowed.
        let from = name_addr_uri(&req.headers, "From");
        let own = format!("sip:{user}@{}", self.settings.domain);
        match &from {
            Some((_, f)) if f.host.eq_ignore_ascii_case(ANONYMOUS_HOST) => {}
            Some((_, f))
                if f.user.as_deref() == Some(user.as_str()) && self.is_our_domain(&f.host) => {}
            _ => {
                let warning = format!(
                    "399 {} \"From does not match the authenticated identity {own}\"",
                    self.settings.domain
                );
                self.respond(
                    now,
                    &key,
                    &req,
                    403,
                    Some("Forbidden"),
                    vec![make_header("Warning", &warning)],
                );
                return;
            }
        }
        // RFC 3325 §9.1: a preferred identity must be one of the user's own;
        // RFC 3892 §3: so must the referrer a REFER names. Another user's
        // is refused, not silently replaced.
        let foreign = |value: &str| {
            value.split(',').any(|v| {
                // name-addr (`"Bob" <sip:..>;p`) or addr-spec (`sip:..;p`)
                let uri = match (v.find('<'), v.find('>')) {
                    (Some(a), Some(b)) if a < b => v.get(a + 1..b).unwrap_or_default(),
                    _ => v.split(';').next().unwrap_or_default(),
                };
                UriView::parse(uri).is_none_or(|u| {
                    u.user.as_deref() != Some(user.as_str()) || !self.is_our_domain(&u.host)
                })
            })
        };
        let claimed = req
            .headers
            .get_all_raw("P-Preferred-Identity")
            .into_iter()
            .map(|v| ("P-Preferred-Identity", v))
            .chain(
                req.headers
                    .get_all_raw("Referred-By")
                    .into_iter()
                    .map(|v| ("Referred-By", v)),
            )
            .find(|(_, v)| foreign(v));
        if let Some((name, value)) = claimed {
            let warning = format!(
                "399 {} \"{name} {} is not an identity of {own}\"",
                self.settings.domain,
                value.replace('"', "'")
            );
            self.respond(
                now,
                &key,
                &req,
                403,
                Some("Forbidden"),
                vec![make_header("Warning", &warning)],
            );
            return;
        }
        req.headers.remove_named("P-Asserted-Identity");
        req.headers.remove_named("P-Preferred-Identity");
        req.headers.remove_named("Proxy-Authorization");
        req.headers
            .push(make_header("P-Asserted-Identity", &format!("<{own}>")));
        // RFC 3261 §16.4: a preloaded Route naming us (outbound proxy set by
        // baresip/linphone) is ours to remove, never forwarded to the target.
        pop_own_route(
            &mut req.headers,
            &self.settings.locals(),
            &self.settings.domain,
        );

        if req.method == rsip::Method::Subscribe && is_reg_event(&req) {
            self.on_reg_subscribe(now, key, req, &user, source, transport);
            return;
        }
        if req.method == rsip::Method::Options && self.is_content_list_uri(&req.uri) {
            self.answer_content_list(now, &key, &req);
            return;
        }
        if isc_media_function::handles(&req) {
            // seed 000 5.11.1 / 5.12.1 / 5.12.4: the Media Function takes it
            let mut ctx = role_ctx!(self, now);
            self.mf.on_invite(
                &mut ctx,
                self.registrar.location(),
                key,
                req,
                &user,
                source,
                transport,
            );
            return;
        }
        // Roles in the media path take their INVITEs after authentication
        // and identity assertion (seed 001 8.3.2.1). The focus first: a
        // request to the factory, a session identity or a group is its own.
        if let Some(f) = self.focus.as_mut()
            && f.claims(&req)
        {
            let mut ctx = role_ctx!(self, now);
            match req.method {
                rsip::Method::Invite => f.on_invite(
                    &mut ctx,
                    self.registrar.location(),
                    self.cpm.as_ref(),
                    key,
                    req,
                    &user,
                    source,
                    transport,
                ),
                rsip::Method::Subscribe => {
                    f.on_subscribe(&mut ctx, key, req, &user, source, transport)
                }
                _ => f.on_refer(
                    &mut ctx,
                    self.registrar.location(),
                    self.cpm.as_ref(),
                    key,
                    req,
                    &user,
                ),
            }
            return;
        }
        // RFC 3842: message waiting indication for deferred messages.
        if DeferredFunction::is_summary_subscribe(&req)
            && let Some(d) = self.deferred.as_mut()
        {
            let mut ctx = role_ctx!(self, now);
            d.on_summary_subscribe(&mut ctx, key, &req, &user, source, transport);
            return;
        }
        // Roles in the media path take their INVITEs after authentication
        // and identity assertion (seed 001 8.3.2.1).
        // Seed 003 12.4.1 / 13.2.1.1: retrieval of deferred messages and of history.
        if req.method == rsip::Method::Invite
            && let Some(d) = self.deferred.as_mut()
            && let Some(service) = UriView::of(&req.uri).user.and_then(|u| d.service_of(&u))
        {
            let host = UriView::of(&req.uri).host;
            let owned = host.eq_ignore_ascii_case(&self.settings.domain)
                || host == host_of(self.settings.local)
                || host.eq_ignore_ascii_case("localhost");
            let history = self.cpm.as_ref().map(|c| c.history());
            let mut ctx = role_ctx!(self, now);
            match service {
                ServiceUri::Deferred => {
                    d.on_retrieve(&mut ctx, key, source, transport, &req, &user, owned)
                }
                ServiceUri::History => {
                    d.on_history(&mut ctx, key, source, transport, &req, history)
                }
            }
            return;
        }
        // Seed 003 12.4.2.1: a session for a user with no registered device
        // is accepted on the user's behalf and its messages stored.
        if let Some(cpm) = self.cpm.as_ref()
            && is_cpm_session(&req)
            && let Some(name) = UriView::of(&req.uri).user
            && let Some(d) = self.deferred.as_mut()
            && d.serves(&name)
            && cpm.only_no_device(now, self.registrar.location(), &req, &own)
        {
            let recipient = format!("sip:{name}@{}", self.settings.domain);
            let mut ctx = role_ctx!(self, now);
            d.on_offline_session(&mut ctx, key, transport, &req, &recipient, &own);
            return;
        }
        if let Some(cpm) = self.cpm.as_mut()
            && is_cpm_session(&req)
        {
            let mut ctx = role_ctx!(self, now);
            cpm.on_invite(
                &mut ctx,
                self.registrar.location(),
                key,
                req,
                &user,
                source,
                transport,
            );
            return;
        }
        let targets = self.targets_for(now, &req.uri);
        // Seed 003 12.4.2.1: a pager message for a user with no registered
        // device is stored, then acknowledged.
        if matches!(targets, Err((480, _)))
            && req.method == rsip::Method::Message
            && let Some(name) = UriView::of(&req.uri).user
            && let Some(d) = self.deferred.as_mut()
            && d.serves(&name)
        {
            let recipient = format!("sip:{name}@{}", self.settings.domain);
            let code = d.on_offline_message(&req, &recipient, &own);
            self.respond(now, &key, &req, code, None, vec![]);
            return;
        }
        let targets = match targets {
            Ok(t) => t,
            Err((code, reason)) => {
                self.respond(now, &key, &req, code, Some(reason), vec![]);
                return;
            }
        };
        // RFC 3325 §5: a Privacy: id asks that the identity not reach the
        // (untrusted) devices.
        if req
            .headers
            .get_raw("Privacy")
            .is_some_and(|p| p.split(';').any(|v| v.trim().eq_ignore_ascii_case("id")))
        {
            req.headers.remove_named("P-Asserted-Identity");
        }
        self.forward(now, key, req, targets);
    }

    /// Where a request for `uri` goes: a GRUU reaches its one device, an AOR
    /// every registered device (RFC 3261 §16.5, RFC 5627 §5.1); an IP literal
    /// outside our domain is reached directly.
    fn targets_for(
        &self,
        now: Instant,
        uri: &rsip::Uri,
    ) -> Result<Vec<Target>, (u16, &'static str)> {
        let view = UriView::of(uri);
        if !self.is_our_domain(&view.host) {
            return match view.socket_addr() {
                Some(addr) if !self.settings.locals().contains(&addr) => Ok(vec![Target {
                    uri: uri.clone(),
                    addr,
                    transport: view.transport.unwrap_or(Transport::Udp),
                }]),
                _ => Err((404, "Not Found")),
            };
        }
        let Some(user) = view.user.as_deref() else {
            return Err((404, "Not Found"));
        };
        if !self.passwords.contains_key(user) {
            return Err((404, "Not Found"));
        }
        let uri_text = super::sip_util::uri_string(uri);
        let bindings = self.registrar.location().lookup(now, &uri_text);
        if bindings.is_empty() {
            return Err((480, "Temporarily Unavailable"));
        }
        Ok(bindings
            .into_iter()
            .filter_map(|b| self.binding_target(b))
            .collect())
    }

    /// Forks `req` to `targets` (RFC 3261 §16.6) and opens its response context.
    fn forward(&mut self, now: Instant, key: TsxKey, req: rsip::Request, targets: Vec<Target>) {
        let mut req = req;
        if !decrement_max_forwards(&mut req.headers) {
            self.respond(now, &key, &req, 483, Some("Too Many Hops"), vec![]);
            return;
        }
        let invite = req.method == rsip::Method::Invite;
        let record_route = matches!(
            req.method,
            rsip::Method::Invite | rsip::Method::Subscribe | rsip::Method::Refer
        );
        let mut branches = Vec::new();
        for target in targets {
            let mut out = req.clone();
            out.uri = target.uri.clone();
            if record_route {
                insert_first(
                    &mut out.headers,
                    make_header(
                        "Record-Route",
                        &record_route_value(
                            self.settings.local_for(target.transport),
                            target.transport,
                        ),
                    ),
                );
            }
            let branch = format!("z9hG4bK{}", self.ids.token());
            push_via(
                &mut out.headers,
                self.settings.local_for(target.transport),
                target.transport,
                &branch,
            );
            match self
                .tsx
                .send_request(now, out, target.addr, target.transport)
            {
                Ok(k) => branches.push(k),
                Err(e) => tracing::warn!(error = %e, "branch not started"),
            }
        }
        if branches.is_empty() {
            self.respond(
                now,
                &key,
                &req,
                500,
                Some("No branch could be started"),
                vec![],
            );
            return;
        }
        self.proxy.open(key, invite, branches);
    }

    // --- in-dialog requests, ACK, CANCEL ------------------------------------

    fn on_in_dialog(
        &mut self,
        now: Instant,
        key: TsxKey,
        mut req: rsip::Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        if self.mf.knows_dialog(&req) {
            let mut ctx = role_ctx!(self, now);
            self.mf.on_in_dialog(&mut ctx, key, req);
            return;
        }
        if req.method == rsip::Method::Subscribe
            && let Ok(id) = DialogId::for_received_request(&req)
            && self.notifier.contains(&id)
        {
            self.on_reg_resubscribe(now, key, req, id, source, transport);
            return;
        }
        if let Some(cpm) = self.cpm.as_mut()
            && cpm.knows_dialog(&req)
        {
            let mut ctx = role_ctx!(self, now);
            cpm.on_in_dialog(&mut ctx, key, req);
            return;
        }
        if let Some(f) = self.focus.as_mut()
            && f.knows_dialog(&req)
        {
            let mut ctx = role_ctx!(self, now);
            f.on_in_dialog(
                &mut ctx,
                self.registrar.location(),
                self.cpm.as_ref(),
                key,
                req,
                source,
                transport,
            );
            return;
        }
        if let Some(d) = self.deferred.as_mut()
            && d.knows_dialog(&req)
        {
            let mut ctx = role_ctx!(self, now);
            d.on_in_dialog(&mut ctx, key, req);
            return;
        }
        // Only inside a dialog set up through us (see `proxy_dialogs`).
        if !self.dialog_known(now, &req, source) {
            let warning = format!(
                "399 {} \"no dialog with this Call-ID and tags was set up through this proxy\"",
                self.settings.domain
            );
            self.respond(
                now,
                &key,
                &req,
                481,
                Some("Call/Transaction Does Not Exist"),
                vec![make_header("Warning", &warning)],
            );
            return;
        }
        self.end_dialog_if_over(&req);
        // RFC 3261 §16.4: a loose-routed request names us in its top Route.
        pop_own_route(
            &mut req.headers,
            &self.settings.locals(),
            &self.settings.domain,
        );
        match self.resolve_next_hop(now, &req) {
            Some(target) => self.forward_in_dialog(now, key, req, target),
            None => self.respond(
                now,
                &key,
                &req,
                481,
                Some("Call/Transaction Does Not Exist"),
                vec![],
            ),
        }
    }

    /// A dialog-creating request answered 2xx, or a tagged 1xx to an INVITE
    /// (an early dialog), on its way back through us: its in-dialog requests
    /// may pass from now on.
    fn admit_dialog(&mut self, now: Instant, response: &rsip::Response) {
        use crate::proto::sip::build::{call_id, cseq, from_tag, to_tag};
        let code = response.status_code.code();
        let Some((_, method)) = cseq(&response.headers) else {
            return;
        };
        let creates = match method.as_str() {
            "INVITE" => (101..300).contains(&code),
            "SUBSCRIBE" | "REFER" => (200..300).contains(&code),
            _ => false,
        };
        if let (true, Some(c), Some(f), Some(t)) = (
            creates,
            call_id(&response.headers),
            from_tag(&response.headers),
            to_tag(&response.headers),
        ) {
            self.dialogs.admit(now, &c, &f, &t);
        }
    }

    /// Whether an in-dialog request belongs to a dialog set up through us.
    /// The SIP/IP core in front of an application server is trusted with
    /// its own dialogs.
    fn dialog_known(&mut self, now: Instant, req: &rsip::Request, source: SocketAddr) -> bool {
        use crate::proto::sip::build::{call_id, from_tag, to_tag};
        if self
            .settings
            .app_server
            .as_ref()
            .is_some_and(|a| a.trusted.contains(&source))
        {
            return true;
        }
        match (
            call_id(&req.headers),
            from_tag(&req.headers),
            to_tag(&req.headers),
        ) {
            (Some(c), Some(f), Some(t)) => self.dialogs.touch(now, &c, &f, &t),
            _ => false,
        }
    }

    /// RFC 3261 §15.1.1: a BYE ends the dialog as it is sent; RFC 6665
    /// §4.4.1: so does a NOTIFY saying the subscription is terminated.
    fn end_dialog_if_over(&mut self, req: &rsip::Request) {
        use crate::proto::sip::build::{call_id, from_tag, to_tag};
        let over = match req.method {
            rsip::Method::Bye => true,
            rsip::Method::Notify => req
                .headers
                .get_raw("Subscription-State")
                .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated")),
            _ => false,
        };
        if let (true, Some(c), Some(f), Some(t)) = (
            over,
            call_id(&req.headers),
            from_tag(&req.headers),
            to_tag(&req.headers),
        ) {
            self.dialogs.end(&c, &f, &t);
        }
    }

    fn forward_in_dialog(&mut self, now: Instant, key: TsxKey, req: rsip::Request, target: Target) {
        let mut req = req;
        if !decrement_max_forwards(&mut req.headers) {
            self.respond(now, &key, &req, 483, Some("Too Many Hops"), vec![]);
            return;
        }
        let branch = format!("z9hG4bK{}", self.ids.token());
        push_via(
            &mut req.headers,
            self.settings.local_for(target.transport),
            target.transport,
            &branch,
        );
        let invite = req.method == rsip::Method::Invite;
        match self
            .tsx
            .send_request(now, req, target.addr, target.transport)
        {
            Ok(k) => self.proxy.open(key, invite, vec![k]),
            Err(e) => tracing::warn!(error = %e, "in-dialog request not forwarded"),
        }
    }

    /// The next hop of a routed request: the next Route, else the
    /// Request-URI; a URI that is a registered contact or GRUU is reached over
    /// that device's flow.
    fn resolve_next_hop(&self, now: Instant, req: &rsip::Request) -> Option<Target> {
        let hop =
            super::sip_util::first_route(&req.headers).unwrap_or_else(|| UriView::of(&req.uri));
        if hop.gr.is_some() || (self.is_our_domain(&hop.host) && hop.user.is_some()) {
            let uri_text = super::sip_util::uri_string(&req.uri);
            return self
                .registrar
                .location()
                .lookup(now, &uri_text)
                .into_iter()
                .find_map(|b| self.binding_target(b));
        }
        let addr = hop.socket_addr()?;
        if self.settings.locals().contains(&addr) {
            return None;
        }
        // A contact registered over a connection is reached over it.
        let by_contact = self.registrar.location().aors().find_map(|aor| {
            self.registrar
                .location()
                .active_bindings(now, aor)
                .into_iter()
                .find(|b| UriView::parse(&b.contact).and_then(|c| c.socket_addr()) == Some(addr))
        });
        match by_contact {
            Some(b) => Some(Target {
                uri: req.uri.clone(),
                addr: b.source.addr,
                transport: Transport::from_rsip(b.source.transport),
            }),
            None => Some(Target {
                uri: req.uri.clone(),
                addr,
                transport: hop.transport.unwrap_or(Transport::Udp),
            }),
        }
    }

    /// The ACK for a 2xx is its own end-to-end request (RFC 3261 §13.2.2.4):
    /// routed like any in-dialog request, without a transaction.
    fn on_ack(&mut self, now: Instant, mut req: rsip::Request, source: SocketAddr) {
        if self.mf.on_ack(now, &req) {
            return;
        }
        // An ACK outside any dialog of ours is dropped (nothing answers an ACK).
        if !self.dialog_known(now, &req, source) {
            return;
        }
        pop_own_route(
            &mut req.headers,
            &self.settings.locals(),
            &self.settings.domain,
        );
        let Some(target) = self.resolve_next_hop(now, &req) else {
            return;
        };
        if !decrement_max_forwards(&mut req.headers) {
            return;
        }
        let branch = format!("z9hG4bK{}", self.ids.token());
        push_via(
            &mut req.headers,
            self.settings.local_for(target.transport),
            target.transport,
            &branch,
        );
        self.tsx.send_stateless(Transmit {
            to: target.addr,
            transport: target.transport,
            message: req.into(),
        });
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        key: TsxKey,
        req: rsip::Request,
        invite: Option<TsxKey>,
        pending: bool,
    ) {
        // RFC 3261 §9.2: 481 when the CANCEL matches no INVITE.
        let Some(invite) = invite else {
            self.respond(
                now,
                &key,
                &req,
                481,
                Some("Call/Transaction Does Not Exist"),
                vec![],
            );
            return;
        };
        self.respond(now, &key, &req, 200, None, vec![]);
        if pending && self.mf.owns_server(&invite) {
            let mut ctx = role_ctx!(self, now);
            self.mf.on_cancel(&mut ctx, &invite);
            return;
        }
        if pending
            && let Some(cpm) = self.cpm.as_mut()
            && cpm.owns_invite(&invite)
        {
            let mut ctx = role_ctx!(self, now);
            cpm.on_cancel(&mut ctx, &invite);
            return;
        }
        if pending
            && let Some(f) = self.focus.as_mut()
            && f.owns_invite(&invite)
        {
            let mut ctx = role_ctx!(self, now);
            f.on_cancel(&mut ctx, &invite);
            return;
        }
        if pending && self.proxy.owns_server(&invite) {
            // §16.10: CANCEL every pending branch; their 487s go upstream.
            for branch in self.proxy.on_cancel(&invite) {
                let _ = self.tsx.cancel(now, &branch);
            }
        }
    }

    /// A 2xx retransmission after the client transaction ended (RFC 6026):
    /// forwarded statelessly along the Via (RFC 3261 §16.7 step 3 onwards).
    fn forward_stray_response(&mut self, mut response: rsip::Response) {
        let ours = top_via(&response.headers).is_some_and(|v| {
            self.settings
                .locals()
                .iter()
                .any(|l| v.port == Some(l.port()) && v.host == host_of(*l))
        });
        if !ours || response.status_code.code() / 100 != 2 {
            return;
        }
        super::sip_util::pop_via(&mut response.headers);
        if let Some((to, transport)) = top_via(&response.headers)
            .as_ref()
            .and_then(response_destination)
        {
            self.tsx.send_stateless(Transmit {
                to,
                transport,
                message: response.into(),
            });
        }
    }

    // --- registration event package (RFC 3680) ------------------------------

    fn on_reg_subscribe(
        &mut self,
        now: Instant,
        key: TsxKey,
        req: rsip::Request,
        user: &str,
        source: SocketAddr,
        transport: Transport,
    ) {
        // RFC 3680 §6: only the AOR's owner may watch it.
        let target = UriView::of(&req.uri);
        if target.user.as_deref() != Some(user) || !self.is_our_domain(&target.host) {
            let warning = format!(
                "399 {} \"only the owner may subscribe to an AOR's registrations\"",
                self.settings.domain
            );
            self.respond(
                now,
                &key,
                &req,
                403,
                Some("Forbidden"),
                vec![make_header("Warning", &warning)],
            );
            return;
        }
        let expires = reg_notifier::grant(
            req.headers
                .get_raw("Expires")
                .and_then(|v| v.trim().parse().ok()),
        );
        let tag = self.ids.token();
        let contact = contact_uri(self.settings.local_for(transport), transport);
        let response = response_with(
            &req,
            200,
            Some(&tag),
            None,
            vec![
                make_header("Expires", &expires.to_string()),
                make_header("Contact", &contact),
                make_header("Server", SERVER_AGENT),
            ],
        );
        let dialog = match Dialog::new_uas(&req, &response, 1) {
            Ok(d) => d,
            Err(e) => {
                self.respond(
                    now,
                    &key,
                    &req,
                    400,
                    Some("Bad SUBSCRIBE"),
                    vec![make_header(
                        "Warning",
                        &format!("399 {} \"{e}\"", self.settings.domain),
                    )],
                );
                return;
            }
        };
        let _ = self.tsx.send_response(now, &key, response);
        let aor = format!("sip:{user}@{}", self.settings.domain);
        let mut sub = RegSubscription {
            dialog,
            aor,
            expires_at: now + Duration::from_secs(u64::from(expires)),
            dest: source,
            transport,
            next_version: 0,
        };
        if expires == 0 {
            // RFC 6665 §4.2.1.4: a fetch — one NOTIFY, then the subscription ends.
            self.send_reg_notify(now, &mut sub, Some("timeout"));
        } else {
            self.send_reg_notify(now, &mut sub, None);
            self.notifier.add(sub);
        }
    }

    fn on_reg_resubscribe(
        &mut self,
        now: Instant,
        key: TsxKey,
        req: rsip::Request,
        id: DialogId,
        source: SocketAddr,
        transport: Transport,
    ) {
        let expires = reg_notifier::grant(
            req.headers
                .get_raw("Expires")
                .and_then(|v| v.trim().parse().ok()),
        );
        self.respond(
            now,
            &key,
            &req,
            200,
            None,
            vec![make_header("Expires", &expires.to_string())],
        );
        if expires == 0 {
            if let Some(mut sub) = self.notifier.remove(&id) {
                self.send_reg_notify(now, &mut sub, Some("timeout"));
            }
            return;
        }
        let mut sub = match self.notifier.remove(&id) {
            Some(s) => s,
            None => return,
        };
        let _ = sub.dialog.handle_request(&req);
        sub.expires_at = now + Duration::from_secs(u64::from(expires));
        sub.dest = source;
        sub.transport = transport;
        self.send_reg_notify(now, &mut sub, None);
        self.notifier.add(sub);
    }

    fn notify_changes(&mut self, now: Instant, changes: &[BindingChange]) {
        let mut aors: Vec<String> = changes.iter().map(|c| c.binding.aor.clone()).collect();
        aors.dedup();
        for aor in aors {
            for id in self.notifier.ids_for_aor(&aor) {
                if let Some(mut sub) = self.notifier.remove(&id) {
                    self.send_reg_notify(now, &mut sub, None);
                    self.notifier.add(sub);
                }
            }
        }
    }

    /// Sends the NOTIFY with the full reginfo of the subscription's AOR;
    /// `terminated` names the reason of a final one.
    fn send_reg_notify(
        &mut self,
        now: Instant,
        sub: &mut RegSubscription,
        terminated: Option<&str>,
    ) {
        let bindings: Vec<&Binding> = self.registrar.location().active_bindings(now, &sub.aor);
        let body =
            reg_notifier::full_state(now, &sub.aor, &bindings, sub.next_version, false).to_bytes();
        sub.next_version += 1;
        let branch = format!("z9hG4bK{}", self.ids.token());
        let via_text = via_text(
            self.settings.local_for(sub.transport),
            sub.transport,
            &branch,
        );
        let Ok(via) = rsip::typed::Via::try_from(rsip::headers::Via::from(via_text)) else {
            return;
        };
        let Ok(mut notify) = sub.dialog.create_request(rsip::Method::Notify, via) else {
            return;
        };
        let state = match terminated {
            Some(reason) => format!("terminated;reason={reason}"),
            None => format!(
                "active;expires={}",
                reg_notifier::remaining(sub.expires_at, now)
            ),
        };
        let h = &mut notify.headers;
        h.push(make_header("Event", "reg"));
        h.push(make_header("Subscription-State", &state));
        h.push(make_header(
            "Contact",
            &contact_uri(self.settings.local_for(sub.transport), sub.transport),
        ));
        h.push(make_header(
            "Content-Type",
            crate::proto::bodies::reginfo::CONTENT_TYPE,
        ));
        h.remove_named("Content-Length");
        h.push(make_header("Content-Length", &body.len().to_string()));
        notify.body = body;
        if let Err(e) = self.tsx.send_request(now, notify, sub.dest, sub.transport) {
            tracing::warn!(error = %e, "NOTIFY not sent");
        }
    }

    // --- helpers -------------------------------------------------------------

    /// AS mode: the originator is the core's P-Asserted-Identity (RFC 3325
    /// §9.1), believed only from a trusted core address; otherwise 403 with a
    /// Warning naming why.
    fn asserted_identity(
        &mut self,
        now: Instant,
        key: &TsxKey,
        req: &rsip::Request,
        source: SocketAddr,
    ) -> Option<String> {
        let trusted = self
            .settings
            .app_server
            .as_ref()
            .is_some_and(|a| a.trusted.contains(&source));
        let asserted = name_addr_uri(&req.headers, "P-Asserted-Identity")
            .and_then(|(_, v)| v.user.filter(|_| self.is_our_domain(&v.host)))
            .filter(|u| self.passwords.contains_key(u));
        let fault = match (trusted, asserted) {
            (true, Some(user)) => return Some(user),
            (false, _) => format!(
                "P-Asserted-Identity is trusted only from the SIP/IP core, not from {source}"
            ),
            (true, None) => "no P-Asserted-Identity of a known user".to_owned(),
        };
        let warning = format!("399 {} \"{fault}\"", self.settings.domain);
        self.respond(
            now,
            key,
            req,
            403,
            Some("Forbidden"),
            vec![make_header("Warning", &warning)],
        );
        None
    }

    /// How a binding is reached: in AS mode through the core, at the
    /// device's GRUU (RFC 5627 §5.1), else directly ([`target_of`]).
    fn binding_target(&self, b: &Binding) -> Option<Target> {
        let Some(app) = &self.settings.app_server else {
            return target_of(b);
        };
        let uri_text = b.gruu.as_deref().unwrap_or(&b.contact);
        Some(Target {
            uri: crate::proto::sip::message::parse_uri(uri_text).ok()?,
            addr: app.core,
            transport: Transport::Udp,
        })
    }

    /// Checks the request's credentials; on failure answers the challenge
    /// (401/407) or 403 itself and returns None.
    fn authenticate(
        &mut self,
        now: Instant,
        key: &TsxKey,
        req: &rsip::Request,
        kind: AuthKind,
    ) -> Option<String> {
        let passwords = &self.passwords;
        let outcome = self
            .digest
            .verify_request(now, req, kind, |u| passwords.get(u).cloned());
        match outcome {
            DigestOutcome::Authenticated { user } => Some(user),
            DigestOutcome::Challenge { stale, .. } => {
                let mut salt = [0u8; 16];
                self.ids.fill(&mut salt);
                let headers = self.digest.challenge_headers(now, kind, &salt, stale);
                let code = kind.status().code();
                self.respond(now, key, req, code, None, headers);
                None
            }
            DigestOutcome::Forbidden { reason } => {
                let warning = format!(
                    "399 {} \"authentication failed: {reason:?}\"",
                    self.settings.domain
                );
                self.respond(
                    now,
                    key,
                    req,
                    403,
                    Some("Forbidden"),
                    vec![make_header("Warning", &warning)],
                );
                None
            }
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        key: &TsxKey,
        req: &rsip::Request,
        code: u16,
        reason: Option<&str>,
        mut extra: Vec<rsip::Header>,
    ) {
        extra.push(make_header("Server", SERVER_AGENT));
        let tag = self.ids.token();
        let response = response_with(req, code, Some(&tag), reason, extra);
        if let Err(e) = self.tsx.send_response(now, key, response) {
            tracing::debug!(error = %e, code, "response not sent");
        }
    }

    fn send_stateless_response(
        &mut self,
        response: rsip::Response,
        source: SocketAddr,
        transport: Transport,
    ) {
        // Back where it came from, like the transaction layer's responses
        // (RFC 3261 §18.2.2 received, RFC 3581 §4): the Via of a request we
        // could not process is not trusted to name another host.
        self.tsx.send_stateless(Transmit {
            to: source,
            transport,
            message: response.into(),
        });
    }

    /// RFC 3261 §8.2 / §16.3: a request we cannot parse gets 400 with a
    /// Warning naming the fault when enough of it is readable to answer;
    /// anything else is dropped (a response can only be dropped, §18.1.2).
    fn answer_malformed(
        &mut self,
        bytes: &[u8],
        error: &SipParseError,
        source: SocketAddr,
        transport: Transport,
    ) {
        let Some(req) = salvage_request(bytes) else {
            return;
        };
        // 505 for another SIP version (RFC 3261 §8.2.2, RFC 4475 §3.1.2.16), else 400.
        let (code, text) = error.status();
        let warning = format!(
            "399 {} \"{}\"",
            self.settings.domain,
            text.replace('"', "'")
        );
        let resp = response_with(
            &req,
            code,
            Some(&self.ids.token()),
            None,
            vec![
                make_header("Warning", &warning),
                make_header("Server", SERVER_AGENT),
            ],
        );
        self.send_stateless_response(resp, source, transport);
    }

    /// `sip:content@<domain>`: the content list (see [`super::content_list`]).
    fn is_content_list_uri(&self, uri: &rsip::Uri) -> bool {
        let v = UriView::of(uri);
        v.user.as_deref() == Some(super::content_list::CONTENT_LIST_USER)
            && self.is_our_domain(&v.host)
    }

    /// 200 to OPTIONS with the list as body (RFC 3261 §11.2).
    fn answer_content_list(&mut self, now: Instant, key: &TsxKey, req: &rsip::Request) {
        let body = self.mf.library().list().to_bytes();
        let mut response = response_with(
            req,
            200,
            Some(&self.ids.token()),
            None,
            vec![
                make_header("Allow", ALLOW),
                make_header("Accept", super::content_list::CONTENT_TYPE),
                make_header("Server", SERVER_AGENT),
                make_header("Content-Type", super::content_list::CONTENT_TYPE),
            ],
        );
        response.headers.remove_named("Content-Length");
        response
            .headers
            .push(make_header("Content-Length", &body.len().to_string()));
        response.body = body;
        if let Err(e) = self.tsx.send_response(now, key, response) {
            tracing::debug!(error = %e, "content list not sent");
        }
    }

    fn is_our_domain(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.settings.domain)
            || host == host_of(self.settings.local)
            || host.eq_ignore_ascii_case("localhost")
    }

    fn addresses_server(&self, req: &rsip::Request) -> bool {
        let v = UriView::of(&req.uri);
        v.user.is_none() && self.is_our_domain(&v.host)
    }
}

fn is_reg_event(req: &rsip::Request) -> bool {
    req.headers
        .typed::<Event>()
        .ok()
        .flatten()
        .is_some_and(|e| e.package.eq_ignore_ascii_case("reg"))
}

fn target_of(b: &Binding) -> Option<Target> {
    let uri = crate::proto::sip::message::parse_uri(&b.contact).ok()?;
    // RFC 3261 §16.5: the registered Contact is the target. A UDP contact
    // that is an IP literal is reached there, even when someone else
    // registered it (RFC 3261 §10.2.1; SIPp does so in
    // tests/interop_sipp.rs). Otherwise (outbound reg-id, TCP connection
    // reuse per RFC 5923, a host name) the flow the REGISTER came on.
    let view = UriView::of(&uri);
    let addr = match view.socket_addr() {
        Some(contact)
            if b.source.transport == rsip::Transport::Udp
                && b.reg_id.is_none()
                && view.transport.is_none_or(|t| t == Transport::Udp) =>
        {
            contact
        }
        _ => b.source.addr,
    };
    Some(Target {
        uri,
        addr,
        transport: Transport::from_rsip(b.source.transport),
    })
}

/// Reads just enough of a request our parser refused to answer it: the
/// start line's method plus Via, From, To, Call-ID and CSeq as raw lines.
fn salvage_request(bytes: &[u8]) -> Option<rsip::Request> {
    // The header section only: a body need not be text.
    let head = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .and_then(|end| bytes.get(..end))
        .unwrap_or(bytes);
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let start = lines.next()?;
    // A request line: a method, a URI and a version (any version: 505).
    if start.starts_with("SIP/") || !start.split_whitespace().last()?.starts_with("SIP/") {
        return None;
    }
    let mut headers = rsip::Headers::default();
    let mut seen = [false; 5];
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = crate::proto::sip::headers::expand_compact(name.trim())
            .unwrap_or(name.trim())
            .to_string();
        for (i, wanted) in ["Via", "From", "To", "Call-ID", "CSeq"].iter().enumerate() {
            if name.eq_ignore_ascii_case(wanted) {
                headers.push(make_header(wanted, value.trim()));
                seen[i] = true;
            }
        }
    }
    // Via routes the answer and CSeq matches it; the rest is copied when
    // present (RFC 4475 §3.3.1 wants a 400 even without From, To, Call-ID).
    if !(seen[0] && seen[4]) {
        return None;
    }
    Some(rsip::Request {
        method: rsip::Method::Options,
        uri: rsip::Uri::default(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    })
}
