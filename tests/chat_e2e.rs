//! Chat over real sockets with the bundled server (FLOWS.md
//! `cpm-multidevice`, seed 001 8.3.2.1 / 8.3.2.1.1): alice's client chats
//! with bob, who has two devices; both get the invitation and accept,
//! messages flow both ways as CPIM, bob types on his phone and his tv is
//! told the chat continued on another device; a 5 MiB message arrives intact.

use std::time::Duration;

use isc::client::Command;
use isc::client::chat::{ChatEvent, ChatId, EndReason};
use isc::client::chats::ChatCommand;
use isc::client::runner::ClientHandle;
use isc::proto::sip::transaction::Transport;
use isc::server::runner::{Server, ServerOptions};

const WAIT: Duration = Duration::from_secs(20);

mod live_client;

async fn client(server: std::net::SocketAddr, user: &str, device: &str) -> ClientHandle {
    client_on(server, user, device, Transport::Udp).await
}

async fn client_on(
    server: std::net::SocketAddr,
    user: &str,
    device: &str,
    transport: Transport,
) -> ClientHandle {
    live_client::registered(server, user, device, WAIT, |c| c.transport = transport).await
}

async fn chat_event(
    c: &mut ClientHandle,
    what: &str,
    pred: impl Fn(&ChatEvent) -> bool,
) -> ChatEvent {
    live_client::chat_event(c, WAIT, what, pred).await
}

use live_client::chat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_chats_with_bob_on_two_devices() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice", "laptop").await;
    let mut tv = client(addr, "bob", "tv").await;
    let mut phone = client(addr, "bob", "phone").await;
    let mut tv_wire = tv.wire();
    tokio::spawn(async move {
        while let Ok(r) = tv_wire.recv().await {
            if std::env::var("CHAT_WIRE").is_ok() {
                eprintln!(
                    "--- tv {:?} {}\n{}",
                    r.direction,
                    r.peer,
                    String::from_utf8_lossy(&r.bytes)
                );
            }
        }
    });

    chat(
        &alice,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    )
    .await;
    let ChatEvent::Calling { chat: a, .. } = chat_event(&mut alice, "calling", |e| {
        matches!(e, ChatEvent::Calling { .. })
    })
    .await
    else {
        unreachable!()
    };

    // both devices are invited and accept
    let mut ids: Vec<ChatId> = Vec::new();
    for dev in [&mut tv, &mut phone] {
        let ev = chat_event(dev, "invitation", |e| {
            matches!(e, ChatEvent::Invited { .. } | ChatEvent::Ended { .. })
        })
        .await;
        let ChatEvent::Invited { chat, from, .. } = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(from, "sip:alice@isc.local");
        chat_cmd_accept(dev, chat).await;
        ids.push(chat);
    }
    let (t, p) = (ids[0], ids[1]);
    chat_event(&mut alice, "alice started", |e| {
        matches!(e, ChatEvent::Started { .. } | ChatEvent::Ended { .. })
    })
    .await;
    for dev in [&mut tv, &mut phone] {
        let ev = chat_event(dev, "bob started", |e| {
            matches!(e, ChatEvent::Started { .. } | ChatEvent::Ended { .. })
        })
        .await;
        assert!(matches!(ev, ChatEvent::Started { .. }), "{ev:?}");
    }

    // alice's message reaches both devices as CPIM from alice
    chat(
        &alice,
        ChatCommand::Send {
            chat: a,
            text: "hello bob".into(),
        },
    )
    .await;
    for dev in [&mut tv, &mut phone] {
        let ev = chat_event(dev, "message", |e| matches!(e, ChatEvent::Message { .. })).await;
        let ChatEvent::Message { from, text, at, .. } = ev else {
            unreachable!()
        };
        assert_eq!(
            (from.as_str(), text.as_str()),
            ("sip:alice@isc.local", "hello bob")
        );
        assert!(at.is_some(), "CPIM DateTime");
    }
    chat_event(&mut alice, "delivered", |e| {
        matches!(e, ChatEvent::Delivered { .. })
    })
    .await;

    // bob types on the phone: the tv's leg ends, "continued on another device"
    chat(&phone, ChatCommand::Typing { chat: p }).await;
    let ev = chat_event(&mut tv, "tv ended", |e| {
        matches!(e, ChatEvent::Ended { .. })
    })
    .await;
    assert_eq!(
        ev,
        ChatEvent::Ended {
            chat: t,
            reason: EndReason::CompletedElsewhere
        }
    );
    let ev = chat_event(&mut alice, "composing", |e| {
        matches!(e, ChatEvent::Composing { .. })
    })
    .await;
    assert!(
        matches!(ev, ChatEvent::Composing { active: true, .. }),
        "{ev:?}"
    );

    // and the conversation goes on with the phone
    chat(
        &phone,
        ChatCommand::Send {
            chat: p,
            text: "hi alice".into(),
        },
    )
    .await;
    let ev = chat_event(&mut alice, "reply", |e| {
        matches!(e, ChatEvent::Message { .. })
    })
    .await;
    let ChatEvent::Message { from, text, .. } = ev else {
        unreachable!()
    };
    assert_eq!(text, "hi alice");
    assert!(from.contains("bob@isc.local"), "{from}");

    // a 5 MiB message arrives intact
    let big: String = (0..5 * 1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    chat(
        &alice,
        ChatCommand::Send {
            chat: a,
            text: big.clone(),
        },
    )
    .await;
    let ev = chat_event(
        &mut phone,
        "big message",
        |e| matches!(e, ChatEvent::Message { text, .. } if text.len() > 1000),
    )
    .await;
    let ChatEvent::Message { text, .. } = ev else {
        unreachable!()
    };
    assert_eq!(text.len(), big.len());
    assert!(text == big);

    // alice ends it: the phone sees a normal end
    chat(&alice, ChatCommand::Bye { chat: a }).await;
    let ev = chat_event(&mut phone, "phone ended", |e| {
        matches!(e, ChatEvent::Ended { .. })
    })
    .await;
    assert_eq!(
        ev,
        ChatEvent::Ended {
            chat: p,
            reason: EndReason::Normal
        }
    );
}

async fn chat_cmd_accept(c: &ClientHandle, chat: ChatId) {
    assert!(c.send(Command::Chat(ChatCommand::Accept { chat })).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_over_sip_tcp() {
    let dbg = std::env::var("CHAT_WIRE").is_ok();
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client_on(addr, "alice", "phone", Transport::Tcp).await;
    let mut bob = client_on(addr, "bob", "laptop", Transport::Tcp).await;
    for (n, c) in [("alice", &alice), ("bob", &bob)] {
        let mut w = c.wire();
        tokio::spawn(async move {
            while let Ok(r) = w.recv().await {
                if dbg {
                    let t = String::from_utf8_lossy(&r.bytes).into_owned();
                    eprintln!(
                        "--- {n} {:?} {} {} | {}",
                        r.direction,
                        r.peer,
                        r.bytes.len(),
                        t.lines().next().unwrap_or("")
                    );
                }
            }
        });
    }

    // the next one is accepted and carries text both ways
    chat(
        &alice,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    )
    .await;
    let ChatEvent::Calling { chat: a, .. } = chat_event(&mut alice, "calling", |e| {
        matches!(e, ChatEvent::Calling { .. })
    })
    .await
    else {
        unreachable!()
    };
    let ev = chat_event(&mut bob, "invitation", |e| {
        matches!(e, ChatEvent::Invited { .. })
    })
    .await;
    let ChatEvent::Invited { chat: b, .. } = ev else {
        unreachable!()
    };
    chat(&bob, ChatCommand::Accept { chat: b }).await;
    chat_event(&mut alice, "started", |e| {
        matches!(e, ChatEvent::Started { .. })
    })
    .await;
    chat_event(&mut bob, "started", |e| {
        matches!(e, ChatEvent::Started { .. })
    })
    .await;
    chat(
        &alice,
        ChatCommand::Send {
            chat: a,
            text: "over tcp".into(),
        },
    )
    .await;
    let ev = chat_event(&mut bob, "message", |e| {
        matches!(e, ChatEvent::Message { .. })
    })
    .await;
    assert!(
        matches!(ev, ChatEvent::Message { ref text, .. } if text == "over tcp"),
        "{ev:?}"
    );
    chat(&bob, ChatCommand::Bye { chat: b }).await;
    let ev = chat_event(&mut alice, "ended", |e| {
        matches!(e, ChatEvent::Ended { .. })
    })
    .await;
    assert_eq!(
        ev,
        ChatEvent::Ended {
            chat: a,
            reason: EndReason::Normal
        }
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_chat_ends_the_caller_with_an_error() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice", "phone").await;
    let mut bob = client(addr, "bob", "laptop").await;
    // a declined chat ends with an error for alice
    chat(
        &alice,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    )
    .await;
    let ev = chat_event(&mut alice, "ringing", |e| {
        matches!(e, ChatEvent::Ringing { .. } | ChatEvent::Ended { .. })
    })
    .await;
    assert!(matches!(ev, ChatEvent::Ringing { .. }), "{ev:?}");
    let ev = chat_event(&mut bob, "invitation", |e| {
        matches!(e, ChatEvent::Invited { .. })
    })
    .await;
    let ChatEvent::Invited { chat: b, .. } = ev else {
        unreachable!()
    };
    chat(&bob, ChatCommand::Decline { chat: b }).await;
    let ev = chat_event(&mut alice, "declined", |e| {
        matches!(e, ChatEvent::Ended { .. })
    })
    .await;
    assert!(
        matches!(ev, ChatEvent::Ended { reason: EndReason::Error { status: Some(s), .. }, .. } if s >= 400),
        "{ev:?}"
    );

    server.shutdown().await;
}
