//! Two chat endpoints against each other, no sockets, virtual time.

mod chat_support;

use std::time::Duration;

use chat_support::{Net, Peer};
use isc::client::chat::{ChatEvent, EndReason};
use isc::client::chats::ChatCommand;
use isc::proto::sip::session_timer::SessionTimerConfig;

const ALICE: u16 = 5070;
const BOB: u16 = 5080;

fn addr(port: u16) -> std::net::SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn pair(alice_timer: SessionTimerConfig, bob_timer: SessionTimerConfig) -> Net {
    Net::new(vec![
        Peer::new("alice", ALICE, addr(BOB), alice_timer),
        Peer::new("bob", BOB, addr(ALICE), bob_timer),
    ])
}

/// alice calls bob, bob accepts: returns (alice's chat, bob's chat).
fn established(net: &mut Net) -> (u64, u64) {
    let now = net.now;
    let a = net.peers[0]
        .command(
            now,
            ChatCommand::Start {
                to: "sip:bob@isc.local".into(),
                convergence_id: None,
            },
        )
        .unwrap();
    net.run();
    let b = net.peers[1].invited().expect("bob is invited");
    net.peers[1].command(now, ChatCommand::Accept { chat: b });
    net.run();
    assert!(
        net.peers[0]
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::Started { .. })),
        "{:?}",
        net.peers[0].events
    );
    assert!(
        net.peers[1]
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::Started { .. })),
        "{:?}",
        net.peers[1].events
    );
    (a, b)
}

#[test]
fn invite_carries_the_cpm_headers_and_an_msrp_offer() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    let now = net.now;
    net.peers[0].command(
        now,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: Some("cv-42".into()),
        },
    );
    net.run();
    let invite = net
        .trace
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("an INVITE");
    for needle in [
        "Accept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"",
        "P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session",
        "User-Agent: isc/",
        "Supported: timer",
        "Session-Expires: 1800;refresher=uac",
        "Min-SE: 90",
        "ISCConvergenceID: cv-42",
        "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"",
        "m=message 6070 TCP/MSRP *",
        "a=path:msrp://127.0.0.1:6070/",
        "a=accept-types:message/cpim text/plain application/im-iscomposing+xml",
        "a=accept-wrapped-types:",
        "a=setup:actpass",
    ] {
        assert!(invite.contains(needle), "missing {needle:?} in\n{invite}");
    }
    let b = net.peers[1].invited().unwrap();
    assert!(net.peers[1].events.iter().any(|e| matches!(
        e,
        ChatEvent::Invited { chat, from, convergence_id: Some(c) }
            if *chat == b && from == "sip:alice@isc.local" && c == "cv-42"
    )));
    assert!(
        net.peers[0]
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::Ringing { .. }))
    );
}

#[test]
fn messages_flow_both_ways_as_cpim_and_bye_closes() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    let (a, b) = established(&mut net);
    let now = net.now;
    net.peers[0].command(
        now,
        ChatCommand::Send {
            chat: a,
            text: "hello bob".into(),
        },
    );
    net.run();
    net.peers[1].command(
        now,
        ChatCommand::Send {
            chat: b,
            text: "hi alice 👋".into(),
        },
    );
    net.run();
    assert_eq!(
        net.peers[1].messages(),
        vec![("sip:alice@isc.local".to_string(), "hello bob".to_string())]
    );
    assert_eq!(
        net.peers[0].messages(),
        vec![("sip:bob@isc.local".to_string(), "hi alice 👋".to_string())]
    );
    let at = net.peers[1].events.iter().find_map(|e| match e {
        ChatEvent::Message { at, .. } => at.clone(),
        _ => None,
    });
    assert_eq!(at.as_deref(), Some("2026-11-23T15:00:00Z"));
    // alice's message was delivered (its id matches the Sent one)
    let sent = net.peers[0].events.iter().find_map(|e| match e {
        ChatEvent::Sent { message_id, .. } => Some(message_id.clone()),
        _ => None,
    });
    assert!(net.peers[0].events.iter().any(|e| matches!(e, ChatEvent::Delivered { message_id, .. } if Some(message_id) == sent.as_ref())));
    // only one Delivered: the binding SEND is not reported
    assert_eq!(
        net.peers[0]
            .events
            .iter()
            .filter(|e| matches!(e, ChatEvent::Delivered { .. }))
            .count(),
        1
    );
    net.peers[1].command(now, ChatCommand::Bye { chat: b });
    net.run();
    assert_eq!(net.peers[0].ended(), Some(&EndReason::Normal));
    assert_eq!(net.peers[1].ended(), Some(&EndReason::Normal));
    assert!(net.trace.iter().any(|m| m.starts_with("BYE ")));
    assert!(
        net.trace
            .iter()
            .any(|m| m.starts_with("SIP/2.0 200") && m.contains(" BYE"))
    );
}

#[test]
fn is_composing_goes_over_msrp_and_a_message_ends_it() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    let (a, _b) = established(&mut net);
    let now = net.now;
    net.peers[0].command(now, ChatCommand::Typing { chat: a });
    net.run();
    assert!(net.peers[1].events.iter().any(|e| matches!(e, ChatEvent::Composing { active: true, from, .. } if from == "sip:alice@isc.local")));
    net.peers[0].command(
        now,
        ChatCommand::Send {
            chat: a,
            text: "done typing".into(),
        },
    );
    net.run();
    let last_two: Vec<_> = net.peers[1].events.iter().rev().take(2).cloned().collect();
    assert!(
        matches!(last_two[1], ChatEvent::Composing { active: false, .. }),
        "{last_two:?}"
    );
    assert!(matches!(last_two[0], ChatEvent::Message { .. }));
    // typing then silence: idle after the idle timeout (RFC 3994 §3.2)
    net.peers[0].command(net.now, ChatCommand::Typing { chat: a });
    net.run();
    net.advance(Duration::from_secs(20));
    assert!(matches!(
        net.peers[1]
            .events
            .iter()
            .rev()
            .find(|e| matches!(e, ChatEvent::Composing { .. })),
        Some(ChatEvent::Composing { active: false, .. })
    ));
}

#[test]
fn five_mebibyte_message_arrives_intact() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    let (a, _b) = established(&mut net);
    let text: String = (0..5 * 1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let now = net.now;
    net.peers[0].command(
        now,
        ChatCommand::Send {
            chat: a,
            text: text.clone(),
        },
    );
    net.run();
    let got = net.peers[1].messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.len(), text.len());
    assert!(got[0].1 == text);
    assert!(
        net.peers[0]
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::Delivered { .. }))
    );
}

#[test]
fn decline_ends_the_caller_with_603() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    let now = net.now;
    net.peers[0].command(
        now,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    );
    net.run();
    let b = net.peers[1].invited().unwrap();
    net.peers[1].command(now, ChatCommand::Decline { chat: b });
    net.run();
    assert!(
        matches!(
            net.peers[0].ended(),
            Some(EndReason::Error {
                status: Some(603),
                ..
            })
        ),
        "{:?}",
        net.peers[0].events
    );
    assert_eq!(net.peers[1].ended(), Some(&EndReason::Normal));
}

#[test]
fn session_survives_past_session_expires_because_it_is_refreshed() {
    let short = SessionTimerConfig {
        session_expires: 90,
        min_se: 90,
    };
    let mut net = pair(short, SessionTimerConfig::default());
    let (a, _b) = established(&mut net);
    net.advance(Duration::from_secs(400));
    assert!(net.peers[0].ended().is_none(), "{:?}", net.peers[0].events);
    assert!(net.peers[1].ended().is_none(), "{:?}", net.peers[1].events);
    let refreshes = net
        .trace
        .iter()
        .filter(|m| m.starts_with("INVITE ") || m.starts_with("UPDATE "))
        .count();
    assert!(
        refreshes >= 1 + 400 / 45 - 1,
        "only {refreshes} INVITE/UPDATE"
    );
    // still usable
    net.peers[0].command(
        net.now,
        ChatCommand::Send {
            chat: a,
            text: "still here".into(),
        },
    );
    net.run();
    assert_eq!(
        net.peers[1].messages().last().map(|m| m.1.as_str()),
        Some("still here")
    );
}

#[test]
fn peer_that_stops_refreshing_is_torn_down_with_bye() {
    let short = SessionTimerConfig {
        session_expires: 90,
        min_se: 90,
    };
    let mut net = pair(short, SessionTimerConfig::default());
    established(&mut net);
    net.mute[0] = true; // alice vanishes
    let before = net.trace.len();
    net.advance(Duration::from_secs(59));
    assert!(net.peers[1].ended().is_none());
    net.advance(Duration::from_secs(2));
    // 90 - min(32, 30) = 60 s
    assert!(
        matches!(net.peers[1].ended(), Some(EndReason::Error { reason, .. }) if reason.contains("expired")),
        "{:?}",
        net.peers[1].events
    );
    assert!(net.trace[before..].iter().any(|m| m.starts_with("BYE ")));
}

#[test]
fn too_small_session_interval_is_retried_with_min_se() {
    let mut net = pair(
        SessionTimerConfig {
            session_expires: 90,
            min_se: 90,
        },
        SessionTimerConfig {
            session_expires: 1800,
            min_se: 600,
        },
    );
    established(&mut net);
    assert!(
        net.trace
            .iter()
            .any(|m| m.starts_with("SIP/2.0 422") && m.contains("Min-SE: 600"))
    );
    let invites: Vec<_> = net
        .trace
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .collect();
    assert_eq!(invites.len(), 2);
    assert!(invites[1].contains("Session-Expires: 600;refresher=uac"));
    assert!(invites[1].contains("CSeq: 2 INVITE"));
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
        .trim()
}

/// A request from bob to alice inside their dialog, written by hand.
fn bob_in_dialog(net: &Net, method: &str, cseq: u32, extra: &str, body: &str) -> Vec<u8> {
    let invite = net.trace.iter().find(|m| m.starts_with("INVITE ")).unwrap();
    let ok = net
        .trace
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("INVITE"))
        .unwrap();
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    format!(
        "{method} sip:alice@127.0.0.1:{ALICE};transport=udp SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{BOB};branch=z9hG4bKhand{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:bob@127.0.0.1:{BOB}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        header(ok, "To"),
        header(invite, "From"),
        header(invite, "Call-ID"),
        body.len()
    )
    .into_bytes()
}

#[test]
fn bye_with_reason_200_means_continued_on_another_device() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    established(&mut net);
    let bye = bob_in_dialog(
        &net,
        "BYE",
        50,
        "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n",
        "",
    );
    let now = net.now;
    net.peers[0].input(now, addr(BOB), &bye);
    net.run();
    assert_eq!(net.peers[0].ended(), Some(&EndReason::CompletedElsewhere));
    assert!(
        net.trace
            .iter()
            .any(|m| m.starts_with("SIP/2.0 200") && m.contains("50 BYE"))
    );
}

#[test]
fn reinvite_without_usable_msrp_gets_488_and_a_subset_is_accepted() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    established(&mut net);
    let now = net.now;
    let audio = "v=0\r\no=bob 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let m = bob_in_dialog(&net, "INVITE", 60, "", audio);
    net.peers[0].input(now, addr(BOB), &m);
    net.run();
    assert!(
        net.trace
            .iter()
            .any(|m| m.starts_with("SIP/2.0 488") && m.contains("60 INVITE"))
    );
    // an offer with fewer accept-types keeps the session
    let subset = format!(
        "v=0\r\no=bob 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=message {} TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:{}\r\na=setup:actpass\r\n",
        BOB + 1000,
        net.trace
            .iter()
            .find(|m| m.starts_with("SIP/2.0 200") && m.contains("INVITE"))
            .and_then(|m| m.lines().find_map(|l| l.strip_prefix("a=path:")))
            .unwrap()
    );
    let m = bob_in_dialog(&net, "INVITE", 61, "", &subset);
    net.peers[0].input(now, addr(BOB), &m);
    net.run();
    let ok = net
        .trace
        .iter()
        .rev()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("61 INVITE"))
        .expect("200 to the re-INVITE");
    assert!(ok.contains("m=message 6070 TCP/MSRP *"));
    assert!(net.peers[0].ended().is_none());
}

#[test]
fn proxy_challenge_is_answered_with_the_ua_digest() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    net.mute[1] = true;
    let now = net.now;
    net.peers[0].command(
        now,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    );
    let t = net.peers[0].layer.poll_transmit().unwrap();
    let rsip::SipMessage::Request(invite) = t.message else {
        panic!()
    };
    let challenge = isc::proto::sip::build::response_with(
        &invite,
        407,
        Some("proxy1"),
        None,
        vec![isc::proto::sip::headers::make_header(
            "Proxy-Authenticate",
            "Digest realm=\"isc.local\", nonce=\"abc\", algorithm=MD5, qop=\"auth\"",
        )],
    );
    let bytes = isc::proto::sip::message::to_bytes(&rsip::SipMessage::Response(challenge));
    net.peers[0].input(now, addr(BOB), &bytes);
    let mut again = None;
    while let Some(t) = net.peers[0].layer.poll_transmit() {
        if let rsip::SipMessage::Request(r) = t.message
            && r.method == rsip::Method::Invite
        {
            again = Some(r);
        }
    }
    let again = again.expect("INVITE re-sent");
    let text = String::from_utf8_lossy(&isc::proto::sip::message::to_bytes(
        &rsip::SipMessage::Request(again),
    ))
    .into_owned();
    assert!(text.contains("Proxy-Authorization: Digest"), "{text}");
    assert!(text.contains("CSeq: 2 INVITE"));
    assert!(text.contains("m=message"));
}

/// STYLE.md habit 11 for the chat's sans-IO parts: no socket, no tokio, no
/// monotonic clock (the wall clock for CPIM DateTime is injected; its
/// default lives in `chats::system_clock`).
#[test]
fn the_chat_does_no_io() {
    for file in [
        "chat.rs",
        "chats.rs",
        "user_agent/chat_glue.rs",
        "chat_headless.rs",
    ] {
        let path = format!("{}/src/client/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for banned in [
            "tokio",
            "Instant::now",
            "thread_rng",
            "std::net::TcpStream",
            "std::fs",
        ] {
            assert!(!text.contains(banned), "{path} mentions {banned}");
        }
    }
    let timer = std::fs::read_to_string(format!(
        "{}/src/proto/sip/session_timer.rs",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(
        !timer.contains("Instant::now()")
            || timer
                .split("#[cfg(test)]")
                .next()
                .is_some_and(|t| !t.contains("Instant::now()"))
    );
}

#[test]
fn bye_while_calling_cancels_and_acks_then_byes_a_late_2xx() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    let now = net.now;
    let a = net.peers[0]
        .command(
            now,
            ChatCommand::Start {
                to: "sip:bob@isc.local".into(),
                convergence_id: None,
            },
        )
        .unwrap();
    net.run();
    let b = net.peers[1].invited().unwrap();
    net.peers[0].command(now, ChatCommand::Bye { chat: a });
    net.run();
    assert!(net.trace.iter().any(|m| m.starts_with("CANCEL ")));
    assert!(net.trace.iter().any(|m| m.starts_with("SIP/2.0 487")));
    assert_eq!(net.peers[0].ended(), Some(&EndReason::Normal));
    assert_eq!(net.peers[1].ended(), Some(&EndReason::Normal));
    // accepting now is too late: nothing happens
    net.peers[1].command(now, ChatCommand::Accept { chat: b });
    net.run();
    assert!(
        !net.peers[1]
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::Started { .. }))
    );
}

/// Credentials from an earlier challenge (another request of the UA used
/// the nonce) are refused without `stale=true`: the chat answers afresh.
#[test]
fn refused_old_credentials_are_replaced_once() {
    let mut net = pair(SessionTimerConfig::default(), SessionTimerConfig::default());
    net.mute[1] = true;
    let now = net.now;
    let challenge = |req: &rsip::Request, nonce: &str| {
        let r = isc::proto::sip::build::response_with(
            req,
            407,
            Some("proxy1"),
            None,
            vec![isc::proto::sip::headers::make_header(
                "Proxy-Authenticate",
                &format!(
                    "Digest realm=\"isc.local\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""
                ),
            )],
        );
        isc::proto::sip::message::to_bytes(&rsip::SipMessage::Response(r))
    };
    let invites = |net: &mut Net| {
        let mut out = Vec::new();
        while let Some(t) = net.peers[0].layer.poll_transmit() {
            if let rsip::SipMessage::Request(r) = t.message
                && r.method == rsip::Method::Invite
            {
                out.push(r);
            }
        }
        out
    };
    net.peers[0].command(
        now,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    );
    let first = invites(&mut net).pop().unwrap();
    // another request of the UA was challenged before: the digest holds n1
    let primed = rsip::Response::try_from(challenge(&first, "n1").as_slice()).unwrap();
    net.peers[0].digest.handle_challenge(&primed).unwrap();
    net.peers[0].command(
        now,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    );
    let second = invites(&mut net).pop().expect("second chat's INVITE");
    assert!(
        second
            .headers
            .iter()
            .any(|h| matches!(h, rsip::Header::ProxyAuthorization(_)))
    );
    // the proxy refuses n1 with a fresh nonce, no stale=true
    net.peers[0].input(now, addr(BOB), &challenge(&second, "n2"));
    let third = invites(&mut net).pop().expect("answered afresh");
    let text = String::from_utf8_lossy(&isc::proto::sip::message::to_bytes(
        &rsip::SipMessage::Request(third.clone()),
    ))
    .into_owned();
    assert!(text.contains("nonce=\"n2\""), "{text}");
    assert!(text.contains("CSeq: 2 INVITE"));
    // refused again: a wrong password, the chat fails
    net.peers[0].input(now, addr(BOB), &challenge(&third, "n3"));
    assert!(
        matches!(
            net.peers[0].ended(),
            Some(EndReason::Error {
                status: Some(407),
                ..
            })
        ),
        "{:?}",
        net.peers[0].events
    );
}
