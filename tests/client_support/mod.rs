//! A scripted server for sans-IO tests of the client `UserAgent`: it takes
//! what the UA transmits, lets the test answer it, and moves a virtual clock.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use isc::client::{ClientEvent, Command, UaConfig, UserAgent};
use isc::net::Incoming;
use isc::proto::ids::SeqIds;
use isc::proto::sip::build::response_with;
use isc::proto::sip::headers::{HeadersExt, make_header};
use isc::proto::sip::message::{parse_message, to_bytes};
use isc::proto::sip::transaction::Transport;
use rsip::SipMessage;

pub const SERVER: &str = "127.0.0.1:5060";
pub const LOCAL: &str = "127.0.0.1:40001";
pub const INSTANCE: &str = "urn:uuid:00000000-0000-4000-8000-00000000a11c";

pub fn config() -> UaConfig {
    let mut c = UaConfig::new(
        "alice",
        "isc.local",
        "secret",
        "tv",
        INSTANCE,
        SERVER.parse().unwrap(),
        LOCAL.parse().unwrap(),
    );
    // TCP: no retransmissions to skip over, transaction timeouts still apply
    c.transport = Transport::Tcp;
    c
}

pub struct Harness {
    pub ua: UserAgent,
    pub now: Instant,
    pub t0: Instant,
    /// Messages the UA sent and the test did not look at yet.
    pub outbox: Vec<(SocketAddr, SipMessage)>,
    pub events: Vec<ClientEvent>,
    /// The transport the server's messages arrive over (the UA's).
    pub transport: Transport,
    next_tag: u32,
}

impl Harness {
    pub fn new(cfg: UaConfig) -> Self {
        let t0 = Instant::now();
        let transport = cfg.transport;
        Harness {
            transport,
            ua: UserAgent::new(cfg, Box::new(SeqIds::new("a"))),
            now: t0,
            t0,
            outbox: Vec::new(),
            events: Vec::new(),
            next_tag: 0,
        }
    }

    /// Collects transmits and events.
    pub fn pump(&mut self) {
        while let Some((to, _t, bytes)) = self.ua.poll_transmit() {
            let msg = parse_message(&bytes).expect("UA sent unparsable bytes");
            self.outbox.push((to, msg));
        }
        while let Some(e) = self.ua.poll_event() {
            self.events.push(e);
        }
    }

    pub fn start(&mut self) {
        self.ua.start(self.now);
        self.pump();
    }

    pub fn command(&mut self, c: Command) {
        self.ua.handle_command(self.now, c);
        self.pump();
    }

    /// Moves the clock by `d`, firing every timeout on the way in order.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        let mut spins = 0;
        while let Some(at) = self.ua.poll_timeout().filter(|at| *at <= end) {
            spins += 1;
            assert!(
                spins < 10_000,
                "timeout loop at {:?}: {:?}",
                at - self.t0,
                self.ua
            );
            self.now = at.max(self.now);
            self.ua.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
    }

    /// The oldest unread request the UA sent; panics if there is none.
    pub fn next_request(&mut self) -> rsip::Request {
        let i = self
            .outbox
            .iter()
            .position(|(_, m)| matches!(m, SipMessage::Request(_)))
            .unwrap_or_else(|| panic!("no request sent; outbox: {:?}", self.outbox));
        match self.outbox.remove(i).1 {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    /// The oldest unread request of `method`; earlier unread requests of
    /// other methods are dropped.
    pub fn take_request(&mut self, method: rsip::Method) -> rsip::Request {
        loop {
            let r = self.next_request();
            if r.method == method {
                return r;
            }
        }
    }

    pub fn no_request(&self) -> bool {
        !self
            .outbox
            .iter()
            .any(|(_, m)| matches!(m, SipMessage::Request(_)))
    }

    /// The oldest unread response the UA sent.
    pub fn next_response(&mut self) -> rsip::Response {
        let i = self
            .outbox
            .iter()
            .position(|(_, m)| matches!(m, SipMessage::Response(_)))
            .expect("no response sent");
        match self.outbox.remove(i).1 {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => unreachable!(),
        }
    }

    /// Answers `req` from the server.
    pub fn reply(&mut self, req: &rsip::Request, code: u16, extra: Vec<(&str, String)>) {
        self.next_tag += 1;
        let tag = format!("srv{}", self.next_tag);
        let headers = extra.iter().map(|(n, v)| make_header(n, v)).collect();
        let resp = response_with(req, code, Some(&tag), None, headers);
        self.deliver(SipMessage::Response(resp));
    }

    /// Answers with prepared headers (e.g. digest challenge headers).
    pub fn reply_headers(&mut self, req: &rsip::Request, code: u16, headers: Vec<rsip::Header>) {
        let resp = response_with(req, code, Some("srvauth"), None, headers);
        self.deliver(SipMessage::Response(resp));
    }

    pub fn deliver(&mut self, msg: SipMessage) {
        self.deliver_bytes(to_bytes(&msg));
    }

    /// Bytes from the server.
    pub fn deliver_bytes(&mut self, bytes: Vec<u8>) {
        let input = Incoming {
            bytes,
            source: SERVER.parse().unwrap(),
            transport: self.transport,
        };
        self.ua.handle_input(self.now, input);
        self.pump();
    }

    /// Takes the events seen so far.
    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    /// Registers without a challenge and accepts the reg-event SUBSCRIBE.
    pub fn registered(&mut self) {
        self.start();
        let reg = self.next_request();
        self.reply(&reg, 200, vec![("Contact", format!("<sip:alice@{LOCAL};transport=tcp>;+sip.instance=\"<{INSTANCE}>\";pub-gruu=\"sip:alice@isc.local;gr={INSTANCE}\";expires=3600"))]);
        let sub = self.next_request();
        assert_eq!(sub.method, rsip::Method::Subscribe);
        self.reply(
            &sub,
            200,
            vec![
                ("Expires", "3600".into()),
                ("Contact", "<sip:reg@127.0.0.1:5060>".into()),
            ],
        );
        self.take_events();
    }
}

/// A raw request from the server; `\n` become CRLF and Content-Length is added.
pub fn raw_request(head: &str, body: &str) -> Vec<u8> {
    let head = head.trim().replace('\n', "\r\n");
    format!("{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

pub fn header(m: &rsip::Request, name: &str) -> Option<String> {
    m.headers.get_raw(name)
}

pub fn resp_header(m: &rsip::Response, name: &str) -> Option<String> {
    m.headers.get_raw(name)
}
