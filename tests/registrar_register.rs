//! The registrar over REGISTER requests, sans-IO with fixed instants.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use isc::server::location_service::{Source, canonical_aor, public_gruu};
use isc::server::registrar::{
    BindingEvent, ContactEvent, ContactState, RegEventState, RegInfoKind, RegisterError, Registrar,
    RegistrarConfig, RegistrationState,
};
use rsip::headers::UntypedHeader;

const TV: &str = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
const PHONE: &str = "urn:uuid:0a2c1e4e-5c57-4d1b-9c3a-6f1f0c2d7b11";
const ALICE: &str = "sip:alice@isc.local";

fn src(port: u16) -> Source {
    Source {
        addr: SocketAddr::from(([192, 0, 2, 10], port)),
        transport: rsip::Transport::Tcp,
    }
}

/// A REGISTER for `user`, one `Contact:` line per entry of `contacts`,
/// plus `extra` header lines.
fn register(
    user: &str,
    call_id: &str,
    cseq: u32,
    contacts: &[&str],
    extra: &[&str],
) -> rsip::Request {
    let mut text = format!(
        "REGISTER sip:isc.local SIP/2.0\r\n\
         Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK{call_id}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@isc.local>;tag=456248\r\n\
         To: <sip:{user}@isc.local>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n"
    );
    for c in contacts {
        text.push_str(&format!("Contact: {c}\r\n"));
    }
    for e in extra {
        text.push_str(e);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    rsip::Request::try_from(text.as_str()).expect("test REGISTER parses")
}

fn tv_contact(expires: Option<u32>) -> String {
    let mut c = format!(
        "<sip:alice@192.0.2.10:5070;transport=tcp>;+sip.instance=\"<{TV}>\";reg-id=1;+sip.description=\"Living room TV\""
    );
    if let Some(e) = expires {
        c.push_str(&format!(";expires={e}"));
    }
    c
}

fn phone_contact(expires: Option<u32>) -> String {
    let mut c = format!("<sip:alice@192.0.2.11:5080;transport=tcp>;+sip.instance=\"<{PHONE}>\"");
    if let Some(e) = expires {
        c.push_str(&format!(";expires={e}"));
    }
    c
}

fn contacts_of(resp: &rsip::Response) -> Vec<String> {
    resp.headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Contact(c) => Some(c.value().to_owned()),
            _ => None,
        })
        .collect()
}

fn header(resp: &rsip::Response, name: &str) -> Option<String> {
    resp.headers.iter().find_map(|h| {
        let s = h.to_string();
        let (n, v) = s.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then(|| v.to_owned())
    })
}

fn registrar() -> Registrar {
    let mut config = RegistrarConfig::new("isc.local");
    config.local_hosts = vec!["127.0.0.1".into()];
    Registrar::new(config)
}

#[test]
fn two_devices_for_one_aor() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let tv = tv_contact(None);
    let out = reg.handle_register(
        t0,
        &register("alice", "tv-1", 1, &[&tv], &["User-Agent: isc-tv/1.0"]),
        src(5070),
        Some("alice"),
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    assert_eq!(out.changes.len(), 1);
    assert_eq!(out.changes[0].event, BindingEvent::Registered);
    assert_eq!(out.changes[0].aor(), ALICE);
    assert_eq!(out.changes[0].instance(), Some(TV));
    assert_eq!(out.changes[0].device_name(), Some("Living room TV"));

    let phone = phone_contact(Some(600));
    let out = reg.handle_register(
        t0 + Duration::from_secs(1),
        &register(
            "alice",
            "phone-1",
            1,
            &[&phone],
            &["User-Agent: isc-phone/2.1"],
        ),
        src(5080),
        Some("alice"),
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    let listed = contacts_of(&out.response);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .any(|c| c.contains("192.0.2.10:5070") && c.contains(";expires=3599"))
    );
    assert!(
        listed
            .iter()
            .any(|c| c.contains("192.0.2.11:5080") && c.contains(";expires=600"))
    );

    let now = t0 + Duration::from_secs(2);
    let targets = reg.lookup(now, "sip:alice@isc.local");
    assert_eq!(targets.len(), 2);
    let phone_b = targets
        .iter()
        .find(|b| b.instance.as_deref() == Some(PHONE))
        .unwrap();
    // device name falls back to the User-Agent
    assert_eq!(phone_b.device_name.as_deref(), Some("isc-phone/2.1"));
    assert_eq!(phone_b.source, src(5080));
    assert_eq!(phone_b.call_id, "phone-1");
    let tv_b = targets
        .iter()
        .find(|b| b.instance.as_deref() == Some(TV))
        .unwrap();
    assert_eq!(tv_b.reg_id, Some(1));
    assert_eq!(tv_b.gruu.as_deref(), Some(public_gruu(ALICE, TV).as_str()));
    // the To tag is added
    assert!(header(&out.response, "To").unwrap().contains(";tag="));
}

#[test]
fn refresh_extends_and_reports_refreshed() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let tv = tv_contact(Some(120));
    reg.handle_register(
        t0,
        &register("alice", "tv-1", 1, &[&tv], &[]),
        src(5070),
        Some("alice"),
    );
    let t1 = t0 + Duration::from_secs(100);
    let out = reg.handle_register(
        t1,
        &register("alice", "tv-1", 2, &[&tv], &[]),
        src(5070),
        Some("alice"),
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    assert_eq!(out.changes.len(), 1);
    assert_eq!(out.changes[0].event, BindingEvent::Refreshed);
    assert_eq!(out.changes[0].binding.registered_at, t0);
    assert_eq!(reg.location().bindings(ALICE).len(), 1);
    assert_eq!(
        reg.location().bindings(ALICE)[0].expires_at,
        t1 + Duration::from_secs(120)
    );
    assert_eq!(reg.location().bindings(ALICE)[0].cseq, 2);
}

#[test]
fn bindings_expire_over_time() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let tv = tv_contact(Some(300));
    let phone = phone_contact(Some(600));
    reg.handle_register(
        t0,
        &register("alice", "c1", 1, &[&tv, &phone], &[]),
        src(5070),
        None,
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(300)));
    assert!(reg.expire(t0 + Duration::from_secs(299)).is_empty());
    let gone = reg.expire(t0 + Duration::from_secs(300));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].event, BindingEvent::Expired);
    assert_eq!(gone[0].instance(), Some(TV));
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(600)));
    assert_eq!(reg.lookup(t0 + Duration::from_secs(301), ALICE).len(), 1);
    // not yet swept, but already invisible to lookups
    assert!(reg.lookup(t0 + Duration::from_secs(600), ALICE).is_empty());
    assert_eq!(reg.expire(t0 + Duration::from_secs(601)).len(), 1);
    assert!(reg.location().is_empty());
}

#[test]
fn unregister_one_contact() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let (tv, phone) = (tv_contact(None), phone_contact(None));
    reg.handle_register(
        t0,
        &register("alice", "tv-1", 1, &[&tv], &[]),
        src(5070),
        Some("alice"),
    );
    reg.handle_register(
        t0,
        &register("alice", "ph-1", 1, &[&phone], &[]),
        src(5080),
        Some("alice"),
    );
    let gone = tv_contact(Some(0));
    let out = reg.handle_register(
        t0,
        &register("alice", "tv-1", 2, &[&gone], &[]),
        src(5070),
        Some("alice"),
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    assert_eq!(out.changes.len(), 1);
    assert_eq!(out.changes[0].event, BindingEvent::Unregistered);
    assert_eq!(out.changes[0].instance(), Some(TV));
    let listed = contacts_of(&out.response);
    assert_eq!(listed.len(), 1);
    assert!(listed[0].contains(PHONE));
}

#[test]
fn contact_star_removes_all() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let (tv, phone) = (tv_contact(None), phone_contact(None));
    reg.handle_register(
        t0,
        &register("alice", "c1", 1, &[&tv, &phone], &[]),
        src(5070),
        None,
    );
    // `*` with a non-zero Expires, or with other contacts: 400
    let bad = reg.handle_register(
        t0,
        &register("alice", "c1", 2, &["*"], &["Expires: 3600"]),
        src(5070),
        None,
    );
    assert_eq!(bad.response.status_code, rsip::StatusCode::BadRequest);
    let bad = reg.handle_register(
        t0,
        &register("alice", "c1", 2, &["*", &tv], &["Expires: 0"]),
        src(5070),
        None,
    );
    assert_eq!(bad.response.status_code, rsip::StatusCode::BadRequest);
    let bad = reg.handle_register(
        t0,
        &register("alice", "c1", 2, &["*"], &[]),
        src(5070),
        None,
    );
    assert_eq!(bad.response.status_code, rsip::StatusCode::BadRequest);
    assert_eq!(reg.location().bindings(ALICE).len(), 2);

    let out = reg.handle_register(
        t0,
        &register("alice", "c1", 3, &["*"], &["Expires: 0"]),
        src(5070),
        None,
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    assert_eq!(out.changes.len(), 2);
    assert!(
        out.changes
            .iter()
            .all(|c| c.event == BindingEvent::Unregistered)
    );
    assert!(contacts_of(&out.response).is_empty());
    assert!(reg.location().is_empty());
}

#[test]
fn another_users_aor_is_forbidden() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let tv = tv_contact(None);
    let out = reg.handle_register(
        t0,
        &register("alice", "c1", 1, &[&tv], &[]),
        src(5070),
        Some("bob"),
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::Forbidden);
    assert!(out.changes.is_empty());
    assert!(matches!(out.error, Some(RegisterError::NotOwnAor { .. })));
    assert!(reg.location().is_empty());
    // a domain we do not serve
    let mut req = register("alice", "c1", 1, &[&tv], &[]);
    req.headers.retain(|h| !matches!(h, rsip::Header::To(_)));
    req.headers.push(rsip::Header::To(rsip::headers::To::new(
        "<sip:alice@example.com>",
    )));
    let out = reg.handle_register(t0, &req, src(5070), None);
    assert_eq!(out.response.status_code, rsip::StatusCode::NotFound);
}

#[test]
fn too_brief_gets_423_with_min_expires() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let tv = tv_contact(Some(30));
    let out = reg.handle_register(
        t0,
        &register("alice", "c1", 1, &[&tv], &[]),
        src(5070),
        None,
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::IntervalTooBrief);
    assert_eq!(header(&out.response, "Min-Expires").as_deref(), Some("60"));
    assert_eq!(
        out.error,
        Some(RegisterError::IntervalTooBrief { asked: 30 })
    );
    assert!(reg.location().is_empty());
    // via the Expires header too
    let tv = tv_contact(None);
    let out = reg.handle_register(
        t0,
        &register("alice", "c1", 2, &[&tv], &["Expires: 59"]),
        src(5070),
        None,
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::IntervalTooBrief);
    // too long is cut to the maximum
    let out = reg.handle_register(
        t0,
        &register("alice", "c1", 3, &[&tv], &["Expires: 999999"]),
        src(5070),
        None,
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    assert!(contacts_of(&out.response)[0].contains(";expires=7200"));
}

#[test]
fn gruu_in_200_and_lookup_by_gruu() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let (tv, phone) = (tv_contact(None), phone_contact(None));
    let out = reg.handle_register(
        t0,
        &register(
            "alice",
            "c1",
            1,
            &[&tv, &phone],
            &["Supported: gruu, outbound"],
        ),
        src(5070),
        None,
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    let listed = contacts_of(&out.response);
    let tv_gruu = public_gruu(ALICE, TV);
    assert_eq!(tv_gruu, format!("sip:alice@isc.local;gr={TV}"));
    assert!(
        listed
            .iter()
            .any(|c| c.contains(&format!(";pub-gruu=\"{tv_gruu}\""))),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|c| c.contains(&format!("pub-gruu=\"sip:alice@isc.local;gr={PHONE}\"")))
    );
    // reg-id with Supported: outbound → Require: outbound (RFC 5626 §6)
    assert_eq!(
        header(&out.response, "Require").as_deref(),
        Some("outbound")
    );

    let found = reg.lookup(t0, &tv_gruu);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].instance.as_deref(), Some(TV));
    assert_eq!(found[0].contact, "sip:alice@192.0.2.10:5070;transport=tcp");
    let by_loc = reg
        .location()
        .lookup_gruu(t0, &format!("<{tv_gruu}>"))
        .unwrap();
    assert_eq!(by_loc.instance.as_deref(), Some(TV));
    assert!(
        reg.lookup(
            t0,
            "sip:alice@isc.local;gr=urn:uuid:00000000-0000-0000-0000-000000000000"
        )
        .is_empty()
    );

    // The GRUU is stable across re-registrations from a new address.
    let moved = format!("<sip:alice@198.51.100.7:6000>;+sip.instance=\"<{TV}>\";reg-id=1");
    let out = reg.handle_register(
        t0,
        &register("alice", "c2", 1, &[&moved], &[]),
        src(6000),
        None,
    );
    assert_eq!(out.changes[0].event, BindingEvent::Refreshed);
    assert_eq!(out.changes[0].gruu(), Some(tv_gruu.as_str()));
    assert_eq!(
        reg.lookup(t0, &tv_gruu)[0].contact,
        "sip:alice@198.51.100.7:6000"
    );
    // Without Supported: gruu, no pub-gruu
    assert!(
        contacts_of(&out.response)
            .iter()
            .all(|c| !c.contains("pub-gruu"))
    );
}

#[test]
fn call_id_and_cseq_ordering() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let tv = tv_contact(Some(300));
    reg.handle_register(
        t0,
        &register("alice", "c1", 5, &[&tv], &[]),
        src(5070),
        None,
    );
    // same Call-ID, lower or equal CSeq: the request fails, nothing changes
    for cseq in [4, 5] {
        let stale = tv_contact(Some(0));
        let out = reg.handle_register(
            t0,
            &register("alice", "c1", cseq, &[&stale], &[]),
            src(5070),
            None,
        );
        assert_eq!(
            out.response.status_code,
            rsip::StatusCode::ServerInternalError
        );
        assert_eq!(out.error, Some(RegisterError::OutOfOrder { cseq, last: 5 }));
        assert!(out.changes.is_empty());
        assert_eq!(reg.location().bindings(ALICE).len(), 1);
    }
    // another Call-ID may have any CSeq
    let other = tv_contact(Some(600));
    let out = reg.handle_register(
        t0,
        &register("alice", "c9", 1, &[&other], &[]),
        src(5070),
        None,
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    assert_eq!(reg.location().bindings(ALICE)[0].call_id, "c9");
}

#[test]
fn unknown_require_gets_420() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let tv = tv_contact(None);
    let out = reg.handle_register(
        t0,
        &register("alice", "c1", 1, &[&tv], &["Require: gruu, foo"]),
        src(5070),
        None,
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::BadExtension);
    assert_eq!(header(&out.response, "Unsupported").as_deref(), Some("foo"));
}

#[test]
fn cap_on_devices_per_aor() {
    let t0 = Instant::now();
    let mut config = RegistrarConfig::new("isc.local");
    config.max_bindings_per_aor = Some(2);
    let mut reg = Registrar::new(config);
    let (tv, phone) = (tv_contact(None), phone_contact(None));
    reg.handle_register(
        t0,
        &register("alice", "c1", 1, &[&tv, &phone], &[]),
        src(5070),
        None,
    );
    let third = "<sip:alice@192.0.2.12:5090>;+sip.instance=\"<urn:uuid:3>\"";
    let out = reg.handle_register(
        t0,
        &register("alice", "c3", 1, &[third], &[]),
        src(5090),
        None,
    );
    assert_eq!(out.response.status_code, rsip::StatusCode::Forbidden);
    assert_eq!(reg.location().bindings(ALICE).len(), 2);
    // unlimited by default: ten devices
    let mut reg = registrar();
    for i in 0..10 {
        let c = format!("<sip:alice@192.0.2.{i}:5060>;+sip.instance=\"<urn:uuid:{i}>\"");
        let out = reg.handle_register(
            t0,
            &register("alice", &format!("c{i}"), 1, &[&c], &[]),
            src(5060),
            None,
        );
        assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    }
    assert_eq!(reg.lookup(t0, ALICE).len(), 10);
}

#[test]
fn query_and_local_host_aor_and_path() {
    let t0 = Instant::now();
    let mut reg = registrar();
    // SIPp style: To carries the server's address, no instance
    let mut req = register(
        "alice",
        "c1",
        1,
        &["<sip:alice@192.0.2.10:5060>;q=0.7"],
        &["Path: <sip:edge.isc.local;lr>", "Supported: path"],
    );
    req.headers.retain(|h| !matches!(h, rsip::Header::To(_)));
    req.headers.push(rsip::Header::To(rsip::headers::To::new(
        "alice <sip:alice@127.0.0.1:5060>",
    )));
    let out = reg.handle_register(t0, &req, src(5060), None);
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    assert_eq!(out.changes[0].aor(), ALICE);
    assert_eq!(
        header(&out.response, "Path").as_deref(),
        Some("<sip:edge.isc.local;lr>")
    );
    let b = &reg.location().bindings(ALICE)[0];
    assert_eq!(b.q, Some(700));
    assert_eq!(b.path, vec!["<sip:edge.isc.local;lr>".to_owned()]);
    assert!(contacts_of(&out.response)[0].contains(";q=0.7"));
    // a REGISTER without Contact is a query: 200 with the bindings, no change
    let out = reg.handle_register(t0, &register("alice", "c1", 2, &[], &[]), src(5060), None);
    assert_eq!(out.response.status_code, rsip::StatusCode::OK);
    assert!(out.changes.is_empty());
    assert_eq!(contacts_of(&out.response).len(), 1);
    assert_eq!(
        canonical_aor("sip:alice@ISC.local:5060").as_deref(),
        Some(ALICE)
    );
}

#[test]
fn reg_event_state_follows_changes() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let mut state = RegEventState::new();
    let full = state.full(t0, ALICE, reg.location());
    assert_eq!(full.state, RegistrationState::Init);
    assert_eq!(full.version, 0);

    let (tv, phone) = (tv_contact(Some(300)), phone_contact(None));
    let out = reg.handle_register(
        t0,
        &register("alice", "c1", 1, &[&tv, &phone], &[]),
        src(5070),
        None,
    );
    let partial = state.apply(t0, &out.changes, reg.location());
    assert_eq!(partial.len(), 1);
    assert_eq!(partial[0].version, 1);
    assert_eq!(partial[0].kind, RegInfoKind::Partial);
    assert_eq!(partial[0].state, RegistrationState::Active);
    assert_eq!(partial[0].contacts.len(), 2);
    let c = partial[0]
        .contacts
        .iter()
        .find(|c| c.instance.as_deref() == Some(TV))
        .unwrap();
    assert_eq!(c.event, ContactEvent::Registered);
    assert_eq!(c.state, ContactState::Active);
    assert_eq!(c.expires, Some(300));
    assert_eq!(c.display_name.as_deref(), Some("Living room TV"));
    assert_eq!(c.pub_gruu.as_deref(), Some(public_gruu(ALICE, TV).as_str()));

    let gone = reg.expire(t0 + Duration::from_secs(300));
    let partial = state.apply(t0 + Duration::from_secs(300), &gone, reg.location());
    assert_eq!(partial[0].version, 2);
    assert_eq!(partial[0].contacts[0].event, ContactEvent::Expired);
    assert_eq!(partial[0].contacts[0].state, ContactState::Terminated);

    let full = state.full(t0 + Duration::from_secs(300), ALICE, reg.location());
    assert_eq!(full.kind, RegInfoKind::Full);
    assert_eq!(full.version, 2);
    assert_eq!(full.contacts.len(), 1);
    assert_eq!(full.contacts[0].instance.as_deref(), Some(PHONE));

    let out = reg.handle_register(
        t0 + Duration::from_secs(301),
        &register("alice", "c1", 2, &["*"], &["Expires: 0"]),
        src(5070),
        None,
    );
    let partial = state.apply(t0 + Duration::from_secs(301), &out.changes, reg.location());
    assert_eq!(partial[0].state, RegistrationState::Terminated);
    assert_eq!(partial[0].contacts[0].event, ContactEvent::Unregistered);
}

#[test]
fn gruu_of_an_instance_with_two_flows_picks_the_latest() {
    // RFC 5626: one instance, two flows (reg-id 1 and 2), one GRUU.
    let t0 = Instant::now();
    let mut reg = registrar();
    let flow1 = format!("<sip:alice@192.0.2.10:5070>;+sip.instance=\"<{TV}>\";reg-id=1");
    let flow2 = format!("<sip:alice@192.0.2.10:5071>;+sip.instance=\"<{TV}>\";reg-id=2");
    reg.handle_register(
        t0,
        &register("alice", "f1", 1, &[&flow1], &[]),
        src(5070),
        None,
    );
    let t1 = t0 + Duration::from_secs(5);
    reg.handle_register(
        t1,
        &register("alice", "f2", 1, &[&flow2], &[]),
        src(5071),
        None,
    );
    assert_eq!(reg.lookup(t1, ALICE).len(), 2);
    let gruu = public_gruu(ALICE, TV);
    assert_eq!(reg.lookup(t1, &gruu)[0].reg_id, Some(2));
    let t2 = t0 + Duration::from_secs(10);
    reg.handle_register(
        t2,
        &register("alice", "f1", 2, &[&flow1], &[]),
        src(5070),
        None,
    );
    let found = reg.lookup(t2, &gruu);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].reg_id, Some(1));
    assert_eq!(found[0].registered_at, t0);
    assert_eq!(found[0].refreshed_at, t2);
}
