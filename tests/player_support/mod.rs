//! Shared by the player tests: a real-time RTP sender of shipped content
//! (the proto::rtp packetizers over real UDP sockets), a lossy UDP shim, and
//! signal checks (cross-correlation, beep onsets, white-border frames).
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use isc::media::content::Content;
use isc::proto::rtp::g711::{PcmuPacketizer, SAMPLES_PER_20MS};
use isc::proto::rtp::jpeg::JpegPacketizer;
use isc::proto::rtp::jpeg_codec::RgbFrame;
use isc::proto::rtp::rtcp::{Bye, SdesChunk, SenderReport, build_compound, parse_compound};
use isc::proto::rtp::{JPEG_CLOCK_RATE, NtpTime, RtcpPacket, RtpPacket, SenderStats};

pub fn test_card() -> Content {
    Content::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/content/test-card"),
    )
    .unwrap()
}

/// Where the sender sends each stream: RTP to `rtp`, SRs to `rtcp`.
#[derive(Debug, Clone, Copy)]
pub struct Dest {
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
}

#[derive(Debug, Default)]
pub struct SendReport {
    pub audio_packets: usize,
    pub video_frames: usize,
    pub video_packets: usize,
    /// Receiver reports that came back to our RTCP sockets.
    pub receiver_reports: u64,
}

pub const AUDIO_SSRC: u32 = 0x00a0_d10a;
pub const VIDEO_SSRC: u32 = 0x0011_de0b;
/// Unrelated RTP origins: only SRs can line the streams up.
pub const AUDIO_TS0: u32 = 4_000_000_000;
pub const VIDEO_TS0: u32 = 123_456;

enum Item {
    Audio(RtpPacket),
    Video(Vec<RtpPacket>),
    Sr,
}

/// Stream `content` at real time: 20 ms PCMU packets, RFC 2435 frames at the
/// content's fps, an SR per stream every second (both from one wall clock),
/// a BYE at the end. Blocks until done.
pub fn send_content(content: &Content, audio: Dest, video: Dest) -> SendReport {
    let a_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a_rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let v_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let v_rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let rrs = Arc::new(AtomicU64::new(0));
    let listeners: Vec<_> = [&a_rtcp, &v_rtcp]
        .into_iter()
        .map(|s| {
            let s = s.try_clone().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let (done, rrs) = (done.clone(), rrs.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !done.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = s.recv_from(&mut buf)
                        && let Ok(pkts) = parse_compound(&buf[..n])
                        && pkts
                            .iter()
                            .any(|p| matches!(p, RtcpPacket::ReceiverReport(_)))
                    {
                        rrs.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let mut schedule: Vec<(Duration, Item)> = Vec::new();
    let mut atx = PcmuPacketizer::new(AUDIO_SSRC, 17, AUDIO_TS0, SAMPLES_PER_20MS);
    let mut report = SendReport::default();
    for (i, chunk) in content.audio.samples.chunks(SAMPLES_PER_20MS).enumerate() {
        for p in atx.push(chunk) {
            schedule.push((Duration::from_millis(20 * i as u64), Item::Audio(p)));
        }
    }
    if let Some(p) = atx.flush() {
        let at =
            Duration::from_millis(20 * (content.audio.samples.len() / SAMPLES_PER_20MS) as u64);
        schedule.push((at, Item::Audio(p)));
    }
    if let Some(v) = &content.video {
        let mut vtx = JpegPacketizer::new(VIDEO_SSRC, 60_000, 1200);
        let step = JPEG_CLOCK_RATE / v.fps;
        for (i, f) in v.frames.iter().enumerate() {
            let at = Duration::from_secs_f64(i as f64 / f64::from(v.fps));
            let ts = VIDEO_TS0.wrapping_add(step * i as u32);
            schedule.push((at, Item::Video(vtx.packetize(&f.jpeg, ts).unwrap())));
        }
    }
    for s in 0..=content.duration.as_secs() {
        schedule.push((Duration::from_secs(s), Item::Sr));
    }
    schedule.sort_by_key(|(at, _)| *at);

    let wall0 = SystemTime::now();
    let t0 = Instant::now();
    let (mut a_stats, mut v_stats) = (SenderStats::default(), SenderStats::default());
    let sr = |ssrc: u32, stats: &SenderStats, ntp: NtpTime, ts: u32| {
        build_compound(&[
            RtcpPacket::SenderReport(SenderReport {
                ssrc,
                info: stats.sender_info(ntp, ts),
                reports: vec![],
                extension: vec![],
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(ssrc, "sender@test")]),
        ])
        .unwrap()
    };
    for (at, item) in schedule {
        let due = t0 + at;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        match item {
            Item::Audio(p) => {
                a_stats.on_sent(&p);
                a_rtp.send_to(&p.to_bytes().unwrap(), audio.rtp).unwrap();
                report.audio_packets += 1;
            }
            Item::Video(ps) => {
                for p in ps {
                    v_stats.on_sent(&p);
                    v_rtp.send_to(&p.to_bytes().unwrap(), video.rtp).unwrap();
                    report.video_packets += 1;
                }
                report.video_frames += 1;
            }
            Item::Sr => {
                // the instant `at` of the shared media timeline, on both clocks
                let ntp = NtpTime::from_system_time(wall0 + at);
                let a_ts = AUDIO_TS0.wrapping_add((at.as_secs_f64() * 8000.0) as u32);
                let v_ts = VIDEO_TS0.wrapping_add((at.as_secs_f64() * 90_000.0) as u32);
                a_rtcp
                    .send_to(&sr(AUDIO_SSRC, &a_stats, ntp, a_ts), audio.rtcp)
                    .unwrap();
                v_rtcp
                    .send_to(&sr(VIDEO_SSRC, &v_stats, ntp, v_ts), video.rtcp)
                    .unwrap();
            }
        }
    }
    std::thread::sleep(Duration::from_millis(600));
    for (sock, ssrc, to) in [
        (&a_rtcp, AUDIO_SSRC, audio.rtcp),
        (&v_rtcp, VIDEO_SSRC, video.rtcp),
    ] {
        let bye = build_compound(&[RtcpPacket::Bye(Bye {
            sources: vec![ssrc],
            reason: Some("end of content".into()),
        })])
        .unwrap();
        sock.send_to(&bye, to).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for l in listeners {
        l.join().unwrap();
    }
    report.receiver_reports = rrs.load(Ordering::Relaxed);
    report
}

/// Counts of what the shim did.
#[derive(Debug, Default)]
pub struct ShimCounts {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
}

/// A UDP relay towards `target` that drops, duplicates and reorders
/// (swaps a packet with the next one) with the given percentages.
pub struct Shim {
    pub addr: SocketAddr,
    pub counts: Arc<ShimCounts>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shim {
    pub fn spawn(
        target: SocketAddr,
        drop_pct: u64,
        dup_pct: u64,
        reorder_pct: u64,
        seed: u64,
    ) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let counts = Arc::new(ShimCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (counts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut rng = Lcg(seed);
            let mut held: Option<Vec<u8>> = None;
            let mut buf = [0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    // idle: release a held packet
                    if let Some(h) = held.take() {
                        let _ = sock.send_to(&h, target);
                    }
                    continue;
                };
                let pkt = buf[..n].to_vec();
                if rng.below(100) < drop_pct {
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if held.is_none() && rng.below(100) < reorder_pct {
                    c.reordered.fetch_add(1, Ordering::Relaxed);
                    held = Some(pkt);
                    continue;
                }
                let _ = sock.send_to(&pkt, target);
                c.forwarded.fetch_add(1, Ordering::Relaxed);
                if rng.below(100) < dup_pct {
                    let _ = sock.send_to(&pkt, target);
                    c.duplicated.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(h) = held.take() {
                    let _ = sock.send_to(&h, target);
                    c.forwarded.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            addr,
            counts,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Lcg(pub u64);
impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Best normalized cross-correlation of `got` against `want` over lags
/// within ±`max_lag` samples: (ncc, lag).
pub fn best_ncc(want: &[i16], got: &[i16], max_lag: i64) -> (f64, i64) {
    let mut best = (f64::MIN, 0);
    for lag in -max_lag..=max_lag {
        let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &x) in want.iter().enumerate() {
            let j = i as i64 + lag;
            let y = if j >= 0 {
                got.get(j as usize).copied().unwrap_or(0)
            } else {
                0
            };
            let (x, y) = (f64::from(x), f64::from(y));
            xy += x * y;
            xx += x * x;
            yy += y * y;
        }
        let ncc = xy / (xx.sqrt() * yy.sqrt()).max(1e-9);
        if ncc > best.0 {
            best = (ncc, lag);
        }
    }
    best
}

/// Sample indices where a beep starts: |s| over `level` after at least
/// half a second below it.
pub fn beep_onsets(samples: &[i16], rate: u32, level: i16) -> Vec<usize> {
    let quiet = rate as usize / 2;
    let mut last_loud: Option<usize> = None;
    let mut onsets = Vec::new();
    for (i, &s) in samples.iter().enumerate() {
        if s.unsigned_abs() > level.unsigned_abs() {
            if last_loud.is_none_or(|l| i - l > quiet) {
                onsets.push(i);
            }
            last_loud = Some(i);
        }
    }
    onsets
}

/// The test card's sync frame: a white border (row 1 white across).
pub fn has_white_border(f: &RgbFrame) -> bool {
    let w = usize::from(f.width);
    let row = f.data.get(w * 3..w * 6).unwrap_or(&[]);
    let mean = row.iter().map(|&b| u64::from(b)).sum::<u64>() as f64 / row.len().max(1) as f64;
    mean > 200.0
}

pub fn read_wav(path: &std::path::Path) -> (u32, Vec<i16>) {
    let r = hound::WavReader::open(path).unwrap();
    let rate = r.spec().sample_rate;
    (rate, r.into_samples::<i16>().map(Result::unwrap).collect())
}
