//! Two endpoints, each a TransactionLayer, wired by hand on a virtual clock
//! (str0m style, no sockets): INVITE / 180 / 200 with the first 200 lost on
//! UDP, the UAS core's 2xx retransmission, the dialog's ACK, a late 2xx
//! copy re-ACKed, then BYE.

mod sip_transaction_support;

use isc::proto::sip::dialog::*;
use isc::proto::sip::transaction::*;
use rsip::prelude::*;
use rsip::{Header, Method, SipMessage};
use sip_transaction_support::*;

/// A response to `request` (what the message layer's `response_to` does).
fn reply(request: &rsip::Request, code: u16, to_tag: &str) -> rsip::Response {
    let mut headers = rsip::Headers::default();
    for h in request.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(to) => headers.push(Header::To(to.clone().with_tag(to_tag.into()).unwrap())),
            _ => {}
        }
    }
    headers.push(Header::Contact("<sip:bob@192.0.2.20>".into()));
    headers.push(Header::ContentLength(0u32.into()));
    rsip::Response {
        status_code: code.into(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

fn via(branch: &str, host: &str) -> rsip::typed::Via {
    rsip::headers::Via::new(format!("SIP/2.0/UDP {host};branch={branch}"))
        .typed()
        .unwrap()
}

/// Deliver every transmit of `from` to `to` (dropping the ones `lose` says).
fn deliver(
    clock: &Clock,
    from: &mut TransactionLayer,
    to: &mut TransactionLayer,
    source: std::net::SocketAddr,
    mut lose: impl FnMut(&Transmit) -> bool,
) -> usize {
    let mut n = 0;
    while let Some(t) = from.poll_transmit() {
        if lose(&t) {
            continue;
        }
        to.handle_message(clock.now, t.message, source, t.transport)
            .unwrap();
        n += 1;
    }
    n
}

#[test]
fn invite_with_lost_2xx_then_bye() {
    let mut clock = Clock::new();
    let (alice_addr, bob_addr) = (addr(), peer());
    let mut alice = TransactionLayer::new();
    let mut bob = TransactionLayer::new();
    let mut alice_dialogs = Dialogs::new();

    // Alice: INVITE.
    let invite = invite("z9hG4bKinv1");
    alice
        .send_request(clock.now, invite.clone(), bob_addr, Transport::Udp)
        .unwrap();
    deliver(&clock, &mut alice, &mut bob, alice_addr, |_| false);
    let (inv_key, inv) = match bob.poll_event() {
        Some(LayerEvent::NewRequest { key, request, .. }) => (key, request),
        e => panic!("{e:?}"),
    };

    // Bob: 180 then 200; the 200 is lost on the way.
    clock.advance(std::time::Duration::from_millis(100));
    let ringing = reply(&inv, 180, "bobtag");
    bob.send_response(clock.now, &inv_key, ringing.clone())
        .unwrap();
    let mut bob_dialog = Dialog::new_uas(&inv, &ringing, 1).unwrap();
    deliver(&clock, &mut bob, &mut alice, bob_addr, |_| false);
    let early = match alice.poll_event() {
        Some(LayerEvent::Response { response, .. }) => alice_dialogs
            .handle_uac_response(&invite, &response)
            .unwrap()
            .unwrap(),
        e => panic!("{e:?}"),
    };
    assert_eq!(
        alice_dialogs.get(&early).unwrap().state(),
        DialogState::Early
    );

    clock.advance(std::time::Duration::from_millis(900));
    let ok = reply(&inv, 200, "bobtag");
    bob.send_response(clock.now, &inv_key, ok.clone()).unwrap();
    bob_dialog.handle_sent_response(&ok);
    let mut ok_rtx = OkRetransmission::new(clock.now, ok, alice_addr, Transport::Udp);
    assert_eq!(deliver(&clock, &mut bob, &mut alice, bob_addr, |_| true), 0);

    // T1 later the UAS core re-sends the 2xx; it arrives this time.
    assert_eq!(clock.step(&mut ok_rtx), Some(1000 + 500));
    let again = ok_rtx.poll_transmit().unwrap();
    alice
        .handle_message(clock.now, again.message, bob_addr, Transport::Udp)
        .unwrap();
    let response = match alice.poll_event() {
        Some(LayerEvent::Response { response, .. }) => response,
        e => panic!("{e:?}"),
    };
    let id = alice_dialogs
        .handle_uac_response(&invite, &response)
        .unwrap()
        .unwrap();
    assert_eq!(id, early);
    let d = alice_dialogs.get_mut(&id).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    let ack = d
        .create_ack_for_invite(&invite, via("z9hG4bKack1", "192.0.2.10"))
        .unwrap();
    alice.send_stateless(Transmit {
        to: bob_addr,
        transport: Transport::Udp,
        message: SipMessage::Request(ack.clone()),
    });
    deliver(&clock, &mut alice, &mut bob, alice_addr, |_| false);
    match bob.poll_event() {
        Some(LayerEvent::Ack { request, .. }) => {
            assert!(ok_rtx.matches_ack(&request));
            ok_rtx.handle_ack(clock.now);
            bob_dialog.handle_request(&request).unwrap();
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        ok_rtx.poll_event(),
        Some(OkRetransmissionEvent::Acknowledged)
    );
    assert_eq!(ok_rtx.poll_timeout(), None);

    // A late copy of the 2xx: the client transaction (Accepted) passes it
    // up and the dialog re-sends the same ACK.
    alice
        .handle_message(
            clock.now,
            SipMessage::Response(response.clone()),
            bob_addr,
            Transport::Udp,
        )
        .unwrap();
    let late = match alice.poll_event() {
        Some(LayerEvent::Response { response, .. }) => response,
        e => panic!("{e:?}"),
    };
    assert_eq!(
        alice_dialogs
            .get(&id)
            .unwrap()
            .ack_for_retransmission(&late),
        Some(ack)
    );

    // Alice hangs up.
    let d = alice_dialogs.get_mut(&id).unwrap();
    let bye = d
        .create_request(Method::Bye, via("z9hG4bKbye1", "192.0.2.10"))
        .unwrap();
    assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.20");
    alice
        .send_request(clock.now, bye, bob_addr, Transport::Udp)
        .unwrap();
    deliver(&clock, &mut alice, &mut bob, alice_addr, |_| false);
    let (bye_key, bye) = match bob.poll_event() {
        Some(LayerEvent::NewRequest { key, request, .. }) => (key, request),
        e => panic!("{e:?}"),
    };
    bob_dialog.handle_request(&bye).unwrap();
    assert_eq!(bob_dialog.state(), DialogState::Terminated);
    bob.send_response(clock.now, &bye_key, reply(&bye, 200, "bobtag"))
        .unwrap();
    deliver(&clock, &mut bob, &mut alice, bob_addr, |_| false);
    match alice.poll_event() {
        Some(LayerEvent::Response { response, .. }) => {
            alice_dialogs
                .get_mut(&id)
                .unwrap()
                .handle_response(&response)
                .unwrap();
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        alice_dialogs.get(&id).unwrap().state(),
        DialogState::Terminated
    );

    // Everything winds down by itself: Timer M, L, K, J.
    while clock.step(&mut alice).is_some() {}
    while clock.step(&mut bob).is_some() {}
    assert_eq!(alice.len(), (0, 0));
    assert_eq!(bob.len(), (0, 0));
}
