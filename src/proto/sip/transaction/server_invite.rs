//! The INVITE server transaction (RFC 3261 §17.2.1, Figure 7 as amended by
//! RFC 6026 §7.1: a 2xx from the TU moves it to Accepted, where Timer L
//! absorbs retransmitted INVITEs and ACKs go up to the TU).
//!
//! 100 Trying: the transaction sends it itself when the TU has sent no
//! provisional response [`TRYING_DELAY`] (200 ms) after the INVITE, or at once
//! when the INVITE is retransmitted before that (§17.2.1).

use super::timers::{Backoff, T2, TIMER_G, TIMER_H, TIMER_I, TIMER_L, TRYING_DELAY, due, earliest};
use super::{TransactionError, Transmit, Transport, TsxEvent, TsxKey, code};
use rsip::{Header, Method, Request, Response, SipMessage, StatusCode};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// States of Figure 7 with Accepted from RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerInviteState {
    Proceeding,
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

impl ServerInviteState {
    /// A rank that only grows along the figure's arrows.
    pub fn rank(self) -> u8 {
        match self {
            Self::Proceeding => 0,
            Self::Accepted | Self::Completed => 1,
            Self::Confirmed => 2,
            Self::Terminated => 3,
        }
    }
}

/// An INVITE server transaction. Responses go back to the address the
/// INVITE came from (`source`), over the same transport.
#[derive(Debug)]
pub struct ServerInviteTransaction {
    key: TsxKey,
    request: Request,
    source: SocketAddr,
    transport: Transport,
    state: ServerInviteState,
    last_response: Option<Response>,
    trying_at: Option<Instant>,
    timer_g: Option<Backoff>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TsxEvent>,
}

impl ServerInviteTransaction {
    /// Create the transaction for a received INVITE (state Proceeding).
    pub fn new(
        now: Instant,
        request: Request,
        source: SocketAddr,
        transport: Transport,
    ) -> Result<Self, TransactionError> {
        if request.method != Method::Invite {
            return Err(TransactionError::WrongMethod {
                expected: "INVITE",
                got: request.method.to_string(),
            });
        }
        let key = TsxKey::server(&request)?;
        Ok(Self {
            key,
            request,
            source,
            transport,
            state: ServerInviteState::Proceeding,
            last_response: None,
            trying_at: Some(now + TRYING_DELAY),
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    pub fn key(&self) -> &TsxKey {
        &self.key
    }

    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Where the INVITE came from (and responses go).
    pub fn source(&self) -> (SocketAddr, Transport) {
        (self.source, self.transport)
    }

    /// The TU sends a response through the transaction.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: Response,
    ) -> Result<(), TransactionError> {
        use ServerInviteState::*;
        match (self.state, code(&response)) {
            // RFC 3261 §17.2.1: provisionals go out, stay in Proceeding.
            (Proceeding, 100..=199) => {
                self.trying_at = None;
                self.transmit(response.clone());
                self.last_response = Some(response);
            }
            // RFC 6026 §7.1: 2xx -> Accepted with Timer L; the TU (not the
            // transaction) retransmits the 2xx (RFC 3261 §13.3.1.4).
            (Proceeding, 200..=299) => {
                self.trying_at = None;
                self.transmit(response.clone());
                self.last_response = Some(response);
                self.state = Accepted;
                self.timer_l = Some(now + TIMER_L);
            }
            // RFC 6026 §7.1: 2xx retransmissions from the TU pass through.
            (Accepted, 200..=299) => self.transmit(response),
            // RFC 3261 §17.2.1: final non-2xx -> Completed, Timers G and H.
            (Proceeding, 300..=699) => {
                self.trying_at = None;
                self.transmit(response.clone());
                self.last_response = Some(response);
                self.state = Completed;
                if !self.transport.is_reliable() {
                    self.timer_g = Some(Backoff::new(now, TIMER_G, Some(T2)));
                }
                self.timer_h = Some(now + TIMER_H);
            }
            _ => {
                return Err(TransactionError::WrongState {
                    action: "send this response",
                    state: state_name(self.state),
                });
            }
        }
        Ok(())
    }

    /// A request that matched this transaction: a retransmitted INVITE or
    /// the ACK.
    pub fn handle_request(&mut self, now: Instant, request: Request) {
        use ServerInviteState::*;
        match (self.state, request.method) {
            // §17.2.1: a retransmitted INVITE gets the latest provisional
            // again, or the 100 Trying right away if none went out yet.
            (Proceeding, Method::Invite) => match self.last_response.clone() {
                Some(r) => self.transmit(r),
                None => self.send_trying(),
            },
            // §17.2.1: retransmit the final non-2xx.
            (Completed, Method::Invite) => {
                if let Some(r) = self.last_response.clone() {
                    self.transmit(r);
                }
            }
            // §17.2.1: ACK -> Confirmed, Timer I (zero when reliable).
            (Completed, Method::Ack) => {
                self.timer_g = None;
                self.timer_h = None;
                if self.transport.is_reliable() {
                    self.terminate();
                } else {
                    self.state = Confirmed;
                    self.timer_i = Some(now + TIMER_I);
                }
            }
            // RFC 6026 §7.1: an ACK in Accepted goes to the TU.
            (Accepted, Method::Ack) => self.events.push_back(TsxEvent::Request(request)),
            // Accepted absorbs INVITEs, Confirmed absorbs ACKs.
            _ => {}
        }
    }

    /// The transport failed to deliver a response (RFC 3261 §17.2.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        match self.state {
            ServerInviteState::Terminated => {}
            // RFC 6026 §7.1: Accepted informs the TU and stays.
            ServerInviteState::Accepted => self.events.push_back(TsxEvent::TransportError),
            _ => {
                self.events.push_back(TsxEvent::TransportError);
                self.terminate();
            }
        }
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        use ServerInviteState::*;
        match self.state {
            Proceeding => {
                if due(self.trying_at, now) {
                    self.send_trying();
                }
            }
            Completed => {
                // §17.2.1: Timer H -> no ACK came: inform the TU, terminate.
                if due(self.timer_h, now) {
                    self.events.push_back(TsxEvent::Timeout);
                    self.terminate();
                    return;
                }
                // Timer G -> retransmit, MIN(2*interval, T2).
                if let Some(g) = self.timer_g.as_mut()
                    && g.at <= now
                {
                    g.fire(now);
                    if let Some(r) = self.last_response.clone() {
                        self.transmit(r);
                    }
                }
            }
            Confirmed => {
                if due(self.timer_i, now) {
                    self.terminate();
                }
            }
            Accepted => {
                if due(self.timer_l, now) {
                    self.terminate();
                }
            }
            Terminated => {}
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
            ServerInviteState::Proceeding => self.trying_at,
            ServerInviteState::Completed => earliest([self.timer_g.map(|g| g.at), self.timer_h]),
            ServerInviteState::Confirmed => self.timer_i,
            ServerInviteState::Accepted => self.timer_l,
            ServerInviteState::Terminated => None,
        }
    }

    fn send_trying(&mut self) {
        self.trying_at = None;
        let trying = build_trying(&self.request);
        self.transmit(trying.clone());
        self.last_response = Some(trying);
    }

    fn transmit(&mut self, response: Response) {
        self.transmits.push_back(Transmit {
            to: self.source,
            transport: self.transport,
            message: SipMessage::Response(response),
        });
    }

    fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.trying_at = None;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
        self.events.push_back(TsxEvent::Terminated);
    }
}

fn state_name(state: ServerInviteState) -> &'static str {
    match state {
        ServerInviteState::Proceeding => "Proceeding",
        ServerInviteState::Accepted => "Accepted",
        ServerInviteState::Completed => "Completed",
        ServerInviteState::Confirmed => "Confirmed",
        ServerInviteState::Terminated => "Terminated",
    }
}

/// 100 Trying (RFC 3261 §8.2.6): Via, From, To, Call-ID, CSeq and Timestamp
/// copied from the request; no To tag.
pub(crate) fn build_trying(request: &Request) -> Response {
    let mut headers = rsip::Headers::default();
    for h in request.headers.iter() {
        match h {
            Header::Via(_)
            | Header::From(_)
            | Header::To(_)
            | Header::CallId(_)
            | Header::CSeq(_)
            | Header::Timestamp(_) => headers.push(h.clone()),
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
        0u32,
    )));
    Response {
        status_code: StatusCode::Trying,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}
