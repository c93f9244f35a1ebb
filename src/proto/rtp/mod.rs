//! RTP media plane, sans-IO: packets (RFC 3550 §5), RTCP (§6) and receiver
//! statistics (Appendix A), G.711 μ-law (RFC 3551 PCMU), JPEG over RTP
//! (RFC 2435) and an adaptive jitter buffer. Nothing here reads a clock:
//! arrival times come in as `Instant`, wall-clock as an [`rtcp::NtpTime`].

pub mod g711;
pub mod jitter;
pub mod jpeg;
pub mod jpeg_codec;
pub mod packet;
pub mod rtcp;
pub mod stats;

pub use jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
pub use packet::{RtpExtension, RtpPacket};
pub use rtcp::{NtpTime, ReportBlock, RtcpPacket};
pub use stats::{ReceiverStats, SenderStats};

/// Static payload type of PCMU (RFC 3551 §6, table 4).
pub const PT_PCMU: u8 = 0;
/// Static payload type of JPEG (RFC 3551 §6, table 5).
pub const PT_JPEG: u8 = 26;
/// RTP clock rate of PCMU.
pub const PCMU_CLOCK_RATE: u32 = 8000;
/// RTP clock rate of JPEG video (RFC 2435 §3).
pub const JPEG_CLOCK_RATE: u32 = 90_000;

/// What is wrong with an RTP or RTCP packet on the wire.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The input ends before `what` is complete.
    #[error("truncated {what}: need {needed} bytes, have {have}")]
    Truncated {
        what: &'static str,
        needed: usize,
        have: usize,
    },
    /// The version field is not 2.
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// The padding count is zero or longer than the packet.
    #[error("bad padding length {pad} in a {len}-byte packet")]
    BadPadding { pad: usize, len: usize },
    /// More than 15 CSRCs (or 31 report blocks / SSRCs) to write.
    #[error("too many {what}: {count}")]
    TooMany { what: &'static str, count: usize },
    /// Header extension data is not a whole number of 32-bit words.
    #[error("header extension of {0} bytes is not 32-bit aligned")]
    ExtensionNotAligned(usize),
    /// An RTCP packet's body does not match what its header announces.
    #[error("RTCP {what}: {detail}")]
    BadRtcp {
        what: &'static str,
        detail: &'static str,
    },
    /// An SDES item or BYE reason is not UTF-8 or too long.
    #[error("bad text in {0}")]
    BadText(&'static str),
    /// Bytes left over after the last packet.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Big-endian reader over a byte slice that reports what it could not read.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RtpError> {
        if self.buf.len() < n {
            return Err(RtpError::Truncated {
                what,
                needed: n,
                have: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, RtpError> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, RtpError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u24(&mut self, what: &'static str) -> Result<u32, RtpError> {
        let b = self.take(3, what)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, RtpError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}
