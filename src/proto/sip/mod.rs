//! SIP on top of rsip 0.4: framing and normalisation before rsip, typed
//! accessors after it, and the RFC 3261 transaction and dialog layers.

pub mod build;
pub mod dialog;
pub mod digest;
pub mod framing;
pub mod headers;
pub mod message;
pub mod session_timer;
pub mod transaction;
