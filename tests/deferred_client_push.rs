//! Flow D.2 (seed 002 D.2, seed 003 12.4.2.2) with the real client core on
//! both ends against the real server: carol sends ten messages (pagers
//! and a chat session) to offline bob; bob's client registers; the store
//! INVITEs it (sendonly, `automata`), it answers recvonly / passive, takes
//! each MSRP SEND in order with its original Call-ID / Message-ID and Date,
//! answers 200 (only then is it removed) and the BYE. Bob's view (client
//! events and the TUI's conversation) shows each once, marked late; a
//! second registration receives nothing.

mod deferred_client_support;

use std::time::{Duration, Instant, SystemTime};

use deferred_client_support::*;
use isc::client::deferred::{DeferredEvent, DeferredMode, LateKind};
use isc::client::runner::Direction;
use isc::client::{ClientEvent, Command};
use isc::proto::sip::headers::HeadersExt;
use isc::proto::sip::message::parse_message;
use isc::tui::app::{AppConfig, ConvKind, EntryKind};
use isc::tui::{Action, App};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_messages_pushed_in_order_shown_once_marked_late() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true).await;
    let addr = server.local_addr();
    let t0 = unix_now();
    let mut carol = client(addr, "carol", "phone").await;

    // Step 0: four pagers, a three-message chat, three pagers.
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(carol_pages(&mut carol, &format!("pager {i}")).await);
    }
    sent.extend(carol_chats(&mut carol, &["chat 0", "chat 1", "chat 2"]).await);
    for i in 4..7 {
        sent.push(carol_pages(&mut carol, &format!("pager {i}")).await);
    }
    store_reaches(dir.path(), 10).await;
    let t1 = unix_now();

    // Steps 1–13: bob's client registers and takes the push. The server's
    // wire tap records the MSRP of it.
    let mut server_wire = server.wire();
    let mut bob = isc::client::runner::spawn_client(
        config(addr, "bob", "phone"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let mut wire = bob.take_wire();
    let evs = deferred_until_ended(&mut bob).await;
    assert!(
        matches!(
            evs.first(),
            Some(DeferredEvent::Started {
                mode: DeferredMode::Push,
                ..
            })
        ),
        "{evs:?}"
    );
    assert!(
        matches!(
            evs.last(),
            Some(DeferredEvent::Ended {
                mode: DeferredMode::Push,
                received: 10,
                ..
            })
        ),
        "{evs:?}"
    );
    let got = messages(&evs);
    assert_eq!(got.len(), 10, "{evs:?}");
    for (m, s) in got.iter().zip(&sent) {
        assert_eq!(m.text(), s.text, "in order");
        assert_eq!(m.from, "sip:carol@isc.local");
        assert_eq!(m.call_id, s.call_id, "original Call-ID kept");
        match &s.message_id {
            Some(mid) => {
                assert_eq!(m.kind, LateKind::Session);
                assert_eq!(
                    m.message_id.as_deref(),
                    Some(mid.as_str()),
                    "original Message-ID kept"
                );
            }
            None => assert_eq!(m.kind, LateKind::Pager),
        }
        let at = m.sent_unix.expect("original Date");
        assert!(
            (t0..=t1).contains(&at),
            "the Date of arrival at the store, {at} not in {t0}..{t1}"
        );
        assert!(
            m.date.as_deref().is_some_and(|d| d.ends_with(" GMT")),
            "{:?}",
            m.date
        );
    }
    store_reaches(dir.path(), 0).await;

    // The MSRP of the push (seed 002 D.2 steps 8–9): one SEND at a time,
    // each answered 200 by bob before the next; each SEND carries the
    // original Call-ID (and Message-ID for the chat's) and a Date.
    let mut frames = Vec::new();
    while let Ok(ev) = server_wire.try_recv() {
        let text = String::from_utf8_lossy(&ev.bytes).to_string();
        if text.starts_with("MSRP ") {
            frames.push((ev.direction, text));
        }
    }
    let sends: Vec<&String> = frames
        .iter()
        .filter(|(d, t)| {
            *d == isc::server::runner::Direction::Out
                && t.lines().next().is_some_and(|l| l.ends_with(" SEND"))
        })
        .map(|(_, t)| t)
        .collect();
    assert_eq!(sends.len(), 10, "one SEND per message");
    for (send, s) in sends.iter().zip(&sent) {
        assert!(
            send.contains(&format!("Call-ID: {}\r\n", s.call_id)),
            "{send}"
        );
        assert!(send.contains("\r\nDate: "), "{send}");
        match &s.message_id {
            Some(mid) => {
                assert!(send.contains("Content-Type: multipart/mixed"), "{send}");
                assert!(send.contains(&format!("Message-ID: {mid}\r\n")), "{send}");
            }
            None => assert!(send.contains("Content-Type: message/sip"), "{send}"),
        }
    }
    let order: Vec<&str> = frames
        .iter()
        .map(|(d, t)| match (d, t.lines().next().unwrap_or_default()) {
            (isc::server::runner::Direction::Out, l) if l.ends_with(" SEND") => "SEND",
            (isc::server::runner::Direction::In, l)
                if l.contains(" 200 ") || l.ends_with(" 200") =>
            {
                "200"
            }
            _ => "other",
        })
        .collect();
    assert_eq!(
        order,
        ["SEND", "200"].repeat(10),
        "the next SEND only after the 200"
    );

    // The SIP of the push on bob's wire: the INVITE, our answer, the BYE and its 200.
    let mut records = Vec::new();
    while let Ok(r) = wire.try_recv() {
        if let Ok(m) = parse_message(&r.bytes) {
            records.push((r.direction, m));
        }
    }
    let invite = records
        .iter()
        .find_map(|(d, m)| match (d, m) {
            (Direction::Received, rsip::SipMessage::Request(r))
                if r.method == rsip::Method::Invite =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("the push INVITE");
    assert!(
        invite
            .headers
            .get_raw("From")
            .unwrap()
            .contains("sip:Deferred@isc.local")
    );
    assert!(
        invite
            .headers
            .get_raw("Contact")
            .unwrap()
            .contains("automata")
    );
    assert!(String::from_utf8_lossy(&invite.body).contains("a=sendonly"));
    let cid = invite.headers.get_raw("Call-ID").unwrap();
    let ok = records
        .iter()
        .find_map(|(d, m)| match (d, m) {
            (Direction::Sent, rsip::SipMessage::Response(r))
                if r.status_code.code() == 200
                    && r.headers.get_raw("Call-ID").as_deref() == Some(cid.as_str())
                    && !r.body.is_empty() =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("our 200 with the SDP answer");
    let answer = String::from_utf8_lossy(&ok.body).to_string();
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(
        answer.contains("a=setup:passive"),
        "RFC 6135: the store connects: {answer}"
    );
    assert!(answer.contains("a=accept-types:message/sip"), "{answer}");
    assert!(answer.contains("multipart/mixed"), "{answer}");
    assert!(answer.contains("a=path:msrp://127.0.0.1:"), "{answer}");
    assert!(records.iter().any(|(d, m)| matches!((d, m),
        (Direction::Received, rsip::SipMessage::Request(r)) if r.method == rsip::Method::Bye
            && r.headers.get_raw("Call-ID").as_deref() == Some(cid.as_str()))));
    assert!(records.iter().any(|(d, m)| matches!((d, m),
        (Direction::Sent, rsip::SipMessage::Response(r)) if r.status_code.code() == 200
            && r.headers.get_raw("CSeq").is_some_and(|c| c.contains("BYE")))));

    // A second registration receives nothing twice.
    bob.send(Command::Register).await;
    let again = quiet_for(&mut bob, 1.5).await;
    assert!(again.is_empty(), "nothing pushed again: {again:?}");
    let mut tv = client(addr, "bob", "tv").await;
    assert!(
        quiet_for(&mut tv, 1.0).await.is_empty(),
        "nor to another device"
    );
    assert_eq!(store_count(dir.path()), 0);

    // Bob's view: the TUI's conversation with carol, each once, late, at its original time.
    let mut app = App::new(
        AppConfig::new("bob", "isc.local", "phone"),
        Instant::now(),
        SystemTime::now(),
    );
    for e in &evs {
        app.update(Action::Client(ClientEvent::Deferred(e.clone())));
    }
    let conv = app
        .conversations
        .iter()
        .find(|c| {
            c.kind
                == ConvKind::OneToOne {
                    peer: "sip:carol@isc.local".into(),
                }
        })
        .expect("a 1-1 conversation with carol");
    assert_eq!(conv.entries.len(), 10);
    for (e, m) in conv.entries.iter().zip(&got) {
        match &e.kind {
            EntryKind::Message { text, late, .. } => {
                assert_eq!(text, &m.text());
                assert!(late, "marked delivered late");
            }
            other => panic!("{other:?}"),
        }
        let at =
            e.at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
        assert_eq!(Some(at), m.sent_unix, "at its original time");
    }
    let _ = Duration::ZERO;
    tv.shutdown().await;
    bob.shutdown().await;
    carol.shutdown().await;
    server.shutdown().await;
}
