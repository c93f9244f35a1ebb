//! Random sequences of inputs and timeouts fed to each machine: no panic,
//! and the state only moves forward along the RFC 3261 / RFC 6026 figures.

mod sip_transaction_support;

use isc::proto::sip::dialog::OkRetransmission;
use isc::proto::sip::transaction::*;
use proptest::prelude::*;
use rsip::SipMessage;
use sip_transaction_support::*;
use std::time::Duration;

const BR: &str = "z9hG4bKprop";
const CODES: [u16; 8] = [100, 180, 183, 200, 302, 404, 486, 503];

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Timeout,
    Response(u16, bool),
    Invite,
    Ack,
    Other,
    TuResponse(u16),
    TransportError,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..40_000).prop_map(Op::Advance),
        Just(Op::Timeout),
        (prop::sample::select(&CODES[..]), any::<bool>()).prop_map(|(c, t)| Op::Response(c, t)),
        Just(Op::Invite),
        Just(Op::Ack),
        Just(Op::Other),
        prop::sample::select(&CODES[..]).prop_map(Op::TuResponse),
        Just(Op::TransportError),
    ]
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)]
}

fn tag(t: bool) -> Option<&'static str> {
    t.then_some("tt")
}

/// Run the ops on a machine through closures; check the rank never drops.
macro_rules! drive {
    ($m:ident, $ops:expr, $rank:expr, |$now:ident, $o:ident| $body:block) => {{
        let mut clock = Clock::new();
        let mut last = $rank(&$m);
        for $o in $ops {
            if let Op::Advance(ms) = $o {
                clock.advance(Duration::from_millis(ms));
                continue;
            }
            if let Op::Timeout = $o {
                clock.step(&mut $m);
            }
            let $now = clock.now;
            $body
            while $m.poll_transmit().is_some() {}
            while $m.poll_event().is_some() {}
            let r = $rank(&$m);
            prop_assert!(r >= last, "state went back: {} -> {}", last, r);
            last = r;
            if let Some(at) = $m.poll_timeout() {
                // A pending timer never lies further out than Timer B/F/H + slack.
                prop_assert!(at <= clock.now + Duration::from_secs(65));
            }
        }
    }};
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_invite_moves_forward(tp in transport(), ops in prop::collection::vec(op(), 0..40)) {
        let clock = Clock::new();
        let mut m = ClientInviteTransaction::new(clock.now, invite(BR), peer(), tp).unwrap();
        drive!(m, ops, |m: &ClientInviteTransaction| m.state().rank(), |now, o| {
            match o {
                Op::Response(c, t) => m.handle_response(now, invite_response(c, BR, tag(t))),
                Op::TransportError => m.handle_transport_error(now),
                _ => {}
            }
        });
    }

    #[test]
    fn client_non_invite_moves_forward(tp in transport(), ops in prop::collection::vec(op(), 0..40)) {
        let clock = Clock::new();
        let mut m = ClientNonInviteTransaction::new(
            clock.now, request("OPTIONS", BR, 1), peer(), tp).unwrap();
        drive!(m, ops, |m: &ClientNonInviteTransaction| m.state() as u8, |now, o| {
            match o {
                Op::Response(c, t) => m.handle_response(now, response(c, "OPTIONS", BR, 1, tag(t))),
                Op::TransportError => m.handle_transport_error(now),
                _ => {}
            }
        });
    }

    #[test]
    fn server_invite_moves_forward(tp in transport(), ops in prop::collection::vec(op(), 0..40)) {
        let clock = Clock::new();
        let mut m = ServerInviteTransaction::new(clock.now, invite(BR), addr(), tp).unwrap();
        drive!(m, ops, |m: &ServerInviteTransaction| m.state().rank(), |now, o| {
            match o {
                Op::Invite => m.handle_request(now, invite(BR)),
                Op::Ack => m.handle_request(now, request("ACK", BR, 314159)),
                Op::TuResponse(c) => { let _ = m.send_response(now, invite_response(c, BR, Some("b"))); }
                Op::TransportError => m.handle_transport_error(now),
                _ => {}
            }
        });
    }

    #[test]
    fn server_non_invite_moves_forward(tp in transport(), ops in prop::collection::vec(op(), 0..40)) {
        let clock = Clock::new();
        let bye = request("BYE", BR, 2);
        let mut m = ServerNonInviteTransaction::new(clock.now, bye.clone(), addr(), tp).unwrap();
        drive!(m, ops, |m: &ServerNonInviteTransaction| m.state() as u8, |now, o| {
            match o {
                Op::Other => m.handle_request(now, bye.clone()),
                Op::TuResponse(c) => { let _ = m.send_response(now, response(c, "BYE", BR, 2, Some("b"))); }
                Op::TransportError => m.handle_transport_error(now),
                _ => {}
            }
        });
    }

    #[test]
    fn ok_retransmission_stops_once(tp in transport(), ops in prop::collection::vec(op(), 0..40)) {
        let clock = Clock::new();
        let mut m = OkRetransmission::new(clock.now, invite_response(200, BR, Some("b")), addr(), tp);
        drive!(m, ops, |m: &OkRetransmission| u8::from(!m.is_active()), |now, o| {
            if let Op::Ack = o { m.handle_ack(now) }
        });
    }

    /// The layer under random traffic in both directions: no panic, and
    /// every transaction it reports terminated is gone.
    #[test]
    fn layer_survives_random_traffic(ops in prop::collection::vec((op(), 0usize..3), 0..60)) {
        let mut clock = Clock::new();
        let mut layer = TransactionLayer::new();
        let branches = ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"];
        let mut server_keys = Vec::new();
        for (o, i) in ops {
            let b = branches[i];
            let now = clock.now;
            match o {
                Op::Advance(ms) => { clock.advance(Duration::from_millis(ms)); }
                Op::Timeout => { clock.step(&mut layer); }
                Op::Response(c, t) => {
                    let method = if i == 0 { "INVITE" } else { "OPTIONS" };
                    let cseq = if i == 0 { 314159 } else { 1 };
                    let _ = layer.handle_message(now,
                        SipMessage::Response(response(c, method, b, cseq, tag(t))), peer(), Transport::Udp);
                }
                Op::Invite => {
                    let _ = layer.send_request(now, invite(b), peer(), Transport::Udp);
                    let _ = layer.handle_message(now, SipMessage::Request(invite(b)), peer(), Transport::Udp);
                }
                Op::Ack => {
                    let _ = layer.handle_message(now, SipMessage::Request(request("ACK", b, 314159)), peer(), Transport::Udp);
                }
                Op::Other => {
                    let _ = layer.send_request(now, request("OPTIONS", b, 1), peer(), Transport::Udp);
                    let _ = layer.handle_message(now, SipMessage::Request(request("CANCEL", b, 314159)), peer(), Transport::Udp);
                }
                Op::TuResponse(c) => {
                    for k in &server_keys {
                        let _ = layer.send_response(now, k, invite_response(c, b, Some("x")));
                    }
                }
                Op::TransportError => {
                    if let Some(k) = server_keys.first() { layer.handle_transport_error(now, k); }
                }
            }
            while layer.poll_transmit().is_some() {}
            while let Some(e) = layer.poll_event() {
                match e {
                    LayerEvent::NewRequest { key, .. } | LayerEvent::Cancel { key, .. } => server_keys.push(key),
                    LayerEvent::Terminated { key } => {
                        prop_assert!(!layer.has_client(&key) && !layer.has_server(&key));
                        server_keys.retain(|k| k != &key);
                    }
                    _ => {}
                }
            }
        }
    }
}
