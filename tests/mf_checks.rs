//! One test per check of the ISC Server Media Function (seed 000 5.11.1
//! steps 1–5, then the project's), each with its status and Warning; the
//! group variants (5.12.1 pre-defined, 5.12.4 ad-hoc) and the Info Package.

mod common;
mod cpm_common;
mod mf_common;

use isc::config::{GroupConfig, JoiningPolicy, MediaType};
use isc::proto::bodies::multipart::Part;
use isc::proto::bodies::resource_lists::{self, Entry, ResourceLists};
use isc::proto::sip::headers::HeadersExt;

use cpm_common::{final_for, recv_request};
use mf_common::*;

/// Sends alice's CV INVITE to bob with `extra` header lines (a line ending
/// in `:` removes that header) and `sdp`; returns the final response.
async fn attempt(
    server: &isc::server::runner::ServerHandle,
    sdp: Option<&str>,
    cca: Option<&str>,
    icsi: &str,
    extra: &[&str],
) -> rsip::Response {
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let _bob = Viewer::register(addr, "bob", "b1", "phone").await;
    let request = content_request("melody", cca, None, "sip:bob@isc.local");
    let sdp = sdp.map(str::to_owned).unwrap_or_else(|| alice.sdp());
    let inv = cv_invite(
        &mut alice.sip,
        "sip:bob@isc.local",
        icsi,
        &sdp,
        &request,
        vec![],
        extra,
    );
    invite_final(&mut alice.sip, inv).await
}

fn warning(r: &rsip::Response) -> String {
    r.headers.get_raw("Warning").unwrap_or_default()
}

#[tokio::test]
async fn step1_unauthorised_originator_gets_403_127() {
    let server = start(|o| user_mut(o, "alice").isc_authorised = false).await;
    let r = attempt(&server, None, None, ICSI_1_1, &[]).await;
    assert_eq!(r.status_code.code(), 403);
    assert_eq!(warning(&r), "127 isc.local \"Service not authorised\"");
    server.shutdown().await;
}

#[tokio::test]
async fn step2_unsupported_feature_tag_gets_403_122() {
    let server = start(|_| {}).await;
    // cv-cm is the recommendation's ICSI, not a content-viewing INVITE's
    let r = attempt(
        &server,
        None,
        None,
        "urn:urn-7:3gpp-service.ims.icsi.oma.isc.cv-cm",
        &[],
    )
    .await;
    assert_eq!(r.status_code.code(), 403);
    assert_eq!(warning(&r), "122 isc.local \"Function not allowed\"");
    server.shutdown().await;
}

#[tokio::test]
async fn step3_old_user_agent_gets_403_132() {
    let server = start(|o| o.config.required_user_agent_version = Some("2.0".into())).await;
    let r = attempt(&server, None, None, ICSI_1_1, &["User-Agent: isc/1.0"]).await;
    assert_eq!(r.status_code.code(), 403);
    assert_eq!(warning(&r), "132 isc.local \"Version not supported\"");
    server.shutdown().await;
    // a new enough one passes
    let server = start(|o| o.config.required_user_agent_version = Some("2.0".into())).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let bob = Viewer::register(addr, "bob", "b1", "phone").await;
    let request = content_request("melody", None, None, "sip:bob@isc.local");
    let sdp = alice.sdp();
    let inv = cv_invite(
        &mut alice.sip,
        "sip:bob@isc.local",
        ICSI_1_1,
        &sdp,
        &request,
        vec![],
        &["User-Agent: isc/2.1"],
    );
    send_invite(&mut alice.sip, inv).await;
    recv_request(&bob.sip, rsip::Method::Invite).await;
    server.shutdown().await;
}

#[tokio::test]
async fn step4_foreign_asserted_service_gets_403() {
    let server = start(|_| {}).await;
    let r = attempt(
        &server,
        None,
        None,
        ICSI_1_1,
        &["P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session"],
    )
    .await;
    assert_eq!(r.status_code.code(), 403);
    assert!(warning(&r).starts_with("399 isc.local"), "{}", warning(&r));
    server.shutdown().await;
}

#[tokio::test]
async fn step5_sdp_against_policy_gets_488() {
    let server = start(|_| {}).await;
    let pcma = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=recvonly\r\n";
    let r = attempt(&server, Some(pcma), None, ICSI_1_1, &[]).await;
    assert_eq!(r.status_code.code(), 488);
    assert!(warning(&r).starts_with("305 "), "{}", warning(&r));
    server.shutdown().await;

    let server =
        start(|o| o.config.sdp_policy.allowed_media = vec![MediaType::Audio, MediaType::Message])
            .await;
    let r = attempt(&server, None, None, ICSI_1_1, &[]).await;
    assert_eq!(r.status_code.code(), 488, "video not allowed");
    assert!(warning(&r).starts_with("304 "), "{}", warning(&r));
    server.shutdown().await;
}

#[tokio::test]
async fn communication_client_of_another_user_gets_403() {
    let server = start(|_| {}).await;
    let r = attempt(
        &server,
        None,
        Some("sip:bob@isc.local;gr=urn:uuid:b1"),
        ICSI_1_1,
        &[],
    )
    .await;
    assert_eq!(r.status_code.code(), 403);
    assert!(warning(&r).contains("is not a device of sip:alice@isc.local"));
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_content_gets_404() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let request = content_request("no-such-thing", None, None, "sip:bob@isc.local");
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
    let r = invite_final(&mut alice.sip, inv).await;
    assert_eq!(r.status_code.code(), 404);
    assert!(warning(&r).contains("no-such-thing"));
    server.shutdown().await;
}

#[tokio::test]
async fn pre_defined_group_invites_every_device_of_every_member() {
    let server = start(|o| {
        o.config.groups = vec![GroupConfig {
            name: "friends".into(),
            members: vec!["alice".into(), "bob".into(), "carol".into()],
            max_participants: 16,
            joining_policy: JoiningPolicy::MembersOnly,
            public: false,
        }]
    })
    .await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let bob = Viewer::register(addr, "bob", "b1", "phone").await;
    let carol = Viewer::register(addr, "carol", "c1", "tv").await;
    // Three users, one of them with two devices: every device is invited.
    let carol_phone = Viewer::register(addr, "carol", "c2", "phone").await;
    let request = content_request("melody", None, None, "sip:friends@isc.local");
    let sdp = alice.sdp();
    let inv = cv_invite(
        &mut alice.sip,
        "sip:friends@isc.local",
        ICSI_GROUP,
        &sdp,
        &request,
        vec![],
        &[],
    );
    let sent = send_invite(&mut alice.sip, inv).await;
    let ib = recv_request(&bob.sip, rsip::Method::Invite).await;
    let ic = recv_request(&carol.sip, rsip::Method::Invite).await;
    let ic2 = recv_request(&carol_phone.sip, rsip::Method::Invite).await;
    assert_eq!(
        ib.headers.get_raw("P-Asserted-Service").as_deref(),
        Some(ICSI_GROUP)
    );
    assert_eq!(ic.uri.to_string(), carol.gruu);
    assert_eq!(ic2.uri.to_string(), carol_phone.gruu);
    assert_ne!(carol.gruu, carol_phone.gruu);
    answer_ok(&bob.sip, &ib, "bt", &bob.sdp()).await;
    assert_eq!(final_for(&alice.sip, &sent).await.status_code.code(), 200);
    // carol joins half a second later, at the shared position
    let early = bob.audio_rtp(std::time::Duration::from_millis(500)).await;
    let base = early[0].1.timestamp;
    answer_ok(&carol.sip, &ic, "ct", &carol.sdp()).await;
    let (a, b, c) = tokio::join!(
        alice.audio_rtp(std::time::Duration::from_millis(400)),
        bob.audio_rtp(std::time::Duration::from_millis(400)),
        carol.audio_rtp(std::time::Duration::from_millis(400)),
    );
    assert!(!a.is_empty() && !b.is_empty() && !c.is_empty());
    let joined_at = c[0].1.timestamp.wrapping_sub(base);
    assert!(
        (3600..12000).contains(&joined_at),
        "carol starts near 0.5 s into the content: {joined_at}"
    );
    assert!(
        b.iter()
            .any(|(_, p)| p.sequence_number == c[0].1.sequence_number),
        "the same packets as bob's"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ad_hoc_group_invites_every_listed_user() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let bob = Viewer::register(addr, "bob", "b1", "phone").await;
    let ted = Viewer::register(addr, "ted", "t1", "tv").await;
    let request = content_request("melody", None, None, "sip:bob@isc.local");
    let list = ResourceLists::of(vec![
        Entry::new("sip:bob@isc.local"),
        Entry::new("sip:ted@isc.local"),
    ]);
    let rl = Part::new(resource_lists::CONTENT_TYPE, list.to_bytes())
        .with_header("Content-Disposition", "recipient-list");
    let sdp = alice.sdp();
    let inv = cv_invite(
        &mut alice.sip,
        "sip:conf-factory@isc.local",
        ICSI_GROUP,
        &sdp,
        &request,
        vec![rl],
        &[],
    );
    let sent = send_invite(&mut alice.sip, inv).await;
    let ib = recv_request(&bob.sip, rsip::Method::Invite).await;
    let it = recv_request(&ted.sip, rsip::Method::Invite).await;
    assert_eq!(it.headers.get_raw("To").unwrap(), "<sip:ted@isc.local>");
    answer_ok(&ted.sip, &it, "tt", &ted.sdp()).await;
    assert_eq!(final_for(&alice.sip, &sent).await.status_code.code(), 200);
    let _ = ib;
    server.shutdown().await;
}

#[tokio::test]
async fn info_of_an_unknown_package_gets_469() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let mut bob = Viewer::register(addr, "bob", "b1", "phone").await;
    let (mut ad, _bd, _) = watch_1_1(&mut alice, &mut bob, "melody").await;
    let info = ad.request(
        &mut alice.sip,
        "INFO",
        &["Info-Package: dtmf", "Content-Type: application/dtmf-relay"],
        "Signal=5\r\n",
    );
    let call = info.headers.get_raw("Call-ID").unwrap();
    alice.sip.send(info).await;
    let r = response_to(&alice.sip, &call, "INFO").await;
    assert_eq!(r.status_code.code(), 469);
    assert_eq!(
        r.headers.get_raw("Recv-Info").as_deref(),
        Some("isc-playback")
    );
    server.shutdown().await;
}

/// Issue 11 part 3: a content request whose XML is not well-formed gets 400
/// with a Warning naming the fault, before any device is rung; the service
/// goes on for the next request.
#[tokio::test]
async fn malformed_content_request_xml_gets_400_and_rings_nobody() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let bob = Viewer::register(addr, "bob", "b1", "phone").await;
    let request = content_request("melody", None, None, "sip:bob@isc.local");
    let sdp = alice.sdp();
    let mut inv = cv_invite(
        &mut alice.sip,
        "sip:bob@isc.local",
        ICSI_1_1,
        &sdp,
        &request,
        vec![],
        &[],
    );
    // Same length, so Content-Length still holds: the element never closes.
    let body = String::from_utf8(inv.body.clone()).unwrap();
    assert!(body.contains("</ContentRef>"));
    inv.body = body.replace("</ContentRef>", "<ContentRef> ").into_bytes();
    let r = invite_final(&mut alice.sip, inv).await;
    assert_eq!(r.status_code.code(), 400);
    let w = warning(&r);
    assert!(w.starts_with("399 isc.local \""), "{w}");
    // Refused before forking: bob's device got nothing.
    let mut buf = vec![0u8; 65_535];
    assert!(bob.sip.sock.try_recv_from(&mut buf).is_err());
    // The next, well-formed request rings bob.
    let good = cv_invite(
        &mut alice.sip,
        "sip:bob@isc.local",
        ICSI_1_1,
        &sdp,
        &request,
        vec![],
        &[],
    );
    let _ = send_invite(&mut alice.sip, good).await;
    let ring = recv_request(&bob.sip, rsip::Method::Invite).await;
    assert!(String::from_utf8_lossy(&ring.body).contains("m=audio"));
    server.shutdown().await;
}
