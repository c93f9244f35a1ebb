//! Adding users to a running group by REFER (seed 004 7.1.1.7) over real
//! sockets: one user (`Refer-To`, `Refer-Sub: false`) and several (RFC 5368
//! multiple-refer); the newcomers appear in the roster.

mod group_support;

use isc::client::chat::ChatEvent;
use isc::client::chats::ChatCommand;
use isc::client::group::RosterStatus;

use group_support::*;
use isc::client::runner::spawn_client;
use isc::client::{ClientEvent, UaConfig};
use isc::server::runner::{Server, ServerOptions};

async fn refer_adds(users: &[&str]) {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice").await;
    let mut bob = client(addr, "bob").await;
    let mut others = Vec::new();
    for u in users {
        others.push(client(addr, u).await);
    }
    chat(
        &alice,
        ChatCommand::CreateGroup {
            invitees: vec!["sip:bob@isc.local".into()],
        },
    )
    .await;
    accept(&mut bob).await;
    let ev = chat_event(&mut alice, "group started", |e| {
        matches!(e, ChatEvent::GroupStarted { .. } | ChatEvent::Ended { .. })
    })
    .await;
    let ChatEvent::GroupStarted { chat: a, .. } = ev else {
        panic!("{ev:?}")
    };
    chat(
        &alice,
        ChatCommand::AddToGroup {
            chat: a,
            users: users.iter().map(|u| format!("sip:{u}@isc.local")).collect(),
        },
    )
    .await;
    for o in &mut others {
        accept(o).await;
        chat_event(o, "group started", |e| {
            matches!(e, ChatEvent::GroupStarted { .. })
        })
        .await;
    }
    let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    chat_event(&mut alice, "newcomers joined", |e| match e {
        ChatEvent::Roster { entries, .. } => users
            .iter()
            .all(|u| entry(entries, u).is_some_and(|r| r.status == RosterStatus::Joined)),
        _ => false,
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_adds_one_user() {
    refer_adds(&["carol"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_refer_adds_two_users() {
    refer_adds(&["carol", "ted"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_to_a_one_to_one_chat_is_refused() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let mut alice = client(server.local_addr(), "alice").await;
    chat(
        &alice,
        ChatCommand::AddToGroup {
            chat: 42,
            users: vec!["sip:carol@isc.local".into()],
        },
    )
    .await;
    let ev = chat_event(&mut alice, "group error", |e| {
        matches!(e, ChatEvent::GroupError { .. })
    })
    .await;
    assert!(
        matches!(ev, ChatEvent::GroupError { chat: Some(42), .. }),
        "{ev:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_over_the_known_limit_is_refused_before_sending() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let instance = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let mut cfg = UaConfig::new(
        "alice",
        "isc.local",
        "alice",
        "main",
        &instance,
        server.local_addr(),
        "127.0.0.1:0".parse().unwrap(),
    );
    cfg.max_adhoc_group_size = Some(2);
    cfg.blocklist = vec!["sip:bob@isc.local".into()];
    let mut alice = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("client binds");
    alice
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
        .expect("registered");
    let mut bob = client(server.local_addr(), "bob").await;
    chat(
        &alice,
        ChatCommand::CreateGroup {
            invitees: vec!["sip:bob@isc.local".into(), "sip:carol@isc.local".into()],
        },
    )
    .await;
    let ev = chat_event(&mut alice, "refusal", |e| {
        matches!(e, ChatEvent::GroupError { .. } | ChatEvent::Calling { .. })
    })
    .await;
    assert!(
        matches!(&ev, ChatEvent::GroupError { chat: None, reason } if reason.contains("at most 2")),
        "{ev:?}"
    );
    // Within the limit it goes ahead; bob is flagged as blocked.
    chat(
        &alice,
        ChatCommand::CreateGroup {
            invitees: vec!["sip:bob@isc.local".into()],
        },
    )
    .await;
    accept(&mut bob).await;
    chat_event(&mut alice, "bob flagged", |e| match e {
        ChatEvent::Roster { entries, .. } => entry(entries, "bob").is_some_and(|r| r.blocked),
        _ => false,
    })
    .await;
    server.shutdown().await;
}
