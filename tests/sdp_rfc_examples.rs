//! SDP bodies from RFC 4975 §10.1 and RFC 3264 §10 (tests/data/sdp/): parse
//! them, answer them with our offer/answer code, and round-trip them.

use isc::proto::sdp::{
    AddrType, ConnectionAddress, Direction, MediaKind, MediaLine, MsrpAnswerParams, Sdp, Setup,
    TcpActiveSide, codecs, parse_sdp, tcp_active_side,
};

/// The file as the RFC prints it (LF) and as it goes on the wire (CRLF).
fn load(name: &str) -> (String, String) {
    let path = format!("{}/tests/data/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    let lf = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let crlf = lf.replace('\n', "\r\n");
    (lf, crlf)
}

/// Parses both forms, checks they agree and that printing round-trips.
fn parse(name: &str) -> Sdp {
    let (lf, crlf) = load(name);
    let sdp = parse_sdp(crlf.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(parse_sdp(lf.as_bytes()).unwrap(), sdp, "{name}: LF vs CRLF");
    assert_eq!(
        parse_sdp(&sdp.to_bytes()).unwrap(),
        sdp,
        "{name}: round trip"
    );
    sdp
}

fn host(name: &str) -> ConnectionAddress {
    ConnectionAddress::Host {
        addrtype: AddrType::Ip4,
        name: name.into(),
    }
}

#[test]
fn rfc4975_basic_session_offer() {
    let sdp = parse("rfc4975_10_1_offer.sdp");
    assert_eq!(sdp.origin.username, "alice");
    assert_eq!(sdp.origin.session_version, 2890844559);
    let m = sdp.msrp().next().expect("an MSRP line");
    assert_eq!(m.port, 7777);
    assert_eq!(m.transport, "TCP/MSRP");
    assert_eq!(m.connection, Some(host("alicepc.example.com")));
    assert_eq!(m.accept_types, ["text/plain"]);
    assert_eq!(
        m.path,
        ["msrp://alicepc.example.com:7777/iau39soe2843z;tcp"]
    );
    assert_eq!(m.setup, None);
    assert_eq!(m.direction, Direction::SendRecv);
}

#[test]
fn rfc4975_basic_session_answer_from_our_code() {
    let offer = parse("rfc4975_10_1_offer.sdp");
    let expected = parse("rfc4975_10_1_answer.sdp");
    let mut bob = MsrpAnswerParams::chat(
        8888,
        host("bob.example.com"),
        vec!["msrp://bob.example.com:8888/9di4eae923wzd;tcp".into()],
    );
    bob.accept_types = vec!["text/plain".into(), "message/cpim".into()];
    let ours = offer
        .answer(
            "bob",
            2890844612,
            host("bob.example.com"),
            |line| match line {
                MediaLine::Msrp(m) => m.answer(&bob).ok().map(MediaLine::Msrp),
                _ => None,
            },
        )
        .unwrap();
    let (got, want) = (ours.msrp().next().unwrap(), expected.msrp().next().unwrap());
    assert_eq!(got.port, want.port);
    assert_eq!(got.path, want.path);
    assert_eq!(got.accept_types, want.accept_types);
    assert_eq!(got.connection, want.connection);
    // RFC 4975 has no a=setup: the offerer (Alice) connects, as in §10.1
    assert_eq!(got.setup, Some(Setup::Passive));
    let first = offer.msrp().next().unwrap();
    assert_eq!(
        tcp_active_side(first, want).unwrap(),
        TcpActiveSide::Offerer
    );
    assert_eq!(tcp_active_side(first, got).unwrap(), TcpActiveSide::Offerer);
}

#[test]
fn rfc3264_basic_exchange_answer_equals_rfc() {
    let offer = parse("rfc3264_10_1_offer.sdp");
    assert_eq!(offer.session_name, "");
    assert_eq!(offer.media.len(), 3);
    let kinds: Vec<_> = offer.rtp().map(|m| m.kind.clone()).collect();
    assert_eq!(
        kinds,
        [MediaKind::Audio, MediaKind::Video, MediaKind::Video]
    );

    // Bob takes PCMU audio and MPV video, not H.261 (RFC 3264 §10.1)
    let supported = [codecs::pcmu(), codecs::static_payload(32).unwrap()];
    let ports = [49920u16, 0, 53000];
    let mut index = 0;
    let mut answer = offer
        .answer("bob", 2890844730, host("host.example.com"), |line| {
            let port = ports[index];
            index += 1;
            match line {
                MediaLine::Rtp(m) => m
                    .answer(
                        &supported,
                        port,
                        host("host.example.com"),
                        Direction::SendRecv,
                    )
                    .ok()
                    .map(MediaLine::Rtp),
                _ => None,
            }
        })
        .unwrap();
    answer.session_name = String::new();
    assert_eq!(answer, parse("rfc3264_10_1_answer.sdp"));
}

#[test]
fn rfc3264_second_offer_recvonly_is_answered_sendonly() {
    let reoffer = parse("rfc3264_10_1_reoffer.sdp");
    let events = reoffer.rtp().nth(3).unwrap();
    assert_eq!(events.direction, Direction::RecvOnly);
    assert_eq!(events.rtpmaps[0].encoding, "telephone-events");
    let ours = events
        .answer(
            &events.rtpmaps,
            53122,
            host("host.anywhere.com"),
            Direction::SendRecv,
        )
        .unwrap();
    let reanswer = parse("rfc3264_10_1_reanswer.sdp");
    assert_eq!(&ours, reanswer.rtp().nth(3).unwrap());
    // the rejected H.261 line keeps port 0
    assert_eq!(reoffer.media[1].port(), 0);
}

#[test]
fn rfc3264_one_of_n_inactive() {
    let offer = parse("rfc3264_10_2_offer.sdp");
    let audio = offer.rtp().next().unwrap();
    assert_eq!(audio.direction, Direction::Inactive);
    assert_eq!(audio.payload_types, [0, 4, 18]);
    let answer = audio
        .answer(
            &[codecs::pcmu(), codecs::static_payload(4).unwrap()],
            54344,
            host("host.example.com"),
            Direction::SendRecv,
        )
        .unwrap();
    assert_eq!(answer.payload_types, [0, 4]);
    assert_eq!(answer.direction, Direction::Inactive);
}
