//! Clients against the bundled server over real loopback sockets:
//! registration with digest and GRUU, the reg-event device list, pager
//! MESSAGEs with proxy authentication, isComposing, un-registration.

use std::time::Duration;

use isc::client::runner::{ClientHandle, Direction, spawn_client};
use isc::client::{ClientEvent, Command, Device, UaConfig};
use isc::proto::sip::transaction::Transport;
use isc::server::runner::{Server, ServerOptions};

const WAIT: Duration = Duration::from_secs(10);

async fn client(
    server: std::net::SocketAddr,
    user: &str,
    device: &str,
    transport: Transport,
) -> ClientHandle {
    let instance = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let mut cfg = UaConfig::new(
        user,
        "isc.local",
        user,
        device,
        &instance,
        server,
        "127.0.0.1:0".parse().unwrap(),
    );
    cfg.transport = transport;
    spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("client binds")
}

async fn registered(c: &mut ClientHandle) -> Option<String> {
    match c
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::Registered { .. } | ClientEvent::RegistrationFailed { .. }
            )
        })
        .await
    {
        Some(ClientEvent::Registered { gruu, .. }) => gruu,
        other => panic!("not registered: {other:?}"),
    }
}

async fn devices_until(c: &mut ClientHandle, pred: impl Fn(&[Device]) -> bool) -> Vec<Device> {
    match c
        .wait_for(
            WAIT,
            |e| matches!(e, ClientEvent::DevicesChanged { devices } if pred(devices)),
        )
        .await
    {
        Some(ClientEvent::DevicesChanged { devices }) => devices,
        other => panic!("device list never matched: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_messages_composing_over_the_bundled_server() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();

    let mut tv = client(addr, "alice", "tv", Transport::Udp).await;
    let tv_gruu = registered(&mut tv).await.expect("a pub-gruu for the tv");
    assert!(tv_gruu.contains("gr="), "{tv_gruu}");
    let mut phone = client(addr, "alice", "phone", Transport::Tcp).await;
    let phone_gruu = registered(&mut phone)
        .await
        .expect("a pub-gruu for the phone");
    assert_ne!(tv_gruu, phone_gruu);
    let mut bob = client(addr, "bob", "laptop", Transport::Udp).await;
    let bob_gruu = registered(&mut bob).await.expect("bob's gruu");

    // the tv learns about the phone through the reg event package
    let devices = devices_until(&mut tv, |d| d.len() == 2).await;
    let me = devices.iter().find(|d| d.is_self).expect("own entry");
    assert_eq!(me.gruu.as_deref(), Some(tv_gruu.as_str()));
    let other = devices.iter().find(|d| !d.is_self).expect("the phone");
    assert_eq!(other.name.as_deref(), Some("phone"));
    assert_eq!(other.gruu.as_deref(), Some(phone_gruu.as_str()));

    // bob → alice's AOR: both of alice's devices get it
    bob.send(Command::SendMessage {
        to: "sip:alice@isc.local".into(),
        text: "hello alice".into(),
        id: Some("b1".into()),
    })
    .await;
    let got = bob
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::MessageDelivered { .. } | ClientEvent::MessageFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(got, Some(ClientEvent::MessageDelivered { ref id, .. }) if id == "b1"),
        "{got:?}"
    );
    for c in [&mut tv, &mut phone] {
        let got = c
            .wait_for(WAIT, |e| matches!(e, ClientEvent::MessageReceived { .. }))
            .await;
        let Some(ClientEvent::MessageReceived {
            from,
            body,
            asserted_identity,
            ..
        }) = got
        else {
            panic!("{got:?}")
        };
        assert_eq!(from, "sip:bob@isc.local");
        assert_eq!(body, b"hello alice");
        // the server asserts the authenticated originator
        if let Some(pai) = asserted_identity {
            assert!(pai.contains("bob@isc.local"), "{pai}");
        }
    }

    // the phone types to bob, then sends to bob's GRUU
    phone
        .send(Command::Typing {
            to: "sip:bob@isc.local".into(),
        })
        .await;
    let got = bob
        .wait_for(WAIT, |e| matches!(e, ClientEvent::ComposingChanged { .. }))
        .await;
    assert_eq!(
        got,
        Some(ClientEvent::ComposingChanged {
            from: "sip:alice@isc.local".into(),
            active: true
        })
    );
    phone
        .send(Command::SendMessage {
            to: bob_gruu.clone(),
            text: "typed".into(),
            id: None,
        })
        .await;
    let got = bob
        .wait_for(WAIT, |e| matches!(e, ClientEvent::ComposingChanged { .. }))
        .await;
    assert_eq!(
        got,
        Some(ClientEvent::ComposingChanged {
            from: "sip:alice@isc.local".into(),
            active: false
        })
    );
    let got = bob
        .wait_for(WAIT, |e| matches!(e, ClientEvent::MessageReceived { .. }))
        .await;
    assert!(
        matches!(got, Some(ClientEvent::MessageReceived { ref body, .. }) if body == b"typed"),
        "{got:?}"
    );

    // a message to nobody fails with the server's status
    let mut wire = tv.wire();
    tv.send(Command::SendMessage {
        to: "sip:nobody@isc.local".into(),
        text: "?".into(),
        id: Some("n".into()),
    })
    .await;
    let got = tv
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::MessageDelivered { .. } | ClientEvent::MessageFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(
            got,
            Some(ClientEvent::MessageFailed {
                status: Some(400..=699),
                ..
            })
        ),
        "{got:?}"
    );
    // the wire tap saw the MESSAGE go out
    let mut saw = false;
    let mut flow = isc::flow::Flow::new();
    let start = std::time::Instant::now() - Duration::from_secs(60);
    while let Ok(r) = wire.try_recv() {
        if r.direction == Direction::Sent && r.bytes.starts_with(b"MESSAGE sip:nobody@isc.local") {
            saw = true;
        }
        r.record_in(&mut flow, start, "alice/tv", "server");
    }
    assert!(saw);
    let ladder = isc::flow::render_ladder(&flow);
    assert!(
        ladder.contains("alice/tv") && ladder.contains("MESSAGE"),
        "{ladder}"
    );

    // the phone leaves: its un-REGISTER shows up at the tv
    phone.shutdown().await;
    let devices = devices_until(&mut tv, |d| d.len() == 1).await;
    assert!(devices[0].is_self);

    tv.shutdown().await;
    bob.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_reported() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let mut cfg = UaConfig::new(
        "alice",
        "isc.local",
        "not-alice",
        "tv",
        "urn:uuid:00000000-0000-4000-8000-000000000001",
        server.local_addr(),
        "127.0.0.1:0".parse().unwrap(),
    );
    cfg.watch_registrations = false;
    let mut c = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let got = c
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::RegistrationFailed { .. })
        })
        .await;
    assert!(
        matches!(
            got,
            Some(ClientEvent::RegistrationFailed { retry_in: None, .. })
        ),
        "{got:?}"
    );
    c.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_expiries_423_and_subscription_refresh() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let mut cfg = UaConfig::new(
        "carol",
        "isc.local",
        "carol",
        "tablet",
        "urn:uuid:00000000-0000-4000-8000-0000000000c1",
        server.local_addr(),
        "127.0.0.1:0".parse().unwrap(),
    );
    // below the registrar's Min-Expires: 423, then again with its minimum
    cfg.register_expires = 10;
    cfg.subscribe_expires = 4;
    let mut c = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut wire = c.wire();
    let got = c
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await;
    assert!(
        matches!(got, Some(ClientEvent::Registered { expires, .. }) if expires >= 60),
        "{got:?}"
    );
    devices_until(&mut c, |d| d.len() == 1).await;
    // the subscription (4 s) is refreshed inside its dialog after 2 s
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (mut subscribes, mut refreshes, mut oks) = (0, 0, 0);
    while let Ok(r) = wire.try_recv() {
        let text = String::from_utf8_lossy(&r.bytes).to_string();
        if r.direction == Direction::Sent && text.starts_with("SUBSCRIBE ") {
            subscribes += 1;
            let to = text
                .lines()
                .find(|l| l.starts_with("To:"))
                .unwrap_or_default()
                .to_owned();
            if to.contains("tag=") {
                refreshes += 1;
            }
        }
        if r.direction == Direction::Received
            && text.starts_with("SIP/2.0 200")
            && text.contains("SUBSCRIBE")
        {
            oks += 1;
        }
    }
    assert!(
        refreshes >= 1,
        "subscribes {subscribes}, refreshes {refreshes}"
    );
    assert!(oks >= 1);
    assert!(
        c.next_event(Duration::from_millis(100))
            .await
            .is_none_or(|e| !matches!(e, ClientEvent::WatchEnded { .. }))
    );
    c.shutdown().await;
    server.shutdown().await;
}
