//! Large Message between two chat endpoints, no sockets, virtual time
//! (seed 003 9.1.1.2, 9.2.2, 9.4.2): the offer, the automatic answer, the
//! chunked SENDs with their MIME headers, progress, the sender's BYE; a
//! refused type; a text rendered as a message.

#[path = "chat_support/mod.rs"]
mod chat_support;

use chat_support::{Net, Peer};
use isc::client::chat::{ChatEvent, EndReason};
use isc::client::chats::ChatCommand;
use isc::client::large_message::{Disposition, LargeMessage};
use isc::proto::sip::session_timer::SessionTimerConfig;

fn addr(port: u16) -> std::net::SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn pair() -> Net {
    Net::new(vec![
        Peer::new("alice", 5070, addr(5080), SessionTimerConfig::default()),
        Peer::new("bob", 5080, addr(5070), SessionTimerConfig::default()),
    ])
}

fn send(net: &mut Net, message: LargeMessage) {
    let now = net.now;
    net.peers[0]
        .command(
            now,
            ChatCommand::SendLarge {
                to: vec!["sip:bob@isc.local".into()],
                message: Box::new(message),
            },
        )
        .expect("a chat id");
    net.run();
}

fn ended(evs: &[ChatEvent]) -> Option<&EndReason> {
    evs.iter().rev().find_map(|e| match e {
        ChatEvent::Ended { reason, .. } => Some(reason),
        _ => None,
    })
}

#[test]
fn attachment_is_offered_sent_in_chunks_received_whole_and_closed() {
    let mut net = pair();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut m = LargeMessage::file("plan.png", body.clone());
    m.description = Some("the plan".into());
    send(&mut net, m);
    // the sender's BYE comes from its timer (sans-IO: at `now`)
    net.advance(std::time::Duration::from_millis(1));

    let invite = net
        .trace
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("an INVITE");
    for needle in [
        "a=sendonly\r\n",
        "a=file-size:300000\r\n",
        "a=file-disposition:attachment\r\n",
        "a=accept-types:image/png\r\n",
    ] {
        assert!(invite.contains(needle), "{needle:?} in\n{invite}");
    }
    let ok = net
        .trace
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("INVITE"))
        .expect("bob's 200");
    assert!(ok.contains("a=recvonly\r\n"), "{ok}");
    assert!(
        !net.trace.iter().any(|m| m.starts_with("SIP/2.0 180")),
        "accepted at once (seed 003 9.2.2 step 3)"
    );
    assert!(net.trace.iter().any(|m| m.starts_with("BYE ")));

    let bob = net.peers[1].take_events();
    assert!(
        !bob.iter().any(|e| matches!(e, ChatEvent::Invited { .. })),
        "no invitation to answer: {bob:?}"
    );
    assert!(matches!(
        bob.first(),
        Some(ChatEvent::LargeIncoming { size: 300_000, content_type: Some(ct), .. }) if ct == "image/png"
    ));
    let got: Vec<u64> = bob
        .iter()
        .filter_map(|e| match e {
            ChatEvent::LargeProgress {
                outgoing: false,
                bytes,
                ..
            } => Some(*bytes),
            _ => None,
        })
        .collect();
    // 300 000 bytes in 64 KiB chunks: five chunks, five steps
    assert_eq!(got, vec![65_536, 131_072, 196_608, 262_144, 300_000]);
    let received = bob
        .iter()
        .find_map(|e| match e {
            ChatEvent::LargeReceived {
                body: b,
                content_type,
                disposition,
                filename,
                description,
                from,
                ..
            } => Some((
                b.clone(),
                content_type.clone(),
                *disposition,
                filename.clone(),
                description.clone(),
                from.clone(),
            )),
            _ => None,
        })
        .expect("the whole message");
    assert_eq!(received.0, body);
    assert_eq!(received.1, "image/png");
    assert_eq!(received.2, Disposition::Attachment);
    assert_eq!(received.3.as_deref(), Some("plan.png"));
    assert_eq!(received.4.as_deref(), Some("the plan"));
    assert_eq!(received.5, "sip:alice@isc.local");
    assert_eq!(ended(&bob), Some(&EndReason::Normal));

    let alice = net.peers[0].take_events();
    let sent: Vec<u64> = alice
        .iter()
        .filter_map(|e| match e {
            ChatEvent::LargeProgress {
                outgoing: true,
                bytes,
                total: 300_000,
                ..
            } => Some(*bytes),
            _ => None,
        })
        .collect();
    assert_eq!(sent.last(), Some(&300_000));
    assert!(
        alice
            .iter()
            .any(|e| matches!(e, ChatEvent::LargeSent { size: 300_000, .. }))
    );
    assert_eq!(ended(&alice), Some(&EndReason::Normal));
}

#[test]
fn a_type_not_taken_is_refused_with_488_and_a_warning() {
    let mut net = pair();
    net.peers[1].chats.large_settings_mut().accept_types = vec!["text/*".into()];
    send(&mut net, LargeMessage::file("a.zip", vec![0; 10]));
    let refusal = net
        .trace
        .iter()
        .find(|m| m.starts_with("SIP/2.0 488"))
        .expect("a 488");
    assert!(
        refusal.contains("Warning: 399 isc \"content type application/zip not accepted\""),
        "{refusal}"
    );
    let alice = net.peers[0].take_events();
    assert!(matches!(
        ended(&alice),
        Some(EndReason::Error {
            status: Some(488),
            ..
        })
    ));
    assert!(
        !net.peers[1]
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::LargeIncoming { .. }))
    );
}

#[test]
fn a_size_above_the_limit_is_refused_with_488() {
    let mut net = pair();
    net.peers[1].chats.large_settings_mut().max_size = 1000;
    send(&mut net, LargeMessage::file("a.txt", vec![b'a'; 1001]));
    let refusal = net
        .trace
        .iter()
        .find(|m| m.starts_with("SIP/2.0 488"))
        .expect("a 488");
    assert!(refusal.contains("1001"), "{refusal}");
}

#[test]
fn a_rendered_text_becomes_a_conversation_message() {
    let mut net = pair();
    let text = "x".repeat(5000);
    send(&mut net, LargeMessage::text(&text));
    net.advance(std::time::Duration::from_millis(1));
    assert_eq!(
        net.peers[1].messages(),
        vec![("sip:alice@isc.local".to_string(), text)]
    );
    assert!(
        !net.peers[1]
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::LargeReceived { .. }))
    );
    assert_eq!(net.peers[1].ended(), Some(&EndReason::Normal));
}

#[test]
fn no_recipient_is_an_error_not_a_session() {
    let mut net = pair();
    let now = net.now;
    let id = net.peers[0].command(
        now,
        ChatCommand::SendLarge {
            to: vec![],
            message: Box::new(LargeMessage::text("hi")),
        },
    );
    assert_eq!(id, None);
    assert!(matches!(
        net.peers[0].events.last(),
        Some(ChatEvent::LargeFailed { chat: None, .. })
    ));
}

/// A hand-driven pair where Alice's MSRP bytes can be held back, so her BYE
/// overtakes her last chunks (as it may through the server: SIP and MSRP
/// take their own ways).
struct Held {
    peers: Vec<Peer>,
    now: std::time::Instant,
    held: std::collections::VecDeque<Vec<u8>>,
    hold: bool,
}

const A_CONN: u64 = 1;
const B_CONN: u64 = 2;

impl Held {
    fn new() -> Self {
        let net = pair();
        Held {
            now: net.now,
            peers: net.peers,
            held: Default::default(),
            hold: true,
        }
    }

    fn settle(&mut self) {
        let now = self.now;
        loop {
            let mut moved = false;
            for i in 0..2 {
                let j = 1 - i;
                let from = self.peers[i].sip;
                while let Some(t) = self.peers[i].layer.poll_transmit() {
                    moved = true;
                    let bytes = isc::proto::sip::message::to_bytes(&t.message);
                    self.peers[j].input(now, from, &bytes);
                }
                while let Some(o) = self.peers[i].chats.poll_msrp() {
                    moved = true;
                    match o {
                        isc::client::chat::MsrpOut::Connect { chat, .. } => {
                            let conn = [A_CONN, B_CONN];
                            self.peers[j].chats.msrp_accepted(conn[j]);
                            self.peers[i].chats.msrp_connected(now, chat, conn[i]);
                        }
                        isc::client::chat::MsrpOut::Send { bytes, .. } if i == 0 => {
                            if self.hold {
                                self.held.push_back(bytes);
                            } else {
                                self.peers[1].chats.msrp_data(now, B_CONN, &bytes);
                            }
                        }
                        isc::client::chat::MsrpOut::Send { bytes, .. } => {
                            self.peers[0].chats.msrp_data(now, A_CONN, &bytes);
                        }
                        // closes are left out: the test delivers what it holds
                        isc::client::chat::MsrpOut::Close { .. } => {}
                    }
                }
                self.peers[i].pump(now);
            }
            if !moved {
                return;
            }
        }
    }

    fn release(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(b) = self.held.pop_front() {
                self.peers[1].chats.msrp_data(self.now, B_CONN, &b);
            }
        }
        self.peers[1].pump(self.now);
        self.settle();
    }
}

fn start_held(h: &mut Held) -> u64 {
    let now = h.now;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let chat = h.peers[0]
        .command(
            now,
            ChatCommand::SendLarge {
                to: vec!["sip:bob@isc.local".into()],
                message: Box::new(LargeMessage::file("x.bin", body)),
            },
        )
        .unwrap();
    h.settle();
    // Bob answered `active` (RFC 6135) and bound the connection; Alice's
    // five chunks and her 200 to his binding SEND wait on her side
    assert_eq!(h.held.len(), 6);
    assert!(
        h.held
            .iter()
            .take(5)
            .all(|b| b.windows(6).any(|w| w == b" SEND\r"))
    );
    h.release(2);
    h.peers[0].command(now, ChatCommand::Bye { chat });
    h.settle();
    assert!(
        !h.peers[1]
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::Ended { .. })),
        "bob reads on after the BYE: {:?}",
        h.peers[1].events
    );
    chat
}

#[test]
fn a_bye_before_the_last_chunk_lets_the_receiver_finish() {
    let mut h = Held::new();
    start_held(&mut h);
    h.hold = false;
    let rest = h.held.len();
    h.release(rest);
    let bob = h.peers[1].take_events();
    let got = bob.iter().find_map(|e| match e {
        ChatEvent::LargeReceived { body, .. } => Some(body.len()),
        _ => None,
    });
    assert_eq!(got, Some(300_000), "{bob:?}");
    assert_eq!(ended(&bob), Some(&EndReason::Normal));
}

#[test]
fn a_message_that_never_completes_after_the_bye_ends_in_an_error() {
    let mut h = Held::new();
    start_held(&mut h);
    h.held.clear();
    let later = h.now + isc::client::large_message::DRAIN_GRACE;
    h.peers[1].timeout(later);
    let bob = h.peers[1].take_events();
    match ended(&bob) {
        Some(EndReason::Error { reason, .. }) => {
            assert!(
                reason.starts_with("large message incomplete:")
                    && reason.ends_with(" of 300000 bytes"),
                "{reason}"
            )
        }
        other => panic!("{other:?}: {bob:?}"),
    }
    assert!(
        !bob.iter()
            .any(|e| matches!(e, ChatEvent::LargeReceived { .. }))
    );
}

/// RFC 4975 §7.1 on a Large Message: chunks with no 200 fail the message
/// (408) once the per-chunk 30 s, stretched by the chunks queued ahead at
/// 64 KiB/s, are over; the sender then ends the session with a BYE.
#[test]
fn unanswered_chunks_fail_with_408_after_the_stretched_timeout() {
    let mut h = Held::new();
    let now = h.now;
    let body = vec![7u8; 300_000];
    h.peers[0]
        .command(
            now,
            ChatCommand::SendLarge {
                to: vec!["sip:bob@isc.local".into()],
                message: Box::new(LargeMessage::file("x.bin", body)),
            },
        )
        .unwrap();
    h.settle();
    // 30 s + 300 000 / 65 536 = 4 s
    h.peers[0].timeout(now + std::time::Duration::from_secs(33));
    assert_eq!(ended(&h.peers[0].events), None, "{:?}", h.peers[0].events);
    h.peers[0].timeout(now + std::time::Duration::from_secs(34));
    match ended(&h.peers[0].events) {
        Some(EndReason::Error { reason, .. }) => {
            assert!(reason.starts_with("MSRP 408"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let bye = std::iter::from_fn(|| h.peers[0].layer.poll_transmit())
        .map(|t| isc::proto::sip::message::to_bytes(&t.message))
        .any(|b| b.starts_with(b"BYE "));
    assert!(bye, "the sender BYEs");
}
