//! The embedded player, sans-IO: RTP/RTCP datagrams and `now` in; audio into
//! an [`AudioSink`], video frames and stats out as [`PlayerEvent`]s, RTCP
//! receiver reports out as [`Transmit`]s. The tokio driver is
//! `net::rtp_socket`; tests drive it by hand.
//!
//! Audio is the master clock: the sink's played-sample count maps (through
//! [`AudioClock`]) to the audio RTP time being heard, sender reports map both
//! streams' RTP time to the sender's wall clock ([`AvSync`]), and a video frame
//! is shown once the audio heard has reached its time; frames already
//! overtaken by a newer due frame are dropped as late.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::audio_out::{AudioSink, SinkKind};
use super::clock::{AudioClock, AvSync, SyncBasis};
use super::resample::Resampler;
use super::video::{FrameQueue, QueuedFrame};
use crate::proto::rtp::jpeg::JpegDepacketizer;
use crate::proto::rtp::jpeg_codec::{RgbFrame, decode_rgb};
use crate::proto::rtp::rtcp::{ReceiverReport, SdesChunk, build_compound, parse_compound};
use crate::proto::rtp::{
    JPEG_CLOCK_RATE, JitterBuffer, JitterConfig, PCMU_CLOCK_RATE, PT_JPEG, PT_PCMU, Playout,
    ReceiverStats, RtcpPacket, RtpPacket, g711,
};

/// Which stream a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    Audio,
    Video,
}

/// Which socket of a stream's pair: RTP on the even port, RTCP on port + 1.
/// With rtcp-mux (RFC 5761) RTCP arrives on the RTP port and replies leave from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    Rtp,
    Rtcp,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub media: Media,
    /// The local socket to send from.
    pub from_port: Port,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// A frame whose time has come, for the TUI to draw with
/// [`super::video::render_half_blocks`].
#[derive(Debug, Clone)]
pub struct PresentedFrame {
    pub rgb: Arc<RgbFrame>,
    /// RTP timestamp (90 kHz) of the frame.
    pub timestamp: u32,
    /// The audio clock when it was shown: samples played / output rate.
    pub audio_position: Duration,
    /// Audio time minus the frame's time, in ms (positive: video behind audio).
    pub av_offset_ms: Option<f64>,
}

/// What the player tells its owner.
#[derive(Debug, Clone)]
pub enum PlayerEvent {
    Frame(PresentedFrame),
    /// Every `stats_interval`.
    Stats(Box<PlayerStats>),
    /// A stream's sender changed (new SSRC): its buffers started over.
    SourceChanged {
        media: Media,
        ssrc: u32,
    },
    /// The sender said goodbye (RTCP BYE).
    Bye {
        media: Media,
        ssrc: u32,
        reason: Option<String>,
    },
}

impl PlayerEvent {
    /// The event as one JSON object for the headless client (frames as their
    /// timing and size, not their pixels).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            PlayerEvent::Frame(f) => json!({
                "event": "frame",
                "timestamp": f.timestamp,
                "width": f.rgb.width,
                "height": f.rgb.height,
                "audio_position_s": f.audio_position.as_secs_f64(),
                "av_offset_ms": f.av_offset_ms,
            }),
            PlayerEvent::Stats(s) => json!({ "event": "stats", "stats": s }),
            PlayerEvent::SourceChanged { media, ssrc } => {
                json!({ "event": "source_changed", "media": media, "ssrc": ssrc })
            }
            PlayerEvent::Bye {
                media,
                ssrc,
                reason,
            } => {
                json!({ "event": "bye", "media": media, "ssrc": ssrc, "reason": reason })
            }
        }
    }
}

/// Per-stream figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamStats {
    pub ssrc: Option<u32>,
    pub packets_received: u64,
    /// RFC 3550 A.3 cumulative loss (expected − received).
    pub packets_lost: i64,
    /// Lost / expected, 0–1.
    pub loss_fraction: f64,
    /// Gaps the jitter buffer reported at playout (concealed for audio).
    pub playout_gaps: u64,
    pub late: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// RFC 3550 A.8 interarrival jitter.
    pub jitter_ms: f64,
    /// Packets in the jitter buffer and its target delay.
    pub buffer_depth: usize,
    pub buffer_delay_ms: f64,
    pub ssrc_changes: u64,
    pub sender_reports: u64,
    pub receiver_reports_sent: u64,
    /// Datagrams that were not valid RTP/RTCP for this stream.
    pub malformed: u64,
}

/// Everything the stats pane and the headless JSON events show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerStats {
    pub audio: StreamStats,
    pub video: StreamStats,
    pub sink: SinkKind,
    pub output_rate: u32,
    /// Seconds of audio played.
    pub audio_played_s: f64,
    /// Audio packets replaced by concealment.
    pub audio_concealed: u64,
    pub audio_underruns: u64,
    pub sync: SyncBasis,
    /// Last presented frame's audio − video time, ms.
    pub av_offset_ms: Option<f64>,
    pub max_abs_av_offset_ms: f64,
    /// Frames decoded in the last second.
    pub decoded_fps: f64,
    pub frames_decoded: u64,
    pub frames_presented: u64,
    /// Overtaken by a newer frame before their turn, or pushed out of the queue.
    pub frames_dropped: u64,
    /// Abandoned incomplete by the depacketizer, or undecodable.
    pub frames_broken: u64,
}

/// Tuning of a [`Player`].
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Our SSRC in receiver reports.
    pub ssrc: u32,
    pub cname: String,
    /// Receiver reports every this often (RFC 3550 §6.2: 5 s minimum).
    pub rr_interval: Duration,
    pub stats_interval: Duration,
    pub audio_jitter: JitterConfig,
    pub video_jitter: JitterConfig,
    /// Decoded frames waiting for their turn, at most.
    pub video_queue: usize,
    /// Video shows without waiting for audio once no audio came for this long.
    pub audio_timeout: Duration,
}

impl PlayerConfig {
    pub fn new(ssrc: u32, cname: impl Into<String>) -> Self {
        Self {
            ssrc,
            cname: cname.into(),
            rr_interval: Duration::from_secs(5),
            stats_interval: Duration::from_secs(1),
            // audio waits at least as long as video plus a decode margin, so
            // a frame is ready when its sound plays (audio is the master)
            audio_jitter: JitterConfig {
                min_delay: Duration::from_millis(120),
                ..JitterConfig::audio()
            },
            video_jitter: JitterConfig::video(),
            video_queue: 8,
            audio_timeout: Duration::from_secs(1),
        }
    }
}

/// Concealment: the first lost packet repeats the last one at this gain, each
/// further one at this gain again, and after [`CONCEAL_MAX`] it is silence.
const CONCEAL_GAIN: f32 = 0.5;
const CONCEAL_MAX: u32 = 3;
/// Crossfade at every splice into and out of concealment (2 ms at 8 kHz).
const SPLICE: usize = 16;

/// One received stream: sequence/timestamp handling and RTCP bookkeeping.
#[derive(Debug)]
struct Stream {
    clock_rate: u32,
    jitter_config: JitterConfig,
    jb: JitterBuffer,
    rx: ReceiverStats,
    ssrc: Option<u32>,
    /// Where this sender's SRs came from, and on which of our sockets.
    rtcp_peer: Option<(SocketAddr, Port)>,
    next_rr: Option<Instant>,
    last_packet: Option<Instant>,
    /// Latest SR: (SSRC, arrival, NTP, RTP timestamp). An SR that came before
    /// the source's first RTP packet is applied again once the source starts.
    last_sr: Option<(u32, Instant, crate::proto::rtp::NtpTime, u32)>,
    stats: StreamStats,
    /// Jitter-buffer counters of earlier sources, kept across SSRC changes.
    past: StreamStats,
}

impl Stream {
    fn new(clock_rate: u32, jitter_config: JitterConfig) -> Self {
        Self {
            clock_rate,
            jitter_config,
            jb: JitterBuffer::new(jitter_config),
            rx: ReceiverStats::new(clock_rate),
            ssrc: None,
            rtcp_peer: None,
            next_rr: None,
            last_packet: None,
            last_sr: None,
            stats: StreamStats::default(),
            past: StreamStats::default(),
        }
    }

    /// A new sender: buffers and statistics start over.
    fn reset(&mut self, ssrc: u32) {
        let jb = self.jb.stats();
        self.past.playout_gaps += jb.lost;
        self.past.late += jb.late;
        self.past.duplicates += jb.duplicates;
        self.past.reordered += jb.reordered;
        self.jb = JitterBuffer::new(self.jitter_config);
        self.rx = ReceiverStats::new(self.clock_rate);
        self.ssrc = Some(ssrc);
        self.stats.ssrc_changes += 1;
    }

    fn snapshot(&self) -> StreamStats {
        let jb = self.jb.stats();
        let expected = u64::from(self.rx.expected());
        let lost = i64::from(self.rx.cumulative_lost());
        StreamStats {
            ssrc: self.ssrc,
            packets_lost: lost,
            loss_fraction: if expected == 0 {
                0.0
            } else {
                lost.max(0) as f64 / expected as f64
            },
            playout_gaps: self.past.playout_gaps + jb.lost,
            late: self.past.late + jb.late,
            duplicates: self.past.duplicates + jb.duplicates,
            reordered: self.past.reordered + jb.reordered,
            jitter_ms: self.rx.jitter_duration().as_secs_f64() * 1000.0,
            buffer_depth: jb.depth,
            buffer_delay_ms: jb.target_delay.as_secs_f64() * 1000.0,
            ..self.stats.clone()
        }
    }
}

/// Audio decode, concealment and output.
struct AudioPath {
    sink: Box<dyn AudioSink>,
    resampler: Resampler,
    clock: AudioClock,
    /// Output samples written to the sink.
    written: u64,
    /// Samples played by the sink at the last `advance`.
    played: u64,
    /// Last good packet (8 kHz) and the timestamp after it.
    last_frame: Vec<i16>,
    next_ts: Option<u32>,
    /// Consecutive concealed packets.
    concealing: u32,
    last_sample: i16,
    concealed: u64,
    scratch: Vec<i16>,
}

impl AudioPath {
    fn new(sink: Box<dyn AudioSink>) -> Self {
        let rate = sink.sample_rate();
        Self {
            sink,
            resampler: Resampler::new(PCMU_CLOCK_RATE, rate),
            clock: AudioClock::new(PCMU_CLOCK_RATE, rate),
            written: 0,
            played: 0,
            last_frame: Vec::new(),
            next_ts: None,
            concealing: 0,
            last_sample: 0,
            concealed: 0,
            scratch: Vec::new(),
        }
    }

    fn play(&mut self, now: Instant, packet: &RtpPacket) {
        let mut samples = g711::decode_slice(&packet.payload);
        if self.concealing > 0 {
            splice(self.last_sample, &mut samples);
        }
        self.concealing = 0;
        self.next_ts = Some(packet.timestamp.wrapping_add(samples.len() as u32));
        self.output(now, packet.timestamp, &samples);
        self.last_frame = samples;
    }

    /// Repeat the last packet, fading by [`CONCEAL_GAIN`] per packet, then silence.
    fn conceal(&mut self, now: Instant) {
        let (Some(ts), false) = (self.next_ts, self.last_frame.is_empty()) else {
            return;
        };
        self.concealing += 1;
        self.concealed += 1;
        let n = self.last_frame.len();
        let g0 = if self.concealing > CONCEAL_MAX {
            0.0
        } else {
            CONCEAL_GAIN.powi(self.concealing as i32 - 1)
        };
        let g1 = if self.concealing >= CONCEAL_MAX {
            0.0
        } else {
            g0 * CONCEAL_GAIN
        };
        let mut samples: Vec<i16> = self
            .last_frame
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                // gain glides from g0 to g1 over the packet: no step
                let g = g0 + (g1 - g0) * i as f32 / n as f32;
                (f32::from(s) * g) as i16
            })
            .collect();
        splice(self.last_sample, &mut samples);
        self.next_ts = Some(ts.wrapping_add(n as u32));
        self.output(now, ts, &samples);
    }

    fn output(&mut self, now: Instant, timestamp: u32, samples: &[i16]) {
        if let Some(&last) = samples.last() {
            self.last_sample = last;
        }
        self.scratch.clear();
        self.resampler.process_into(samples, &mut self.scratch);
        self.clock.on_write(self.written, timestamp);
        self.sink.write(now, &self.scratch);
        self.written += self.scratch.len() as u64;
    }
}

/// Crossfade from a held `from` sample into `samples` over [`SPLICE`] samples.
fn splice(from: i16, samples: &mut [i16]) {
    let n = SPLICE.min(samples.len());
    for (i, s) in samples.iter_mut().take(n).enumerate() {
        let w = (i + 1) as f32 / (n + 1) as f32;
        *s = (f32::from(from) * (1.0 - w) + f32::from(*s) * w) as i16;
    }
}

/// Video reassembly, decode and presentation.
#[derive(Debug)]
struct VideoPath {
    depacketizer: JpegDepacketizer,
    queue: FrameQueue,
    decoded: u64,
    presented: u64,
    dropped: u64,
    decode_errors: u64,
    decode_times: VecDeque<Instant>,
}

/// The player. See the module docs.
pub struct Player {
    config: PlayerConfig,
    epoch: Instant,
    now: Instant,
    audio: Stream,
    video: Stream,
    out: AudioPath,
    vid: VideoPath,
    sync: AvSync,
    av_offset_ms: Option<f64>,
    max_abs_av_offset_ms: f64,
    next_stats: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<PlayerEvent>,
}

/// RFC 5761 §4: RTCP packet types 192–223 in the second byte tell RTCP from RTP.
pub fn is_rtcp(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && (192..=223).contains(&bytes[1])
}

impl Player {
    /// A player writing audio to `sink`, started at `now`.
    pub fn new(config: PlayerConfig, sink: Box<dyn AudioSink>, now: Instant) -> Self {
        let next_stats = now + config.stats_interval;
        Self {
            audio: Stream::new(PCMU_CLOCK_RATE, config.audio_jitter),
            video: Stream::new(JPEG_CLOCK_RATE, config.video_jitter),
            vid: VideoPath {
                depacketizer: JpegDepacketizer::new(),
                queue: FrameQueue::new(config.video_queue),
                decoded: 0,
                presented: 0,
                dropped: 0,
                decode_errors: 0,
                decode_times: VecDeque::new(),
            },
            out: AudioPath::new(sink),
            sync: AvSync::new(now),
            config,
            epoch: now,
            now,
            av_offset_ms: None,
            max_abs_av_offset_ms: 0.0,
            next_stats,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    fn stream(&mut self, media: Media) -> &mut Stream {
        match media {
            Media::Audio => &mut self.audio,
            Media::Video => &mut self.video,
        }
    }

    /// A datagram arrived on `media`'s `port` from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        media: Media,
        port: Port,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        self.now = self.now.max(now);
        if port == Port::Rtcp || is_rtcp(bytes) {
            self.handle_rtcp(now, media, port, from, bytes);
        } else {
            self.handle_rtp(now, media, bytes);
        }
    }

    fn handle_rtp(&mut self, now: Instant, media: Media, bytes: &[u8]) {
        let want_pt = match media {
            Media::Audio => PT_PCMU,
            Media::Video => PT_JPEG,
        };
        let packet = match RtpPacket::parse(bytes) {
            Ok(p) if p.payload_type == want_pt => p,
            _ => {
                self.stream(media).stats.malformed += 1;
                return;
            }
        };
        let mut replay_sr = None;
        if self.stream(media).ssrc != Some(packet.ssrc) {
            replay_sr = self.stream(media).last_sr.filter(|sr| sr.0 == packet.ssrc);
            // RFC 3550 §8.2: a new SSRC is a new source; start over with it
            let first = self.stream(media).ssrc.is_none();
            if media == Media::Audio {
                // what the old source left in the buffer plays out now, not lost
                let later = now + Duration::from_secs(3600);
                while let Some(p) = self.audio.jb.pop(later) {
                    match p {
                        Playout::Packet(old) => self.out.play(now, &old),
                        Playout::Lost { .. } => self.out.conceal(now),
                    }
                }
            }
            let s = self.stream(media);
            s.reset(packet.ssrc);
            if first {
                s.stats.ssrc_changes = 0;
            } else {
                self.events.push_back(PlayerEvent::SourceChanged {
                    media,
                    ssrc: packet.ssrc,
                });
            }
            let epoch = self.epoch;
            match media {
                Media::Audio => {
                    self.sync.audio = super::clock::StreamClock::new(PCMU_CLOCK_RATE, epoch);
                }
                Media::Video => {
                    self.sync.video = super::clock::StreamClock::new(JPEG_CLOCK_RATE, epoch);
                    self.vid.queue.clear();
                    self.vid.depacketizer = JpegDepacketizer::new();
                }
            }
        }
        match media {
            Media::Audio => self.sync.audio.on_packet(now, packet.timestamp),
            Media::Video => self.sync.video.on_packet(now, packet.timestamp),
        }
        let s = self.stream(media);
        s.rx.on_packet(now, &packet);
        if let Some((_, at, ntp, ts)) = replay_sr {
            s.rx.on_sender_report(at, ntp);
            match media {
                Media::Audio => self.sync.audio.on_sender_report(ntp, ts),
                Media::Video => self.sync.video.on_sender_report(ntp, ts),
            }
        }
        let s = self.stream(media);
        s.stats.packets_received += 1;
        s.last_packet = Some(now);
        s.jb.push(now, packet);
    }

    fn handle_rtcp(
        &mut self,
        now: Instant,
        media: Media,
        port: Port,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        let Ok(packets) = parse_compound(bytes) else {
            self.stream(media).stats.malformed += 1;
            return;
        };
        for p in packets {
            match p {
                RtcpPacket::SenderReport(sr) => {
                    let first_rr = now + self.config.rr_interval / 2;
                    let s = self.stream(media);
                    s.last_sr = Some((sr.ssrc, now, sr.info.ntp, sr.info.rtp_timestamp));
                    if s.ssrc.is_some_and(|x| x != sr.ssrc) {
                        continue; // a source we do not play (yet): kept for when it starts
                    }
                    s.rx.on_sender_report(now, sr.info.ntp);
                    s.stats.sender_reports += 1;
                    // RRs go back where the SRs come from
                    s.rtcp_peer = Some((from, port));
                    if s.next_rr.is_none() {
                        // first report soon (RFC 3550 §6.2: half the interval at start)
                        s.next_rr = Some(first_rr);
                    }
                    match media {
                        Media::Audio => self
                            .sync
                            .audio
                            .on_sender_report(sr.info.ntp, sr.info.rtp_timestamp),
                        Media::Video => self
                            .sync
                            .video
                            .on_sender_report(sr.info.ntp, sr.info.rtp_timestamp),
                    }
                }
                RtcpPacket::Bye(bye) => {
                    let current = self.stream(media).ssrc;
                    for ssrc in bye.sources {
                        if current == Some(ssrc) {
                            self.events.push_back(PlayerEvent::Bye {
                                media,
                                ssrc,
                                reason: bye.reason.clone(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Play out what is due at `now`: audio into the sink, frames whose time
    /// has come as events, receiver reports and stats when their time comes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        // audio: jitter buffer → decode / conceal → resample → sink
        while let Some(p) = self.audio.jb.pop(now) {
            match p {
                Playout::Packet(packet) => self.out.play(now, &packet),
                Playout::Lost { .. } => self.out.conceal(now),
            }
        }
        self.out.played = self.out.sink.advance(now);
        // video: jitter buffer → reassembly → decode → queue
        while let Some(p) = self.video.jb.pop(now) {
            let Playout::Packet(packet) = p else { continue };
            match self.vid.depacketizer.push(&packet) {
                Ok(Some(frame)) => match decode_rgb(&frame.jpeg) {
                    Ok(rgb) => {
                        self.vid.decoded += 1;
                        self.vid.decode_times.push_back(now);
                        self.vid.queue.push(QueuedFrame {
                            timestamp: frame.timestamp,
                            rgb: Arc::new(rgb),
                        });
                    }
                    Err(e) => {
                        tracing::debug!("video frame: {e}");
                        self.vid.decode_errors += 1;
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("video packet: {e}");
                    self.video.stats.malformed += 1;
                }
            }
        }
        while self
            .vid
            .decode_times
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > Duration::from_secs(1))
        {
            self.vid.decode_times.pop_front();
        }
        self.present(now);
        self.send_reports(now);
        if now >= self.next_stats {
            self.next_stats = now + self.config.stats_interval;
            self.events
                .push_back(PlayerEvent::Stats(Box::new(self.stats())));
        }
    }

    /// Audio RTP time being heard now, if audio plays.
    fn audio_timestamp(&mut self) -> Option<u32> {
        self.out.clock.timestamp_at(self.out.played)
    }

    /// Whether video must wait for the audio clock.
    fn audio_alive(&self, now: Instant) -> bool {
        self.audio
            .last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.audio_timeout)
    }

    fn present(&mut self, now: Instant) {
        let audio_ts = self.audio_timestamp();
        let position = Duration::from_secs_f64(
            self.out.played as f64 / f64::from(self.out.sink.sample_rate().max(1)),
        );
        let (shown, late, offset) = match audio_ts {
            Some(ats) if self.audio_alive(now) => {
                let sync = &self.sync;
                let (shown, late) = self
                    .vid
                    .queue
                    .take_due(|f| sync.video_ahead(f.timestamp, ats).is_none_or(|a| a <= 0.0));
                let offset = shown
                    .as_ref()
                    .and_then(|f| sync.video_ahead(f.timestamp, ats))
                    .map(|a| -a * 1000.0);
                (shown, late, offset)
            }
            // audio not started yet but coming: wait (the queue is bounded)
            _ if self.audio_alive(now) => (None, 0, None),
            // no audio: frames show as the jitter buffer releases them
            _ => {
                let (shown, late) = self.vid.queue.take_due(|_| true);
                (shown, late, None)
            }
        };
        self.vid.dropped += late;
        if let Some(f) = shown {
            self.vid.presented += 1;
            if let Some(o) = offset {
                self.av_offset_ms = Some(o);
                self.max_abs_av_offset_ms = self.max_abs_av_offset_ms.max(o.abs());
            }
            self.events.push_back(PlayerEvent::Frame(PresentedFrame {
                rgb: f.rgb,
                timestamp: f.timestamp,
                audio_position: position,
                av_offset_ms: offset,
            }));
        }
    }

    fn send_reports(&mut self, now: Instant) {
        for media in [Media::Audio, Media::Video] {
            let interval = self.config.rr_interval;
            let (ssrc, cname) = (self.config.ssrc, self.config.cname.clone());
            let s = self.stream(media);
            let (Some(at), Some((to, port))) = (s.next_rr, s.rtcp_peer) else {
                continue;
            };
            if now < at {
                continue;
            }
            s.next_rr = Some(now + interval);
            // RFC 3550 §6.1: a compound packet starts with a report and carries CNAME
            let rr = RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc,
                reports: s.rx.report_block(now).into_iter().collect(),
                extension: Vec::new(),
            });
            let sdes = RtcpPacket::SourceDescription(vec![SdesChunk::cname(ssrc, &cname)]);
            match build_compound(&[rr, sdes]) {
                Ok(bytes) => {
                    s.stats.receiver_reports_sent += 1;
                    self.transmits.push_back(Transmit {
                        media,
                        from_port: port,
                        to,
                        bytes,
                    });
                }
                Err(e) => tracing::warn!("RTCP RR: {e}"),
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<PlayerEvent> {
        self.events.pop_front()
    }

    /// When [`Player::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = [
            self.audio.jb.poll_timeout(),
            self.video.jb.poll_timeout(),
            self.audio
                .next_rr
                .filter(|_| self.audio.rtcp_peer.is_some()),
            self.video
                .next_rr
                .filter(|_| self.video.rtcp_peer.is_some()),
            Some(self.next_stats),
            self.next_frame_due(),
        ]
        .into_iter()
        .flatten()
        .min();
        // the sink plays what is queued: keep the WAV/null clock moving
        if self.out.sink.queued() > 0 {
            let tick = self.now + Duration::from_millis(20);
            t = Some(t.map_or(tick, |x| x.min(tick)));
        }
        t
    }

    /// When the front frame's time comes, if the audio clock keeps running.
    fn next_frame_due(&self) -> Option<Instant> {
        let f = self.vid.queue.front()?;
        let mut clock = self.out.clock.clone();
        let Some(ats) = clock.timestamp_at(self.out.played) else {
            return Some(self.now + Duration::from_millis(10));
        };
        let ahead = self.sync.video_ahead(f.timestamp, ats)?;
        // wake a little after the due time (never before: nothing to do then)
        let wait = Duration::try_from_secs_f64(ahead.max(0.0)).unwrap_or(Duration::from_secs(1));
        Some(self.now + wait.min(Duration::from_secs(1)) + Duration::from_micros(500))
    }

    /// Current figures.
    pub fn stats(&self) -> PlayerStats {
        PlayerStats {
            audio: self.audio.snapshot(),
            video: self.video.snapshot(),
            sink: self.out.sink.kind(),
            output_rate: self.out.sink.sample_rate(),
            audio_played_s: self.out.played as f64 / f64::from(self.out.sink.sample_rate().max(1)),
            audio_concealed: self.out.concealed,
            audio_underruns: self.out.sink.underruns(),
            sync: self.sync.basis(),
            av_offset_ms: self.av_offset_ms,
            max_abs_av_offset_ms: self.max_abs_av_offset_ms,
            decoded_fps: self.vid.decode_times.len() as f64,
            frames_decoded: self.vid.decoded,
            frames_presented: self.vid.presented,
            frames_dropped: self.vid.dropped + self.vid.queue.overflow,
            frames_broken: self.vid.depacketizer.frames_dropped + self.vid.decode_errors,
        }
    }

    /// End of playback: what is queued plays out at once and the sink closes
    /// (a WAV file gets its header). Returns the final figures.
    pub fn finish(&mut self) -> Result<PlayerStats, super::audio_out::AudioError> {
        self.out.played = self.out.written;
        let stats = self.stats();
        self.out.sink.finish()?;
        Ok(stats)
    }
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("stats", &self.stats())
            .finish()
    }
}
