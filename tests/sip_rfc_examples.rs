//! RFC 3261 §24 examples and the 13 valid RFC 4475 §3.1.1 torture messages through
//! `parse_message`, plus one test per rsip 0.4 gap listed in DEPENDENCIES.md.

use isc::proto::sip::build::{self, cseq, from_tag, to_tag, top_via_branch};
use isc::proto::sip::framing::StreamFramer;
use isc::proto::sip::headers::*;
use isc::proto::sip::message::{
    SipParseError, extension_request_to_bytes, parse_message, parse_request, parse_response,
    to_bytes,
};
use rsip::prelude::{HeadersExt as _, ToTypedHeader as _, UntypedHeader as _};

fn data(path: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn torture(name: &str) -> Vec<u8> {
    data(&format!("rfc4475/{name}.dat"))
}

/// RFC 3261 §24 files are stored with LF ends as printed; the wire uses CRLF. The SDP
/// bodies are "not shown" in the RFC, so a filler of the declared length is appended.
fn rfc3261(name: &str) -> Vec<u8> {
    let text = String::from_utf8(data(&format!("rfc3261/{name}.sip"))).unwrap();
    let mut wire = text.replace('\n', "\r\n").into_bytes();
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    wire.extend(std::iter::repeat_n(b'x', len));
    wire
}

fn header_values(h: &rsip::Headers, name: &str) -> Vec<String> {
    h.get_all_raw(name)
}

// ---------------------------------------------------------------- RFC 3261 §24

#[test]
fn rfc3261_registration() {
    let req = parse_request(&rfc3261("24.1-f1-register")).unwrap();
    assert_eq!(req.method, rsip::Method::Register);
    assert_eq!(req.uri.to_string(), "sip:registrar.biloxi.com");
    assert_eq!(from_tag(&req.headers).as_deref(), Some("456248"));
    assert_eq!(cseq(&req.headers), Some((1826, "REGISTER".into())));
    assert_eq!(req.expires_header().unwrap().seconds().unwrap(), 7200);
    let c: Contact = req.headers.typed().unwrap().unwrap();
    assert_eq!(
        c,
        Contact::Addresses(vec![ContactValue::new("sip:bob@192.0.2.4")])
    );

    let resp = parse_response(&rfc3261("24.1-f2-200")).unwrap();
    assert_eq!(resp.status_code, rsip::StatusCode::OK);
    // the folded Via is unfolded and typed-readable by rsip
    let via = resp.via_header().unwrap().typed().unwrap();
    assert_eq!(via.received().unwrap().unwrap().to_string(), "192.0.2.4");
    assert_eq!(to_tag(&resp.headers).as_deref(), Some("2493k59kd"));
}

#[test]
fn rfc3261_session_setup() {
    let f1 = parse_request(&rfc3261("24.2-f1-invite")).unwrap();
    assert_eq!(f1.method, rsip::Method::Invite);
    assert_eq!(f1.body.len(), 142);
    assert_eq!(
        top_via_branch(&f1.headers).as_deref(),
        Some("z9hG4bKnashds8")
    );
    assert_eq!(
        f1.call_id_header().unwrap().to_string(),
        "Call-ID: a84b4c76e66710"
    );

    let f5 = parse_request(&rfc3261("24.2-f5-invite")).unwrap();
    assert_eq!(header_values(&f5.headers, "Via").len(), 3);
    assert_eq!(f5.max_forwards_header().unwrap().num().unwrap(), 68);
    assert_eq!(f5.uri.to_string(), "sip:bob@192.0.2.4");

    let f6 = parse_response(&rfc3261("24.2-f6-180")).unwrap();
    assert_eq!(f6.status_code, rsip::StatusCode::Ringing);
    let vias = header_values(&f6.headers, "Via");
    assert_eq!(
        vias[2],
        "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.1"
    );
    assert_eq!(to_tag(&f6.headers).as_deref(), Some("a6c85cf"));

    let f11 = parse_response(&rfc3261("24.2-f11-200")).unwrap();
    assert_eq!(f11.body.len(), 131);
    let ack = parse_request(&rfc3261("24.2-f12-ack")).unwrap();
    assert_eq!(cseq(&ack.headers), Some((314159, "ACK".into())));
    assert_eq!(
        top_via_branch(&ack.headers).as_deref(),
        Some("z9hG4bKnashds9")
    );
    let bye = parse_request(&rfc3261("24.2-f13-bye")).unwrap();
    assert_eq!(bye.method, rsip::Method::Bye);
    assert_eq!(from_tag(&bye.headers).as_deref(), Some("a6c85cf"));
    let ok = parse_response(&rfc3261("24.2-f14-200")).unwrap();
    assert_eq!(cseq(&ok.headers), Some((231, "BYE".into())));

    // A UAS building F14 from F13 gets the same essential headers (RFC 3261 §8.2.6).
    let built = build::response_to(&bye, 200, None);
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        assert_eq!(built.headers.get_raw(h), ok.headers.get_raw(h), "{h}");
    }
}

#[test]
fn rfc3261_examples_round_trip_through_to_bytes() {
    for name in [
        "24.1-f1-register",
        "24.1-f2-200",
        "24.2-f1-invite",
        "24.2-f5-invite",
        "24.2-f6-180",
        "24.2-f11-200",
        "24.2-f12-ack",
        "24.2-f13-bye",
        "24.2-f14-200",
    ] {
        let m = parse_message(&rfc3261(name)).unwrap();
        let again = parse_message(&to_bytes(&m)).unwrap();
        assert_eq!(again, m, "{name}");
    }
}

// ---------------------------------------------------------------- RFC 4475 §3.1.1

#[test]
fn t3_1_1_1_wsinv() {
    let req = parse_request(&torture("wsinv")).unwrap();
    assert_eq!(req.method, rsip::Method::Invite);
    assert_eq!(
        req.uri.to_string(),
        "sip:vivekg@chair-dnrc.example.com;unknownparam"
    );
    assert_eq!(to_tag(&req.headers).as_deref(), Some("1918181833n"));
    let from = NameAddr::parse(&req.headers.get_raw("From").unwrap()).unwrap();
    assert_eq!(from.display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag().as_deref(), Some("98asjd8"));
    assert_eq!(req.headers.get_raw("Max-Forwards").as_deref(), Some("0068"));
    assert_eq!(cseq(&req.headers), Some((9, "INVITE".into())));
    assert_eq!(req.headers.get_raw("Subject").as_deref(), Some(""));
    assert_eq!(
        req.headers.get_raw("NewFangledHeader").as_deref(),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        req.headers
            .get_raw("UnknownHeaderWithUnusualValue")
            .as_deref(),
        Some(";;,,;;,;")
    );
    let vias: Vec<ViaValue> = req.headers.all().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        vias[0].to_string(),
        "SIP/2.0/UDP 192.0.2.2;branch=390skdjuw"
    );
    assert_eq!(
        vias[1].to_string(),
        "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8"
    );
    assert_eq!(
        vias[2].to_string(),
        "SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239"
    );
    // and rsip's own typed readers now work on them
    assert!(req.via_header().unwrap().typed().is_ok());
    assert!(req.to_header().unwrap().typed().is_ok());
    assert_eq!(req.cseq_header().unwrap().typed().unwrap().seq, 9);
    let route: Route = req.headers.typed().unwrap().unwrap();
    assert!(route.0[0].uri.ends_with(";unknown-no-value"));
    assert_eq!(req.body.len(), 150);
}

#[test]
fn t3_1_1_2_intmeth() {
    let Err(SipParseError::UnknownMethod { method, request }) = parse_message(&torture("intmeth"))
    else {
        panic!("expected UnknownMethod");
    };
    assert_eq!(method, "!interesting-Method0123456789_*+`.%indeed'~");
    assert_eq!(
        request.uri.to_string(),
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    );
    assert_eq!(
        request.uri.auth.as_ref().unwrap().password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(cseq(&request.headers), Some((139122385, method.clone())));
    assert_eq!(
        request.headers.get_raw("Call-ID").as_deref(),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    let to = NameAddr::parse(&request.headers.get_raw("To").unwrap()).unwrap();
    assert_eq!(
        to.display_name.as_deref(),
        Some("BEL:\u{7} NUL:\u{0} DEL:\u{7f}")
    );
    assert_eq!(
        request
            .headers
            .get_raw("extensionHeader-!.%*+_`'~")
            .as_deref(),
        Some("\u{feff}\u{5927}\u{505c}\u{96fb}")
    );
    // a UAS answers 501 with the CSeq copied verbatim
    let resp = build::response_to(&request, 501, Some("t"));
    let bytes = to_bytes(&resp.into());
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("SIP/2.0 501 Not Implemented\r\n"));
    assert!(text.contains("\r\nCSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n"));
    // a proxy relays it with the real method
    let relayed = extension_request_to_bytes(&method, &request);
    assert!(relayed.starts_with(b"!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual"));
}

#[test]
fn t3_1_1_3_esc01() {
    let req = parse_request(&torture("esc01")).unwrap();
    assert_eq!(
        req.uri.to_string(),
        "sip:sips%3Auser%40example.com@example.net"
    );
    assert_eq!(req.uri.user(), Some("sips%3Auser%40example.com"));
    assert_eq!(req.uri.host().to_string(), "example.net");
    let from = NameAddr::parse(&req.headers.get_raw("From").unwrap()).unwrap();
    assert_eq!(from.uri, "sip:I%20have%20spaces@example.net");
    let c: Contact = req.headers.typed().unwrap().unwrap();
    let Contact::Addresses(a) = c else { panic!() };
    assert_eq!(
        a[0].uri(),
        "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    );
    assert_eq!(
        req.headers.get_raw("Content-Type").as_deref(),
        Some("application/sdp")
    );
    assert_eq!(req.body.len(), 150);
}

#[test]
fn t3_1_1_4_escnull() {
    let req = parse_request(&torture("escnull")).unwrap();
    assert_eq!(req.method, rsip::Method::Register);
    let contacts: Vec<Contact> = req.headers.all().unwrap();
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        req.headers.get_raw("To").as_deref(),
        Some("sip:null-%00-null@example.com")
    );
    assert!(req.body.is_empty());
}

#[test]
fn t3_1_1_5_esc02() {
    let Err(SipParseError::UnknownMethod { method, request }) = parse_message(&torture("esc02"))
    else {
        panic!("expected UnknownMethod: RE%47IST%45R is not REGISTER");
    };
    assert_eq!(method, "RE%47IST%45R");
    assert_eq!(
        top_via_branch(&request.headers).as_deref(),
        Some("z9hG4bK209%fzsnel234")
    );
    // C%6Fntact is an unknown header, not a Contact
    assert_eq!(request.headers.get_all_raw("Contact").len(), 2);
    assert_eq!(
        request.headers.get_raw("C%6Fntact").as_deref(),
        Some("<sip:alias2@host2.example.com>")
    );
    let from = NameAddr::parse(&request.headers.get_raw("From").unwrap()).unwrap();
    assert_eq!(from.display_name.as_deref(), Some("%Z%45"));
}

#[test]
fn t3_1_1_6_lwsdisp() {
    let req = parse_request(&torture("lwsdisp")).unwrap();
    let from = NameAddr::parse(&req.headers.get_raw("From").unwrap()).unwrap();
    assert_eq!(from.display_name.as_deref(), Some("caller"));
    assert_eq!(from.tag().as_deref(), Some("323"));
}

#[test]
fn t3_1_1_7_longreq() {
    let req = parse_request(&torture("longreq")).unwrap();
    let vias: Vec<ViaValue> = req.headers.all().unwrap();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, "sip33.example.com");
    assert!(vias[33].branch().unwrap().len() > 100);
    let to = NameAddr::parse(&req.headers.get_raw("To").unwrap()).unwrap();
    assert!(to.display_name.as_ref().unwrap().contains("extremeextreme"));
    assert_eq!(to.tag(), None);
    assert!(to.uri.ends_with("ParameterNameWithNoValue"));
    assert!(from_tag(&req.headers).is_some());
    assert!(req.headers.get_raw("Call-ID").unwrap().len() > 100);
    assert_eq!(req.body.len(), 150);
}

#[test]
fn t3_1_1_8_dblreq_keeps_only_the_first() {
    let req = parse_request(&torture("dblreq")).unwrap();
    assert_eq!(req.method, rsip::Method::Register);
    assert!(
        req.body.is_empty(),
        "RFC 3261 §18.3: octets past Content-Length are dropped"
    );
    // compact `I:` becomes a real Call-ID that rsip reads
    assert_eq!(
        req.call_id_header().unwrap().to_string(),
        "Call-ID: dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );
}

#[test]
fn t3_1_1_9_semiuri() {
    let req = parse_request(&torture("semiuri")).unwrap();
    assert_eq!(req.method, rsip::Method::Options);
    assert_eq!(req.uri.user(), Some("user;par=u%40example.net"));
    assert_eq!(req.uri.host().to_string(), "example.com");
    assert_eq!(
        req.headers.get_raw("Accept").as_deref(),
        Some(
            "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag"
        )
    );
}

#[test]
fn t3_1_1_10_transports() {
    let req = parse_request(&torture("transports")).unwrap();
    let vias: Vec<ViaValue> = req.headers.all().unwrap();
    let t: Vec<&str> = vias.iter().map(|v| v.transport.as_str()).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_eq!(
        req.headers.get_raw("Call-ID").as_deref(),
        Some("transports.kijh4akdnaqjkwendsasfdj")
    );
}

#[test]
fn t3_1_1_11_mpart01() {
    let raw = torture("mpart01");
    let req = parse_request(&raw).unwrap();
    assert_eq!(req.method, rsip::Method::Message);
    let declared: usize = req
        .headers
        .get_raw("Content-Length")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(req.body.len(), declared);
    assert!(
        std::str::from_utf8(&req.body).is_err(),
        "binary body kept as bytes"
    );
    assert!(raw.ends_with(&req.body));
    let ua: UserAgent = req.headers.typed().unwrap().unwrap();
    assert!(ua.version_of("SIPimp.org").is_some());
    assert_eq!(
        req.headers.get_raw("Content-Type").as_deref(),
        Some("multipart/mixed;boundary=7a9cbec02ceef655")
    );
}

#[test]
fn t3_1_1_12_unreason() {
    let resp = parse_response(&torture("unreason")).unwrap();
    assert_eq!(resp.status_code.code(), 200);
    assert_eq!(to_tag(&resp.headers).as_deref(), Some("2229"));
    assert_eq!(resp.body.len(), 154);
}

#[test]
fn t3_1_1_13_noreason() {
    let resp = parse_response(&torture("noreason")).unwrap();
    assert_eq!(resp.status_code.code(), 100);
    assert_eq!(cseq(&resp.headers), Some((35, "INVITE".into())));
}

fn without_content_length(mut m: rsip::SipMessage) -> rsip::SipMessage {
    use rsip::message::HasHeaders;
    m.headers_mut().remove_named("Content-Length");
    m
}

#[test]
fn every_valid_torture_message_survives_to_bytes() {
    for name in [
        "wsinv",
        "intmeth",
        "esc01",
        "escnull",
        "esc02",
        "lwsdisp",
        "longreq",
        "dblreq",
        "semiuri",
        "transports",
        "mpart01",
        "unreason",
        "noreason",
    ] {
        let (first, bytes) = match parse_message(&torture(name)) {
            Ok(m) => (m.clone(), to_bytes(&m)),
            Err(SipParseError::UnknownMethod { method, request }) => (
                rsip::SipMessage::Request((*request).clone()),
                extension_request_to_bytes(&method, &request),
            ),
            Err(e) => panic!("{name}: {e}"),
        };
        let again = match parse_message(&bytes) {
            Ok(m) => m,
            Err(SipParseError::UnknownMethod { request, .. }) => {
                rsip::SipMessage::Request(*request)
            }
            Err(e) => panic!("{name} reprinted: {e}"),
        };
        // to_bytes writes Content-Length last; otherwise nothing changes
        assert_eq!(
            without_content_length(again),
            without_content_length(first),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------- rsip 0.4 gaps closed

#[test]
fn gap_compact_forms_become_rsip_headers() {
    let m = b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: c1\r\nCSeq: 1 OPTIONS\r\nm: <sip:x@h>\r\nl: 0\r\n\r\n";
    let req = parse_request(m).unwrap();
    assert!(req.via_header().is_ok() && req.from_header().is_ok() && req.to_header().is_ok());
    assert!(req.call_id_header().is_ok() && req.contact_header().is_ok());
    assert!(
        req.headers
            .iter()
            .all(|h| !matches!(h, rsip::Header::Other(..)))
    );
}

#[test]
fn gap_folded_and_lf_only_lines() {
    let m = b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\n ;branch=z9hG4bK1\nFrom: <sip:x@y>\n\t;tag=1\nTo: <sip:a@b>\nCall-ID: c1\nCSeq: 1\n  OPTIONS\nContent-Length: 0\n\n";
    let req = parse_request(m).unwrap();
    assert_eq!(top_via_branch(&req.headers).as_deref(), Some("z9hG4bK1"));
    assert_eq!(req.cseq_header().unwrap().typed().unwrap().seq, 1);
}

#[test]
fn gap_content_length_frames_streams_and_datagrams() {
    let raw = torture("dblreq");
    let mut framer = StreamFramer::default();
    framer.push(&raw);
    let first = framer.next_message().unwrap().unwrap();
    assert!(parse_request(&first).unwrap().body.is_empty());
    let second = framer.next_message().unwrap().unwrap();
    let invite = parse_request(&second).unwrap();
    assert_eq!(invite.method, rsip::Method::Invite);
    assert_eq!(invite.body.len(), 150);
    // shorter than declared: an error naming both lengths
    let short = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 10\r\n\r\nabc";
    assert_eq!(
        parse_message(short),
        Err(SipParseError::BodyTooShort {
            declared: 10,
            actual: 3
        })
    );
}

#[test]
fn gap_two_addresses_in_one_contact() {
    let m = b"REGISTER sip:isc.local SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@isc.local>;tag=1\r\nTo: <sip:a@isc.local>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:a@192.0.2.1>;expires=60, \"Tv\" <sip:a@192.0.2.2>;q=0.5\r\nContent-Length: 0\r\n\r\n";
    let req = parse_request(m).unwrap();
    let rsip_contacts = req.contact_headers();
    assert_eq!(rsip_contacts.len(), 2);
    assert!(rsip_contacts.iter().all(|c| c.typed().is_ok()));
    let typed: Contact = Contact::parse(
        "<sip:a@192.0.2.1>;expires=60, \"Tv\" <sip:a@192.0.2.2>;+sip.instance=\"<urn:uuid:1>\"",
    )
    .unwrap();
    let Contact::Addresses(a) = typed else {
        panic!()
    };
    assert_eq!(a[1].instance().as_deref(), Some("<urn:uuid:1>"));
}

#[test]
fn gap_contact_star_prints_as_star() {
    let req = build::RequestBuilder::new(
        rsip::Method::Register,
        isc::proto::sip::message::parse_uri("sip:isc.local").unwrap(),
        ViaValue::new("UDP", "192.0.2.1", None, "z9hG4bK1"),
        NameAddr::new("sip:a@isc.local"),
        "1",
        NameAddr::new("sip:a@isc.local"),
        "c",
        2,
    )
    .header(rsip::Header::Contact(rsip::headers::Contact::new("<*>")))
    .header(rsip::Header::Expires(rsip::headers::Expires::new("0")))
    .build();
    let text = String::from_utf8(to_bytes(&req.into())).unwrap();
    assert!(text.contains("\r\nContact: *\r\n"), "{text}");
    let back = parse_request(text.as_bytes()).unwrap();
    assert_eq!(
        back.headers.typed::<Contact>().unwrap(),
        Some(Contact::Star)
    );
}

#[test]
fn gap_typed_values_checked_eagerly() {
    let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n";
    let case = |from: &str, to: &str| {
        let m = format!("{}\r\n", base.replace(from, to));
        parse_message(m.as_bytes()).unwrap_err()
    };
    assert_eq!(
        case("Call-ID: c\r\n", ""),
        SipParseError::MissingHeader("Call-ID")
    );
    assert_eq!(
        case("CSeq: 1 OPTIONS", "CSeq: x OPTIONS"),
        SipParseError::InvalidHeader {
            header: "CSeq",
            value: "x OPTIONS".into()
        }
    );
    assert_eq!(
        case("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
        SipParseError::CSeqMethodMismatch {
            method: "OPTIONS".into(),
            cseq: "INVITE".into()
        }
    );
    assert_eq!(
        case("Max-Forwards: 70", "Max-Forwards: seventy"),
        SipParseError::InvalidHeader {
            header: "Max-Forwards",
            value: "seventy".into()
        }
    );
    assert_eq!(
        case("To: <sip:a@b>", "To: <a b>"),
        SipParseError::InvalidHeader {
            header: "To",
            value: "<a b>".into()
        }
    );
    assert_eq!(
        case("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", ""),
        SipParseError::MissingHeader("Via")
    );
    assert_eq!(
        case("Max-Forwards: 70", "Content-Length: -1"),
        SipParseError::InvalidHeader {
            header: "Content-Length",
            value: "-1".into()
        }
    );
}

#[test]
fn gap_missing_typed_headers() {
    let m = "INVITE sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@isc.local>;tag=1\r\nTo: <sip:bob@isc.local>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nx: 1800;refresher=uac\r\nReplaces: 98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff\r\nr: <sip:carol@isc.local>\r\nReason: SIP;cause=200;text=\"Call completed elsewhere\"\r\na: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\"\r\nP-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\r\nContent-Length: 0\r\n\r\n";
    let req = parse_request(m.as_bytes()).unwrap();
    let h = &req.headers;
    let se: SessionExpires = h.typed().unwrap().unwrap();
    assert_eq!((se.delta, se.refresher), (1800, Some(Refresher::Uac)));
    let r: Replaces = h.typed().unwrap().unwrap();
    assert_eq!(r.from_tag, "r33th4x0r");
    let rt: ReferTo = h.typed().unwrap().unwrap();
    assert_eq!(rt.0.uri, "sip:carol@isc.local");
    let reason: Reason = h.typed().unwrap().unwrap();
    assert_eq!(reason.0[0].cause, Some(200));
    let ac: AcceptContact = h.typed().unwrap().unwrap();
    assert_eq!(ac.0[0].service_refs(), vec![service::ISC_1_1_CV_CM]);
    let pps: PPreferredService = h.typed().unwrap().unwrap();
    assert!(pps.contains(service::ISC_1_1_CV_CM));
}

#[test]
fn gap_subscription_state_readable() {
    let m = b"NOTIFY sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:conf@isc.local>;tag=1\r\nTo: <sip:a@isc.local>;tag=2\r\nCall-ID: c\r\nCSeq: 5 NOTIFY\r\no: conference\r\nSubscription-State: active;expires=3600\r\nContent-Length: 0\r\n\r\n";
    let req = parse_request(m).unwrap();
    let ss: SubscriptionState = req.headers.typed().unwrap().unwrap();
    assert_eq!((ss.state, ss.expires), (SubState::Active, Some(3600)));
    let ev: Event = req.headers.typed().unwrap().unwrap();
    assert_eq!(ev.package, "conference");
}

#[test]
fn gap_dblreq_call_id_reads() {
    let req = parse_request(&torture("dblreq")).unwrap();
    assert!(req.call_id_header().is_ok());
}

#[test]
fn gap_unknown_method_is_answerable() {
    let m = b"NEWMETHOD sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@isc.local>;tag=1\r\nTo: <sip:bob@isc.local>\r\nCall-ID: c\r\nCSeq: 3 NEWMETHOD\r\nContent-Length: 0\r\n\r\n";
    let Err(SipParseError::UnknownMethod { method, request }) = parse_message(m) else {
        panic!()
    };
    assert_eq!(method, "NEWMETHOD");
    let err = SipParseError::UnknownMethod {
        method: method.clone(),
        request: request.clone(),
    };
    assert_eq!(err.status().0, 501);
    let resp = build::response_with(
        &request,
        501,
        Some("x"),
        None,
        vec![make_header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")],
    );
    let text = String::from_utf8(to_bytes(&resp.into())).unwrap();
    assert!(text.starts_with("SIP/2.0 501 Not Implemented\r\n"));
    assert!(text.contains("CSeq: 3 NEWMETHOD\r\n"));
    assert!(text.contains("To: <sip:bob@isc.local>;tag=x\r\n"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
}
