//! Kamailio 5.6 as the SIP/IP core in front of `isc server` in AS mode
//! (issue 10, `assets/deploy/kamailio/kamailio.cfg`): every device registers
//! at Kamailio (digest, GRUU), Kamailio hands the AS a third-party REGISTER,
//! authenticates requests, asserts the identity and routes the ISC / CPM
//! requests to the AS; the AS reaches each device through Kamailio at its
//! GRUU, one leg per device. Flows: seed 000 C.15.2 and FLOWS.md
//! `cpm-multidevice`. Skipped (with a message) when kamailio is absent.

mod common;
mod cpm_common;
mod kamailio_support;
mod mf_common;

use std::collections::BTreeSet;
use std::time::Duration;

use isc::proto::bodies::cv_cancellation::{self, CvCancellation};
use isc::proto::msrp::{ByteRange, MsrpHeader, MsrpMessage, MsrpMethod, MsrpPath, MsrpUri};
use isc::proto::sip::headers::HeadersExt;
use isc::server::history_store::{HistoryStore, SqliteHistory};
use isc::server::runner::{Direction, ServerOptions};

use common::Peer;
use cpm_common::{
    Device, MsrpConn, ack_2xx, answer, cpm_invite, final_for, msrp_sdp, recv_request, sdp_path,
    sdp_setup, send_invite,
};
use kamailio_support::{Site, header_of};
use mf_common::{
    DialogView, ICSI_1_1, Viewer, answer_ok, content_request, cv_invite, drain, user_mut,
};

const REASON: &str = "SIP;cause=200;text=\"Call completed elsewhere\"";

fn options(tweak: impl FnOnce(&mut ServerOptions)) -> ServerOptions {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.users = ["alice", "bob", "carol", "ted"]
        .iter()
        .map(|n| isc::config::UserConfig::new(n, n))
        .collect();
    opts.config.content_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/content").into();
    tweak(&mut opts);
    opts
}

/// Registers a device at Kamailio and checks Kamailio's 200: its Server
/// header and the public GRUU it minted (RFC 5627 §5.1).
async fn register_at_core(peer: &mut Peer, instance: &str, device: &str) -> String {
    let resp = peer.register(instance, device).await;
    assert_eq!(resp.status_code.code(), 200, "{} registers", peer.user);
    let server = resp.headers.get_raw("Server").unwrap_or_default();
    assert!(
        server.starts_with("kamailio"),
        "registered at Kamailio: {server}"
    );
    let gruu = format!("sip:{}@isc.local;gr=urn:uuid:{instance}", peer.user);
    // The 200 lists every binding of the AOR (RFC 3261 §10.3 step 8).
    let contacts = resp.headers.get_all_raw("Contact").join(", ");
    assert!(
        contacts.contains(&format!("pub-gruu=\"{gruu}\"")),
        "Kamailio's pub-gruu: {contacts}"
    );
    gruu
}

async fn viewer(site: &Site, user: &str, instance: &str, name: &str) -> Viewer {
    let mut sip = Peer::new(site.core, user, user).await;
    let gruu = register_at_core(&mut sip, instance, name).await;
    let ip = "127.0.0.1".parse().unwrap();
    Viewer {
        sip,
        gruu,
        audio: isc::server::rtp_sender::PortPair::bind(ip).await.unwrap(),
        video: isc::server::rtp_sender::PortPair::bind(ip).await.unwrap(),
    }
}

/// The AS's INVITEs to the core: their Request-URIs (one per device leg).
async fn legs_to_core(site: &Site, count: usize) -> Vec<String> {
    let out = site.wire.wait_for(Direction::Out, "INVITE ", count).await;
    out.iter()
        .filter(|(to, _)| *to == site.core)
        .filter_map(|(_, t)| t.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

/// What a device got from the core: its contact as Request-URI (Kamailio
/// retargets the GRUU, RFC 5627 §5.3), Kamailio's Via on top, the
/// originator asserted.
fn assert_reached_through_core(site: &Site, inv: &rsip::Request, device: &Peer) {
    assert_eq!(
        inv.uri.to_string().to_ascii_lowercase(),
        format!("sip:{}@{};transport=udp", device.user, device.addr())
    );
    let via = inv.headers.get_raw("Via").unwrap();
    assert!(
        via.split(',')
            .next()
            .unwrap()
            .contains(&site.core.to_string()),
        "top Via is Kamailio's: {via}"
    );
    assert_eq!(
        inv.headers.get_raw("P-Asserted-Identity").as_deref(),
        Some("<sip:alice@isc.local>")
    );
}

/// Seed 000 C.15.2: bob views on one device. Alice's CV INVITE goes through
/// Kamailio to the Media Function, which sends one leg per bob device
/// through Kamailio at its GRUU; B1 accepts, B2's leg is CANCELled with
/// the Reason, and media flows to alice and B1 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c15_2_with_every_device_registered_at_kamailio() {
    let opts = options(|o| user_mut(o, "bob").cv_single_device = true);
    let Some(site) = Site::start(opts).await else {
        return;
    };
    let mut alice = viewer(&site, "alice", "al", "laptop").await;
    let b1 = viewer(&site, "bob", "b1", "tv").await;
    let b2 = viewer(&site, "bob", "b2", "phone").await;
    site.await_registrations(3).await;

    // 2. alice → Kamailio (407, then authenticated) → AS: INVITE (CV)
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

    // 3. one leg per device, each to the core at the device's GRUU
    let i1 = recv_request(&b1.sip, rsip::Method::Invite).await;
    let i2 = recv_request(&b2.sip, rsip::Method::Invite).await;
    let arrived = site
        .wire
        .wait_for(Direction::In, "INVITE sip:bob@isc.local", 1)
        .await;
    let (from, text) = arrived.first().expect("the CV INVITE reached the AS");
    assert_eq!(*from, site.core, "routed to the AS by Kamailio");
    assert_eq!(
        header_of(text, "P-Asserted-Identity").as_deref(),
        Some("<sip:alice@isc.local>"),
        "Kamailio asserted the authenticated identity"
    );
    assert!(
        header_of(text, "Proxy-Authorization").is_none(),
        "credentials consumed"
    );
    let legs: BTreeSet<String> = legs_to_core(&site, 2).await.into_iter().collect();
    assert_eq!(legs, BTreeSet::from([b1.gruu.clone(), b2.gruu.clone()]));
    assert_reached_through_core(&site, &i1, &b1.sip);
    assert_reached_through_core(&site, &i2, &b2.sip);
    assert_eq!(
        i1.headers.get_raw("ISCConvergenceID").as_deref(),
        Some("cv-test-1")
    );
    assert_ne!(i1.headers.get_raw("Call-ID"), i2.headers.get_raw("Call-ID"));
    // B2 alerts: Kamailio CANCELs a branch only once it has a provisional
    // response (RFC 3261 §9.1, tm's default cancel_b_method).
    answer(&b2.sip, &i2, 180, "b2tag", None).await;

    // 7. B1 accepts; 8. alice gets 200 (CV) through Kamailio and ACKs
    answer_ok(&b1.sip, &i1, "b1tag", &b1.sdp()).await;
    let ok = final_for(&alice.sip, &sent).await;
    assert_eq!(ok.status_code.code(), 200);
    let ad = DialogView::uac(&sent, &ok);
    let seq = isc::proto::sip::build::cseq(&sent.headers).unwrap().0;
    let ack = ad.ack(&mut alice.sip, seq);
    alice.sip.send(ack).await;

    // 9. AS → core → B2: CANCEL with the Reason (RFC 3326)
    let cancel = recv_request(&b2.sip, rsip::Method::Cancel).await;
    assert_eq!(cancel.headers.get_raw("Reason").as_deref(), Some(REASON));
    assert_eq!(
        cancel.headers.get_raw("Call-ID"),
        i2.headers.get_raw("Call-ID")
    );
    assert_eq!(
        cancel.headers.get_raw("Via").unwrap().split(',').next(),
        i2.headers.get_raw("Via").unwrap().split(',').next(),
        "same branch as the INVITE Kamailio sent (RFC 3261 §9.1)"
    );
    // The AS's own CANCEL (to the core) carries the seed's body too.
    let cancels = site.wire.wait_for(Direction::Out, "CANCEL ", 1).await;
    let (to, text) = cancels.first().expect("the AS CANCELs B2's leg");
    assert_eq!(*to, site.core);
    assert!(text.starts_with(&format!("CANCEL {} ", b2.gruu)));
    assert_eq!(header_of(text, "Reason").as_deref(), Some(REASON));
    assert_eq!(
        header_of(text, "Content-Type").as_deref(),
        Some(cv_cancellation::CONTENT_TYPE)
    );
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let body = CvCancellation::parse(body.as_bytes())
        .unwrap_or_else(|e| panic!("{e}: the AS's CANCEL:\n{text}"));
    assert!(!body.cancellation_id.is_empty());

    // 10. B2: 200 (CANCEL), 487 (INVITE); Kamailio ACKs the 487
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
    drain(&b2.audio.rtp).await;
    site.shutdown().await;
}

fn chat_body(from: &str, to: &str, text: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nDateTime: 2026-11-23T15:00:00Z\r\n\r\nContent-Type: text/plain;charset=utf-8\r\n\r\n{text}"
    )
    .into_bytes()
}

fn msrp_send(
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

/// FLOWS.md `cpm-multidevice` (seed 001 8.3.2.1.1) behind Kamailio: bob's
/// three devices each get a leg at their GRUU through Kamailio, all get
/// alice's first message, bob types on the phone, the other two get BYE
/// with the Reason (in dialog, through Kamailio's Record-Route).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpm_multidevice_with_every_device_registered_at_kamailio() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let opts = options(|o| {
        o.config.data_dir = Some(dir.clone());
        o.history_in_memory = false;
    });
    let Some(site) = Site::start(opts).await else {
        return;
    };
    let as_addr = site.server.local_addr();
    let mut alice = Peer::new(site.core, "alice", "alice").await;
    register_at_core(&mut alice, "alice-laptop", "laptop").await;
    let mut bob = Vec::new();
    for name in ["tv", "phone", "laptop"] {
        let mut d = Device::register(site.core, "bob", &format!("bob-{name}"), name).await;
        d.gruu = format!("sip:bob@isc.local;gr=urn:uuid:bob-{name}");
        bob.push(d);
    }
    site.await_registrations(4).await;

    // Step 1: alice INVITEs bob through Kamailio (CPM session tag).
    let alice_uri = MsrpUri::new("127.0.0.1", 7, "alicesess");
    let sdp = msrp_sdp(&alice_uri, "actpass", "");
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, &[]);
    let req = send_invite(&mut alice, req).await;

    // Step 2: one leg per device, to the core at the device's GRUU.
    let mut server_paths = Vec::new();
    let mut invites = Vec::new();
    for d in &bob {
        let inv = recv_request(&d.sip, rsip::Method::Invite).await;
        assert_reached_through_core(&site, &inv, &d.sip);
        let contact = inv.headers.get_raw("Contact").unwrap();
        assert!(
            contact.contains(&as_addr.to_string()),
            "the AS's own Contact: {contact}"
        );
        assert!(
            inv.headers
                .get_raw("Record-Route")
                .is_some_and(|rr| rr.contains(&site.core.to_string())),
            "Kamailio stays in the dialog"
        );
        assert_eq!(
            inv.headers.get_raw("P-Asserted-Service").as_deref(),
            Some(cpm_common::CPM_ICSI)
        );
        assert_ne!(
            inv.headers.get_raw("Call-ID"),
            req.headers.get_raw("Call-ID"),
            "each leg has its own Call-ID"
        );
        server_paths.push(sdp_path(&inv.body));
        assert_eq!(sdp_setup(&inv.body), "active");
        invites.push(inv);
    }
    let legs: BTreeSet<String> = legs_to_core(&site, 3).await.into_iter().collect();
    let gruus: BTreeSet<String> = bob.iter().map(|d| d.gruu.clone()).collect();
    assert_eq!(
        legs, gruus,
        "the AS targets each GRUU, Kamailio does not fork"
    );

    // Step 3: every device answers 200; the AS's ACK comes through Kamailio.
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

    // Step 4: the AS's MSRP legs to each device.
    let mut dev_conns = Vec::new();
    for (i, d) in bob.iter().enumerate() {
        let mut c = MsrpConn::accept(&d.listener).await;
        let bind = c.recv_request().await;
        assert_eq!(bind.from_path().unwrap(), &server_paths[i]);
        dev_conns.push(c);
    }
    let mut a = MsrpConn::connect(site.server.msrp_addr()).await;

    // Step 5: alice's chat reaches all three.
    let body = chat_body("sip:alice@isc.local", "sip:bob@isc.local", "hello bob");
    a.send(&msrp_send(
        &to_server,
        &alice_uri,
        "a1tx",
        "msg-1",
        "message/cpim",
        body.clone(),
    ))
    .await;
    assert_eq!(a.recv().await.code(), Some(200));
    for c in dev_conns.iter_mut() {
        let m = c.recv_request().await;
        assert_eq!(m.message_id(), Some("msg-1"));
        assert_eq!(m.body.as_deref(), Some(body.as_slice()));
    }

    // Step 6: bob types on the phone.
    let composing = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>active</state><contenttype>text/plain</contenttype></isComposing>".to_vec();
    dev_conns[1]
        .send(&msrp_send(
            &server_paths[1],
            &bob[1].uri,
            "b1tx",
            "comp-1",
            "application/im-iscomposing+xml",
            composing.clone(),
        ))
        .await;

    // Step 7: tv and laptop get BYE with the Reason, routed by Kamailio.
    for i in [0, 2] {
        let bye = recv_request(&bob[i].sip, rsip::Method::Bye).await;
        assert_eq!(bye.headers.get_raw("Reason").as_deref(), Some(REASON));
        assert_eq!(
            bye.headers.get_raw("Call-ID"),
            invites[i].headers.get_raw("Call-ID")
        );
        let via = bye.headers.get_raw("Via").unwrap();
        assert!(
            via.split(',')
                .next()
                .unwrap()
                .contains(&site.core.to_string()),
            "BYE through Kamailio: {via}"
        );
        bob[i].sip.answer(&bye, 200).await;
        assert!(
            dev_conns[i].closed_within(5.0).await,
            "device {i} MSRP closed"
        );
    }
    // Step 8: alice gets bob's isComposing; step 9: the phone only.
    let m = a.recv_request().await;
    assert_eq!(m.body.as_deref(), Some(composing.as_slice()));
    let body2 = chat_body("sip:alice@isc.local", "sip:bob@isc.local", "still there?");
    a.send(&msrp_send(
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

    let history = SqliteHistory::open_in(&dir).unwrap();
    let got = history
        .conversation("sip:alice@isc.local", "sip:bob@isc.local")
        .unwrap();
    let ids: Vec<&str> = got.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(ids, ["msg-1", "msg-2"]);
    site.shutdown().await;
}

/// The AS trusts P-Asserted-Identity only from the core, and has no
/// registrar of its own: a device that goes around Kamailio gets 403 with
/// a Warning naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_as_refuses_what_does_not_come_from_the_core() {
    let Some(site) = Site::start(options(|_| {})).await else {
        return;
    };
    let as_addr = site.server.local_addr();
    let mut mallory = Peer::new(as_addr, "bob", "bob").await;
    let inv = cpm_invite(
        &mut mallory,
        "sip:alice@isc.local",
        "v=0\r\n",
        &["P-Asserted-Identity: <sip:bob@isc.local>"],
    );
    mallory.send(inv).await;
    let resp = mallory.final_response().await;
    assert_eq!(resp.status_code.code(), 403);
    let warning = resp.headers.get_raw("Warning").unwrap();
    assert!(
        warning.contains("trusted only from the SIP/IP core"),
        "{warning}"
    );
    let reg = mallory.register("bob-x", "x").await;
    assert_eq!(reg.status_code.code(), 403, "no registrar at the AS");
    assert!(
        site.wire
            .texts(Direction::Out)
            .iter()
            .all(|(_, t)| !t.contains("WWW-Authenticate"))
    );
    site.shutdown().await;
}

/// Seed 003 12.4.2.1 / 12.4.2.2 behind Kamailio: a pager MESSAGE to bob,
/// who has no device, finds no binding at Kamailio, which hands it to the
/// AS; the AS stores it (202). When bob's phone registers at Kamailio, the
/// third-party REGISTER tells the AS, which INVITEs the phone's GRUU
/// through Kamailio and pushes the message over MSRP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_message_is_pushed_through_kamailio_on_registration() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let opts = options(|o| {
        o.config.data_dir = Some(dir.clone());
        o.history_in_memory = false;
        user_mut(o, "bob").offline_delivery = true;
    });
    let Some(site) = Site::start(opts).await else {
        return;
    };
    let mut carol = Peer::new(site.core, "carol", "carol").await;
    let pager = carol.request(
        "MESSAGE",
        "sip:bob@isc.local",
        "sip:bob@isc.local",
        &[
            "Message-ID: carol-1".into(),
            "Content-Type: text/plain".into(),
        ],
        "call me when you are back",
    );
    let resp = carol.send_authenticated(pager.clone()).await;
    assert_eq!(resp.status_code.code(), 202, "stored for later");
    let stored = site
        .wire
        .wait_for(Direction::In, "MESSAGE sip:bob@", 1)
        .await;
    let (from, text) = stored.first().expect("the AS got the MESSAGE");
    assert_eq!(*from, site.core);
    assert_eq!(
        header_of(text, "P-Asserted-Identity").as_deref(),
        Some("<sip:carol@isc.local>")
    );

    let bob = Device::register(site.core, "bob", "bob-phone", "phone").await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    let legs = legs_to_core(&site, 1).await;
    assert_eq!(legs, ["sip:bob@isc.local;gr=urn:uuid:bob-phone"]);
    assert!(
        inv.headers
            .get_raw("Via")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .contains(&site.core.to_string()),
        "the push INVITE comes through Kamailio"
    );
    answer(
        &bob.sip,
        &inv,
        200,
        "bobpush",
        Some(&msrp_sdp(&bob.uri, "passive", "")),
    )
    .await;
    let ack = recv_request(&bob.sip, rsip::Method::Ack).await;
    assert_eq!(
        ack.headers.get_raw("Call-ID"),
        inv.headers.get_raw("Call-ID")
    );
    let mut conn = MsrpConn::accept(&bob.listener).await;
    let send = conn.recv().await;
    assert_eq!(send.content_type(), Some("message/sip"));
    let body = String::from_utf8(send.body.clone().unwrap()).unwrap();
    assert!(
        body.starts_with("MESSAGE sip:bob@isc.local SIP/2.0\r\n"),
        "{body}"
    );
    assert!(body.contains("Message-ID: carol-1\r\n"), "{body}");
    assert!(body.ends_with("call me when you are back"), "{body}");
    conn.send(&send.ok_response().unwrap()).await;
    site.shutdown().await;
}
