//! REFER to a session identity over real sockets: one user (Refer-To,
//! `Refer-Sub: false`) and several (RFC 5368: `Require: multiple-refer`,
//! `norefersub`, a `cid:` Refer-To naming the recipient-list body).

mod common;
mod cpm_common;
mod focus_common;

use cpm_common::*;
use focus_common::*;
use isc::proto::bodies::resource_lists::{Entry, ResourceLists};
use isc::proto::sip::headers::HeadersExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_adds_one_user() {
    let server = start_focus(|_| {}).await;
    let mut c = adhoc_conference(&server, &["bob"]).await;
    let carol = Device::register(server.local_addr(), "carol", "carol-1", "phone").await;
    let id = c.identity.clone();
    let lines = vec![
        "Refer-To: <sip:carol@isc.local>".to_string(),
        "Refer-Sub: false".into(),
        "Supported: norefersub".into(),
        format!("Contact: <sip:alice@{};transport=udp>", c.alice.addr()),
    ];
    let req = c.alice.request("REFER", &id, &id, &lines, "");
    let req = send_auth(&mut c.alice, req).await;
    let resp = response_for(&c.alice, &req).await;
    assert_eq!(resp.status_code.code(), 202);
    assert_eq!(resp.headers.get_raw("Refer-Sub").as_deref(), Some("false"));
    let inv = recv_request(&carol.sip, rsip::Method::Invite).await;
    assert_eq!(inv.uri.to_string(), carol.gruu);
    assert!(
        inv.headers
            .get_raw("Referred-By")
            .unwrap()
            .contains("sip:alice@isc.local")
    );
    assert!(inv.headers.get_raw("Contact").unwrap().contains(&id));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_refer_adds_every_listed_user() {
    let server = start_focus(|_| {}).await;
    let mut c = adhoc_conference(&server, &["bob"]).await;
    let carol = Device::register(server.local_addr(), "carol", "carol-1", "phone").await;
    let ted = Device::register(server.local_addr(), "ted", "ted-1", "phone").await;
    let id = c.identity.clone();
    let list = ResourceLists::of(vec![
        Entry::new("sip:carol@isc.local"),
        Entry::new("sip:ted@isc.local"),
    ])
    .to_bytes();
    // RFC 5368 §3: the body is the URI list itself, named by Content-ID.
    let lines = vec![
        "Refer-To: <cid:cn35t8jf02@isc.local>".to_string(),
        "Refer-Sub: false".into(),
        "Require: multiple-refer, norefersub".into(),
        format!("Contact: <sip:alice@{};transport=udp>", c.alice.addr()),
        "Content-Type: application/resource-lists+xml".into(),
        "Content-Disposition: recipient-list".into(),
        "Content-ID: <cn35t8jf02@isc.local>".into(),
    ];
    let req = c
        .alice
        .request("REFER", &id, &id, &lines, &String::from_utf8(list).unwrap());
    let req = send_auth(&mut c.alice, req).await;
    let resp = response_for(&c.alice, &req).await;
    assert_eq!(resp.status_code.code(), 202);
    for dev in [&carol, &ted] {
        let inv = recv_request(&dev.sip, rsip::Method::Invite).await;
        assert_eq!(inv.uri.to_string(), dev.gruu);
        assert!(
            inv.headers
                .get_raw("Referred-By")
                .unwrap()
                .contains("sip:alice@isc.local")
        );
    }
    server.shutdown().await;
}
