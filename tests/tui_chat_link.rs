//! An MSRP chat through the TUI state and a real client: bob invites
//! alice's tv, the App shows the invitation, accepting it (the `a` key's
//! action) reaches the client, bob's text shows in the `chat:N`
//! conversation and alice's answer typed in the App reaches bob.

use std::time::{Duration, Instant, SystemTime};

use isc::client::chat::ChatEvent;
use isc::client::chats::ChatCommand;
use isc::client::runner::{ClientHandle, spawn_client};
use isc::client::{ClientEvent, Command as UaCommand, UaConfig};
use isc::server::runner::{Server, ServerOptions};
use isc::tui::app::{AppConfig, EntryKind, Registration};
use isc::tui::event_loop::dispatch;
use isc::tui::{Action, Answer, App, ClientLink, ClientPort};

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

async fn pump_until(app: &mut App, link: &mut ClientLink, what: &str, done: impl Fn(&App) -> bool) {
    let until = Instant::now() + WAIT;
    while !done(app) {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, link.next_event()).await {
            Ok(Some(a)) => {
                for c in app.update(a) {
                    dispatch(app, link, c);
                }
            }
            other => panic!("gave up waiting for {what}: {other:?}"),
        }
    }
}

fn has_text(app: &App, text: &str) -> bool {
    app.conversations.iter().any(|c| {
        c.key.starts_with("chat:")
            && c.entries
                .iter()
                .any(|e| matches!(&e.kind, EntryKind::Message { .. }) && e.text().contains(text))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_invitation_is_accepted_and_both_sides_talk() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let tv = client(addr, "alice", "tv").await;
    let mut link = ClientLink::new(tv, "alice/tv", addr);
    let mut app = App::new(
        AppConfig::new("alice", "isc.local", "tv"),
        Instant::now(),
        SystemTime::now(),
    );
    pump_until(&mut app, &mut link, "registration", |a| {
        matches!(a.registration, Registration::Registered { .. })
    })
    .await;

    let mut bob = client(addr, "bob", "laptop").await;
    bob.wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
        .expect("bob registers");
    assert!(
        bob.send(UaCommand::Chat(ChatCommand::Start {
            to: "sip:alice@isc.local".into(),
            convergence_id: None,
        }))
        .await
    );
    pump_until(&mut app, &mut link, "the invitation", |a| {
        !a.invitations.is_empty()
    })
    .await;
    assert!(app.invitations[0].from.contains("bob"));
    for c in app.update(Action::AnswerInvitation(Answer::AcceptHere)) {
        dispatch(&mut app, &mut link, c);
    }
    let started = bob
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Started { .. }))
        })
        .await
        .expect("bob's chat starts");
    let ClientEvent::Chat(ChatEvent::Started { chat, .. }) = started else {
        unreachable!()
    };
    assert!(
        bob.send(UaCommand::Chat(ChatCommand::Send {
            chat,
            text: "over MSRP".into(),
        }))
        .await
    );
    pump_until(&mut app, &mut link, "bob's MSRP text", |a| {
        has_text(a, "over MSRP")
    })
    .await;

    // alice answers in the chat conversation (now the open one).
    let key = app
        .conversations
        .iter()
        .position(|c| c.key.starts_with("chat:"))
        .expect("a chat conversation");
    app.update(Action::OpenConversation(isc::tui::app::ConvId(key)));
    for ch in "and back".chars() {
        for c in app.update(Action::InsertChar(ch)) {
            dispatch(&mut app, &mut link, c);
        }
    }
    for c in app.update(Action::Send) {
        dispatch(&mut app, &mut link, c);
    }
    let got = bob
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Message { text, .. }) if text == "and back")
        })
        .await;
    assert!(
        got.is_some(),
        "bob got alice's MSRP answer; notices: {:?}",
        app.notice
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_command_starts_an_msrp_session_and_opens_it() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let tv = client(addr, "alice", "tv").await;
    let mut link = ClientLink::new(tv, "alice/tv", addr);
    let mut app = App::new(
        AppConfig::new("alice", "isc.local", "tv"),
        Instant::now(),
        SystemTime::now(),
    );
    pump_until(&mut app, &mut link, "registration", |a| {
        matches!(a.registration, Registration::Registered { .. })
    })
    .await;
    let mut bob = client(addr, "bob", "laptop").await;
    bob.wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
        .expect("bob registers");

    // `:chat bob`: an INVITE with MSRP, not a pager conversation.
    for c in app.update(Action::RunCommand(":chat bob".into())) {
        dispatch(&mut app, &mut link, c);
    }
    let invited = bob
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Invited { .. }))
        })
        .await
        .expect("bob is invited to a chat");
    let ClientEvent::Chat(ChatEvent::Invited { chat, from, .. }) = invited else {
        unreachable!()
    };
    assert!(from.contains("alice"), "{from}");
    pump_until(&mut app, &mut link, "the session conversation", |a| {
        a.current_conv().is_some_and(|c| c.key.starts_with("chat:"))
    })
    .await;
    let conv = app.current_conv().unwrap();
    assert_eq!(conv.title, "bob");
    assert!(conv.session);
    assert!(
        conv.entries
            .iter()
            .any(|e| e.text() == "calling bob@isc.local…")
    );
    assert_eq!(app.pending_chat, None);

    assert!(
        bob.send(UaCommand::Chat(ChatCommand::Accept { chat }))
            .await
    );
    pump_until(&mut app, &mut link, "the session to connect", |a| {
        a.current_conv()
            .is_some_and(|c| c.entries.iter().any(|e| e.text().contains("connected")))
    })
    .await;

    // Typing and sending go through the session; the ✓ comes from MSRP.
    for ch in "over the session".chars() {
        for c in app.update(Action::InsertChar(ch)) {
            dispatch(&mut app, &mut link, c);
        }
    }
    assert!(
        bob.wait_for(WAIT, |e| matches!(
            e,
            ClientEvent::Chat(ChatEvent::Composing { active: true, .. })
        ))
        .await
        .is_some(),
        "bob sees alice composing in the session"
    );
    for c in app.update(Action::Send) {
        dispatch(&mut app, &mut link, c);
    }
    let got = bob
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Message { text, .. }) if text == "over the session")
        })
        .await;
    assert!(got.is_some(), "notices: {:?}", app.notice);
    pump_until(&mut app, &mut link, "the MSRP delivery", |a| {
        a.current_conv().is_some_and(|c| {
            c.entries.iter().any(|e| {
                matches!(
                    &e.kind,
                    EntryKind::Message {
                        delivery: Some(isc::tui::app::Delivery::Delivered),
                        ..
                    }
                ) && e.text() == "over the session"
            })
        })
    })
    .await;
    assert_eq!(app.notice, None);
    server.shutdown().await;
}
