//! The B2BUA's dialog handling for the CPM function: BYE from either side,
//! CANCEL from the originator, in-dialog requests answered by the role.

mod common;
mod cpm_common;

use common::Peer;
use cpm_common::*;
use isc::proto::msrp::MsrpUri;
use isc::proto::sip::headers::HeadersExt;

/// An in-dialog request from alice on the dialog of `invite` / `ok`.
fn in_dialog(
    alice: &mut Peer,
    method: &str,
    seq: u32,
    invite: &rsip::Request,
    ok: &rsip::Response,
) -> rsip::Request {
    let contact = ok.headers.get_raw("Contact").unwrap();
    let uri = contact
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let text = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n",
        alice.addr(),
        alice.token(),
        invite.headers.get_raw("From").unwrap(),
        ok.headers.get_raw("To").unwrap(),
        invite.headers.get_raw("Call-ID").unwrap(),
    );
    match isc::proto::sip::message::parse_message(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn originator_bye_reaches_the_device() {
    let server = start(|_| {}).await;
    let mut s = one_device_session(&server).await;
    let seq = isc::proto::sip::build::cseq(&s.invite.headers).unwrap().0 + 1;
    let (invite, ok) = (s.invite.clone(), s.ok.clone());
    let info = in_dialog(&mut s.alice, "INFO", seq, &invite, &ok);
    s.alice.send(info.clone()).await;
    assert_eq!(
        final_for(&s.alice, &info).await.status_code.code(),
        200,
        "INFO answered"
    );
    let bye = in_dialog(&mut s.alice, "BYE", seq + 1, &invite, &ok);
    s.alice.send(bye.clone()).await;
    assert_eq!(final_for(&s.alice, &bye).await.status_code.code(), 200);
    let dev_bye = recv_request(&s.bob.sip, rsip::Method::Bye).await;
    assert!(dev_bye.headers.get_raw("Reason").is_none());
    s.bob.sip.answer(&dev_bye, 200).await;
    assert!(
        s.b.closed_within(5.0).await,
        "the device's MSRP leg is released"
    );
    // The dialog is gone: a second BYE gets 481.
    let again = in_dialog(&mut s.alice, "BYE", seq + 2, &invite, &ok);
    s.alice.send(again.clone()).await;
    assert_eq!(final_for(&s.alice, &again).await.status_code.code(), 481);
    server.shutdown().await;
}

#[tokio::test]
async fn last_device_bye_ends_the_originator_leg() {
    let server = start(|_| {}).await;
    let mut s = one_device_session(&server).await;
    // Alice's connection is bound by her first SEND (RFC 4975 §5.4).
    let hello = isc::proto::msrp::MsrpMessage::request(
        isc::proto::msrp::MsrpMethod::Send,
        "bind1",
        s.to_server.clone(),
        isc::proto::msrp::MsrpPath::single(s.alice_uri.clone()),
    )
    .with_header(isc::proto::msrp::MsrpHeader::MessageId("b1".into()));
    s.a.send(&hello).await;
    assert_eq!(s.a.recv().await.code(), Some(200));
    // The device's side of its dialog with the server.
    let inv = &s.bob_invite;
    let contact = inv.headers.get_raw("Contact").unwrap();
    let uri = contact
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let text = format!(
        "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKdevbye1;rport\r\nMax-Forwards: 70\r\nFrom: {};tag=bobtag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        s.bob.sip.addr(),
        inv.headers.get_raw("To").unwrap(),
        inv.headers.get_raw("From").unwrap(),
        inv.headers.get_raw("Call-ID").unwrap(),
    );
    s.bob
        .sip
        .sock
        .send_to(text.as_bytes(), server.local_addr())
        .await
        .unwrap();
    let resp = loop {
        match s.bob.sip.recv().await {
            rsip::SipMessage::Response(r) => break r,
            _ => continue,
        }
    };
    assert_eq!(resp.status_code.code(), 200);
    let bye = recv_request(&s.alice, rsip::Method::Bye).await;
    assert_eq!(
        bye.headers.get_raw("Call-ID"),
        s.invite.headers.get_raw("Call-ID")
    );
    s.alice.answer(&bye, 200).await;
    assert!(s.a.closed_within(5.0).await, "alice's MSRP leg is released");
    server.shutdown().await;
}

#[tokio::test]
async fn originator_cancel_cancels_every_device_and_gets_487() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let d1 = Device::register(addr, "bob", "bob-1", "one").await;
    let d2 = Device::register(addr, "bob", "bob-2", "two").await;
    let sdp = msrp_sdp(&MsrpUri::new("127.0.0.1", 7, "alicesess"), "actpass", "");
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, &[]);
    let req = send_invite(&mut alice, req).await;
    let i1 = recv_request(&d1.sip, rsip::Method::Invite).await;
    let i2 = recv_request(&d2.sip, rsip::Method::Invite).await;
    answer(&d1.sip, &i1, 180, "r1", None).await;
    answer(&d2.sip, &i2, 180, "r2", None).await;
    let mut cancel = req.clone();
    cancel.method = rsip::Method::Cancel;
    let seq = isc::proto::sip::build::cseq(&req.headers).unwrap().0;
    cancel.headers.remove_named("CSeq");
    cancel.headers.remove_named("Content-Type");
    cancel.headers.remove_named("Content-Length");
    cancel.headers.push(isc::proto::sip::headers::make_header(
        "CSeq",
        &format!("{seq} CANCEL"),
    ));
    cancel
        .headers
        .push(isc::proto::sip::headers::make_header("Content-Length", "0"));
    cancel.body = Vec::new();
    alice.send(cancel).await;
    for (d, inv) in [(&d1, &i1), (&d2, &i2)] {
        let c = recv_request(&d.sip, rsip::Method::Cancel).await;
        assert_eq!(c.headers.get_raw("Call-ID"), inv.headers.get_raw("Call-ID"));
        assert_eq!(
            isc::proto::sip::build::top_via_branch(&c.headers),
            isc::proto::sip::build::top_via_branch(&inv.headers)
        );
        d.sip.answer(&c, 200).await;
        d.sip.answer(inv, 487).await;
    }
    assert_eq!(final_for(&alice, &req).await.status_code.code(), 487);
    server.shutdown().await;
}

#[tokio::test]
async fn session_timers_on_both_legs() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    // RFC 4028 §9: too small an interval gets 422 with Min-SE.
    let mut carol = Peer::new(addr, "carol", "carol").await;
    let _bob = Device::register(addr, "bob", "bob-x", "x").await;
    let sdp = msrp_sdp(&MsrpUri::new("127.0.0.1", 7, "carolsess"), "actpass", "");
    let req = cpm_invite(
        &mut carol,
        "sip:bob@isc.local",
        &sdp,
        &["Supported: timer", "Session-Expires: 30"],
    );
    let req = send_invite(&mut carol, req).await;
    let r = final_for(&carol, &req).await;
    assert_eq!(r.status_code.code(), 422);
    assert_eq!(r.headers.get_raw("Min-SE").as_deref(), Some("90"));
    drop(_bob);
    server.shutdown().await;

    let server = start(|_| {}).await;
    let mut s = one_device_session(&server).await;
    // The device's INVITE asks for a session timer; alice's 200 carries one.
    assert!(
        s.bob_invite
            .headers
            .get_raw("Supported")
            .unwrap()
            .contains("timer")
    );
    assert!(s.bob_invite.headers.get_raw("Session-Expires").is_some());
    let se = s.ok.headers.get_raw("Session-Expires").unwrap();
    assert!(se.starts_with("1800"), "{se}");
    // A refresh from alice (UPDATE) renews it.
    let seq = isc::proto::sip::build::cseq(&s.invite.headers).unwrap().0 + 1;
    let (invite, ok) = (s.invite.clone(), s.ok.clone());
    let mut update = in_dialog(&mut s.alice, "UPDATE", seq, &invite, &ok);
    update
        .headers
        .push(isc::proto::sip::headers::make_header("Supported", "timer"));
    update.headers.push(isc::proto::sip::headers::make_header(
        "Session-Expires",
        "600;refresher=uac",
    ));
    s.alice.send(update.clone()).await;
    let r = final_for(&s.alice, &update).await;
    assert_eq!(r.status_code.code(), 200);
    assert_eq!(
        r.headers.get_raw("Session-Expires").as_deref(),
        Some("600;refresher=uac")
    );
    assert_eq!(r.headers.get_raw("Require").as_deref(), Some("timer"));
    server.shutdown().await;
}
