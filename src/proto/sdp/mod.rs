//! SDP offer/answer for the media `isc` uses: MSRP sessions (RFC 4975 §8,
//! RFC 6135, RFC 5547) and RTP audio/video (RFC 3264, RFC 3551).
//!
//! [`parse_sdp`] reads a body through `sdp-rs` into the typed [`Sdp`];
//! [`Sdp`]'s `Display` prints it back (CRLF line ends). The typed media lines
//! are [`MsrpMedia`] and [`RtpMedia`]; anything else is kept as
//! [`OtherMedia`] so an answer can reject it with port 0 (RFC 3264 §6).
//!
//! Deviations from a literal model of the wire, all chosen so that
//! `parse(print(x)) == x`:
//! - a media line's `connection` is the *effective* address (its own `c=`,
//!   else the session's); the printer only writes a media `c=` when it differs
//!   from the session's;
//! - a media line's `direction` is the effective one (media attribute, else
//!   session attribute, else `sendrecv`, RFC 3264 §5.1) and is always printed;
//! - `t=` is always printed as `t=0 0` and not kept; multicast TTL / address
//!   counts on `c=` are dropped.

mod msrp;
mod parse;
mod rtp;

pub use msrp::{
    AcceptTypes, CHAT_ACCEPT_TYPES, CHAT_ACCEPT_WRAPPED_TYPES, FileSelector, MSRP_TCP, MSRP_TLS,
    MsrpAnswerParams, MsrpMedia, Setup, SetupPreference, TcpActiveSide, tcp_active_side,
};
pub use parse::parse_sdp;
pub use rtp::{MediaKind, RtpMap, RtpMedia, codecs};

use std::fmt;
use std::net::IpAddr;

/// What is wrong with an SDP body or an offer/answer step.
///
/// [`SdpError::is_not_acceptable`] tells the negotiation failures a UAS
/// answers with 488 from the malformed bodies (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    #[error("empty SDP body")]
    Empty,
    #[error("malformed SDP line {line}: {reason}")]
    BadLine { line: usize, reason: &'static str },
    #[error("SDP line {line} out of place or not understood: {text:?}")]
    UnexpectedLine { line: usize, text: String },
    #[error("SDP syntax: {0}")]
    Syntax(String),
    #[error("bad SDP origin (o=) field {0}")]
    BadOrigin(&'static str),
    #[error("bad media line: {0}")]
    BadMediaLine(String),
    #[error("bad a={name} value {value:?}")]
    BadAttribute { name: &'static str, value: String },
    #[error("media line lacks a={0}")]
    MissingAttribute(&'static str),
    /// RFC 4975 §8.6: no accept-type in common. Answer 488.
    #[error("no accept-types in common")]
    NoCommonAcceptTypes,
    /// RFC 3264 §6: no payload format in common. Answer 488 if no line is left.
    #[error("no supported codec offered")]
    UnsupportedCodecs,
    /// Every offered media line was rejected. Answer 488.
    #[error("no acceptable media line in the offer")]
    NoAcceptableMedia,
    /// RFC 4145 §4.1 / RFC 6135: the two `a=setup` values do not pair.
    #[error("a=setup:{answer} does not answer a=setup:{offer}")]
    SetupConflict { offer: Setup, answer: Setup },
    /// RFC 4975 §8.1, §14.1: the m-line proto and the a=path scheme
    /// disagree (`TCP/MSRP` with `msrps:`, or `TCP/TLS/MSRP` with `msrp:`).
    /// Answer 488.
    #[error("m=message proto {transport} does not match a=path URI {uri}")]
    MsrpTransportMismatch { transport: String, uri: String },
    /// `sdp-rs` panicked on this input (caught; see `parse.rs`).
    #[error("SDP parser failed on this input")]
    ParserPanicked,
}

impl SdpError {
    /// True for negotiation failures that map to SIP 488 Not Acceptable Here.
    pub fn is_not_acceptable(&self) -> bool {
        matches!(
            self,
            Self::NoCommonAcceptTypes
                | Self::UnsupportedCodecs
                | Self::NoAcceptableMedia
                | Self::SetupConflict { .. }
                | Self::MsrpTransportMismatch { .. }
        )
    }
}

/// `sendrecv` / `sendonly` / `recvonly` / `inactive` (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// Reads an attribute name; `None` if it is not a direction.
    pub fn from_attribute(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    /// Whether this side sends.
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether this side receives.
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The direction seen from the other end (sendonly ↔ recvonly).
    pub fn reversed(self) -> Self {
        Self::from_flags(self.receives(), self.sends())
    }

    /// The answer to an offered direction, limited to what we want
    /// (RFC 3264 §6.1: sendonly → recvonly, recvonly → sendonly, sendrecv →
    /// any, inactive → inactive).
    pub fn answer(offered: Self, wanted: Self) -> Self {
        let mirror = offered.reversed();
        Self::from_flags(
            mirror.sends() && wanted.sends(),
            mirror.receives() && wanted.receives(),
        )
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `IP4` / `IP6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    Ip4,
    Ip6,
}

impl AddrType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ip4 => "IP4",
            Self::Ip6 => "IP6",
        }
    }
}

/// The address of an `o=` or `c=` line (`IN` network type only).
/// RFC 4566 §5.7 allows a host name where RFC examples use one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConnectionAddress {
    Ip(IpAddr),
    Host { addrtype: AddrType, name: String },
}

impl ConnectionAddress {
    /// The IP literal, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Ip(ip) => Some(*ip),
            Self::Host { .. } => None,
        }
    }

    /// `IP4` or `IP6`.
    pub fn addrtype(&self) -> AddrType {
        match self {
            Self::Ip(IpAddr::V4(_)) => AddrType::Ip4,
            Self::Ip(IpAddr::V6(_)) => AddrType::Ip6,
            Self::Host { addrtype, .. } => *addrtype,
        }
    }
}

impl From<IpAddr> for ConnectionAddress {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

/// Prints `IN IP4 127.0.0.1`.
impl fmt::Display for ConnectionAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} ", self.addrtype().as_str())?;
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Host { name, .. } => f.write_str(name),
        }
    }
}

/// The `o=` line (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
    pub address: ConnectionAddress,
}

/// An attribute we keep as text: `a=name` or `a=name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    /// `a=name:value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    /// `a=name`.
    pub fn flag(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: None,
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "a={}:{}", self.name, v),
            None => write!(f, "a={}", self.name),
        }
    }
}

/// A media line we do not type (e.g. `m=application ... udp wb`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherMedia {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub fmt: String,
    pub connection: Option<ConnectionAddress>,
    pub attributes: Vec<Attribute>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaLine {
    Msrp(MsrpMedia),
    Rtp(RtpMedia),
    Other(OtherMedia),
}

impl MediaLine {
    /// The port (0 = rejected / disabled, RFC 3264 §6).
    pub fn port(&self) -> u16 {
        match self {
            Self::Msrp(m) => m.port,
            Self::Rtp(m) => m.port,
            Self::Other(m) => m.port,
        }
    }

    /// The media type of the `m=` line: `message`, `audio`, `video`, ...
    pub fn media_type(&self) -> &str {
        match self {
            Self::Msrp(_) => "message",
            Self::Rtp(m) => m.kind.as_str(),
            Self::Other(m) => &m.media,
        }
    }

    /// The effective connection address.
    pub fn connection(&self) -> Option<&ConnectionAddress> {
        match self {
            Self::Msrp(m) => m.connection.as_ref(),
            Self::Rtp(m) => m.connection.as_ref(),
            Self::Other(m) => m.connection.as_ref(),
        }
    }

    /// The answer line that rejects this offered line (RFC 3264 §6): same
    /// media and formats, port 0, no attributes, at the answerer's address.
    pub fn rejected(&self, connection: Option<ConnectionAddress>) -> MediaLine {
        match self {
            Self::Msrp(m) => Self::Msrp(MsrpMedia {
                transport: m.transport.clone(),
                ..MsrpMedia::rejected(connection)
            }),
            Self::Rtp(m) => Self::Rtp(RtpMedia {
                kind: m.kind.clone(),
                port: 0,
                payload_types: m.payload_types.clone(),
                rtpmaps: Vec::new(),
                direction: Direction::SendRecv,
                connection,
                other: Vec::new(),
            }),
            Self::Other(m) => Self::Other(OtherMedia {
                port: 0,
                attributes: Vec::new(),
                connection,
                ..m.clone()
            }),
        }
    }

    fn write(
        &self,
        f: &mut fmt::Formatter<'_>,
        session: Option<&ConnectionAddress>,
    ) -> fmt::Result {
        let connection = self.connection().filter(|c| Some(*c) != session);
        match self {
            Self::Msrp(m) => m.write(f, connection),
            Self::Rtp(m) => m.write(f, connection),
            Self::Other(m) => {
                write!(f, "m={} {} {} {}\r\n", m.media, m.port, m.proto, m.fmt)?;
                if let Some(c) = connection {
                    write!(f, "c={c}\r\n")?;
                }
                for a in &m.attributes {
                    write!(f, "{a}\r\n")?;
                }
                Ok(())
            }
        }
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub origin: Origin,
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<ConnectionAddress>,
    /// Session-level attributes, as sent.
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaLine>,
}

impl Sdp {
    /// A description with `s=-`, the session `c=` at the origin's address and
    /// no media yet.
    pub fn new(username: &str, session_id: u64, address: ConnectionAddress) -> Self {
        Self {
            origin: Origin {
                username: username.into(),
                session_id,
                session_version: session_id,
                address: address.clone(),
            },
            session_name: "-".into(),
            connection: Some(address),
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// Adds a media line.
    pub fn with_media(mut self, media: impl Into<MediaLine>) -> Self {
        self.media.push(media.into());
        self
    }

    /// Increments `o=` sess-version, as every new offer or answer in the
    /// same session must (RFC 3264 §8).
    pub fn bump_version(&mut self) {
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// The MSRP lines.
    pub fn msrp(&self) -> impl Iterator<Item = &MsrpMedia> {
        self.media.iter().filter_map(|m| match m {
            MediaLine::Msrp(m) => Some(m),
            _ => None,
        })
    }

    /// The RTP lines.
    pub fn rtp(&self) -> impl Iterator<Item = &RtpMedia> {
        self.media.iter().filter_map(|m| match m {
            MediaLine::Rtp(m) => Some(m),
            _ => None,
        })
    }

    /// Builds the answer to this offer (RFC 3264 §6): one line per offered
    /// line, in order; `answer_line` returns the accepted line or `None` to
    /// reject it with port 0. Offered lines with port 0 are rejected without
    /// asking. If nothing is accepted: [`SdpError::NoAcceptableMedia`] (488).
    pub fn answer(
        &self,
        username: &str,
        session_id: u64,
        address: ConnectionAddress,
        mut answer_line: impl FnMut(&MediaLine) -> Option<MediaLine>,
    ) -> Result<Sdp, SdpError> {
        let mut answer = Sdp::new(username, session_id, address);
        let mut accepted = 0;
        for offered in &self.media {
            let line = if offered.port() == 0 {
                None
            } else {
                answer_line(offered)
            };
            match line {
                Some(line) if line.port() != 0 => {
                    accepted += 1;
                    answer.media.push(line);
                }
                _ => answer
                    .media
                    .push(offered.rejected(answer.connection.clone())),
            }
        }
        if accepted == 0 {
            return Err(SdpError::NoAcceptableMedia);
        }
        Ok(answer)
    }

    /// The printed body.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        f.write_str("v=0\r\n")?;
        write!(
            f,
            "o={} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        f.write_str("t=0 0\r\n")?;
        for a in &self.attributes {
            write!(f, "{a}\r\n")?;
        }
        for m in &self.media {
            m.write(f, self.connection.as_ref())?;
        }
        Ok(())
    }
}

impl From<MsrpMedia> for MediaLine {
    fn from(m: MsrpMedia) -> Self {
        Self::Msrp(m)
    }
}

impl From<RtpMedia> for MediaLine {
    fn from(m: RtpMedia) -> Self {
        Self::Rtp(m)
    }
}

impl From<OtherMedia> for MediaLine {
    fn from(m: OtherMedia) -> Self {
        Self::Other(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn arb_address() -> impl Strategy<Value = ConnectionAddress> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| ConnectionAddress::Ip(Ipv4Addr::from(b).into())),
            any::<[u8; 16]>().prop_map(|b| ConnectionAddress::Ip(Ipv6Addr::from(b).into())),
            ("[a-z][a-z0-9-]{0,8}\\.example\\.com", any::<bool>()).prop_map(|(name, six)| {
                ConnectionAddress::Host {
                    addrtype: if six { AddrType::Ip6 } else { AddrType::Ip4 },
                    name,
                }
            }),
        ]
    }

    /// Attributes nothing reads specially (no direction, rtpmap, ptime...).
    fn arb_attribute() -> impl Strategy<Value = Attribute> {
        ("x-[a-z0-9-]{1,8}", proptest::option::of("[!-~][ -~]{0,15}"))
            .prop_map(|(name, value)| Attribute { name, value })
    }

    fn arb_other() -> impl Strategy<Value = MediaLine> {
        (
            "[a-z]{1,8}",
            any::<u16>(),
            "[A-Z]{1,4}(/[A-Z]{1,4})?"
                .prop_filter("typed", |p| p != "RTP/AVP" && !p.ends_with("/MSRP")),
            "[a-z0-9]{1,4}( [a-z0-9]{1,4}){0,2}",
            arb_address(),
            proptest::collection::vec(
                prop_oneof![
                    arb_attribute(),
                    Just(Attribute::flag("sendonly")),
                    Just(Attribute::new("rtpmap", "200 X/1")),
                ],
                0..4,
            ),
        )
            .prop_map(|(media, port, proto, fmt, c, attributes)| {
                MediaLine::Other(OtherMedia {
                    media,
                    port,
                    proto,
                    fmt,
                    connection: Some(c),
                    attributes,
                })
            })
    }

    fn arb_sdp() -> impl Strategy<Value = Sdp> {
        (
            "[a-zA-Z0-9_-]{1,10}",
            any::<u64>(),
            any::<u64>(),
            "[!-~][ -~]{0,20}",
            arb_address(),
            proptest::option::of(arb_address()),
            proptest::collection::vec(arb_attribute(), 0..3),
            proptest::collection::vec((arb_other(), arb_address(), 1u16..), 0..4),
        )
            .prop_map(|(user, id, version, name, o, c, attributes, lines)| {
                let mut sdp = Sdp::new(&user, id, o);
                sdp.origin.session_version = version;
                sdp.session_name = name;
                sdp.attributes = attributes;
                let session_c = c.clone().or(Some(sdp.origin.address.clone()));
                sdp.connection = session_c;
                for (i, (other, addr, port)) in lines.into_iter().enumerate() {
                    sdp.media.push(match i % 3 {
                        0 => other,
                        1 => MediaLine::Rtp(RtpMedia::audio_pcmu(port, addr, Direction::RecvOnly)),
                        _ => MediaLine::Msrp(MsrpMedia::chat_offer(
                            port,
                            addr,
                            vec!["msrp://h.example.com:1/x;tcp".into()],
                        )),
                    });
                }
                sdp
            })
    }

    proptest! {
        #[test]
        fn mixed_round_trip(sdp in arb_sdp()) {
            let printed = sdp.to_string();
            let back = parse_sdp(printed.as_bytes());
            prop_assert_eq!(back, Ok(sdp), "{}", printed);
        }
    }

    #[test]
    fn direction_answer_mirrors() {
        use Direction::*;
        assert_eq!(Direction::answer(SendOnly, SendRecv), RecvOnly);
        assert_eq!(Direction::answer(RecvOnly, SendRecv), SendOnly);
        assert_eq!(Direction::answer(SendRecv, SendRecv), SendRecv);
        assert_eq!(Direction::answer(SendRecv, RecvOnly), RecvOnly);
        assert_eq!(Direction::answer(Inactive, SendRecv), Inactive);
        assert_eq!(Direction::answer(SendOnly, SendOnly), Inactive);
    }
}
