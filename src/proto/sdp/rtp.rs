//! RTP media lines (RFC 3264, RTP/AVP profile RFC 3551): the viewer's
//! recvonly offer for PCMU audio and JPEG video, the streamer's sendonly
//! answer, and codec matching for 488.

use super::{Attribute, ConnectionAddress, Direction, SdpError};
use std::fmt;

pub(super) const RTP_AVP: &str = "RTP/AVP";

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]` (RFC 4566 §6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl RtpMap {
    pub fn new(payload_type: u8, encoding: &str, clock_rate: u32) -> Self {
        Self {
            payload_type,
            encoding: encoding.into(),
            clock_rate,
            channels: None,
        }
    }

    /// Same codec (encoding name case-insensitive, clock, channels 1 = none).
    pub fn same_codec(&self, other: &RtpMap) -> bool {
        self.encoding.eq_ignore_ascii_case(&other.encoding)
            && self.clock_rate == other.clock_rate
            && self.channels.unwrap_or(1) == other.channels.unwrap_or(1)
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        if let Some(c) = self.channels {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

impl TryFrom<&sdp_rs::lines::attribute::Rtpmap> for RtpMap {
    type Error = SdpError;

    fn try_from(m: &sdp_rs::lines::attribute::Rtpmap) -> Result<Self, SdpError> {
        let bad = || SdpError::BadAttribute {
            name: "rtpmap",
            value: m.to_string(),
        };
        let payload_type = u8::try_from(m.payload_type)
            .ok()
            .filter(|pt| *pt <= 127)
            .ok_or_else(bad)?;
        Ok(Self {
            payload_type,
            encoding: m.encoding_name.clone(),
            clock_rate: u32::try_from(m.clock_rate).map_err(|_| bad())?,
            channels: m
                .encoding_params
                .map(u16::try_from)
                .transpose()
                .map_err(|_| bad())?,
        })
    }
}

/// Codecs `isc` streams (RFC 3551 §6 static payload types).
pub mod codecs {
    use super::RtpMap;

    /// PCMU, PT 0, 8 kHz (RFC 3551 §4.5.14).
    pub fn pcmu() -> RtpMap {
        RtpMap::new(0, "PCMU", 8000)
    }

    /// PCMA, PT 8, 8 kHz.
    pub fn pcma() -> RtpMap {
        RtpMap::new(8, "PCMA", 8000)
    }

    /// JPEG video, PT 26, 90 kHz (RFC 2435).
    pub fn jpeg() -> RtpMap {
        RtpMap::new(26, "JPEG", 90000)
    }

    /// The rtpmap a static payload type implies when none is given
    /// (RFC 3551 table 4/5; only the ones we might meet).
    pub fn static_payload(pt: u8) -> Option<RtpMap> {
        Some(match pt {
            0 => pcmu(),
            3 => RtpMap::new(3, "GSM", 8000),
            4 => RtpMap::new(4, "G723", 8000),
            8 => pcma(),
            9 => RtpMap::new(9, "G722", 8000),
            18 => RtpMap::new(18, "G729", 8000),
            26 => jpeg(),
            31 => RtpMap::new(31, "H261", 90000),
            32 => RtpMap::new(32, "MPV", 90000),
            34 => RtpMap::new(34, "H263", 90000),
            _ => return None,
        })
    }
}

/// `audio`, `video` or another media type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    Other(String),
}

impl MediaKind {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "audio" => Self::Audio,
            "video" => Self::Video,
            other => Self::Other(other.into()),
        }
    }
}

/// An `m=<audio|video> <port> RTP/AVP <pt>...` line, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMedia {
    pub kind: MediaKind,
    pub port: u16,
    /// Formats in preference order.
    pub payload_types: Vec<u8>,
    /// `a=rtpmap` lines as sent (static types may have none).
    pub rtpmaps: Vec<RtpMap>,
    pub direction: Direction,
    /// Effective `c=` address.
    pub connection: Option<ConnectionAddress>,
    /// Other attributes (`ptime`, `fmtp`, ...), in order.
    pub other: Vec<Attribute>,
}

pub(super) fn format_list(pts: &[u8]) -> String {
    pts.iter().map(u8::to_string).collect::<Vec<_>>().join(" ")
}

impl RtpMedia {
    /// A line offering these codecs, each with its rtpmap.
    pub fn new(
        kind: MediaKind,
        port: u16,
        connection: ConnectionAddress,
        codecs: &[RtpMap],
        direction: Direction,
    ) -> Self {
        Self {
            kind,
            port,
            payload_types: codecs.iter().map(|c| c.payload_type).collect(),
            rtpmaps: codecs.to_vec(),
            direction,
            connection: Some(connection),
            other: Vec::new(),
        }
    }

    /// A viewer's offer to receive PCMU audio.
    pub fn audio_pcmu(port: u16, connection: ConnectionAddress, direction: Direction) -> Self {
        Self::new(
            MediaKind::Audio,
            port,
            connection,
            &[codecs::pcmu()],
            direction,
        )
    }

    /// A viewer's offer to receive JPEG video.
    pub fn video_jpeg(port: u16, connection: ConnectionAddress, direction: Direction) -> Self {
        Self::new(
            MediaKind::Video,
            port,
            connection,
            &[codecs::jpeg()],
            direction,
        )
    }

    /// The codec of a payload type: its rtpmap, else the static assignment.
    pub fn codec(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmaps
            .iter()
            .find(|m| m.payload_type == pt)
            .cloned()
            .or_else(|| codecs::static_payload(pt))
    }

    /// The offered codecs we support, in the offer's order and with the
    /// offer's payload type numbers (RFC 3264 §6.1).
    pub fn common_codecs(&self, supported: &[RtpMap]) -> Vec<RtpMap> {
        self.payload_types
            .iter()
            .filter_map(|pt| self.codec(*pt))
            .filter(|c| supported.iter().any(|s| s.same_codec(c)))
            .collect()
    }

    /// Answers this offered line with our port and address: the common
    /// codecs, direction mirrored and limited to `wanted`. No codec in common
    /// → [`SdpError::UnsupportedCodecs`] (reject the line; 488 if none left).
    pub fn answer(
        &self,
        supported: &[RtpMap],
        port: u16,
        connection: ConnectionAddress,
        wanted: Direction,
    ) -> Result<RtpMedia, SdpError> {
        let common = self.common_codecs(supported);
        if common.is_empty() {
            return Err(SdpError::UnsupportedCodecs);
        }
        Ok(RtpMedia {
            kind: self.kind.clone(),
            port,
            payload_types: common.iter().map(|c| c.payload_type).collect(),
            rtpmaps: common,
            direction: Direction::answer(self.direction, wanted),
            connection: Some(connection),
            other: Vec::new(),
        })
    }

    pub(super) fn from_parts(
        kind: &str,
        port: u16,
        fmt: &str,
        connection: Option<ConnectionAddress>,
        direction: Direction,
        rtpmaps: Vec<RtpMap>,
        other: Vec<Attribute>,
    ) -> Result<Self, SdpError> {
        let payload_types = fmt
            .split_whitespace()
            .map(|f| f.parse::<u8>().ok().filter(|pt| *pt <= 127))
            .collect::<Option<Vec<u8>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SdpError::BadMediaLine(format!("RTP/AVP formats {fmt:?}")))?;
        Ok(Self {
            kind: MediaKind::parse(kind),
            port,
            payload_types,
            rtpmaps,
            direction,
            connection,
            other,
        })
    }

    pub(super) fn write(
        &self,
        f: &mut fmt::Formatter<'_>,
        connection: Option<&ConnectionAddress>,
    ) -> fmt::Result {
        write!(
            f,
            "m={} {} {RTP_AVP} {}\r\n",
            self.kind.as_str(),
            self.port,
            format_list(&self.payload_types)
        )?;
        if let Some(c) = connection {
            write!(f, "c={c}\r\n")?;
        }
        for m in &self.rtpmaps {
            write!(f, "a=rtpmap:{m}\r\n")?;
        }
        for a in &self.other {
            write!(f, "{a}\r\n")?;
        }
        if !(self.port == 0 && self.direction == Direction::SendRecv) {
            write!(f, "a={}\r\n", self.direction)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sdp::{MediaLine, Sdp, parse_sdp};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn lo() -> ConnectionAddress {
        ConnectionAddress::Ip(Ipv4Addr::LOCALHOST.into())
    }

    #[test]
    fn viewer_offer_prints() {
        let sdp = Sdp::new("viewer", 3, lo())
            .with_media(RtpMedia::audio_pcmu(40000, lo(), Direction::RecvOnly))
            .with_media(RtpMedia::video_jpeg(40002, lo(), Direction::RecvOnly));
        assert_eq!(
            sdp.to_string(),
            "v=0\r\no=viewer 3 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n\
             m=video 40002 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=recvonly\r\n"
        );
    }

    #[test]
    fn streamer_answers_sendonly() {
        let offer = RtpMedia::audio_pcmu(40000, lo(), Direction::RecvOnly);
        let a = offer
            .answer(
                &[codecs::pcmu(), codecs::jpeg()],
                50000,
                lo(),
                Direction::SendRecv,
            )
            .unwrap();
        assert_eq!(a.direction, Direction::SendOnly);
        assert_eq!(a.payload_types, [0]);
    }

    #[test]
    fn static_payload_without_rtpmap_matches() {
        let mut offer = RtpMedia::audio_pcmu(40000, lo(), Direction::SendRecv);
        offer.rtpmaps.clear();
        assert_eq!(offer.common_codecs(&[codecs::pcmu()]), [codecs::pcmu()]);
    }

    #[test]
    fn unsupported_codec() {
        let offer = RtpMedia::new(
            MediaKind::Audio,
            4,
            lo(),
            &[RtpMap::new(97, "iLBC", 8000)],
            Direction::SendRecv,
        );
        assert_eq!(
            offer.answer(&[codecs::pcmu()], 5, lo(), Direction::SendRecv),
            Err(SdpError::UnsupportedCodecs)
        );
        let sdp = Sdp::new("a", 1, lo()).with_media(offer);
        let err = sdp
            .answer("b", 2, lo(), |m| match m {
                MediaLine::Rtp(r) => r
                    .answer(&[codecs::pcmu()], 5, lo(), Direction::SendRecv)
                    .ok()
                    .map(MediaLine::Rtp),
                _ => None,
            })
            .unwrap_err();
        assert!(err.is_not_acceptable());
    }

    prop_compose! {
        fn arb_rtp()(
            kind in prop_oneof![Just(MediaKind::Audio), Just(MediaKind::Video),
                "[a-z]{1,8}".prop_filter("not audio/video/message", |s| !matches!(s.as_str(), "audio" | "video" | "message")).prop_map(MediaKind::Other)],
            port in 1u16..,
            maps in proptest::collection::vec(
                (0u8..=127, "[A-Za-z][A-Za-z0-9-]{0,8}", 1u32..200000, proptest::option::of(1u16..8)), 1..4),
            direction in prop_oneof![
                Just(Direction::SendRecv), Just(Direction::SendOnly),
                Just(Direction::RecvOnly), Just(Direction::Inactive)],
            ptime in proptest::option::of(1u32..200),
        ) -> RtpMedia {
            let maps: Vec<RtpMap> = maps.into_iter().map(|(pt, enc, clock, ch)| RtpMap {
                payload_type: pt, encoding: enc, clock_rate: clock, channels: ch }).collect();
            let mut m = RtpMedia::new(kind, port, lo(), &maps, direction);
            if let Some(p) = ptime {
                m.other.push(Attribute::new("ptime", p.to_string()));
            }
            m
        }
    }

    proptest! {
        #[test]
        fn round_trip(lines in proptest::collection::vec(arb_rtp(), 1..4)) {
            let mut sdp = Sdp::new("u", 9, lo());
            for l in lines {
                sdp = sdp.with_media(l);
            }
            let back = parse_sdp(&sdp.to_bytes()).unwrap();
            prop_assert_eq!(back, sdp);
        }
    }
}
