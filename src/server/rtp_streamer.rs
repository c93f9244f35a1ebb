//! Streams one [`Content`] over RTP (RFC 3550) to every viewer of a viewing
//! session from ONE shared timeline, sans-IO.
//!
//! * Audio: PCMU, PT 0, 8 kHz clock, 20 ms packets (RFC 3551 §4.5.14).
//! * Video: JPEG, PT 26, 90 kHz clock, the stored frames split to the MTU
//!   (RFC 2435).
//! * One SSRC, one sequence space and one RTP timestamp base per medium for the
//!   whole session: a packet is built once and the same bytes go to every
//!   viewer, so all viewers see the same media position at the same moment and
//!   the same RTP timestamp names the same position for all of them.
//! * The RTP timestamp follows the media position: `base + position × clock`
//!   (plus one content length per completed loop). A seek therefore shows as a
//!   timestamp jump, a pause as a gap in time without timestamp progress, and
//!   the first packet after either carries the marker bit (audio; RFC 3551
//!   §4.1). This is the RTSP model (RFC 2326 §12.33 `rtptime`): the RTCP
//!   sender reports after the change give the new RTP ↔ NTP mapping.
//! * RTCP: an SR + SDES CNAME compound to each viewer's RTCP address every
//!   [`StreamerConfig::sr_interval`] (RFC 3550 §6.2, §6.4.1), the first one
//!   shortly after the viewer joins; none while paused (no data is sent then,
//!   §6.4). The SR's NTP time is the wall clock the caller passes to
//!   [`RtpStreamer::handle_timeout`] and its RTP timestamp is the shared
//!   timeline's position at that `now`, so reports sent to different viewers
//!   map a media position to the same wall-clock time. Packet and octet counts
//!   are per viewer (what that viewer was sent). A leaving viewer gets an RTCP
//!   BYE (§6.6).
//!
//! [`StreamerSet`] serves many streamers (one per viewing session) from one
//! loop: wake-ups kept in order, every datagram moved to one queue.
//!
//! Nothing here reads a clock: `now` (monotonic) and the wall clock come in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::media::content::Content;
use crate::proto::ids::IdGen;
use crate::proto::rtp::g711::{SAMPLES_PER_20MS, encode_slice};
use crate::proto::rtp::jpeg::JpegPacketizer;
use crate::proto::rtp::rtcp::{Bye, SdesChunk, SenderReport, build_compound};
use crate::proto::rtp::{
    JPEG_CLOCK_RATE, NtpTime, PCMU_CLOCK_RATE, PT_PCMU, RtcpPacket, RtpPacket, SenderStats,
};

/// How the streamer behaves.
#[derive(Debug, Clone)]
pub struct StreamerConfig {
    /// Largest RTP packet (header included) for video.
    pub mtu: usize,
    /// Time between two SRs to one viewer (RFC 3550 §6.2 suggests ≥ 5 s for
    /// large groups; a unicast sender may report more often).
    pub sr_interval: Duration,
    /// Delay of a viewer's first SR after it joins.
    pub first_sr_delay: Duration,
    /// Start again at 0 at the end (timestamps keep increasing); else stop
    /// sending and report [`StreamerEvent::Ended`].
    pub looping: bool,
    /// RTCP SDES CNAME (RFC 3550 §6.5.1).
    pub cname: String,
}

impl Default for StreamerConfig {
    fn default() -> Self {
        StreamerConfig {
            mtu: 1200,
            sr_interval: Duration::from_secs(2),
            first_sr_delay: Duration::from_millis(200),
            looping: false,
            cname: "isc-server@isc.local".into(),
        }
    }
}

/// Random starting points of a session (RFC 3550 §5.1: SSRC, sequence number
/// and timestamp start random). Drawn from an injected generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamIds {
    pub audio_ssrc: u32,
    pub video_ssrc: u32,
    pub audio_seq: u16,
    pub video_seq: u16,
    pub audio_ts: u32,
    pub video_ts: u32,
}

impl StreamIds {
    pub fn generate(ids: &mut dyn IdGen) -> Self {
        let mut b = [0u8; 20];
        ids.fill(&mut b);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut video_ssrc = u32_at(4);
        if video_ssrc == u32_at(0) {
            video_ssrc = video_ssrc.wrapping_add(1);
        }
        StreamIds {
            audio_ssrc: u32_at(0),
            video_ssrc,
            audio_seq: u16::from_be_bytes([b[8], b[9]]),
            video_seq: u16::from_be_bytes([b[10], b[11]]),
            audio_ts: u32_at(12),
            video_ts: u32_at(16),
        }
    }
}

/// A viewer, as the caller names it (e.g. one per SIP dialog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewerId(pub u64);

/// Where one medium of a viewer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaDest {
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
}

impl MediaDest {
    /// RTCP on the next port up (RFC 3550 §11), as without `a=rtcp`.
    pub fn new(rtp: SocketAddr) -> Self {
        let mut rtcp = rtp;
        rtcp.set_port(rtp.port().wrapping_add(1));
        MediaDest { rtp, rtcp }
    }
}

/// The media a viewer accepted and where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewerDest {
    pub audio: Option<MediaDest>,
    pub video: Option<MediaDest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Rtp,
    Rtcp,
}

/// One datagram to send: the driver sends it from its socket for
/// (`media`, `channel`) to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpTransmit {
    pub to: SocketAddr,
    pub viewer: ViewerId,
    pub media: MediaKind,
    pub channel: Channel,
    pub bytes: Vec<u8>,
}

/// Where the shared timeline stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayState {
    Playing,
    Paused,
    /// At the end (not looping).
    Ended,
    /// The last viewer left.
    Stopped,
}

/// What happened, for the owner (e.g. to tell the viewers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamerEvent {
    Paused {
        position: Duration,
    },
    Resumed {
        position: Duration,
    },
    Seeked {
        position: Duration,
    },
    Looped,
    Ended,
    /// The last viewer left: the session is over.
    Stopped,
}

#[derive(Debug)]
struct Viewer {
    dest: ViewerDest,
    audio_stats: SenderStats,
    video_stats: SenderStats,
    next_sr: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Timeline {
    /// Media position `anchor_pos` was at `anchor`.
    Playing {
        anchor: Instant,
        anchor_pos: Duration,
    },
    Held {
        pos: Duration,
        state: PlayState,
    },
}

/// See the module docs.
#[derive(Debug)]
pub struct RtpStreamer {
    content: Arc<Content>,
    config: StreamerConfig,
    ids: StreamIds,
    timeline: Timeline,
    viewers: BTreeMap<ViewerId, Viewer>,
    /// Every viewer's `next_sr`, soonest first (so the next wake-up is not
    /// a scan of the viewers).
    sr_due: BTreeSet<(Instant, ViewerId)>,
    // audio cursor: index of the next sample to send
    next_sample: u64,
    audio_seq: u16,
    audio_marker: bool,
    // video cursor: index of the next frame to send
    next_frame: u64,
    jpeg: JpegPacketizer,
    /// Completed loops, as media time.
    loops: u32,
    transmits: VecDeque<RtpTransmit>,
    events: VecDeque<StreamerEvent>,
}

fn dur_ticks(d: Duration, rate: u32) -> u64 {
    (d.as_nanos() * u128::from(rate) / 1_000_000_000) as u64
}

fn ticks_dur(ticks: u64, rate: u32) -> Duration {
    Duration::from_nanos((u128::from(ticks) * 1_000_000_000 / u128::from(rate.max(1))) as u64)
}

impl RtpStreamer {
    /// A session on `content`, paused at 0 with no viewer.
    pub fn new(content: Arc<Content>, config: StreamerConfig, ids: StreamIds) -> Self {
        let jpeg = JpegPacketizer::new(ids.video_ssrc, ids.video_seq, config.mtu);
        RtpStreamer {
            content,
            config,
            timeline: Timeline::Held {
                pos: Duration::ZERO,
                state: PlayState::Paused,
            },
            viewers: BTreeMap::new(),
            sr_due: BTreeSet::new(),
            next_sample: 0,
            audio_seq: ids.audio_seq,
            audio_marker: true,
            next_frame: 0,
            jpeg,
            loops: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            ids,
        }
    }

    pub fn content(&self) -> &Content {
        &self.content
    }

    pub fn ids(&self) -> StreamIds {
        self.ids
    }

    pub fn state(&self) -> PlayState {
        match self.timeline {
            Timeline::Playing { .. } => PlayState::Playing,
            Timeline::Held { state, .. } => state,
        }
    }

    /// The shared media position at `now` (within the content: 0..=duration).
    pub fn position(&self, now: Instant) -> Duration {
        match self.timeline {
            Timeline::Playing { anchor, anchor_pos } => {
                (anchor_pos + now.saturating_duration_since(anchor)).min(self.content.duration)
            }
            Timeline::Held { pos, .. } => pos,
        }
    }

    /// The audio RTP timestamp that names media position `pos` in the
    /// current loop (what receivers see for it).
    pub fn audio_timestamp_at(&self, pos: Duration) -> u32 {
        let loops = u64::from(self.loops) * dur_ticks(self.end_of_media(), PCMU_CLOCK_RATE);
        self.ids
            .audio_ts
            .wrapping_add((loops + dur_ticks(pos, PCMU_CLOCK_RATE)) as u32)
    }

    /// The video RTP timestamp for `pos` in the current loop.
    pub fn video_timestamp_at(&self, pos: Duration) -> u32 {
        let loops = u64::from(self.loops) * dur_ticks(self.end_of_media(), JPEG_CLOCK_RATE);
        self.ids
            .video_ts
            .wrapping_add((loops + dur_ticks(pos, JPEG_CLOCK_RATE)) as u32)
    }

    pub fn viewers(&self) -> impl Iterator<Item = (ViewerId, ViewerDest)> + '_ {
        self.viewers.iter().map(|(id, v)| (*id, v.dest))
    }

    pub fn has_viewer(&self, id: ViewerId) -> bool {
        self.viewers.contains_key(&id)
    }

    /// Adds (or re-targets) a viewer; it gets the stream from the current
    /// position on, its first SR after [`StreamerConfig::first_sr_delay`].
    pub fn add_viewer(&mut self, now: Instant, id: ViewerId, dest: ViewerDest) {
        self.skip_unwatched(now);
        let first = now + self.config.first_sr_delay;
        match self.viewers.get_mut(&id) {
            Some(v) => v.dest = dest,
            None => {
                self.viewers.insert(
                    id,
                    Viewer {
                        dest,
                        audio_stats: SenderStats::default(),
                        video_stats: SenderStats::default(),
                        next_sr: first,
                    },
                );
                self.sr_due.insert((first, id));
            }
        }
        if self.state() == PlayState::Stopped {
            let pos = self.position(now);
            self.timeline = Timeline::Held {
                pos,
                state: PlayState::Paused,
            };
        }
    }

    /// Nothing is sent while nobody watches: the cursors follow the shared
    /// position so the next viewer starts there, not with a late burst.
    fn skip_unwatched(&mut self, now: Instant) {
        if self.viewers.is_empty() && self.state() == PlayState::Playing {
            self.advance(now);
        }
    }

    /// Removes a viewer: its stream stops and it gets an RTCP BYE (RFC 3550
    /// §6.6). The last one leaving stops the session.
    pub fn remove_viewer(&mut self, now: Instant, id: ViewerId, wall: NtpTime) {
        let Some(mut viewer) = self.viewers.remove(&id) else {
            return;
        };
        self.sr_due.remove(&(viewer.next_sr, id));
        self.send_reports(now, wall, id, &mut viewer, true);
        if self.viewers.is_empty() {
            self.timeline = Timeline::Held {
                pos: self.position(now),
                state: PlayState::Stopped,
            };
            self.events.push_back(StreamerEvent::Stopped);
        }
    }

    /// Pauses the shared timeline (every viewer).
    pub fn pause(&mut self, now: Instant) {
        self.skip_unwatched(now);
        if let Timeline::Playing { .. } = self.timeline {
            let pos = self.position(now);
            self.timeline = Timeline::Held {
                pos,
                state: PlayState::Paused,
            };
            self.events
                .push_back(StreamerEvent::Paused { position: pos });
        }
    }

    /// Plays from the current position (from 0 again after the end).
    pub fn resume(&mut self, now: Instant) {
        let Timeline::Held { mut pos, state } = self.timeline else {
            return;
        };
        if state == PlayState::Stopped {
            return;
        }
        if state == PlayState::Ended {
            pos = Duration::ZERO;
            self.set_cursors(pos);
        }
        self.timeline = Timeline::Playing {
            anchor: now,
            anchor_pos: pos,
        };
        self.audio_marker = true;
        self.report_soon(now);
        self.events
            .push_back(StreamerEvent::Resumed { position: pos });
    }

    /// Moves the shared timeline to `position` (clamped to the content).
    pub fn seek(&mut self, now: Instant, position: Duration) {
        let pos = position.min(self.content.duration);
        self.set_cursors(pos);
        self.audio_marker = true;
        self.timeline = match self.timeline {
            Timeline::Playing { .. } => Timeline::Playing {
                anchor: now,
                anchor_pos: pos,
            },
            Timeline::Held {
                state: PlayState::Stopped,
                ..
            } => Timeline::Held {
                pos,
                state: PlayState::Stopped,
            },
            Timeline::Held { .. } => Timeline::Held {
                pos,
                state: PlayState::Paused,
            },
        };
        self.report_soon(now);
        self.events
            .push_back(StreamerEvent::Seeked { position: pos });
    }

    /// After a jump of the timeline every viewer gets an SR with the new
    /// RTP ↔ NTP mapping soon.
    fn report_soon(&mut self, now: Instant) {
        let at = now + self.config.first_sr_delay;
        self.sr_due.clear();
        for (id, v) in self.viewers.iter_mut() {
            v.next_sr = at;
            self.sr_due.insert((at, *id));
        }
    }

    fn set_cursors(&mut self, pos: Duration) {
        self.next_sample = dur_ticks(pos, PCMU_CLOCK_RATE);
        let fps = self.fps();
        self.next_frame = (pos.as_nanos() * u128::from(fps) / 1_000_000_000) as u64;
    }

    fn fps(&self) -> u32 {
        self.content.video.as_ref().map_or(1, |v| v.fps.max(1))
    }

    fn total_samples(&self) -> u64 {
        self.content.audio.samples.len() as u64
    }

    fn total_frames(&self) -> u64 {
        self.content
            .video
            .as_ref()
            .map_or(0, |v| v.frames.len() as u64)
    }

    fn frame_time(&self, frame: u64) -> Duration {
        ticks_dur(frame, self.fps())
    }

    /// The instant at which media position `pos` plays (while playing).
    fn instant_of(&self, pos: Duration) -> Option<Instant> {
        match self.timeline {
            Timeline::Playing { anchor, anchor_pos } => {
                Some(anchor + pos.saturating_sub(anchor_pos))
            }
            Timeline::Held { .. } => None,
        }
    }

    fn end_of_media(&self) -> Duration {
        let audio = ticks_dur(self.total_samples(), PCMU_CLOCK_RATE);
        audio.max(self.content.duration)
    }

    /// When [`Self::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.state() == PlayState::Playing && !self.viewers.is_empty() {
            if self.next_sample < self.total_samples() {
                consider(self.instant_of(ticks_dur(self.next_sample, PCMU_CLOCK_RATE)));
            }
            if self.next_frame < self.total_frames() {
                consider(self.instant_of(self.frame_time(self.next_frame)));
            }
            consider(self.instant_of(self.end_of_media()));
            consider(self.sr_due.first().map(|(at, _)| *at));
        }
        next
    }

    /// Sends what is due at `now`; `wall` is the wall clock at `now` (for the
    /// SRs' NTP timestamps).
    pub fn handle_timeout(&mut self, now: Instant, wall: NtpTime) {
        if self.state() != PlayState::Playing || self.viewers.is_empty() {
            return;
        }
        if !self.advance(now) {
            return;
        }
        let next = now + self.config.sr_interval;
        while let Some(&(at, id)) = self.sr_due.first() {
            if at > now {
                break;
            }
            self.sr_due.pop_first();
            if let Some(mut v) = self.viewers.remove(&id) {
                self.send_reports(now, wall, id, &mut v, false);
                v.next_sr = next;
                self.viewers.insert(id, v);
                self.sr_due.insert((next, id));
            }
        }
    }

    /// Sends (or, with nobody watching, skips) the media due at `now`,
    /// looping or ending at the end. False once the timeline stopped moving.
    fn advance(&mut self, now: Instant) -> bool {
        loop {
            let pos = match self.timeline {
                Timeline::Playing { anchor, anchor_pos } => {
                    anchor_pos + now.saturating_duration_since(anchor)
                }
                Timeline::Held { .. } => return false,
            };
            self.send_media_until(pos);
            let end = self.end_of_media();
            if pos < end
                || self.next_sample < self.total_samples()
                || self.next_frame < self.total_frames()
            {
                break;
            }
            // the end of the content
            if self.config.looping {
                // RFC 3550 §5.1: the timestamp keeps increasing across the loop
                self.loops = self.loops.wrapping_add(1);
                self.set_cursors(Duration::ZERO);
                self.audio_marker = true;
                if let Timeline::Playing { anchor, anchor_pos } = self.timeline {
                    self.timeline = Timeline::Playing {
                        anchor: anchor + end.saturating_sub(anchor_pos),
                        anchor_pos: Duration::ZERO,
                    };
                }
                self.events.push_back(StreamerEvent::Looped);
            } else {
                self.timeline = Timeline::Held {
                    pos: self.content.duration,
                    state: PlayState::Ended,
                };
                self.events.push_back(StreamerEvent::Ended);
                return false;
            }
        }
        true
    }

    fn send_media_until(&mut self, pos: Duration) {
        let total = self.total_samples();
        if self.viewers.is_empty() {
            // skip every packet and frame that is due, keeping their grid
            let due = dur_ticks(pos, PCMU_CLOCK_RATE);
            if self.next_sample < total && self.next_sample <= due {
                let n = (due - self.next_sample) / SAMPLES_PER_20MS as u64 + 1;
                self.next_sample = (self.next_sample + n * SAMPLES_PER_20MS as u64).min(total);
                self.audio_marker = true;
            }
            let frame = (pos.as_nanos() * u128::from(self.fps()) / 1_000_000_000) as u64 + 1;
            self.next_frame = self.next_frame.max(frame.min(self.total_frames()));
            return;
        }
        while self.next_sample < total && ticks_dur(self.next_sample, PCMU_CLOCK_RATE) <= pos {
            let start = self.next_sample as usize;
            let end = (start + SAMPLES_PER_20MS).min(total as usize);
            let payload = encode_slice(self.content.audio.samples.get(start..end).unwrap_or(&[]));
            let ts = self.audio_timestamp_at(ticks_dur(self.next_sample, PCMU_CLOCK_RATE));
            let mut packet =
                RtpPacket::new(PT_PCMU, self.audio_seq, ts, self.ids.audio_ssrc, payload);
            // RFC 3551 §4.1: marker on the first packet after a (re)start
            packet.marker = std::mem::take(&mut self.audio_marker);
            self.audio_seq = self.audio_seq.wrapping_add(1);
            self.next_sample = end as u64;
            self.fan_out(MediaKind::Audio, &[packet]);
        }
        let frames = self.total_frames();
        while self.next_frame < frames && self.frame_time(self.next_frame) <= pos {
            let index = self.next_frame as usize;
            self.next_frame += 1;
            let ts = self.video_timestamp_at(self.frame_time(index as u64));
            let Some(jpeg) = self
                .content
                .video
                .as_ref()
                .and_then(|v| v.frames.get(index))
                .map(|f| f.jpeg.clone())
            else {
                continue;
            };
            match self.jpeg.packetize(&jpeg, ts) {
                Ok(packets) => self.fan_out(MediaKind::Video, &packets),
                Err(e) => tracing::warn!(error = %e, index, "frame not packetized"),
            }
        }
    }

    fn fan_out(&mut self, media: MediaKind, packets: &[RtpPacket]) {
        for p in packets {
            let Ok(bytes) = p.to_bytes() else { continue };
            for (id, v) in self.viewers.iter_mut() {
                let (dest, stats) = match media {
                    MediaKind::Audio => (v.dest.audio, &mut v.audio_stats),
                    MediaKind::Video => (v.dest.video, &mut v.video_stats),
                };
                let Some(dest) = dest else { continue };
                stats.on_sent(p);
                self.transmits.push_back(RtpTransmit {
                    to: dest.rtp,
                    viewer: *id,
                    media,
                    channel: Channel::Rtp,
                    bytes: bytes.clone(),
                });
            }
        }
    }

    /// SR + SDES (+ BYE when leaving) per medium of one viewer (RFC 3550 §6.1:
    /// every compound starts with a report and carries the CNAME).
    fn send_reports(
        &mut self,
        now: Instant,
        wall: NtpTime,
        id: ViewerId,
        viewer: &mut Viewer,
        bye: bool,
    ) {
        let pos = self.position(now);
        let media = [
            (
                MediaKind::Audio,
                viewer.dest.audio,
                viewer.audio_stats,
                self.ids.audio_ssrc,
                self.audio_timestamp_at(pos),
            ),
            (
                MediaKind::Video,
                viewer.dest.video,
                viewer.video_stats,
                self.ids.video_ssrc,
                self.video_timestamp_at(pos),
            ),
        ];
        for (kind, dest, stats, ssrc, ts) in media {
            let Some(dest) = dest else { continue };
            if kind == MediaKind::Video && self.content.video.is_none() {
                continue;
            }
            let mut packets = vec![
                RtcpPacket::SenderReport(SenderReport {
                    ssrc,
                    info: stats.sender_info(wall, ts),
                    reports: vec![],
                    extension: vec![],
                }),
                RtcpPacket::SourceDescription(vec![SdesChunk::cname(ssrc, &self.config.cname)]),
            ];
            if bye {
                packets.push(RtcpPacket::Bye(Bye {
                    sources: vec![ssrc],
                    reason: Some("viewer left".into()),
                }));
            }
            if let Ok(bytes) = build_compound(&packets) {
                self.transmits.push_back(RtpTransmit {
                    to: dest.rtcp,
                    viewer: id,
                    media: kind,
                    channel: Channel::Rtcp,
                    bytes,
                });
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<RtpTransmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<StreamerEvent> {
        self.events.pop_front()
    }
}

/// Many streamers (one per viewing session) served together, sans-IO, so
/// that a tick costs what is due, not a scan of every session:
///
/// * the wake-ups are kept ordered ([`StreamerSet::poll_timeout`] is the
///   first one; [`StreamerSet::handle_timeout`] serves only the streamers
///   due);
/// * every datagram a streamer makes is moved at once into one queue, in
///   order, so [`StreamerSet::poll_transmit`] is O(1) per datagram and one
///   session's datagrams keep their order.
///
/// A streamer changed through [`StreamerSet::get_mut`] is re-scheduled and
/// drained at the next poll or timeout.
#[derive(Debug)]
pub struct StreamerSet<K> {
    streamers: BTreeMap<K, Scheduled>,
    /// (wake-up, key) of every scheduled streamer, soonest first.
    wakes: BTreeSet<(Instant, K)>,
    /// Changed since they were last scheduled and drained.
    touched: BTreeSet<K>,
    transmits: VecDeque<RtpTransmit>,
    events: VecDeque<(K, StreamerEvent)>,
}

#[derive(Debug)]
struct Scheduled {
    streamer: RtpStreamer,
    /// Its entry in `wakes`.
    wake: Option<Instant>,
}

impl<K: Ord + Copy> Default for StreamerSet<K> {
    fn default() -> Self {
        StreamerSet {
            streamers: BTreeMap::new(),
            wakes: BTreeSet::new(),
            touched: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl<K: Ord + Copy> StreamerSet<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.streamers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streamers.is_empty()
    }

    /// Adds (or replaces) the streamer of `key`.
    pub fn insert(&mut self, key: K, streamer: RtpStreamer) {
        self.remove(key);
        self.streamers.insert(
            key,
            Scheduled {
                streamer,
                wake: None,
            },
        );
        self.touched.insert(key);
    }

    /// Drops the streamer of `key`; what it made before stays queued.
    pub fn remove(&mut self, key: K) -> Option<RtpStreamer> {
        let s = self.streamers.remove(&key)?;
        self.touched.remove(&key);
        if let Some(at) = s.wake {
            self.wakes.remove(&(at, key));
        }
        Some(self.drain(key, s.streamer))
    }

    fn drain(&mut self, key: K, mut streamer: RtpStreamer) -> RtpStreamer {
        self.transmits
            .extend(std::iter::from_fn(|| streamer.poll_transmit()));
        self.events
            .extend(std::iter::from_fn(|| streamer.poll_event()).map(|e| (key, e)));
        streamer
    }

    pub fn get(&self, key: K) -> Option<&RtpStreamer> {
        self.streamers.get(&key).map(|s| &s.streamer)
    }

    /// The streamer of `key`, to change (it is re-scheduled afterwards).
    pub fn get_mut(&mut self, key: K) -> Option<&mut RtpStreamer> {
        let s = self.streamers.get_mut(&key)?;
        self.touched.insert(key);
        Some(&mut s.streamer)
    }

    /// Moves a streamer's datagrams and events to the shared queues and
    /// files its next wake-up.
    fn settle(&mut self, key: K) {
        let Some(s) = self.streamers.get_mut(&key) else {
            return;
        };
        self.transmits
            .extend(std::iter::from_fn(|| s.streamer.poll_transmit()));
        self.events
            .extend(std::iter::from_fn(|| s.streamer.poll_event()).map(|e| (key, e)));
        let wake = s.streamer.poll_timeout();
        if wake != s.wake {
            if let Some(at) = s.wake {
                self.wakes.remove(&(at, key));
            }
            if let Some(at) = wake {
                self.wakes.insert((at, key));
            }
            s.wake = wake;
        }
    }

    fn settle_touched(&mut self) {
        while let Some(key) = self.touched.pop_first() {
            self.settle(key);
        }
    }

    /// The soonest wake-up of any streamer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let scheduled = self.wakes.first().map(|(at, _)| *at);
        self.touched
            .iter()
            .filter_map(|k| self.streamers.get(k)?.streamer.poll_timeout())
            .chain(scheduled)
            .min()
    }

    /// Serves the streamers due at `now`; `wall` is the wall clock at `now`.
    pub fn handle_timeout(&mut self, now: Instant, wall: NtpTime) {
        self.settle_touched();
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.wakes.first() {
            if at > now {
                break;
            }
            self.wakes.pop_first();
            if let Some(s) = self.streamers.get_mut(&key) {
                s.wake = None;
            }
            due.push(key);
        }
        for key in due {
            if let Some(s) = self.streamers.get_mut(&key) {
                s.streamer.handle_timeout(now, wall);
            }
            self.settle(key);
        }
    }

    /// The next datagram of any streamer (one streamer's in their order).
    pub fn poll_transmit(&mut self) -> Option<RtpTransmit> {
        if self.transmits.is_empty() {
            self.settle_touched();
        }
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<(K, StreamerEvent)> {
        if self.events.is_empty() {
            self.settle_touched();
        }
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::content::{Audio, Video, VideoFrame};
    use crate::proto::rtp::rtcp::parse_compound;
    use crate::proto::rtp::{PT_JPEG, jpeg_codec};

    fn content(secs: u64, with_video: bool) -> Arc<Content> {
        let samples: Vec<i16> = (0..secs * 8000).map(|i| ((i % 100) as i16) * 100).collect();
        let video = with_video.then(|| {
            let frame = jpeg_codec::RgbFrame::new(16, 16);
            let jpeg = jpeg_codec::encode_rgb(&frame, 50).unwrap();
            Video {
                width: 16,
                height: 16,
                fps: 10,
                frames: (0..secs * 10)
                    .map(|_| VideoFrame {
                        jpeg: jpeg.clone(),
                        rgb: vec![],
                    })
                    .collect(),
            }
        });
        Arc::new(Content {
            id: "t".into(),
            title: "t".into(),
            duration: Duration::from_secs(secs),
            audio: Audio {
                sample_rate: 8000,
                samples,
            },
            video,
        })
    }

    const IDS: StreamIds = StreamIds {
        audio_ssrc: 0x1111,
        video_ssrc: 0x2222,
        audio_seq: 65530,
        video_seq: 7,
        audio_ts: u32::MAX - 100,
        video_ts: 1000,
    };

    fn dest(port: u16) -> ViewerDest {
        ViewerDest {
            audio: Some(MediaDest::new(SocketAddr::from(([127, 0, 0, 1], port)))),
            video: Some(MediaDest::new(SocketAddr::from(([127, 0, 0, 1], port + 2)))),
        }
    }

    fn wall(t0: Instant, now: Instant) -> NtpTime {
        NtpTime::from_unix(Duration::from_secs(1_700_000_000) + (now - t0))
    }

    /// Runs the streamer until `until`, returning everything sent.
    fn run(s: &mut RtpStreamer, t0: Instant, until: Instant) -> Vec<(Instant, RtpTransmit)> {
        let mut out = vec![];
        while let Some(t) = s.poll_timeout() {
            if t > until {
                break;
            }
            s.handle_timeout(t, wall(t0, t));
            while let Some(x) = s.poll_transmit() {
                out.push((t, x));
            }
        }
        out
    }

    fn rtp_to(out: &[(Instant, RtpTransmit)], port: u16) -> Vec<(Instant, RtpPacket)> {
        out.iter()
            .filter(|(_, x)| x.to.port() == port && x.channel == Channel::Rtp)
            .map(|(t, x)| (*t, RtpPacket::parse(&x.bytes).unwrap()))
            .collect()
    }

    #[test]
    fn paced_audio_and_video_to_every_viewer() {
        let t0 = Instant::now();
        let mut s = RtpStreamer::new(content(2, true), StreamerConfig::default(), IDS);
        s.add_viewer(t0, ViewerId(1), dest(5000));
        s.add_viewer(t0, ViewerId(2), dest(6000));
        s.resume(t0);
        let out = run(&mut s, t0, t0 + Duration::from_millis(999));
        let a1 = rtp_to(&out, 5000);
        let a2 = rtp_to(&out, 6000);
        assert_eq!(a1.len(), 50, "20 ms packets for 1 s");
        assert_eq!(a1, a2, "same packets at the same moments");
        assert!(a1[0].1.marker && !a1[1].1.marker);
        assert_eq!(a1[0].1.payload_type, PT_PCMU);
        assert_eq!(a1[0].1.sequence_number, 65530);
        assert_eq!(a1[7].1.sequence_number, 1, "sequence wraps");
        for (i, (t, p)) in a1.iter().enumerate() {
            assert_eq!(*t, t0 + Duration::from_millis(20 * i as u64));
            assert_eq!(p.timestamp, IDS.audio_ts.wrapping_add(160 * i as u32));
            assert_eq!(p.payload.len(), 160);
        }
        let v = rtp_to(&out, 5002);
        assert!(v.iter().all(|(_, p)| p.payload_type == PT_JPEG));
        let frames: Vec<_> = v.iter().filter(|(_, p)| p.marker).collect();
        assert_eq!(frames.len(), 10, "10 fps");
        assert_eq!(frames[3].1.timestamp, 1000 + 3 * 9000);
        assert_eq!(frames[3].0, t0 + Duration::from_millis(300));
    }

    #[test]
    fn sender_reports_map_the_same_position_to_the_same_wall_time() {
        let t0 = Instant::now();
        let mut s = RtpStreamer::new(content(10, false), StreamerConfig::default(), IDS);
        s.add_viewer(t0, ViewerId(1), dest(5000));
        s.resume(t0);
        s.add_viewer(t0 + Duration::from_millis(1300), ViewerId(2), dest(6000));
        let out = run(&mut s, t0, t0 + Duration::from_secs(5));
        let srs: Vec<(u16, crate::proto::rtp::rtcp::SenderInfo)> = out
            .iter()
            .filter(|(_, x)| x.channel == Channel::Rtcp)
            .map(|(_, x)| match &parse_compound(&x.bytes).unwrap()[0] {
                RtcpPacket::SenderReport(sr) => (x.to.port(), sr.info),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(srs.iter().filter(|(p, _)| *p == 5001).count() >= 2);
        assert!(srs.iter().filter(|(p, _)| *p == 6001).count() >= 2);
        // wall time at which audio timestamp X plays, per SR
        let x = IDS.audio_ts.wrapping_add(8000 * 3);
        let at = |info: &crate::proto::rtp::rtcp::SenderInfo| {
            let d = x.wrapping_sub(info.rtp_timestamp) as i32 as f64 / 8000.0;
            info.ntp.to_unix().as_secs_f64() + d
        };
        let first = at(&srs[0].1);
        for (_, info) in &srs {
            assert!((at(info) - first).abs() < 0.001);
        }
    }

    #[test]
    fn pause_seek_resume_show_in_timestamps() {
        let t0 = Instant::now();
        let mut s = RtpStreamer::new(content(10, false), StreamerConfig::default(), IDS);
        s.add_viewer(t0, ViewerId(1), dest(5000));
        s.resume(t0);
        let t1 = t0 + Duration::from_millis(1000);
        let before = run(&mut s, t0, t1 - Duration::from_millis(1));
        s.pause(t1);
        assert_eq!(s.position(t1), Duration::from_secs(1));
        assert!(matches!(
            s.poll_event(),
            Some(StreamerEvent::Resumed { .. })
        ));
        assert_eq!(
            s.poll_event(),
            Some(StreamerEvent::Paused {
                position: Duration::from_secs(1)
            })
        );
        assert_eq!(s.poll_timeout(), None, "nothing while paused");
        let t2 = t1 + Duration::from_secs(3);
        s.seek(t2, Duration::from_secs(5));
        s.resume(t2);
        let after = run(&mut s, t0, t2 + Duration::from_millis(100));
        let b = rtp_to(&before, 5000);
        let a = rtp_to(&after, 5000);
        assert_eq!(
            b.last().unwrap().1.timestamp,
            IDS.audio_ts.wrapping_add(8000 - 160)
        );
        assert_eq!(a[0].0, t2);
        assert_eq!(a[0].1.timestamp, IDS.audio_ts.wrapping_add(5 * 8000));
        assert!(a[0].1.marker);
        assert_eq!(
            a[0].1.sequence_number,
            b.last().unwrap().1.sequence_number.wrapping_add(1)
        );
    }

    #[test]
    fn leaving_viewer_gets_bye_and_the_last_stops_the_session() {
        let t0 = Instant::now();
        let mut s = RtpStreamer::new(content(10, false), StreamerConfig::default(), IDS);
        s.add_viewer(t0, ViewerId(1), dest(5000));
        s.add_viewer(t0, ViewerId(2), dest(6000));
        s.resume(t0);
        let _ = run(&mut s, t0, t0 + Duration::from_millis(100));
        let t1 = t0 + Duration::from_millis(100);
        s.remove_viewer(t1, ViewerId(1), wall(t0, t1));
        let bye = s.poll_transmit().unwrap();
        assert_eq!(bye.to.port(), 5001);
        let pk = parse_compound(&bye.bytes).unwrap();
        assert!(matches!(pk.last(), Some(RtcpPacket::Bye(_))));
        let out = run(&mut s, t0, t0 + Duration::from_millis(500));
        assert!(rtp_to(&out, 5000).is_empty());
        assert!(!rtp_to(&out, 6000).is_empty());
        let t2 = t0 + Duration::from_millis(500);
        s.remove_viewer(t2, ViewerId(2), wall(t0, t2));
        assert_eq!(s.state(), PlayState::Stopped);
        assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == StreamerEvent::Stopped));
        assert_eq!(s.poll_timeout(), None);
    }

    use proptest::strategy::Strategy as _;

    #[derive(Debug, Clone)]
    enum Op {
        Add(u64),
        Remove(u64),
        Pause,
        Resume,
        Seek(u64),
        Run(u64),
    }

    fn check_sent(
        s: &mut RtpStreamer,
        now: Instant,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let expected = s.audio_timestamp_at(s.position(now));
        while let Some(x) = s.poll_transmit() {
            if x.channel == Channel::Rtp {
                proptest::prop_assert!(s.has_viewer(x.viewer), "RTP to a viewer that left");
            }
            if x.channel == Channel::Rtp && x.media == MediaKind::Audio {
                let p = RtpPacket::parse(&x.bytes).unwrap();
                // a packet goes out when its position is reached, not before
                let lag = expected.wrapping_sub(p.timestamp) as i32;
                proptest::prop_assert!((0..160).contains(&lag), "lag {lag}");
            }
        }
        while s.poll_event().is_some() {}
        Ok(())
    }

    proptest::proptest! {
        /// Any sequence of viewer changes and timeline moves: no panic, no
        /// RTP to a viewer that left, and every audio packet leaves when the
        /// shared position reaches the position its timestamp names.
        #[test]
        fn any_operations_keep_the_timeline(ops in proptest::collection::vec(
            proptest::prop_oneof![
                (0u64..4).prop_map(Op::Add),
                (0u64..4).prop_map(Op::Remove),
                proptest::strategy::Just(Op::Pause),
                proptest::strategy::Just(Op::Resume),
                (0u64..2500).prop_map(Op::Seek),
                (0u64..700).prop_map(Op::Run),
            ], 0..30), looping in proptest::bool::ANY) {
            let t0 = Instant::now();
            let config = StreamerConfig { looping, ..StreamerConfig::default() };
            let mut s = RtpStreamer::new(content(2, false), config, IDS);
            let mut now = t0;
            for op in ops {
                match op {
                    Op::Add(v) => s.add_viewer(now, ViewerId(v), dest(5000 + 10 * v as u16)),
                    Op::Remove(v) => s.remove_viewer(now, ViewerId(v), wall(t0, now)),
                    Op::Pause => s.pause(now),
                    Op::Resume => s.resume(now),
                    Op::Seek(ms) => s.seek(now, Duration::from_millis(ms)),
                    Op::Run(ms) => {
                        let until = now + Duration::from_millis(ms);
                        while let Some(t) = s.poll_timeout() {
                            if t > until {
                                break;
                            }
                            now = t.max(now);
                            s.handle_timeout(now, wall(t0, now));
                            check_sent(&mut s, now)?;
                        }
                        now = until;
                    }
                }
                check_sent(&mut s, now)?;
            }
        }
    }

    #[test]
    fn end_of_content_ends_or_loops() {
        let t0 = Instant::now();
        let mut s = RtpStreamer::new(content(1, false), StreamerConfig::default(), IDS);
        s.add_viewer(t0, ViewerId(1), dest(5000));
        s.resume(t0);
        let out = run(&mut s, t0, t0 + Duration::from_secs(3));
        assert_eq!(rtp_to(&out, 5000).len(), 50);
        assert_eq!(s.state(), PlayState::Ended);

        let config = StreamerConfig {
            looping: true,
            ..StreamerConfig::default()
        };
        let mut s = RtpStreamer::new(content(1, false), config, IDS);
        s.add_viewer(t0, ViewerId(1), dest(5000));
        s.resume(t0);
        let out = run(&mut s, t0, t0 + Duration::from_millis(2490));
        let a = rtp_to(&out, 5000);
        assert_eq!(a.len(), 125);
        assert_eq!(a[60].1.timestamp, IDS.audio_ts.wrapping_add(60 * 160));
        assert_eq!(a[60].0, t0 + Duration::from_millis(1200));
    }
}

#[cfg(test)]
mod set_tests {
    use super::*;
    use crate::media::content::Audio;

    fn content() -> Arc<Content> {
        Arc::new(Content {
            id: "t".into(),
            title: "t".into(),
            duration: Duration::from_secs(2),
            audio: Audio {
                sample_rate: 8000,
                samples: vec![0; 16000],
            },
            video: None,
        })
    }

    fn ids(i: u32) -> StreamIds {
        StreamIds {
            audio_ssrc: i,
            video_ssrc: i + 100_000,
            audio_seq: i as u16,
            video_seq: 0,
            audio_ts: i,
            video_ts: 0,
        }
    }

    fn dest(i: u16) -> ViewerDest {
        ViewerDest {
            audio: Some(MediaDest::new(SocketAddr::from((
                [127, 0, 0, 1],
                10_000 + 2 * i,
            )))),
            video: None,
        }
    }

    fn wall(t0: Instant, now: Instant) -> NtpTime {
        NtpTime::from_unix(Duration::from_secs(1_700_000_000) + (now - t0))
    }

    /// Many sessions started at different moments: the set sends every
    /// datagram each lone streamer would, at the same moments and in the
    /// same order per session, and a change through `get_mut` (a viewer
    /// leaving) is scheduled and drained.
    #[test]
    fn many_streamers_drained_in_order_per_session() {
        const N: u16 = 300;
        let t0 = Instant::now();
        let start = |i: u16| t0 + Duration::from_micros(u64::from(i) * 137);
        let mut set = StreamerSet::new();
        let mut alone = Vec::new();
        for i in 0..N {
            let mut s = RtpStreamer::new(content(), StreamerConfig::default(), ids(i.into()));
            s.add_viewer(start(i), ViewerId(1), dest(i));
            s.resume(start(i));
            alone.push(RtpStreamer::new(
                content(),
                StreamerConfig::default(),
                ids(i.into()),
            ));
            set.insert(u32::from(i), s);
        }
        for (i, s) in alone.iter_mut().enumerate() {
            s.add_viewer(start(i as u16), ViewerId(1), dest(i as u16));
            s.resume(start(i as u16));
        }
        let until = t0 + Duration::from_millis(700);
        let leave = t0 + Duration::from_millis(500);
        let mut got: Vec<Vec<(Instant, Vec<u8>)>> = vec![Vec::new(); N as usize];
        let mut left = false;
        let mut wakes = 0;
        while let Some(now) = set.poll_timeout() {
            if now > until {
                break;
            }
            if !left && now >= leave {
                // session 7's viewer leaves: its BYE, then nothing more
                let w = wall(t0, leave);
                set.get_mut(7).unwrap().remove_viewer(leave, ViewerId(1), w);
                left = true;
                continue;
            }
            wakes += 1;
            set.handle_timeout(now, wall(t0, now));
            while let Some(x) = set.poll_transmit() {
                let i = usize::from((x.to.port() - 10_000) / 2);
                got[i].push((now, x.bytes));
            }
        }
        assert!(
            wakes > 30 * usize::from(N),
            "every session is served: {wakes}"
        );
        assert!(set.poll_transmit().is_none());
        for (i, s) in alone.iter_mut().enumerate() {
            let mut want = Vec::new();
            let stop = if i == 7 { leave } else { until };
            while let Some(now) = s.poll_timeout() {
                if now > stop || (i == 7 && now >= leave) {
                    break;
                }
                s.handle_timeout(now, wall(t0, now));
                while let Some(x) = s.poll_transmit() {
                    want.push((now, x.bytes));
                }
            }
            if i == 7 {
                s.remove_viewer(leave, ViewerId(1), wall(t0, leave));
                let bye = s.poll_transmit().unwrap();
                let (_, last) = got[7].pop().unwrap();
                assert_eq!(last, bye.bytes, "the BYE last");
            }
            assert_eq!(got[i], want, "session {i}");
        }
        assert_eq!(set.poll_timeout().map(|t| t > until), Some(true));
        assert!(set.remove(7).is_some() && set.len() == usize::from(N) - 1);
    }
}
