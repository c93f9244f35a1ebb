//! Large Message mode over real sockets with the bundled server (seed 003
//! 9.1.1.2, 9.2.2, 9.4.2; RFC 4975 §5.1 chunking): a 20 MiB attachment
//! from Alice to Bob, saved byte-identical in his downloads dir next to a
//! file of the same name; a long text rendered in the conversation; a type
//! Bob does not take refused with 488; a message to two users through the
//! conference factory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use isc::client::chat::{ChatEvent, EndReason};
use isc::client::chat_headless::event_json;
use isc::client::chats::ChatCommand;
use isc::client::large_message::{Disposition, LargeMessage};
use isc::client::runner::{ClientHandle, Direction, WireRecord};
use isc::client::{ClientEvent, Command, UaConfig};
use isc::server::runner::{Server, ServerHandle, ServerOptions};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(60);

mod live_client;

async fn client(
    server: std::net::SocketAddr,
    user: &str,
    device: &str,
    tune: impl FnOnce(&mut UaConfig),
) -> ClientHandle {
    live_client::registered(server, user, device, WAIT, tune).await
}

/// Every chat event until `last` matches (inclusive).
async fn chat_events_until(
    c: &mut ClientHandle,
    what: &str,
    last: impl Fn(&ChatEvent) -> bool,
) -> Vec<ChatEvent> {
    let mut seen = Vec::new();
    loop {
        match c.next_event(WAIT).await {
            Some(ClientEvent::Chat(e)) => {
                let done = last(&e);
                seen.push(e);
                if done {
                    return seen;
                }
            }
            Some(_) => {}
            None => panic!("no {what}; saw {seen:?}"),
        }
    }
}

/// SIP messages a client sent or received, as text.
fn drain_wire(rx: &mut broadcast::Receiver<WireRecord>) -> Vec<(Direction, String)> {
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push((r.direction, String::from_utf8_lossy(&r.bytes).into_owned()));
    }
    out
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Pseudo-random bytes (xorshift), so a shifted or repeated chunk shows.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn progress(evs: &[ChatEvent], out: bool) -> Vec<(u64, u64)> {
    evs.iter()
        .filter_map(|e| match e {
            ChatEvent::LargeProgress {
                outgoing,
                bytes,
                total,
                ..
            } if *outgoing == out => Some((*bytes, *total)),
            _ => None,
        })
        .collect()
}

/// The headers of the first SEND carrying `needle`'s message, from the
/// server's MSRP trace.
fn first_send_headers(frames: &[String], needle: &str) -> Option<String> {
    frames
        .iter()
        .find(|f| f.contains(" SEND\r\n") && f.contains(needle))
        .map(|f| f.split("\r\n\r\n").next().unwrap_or_default().to_owned())
}

/// Collects the start of every MSRP frame the server sees (headers only).
fn trace_msrp(server: &ServerHandle) -> tokio::task::JoinHandle<Vec<String>> {
    let mut rx = server.wire();
    tokio::spawn(async move {
        let mut frames = Vec::new();
        loop {
            match rx.recv().await {
                Ok(ev) if ev.bytes.starts_with(b"MSRP ") => {
                    let head = &ev.bytes[..ev.bytes.len().min(1024)];
                    frames.push(String::from_utf8_lossy(head).into_owned());
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return frames,
            }
        }
    })
}

fn is_end(e: &ChatEvent) -> bool {
    matches!(e, ChatEvent::Ended { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mib_attachment_arrives_byte_identical_and_is_saved_beside_an_existing_file() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let trace = trace_msrp(&server);
    let addr = server.local_addr();
    let files = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    // a file of the same name is already there: it must stay as it is
    std::fs::write(downloads.path().join("holiday.mp4"), b"older film").unwrap();
    let dl: PathBuf = downloads.path().to_path_buf();
    let mut alice = client(addr, "alice", "laptop", |_| {}).await;
    let mut bob = client(addr, "bob", "phone", |c| c.downloads_dir = Some(dl)).await;
    let mut alice_wire = alice.wire();
    let mut bob_wire = bob.wire();

    let body = noise(20 * 1024 * 1024);
    let path = files.path().join("holiday.mp4");
    std::fs::write(&path, &body).unwrap();
    assert!(
        alice
            .send(Command::Chat(ChatCommand::SendFile {
                to: vec!["sip:bob@isc.local".into()],
                path: path.clone(),
                disposition: Disposition::Attachment,
                description: Some("our holiday".into()),
            }))
            .await
    );

    let bob_evs = chat_events_until(&mut bob, "bob's saved file", |e| {
        matches!(
            e,
            ChatEvent::LargeSaved { .. } | ChatEvent::LargeFailed { .. }
        ) || is_end(e)
    })
    .await;
    let alice_evs = chat_events_until(&mut alice, "alice's session end", is_end).await;

    // Alice: progress up to the whole size, sent, then a normal end (her BYE)
    let sent = progress(&alice_evs, true);
    assert!(sent.len() >= 50, "per-percent progress: {}", sent.len());
    assert!(sent.windows(2).all(|w| w[0].0 < w[1].0), "{sent:?}");
    assert_eq!(sent.last(), Some(&(body.len() as u64, body.len() as u64)));
    assert!(
        alice_evs
            .iter()
            .any(|e| matches!(e, ChatEvent::LargeSent { size, .. } if *size == body.len() as u64)),
        "{alice_evs:?}"
    );
    assert!(matches!(
        alice_evs.last(),
        Some(ChatEvent::Ended {
            reason: EndReason::Normal,
            ..
        })
    ));

    // Bob: told it comes, progress, saved under a new name; same bytes
    assert!(
        matches!(
            &bob_evs[..],
            [ChatEvent::LargeIncoming { from, content_type: Some(ct), size, .. }, ..]
                if from == "sip:alice@isc.local" && ct == "video/mp4" && *size == body.len() as u64
        ),
        "{:?}",
        bob_evs.first()
    );
    let got = progress(&bob_evs, false);
    assert!(got.len() >= 50, "per-percent progress: {}", got.len());
    assert_eq!(got.last().map(|p| p.0), Some(body.len() as u64));
    let Some(ChatEvent::LargeSaved {
        path: saved,
        size,
        description,
        from,
        ..
    }) = bob_evs.last()
    else {
        panic!("{:?}", bob_evs.last())
    };
    assert_eq!(saved, &downloads.path().join("holiday (1).mp4"));
    assert_eq!(*size, body.len() as u64);
    assert_eq!(description.as_deref(), Some("our holiday"));
    assert_eq!(from, "sip:alice@isc.local");
    assert_eq!(sha256(&std::fs::read(saved).unwrap()), sha256(&body));
    assert_eq!(
        std::fs::read(downloads.path().join("holiday.mp4")).unwrap(),
        b"older film"
    );
    // what the user sees: the saved path on the JSON line
    let line = event_json(bob_evs.last().unwrap()).to_string();
    assert!(line.contains("\"event\":\"large_saved\""), "{line}");
    assert!(line.contains("holiday (1).mp4"), "{line}");

    // The wire: the INVITE (seed 003 9.1.1.2 steps 5.a, 6; RFC 5547 §6)
    let bob_end = chat_events_until(&mut bob, "bob's session end", is_end).await;
    assert!(
        matches!(
            bob_end.last(),
            Some(ChatEvent::Ended {
                reason: EndReason::Normal,
                ..
            })
        ),
        "{bob_end:?}"
    );
    let a = drain_wire(&mut alice_wire);
    let invite = a
        .iter()
        .find(|(d, m)| *d == Direction::Sent && m.starts_with("INVITE "))
        .map(|(_, m)| m.clone())
        .expect("alice's INVITE");
    for needle in [
        "a=sendonly\r\n",
        &format!("a=file-size:{}\r\n", body.len()),
        "a=file-disposition:attachment\r\n",
        "a=accept-types:video/mp4\r\n",
        "m=message ",
    ] {
        assert!(
            invite.contains(needle),
            "INVITE lacks {needle:?}:\n{invite}"
        );
    }
    assert!(!invite.contains("a=file-selector"), "not a file transfer");
    let ok = a
        .iter()
        .find(|(d, m)| {
            *d == Direction::Received && m.starts_with("SIP/2.0 200") && m.contains("INVITE")
        })
        .map(|(_, m)| m.clone())
        .expect("200 to the INVITE");
    assert!(ok.contains("a=recvonly\r\n"), "{ok}");
    // after the message, Alice closes (seed 003 9.4.2)
    assert!(
        a.iter()
            .any(|(d, m)| *d == Direction::Sent && m.starts_with("BYE ")),
        "alice sends BYE"
    );
    // Bob's INVITE from the CPM Participating Function keeps the attributes
    let b = drain_wire(&mut bob_wire);
    let binvite = b
        .iter()
        .find(|(d, m)| *d == Direction::Received && m.starts_with("INVITE "))
        .map(|(_, m)| m.clone())
        .expect("bob's INVITE");
    assert!(binvite.contains("a=sendonly\r\n"), "{binvite}");
    assert!(
        binvite.contains(&format!("a=file-size:{}\r\n", body.len())),
        "{binvite}"
    );
    let bok = b
        .iter()
        .find(|(d, m)| {
            *d == Direction::Sent && m.starts_with("SIP/2.0 200") && m.contains("INVITE")
        })
        .map(|(_, m)| m.clone())
        .expect("bob's 200");
    assert!(bok.contains("a=recvonly\r\n"), "{bok}");

    // The MSRP SENDs carry Content-Disposition and Content-Description
    // (seed 003 9.4.2 steps 1–2) and ask for a success REPORT (9.1.1.2)
    server.shutdown().await;
    let frames = trace.await.unwrap();
    let head = first_send_headers(&frames, "Content-Disposition").expect("a SEND with the headers");
    for needle in [
        "Content-Disposition: attachment; filename=\"holiday.mp4\"\r\n",
        "Content-Description: our holiday\r\n",
        "Content-Type: video/mp4",
        "Success-Report: yes\r\n",
        &format!("Byte-Range: 1-65536/{}\r\n", body.len()),
    ] {
        assert!(head.contains(needle), "SEND lacks {needle:?}:\n{head}");
    }
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_text_is_rendered_in_the_conversation_and_not_saved() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let downloads = tempfile::tempdir().unwrap();
    let dl = downloads.path().to_path_buf();
    let mut alice = client(addr, "alice", "laptop", |_| {}).await;
    let mut bob = client(addr, "bob", "phone", |c| c.downloads_dir = Some(dl)).await;
    let text: String = (0..40_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect::<String>()
        + " — the end";
    assert!(
        alice
            .send(Command::Chat(ChatCommand::SendLarge {
                to: vec!["sip:bob@isc.local".into()],
                message: Box::new(LargeMessage::text(&text)),
            }))
            .await
    );
    let evs = chat_events_until(&mut bob, "the rendered text", |e| {
        matches!(e, ChatEvent::Message { .. }) || is_end(e)
    })
    .await;
    let Some(ChatEvent::Message {
        from, text: got, ..
    }) = evs.last()
    else {
        panic!("{evs:?}")
    };
    assert_eq!(from, "sip:alice@isc.local");
    assert_eq!(got, &text);
    let line = event_json(evs.last().unwrap()).to_string();
    assert!(line.contains("\"event\":\"chat_message\""), "{line}");
    let alice_evs = chat_events_until(&mut alice, "alice's end", is_end).await;
    assert!(
        alice_evs
            .iter()
            .any(|e| matches!(e, ChatEvent::LargeSent { .. })),
        "{alice_evs:?}"
    );
    let _ = chat_events_until(&mut bob, "bob's end", is_end).await;
    assert_eq!(std::fs::read_dir(downloads.path()).unwrap().count(), 0);
    alice.shutdown().await;
    bob.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_bob_does_not_take_is_refused_with_488_shown_to_alice() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice", "laptop", |_| {}).await;
    let mut bob = client(addr, "bob", "phone", |c| {
        c.large.accept_types = vec!["text/*".into(), "image/*".into()];
    })
    .await;
    let mut alice_wire = alice.wire();
    let mut bob_wire = bob.wire();
    assert!(
        alice
            .send(Command::Chat(ChatCommand::SendLarge {
                to: vec!["sip:bob@isc.local".into()],
                message: Box::new(LargeMessage::file("archive.zip", vec![1; 5000])),
            }))
            .await
    );
    let evs = chat_events_until(&mut alice, "alice's end", is_end).await;
    let Some(ChatEvent::Ended {
        reason: EndReason::Error { status, .. },
        ..
    }) = evs.last()
    else {
        panic!("{evs:?}")
    };
    assert_eq!(*status, Some(488));
    let line = event_json(evs.last().unwrap()).to_string();
    assert!(line.contains("\"status\":488"), "{line}");
    // Bob answered 488 with a Warning naming the type (seed 003 9.2.2 step 1)
    let b = drain_wire(&mut bob_wire);
    let refusal = b
        .iter()
        .find(|(d, m)| *d == Direction::Sent && m.starts_with("SIP/2.0 488"))
        .map(|(_, m)| m.clone())
        .expect("bob's 488");
    assert!(refusal.contains("application/zip"), "{refusal}");
    let a = drain_wire(&mut alice_wire);
    assert!(
        a.iter()
            .any(|(d, m)| *d == Direction::Received && m.starts_with("SIP/2.0 488")),
        "alice receives the 488"
    );
    // Bob saw nothing to accept
    let bob_saw: Vec<_> = std::iter::from_fn(|| bob.events.try_recv().ok())
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Chat(ChatEvent::LargeIncoming { .. } | ChatEvent::Invited { .. })
            )
        })
        .collect();
    assert!(bob_saw.is_empty(), "{bob_saw:?}");
    alice.shutdown().await;
    bob.shutdown().await;
    server.shutdown().await;
}

/// The path the runner reports when a file cannot be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_is_a_clear_error() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let mut alice = client(server.local_addr(), "alice", "laptop", |_| {}).await;
    let missing = Path::new("/nonexistent/isc/none.bin").to_path_buf();
    assert!(
        alice
            .send(Command::Chat(ChatCommand::SendFile {
                to: vec!["sip:bob@isc.local".into()],
                path: missing,
                disposition: Disposition::Attachment,
                description: None,
            }))
            .await
    );
    let evs = chat_events_until(&mut alice, "the failure", |e| {
        matches!(e, ChatEvent::LargeFailed { .. })
    })
    .await;
    let Some(ChatEvent::LargeFailed { chat: None, reason }) = evs.last() else {
        panic!("{evs:?}")
    };
    assert!(reason.contains("/nonexistent/isc/none.bin"), "{reason}");
    alice.shutdown().await;
    server.shutdown().await;
}

/// Seed 003 9.1.1.2 step 3, 9.3.1.1, 9.3.2.1: to two users through the
/// conference factory; each gets the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_a_group_through_the_conference_factory() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let files = tempfile::tempdir().unwrap();
    let (bob_dl, carol_dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice = client(addr, "alice", "laptop", |_| {}).await;
    let (b, c) = (bob_dl.path().to_path_buf(), carol_dl.path().to_path_buf());
    let mut bob = client(addr, "bob", "phone", |cfg| cfg.downloads_dir = Some(b)).await;
    let mut carol = client(addr, "carol", "tablet", |cfg| cfg.downloads_dir = Some(c)).await;
    let mut alice_wire = alice.wire();
    let mut bob_wire = bob.wire();
    let body = noise(3 * 1024 * 1024 + 17);
    let path = files.path().join("slides.pdf");
    std::fs::write(&path, &body).unwrap();
    assert!(
        alice
            .send(Command::Chat(ChatCommand::SendFile {
                to: vec!["sip:bob@isc.local".into(), "sip:carol@isc.local".into()],
                path,
                disposition: Disposition::Attachment,
                description: None,
            }))
            .await
    );
    for (who, c, dir) in [
        ("bob", &mut bob, bob_dl.path()),
        ("carol", &mut carol, carol_dl.path()),
    ] {
        let evs = chat_events_until(c, who, |e| {
            matches!(
                e,
                ChatEvent::LargeSaved { .. } | ChatEvent::LargeFailed { .. }
            ) || is_end(e)
        })
        .await;
        let Some(ChatEvent::LargeSaved { path, .. }) = evs.last() else {
            panic!("{who}: {evs:?}")
        };
        assert_eq!(path, &dir.join("slides.pdf"), "{who}");
        assert_eq!(
            sha256(&std::fs::read(path).unwrap()),
            sha256(&body),
            "{who}"
        );
        assert!(
            matches!(evs.first(), Some(ChatEvent::LargeIncoming { size, .. }) if *size == body.len() as u64),
            "{who}: {:?}",
            evs.first()
        );
    }
    let alice_evs = chat_events_until(&mut alice, "alice's end", is_end).await;
    assert!(
        alice_evs
            .iter()
            .any(|e| matches!(e, ChatEvent::LargeSent { .. })),
        "{alice_evs:?}"
    );
    assert!(matches!(
        alice_evs.last(),
        Some(ChatEvent::Ended {
            reason: EndReason::Normal,
            ..
        })
    ));
    // the INVITE went to the factory with the list (multipart/mixed)
    let a = drain_wire(&mut alice_wire);
    let invite = a
        .iter()
        .find(|(d, m)| *d == Direction::Sent && m.starts_with("INVITE "))
        .map(|(_, m)| m.clone())
        .expect("alice's INVITE");
    assert!(
        invite.starts_with("INVITE sip:conf-factory@isc.local"),
        "{invite}"
    );
    assert!(invite.contains("multipart/mixed"), "{invite}");
    assert!(invite.contains("sip:carol@isc.local"), "{invite}");
    assert!(invite.contains("a=sendonly\r\n"), "{invite}");
    // the focus's INVITE to bob keeps the Large Message attributes
    let _ = chat_events_until(&mut bob, "bob's end", is_end).await;
    let b = drain_wire(&mut bob_wire);
    let binvite = b
        .iter()
        .find(|(d, m)| *d == Direction::Received && m.starts_with("INVITE "))
        .map(|(_, m)| m.clone())
        .expect("bob's INVITE");
    assert!(binvite.contains("isfocus"), "{binvite}");
    assert!(binvite.contains("a=sendonly\r\n"), "{binvite}");
    assert!(
        binvite.contains(&format!("a=file-size:{}\r\n", body.len())),
        "{binvite}"
    );
    assert!(
        binvite.contains("a=accept-types:application/pdf\r\n"),
        "{binvite}"
    );
    alice.shutdown().await;
    bob.shutdown().await;
    carol.shutdown().await;
    server.shutdown().await;
}

/// Multi-device (seed 001 8.3.2.1.1 with seed 003 9.2.2): Bob's two
/// devices are both invited; the first to accept keeps the message, the
/// other is told it was completed elsewhere. Exactly one copy is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_bobs_devices_gets_it_the_other_is_told_completed_elsewhere() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let dl = tempfile::tempdir().unwrap();
    let (d1, d2) = (dl.path().join("phone"), dl.path().join("tv"));
    let mut alice = client(addr, "alice", "laptop", |_| {}).await;
    let mut phone = client(addr, "bob", "phone", |c| c.downloads_dir = Some(d1)).await;
    let mut tv = client(addr, "bob", "tv", |c| c.downloads_dir = Some(d2)).await;
    let body = noise(1024 * 1024);
    assert!(
        alice
            .send(Command::Chat(ChatCommand::SendLarge {
                to: vec!["sip:bob@isc.local".into()],
                message: Box::new(LargeMessage::file("song.mp3", body.clone())),
            }))
            .await
    );
    let mut saved = Vec::new();
    let mut elsewhere = 0;
    for dev in [&mut phone, &mut tv] {
        let evs = chat_events_until(dev, "an outcome", |e| {
            matches!(
                e,
                ChatEvent::LargeSaved { .. } | ChatEvent::LargeFailed { .. }
            ) || matches!(
                e,
                ChatEvent::Ended {
                    reason: EndReason::CompletedElsewhere | EndReason::Error { .. },
                    ..
                }
            )
        })
        .await;
        match evs.last() {
            Some(ChatEvent::LargeSaved { path, .. }) => saved.push(path.clone()),
            Some(ChatEvent::Ended {
                reason: EndReason::CompletedElsewhere,
                ..
            }) => elsewhere += 1,
            other => panic!("{other:?} after {evs:?}"),
        }
    }
    assert_eq!((saved.len(), elsewhere), (1, 1), "{saved:?}");
    assert_eq!(sha256(&std::fs::read(&saved[0]).unwrap()), sha256(&body));
    let alice_evs = chat_events_until(&mut alice, "alice's end", is_end).await;
    assert!(matches!(
        alice_evs.last(),
        Some(ChatEvent::Ended {
            reason: EndReason::Normal,
            ..
        })
    ));
    alice.shutdown().await;
    phone.shutdown().await;
    tv.shutdown().await;
    server.shutdown().await;
}

/// A pager MESSAGE larger than the pager limit (RFC 3428 §4: 1300 bytes)
/// goes in Large Message mode; the sender sees it delivered under its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pager_message_above_the_limit_goes_as_a_large_message() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let mut alice = client(addr, "alice", "laptop", |_| {}).await;
    let mut bob = client(addr, "bob", "phone", |_| {}).await;
    let mut alice_wire = alice.wire();
    let text = "long letter ".repeat(200);
    assert!(text.len() > isc::client::large_message::PAGER_LIMIT);
    assert!(
        alice
            .send(Command::SendMessage {
                to: "sip:bob@isc.local".into(),
                text: text.clone(),
                id: Some("letter".into()),
            })
            .await
    );
    let evs = chat_events_until(&mut bob, "the letter", |e| {
        matches!(e, ChatEvent::Message { .. }) || is_end(e)
    })
    .await;
    assert!(
        matches!(evs.last(), Some(ChatEvent::Message { text: t, .. }) if *t == text),
        "{evs:?}"
    );
    let delivered = alice
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::MessageDelivered { .. } | ClientEvent::MessageFailed { .. }
            )
        })
        .await;
    assert_eq!(
        delivered,
        Some(ClientEvent::MessageDelivered {
            id: "letter".into(),
            to: "sip:bob@isc.local".into(),
            status: 200
        })
    );
    let a = drain_wire(&mut alice_wire);
    assert!(
        !a.iter()
            .any(|(d, m)| *d == Direction::Sent && m.starts_with("MESSAGE ")),
        "no pager MESSAGE"
    );
    assert!(
        a.iter().any(|(d, m)| *d == Direction::Sent
            && m.starts_with("INVITE ")
            && m.contains("a=sendonly")),
        "a Large Message INVITE"
    );
    alice.shutdown().await;
    bob.shutdown().await;
    server.shutdown().await;
}

/// Seed 003 9.1.1.2 step 4, 9.3.2.1 step 3: to a pre-defined group (its
/// identity as Request-URI); the focus invites the members, and each
/// registered one gets the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_a_pre_defined_group_its_members_get_it() {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.groups = vec![isc::config::GroupConfig {
        name: "team".into(),
        members: vec!["alice".into(), "bob".into(), "carol".into()],
        max_participants: 16,
        joining_policy: Default::default(),
        public: false,
    }];
    let server = Server::start(opts).await.expect("server starts");
    let addr = server.local_addr();
    let (bob_dl, carol_dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (b, c) = (bob_dl.path().to_path_buf(), carol_dl.path().to_path_buf());
    let mut alice = client(addr, "alice", "laptop", |_| {}).await;
    let mut bob = client(addr, "bob", "phone", |cfg| cfg.downloads_dir = Some(b)).await;
    let mut carol = client(addr, "carol", "tablet", |cfg| cfg.downloads_dir = Some(c)).await;
    let body = noise(512 * 1024);
    assert!(
        alice
            .send(Command::Chat(ChatCommand::SendLarge {
                to: vec!["sip:team@isc.local".into()],
                message: Box::new(LargeMessage::file("minutes.pdf", body.clone())),
            }))
            .await
    );
    for (who, c) in [("bob", &mut bob), ("carol", &mut carol)] {
        let evs = chat_events_until(c, who, |e| {
            matches!(
                e,
                ChatEvent::LargeSaved { .. } | ChatEvent::LargeFailed { .. }
            ) || is_end(e)
        })
        .await;
        let Some(ChatEvent::LargeSaved { path, .. }) = evs.last() else {
            panic!("{who}: {evs:?}")
        };
        assert_eq!(
            sha256(&std::fs::read(path).unwrap()),
            sha256(&body),
            "{who}"
        );
    }
    let alice_evs = chat_events_until(&mut alice, "alice's end", is_end).await;
    assert!(
        alice_evs
            .iter()
            .any(|e| matches!(e, ChatEvent::LargeSent { .. })),
        "{alice_evs:?}"
    );
    alice.shutdown().await;
    bob.shutdown().await;
    carol.shutdown().await;
    server.shutdown().await;
}
