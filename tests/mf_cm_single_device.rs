//! Flow C.15.2 steps 5–6 and 12–15 (seed 000 5.4.3.4) on the server: bob
//! wants one device for communication, so when bob/phone accepts the CM
//! INVITE the CPM function CANCELs the branch to bob/tv with the RFC 3326
//! Reason. The CM INVITE carries the ISCConvergenceID of the viewing session.

mod common;
mod cpm_common;

use common::Peer;
use cpm_common::*;
use isc::proto::msrp::MsrpUri;
use isc::proto::sip::headers::HeadersExt;

#[tokio::test]
async fn cm_single_device_cancels_the_other_branch() {
    let server = start(|o| user_mut(o, "bob").cm_single_device = true).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let tv = Device::register(addr, "bob", "b1", "tv").await;
    let phone = Device::register(addr, "bob", "b2", "phone").await;

    // 5. alice → server:cpm: INVITE (CM), tied to the viewing by ISCConvergenceID
    let alice_uri = MsrpUri::new("127.0.0.1", 7, "alicesess");
    let sdp = msrp_sdp(&alice_uri, "actpass", "");
    let req = cpm_invite(
        &mut alice,
        "sip:bob@isc.local",
        &sdp,
        &["ISCConvergenceID: cv-c152"],
    );
    let sent = send_invite(&mut alice, req).await;
    // 6. forked to both devices, the convergence id copied
    let i_tv = recv_request(&tv.sip, rsip::Method::Invite).await;
    let i_phone = recv_request(&phone.sip, rsip::Method::Invite).await;
    assert_eq!(
        i_tv.headers.get_raw("ISCConvergenceID").as_deref(),
        Some("cv-c152")
    );
    // 12. bob/phone accepts
    let answer_sdp = msrp_sdp(&phone.uri, "passive", "");
    answer(&phone.sip, &i_phone, 200, "phonetag", Some(&answer_sdp)).await;
    // 13. alice gets 200 (CM)
    assert_eq!(final_for(&alice, &sent).await.status_code.code(), 200);
    // 14. bob/tv gets CANCEL (CM) with the Reason
    let cancel = recv_request(&tv.sip, rsip::Method::Cancel).await;
    assert_eq!(
        cancel.headers.get_raw("Reason").as_deref(),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
    assert_eq!(
        cancel.headers.get_raw("Call-ID"),
        i_tv.headers.get_raw("Call-ID")
    );
    // 15. 200 (CANCEL), 487 (INVITE)
    tv.sip.answer(&cancel, 200).await;
    tv.sip.answer(&i_tv, 487).await;
    let ack = recv_request(&tv.sip, rsip::Method::Ack).await;
    assert_eq!(
        ack.headers.get_raw("Call-ID"),
        i_tv.headers.get_raw("Call-ID")
    );
    server.shutdown().await;
}
