//! Property tests: the parsers never panic on arbitrary input (CI fuzz smoke), framing is
//! independent of how the stream is split, and parse(to_bytes(m)) == m for built requests.

use isc::proto::sip::build::RequestBuilder;
use isc::proto::sip::framing::{FramerConfig, StreamFramer};
use isc::proto::sip::headers::*;
use isc::proto::sip::message::{parse_message, parse_uri, to_bytes};
use proptest::prelude::*;

fn torture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const SAMPLES: &[&str] = &[
    "wsinv", "intmeth", "esc01", "longreq", "mpart01", "unreason",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_message_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_message(&bytes);
    }

    #[test]
    fn parse_message_never_panics_on_mutated_messages(
        which in 0..SAMPLES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut m = torture(SAMPLES[which]);
        for (at, byte, op) in edits {
            if m.is_empty() { break; }
            let i = at.index(m.len());
            match op {
                0 => m[i] = byte,
                1 => { m.insert(i, byte); }
                _ => { m.truncate(i); }
            }
        }
        let _ = parse_message(&m);
    }

    #[test]
    fn header_parsers_never_panic(s in "\\PC{0,200}") {
        let _ = NameAddr::parse(&s);
        let _ = Contact::parse(&s);
        let _ = ViaValue::parse(&s);
        let _ = AcceptContact::parse(&s);
        let _ = SessionExpires::parse(&s);
        let _ = Replaces::parse(&s);
        let _ = ReferTo::parse(&s);
        let _ = Event::parse(&s);
        let _ = SubscriptionState::parse(&s);
        let _ = Reason::parse(&s);
        let _ = Warning::parse(&s);
        let _ = UserAgent::parse(&s);
        let _ = ContentDisposition::parse(&s);
        let _ = Privacy::parse(&s);
        let _ = parse_uri(&s);
    }

    #[test]
    fn framer_never_panics(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10),
    ) {
        let mut f = StreamFramer::new(FramerConfig { max_header_size: 512, max_body_size: 512 });
        for c in chunks {
            f.push(&c);
            while let Some(r) = f.next_message() {
                if let Ok(m) = r { let _ = parse_message(&m); }
            }
        }
    }

    #[test]
    fn framing_is_independent_of_chunking(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let msgs: Vec<Vec<u8>> = ["wsinv", "esc01", "longreq", "mpart01"].iter().map(|n| torture(n)).collect();
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(b"\r\n\r\n");
            stream.extend_from_slice(m);
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut f = StreamFramer::default();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain(std::iter::once(stream.len())) {
            f.push(&stream[last..p]);
            last = p;
            while let Some(r) = f.next_message() {
                out.push(r.unwrap());
            }
        }
        prop_assert_eq!(out, msgs);
    }
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,15}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,8}){0,3}",
        (1u8..255, 0u8..255, 0u8..255, 1u8..255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
    ]
}

prop_compose! {
    fn request()(
        method in prop::sample::select(vec![
            rsip::Method::Invite, rsip::Method::Options, rsip::Method::Message,
            rsip::Method::Register, rsip::Method::Subscribe, rsip::Method::Notify,
            rsip::Method::Refer, rsip::Method::Bye, rsip::Method::Info,
        ]),
        user in "[a-z][a-z0-9._-]{0,12}",
        target_host in host(),
        via_host in host(),
        port in proptest::option::of(1024u16..65535),
        branch in "[a-zA-Z0-9]{1,16}",
        display in proptest::option::of("[A-Za-z][A-Za-z \"\\\\]{0,12}"),
        from_tag in token(),
        call_id in "[a-zA-Z0-9.-]{1,20}(@[a-z0-9.]{1,10})?",
        cseq in 0u32..(1 << 31),
        contact_q in proptest::option::of(0u16..=1000),
        extra in proptest::collection::vec(("X-[A-Za-z]{1,8}", "[a-zA-Z0-9][a-zA-Z0-9 ;=.,]{0,20}[a-zA-Z0-9]"), 0..4),
        se in proptest::option::of((90u32..100000, any::<bool>())),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) -> rsip::Request {
        let uri = parse_uri(&format!("sip:{user}@{target_host}")).unwrap();
        let mut from = NameAddr::new(format!("sip:{user}@{via_host}"));
        if let Some(d) = display { from = from.with_display_name(d.trim()); }
        let mut contact = ContactValue::new(format!("sip:{user}@{via_host}"));
        if let Some(q) = contact_q {
            contact = contact.with_param("q", Some(&format!("{}.{:03}", q / 1000, q % 1000)));
        }
        let mut b = RequestBuilder::new(
            method,
            uri,
            ViaValue::new("UDP", &via_host, port, &format!("z9hG4bK{branch}")),
            from,
            &from_tag,
            NameAddr::new(format!("sip:{user}@{target_host}")),
            &call_id,
            cseq,
        )
        .contact(Contact::Addresses(vec![contact]));
        for (n, v) in extra {
            b = b.header(rsip::Header::Other(n, v));
        }
        if let Some((delta, uac)) = se {
            b = b.typed(SessionExpires::new(delta, Some(if uac { Refresher::Uac } else { Refresher::Uas })));
        }
        if !body.is_empty() {
            b = b.body("application/octet-stream", body);
        }
        b.build()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn built_requests_round_trip(req in request()) {
        let msg = rsip::SipMessage::Request(req);
        let bytes = to_bytes(&msg);
        prop_assert_eq!(parse_message(&bytes), Ok(msg.clone()));
        // and through the stream framer
        let mut f = StreamFramer::default();
        f.push(&bytes);
        prop_assert_eq!(f.next_message(), Some(Ok(bytes)));
    }

    #[test]
    fn typed_headers_round_trip(
        call_id in "[a-zA-Z0-9.@-]{1,20}",
        to_tag in token(),
        from_tag in token(),
        early in any::<bool>(),
        delta in 0u32..1_000_000,
        cause in 100u16..700,
        text in "[a-zA-Z \"\\\\]{0,20}",
        services in proptest::collection::vec("urn:urn-7:[a-z0-9.-]{1,20}", 1..3),
    ) {
        let mut r = Replaces::new(&call_id, &to_tag, &from_tag);
        r.early_only = early;
        prop_assert_eq!(Replaces::parse(&r.to_string()), Ok(r.clone()));
        let se = SessionExpires::new(delta, None);
        prop_assert_eq!(SessionExpires::parse(&se.to_string()), Ok(se));
        let reason = Reason(vec![ReasonValue::sip(cause, &text)]);
        prop_assert_eq!(Reason::parse(&reason.to_string()), Ok(reason));
        let refs: Vec<&str> = services.iter().map(String::as_str).collect();
        let ac = AcceptContact(vec![FeatureSet::new().with_icsi(&refs).with("require", None)]);
        let back = AcceptContact::parse(&ac.to_string()).unwrap();
        prop_assert_eq!(back.0[0].service_refs(), services);
        prop_assert_eq!(back, ac);
        let w = Warning::new(cause % 900 + 100, "isc.local", &text);
        prop_assert_eq!(Warning::parse(&w.to_string()), Ok(w));
    }

    #[test]
    fn contacts_round_trip(
        users in proptest::collection::vec(("[a-z][a-z0-9.]{0,10}", host(), proptest::option::of("[A-Za-z \"\\\\,;<>]{1,12}")), 1..4),
        instance in "[0-9a-f]{8}-[0-9a-f]{4}",
        expires in proptest::option::of(0u32..100_000),
        services in proptest::collection::vec("urn:urn-7:[a-z0-9.-]{1,20}", 0..3),
        im in any::<bool>(),
    ) {
        let values: Vec<ContactValue> = users
            .iter()
            .map(|(u, h, d)| {
                let mut c = ContactValue::new(format!("sip:{u}@{h};transport=tcp"))
                    .with_param("+sip.instance", Some(&format!("\"<urn:uuid:{instance}>\"")));
                if let Some(d) = d {
                    c.0.display_name = Some(d.clone());
                }
                if let Some(e) = expires {
                    c = c.with_param("expires", Some(&e.to_string()));
                }
                if !services.is_empty() {
                    let refs: Vec<&str> = services.iter().map(String::as_str).collect();
                    c = c.with_param(service::ICSI_REF, Some(&encode_service_ref(&refs)));
                }
                if im {
                    c = c.with_param(service::IM_FEATURE_TAG, None);
                }
                c
            })
            .collect();
        let contact = Contact::Addresses(values);
        let back = Contact::parse(&contact.to_string()).unwrap();
        prop_assert_eq!(&back, &contact);
        let Contact::Addresses(a) = back else { unreachable!() };
        prop_assert_eq!(a[0].instance(), Some(format!("<urn:uuid:{instance}>")));
        prop_assert_eq!(a[0].expires(), expires);
        prop_assert_eq!(a[0].service_refs(), services);
        prop_assert_eq!(a[0].has_feature(service::IM_FEATURE_TAG), im);
    }
}
