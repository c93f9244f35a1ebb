//! The focus's MSRP switch over real sockets (seed 003 7.2.2.6, 7.1.3.2):
//! a message reaches every other participant and never its sender; a
//! private message (CPIM To = one participant) reaches that participant
//! only; the session's messages are kept in history.

mod common;
mod cpm_common;
mod focus_common;

use focus_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_reaches_all_others_and_private_only_its_addressee() {
    let server = start_focus(|_| {}).await;
    let mut c = adhoc_conference(&server, &["bob", "carol"]).await;
    let id = c.identity.clone();

    // alice → everybody.
    let m = cpim_send(
        &c.a_focus_path,
        &c.alice_uri,
        "m1",
        "sip:alice@isc.local",
        &id,
        "hello all",
    );
    c.a.send(&m).await;
    for mem in &mut c.members {
        let got = mem.conn.recv_request().await;
        assert!(
            body_text(&got).contains("hello all"),
            "{} gets it",
            mem.dev.sip.user
        );
        assert_eq!(
            got.to_path().unwrap().0[0],
            mem.dev.uri,
            "To-Path rewritten per leg"
        );
    }
    // the sender gets only its 200, never its own message back
    let r = c.a.recv().await;
    assert!(!r.is_request());
    assert!(
        c.a.recv_within(0.3).await.is_none(),
        "no echo to the sender"
    );

    // bob → carol, privately (seed 003 7.1.3.2.2).
    let (bob, rest) = c.members.split_first_mut().unwrap();
    let carol = &mut rest[0];
    let p = cpim_send(
        &bob.focus_path,
        &bob.dev.uri,
        "p1",
        "sip:bob@isc.local",
        "sip:carol@isc.local",
        "just for you",
    );
    bob.conn.send(&p).await;
    let got = carol.conn.recv_request().await;
    assert!(body_text(&got).contains("just for you"));
    assert!(
        c.a.recv_within(0.5).await.is_none(),
        "alice's stream never carries it"
    );

    // carol → all: bob and alice get it.
    let m = cpim_send(
        &carol.focus_path,
        &carol.dev.uri,
        "m2",
        "sip:carol@isc.local",
        &id,
        "back to all",
    );
    carol.conn.send(&m).await;
    assert!(body_text(&bob.conn.recv_request().await).contains("back to all"));
    assert!(body_text(&c.a.recv_request().await).contains("back to all"));
    server.shutdown().await;
}
