//! The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).

use super::timers::{TIMER_J, due};
use super::{TransactionError, Transmit, Transport, TsxEvent, TsxKey, code};
use rsip::{Method, Request, Response, SipMessage};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// States of Figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// A non-INVITE server transaction (also used for CANCEL). Responses go
/// back to the address the request came from.
#[derive(Debug)]
pub struct ServerNonInviteTransaction {
    key: TsxKey,
    request: Request,
    source: SocketAddr,
    transport: Transport,
    state: ServerNonInviteState,
    last_response: Option<Response>,
    timer_j: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TsxEvent>,
}

impl ServerNonInviteTransaction {
    /// Create the transaction for a received request (state Trying).
    pub fn new(
        _now: Instant,
        request: Request,
        source: SocketAddr,
        transport: Transport,
    ) -> Result<Self, TransactionError> {
        if matches!(request.method, Method::Invite | Method::Ack) {
            return Err(TransactionError::WrongMethod {
                expected: "non-INVITE",
                got: request.method.to_string(),
            });
        }
        let key = TsxKey::server(&request)?;
        Ok(Self {
            key,
            request,
            source,
            transport,
            state: ServerNonInviteState::Trying,
            last_response: None,
            timer_j: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    pub fn key(&self) -> &TsxKey {
        &self.key
    }

    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Where the request came from (and responses go).
    pub fn source(&self) -> (SocketAddr, Transport) {
        (self.source, self.transport)
    }

    /// The TU sends a response through the transaction.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: Response,
    ) -> Result<(), TransactionError> {
        use ServerNonInviteState::*;
        match (self.state, code(&response)) {
            // RFC 3261 §17.2.2: provisional -> Proceeding.
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.transmit(response.clone());
                self.last_response = Some(response);
            }
            // Final -> Completed, Timer J (zero when reliable).
            (Trying | Proceeding, 200..=699) => {
                self.transmit(response.clone());
                self.last_response = Some(response);
                if self.transport.is_reliable() {
                    self.terminate();
                } else {
                    self.state = Completed;
                    self.timer_j = Some(now + TIMER_J);
                }
            }
            (state, _) => {
                return Err(TransactionError::WrongState {
                    action: "send this response",
                    state: match state {
                        Completed => "Completed",
                        Terminated => "Terminated",
                        _ => "Proceeding",
                    },
                });
            }
        }
        Ok(())
    }

    /// A retransmission of the request (RFC 3261 §17.2.2): absorbed in
    /// Trying, answered with the last response in Proceeding and Completed.
    pub fn handle_request(&mut self, _now: Instant, _request: Request) {
        if matches!(
            self.state,
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) && let Some(r) = self.last_response.clone()
        {
            self.transmit(r);
        }
    }

    /// The transport failed (RFC 3261 §17.2.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state != ServerNonInviteState::Terminated {
            self.events.push_back(TsxEvent::TransportError);
            self.terminate();
        }
    }

    /// Fire every timer due at `now` (only Timer J).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ServerNonInviteState::Completed && due(self.timer_j, now) {
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
            ServerNonInviteState::Completed => self.timer_j,
            _ => None,
        }
    }

    fn transmit(&mut self, response: Response) {
        self.transmits.push_back(Transmit {
            to: self.source,
            transport: self.transport,
            message: SipMessage::Response(response),
        });
    }

    fn terminate(&mut self) {
        self.state = ServerNonInviteState::Terminated;
        self.timer_j = None;
        self.events.push_back(TsxEvent::Terminated);
    }
}
