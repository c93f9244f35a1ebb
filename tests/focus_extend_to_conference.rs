//! Flow App. M (seed 002; `extend-to-conference` in FLOWS.md) over real
//! sockets: alice–bob 1-1 through the CPM function, extended to a
//! conference with ted by a factory INVITE whose list carries bob's entry
//! with `?Replaces=` naming alice's own leg.

mod common;
mod cpm_common;
mod focus_common;

use cpm_common::*;
use focus_common::*;
use isc::proto::bodies::multipart::Multipart;
use isc::proto::bodies::resource_lists::{Entry, Replaces, ResourceLists};
use isc::proto::sip::headers::HeadersExt;

fn tag_of(v: &str) -> String {
    v.split(";tag=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_extended_with_replaces() {
    let server = start_focus(|_| {}).await;
    let addr = server.local_addr();
    // Steps 1–2: the 1-1 session through server:cpm.
    let mut s = one_device_session(&server).await;
    let ted = Device::register(addr, "ted", "ted-phone", "phone").await;
    let old_call = s.invite.headers.get_raw("Call-ID").unwrap();
    let alice_tag = tag_of(&s.invite.headers.get_raw("From").unwrap());
    let server_tag = tag_of(&s.ok.headers.get_raw("To").unwrap());

    // Step 3: the factory INVITE (alice knows only her own leg).
    let replaces = Replaces::new(old_call.clone(), server_tag.clone(), alice_tag.clone());
    let entries = vec![
        Entry::with_replaces("sip:bob@isc.local", &replaces),
        Entry::new("sip:ted@isc.local"),
    ];
    let alice_uri2 = isc::proto::msrp::MsrpUri::new("127.0.0.1", 8, "aliceconf");
    let req = factory_invite(
        &mut s.alice,
        &msrp_sdp(&alice_uri2, "actpass", ""),
        entries,
        &[],
    );
    // the body as seed 002 App. M shows it
    let ct = req.headers.get_raw("Content-Type").unwrap();
    let mp = Multipart::parse_with_content_type(&ct, &req.body).unwrap();
    let list_part = mp
        .parts
        .iter()
        .find(|p| p.media_type().as_deref() == Some("application/resource-lists+xml"))
        .unwrap();
    assert_eq!(list_part.disposition().as_deref(), Some("recipient-list"));
    let xml = String::from_utf8_lossy(&list_part.body);
    assert!(xml.contains("?Replaces="), "{xml}");
    assert!(
        xml.contains("%3Bto-tag%3D") && xml.contains("%3Bfrom-tag%3D"),
        "{xml}"
    );
    let list = ResourceLists::parse(&list_part.body).unwrap();
    assert_eq!(list.entries()[0].replaces(), Some(replaces));
    assert_eq!(
        req.headers.get_raw("Require").as_deref(),
        Some("recipient-list-invite")
    );
    let req = send_auth(&mut s.alice, req).await;

    // Step 4: bob's device only, Replaces translated to his leg, Referred-By alice.
    let inv = recv_request(&s.bob.sip, rsip::Method::Invite).await;
    assert_eq!(
        inv.uri.to_string(),
        s.bob.gruu,
        "the device holding the dialog, by GRUU"
    );
    let bob_leg_call = s.bob_invite.headers.get_raw("Call-ID").unwrap();
    let our_tag_on_bob_leg = tag_of(&s.bob_invite.headers.get_raw("From").unwrap());
    let rep = Replaces::parse_header_value(&inv.headers.get_raw("Replaces").unwrap()).unwrap();
    assert_eq!(rep.call_id, bob_leg_call, "bob's leg, not alice's");
    assert_eq!(rep.to_tag, "bobtag", "to-tag = bob's own tag (RFC 3891 §3)");
    assert_eq!(rep.from_tag, our_tag_on_bob_leg);
    assert!(
        inv.headers
            .get_raw("Referred-By")
            .unwrap()
            .contains("sip:alice@isc.local")
    );
    assert!(inv.headers.get_raw("Contact").unwrap().contains("isfocus"));
    // Step 5: ted, forked to his device.
    let tinv = recv_request(&ted.sip, rsip::Method::Invite).await;
    assert_eq!(tinv.uri.to_string(), ted.gruu);
    assert!(tinv.headers.get_raw("Replaces").is_none());

    // alice has no 200 before the first acceptance
    assert!(
        tokio::time::timeout(
            std::time::Duration::from_millis(300),
            final_for(&s.alice, &req)
        )
        .await
        .is_err(),
        "no final response before an invitee accepts"
    );
    // Steps 6–7: bob accepts → 200 to alice with isfocus.
    let bob_conf_uri =
        isc::proto::msrp::MsrpUri::new("127.0.0.1", s.bob.uri.port.unwrap(), "bobconf");
    answer(
        &s.bob.sip,
        &inv,
        200,
        "bobconftag",
        Some(&msrp_sdp(&bob_conf_uri, "passive", "")),
    )
    .await;
    let ok = final_for(&s.alice, &req).await;
    assert_eq!(ok.status_code.code(), 200);
    let (identity, isfocus) = contact_uri(&ok);
    assert!(isfocus && identity.starts_with("sip:conf-"));
    let ack = ack_2xx(&mut s.alice, &req, &ok);
    s.alice.send(ack).await;

    // Step 8: bob ends the replaced dialog; alice's old leg gets the BYE.
    let bye = uas_request(&mut s.bob.sip, &s.bob_invite, "bobtag", "BYE", 2, &[], "");
    s.bob.sip.send(bye.clone()).await;
    assert_eq!(response_for(&s.bob.sip, &bye).await.status_code.code(), 200);
    let old_bye = recv_request(&s.alice, rsip::Method::Bye).await;
    assert_eq!(old_bye.headers.get_raw("Call-ID").unwrap(), old_call);
    s.alice.answer(&old_bye, 200).await;

    // Step 9: ted accepts.
    answer(
        &ted.sip,
        &tinv,
        200,
        "tedtag",
        Some(&msrp_sdp(&ted.uri, "passive", "")),
    )
    .await;

    // Step 10: all three exchange MSRP messages.
    let mut b = MsrpConn::accept(&s.bob.listener).await;
    assert!(b.recv_request().await.body.is_none());
    let b_path = sdp_path(&inv.body);
    let mut t = MsrpConn::accept(&ted.listener).await;
    assert!(t.recv_request().await.body.is_none());
    let t_path = sdp_path(&tinv.body);
    let a_path = sdp_path(&ok.body);
    let mut a = MsrpConn::connect(server.msrp_addr()).await;
    a.send(&bind_send(&a_path, &alice_uri2)).await;
    assert!(!a.recv().await.is_request());

    a.send(&cpim_send(
        &a_path,
        &alice_uri2,
        "a1",
        "sip:alice@isc.local",
        &identity,
        "from alice",
    ))
    .await;
    assert!(body_text(&b.recv_request().await).contains("from alice"));
    assert!(body_text(&t.recv_request().await).contains("from alice"));
    b.send(&cpim_send(
        &b_path,
        &bob_conf_uri,
        "b1",
        "sip:bob@isc.local",
        &identity,
        "from bob",
    ))
    .await;
    assert!(body_text(&t.recv_request().await).contains("from bob"));
    assert!(body_text(&a.recv_request().await).contains("from bob"));
    t.send(&cpim_send(
        &t_path,
        &ted.uri,
        "t1",
        "sip:ted@isc.local",
        &identity,
        "from ted",
    ))
    .await;
    assert!(body_text(&a.recv_request().await).contains("from ted"));
    assert!(body_text(&b.recv_request().await).contains("from ted"));
    server.shutdown().await;
}
