//! Clients of the bundled server for end-to-end tests over loopback: a
//! client that is registered before the test goes on, and waiting for one
//! chat event. Included with `mod live_client;` by the tests that use it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use isc::client::chat::ChatEvent;
use isc::client::chats::ChatCommand;
use isc::client::runner::{ClientHandle, spawn_client};
use isc::client::{ClientEvent, Command, UaConfig};

/// `user`'s device `device` (password = user name, domain `isc.local`),
/// configured further by `tune`, registered within `wait`.
pub async fn registered(
    server: SocketAddr,
    user: &str,
    device: &str,
    wait: Duration,
    tune: impl FnOnce(&mut UaConfig),
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
    tune(&mut cfg);
    let mut c = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("client binds");
    let ev = c
        .wait_for(wait, |e| {
            matches!(
                e,
                ClientEvent::Registered { .. } | ClientEvent::RegistrationFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(ev, Some(ClientEvent::Registered { .. })),
        "{user}/{device}: {ev:?}"
    );
    c
}

/// The first chat event matching `pred` within `wait`; the events skipped
/// on the way are named if none comes.
pub async fn chat_event(
    c: &mut ClientHandle,
    wait: Duration,
    what: &str,
    pred: impl Fn(&ChatEvent) -> bool,
) -> ChatEvent {
    let mut seen = Vec::new();
    let found = c
        .wait_for(wait, |e| {
            let hit = matches!(e, ClientEvent::Chat(ce) if pred(ce));
            if !hit {
                seen.push(format!("{e:?}"));
            }
            hit
        })
        .await;
    match found {
        Some(ClientEvent::Chat(e)) => e,
        other => panic!("no {what}: {other:?}; skipped {seen:?}"),
    }
}

/// A chat command, which the client must still take.
pub async fn chat(c: &ClientHandle, cmd: ChatCommand) {
    assert!(c.send(Command::Chat(cmd)).await);
}
