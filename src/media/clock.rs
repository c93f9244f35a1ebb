//! Clocks of the player, sans-IO: where the audio output is in RTP time
//! ([`AudioClock`], the master) and how RTP time of each stream maps onto one
//! shared timeline ([`StreamClock`], [`AvSync`]) so video can follow audio.

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;

use crate::proto::rtp::NtpTime;

/// Which reference ties the two streams together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncBasis {
    /// Both streams' sender reports: RTP time → the sender's NTP wall clock
    /// (RFC 3550 §6.4.1), the lip-sync of §6.
    Sr,
    /// No SR for one stream yet: each stream's fastest packet arrival anchors it
    /// (streams sent together are taken to start together).
    Arrival,
}

/// RTP time of one stream → seconds on a shared timeline.
#[derive(Debug, Clone)]
pub struct StreamClock {
    clock_rate: u32,
    epoch: Instant,
    /// Latest SR: (NTP seconds since 1970, RTP timestamp).
    sr: Option<(f64, u32)>,
    /// Packet with the smallest transit seen: (arrival secs since `epoch`, RTP timestamp).
    fastest: Option<(f64, u32)>,
}

impl StreamClock {
    /// `epoch` is the player's start, shared by all its streams.
    pub fn new(clock_rate: u32, epoch: Instant) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            epoch,
            sr: None,
            fastest: None,
        }
    }

    /// A packet with `timestamp` arrived at `now`.
    pub fn on_packet(&mut self, now: Instant, timestamp: u32) {
        let arrival = now.saturating_duration_since(self.epoch).as_secs_f64();
        let better = match self.fastest {
            None => true,
            // a lower transit (arrival − media time) is a packet less delayed
            Some((a, ts)) => arrival - self.secs_between(ts, timestamp) < a,
        };
        if better {
            self.fastest = Some((arrival, timestamp));
        }
    }

    /// An SR pairs `ntp` with `rtp_timestamp` (RFC 3550 §6.4.1).
    pub fn on_sender_report(&mut self, ntp: NtpTime, rtp_timestamp: u32) {
        self.sr = Some((ntp.to_unix().as_secs_f64(), rtp_timestamp));
    }

    /// Media seconds from `from` to `to`, taking the 32-bit wrap as the nearer way.
    fn secs_between(&self, from: u32, to: u32) -> f64 {
        f64::from(to.wrapping_sub(from) as i32) / f64::from(self.clock_rate)
    }

    pub fn has_sr(&self) -> bool {
        self.sr.is_some()
    }

    /// `timestamp` on the given basis, in seconds.
    pub fn wall(&self, basis: SyncBasis, timestamp: u32) -> Option<f64> {
        let (at, ts) = match basis {
            SyncBasis::Sr => self.sr?,
            SyncBasis::Arrival => self.fastest?,
        };
        Some(at + self.secs_between(ts, timestamp))
    }
}

/// The audio and video clocks together.
#[derive(Debug, Clone)]
pub struct AvSync {
    pub audio: StreamClock,
    pub video: StreamClock,
}

impl AvSync {
    pub fn new(epoch: Instant) -> Self {
        Self {
            audio: StreamClock::new(crate::proto::rtp::PCMU_CLOCK_RATE, epoch),
            video: StreamClock::new(crate::proto::rtp::JPEG_CLOCK_RATE, epoch),
        }
    }

    /// SRs once both streams have sent one, arrivals before.
    pub fn basis(&self) -> SyncBasis {
        if self.audio.has_sr() && self.video.has_sr() {
            SyncBasis::Sr
        } else {
            SyncBasis::Arrival
        }
    }

    /// How far the video frame stamped `video_ts` is ahead of the audio being
    /// played at `audio_ts`, in seconds (≤ 0: the frame's time has come).
    pub fn video_ahead(&self, video_ts: u32, audio_ts: u32) -> Option<f64> {
        let basis = self.basis();
        Some(self.video.wall(basis, video_ts)? - self.audio.wall(basis, audio_ts)?)
    }
}

/// Output sample position → audio RTP timestamp: what the listener hears now.
/// Every block written to the sink is recorded with the timestamp of its
/// first sample; the sink reports how many samples it has played.
#[derive(Debug, Clone)]
pub struct AudioClock {
    output_rate: u32,
    media_rate: u32,
    /// (first output sample, its RTP timestamp), oldest first.
    segments: VecDeque<(u64, u32)>,
}

impl AudioClock {
    pub fn new(media_rate: u32, output_rate: u32) -> Self {
        Self {
            output_rate: output_rate.max(1),
            media_rate: media_rate.max(1),
            segments: VecDeque::new(),
        }
    }

    /// Output samples from `position` on carry media from `timestamp` on.
    pub fn on_write(&mut self, position: u64, timestamp: u32) {
        // blocks written at the same position replace each other
        if self.segments.back().is_some_and(|&(p, _)| p == position) {
            self.segments.pop_back();
        }
        self.segments.push_back((position, timestamp));
    }

    /// The RTP timestamp of the sample at output `position` (samples played).
    pub fn timestamp_at(&mut self, position: u64) -> Option<u32> {
        // drop segments wholly in the past
        while self.segments.len() > 1 && self.segments.get(1).is_some_and(|&(p, _)| p <= position) {
            self.segments.pop_front();
        }
        let &(start, ts) = self.segments.front()?;
        if position < start {
            return None;
        }
        let media = (position - start) * u64::from(self.media_rate) / u64::from(self.output_rate);
        Some(ts.wrapping_add(media as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn audio_clock_maps_output_samples_to_rtp_time() {
        let mut c = AudioClock::new(8000, 48000);
        assert_eq!(c.timestamp_at(0), None);
        c.on_write(0, 1000);
        c.on_write(960, 1160);
        // a jump (concealment stamped ahead, or a new source)
        c.on_write(1920, 5000);
        assert_eq!(c.timestamp_at(0), Some(1000));
        assert_eq!(c.timestamp_at(480), Some(1080));
        assert_eq!(c.timestamp_at(1000), Some(1166));
        assert_eq!(c.timestamp_at(1920), Some(5000));
        assert_eq!(c.timestamp_at(2400), Some(5080));
    }

    #[test]
    fn timestamps_wrap() {
        let mut c = AudioClock::new(8000, 8000);
        c.on_write(0, u32::MAX - 9);
        assert_eq!(c.timestamp_at(20), Some(10));
    }

    #[test]
    fn sr_basis_aligns_streams_with_different_offsets() {
        let t0 = Instant::now();
        let mut s = AvSync::new(t0);
        // same NTP instant, unrelated random RTP offsets
        let ntp = NtpTime::from_unix(Duration::from_secs(1_700_000_000));
        s.audio.on_sender_report(ntp, 12_345);
        assert_eq!(s.basis(), SyncBasis::Arrival);
        s.video.on_sender_report(ntp, 4_000_000_000);
        assert_eq!(s.basis(), SyncBasis::Sr);
        // audio 1 s later (8000 ticks) vs video frame 1 s later (90000 ticks)
        let ahead = s
            .video_ahead(4_000_000_000u32.wrapping_add(90_000), 12_345 + 8000)
            .unwrap();
        assert!(ahead.abs() < 1e-6, "{ahead}");
        let ahead = s
            .video_ahead(4_000_000_000u32.wrapping_add(99_000), 12_345 + 8000)
            .unwrap();
        assert!((ahead - 0.1).abs() < 1e-6, "{ahead}");
    }

    #[test]
    fn arrival_basis_uses_the_least_delayed_packet() {
        let t0 = Instant::now();
        let mut s = AvSync::new(t0);
        s.audio.on_packet(t0 + Duration::from_millis(50), 0);
        // second packet 20 ms of media later, arriving only 10 ms later: less transit
        s.audio.on_packet(t0 + Duration::from_millis(60), 160);
        s.video.on_packet(t0 + Duration::from_millis(40), 7);
        assert_eq!(s.audio.wall(SyncBasis::Arrival, 160), Some(0.06));
        let ahead = s.video_ahead(7, 0).unwrap();
        assert!((ahead - 0.0).abs() < 1e-9, "{ahead}");
    }
}
