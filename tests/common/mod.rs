//! A raw SIP peer for the server tests: it writes requests as text, reads
//! whatever arrives, and answers digest challenges with our DigestClient, so
//! the assertions are on the bytes on the wire, not on our own client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use isc::proto::sip::digest::client::DigestClient;
use isc::proto::sip::headers::HeadersExt;
use isc::proto::sip::message::{parse_message, to_bytes};
use isc::server::runner::{Server, ServerHandle, ServerOptions};
use tokio::net::UdpSocket;

pub async fn start_server() -> ServerHandle {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.users = ["alice", "bob", "carol", "ted", "mallory"]
        .iter()
        .map(|n| isc::config::UserConfig::new(n, n))
        .collect();
    Server::start(opts).await.expect("server starts")
}

pub struct Peer {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub digest: DigestClient,
    seq: u32,
    n: u32,
}

impl Peer {
    pub async fn new(server: SocketAddr, user: &str, password: &str) -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Peer {
            sock,
            server,
            user: user.into(),
            digest: DigestClient::new(user, password),
            seq: 0,
            n: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    pub fn token(&mut self) -> String {
        self.n += 1;
        format!("{}{}x{}", self.user, self.addr().port(), self.n)
    }

    /// A request from this peer; `extra` are whole header lines.
    pub fn request(
        &mut self,
        method: &str,
        uri: &str,
        to: &str,
        extra: &[String],
        body: &str,
    ) -> rsip::Request {
        self.seq += 1;
        let branch = format!("z9hG4bK{}", self.token());
        let tag = self.token();
        let call = self.token();
        let mut text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@isc.local>;tag={tag}\r\nTo: <{to}>\r\nCall-ID: {call}\r\nCSeq: {seq} {method}\r\n",
            addr = self.addr(),
            user = self.user,
            seq = self.seq,
        );
        for h in extra {
            text.push_str(h);
            text.push_str("\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        match parse_message(text.as_bytes()).expect("test request parses") {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    pub async fn send(&self, msg: impl Into<rsip::SipMessage>) {
        self.sock
            .send_to(&to_bytes(&msg.into()), self.server)
            .await
            .unwrap();
    }

    /// The next message, or None after `secs`.
    pub async fn recv_within(&self, secs: f64) -> Option<rsip::SipMessage> {
        let mut buf = vec![0u8; 65535];
        let r = tokio::time::timeout(Duration::from_secs_f64(secs), self.sock.recv_from(&mut buf))
            .await;
        let (n, _) = r.ok()?.ok()?;
        Some(parse_message(&buf[..n]).expect("server sends parseable SIP"))
    }

    /// The next datagram as text (for responses our parser would refuse).
    pub async fn recv_text(&self) -> String {
        let mut buf = vec![0u8; 65535];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    pub async fn recv(&self) -> rsip::SipMessage {
        self.recv_within(5.0).await.expect("a message within 5 s")
    }

    /// The next final response (skipping 1xx).
    pub async fn final_response(&self) -> rsip::Response {
        loop {
            match self.recv().await {
                rsip::SipMessage::Response(r) if r.status_code.code() >= 200 => return r,
                _ => continue,
            }
        }
    }

    /// Sends `req`, answers one challenge, returns the final response.
    pub async fn send_authenticated(&mut self, mut req: rsip::Request) -> rsip::Response {
        self.digest.authorize(&mut req, "0a4f113b");
        self.send(req.clone()).await;
        let resp = self.final_response().await;
        if matches!(resp.status_code.code(), 401 | 407) {
            self.digest
                .handle_challenge(&resp)
                .expect("challenge readable");
            self.seq += 1;
            bump_cseq(&mut req, self.seq);
            new_branch(&mut req, &format!("z9hG4bK{}", self.token()));
            self.digest.authorize(&mut req, "0a4f113b");
            self.send(req).await;
            return self.final_response().await;
        }
        resp
    }

    pub async fn register(&mut self, instance: &str, device: &str) -> rsip::Response {
        let contact = format!(
            "Contact: <sip:{}@{};transport=udp>;+sip.instance=\"<urn:uuid:{instance}>\";+sip.description=\"{device}\";expires=600",
            self.user,
            self.addr()
        );
        let to = format!("sip:{}@isc.local", self.user);
        let req = self.request(
            "REGISTER",
            "sip:isc.local",
            &to,
            &[contact, "Supported: gruu".into()],
            "",
        );
        self.send_authenticated(req).await
    }

    /// Answers a request with `code`, copying the dialog headers.
    pub async fn answer(&self, req: &rsip::Request, code: u16) {
        let resp = isc::proto::sip::build::response_to(req, code, Some("answertag"));
        self.send(resp).await;
    }
}

pub fn bump_cseq(req: &mut rsip::Request, seq: u32) {
    let method = req.method.to_string();
    req.headers.remove_named("CSeq");
    req.headers.push(isc::proto::sip::headers::make_header(
        "CSeq",
        &format!("{seq} {method}"),
    ));
}

pub fn new_branch(req: &mut rsip::Request, branch: &str) {
    let via = req.headers.get_raw("Via").unwrap();
    let start = via.find("branch=").unwrap() + 7;
    let end = via[start..]
        .find(';')
        .map(|e| start + e)
        .unwrap_or(via.len());
    let new = format!("{}{}{}", &via[..start], branch, &via[end..]);
    req.headers.remove_named("Via");
    let mut all: Vec<rsip::Header> = std::mem::take(&mut req.headers).into();
    all.insert(0, isc::proto::sip::headers::make_header("Via", &new));
    req.headers = all.into();
}

pub fn header(msg: &rsip::SipMessage, name: &str) -> Option<String> {
    match msg {
        rsip::SipMessage::Request(r) => r.headers.get_raw(name),
        rsip::SipMessage::Response(r) => r.headers.get_raw(name),
    }
}

pub fn request(msg: rsip::SipMessage) -> rsip::Request {
    match msg {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(r) => panic!("expected a request, got {}", r.status_code),
    }
}
