//! The server's SIP core over real loopback sockets: registrar with digest,
//! GRUUs, forking proxy, authenticated originator, reg-event.

mod common;

use common::*;
use isc::proto::sip::headers::HeadersExt;

#[tokio::test]
async fn register_with_digest_and_gruu() {
    let server = start_server().await;
    let mut alice = Peer::new(server.local_addr(), "alice", "alice").await;
    let to = "sip:alice@isc.local".to_string();
    let contact = format!(
        "Contact: <sip:alice@{}>;+sip.instance=\"<urn:uuid:a1>\"",
        alice.addr()
    );
    let req = alice.request(
        "REGISTER",
        "sip:isc.local",
        &to,
        &[contact, "Supported: gruu".into()],
        "",
    );
    alice.send(req.clone()).await;
    let challenge = alice.final_response().await;
    assert_eq!(challenge.status_code.code(), 401);
    let www = challenge.headers.get_all_raw("WWW-Authenticate");
    assert_eq!(www.len(), 2, "one challenge per algorithm: {www:?}");
    assert!(
        www[0].contains("algorithm=SHA-256") && www[1].contains("algorithm=MD5"),
        "SHA-256 first: {www:?}"
    );
    assert!(www[0].contains("qop=\"auth\""));

    let ok = alice.register("a1", "tv").await;
    assert_eq!(ok.status_code.code(), 200, "{ok}");
    let contact = ok.headers.get_raw("Contact").unwrap();
    assert!(
        contact.contains("pub-gruu=\"sip:alice@isc.local;gr=urn:uuid:a1\""),
        "{contact}"
    );
    assert!(contact.contains("expires="), "{contact}");
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let server = start_server().await;
    let mut alice = Peer::new(server.local_addr(), "alice", "not-alice").await;
    let resp = alice.register("a1", "tv").await;
    assert_eq!(resp.status_code.code(), 403, "{resp}");
    server.shutdown().await;
}

#[tokio::test]
async fn cannot_register_another_users_aor() {
    let server = start_server().await;
    let mut mallory = Peer::new(server.local_addr(), "mallory", "mallory").await;
    let contact = format!("Contact: <sip:mallory@{}>", mallory.addr());
    let req = mallory.request(
        "REGISTER",
        "sip:isc.local",
        "sip:alice@isc.local",
        &[contact],
        "",
    );
    let resp = mallory.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 403, "{resp}");
    server.shutdown().await;
}

#[tokio::test]
async fn message_to_aor_forks_to_every_device_and_gruu_to_one() {
    let server = start_server().await;
    let mut tv = Peer::new(server.local_addr(), "alice", "alice").await;
    let mut phone = Peer::new(server.local_addr(), "alice", "alice").await;
    assert_eq!(tv.register("tv-1", "tv").await.status_code.code(), 200);
    assert_eq!(
        phone.register("phone-1", "phone").await.status_code.code(),
        200
    );
    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;

    let req = bob.request(
        "MESSAGE",
        "sip:alice@isc.local",
        "sip:alice@isc.local",
        &["Content-Type: text/plain".into()],
        "hello both",
    );
    bob.digest.authorize(&mut req.clone(), "x");
    let b = tokio::spawn(async move {
        let r = bob.send_authenticated(req).await;
        (bob, r)
    });
    for dev in [&tv, &phone] {
        let got = request(dev.recv().await);
        assert_eq!(got.method, rsip::Method::Message);
        assert_eq!(got.body, b"hello both");
        assert_eq!(
            got.headers.get_raw("P-Asserted-Identity").as_deref(),
            Some("<sip:bob@isc.local>")
        );
        assert!(
            got.headers.get_raw("Proxy-Authorization").is_none(),
            "credentials are not forwarded"
        );
        dev.answer(&got, 200).await;
    }
    let (mut bob, resp) = b.await.unwrap();
    assert_eq!(resp.status_code.code(), 200);

    // A MESSAGE to the phone's GRUU reaches the phone only.
    let gruu = "sip:alice@isc.local;gr=urn:uuid:phone-1";
    let req = bob.request(
        "MESSAGE",
        gruu,
        "sip:alice@isc.local",
        &["Content-Type: text/plain".into()],
        "phone only",
    );
    let b = tokio::spawn(async move { bob.send_authenticated(req).await });
    let got = request(phone.recv().await);
    assert_eq!(got.body, b"phone only");
    phone.answer(&got, 200).await;
    assert_eq!(b.await.unwrap().status_code.code(), 200);
    assert!(tv.recv_within(0.5).await.is_none(), "the tv got nothing");
    server.shutdown().await;
}

#[tokio::test]
async fn offline_unknown_and_spoofed_requests() {
    let server = start_server().await;
    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;
    let req = bob.request(
        "MESSAGE",
        "sip:carol@isc.local",
        "sip:carol@isc.local",
        &[],
        "hi",
    );
    assert_eq!(
        bob.send_authenticated(req).await.status_code.code(),
        202,
        "carol has no device: stored for later delivery (deferred store)"
    );
    let req = bob.request(
        "MESSAGE",
        "sip:nobody@isc.local",
        "sip:nobody@isc.local",
        &[],
        "hi",
    );
    assert_eq!(bob.send_authenticated(req).await.status_code.code(), 404);

    // From claims alice while bob authenticates: refused.
    let mut req = bob.request(
        "MESSAGE",
        "sip:carol@isc.local",
        "sip:carol@isc.local",
        &[],
        "hi",
    );
    req.headers.remove_named("From");
    req.headers.push(isc::proto::sip::headers::make_header(
        "From",
        "<sip:alice@isc.local>;tag=spoof",
    ));
    let resp = bob.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 403, "{resp}");
    assert!(
        resp.headers
            .get_raw("Warning")
            .unwrap()
            .contains("authenticated identity")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn reg_event_shows_siblings_arrive_and_leave() {
    let server = start_server().await;
    let mut tv = Peer::new(server.local_addr(), "alice", "alice").await;
    assert_eq!(tv.register("tv-1", "tv").await.status_code.code(), 200);
    let contact = format!("Contact: <sip:alice@{}>", tv.addr());
    let req = tv.request(
        "SUBSCRIBE",
        "sip:alice@isc.local",
        "sip:alice@isc.local",
        &[
            contact,
            "Event: reg".into(),
            "Accept: application/reginfo+xml".into(),
            "Expires: 600".into(),
        ],
        "",
    );
    let resp = tv.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 200, "{resp}");
    let notify = request(tv.recv().await);
    assert_eq!(notify.method, rsip::Method::Notify);
    assert_eq!(notify.headers.get_raw("Event").as_deref(), Some("reg"));
    assert!(
        notify
            .headers
            .get_raw("Subscription-State")
            .unwrap()
            .starts_with("active")
    );
    let body = String::from_utf8(notify.body.clone()).unwrap();
    assert!(
        body.contains("version=\"0\"") && body.contains("urn:uuid:tv-1"),
        "{body}"
    );
    tv.answer(&notify, 200).await;

    let mut phone = Peer::new(server.local_addr(), "alice", "alice").await;
    assert_eq!(
        phone.register("phone-1", "phone").await.status_code.code(),
        200
    );
    let notify = request(tv.recv().await);
    let body = String::from_utf8(notify.body.clone()).unwrap();
    assert!(
        body.contains("version=\"1\"") && body.contains("urn:uuid:phone-1"),
        "{body}"
    );
    assert!(
        body.contains("sip:alice@isc.local;gr=urn:uuid:phone-1"),
        "GRUU of the sibling: {body}"
    );
    tv.answer(&notify, 200).await;

    // The phone un-registers: the tv hears it leave.
    let contact = format!(
        "Contact: <sip:alice@{};transport=udp>;+sip.instance=\"<urn:uuid:phone-1>\";expires=0",
        phone.addr()
    );
    let req = phone.request(
        "REGISTER",
        "sip:isc.local",
        "sip:alice@isc.local",
        &[contact],
        "",
    );
    assert_eq!(phone.send_authenticated(req).await.status_code.code(), 200);
    let notify = request(tv.recv().await);
    let body = String::from_utf8(notify.body.clone()).unwrap();
    assert!(
        body.contains("version=\"2\"") && !body.contains("phone-1"),
        "{body}"
    );
    tv.answer(&notify, 200).await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_answers_options_and_unknown_methods() {
    let server = start_server().await;
    let mut bob = Peer::new(server.local_addr(), "bob", "bob").await;
    let req = bob.request("OPTIONS", "sip:isc.local", "sip:isc.local", &[], "");
    let resp = bob.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 200);
    assert!(resp.headers.get_raw("Allow").unwrap().contains("MESSAGE"));

    let text = format!(
        "NEWMETHOD sip:isc.local SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKnm1\r\nMax-Forwards: 70\r\nFrom: <sip:bob@isc.local>;tag=1\r\nTo: <sip:isc.local>\r\nCall-ID: nm1\r\nCSeq: 1 NEWMETHOD\r\nContent-Length: 0\r\n\r\n",
        bob.addr()
    );
    bob.sock
        .send_to(text.as_bytes(), server.local_addr())
        .await
        .unwrap();
    let resp = bob.final_response().await;
    assert_eq!(resp.status_code.code(), 501);
    assert!(resp.headers.get_raw("Allow").is_some());

    // A request with a broken CSeq gets 400 with a Warning naming it.
    let text = format!(
        "MESSAGE sip:alice@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKbad1\r\nMax-Forwards: 70\r\nFrom: <sip:bob@isc.local>;tag=1\r\nTo: <sip:alice@isc.local>\r\nCall-ID: bad1\r\nCSeq: abc MESSAGE\r\nContent-Length: 0\r\n\r\n",
        bob.addr()
    );
    bob.sock
        .send_to(text.as_bytes(), server.local_addr())
        .await
        .unwrap();
    // The response copies the CSeq as it came (RFC 3261 §8.2.6.2), so read it as text.
    let text = bob.recv_text().await;
    assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"), "{text}");
    assert!(
        text.contains("Warning: 399 isc.local \"invalid CSeq header"),
        "{text}"
    );
    assert!(text.contains("Call-ID: bad1\r\n"), "{text}");
    server.shutdown().await;
}
