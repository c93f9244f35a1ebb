//! Thin tokio drivers around the sans-IO core: no protocol decision here.

pub mod msrp_tcp;
pub mod rtp_socket;
pub mod sip_transport;
pub mod tls;

pub use sip_transport::{Incoming, SipTransport};
