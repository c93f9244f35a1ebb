//! The pieces together, sans IO: shipped content → PCMU + RFC 2435 packets →
//! a lossy, jittery virtual network → jitter buffers → PCMU decode and JPEG
//! reassembly/decode, as the server's streamer and the client's player will.

use std::path::Path;
use std::time::{Duration, Instant};

use isc::media::content::Content;
use isc::proto::rtp::g711::{self, PcmuPacketizer, SAMPLES_PER_20MS};
use isc::proto::rtp::jpeg::{JpegDepacketizer, JpegPacketizer};
use isc::proto::rtp::jpeg_codec::decode_rgb;
use isc::proto::rtp::{
    JPEG_CLOCK_RATE, JitterBuffer, JitterConfig, PT_JPEG, PT_PCMU, Playout, ReceiverStats,
    RtpPacket,
};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn test_card_streams_through_a_lossy_network() {
    let content =
        Content::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/content/test-card"))
            .unwrap();
    let video = content.video.as_ref().unwrap();
    let t0 = Instant::now();

    // sender: audio every 20 ms, video every 1/fps, both stamped from the shared timeline
    let mut sent: Vec<(Instant, RtpPacket)> = Vec::new();
    let mut audio_tx = PcmuPacketizer::new(0xa, 1000, 0, SAMPLES_PER_20MS);
    for (i, chunk) in content.audio.samples.chunks(SAMPLES_PER_20MS).enumerate() {
        for p in audio_tx.push(chunk) {
            sent.push((t0 + Duration::from_millis(20 * i as u64), p));
        }
    }
    let mut video_tx = JpegPacketizer::new(0xb, 60000, 1200);
    let frame_ts = JPEG_CLOCK_RATE / video.fps;
    for (i, frame) in video.frames.iter().enumerate() {
        let at = t0 + Duration::from_secs_f64(i as f64 / f64::from(video.fps));
        for p in video_tx
            .packetize(&frame.jpeg, 7 + frame_ts * i as u32)
            .unwrap()
        {
            sent.push((at, p));
        }
    }
    let audio_sent = sent
        .iter()
        .filter(|(_, p)| p.payload_type == PT_PCMU)
        .count();

    // network: 20-60 ms delay, 1 % loss
    let mut rng = Lcg(7);
    let mut arrivals: Vec<(Instant, RtpPacket)> = Vec::new();
    for (at, p) in sent {
        if rng.next(100) != 0 {
            arrivals.push((at + Duration::from_millis(20 + rng.next(41)), p));
        }
    }
    arrivals.sort_by_key(|(at, _)| *at);

    // receiver
    let mut audio_jb = JitterBuffer::new(JitterConfig::audio());
    let mut video_jb = JitterBuffer::new(JitterConfig::video());
    let mut audio_stats = ReceiverStats::new(8000);
    let mut depacketizer = JpegDepacketizer::new();
    let (mut audio_out, mut concealed, mut frames_ok) = (0usize, 0usize, 0usize);
    let mut arrivals = arrivals.into_iter().peekable();
    let mut now = t0;
    while now < t0 + content.duration + Duration::from_secs(1) {
        while arrivals.peek().is_some_and(|(at, _)| *at <= now) {
            let (at, p) = arrivals.next().unwrap();
            let wire = RtpPacket::parse(&p.to_bytes().unwrap()).unwrap();
            if wire.payload_type == PT_PCMU {
                audio_stats.on_packet(at, &wire);
                audio_jb.push(at, wire);
            } else {
                assert_eq!(wire.payload_type, PT_JPEG);
                video_jb.push(at, wire);
            }
        }
        while let Some(out) = audio_jb.pop(now) {
            match out {
                Playout::Packet(p) => {
                    audio_out += g711::decode_slice(&p.payload).len() / SAMPLES_PER_20MS
                }
                Playout::Lost { .. } => concealed += 1,
            }
        }
        while let Some(out) = video_jb.pop(now) {
            if let Playout::Packet(p) = out
                && let Some(frame) = depacketizer.push(&p).unwrap()
            {
                let index = ((frame.timestamp - 7) / frame_ts) as usize;
                assert_eq!(
                    decode_rgb(&frame.jpeg).unwrap().data,
                    video.frames[index].rgb
                );
                frames_ok += 1;
            }
        }
        now += Duration::from_millis(5);
    }

    // every audio slot was either played or concealed, and losses match RTCP's count
    assert_eq!(audio_out + concealed, audio_sent);
    assert!(
        concealed > 0 && concealed < audio_sent / 20,
        "{concealed} concealed"
    );
    let block = audio_stats.report_block(now).unwrap();
    assert_eq!(block.cumulative_lost as usize, concealed);
    // a lost fragment costs its whole frame; 1 % packet loss keeps most frames
    assert!(
        frames_ok >= video.frames.len() * 8 / 10,
        "{frames_ok} of {}",
        video.frames.len()
    );
    assert_eq!(
        frames_ok as u64 + depacketizer.frames_dropped,
        video.frames.len() as u64
    );
}
