//! The four RFC 3261 §17 machines and the §13.3.1.4 2xx retransmission on a
//! virtual clock: exact retransmission instants, timeouts, absorption.

mod sip_transaction_support;

use isc::proto::sip::dialog::{OkRetransmission, OkRetransmissionEvent};
use isc::proto::sip::transaction::*;
use rsip::prelude::*;
use sip_transaction_support::*;

const BR: &str = "z9hG4bK776asdhds";

/// Step a machine until it has nothing pending; collect (ms, transmits).
fn run<M: Timed>(
    clock: &mut Clock,
    m: &mut M,
    mut take: impl FnMut(&mut M) -> Vec<Transmit>,
) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    while let Some(ms) = clock.step(m) {
        let n = take(m).len();
        out.push((ms, n));
    }
    out
}

// ---------------------------------------------------------------- client INVITE

#[test]
fn client_invite_timer_a_doubles_until_timer_b() {
    let mut clock = Clock::new();
    let mut tsx =
        ClientInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Udp).unwrap();
    assert_eq!(
        tsx.poll_transmit().map(|t| what(&t)).as_deref(),
        Some("INVITE")
    );
    let schedule = run(&mut clock, &mut tsx, |t| drain(|| t.poll_transmit()));
    // RFC 3261 §17.1.1.2: A at T1, 2T1, 4T1, ... ; B at 64*T1.
    assert_eq!(
        schedule,
        vec![
            (500, 1),
            (1500, 1),
            (3500, 1),
            (7500, 1),
            (15500, 1),
            (31500, 1),
            (32000, 0)
        ]
    );
    assert_eq!(
        drain(|| tsx.poll_event()),
        vec![TsxEvent::Timeout, TsxEvent::Terminated]
    );
    assert_eq!(tsx.state(), ClientInviteState::Terminated);
}

#[test]
fn client_invite_on_tcp_does_not_retransmit() {
    let mut clock = Clock::new();
    let mut tsx =
        ClientInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Tcp).unwrap();
    assert_eq!(drain(|| tsx.poll_transmit()).len(), 1);
    let schedule = run(&mut clock, &mut tsx, |t| drain(|| t.poll_transmit()));
    assert_eq!(schedule, vec![(32000, 0)]);
    assert_eq!(tsx.state(), ClientInviteState::Terminated);
}

#[test]
fn client_invite_provisional_stops_timer_a_and_b() {
    let mut clock = Clock::new();
    let mut tsx =
        ClientInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Udp).unwrap();
    drain(|| tsx.poll_transmit());
    clock.step(&mut tsx); // A at 500
    let now = clock.advance(std::time::Duration::from_millis(100));
    tsx.handle_response(now, invite_response(100, BR, None));
    assert_eq!(tsx.state(), ClientInviteState::Proceeding);
    assert_eq!(tsx.poll_timeout(), None);
    assert!(matches!(tsx.poll_event(), Some(TsxEvent::Response(_))));
}

#[test]
fn client_invite_non_2xx_is_acked_and_timer_d_absorbs_retransmissions() {
    let mut clock = Clock::new();
    let mut tsx =
        ClientInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Udp).unwrap();
    drain(|| tsx.poll_transmit());
    tsx.handle_response(clock.at(100), invite_response(180, BR, Some("a6c85cf")));
    clock.advance(std::time::Duration::from_millis(1000));
    tsx.handle_response(clock.now, invite_response(486, BR, Some("a6c85cf")));
    assert_eq!(tsx.state(), ClientInviteState::Completed);
    let sent = drain(|| tsx.poll_transmit());
    assert_eq!(sent.len(), 1);
    // RFC 3261 §17.1.1.3: the ACK.
    let rsip::SipMessage::Request(ack) = &sent[0].message else {
        panic!()
    };
    assert_eq!(ack.method, rsip::Method::Ack);
    assert_eq!(ack.uri.to_string(), "sip:bob@biloxi.example.com");
    assert_eq!(ack.cseq_header().unwrap().typed().unwrap().seq, 314159);
    assert_eq!(
        ack.cseq_header().unwrap().typed().unwrap().method,
        rsip::Method::Ack
    );
    assert_eq!(
        ack.to_header()
            .unwrap()
            .tag()
            .unwrap()
            .map(|t| t.to_string()),
        Some("a6c85cf".into())
    );
    assert_eq!(
        ack.via_header()
            .unwrap()
            .typed()
            .unwrap()
            .branch()
            .unwrap()
            .to_string(),
        BR
    );
    assert_eq!(
        ack.headers
            .iter()
            .filter(|h| matches!(h, rsip::Header::Via(_)))
            .count(),
        1
    );
    let events = drain(|| tsx.poll_event());
    assert_eq!(events.len(), 2); // 180 and 486
    // A retransmitted 486 is ACKed again and not passed up.
    tsx.handle_response(clock.at(2000), invite_response(486, BR, Some("a6c85cf")));
    assert_eq!(what(&tsx.poll_transmit().unwrap()), "ACK");
    assert_eq!(tsx.poll_event(), None);
    // Timer D: 32 s after the first 486.
    assert_eq!(tsx.poll_timeout(), Some(clock.at(1000 + 32000)));
    clock.step(&mut tsx);
    assert_eq!(tsx.state(), ClientInviteState::Terminated);
    assert_eq!(tsx.poll_event(), Some(TsxEvent::Terminated));
}

#[test]
fn client_invite_non_2xx_on_tcp_terminates_at_once() {
    let clock = Clock::new();
    let mut tsx =
        ClientInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Tcp).unwrap();
    drain(|| tsx.poll_transmit());
    tsx.handle_response(clock.at(10), invite_response(404, BR, Some("x")));
    assert_eq!(what(&tsx.poll_transmit().unwrap()), "ACK");
    assert_eq!(tsx.state(), ClientInviteState::Terminated);
}

#[test]
fn client_invite_forked_2xx_all_reach_the_tu_until_timer_m() {
    let mut clock = Clock::new();
    let mut tsx =
        ClientInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Udp).unwrap();
    drain(|| tsx.poll_transmit());
    tsx.handle_response(clock.at(200), invite_response(200, BR, Some("fork-a")));
    assert_eq!(tsx.state(), ClientInviteState::Accepted);
    tsx.handle_response(clock.at(300), invite_response(200, BR, Some("fork-b")));
    tsx.handle_response(clock.at(900), invite_response(200, BR, Some("fork-a")));
    let tags: Vec<String> = drain(|| tsx.poll_event())
        .into_iter()
        .map(|e| match e {
            TsxEvent::Response(r) => r.to_header().unwrap().tag().unwrap().unwrap().to_string(),
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(tags, vec!["fork-a", "fork-b", "fork-a"]);
    // No ACK from the transaction for a 2xx (the TU sends it, §13.2.2.4).
    assert_eq!(tsx.poll_transmit(), None);
    // RFC 6026 Timer M: 64*T1 after the first 2xx.
    assert_eq!(clock.step(&mut tsx), Some(200 + 32000));
    assert_eq!(tsx.state(), ClientInviteState::Terminated);
}

#[test]
fn client_invite_transport_error() {
    let clock = Clock::new();
    let mut tsx =
        ClientInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Udp).unwrap();
    tsx.handle_transport_error(clock.at(1));
    assert_eq!(
        drain(|| tsx.poll_event()),
        vec![TsxEvent::TransportError, TsxEvent::Terminated]
    );
}

#[test]
fn client_invite_builds_its_cancel() {
    let clock = Clock::new();
    let tsx = ClientInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Udp).unwrap();
    let cancel = tsx.cancel_request();
    assert_eq!(cancel.method, rsip::Method::Cancel);
    assert_eq!(cancel.cseq_header().unwrap().typed().unwrap().seq, 314159);
    assert_eq!(cancel.transaction_id().unwrap().unwrap().to_string(), BR);
    assert_eq!(cancel.uri, tsx.request().uri);
}

// ---------------------------------------------------------------- client non-INVITE

#[test]
fn client_non_invite_timer_e_caps_at_t2_until_timer_f() {
    let mut clock = Clock::new();
    let mut tsx = ClientNonInviteTransaction::new(
        clock.now,
        request("OPTIONS", BR, 1),
        peer(),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(drain(|| tsx.poll_transmit()).len(), 1);
    let schedule = run(&mut clock, &mut tsx, |t| drain(|| t.poll_transmit()));
    let expect: Vec<(u64, usize)> = [
        500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]
    .into_iter()
    .map(|ms| (ms, 1))
    .chain([(32000, 0)])
    .collect();
    assert_eq!(schedule, expect);
    assert_eq!(
        drain(|| tsx.poll_event()),
        vec![TsxEvent::Timeout, TsxEvent::Terminated]
    );
}

#[test]
fn client_non_invite_retransmits_every_t2_in_proceeding() {
    let mut clock = Clock::new();
    let mut tsx =
        ClientNonInviteTransaction::new(clock.now, request("BYE", BR, 2), peer(), Transport::Udp)
            .unwrap();
    drain(|| tsx.poll_transmit());
    clock.step(&mut tsx); // E at 500, next at 1500
    tsx.handle_response(clock.at(600), response(100, "BYE", BR, 2, None));
    assert_eq!(tsx.state(), ClientNonInviteState::Proceeding);
    drain(|| tsx.poll_transmit());
    assert_eq!(clock.step(&mut tsx), Some(1500));
    assert_eq!(clock.step(&mut tsx), Some(5500));
    assert_eq!(clock.step(&mut tsx), Some(9500));
}

#[test]
fn client_non_invite_timer_k_absorbs_retransmitted_finals() {
    let mut clock = Clock::new();
    let mut tsx =
        ClientNonInviteTransaction::new(clock.now, request("BYE", BR, 2), peer(), Transport::Udp)
            .unwrap();
    drain(|| tsx.poll_transmit());
    tsx.handle_response(clock.at(50), response(200, "BYE", BR, 2, Some("t")));
    assert_eq!(tsx.state(), ClientNonInviteState::Completed);
    assert!(matches!(tsx.poll_event(), Some(TsxEvent::Response(_))));
    tsx.handle_response(clock.at(60), response(200, "BYE", BR, 2, Some("t")));
    assert_eq!(tsx.poll_event(), None);
    assert_eq!(tsx.poll_transmit(), None);
    assert_eq!(clock.step(&mut tsx), Some(50 + 5000)); // Timer K = T4
    assert_eq!(tsx.state(), ClientNonInviteState::Terminated);
}

#[test]
fn client_non_invite_on_tcp() {
    let mut clock = Clock::new();
    let mut tsx =
        ClientNonInviteTransaction::new(clock.now, request("BYE", BR, 2), peer(), Transport::Tcp)
            .unwrap();
    drain(|| tsx.poll_transmit());
    assert_eq!(tsx.poll_timeout(), Some(clock.at(32000))); // only F
    tsx.handle_response(clock.at(50), response(200, "BYE", BR, 2, Some("t")));
    assert_eq!(tsx.state(), ClientNonInviteState::Terminated); // K = 0
    assert_eq!(clock.step(&mut tsx), None);
}

#[test]
fn client_machines_reject_wrong_methods() {
    let clock = Clock::new();
    assert!(matches!(
        ClientNonInviteTransaction::new(clock.now, invite(BR), peer(), Transport::Udp),
        Err(TransactionError::WrongMethod { .. })
    ));
    assert!(matches!(
        ClientInviteTransaction::new(clock.now, request("BYE", BR, 1), peer(), Transport::Udp),
        Err(TransactionError::WrongMethod { .. })
    ));
}

// ---------------------------------------------------------------- server INVITE

#[test]
fn server_invite_sends_100_trying_after_200_ms() {
    let mut clock = Clock::new();
    let mut tsx =
        ServerInviteTransaction::new(clock.now, invite(BR), addr(), Transport::Udp).unwrap();
    assert_eq!(tsx.poll_transmit(), None);
    assert_eq!(clock.step(&mut tsx), Some(200));
    let t = tsx.poll_transmit().unwrap();
    assert_eq!(what(&t), "100");
    assert_eq!(t.to, addr());
    assert_eq!(tsx.poll_timeout(), None);
    // A retransmitted INVITE gets the 100 again.
    tsx.handle_request(clock.at(700), invite(BR));
    assert_eq!(what(&tsx.poll_transmit().unwrap()), "100");
}

#[test]
fn server_invite_sends_100_at_once_on_retransmitted_invite() {
    let clock = Clock::new();
    let mut tsx =
        ServerInviteTransaction::new(clock.now, invite(BR), addr(), Transport::Udp).unwrap();
    tsx.handle_request(clock.at(100), invite(BR));
    assert_eq!(what(&tsx.poll_transmit().unwrap()), "100");
    assert_eq!(tsx.poll_timeout(), None);
}

#[test]
fn server_invite_no_100_when_the_tu_rings_first() {
    let mut clock = Clock::new();
    let mut tsx =
        ServerInviteTransaction::new(clock.now, invite(BR), addr(), Transport::Udp).unwrap();
    tsx.send_response(clock.at(50), invite_response(180, BR, Some("b")))
        .unwrap();
    assert_eq!(what(&tsx.poll_transmit().unwrap()), "180");
    assert_eq!(clock.step(&mut tsx), None);
    tsx.handle_request(clock.at(500), invite(BR));
    assert_eq!(what(&tsx.poll_transmit().unwrap()), "180");
}

#[test]
fn server_invite_2xx_goes_to_accepted_without_retransmission() {
    let mut clock = Clock::new();
    let mut tsx =
        ServerInviteTransaction::new(clock.now, invite(BR), addr(), Transport::Udp).unwrap();
    tsx.send_response(clock.at(10), invite_response(200, BR, Some("b")))
        .unwrap();
    assert_eq!(tsx.state(), ServerInviteState::Accepted);
    assert_eq!(drain(|| tsx.poll_transmit()).len(), 1);
    // Retransmitted INVITE absorbed (RFC 6026).
    tsx.handle_request(clock.at(500), invite(BR));
    assert_eq!(tsx.poll_transmit(), None);
    // The TU's own 2xx retransmission passes through.
    tsx.send_response(clock.at(510), invite_response(200, BR, Some("b")))
        .unwrap();
    assert_eq!(what(&tsx.poll_transmit().unwrap()), "200");
    // An ACK with the INVITE's branch goes up.
    let mut ack = request("ACK", BR, 314159);
    ack.method = rsip::Method::Ack;
    tsx.handle_request(clock.at(600), ack);
    assert!(matches!(tsx.poll_event(), Some(TsxEvent::Request(_))));
    // Nothing but Timer L pending: the transaction never retransmits a 2xx.
    assert_eq!(clock.step(&mut tsx), Some(10 + 32000));
    assert_eq!(tsx.poll_transmit(), None);
    assert_eq!(tsx.state(), ServerInviteState::Terminated);
}

#[test]
fn server_invite_non_2xx_retransmitted_by_g_until_ack_then_i() {
    let mut clock = Clock::new();
    let mut tsx =
        ServerInviteTransaction::new(clock.now, invite(BR), addr(), Transport::Udp).unwrap();
    tsx.send_response(clock.now, invite_response(486, BR, Some("b")))
        .unwrap();
    assert_eq!(tsx.state(), ServerInviteState::Completed);
    drain(|| tsx.poll_transmit());
    let mut at = Vec::new();
    for _ in 0..4 {
        at.push(clock.step(&mut tsx).unwrap());
        assert_eq!(what(&tsx.poll_transmit().unwrap()), "486");
    }
    // Timer G: T1, 2T1, 4T1, then capped at T2.
    assert_eq!(at, vec![500, 1500, 3500, 7500]);
    assert_eq!(tsx.poll_timeout(), Some(clock.at(11500)));
    // A retransmitted INVITE gets the 486 again.
    tsx.handle_request(clock.at(8000), invite(BR));
    assert_eq!(what(&tsx.poll_transmit().unwrap()), "486");
    let ack = request("ACK", BR, 314159);
    tsx.handle_request(clock.at(9000), ack.clone());
    assert_eq!(tsx.state(), ServerInviteState::Confirmed);
    assert_eq!(tsx.poll_event(), None); // ACK for a non-2xx is absorbed
    tsx.handle_request(clock.at(9100), ack);
    assert_eq!(tsx.poll_transmit(), None);
    // Timer I = T4 after the ACK.
    assert_eq!(clock.step(&mut tsx), Some(9000 + 5000));
    assert_eq!(tsx.state(), ServerInviteState::Terminated);
    assert_eq!(tsx.poll_event(), Some(TsxEvent::Terminated));
}

#[test]
fn server_invite_timer_h_without_ack() {
    let mut clock = Clock::new();
    let mut tsx =
        ServerInviteTransaction::new(clock.now, invite(BR), addr(), Transport::Udp).unwrap();
    tsx.send_response(clock.now, invite_response(404, BR, Some("b")))
        .unwrap();
    drain(|| tsx.poll_transmit());
    let schedule = run(&mut clock, &mut tsx, |t| drain(|| t.poll_transmit()));
    let expect: Vec<(u64, usize)> = [
        500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]
    .into_iter()
    .map(|ms| (ms, 1))
    .chain([(32000, 0)])
    .collect();
    assert_eq!(schedule, expect);
    assert_eq!(
        drain(|| tsx.poll_event()),
        vec![TsxEvent::Timeout, TsxEvent::Terminated]
    );
}

#[test]
fn server_invite_on_tcp_no_g_and_ack_terminates() {
    let mut clock = Clock::new();
    let mut tsx =
        ServerInviteTransaction::new(clock.now, invite(BR), addr(), Transport::Tcp).unwrap();
    tsx.send_response(clock.now, invite_response(486, BR, Some("b")))
        .unwrap();
    drain(|| tsx.poll_transmit());
    assert_eq!(tsx.poll_timeout(), Some(clock.at(32000))); // H only
    tsx.handle_request(clock.at(100), request("ACK", BR, 314159));
    assert_eq!(tsx.state(), ServerInviteState::Terminated);
    assert_eq!(clock.step(&mut tsx), None);
}

#[test]
fn server_invite_rejects_responses_after_final() {
    let clock = Clock::new();
    let mut tsx =
        ServerInviteTransaction::new(clock.now, invite(BR), addr(), Transport::Udp).unwrap();
    tsx.send_response(clock.now, invite_response(486, BR, Some("b")))
        .unwrap();
    assert!(matches!(
        tsx.send_response(clock.now, invite_response(200, BR, Some("b"))),
        Err(TransactionError::WrongState { .. })
    ));
}

// ---------------------------------------------------------------- server non-INVITE

#[test]
fn server_non_invite_paths_and_timer_j() {
    let mut clock = Clock::new();
    let bye = request("BYE", BR, 2);
    let mut tsx =
        ServerNonInviteTransaction::new(clock.now, bye.clone(), addr(), Transport::Udp).unwrap();
    assert_eq!(tsx.state(), ServerNonInviteState::Trying);
    tsx.handle_request(clock.at(10), bye.clone());
    assert_eq!(tsx.poll_transmit(), None); // absorbed in Trying
    tsx.send_response(clock.at(20), response(100, "BYE", BR, 2, None))
        .unwrap();
    assert_eq!(tsx.state(), ServerNonInviteState::Proceeding);
    tsx.handle_request(clock.at(30), bye.clone());
    assert_eq!(drain(|| tsx.poll_transmit()).len(), 2);
    tsx.send_response(clock.at(40), response(200, "BYE", BR, 2, Some("t")))
        .unwrap();
    assert_eq!(tsx.state(), ServerNonInviteState::Completed);
    tsx.handle_request(clock.at(50), bye);
    let sent: Vec<String> = drain(|| tsx.poll_transmit()).iter().map(what).collect();
    assert_eq!(sent, vec!["200", "200"]);
    assert_eq!(clock.step(&mut tsx), Some(40 + 32000));
    assert_eq!(tsx.state(), ServerNonInviteState::Terminated);
}

#[test]
fn server_non_invite_on_tcp_terminates_on_final() {
    let clock = Clock::new();
    let mut tsx = ServerNonInviteTransaction::new(
        clock.now,
        request("MESSAGE", BR, 2),
        addr(),
        Transport::Tcp,
    )
    .unwrap();
    tsx.send_response(clock.at(1), response(200, "MESSAGE", BR, 2, Some("t")))
        .unwrap();
    assert_eq!(tsx.state(), ServerNonInviteState::Terminated);
    assert_eq!(tsx.poll_timeout(), None);
}

// ---------------------------------------------------------------- §13.3.1.4

#[test]
fn ok_is_retransmitted_until_ack() {
    let mut clock = Clock::new();
    let ok = invite_response(200, BR, Some("b"));
    let mut m = OkRetransmission::new(clock.now, ok, addr(), Transport::Udp);
    let mut at = Vec::new();
    for _ in 0..5 {
        at.push(clock.step(&mut m).unwrap());
        assert_eq!(what(&m.poll_transmit().unwrap()), "200");
    }
    assert_eq!(at, vec![500, 1500, 3500, 7500, 11500]);
    m.handle_ack(clock.at(12000));
    assert_eq!(m.poll_event(), Some(OkRetransmissionEvent::Acknowledged));
    assert_eq!(m.poll_timeout(), None);
    assert!(!m.is_active());
}

#[test]
fn ok_without_ack_asks_for_bye_after_64_t1() {
    let mut clock = Clock::new();
    let ok = invite_response(200, BR, Some("b"));
    let mut m = OkRetransmission::new(clock.now, ok, addr(), Transport::Udp);
    let schedule = run(&mut clock, &mut m, |t| drain(|| t.poll_transmit()));
    assert_eq!(schedule.last(), Some(&(32000, 0)));
    assert_eq!(schedule.len(), 11); // 10 retransmissions, then give up
    assert_eq!(m.poll_event(), Some(OkRetransmissionEvent::NoAck));
}

#[test]
fn ok_on_tcp_is_not_retransmitted() {
    let mut clock = Clock::new();
    let ok = invite_response(200, BR, Some("b"));
    let mut m = OkRetransmission::new(clock.now, ok, addr(), Transport::Tcp);
    let schedule = run(&mut clock, &mut m, |t| drain(|| t.poll_transmit()));
    assert_eq!(schedule, vec![(32000, 0)]);
    assert_eq!(m.poll_event(), Some(OkRetransmissionEvent::NoAck));
}
