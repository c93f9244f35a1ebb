//! The UAS core's 2xx retransmission (RFC 3261 §13.3.1.4).
//!
//! The first 2xx goes out through the INVITE server transaction; this
//! machine then re-sends it on unreliable transports at T1, 2·T1, … capped
//! at T2 until the ACK arrives. After 64·T1 without ACK it tells the TU to
//! end the dialog with a BYE. On a reliable transport it only waits.

use super::DialogId;
use crate::proto::sip::transaction::cseq;
use crate::proto::sip::transaction::timers::{T1, T2};
use crate::proto::sip::transaction::{Transmit, Transport};
use rsip::{Request, Response, SipMessage};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// 64·T1: how long the UAS waits for the ACK of its 2xx.
pub const ACK_WAIT: Duration = Duration::from_millis(64 * 500);

/// What the 2xx retransmission tells the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OkRetransmissionEvent {
    /// The ACK arrived; retransmission stopped.
    Acknowledged,
    /// 64·T1 passed with no ACK: confirm the dialog but end the session
    /// with a BYE (RFC 3261 §13.3.1.4).
    NoAck,
}

/// Retransmits one 2xx to INVITE until its ACK.
#[derive(Debug)]
pub struct OkRetransmission {
    response: Response,
    to: SocketAddr,
    transport: Transport,
    next: Option<Instant>,
    interval: Duration,
    give_up: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<OkRetransmissionEvent>,
}

impl OkRetransmission {
    /// Start after the 2xx was first sent at `now`.
    pub fn new(now: Instant, response: Response, to: SocketAddr, transport: Transport) -> Self {
        Self {
            response,
            to,
            transport,
            next: (!transport.is_reliable()).then(|| now + T1),
            interval: T1,
            give_up: Some(now + ACK_WAIT),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The ACK for this 2xx arrived (the core matched it by dialog and CSeq).
    pub fn handle_ack(&mut self, _now: Instant) {
        if self.give_up.is_some() {
            self.next = None;
            self.give_up = None;
            self.events.push_back(OkRetransmissionEvent::Acknowledged);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.give_up.is_some_and(|at| at <= now) {
            self.next = None;
            self.give_up = None;
            self.events.push_back(OkRetransmissionEvent::NoAck);
            return;
        }
        if let Some(at) = self.next
            && at <= now
        {
            self.interval = (self.interval * 2).min(T2);
            self.next = Some(now + self.interval);
            self.transmits.push_back(Transmit {
                to: self.to,
                transport: self.transport,
                message: SipMessage::Response(self.response.clone()),
            });
        }
    }

    /// Whether `ack` acknowledges this 2xx (RFC 3261 §13.3.1.4): same
    /// Call-ID, From tag, To tag and CSeq number.
    pub fn matches_ack(&self, ack: &Request) -> bool {
        if ack.method != rsip::Method::Ack {
            return false;
        }
        let ids = (
            DialogId::for_received_request(ack),
            DialogId::for_received_response(&self.response),
        );
        let seqs = (cseq(ack), cseq(&self.response));
        match (ids, seqs) {
            // The response's From tag is our remote tag, the ACK's is too.
            ((Ok(a), Ok(r)), (Ok(sa), Ok(sr))) => {
                a.call_id == r.call_id
                    && a.local_tag == r.remote_tag
                    && a.remote_tag == r.local_tag
                    && sa.seq == sr.seq
            }
            _ => false,
        }
    }

    /// Whether it still waits for the ACK.
    pub fn is_active(&self) -> bool {
        self.give_up.is_some()
    }

    pub fn response(&self) -> &Response {
        &self.response
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<OkRetransmissionEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next, self.give_up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
