//! RTP offer/answer between a viewer and the server's streamer.

use isc::proto::sdp::{
    ConnectionAddress, Direction, MediaKind, MediaLine, OtherMedia, RtpMap, RtpMedia, Sdp,
    SdpError, codecs, parse_sdp,
};
use std::net::Ipv4Addr;

fn lo() -> ConnectionAddress {
    ConnectionAddress::Ip(Ipv4Addr::LOCALHOST.into())
}

/// The streamer: answers each RTP line it has a codec for, sendonly.
fn streamer_answer(offer: &Sdp) -> Result<Sdp, SdpError> {
    let supported = [codecs::pcmu(), codecs::jpeg()];
    let mut port = 50000;
    offer.answer("isc", 77, lo(), |line| match line {
        MediaLine::Rtp(m) => {
            port += 2;
            m.answer(&supported, port, lo(), Direction::SendOnly)
                .ok()
                .map(MediaLine::Rtp)
        }
        _ => None,
    })
}

#[test]
fn viewer_offer_streamer_answer() {
    let offer = Sdp::new("alice-tv", 5, lo())
        .with_media(RtpMedia::audio_pcmu(40000, lo(), Direction::RecvOnly))
        .with_media(RtpMedia::video_jpeg(40002, lo(), Direction::RecvOnly))
        .with_media(MediaLine::Other(OtherMedia {
            media: "application".into(),
            port: 40004,
            proto: "udp".into(),
            fmt: "wb".into(),
            connection: Some(lo()),
            attributes: vec![],
        }));
    let received = parse_sdp(&offer.to_bytes()).unwrap();
    let audio = received.rtp().next().unwrap();
    assert_eq!(audio.kind, MediaKind::Audio);
    assert_eq!(audio.payload_types, [0]);
    assert_eq!(audio.rtpmaps, [RtpMap::new(0, "PCMU", 8000)]);
    assert_eq!(audio.direction, Direction::RecvOnly);
    assert_eq!(audio.connection, Some(lo()));

    let answer = parse_sdp(&streamer_answer(&received).unwrap().to_bytes()).unwrap();
    assert_eq!(answer.media.len(), 3, "one answer line per offered line");
    let lines: Vec<_> = answer.rtp().collect();
    assert_eq!(lines[0].direction, Direction::SendOnly);
    assert_eq!((lines[0].port, lines[1].port), (50002, 50004));
    assert_eq!(lines[1].rtpmaps, [codecs::jpeg()]);
    assert_eq!(answer.media[2].port(), 0, "unknown media rejected");
    assert_eq!(answer.media[2].media_type(), "application");
}

#[test]
fn offered_port_zero_stays_rejected() {
    let mut video = RtpMedia::video_jpeg(0, lo(), Direction::RecvOnly);
    video.port = 0;
    let offer = Sdp::new("v", 1, lo())
        .with_media(RtpMedia::audio_pcmu(40000, lo(), Direction::RecvOnly))
        .with_media(video);
    let answer = streamer_answer(&offer).unwrap();
    assert_eq!(answer.media[1].port(), 0);
}

#[test]
fn unsupported_codecs_give_488() {
    let offer = Sdp::new("v", 1, lo()).with_media(RtpMedia::new(
        MediaKind::Video,
        40000,
        lo(),
        &[RtpMap::new(96, "H264", 90000)],
        Direction::RecvOnly,
    ));
    let err = streamer_answer(&offer).unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableMedia);
    assert!(err.is_not_acceptable());
}

#[test]
fn server_offer_sendonly_viewer_answers_recvonly() {
    let offer = Sdp::new("isc", 9, lo())
        .with_media(RtpMedia::audio_pcmu(50000, lo(), Direction::SendOnly))
        .with_media(RtpMedia::video_jpeg(50002, lo(), Direction::SendOnly));
    let received = parse_sdp(&offer.to_bytes()).unwrap();
    let answer = received
        .answer("bob", 3, lo(), |line| match line {
            MediaLine::Rtp(m) => m
                .answer(
                    &[codecs::pcmu(), codecs::jpeg()],
                    41000,
                    lo(),
                    Direction::SendRecv,
                )
                .ok()
                .map(MediaLine::Rtp),
            _ => None,
        })
        .unwrap();
    assert!(answer.rtp().all(|m| m.direction == Direction::RecvOnly));
}
