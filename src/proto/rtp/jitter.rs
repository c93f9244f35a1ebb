//! Adaptive jitter buffer, sans-IO: packets are pushed with their arrival
//! time and popped at their playout time; gaps whose turn has come are
//! reported as [`Playout::Lost`] so the audio player can conceal them.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::RtpPacket;

/// Tuning of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream.
    pub clock_rate: u32,
    /// Lower and upper bound of the target delay.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Target delay = this many times the measured jitter, within the bounds.
    pub jitter_factor: f64,
    /// Most packets held; beyond it the oldest are dropped.
    pub capacity: usize,
    /// How a gap's due time is guessed. `true` (audio: one timestamp step per
    /// packet) interpolates between its neighbours, so `Lost` comes on time;
    /// `false` (video: a frame's packets share one timestamp) waits until the
    /// next packet held is due, the latest moment that makes nothing late.
    pub interpolate_gaps: bool,
}

impl JitterConfig {
    /// PCMU audio: 8 kHz, 40–400 ms, 64 packets (1.28 s of 20 ms packets).
    pub fn audio() -> Self {
        Self {
            clock_rate: 8000,
            min_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(400),
            jitter_factor: 4.0,
            capacity: 64,
            interpolate_gaps: true,
        }
    }
    /// JPEG video: 90 kHz, 60–500 ms, 1024 packets.
    pub fn video() -> Self {
        Self {
            clock_rate: 90_000,
            min_delay: Duration::from_millis(60),
            max_delay: Duration::from_millis(500),
            jitter_factor: 4.0,
            capacity: 1024,
            interpolate_gaps: false,
        }
    }
}

/// What the player gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The packet due now.
    Packet(RtpPacket),
    /// The packet due now never came: conceal (repeat / fade the last frame).
    Lost {
        sequence_number: u16,
        extended_seq: u64,
    },
}

/// Counters and the current state of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JitterStats {
    /// Packets held now.
    pub depth: usize,
    pub target_delay: Duration,
    /// Interarrival jitter estimate (RFC 3550 A.8 smoothing).
    pub jitter: Duration,
    pub received: u64,
    pub played: u64,
    /// Gaps reported as `Lost`.
    pub lost: u64,
    /// Packets that came after their turn and were dropped.
    pub late: u64,
    pub duplicates: u64,
    /// Packets that came after a higher sequence number.
    pub reordered: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
}

const RECENT_PLAYED: usize = 128;
/// Extended numbers start here so reordering before the first packet cannot underflow.
const SEQ_BASE: u64 = 1 << 32;

/// Reorders by extended sequence number and releases packets at
/// `arrival of the fastest packet + target delay` in media time.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    packets: BTreeMap<u64, (i64, RtpPacket)>,
    highest: Option<(u64, u16)>,
    next_seq: Option<u64>,
    last_ts: Option<(i64, u32)>,
    origin: Option<Instant>,
    min_transit: f64,
    last_transit: Option<f64>,
    jitter: f64,
    last_played: Option<(u64, i64)>,
    recent: VecDeque<u64>,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        Self {
            config,
            packets: BTreeMap::new(),
            highest: None,
            next_seq: None,
            last_ts: None,
            origin: None,
            min_transit: f64::INFINITY,
            last_transit: None,
            jitter: 0.0,
            last_played: None,
            recent: VecDeque::with_capacity(RECENT_PLAYED),
            stats: JitterStats {
                target_delay: config.min_delay,
                ..JitterStats::default()
            },
        }
    }

    fn extend_seq(&self, seq: u16) -> u64 {
        match self.highest {
            // RFC 3550 A.1 idea: the nearest candidate to the highest seen
            Some((ext, last)) => ext.wrapping_add_signed(i64::from(seq.wrapping_sub(last) as i16)),
            None => SEQ_BASE + u64::from(seq),
        }
    }

    fn extend_ts(&mut self, ts: u32) -> i64 {
        let ext = match self.last_ts {
            Some((ext, last)) => ext.saturating_add(i64::from(ts.wrapping_sub(last) as i32)),
            None => 0,
        };
        if self.last_ts.is_none_or(|(e, _)| ext > e) {
            self.last_ts = Some((ext, ts));
        }
        ext
    }

    /// Accept a packet that arrived at `now`.
    pub fn push(&mut self, now: Instant, packet: RtpPacket) {
        let ext = self.extend_seq(packet.sequence_number);
        if self.next_seq.is_some_and(|next| ext < next) {
            if self.recent.contains(&ext) {
                self.stats.duplicates += 1;
            } else {
                self.stats.late += 1;
            }
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        match self.highest {
            Some((h, _)) if ext < h => self.stats.reordered += 1,
            _ => self.highest = Some((ext, packet.sequence_number)),
        }
        let ext_ts = self.extend_ts(packet.timestamp);
        // transit = arrival − media time, in seconds from the first arrival
        let origin = *self.origin.get_or_insert(now);
        let transit = now.saturating_duration_since(origin).as_secs_f64() - self.media_secs(ext_ts);
        self.min_transit = self.min_transit.min(transit);
        if let Some(prev) = self.last_transit {
            // RFC 3550 A.8 smoothing: J += (|D| − J) / 16
            self.jitter += ((transit - prev).abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        let target = Duration::from_secs_f64((self.jitter * self.config.jitter_factor).max(0.0));
        self.stats.target_delay = target.clamp(self.config.min_delay, self.config.max_delay);
        self.stats.jitter = Duration::from_secs_f64(self.jitter.max(0.0));
        self.packets.insert(ext, (ext_ts, packet));
        self.stats.received += 1;
        while self.packets.len() > self.config.capacity.max(1) {
            let Some((dropped, _)) = self.packets.pop_first() else {
                break;
            };
            self.stats.overflow += 1;
            if self.next_seq.is_none_or(|n| n <= dropped) {
                self.next_seq = Some(dropped + 1);
            }
        }
        self.stats.depth = self.packets.len();
    }

    fn media_secs(&self, ext_ts: i64) -> f64 {
        ext_ts as f64 / f64::from(self.config.clock_rate.max(1))
    }

    fn due(&self, ext_ts: i64) -> Option<Instant> {
        let origin = self.origin?;
        let offset =
            self.media_secs(ext_ts) + self.min_transit + self.stats.target_delay.as_secs_f64();
        // a hostile timestamp far in the future must not overflow: never due
        origin.checked_add(Duration::try_from_secs_f64(offset.max(0.0)).ok()?)
    }

    /// The next thing to play and when it is due: (extended seq, its timestamp, present?).
    fn next_slot(&self) -> Option<(u64, i64, bool)> {
        let next = self
            .next_seq
            .or_else(|| self.packets.keys().next().copied())?;
        if let Some((ts, _)) = self.packets.get(&next) {
            return Some((next, *ts, true));
        }
        let (&k, (ts_k, _)) = self.packets.range(next..).next()?;
        // a gap: estimate the missing timestamp between its neighbours
        let ts = match self.last_played {
            Some((seq_p, ts_p)) if k > seq_p && self.config.interpolate_gaps => {
                let span = i128::from(*ts_k) - i128::from(ts_p);
                let step = span * i128::from(next - seq_p) / i128::from(k - seq_p);
                (i128::from(ts_p) + step).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
            }
            _ => *ts_k,
        };
        Some((next, ts, false))
    }

    /// When `pop` will next have something (for the driver's timer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (_, ts, _) = self.next_slot()?;
        self.due(ts)
    }

    /// The packet (or gap) due at `now`, if any.
    pub fn pop(&mut self, now: Instant) -> Option<Playout> {
        let (next, ts, present) = self.next_slot()?;
        if now < self.due(ts)? {
            return None;
        }
        self.next_seq = Some(next + 1);
        self.last_played = Some((next, ts));
        if present {
            // remember played packets so a copy arriving later counts as a duplicate
            if self.recent.len() == RECENT_PLAYED {
                self.recent.pop_front();
            }
            self.recent.push_back(next);
            let (_, packet) = self.packets.remove(&next)?;
            self.stats.played += 1;
            self.stats.depth = self.packets.len();
            Some(Playout::Packet(packet))
        } else {
            // a gap longer than the buffer (sender restart, burst loss) is one
            // Lost and a jump to the next packet held, not thousands of slots
            let resume = self.packets.keys().next().copied().unwrap_or(next + 1);
            let gap = resume.saturating_sub(next);
            if gap > self.config.capacity as u64 {
                self.next_seq = Some(resume);
                self.stats.lost += gap;
            } else {
                self.stats.lost += 1;
            }
            Some(Playout::Lost {
                sequence_number: next as u16,
                extended_seq: next,
            })
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}
