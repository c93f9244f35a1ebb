//! The TUI state driven by a real client against the bundled server, no
//! terminal: registration and devices reach the App, the flow view fills
//! from the wire tap, and a message typed in the App reaches bob.

use std::time::{Duration, Instant, SystemTime};

use isc::client::runner::{ClientHandle, spawn_client};
use isc::client::{ClientEvent, UaConfig};
use isc::server::runner::{Server, ServerOptions};
use isc::tui::app::{AppConfig, Registration};
use isc::tui::event_loop::dispatch;
use isc::tui::{Action, App, ClientLink, ClientPort};

const WAIT: Duration = Duration::from_secs(10);

async fn client(server: std::net::SocketAddr, user: &str, device: &str) -> ClientHandle {
    let instance = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let cfg = UaConfig::new(
        user,
        "isc.local",
        user,
        device,
        &instance,
        server,
        "127.0.0.1:0".parse().unwrap(),
    );
    spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("client binds")
}

/// Feeds the App from the link until `done` holds.
async fn pump_until(app: &mut App, link: &mut ClientLink, done: impl Fn(&App) -> bool) {
    let until = Instant::now() + WAIT;
    while !done(app) {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, link.next_event()).await {
            Ok(Some(a)) => {
                for c in app.update(a) {
                    dispatch(app, link, c);
                }
            }
            other => panic!("gave up waiting: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_over_a_real_client() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut bob = client(addr, "bob", "laptop").await;
    let tv = client(addr, "alice", "tv").await;
    let mut link = ClientLink::new(tv, "alice/tv", addr);
    let mut app = App::new(
        AppConfig::new("alice", "isc.local", "tv"),
        Instant::now(),
        SystemTime::now(),
    );

    pump_until(&mut app, &mut link, |a| {
        matches!(a.registration, Registration::Registered { .. })
    })
    .await;
    assert!(
        app.flow
            .flow
            .events()
            .iter()
            .any(|e| e.label == "REGISTER" && e.from == "alice/tv" && e.to == "server")
    );
    pump_until(&mut app, &mut link, |a| {
        a.devices.iter().any(|d| d.is_self && d.gruu.is_some())
    })
    .await;
    bob.wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
        .expect("bob registers");

    app.update(Action::RunCommand(":chat bob".into()));
    for ch in "hello bob".chars() {
        for c in app.update(Action::InsertChar(ch)) {
            dispatch(&mut app, &mut link, c);
        }
    }
    for c in app.update(Action::Send) {
        dispatch(&mut app, &mut link, c);
    }
    pump_until(&mut app, &mut link, |a| {
        a.current_conv().is_some_and(|c| {
            c.entries.iter().any(|e| {
                matches!(
                    &e.kind,
                    isc::tui::app::EntryKind::Message {
                        delivery: Some(isc::tui::app::Delivery::Delivered),
                        ..
                    }
                )
            })
        })
    })
    .await;
    let got = bob
        .wait_for(
            WAIT,
            |e| matches!(e, ClientEvent::MessageReceived { body, .. } if body == b"hello bob"),
        )
        .await;
    assert!(got.is_some(), "bob got the message");
    assert!(
        app.flow
            .flow
            .events()
            .iter()
            .any(|e| e.label == "MESSAGE" && e.from == "alice/tv")
    );
}
