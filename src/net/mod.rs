//! Thin tokio drivers: sockets in, bytes to the sans-IO cores, bytes out.
//! No protocol decision is taken here.

pub mod sip_transport;

pub use sip_transport::{Incoming, SipTransport};
