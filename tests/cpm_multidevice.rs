//! FLOWS.md `cpm-multidevice` (seed 001 8.3.2.1 / 8.3.2.1.1) over real
//! sockets: Bob has three devices, Alice chats, all three get her first
//! message, Bob types on one, the other two get BYE with the Reason and the
//! chat goes on with that one device; history holds every chat message.

mod common;
mod cpm_common;

use common::Peer;
use cpm_common::*;
use isc::proto::msrp::{ByteRange, MsrpHeader, MsrpMessage, MsrpMethod, MsrpPath, MsrpUri};
use isc::proto::sip::headers::HeadersExt;
use isc::server::history_store::{HistoryStore, SqliteHistory};

fn chat_body(from: &str, to: &str, text: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nDateTime: 2026-11-23T15:00:00Z\r\n\r\nContent-Type: text/plain;charset=utf-8\r\n\r\n{text}"
    )
    .into_bytes()
}

fn send(
    to: &MsrpPath,
    from: &MsrpUri,
    tid: &str,
    mid: &str,
    ct: &str,
    body: Vec<u8>,
) -> MsrpMessage {
    let n = body.len() as u64;
    MsrpMessage::request(
        MsrpMethod::Send,
        tid,
        to.clone(),
        MsrpPath::single(from.clone()),
    )
    .with_header(MsrpHeader::MessageId(mid.into()))
    .with_header(MsrpHeader::ByteRange(ByteRange {
        start: 1,
        end: Some(n),
        total: Some(n),
    }))
    .with_body(ct, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_forks_to_three_devices_until_bob_types_on_one() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let server = start(|o| {
        o.config.data_dir = Some(dir.clone());
        o.history_in_memory = false;
    })
    .await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    assert_eq!(
        alice
            .register("alice-laptop", "laptop")
            .await
            .status_code
            .code(),
        200
    );
    let mut bob = Vec::new();
    for name in ["tv", "phone", "laptop"] {
        bob.push(Device::register(addr, "bob", &format!("bob-{name}"), name).await);
    }

    // Step 1: alice INVITEs bob (CPM session tag, MSRP SDP).
    let alice_uri = MsrpUri::new("127.0.0.1", 7, "alicesess");
    let sdp = msrp_sdp(&alice_uri, "actpass", "");
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, &[]);
    let req = send_invite(&mut alice, req).await;

    // Step 2: one INVITE per device, R-URI = its GRUU, the server's Contact
    // and SDP, PPS turned into PAS.
    let mut server_paths = Vec::new();
    let mut invites = Vec::new();
    for d in &bob {
        let inv = recv_request(&d.sip, rsip::Method::Invite).await;
        assert_eq!(inv.uri.to_string(), d.gruu, "Request-URI is the GRUU");
        let contact = inv.headers.get_raw("Contact").unwrap();
        assert!(
            contact.contains(&addr.to_string()),
            "server's own Contact: {contact}"
        );
        assert_eq!(
            inv.headers.get_raw("P-Asserted-Service").as_deref(),
            Some(CPM_ICSI)
        );
        assert!(inv.headers.get_raw("P-Preferred-Service").is_none());
        assert!(inv.headers.get_raw("User-Agent").unwrap().contains("CPM"));
        assert_eq!(
            inv.headers.get_raw("P-Asserted-Identity").as_deref(),
            Some("<sip:alice@isc.local>")
        );
        assert_ne!(
            inv.headers.get_raw("Call-ID"),
            req.headers.get_raw("Call-ID"),
            "each leg has its own Call-ID"
        );
        let path = sdp_path(&inv.body);
        assert_eq!(path.0.len(), 1);
        assert_eq!(path.0[0].port, Some(server.msrp_addr().port()));
        assert!(
            path.0[0].session_id.as_ref().unwrap().len() >= 20,
            "≥ 80 bits"
        );
        assert_eq!(sdp_setup(&inv.body), "active");
        server_paths.push(path);
        invites.push(inv);
    }

    // Step 3: every device answers 200 (passive); the server ACKs each.
    for (i, d) in bob.iter().enumerate() {
        let sdp = msrp_sdp(&d.uri, "passive", "");
        answer(&d.sip, &invites[i], 200, &format!("bobtag{i}"), Some(&sdp)).await;
    }
    for d in &bob {
        let ack = recv_request(&d.sip, rsip::Method::Ack).await;
        assert_eq!(
            ack.uri.to_string().to_ascii_lowercase(),
            format!("sip:bob@{};transport=udp", d.sip.addr())
        );
    }
    let ok = final_for(&alice, &req).await;
    assert_eq!(ok.status_code.code(), 200);
    let ack = ack_2xx(&mut alice, &req, &ok);
    alice.send(ack).await;
    let to_server = sdp_path(&ok.body);
    assert_eq!(sdp_setup(&ok.body), "passive");

    // Step 4: MSRP legs. The server connects to each device and binds.
    let mut dev_conns = Vec::new();
    for (i, d) in bob.iter().enumerate() {
        let mut c = cpm_common::MsrpConn::accept(&d.listener).await;
        let bind = c.recv_request().await;
        assert!(bind.body.is_none(), "binding SEND is empty");
        assert_eq!(bind.to_path().unwrap(), &MsrpPath::single(d.uri.clone()));
        assert_eq!(bind.from_path().unwrap(), &server_paths[i]);
        dev_conns.push(c);
    }
    let mut a = cpm_common::MsrpConn::connect(server.msrp_addr()).await;

    // Step 5: alice's chat reaches all three, paths rewritten, CPIM intact.
    let body = chat_body("sip:alice@isc.local", "sip:bob@isc.local", "hello bob");
    a.send(&send(
        &to_server,
        &alice_uri,
        "a1tx",
        "msg-1",
        "message/cpim",
        body.clone(),
    ))
    .await;
    let resp = a.recv().await;
    assert_eq!(resp.code(), Some(200));
    for (i, c) in dev_conns.iter_mut().enumerate() {
        let m = c.recv_request().await;
        assert_eq!(m.to_path().unwrap(), &MsrpPath::single(bob[i].uri.clone()));
        assert_eq!(m.from_path().unwrap(), &server_paths[i]);
        assert_eq!(m.message_id(), Some("msg-1"));
        assert_eq!(m.content_type(), Some("message/cpim"));
        assert_eq!(m.body.as_deref(), Some(body.as_slice()));
        assert_eq!(m.byte_range().unwrap().total, Some(body.len() as u64));
    }

    // Step 6: bob types on the phone.
    let composing = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>active</state><contenttype>text/plain</contenttype></isComposing>".to_vec();
    dev_conns[1]
        .send(&send(
            &server_paths[1],
            &bob[1].uri,
            "b1tx",
            "comp-1",
            "application/im-iscomposing+xml",
            composing.clone(),
        ))
        .await;

    // Step 7: tv and laptop get BYE with the Reason; their legs are released.
    for i in [0, 2] {
        let bye = recv_request(&bob[i].sip, rsip::Method::Bye).await;
        assert_eq!(
            bye.headers.get_raw("Reason").as_deref(),
            Some("SIP;cause=200;text=\"Call completed elsewhere\"")
        );
        assert_eq!(
            bye.headers.get_raw("Call-ID"),
            invites[i].headers.get_raw("Call-ID")
        );
        bob[i].sip.answer(&bye, 200).await;
        assert!(
            dev_conns[i].closed_within(5.0).await,
            "device {i} MSRP closed"
        );
    }
    // Step 8: alice gets bob's isComposing.
    let m = a.recv_request().await;
    assert_eq!(m.to_path().unwrap(), &MsrpPath::single(alice_uri.clone()));
    assert_eq!(m.from_path().unwrap(), &to_server);
    assert_eq!(m.body.as_deref(), Some(composing.as_slice()));

    // Step 9: the conversation goes on with the phone only.
    let body2 = chat_body("sip:alice@isc.local", "sip:bob@isc.local", "still there?");
    a.send(&send(
        &to_server,
        &alice_uri,
        "a2tx",
        "msg-2",
        "message/cpim",
        body2.clone(),
    ))
    .await;
    let m = dev_conns[1].recv_request().await;
    assert_eq!(m.message_id(), Some("msg-2"));
    assert_eq!(m.body.as_deref(), Some(body2.as_slice()));
    let body3 = chat_body(
        "sip:bob@isc.local",
        "sip:alice@isc.local",
        "yes, on my phone",
    );
    dev_conns[1]
        .send(&send(
            &server_paths[1],
            &bob[1].uri,
            "b2tx",
            "msg-3",
            "message/cpim",
            body3.clone(),
        ))
        .await;
    let m = a.recv_request().await;
    assert_eq!(m.message_id(), Some("msg-3"));
    assert_eq!(m.body.as_deref(), Some(body3.as_slice()));

    // History holds every chat message (not the isComposing), in order.
    let history = SqliteHistory::open_in(&dir).unwrap();
    let got = history
        .conversation("sip:alice@isc.local", "sip:bob@isc.local")
        .unwrap();
    let ids: Vec<&str> = got.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(ids, ["msg-1", "msg-2", "msg-3"]);
    assert_eq!(got[0].cpim_from, "<sip:alice@isc.local>");
    assert_eq!(got[2].cpim_to, "<sip:alice@isc.local>");
    assert_eq!(got[0].cpim_date_time, "2026-11-23T15:00:00Z");
    assert_eq!(got[1].body, body2);

    server.shutdown().await;
}

/// Bob types on the phone while the tv still rings: the tv's INVITE is
/// CANCELled with the same Reason (seed 000 C.15.2 step 14 for CM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringing_sibling_gets_cancel_with_the_reason() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let tv = Device::register(addr, "bob", "bob-tv", "tv").await;
    let phone = Device::register(addr, "bob", "bob-phone", "phone").await;
    let alice_uri = MsrpUri::new("127.0.0.1", 7, "alicesess");
    let sdp = msrp_sdp(&alice_uri, "actpass", "");
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, &[]);
    let req = send_invite(&mut alice, req).await;
    let tv_inv = recv_request(&tv.sip, rsip::Method::Invite).await;
    let ph_inv = recv_request(&phone.sip, rsip::Method::Invite).await;
    answer(&tv.sip, &tv_inv, 180, "tvtag", None).await;
    answer(
        &phone.sip,
        &ph_inv,
        200,
        "phtag",
        Some(&msrp_sdp(&phone.uri, "passive", "")),
    )
    .await;
    // alice sees one 180, then the 200.
    let ringing = loop {
        match alice.recv().await {
            rsip::SipMessage::Response(r) if r.status_code.code() > 100 => break r,
            _ => continue,
        }
    };
    assert_eq!(ringing.status_code.code(), 180);
    let ok = final_for(&alice, &req).await;
    assert_eq!(ok.status_code.code(), 200);
    let ack = ack_2xx(&mut alice, &req, &ok);
    alice.send(ack).await;
    let server_path = sdp_path(&ph_inv.body);
    let mut b = cpm_common::MsrpConn::accept(&phone.listener).await;
    let _bind = b.recv_request().await;
    let chat = chat_body(
        "sip:bob@isc.local",
        "sip:alice@isc.local",
        "hi from the phone",
    );
    b.send(&send(
        &server_path,
        &phone.uri,
        "p1",
        "pm1",
        "message/cpim",
        chat,
    ))
    .await;
    let cancel = recv_request(&tv.sip, rsip::Method::Cancel).await;
    assert_eq!(
        cancel.headers.get_raw("Reason").as_deref(),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
    assert_eq!(
        cancel.headers.get_raw("Call-ID"),
        tv_inv.headers.get_raw("Call-ID")
    );
    tv.sip.answer(&cancel, 200).await;
    tv.sip.answer(&tv_inv, 487).await;
    // alice still gets the phone's message (her connection binds first).
    let mut a = cpm_common::MsrpConn::connect(server.msrp_addr()).await;
    let to_server = sdp_path(&ok.body);
    let bind = MsrpMessage::request(
        MsrpMethod::Send,
        "abind",
        to_server.clone(),
        MsrpPath::single(alice_uri.clone()),
    )
    .with_header(MsrpHeader::MessageId("ab".into()));
    a.send(&bind).await;
    let m = a.recv_request().await;
    assert_eq!(m.message_id(), Some("pm1"));
    server.shutdown().await;
}
