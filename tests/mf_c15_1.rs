//! Flow C.15.1 (seed 000): the initiator uses two devices. alice/tv (A1)
//! plays, alice/phone (A2) chats, bob/phone watches. Every numbered CV step
//! is checked on the wire; the CM half (steps 6–7, 11–13) belongs to the
//! chat client and the CPM function.

mod common;
mod cpm_common;
mod mf_common;

use std::time::Duration;

use isc::proto::bodies::cm_recommendation::{self, CmRecommendation};
use isc::proto::bodies::isc::SessionType;
use isc::proto::bodies::isc_content_request::{self, IscContentRequest};
use isc::proto::sdp::{Direction, parse_sdp};
use isc::proto::sip::headers::HeadersExt;
use isc::server::content_list::{self, ContentList};
use isc::server::runner::Direction as WireDirection;

use cpm_common::{final_for, recv_request};
use mf_common::*;

#[tokio::test]
async fn c15_1_initiator_uses_two_devices() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut a1 = Viewer::register(addr, "alice", "a1", "tv").await;
    let a2 = Viewer::register(addr, "alice", "a2", "phone").await;
    let mut bob = Viewer::register(addr, "bob", "b1", "phone").await;
    let mut wire = server.wire();

    // 1. A1 fetches the content list from the server
    let opts = a1.sip.request(
        "OPTIONS",
        "sip:content@isc.local",
        "sip:content@isc.local",
        &[format!("Accept: {}", content_list::CONTENT_TYPE)],
        "",
    );
    let resp = a1.sip.send_authenticated(opts).await;
    assert_eq!(resp.status_code.code(), 200);
    assert_eq!(
        resp.headers.get_raw("Content-Type").as_deref(),
        Some(content_list::CONTENT_TYPE)
    );
    let list = ContentList::parse(&resp.body).unwrap();
    let content = list
        .entries
        .first()
        .expect("content listed")
        .content_ref
        .clone();
    assert_eq!(list.entries[0].media, ["audio", "video"]);

    // 2. A1 → server: INVITE (CV) with UsingMultipleClient=yes, CCA = A2's GRUU
    let request = content_request(
        &content,
        Some(&a2.gruu),
        Some(&a1.gruu),
        "sip:bob@isc.local",
    );
    let sdp = a1.sdp();
    let inv = cv_invite(
        &mut a1.sip,
        "sip:bob@isc.local",
        ICSI_1_1,
        &sdp,
        &request,
        vec![],
        &["ISCConvergenceID: cv-c151"],
    );
    let sent = send_invite(&mut a1.sip, inv).await;
    // what went on the wire from A1 (the authorised INVITE)
    let a1_invite = loop {
        let ev = wire.recv().await.unwrap();
        if ev.direction == WireDirection::In
            && ev.peer == a1.sip.addr()
            && ev.bytes.starts_with(b"INVITE")
            && String::from_utf8_lossy(&ev.bytes).contains("Proxy-Authorization")
        {
            break String::from_utf8_lossy(&ev.bytes).into_owned();
        }
    };
    assert!(a1_invite.contains("ISCConvergenceID: cv-c151"));
    assert!(a1_invite.contains("1-1-cv-cm"));
    assert!(
        a1_invite
            .contains("P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.isc.1-1-cv-cm")
    );
    let cr = part(
        &sent.headers,
        &sent.body,
        "application/isc-content-request+xml",
    )
    .unwrap();
    let parsed = IscContentRequest::parse(&cr.body).unwrap();
    assert_eq!(parsed.content_ref, content);
    assert!(parsed.using_multiple_client);
    assert_eq!(
        parsed.communication_client_addr.as_deref(),
        Some(a2.gruu.as_str())
    );

    // 3. server → bob: INVITE (CV)
    let binv = recv_request(&bob.sip, rsip::Method::Invite).await;
    assert_eq!(
        binv.uri.to_string(),
        bob.gruu,
        "Request-URI = the device's GRUU"
    );
    assert_eq!(
        binv.headers.get_raw("ISCConvergenceID").as_deref(),
        Some("cv-c151")
    );
    assert!(
        binv.headers
            .get_raw("Accept-Contact")
            .unwrap()
            .contains("1-1-cv-cm")
    );
    assert_eq!(
        binv.headers.get_raw("P-Asserted-Service").as_deref(),
        Some(ICSI_1_1),
        "PPS → PAS"
    );
    assert!(binv.headers.get_raw("P-Preferred-Service").is_none());
    let contact = binv.headers.get_raw("Contact").unwrap();
    assert!(
        contact.contains(&addr.to_string()) && !contact.contains(&a1.sip.addr().to_string()),
        "the server's own Contact: {contact}"
    );
    let bcr = part(
        &binv.headers,
        &binv.body,
        "application/isc-content-request+xml",
    )
    .unwrap();
    assert_eq!(bcr.body, cr.body, "content request copied verbatim");
    assert_eq!(bcr.content_type(), Some(isc_content_request::CONTENT_TYPE));
    let offer = parse_sdp(
        &part(&binv.headers, &binv.body, "application/sdp")
            .unwrap()
            .body,
    )
    .unwrap();
    let lines: Vec<_> = offer.rtp().collect();
    assert_eq!(lines.len(), 2, "audio + video offered");
    assert!(lines.iter().all(|l| l.direction == Direction::SendOnly));

    // 5a. server → A2: MESSAGE cm.recommendation
    let msg = recv_request(&a2.sip, rsip::Method::Message).await;
    assert_eq!(msg.uri.to_string(), a2.gruu);
    assert_eq!(
        msg.headers.get_raw("Content-Type").as_deref(),
        Some(cm_recommendation::CONTENT_TYPE)
    );
    let ac = msg.headers.get_raw("Accept-Contact").unwrap();
    assert!(
        ac.contains("icsi.oma.isc.cv-cm") && ac.contains("iari.oma.isc.cm.recommendation"),
        "{ac}"
    );
    assert_eq!(
        msg.headers.get_raw("P-Preferred-Service").as_deref(),
        Some("urn:urn-7:3gpp-service.ims.icsi.oma.isc.cv-cm")
    );
    assert!(
        msg.headers
            .get_raw("Contact")
            .unwrap()
            .contains("icsi.oma.isc.cv-cm")
    );
    let body = String::from_utf8(msg.body.clone()).unwrap();
    assert!(
        body.starts_with("Content-Type: text/xml"),
        "sub-level entity: {body}"
    );
    let rec = CmRecommendation::parse(&msg.body).unwrap();
    assert_eq!(rec.session_type, SessionType::CvCm);
    assert!(rec.using_multiple_client);
    assert_eq!(
        rec.communication_client_addr.as_deref(),
        Some(a2.gruu.as_str())
    );
    assert_eq!(
        rec.content_viewing_client_addr.as_deref(),
        Some(a1.gruu.as_str())
    );
    assert_eq!(rec.isc_convergence_id, "cv-c151");
    // 5b. A2 → server: 200 (MESSAGE)
    a2.sip.answer(&msg, 200).await;

    // 8. bob → server: 200 (CV)
    answer_ok(&bob.sip, &binv, "bobtag", &bob.sdp()).await;
    // the server ACKs bob's 200 itself
    let ack = recv_request(&bob.sip, rsip::Method::Ack).await;
    assert_eq!(
        ack.headers.get_raw("Call-ID"),
        binv.headers.get_raw("Call-ID")
    );

    // 9. server → A1: 200 (CV) with the server's sendonly answer; A1 ACKs
    let ok = final_for(&a1.sip, &sent).await;
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(
        ok.headers.get_raw("Recv-Info").as_deref(),
        Some("isc-playback")
    );
    let answer = parse_sdp(&ok.body).unwrap();
    assert!(answer.rtp().all(|l| l.direction == Direction::SendOnly));
    let ad = DialogView::uac(&sent, &ok);
    let seq = isc::proto::sip::build::cseq(&sent.headers).unwrap().0;
    let ack = ad.ack(&mut a1.sip, seq);
    a1.sip.send(ack).await;

    // 10. RTP to A1 and bob (audio + video), none to A2
    let (at_a1, at_bob, at_a2) = tokio::join!(
        a1.audio_rtp(Duration::from_millis(700)),
        bob.audio_rtp(Duration::from_millis(700)),
        a2.audio_rtp(Duration::from_millis(700)),
    );
    assert!(at_a1.len() >= 20, "A1 got {} audio packets", at_a1.len());
    assert!(at_bob.len() >= 20, "bob got {} audio packets", at_bob.len());
    assert!(at_a2.is_empty(), "no RTP to A2");
    assert!(
        at_a1
            .iter()
            .all(|(_, p)| p.payload_type == 0 && p.payload.len() == 160)
    );
    // one shared timeline: the same packets to both
    let seq_a: Vec<u16> = at_a1.iter().map(|(_, p)| p.sequence_number).collect();
    let common_seq = seq_a
        .iter()
        .filter(|s| at_bob.iter().any(|(_, p)| p.sequence_number == **s))
        .count();
    assert!(common_seq >= 15);
    let (va, vb) = tokio::join!(
        a1.video_rtp(Duration::from_millis(500)),
        bob.video_rtp(Duration::from_millis(500)),
    );
    assert!(va.iter().any(|(_, p)| p.payload_type == 26 && p.marker));
    assert!(vb.iter().any(|(_, p)| p.payload_type == 26 && p.marker));
    assert!(a2.video_rtp(Duration::from_millis(50)).await.is_empty());

    // A1 ends: bob's leg gets BYE
    let mut ad = ad;
    let bye = ad.request(&mut a1.sip, "BYE", &[], "");
    a1.sip.send(bye).await;
    let bbye = recv_request(&bob.sip, rsip::Method::Bye).await;
    bob.sip.answer(&bbye, 200).await;
    drain(&bob.audio.rtp).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drain(&bob.audio.rtp).await;
    assert!(
        bob.audio_rtp(Duration::from_millis(300)).await.is_empty(),
        "stream stopped"
    );
    let _ = &mut bob;
    server.shutdown().await;
}
