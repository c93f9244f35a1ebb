//! Shared pieces of the deferred-message client tests: the real server on
//! a temp data dir, real clients (`spawn_client`), carol's offline traffic
//! (pager MESSAGEs and a chat session) and what bob's client reports.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use isc::client::chat::{ChatEvent, ChatId};
use isc::client::chats::ChatCommand;
use isc::client::deferred::{DeferredEvent, LateMessage};
use isc::client::runner::{ClientHandle, Direction, spawn_client};
use isc::client::{ClientEvent, Command, UaConfig};
use isc::proto::sip::headers::HeadersExt;
use isc::proto::sip::message::parse_message;
use isc::server::deferred_message_store::{DeferredStore, SqliteDeferred};
use isc::server::runner::{Server, ServerHandle, ServerOptions};

pub const BOB: &str = "sip:bob@isc.local";
pub const WAIT: Duration = Duration::from_secs(15);

/// The server with alice, bob and carol; `bob_push`: bob's offline-delivery.
pub async fn start(dir: &Path, bob_push: bool) -> ServerHandle {
    start_on(dir, bob_push, "127.0.0.1:0".parse().unwrap()).await
}

pub async fn start_on(dir: &Path, bob_push: bool, listen: SocketAddr) -> ServerHandle {
    let mut opts = ServerOptions::loopback_demo();
    opts.history_in_memory = false;
    opts.config.data_dir = Some(dir.to_path_buf());
    opts.config.listen = listen;
    opts.config.users = ["alice", "bob", "carol"]
        .iter()
        .map(|n| {
            let mut u = isc::config::UserConfig::new(n, n);
            // alice's messages are pushed (she may not retrieve: 403)
            u.offline_delivery = if *n == "bob" { bob_push } else { true };
            u
        })
        .collect();
    Server::start(opts).await.expect("server starts")
}

pub fn store_count(dir: &Path) -> u64 {
    SqliteDeferred::open_in(dir).unwrap().count(BOB).unwrap()
}

pub async fn store_reaches(dir: &Path, n: u64) {
    for _ in 0..250 {
        if store_count(dir) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store_count(dir), n, "store size");
}

pub fn config(server: SocketAddr, user: &str, device: &str) -> UaConfig {
    UaConfig::new(
        user,
        "isc.local",
        user,
        device,
        &format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        server,
        "127.0.0.1:0".parse().unwrap(),
    )
}

pub async fn client_with(cfg: UaConfig) -> ClientHandle {
    let mut c = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("client binds");
    c.wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
        .expect("registered");
    c
}

pub async fn client(server: SocketAddr, user: &str, device: &str) -> ClientHandle {
    client_with(config(server, user, device)).await
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What carol sent, in order: (text, Call-ID, Message-ID of a chat message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub text: String,
    pub call_id: String,
    pub message_id: Option<String>,
}

/// Carol pages bob (who has no device): 202, stored. Returns the MESSAGE's Call-ID (from her wire).
pub async fn carol_pages(carol: &mut ClientHandle, text: &str) -> Sent {
    let mut wire = carol.wire();
    let id = format!("p-{text}");
    carol
        .send(Command::SendMessage {
            to: BOB.into(),
            text: text.into(),
            id: Some(id.clone()),
        })
        .await;
    let ev = carol
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::MessageDelivered { id: i, .. } | ClientEvent::MessageFailed { id: i, .. } if *i == id)
        })
        .await
        .expect("pager answered");
    assert!(
        matches!(ev, ClientEvent::MessageDelivered { status: 202, .. }),
        "stored for later: {ev:?}"
    );
    let mut call_id = None;
    while let Ok(r) = wire.try_recv() {
        if r.direction != Direction::Sent {
            continue;
        }
        if let Ok(rsip::SipMessage::Request(req)) = parse_message(&r.bytes)
            && req.method == rsip::Method::Message
            && req.body == text.as_bytes()
        {
            call_id = req.headers.get_raw("Call-ID");
        }
    }
    Sent {
        text: text.into(),
        call_id: call_id.expect("carol's MESSAGE on her wire"),
        message_id: None,
    }
}

/// Carol chats with offline bob: the store answers for him; each message
/// gets its MSRP 200 once stored. Returns the chat's messages.
pub async fn carol_chats(carol: &mut ClientHandle, texts: &[&str]) -> Vec<Sent> {
    let mut wire = carol.wire();
    carol
        .send(Command::Chat(ChatCommand::Start {
            to: BOB.into(),
            convergence_id: None,
        }))
        .await;
    let chat: ChatId = match carol
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Started { .. }))
        })
        .await
    {
        Some(ClientEvent::Chat(ChatEvent::Started { chat, .. })) => chat,
        other => panic!("the store accepts the chat for bob: {other:?}"),
    };
    let mut call_id = None;
    while let Ok(r) = wire.try_recv() {
        if let (Direction::Sent, Ok(rsip::SipMessage::Request(req))) =
            (r.direction, parse_message(&r.bytes))
            && req.method == rsip::Method::Invite
        {
            call_id = req.headers.get_raw("Call-ID");
        }
    }
    let call_id = call_id.expect("carol's INVITE on her wire");
    let mut out = Vec::new();
    for t in texts {
        carol
            .send(Command::Chat(ChatCommand::Send {
                chat,
                text: (*t).into(),
            }))
            .await;
        let mid = match carol
            .wait_for(WAIT, |e| {
                matches!(e, ClientEvent::Chat(ChatEvent::Sent { .. }))
            })
            .await
        {
            Some(ClientEvent::Chat(ChatEvent::Sent { message_id, .. })) => message_id,
            other => panic!("sent: {other:?}"),
        };
        let m2 = mid.clone();
        carol
            .wait_for(WAIT, move |e| {
                matches!(e, ClientEvent::Chat(ChatEvent::Delivered { message_id, .. }) if *message_id == m2)
            })
            .await
            .expect("MSRP 200 from the store");
        out.push(Sent {
            text: (*t).into(),
            call_id: call_id.clone(),
            message_id: Some(mid),
        });
    }
    carol.send(Command::Chat(ChatCommand::Bye { chat })).await;
    carol
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Ended { .. }))
        })
        .await
        .expect("chat ended");
    out
}

/// Bob's deferred events until the session ends (or nothing more comes).
pub async fn deferred_until_ended(bob: &mut ClientHandle) -> Vec<DeferredEvent> {
    let mut out = Vec::new();
    while let Some(ev) = bob.next_event(WAIT).await {
        if let ClientEvent::Deferred(d) = ev {
            let end = matches!(
                d,
                DeferredEvent::Ended { .. } | DeferredEvent::RetrievalFailed { .. }
            );
            out.push(d);
            if end {
                break;
            }
        }
    }
    out
}

pub fn messages(evs: &[DeferredEvent]) -> Vec<LateMessage> {
    evs.iter()
        .filter_map(|e| match e {
            DeferredEvent::Message { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// Any deferred event within `secs`?
pub async fn quiet_for(bob: &mut ClientHandle, secs: f64) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    while let Ok(Some(ev)) = tokio::time::timeout_at(until, bob.events.recv()).await {
        if matches!(ev, ClientEvent::Deferred(_)) {
            seen.push(ev);
        }
    }
    seen
}
