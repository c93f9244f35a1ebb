//! The B2BUA base the media-path roles share (CPM Participating Function,
//! later the ISC Media Function and the conference focus), RFC 3261 §6
//! "back-to-back user agent".
//!
//! A [`B2buaCall`] is one incoming (originator) leg — a UAS dialog on the
//! INVITE server transaction — and N outgoing legs, each a UAC dialog with
//! its own Call-ID and tags. The B2BUA:
//! - puts its own Contact on everything it sends (never a device's);
//! - ACKs every 2xx it receives on an outgoing leg itself (RFC 3261
//!   §13.2.2.4) and re-ACKs its retransmissions;
//! - retransmits its 2xx to the originator until the ACK, which ends here
//!   ([`OkRetransmission`], §13.3.1.4);
//! - sends CANCEL and BYE to legs with an optional Reason (RFC 3326);
//! - matches in-dialog requests of either side to their call
//!   ([`B2bua::match_request`]) and leaves the decision to the role;
//! - runs a session timer (RFC 4028) on every leg: `Supported: timer` and
//!   Session-Expires on its INVITEs and 2xx, UPDATE refreshes when it is the
//!   refresher, and reports legs whose session expired
//!   ([`B2bua::handle_timeout`]).
//!
//! Sans-IO: every operation takes a [`SipCtx`] holding `now`, the core's
//! transaction layer and id generator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::proto::ids::IdGen;
use crate::proto::sip::build::response_with;
use crate::proto::sip::dialog::{
    Dialog, DialogId, DialogState, OkRetransmission, OkRetransmissionEvent,
};
use crate::proto::sip::headers::{HeadersExt, make_header};
use crate::proto::sip::session_timer::{
    OPTION_TAG, SessionTimer, SessionTimerAction, SessionTimerConfig, supports_timer,
};
use crate::proto::sip::transaction::{TransactionLayer, Transmit, Transport, TsxKey};

use super::core::SERVER_AGENT;
use super::proxy_core::Target;
use super::sip_util::{contact_uri, local_for, push_via, via_text};

/// A call of the B2BUA.
pub type CallRef = u64;

/// What the B2BUA works through.
pub struct SipCtx<'a> {
    pub now: Instant,
    pub tsx: &'a mut TransactionLayer,
    pub ids: &'a mut dyn IdGen,
    /// The server's SIP address (Via, Contact) for UDP and TCP.
    pub local: SocketAddr,
    /// Its SIP-over-TLS address, when it listens for TLS.
    pub tls_local: Option<SocketAddr>,
    pub domain: &'a str,
}

impl SipCtx<'_> {
    /// Our address on a leg over `transport`.
    pub fn local_for(&self, transport: Transport) -> SocketAddr {
        local_for(self.local, self.tls_local, transport)
    }

    /// Our Contact for `transport` (RFC 3261 §8.1.1.8): the server, never a device.
    pub fn contact(&self, transport: Transport) -> String {
        contact_uri(self.local_for(transport), transport)
    }

    /// A fresh Via of ours for a request over `transport`.
    pub fn via(&mut self, transport: Transport) -> Option<rsip::typed::Via> {
        let branch = format!("z9hG4bK{}", self.ids.token());
        let text = via_text(self.local_for(transport), transport, &branch);
        rsip::typed::Via::try_from(rsip::headers::Via::from(text)).ok()
    }
}

/// Which side of a call a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Incoming,
    /// Outgoing leg number.
    Outgoing(usize),
}

/// The originator's leg.
#[derive(Debug)]
pub struct IncomingLeg {
    /// The INVITE server transaction.
    pub key: TsxKey,
    pub request: rsip::Request,
    pub source: SocketAddr,
    pub transport: Transport,
    /// Our To tag towards the originator.
    pub local_tag: String,
    pub dialog: Option<Dialog>,
    ok: Option<OkRetransmission>,
    /// A final response went out.
    pub final_sent: bool,
    /// RFC 4028 on this leg (the B2BUA is the UAS).
    pub timer: SessionTimer,
}

/// One leg towards a device.
#[derive(Debug)]
pub struct OutgoingLeg {
    /// The INVITE as sent (with our Via).
    pub request: rsip::Request,
    pub tsx: TsxKey,
    pub target: Target,
    pub dialog: Option<Dialog>,
    /// The final response code, once there is one.
    pub final_code: Option<u16>,
    /// A CANCEL went out on it.
    pub cancelled: bool,
    /// BYE sent or received: the leg is over.
    pub ended: bool,
    /// RFC 4028 on this leg (the B2BUA is the UAC).
    pub timer: SessionTimer,
}

impl OutgoingLeg {
    /// Still waiting for a final response.
    pub fn is_pending(&self) -> bool {
        self.final_code.is_none() && !self.ended
    }

    /// Confirmed by a 2xx and not ended.
    pub fn is_up(&self) -> bool {
        !self.ended
            && self
                .dialog
                .as_ref()
                .is_some_and(|d| d.state() == DialogState::Confirmed)
    }
}

/// One call: the originator's leg and the legs towards devices.
#[derive(Debug)]
pub struct B2buaCall {
    pub incoming: IncomingLeg,
    pub outgoing: Vec<OutgoingLeg>,
}

/// A response or failure on an outgoing leg, after the B2BUA's own work
/// (2xx ACKed, dialog made).
#[derive(Debug, Clone, PartialEq)]
pub struct LegResponse {
    pub call: CallRef,
    pub leg: usize,
    pub code: u16,
    /// `None` for a timeout (408) or transport failure (503).
    pub response: Option<rsip::Response>,
    /// A 2xx this leg already had (retransmission): nothing new for the role.
    pub retransmission: bool,
}

/// What [`B2bua::handle_timeout`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B2buaTimeout {
    /// RFC 3261 §13.3.1.4: the originator never ACKed our 2xx.
    NoAck(CallRef),
    /// RFC 4028 §10: no refresh came in time on this side: BYE was sent.
    SessionExpired(CallRef, Side),
}

/// Every call of one role.
#[derive(Debug, Default)]
pub struct B2bua {
    calls: HashMap<CallRef, B2buaCall>,
    by_client: HashMap<TsxKey, (CallRef, usize)>,
    /// Our UPDATE refreshes (RFC 4028 §7.4) under way.
    refreshes: HashMap<TsxKey, (CallRef, Side)>,
    timer_config: SessionTimerConfig,
    by_server: HashMap<TsxKey, CallRef>,
    by_dialog: HashMap<DialogId, (CallRef, Side)>,
    next: CallRef,
}

/// RFC 3326 Reason of a BYE/CANCEL that ends a sibling (seed 001 8.3.2.1.1 step 4.a.i).
pub const REASON_COMPLETED_ELSEWHERE: &str = "SIP;cause=200;text=\"Call completed elsewhere\"";

impl B2bua {
    pub fn new() -> Self {
        Self::default()
    }

    /// With this session timer configuration on every leg.
    pub fn with_session_timer(config: SessionTimerConfig) -> Self {
        B2bua {
            timer_config: config,
            ..Self::default()
        }
    }

    /// RFC 4028 §9: may the originator's INVITE be accepted? `Err` holds the
    /// status (422) and its headers (Min-SE).
    pub fn check_session_timer(&self, req: &rsip::Request) -> Result<(), (u16, Vec<rsip::Header>)> {
        SessionTimer::new(self.timer_config)
            .check_request(req)
            .map_err(|e| (e.status_code(), e.response_headers()))
    }

    /// Opens a call for the initial INVITE received on server transaction `key`.
    pub fn open(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: TsxKey,
        request: rsip::Request,
        source: SocketAddr,
        transport: Transport,
    ) -> CallRef {
        self.next += 1;
        let call = self.next;
        self.by_server.insert(key.clone(), call);
        self.calls.insert(
            call,
            B2buaCall {
                incoming: IncomingLeg {
                    key,
                    request,
                    source,
                    transport,
                    local_tag: ctx.ids.token(),
                    dialog: None,
                    ok: None,
                    final_sent: false,
                    timer: SessionTimer::new(self.timer_config),
                },
                outgoing: Vec::new(),
            },
        );
        call
    }

    pub fn call(&self, call: CallRef) -> Option<&B2buaCall> {
        self.calls.get(&call)
    }

    /// Every call, in no particular order.
    pub fn calls(&self) -> impl Iterator<Item = (CallRef, &B2buaCall)> {
        self.calls.iter().map(|(k, c)| (*k, c))
    }

    /// The call whose INVITE server transaction is `key`.
    pub fn call_of_server(&self, key: &TsxKey) -> Option<CallRef> {
        self.by_server.get(key).copied()
    }

    /// True if client transaction `key` is one of our outgoing INVITEs.
    pub fn owns_client(&self, key: &TsxKey) -> bool {
        self.by_client.contains_key(key) || self.refreshes.contains_key(key)
    }

    /// Sends `request` (an INVITE without Via; the role set Request-URI,
    /// From/To/Call-ID/CSeq and body) to `target` as a new outgoing leg.
    pub fn send_invite(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        target: Target,
        mut request: rsip::Request,
    ) -> Option<usize> {
        let c = self.calls.get_mut(&call)?;
        let branch = format!("z9hG4bK{}", ctx.ids.token());
        push_via(
            &mut request.headers,
            ctx.local_for(target.transport),
            target.transport,
            &branch,
        );
        // RFC 4028 §7.1: we support timers and ask for an interval.
        let mut timer = SessionTimer::new(self.timer_config);
        request.headers.remove_named("Session-Expires");
        request.headers.remove_named("Min-SE");
        if !supports_timer(&request.headers) {
            insert_before_length(&mut request.headers, make_header("Supported", OPTION_TAG));
        }
        for h in timer.request_headers() {
            insert_before_length(&mut request.headers, h);
        }
        timer.request_sent();
        let key =
            match ctx
                .tsx
                .send_request(ctx.now, request.clone(), target.addr, target.transport)
            {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(error = %e, "B2BUA leg not started");
                    return None;
                }
            };
        let leg = c.outgoing.len();
        c.outgoing.push(OutgoingLeg {
            request,
            tsx: key.clone(),
            target,
            dialog: None,
            final_code: None,
            cancelled: false,
            ended: false,
            timer,
        });
        self.by_client.insert(key, (call, leg));
        Some(leg)
    }

    /// A response on one of our client transactions. A 2xx makes the leg's
    /// dialog and is ACKed here (RFC 3261 §13.2.2.4).
    pub fn on_response(
        &mut self,
        ctx: &mut SipCtx<'_>,
        key: &TsxKey,
        response: rsip::Response,
    ) -> Option<LegResponse> {
        if let Some((call, side)) = self.refreshes.get(key).copied() {
            let code = response.status_code.code();
            if code >= 200 {
                self.refreshes.remove(key);
                if let Some(t) = self.timer_mut(call, side) {
                    // RFC 4028 §7.2 / §7.3
                    match code {
                        200..=299 => t.handle_2xx(ctx.now, &response),
                        422 => {
                            let _ = t.handle_422(&response);
                        }
                        _ => t.refresh_failed(),
                    }
                }
            }
            return None;
        }
        let (call, leg) = *self.by_client.get(key)?;
        let o = self.calls.get_mut(&call)?.outgoing.get_mut(leg)?;
        let code = response.status_code.code();
        if key.method != rsip::Method::Invite {
            // CANCEL / BYE responses: nothing for the role.
            return None;
        }
        let mut retransmission = false;
        if (200..300).contains(&code) {
            match &o.dialog {
                Some(d) if d.state() == DialogState::Confirmed => {
                    retransmission = true;
                    if let Some(ack) = d.ack_for_retransmission(&response) {
                        ctx.tsx.send_stateless(Transmit {
                            to: o.target.addr,
                            transport: o.target.transport,
                            message: ack.into(),
                        });
                    }
                }
                _ => match Dialog::new_uac(&o.request, &response) {
                    Ok(mut d) => {
                        if let Some(via) = ctx.via(o.target.transport)
                            && let Ok(ack) = d.create_ack_for_invite(&o.request, via)
                        {
                            ctx.tsx.send_stateless(Transmit {
                                to: o.target.addr,
                                transport: o.target.transport,
                                message: ack.into(),
                            });
                        }
                        self.by_dialog
                            .insert(d.id().clone(), (call, Side::Outgoing(leg)));
                        o.dialog = Some(d);
                        o.timer.handle_2xx(ctx.now, &response);
                    }
                    Err(e) => tracing::info!(error = %e, "2xx without a usable dialog"),
                },
            }
            o.final_code.get_or_insert(code);
        } else if code >= 300 {
            o.final_code.get_or_insert(code);
        } else if code > 100
            && o.dialog.is_none()
            && let Ok(d) = Dialog::new_uac(&o.request, &response)
        {
            // An early dialog, so a BYE can find it later.
            self.by_dialog
                .insert(d.id().clone(), (call, Side::Outgoing(leg)));
            o.dialog = Some(d);
        }
        Some(LegResponse {
            call,
            leg,
            code,
            response: Some(response),
            retransmission,
        })
    }

    /// Timer B/F or a transport failure on client transaction `key`
    /// (counted as 408 / 503, RFC 3261 §16.7 step 2 / §16.9).
    pub fn on_failure(&mut self, key: &TsxKey, code: u16) -> Option<LegResponse> {
        let (call, leg) = *self.by_client.get(key)?;
        if key.method != rsip::Method::Invite {
            return None;
        }
        let o = self.calls.get_mut(&call)?.outgoing.get_mut(leg)?;
        if o.final_code.is_some() {
            return None;
        }
        o.final_code = Some(code);
        Some(LegResponse {
            call,
            leg,
            code,
            response: None,
            retransmission: false,
        })
    }

    /// A client transaction ended.
    pub fn on_terminated(&mut self, key: &TsxKey) {
        self.by_client.remove(key);
        self.refreshes.remove(key);
    }

    /// Answers the originator's INVITE. A 2xx gets our Contact, makes the
    /// UAS dialog and is retransmitted until its ACK (RFC 3261 §13.3.1.4).
    pub fn answer(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        code: u16,
        reason: Option<&str>,
        mut extra: Vec<rsip::Header>,
        body: Option<(&str, Vec<u8>)>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let inc = &mut c.incoming;
        if inc.final_sent && code >= 200 {
            return;
        }
        if (200..300).contains(&code) {
            // RFC 4028 §9: the negotiated interval and refresher.
            extra.push(make_header("Supported", OPTION_TAG));
            extra.extend(inc.timer.answer_request(ctx.now, &inc.request));
        }
        extra.push(make_header("Server", SERVER_AGENT));
        // A role may name its own Contact (the focus: the session identity
        // with `isfocus`, RFC 4579 §5.3); else the server's.
        let has_contact = extra.iter().any(|h| {
            crate::proto::sip::headers::name_value(h)
                .0
                .eq_ignore_ascii_case("Contact")
        });
        if (101..300).contains(&code) && !has_contact {
            extra.push(make_header("Contact", &ctx.contact(inc.transport)));
        }
        let mut response = response_with(&inc.request, code, Some(&inc.local_tag), reason, extra);
        if let Some((ct, bytes)) = body {
            response.headers.remove_named("Content-Length");
            response.headers.push(make_header("Content-Type", ct));
            response
                .headers
                .push(make_header("Content-Length", &bytes.len().to_string()));
            response.body = bytes;
        }
        if code >= 200 {
            inc.final_sent = true;
        }
        if (200..300).contains(&code) {
            match Dialog::new_uas(&inc.request, &response, 1) {
                Ok(d) => {
                    self.by_dialog
                        .insert(d.id().clone(), (call, Side::Incoming));
                    inc.dialog = Some(d);
                }
                Err(e) => tracing::info!(error = %e, "originator dialog not made"),
            }
            inc.ok = Some(OkRetransmission::new(
                ctx.now,
                response.clone(),
                inc.source,
                inc.transport,
            ));
        }
        if let Err(e) = ctx.tsx.send_response(ctx.now, &inc.key, response) {
            tracing::debug!(error = %e, code, "answer not sent");
        }
    }

    /// An ACK with no transaction: the one for our 2xx to the originator
    /// (ends here), or one for a re-INVITE on any leg. True if it was ours.
    pub fn on_ack(&mut self, now: Instant, ack: &rsip::Request) -> bool {
        for c in self.calls.values_mut() {
            if let Some(ok) = &mut c.incoming.ok
                && ok.is_active()
                && ok.matches_ack(ack)
            {
                ok.handle_ack(now);
                return true;
            }
        }
        DialogId::for_received_request(ack)
            .ok()
            .is_some_and(|id| self.by_dialog.contains_key(&id))
    }

    /// The call and side of an in-dialog request, after the dialog's checks
    /// (RFC 3261 §12.2.2); `Err(code)` when it must be refused.
    pub fn match_request(&mut self, req: &rsip::Request) -> Option<Result<(CallRef, Side), u16>> {
        let id = DialogId::for_received_request(req).ok()?;
        let (call, side) = *self.by_dialog.get(&id)?;
        let c = self.calls.get_mut(&call)?;
        let dialog = match side {
            Side::Incoming => c.incoming.dialog.as_mut(),
            Side::Outgoing(i) => c.outgoing.get_mut(i).and_then(|o| o.dialog.as_mut()),
        };
        let Some(dialog) = dialog else {
            return Some(Err(481));
        };
        if let Err(e) = dialog.handle_request(req) {
            return Some(Err(e.status_code()));
        }
        if req.method == rsip::Method::Bye
            && let Side::Outgoing(i) = side
            && let Some(o) = c.outgoing.get_mut(i)
        {
            o.ended = true;
        }
        Some(Ok((call, side)))
    }

    /// Whether `req` belongs to one of our dialogs (without checking it).
    pub fn knows_dialog(&self, req: &rsip::Request) -> bool {
        DialogId::for_received_request(req)
            .ok()
            .is_some_and(|id| self.by_dialog.contains_key(&id))
    }

    fn timer_mut(&mut self, call: CallRef, side: Side) -> Option<&mut SessionTimer> {
        let c = self.calls.get_mut(&call)?;
        match side {
            Side::Incoming => Some(&mut c.incoming.timer),
            Side::Outgoing(i) => c.outgoing.get_mut(i).map(|o| &mut o.timer),
        }
    }

    /// RFC 4028 §9: a session refresh (re-INVITE / UPDATE) received on
    /// `side`: `Ok` holds the headers for its 2xx, `Err` a refusal (422 +
    /// Min-SE).
    pub fn refresh_received(
        &mut self,
        now: Instant,
        call: CallRef,
        side: Side,
        req: &rsip::Request,
    ) -> Result<Vec<rsip::Header>, (u16, Vec<rsip::Header>)> {
        let Some(t) = self.timer_mut(call, side) else {
            return Ok(Vec::new());
        };
        if let Err(e) = t.check_request(req) {
            return Err((e.status_code(), e.response_headers()));
        }
        let mut headers = vec![make_header("Supported", OPTION_TAG)];
        headers.extend(t.answer_request(now, req));
        Ok(headers)
    }

    /// Sends an UPDATE session refresh (RFC 4028 §7.4, RFC 3311) on `side`.
    fn send_refresh(&mut self, ctx: &mut SipCtx<'_>, call: CallRef, side: Side) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let (dialog, timer, to, transport) = match side {
            Side::Incoming => (
                c.incoming.dialog.as_mut(),
                &mut c.incoming.timer,
                c.incoming.source,
                c.incoming.transport,
            ),
            Side::Outgoing(i) => match c.outgoing.get_mut(i) {
                Some(o) if !o.ended => (
                    o.dialog.as_mut(),
                    &mut o.timer,
                    o.target.addr,
                    o.target.transport,
                ),
                _ => return,
            },
        };
        let Some(dialog) = dialog else { return };
        let Some(via) = ctx.via(transport) else {
            return;
        };
        let Ok(mut update) = dialog.create_request(rsip::Method::Update, via) else {
            return;
        };
        insert_before_length(&mut update.headers, make_header("Supported", OPTION_TAG));
        for h in timer.request_headers() {
            insert_before_length(&mut update.headers, h);
        }
        timer.request_sent();
        match ctx.tsx.send_request(ctx.now, update, to, transport) {
            Ok(key) => {
                self.refreshes.insert(key, (call, side));
            }
            Err(e) => tracing::info!(error = %e, "session refresh not sent"),
        }
    }

    /// Answers an in-dialog request on server transaction `key`.
    pub fn respond(
        ctx: &mut SipCtx<'_>,
        key: &TsxKey,
        req: &rsip::Request,
        code: u16,
        mut extra: Vec<rsip::Header>,
        body: Option<(&str, Vec<u8>)>,
    ) {
        extra.push(make_header("Server", SERVER_AGENT));
        let tag = ctx.ids.token();
        let mut response = response_with(req, code, Some(&tag), None, extra);
        if let Some((ct, bytes)) = body {
            response.headers.remove_named("Content-Length");
            response.headers.push(make_header("Content-Type", ct));
            response
                .headers
                .push(make_header("Content-Length", &bytes.len().to_string()));
            response.body = bytes;
        }
        if let Err(e) = ctx.tsx.send_response(ctx.now, key, response) {
            tracing::debug!(error = %e, code, "in-dialog response not sent");
        }
    }

    /// Sends BYE on `side` of `call` with an optional RFC 3326 Reason; the
    /// leg is over afterwards.
    pub fn send_bye(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        side: Side,
        reason: Option<&str>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let (dialog, to, transport) = match side {
            Side::Incoming => (
                c.incoming.dialog.as_mut(),
                c.incoming.source,
                c.incoming.transport,
            ),
            Side::Outgoing(i) => match c.outgoing.get_mut(i) {
                Some(o) if !o.ended => {
                    o.ended = true;
                    (o.dialog.as_mut(), o.target.addr, o.target.transport)
                }
                _ => return,
            },
        };
        let Some(dialog) = dialog else { return };
        if dialog.state() != DialogState::Confirmed {
            return;
        }
        let Some(via) = ctx.via(transport) else {
            return;
        };
        let Ok(mut bye) = dialog.create_request(rsip::Method::Bye, via) else {
            return;
        };
        dialog.terminate();
        if let Some(r) = reason {
            insert_before_length(&mut bye.headers, make_header("Reason", r));
        }
        insert_before_length(&mut bye.headers, make_header("User-Agent", SERVER_AGENT));
        if let Err(e) = ctx.tsx.send_request(ctx.now, bye, to, transport) {
            tracing::info!(error = %e, "BYE not sent");
        }
    }

    /// CANCELs the pending outgoing leg `leg` (RFC 3261 §9.1) with an
    /// optional Reason (RFC 3326): built here, since the transaction
    /// layer's own CANCEL carries none.
    pub fn cancel_leg(
        &mut self,
        ctx: &mut SipCtx<'_>,
        call: CallRef,
        leg: usize,
        reason: Option<&str>,
    ) {
        let Some(o) = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.outgoing.get_mut(leg))
        else {
            return;
        };
        if !o.is_pending() || o.cancelled {
            return;
        }
        o.cancelled = true;
        let mut headers = rsip::Headers::default();
        for h in o.request.headers.iter() {
            let (name, value) = crate::proto::sip::headers::name_value(h);
            let full = crate::proto::sip::headers::expand_compact(&name)
                .unwrap_or(&name)
                .to_owned();
            if ["From", "To", "Call-ID", "Route", "Max-Forwards"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&full))
            {
                headers.push(make_header(&full, &value));
            }
        }
        // §9.1: the top Via of the request being cancelled.
        let Some(via) = o.request.headers.get_all_raw("Via").into_iter().next() else {
            return;
        };
        let via = via.split(',').next().unwrap_or_default().trim().to_string();
        insert_first(&mut headers, make_header("Via", &via));
        let seq = crate::proto::sip::build::cseq(&o.request.headers)
            .map(|(s, _)| s)
            .unwrap_or(1);
        headers.push(make_header("CSeq", &format!("{seq} CANCEL")));
        if let Some(r) = reason {
            headers.push(make_header("Reason", r));
        }
        headers.push(make_header("Content-Length", "0"));
        let cancel = rsip::Request {
            method: rsip::Method::Cancel,
            uri: o.request.uri.clone(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        };
        if let Err(e) = ctx
            .tsx
            .send_request(ctx.now, cancel, o.target.addr, o.target.transport)
        {
            tracing::info!(error = %e, "CANCEL not sent");
        }
    }

    /// A 2xx that matched no transaction (RFC 6026): re-ACK it if it is for
    /// one of our legs.
    pub fn on_stray_response(&mut self, ctx: &mut SipCtx<'_>, response: &rsip::Response) {
        let Ok(id) = DialogId::for_received_response(response) else {
            return;
        };
        let Some((call, Side::Outgoing(leg))) = self.by_dialog.get(&id).copied() else {
            return;
        };
        if let Some(o) = self.calls.get(&call).and_then(|c| c.outgoing.get(leg))
            && let Some(ack) = o
                .dialog
                .as_ref()
                .and_then(|d| d.ack_for_retransmission(response))
        {
            ctx.tsx.send_stateless(Transmit {
                to: o.target.addr,
                transport: o.target.transport,
                message: ack.into(),
            });
        }
    }

    /// The soonest 2xx retransmission, give-up or session timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .flat_map(|c| {
                let ok = c.incoming.ok.as_ref().and_then(|o| o.poll_timeout());
                let inc = c
                    .incoming
                    .dialog
                    .is_some()
                    .then(|| c.incoming.timer.poll_timeout())
                    .flatten();
                let legs = c
                    .outgoing
                    .iter()
                    .filter(|o| !o.ended)
                    .filter_map(|o| o.timer.poll_timeout());
                ok.into_iter().chain(inc).chain(legs)
            })
            .min()
    }

    /// Drives the 2xx retransmissions and the session timers: refreshes
    /// are sent here; expired legs get BYE and are reported, as are calls
    /// whose originator never ACKed (RFC 3261 §13.3.1.4: the role ends them).
    pub fn handle_timeout(&mut self, ctx: &mut SipCtx<'_>) -> Vec<B2buaTimeout> {
        let mut out = Vec::new();
        let mut due: Vec<(CallRef, Side, SessionTimerAction)> = Vec::new();
        for (call, c) in &mut self.calls {
            if let Some(ok) = &mut c.incoming.ok {
                ok.handle_timeout(ctx.now);
                while let Some(t) = ok.poll_transmit() {
                    ctx.tsx.send_stateless(t);
                }
                while let Some(ev) = ok.poll_event() {
                    if ev == OkRetransmissionEvent::NoAck {
                        out.push(B2buaTimeout::NoAck(*call));
                    }
                }
            }
            if c.incoming.dialog.is_some()
                && let Some(a) = c.incoming.timer.handle_timeout(ctx.now)
            {
                due.push((*call, Side::Incoming, a));
            }
            for (i, o) in c.outgoing.iter_mut().enumerate() {
                if !o.ended
                    && let Some(a) = o.timer.handle_timeout(ctx.now)
                {
                    due.push((*call, Side::Outgoing(i), a));
                }
            }
        }
        for (call, side, action) in due {
            match action {
                SessionTimerAction::Refresh => self.send_refresh(ctx, call, side),
                SessionTimerAction::Bye => {
                    // RFC 4028 §10: the session expired.
                    self.send_bye(
                        ctx,
                        call,
                        side,
                        Some("SIP;cause=408;text=\"Session expired\""),
                    );
                    out.push(B2buaTimeout::SessionExpired(call, side));
                }
            }
        }
        out
    }

    /// Forgets a call.
    pub fn remove(&mut self, call: CallRef) {
        if let Some(c) = self.calls.remove(&call) {
            self.by_server.remove(&c.incoming.key);
            self.by_client.retain(|_, (x, _)| *x != call);
            self.refreshes.retain(|_, (x, _)| *x != call);
            self.by_dialog.retain(|_, (x, _)| *x != call);
        }
    }

    /// True if `response` (e.g. a stray 2xx retransmission) is in one of our
    /// dialogs. Added for the ISC Media Function (branch mf).
    pub fn knows_response_dialog(&self, response: &rsip::Response) -> bool {
        DialogId::for_received_response(response)
            .ok()
            .is_some_and(|id| self.by_dialog.contains_key(&id))
    }

    /// The dialog of one side of a call and where its requests go, for a
    /// role's own in-dialog requests (INFO, NOTIFY). Added for the ISC Media
    /// Function (branch mf).
    pub fn dialog_mut(
        &mut self,
        call: CallRef,
        side: Side,
    ) -> Option<(&mut Dialog, SocketAddr, Transport)> {
        let c = self.calls.get_mut(&call)?;
        match side {
            Side::Incoming => {
                let i = &mut c.incoming;
                Some((i.dialog.as_mut()?, i.source, i.transport))
            }
            Side::Outgoing(n) => {
                let o = c.outgoing.get_mut(n)?;
                if o.ended {
                    return None;
                }
                Some((o.dialog.as_mut()?, o.target.addr, o.target.transport))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

fn insert_first(headers: &mut rsip::Headers, header: rsip::Header) {
    super::sip_util::insert_first(headers, header)
}

/// Adds `header` before Content-Length (which [`Dialog`] puts last).
fn insert_before_length(headers: &mut rsip::Headers, header: rsip::Header) {
    let mut all: Vec<rsip::Header> = std::mem::take(headers).into();
    let at = all
        .iter()
        .position(|h| matches!(h, rsip::Header::ContentLength(_)))
        .unwrap_or(all.len());
    all.insert(at, header);
    *headers = all.into();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::SeqIds;
    use crate::proto::sip::message::parse_message;
    use crate::proto::sip::transaction::LayerEvent;
    use std::time::Duration;

    const ALICE: &str = "127.0.0.1:5070";
    const DEVICE: &str = "127.0.0.1:5080";

    struct World {
        tsx: TransactionLayer,
        ids: SeqIds,
        now: Instant,
    }

    impl World {
        fn ctx(&mut self) -> SipCtx<'_> {
            SipCtx {
                now: self.now,
                tsx: &mut self.tsx,
                ids: &mut self.ids,
                local: "127.0.0.1:5060".parse().unwrap(),
                tls_local: None,
                domain: "isc.local",
            }
        }

        fn transmits(&mut self) -> Vec<(SocketAddr, rsip::SipMessage)> {
            std::iter::from_fn(|| self.tsx.poll_transmit())
                .map(|t| (t.to, t.message))
                .collect()
        }

        /// Feeds `text` from `from`; returns the layer's events.
        fn feed(&mut self, text: &str, from: &str) -> Vec<LayerEvent> {
            let msg = parse_message(text.as_bytes()).unwrap();
            self.tsx
                .handle_message(self.now, msg, from.parse().unwrap(), Transport::Udp)
                .unwrap();
            std::iter::from_fn(|| self.tsx.poll_event()).collect()
        }
    }

    fn request(m: &rsip::SipMessage) -> &rsip::Request {
        match m {
            rsip::SipMessage::Request(r) => r,
            _ => panic!("not a request"),
        }
    }

    /// A call with one outgoing leg whose INVITE was sent.
    fn call_with_leg() -> (World, B2bua, CallRef, rsip::Request) {
        let mut b = B2bua::new();
        let mut w = World {
            tsx: TransactionLayer::new(),
            ids: SeqIds::new("x"),
            now: Instant::now(),
        };
        let invite = format!(
            "INVITE sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP {ALICE};branch=z9hG4bKa1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@isc.local>;tag=at\r\nTo: <sip:bob@isc.local>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{ALICE}>\r\nContent-Length: 0\r\n\r\n"
        );
        let ev = w.feed(&invite, ALICE);
        let Some(LayerEvent::NewRequest {
            key,
            request: incoming,
            ..
        }) = ev.into_iter().next()
        else {
            panic!("no new request")
        };
        let mut ctx = w.ctx();
        let call = w_open(&mut b, &mut ctx, key, incoming);
        let out = parse_message(
            b"INVITE sip:bob@isc.local;gr=urn:uuid:d1 SIP/2.0\r\nVia: SIP/2.0/UDP x.invalid;branch=z9hG4bKdrop\r\nMax-Forwards: 70\r\nFrom: <sip:alice@isc.local>;tag=bt\r\nTo: <sip:bob@isc.local>\r\nCall-ID: leg1\r\nCSeq: 1 INVITE\r\nContact: <sip:127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut template = request(&out).clone();
        // The role hands the B2BUA a request without Via.
        template.headers.remove_named("Via");
        let target = Target {
            uri: request(&out).uri.clone(),
            addr: DEVICE.parse().unwrap(),
            transport: Transport::Udp,
        };
        let mut ctx = w.ctx();
        let leg = b.send_invite(&mut ctx, call, target, template);
        assert_eq!(leg, Some(0));
        let sent = w.transmits();
        let inv = request(&sent[0].1).clone();
        (w, b, call, inv)
    }

    fn w_open(b: &mut B2bua, ctx: &mut SipCtx<'_>, key: TsxKey, req: rsip::Request) -> CallRef {
        b.open(ctx, key, req, ALICE.parse().unwrap(), Transport::Udp)
    }

    fn ok_from_device(inv: &rsip::Request, extra: &str) -> String {
        format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: <sip:bob@isc.local>;tag=dt\r\nCall-ID: leg1\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@{DEVICE}>\r\n{extra}Content-Length: 0\r\n\r\n",
            inv.headers.get_raw("Via").unwrap(),
            inv.headers.get_raw("From").unwrap(),
        )
    }

    #[test]
    fn invite_carries_timer_and_2xx_is_acked_and_reacked() {
        let (mut w, mut b, call, inv) = call_with_leg();
        assert_eq!(inv.headers.get_raw("Supported").as_deref(), Some("timer"));
        assert!(inv.headers.get_raw("Session-Expires").is_some());
        let ok = ok_from_device(&inv, "");
        for round in 0..2 {
            let ev = w.feed(&ok, DEVICE);
            let Some(LayerEvent::Response { key, response }) = ev.into_iter().next() else {
                panic!("no response event")
            };
            let mut ctx = w.ctx();
            let r = b.on_response(&mut ctx, &key, response).unwrap();
            assert_eq!((r.call, r.leg, r.code), (call, 0, 200));
            assert_eq!(r.retransmission, round == 1);
            let sent = w.transmits();
            assert_eq!(sent.len(), 1, "one ACK per 2xx");
            let ack = request(&sent[0].1);
            assert_eq!(ack.method, rsip::Method::Ack);
            assert_eq!(ack.uri.to_string(), format!("sip:bob@{DEVICE}"));
            assert_eq!(sent[0].0, DEVICE.parse::<SocketAddr>().unwrap());
        }
        assert!(b.call(call).unwrap().outgoing[0].is_up());
    }

    #[test]
    fn session_timer_refreshes_as_uac_refresher_and_bye_reason() {
        let (mut w, mut b, call, inv) = call_with_leg();
        let ok = ok_from_device(
            &inv,
            "Session-Expires: 90;refresher=uac\r\nRequire: timer\r\n",
        );
        let ev = w.feed(&ok, DEVICE);
        let Some(LayerEvent::Response { key, response }) = ev.into_iter().next() else {
            panic!()
        };
        let mut ctx = w.ctx();
        b.on_response(&mut ctx, &key, response);
        let _ack = w.transmits();
        // RFC 4028 §10: the refresher refreshes at half the interval.
        let at = b.poll_timeout().unwrap();
        assert_eq!(at, w.now + Duration::from_secs(45));
        w.now = at;
        let mut ctx = w.ctx();
        assert!(b.handle_timeout(&mut ctx).is_empty());
        let sent = w.transmits();
        let update = request(&sent[0].1);
        assert_eq!(update.method, rsip::Method::Update);
        assert_eq!(
            update.headers.get_raw("Session-Expires").as_deref(),
            Some("90;refresher=uac")
        );
        // No answer to the refresh: at expiry minus 30 s the leg gets BYE.
        w.now += Duration::from_secs(60);
        let mut ctx = w.ctx();
        let t = b.handle_timeout(&mut ctx);
        assert_eq!(
            t,
            vec![B2buaTimeout::SessionExpired(call, Side::Outgoing(0))]
        );
        let bye = w
            .transmits()
            .into_iter()
            .map(|(_, m)| m)
            .find(|m| matches!(m, rsip::SipMessage::Request(r) if r.method == rsip::Method::Bye))
            .expect("a BYE");
        assert!(
            request(&bye)
                .headers
                .get_raw("Reason")
                .unwrap()
                .contains("cause=408")
        );
    }

    #[test]
    fn cancel_keeps_the_branch_and_carries_the_reason() {
        let (mut w, mut b, call, inv) = call_with_leg();
        let mut ctx = w.ctx();
        b.cancel_leg(&mut ctx, call, 0, Some(REASON_COMPLETED_ELSEWHERE));
        let sent = w.transmits();
        let cancel = request(&sent[0].1);
        assert_eq!(cancel.method, rsip::Method::Cancel);
        assert_eq!(
            crate::proto::sip::build::top_via_branch(&cancel.headers),
            crate::proto::sip::build::top_via_branch(&inv.headers)
        );
        assert_eq!(
            cancel.headers.get_raw("Reason").as_deref(),
            Some(REASON_COMPLETED_ELSEWHERE)
        );
        assert_eq!(cancel.headers.get_raw("CSeq").as_deref(), Some("1 CANCEL"));
        // A second CANCEL is not sent.
        let mut ctx = w.ctx();
        b.cancel_leg(&mut ctx, call, 0, None);
        assert!(w.transmits().is_empty());
    }

    #[test]
    fn ok_to_originator_is_retransmitted_until_ack() {
        let (mut w, mut b, call, _) = call_with_leg();
        let mut ctx = w.ctx();
        b.answer(&mut ctx, call, 200, None, vec![], None);
        let sent = w.transmits();
        let rsip::SipMessage::Response(ok) = &sent[0].1 else {
            panic!()
        };
        assert_eq!(
            ok.headers.get_raw("Contact").as_deref(),
            Some("<sip:127.0.0.1:5060;transport=udp>")
        );
        let to = ok.headers.get_raw("To").unwrap();
        // RFC 3261 §13.3.1.4: T1 later it goes again.
        w.now += Duration::from_millis(500);
        let mut ctx = w.ctx();
        b.handle_timeout(&mut ctx);
        assert_eq!(w.transmits().len(), 1);
        let ack = format!(
            "ACK sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ALICE};branch=z9hG4bKa2\r\nMax-Forwards: 70\r\nFrom: <sip:alice@isc.local>;tag=at\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        );
        let ev = w.feed(&ack, ALICE);
        let Some(LayerEvent::Ack { request, .. }) = ev.into_iter().next() else {
            panic!("ACK event")
        };
        assert!(b.on_ack(w.now, &request), "the ACK ends here");
        w.now += Duration::from_secs(4);
        let mut ctx = w.ctx();
        b.handle_timeout(&mut ctx);
        assert!(w.transmits().is_empty(), "no more retransmissions");
    }
}
