//! Shared helpers for the sip_transaction_* tests: a virtual clock that
//! jumps to the next `poll_timeout()` (no sleeping) and literal messages.
#![allow(dead_code)]

use isc::proto::sip::dialog::OkRetransmission;
use isc::proto::sip::transaction::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Anything with the sans-IO timer shape.
pub trait Timed {
    fn next_timeout(&self) -> Option<Instant>;
    fn fire(&mut self, now: Instant);
}

macro_rules! timed {
    ($($t:ty),*) => {$(
        impl Timed for $t {
            fn next_timeout(&self) -> Option<Instant> { self.poll_timeout() }
            fn fire(&mut self, now: Instant) { self.handle_timeout(now) }
        }
    )*};
}
timed!(
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TransactionLayer,
    OkRetransmission
);

/// A fake clock: a fixed base plus an offset that only moves forward.
pub struct Clock {
    pub base: Instant,
    pub now: Instant,
}

impl Clock {
    pub fn new() -> Self {
        // The only place a real Instant is read; everything after is offsets.
        let base = Instant::now();
        Self { base, now: base }
    }

    /// The instant `ms` milliseconds after the base.
    pub fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// Milliseconds since the base.
    pub fn ms(&self) -> u64 {
        (self.now - self.base).as_millis() as u64
    }

    pub fn advance(&mut self, d: Duration) -> Instant {
        self.now += d;
        self.now
    }

    /// Jump to the machine's next timeout and fire it (at once if it is
    /// already past, like a late driver). Returns the new time in ms since
    /// the base, or None when nothing is pending.
    pub fn step<M: Timed>(&mut self, m: &mut M) -> Option<u64> {
        let at = m.next_timeout()?;
        self.now = self.now.max(at);
        m.fire(self.now);
        Some(self.ms())
    }
}

pub fn addr() -> SocketAddr {
    "192.0.2.10:5060".parse().unwrap()
}

pub fn peer() -> SocketAddr {
    "192.0.2.20:5060".parse().unwrap()
}

pub fn parse(text: &str) -> rsip::SipMessage {
    rsip::SipMessage::try_from(text).unwrap_or_else(|e| panic!("{e:?} in\n{text}"))
}

pub fn req(text: &str) -> rsip::Request {
    match parse(text) {
        rsip::SipMessage::Request(r) => r,
        _ => panic!("not a request"),
    }
}

pub fn resp(text: &str) -> rsip::Response {
    match parse(text) {
        rsip::SipMessage::Response(r) => r,
        _ => panic!("not a response"),
    }
}

/// LF to CRLF, so literals stay readable.
pub fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

pub fn request(method: &str, branch: &str, cseq: u32) -> rsip::Request {
    req(&crlf(&format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: {cseq} {method}
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Length: 0

"
    )))
}

pub fn invite(branch: &str) -> rsip::Request {
    request("INVITE", branch, 314159)
}

/// A response to `method` on `branch` with an optional To tag.
pub fn response(
    code: u16,
    method: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
) -> rsip::Response {
    let reason = match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        404 => "Not Found",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        _ => "Whatever",
    };
    let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    resp(&crlf(&format!(
        "SIP/2.0 {code} {reason}
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch={branch};received=192.0.2.10
To: Bob <sip:bob@biloxi.example.com>{tag}
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: {cseq} {method}
Contact: <sip:bob@192.0.2.4>
Content-Length: 0

"
    )))
}

pub fn invite_response(code: u16, branch: &str, to_tag: Option<&str>) -> rsip::Response {
    response(code, "INVITE", branch, 314159, to_tag)
}

/// The method of a transmitted request, or the code of a response.
pub fn what(t: &Transmit) -> String {
    match &t.message {
        rsip::SipMessage::Request(r) => r.method.to_string(),
        rsip::SipMessage::Response(r) => r.status_code.code().to_string(),
    }
}

pub fn drain<T>(f: impl FnMut() -> Option<T>) -> Vec<T> {
    std::iter::from_fn(f).collect()
}
