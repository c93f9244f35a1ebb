//! The RFC 4975 example frames (tests/data/rfc4975/, see its README): parsed,
//! fields checked, printed back byte for byte. The files use LF as the RFC
//! prints them; the wire form has CRLF, so `load` converts.

use isc::proto::msrp::{
    ByteRange, ContinuationFlag, MsrpMethod, MsrpParser, MsrpUri, Status, parse_message,
};

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/rfc4975/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.replace('\n', "\r\n").into_bytes()
}

fn uri(s: &str) -> MsrpUri {
    MsrpUri::parse(s).unwrap()
}

const ALL: [&str; 7] = [
    "s04_send.msrp",
    "s04_200.msrp",
    "s05_1_chunk1.msrp",
    "s05_1_chunk2.msrp",
    "s11_1_send.msrp",
    "s11_1_200.msrp",
    "s11_5_report.msrp",
];

#[test]
fn every_example_round_trips() {
    for name in ALL {
        let raw = load(name);
        let m = parse_message(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.to_bytes().unwrap(), raw, "{name}");
    }
}

#[test]
fn all_examples_as_one_stream() {
    let stream: Vec<u8> = ALL.iter().flat_map(|n| load(n)).collect();
    for step in [1, 5, 64, stream.len()] {
        let mut p = MsrpParser::default();
        let mut got = Vec::new();
        for piece in stream.chunks(step) {
            p.push(piece);
            while let Some(r) = p.next() {
                got.push(r.unwrap().transaction_id);
            }
        }
        assert_eq!(
            got,
            [
                "a786hjs2", "a786hjs2", "dkei38sd", "dkei38ia", "d93kswow", "d93kswow", "dkei38sd"
            ]
        );
    }
}

#[test]
fn section_4_send_and_200() {
    let m = parse_message(&load("s04_send.msrp")).unwrap();
    assert_eq!(m.transaction_id, "a786hjs2");
    assert_eq!(m.method(), Some(&MsrpMethod::Send));
    assert_eq!(
        m.to_path().unwrap().0,
        [uri("msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp")]
    );
    assert_eq!(
        m.from_path().unwrap().0,
        [uri("msrp://atlanta.example.com:7654/jshA7weztas;tcp")]
    );
    assert_eq!(m.message_id(), Some("87652491"));
    assert_eq!(
        m.byte_range(),
        Some(ByteRange {
            start: 1,
            end: Some(25),
            total: Some(25)
        })
    );
    assert_eq!(m.content_type(), Some("text/plain"));
    assert_eq!(m.body.as_deref(), Some(&b"Hey Bob, are you there?"[..]));
    assert_eq!(m.flag, ContinuationFlag::Complete);
    m.check_mandatory().unwrap();

    // Our 200 builder gives exactly the RFC's response.
    let ok = m.ok_response().unwrap();
    assert_eq!(ok.to_bytes().unwrap(), load("s04_200.msrp"));
    let r = parse_message(&load("s04_200.msrp")).unwrap();
    assert_eq!(r.code(), Some(200));
    assert_eq!(r, ok);
}

#[test]
fn section_5_1_chunks() {
    let c1 = parse_message(&load("s05_1_chunk1.msrp")).unwrap();
    let c2 = parse_message(&load("s05_1_chunk2.msrp")).unwrap();
    assert_eq!(c1.flag, ContinuationFlag::Continuation);
    assert_eq!(c2.flag, ContinuationFlag::Complete);
    assert_eq!(c1.message_id(), c2.message_id());
    assert_eq!(c1.byte_range().unwrap().to_string(), "1-*/8");
    assert_eq!(c2.byte_range().unwrap().to_string(), "5-8/8");
    assert_eq!(c1.body.as_deref(), Some(&b"abcd"[..]));
    assert_eq!(c2.body.as_deref(), Some(&b"EFGH"[..]));
    // Illustrative: no paths, which a real receiver refuses with 400.
    assert!(c1.check_mandatory().is_err());
    // The two chunks reassemble to the 8-byte message.
    let mut r = isc::proto::msrp::Reassembler::new(1024, 4);
    r.feed(&c1).unwrap();
    match r.feed(&c2).unwrap() {
        isc::proto::msrp::ReassemblyOutcome::Complete { body, .. } => {
            assert_eq!(body, b"abcdEFGH")
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn section_11_1_basic_session() {
    let send = parse_message(&load("s11_1_send.msrp")).unwrap();
    assert_eq!(send.transaction_id, "d93kswow");
    assert_eq!(send.message_id(), Some("12339sdqwer"));
    assert_eq!(send.byte_range().unwrap().to_string(), "1-16/16");
    assert_eq!(send.body.as_deref(), Some(&b"Hi, I'm Alice!"[..]));
    assert_eq!(
        send.to_path().unwrap().first(),
        Some(&uri("msrp://bob.example.com:8888/9di4eae923wzd;tcp"))
    );
    assert!(!send.success_report());
    let ok = send.ok_response().unwrap();
    assert_eq!(ok.to_bytes().unwrap(), load("s11_1_200.msrp"));
}

#[test]
fn section_11_5_report() {
    let rep = parse_message(&load("s11_5_report.msrp")).unwrap();
    assert_eq!(rep.method(), Some(&MsrpMethod::Report));
    assert_eq!(rep.message_id(), Some("12339sdqwer"));
    assert_eq!(rep.status(), Some(&Status::new(200, Some("OK"))));
    assert_eq!(rep.byte_range().unwrap().to_string(), "1-106/106");
    assert!(rep.body.is_none());
    rep.check_mandatory().unwrap();
    assert!(
        rep.response(200, None).is_none(),
        "REPORTs are not answered"
    );

    // Our REPORT builder on the §11.1 SEND addresses it the same way.
    let send = parse_message(&load("s11_1_send.msrp")).unwrap();
    let built = send
        .report(
            "dkei38sd",
            Status::new(200, Some("OK")),
            ByteRange::parse("1-106/106").unwrap(),
        )
        .unwrap();
    assert_eq!(built.to_bytes().unwrap(), load("s11_5_report.msrp"));
}
