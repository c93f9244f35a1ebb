//! Dialogs (RFC 3261 §12): creation from forked 1xx/2xx, route set,
//! Request-URI and CSeq of in-dialog requests, target refresh, remote CSeq.

mod sip_transaction_support;

use isc::proto::sip::dialog::*;
use rsip::prelude::*;
use rsip::{Header, Method};
use sip_transaction_support::*;

fn via(branch: &str) -> rsip::typed::Via {
    rsip::headers::Via::new(format!(
        "SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}"
    ))
    .typed()
    .unwrap()
}

/// A response to the INVITE of `invite()` with Record-Route and Contact.
fn answer(code: u16, tag: &str, contact: &str, record_route: &[&str]) -> rsip::Response {
    let rr: String = record_route
        .iter()
        .map(|r| format!("Record-Route: {r}\n"))
        .collect();
    resp(&crlf(&format!(
        "SIP/2.0 {code} Whatever
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK1
{rr}To: Bob <sip:bob@biloxi.example.com>;tag={tag}
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <{contact}>
Content-Length: 0

"
    )))
}

fn routes(r: &rsip::Request) -> Vec<String> {
    r.headers
        .iter()
        .filter_map(|h| match h {
            Header::Route(r) => Some(r.value().to_string()),
            _ => None,
        })
        .collect()
}

fn cseq(r: &rsip::Request) -> (u32, Method) {
    let c = r.cseq_header().unwrap().typed().unwrap();
    (c.seq, c.method)
}

#[test]
fn forked_provisionals_make_one_early_dialog_each() {
    let inv = invite("z9hG4bK1");
    let mut dialogs = Dialogs::new();
    assert_eq!(
        dialogs
            .handle_uac_response(&inv, &invite_response(100, "z9hG4bK1", None))
            .unwrap(),
        None
    );
    let a = dialogs
        .handle_uac_response(&inv, &answer(180, "fork-a", "sip:bob@192.0.2.4", &[]))
        .unwrap()
        .unwrap();
    let b = dialogs
        .handle_uac_response(&inv, &answer(183, "fork-b", "sip:bob@192.0.2.5", &[]))
        .unwrap()
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(a.local_tag, "1928301774");
    assert_eq!(a.remote_tag, "fork-a");
    assert_eq!(dialogs.len(), 2);
    assert_eq!(dialogs.get(&a).unwrap().state(), DialogState::Early);
    // fork-a answers: confirmed; a third fork answers straight with 2xx.
    dialogs
        .handle_uac_response(&inv, &answer(200, "fork-a", "sip:bob@192.0.2.4", &[]))
        .unwrap();
    let c = dialogs
        .handle_uac_response(&inv, &answer(200, "fork-c", "sip:bob@192.0.2.6", &[]))
        .unwrap()
        .unwrap();
    assert_eq!(dialogs.get(&a).unwrap().state(), DialogState::Confirmed);
    assert_eq!(dialogs.get(&b).unwrap().state(), DialogState::Early);
    assert_eq!(dialogs.get(&c).unwrap().state(), DialogState::Confirmed);
    assert_eq!(dialogs.forks(&a.call_id, &a.local_tag).count(), 3);
    assert_eq!(
        dialogs.get(&c).unwrap().remote_target().to_string(),
        "sip:bob@192.0.2.6"
    );
}

#[test]
fn a_final_error_ends_the_early_dialogs() {
    let inv = invite("z9hG4bK1");
    let mut dialogs = Dialogs::new();
    let a = dialogs
        .handle_uac_response(&inv, &answer(180, "fork-a", "sip:bob@192.0.2.4", &[]))
        .unwrap()
        .unwrap();
    dialogs
        .handle_uac_response(&inv, &answer(486, "fork-b", "sip:bob@192.0.2.5", &[]))
        .unwrap();
    assert_eq!(dialogs.get(&a).unwrap().state(), DialogState::Terminated);
    dialogs.purge();
    assert!(dialogs.is_empty());
}

#[test]
fn uac_route_set_is_reversed_record_route_and_loose_routing_keeps_the_target() {
    let inv = invite("z9hG4bK1");
    let ok = answer(
        200,
        "b",
        "sip:bob@192.0.2.4",
        &["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"],
    );
    let mut d = Dialog::new_uac(&inv, &ok).unwrap();
    assert_eq!(d.role(), DialogRole::Uac);
    let rs: Vec<String> = d.route_set().iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(rs, vec!["sip:p1.example.com;lr", "sip:p2.example.com;lr"]);
    assert_eq!(d.next_hop().to_string(), "sip:p1.example.com;lr");
    let bye = d.create_request(Method::Bye, via("z9hG4bKbye")).unwrap();
    assert_eq!(bye.method, Method::Bye);
    // §12.2.1.1 loose routing: R-URI is the remote target, Route = route set.
    assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.4");
    assert_eq!(
        routes(&bye),
        vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    assert_eq!(cseq(&bye), (314160, Method::Bye));
    assert_eq!(
        bye.from_header()
            .unwrap()
            .tag()
            .unwrap()
            .unwrap()
            .to_string(),
        "1928301774"
    );
    assert_eq!(
        bye.to_header().unwrap().tag().unwrap().unwrap().to_string(),
        "b"
    );
    assert_eq!(
        bye.call_id_header().unwrap().value(),
        "a84b4c76e66710@pc33.atlanta.example.com"
    );
    assert!(bye.contact_header().is_err()); // BYE is no target refresh
    let info = d.create_request(Method::Info, via("z9hG4bKinfo")).unwrap();
    assert_eq!(cseq(&info), (314161, Method::Info));
    // Re-INVITE, UPDATE and NOTIFY carry our Contact.
    for m in [Method::Invite, Method::Update, Method::Notify] {
        let r = d.create_request(m, via("z9hG4bKx")).unwrap();
        assert_eq!(
            r.contact_header().unwrap().value(),
            "<sip:alice@pc33.atlanta.example.com>"
        );
    }
    for m in [Method::Message, Method::Refer] {
        assert!(d.create_request(m, via("z9hG4bKy")).is_ok());
    }
    assert_eq!(d.local_seq(), 314166);
    assert!(d.create_request(Method::Ack, via("z9hG4bKz")).is_err());
    // The whole request prints and parses back.
    let again = req(&bye.to_string());
    assert_eq!(again.uri, bye.uri);
}

#[test]
fn strict_router_becomes_the_request_uri() {
    let inv = invite("z9hG4bK1");
    let ok = answer(
        200,
        "b",
        "sip:bob@192.0.2.4",
        &["<sip:p2.example.com;lr>", "<sip:p1.example.com>"],
    );
    let mut d = Dialog::new_uac(&inv, &ok).unwrap();
    let bye = d.create_request(Method::Bye, via("z9hG4bKbye")).unwrap();
    assert_eq!(bye.uri.to_string(), "sip:p1.example.com");
    assert_eq!(
        routes(&bye),
        vec!["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"]
    );
}

#[test]
fn ack_for_2xx_is_built_from_the_dialog_and_resent_on_retransmission() {
    let inv = invite("z9hG4bK1");
    let ok = answer(200, "b", "sip:bob@192.0.2.4", &["<sip:p1.example.com;lr>"]);
    let mut d = Dialog::new_uac(&inv, &ok).unwrap();
    let ack = d.create_ack(314159, via("z9hG4bKack"));
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(cseq(&ack), (314159, Method::Ack));
    assert_eq!(ack.uri.to_string(), "sip:bob@192.0.2.4");
    assert_eq!(routes(&ack), vec!["<sip:p1.example.com;lr>"]);
    assert_eq!(d.local_seq(), 314159); // ACK does not use a new CSeq
    assert_eq!(d.ack_for_retransmission(&ok), Some(ack));
    let other = invite_response(200, "z9hG4bK1", Some("b"));
    let mut later = other.clone();
    later.headers.retain(|h| !matches!(h, Header::CSeq(_)));
    later.headers.push(
        rsip::typed::CSeq {
            seq: 1,
            method: Method::Invite,
        }
        .into(),
    );
    assert_eq!(d.ack_for_retransmission(&later), None);
}

fn reinvite(cseq: u32, method: &str, contact: &str) -> rsip::Request {
    req(&crlf(&format!(
        "{method} sip:alice@pc33.atlanta.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKre{cseq}
Max-Forwards: 70
To: Alice <sip:alice@atlanta.example.com>;tag=1928301774
From: Bob <sip:bob@biloxi.example.com>;tag=b
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: {cseq} {method}
Contact: <{contact}>
Content-Length: 0

"
    )))
}

#[test]
fn remote_cseq_order_and_target_refresh_on_the_uac() {
    let inv = invite("z9hG4bK1");
    let mut d = Dialog::new_uac(&inv, &answer(200, "b", "sip:bob@192.0.2.4", &[])).unwrap();
    assert_eq!(d.remote_seq(), None);
    d.handle_request(&reinvite(10, "INVITE", "sip:bob@192.0.2.99"))
        .unwrap();
    assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.99");
    assert_eq!(d.remote_seq(), Some(10));
    // INFO is no target refresh.
    d.handle_request(&reinvite(11, "INFO", "sip:bob@192.0.2.77"))
        .unwrap();
    assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.99");
    d.handle_request(&reinvite(12, "UPDATE", "sip:bob@192.0.2.55"))
        .unwrap();
    assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.55");
    // §12.2.2: lower CSeq -> 500.
    let err = d
        .handle_request(&reinvite(9, "INFO", "sip:bob@192.0.2.4"))
        .unwrap_err();
    assert_eq!(
        err,
        DialogError::CSeqOutOfOrder {
            remote: 12,
            received: 9
        }
    );
    assert_eq!(err.status_code(), 500);
    // A request for another dialog.
    let mut stranger = reinvite(13, "INFO", "sip:x@y");
    stranger.headers.retain(|h| !matches!(h, Header::From(_)));
    stranger
        .headers
        .push(Header::From("<sip:eve@example.com>;tag=zzz".into()));
    assert_eq!(d.handle_request(&stranger).unwrap_err().status_code(), 481);
    // BYE ends the dialog.
    d.handle_request(&reinvite(13, "BYE", "sip:bob@192.0.2.4"))
        .unwrap();
    assert_eq!(d.state(), DialogState::Terminated);
    assert_eq!(
        d.create_request(Method::Info, via("z9hG4bKq")),
        Err(DialogError::Terminated)
    );
}

#[test]
fn target_refresh_from_a_2xx_to_re_invite() {
    let inv = invite("z9hG4bK1");
    let mut d = Dialog::new_uac(&inv, &answer(200, "b", "sip:bob@192.0.2.4", &[])).unwrap();
    let re = d.create_request(Method::Invite, via("z9hG4bKre")).unwrap();
    let (seq, _) = cseq(&re);
    let mut ok = answer(200, "b", "sip:bob@192.0.2.200", &[]);
    ok.headers.retain(|h| !matches!(h, Header::CSeq(_)));
    ok.headers.push(
        rsip::typed::CSeq {
            seq,
            method: Method::Invite,
        }
        .into(),
    );
    d.handle_response(&ok).unwrap();
    assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.200");
    // 481 to an in-dialog request ends it (§12.2.1.2).
    let mut gone = answer(481, "b", "sip:bob@192.0.2.200", &[]);
    gone.headers.retain(|h| !matches!(h, Header::CSeq(_)));
    gone.headers.push(
        rsip::typed::CSeq {
            seq: seq + 1,
            method: Method::Info,
        }
        .into(),
    );
    d.handle_response(&gone).unwrap();
    assert_eq!(d.state(), DialogState::Terminated);
}

#[test]
fn uas_dialog_keeps_record_route_in_order_and_numbers_its_requests() {
    let text = crlf(
        "INVITE sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK1
Max-Forwards: 69
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Length: 0

",
    );
    let inv = req(&text);
    let ok = answer(200, "bobtag", "sip:bob@192.0.2.4", &[]);
    let mut d = Dialog::new_uas(&inv, &ok, 1).unwrap();
    assert_eq!(d.role(), DialogRole::Uas);
    assert_eq!(d.id().local_tag, "bobtag");
    assert_eq!(d.id().remote_tag, "1928301774");
    assert_eq!(d.remote_seq(), Some(314159));
    assert_eq!(
        d.remote_target().to_string(),
        "sip:alice@pc33.atlanta.example.com"
    );
    let bye = d.create_request(Method::Bye, via("z9hG4bKbb")).unwrap();
    assert_eq!(cseq(&bye), (1, Method::Bye));
    assert_eq!(
        routes(&bye),
        vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    assert_eq!(bye.uri.to_string(), "sip:alice@pc33.atlanta.example.com");
    assert_eq!(
        bye.from_header()
            .unwrap()
            .tag()
            .unwrap()
            .unwrap()
            .to_string(),
        "bobtag"
    );
    assert_eq!(
        bye.to_header().unwrap().tag().unwrap().unwrap().to_string(),
        "1928301774"
    );
    // The ACK of the 2xx (its own branch) matches the dialog.
    let ack_text = crlf(
        "ACK sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKack
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>;tag=bobtag
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 ACK
Content-Length: 0

",
    );
    let ack = req(&ack_text);
    assert_eq!(&DialogId::for_received_request(&ack).unwrap(), d.id());
    d.handle_request(&ack).unwrap();
    let mut dialogs = Dialogs::new();
    dialogs.insert(d);
    assert!(dialogs.for_request(&ack).is_some());
}

#[test]
fn dialog_creation_errors() {
    let inv = invite("z9hG4bK1");
    assert_eq!(
        Dialog::new_uac(&inv, &invite_response(486, "z9hG4bK1", Some("x"))).unwrap_err(),
        DialogError::NotDialogCreating(486)
    );
    assert_eq!(
        Dialog::new_uac(&inv, &invite_response(200, "z9hG4bK1", None)).unwrap_err(),
        DialogError::MissingTag("To")
    );
}

#[test]
fn ack_for_invite_carries_its_credentials() {
    let text = crlf(
        "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK2
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314160 INVITE
Proxy-Authorization: Digest username=\"alice\", realm=\"atlanta.example.com\", nonce=\"n\", uri=\"sip:bob@biloxi.example.com\", response=\"r\"
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Length: 0

",
    );
    let inv = req(&text);
    let mut d = Dialog::new_uac(&inv, &answer(200, "b", "sip:bob@192.0.2.4", &[])).unwrap();
    let ack = d.create_ack_for_invite(&inv, via("z9hG4bKack")).unwrap();
    assert_eq!(cseq(&ack), (314160, Method::Ack));
    assert!(
        ack.headers
            .iter()
            .any(|h| matches!(h, Header::ProxyAuthorization(_)))
    );
    assert!(matches!(
        ack.headers.iter().last(),
        Some(Header::ContentLength(_))
    ));
}

#[test]
fn uas_early_dialog_confirmed_by_the_2xx_it_sends() {
    let inv = invite("z9hG4bK1");
    let ringing = invite_response(180, "z9hG4bK1", Some("b"));
    let mut d = Dialog::new_uas(&inv, &ringing, 1).unwrap();
    assert_eq!(d.state(), DialogState::Early);
    d.handle_sent_response(&invite_response(200, "z9hG4bK1", Some("b")));
    assert_eq!(d.state(), DialogState::Confirmed);
    let mut e = Dialog::new_uas(&inv, &ringing, 1).unwrap();
    e.handle_sent_response(&invite_response(486, "z9hG4bK1", Some("b")));
    assert_eq!(e.state(), DialogState::Terminated);
}

#[test]
fn ok_retransmission_matches_its_ack() {
    let clock = Clock::new();
    // The UAS sent this 2xx: To tag "b" is ours, From tag the caller's.
    let ok = invite_response(200, "z9hG4bK1", Some("b"));
    let m = OkRetransmission::new(
        clock.now,
        ok,
        addr(),
        isc::proto::sip::transaction::Transport::Udp,
    );
    let ack = |tag: &str, seq: u32| {
        req(&crlf(&format!(
            "ACK sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKack
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>;tag={tag}
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: {seq} ACK
Content-Length: 0

"
        )))
    };
    assert!(m.matches_ack(&ack("b", 314159)));
    assert!(!m.matches_ack(&ack("other", 314159)));
    assert!(!m.matches_ack(&ack("b", 1)));
}
