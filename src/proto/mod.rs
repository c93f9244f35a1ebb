//! The sans-IO protocol core: parsers, builders and state machines that take
//! `now` as an argument and return what to send. Nothing here touches a
//! socket, a clock or a random number generator.

pub mod bodies;
pub mod ids;
pub mod msrp;
pub mod rtp;
pub mod sdp;
pub mod sip;
