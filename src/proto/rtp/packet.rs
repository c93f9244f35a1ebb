//! RTP fixed header, CSRC list, header extension and payload (RFC 3550 §5.1, §5.3.1).

use super::{Reader, RtpError};

/// An RTP header extension (RFC 3550 §5.3.1): profile-defined 16 bits and
/// data whose length is a multiple of 4 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    pub profile: u16,
    pub data: Vec<u8>,
}

/// One RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpPacket {
    /// Number of padding octets at the end, including the count octet; 0 = P bit clear.
    pub padding: u8,
    pub marker: bool,
    pub payload_type: u8,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc: Vec<u32>,
    pub extension: Option<RtpExtension>,
    pub payload: Vec<u8>,
}

/// Length of the fixed RTP header.
pub const RTP_HEADER_LEN: usize = 12;

impl RtpPacket {
    /// A packet with no CSRC, extension or padding.
    pub fn new(
        payload_type: u8,
        sequence_number: u16,
        timestamp: u32,
        ssrc: u32,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            payload_type: payload_type & 0x7f,
            sequence_number,
            timestamp,
            ssrc,
            payload,
            ..Self::default()
        }
    }

    /// Parse one packet (RFC 3550 §5.1); rejects version ≠ 2 and inconsistent lengths.
    pub fn parse(buf: &[u8]) -> Result<Self, RtpError> {
        let mut r = Reader::new(buf);
        let b0 = r.u8("RTP fixed header")?;
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let cc = usize::from(b0 & 0x0f);
        let b1 = r.u8("RTP fixed header")?;
        let sequence_number = r.u16("RTP sequence number")?;
        let timestamp = r.u32("RTP timestamp")?;
        let ssrc = r.u32("RTP SSRC")?;
        let mut csrc = Vec::with_capacity(cc);
        for _ in 0..cc {
            csrc.push(r.u32("RTP CSRC list")?);
        }
        let extension = if has_extension {
            let profile = r.u16("RTP header extension")?;
            let words = usize::from(r.u16("RTP header extension")?);
            let data = r.take(words * 4, "RTP header extension data")?.to_vec();
            Some(RtpExtension { profile, data })
        } else {
            None
        };
        let rest = r.rest();
        // RFC 3550 §5.1: the last octet of the padding counts the padding octets.
        let padding = if has_padding {
            let pad = rest.last().copied().map_or(0, usize::from);
            if pad == 0 || pad > rest.len() {
                return Err(RtpError::BadPadding {
                    pad,
                    len: buf.len(),
                });
            }
            pad
        } else {
            0
        };
        let payload = rest
            .get(..rest.len() - padding)
            .unwrap_or_default()
            .to_vec();
        Ok(Self {
            padding: padding as u8,
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7f,
            sequence_number,
            timestamp,
            ssrc,
            csrc,
            extension,
            payload,
        })
    }

    /// Serialise; fails on more than 15 CSRCs or an unaligned extension.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RtpError> {
        if self.csrc.len() > 15 {
            return Err(RtpError::TooMany {
                what: "CSRCs",
                count: self.csrc.len(),
            });
        }
        if let Some(ext) = &self.extension
            && (ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpError::ExtensionNotAligned(ext.data.len()));
        }
        let mut out = Vec::with_capacity(self.len());
        let b0 = 0x80
            | if self.padding > 0 { 0x20 } else { 0 }
            | if self.extension.is_some() { 0x10 } else { 0 }
            | self.csrc.len() as u8;
        out.push(b0);
        out.push(if self.marker { 0x80 } else { 0 } | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in &self.csrc {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some(ext) = &self.extension {
            out.extend_from_slice(&ext.profile.to_be_bytes());
            out.extend_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(&ext.data);
        }
        out.extend_from_slice(&self.payload);
        if self.padding > 0 {
            out.extend(std::iter::repeat_n(0, usize::from(self.padding) - 1));
            out.push(self.padding);
        }
        Ok(out)
    }

    /// Length on the wire.
    pub fn len(&self) -> usize {
        RTP_HEADER_LEN
            + 4 * self.csrc.len()
            + self.extension.as_ref().map_or(0, |e| 4 + e.data.len())
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Never true: a packet has at least its fixed header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// `RtpPacket::parse` as a free function over bytes, for fuzz targets.
pub fn parse_rtp(buf: &[u8]) -> Result<RtpPacket, RtpError> {
    RtpPacket::parse(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_pcmu_packet() {
        let bytes = [
            0x80, 0x80, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef, 0xff, 0x7f,
        ];
        let p = RtpPacket::parse(&bytes).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.sequence_number, 0x1234);
        assert_eq!(p.timestamp, 320);
        assert_eq!(p.ssrc, 0xdeadbeef);
        assert_eq!(p.payload, [0xff, 0x7f]);
        assert_eq!(p.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        assert!(matches!(
            RtpPacket::parse(&[0x80, 0, 0]),
            Err(RtpError::Truncated {
                what: "RTP sequence number",
                ..
            })
        ));
        let mut padded = vec![0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 0];
        assert!(matches!(
            RtpPacket::parse(&padded),
            Err(RtpError::BadPadding { pad: 0, .. })
        ));
        padded[13] = 3;
        assert!(matches!(
            RtpPacket::parse(&padded),
            Err(RtpError::BadPadding { pad: 3, .. })
        ));
        padded[13] = 2;
        assert_eq!(RtpPacket::parse(&padded).unwrap().payload, Vec::<u8>::new());
        let csrc16 = RtpPacket {
            csrc: vec![0; 16],
            ..RtpPacket::default()
        };
        assert!(matches!(csrc16.to_bytes(), Err(RtpError::TooMany { .. })));
    }

    fn arb_packet() -> impl Strategy<Value = RtpPacket> {
        (
            (
                any::<u8>(),
                any::<bool>(),
                0u8..128,
                any::<u16>(),
                any::<u32>(),
                any::<u32>(),
            ),
            prop::collection::vec(any::<u32>(), 0..16),
            prop::option::of((any::<u16>(), prop::collection::vec(any::<[u8; 4]>(), 0..8))),
            prop::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(
                |((padding, marker, pt, seq, ts, ssrc), csrc, ext, payload)| RtpPacket {
                    padding,
                    marker,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc,
                    csrc,
                    extension: ext.map(|(profile, words)| RtpExtension {
                        profile,
                        data: words.concat(),
                    }),
                    payload,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(p in arb_packet()) {
            let bytes = p.to_bytes().unwrap();
            prop_assert_eq!(bytes.len(), p.len());
            prop_assert_eq!(RtpPacket::parse(&bytes).unwrap(), p);
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_rtp(&bytes);
        }
    }
}
