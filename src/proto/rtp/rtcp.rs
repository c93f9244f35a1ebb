//! RTCP (RFC 3550 §6): SR, RR, SDES, BYE, compound packets, NTP timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Reader, RtpError};

/// RTCP packet types (RFC 3550 §12.1).
pub const RTCP_SR: u8 = 200;
pub const RTCP_RR: u8 = 201;
pub const RTCP_SDES: u8 = 202;
pub const RTCP_BYE: u8 = 203;
/// SDES item type CNAME (RFC 3550 §6.5.1).
pub const SDES_CNAME: u8 = 1;

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high
/// 32 bits, fraction in the low 32. Built from a time the caller read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// From a duration since the Unix epoch.
    pub fn from_unix(since_epoch: Duration) -> Self {
        let secs = since_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
        let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        Self((secs << 32) | frac)
    }
    /// From a `SystemTime` the caller obtained (times before 1970 map to 1970).
    pub fn from_system_time(t: SystemTime) -> Self {
        Self::from_unix(t.duration_since(UNIX_EPOCH).unwrap_or_default())
    }
    /// Back to a duration since the Unix epoch (era 0 only).
    pub fn to_unix(self) -> Duration {
        let secs = (self.0 >> 32).saturating_sub(NTP_UNIX_OFFSET);
        let nanos = ((self.0 & 0xffff_ffff) * 1_000_000_000) >> 32;
        Duration::new(secs, nanos as u32)
    }
    /// The middle 32 bits, as carried in LSR (RFC 3550 §6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// A duration in the 1/65536 s units of DLSR (RFC 3550 §6.4.1), saturating.
pub fn to_dlsr(d: Duration) -> u32 {
    let units = d.as_secs_f64() * 65536.0;
    if units >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        units as u32
    }
}

/// Round-trip time from an RR block (RFC 3550 §6.4.1): arrival − LSR − DLSR.
/// `None` when the block carries no LSR or the result would be negative.
pub fn round_trip_time(
    arrival: NtpTime,
    last_sr: u32,
    delay_since_last_sr: u32,
) -> Option<Duration> {
    if last_sr == 0 {
        return None;
    }
    let a = arrival.middle32();
    let rtt = a.checked_sub(last_sr)?.checked_sub(delay_since_last_sr)?;
    Some(Duration::from_secs_f64(f64::from(rtt) / 65536.0))
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a signed 24-bit value.
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp (0 if none).
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn read(r: &mut Reader<'_>) -> Result<Self, RtpError> {
        let ssrc = r.u32("report block")?;
        let fraction_lost = r.u8("report block")?;
        let lost = r.u24("report block")?;
        // sign-extend the 24-bit cumulative loss
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Ok(Self {
            ssrc,
            fraction_lost,
            cumulative_lost,
            extended_highest_seq: r.u32("report block")?,
            jitter: r.u32("report block")?,
            last_sr: r.u32("report block")?,
            delay_since_last_sr: r.u32("report block")?,
        })
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.push(self.fraction_lost);
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32;
        out.extend_from_slice(&lost.to_be_bytes()[1..]);
        out.extend_from_slice(&self.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// Sender information of an SR (RFC 3550 §6.4.1): the NTP ↔ RTP timestamp pair and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ntp: NtpTime,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// SR (PT 200).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    pub ssrc: u32,
    pub info: SenderInfo,
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension, kept as bytes.
    pub extension: Vec<u8>,
}

/// RR (PT 201).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
    pub extension: Vec<u8>,
}

/// One SDES item (RFC 3550 §6.5); `kind` 1 = CNAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    pub kind: u8,
    pub value: String,
}

/// One SDES chunk: an SSRC/CSRC and its items.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    pub ssrc: u32,
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// A chunk carrying only a CNAME.
    pub fn cname(ssrc: u32, cname: &str) -> Self {
        Self {
            ssrc,
            items: vec![SdesItem {
                kind: SDES_CNAME,
                value: cname.to_owned(),
            }],
        }
    }
    /// The CNAME item's value, if any.
    pub fn get_cname(&self) -> Option<&str> {
        self.items
            .iter()
            .find(|i| i.kind == SDES_CNAME)
            .map(|i| i.value.as_str())
    }
}

/// BYE (PT 203).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    pub sources: Vec<u32>,
    pub reason: Option<String>,
}

/// One RTCP packet of a compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    SourceDescription(Vec<SdesChunk>),
    Bye(Bye),
    /// APP and anything else, kept whole.
    Unknown {
        packet_type: u8,
        count: u8,
        body: Vec<u8>,
    },
}

fn text(bytes: &[u8], what: &'static str) -> Result<String, RtpError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| RtpError::BadText(what))
}

impl RtcpPacket {
    /// Parse one RTCP packet from the front of `buf`; returns it and the bytes it used.
    pub fn parse_one(buf: &[u8]) -> Result<(Self, usize), RtpError> {
        let mut r = Reader::new(buf);
        let b0 = r.u8("RTCP header")?;
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion(b0 >> 6));
        }
        let count = b0 & 0x1f;
        let packet_type = r.u8("RTCP header")?;
        let total = (usize::from(r.u16("RTCP header")?) + 1) * 4;
        let mut body = r.take(total - 4, "RTCP packet body")?;
        if b0 & 0x20 != 0 {
            // RFC 3550 §6.4.1: last octet counts the padding
            let pad = body.last().copied().map_or(0, usize::from);
            if pad == 0 || pad > body.len() {
                return Err(RtpError::BadPadding { pad, len: total });
            }
            body = body.get(..body.len() - pad).unwrap_or_default();
        }
        let mut r = Reader::new(body);
        let packet = match packet_type {
            RTCP_SR => {
                let ssrc = r.u32("SR SSRC")?;
                let ntp = (u64::from(r.u32("SR sender info")?) << 32)
                    | u64::from(r.u32("SR sender info")?);
                let info = SenderInfo {
                    ntp: NtpTime(ntp),
                    rtp_timestamp: r.u32("SR sender info")?,
                    packet_count: r.u32("SR sender info")?,
                    octet_count: r.u32("SR sender info")?,
                };
                let reports = (0..count)
                    .map(|_| ReportBlock::read(&mut r))
                    .collect::<Result<_, _>>()?;
                Self::SenderReport(SenderReport {
                    ssrc,
                    info,
                    reports,
                    extension: r.rest().to_vec(),
                })
            }
            RTCP_RR => {
                let ssrc = r.u32("RR SSRC")?;
                let reports = (0..count)
                    .map(|_| ReportBlock::read(&mut r))
                    .collect::<Result<_, _>>()?;
                Self::ReceiverReport(ReceiverReport {
                    ssrc,
                    reports,
                    extension: r.rest().to_vec(),
                })
            }
            RTCP_SDES => {
                let mut chunks = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let start = r.remaining();
                    let ssrc = r.u32("SDES chunk SSRC")?;
                    let mut items = Vec::new();
                    loop {
                        let kind = r.u8("SDES item")?;
                        if kind == 0 {
                            break;
                        }
                        let len = usize::from(r.u8("SDES item length")?);
                        items.push(SdesItem {
                            kind,
                            value: text(r.take(len, "SDES item text")?, "SDES item")?,
                        });
                    }
                    // RFC 3550 §6.5: null octets pad the chunk to a 32-bit boundary
                    let used = start - r.remaining();
                    r.take((4 - used % 4) % 4, "SDES chunk padding")?;
                    chunks.push(SdesChunk { ssrc, items });
                }
                Self::SourceDescription(chunks)
            }
            RTCP_BYE => {
                let sources = (0..count)
                    .map(|_| r.u32("BYE SSRC"))
                    .collect::<Result<_, _>>()?;
                let reason = if r.remaining() > 0 {
                    let len = usize::from(r.u8("BYE reason length")?);
                    Some(text(r.take(len, "BYE reason")?, "BYE reason")?)
                } else {
                    None
                };
                Self::Bye(Bye { sources, reason })
            }
            _ => Self::Unknown {
                packet_type,
                count,
                body: body.to_vec(),
            },
        };
        Ok((packet, total))
    }

    /// Serialise one packet (no padding).
    pub fn to_bytes(&self) -> Result<Vec<u8>, RtpError> {
        let mut body = Vec::new();
        let (count, packet_type) = match self {
            Self::SenderReport(sr) => {
                body.extend_from_slice(&sr.ssrc.to_be_bytes());
                body.extend_from_slice(&sr.info.ntp.0.to_be_bytes());
                body.extend_from_slice(&sr.info.rtp_timestamp.to_be_bytes());
                body.extend_from_slice(&sr.info.packet_count.to_be_bytes());
                body.extend_from_slice(&sr.info.octet_count.to_be_bytes());
                sr.reports.iter().for_each(|b| b.write(&mut body));
                body.extend_from_slice(&sr.extension);
                (sr.reports.len(), RTCP_SR)
            }
            Self::ReceiverReport(rr) => {
                body.extend_from_slice(&rr.ssrc.to_be_bytes());
                rr.reports.iter().for_each(|b| b.write(&mut body));
                body.extend_from_slice(&rr.extension);
                (rr.reports.len(), RTCP_RR)
            }
            Self::SourceDescription(chunks) => {
                for c in chunks {
                    let start = body.len();
                    body.extend_from_slice(&c.ssrc.to_be_bytes());
                    for item in &c.items {
                        let len = u8::try_from(item.value.len())
                            .map_err(|_| RtpError::BadText("SDES item"))?;
                        if item.kind == 0 {
                            return Err(RtpError::BadRtcp {
                                what: "SDES",
                                detail: "item type 0 is the terminator",
                            });
                        }
                        body.push(item.kind);
                        body.push(len);
                        body.extend_from_slice(item.value.as_bytes());
                    }
                    body.push(0);
                    while (body.len() - start) % 4 != 0 {
                        body.push(0);
                    }
                }
                (chunks.len(), RTCP_SDES)
            }
            Self::Bye(bye) => {
                bye.sources
                    .iter()
                    .for_each(|s| body.extend_from_slice(&s.to_be_bytes()));
                if let Some(reason) = &bye.reason {
                    let len =
                        u8::try_from(reason.len()).map_err(|_| RtpError::BadText("BYE reason"))?;
                    body.push(len);
                    body.extend_from_slice(reason.as_bytes());
                    while body.len() % 4 != 0 {
                        body.push(0);
                    }
                }
                (bye.sources.len(), RTCP_BYE)
            }
            Self::Unknown {
                packet_type,
                count,
                body: b,
            } => {
                body.extend_from_slice(b);
                (usize::from(*count), *packet_type)
            }
        };
        if count > 31 {
            return Err(RtpError::TooMany {
                what: "RTCP items",
                count,
            });
        }
        if body.len() % 4 != 0 {
            return Err(RtpError::BadRtcp {
                what: "packet",
                detail: "body is not 32-bit aligned",
            });
        }
        let words = u16::try_from(body.len() / 4).map_err(|_| RtpError::BadRtcp {
            what: "packet",
            detail: "longer than 65535 words",
        })?;
        let mut out = Vec::with_capacity(4 + body.len());
        out.push(0x80 | count as u8);
        out.push(packet_type);
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// Parse a compound RTCP packet (RFC 3550 §6.1) into its parts.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtpError> {
    let mut packets = Vec::new();
    let mut rest = buf;
    if rest.is_empty() {
        return Err(RtpError::Truncated {
            what: "RTCP header",
            needed: 4,
            have: 0,
        });
    }
    while !rest.is_empty() {
        let padded = rest.first().is_some_and(|b| b & 0x20 != 0);
        let (p, used) = RtcpPacket::parse_one(rest)?;
        packets.push(p);
        rest = rest.get(used..).unwrap_or_default();
        // RFC 3550 A.2: only the last packet of a compound may be padded
        if padded && !rest.is_empty() {
            return Err(RtpError::BadRtcp {
                what: "compound",
                detail: "padding before the last packet",
            });
        }
    }
    Ok(packets)
}

/// Build a compound RTCP packet by concatenation.
pub fn build_compound(packets: &[RtcpPacket]) -> Result<Vec<u8>, RtpError> {
    let mut out = Vec::new();
    for p in packets {
        out.extend(p.to_bytes()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ntp_conversions() {
        let t = NtpTime::from_unix(Duration::new(1_700_000_000, 500_000_000));
        assert_eq!(t.0 >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(t.0 & 0xffff_ffff, 0x8000_0000);
        assert_eq!(t.to_unix(), Duration::new(1_700_000_000, 500_000_000));
        assert_eq!(
            t.middle32(),
            (((1_700_000_000 + NTP_UNIX_OFFSET) as u32) << 16) | 0x8000
        );
        assert_eq!(to_dlsr(Duration::from_millis(1500)), 98304);
        let sent = NtpTime::from_unix(Duration::from_secs(100));
        let back = NtpTime::from_unix(Duration::from_millis(100_250));
        let rtt =
            round_trip_time(back, sent.middle32(), to_dlsr(Duration::from_millis(200))).unwrap();
        assert!((rtt.as_secs_f64() - 0.05).abs() < 0.001, "{rtt:?}");
    }

    #[test]
    fn compound_sr_sdes_bye() {
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 64,
            cumulative_lost: -3,
            extended_highest_seq: 0x1_0005,
            jitter: 12,
            last_sr: 0xabcd_0000,
            delay_since_last_sr: 65536,
        };
        let packets = vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 1,
                info: SenderInfo {
                    ntp: NtpTime(0x1234_5678_9abc_def0),
                    rtp_timestamp: 160,
                    packet_count: 1,
                    octet_count: 160,
                },
                reports: vec![block],
                extension: vec![],
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(1, "alice@tv.example.com")]),
            RtcpPacket::Bye(Bye {
                sources: vec![1],
                reason: Some("done".into()),
            }),
        ];
        let bytes = build_compound(&packets).unwrap();
        assert_eq!(bytes[0], 0x81);
        assert_eq!(bytes[1], 200);
        assert_eq!(
            u16::from_be_bytes([bytes[2], bytes[3]]),
            12,
            "SR with one block is 13 words"
        );
        let back = parse_compound(&bytes).unwrap();
        assert_eq!(back, packets);
        let RtcpPacket::SourceDescription(chunks) = &back[1] else {
            panic!()
        };
        assert_eq!(chunks[0].get_cname(), Some("alice@tv.example.com"));
    }

    #[test]
    fn padded_last_packet() {
        let rr = RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 9,
            ..Default::default()
        });
        let mut bytes = rr.to_bytes().unwrap();
        bytes[0] |= 0x20;
        bytes[3] = 2; // 3 words: header, SSRC, padding
        bytes.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(parse_compound(&bytes).unwrap(), vec![rr]);
        let mut twice = bytes.clone();
        twice.extend_from_slice(&bytes);
        assert!(matches!(
            parse_compound(&twice),
            Err(RtpError::BadRtcp {
                what: "compound",
                ..
            })
        ));
        bytes[7 + 4] = 9;
        assert!(matches!(
            parse_compound(&bytes),
            Err(RtpError::BadPadding { .. })
        ));
    }

    fn arb_block() -> impl Strategy<Value = ReportBlock> {
        (
            any::<u32>(),
            any::<u8>(),
            -0x80_0000i32..0x80_0000,
            any::<[u32; 4]>(),
        )
            .prop_map(|(ssrc, f, lost, w)| ReportBlock {
                ssrc,
                fraction_lost: f,
                cumulative_lost: lost,
                extended_highest_seq: w[0],
                jitter: w[1],
                last_sr: w[2],
                delay_since_last_sr: w[3],
            })
    }

    fn arb_packet() -> impl Strategy<Value = RtcpPacket> {
        let blocks = || prop::collection::vec(arb_block(), 0..4);
        let ext = || prop::collection::vec(any::<[u8; 4]>(), 0..3).prop_map(|w| w.concat());
        prop_oneof![
            (any::<u32>(), any::<[u32; 5]>(), blocks(), ext()).prop_map(
                |(ssrc, w, reports, extension)| {
                    RtcpPacket::SenderReport(SenderReport {
                        ssrc,
                        info: SenderInfo {
                            ntp: NtpTime((u64::from(w[0]) << 32) | u64::from(w[1])),
                            rtp_timestamp: w[2],
                            packet_count: w[3],
                            octet_count: w[4],
                        },
                        reports,
                        extension,
                    })
                }
            ),
            (any::<u32>(), blocks(), ext()).prop_map(|(ssrc, reports, extension)| {
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc,
                    reports,
                    extension,
                })
            }),
            prop::collection::vec(
                (
                    any::<u32>(),
                    prop::collection::vec((1u8..=255, "[a-z@.0-9]{0,40}"), 0..3)
                ),
                0..4
            )
            .prop_map(|chunks| RtcpPacket::SourceDescription(
                chunks
                    .into_iter()
                    .map(|(ssrc, items)| SdesChunk {
                        ssrc,
                        items: items
                            .into_iter()
                            .map(|(kind, value)| SdesItem { kind, value })
                            .collect()
                    })
                    .collect()
            )),
            (
                prop::collection::vec(any::<u32>(), 0..5),
                prop::option::of("[ -~]{0,60}")
            )
                .prop_map(|(sources, reason)| RtcpPacket::Bye(Bye { sources, reason })),
            (
                204u8..=207,
                0u8..32,
                prop::collection::vec(any::<[u8; 4]>(), 0..4)
            )
                .prop_map(|(packet_type, count, w)| RtcpPacket::Unknown {
                    packet_type,
                    count,
                    body: w.concat()
                }),
        ]
    }

    proptest! {
        #[test]
        fn compound_round_trip(packets in prop::collection::vec(arb_packet(), 1..5)) {
            let bytes = build_compound(&packets).unwrap();
            prop_assert_eq!(parse_compound(&bytes).unwrap(), packets);
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_compound(&bytes);
        }
    }
}
