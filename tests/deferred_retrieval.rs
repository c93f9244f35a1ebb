//! Retrieval of deferred messages (seed 003 12.1.1, 12.4.1) and of history
//! (13.1.3, 13.2.1.1) over real sockets: INVITE `Deferred@isc.local` /
//! `history@isc.local` recvonly with a URI list; every check's error
//! response; the chosen items streamed over MSRP, then BYE.

mod common;
mod cpm_common;

use std::path::Path;
use std::time::Duration;

use common::Peer;
use cpm_common::{MsrpConn, ack_2xx, final_for, one_device_session, recv_request, send_invite};
use isc::proto::bodies::resource_lists::{Entry, ResourceLists};
use isc::proto::msrp::{ByteRange, MsrpHeader, MsrpMessage, MsrpMethod, MsrpPath, MsrpUri};
use isc::proto::sip::headers::HeadersExt;
use isc::server::deferred_message_store::{DeferredStore, SqliteDeferred};
use isc::server::runner::{Server, ServerHandle, ServerOptions};
use tokio::net::TcpListener;

const BOB: &str = "sip:bob@isc.local";

/// bob retrieves (offline_delivery = false); alice and carol get pushes.
async fn start(dir: &Path) -> ServerHandle {
    let mut opts = ServerOptions::loopback_demo();
    opts.history_in_memory = false;
    opts.config.data_dir = Some(dir.to_path_buf());
    opts.config.users = ["alice", "bob", "carol"]
        .iter()
        .map(|n| {
            let mut u = isc::config::UserConfig::new(n, n);
            u.offline_delivery = *n != "bob";
            u
        })
        .collect();
    Server::start(opts).await.expect("server starts")
}

fn count(dir: &Path) -> u64 {
    SqliteDeferred::open_in(dir).unwrap().count(BOB).unwrap()
}

fn sdp(uri: &MsrpUri, direction: &str) -> String {
    format!(
        "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {} TCP/MSRP *\r\na=accept-types:message/sip message/cpim multipart/mixed\r\na=accept-wrapped-types:*\r\na=path:{uri}\r\na=setup:actpass\r\na={direction}\r\n",
        uri.port.unwrap()
    )
}

/// An INVITE to `to` whose body is the SDP plus, if `list` is given, a
/// resource-lists part (RFC 5366 recipient-list style).
fn retrieval_invite(peer: &mut Peer, to: &str, sdp: &str, list: Option<&[&str]>) -> rsip::Request {
    let contact = format!("Contact: <sip:{}@{};transport=udp>", peer.user, peer.addr());
    match list {
        None => peer.request(
            "INVITE",
            to,
            to,
            &[contact, "Content-Type: application/sdp".into()],
            sdp,
        ),
        Some(ids) => {
            let xml = ResourceLists::of(ids.iter().map(|i| Entry::new(*i)).collect()).to_xml();
            let body = format!(
                "--b1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b1\r\nContent-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\n\r\n{xml}\r\n--b1--\r\n"
            );
            peer.request(
                "INVITE",
                to,
                to,
                &[contact, "Content-Type: multipart/mixed;boundary=b1".into()],
                &body,
            )
        }
    }
}

/// Sends the INVITE (answering the challenge) and returns the final response.
async fn invite(peer: &mut Peer, req: rsip::Request) -> (rsip::Request, rsip::Response) {
    let sent = send_invite(peer, req).await;
    let resp = final_for(peer, &sent).await;
    (sent, resp)
}

/// Accepts the server's MSRP connection and collects what it streams until
/// it closes; answers each SEND with 200.
async fn collect(listener: &TcpListener) -> Vec<MsrpMessage> {
    let mut conn = MsrpConn::accept(listener).await;
    let mut got = Vec::new();
    while let Some(m) = conn.recv_within(3.0).await {
        if m.is_request() {
            conn.send(&m.ok_response().unwrap()).await;
            got.push(m);
        }
    }
    got
}

async fn pager(carol: &mut Peer, i: usize) {
    let req = carol.request(
        "MESSAGE",
        BOB,
        BOB,
        &[
            format!("Message-ID: carol-p-{i}"),
            "Content-Type: text/plain".into(),
        ],
        &format!("pager {i}"),
    );
    assert_eq!(carol.send_authenticated(req).await.status_code.code(), 202);
}

fn message_id_in(m: &MsrpMessage) -> String {
    String::from_utf8_lossy(m.body.as_deref().unwrap())
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
        .unwrap()
}

/// One retrieval by bob (a fresh SIP peer of his, so its digest state is
/// new): returns the Message-IDs streamed.
async fn retrieve(server: &ServerHandle, list: Option<&[&str]>) -> Vec<String> {
    let bob = &mut Peer::new(server.local_addr(), "bob", "bob").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = MsrpUri::new("127.0.0.1", listener.local_addr().unwrap().port(), "bobret");
    let req = retrieval_invite(bob, "sip:Deferred@isc.local", &sdp(&uri, "recvonly"), list);
    let (sent, ok) = invite(bob, req).await;
    assert_eq!(ok.status_code.code(), 200);
    // Seed 003 12.4.1: Server, Allow, Contact with automata; we receive.
    assert!(ok.headers.get_raw("Server").is_some());
    assert!(ok.headers.get_raw("Allow").unwrap().contains("BYE"));
    assert!(ok.headers.get_raw("Contact").unwrap().contains("automata"));
    assert!(String::from_utf8_lossy(&ok.body).contains("a=sendonly"));
    let ack = ack_2xx(bob, &sent, &ok);
    bob.send(ack).await;
    let got = collect(&listener).await;
    let bye = recv_request(bob, rsip::Method::Bye).await;
    bob.answer(&bye, 200).await;
    got.iter()
        .inspect(|m| assert_eq!(m.content_type(), Some("message/sip")))
        .map(message_id_in)
        .collect()
}

#[tokio::test]
async fn retrieval_of_one_several_and_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut carol = Peer::new(server.local_addr(), "carol", "carol").await;
    for i in 0..5 {
        pager(&mut carol, i).await;
    }
    assert_eq!(count(dir.path()), 5);
    // bob registers: with retrieval, nothing is pushed.
    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;
    assert_eq!(
        bob.register("bob-phone", "phone").await.status_code.code(),
        200
    );
    assert!(
        bob.recv_within(0.5).await.is_none(),
        "no push for a retrieval user"
    );

    assert_eq!(retrieve(&server, Some(&["carol-p-1"])).await, ["carol-p-1"]);
    assert_eq!(count(dir.path()), 4);
    // Several (by Message-ID and by store id), in stored order.
    let id3 = SqliteDeferred::open_in(dir.path())
        .unwrap()
        .pending(BOB)
        .unwrap()
        .into_iter()
        .find(|m| m.message.message_id.as_deref() == Some("carol-p-3"))
        .unwrap()
        .uri();
    assert_eq!(
        retrieve(&server, Some(&[id3.as_str(), "carol-p-0"])).await,
        ["carol-p-0", "carol-p-3"]
    );
    assert_eq!(count(dir.path()), 2);
    // No URI list: all.
    assert_eq!(retrieve(&server, None).await, ["carol-p-2", "carol-p-4"]);
    assert_eq!(count(dir.path()), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn retrieval_checks_answer_403_404_403() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let uri = MsrpUri::new("127.0.0.1", 9, "x");
    // Policy: alice's messages are pushed, so she may not retrieve (403).
    let mut alice = Peer::new(server.local_addr(), "alice", "alice").await;
    let req = retrieval_invite(
        &mut alice,
        "sip:Deferred@isc.local",
        &sdp(&uri, "recvonly"),
        None,
    );
    let (_, r) = invite(&mut alice, req).await;
    assert_eq!(r.status_code.code(), 403);
    assert!(r.headers.get_raw("Warning").unwrap().contains("pushed"));
    // Ownership of the Request-URI (404).
    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;
    let req = retrieval_invite(
        &mut bob,
        "sip:Deferred@example.org",
        &sdp(&uri, "recvonly"),
        None,
    );
    let (_, r) = invite(&mut bob, req).await;
    assert_eq!(r.status_code.code(), 404);
    // recvonly (403).
    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;
    let req = retrieval_invite(
        &mut bob,
        "sip:Deferred@isc.local",
        &sdp(&uri, "sendrecv"),
        None,
    );
    let (_, r) = invite(&mut bob, req).await;
    assert_eq!(r.status_code.code(), 403);
    assert!(r.headers.get_raw("Warning").unwrap().contains("recvonly"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_retrieval_returns_the_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    // A chat alice ↔ bob through the CPM function: two messages stored.
    let mut s = one_device_session(&server).await;
    for (i, text) in ["first", "second"].iter().enumerate() {
        let body = format!(
            "From: <sip:alice@isc.local>\r\nTo: <sip:bob@isc.local>\r\nDateTime: 2026-11-23T15:0{i}:00Z\r\n\r\nContent-Type: text/plain\r\n\r\n{text}"
        )
        .into_bytes();
        let n = body.len() as u64;
        let send = MsrpMessage::request(
            MsrpMethod::Send,
            format!("h{i}"),
            s.to_server.clone(),
            MsrpPath::single(s.alice_uri.clone()),
        )
        .with_header(MsrpHeader::MessageId(format!("alice-h-{i}")))
        .with_header(MsrpHeader::ByteRange(ByteRange {
            start: 1,
            end: Some(n),
            total: Some(n),
        }))
        .with_body("message/cpim", body);
        s.a.send(&send).await;
        let _ = s.b.recv_request().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Checks: recvonly (403), a URI list (400).
    let uri = MsrpUri::new("127.0.0.1", 9, "x");
    let mut alice = Peer::new(server.local_addr(), "alice", "alice").await;
    let req = retrieval_invite(
        &mut alice,
        "sip:history@isc.local",
        &sdp(&uri, "sendrecv"),
        Some(&[BOB]),
    );
    assert_eq!(invite(&mut alice, req).await.1.status_code.code(), 403);
    let mut alice = Peer::new(server.local_addr(), "alice", "alice").await;
    let req = retrieval_invite(
        &mut alice,
        "sip:history@isc.local",
        &sdp(&uri, "recvonly"),
        None,
    );
    assert_eq!(invite(&mut alice, req).await.1.status_code.code(), 400);

    // The conversation with bob, then one message by its id.
    for (list, expect) in [
        (vec![BOB], vec!["first", "second"]),
        (vec!["alice-h-1"], vec!["second"]),
    ] {
        let mut alice = Peer::new(server.local_addr(), "alice", "alice").await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = MsrpUri::new("127.0.0.1", listener.local_addr().unwrap().port(), "alh");
        let req = retrieval_invite(
            &mut alice,
            "sip:history@isc.local",
            &sdp(&uri, "recvonly"),
            Some(&list),
        );
        let (sent, ok) = invite(&mut alice, req).await;
        assert_eq!(ok.status_code.code(), 200);
        assert!(String::from_utf8_lossy(&ok.body).contains("a=sendonly"));
        let ack = ack_2xx(&mut alice, &sent, &ok);
        alice.send(ack).await;
        let got = collect(&listener).await;
        let texts: Vec<String> = got
            .iter()
            .map(|m| {
                assert_eq!(m.content_type(), Some("message/cpim"));
                let b = String::from_utf8_lossy(m.body.as_deref().unwrap()).to_string();
                assert!(
                    b.contains("DateTime: 2026-11-23T15:0"),
                    "original DateTime: {b}"
                );
                b.rsplit("\r\n\r\n").next().unwrap().to_string()
            })
            .collect();
        assert_eq!(texts, expect);
    }
    server.shutdown().await;
}

/// The next NOTIFY's body, answered with 200.
async fn next_summary(peer: &Peer) -> String {
    let n = recv_request(peer, rsip::Method::Notify).await;
    assert_eq!(
        n.headers.get_raw("Event").as_deref(),
        Some("message-summary")
    );
    assert_eq!(
        n.headers.get_raw("Content-Type").as_deref(),
        Some("application/simple-message-summary")
    );
    peer.answer(&n, 200).await;
    String::from_utf8(n.body).unwrap()
}

#[tokio::test]
async fn message_summary_tells_a_retrieval_user_what_waits() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    // Only one's own account (403).
    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;
    let req = bob.request(
        "SUBSCRIBE",
        "sip:alice@isc.local",
        "sip:alice@isc.local",
        &["Event: message-summary".into(), "Expires: 600".into()],
        "",
    );
    assert_eq!(bob.send_authenticated(req).await.status_code.code(), 403);

    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;
    let req = bob.request(
        "SUBSCRIBE",
        BOB,
        BOB,
        &[
            "Event: message-summary".into(),
            "Expires: 600".into(),
            format!("Contact: <sip:bob@{}>", bob.addr()),
        ],
        "",
    );
    assert_eq!(bob.send_authenticated(req).await.status_code.code(), 200);
    let first = next_summary(&bob).await;
    assert!(first.contains("Messages-Waiting: no\r\n"), "{first}");
    assert!(first.contains("Message-Account: sip:Deferred@isc.local\r\n"));

    let mut carol = Peer::new(server.local_addr(), "carol", "carol").await;
    pager(&mut carol, 0).await;
    let one = next_summary(&bob).await;
    assert!(one.contains("Messages-Waiting: yes\r\n"), "{one}");
    assert!(one.contains("Text-Message: 1/0\r\n"), "{one}");

    assert_eq!(retrieve(&server, None).await, ["carol-p-0"]);
    let none = next_summary(&bob).await;
    assert!(none.contains("Text-Message: 0/0\r\n"), "{none}");
    server.shutdown().await;
}

#[tokio::test]
async fn our_200_is_retransmitted_until_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = MsrpUri::new("127.0.0.1", listener.local_addr().unwrap().port(), "bobrt");
    let req = retrieval_invite(
        &mut bob,
        "sip:Deferred@isc.local",
        &sdp(&uri, "recvonly"),
        None,
    );
    let (sent, ok) = invite(&mut bob, req).await;
    assert_eq!(ok.status_code.code(), 200);
    // No ACK yet: the 200 comes again (RFC 3261 §13.3.1.4).
    let again = final_for(&bob, &sent).await;
    assert_eq!(again.status_code.code(), 200);
    let ack = ack_2xx(&mut bob, &sent, &ok);
    bob.send(ack).await;
    // Nothing streams (the store is empty): BYE, and no more 200s.
    let _conn = MsrpConn::accept(&listener).await;
    let bye = recv_request(&bob, rsip::Method::Bye).await;
    bob.answer(&bye, 200).await;
    let mut more = 0;
    while let Some(m) = bob.recv_within(1.2).await {
        if matches!(m, rsip::SipMessage::Response(ref r) if r.status_code.code() == 200) {
            more += 1;
        }
    }
    assert_eq!(more, 0, "retransmissions stop at the ACK");
    server.shutdown().await;
}
