//! The transaction layer: routing, CANCEL matching (RFC 3261 §9.2), stray
//! ACKs and responses, forked 2xx (RFC 6026), the soonest timeout.

mod sip_transaction_support;

use isc::proto::sip::transaction::*;
use rsip::SipMessage;
use rsip::prelude::*;
use sip_transaction_support::*;

const BR: &str = "z9hG4bK74bf9";

fn events(layer: &mut TransactionLayer) -> Vec<LayerEvent> {
    drain(|| layer.poll_event())
}

#[test]
fn new_invite_creates_a_server_transaction_and_retransmission_gets_100() {
    let clock = Clock::new();
    let mut layer = TransactionLayer::new();
    layer
        .handle_message(
            clock.now,
            SipMessage::Request(invite(BR)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    let ev = events(&mut layer);
    let [
        LayerEvent::NewRequest {
            key,
            request,
            source,
            transport,
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(request.method, rsip::Method::Invite);
    assert_eq!((*source, *transport), (peer(), Transport::Udp));
    assert_eq!(
        layer.server_invite_state(key),
        Some(ServerInviteState::Proceeding)
    );
    assert_eq!(layer.poll_timeout(), Some(clock.at(200)));
    layer
        .handle_message(
            clock.at(100),
            SipMessage::Request(invite(BR)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(events(&mut layer).is_empty());
    let t = layer.poll_transmit().unwrap();
    assert_eq!((what(&t), t.to), ("100".to_string(), peer()));
}

#[test]
fn cancel_finds_its_invite_and_the_core_answers_200_and_487() {
    let clock = Clock::new();
    let mut layer = TransactionLayer::new();
    layer
        .handle_message(
            clock.now,
            SipMessage::Request(invite(BR)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    let invite_key = match &events(&mut layer)[..] {
        [LayerEvent::NewRequest { key, .. }] => key.clone(),
        ev => panic!("{ev:?}"),
    };
    let cancel = request("CANCEL", BR, 314159);
    layer
        .handle_message(
            clock.at(300),
            SipMessage::Request(cancel),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    let ev = events(&mut layer);
    let [
        LayerEvent::Cancel {
            key,
            invite,
            invite_pending,
            ..
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(invite.as_ref(), Some(&invite_key));
    assert!(*invite_pending);
    assert_ne!(key, &invite_key); // CANCEL has its own transaction
    layer
        .send_response(
            clock.at(310),
            key,
            response(200, "CANCEL", BR, 314159, Some("b")),
        )
        .unwrap();
    layer
        .send_response(
            clock.at(311),
            &invite_key,
            invite_response(487, BR, Some("b")),
        )
        .unwrap();
    let sent: Vec<String> = drain(|| layer.poll_transmit()).iter().map(what).collect();
    assert_eq!(sent, vec!["200", "487"]);
    // The ACK for the 487 carries the INVITE's branch: absorbed by the transaction.
    layer
        .handle_message(
            clock.at(400),
            SipMessage::Request(request("ACK", BR, 314159)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(events(&mut layer).is_empty());
    assert_eq!(
        layer.server_invite_state(&invite_key),
        Some(ServerInviteState::Confirmed)
    );
}

#[test]
fn cancel_without_invite_and_after_final() {
    let clock = Clock::new();
    let mut layer = TransactionLayer::new();
    layer
        .handle_message(
            clock.now,
            SipMessage::Request(request("CANCEL", "z9hG4bKnone", 1)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(matches!(
        &events(&mut layer)[..],
        [LayerEvent::Cancel {
            invite: None,
            invite_pending: false,
            ..
        }]
    ));
    layer
        .handle_message(
            clock.now,
            SipMessage::Request(invite(BR)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    let invite_key = match &events(&mut layer)[..] {
        [LayerEvent::NewRequest { key, .. }] => key.clone(),
        ev => panic!("{ev:?}"),
    };
    layer
        .send_response(
            clock.at(5),
            &invite_key,
            invite_response(200, BR, Some("b")),
        )
        .unwrap();
    layer
        .handle_message(
            clock.at(10),
            SipMessage::Request(request("CANCEL", BR, 314159)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(matches!(
        &events(&mut layer)[..],
        [LayerEvent::Cancel {
            invite: Some(_),
            invite_pending: false,
            ..
        }]
    ));
}

#[test]
fn ack_for_a_2xx_goes_to_the_core() {
    let clock = Clock::new();
    let mut layer = TransactionLayer::new();
    layer
        .handle_message(
            clock.now,
            SipMessage::Request(invite(BR)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    let key = match &events(&mut layer)[..] {
        [LayerEvent::NewRequest { key, .. }] => key.clone(),
        ev => panic!("{ev:?}"),
    };
    layer
        .send_response(clock.at(5), &key, invite_response(200, BR, Some("b")))
        .unwrap();
    // The ACK for a 2xx has its own branch: no transaction, to the core.
    layer
        .handle_message(
            clock.at(50),
            SipMessage::Request(request("ACK", "z9hG4bKack2xx", 314159)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(matches!(&events(&mut layer)[..], [LayerEvent::Ack { .. }]));
    // Same branch as the INVITE (RFC 2543 style): passed up by Accepted.
    layer
        .handle_message(
            clock.at(60),
            SipMessage::Request(request("ACK", BR, 314159)),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(matches!(&events(&mut layer)[..], [LayerEvent::Ack { .. }]));
    assert!(layer.poll_event().is_none());
}

#[test]
fn forked_2xx_reach_the_core_then_stray_after_timer_m() {
    let mut clock = Clock::new();
    let mut layer = TransactionLayer::new();
    let key = layer
        .send_request(clock.now, invite(BR), peer(), Transport::Udp)
        .unwrap();
    assert_eq!(what(&layer.poll_transmit().unwrap()), "INVITE");
    for (ms, tag) in [(100, "fork-a"), (150, "fork-b")] {
        layer
            .handle_message(
                clock.at(ms),
                SipMessage::Response(invite_response(200, BR, Some(tag))),
                peer(),
                Transport::Udp,
            )
            .unwrap();
    }
    let tags: Vec<String> = events(&mut layer)
        .into_iter()
        .map(|e| match e {
            LayerEvent::Response { key: k, response } => {
                assert_eq!(k, key);
                response
                    .to_header()
                    .unwrap()
                    .tag()
                    .unwrap()
                    .unwrap()
                    .to_string()
            }
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(tags, vec!["fork-a", "fork-b"]);
    assert_eq!(clock.step(&mut layer), Some(100 + 32000));
    assert_eq!(
        events(&mut layer),
        vec![LayerEvent::Terminated { key: key.clone() }]
    );
    assert!(!layer.has_client(&key));
    layer
        .handle_message(
            clock.now,
            SipMessage::Response(invite_response(200, BR, Some("fork-a"))),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(matches!(
        &events(&mut layer)[..],
        [LayerEvent::StrayResponse { .. }]
    ));
}

#[test]
fn soonest_timeout_of_all_and_timeouts_reported() {
    let mut clock = Clock::new();
    let mut layer = TransactionLayer::new();
    let inv = layer
        .send_request(clock.now, invite("z9hG4bKinv"), peer(), Transport::Tcp)
        .unwrap();
    clock.advance(std::time::Duration::from_millis(1000));
    let opt = layer
        .send_request(
            clock.now,
            request("OPTIONS", "z9hG4bKopt", 1),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert_ne!(inv, opt);
    assert_eq!(layer.poll_timeout(), Some(clock.at(1500))); // E of OPTIONS
    drain(|| layer.poll_transmit());
    let mut timeouts = Vec::new();
    while let Some(ms) = clock.step(&mut layer) {
        for e in events(&mut layer) {
            if let LayerEvent::Timeout { key } = e {
                timeouts.push((ms, key));
            }
        }
    }
    assert_eq!(timeouts, vec![(32000, inv), (33000, opt)]);
    assert_eq!(layer.len(), (0, 0));
}

#[test]
fn layer_cancel_builds_a_cancel_transaction() {
    let clock = Clock::new();
    let mut layer = TransactionLayer::new();
    let key = layer
        .send_request(clock.now, invite(BR), peer(), Transport::Udp)
        .unwrap();
    drain(|| layer.poll_transmit());
    let ckey = layer.cancel(clock.at(10), &key).unwrap();
    assert_eq!(ckey.method, rsip::Method::Cancel);
    assert_eq!(ckey.branch, key.branch);
    let t = layer.poll_transmit().unwrap();
    assert_eq!(what(&t), "CANCEL");
    assert!(
        layer
            .send_request(clock.at(11), invite(BR), peer(), Transport::Udp)
            .is_err()
    );
}

#[test]
fn responses_are_routed_by_branch_and_method() {
    let clock = Clock::new();
    let mut layer = TransactionLayer::new();
    let key = layer
        .send_request(clock.now, request("MESSAGE", BR, 7), peer(), Transport::Udp)
        .unwrap();
    // Same branch, other method: no match.
    layer
        .handle_message(
            clock.at(5),
            SipMessage::Response(response(200, "OPTIONS", BR, 7, Some("x"))),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(matches!(
        &events(&mut layer)[..],
        [LayerEvent::StrayResponse { .. }]
    ));
    layer
        .handle_message(
            clock.at(6),
            SipMessage::Response(response(200, "MESSAGE", BR, 7, Some("x"))),
            peer(),
            Transport::Udp,
        )
        .unwrap();
    assert!(matches!(&events(&mut layer)[..], [LayerEvent::Response { key: k, .. }] if *k == key));
}

#[test]
fn transport_error_reaches_the_core() {
    let clock = Clock::new();
    let mut layer = TransactionLayer::new();
    let key = layer
        .send_request(clock.now, request("OPTIONS", BR, 1), peer(), Transport::Tcp)
        .unwrap();
    layer.handle_transport_error(clock.at(1), &key);
    assert_eq!(
        events(&mut layer),
        vec![
            LayerEvent::TransportError { key: key.clone() },
            LayerEvent::Terminated { key }
        ]
    );
}

#[test]
fn requests_without_branch_use_rfc2543_matching() {
    let clock = Clock::new();
    let mut layer = TransactionLayer::new();
    let text = crlf(
        "OPTIONS sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com
To: <sip:bob@biloxi.example.com>
From: <sip:alice@atlanta.example.com>;tag=1
Call-ID: x
CSeq: 1 OPTIONS
Content-Length: 0

",
    );
    // RFC 3261 §17.2.3 / RFC 4475 §3.4.1: matched the RFC 2543 way, not refused.
    assert_eq!(
        layer.handle_message(clock.now, parse(&text), peer(), Transport::Udp),
        Ok(())
    );
    assert!(matches!(
        layer.poll_event(),
        Some(LayerEvent::NewRequest { key, .. }) if !key.is_rfc3261()
    ));
    // the retransmission is absorbed by the same transaction
    assert_eq!(
        layer.handle_message(clock.now, parse(&text), peer(), Transport::Udp),
        Ok(())
    );
    assert!(layer.poll_event().is_none());
}
