//! The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).

use super::timers::{Backoff, T2, TIMER_E, TIMER_F, TIMER_K, due, earliest};
use super::{TransactionError, Transmit, Transport, TsxEvent, TsxKey, code};
use rsip::{Method, Request, Response, SipMessage};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// States of Figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// A non-INVITE client transaction (also used for CANCEL).
#[derive(Debug)]
pub struct ClientNonInviteTransaction {
    key: TsxKey,
    request: Request,
    to: SocketAddr,
    transport: Transport,
    state: ClientNonInviteState,
    timer_e: Option<Backoff>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TsxEvent>,
}

impl ClientNonInviteTransaction {
    /// Start the transaction: the request goes out at once, Timer E (UDP
    /// only) and Timer F start (RFC 3261 §17.1.2.2).
    pub fn new(
        now: Instant,
        request: Request,
        to: SocketAddr,
        transport: Transport,
    ) -> Result<Self, TransactionError> {
        if matches!(request.method, Method::Invite | Method::Ack) {
            return Err(TransactionError::WrongMethod {
                expected: "non-INVITE",
                got: request.method.to_string(),
            });
        }
        let key = TsxKey::client(&request)?;
        let mut tsx = Self {
            key,
            request,
            to,
            transport,
            state: ClientNonInviteState::Trying,
            timer_e: (!transport.is_reliable()).then(|| Backoff::new(now, TIMER_E, Some(T2))),
            timer_f: Some(now + TIMER_F),
            timer_k: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        tsx.send_request();
        Ok(tsx)
    }

    pub fn key(&self) -> &TsxKey {
        &self.key
    }

    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A response that matched this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        use ClientNonInviteState::*;
        match (self.state, code(&response)) {
            // RFC 3261 §17.1.2.2: provisional -> Proceeding, to the TU.
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.events.push_back(TsxEvent::Response(response));
            }
            // Final -> Completed, to the TU, Timer K (zero when reliable).
            (Trying | Proceeding, 200..=699) => {
                self.timer_e = None;
                self.timer_f = None;
                self.events.push_back(TsxEvent::Response(response));
                if self.transport.is_reliable() {
                    self.terminate();
                } else {
                    self.state = Completed;
                    self.timer_k = Some(now + TIMER_K);
                }
            }
            // Completed absorbs retransmitted responses.
            _ => {}
        }
    }

    /// The transport failed (RFC 3261 §17.1.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if matches!(
            self.state,
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding
        ) {
            self.events.push_back(TsxEvent::TransportError);
            self.terminate();
        }
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        use ClientNonInviteState::*;
        match self.state {
            Trying | Proceeding => {
                // RFC 3261 §17.1.2.2: Timer F -> timeout, terminate.
                if due(self.timer_f, now) {
                    self.events.push_back(TsxEvent::Timeout);
                    self.terminate();
                    return;
                }
                let proceeding = self.state == Proceeding;
                if let Some(e) = self.timer_e.as_mut()
                    && e.at <= now
                {
                    // Trying: MIN(2*interval, T2); Proceeding: every T2.
                    if proceeding {
                        e.fire_fixed(now, T2);
                    } else {
                        e.fire(now);
                    }
                    self.send_request();
                }
            }
            Completed => {
                if due(self.timer_k, now) {
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
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding => {
                earliest([self.timer_e.map(|e| e.at), self.timer_f])
            }
            ClientNonInviteState::Completed => self.timer_k,
            ClientNonInviteState::Terminated => None,
        }
    }

    fn send_request(&mut self) {
        self.transmits.push_back(Transmit {
            to: self.to,
            transport: self.transport,
            message: SipMessage::Request(self.request.clone()),
        });
    }

    fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
        self.events.push_back(TsxEvent::Terminated);
    }
}
