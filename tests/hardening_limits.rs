//! Bad input is bounded (issue #11 part 3): a slowloris SIP peer and a
//! half-sent MSRP chunk are disconnected after their deadline, a 100 MB
//! Content-Length is refused before any of it is read, a UDP flood and a
//! SUBSCRIBE storm from one source hit that source's rate limit (and are
//! logged) while another source keeps its service, and malformed bodies
//! from a registered device get a status and Warning and leave nothing
//! behind. All over real loopback sockets against `isc server`.

mod common;
mod cpm_common;
mod focus_common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Peer;
use cpm_common::*;
use isc::proto::msrp::MsrpUri;
use isc::proto::sip::headers::HeadersExt;
use isc::server::runner::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A bound for waiting on the server, never a timed assertion.
const WAIT: Duration = Duration::from_secs(10);

fn options(n: usize, local: SocketAddr, transport: &str, method: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:isc.local SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bKh{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@isc.local>;tag=h{n}\r\nTo: <sip:isc.local>\r\n\
         Call-ID: h-{n}@{local}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn status(msg: &[u8]) -> Option<u16> {
    std::str::from_utf8(msg)
        .ok()?
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse()
        .ok()
}

fn header(msg: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(msg).split("\r\n").find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(": "))
            .map(str::to_string)
    })
}

/// Reads until EOF: the bytes the server sent before closing.
async fn read_to_close(conn: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, conn.read_to_end(&mut got))
        .await
        .unwrap_or_else(|_| panic!("{what}: the server did not close the connection"))
        .unwrap_or_default();
    got
}

/// An OPTIONS from a fresh UDP socket on `ip` is answered 200.
async fn served_from(server: SocketAddr, ip: [u8; 4], n: usize) -> bool {
    let sock = UdpSocket::bind(SocketAddr::from((ip, 0))).await.unwrap();
    let local = sock.local_addr().unwrap();
    sock.send_to(&options(n, local, "UDP", "OPTIONS", ""), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => status(&buf[..len]) == Some(200),
        _ => false,
    }
}

async fn start_with(
    limits: impl FnOnce(&mut isc::config::LimitsConfig),
) -> isc::server::runner::ServerHandle {
    start(|o: &mut ServerOptions| limits(&mut o.config.limits)).await
}

/// Captures the server's tracing output (the tests run the server on their
/// own current-thread runtime, so a thread-local subscriber sees it).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let log = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || log.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn slowloris_sip_peer_is_closed_while_an_idle_one_stays() {
    let server = start_with(|l| l.sip_partial_message_timeout_secs = 1).await;
    let addr = server.local_addr();
    // An idle connection with nothing half-sent is not a slowloris.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let local = slow.local_addr().unwrap();
    let whole = options(1, local, "TCP", "OPTIONS", "");
    // A request that never ends its header section.
    slow.write_all(&whole[..40]).await.unwrap();
    let got = read_to_close(&mut slow, "slowloris").await;
    assert!(
        got.is_empty(),
        "nothing answered: {:?}",
        String::from_utf8_lossy(&got)
    );
    // The idle connection, older than the deadline, still works.
    let local = idle.local_addr().unwrap();
    idle.write_all(&options(2, local, "TCP", "OPTIONS", ""))
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, idle.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status(&buf[..n]), Some(200));
    server.shutdown().await;
}

#[tokio::test]
async fn half_sent_msrp_chunk_is_closed() {
    let server = start_with(|l| l.msrp_partial_chunk_timeout_secs = 1).await;
    let mut conn = TcpStream::connect(server.msrp_addr()).await.unwrap();
    // RFC 4975 §7: a SEND whose end-line never comes.
    conn.write_all(b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://127.0.0.1:7777/x;tcp\r\nFrom-Path: msrp://127.0.0.1:7/y;tcp\r\nMessage-ID: 1\r\nByte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\nhalf a mess")
        .await
        .unwrap();
    read_to_close(&mut conn, "half-sent chunk").await;
    assert!(served_from(server.local_addr(), [127, 0, 0, 1], 1).await);
    server.shutdown().await;
}

#[tokio::test]
async fn hundred_megabyte_content_length_is_refused_unread() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    // TCP: only the header section is sent; the server closes at once
    // rather than wait for (or allocate) 100 MB (RFC 3261 §18.3 framing).
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let local = conn.local_addr().unwrap();
    let head = options(1, local, "TCP", "MESSAGE", "Content-Type: text/plain\r\n")
        .into_iter()
        .collect::<Vec<u8>>();
    let head = String::from_utf8(head)
        .unwrap()
        .replace("Content-Length: 0", "Content-Length: 104857600");
    conn.write_all(head.as_bytes()).await.unwrap();
    let got = read_to_close(&mut conn, "100 MB Content-Length").await;
    assert!(got.is_empty());
    // UDP: the datagram cannot hold it: 400 naming the fault.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let dgram = String::from_utf8(options(2, local, "UDP", "MESSAGE", ""))
        .unwrap()
        .replace("Content-Length: 0", "Content-Length: 104857600");
    sock.send_to(dgram.as_bytes(), addr).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status(&buf[..n]), Some(400));
    assert!(
        header(&buf[..n], "Warning")
            .unwrap()
            .contains("Content-Length says 104857600")
    );
    assert!(served_from(addr, [127, 0, 0, 1], 3).await);
    server.shutdown().await;
}

#[tokio::test]
async fn udp_flood_from_one_source_is_cut_and_logged_others_served() {
    let log = Log::default();
    let _guard = log.install();
    let server = start_with(|l| {
        l.source_messages_per_sec = 20;
        l.source_burst = 20;
        l.limit_loopback_sources = true;
    })
    .await;
    let addr = server.local_addr();
    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = flood.local_addr().unwrap();
    const SENT: usize = 300;
    for n in 0..SENT {
        flood
            .send_to(&options(n, local, "UDP", "OPTIONS", ""), addr)
            .await
            .unwrap();
    }
    // Another source (127.0.0.2) is served meanwhile.
    assert!(served_from(addr, [127, 0, 0, 2], 1000).await);
    let mut answered = 0;
    let mut buf = vec![0u8; 65_535];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_secs(1), flood.recv_from(&mut buf)).await
    {
        answered += 1;
    }
    // The burst is answered; the bulk of the flood is dropped unread.
    assert!(
        (20..SENT / 2).contains(&answered),
        "{answered} of {SENT} answered"
    );
    let text = log.text();
    assert!(
        text.contains("source over its rate limit") && text.contains("ip=127.0.0.1"),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn subscribe_storm_gets_503_retry_after_others_served() {
    let server = start_with(|l| {
        l.subscribes_per_sec = 1;
        l.subscribe_burst = 5;
        l.retry_after_secs = 7;
        l.limit_loopback_sources = true;
    })
    .await;
    let addr = server.local_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let mut codes = Vec::new();
    let mut buf = vec![0u8; 65_535];
    for n in 0..20 {
        let sub = options(
            n,
            local,
            "UDP",
            "SUBSCRIBE",
            "Event: reg\r\nExpires: 600\r\n",
        );
        sock.send_to(&sub, addr).await.unwrap();
        let (len, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let code = status(&buf[..len]).unwrap();
        if code == 503 {
            assert_eq!(header(&buf[..len], "Retry-After").as_deref(), Some("7"));
            assert!(
                header(&buf[..len], "Warning")
                    .unwrap()
                    .contains("too many SUBSCRIBEs")
            );
        }
        codes.push(code);
    }
    // The burst reaches authentication (407), the rest of the storm is refused.
    assert_eq!(codes[..5], [407; 5]);
    assert!(
        codes.iter().filter(|c| **c == 503).count() >= 10,
        "{codes:?}"
    );
    // Another source's SUBSCRIBE still reaches authentication.
    let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let local = other.local_addr().unwrap();
    let sub = options(99, local, "UDP", "SUBSCRIBE", "Event: reg\r\n");
    other.send_to(&sub, addr).await.unwrap();
    let (len, _) = tokio::time::timeout(WAIT, other.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status(&buf[..len]), Some(407));
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_sdp_from_a_registered_device_is_refused_and_leaves_no_session() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    assert_eq!(alice.register("a1", "phone").await.status_code.code(), 200);
    let bob = Device::register(addr, "bob", "bob-phone", "phone").await;
    let garbage = "v=0\r\nthis is not SDP\r\nm=message nine TCP/MSRP *\r\n";
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", garbage, &[]);
    let req = send_invite(&mut alice, req).await;
    let resp = final_for(&alice, &req).await;
    assert!(
        matches!(resp.status_code.code(), 400 | 488),
        "{}",
        resp.status_code
    );
    let w = resp.headers.get_raw("Warning").expect("a Warning");
    assert!(w.contains("SDP") || w.contains("sdp"), "{w}");
    alice.send(ack_non_2xx(&req, &resp)).await;
    // Refused before any forking: bob's device got nothing (the server sends
    // in order, so an INVITE to it would have left before alice's answer).
    let mut buf = vec![0u8; 65_535];
    assert!(bob.sip.sock.try_recv_from(&mut buf).is_err());
    // A good offer still goes through.
    let sdp = msrp_sdp(&MsrpUri::new("127.0.0.1", 7, "alicesess"), "actpass", "");
    let mut alice2 = Peer::new(addr, "alice", "alice").await;
    let good = cpm_invite(&mut alice2, "sip:bob@isc.local", &sdp, &[]);
    let good = send_invite(&mut alice2, good).await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    assert!(
        inv.body.windows(3).any(|w| w == b"m=m"),
        "bob gets an offer"
    );
    assert_ne!(
        good.headers.get_raw("Call-ID"),
        req.headers.get_raw("Call-ID")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_resource_list_xml_is_refused_and_invites_nobody() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let bob = Device::register(addr, "bob", "bob-phone", "phone").await;
    let sdp = msrp_sdp(&MsrpUri::new("127.0.0.1", 7, "alicesess"), "actpass", "");
    let (ct, body) = focus_common::factory_body(
        &sdp,
        vec![isc::proto::bodies::resource_lists::Entry::new(
            "sip:bob@isc.local",
        )],
    );
    // The list part loses its closing tags: not well-formed XML.
    let body = String::from_utf8(body)
        .unwrap()
        .replace("</list>", "<list>");
    let lines = vec![
        focus_common::IM_ACCEPT_CONTACT.to_string(),
        format!("Contact: <sip:alice@{};transport=udp>", alice.addr()),
        "Require: recipient-list-invite".into(),
        format!("Content-Type: {ct}"),
    ];
    let req = alice.request(
        "INVITE",
        focus_common::FACTORY,
        focus_common::FACTORY,
        &lines,
        &body,
    );
    let req = send_invite(&mut alice, req).await;
    let resp = final_for(&alice, &req).await;
    assert_eq!(resp.status_code.code(), 400);
    let w = resp.headers.get_raw("Warning").expect("a Warning");
    assert!(w.starts_with("399 isc.local \""), "{w}");
    alice.send(ack_non_2xx(&req, &resp)).await;
    // No conference was created: bob was invited to nothing.
    let mut buf = vec![0u8; 65_535];
    assert!(bob.sip.sock.try_recv_from(&mut buf).is_err());
    assert!(served_from(addr, [127, 0, 0, 1], 1).await);
    server.shutdown().await;
}
