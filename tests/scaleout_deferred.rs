//! Scale-out (issue #10 part 2) over real sockets: two `isc server`
//! instances share one PostgreSQL store (started by the test on loopback,
//! data in a temp dir). Messages to offline bob stored via instance 1 and
//! via instance 2 are pushed, in order, by instance 2 when bob registers
//! there; each leaves the shared store only after its MSRP 200, and
//! instance 1 — which bob never registers at until the end — neither pushes
//! nor, when he then registers there too, pushes again.
#![cfg(all(unix, feature = "postgres"))]

mod common;
mod cpm_common;
mod headless_support;

use std::path::Path;
use std::time::Duration;

use common::Peer;
use cpm_common::{Device, MsrpConn, answer, msrp_sdp, recv_request};
use headless_support::Session;
use isc::proto::msrp::MsrpMethod;
use isc::server::pg_store::cluster::{ClusterError, LocalCluster};
use isc::server::runner::{Direction, Server, ServerHandle, ServerOptions};

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
