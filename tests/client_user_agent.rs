//! The client UserAgent against a scripted server, on a virtual clock.

mod client_support;

use std::time::Duration;

use client_support::*;
use isc::client::{ClientEvent, Command};
use isc::proto::bodies::is_composing::{ComposingState, IsComposing};
use isc::proto::sip::build::{call_id, cseq};
use isc::proto::sip::digest::{AuthKind, DigestOutcome, DigestServer, DigestServerConfig};
use isc::proto::sip::headers::{Contact, HeadersExt};
use rsip::Method;

const BOB: &str = "sip:bob@isc.local";

fn digest_server(h: &Harness) -> DigestServer {
    DigestServer::new(DigestServerConfig::new("isc.local"), [7; 32], h.t0)
}

fn password(u: &str) -> Option<String> {
    (u == "alice").then(|| "secret".to_owned())
}

fn gruu_contact() -> String {
    format!(
        "<sip:alice@{LOCAL};transport=tcp>;+sip.instance=\"<{INSTANCE}>\";pub-gruu=\"sip:alice@isc.local;gr={INSTANCE}\";expires=600"
    )
}

#[test]
fn register_answers_401_with_sha256_and_keeps_the_gruu() {
    let mut h = Harness::new(config());
    let mut ds = digest_server(&h);
    h.start();
    let r1 = h.next_request();
    assert_eq!(r1.method, Method::Register);
    assert_eq!(r1.uri.to_string(), "sip:isc.local");
    let contact = header(&r1, "Contact").unwrap();
    assert!(
        contact.contains(&format!("+sip.instance=\"<{INSTANCE}>\"")),
        "{contact}"
    );
    assert!(contact.contains("+sip.description=\"tv\""), "{contact}");
    assert!(contact.contains("expires=3600"), "{contact}");
    assert!(contact.contains("transport=tcp"), "{contact}");
    assert_eq!(header(&r1, "Supported").as_deref(), Some("gruu"));
    assert!(header(&r1, "User-Agent").unwrap().starts_with("isc/"));
    assert!(header(&r1, "Authorization").is_none());

    let challenge = ds.challenge_headers(h.now, AuthKind::Www, &[1; 16], false);
    h.reply_headers(&r1, 401, challenge);
    let r2 = h.next_request();
    assert_eq!(call_id(&r2.headers), call_id(&r1.headers));
    assert_eq!(cseq(&r2.headers), Some((2, "REGISTER".into())));
    let auth = header(&r2, "Authorization").expect("credentials");
    assert!(auth.contains("algorithm=SHA-256"), "{auth}");
    assert!(matches!(
        ds.verify_request(h.now, &r2, AuthKind::Www, password),
        DigestOutcome::Authenticated { .. }
    ));

    h.reply(&r2, 200, vec![("Contact", gruu_contact())]);
    let gruu = format!("sip:alice@isc.local;gr={INSTANCE}");
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::Registered {
            aor: "sip:alice@isc.local".into(),
            gruu: Some(gruu.clone()),
            expires: 600
        }]
    );
    assert_eq!(h.ua.gruu(), Some(gruu.as_str()));
    // then the reg-event subscription to our own AOR (RFC 3680)
    let sub = h.next_request();
    assert_eq!(sub.method, Method::Subscribe);
    assert_eq!(sub.uri.to_string(), "sip:alice@isc.local");
    assert_eq!(header(&sub, "Event").as_deref(), Some("reg"));
    assert_eq!(
        header(&sub, "Accept").as_deref(),
        Some("application/reginfo+xml")
    );

    // refresh at half of the granted 600 s, with credentials up front
    h.reply(&sub, 200, vec![("Expires", "3600".into())]);
    h.advance(Duration::from_secs(299));
    assert!(h.no_request());
    h.advance(Duration::from_secs(1));
    let r3 = h.next_request();
    assert_eq!(r3.method, Method::Register);
    assert_eq!(cseq(&r3.headers), Some((3, "REGISTER".into())));
    assert!(
        header(&r3, "Authorization")
            .unwrap()
            .contains("nc=00000002")
    );
    assert!(matches!(
        ds.verify_request(h.now, &r3, AuthKind::Www, password),
        DigestOutcome::Authenticated { .. }
    ));
    h.reply(&r3, 200, vec![("Contact", gruu_contact())]);
    // a plain refresh is no news
    assert!(h.take_events().is_empty());
    assert!(h.ua.is_registered());
}

#[test]
fn wrong_password_gives_up() {
    let mut cfg = config();
    cfg.password = "wrong".into();
    let mut h = Harness::new(cfg);
    let mut ds = digest_server(&h);
    h.start();
    let r1 = h.next_request();
    h.reply_headers(
        &r1,
        401,
        ds.challenge_headers(h.now, AuthKind::Www, &[1; 16], false),
    );
    let r2 = h.next_request();
    assert!(matches!(
        ds.verify_request(h.now, &r2, AuthKind::Www, password),
        DigestOutcome::Forbidden { .. }
    ));
    h.reply(&r2, 403, vec![]);
    let ev = h.take_events();
    assert!(
        matches!(
            &ev[..],
            [ClientEvent::RegistrationFailed {
                status: Some(403),
                retry_in: None,
                ..
            }]
        ),
        "{ev:?}"
    );
    h.advance(Duration::from_secs(3600));
    assert!(h.no_request());
}

#[test]
fn server_gone_then_back_reregisters_with_backoff() {
    let mut h = Harness::new(config());
    h.registered();
    // the refresh at 1800 s gets no answer: Timer F (32 s) fires
    h.advance(Duration::from_secs(1800));
    let _lost = h.take_request(Method::Register);
    h.advance(Duration::from_secs(32));
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [ClientEvent::RegistrationFailed { status: None, retry_in: Some(d), .. }] if *d == Duration::from_secs(1)),
        "{ev:?}"
    );
    h.advance(Duration::from_secs(1));
    let _lost2 = h.take_request(Method::Register);
    h.advance(Duration::from_secs(32));
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [ClientEvent::RegistrationFailed { retry_in: Some(d), .. }] if *d == Duration::from_secs(2)),
        "{ev:?}"
    );
    h.advance(Duration::from_secs(2));
    let r = h.take_request(Method::Register);
    assert!(h.no_request(), "the watch waits for the registration");
    h.reply(&r, 200, vec![("Contact", gruu_contact())]);
    assert!(matches!(
        &h.take_events()[..],
        [ClientEvent::Registered { .. }]
    ));
    // the restarted server lost the subscription too: a new one
    let sub = h.next_request();
    assert_eq!(sub.method, Method::Subscribe);
    assert!(h.ua.is_registered());
}

#[test]
fn shutdown_unsubscribes_and_unregisters() {
    let mut h = Harness::new(config());
    h.registered();
    h.command(Command::Shutdown);
    let unsub = h.next_request();
    assert_eq!(unsub.method, Method::Subscribe);
    assert_eq!(header(&unsub, "Expires").as_deref(), Some("0"));
    // inside the dialog: To carries the notifier's tag
    assert!(header(&unsub, "To").unwrap().contains("tag="));
    let unreg = h.next_request();
    assert_eq!(unreg.method, Method::Register);
    assert_eq!(header(&unreg, "Expires").as_deref(), Some("0"));
    assert!(header(&unreg, "Contact").unwrap().contains("expires=0"));
    h.reply(&unsub, 200, vec![("Expires", "0".into())]);
    assert!(h.take_events().is_empty());
    h.reply(&unreg, 200, vec![]);
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::Unregistered, ClientEvent::Stopped]
    );
    assert!(h.ua.is_stopped());
    // nothing more is sent
    h.command(Command::SendMessage {
        to: BOB.into(),
        text: "late".into(),
        id: None,
    });
    assert!(h.no_request());
}

#[test]
fn shutdown_stops_after_grace_without_answer() {
    let mut h = Harness::new(config());
    h.registered();
    h.command(Command::Shutdown);
    h.advance(Duration::from_secs(4));
    assert!(h.take_events().contains(&ClientEvent::Stopped));
}

fn reginfo(version: u32, state: &str, contacts: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" xmlns:gr="urn:ietf:params:xml:ns:gruuinfo" version="{version}" state="{state}">
<registration aor="sip:alice@isc.local" id="a1" state="active">{contacts}</registration></reginfo>"#
    )
}

fn reg_contact(id: &str, inst: &str, name: &str, state: &str, event: &str) -> String {
    format!(
        r#"<contact id="{id}" state="{state}" event="{event}"><uri>sip:alice@127.0.0.1:{id}</uri><display-name>{name}</display-name><unknown-param name="+sip.instance">"&lt;{inst}&gt;"</unknown-param><gr:pub-gruu uri="sip:alice@isc.local;gr={inst}"/></contact>"#
    )
}

fn notify(h: &mut Harness, sub: &rsip::Request, to_tag: &str, cseq: u32, state: &str, body: &str) {
    let from_tag = isc::proto::sip::build::from_tag(&sub.headers).unwrap();
    let cid = call_id(&sub.headers).unwrap();
    let head = format!(
        "NOTIFY sip:alice@{LOCAL};transport=tcp SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKn{cseq}
Max-Forwards: 70
From: <sip:alice@isc.local>;tag={to_tag}
To: <sip:alice@isc.local>;tag={from_tag}
Call-ID: {cid}
CSeq: {cseq} NOTIFY
Contact: <sip:reg@127.0.0.1:5060;transport=tcp>
Event: reg
Subscription-State: {state}
Content-Type: application/reginfo+xml"
    );
    h.deliver_bytes(raw_request(&head, body));
}

#[test]
fn reg_notify_full_and_partial_give_the_devices() {
    let mut h = Harness::new(config());
    h.start();
    let reg = h.next_request();
    h.reply(
        &reg,
        200,
        vec![(
            "Contact",
            gruu_contact().replace("expires=600", "expires=3600"),
        )],
    );
    h.take_events();
    let sub = h.next_request();
    // RFC 6665 §4.1.2.4: the NOTIFY may come before the 200
    let me = reg_contact("1", INSTANCE, "tv", "active", "registered");
    let phone = reg_contact("2", "urn:uuid:ph", "phone", "active", "registered");
    notify(
        &mut h,
        &sub,
        "n1",
        1,
        "active;expires=3600",
        &reginfo(0, "full", &format!("{me}{phone}")),
    );
    assert_eq!(h.next_response().status_code.code(), 200);
    let ev = h.take_events();
    let [ClientEvent::DevicesChanged { devices }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(devices.len(), 2);
    assert!(devices[0].is_self);
    assert_eq!(devices[1].name.as_deref(), Some("phone"));
    assert_eq!(devices[1].instance.as_deref(), Some("urn:uuid:ph"));
    assert_eq!(
        devices[1].gruu.as_deref(),
        Some("sip:alice@isc.local;gr=urn:uuid:ph")
    );
    h.reply(&sub, 200, vec![("Expires", "3600".into())]);

    // the phone unregisters: a partial document
    let gone = reg_contact("2", "urn:uuid:ph", "phone", "terminated", "unregistered");
    notify(
        &mut h,
        &sub,
        "n1",
        2,
        "active;expires=3500",
        &reginfo(1, "partial", &gone),
    );
    assert_eq!(h.next_response().status_code.code(), 200);
    let ev = h.take_events();
    let [ClientEvent::DevicesChanged { devices }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(devices.len(), 1);
    assert_eq!(h.ua.devices().len(), 1);

    // not our subscription: 481
    let mut other = sub.clone();
    other.headers.remove_named("Call-ID");
    other
        .headers
        .push(isc::proto::sip::headers::make_header("Call-ID", "nope"));
    notify(&mut h, &other, "n9", 1, "active", &reginfo(0, "full", ""));
    assert_eq!(h.next_response().status_code.code(), 481);

    // the refresh goes inside the dialog, to the notifier's Contact
    h.advance(Duration::from_secs(1750));
    let refresh = h.next_request();
    assert_eq!(refresh.method, Method::Subscribe);
    assert_eq!(call_id(&refresh.headers), call_id(&sub.headers));
    assert!(header(&refresh, "To").unwrap().contains("tag=n1"));
    assert!(
        refresh
            .uri
            .to_string()
            .eq_ignore_ascii_case("sip:reg@127.0.0.1:5060;transport=tcp")
    );
}

#[test]
fn message_answers_407_and_reports_delivery() {
    let mut h = Harness::new(config());
    let mut ds = digest_server(&h);
    h.registered();
    h.command(Command::SendMessage {
        to: BOB.into(),
        text: "hi".into(),
        id: Some("x1".into()),
    });
    let m1 = h.next_request();
    assert_eq!(m1.method, Method::Message);
    assert_eq!(m1.uri.to_string(), BOB);
    assert_eq!(m1.body, b"hi");
    assert!(
        header(&m1, "Content-Type")
            .unwrap()
            .starts_with("text/plain")
    );
    h.reply_headers(
        &m1,
        407,
        ds.challenge_headers(h.now, AuthKind::Proxy, &[2; 16], false),
    );
    let m2 = h.next_request();
    assert_eq!(call_id(&m2.headers), call_id(&m1.headers));
    assert_eq!(cseq(&m2.headers), Some((2, "MESSAGE".into())));
    assert!(matches!(
        ds.verify_request(h.now, &m2, AuthKind::Proxy, password),
        DigestOutcome::Authenticated { .. }
    ));
    h.reply(&m2, 202, vec![]);
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::MessageDelivered {
            id: "x1".into(),
            to: BOB.into(),
            status: 202
        }]
    );

    // the next one carries Proxy-Authorization up front; a refusal with a Warning
    h.command(Command::SendMessage {
        to: BOB.into(),
        text: "again".into(),
        id: None,
    });
    let m3 = h.next_request();
    assert!(header(&m3, "Proxy-Authorization").is_some());
    h.reply(
        &m3,
        480,
        vec![("Warning", "399 isc.local \"No device registered\"".into())],
    );
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::MessageFailed {
            id: "m1".into(),
            to: BOB.into(),
            status: Some(480),
            reason: "Temporarily Unavailable".into(),
            warning: Some("399 No device registered".into()),
        }]
    );
}

#[test]
fn message_to_a_gruu_and_timeout() {
    let mut h = Harness::new(config());
    h.registered();
    let gruu = "sip:bob@isc.local;gr=urn:uuid:b1";
    h.command(Command::SendMessage {
        to: gruu.into(),
        text: "hi".into(),
        id: None,
    });
    let m = h.next_request();
    assert_eq!(m.uri.to_string(), gruu);
    h.advance(Duration::from_secs(32));
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [ClientEvent::MessageFailed { status: None, .. }]),
        "{ev:?}"
    );
    // a timeout towards the server makes the UA re-register at once
    let r = h.next_request();
    assert_eq!(r.method, Method::Register);
}

fn incoming_message(h: &mut Harness, n: u32, ctype: &str, body: &str, extra: &str) {
    let head = format!(
        "MESSAGE sip:alice@{LOCAL};transport=tcp SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKm{n}
Max-Forwards: 69
From: <sip:bob@isc.local>;tag=b{n}
To: <sip:alice@isc.local>
Call-ID: bobmsg{n}
CSeq: 1 MESSAGE
Content-Type: {ctype}{extra}"
    );
    h.deliver_bytes(raw_request(&head, body));
}

#[test]
fn receives_a_message_with_asserted_identity() {
    let mut h = Harness::new(config());
    h.registered();
    incoming_message(
        &mut h,
        1,
        "text/plain",
        "hello",
        "\nP-Asserted-Identity: <sip:bob@isc.local>",
    );
    let r = h.next_response();
    assert_eq!(r.status_code.code(), 200);
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::MessageReceived {
            from: BOB.into(),
            to: "sip:alice@isc.local".into(),
            content_type: Some("text/plain".into()),
            body: b"hello".to_vec(),
            asserted_identity: Some(BOB.into()),
            call_id: Some("bobmsg1".into()),
        }]
    );
}

#[test]
fn options_get_200_with_capabilities() {
    let mut h = Harness::new(config());
    h.registered();
    let head = format!(
        "OPTIONS sip:alice@{LOCAL} SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKo1
Max-Forwards: 70
From: <sip:bob@isc.local>;tag=o1
To: <sip:alice@isc.local>
Call-ID: opt1
CSeq: 1 OPTIONS"
    );
    h.deliver_bytes(raw_request(&head, ""));
    let r = h.next_response();
    assert_eq!(r.status_code.code(), 200);
    assert!(resp_header(&r, "Allow").unwrap().contains("MESSAGE"));
    assert!(
        resp_header(&r, "Accept")
            .unwrap()
            .contains("application/im-iscomposing+xml")
    );
    assert_eq!(resp_header(&r, "Supported").as_deref(), Some("gruu"));
}

fn composing_state(req: &rsip::Request) -> IsComposing {
    assert_eq!(
        header(req, "Content-Type").as_deref(),
        Some("application/im-iscomposing+xml")
    );
    IsComposing::parse(&req.body).unwrap()
}

#[test]
fn composing_active_refresh_idle() {
    let mut h = Harness::new(config());
    h.registered();
    h.command(Command::Typing { to: BOB.into() });
    let a = h.next_request();
    let doc = composing_state(&a);
    assert_eq!(doc.state, ComposingState::Active);
    assert_eq!(doc.refresh, Some(60));
    h.reply(&a, 200, vec![]);
    // typing on every 10 s: one refresh before the 60 s run out
    for _ in 0..6 {
        h.advance(Duration::from_secs(10));
        h.command(Command::Typing { to: BOB.into() });
    }
    let refresh = h.next_request();
    assert_eq!(composing_state(&refresh).state, ComposingState::Active);
    h.reply(&refresh, 200, vec![]);
    assert!(h.no_request());
    // 15 s without typing: idle (RFC 3994 §3.2)
    h.advance(Duration::from_secs(14));
    assert!(h.no_request());
    h.advance(Duration::from_secs(1));
    let idle = h.next_request();
    assert_eq!(composing_state(&idle).state, ComposingState::Idle);
    h.reply(&idle, 200, vec![]);

    // sending the message ends composing without an idle
    h.command(Command::Typing { to: BOB.into() });
    let a2 = h.next_request();
    h.reply(&a2, 200, vec![]);
    h.command(Command::SendMessage {
        to: BOB.into(),
        text: "done".into(),
        id: None,
    });
    let m = h.next_request();
    assert_eq!(m.body, b"done");
    h.reply(&m, 200, vec![]);
    h.advance(Duration::from_secs(120));
    assert!(h.no_request());
}

#[test]
fn composing_415_is_remembered() {
    let mut h = Harness::new(config());
    h.registered();
    h.command(Command::Typing { to: BOB.into() });
    let a = h.next_request();
    h.reply(&a, 415, vec![("Accept", "text/plain".into())]);
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::ComposingUnsupported { to: BOB.into() }]
    );
    h.command(Command::Typing { to: BOB.into() });
    h.advance(Duration::from_secs(30));
    assert!(h.no_request());
    // messages still go
    h.command(Command::SendMessage {
        to: BOB.into(),
        text: "hi".into(),
        id: None,
    });
    assert_eq!(h.next_request().method, Method::Message);
}

#[test]
fn receiver_side_composing_expires_or_ends_with_the_message() {
    let mut h = Harness::new(config());
    h.registered();
    let active = IsComposing::active(Some(60)).to_xml();
    incoming_message(&mut h, 1, "application/im-iscomposing+xml", &active, "");
    assert_eq!(h.next_response().status_code.code(), 200);
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::ComposingChanged {
            from: BOB.into(),
            active: true
        }]
    );
    // no refresh within 60 s (RFC 3994 §4)
    h.advance(Duration::from_secs(59));
    assert!(h.take_events().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::ComposingChanged {
            from: BOB.into(),
            active: false
        }]
    );

    incoming_message(&mut h, 2, "application/im-iscomposing+xml", &active, "");
    h.next_response();
    incoming_message(&mut h, 3, "text/plain", "typed it", "");
    h.next_response();
    let ev = h.take_events();
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(
        ev[1],
        ClientEvent::ComposingChanged {
            from: BOB.into(),
            active: false
        }
    );
    assert!(matches!(ev[2], ClientEvent::MessageReceived { .. }));

    // a malformed document gets 400
    incoming_message(
        &mut h,
        4,
        "application/im-iscomposing+xml",
        "<isComposing/>",
        "",
    );
    assert_eq!(h.next_response().status_code.code(), 400);
}

#[test]
fn two_instances_of_one_user_are_two_devices() {
    let mut c2 = config();
    c2.instance_id = "urn:uuid:other".into();
    c2.device = "phone".into();
    c2.local = "127.0.0.1:40002".parse().unwrap();
    let mut a = Harness::new(config());
    let mut b = Harness::new(c2);
    a.start();
    b.start();
    let (ra, rb) = (a.next_request(), b.next_request());
    let ca: Contact = ra.headers.typed().unwrap().unwrap();
    let cb: Contact = rb.headers.typed().unwrap().unwrap();
    assert_ne!(ca, cb);
    assert!(header(&rb, "Contact").unwrap().contains("40002"));
    assert!(
        header(&rb, "Contact")
            .unwrap()
            .contains("+sip.description=\"phone\"")
    );
}

#[test]
fn a_refused_connection_fails_the_register_at_once() {
    let mut h = Harness::new(config());
    h.start();
    let r = h.next_request();
    let bytes = isc::proto::sip::message::to_bytes(&rsip::SipMessage::Request(r));
    h.ua.handle_send_error(h.now, &bytes, "Connection refused (os error 111)");
    h.pump();
    let ev = h.take_events();
    assert!(
        matches!(
            &ev[..],
            [ClientEvent::RegistrationFailed {
                status: None,
                retry_in: Some(_),
                reason,
            }] if reason == "cannot reach the server: Connection refused (os error 111)"
        ),
        "{ev:?}"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(h.next_request().method, Method::Register);
}

/// STYLE.md habit 11, for the client's sans-IO parts.
#[test]
fn the_user_agent_does_no_io() {
    for file in [
        "user_agent",
        "registration",
        "reg_watch",
        "composing",
        "outgoing",
        "ids",
    ] {
        let path = format!("{}/src/client/{file}.rs", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        // unit tests may take a real clock
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for banned in [
            "tokio",
            "Instant::now",
            "thread_rng",
            "std::net::UdpSocket",
            "std::fs",
        ] {
            assert!(!text.contains(banned), "{path} mentions {banned}");
        }
    }
}

mod fuzz {
    use super::*;
    use isc::client::headless::parse_command_line;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_from_the_network_are_survived(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut h = Harness::new(config());
            h.start();
            h.deliver_bytes(bytes);
            h.advance(Duration::from_secs(40));
        }

        #[test]
        fn mangled_requests_are_survived(cut in 0usize..400, flip in any::<u8>(), at in 0usize..400) {
            let mut h = Harness::new(config());
            h.registered();
            let mut raw = raw_request(
                &format!("MESSAGE sip:alice@{LOCAL} SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKf\nMax-Forwards: 70\nFrom: <sip:bob@isc.local>;tag=f\nTo: <sip:alice@isc.local>\nCall-ID: f1\nCSeq: 1 MESSAGE\nContent-Type: application/im-iscomposing+xml"),
                "<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>active</state><refresh>60</refresh></isComposing>",
            );
            if let Some(b) = raw.get_mut(at) {
                *b ^= flip;
            }
            raw.truncate(raw.len().saturating_sub(cut % 40));
            h.deliver_bytes(raw);
            h.advance(Duration::from_secs(200));
        }

        #[test]
        fn any_command_line_is_read_without_panic(line in ".{0,200}") {
            let _ = parse_command_line(&line, "isc.local");
        }
    }
}

#[test]
fn shutdown_while_registering_ignores_the_late_200() {
    let mut h = Harness::new(config());
    h.start();
    let reg = h.next_request();
    h.command(Command::Shutdown);
    let unreg = h.next_request();
    assert_eq!(header(&unreg, "Expires").as_deref(), Some("0"));
    h.reply(&reg, 200, vec![("Contact", gruu_contact())]);
    assert!(h.take_events().is_empty());
    assert!(h.no_request(), "no SUBSCRIBE while shutting down");
    h.reply(&unreg, 200, vec![]);
    assert_eq!(
        h.take_events(),
        vec![ClientEvent::Unregistered, ClientEvent::Stopped]
    );
}

#[test]
fn over_udp_retransmissions_are_sent_and_absorbed() {
    let mut cfg = config();
    cfg.transport = isc::proto::sip::transaction::Transport::Udp;
    let mut h = Harness::new(cfg);
    h.registered();
    h.command(Command::SendMessage {
        to: BOB.into(),
        text: "hi".into(),
        id: None,
    });
    let m = h.next_request();
    // Timer E: the same request again after T1
    h.advance(Duration::from_millis(500));
    let again = h.next_request();
    assert_eq!(
        isc::proto::sip::build::top_via_branch(&again.headers),
        isc::proto::sip::build::top_via_branch(&m.headers)
    );
    h.reply(&m, 200, vec![]);
    h.reply(&m, 200, vec![]);
    let ev = h.take_events();
    assert_eq!(ev.len(), 1, "{ev:?}");

    // a MESSAGE received twice is reported once and answered twice
    incoming_message(&mut h, 7, "text/plain", "once", "");
    incoming_message(&mut h, 7, "text/plain", "once", "");
    assert_eq!(h.next_response().status_code.code(), 200);
    assert_eq!(h.next_response().status_code.code(), 200);
    let ev = h.take_events();
    assert_eq!(ev.len(), 1, "{ev:?}");
}

#[test]
fn a_new_digest_opaque_means_a_restarted_server() {
    let mut h = Harness::new(config());
    h.registered();
    let ds1 = DigestServer::new(DigestServerConfig::new("isc.local"), [1; 32], h.t0);
    h.command(Command::SendMessage {
        to: BOB.into(),
        text: "1".into(),
        id: None,
    });
    let m = h.next_request();
    h.reply_headers(
        &m,
        407,
        ds1.challenge_headers(h.now, AuthKind::Proxy, &[1; 16], false),
    );
    let m = h.next_request();
    h.reply(&m, 200, vec![]);
    h.advance(Duration::from_secs(5));
    assert!(h.no_request());
    // the server restarts with a new key: our nonce is unknown, the opaque new
    let ds2 = DigestServer::new(DigestServerConfig::new("isc.local"), [2; 32], h.t0);
    h.command(Command::SendMessage {
        to: BOB.into(),
        text: "2".into(),
        id: None,
    });
    let m = h.next_request();
    h.reply_headers(
        &m,
        407,
        ds2.challenge_headers(h.now, AuthKind::Proxy, &[3; 16], true),
    );
    let again = h.take_request(Method::Message);
    h.reply(&again, 200, vec![]);
    h.advance(Duration::from_millis(1));
    let reg = h.take_request(Method::Register);
    h.reply(&reg, 200, vec![("Contact", gruu_contact())]);
    // and a new reg-event subscription (a new dialog)
    let sub = h.take_request(Method::Subscribe);
    assert!(!header(&sub, "To").unwrap().contains("tag="));
}

#[test]
fn a_481_to_the_subscription_refresh_reregisters() {
    let mut h = Harness::new(config());
    h.registered();
    h.advance(Duration::from_secs(1800));
    // the REGISTER refresh is due at the same time: answer it first
    let reg = h.take_request(Method::Register);
    let refresh = h.take_request(Method::Subscribe);
    h.reply(&reg, 200, vec![("Contact", gruu_contact())]);
    h.reply(&refresh, 481, vec![]);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.next_request().method, Method::Register);
}
