//! Thin tokio drivers around the sans-IO core: no protocol decision here.

pub mod sip_transport;
