//! G.711 μ-law (PCMU, RFC 3551 §4.5.14), ITU-T G.711 on 16-bit linear PCM,
//! and the PCMU packetizer.

use super::{PT_PCMU, RtpPacket};

/// Decoded value of every μ-law code (ITU-T G.711 table 2a, scaled to 16 bits).
pub const ULAW_TO_LINEAR: [i16; 256] = decode_table();

const fn decode_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut c = 0;
    while c < 256 {
        // G.711: complement the code, then magnitude = ((2·mantissa + 33) << exponent) − 33 in 14 bits
        let u = !(c as u8);
        let exponent = (u >> 4) & 0x07;
        let mantissa = (u & 0x0f) as i32;
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        t[c] = if u & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        };
        c += 1;
    }
    t
}

/// Encode one 16-bit linear sample to μ-law.
pub fn encode(sample: i16) -> u8 {
    // work in 14 bits as G.711 does; bias 33, clip at 8159
    let mut v = i32::from(sample) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7f
    } else {
        0xff
    };
    let v = v.min(8159) + 0x21;
    let segment = 32 - ((v >> 6) as u32).leading_zeros();
    if segment > 7 {
        // beyond the last segment end (0x1fff): the largest code
        return 0x7f ^ mask;
    }
    let code = ((segment << 4) as i32 | ((v >> (segment + 1)) & 0x0f)) as u8;
    code ^ mask
}

/// Decode one μ-law code to 16-bit linear.
pub fn decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// Encode a block of samples (one byte per sample).
pub fn encode_slice(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| encode(s)).collect()
}

/// Decode a PCMU payload.
pub fn decode_slice(codes: &[u8]) -> Vec<i16> {
    codes.iter().map(|&c| decode(c)).collect()
}

/// Samples in a 20 ms PCMU packet (RFC 3551 §4.5: default ptime 20 ms).
pub const SAMPLES_PER_20MS: usize = 160;

/// Frames 8 kHz PCM into PCMU RTP packets (PT 0), one timestamp unit per sample.
#[derive(Debug, Clone)]
pub struct PcmuPacketizer {
    pub ssrc: u32,
    next_seq: u16,
    next_timestamp: u32,
    samples_per_packet: usize,
    pending: Vec<i16>,
    first: bool,
}

impl PcmuPacketizer {
    /// `samples_per_packet` is clamped to at least 1 (160 = 20 ms).
    pub fn new(ssrc: u32, first_seq: u16, first_timestamp: u32, samples_per_packet: usize) -> Self {
        Self {
            ssrc,
            next_seq: first_seq,
            next_timestamp: first_timestamp,
            samples_per_packet: samples_per_packet.max(1),
            pending: Vec::new(),
            first: true,
        }
    }

    /// Timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    fn packet(&mut self, samples: &[i16]) -> RtpPacket {
        let mut p = RtpPacket::new(
            PT_PCMU,
            self.next_seq,
            self.next_timestamp,
            self.ssrc,
            encode_slice(samples),
        );
        // RFC 3551 §4.1: marker on the first packet of a talkspurt
        p.marker = std::mem::take(&mut self.first);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_timestamp = self.next_timestamp.wrapping_add(samples.len() as u32);
        p
    }

    /// Add samples; returns every packet now complete (the rest waits).
    pub fn push(&mut self, samples: &[i16]) -> Vec<RtpPacket> {
        self.pending.extend_from_slice(samples);
        let n = self.samples_per_packet;
        let full = self.pending.len() / n * n;
        let ready: Vec<i16> = self.pending.drain(..full).collect();
        ready.chunks(n).map(|c| self.packet(c)).collect()
    }

    /// The remaining samples as a short last packet, if any.
    pub fn flush(&mut self) -> Option<RtpPacket> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.pending);
        Some(self.packet(&rest))
    }

    /// Start a new talkspurt after silence (next packet gets the marker) and
    /// skip `silent_samples` of timestamp.
    pub fn resume_after_silence(&mut self, silent_samples: u32) {
        self.first = true;
        self.next_timestamp = self.next_timestamp.wrapping_add(silent_samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference algorithm (CCITT/Sun g711.c), written out step by step.
    const SEG_UEND: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];

    fn ref_linear2ulaw(pcm: i16) -> u8 {
        let mut pcm_val = i32::from(pcm) >> 2;
        let mask;
        if pcm_val < 0 {
            pcm_val = -pcm_val;
            mask = 0x7f;
        } else {
            mask = 0xff;
        }
        if pcm_val > 8159 {
            pcm_val = 8159;
        }
        pcm_val += 0x84 >> 2;
        let seg = SEG_UEND.iter().position(|&end| pcm_val <= end).unwrap_or(8);
        if seg >= 8 {
            return (0x7f ^ mask) as u8;
        }
        let uval = ((seg as i32) << 4) | ((pcm_val >> (seg + 1)) & 0xf);
        (uval ^ mask) as u8
    }

    fn ref_ulaw2linear(u: u8) -> i16 {
        let u = !u;
        let mut t = (i32::from(u & 0x0f) << 3) + 0x84;
        t <<= (u & 0x70) >> 4;
        (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
    }

    #[test]
    fn decode_all_256_codes_match_reference() {
        for c in 0..=255u8 {
            assert_eq!(decode(c), ref_ulaw2linear(c), "code {c:#04x}");
        }
        assert_eq!(decode(0xff), 0);
        assert_eq!(decode(0x7f), 0);
        assert_eq!(decode(0x80), 32124);
        assert_eq!(decode(0x00), -32124);
    }

    #[test]
    fn encode_all_65536_values_match_reference() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(encode(s), ref_linear2ulaw(s), "sample {s}");
        }
    }

    #[test]
    fn codes_round_trip() {
        for c in 0..=255u8 {
            // 0x7f is "negative zero" and comes back as 0xff
            let expect = if c == 0x7f { 0xff } else { c };
            assert_eq!(encode(decode(c)), expect, "code {c:#04x}");
        }
    }

    #[test]
    fn linear_round_trip_within_quantisation_error() {
        for s in i16::MIN..=i16::MAX {
            let back = decode(encode(s));
            let v = i32::from(s);
            if v.abs() >= 32124 {
                assert_eq!(i32::from(back).abs(), 32124, "clipped {s}");
                continue;
            }
            // segment of the (biased, 14-bit) magnitude; step in 16-bit units is 8 << segment
            let biased = (v >> 2).abs().min(8159) + 0x21;
            let seg = SEG_UEND.iter().position(|&end| biased <= end).unwrap_or(7) as i32;
            let half_step = 4 << seg;
            assert!(
                (i32::from(back) - v).abs() <= half_step + 4,
                "{s} -> {back}"
            );
        }
    }

    #[test]
    fn packetizer_frames_20ms() {
        let mut p = PcmuPacketizer::new(5, 65535, u32::MAX - 100, SAMPLES_PER_20MS);
        let out = p.push(&[1000; 400]);
        assert_eq!(out.len(), 2);
        assert!(out[0].marker && !out[1].marker);
        assert_eq!((out[0].sequence_number, out[1].sequence_number), (65535, 0));
        assert_eq!(out[1].timestamp, (u32::MAX - 100).wrapping_add(160));
        assert_eq!(out[0].payload.len(), 160);
        assert_eq!(decode(out[0].payload[0]), decode(encode(1000)));
        let last = p.flush().unwrap();
        assert_eq!((last.payload.len(), last.sequence_number), (80, 1));
        assert_eq!(p.flush(), None);
        p.resume_after_silence(800);
        let next = p.push(&[0; 160]);
        assert!(next[0].marker);
        assert_eq!(next[0].timestamp, (u32::MAX - 100).wrapping_add(400 + 800));
    }

    #[test]
    fn slices() {
        let pcm = [0i16, 1000, -1000, 32767];
        assert_eq!(decode_slice(&encode_slice(&pcm)).len(), 4);
    }
}
