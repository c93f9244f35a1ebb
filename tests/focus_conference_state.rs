//! Flow D.1 (seed 002, `conference-state` in FLOWS.md) over real sockets:
//! a conference of alice and bob; alice subscribes to its state; carol
//! joins; bob leaves.

mod common;
mod cpm_common;
mod focus_common;

use common::Peer;
use cpm_common::*;
use focus_common::*;
use isc::proto::bodies::conference_info::{ElementState, EndpointStatus};
use isc::proto::bodies::resource_lists::Entry;
use isc::proto::msrp::MsrpUri;
use isc::proto::sip::headers::HeadersExt;

fn status_of(
    info: &isc::proto::bodies::conference_info::ConferenceInfo,
    who: &str,
) -> Option<EndpointStatus> {
    info.users
        .iter()
        .find(|u| u.entity == who)
        .and_then(|u| u.status().cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_subscribe_see_join_and_leave() {
    let server = start_focus(|o| {
        user_mut(o, "bob").display_name = Some("Bob B.".into());
    })
    .await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let mut bob = Device::register(addr, "bob", "bob-phone", "phone").await;
    let mut carol = Peer::new(addr, "carol", "carol").await;

    // The ad-hoc conference of alice and bob.
    let alice_uri = MsrpUri::new("127.0.0.1", 7, "alicesess");
    let req = factory_invite(
        &mut alice,
        &msrp_sdp(&alice_uri, "actpass", ""),
        vec![Entry::new("sip:bob@isc.local")],
        &[],
    );
    let req = send_invite(&mut alice, req).await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    assert_eq!(inv.uri.to_string(), bob.gruu, "Request-URI = bob's GRUU");
    answer(
        &bob.sip,
        &inv,
        200,
        "bobtag",
        Some(&msrp_sdp(&bob.uri, "passive", "")),
    )
    .await;
    let ok = final_for(&alice, &req).await;
    assert_eq!(ok.status_code.code(), 200);
    let (identity, isfocus) = contact_uri(&ok);
    assert!(isfocus, "the 200's Contact carries isfocus");
    assert!(identity.starts_with("sip:conf-"), "{identity}");
    let ack = ack_2xx(&mut alice, &req, &ok);
    alice.send(ack).await;

    // Steps 1–4: SUBSCRIBE, 200, full NOTIFY (version 1, yourown on alice).
    let (_sub, resp) = subscribe(&mut alice, &identity).await;
    assert_eq!(resp.status_code.code(), 200);
    let (n, info) = next_notify(&alice).await;
    assert_eq!(n.headers.get_raw("Event").as_deref(), Some("conference"));
    assert!(
        n.headers
            .get_raw("Subscription-State")
            .unwrap()
            .starts_with("active")
    );
    assert_eq!(info.state, ElementState::Full);
    assert_eq!(info.version, 1);
    assert_eq!(info.entity, identity);
    assert_eq!(
        info.own_user().map(|u| u.entity.as_str()),
        Some("sip:alice@isc.local")
    );
    assert_eq!(
        status_of(&info, "sip:alice@isc.local"),
        Some(EndpointStatus::Connected)
    );
    assert_eq!(
        status_of(&info, "sip:bob@isc.local"),
        Some(EndpointStatus::Connected)
    );
    let bob_user = info.users.iter().find(|u| u.entity == "sip:bob@isc.local");
    assert_eq!(
        bob_user.and_then(|u| u.display_text.as_deref()),
        Some("Bob B."),
        "display-text = the nick name"
    );
    assert!(
        !info
            .users
            .iter()
            .find(|u| u.entity == "sip:bob@isc.local")
            .unwrap()
            .yourown
    );

    // Steps 5–6: carol joins by the session identity.
    let carol_uri = MsrpUri::new("127.0.0.1", 9, "carolsess");
    let jreq = join_invite(
        &mut carol,
        &identity,
        &msrp_sdp(&carol_uri, "actpass", ""),
        &[],
    );
    let jreq = send_auth(&mut carol, jreq).await;
    let jok = final_for(&carol, &jreq).await;
    assert_eq!(jok.status_code.code(), 200);
    assert!(contact_uri(&jok).1);
    let ack = ack_2xx(&mut carol, &jreq, &jok);
    carol.send(ack).await;
    let (_, info) = next_notify(&alice).await;
    assert_eq!(info.state, ElementState::Partial);
    assert_eq!(info.version, 2);
    assert_eq!(
        status_of(&info, "sip:carol@isc.local"),
        Some(EndpointStatus::Connected)
    );
    assert!(
        status_of(&info, "sip:bob@isc.local").is_none(),
        "only the change"
    );

    // Steps 7–8: bob leaves.
    let bye = uas_request(&mut bob.sip, &inv, "bobtag", "BYE", 2, &[], "");
    bob.sip.send(bye.clone()).await;
    assert_eq!(response_for(&bob.sip, &bye).await.status_code.code(), 200);
    let (_, info) = next_notify(&alice).await;
    assert_eq!(info.state, ElementState::Partial);
    assert_eq!(info.version, 3);
    assert_eq!(
        status_of(&info, "sip:bob@isc.local"),
        Some(EndpointStatus::Disconnected)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_close_together_share_one_notify_and_unsubscribe_terminates() {
    let server = start_focus(|_| {}).await;
    let mut c = focus_common::adhoc_conference(&server, &["bob"]).await;
    let id = c.identity.clone();
    let (sreq, sresp) = subscribe(&mut c.alice, &id).await;
    assert_eq!(sresp.status_code.code(), 200);
    let (_, full) = next_notify(&c.alice).await;
    assert_eq!(full.version, 1);
    // carol and ted join within the rate-limit window: one partial NOTIFY.
    let mut peers = Vec::new();
    for name in ["carol", "ted"] {
        let mut p = Peer::new(server.local_addr(), name, name).await;
        let uri = MsrpUri::new("127.0.0.1", 9, format!("{name}s"));
        let req = join_invite(&mut p, &id, &msrp_sdp(&uri, "actpass", ""), &[]);
        let req = send_invite(&mut p, req).await;
        let ok = final_for(&p, &req).await;
        assert_eq!(ok.status_code.code(), 200);
        peers.push(p);
    }
    let (_, info) = next_notify(&c.alice).await;
    assert_eq!(info.version, 2);
    assert_eq!(
        status_of(&info, "sip:carol@isc.local"),
        Some(EndpointStatus::Connected)
    );
    assert_eq!(
        status_of(&info, "sip:ted@isc.local"),
        Some(EndpointStatus::Connected)
    );
    // Unsubscribe (Expires: 0): 200 and a final NOTIFY.
    let unsub = uac_request(
        &mut c.alice,
        &sreq,
        &sresp,
        "SUBSCRIBE",
        50,
        &["Event: conference".into(), "Expires: 0".into()],
        "",
    );
    c.alice.send(unsub.clone()).await;
    let (n, _) = next_notify(&c.alice).await;
    assert!(
        n.headers
            .get_raw("Subscription-State")
            .unwrap()
            .starts_with("terminated"),
        "{:?}",
        n.headers.get_raw("Subscription-State")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_participant_leaving_ends_session_and_subscription() {
    let server = start_focus(|_| {}).await;
    let mut c = focus_common::adhoc_conference(&server, &["bob"]).await;
    let id = c.identity.clone();
    let (_, resp) = subscribe(&mut c.alice, &id).await;
    assert_eq!(resp.status_code.code(), 200);
    let _ = next_notify(&c.alice).await;
    let m = &mut c.members[0];
    let bye = uas_request(&mut m.dev.sip, &m.invite, &m.tag, "BYE", 2, &[], "");
    m.dev.sip.send(bye.clone()).await;
    assert_eq!(response_for(&m.dev.sip, &bye).await.status_code.code(), 200);
    let _ = next_notify(&c.alice).await; // bob disconnected
    let bye = uac_request(&mut c.alice, &c.invite, &c.ok, "BYE", 60, &[], "");
    c.alice.send(bye).await;
    let (n, _) = next_notify(&c.alice).await;
    assert!(
        n.headers
            .get_raw("Subscription-State")
            .unwrap()
            .starts_with("terminated"),
    );
    // the identity is gone
    let (_, resp) = subscribe(&mut c.alice, &id).await;
    assert_eq!(resp.status_code.code(), 404);
    server.shutdown().await;
}
