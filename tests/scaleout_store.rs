//! Scale-out (issue #10 part 2) over real sockets: two `isc server`
//! instances share one PostgreSQL store (started by the test on loopback,
//! data in a temp dir).
//! - Deferred: messages to offline bob stored via instance 1 and via
//!   instance 2 are pushed, in order, by instance 2 when bob registers
//!   there; each leaves the shared store only after its MSRP 200, and
//!   instance 1 — which bob never registers at until the end — neither
//!   pushes nor, when he then registers there too, pushes again.
//! - History: a chat relayed by instance 1 is retrieved from
//!   `history@isc.local` through instance 2.
#![cfg(all(unix, feature = "postgres"))]

mod common;
mod cpm_common;
mod headless_support;

use std::path::Path;
use std::time::Duration;

use common::Peer;
use cpm_common::{
    Device, MsrpConn, ack_2xx, answer, final_for, msrp_sdp, one_device_session, recv_request,
    send_invite,
};
use headless_support::Session;
use isc::proto::bodies::resource_lists::{Entry, ResourceLists};
use isc::proto::msrp::{ByteRange, MsrpHeader, MsrpMessage, MsrpMethod, MsrpPath, MsrpUri};
use isc::server::pg_store::cluster::{ClusterError, LocalCluster};
use isc::server::runner::{Direction, Server, ServerHandle, ServerOptions};
use tokio::net::TcpListener;

const BOB: &str = "sip:bob@isc.local";
const DB: &str = "scaleout";

/// A PostgreSQL cluster, or `None` with the reason printed when the
/// binaries are absent (the only reason to skip).
fn cluster() -> Option<LocalCluster> {
    match LocalCluster::start() {
        Ok(c) => Some(c),
        Err(ClusterError::NotInstalled(why)) => {
            eprintln!("skipped: {why}");
            None
        }
        Err(e) => panic!("PostgreSQL cluster: {e}"),
    }
}

/// One instance on the shared store; its own data dir, so nothing is
/// shared through SQLite.
async fn instance(url: &str, data: &Path) -> ServerHandle {
    let mut opts = ServerOptions::loopback_demo();
    opts.history_in_memory = false;
    opts.config.data_dir = Some(data.to_path_buf());
    opts.config.store.url = Some(url.to_string());
    opts.config.users = ["alice", "bob", "carol"]
        .iter()
        .map(|n| isc::config::UserConfig::new(n, n))
        .collect();
    Server::start(opts).await.expect("instance starts")
}

/// Waits until the shared store holds `n` messages for bob.
async fn shared_store_reaches(pg: &LocalCluster, n: i64) {
    let count = || {
        pg.query_i64(
            DB,
            "SELECT COUNT(*) FROM deferred WHERE recipient = 'sip:bob@isc.local'",
        )
        .unwrap()
    };
    for _ in 0..100 {
        if count() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(), n, "messages for bob in the shared store");
}

#[tokio::test]
async fn deferred_stored_via_instance_1_are_delivered_by_instance_2() {
    let Some(pg) = cluster() else { return };
    let url = pg.create_database(DB).unwrap();
    let (data1, data2, state) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let one = instance(&url, data1.path()).await;
    let two = instance(&url, data2.path()).await;
    let mut wire_one = one.wire();

    // Carol's isc client on instance 1: the MESSAGE is taken for later (202).
    let mut carol = Session::start(one.local_addr(), "carol", "phone", state.path()).await;
    carol.expect("registered").await;
    carol
        .say(r#"{"cmd":"send","to":"sip:bob@isc.local","text":"hello from one","id":"c1"}"#)
        .await;
    let d = carol.expect("delivered").await;
    assert_eq!(d["id"], "c1");
    assert_eq!(d["status"], 202, "carol sees it accepted for later: {d}");
    shared_store_reaches(&pg, 1).await;

    // Alice via instance 2, to the same queue.
    let mut alice = Peer::new(two.local_addr(), "alice", "alice").await;
    let req = alice.request(
        "MESSAGE",
        BOB,
        BOB,
        &[
            "Message-ID: alice-2".to_string(),
            "Content-Type: text/plain".into(),
        ],
        "hello from two",
    );
    let resp = alice.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 202);
    shared_store_reaches(&pg, 2).await;

    // Bob registers at instance 2 only and accepts the push.
    let bob = Device::register(two.local_addr(), "bob", "bob-phone", "phone").await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    answer(
        &bob.sip,
        &inv,
        200,
        "bobpush",
        Some(&msrp_sdp(&bob.uri, "passive", "")),
    )
    .await;
    let _ack = recv_request(&bob.sip, rsip::Method::Ack).await;
    let mut conn = MsrpConn::accept(&bob.listener).await;
    for (i, (from, text)) in [
        ("sip:carol@isc.local", "hello from one"),
        ("sip:alice@isc.local", "hello from two"),
    ]
    .iter()
    .enumerate()
    {
        let send = conn.recv().await;
        assert_eq!(send.method(), Some(&MsrpMethod::Send));
        assert_eq!(send.content_type(), Some("message/sip"));
        let body = String::from_utf8(send.body.clone().unwrap()).unwrap();
        assert!(
            body.starts_with("MESSAGE sip:bob@isc.local SIP/2.0\r\n"),
            "{body}"
        );
        assert!(body.contains(&format!("From: <{from}>")), "{body}");
        assert!(body.ends_with(text), "{body}");
        // Still in the shared store until bob's MSRP 200.
        shared_store_reaches(&pg, 2 - i as i64).await;
        conn.send(&send.ok_response().unwrap()).await;
        shared_store_reaches(&pg, 1 - i as i64).await;
    }
    let bye = recv_request(&bob.sip, rsip::Method::Bye).await;
    bob.sip.answer(&bye, 200).await;
    assert_eq!(
        pg.query_i64(DB, "SELECT COUNT(*) FROM deferred_delivered")
            .unwrap(),
        2,
        "delivered keys remembered in the shared store"
    );

    // Bob's tablet now registers at instance 1: nothing is pushed twice.
    let tablet = Device::register(one.local_addr(), "bob", "bob-tablet", "tablet").await;
    assert!(
        tablet.sip.recv_within(1.0).await.is_none(),
        "instance 1 pushes nothing already delivered"
    );
    // Instance 1 never sent bob an INVITE.
    while let Ok(ev) = wire_one.try_recv() {
        let text = String::from_utf8_lossy(&ev.bytes);
        assert!(
            !(ev.direction == Direction::Out && text.starts_with("INVITE sip:bob")),
            "instance 1 pushed: {text}"
        );
    }
    carol.say("quit").await;
    let _ = carol.task.await;
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_store_stops_the_instance_from_starting() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let mut opts = ServerOptions::loopback_demo();
    opts.config.data_dir = Some(data.path().to_path_buf());
    opts.config.store.url = Some(format!("postgres://isc@127.0.0.1:{port}/isc"));
    let e = match Server::start(opts).await {
        Ok(_) => panic!("started without its store"),
        Err(e) => e.to_string(),
    };
    assert!(e.starts_with("server.store.url: "), "{e}");
    assert!(e.contains("cannot connect to the store"), "{e}");
    assert!(e.contains("refused"), "the cause is named: {e}");
}

/// Alice's INVITE to `history@` (recvonly) listing what she wants.
fn history_invite(peer: &mut Peer, uri: &MsrpUri, list: &[&str]) -> rsip::Request {
    let sdp = format!(
        "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {} TCP/MSRP *\r\na=accept-types:message/cpim\r\na=accept-wrapped-types:*\r\na=path:{uri}\r\na=setup:actpass\r\na=recvonly\r\n",
        uri.port.unwrap()
    );
    let xml = ResourceLists::of(list.iter().map(|i| Entry::new(*i)).collect()).to_xml();
    let body = format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b1\r\nContent-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\n\r\n{xml}\r\n--b1--\r\n"
    );
    let contact = format!("Contact: <sip:alice@{};transport=udp>", peer.addr());
    peer.request(
        "INVITE",
        "sip:history@isc.local",
        "sip:history@isc.local",
        &[contact, "Content-Type: multipart/mixed;boundary=b1".into()],
        &body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_relayed_by_instance_1_is_retrieved_through_instance_2() {
    let Some(pg) = cluster() else { return };
    let url = pg.create_database("history").unwrap();
    let (data1, data2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = instance(&url, data1.path()).await;
    let two = instance(&url, data2.path()).await;

    // Alice chats with bob through instance 1's CPM function.
    let mut s = one_device_session(&one).await;
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
        let relayed = s.b.recv_request().await;
        s.b.send(&relayed.ok_response().unwrap()).await;
    }
    let mut stored = 0;
    for _ in 0..100 {
        stored = pg
            .query_i64("history", "SELECT COUNT(*) FROM history")
            .unwrap();
        if stored == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored, 2, "instance 1 wrote the chat to the shared history");

    // Alice asks instance 2 for the conversation and for one message by id.
    for (list, expect) in [
        (vec![BOB], vec!["first", "second"]),
        (vec!["alice-h-1"], vec!["second"]),
    ] {
        let mut alice = Peer::new(two.local_addr(), "alice", "alice").await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = MsrpUri::new("127.0.0.1", listener.local_addr().unwrap().port(), "alh");
        let req = history_invite(&mut alice, &uri, &list);
        let sent = send_invite(&mut alice, req).await;
        let ok = final_for(&alice, &sent).await;
        assert_eq!(ok.status_code.code(), 200, "instance 2 serves history@");
        let ack = ack_2xx(&mut alice, &sent, &ok);
        alice.send(ack).await;
        let mut conn = MsrpConn::accept(&listener).await;
        let mut texts = Vec::new();
        while let Some(m) = conn.recv_within(3.0).await {
            if m.is_request() {
                conn.send(&m.ok_response().unwrap()).await;
                assert_eq!(m.content_type(), Some("message/cpim"));
                let b = String::from_utf8_lossy(m.body.as_deref().unwrap()).to_string();
                assert!(b.contains("From: <sip:alice@isc.local>"), "{b}");
                texts.push(b.rsplit("\r\n\r\n").next().unwrap().to_string());
            }
        }
        assert_eq!(texts, expect, "list {list:?}");
    }
    drop(s);
    one.shutdown().await;
    two.shutdown().await;
}
