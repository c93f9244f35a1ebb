//! Seed 001 8.3.2.1 steps 1–7: one test per check with its status and
//! Warning, plus the non-200 handling (302 retry, best error forwarded,
//! group session kept with a 200).

mod common;
mod cpm_common;

use common::Peer;
use cpm_common::*;
use isc::proto::msrp::MsrpUri;
use isc::proto::sip::headers::HeadersExt;
use isc::server::runner::ServerOptions;

/// Alice INVITEs bob with `extra` header lines (and extra SDP media);
/// returns the final response. Bob has one registered device unless
/// `no_device`.
async fn try_invite(
    tweak: impl FnOnce(&mut ServerOptions),
    no_device: bool,
    extra: &[&str],
    extra_media: &str,
) -> rsip::Response {
    let server = start(tweak).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let _bob = if no_device {
        None
    } else {
        Some(Device::register(addr, "bob", "bob-phone", "phone").await)
    };
    let sdp = msrp_sdp(
        &MsrpUri::new("127.0.0.1", 7, "alicesess"),
        "actpass",
        extra_media,
    );
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, extra);
    let req = send_invite(&mut alice, req).await;
    let resp = final_for(&alice, &req).await;
    server.shutdown().await;
    resp
}

fn warning(r: &rsip::Response) -> Option<String> {
    r.headers.get_raw("Warning")
}

#[tokio::test]
async fn step1_old_user_agent_gets_403_132() {
    let r = try_invite(
        |o| o.config.required_user_agent_version = Some("2.0".into()),
        false,
        &["User-Agent: isc/1.0"],
        "",
    )
    .await;
    assert_eq!(r.status_code.code(), 403);
    assert_eq!(
        warning(&r).as_deref(),
        Some("132 isc.local \"Version not supported\"")
    );
}

#[tokio::test]
async fn step2_anonymity_not_allowed_gets_403_119() {
    let r = try_invite(
        |o| user_mut(o, "bob").anonymity_allowed = false,
        false,
        &["Privacy: id"],
        "",
    )
    .await;
    assert_eq!(r.status_code.code(), 403);
    assert_eq!(
        warning(&r).as_deref(),
        Some("119 isc.local \"Anonymity not allowed\"")
    );
}

#[tokio::test]
async fn step3_blacklisted_originator_gets_403_122() {
    let r = try_invite(
        |o| user_mut(o, "bob").chat_blacklist = vec!["sip:alice@isc.local".into()],
        false,
        &[],
        "",
    )
    .await;
    assert_eq!(r.status_code.code(), 403);
    assert_eq!(
        warning(&r).as_deref(),
        Some("122 isc.local \"Function not allowed\"")
    );
}

#[tokio::test]
async fn step4_do_not_disturb_gets_480() {
    let r = try_invite(|o| user_mut(o, "bob").do_not_disturb = true, false, &[], "").await;
    assert_eq!(r.status_code.code(), 480);
    assert!(warning(&r).is_none());
}

#[tokio::test]
async fn step5_sdp_against_policy_gets_488() {
    let r = try_invite(
        |o| o.config.sdp_policy.allowed_media = vec![isc::config::MediaType::Message],
        false,
        &[],
        "m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    )
    .await;
    assert_eq!(r.status_code.code(), 488);
}

#[tokio::test]
async fn step6_no_registered_device_gets_480() {
    // Without the deferred store (with it, the session is accepted for
    // later delivery: tests/deferred_push.rs).
    let r = try_invite(|o| o.deferred_messages = false, true, &[], "").await;
    assert_eq!(r.status_code.code(), 480);
}

#[tokio::test]
async fn step7_foreign_service_gets_403_122() {
    let r = try_invite(
        |_| {},
        false,
        &["P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.isc.1-1-cv-cm"],
        "",
    )
    .await;
    assert_eq!(r.status_code.code(), 403);
    assert_eq!(
        warning(&r).as_deref(),
        Some("122 isc.local \"Function not allowed\"")
    );
}

#[tokio::test]
async fn checks_run_in_the_seeds_order() {
    // Blacklisted and do-not-disturb: step 3 answers first.
    let r = try_invite(
        |o| {
            let bob = user_mut(o, "bob");
            bob.chat_blacklist = vec!["sip:alice@isc.local".into()];
            bob.do_not_disturb = true;
        },
        false,
        &[],
        "",
    )
    .await;
    assert_eq!(r.status_code.code(), 403);
}

/// Bob's devices answer with the given codes; what alice gets.
async fn fork_outcome(codes: &[u16], group: bool) -> (rsip::Response, Vec<Device>) {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let mut bob = Vec::new();
    for i in 0..codes.len() {
        bob.push(Device::register(addr, "bob", &format!("bob-{i}"), &format!("d{i}")).await);
    }
    let sdp = msrp_sdp(&MsrpUri::new("127.0.0.1", 7, "alicesess"), "actpass", "");
    let contact = format!(
        "Contact: <sip:alice@{};transport=udp>;isfocus",
        alice.addr()
    );
    let extra: Vec<&str> = if group {
        vec![contact.as_str()]
    } else {
        vec![]
    };
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, &extra);
    let req = send_invite(&mut alice, req).await;
    for (i, d) in bob.iter().enumerate() {
        let inv = recv_request(&d.sip, rsip::Method::Invite).await;
        answer(&d.sip, &inv, codes[i], &format!("t{i}"), None).await;
    }
    let resp = final_for(&alice, &req).await;
    server.shutdown().await;
    (resp, bob)
}

#[tokio::test]
async fn all_devices_fail_the_best_error_is_forwarded() {
    let (r, _) = fork_outcome(&[486, 404], false).await;
    assert_eq!(r.status_code.code(), 486, "lowest class, first seen");
    let (r, _) = fork_outcome(&[500, 404], false).await;
    assert_eq!(r.status_code.code(), 404);
    let (r, _) = fork_outcome(&[486, 603], false).await;
    assert_eq!(r.status_code.code(), 603, "6xx wins");
}

#[tokio::test]
async fn group_session_stays_in_path_with_200() {
    let (r, _) = fork_outcome(&[480, 408], true).await;
    assert_eq!(r.status_code.code(), 200);
    assert!(r.headers.get_raw("Contact").is_some());
    assert!(!r.body.is_empty(), "our SDP answer");
}

#[tokio::test]
async fn redirect_302_is_followed_to_the_contact() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let bob = Device::register(addr, "bob", "bob-0", "d0").await;
    let elsewhere = Peer::new(addr, "bob", "bob").await;
    let sdp = msrp_sdp(&MsrpUri::new("127.0.0.1", 7, "alicesess"), "actpass", "");
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, &[]);
    let req = send_invite(&mut alice, req).await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    let mut resp = isc::proto::sip::build::response_to(&inv, 302, Some("r1"));
    resp.headers.push(isc::proto::sip::headers::make_header(
        "Contact",
        &format!("<sip:bob@{}>", elsewhere.addr()),
    ));
    bob.sip.send(resp).await;
    let inv2 = recv_request(&elsewhere, rsip::Method::Invite).await;
    assert_eq!(
        inv2.uri.to_string(),
        format!("sip:bob@{}", elsewhere.addr())
    );
    answer(&elsewhere, &inv2, 486, "r2", None).await;
    let r = final_for(&alice, &req).await;
    assert_eq!(r.status_code.code(), 486);
    server.shutdown().await;
}
