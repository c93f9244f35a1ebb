//! Raw peers for the CPM Participating Function tests: SIP over UDP (the
//! shared `common::Peer`) plus a raw MSRP connection over TCP, so the
//! assertions are on the bytes the server sends.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use isc::proto::msrp::{MsrpMessage, MsrpParser, MsrpPath, MsrpUri, ParserConfig};
use isc::proto::sip::headers::{HeadersExt, make_header};
use isc::server::runner::{Server, ServerHandle, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Peer, bump_cseq, new_branch};

pub const CPM_ICSI: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session";
pub const CPM_ACCEPT_CONTACT: &str =
    "Accept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"";

/// A server with the cast and `tweak` applied to its config.
pub async fn start(tweak: impl FnOnce(&mut ServerOptions)) -> ServerHandle {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.users = ["alice", "bob", "carol"]
        .iter()
        .map(|n| isc::config::UserConfig::new(n, n))
        .collect();
    tweak(&mut opts);
    Server::start(opts).await.expect("server starts")
}

pub fn user_mut<'a>(opts: &'a mut ServerOptions, name: &str) -> &'a mut isc::config::UserConfig {
    opts.config
        .users
        .iter_mut()
        .find(|u| u.name == name)
        .expect("user in the cast")
}

/// An MSRP offer/answer body for a peer whose MSRP URI is `uri`.
pub fn msrp_sdp(uri: &MsrpUri, setup: &str, extra_media: &str) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {port} TCP/MSRP *\r\na=accept-types:message/cpim application/im-iscomposing+xml\r\na=accept-wrapped-types:text/plain application/im-iscomposing+xml\r\na=path:{uri}\r\na=setup:{setup}\r\n{extra_media}",
        port = uri.port.unwrap_or(0),
    )
}

/// The first MSRP path in an SDP body.
pub fn sdp_path(body: &[u8]) -> MsrpPath {
    let sdp = isc::proto::sdp::parse_sdp(body).expect("SDP parses");
    let m = sdp.msrp().next().expect("an MSRP line").clone();
    MsrpPath(m.path.iter().map(|p| MsrpUri::parse(p).unwrap()).collect())
}

pub fn sdp_setup(body: &[u8]) -> String {
    let sdp = isc::proto::sdp::parse_sdp(body).expect("SDP parses");
    sdp.msrp().next().unwrap().setup.unwrap().to_string()
}

/// A CPM session INVITE from `peer` to `to` with `sdp`, plus `extra` lines.
pub fn cpm_invite(peer: &mut Peer, to: &str, sdp: &str, extra: &[&str]) -> rsip::Request {
    let mut lines: Vec<String> = vec![
        CPM_ACCEPT_CONTACT.into(),
        format!("P-Preferred-Service: {CPM_ICSI}"),
        format!("Contact: <sip:{}@{};transport=udp>", peer.user, peer.addr()),
        "User-Agent: isc/1.0 CPM-client/OMA2.0".into(),
        "Content-Type: application/sdp".into(),
    ];
    for e in extra {
        let name = e.split(':').next().unwrap();
        lines.retain(|l| !l.starts_with(&format!("{name}:")));
        lines.push(e.to_string());
    }
    peer.request("INVITE", to, to, &lines, sdp)
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
pub fn ack_non_2xx(req: &rsip::Request, resp: &rsip::Response) -> rsip::Request {
    let mut ack = req.clone();
    ack.method = rsip::Method::Ack;
    ack.headers.remove_named("To");
    ack.headers
        .push(make_header("To", &resp.headers.get_raw("To").unwrap()));
    let seq = isc::proto::sip::build::cseq(&req.headers).unwrap().0;
    ack.headers.remove_named("CSeq");
    ack.headers.push(make_header("CSeq", &format!("{seq} ACK")));
    ack.headers.remove_named("Content-Type");
    ack.headers.remove_named("Content-Length");
    ack.headers.push(make_header("Content-Length", "0"));
    ack.body = Vec::new();
    ack
}

/// The ACK for a 2xx (RFC 3261 §13.2.2.4), sent to the server.
pub fn ack_2xx(peer: &mut Peer, req: &rsip::Request, resp: &rsip::Response) -> rsip::Request {
    let contact = resp.headers.get_raw("Contact").unwrap();
    let uri = contact
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let seq = isc::proto::sip::build::cseq(&req.headers).unwrap().0;
    let text = format!(
        "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} ACK\r\nContent-Length: 0\r\n\r\n",
        peer.addr(),
        peer.token(),
        req.headers.get_raw("From").unwrap(),
        resp.headers.get_raw("To").unwrap(),
        req.headers.get_raw("Call-ID").unwrap(),
    );
    match isc::proto::sip::message::parse_message(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

/// Sends `req`; on a 407 ACKs it and re-sends with credentials. Returns
/// the request as finally sent (its response is not awaited).
pub async fn send_invite(peer: &mut Peer, mut req: rsip::Request) -> rsip::Request {
    peer.send(req.clone()).await;
    loop {
        let resp = match peer.recv().await {
            rsip::SipMessage::Response(r) => r,
            _ => continue,
        };
        match resp.status_code.code() {
            100 => continue,
            407 => {
                peer.send(ack_non_2xx(&req, &resp)).await;
                peer.digest.handle_challenge(&resp).unwrap();
                let seq = isc::proto::sip::build::cseq(&req.headers).unwrap().0 + 1;
                bump_cseq(&mut req, seq);
                let branch = format!("z9hG4bK{}", peer.token());
                new_branch(&mut req, &branch);
                peer.digest.authorize(&mut req, "0a4f113b");
                peer.send(req.clone()).await;
                return req;
            }
            c => panic!("unexpected {c} before the challenge"),
        }
    }
}

/// The next final response to `req` (skipping 1xx and other traffic);
/// ACKs a non-2xx.
pub async fn final_for(peer: &Peer, req: &rsip::Request) -> rsip::Response {
    let call = req.headers.get_raw("Call-ID").unwrap();
    let method = req.method.to_string();
    loop {
        match peer.recv().await {
            rsip::SipMessage::Response(r)
                if r.status_code.code() >= 200
                    && r.headers.get_raw("Call-ID").as_deref() == Some(call.as_str())
                    && isc::proto::sip::build::cseq(&r.headers)
                        .is_some_and(|(_, m)| m == method) =>
            {
                if r.status_code.code() >= 300 {
                    peer.send(ack_non_2xx(req, &r)).await;
                }
                return r;
            }
            _ => continue,
        }
    }
}

/// The next request of `method` to this peer (others skipped).
pub async fn recv_request(peer: &Peer, method: rsip::Method) -> rsip::Request {
    loop {
        match peer.recv().await {
            rsip::SipMessage::Request(r) if r.method == method => return r,
            _ => continue,
        }
    }
}

/// Answers `req` with `code`; a 200 carries `sdp` and a Contact.
pub async fn answer(peer: &Peer, req: &rsip::Request, code: u16, tag: &str, sdp: Option<&str>) {
    let mut resp = isc::proto::sip::build::response_to(req, code, Some(tag));
    resp.headers.remove_named("Content-Length");
    if code < 300 {
        resp.headers.push(make_header(
            "Contact",
            &format!("<sip:{}@{};transport=udp>", peer.user, peer.addr()),
        ));
    }
    if let Some(sdp) = sdp {
        resp.headers
            .push(make_header("Content-Type", "application/sdp"));
        resp.headers
            .push(make_header("Content-Length", &sdp.len().to_string()));
        resp.body = sdp.as_bytes().to_vec();
    } else {
        resp.headers.push(make_header("Content-Length", "0"));
    }
    peer.send(resp).await;
}

/// A raw MSRP connection.
pub struct MsrpConn {
    pub stream: TcpStream,
    parser: MsrpParser,
}

impl MsrpConn {
    pub async fn connect(addr: SocketAddr) -> MsrpConn {
        MsrpConn::from(TcpStream::connect(addr).await.unwrap())
    }

    pub async fn accept(listener: &TcpListener) -> MsrpConn {
        let (s, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("server connects within 5 s")
            .unwrap();
        MsrpConn::from(s)
    }

    fn from(stream: TcpStream) -> MsrpConn {
        MsrpConn {
            stream,
            parser: MsrpParser::new(ParserConfig::default()),
        }
    }

    pub async fn send(&mut self, msg: &MsrpMessage) {
        self.stream
            .write_all(&msg.to_bytes().unwrap())
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame, or None on EOF / after `secs`.
    pub async fn recv_within(&mut self, secs: f64) -> Option<MsrpMessage> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            if let Some(r) = self.parser.next() {
                return Some(r.expect("server sends well-framed MSRP"));
            }
            let mut buf = vec![0u8; 256 * 1024];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.parser.push(&buf[..n]);
        }
    }

    pub async fn recv(&mut self) -> MsrpMessage {
        self.recv_within(5.0)
            .await
            .expect("an MSRP frame within 5 s")
    }

    /// The next request; answers SENDs with 200 on the way.
    pub async fn recv_request(&mut self) -> MsrpMessage {
        loop {
            let m = self.recv().await;
            if m.is_request() {
                if let Some(ok) = m.ok_response() {
                    self.send(&ok).await;
                }
                return m;
            }
        }
    }

    /// Whether the peer closed the connection (EOF within `secs`, frames skipped).
    pub async fn closed_within(&mut self, secs: f64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

/// A device of a user: SIP peer, MSRP listener, its MSRP URI.
pub struct Device {
    pub sip: Peer,
    pub listener: TcpListener,
    pub uri: MsrpUri,
    pub gruu: String,
}

impl Device {
    pub async fn register(server: SocketAddr, user: &str, instance: &str, name: &str) -> Device {
        let mut sip = Peer::new(server, user, user).await;
        let resp = sip.register(instance, name).await;
        assert_eq!(resp.status_code.code(), 200, "{user}/{name} registers");
        // RFC 5627 public GRUU as our registrar mints it.
        let gruu = format!("sip:{user}@isc.local;gr=urn:uuid:{instance}");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let uri = MsrpUri::new("127.0.0.1", port, format!("{user}{name}sess"));
        Device {
            sip,
            listener,
            uri,
            gruu,
        }
    }
}

/// An established 1-1 session: alice ↔ server ↔ bob's one device.
pub struct Session {
    pub alice: Peer,
    pub alice_uri: MsrpUri,
    /// The server's path towards alice (from its SDP answer).
    pub to_server: MsrpPath,
    pub a: MsrpConn,
    pub bob: Device,
    /// The server's path towards bob (from its INVITE's SDP).
    pub bob_server_path: MsrpPath,
    pub b: MsrpConn,
    pub invite: rsip::Request,
    pub ok: rsip::Response,
    /// The INVITE the device got.
    pub bob_invite: rsip::Request,
}

pub async fn one_device_session(server: &ServerHandle) -> Session {
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let bob = Device::register(addr, "bob", "bob-phone", "phone").await;
    let alice_uri = MsrpUri::new("127.0.0.1", 7, "alicesess");
    let sdp = msrp_sdp(&alice_uri, "actpass", "");
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, &[]);
    let invite = send_invite(&mut alice, req).await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    let bob_server_path = sdp_path(&inv.body);
    answer(
        &bob.sip,
        &inv,
        200,
        "bobtag",
        Some(&msrp_sdp(&bob.uri, "passive", "")),
    )
    .await;
    let ok = final_for(&alice, &invite).await;
    assert_eq!(ok.status_code.code(), 200);
    let ack = ack_2xx(&mut alice, &invite, &ok);
    alice.send(ack).await;
    let to_server = sdp_path(&ok.body);
    let mut b = MsrpConn::accept(&bob.listener).await;
    let bind = b.recv_request().await;
    assert!(bind.body.is_none());
    let a = MsrpConn::connect(server.msrp_addr()).await;
    Session {
        alice,
        alice_uri,
        to_server,
        a,
        bob,
        bob_server_path,
        b,
        invite,
        ok,
        bob_invite: inv,
    }
}
