//! An invitee with two devices: the focus forks to both (Request-URI =
//! each GRUU); the first to answer stays, the other gets CANCEL with
//! `Reason: SIP;cause=200;text="Call completed elsewhere"`. A subscriber
//! sees the invitee `alerting` on its 180, then `connected`.

mod common;
mod cpm_common;
mod focus_common;

use cpm_common::*;
use focus_common::*;
use isc::proto::bodies::conference_info::EndpointStatus;
use isc::proto::sip::headers::HeadersExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitee_forked_to_every_device_alerting_then_connected() {
    let server = start_focus(|_| {}).await;
    let mut c = adhoc_conference(&server, &["bob"]).await;
    let id = c.identity.clone();
    let (_, resp) = subscribe(&mut c.alice, &id).await;
    assert_eq!(resp.status_code.code(), 200);
    let _ = next_notify(&c.alice).await;
    let addr = server.local_addr();
    let carol1 = Device::register(addr, "carol", "carol-tv", "tv").await;
    let carol2 = Device::register(addr, "carol", "carol-phone", "phone").await;
    let lines = vec![
        "Refer-To: <sip:carol@isc.local>".to_string(),
        "Refer-Sub: false".into(),
        format!("Contact: <sip:alice@{};transport=udp>", c.alice.addr()),
    ];
    let req = c.alice.request("REFER", &id, &id, &lines, "");
    let req = send_auth(&mut c.alice, req).await;
    assert_eq!(response_for(&c.alice, &req).await.status_code.code(), 202);
    let inv1 = recv_request(&carol1.sip, rsip::Method::Invite).await;
    let inv2 = recv_request(&carol2.sip, rsip::Method::Invite).await;
    assert_eq!(inv1.uri.to_string(), carol1.gruu);
    assert_eq!(inv2.uri.to_string(), carol2.gruu);

    answer(&carol1.sip, &inv1, 180, "c1", None).await;
    let (_, info) = next_notify(&c.alice).await;
    let carol = info
        .users
        .iter()
        .find(|u| u.entity == "sip:carol@isc.local")
        .unwrap();
    assert_eq!(carol.status(), Some(&EndpointStatus::Alerting));

    answer(
        &carol2.sip,
        &inv2,
        200,
        "c2",
        Some(&msrp_sdp(&carol2.uri, "passive", "")),
    )
    .await;
    let cancel = recv_request(&carol1.sip, rsip::Method::Cancel).await;
    assert_eq!(
        cancel.headers.get_raw("Reason").as_deref(),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
    let (_, info) = next_notify(&c.alice).await;
    let carol = info
        .users
        .iter()
        .find(|u| u.entity == "sip:carol@isc.local")
        .unwrap();
    assert_eq!(carol.status(), Some(&EndpointStatus::Connected));
    server.shutdown().await;
}
