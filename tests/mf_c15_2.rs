//! Flow C.15.2 (seed 000): the recipient uses two devices and wants one for
//! content viewing. alice/laptop watches with bob; bob/tv (B1) accepts, so
//! bob/phone (B2) gets CANCEL with the RFC 3326 Reason (5.4.3.3). The CM
//! half (steps 5–6, 12–16) belongs to the chat client and the CPM function.

mod common;
mod cpm_common;
mod mf_common;

use std::time::Duration;

use isc::proto::bodies::cv_cancellation::{self, CvCancellation};
use isc::proto::sip::headers::HeadersExt;

use cpm_common::{final_for, recv_request};
use mf_common::*;

const REASON: &str = "SIP;cause=200;text=\"Call completed elsewhere\"";

#[tokio::test]
async fn c15_2_recipient_uses_two_devices() {
    let server = start(|o| user_mut(o, "bob").cv_single_device = true).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let b1 = Viewer::register(addr, "bob", "b1", "tv").await;
    let mut b2 = Viewer::register(addr, "bob", "b2", "phone").await;

    // 2. alice → server: INVITE (CV), UsingMultipleClient = no
    let request = content_request("melody", None, None, "sip:bob@isc.local");
    let sdp = alice.sdp();
    let inv = cv_invite(
        &mut alice.sip,
        "sip:bob@isc.local",
        ICSI_1_1,
        &sdp,
        &request,
        vec![],
        &[],
    );
    let sent = send_invite(&mut alice.sip, inv).await;

    // 3. forked to B1 and B2, each at its GRUU
    let i1 = recv_request(&b1.sip, rsip::Method::Invite).await;
    let i2 = recv_request(&b2.sip, rsip::Method::Invite).await;
    assert_eq!(i1.uri.to_string(), b1.gruu);
    assert_eq!(i2.uri.to_string(), b2.gruu);
    assert_eq!(
        i1.headers.get_raw("ISCConvergenceID").as_deref(),
        Some("cv-test-1")
    );
    assert_ne!(i1.headers.get_raw("Call-ID"), i2.headers.get_raw("Call-ID"));

    // 7. B1 accepts
    answer_ok(&b1.sip, &i1, "b1tag", &b1.sdp()).await;
    // 8. alice gets 200 (CV)
    let ok = final_for(&alice.sip, &sent).await;
    assert_eq!(ok.status_code.code(), 200);
    let ad = DialogView::uac(&sent, &ok);
    let seq = isc::proto::sip::build::cseq(&sent.headers).unwrap().0;
    let ack = ad.ack(&mut alice.sip, seq);
    alice.sip.send(ack).await;

    // 9. server → B2: CANCEL (CV) with the Reason and the seed's body
    let cancel = recv_request(&b2.sip, rsip::Method::Cancel).await;
    assert_eq!(cancel.headers.get_raw("Reason").as_deref(), Some(REASON));
    assert_eq!(
        cancel.headers.get_raw("Call-ID"),
        i2.headers.get_raw("Call-ID")
    );
    assert_eq!(cancel.uri, i2.uri);
    assert_eq!(
        cancel.headers.get_raw("Via").unwrap().split(',').next(),
        i2.headers.get_raw("Via").unwrap().split(',').next(),
        "same branch as the INVITE (RFC 3261 §9.1)"
    );
    assert_eq!(
        cancel.headers.get_raw("Content-Type").as_deref(),
        Some(cv_cancellation::CONTENT_TYPE)
    );
    let body = CvCancellation::parse(&cancel.body).unwrap();
    assert_eq!(
        Some(body.cv_invite_identifier),
        i2.headers.get_raw("Call-ID")
    );
    assert!(!body.cancellation_id.is_empty());
    // 10. B2: 200 (CANCEL), 487 (INVITE); the server ACKs the 487
    b2.sip.answer(&cancel, 200).await;
    let mut r487 = isc::proto::sip::build::response_to(&i2, 487, Some("b2tag"));
    r487.headers.remove_named("Content-Length");
    r487.headers
        .push(isc::proto::sip::headers::make_header("Content-Length", "0"));
    b2.sip.send(r487).await;
    let ack487 = recv_request(&b2.sip, rsip::Method::Ack).await;
    assert_eq!(
        ack487.headers.get_raw("Call-ID"),
        i2.headers.get_raw("Call-ID")
    );

    // 11. RTP to alice and B1, none to B2
    let (at_a, at_b1, at_b2) = tokio::join!(
        alice.audio_rtp(Duration::from_millis(600)),
        b1.audio_rtp(Duration::from_millis(600)),
        b2.audio_rtp(Duration::from_millis(600)),
    );
    assert!(at_a.len() >= 15, "alice got {}", at_a.len());
    assert!(at_b1.len() >= 15, "B1 got {}", at_b1.len());
    assert!(at_b2.is_empty(), "none to B2");
    let _ = &mut b2;
    server.shutdown().await;
}

/// Both devices answer 200 before the CANCEL could matter: B2's 200 is
/// ACKed and then gets BYE with the Reason (a CANCEL is only valid before a
/// final response, RFC 3261 §9.1).
#[tokio::test]
async fn late_second_200_gets_ack_then_bye() {
    let server = start(|o| user_mut(o, "bob").cv_single_device = true).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let b1 = Viewer::register(addr, "bob", "b1", "tv").await;
    let b2 = Viewer::register(addr, "bob", "b2", "phone").await;
    let request = content_request("melody", None, None, "sip:bob@isc.local");
    let sdp = alice.sdp();
    let inv = cv_invite(
        &mut alice.sip,
        "sip:bob@isc.local",
        ICSI_1_1,
        &sdp,
        &request,
        vec![],
        &[],
    );
    let sent = send_invite(&mut alice.sip, inv).await;
    let i1 = recv_request(&b1.sip, rsip::Method::Invite).await;
    let i2 = recv_request(&b2.sip, rsip::Method::Invite).await;
    answer_ok(&b1.sip, &i1, "b1tag", &b1.sdp()).await;
    answer_ok(&b2.sip, &i2, "b2tag", &b2.sdp()).await;
    assert_eq!(final_for(&alice.sip, &sent).await.status_code.code(), 200);
    // B2 sees (maybe a CANCEL it answers 200/481 to,) the ACK, then BYE
    let mut saw_ack = false;
    let bye = loop {
        match b2.sip.recv().await {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Ack => saw_ack = true,
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Cancel => {
                b2.sip.answer(&r, 481).await
            }
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Bye => break r,
            _ => {}
        }
    };
    assert!(saw_ack, "ACK before BYE");
    assert_eq!(bye.headers.get_raw("Reason").as_deref(), Some(REASON));
    b2.sip.answer(&bye, 200).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drain(&b2.audio.rtp).await;
    assert!(b2.audio_rtp(Duration::from_millis(300)).await.is_empty());
    assert!(!b1.audio_rtp(Duration::from_millis(300)).await.is_empty());
    server.shutdown().await;
}
