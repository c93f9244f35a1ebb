//! Two `MsrpSession`s wired back to back, no sockets: transmits from one are
//! fed to the other, time is simulated.

use std::time::{Duration, Instant};

use isc::proto::msrp::{
    FailureReport, MsrpEvent, MsrpInput, MsrpPath, MsrpSession, MsrpUri, SequentialIds,
    SessionConfig, parse_message,
};

fn alice_uri() -> MsrpUri {
    MsrpUri::new("alicepc.example.com", 7777, "iau39soe2843z")
}
fn bob_uri() -> MsrpUri {
    MsrpUri::new("bob.example.com", 8888, "9di4eae923wzd")
}

fn pair(tweak: impl Fn(&mut SessionConfig)) -> (MsrpSession, MsrpSession) {
    let mut a = SessionConfig::new(alice_uri(), MsrpPath::single(bob_uri()));
    let mut b = SessionConfig::new(bob_uri(), MsrpPath::single(alice_uri()));
    tweak(&mut a);
    tweak(&mut b);
    (
        MsrpSession::new(a, Box::new(SequentialIds::new("a"))),
        MsrpSession::new(b, Box::new(SequentialIds::new("b"))),
    )
}

/// Moves every pending transmit from `from` to `to`; returns the frames moved.
fn pump(now: Instant, from: &mut MsrpSession, to: &mut MsrpSession) -> Vec<Vec<u8>> {
    let mut moved = Vec::new();
    while let Some(b) = from.poll_transmit() {
        to.handle_input(now, MsrpInput::Bytes(&b));
        moved.push(b);
    }
    moved
}

fn exchange(now: Instant, a: &mut MsrpSession, b: &mut MsrpSession) {
    loop {
        let n = pump(now, a, b).len() + pump(now, b, a).len();
        if n == 0 {
            break;
        }
    }
}

fn events(s: &mut MsrpSession) -> Vec<MsrpEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn chunked_message_with_success_report() {
    let now = Instant::now();
    let (mut alice, mut bob) = pair(|c| {
        c.chunk_size = 2048;
        c.success_report = Some(true);
    });
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let id = alice.send_message(now, "application/octet-stream", body.clone());
    assert_eq!(id, "a0001");
    assert!(alice.poll_timeout().is_none(), "nothing sent yet");
    // first chunk only: a transaction is open with a 30 s deadline
    let first = alice.poll_transmit().unwrap();
    assert_eq!(alice.poll_timeout(), Some(now + Duration::from_secs(30)));
    bob.handle_input(now, MsrpInput::Bytes(&first));
    exchange(now, &mut alice, &mut bob);

    let bev = events(&mut bob);
    let progress = bev
        .iter()
        .filter(|e| matches!(e, MsrpEvent::Progress { .. }))
        .count();
    assert_eq!(progress, 4, "5 chunks: 4 progress then complete");
    assert!(bev.contains(&MsrpEvent::MessageReceived {
        message_id: "a0001".into(),
        content_type: Some("application/octet-stream".into()),
        body: body.clone(),
    }));
    let aev = events(&mut alice);
    assert!(aev.contains(&MsrpEvent::Delivered {
        message_id: "a0001".into()
    }));
    let report = aev.iter().find_map(|e| match e {
        MsrpEvent::ReportReceived {
            message_id,
            success,
            byte_range,
            ..
        } => Some((
            message_id.clone(),
            *success,
            byte_range.map(|b| b.to_string()),
        )),
        _ => None,
    });
    assert_eq!(
        report,
        Some(("a0001".to_string(), true, Some("1-10000/10000".to_string())))
    );
    assert_eq!(alice.poll_timeout(), None);
    assert_eq!(alice.outgoing(), 0);
}

#[test]
fn to_path_mismatch_gets_481() {
    let now = Instant::now();
    let mut cfg = SessionConfig::new(alice_uri(), MsrpPath::single(bob_uri()));
    // Alice believes Bob's session id is different
    cfg.remote_path = MsrpPath::single(MsrpUri::new("bob.example.com", 8888, "WRONG"));
    let mut alice = MsrpSession::new(cfg, Box::new(SequentialIds::new("a")));
    let (_, mut bob) = pair(|_| {});
    alice.send_message(now, "text/plain", b"hi".to_vec());
    let sent = alice.poll_transmit().unwrap();
    bob.handle_input(now, MsrpInput::Bytes(&sent));
    let resp = bob.poll_transmit().unwrap();
    let r = parse_message(&resp).unwrap();
    assert_eq!(r.code(), Some(481));
    assert!(events(&mut bob).is_empty());
    alice.handle_input(now, MsrpInput::Bytes(&resp));
    assert_eq!(
        events(&mut alice),
        [MsrpEvent::SendFailed {
            message_id: "a0001".into(),
            code: 481,
            comment: Some("Session Does Not Exist".into())
        }]
    );
}

#[test]
fn no_response_means_408_after_30s() {
    let now = Instant::now();
    let (mut alice, _bob) = pair(|_| {});
    alice.send_message(now, "text/plain", b"hello?".to_vec());
    let _lost = alice.poll_transmit().unwrap();
    let deadline = alice.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(30));
    alice.handle_timeout(now + Duration::from_secs(29));
    assert!(events(&mut alice).is_empty());
    alice.handle_timeout(deadline);
    assert_eq!(
        events(&mut alice),
        [MsrpEvent::SendFailed {
            message_id: "a0001".into(),
            code: 408,
            comment: Some("Request Timeout".into())
        }]
    );
    assert_eq!(alice.poll_timeout(), None);
}

#[test]
fn failure_report_no_gets_no_response() {
    let now = Instant::now();
    let (mut alice, mut bob) = pair(|c| c.failure_report = Some(FailureReport::No));
    alice.send_message(now, "text/plain", b"fire and forget".to_vec());
    let moved = pump(now, &mut alice, &mut bob);
    assert_eq!(moved.len(), 1);
    assert_eq!(alice.poll_timeout(), None);
    assert!(
        bob.poll_transmit().is_none(),
        "no 200 for Failure-Report: no"
    );
    assert_eq!(
        events(&mut alice),
        [MsrpEvent::Delivered {
            message_id: "a0001".into()
        }]
    );
    assert!(matches!(
        events(&mut bob).as_slice(),
        [MsrpEvent::MessageReceived { .. }]
    ));
}

#[test]
fn empty_send_binds() {
    let now = Instant::now();
    let (mut alice, mut bob) = pair(|_| {});
    alice.send_empty(now);
    let b = alice.poll_transmit().unwrap();
    let m = parse_message(&b).unwrap();
    assert!(m.body.is_none());
    assert!(m.content_type().is_none());
    bob.handle_input(now, MsrpInput::Bytes(&b));
    assert_eq!(
        events(&mut bob),
        [MsrpEvent::EmptySendReceived {
            message_id: Some("a0001".into())
        }]
    );
    exchange(now, &mut alice, &mut bob);
    assert!(events(&mut alice).contains(&MsrpEvent::Delivered {
        message_id: "a0001".into()
    }));
}

#[test]
fn unknown_method_gets_501_and_bad_frame_400() {
    let now = Instant::now();
    let (_, mut bob) = pair(|_| {});
    let raw = format!(
        "MSRP x1y2z3 FROB\r\nTo-Path: {}\r\nFrom-Path: {}\r\n-------x1y2z3$\r\n",
        bob_uri(),
        alice_uri()
    );
    bob.handle_input(now, MsrpInput::Bytes(raw.as_bytes()));
    let r = parse_message(&bob.poll_transmit().unwrap()).unwrap();
    assert_eq!((r.transaction_id.as_str(), r.code()), ("x1y2z3", Some(501)));

    let bad = "MSRP q1w2e3 SEND\r\nTo-Path: bogus\r\n-------q1w2e3$\r\n";
    bob.handle_input(now, MsrpInput::Bytes(bad.as_bytes()));
    let r = parse_message(&bob.poll_transmit().unwrap()).unwrap();
    assert_eq!((r.transaction_id.as_str(), r.code()), ("q1w2e3", Some(400)));
    let ev = events(&mut bob);
    assert!(matches!(&ev[..], [MsrpEvent::StreamError { error }] if !error.is_fatal()));

    bob.handle_input(now, MsrpInput::Bytes(b"HELLO\r\n"));
    let ev = events(&mut bob);
    assert!(matches!(&ev[..], [MsrpEvent::StreamError { error }] if error.is_fatal()));
}

#[test]
fn unsupported_type_gets_415() {
    let now = Instant::now();
    let (mut alice, mut bob) =
        pair(|c| c.accept_types = vec!["message/cpim".into(), "text/*".into()]);
    alice.send_message(now, "image/png", vec![1, 2, 3]);
    alice.send_message(now, "text/plain; charset=utf-8", b"ok".to_vec());
    exchange(now, &mut alice, &mut bob);
    let aev = events(&mut alice);
    assert!(aev.contains(&MsrpEvent::SendFailed {
        message_id: "a0001".into(),
        code: 415,
        comment: Some("Unsupported Media Type".into())
    }));
    assert!(aev.contains(&MsrpEvent::Delivered {
        message_id: "a0002".into()
    }));
}

#[test]
fn messages_interleave_and_abort() {
    let now = Instant::now();
    let (mut alice, mut bob) = pair(|c| c.chunk_size = 100);
    let big = vec![b'x'; 1000];
    alice.send_message(now, "text/plain", big);
    alice.send_message(now, "text/plain", b"small".to_vec());
    // chunk of a1, then a2 whole, then a1 goes on
    let f1 = parse_message(&alice.poll_transmit().unwrap()).unwrap();
    let f2 = parse_message(&alice.poll_transmit().unwrap()).unwrap();
    assert_eq!(f1.message_id(), Some("a0001"));
    assert_eq!(f2.message_id(), Some("a0002"));
    bob.handle_input(now, MsrpInput::Frame(f1));
    bob.handle_input(now, MsrpInput::Frame(f2));
    alice.abort_message("a0001");
    let abort = parse_message(&alice.poll_transmit().unwrap()).unwrap();
    assert_eq!(abort.flag, isc::proto::msrp::ContinuationFlag::Aborted);
    bob.handle_input(now, MsrpInput::Frame(abort));
    assert!(alice.poll_transmit().is_none(), "nothing more of a1");
    let bev = events(&mut bob);
    assert!(bev.contains(&MsrpEvent::MessageAborted {
        message_id: "a0001".into()
    }));
    assert!(bev.iter().any(|e| matches!(e,
        MsrpEvent::MessageReceived { message_id, body, .. } if message_id == "a0002" && body == b"small")));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The session never panics on arbitrary input, framed or not.
        #[test]
        fn session_survives_arbitrary_bytes(
            tail in proptest::collection::vec(any::<u8>(), 0..400),
            split in 0usize..400,
        ) {
            let now = Instant::now();
            let (_, mut bob) = pair(|c| c.max_message_size = 64);
            let mut data = format!(
                "MSRP abcd1234 SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: m1\r\n",
                bob_uri(),
                alice_uri()
            )
            .into_bytes();
            data.extend_from_slice(&tail);
            data.extend_from_slice(b"\r\n-------abcd1234$\r\n");
            let cut = split.min(data.len());
            bob.handle_input(now, MsrpInput::Bytes(&data[..cut]));
            bob.handle_input(now, MsrpInput::Bytes(&data[cut..]));
            while bob.poll_transmit().is_some() {}
            while bob.poll_event().is_some() {}
            bob.handle_input(now, MsrpInput::Bytes(&tail));
            bob.handle_timeout(now + Duration::from_secs(60));
        }

        /// Hand-built frames with odd ranges are refused, not panicked on.
        #[test]
        fn session_survives_odd_frames(start in prop_oneof![any::<u64>(), Just(0u64), (u64::MAX - 60)..=u64::MAX], end in proptest::option::of(any::<u64>()), total in proptest::option::of(any::<u64>()), len in 0usize..50) {
            let now = Instant::now();
            let (_, mut bob) = pair(|_| {});
            let m = isc::proto::msrp::MsrpMessage::request(
                isc::proto::msrp::MsrpMethod::Send,
                "abcd",
                MsrpPath::single(bob_uri()),
                MsrpPath::single(alice_uri()),
            )
            .with_header(isc::proto::msrp::MsrpHeader::MessageId("m1".into()))
            .with_header(isc::proto::msrp::MsrpHeader::ByteRange(isc::proto::msrp::ByteRange { start, end, total }))
            .with_body("text/plain", vec![b'a'; len]);
            bob.handle_input(now, MsrpInput::Frame(m));
            while bob.poll_transmit().is_some() {}
        }
    }
}
