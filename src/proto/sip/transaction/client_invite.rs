//! The INVITE client transaction (RFC 3261 §17.1.1, Figure 5 as amended by
//! RFC 6026 §7.2: a 2xx moves it to Accepted, where Timer M lets every 2xx of
//! a forked INVITE reach the TU).

use super::timers::{Backoff, TIMER_A, TIMER_B, TIMER_D, TIMER_M, due, earliest};
use super::{TransactionError, Transmit, Transport, TsxEvent, TsxKey, code, cseq};
use rsip::prelude::*;
use rsip::{Header, Method, Request, Response, SipMessage};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// States of Figure 5 (RFC 3261) with Accepted from RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientInviteState {
    Calling,
    Proceeding,
    Accepted,
    Completed,
    Terminated,
}

impl ClientInviteState {
    /// A rank that only grows along the figure's arrows (Accepted and
    /// Completed are siblings).
    pub fn rank(self) -> u8 {
        match self {
            Self::Calling => 0,
            Self::Proceeding => 1,
            Self::Accepted | Self::Completed => 2,
            Self::Terminated => 3,
        }
    }
}

/// An INVITE client transaction.
#[derive(Debug)]
pub struct ClientInviteTransaction {
    key: TsxKey,
    request: Request,
    to: SocketAddr,
    transport: Transport,
    state: ClientInviteState,
    timer_a: Option<Backoff>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
    ack: Option<Request>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TsxEvent>,
}

impl ClientInviteTransaction {
    /// Start the transaction: the INVITE goes out at once, Timer A (UDP only)
    /// and Timer B start (RFC 3261 §17.1.1.2).
    pub fn new(
        now: Instant,
        request: Request,
        to: SocketAddr,
        transport: Transport,
    ) -> Result<Self, TransactionError> {
        if request.method != Method::Invite {
            return Err(TransactionError::WrongMethod {
                expected: "INVITE",
                got: request.method.to_string(),
            });
        }
        let key = TsxKey::client(&request)?;
        let mut tsx = Self {
            key,
            request,
            to,
            transport,
            state: ClientInviteState::Calling,
            timer_a: (!transport.is_reliable()).then(|| Backoff::new(now, TIMER_A, None)),
            timer_b: Some(now + TIMER_B),
            timer_d: None,
            timer_m: None,
            ack: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        tsx.send_request();
        Ok(tsx)
    }

    pub fn key(&self) -> &TsxKey {
        &self.key
    }

    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// Where the INVITE goes, and over what.
    pub fn destination(&self) -> SocketAddr {
        self.to
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The INVITE this transaction carries.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A response from the transport layer that matched this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        use ClientInviteState::*;
        let status = code(&response);
        match (self.state, status) {
            // RFC 3261 §17.1.1.2: a provisional stops Timer A (and B) and goes up.
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.timer_a = None;
                self.timer_b = None;
                self.events.push_back(TsxEvent::Response(response));
            }
            // RFC 6026 §7.2: 2xx -> Accepted, Timer M, to the TU.
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_m = Some(now + TIMER_M);
                self.events.push_back(TsxEvent::Response(response));
            }
            // RFC 6026 §7.2: further 2xx (retransmitted or forked) go to the TU.
            (Accepted, 200..=299) => self.events.push_back(TsxEvent::Response(response)),
            // RFC 3261 §17.1.1.2: a final non-2xx is ACKed, passed up, Timer D.
            (Calling | Proceeding, 300..=699) => {
                self.timer_a = None;
                self.timer_b = None;
                let ack = build_ack(&self.request, &response);
                self.ack = Some(ack);
                self.send_ack();
                self.events.push_back(TsxEvent::Response(response));
                if self.transport.is_reliable() {
                    self.terminate();
                } else {
                    self.state = Completed;
                    self.timer_d = Some(now + TIMER_D);
                }
            }
            // Retransmitted final responses are re-ACKed, not passed up.
            (Completed, 300..=699) => self.send_ack(),
            _ => {}
        }
    }

    /// The transport failed to deliver the request (RFC 3261 §17.1.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if matches!(
            self.state,
            ClientInviteState::Calling | ClientInviteState::Proceeding
        ) {
            self.events.push_back(TsxEvent::TransportError);
            self.terminate();
        }
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ClientInviteState::Calling {
            // RFC 3261 §17.1.1.2: Timer B fires -> inform the TU, terminate.
            if due(self.timer_b, now) {
                self.events.push_back(TsxEvent::Timeout);
                self.terminate();
                return;
            }
            // Timer A fires -> retransmit, double the interval (no cap).
            if let Some(a) = self.timer_a.as_mut()
                && a.at <= now
            {
                a.fire(now);
                self.send_request();
            }
        }
        if (self.state == ClientInviteState::Completed && due(self.timer_d, now))
            || (self.state == ClientInviteState::Accepted && due(self.timer_m, now))
        {
            self.terminate();
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TsxEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ClientInviteState::Calling => earliest([self.timer_a.map(|a| a.at), self.timer_b]),
            ClientInviteState::Completed => self.timer_d,
            ClientInviteState::Accepted => self.timer_m,
            _ => None,
        }
    }

    /// The CANCEL for this INVITE (RFC 3261 §9.1): same Request-URI, Call-ID,
    /// From, To, CSeq number, top Via and Route. Send it in its own
    /// non-INVITE client transaction, only once a provisional has arrived.
    pub fn cancel_request(&self) -> Request {
        build_cancel(&self.request)
    }

    fn send_request(&mut self) {
        self.transmits.push_back(Transmit {
            to: self.to,
            transport: self.transport,
            message: SipMessage::Request(self.request.clone()),
        });
    }

    fn send_ack(&mut self) {
        if let Some(ack) = &self.ack {
            self.transmits.push_back(Transmit {
                to: self.to,
                transport: self.transport,
                message: SipMessage::Request(ack.clone()),
            });
        }
    }

    fn terminate(&mut self) {
        self.state = ClientInviteState::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
        self.events.push_back(TsxEvent::Terminated);
    }
}

/// Copy the headers §17.1.1.3 / §9.1 keep from the INVITE: Call-ID, From,
/// the top Via only, Route; To from `to` (the response's, with its tag).
fn hop_by_hop_copy(invite: &Request, method: Method, to: Option<&rsip::headers::To>) -> Request {
    let mut headers = rsip::Headers::default();
    if let Ok(via) = invite.via_header() {
        headers.push(Header::Via(via.clone()));
    }
    for h in invite.headers.iter() {
        match h {
            Header::Route(_) => headers.push(h.clone()),
            Header::MaxForwards(_) => headers.push(h.clone()),
            _ => {}
        }
    }
    if let Ok(from) = invite.from_header() {
        headers.push(Header::From(from.clone()));
    }
    match to {
        Some(to) => headers.push(Header::To(to.clone())),
        None => {
            if let Ok(to) = invite.to_header() {
                headers.push(Header::To(to.clone()));
            }
        }
    }
    if let Ok(call_id) = invite.call_id_header() {
        headers.push(Header::CallId(call_id.clone()));
    }
    let seq = cseq(invite).map(|c| c.seq).unwrap_or(0);
    headers.push(rsip::typed::CSeq { seq, method }.into());
    headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
        0u32,
    )));
    Request {
        method,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
pub(crate) fn build_ack(invite: &Request, response: &Response) -> Request {
    hop_by_hop_copy(invite, Method::Ack, response.to_header().ok())
}

/// The CANCEL for an INVITE (RFC 3261 §9.1).
pub(crate) fn build_cancel(invite: &Request) -> Request {
    hop_by_hop_copy(invite, Method::Cancel, None)
}
