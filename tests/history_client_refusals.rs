//! The client core against a History Function that refuses (seed 003
//! 13.2.1.1), over real UDP: a 403 for a missing `recvonly` (the bundled
//! server's own reason text) reaches the user as a sentence, and a 200 that
//! is not `sendonly` is ACKed, BYEd and reported. The bundled server never
//! sees a non-recvonly offer from our client, so a scripted server answers
//! here; `tests/deferred_retrieval.rs` shows the real one's 403.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use isc::client::history::{HistoryError, HistoryEvent, HistoryQuery};
use isc::client::runner::spawn_client;
use isc::client::{ClientEvent, Command, UaConfig};
use isc::proto::sip::build::response_with;
use isc::proto::sip::headers::{HeadersExt, make_header};
use isc::proto::sip::message::{parse_message, to_bytes};
use isc::server::deferred_message_store::function::RetrievalRejection;
use isc::tui::app::{AppConfig, EntryKind};
use isc::tui::{Action, App};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(10);

/// The next request of `method` the client sends to the scripted server.
async fn next(sock: &UdpSocket, method: rsip::Method) -> (rsip::Request, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let (n, from) = tokio::time::timeout_at(until, sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {method} in time"))
            .unwrap();
        if let Ok(rsip::SipMessage::Request(r)) = parse_message(&buf[..n])
            && r.method == method
        {
            return (r, from);
        }
    }
}

async fn reply(sock: &UdpSocket, to: SocketAddr, resp: rsip::Response) {
    sock.send_to(&to_bytes(&rsip::SipMessage::Response(resp)), to)
        .await
        .unwrap();
}

async fn outcome(c: &mut isc::client::runner::ClientHandle) -> HistoryEvent {
    match c
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::History(HistoryEvent::Retrieved { .. } | HistoryEvent::Failed { .. })
            )
        })
        .await
    {
        Some(ClientEvent::History(e)) => e,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_user() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cfg = UaConfig::new(
        "bob",
        "isc.local",
        "bob",
        "bob-2",
        "urn:uuid:00000000-0000-0000-0000-0000000000b2",
        sock.local_addr().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    );
    let mut bob = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    // 1. 403: the server's reason for a missing recvonly.
    assert!(
        bob.send(Command::History(HistoryQuery::conversation(
            "sip:alice@isc.local"
        )))
        .await
    );
    let (invite, from) = next(&sock, rsip::Method::Invite).await;
    assert!(String::from_utf8_lossy(&invite.body).contains("a=recvonly\r\n"));
    let why = RetrievalRejection::NotRecvOnly;
    reply(
        &sock,
        from,
        response_with(
            &invite,
            403,
            Some("f1"),
            None,
            vec![make_header("Warning", &format!("399 isc.local \"{why}\""))],
        ),
    )
    .await;
    let ev = outcome(&mut bob).await;
    let HistoryEvent::Failed { error, .. } = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!(
        error.to_string(),
        "history refused by the server: the SDP must be recvonly (403 Forbidden)"
    );
    let mut app = App::new(
        AppConfig::new("bob", "isc.local", "bob-2"),
        Instant::now(),
        SystemTime::now(),
    );
    app.update(Action::Client(ClientEvent::History(ev.clone())));
    let shown: Vec<&str> = app.conversations[0]
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::System(_)))
        .map(|e| e.text())
        .collect();
    assert_eq!(
        shown,
        ["history: history refused by the server: the SDP must be recvonly (403 Forbidden)"]
    );

    // 2. A 200 that is sendrecv: ACK, BYE, and the user is told.
    assert!(
        bob.send(Command::History(HistoryQuery::conversation(
            "sip:alice@isc.local"
        )))
        .await
    );
    let (invite, from) = next(&sock, rsip::Method::Invite).await;
    let sdp = "v=0\r\no=isc 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:msrp://127.0.0.1:9/x;tcp\r\na=setup:active\r\na=sendrecv\r\n";
    let mut ok = response_with(
        &invite,
        200,
        Some("f2"),
        None,
        vec![
            make_header(
                "Contact",
                &format!("<sip:{}>;automata", sock.local_addr().unwrap()),
            ),
            make_header("Content-Type", "application/sdp"),
        ],
    );
    ok.headers.remove_named("Content-Length");
    ok.headers
        .push(make_header("Content-Length", &sdp.len().to_string()));
    ok.body = sdp.as_bytes().to_vec();
    reply(&sock, from, ok).await;
    let (ack, _) = next(&sock, rsip::Method::Ack).await;
    assert_eq!(
        ack.headers.get_raw("Call-ID"),
        invite.headers.get_raw("Call-ID")
    );
    let (bye, _) = next(&sock, rsip::Method::Bye).await;
    assert_eq!(
        bye.headers.get_raw("Call-ID"),
        invite.headers.get_raw("Call-ID")
    );
    let ev = outcome(&mut bob).await;
    assert!(
        matches!(
            &ev,
            HistoryEvent::Failed {
                error: HistoryError::NotSendOnly,
                ..
            }
        ),
        "{ev:?}"
    );
    bob.abort();
}
