//! The example documents of the RFCs, transcribed under tests/data/, parsed
//! with field assertions.

use isc::proto::bodies::conference_info::{
    ConferenceInfo, DisconnectionMethod, ElementState, EndpointStatus, JoiningMethod,
};
use isc::proto::bodies::cpim::{CpimAddress, CpimMessage};
use isc::proto::bodies::is_composing::{ComposingState, IsComposing};
use isc::proto::bodies::reginfo::{
    ContactEvent, ContactState, DocState, Reginfo, RegistrationState,
};
use isc::proto::bodies::resource_lists::{ListItem, ResourceLists};

/// The RFC prints CPIM with the line ends of the wire (CRLF); the files hold
/// LF, converted here.
fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

/// The CPIM body of a message whose outer MIME header block comes first.
fn after_outer_headers(wire: &[u8]) -> &[u8] {
    let at = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("outer header block");
    &wire[at + 4..]
}

#[test]
fn rfc4575_basic_example() {
    let c = ConferenceInfo::parse(include_bytes!("data/rfc4575/basic-full.xml")).unwrap();
    assert_eq!(c.entity, "sips:conf233@example.com");
    assert_eq!(c.state, ElementState::Full);
    assert_eq!(c.version, 1);
    let d = c.description.as_ref().unwrap();
    assert_eq!(d.subject.as_deref(), Some("Agenda: This month's goals"));
    assert_eq!(d.display_text, None);
    assert_eq!(c.users.len(), 2);

    let bob = &c.users[0];
    assert_eq!(bob.entity, "sip:bob@example.com");
    assert_eq!(bob.display_text.as_deref(), Some("Bob Hoskins"));
    assert!(!bob.yourown);
    let ep = &bob.endpoints[0];
    assert_eq!(ep.entity, "sip:bob@pc33.example.com");
    assert_eq!(ep.display_text.as_deref(), Some("Bob's Laptop"));
    assert_eq!(ep.status, Some(EndpointStatus::Disconnected));
    assert_eq!(ep.disconnection_method, Some(DisconnectionMethod::Departed));

    let alice = &c.users[1];
    assert_eq!(alice.display_text.as_deref(), Some("Alice"));
    let ep = &alice.endpoints[0];
    assert_eq!(ep.entity, "sip:4kfk4j392jsu@example.com;grid=433kj4j3u");
    assert_eq!(ep.status, Some(EndpointStatus::Connected));
    assert_eq!(ep.joining_method, Some(JoiningMethod::DialedOut));
    assert_eq!(
        ep.display_text, None,
        "media display-text is not the endpoint's"
    );

    // what we print reads back the same
    assert_eq!(ConferenceInfo::parse(&c.to_bytes()).unwrap(), c);
}

#[test]
fn rfc4575_partial_applied_to_full() {
    let mut state = ConferenceInfo::parse(include_bytes!("data/rfc4575/basic-full.xml")).unwrap();
    let p = ConferenceInfo::parse(include_bytes!("data/rfc4575/partial-after-basic.xml")).unwrap();
    assert_eq!(p.state, ElementState::Partial);
    assert_eq!(p.version, 2);
    state.apply(&p).unwrap();
    assert_eq!(state.version, 2);
    let entities: Vec<_> = state.users.iter().map(|u| u.entity.as_str()).collect();
    assert_eq!(entities, ["sip:alice@example.com", "sip:carol@example.com"]);
    let alice = &state.users[0];
    assert_eq!(alice.status(), Some(&EndpointStatus::OnHold));
    assert_eq!(
        alice.display_text.as_deref(),
        Some("Alice"),
        "kept from full state"
    );
    assert_eq!(
        alice.endpoints[0].joining_method,
        Some(JoiningMethod::DialedOut),
        "kept from full state"
    );
    assert_eq!(state.users[1].status(), Some(&EndpointStatus::Alerting));
    assert_eq!(
        state
            .description
            .as_ref()
            .and_then(|d| d.subject.as_deref()),
        Some("Agenda: This month's goals")
    );
    // the same partial again is stale
    assert!(state.apply(&p).is_err());
}

#[test]
fn rfc3994_examples() {
    let a = IsComposing::parse(include_bytes!("data/rfc3994/active.xml")).unwrap();
    assert_eq!(a.state, ComposingState::Active);
    assert_eq!(a.contenttype.as_deref(), Some("text/plain"));
    assert_eq!(a.refresh, Some(90));
    assert_eq!(a.lastactive, None);

    let i = IsComposing::parse(include_bytes!("data/rfc3994/idle.xml")).unwrap();
    assert_eq!(i.state, ComposingState::Idle);
    assert_eq!(i.lastactive.as_deref(), Some("2003-01-27T10:43:00Z"));
    assert_eq!(i.contenttype.as_deref(), Some("audio"));
    assert_eq!(i.refresh, None);
}

#[test]
fn rfc4826_example() {
    let r = ResourceLists::parse(include_bytes!("data/rfc4826/resource-lists.xml")).unwrap();
    assert_eq!(r.lists.len(), 1);
    let friends = &r.lists[0];
    assert_eq!(friends.name.as_deref(), Some("friends"));
    assert_eq!(friends.items.len(), 3);
    let ListItem::Entry(bill) = &friends.items[0] else {
        panic!("entry")
    };
    assert_eq!(bill.uri, "sip:bill@example.com");
    assert_eq!(bill.display_name.as_deref(), Some("Bill Doe"));
    let ListItem::EntryRef { reference, .. } = &friends.items[1] else {
        panic!("entry-ref")
    };
    assert!(reference.ends_with("entry%5b@uri=%22sip:petri@example.com%22%5d"));
    let ListItem::List(close) = &friends.items[2] else {
        panic!("list")
    };
    assert_eq!(close.name.as_deref(), Some("close-friends"));
    assert_eq!(close.display_name.as_deref(), Some("Close Friends"));
    let ListItem::External {
        anchor,
        display_name,
    } = &close.items[2]
    else {
        panic!("external")
    };
    assert!(anchor.starts_with("http://xcap.example.org/"));
    assert_eq!(display_name.as_deref(), Some("Marketing"));
    let uris: Vec<_> = r.entries().iter().map(|e| e.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:bill@example.com",
            "sip:joe@example.com",
            "sip:nancy@example.com"
        ]
    );
    assert_eq!(ResourceLists::parse(&r.to_bytes()).unwrap(), r);
}

#[test]
fn rfc3862_simple_example() {
    let wire = crlf(include_str!("data/rfc3862/simple.txt"));
    let m = CpimMessage::parse(after_outer_headers(&wire)).unwrap();
    assert_eq!(
        m.from(),
        Some(CpimAddress {
            display_name: Some("MR SANDERS".into()),
            uri: "im:piglet@100akerwood.com".into()
        })
    );
    assert_eq!(m.to()[0].display_name.as_deref(), Some("Depressed Donkey"));
    assert_eq!(m.to()[0].uri, "im:eeyore@100akerwood.com");
    assert_eq!(m.date_time(), Some("2000-12-13T13:40:00-08:00"));
    assert_eq!(
        m.subjects(),
        vec![(None, "the weather will be fine today".to_owned())]
    );
    assert_eq!(m.content_type(), Some("text/plain"));
    assert_eq!(m.body, b"Here is the text of my message.\r\n");
    assert_eq!(m.to_bytes(), after_outer_headers(&wire), "byte-exact print");
}

#[test]
fn rfc3862_full_example() {
    // The RFC marks each line with m:/s:/h:/e: (MIME header, separator,
    // message header, encapsulated object); strip the marks, join with CRLF.
    let text: String = include_str!("data/rfc3862/full-example.txt")
        .lines()
        .map(|l| l.get(3..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let wire = crlf(&text);
    let m = CpimMessage::parse(after_outer_headers(&wire)).unwrap();
    assert_eq!(m.from().unwrap().uri, "im:piglet@100akerwood.com");
    assert_eq!(m.to().len(), 1);
    assert_eq!(
        m.subjects(),
        vec![
            (None, "the weather will be fine today".to_owned()),
            (
                Some("fr".to_owned()),
                "beau temps prevu pour aujourd'hui".to_owned()
            ),
        ]
    );
    assert_eq!(
        m.ns(),
        vec![(
            "MyFeatures".to_owned(),
            "mid:MessageFeatures@id.foo.com".to_owned()
        )]
    );
    assert_eq!(
        m.require(),
        vec!["MyFeatures.VitalMessageOption".to_owned()]
    );
    assert_eq!(
        m.ns_header("mid:MessageFeatures@id.foo.com", "VitalMessageOption"),
        Some("Confirmation-requested")
    );
    assert_eq!(
        m.ns_header("mid:MessageFeatures@id.foo.com", "WackyMessageOption"),
        Some("Use-silly-font")
    );
    assert_eq!(m.content_type(), Some("text/xml; charset=utf-8"));
    assert_eq!(
        m.body,
        b"<body>\r\nHere is the text of my message.\r\n</body>"
    );
    assert_eq!(m.to_bytes(), after_outer_headers(&wire), "byte-exact print");
}

#[test]
fn rfc3680_full_example() {
    let r = Reginfo::parse(include_bytes!("data/rfc3680/full.xml")).unwrap();
    assert_eq!(r.version, 0);
    assert_eq!(r.state, DocState::Full);
    let reg = &r.registrations[0];
    assert_eq!(reg.aor, "sip:user@example.com");
    assert_eq!(reg.id, "as9");
    assert_eq!(reg.state, RegistrationState::Active);
    let c = &reg.contacts;
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].id, "76");
    assert_eq!(c[0].state, ContactState::Active);
    assert_eq!(c[0].event, ContactEvent::Registered);
    assert_eq!(c[0].duration_registered, Some(7322));
    assert_eq!(c[0].q.as_deref(), Some("0.8"));
    assert_eq!(c[0].uri, "sip:user@pc887.example.com");
    assert_eq!(c[1].state, ContactState::Terminated);
    assert_eq!(c[1].event, ContactEvent::Expired);
    assert_eq!(c[1].uri, "sip:user@university.edu");
    assert_eq!(r.active_contacts("sip:user@example.com").len(), 1);
    assert_eq!(Reginfo::parse(&r.to_bytes()).unwrap(), r);
}

#[test]
fn rfc3680_partial_example() {
    let r = Reginfo::parse(include_bytes!("data/rfc3680/partial-joe.xml")).unwrap();
    assert_eq!((r.version, r.state), (1, DocState::Partial));
    let reg = &r.registrations[0];
    assert_eq!(
        (reg.aor.as_str(), reg.id.as_str()),
        ("sip:joe@example.com", "a7")
    );
    assert_eq!(reg.contacts[0].duration_registered, Some(0));
    assert_eq!(reg.contacts[0].uri, "sip:joe@pc34.example.com");
}

#[test]
fn rfc5628_gruu_contact() {
    // GRUU elements as RFC 5628 §3 defines them (document written for isc)
    let doc = br#"<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" xmlns:gr="urn:ietf:params:xml:ns:gruuinfo"
         version="3" state="full">
  <registration aor="sip:alice@isc.local" id="a1" state="active">
    <contact id="1" state="active" event="registered" expires="3600">
      <uri>sip:alice@192.0.2.10:5060;transport=tcp</uri>
      <display-name>Living-room TV</display-name>
      <unknown-param name="+sip.instance">"&lt;urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6&gt;"</unknown-param>
      <gr:pub-gruu uri="sip:alice@isc.local;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"/>
      <gr:temp-gruu uri="sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@isc.local;gr" first-cseq="9"/>
    </contact>
  </registration>
</reginfo>"#;
    let r = Reginfo::parse(doc).unwrap();
    let c = &r.registrations[0].contacts[0];
    assert_eq!(
        c.instance_id(),
        Some("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    );
    assert_eq!(c.display_name.as_deref(), Some("Living-room TV"));
    assert_eq!(c.expires, Some(3600));
    assert_eq!(
        c.pub_gruu.as_deref(),
        Some("sip:alice@isc.local;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    );
    assert_eq!(c.temp_gruu.as_ref().map(|t| t.first_cseq), Some(9));
    assert_eq!(Reginfo::parse(&r.to_bytes()).unwrap(), r);
}

#[test]
fn extensions_in_other_namespaces_are_ignored() {
    // 3GPP-style extensions: a foreign <contact> and <uri> are not ours
    let doc = br#"<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" xmlns:ere="urn:3gpp:ns:extRegExp:1.0"
         version="0" state="full">
  <registration aor="sip:u@home1.net" id="a7" state="active">
    <contact id="76" state="active" event="registered">
      <uri>
        sip:[5555::aaa:bbb:ccc:ddd];comp=sigcomp
      </uri>
      <o:uri xmlns:o="urn:other">sip:not-this@example.com</o:uri>
    </contact>
    <ere:wildcardedIdentity>sip:user!.*!@home1.net</ere:wildcardedIdentity>
    <other:contact xmlns:other="urn:other" id="99" state="active" event="registered">
      <other:uri>sip:ignored@example.com</other:uri>
    </other:contact>
  </registration>
</reginfo>"#;
    let r = Reginfo::parse(doc).unwrap();
    let c = &r.registrations[0].contacts;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].uri, "sip:[5555::aaa:bbb:ccc:ddd];comp=sigcomp");
}
