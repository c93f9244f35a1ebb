//! The RFC 3261 §17 transaction layer (with the RFC 6026 fixes), sans-IO.
//!
//! Four machines, one per §17 figure: [`ClientInviteTransaction`],
//! [`ClientNonInviteTransaction`], [`ServerInviteTransaction`] and
//! [`ServerNonInviteTransaction`]. Each is driven from outside with
//! `handle_*(&mut self, now, input)` and drained with `poll_transmit()`,
//! `poll_event()` and `poll_timeout()`. The [`TransactionLayer`] owns them all,
//! keyed by [`TsxKey`], routes incoming messages and returns the soonest timeout.

pub mod client_invite;
pub mod client_non_invite;
pub mod key;
pub mod layer;
pub mod server_invite;
pub mod server_non_invite;
pub mod timers;

pub use client_invite::{ClientInviteState, ClientInviteTransaction};
pub use client_non_invite::{ClientNonInviteState, ClientNonInviteTransaction};
pub use key::TsxKey;
pub use layer::{LayerEvent, TransactionLayer};
pub use server_invite::{ServerInviteState, ServerInviteTransaction};
pub use server_non_invite::{ServerNonInviteState, ServerNonInviteTransaction};
pub use timers::*;

use rsip::prelude::*;
use std::net::SocketAddr;

/// The transport a transaction runs over. Only its reliability matters to §17:
/// on a reliable transport nothing is retransmitted and the absorbing timers
/// (D, I, J, K) are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// TCP with TLS on it (RFC 3261 §26.2.1, Via `SIP/2.0/TLS`).
    Tls,
}

impl Transport {
    /// TCP (and TLS over it) is reliable, UDP is not (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// The Via sent-protocol transport (RFC 3261 §20.42): `UDP`, `TCP`, `TLS`.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `;transport=` URI parameter (RFC 3261 §19.1.1).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// A Via transport or `transport=` value, any case; others (SCTP, WS)
    /// are not ours and read as `None`.
    pub fn from_token(t: &str) -> Option<Self> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|k| t.eq_ignore_ascii_case(k.via_token()))
    }

    /// From rsip's enum; transports we do not run are taken as UDP.
    pub fn from_rsip(t: rsip::Transport) -> Self {
        match t {
            rsip::Transport::Tcp => Transport::Tcp,
            rsip::Transport::Tls => Transport::Tls,
            _ => Transport::Udp,
        }
    }

    pub fn to_rsip(self) -> rsip::Transport {
        match self {
            Transport::Udp => rsip::Transport::Udp,
            Transport::Tcp => rsip::Transport::Tcp,
            Transport::Tls => rsip::Transport::Tls,
        }
    }
}

/// A message to put on the wire. No IO here: the driver sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub transport: Transport,
    pub message: rsip::SipMessage,
}

/// What a transaction tells its transaction user.
#[derive(Debug, Clone, PartialEq)]
pub enum TsxEvent {
    /// A response for the TU (client transactions).
    Response(rsip::Response),
    /// A request for the TU: an ACK for a 2xx that reached an INVITE server
    /// transaction in Accepted (RFC 6026 §7.1).
    Request(rsip::Request),
    /// Timer B, F or H fired (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1).
    Timeout,
    /// The transport reported a failure (RFC 3261 §17.1.4, §17.2.4).
    TransportError,
    /// The transaction reached Terminated; the owner may drop it.
    Terminated,
}

/// What went wrong with an input to a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("bad header {name}: {reason}")]
    BadHeader { name: &'static str, reason: String },
    #[error("top Via has no branch parameter")]
    MissingBranch,
    #[error("a {expected} transaction cannot carry a {got} request")]
    WrongMethod { expected: &'static str, got: String },
    #[error("cannot {action} in state {state}")]
    WrongState {
        action: &'static str,
        state: &'static str,
    },
    #[error("no such transaction")]
    NoSuchTransaction,
    #[error("a transaction with this key already exists")]
    DuplicateKey,
}

fn bad(name: &'static str, e: rsip::Error) -> TransactionError {
    TransactionError::BadHeader {
        name,
        reason: e.to_string(),
    }
}

/// The top Via of a message, typed.
pub(crate) fn top_via<M: HeadersExt>(msg: &M) -> Result<rsip::typed::Via, TransactionError> {
    msg.via_header()
        .map_err(|_| TransactionError::MissingHeader("Via"))?
        .typed()
        .map_err(|e| bad("Via", e))
}

/// The branch of the top Via.
pub(crate) fn top_branch<M: HeadersExt>(msg: &M) -> Result<String, TransactionError> {
    top_via(msg)?
        .branch()
        .map(|b| b.to_string())
        .ok_or(TransactionError::MissingBranch)
}

/// The CSeq header, typed.
pub(crate) fn cseq<M: HeadersExt>(msg: &M) -> Result<rsip::typed::CSeq, TransactionError> {
    msg.cseq_header()
        .map_err(|_| TransactionError::MissingHeader("CSeq"))?
        .typed()
        .map_err(|e| bad("CSeq", e))
}

/// The numeric status code of a response.
pub(crate) fn code(response: &rsip::Response) -> u16 {
    response.status_code.code()
}
