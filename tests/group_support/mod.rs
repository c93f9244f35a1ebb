//! Group-chat clients for the tests: a registered client per user, and
//! waiting for / sending chat events.
#![allow(dead_code)]

use std::time::Duration;

use isc::client::chat::{ChatEvent, ChatId};
use isc::client::chats::ChatCommand;
use isc::client::group::RosterEntry;
use isc::client::runner::{ClientHandle, spawn_client};
use isc::client::{ClientEvent, Command, UaConfig};

pub const WAIT: Duration = Duration::from_secs(20);

pub async fn client(server: std::net::SocketAddr, user: &str) -> ClientHandle {
    let instance = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let cfg = UaConfig::new(
        user,
        "isc.local",
        user,
        "main",
        &instance,
        server,
        "127.0.0.1:0".parse().unwrap(),
    );
    let mut c = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("client binds");
    let ev = c
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::Registered { .. } | ClientEvent::RegistrationFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(ev, Some(ClientEvent::Registered { .. })),
        "{user}: {ev:?}"
    );
    c
}

pub async fn chat_event(
    c: &mut ClientHandle,
    what: &str,
    pred: impl Fn(&ChatEvent) -> bool,
) -> ChatEvent {
    let mut seen = Vec::new();
    let found = c
        .wait_for(WAIT, |e| {
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

pub async fn chat(c: &ClientHandle, cmd: ChatCommand) {
    assert!(c.send(Command::Chat(cmd)).await);
}

pub async fn accept(c: &mut ClientHandle) -> ChatId {
    let ChatEvent::Invited { chat: id, .. } =
        chat_event(c, "invitation", |e| matches!(e, ChatEvent::Invited { .. })).await
    else {
        unreachable!()
    };
    chat(c, ChatCommand::Accept { chat: id }).await;
    id
}

pub fn entry<'a>(entries: &'a [RosterEntry], user: &str) -> Option<&'a RosterEntry> {
    entries.iter().find(|e| e.user.contains(user))
}
