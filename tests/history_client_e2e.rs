//! History retrieval by the client core against the bundled server, over
//! real sockets (seed 003 13.1.3, 13.2.1.1): Alice and Bob chat with Bob on
//! `bob-1`; a new device `bob-2` opens the conversation, its history comes
//! from `history@isc.local` and its view holds the messages in order with
//! senders and original times. The wire shows a recvonly offer with the
//! URI list and a sendonly answer. Unknown references (404) and another
//! user's messages (403) reach the user as sentences.

mod headless_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use isc::client::chat::{ChatEvent, ChatId};
use isc::client::chats::ChatCommand;
use isc::client::history::{HistoryEvent, HistoryQuery, parse_rfc3339};
use isc::client::runner::{ClientHandle, Direction, WireRecord};
use isc::client::{ClientEvent, Command};
use isc::proto::bodies::multipart::Multipart;
use isc::proto::bodies::resource_lists::ResourceLists;
use isc::proto::sip::headers::HeadersExt;
use isc::proto::sip::message::parse_message;
use isc::server::runner::{Server, ServerHandle, ServerOptions};
use isc::tui::app::{AppConfig, Entry, EntryKind, Registration, Sender};
use isc::tui::event_loop::dispatch;
use isc::tui::{Action, App, ClientLink};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(15);
const ALICE: &str = "sip:alice@isc.local";

mod live_client;

async fn client(server: std::net::SocketAddr, user: &str, device: &str) -> ClientHandle {
    live_client::registered(server, user, device, WAIT, |_| {}).await
}

async fn chat_event(
    c: &mut ClientHandle,
    what: &str,
    pred: impl Fn(&ChatEvent) -> bool,
) -> ChatEvent {
    live_client::chat_event(c, WAIT, what, pred).await
}

async fn history_event(c: &mut ClientHandle) -> HistoryEvent {
    match c
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::History(HistoryEvent::Retrieved { .. } | HistoryEvent::Failed { .. })
            )
        })
        .await
    {
        Some(ClientEvent::History(e)) => e,
        other => panic!("no history outcome: {other:?}"),
    }
}

/// One chat message as the receiving device reported it.
#[derive(Debug, Clone)]
struct Said {
    from: &'static str,
    text: &'static str,
    at: String,
    /// The sender's MSRP Message-ID (what the server stored).
    message_id: String,
}

/// Alice (laptop) and Bob (bob-1) chat; the three messages as received,
/// in order.
async fn alice_and_bob_chat(alice: &mut ClientHandle, bob1: &mut ClientHandle) -> Vec<Said> {
    assert!(
        alice
            .send(Command::Chat(ChatCommand::Start {
                to: "sip:bob@isc.local".into(),
                convergence_id: None,
            }))
            .await
    );
    let ChatEvent::Invited { chat: b, .. } = chat_event(bob1, "invitation", |e| {
        matches!(e, ChatEvent::Invited { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(
        bob1.send(Command::Chat(ChatCommand::Accept { chat: b }))
            .await
    );
    let ChatEvent::Started { chat: a, .. } =
        chat_event(alice, "started", |e| matches!(e, ChatEvent::Started { .. })).await
    else {
        unreachable!()
    };
    let mut said = Vec::new();
    for (who, text) in [
        ("alice", "hi bob"),
        ("bob", "hi alice"),
        ("alice", "see you at 8"),
    ] {
        let (from, to, chat, peer_chat): (_, _, ChatId, ChatId) = if who == "alice" {
            (&mut *alice, &mut *bob1, a, b)
        } else {
            (&mut *bob1, &mut *alice, b, a)
        };
        let _ = peer_chat;
        assert!(
            from.send(Command::Chat(ChatCommand::Send {
                chat,
                text: text.into()
            }))
            .await
        );
        let ChatEvent::Sent { message_id, .. } =
            chat_event(from, "sent", |e| matches!(e, ChatEvent::Sent { .. })).await
        else {
            unreachable!()
        };
        let got = chat_event(to, "message", |e| matches!(e, ChatEvent::Message { .. })).await;
        let ChatEvent::Message { text: t, at, .. } = got else {
            unreachable!()
        };
        assert_eq!(t, text);
        said.push(Said {
            from: who,
            text,
            at: at.expect("CPIM DateTime"),
            message_id,
        });
        chat_event(from, "delivered", |e| {
            matches!(e, ChatEvent::Delivered { .. })
        })
        .await;
    }
    said
}

async fn pump_until(app: &mut App, link: &mut ClientLink, what: &str, done: impl Fn(&App) -> bool) {
    let until = Instant::now() + WAIT;
    while !done(app) {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, isc::tui::ClientPort::next_event(link)).await {
            Ok(Some(a)) => {
                for c in app.update(a) {
                    dispatch(app, link, c);
                }
            }
            other => panic!("gave up waiting for {what}: {other:?}"),
        }
    }
}

fn run(app: &mut App, link: &mut ClientLink, line: &str) {
    for c in app.update(Action::RunCommand(line.into())) {
        dispatch(app, link, c);
    }
}

fn conversation<'a>(app: &'a App, key: &str) -> &'a [Entry] {
    &app.conversations
        .iter()
        .find(|c| c.key == key)
        .unwrap_or_else(|| panic!("no conversation {key}"))
        .entries
}

fn has_line(app: &App, key: &str, start: &str) -> bool {
    app.conversations
        .iter()
        .filter(|c| c.key == key)
        .flat_map(|c| &c.entries)
        .any(|e| matches!(&e.kind, EntryKind::System(t) if t.starts_with(start)))
}

fn count_lines(app: &App, key: &str, start: &str) -> usize {
    conversation(app, key)
        .iter()
        .filter(|e| matches!(&e.kind, EntryKind::System(t) if t.starts_with(start)))
        .count()
}

/// Every SIP message recorded so far.
fn drain(wire: &mut broadcast::Receiver<WireRecord>) -> Vec<WireRecord> {
    let mut v = Vec::new();
    while let Ok(r) = wire.try_recv() {
        v.push(r);
    }
    v
}

async fn tui_device(
    server: &ServerHandle,
    device: &str,
) -> (App, ClientLink, broadcast::Receiver<WireRecord>) {
    let h = client(server.local_addr(), "bob", device).await;
    let wire = h.wire();
    let mut link = ClientLink::new(h, &format!("bob/{device}"), server.local_addr());
    let mut app = App::new(
        AppConfig::new("bob", "isc.local", device),
        Instant::now(),
        SystemTime::now(),
    );
    // the client registered before the link: the App hears the next refresh
    // or nothing; mark it so the test reads as the user would see it
    app.registration = Registration::Registered { gruu: None };
    let _ = &mut link;
    (app, link, wire)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_fills_its_view_of_the_conversation_from_the_server() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice", "laptop").await;
    let mut bob1 = client(addr, "bob", "bob-1").await;
    let said = alice_and_bob_chat(&mut alice, &mut bob1).await;

    // Later: bob-2 registers and opens the conversation with alice. Its
    // scrollback is empty, so the history is fetched by itself.
    let (mut app, mut link, mut wire) = tui_device(&server, "bob-2").await;
    run(&mut app, &mut link, "chat alice");
    pump_until(&mut app, &mut link, "history", |a| {
        has_line(a, ALICE, "history from server")
    })
    .await;

    // What the user sees: the three messages in order, with senders and
    // their original CPIM times, then the summary line.
    let entries = conversation(&app, ALICE);
    assert_eq!(entries.len(), 4, "{entries:#?}");
    for (e, s) in entries.iter().zip(&said) {
        let EntryKind::Message { from, text, .. } = &e.kind else {
            panic!("{e:?}")
        };
        let who = if s.from == "bob" {
            Sender::You
        } else {
            Sender::Peer("alice".into())
        };
        assert_eq!((from, text.as_str()), (&who, s.text));
        let secs = parse_rfc3339(&s.at).expect("RFC 3339");
        assert_eq!(e.at, UNIX_EPOCH + Duration::from_secs(secs), "{}", s.at);
    }
    assert!(
        matches!(&entries[3].kind, EntryKind::System(t) if t == "history from server: 3 messages"),
        "{:?}",
        entries[3]
    );

    // The wire: INVITE history@isc.local, multipart/mixed of a recvonly
    // MSRP offer and the URI list naming the conversation; 200 sendonly.
    let records = drain(&mut wire);
    let msgs: Vec<(Direction, rsip::SipMessage)> = records
        .iter()
        .filter_map(|r| parse_message(&r.bytes).ok().map(|m| (r.direction, m)))
        .collect();
    let invite = msgs
        .iter()
        .rev()
        .find_map(|(d, m)| match m {
            rsip::SipMessage::Request(r)
                if *d == Direction::Sent
                    && r.method == rsip::Method::Invite
                    && r.uri.to_string() == "sip:history@isc.local" =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("history INVITE sent");
    let ct = invite.headers.get_raw("Content-Type").unwrap();
    assert!(ct.starts_with("multipart/mixed"), "{ct}");
    let mp = Multipart::parse_with_content_type(&ct, &invite.body).unwrap();
    let sdp =
        String::from_utf8_lossy(&mp.part_of_type("application/sdp").unwrap().body).to_string();
    assert!(sdp.contains("a=recvonly\r\n"), "{sdp}");
    assert!(sdp.contains("m=message "), "{sdp}");
    let list_part = mp.part_of_type("application/resource-lists+xml").unwrap();
    let list = ResourceLists::parse(&list_part.body).unwrap();
    let uris: Vec<&str> = list.entries().iter().map(|e| e.uri.as_str()).collect();
    assert_eq!(uris, [ALICE]);
    assert!(
        invite
            .headers
            .get_raw("Contact")
            .unwrap()
            .contains("+g.oma.sip-im")
    );
    let ok = msgs
        .iter()
        .find_map(|(d, m)| match m {
            rsip::SipMessage::Response(r)
                if *d == Direction::Received
                    && r.status_code.code() == 200
                    && isc::proto::sip::build::call_id(&r.headers)
                        == isc::proto::sip::build::call_id(&invite.headers) =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("200 to the history INVITE");
    let answer = String::from_utf8_lossy(&ok.body);
    assert!(answer.contains("a=sendonly"), "{answer}");
    // The server ended the session with a BYE, answered 200.
    assert!(msgs.iter().any(|(d, m)| *d == Direction::Received
        && matches!(m, rsip::SipMessage::Request(r) if r.method == rsip::Method::Bye)));

    // Asking again adds nothing already shown. (`:chat` may since have
    // opened the MSRP session's own entry: name the user.)
    run(&mut app, &mut link, "history alice");
    pump_until(&mut app, &mut link, "second history", |a| {
        count_lines(a, ALICE, "history from server") == 2
    })
    .await;
    let entries = conversation(&app, ALICE);
    assert_eq!(entries.len(), 5);
    assert!(
        matches!(&entries[4].kind, EntryKind::System(t) if t == "history from server: 0 messages (3 already shown)"),
        "{:?}",
        entries[4]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_foreign_references_are_told_to_the_user() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice", "laptop").await;
    let mut bob1 = client(addr, "bob", "bob-1").await;
    let said = alice_and_bob_chat(&mut alice, &mut bob1).await;

    // One message by its Message-ID: just that one.
    let mut bob2 = client(addr, "bob", "bob-2").await;
    assert!(
        bob2.send(Command::History(HistoryQuery {
            conversation: ALICE.into(),
            references: vec![said[1].message_id.clone()],
        }))
        .await
    );
    match history_event(&mut bob2).await {
        HistoryEvent::Retrieved {
            items, complete, ..
        } => {
            assert!(complete);
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].text, "hi alice");
            assert_eq!(items[0].from, "sip:bob@isc.local");
            assert_eq!(items[0].at.as_deref(), Some(said[1].at.as_str()));
        }
        other => panic!("{other:?}"),
    }

    // An unknown reference: 404 with the reason, as a line in the view.
    let mut app = App::new(
        AppConfig::new("bob", "isc.local", "bob-2"),
        Instant::now(),
        SystemTime::now(),
    );
    assert!(
        bob2.send(Command::History(HistoryQuery {
            conversation: ALICE.into(),
            references: vec!["no-such-message".into()],
        }))
        .await
    );
    let ev = history_event(&mut bob2).await;
    let HistoryEvent::Failed { error, .. } = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!(error.status(), Some(404));
    app.update(Action::Client(ClientEvent::History(ev.clone())));
    assert!(
        has_line(
            &app,
            ALICE,
            "history: no such history on the server: no stored history for no-such-message (404 Not Found)"
        ),
        "{:#?}",
        app.conversations
    );

    // Carol asks for a message of alice and bob's conversation: 403.
    let mut carol = client(addr, "carol", "phone").await;
    assert!(
        carol
            .send(Command::History(HistoryQuery {
                conversation: ALICE.into(),
                references: vec![said[0].message_id.clone()],
            }))
            .await
    );
    let ev = history_event(&mut carol).await;
    let HistoryEvent::Failed { error, .. } = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!(error.status(), Some(403));
    let text = error.to_string();
    assert!(
        text.starts_with("history refused by the server: history reference ")
            && text.ends_with("belongs to another user's conversation (403 Forbidden)"),
        "{text}"
    );
    // And carol has no conversation with alice at all: 404, said so.
    assert!(
        carol
            .send(Command::History(HistoryQuery::conversation(ALICE)))
            .await
    );
    let ev = history_event(&mut carol).await;
    assert!(
        matches!(&ev, HistoryEvent::Failed { error, .. } if error.status() == Some(404)),
        "{ev:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_history_prints_the_messages() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice", "laptop").await;
    let mut bob1 = client(addr, "bob", "bob-1").await;
    let said = alice_and_bob_chat(&mut alice, &mut bob1).await;

    let state = tempfile::tempdir().unwrap();
    let mut s = headless_support::Session::start(addr, "bob", "bob-2", state.path()).await;
    s.expect("registered").await;
    s.say(r#"{"cmd":"history","with":"alice"}"#).await;
    let req = s.expect("history_requested").await;
    assert_eq!(req["with"], ALICE);
    assert_eq!(req["refs"], serde_json::json!([ALICE]));
    let got = s.expect("history").await;
    assert_eq!(got["count"], 3);
    assert_eq!(got["complete"], true);
    for (m, said) in got["messages"].as_array().unwrap().iter().zip(&said) {
        assert_eq!(m["text"], said.text);
        assert_eq!(m["at"], said.at.as_str());
        assert_eq!(m["from"], format!("sip:{}@isc.local", said.from));
    }
    s.say("history alice no-such-message").await;
    let failed = s.expect("history_failed").await;
    assert_eq!(failed["status"], 404);
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("no-such-message")
    );
    s.say("quit").await;
    s.expect("stopped").await;
    server.shutdown().await;
}
