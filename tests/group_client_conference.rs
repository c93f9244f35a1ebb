//! Group chat clients over real sockets with the bundled server (seed 004
//! 7.1.1.3–7.1.1.11): an ad-hoc group from the factory, the roster kept
//! from conference NOTIFYs (own entry, joined, left), a private message
//! reaching only its addressee, rejoin without a stored identity.

mod group_support;

use group_support::*;
use isc::client::chat::{ChatEvent, ChatId};
use isc::client::chats::ChatCommand;
use isc::client::group::RosterStatus;
use isc::client::runner::ClientHandle;
use isc::server::runner::{Server, ServerHandle, ServerOptions};

struct Group {
    server: ServerHandle,
    alice: ClientHandle,
    bob: ClientHandle,
    carol: ClientHandle,
    /// Alice's group chat, bob's and carol's legs.
    ids: [ChatId; 3],
}

/// Alice creates an ad-hoc group with bob and carol; both accept.
async fn group() -> Group {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice").await;
    let mut bob = client(addr, "bob").await;
    let mut carol = client(addr, "carol").await;
    chat(
        &alice,
        ChatCommand::CreateGroup {
            invitees: vec!["sip:bob@isc.local".into(), "sip:carol@isc.local".into()],
        },
    )
    .await;
    let b = accept(&mut bob).await;
    let c = accept(&mut carol).await;
    let ev = chat_event(&mut alice, "group started", |e| {
        matches!(e, ChatEvent::GroupStarted { .. } | ChatEvent::Ended { .. })
    })
    .await;
    let ChatEvent::GroupStarted {
        chat: a, identity, ..
    } = ev
    else {
        panic!("{ev:?}")
    };
    assert!(identity.starts_with("sip:conf-"), "{identity}");
    for dev in [&mut bob, &mut carol] {
        chat_event(
            dev,
            "group started",
            |e| matches!(e, ChatEvent::GroupStarted { identity: i, .. } if *i == identity),
        )
        .await;
    }
    Group {
        server,
        alice,
        bob,
        carol,
        ids: [a, b, c],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_follows_the_conference_notifies() {
    let mut g = group().await;
    let [_, _, c] = g.ids;
    // The full state: alice (own), bob and carol joined.
    let ev = chat_event(&mut g.alice, "full roster", |e| match e {
        ChatEvent::Roster { entries, .. } => ["alice", "bob", "carol"]
            .iter()
            .all(|u| entry(entries, u).is_some_and(|r| r.status == RosterStatus::Joined)),
        _ => false,
    })
    .await;
    let ChatEvent::Roster { entries, .. } = ev else {
        unreachable!()
    };
    assert!(entry(&entries, "alice").unwrap().own, "{entries:?}");
    assert!(!entry(&entries, "bob").unwrap().own);
    assert!(entries.iter().all(|e| !e.blocked));

    // Carol leaves: a partial NOTIFY marks her left, the others stay.
    chat(&g.carol, ChatCommand::Bye { chat: c }).await;
    let ev = chat_event(&mut g.alice, "carol left", |e| match e {
        ChatEvent::Roster { entries, .. } => {
            entry(entries, "carol").is_some_and(|r| r.status == RosterStatus::Left)
        }
        _ => false,
    })
    .await;
    let ChatEvent::Roster { entries, .. } = ev else {
        unreachable!()
    };
    assert_eq!(entry(&entries, "bob").unwrap().status, RosterStatus::Joined);

    // Rejoin needs a stored session identity.
    chat(&g.bob, ChatCommand::Rejoin { chat: 9999 }).await;
    let ev = chat_event(&mut g.bob, "group error", |e| {
        matches!(e, ChatEvent::GroupError { .. })
    })
    .await;
    assert!(
        matches!(&ev, ChatEvent::GroupError { chat: Some(9999), reason } if reason.contains("identity")),
        "{ev:?}"
    );
    // Carol rejoins by the identity she stored.
    chat(&g.carol, ChatCommand::Rejoin { chat: c }).await;
    chat_event(
        &mut g.carol,
        "rejoined",
        |e| matches!(e, ChatEvent::GroupStarted { continues: Some(old), .. } if *old == c),
    )
    .await;
    chat_event(&mut g.alice, "carol back", |e| match e {
        ChatEvent::Roster { entries, .. } => {
            entry(entries, "carol").is_some_and(|r| r.status == RosterStatus::Joined)
        }
        _ => false,
    })
    .await;
    g.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_message_reaches_only_its_addressee() {
    let mut g = group().await;
    let [a, _, _] = g.ids;
    chat(
        &g.alice,
        ChatCommand::SendPrivate {
            chat: a,
            to: "sip:bob@isc.local".into(),
            text: "just for you, bob".into(),
        },
    )
    .await;
    let ev = chat_event(&mut g.bob, "private message", |e| {
        matches!(
            e,
            ChatEvent::PrivateMessage { .. } | ChatEvent::Message { .. }
        )
    })
    .await;
    let ChatEvent::PrivateMessage { from, text, .. } = ev else {
        panic!("not flagged private: {ev:?}")
    };
    assert_eq!(text, "just for you, bob");
    assert!(from.contains("alice"), "{from}");

    // A group message next: carol's first message is that one.
    chat(
        &g.alice,
        ChatCommand::Send {
            chat: a,
            text: "hello everyone".into(),
        },
    )
    .await;
    let ev = chat_event(&mut g.carol, "group message", |e| {
        matches!(
            e,
            ChatEvent::PrivateMessage { .. } | ChatEvent::Message { .. }
        )
    })
    .await;
    assert!(
        matches!(&ev, ChatEvent::Message { text, .. } if text == "hello everyone"),
        "{ev:?}"
    );
    let ev = chat_event(&mut g.bob, "group message", |e| {
        matches!(
            e,
            ChatEvent::PrivateMessage { .. } | ChatEvent::Message { .. }
        )
    })
    .await;
    assert!(
        matches!(&ev, ChatEvent::Message { text, .. } if text == "hello everyone"),
        "{ev:?}"
    );
    g.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_a_predefined_group_by_its_uri() {
    use isc::config::{GroupConfig, JoiningPolicy};
    let mut options = ServerOptions::loopback_demo();
    options.config.groups = vec![GroupConfig {
        name: "friends".into(),
        members: vec!["alice".into(), "bob".into()],
        max_participants: 16,
        joining_policy: JoiningPolicy::MembersOnly,
        public: false,
    }];
    let server = Server::start(options).await.expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice").await;
    let mut bob = client(addr, "bob").await;
    let mut carol = client(addr, "carol").await;
    let group = "sip:friends@isc.local".to_owned();
    chat(&alice, ChatCommand::JoinGroup { uri: group.clone() }).await;
    let ev = chat_event(&mut alice, "group started", |e| {
        matches!(e, ChatEvent::GroupStarted { .. } | ChatEvent::Ended { .. })
    })
    .await;
    let ChatEvent::GroupStarted {
        chat: a, identity, ..
    } = ev
    else {
        panic!("{ev:?}")
    };
    assert_eq!(identity, group);
    chat(&bob, ChatCommand::JoinGroup { uri: group.clone() }).await;
    chat_event(&mut bob, "bob in", |e| {
        matches!(e, ChatEvent::GroupStarted { .. })
    })
    .await;
    chat_event(&mut alice, "bob joined", |e| match e {
        ChatEvent::Roster { entries, .. } => {
            entry(entries, "bob").is_some_and(|r| r.status == RosterStatus::Joined)
        }
        _ => false,
    })
    .await;
    chat(
        &alice,
        ChatCommand::Send {
            chat: a,
            text: "friends only".into(),
        },
    )
    .await;
    chat_event(
        &mut bob,
        "group message",
        |e| matches!(e, ChatEvent::Message { text, .. } if text == "friends only"),
    )
    .await;
    // Carol is no member: refused, the chat ends with the error.
    chat(&carol, ChatCommand::JoinGroup { uri: group }).await;
    let ev = chat_event(&mut carol, "refusal", |e| {
        matches!(e, ChatEvent::Ended { .. } | ChatEvent::GroupStarted { .. })
    })
    .await;
    assert!(
        matches!(
            ev,
            ChatEvent::Ended {
                reason: isc::client::chat::EndReason::Error {
                    status: Some(403),
                    ..
                },
                ..
            }
        ),
        "{ev:?}"
    );
    server.shutdown().await;
}
