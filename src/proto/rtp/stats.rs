//! Receiver statistics (RFC 3550 Appendix A.1, A.3, A.8): sequence number
//! extension with wrap, loss, interarrival jitter, and the report block they feed.

use std::time::{Duration, Instant};

use super::RtpPacket;
use super::rtcp::{NtpTime, ReportBlock, SenderInfo, to_dlsr};

/// RFC 3550 A.1 constants.
pub const MAX_DROPOUT: u16 = 3000;
pub const MAX_MISORDER: u16 = 100;
pub const MIN_SEQUENTIAL: u32 = 2;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Per-source reception state, fed with every packet of one SSRC.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    ssrc: Option<u32>,
    // RFC 3550 A.1 `source` fields
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    // A.8: transit in timestamp units, jitter scaled by 16
    first_arrival: Option<Instant>,
    transit: Option<u32>,
    jitter_q4: u32,
    // last SR from this source: its NTP middle 32 bits and when it arrived
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// Statistics for a stream with this RTP clock rate (8000 for PCMU, 90000 for JPEG).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            ssrc: None,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            first_arrival: None,
            transit: None,
            jitter_q4: 0,
            last_sr: None,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        // RFC 3550 A.1 init_seq()
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// RFC 3550 A.1 update_seq(): false when the packet is not (yet) valid.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            // source is not valid until MIN_SEQUENTIAL packets in sequence
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            // in order, with permissible gap
            if seq < self.max_seq {
                self.cycles += RTP_SEQ_MOD;
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // the sequence number made a very large jump
            if u32::from(seq) == self.bad_seq {
                // two sequential packets: assume the other side restarted
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        } else {
            // duplicate or reordered packet
        }
        self.received += 1;
        true
    }

    /// Account for one arriving packet (A.1 validation, A.8 jitter). Returns
    /// whether the source counts it as valid.
    pub fn on_packet(&mut self, arrival: Instant, packet: &RtpPacket) -> bool {
        if self.ssrc != Some(packet.ssrc) {
            // a new source: start over, first packet on probation
            *self = Self::new(self.clock_rate);
            self.ssrc = Some(packet.ssrc);
            self.max_seq = packet.sequence_number.wrapping_sub(1);
        }
        let valid = self.update_seq(packet.sequence_number);
        // A.8: arrival in timestamp units relative to the first arrival
        let first = *self.first_arrival.get_or_insert(arrival);
        let since = arrival.saturating_duration_since(first);
        // both clocks wrap modulo 2^32: differences are taken as signed 32-bit
        let arrival_ts = (since.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival_ts.wrapping_sub(packet.timestamp);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32)
                .unsigned_abs()
                .min(u32::MAX >> 5);
            // J += (|D| - J) / 16, with J kept scaled by 16
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
        valid
    }

    /// Record an SR from this source, for LSR/DLSR (RFC 3550 §6.4.1).
    pub fn on_sender_report(&mut self, arrival: Instant, ntp: NtpTime) {
        self.last_sr = Some((ntp.middle32(), arrival));
    }

    /// SSRC of the source being measured.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }
    /// Extended highest sequence number received (A.1: cycles + max_seq).
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }
    /// Packets expected so far (A.3).
    pub fn expected(&self) -> u32 {
        self.extended_highest_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }
    /// Valid packets received (duplicates included, as A.3 counts them).
    pub fn received(&self) -> u32 {
        self.received
    }
    /// Cumulative number of packets lost (A.3), clamped to 24 bits signed.
    pub fn cumulative_lost(&self) -> i32 {
        if self.ssrc.is_none() || self.probation > 0 {
            return 0;
        }
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }
    /// Interarrival jitter in timestamp units (A.8).
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }
    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.jitter()) / f64::from(self.clock_rate))
    }

    /// The report block for our next RR/SR (A.3 fraction lost since the last
    /// call); `None` before the source is valid.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        if self.probation > 0 {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, to_dlsr(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            extended_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

/// Sender-side counts for our SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    pub packet_count: u32,
    /// Payload octets (headers and padding excluded).
    pub octet_count: u32,
}

impl SenderStats {
    /// Count one sent packet.
    pub fn on_sent(&mut self, packet: &RtpPacket) {
        self.packet_count = self.packet_count.wrapping_add(1);
        self.octet_count = self.octet_count.wrapping_add(packet.payload.len() as u32);
    }

    /// Sender info for an SR: `ntp` (from the caller's wall clock) and the RTP
    /// timestamp that corresponds to the same instant.
    pub fn sender_info(&self, ntp: NtpTime, rtp_timestamp: u32) -> SenderInfo {
        SenderInfo {
            ntp,
            rtp_timestamp,
            packet_count: self.packet_count,
            octet_count: self.octet_count,
        }
    }
}
