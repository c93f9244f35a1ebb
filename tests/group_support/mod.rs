//! Group-chat clients for the tests: a registered client per user, and
//! waiting for / sending chat events.
#![allow(dead_code)]

use std::time::Duration;

use isc::client::chat::{ChatEvent, ChatId};
use isc::client::chats::ChatCommand;
use isc::client::group::RosterEntry;
use isc::client::runner::ClientHandle;

pub const WAIT: Duration = Duration::from_secs(20);

/// Built on the shared `live_client` helpers.
#[path = "../live_client/mod.rs"]
mod live_client;

pub async fn client(server: std::net::SocketAddr, user: &str) -> ClientHandle {
    live_client::registered(server, user, "main", WAIT, |_| {}).await
}

pub async fn chat_event(
    c: &mut ClientHandle,
    what: &str,
    pred: impl Fn(&ChatEvent) -> bool,
) -> ChatEvent {
    live_client::chat_event(c, WAIT, what, pred).await
}

pub use live_client::chat;

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
