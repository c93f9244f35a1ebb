//! Retrieval of deferred messages by the real client against the real
//! server (seed 003 12.1.1, 12.4.1, 12.4.2.6; RFC 3842): bob's
//! offline-delivery is off, so his client is told how many messages wait
//! (message-summary NOTIFY) and fetches one, several, then all of them
//! from `Deferred@isc.local`; each refusal (403 policy, 404 not our store,
//! 488 from a store that cannot use the offer) reaches the user as a
//! plain sentence.

mod deferred_client_support;

use std::time::{Duration, Instant, SystemTime};

use deferred_client_support::*;
use isc::client::deferred::{DeferredCommand, DeferredEvent, DeferredMode};
use isc::client::deferred_headless::event_json;
use isc::client::runner::{ClientHandle, Direction, WireRecord};
use isc::client::{ClientEvent, Command};
use isc::proto::bodies::multipart::Multipart;
use isc::proto::bodies::resource_lists::ResourceLists;
use isc::proto::sip::headers::HeadersExt;
use isc::proto::sip::message::parse_message;
use isc::tui::app::AppConfig;
use isc::tui::{Action, App};

async fn waiting(bob: &mut ClientHandle, n: u32) {
    let ev = bob
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Deferred(DeferredEvent::Waiting { count, .. }) if *count == n))
        .await;
    assert!(ev.is_some(), "told that {n} messages wait");
}

async fn retrieve(bob: &mut ClientHandle, ids: &[&str]) -> Vec<DeferredEvent> {
    bob.send(Command::Deferred(DeferredCommand::Retrieve {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        service: None,
    }))
    .await;
    deferred_until_ended(bob).await
}

/// The INVITEs bob's client sent to the store, from its wire.
fn sent_invites(wire: &mut tokio::sync::broadcast::Receiver<WireRecord>) -> Vec<rsip::Request> {
    let mut out = Vec::new();
    while let Ok(r) = wire.try_recv() {
        if let (Direction::Sent, Ok(rsip::SipMessage::Request(req))) =
            (r.direction, parse_message(&r.bytes))
            && req.method == rsip::Method::Invite
            && req.headers.get_raw("Proxy-Authorization").is_some()
        {
            out.push(req);
        }
    }
    out
}

fn listed(req: &rsip::Request) -> Option<Vec<String>> {
    let ct = req.headers.get_raw("Content-Type").unwrap();
    if ct.starts_with("application/sdp") {
        return None;
    }
    let mp = Multipart::parse_with_content_type(&ct, &req.body).unwrap();
    let sdp =
        String::from_utf8_lossy(&mp.part_of_type("application/sdp").unwrap().body).to_string();
    assert!(sdp.contains("a=recvonly"), "{sdp}");
    let list = ResourceLists::parse(
        &mp.part_of_type("application/resource-lists+xml")
            .unwrap()
            .body,
    )
    .unwrap();
    Some(list.entries().into_iter().map(|e| e.uri.clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_several_and_all_with_the_waiting_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let addr = server.local_addr();
    let mut carol = client(addr, "carol", "phone").await;
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(carol_pages(&mut carol, &format!("pager {i}")).await);
    }
    sent.extend(carol_chats(&mut carol, &["chat 0", "chat 1"]).await);
    store_reaches(dir.path(), 6).await;

    let mut cfg = config(addr, "bob", "phone");
    cfg.watch_deferred = true;
    let mut bob = client_with(cfg).await;
    let mut wire = bob.wire();
    waiting(&mut bob, 6).await;
    assert!(
        quiet_for(&mut bob, 0.5).await.is_empty(),
        "nothing pushed to a retrieval user"
    );

    // One: pager 1 by its Call-ID.
    let evs = retrieve(&mut bob, &[&sent[1].call_id]).await;
    assert!(
        matches!(
            evs.first(),
            Some(DeferredEvent::Started {
                mode: DeferredMode::Retrieval,
                ..
            })
        ),
        "{evs:?}"
    );
    let got = messages(&evs);
    assert_eq!(got.len(), 1, "{evs:?}");
    assert_eq!(
        (got[0].text(), got[0].call_id.as_str()),
        ("pager 1".into(), sent[1].call_id.as_str())
    );
    store_reaches(dir.path(), 5).await;
    waiting(&mut bob, 5).await;
    let inv = sent_invites(&mut wire);
    let last = inv.last().expect("the retrieval INVITE");
    assert_eq!(last.uri.to_string(), "sip:Deferred@isc.local");
    assert!(
        last.headers
            .get_raw("Accept-Contact")
            .unwrap()
            .contains("+g.oma.sip-im")
    );
    assert_eq!(listed(last), Some(vec![sent[1].call_id.clone()]));

    // Several: chat 1 by its Message-ID and pager 3 by its Call-ID, in stored order.
    let mid = sent[5].message_id.clone().unwrap();
    let evs = retrieve(&mut bob, &[&mid, &sent[3].call_id]).await;
    let got: Vec<String> = messages(&evs).iter().map(|m| m.text()).collect();
    assert_eq!(got, ["pager 3", "chat 1"]);
    assert_eq!(messages(&evs)[1].message_id.as_deref(), Some(mid.as_str()));
    store_reaches(dir.path(), 3).await;
    waiting(&mut bob, 3).await;
    assert_eq!(
        listed(sent_invites(&mut wire).last().unwrap()),
        Some(vec![mid.clone(), sent[3].call_id.clone()])
    );

    // All: no URI list (seed 003 12.1.1 step 2).
    let evs = retrieve(&mut bob, &[]).await;
    let got: Vec<String> = messages(&evs).iter().map(|m| m.text()).collect();
    assert_eq!(got, ["pager 0", "pager 2", "chat 0"]);
    assert!(matches!(
        evs.last(),
        Some(DeferredEvent::Ended { received: 3, .. })
    ));
    let all = sent_invites(&mut wire);
    let last = all.last().unwrap();
    assert_eq!(listed(last), None, "no list: all");
    assert!(String::from_utf8_lossy(&last.body).contains("a=recvonly"));
    store_reaches(dir.path(), 0).await;
    waiting(&mut bob, 0).await;

    // What the user sees of the count: the headless line and the TUI notice.
    let line = event_json(&DeferredEvent::Waiting {
        count: 6,
        account: None,
    });
    assert_eq!(line["event"], "deferred_waiting");
    assert_eq!(line["text"], "6 messages waiting");
    let mut app = App::new(
        AppConfig::new("bob", "isc.local", "phone"),
        Instant::now(),
        SystemTime::now(),
    );
    app.update(Action::Client(ClientEvent::Deferred(
        DeferredEvent::Waiting {
            count: 6,
            account: None,
        },
    )));
    assert_eq!(
        app.notice.as_ref().map(|n| n.0.as_str()),
        Some("6 messages waiting (:deferred to fetch)")
    );

    bob.shutdown().await;
    carol.shutdown().await;
    server.shutdown().await;
}

async fn failure(c: &mut ClientHandle, service: Option<&str>) -> DeferredEvent {
    c.send(Command::Deferred(DeferredCommand::Retrieve {
        ids: vec![],
        service: service.map(str::to_string),
    }))
    .await;
    match c
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::Deferred(DeferredEvent::RetrievalFailed { .. })
            )
        })
        .await
    {
        Some(ClientEvent::Deferred(d)) => d,
        other => panic!("a refusal: {other:?}"),
    }
}

fn user_sees(ev: &DeferredEvent) -> (String, String) {
    let line = event_json(ev);
    assert_eq!(line["event"], "deferred_failed");
    let mut app = App::new(
        AppConfig::new("x", "isc.local", "phone"),
        Instant::now(),
        SystemTime::now(),
    );
    app.update(Action::Client(ClientEvent::Deferred(ev.clone())));
    (
        line["text"].as_str().unwrap().to_string(),
        app.notice.clone().map(|n| n.0).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_403_and_404_from_the_store_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let addr = server.local_addr();
    // Policy (seed 003 12.4.1 step 3): alice's messages are pushed.
    let mut alice = client(addr, "alice", "tv").await;
    let ev = failure(&mut alice, None).await;
    assert!(
        matches!(
            &ev,
            DeferredEvent::RetrievalFailed {
                status: Some(403),
                ..
            }
        ),
        "{ev:?}"
    );
    let (line, notice) = user_sees(&ev);
    assert_eq!(
        line,
        "deferred messages: retrieval refused (403 Forbidden): deferred messages are pushed to this user (offline-delivery active)"
    );
    assert_eq!(notice, line);
    // Ownership of the Request-URI (step 4).
    let mut bob = client(addr, "bob", "phone").await;
    let ev = failure(&mut bob, Some("sip:Deferred@example.org")).await;
    assert!(
        matches!(
            &ev,
            DeferredEvent::RetrievalFailed {
                status: Some(404),
                ..
            }
        ),
        "{ev:?}"
    );
    let (line, _) = user_sees(&ev);
    assert_eq!(
        line,
        "deferred messages: no such message store (404 Not Found): the Request-URI is not owned by this message store"
    );
    bob.shutdown().await;
    alice.shutdown().await;
    server.shutdown().await;
}

/// A store that cannot use our offer answers 488 (RFC 3264 §6 / seed 003
/// 12.4.1 answer rules): here a scripted store on a UDP socket, since ours
/// takes every offer this client makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_488_from_the_store_is_shown() {
    let store = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut bob = isc::client::runner::spawn_client(
        config(store.local_addr().unwrap(), "bob", "phone"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    bob.send(Command::Deferred(DeferredCommand::Retrieve {
        ids: vec![],
        service: None,
    }))
    .await;
    let mut buf = vec![0u8; 65536];
    let invite = loop {
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), store.recv_from(&mut buf))
            .await
            .expect("the INVITE")
            .unwrap();
        if let Ok(rsip::SipMessage::Request(r)) = parse_message(&buf[..n])
            && r.method == rsip::Method::Invite
        {
            break (r, from);
        }
    };
    let (req, from) = invite;
    let resp = isc::proto::sip::build::response_with(
        &req,
        488,
        Some("s1"),
        Some("Not Acceptable Here"),
        vec![isc::proto::sip::headers::make_header(
            "Warning",
            "399 store \"no usable MSRP offer\"",
        )],
    );
    store
        .send_to(&isc::proto::sip::message::to_bytes(&resp.into()), from)
        .await
        .unwrap();
    let ev = match bob
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::Deferred(DeferredEvent::RetrievalFailed { .. })
            )
        })
        .await
    {
        Some(ClientEvent::Deferred(d)) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        ev,
        DeferredEvent::RetrievalFailed {
            status: Some(488),
            reason: "Not Acceptable Here".into(),
            warning: Some("no usable MSRP offer".into()),
        }
    );
    let (line, notice) = user_sees(&ev);
    assert_eq!(
        line,
        "deferred messages: the store cannot use our media offer (488): no usable MSRP offer"
    );
    assert_eq!(notice, line);
    bob.abort();
}
