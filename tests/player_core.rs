//! The sans-IO player driven by hand in simulated time: concealment without
//! clicks, SSRC changes, RTCP receiver reports to the SR's source (also with
//! rtcp-mux), video without audio, and no panic on arbitrary datagrams.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use isc::media::audio_out::MemorySink;
use isc::media::player::{Media, Player, PlayerConfig, PlayerEvent, Port};
use isc::proto::rtp::g711::{PcmuPacketizer, SAMPLES_PER_20MS};
use isc::proto::rtp::jpeg::JpegPacketizer;
use isc::proto::rtp::jpeg_codec::{RgbFrame, encode_rgb};
use isc::proto::rtp::rtcp::{SenderInfo, SenderReport, build_compound, parse_compound};
use isc::proto::rtp::{NtpTime, RtcpPacket, RtpPacket};
use proptest::prelude::*;

type Arrival = (Instant, Media, Port, SocketAddr, Vec<u8>);

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

/// Feed arrivals in order, waking the player at its own timeouts, until `end`.
fn drive(p: &mut Player, mut arrivals: Vec<Arrival>, end: Instant) -> Vec<PlayerEvent> {
    arrivals.sort_by_key(|a| a.0);
    let mut arrivals = arrivals.into_iter().peekable();
    let mut events = Vec::new();
    let mut now = arrivals.peek().map_or(end, |a| a.0);
    while now < end {
        while let Some((_, media, port, from, bytes)) = arrivals.next_if(|a| a.0 <= now) {
            p.handle_datagram(now, media, port, from, &bytes);
        }
        p.handle_timeout(now);
        events.extend(std::iter::from_fn(|| p.poll_event()));
        let next_arrival = arrivals.peek().map(|a| a.0);
        now = [p.poll_timeout(), next_arrival, Some(end)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end)
            .max(now + Duration::from_micros(100));
    }
    events
}

fn sine(freq: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (8000.0 * (std::f64::consts::TAU * freq * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

fn audio_arrivals(
    t0: Instant,
    samples: &[i16],
    ssrc: u32,
    drop: impl Fn(usize) -> bool,
) -> Vec<Arrival> {
    let mut tx = PcmuPacketizer::new(ssrc, 100, 5000, SAMPLES_PER_20MS);
    tx.push(samples)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !drop(*i))
        .map(|(i, p)| {
            (
                t0 + Duration::from_millis(20 * i as u64),
                Media::Audio,
                Port::Rtp,
                peer(5000),
                p.to_bytes().unwrap(),
            )
        })
        .collect()
}

#[test]
fn loss_is_concealed_without_clicks_and_keeps_the_timeline() {
    let t0 = Instant::now();
    let sink = MemorySink::new(8000);
    let played = sink.tap();
    let mut p = Player::new(PlayerConfig::new(1, "me"), Box::new(sink), t0);
    // 440 Hz does not fit 160 samples: a bare repeat would step at every edge
    let src = sine(440.0, 8000 * 2);
    // lose single packets and a burst of 5
    let lost = |i: usize| [10, 20, 21, 40, 41, 42, 43, 44].contains(&i);
    drive(
        &mut p,
        audio_arrivals(t0, &src, 7, lost),
        t0 + Duration::from_secs(3),
    );
    let stats = p.finish().unwrap();
    let out = played.lock().unwrap().clone();
    assert_eq!(
        out.len(),
        src.len(),
        "timeline kept: one packet out per packet in"
    );
    assert_eq!(stats.audio_concealed, 8);
    assert_eq!(stats.audio.playout_gaps, 8);
    let clean_step = src
        .windows(2)
        .map(|w| (w[1] - w[0]).unsigned_abs())
        .max()
        .unwrap();
    let worst = out
        .windows(2)
        .map(|w| (i32::from(w[1]) - i32::from(w[0])).unsigned_abs())
        .max()
        .unwrap();
    // no click: no jump much above the signal's own slope
    assert!(
        worst <= u32::from(clean_step) * 3 / 2,
        "step {worst} vs clean {clean_step}"
    );
    // the burst fades to silence after 3 repeats
    let burst = &out[44 * 160..45 * 160];
    assert!(
        burst.iter().all(|s| s.unsigned_abs() < 300),
        "{:?}",
        &burst[..8]
    );
    // good packets are untouched outside the splices
    assert_eq!(
        &out[30 * 160 + 20..31 * 160],
        &isc::proto::rtp::g711::decode_slice(&isc::proto::rtp::g711::encode_slice(
            &src[30 * 160 + 20..31 * 160]
        ))[..]
    );
}

#[test]
fn a_new_ssrc_starts_the_stream_over() {
    let t0 = Instant::now();
    let sink = MemorySink::new(8000);
    let played = sink.tap();
    let mut p = Player::new(PlayerConfig::new(1, "me"), Box::new(sink), t0);
    let src = sine(1000.0, 8000);
    let mut arrivals = audio_arrivals(t0, &src, 7, |_| false);
    // the sender restarts with a new SSRC, sequence and timestamp right after
    let mut tx = PcmuPacketizer::new(8, 40_000, 999_999, SAMPLES_PER_20MS);
    for (i, pk) in tx.push(&src).into_iter().enumerate() {
        arrivals.push((
            t0 + Duration::from_millis(1000 + 20 * i as u64),
            Media::Audio,
            Port::Rtp,
            peer(5002),
            pk.to_bytes().unwrap(),
        ));
    }
    let events = drive(&mut p, arrivals, t0 + Duration::from_secs(3));
    assert!(events.iter().any(|e| matches!(
        e,
        PlayerEvent::SourceChanged {
            media: Media::Audio,
            ssrc: 8
        }
    )));
    let stats = p.finish().unwrap();
    assert_eq!(stats.audio.ssrc, Some(8));
    assert_eq!(stats.audio.ssrc_changes, 1);
    let n = played.lock().unwrap().len();
    assert!(n.abs_diff(16_000) <= 160, "{n}");
}

fn sr(ssrc: u32, ts: u32) -> Vec<u8> {
    build_compound(&[RtcpPacket::SenderReport(SenderReport {
        ssrc,
        info: SenderInfo {
            ntp: NtpTime::from_unix(Duration::from_secs(1_800_000_000)),
            rtp_timestamp: ts,
            packet_count: 1,
            octet_count: 160,
        },
        reports: vec![],
        extension: vec![],
    })])
    .unwrap()
}

#[test]
fn receiver_reports_go_to_the_sr_source_on_its_port() {
    for mux in [false, true] {
        let t0 = Instant::now();
        let mut cfg = PlayerConfig::new(0xabc, "me@here");
        cfg.rr_interval = Duration::from_secs(1);
        let mut p = Player::new(cfg, Box::new(MemorySink::new(8000)), t0);
        let mut arrivals = audio_arrivals(t0, &sine(1000.0, 8000 * 3), 7, |_| false);
        let port = if mux { Port::Rtp } else { Port::Rtcp };
        arrivals.push((
            t0 + Duration::from_millis(50),
            Media::Audio,
            port,
            peer(6001),
            sr(7, 5400),
        ));
        let mut rrs = Vec::new();
        let mut now = t0;
        arrivals.sort_by_key(|a| a.0);
        let mut it = arrivals.into_iter().peekable();
        while now < t0 + Duration::from_secs(3) {
            while let Some((_, m, pt, from, b)) = it.next_if(|a| a.0 <= now) {
                p.handle_datagram(now, m, pt, from, &b);
            }
            p.handle_timeout(now);
            rrs.extend(std::iter::from_fn(|| p.poll_transmit()));
            now += Duration::from_millis(5);
        }
        assert!(rrs.len() >= 2, "mux {mux}: {} RRs", rrs.len());
        for t in &rrs {
            assert_eq!(
                (t.media, t.from_port, t.to),
                (Media::Audio, port, peer(6001))
            );
            let pkts = parse_compound(&t.bytes).unwrap();
            let RtcpPacket::ReceiverReport(rr) = &pkts[0] else {
                panic!("{pkts:?}")
            };
            assert_eq!(rr.ssrc, 0xabc);
            assert!(matches!(
                pkts.get(1),
                Some(RtcpPacket::SourceDescription(_))
            ));
            let block = rr.reports.first().unwrap();
            assert_eq!(block.ssrc, 7);
            // LSR echoes the SR (RFC 3550 §6.4.1)
            assert_eq!(
                block.last_sr,
                NtpTime::from_unix(Duration::from_secs(1_800_000_000)).middle32()
            );
        }
    }
}

#[test]
fn video_without_audio_shows_frames_as_they_come() {
    let t0 = Instant::now();
    let mut p = Player::new(
        PlayerConfig::new(1, "me"),
        Box::new(MemorySink::new(8000)),
        t0,
    );
    let mut tx = JpegPacketizer::new(9, 1, 1000);
    let mut arrivals = Vec::new();
    for i in 0..10u32 {
        let mut f = RgbFrame::new(32, 16);
        f.data.iter_mut().for_each(|b| *b = (i * 20) as u8);
        let jpeg = encode_rgb(&f, 80).unwrap();
        for pk in tx.packetize(&jpeg, i * 9000).unwrap() {
            arrivals.push((
                t0 + Duration::from_millis(100 * u64::from(i)),
                Media::Video,
                Port::Rtp,
                peer(7000),
                pk.to_bytes().unwrap(),
            ));
        }
    }
    let events = drive(&mut p, arrivals, t0 + Duration::from_secs(2));
    let frames: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            PlayerEvent::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 10);
    assert_eq!((frames[0].rgb.width, frames[0].rgb.height), (32, 16));
    assert!(frames.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
    assert_eq!(p.stats().frames_decoded, 10);
}

#[test]
fn wrong_payload_types_and_garbage_are_counted_not_played() {
    let t0 = Instant::now();
    let mut p = Player::new(
        PlayerConfig::new(1, "me"),
        Box::new(MemorySink::new(8000)),
        t0,
    );
    let pcma = RtpPacket::new(8, 1, 0, 5, vec![0; 160]).to_bytes().unwrap();
    p.handle_datagram(t0, Media::Audio, Port::Rtp, peer(1), &pcma);
    p.handle_datagram(t0, Media::Audio, Port::Rtp, peer(1), b"hello");
    p.handle_datagram(t0, Media::Video, Port::Rtcp, peer(1), b"\x80\xc8");
    let s = p.stats();
    assert_eq!(
        (
            s.audio.malformed,
            s.video.malformed,
            s.audio.packets_received
        ),
        (2, 1, 0)
    );
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(
        dgrams in proptest::collection::vec((any::<bool>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..1500)), 1..40)
    ) {
        let t0 = Instant::now();
        let mut p = Player::new(PlayerConfig::new(1, "me"), Box::new(MemorySink::new(8000)), t0);
        for (i, (video, rtcp, bytes)) in dgrams.iter().enumerate() {
            let now = t0 + Duration::from_millis(7 * i as u64);
            let media = if *video { Media::Video } else { Media::Audio };
            let port = if *rtcp { Port::Rtcp } else { Port::Rtp };
            p.handle_datagram(now, media, port, peer(1), bytes);
            p.handle_timeout(now);
            while p.poll_event().is_some() {}
            while p.poll_transmit().is_some() {}
            let _ = p.poll_timeout();
        }
        p.handle_timeout(t0 + Duration::from_secs(5));
        let _ = p.finish();
    }
}

#[test]
fn events_serialize_for_the_headless_client() {
    let t0 = Instant::now();
    let mut p = Player::new(
        PlayerConfig::new(1, "me"),
        Box::new(MemorySink::new(8000)),
        t0,
    );
    let events = drive(
        &mut p,
        audio_arrivals(t0, &sine(1000.0, 8000), 7, |_| false),
        t0 + Duration::from_millis(1500),
    );
    let stats = events
        .iter()
        .find(|e| matches!(e, PlayerEvent::Stats(_)))
        .map(PlayerEvent::to_json)
        .unwrap();
    assert_eq!(stats["event"], "stats");
    assert_eq!(stats["stats"]["audio"]["ssrc"], 7);
    assert_eq!(stats["stats"]["sink"], "memory");
    assert!(
        stats["stats"]["audio"]["packets_received"]
            .as_u64()
            .unwrap()
            >= 40
    );
    let bye = PlayerEvent::Bye {
        media: Media::Video,
        ssrc: 3,
        reason: None,
    }
    .to_json();
    assert_eq!(
        bye,
        serde_json::json!({"event": "bye", "media": "video", "ssrc": 3, "reason": null})
    );
}
