//! MSRP media lines: `m=message <port> TCP/MSRP *` (RFC 4975 §8), the
//! connection setup role (RFC 6135, RFC 4145), file transfer (RFC 5547) and
//! the Large Message size attribute (seed 003 9.x).

use super::{Attribute, ConnectionAddress, Direction, SdpError};
use std::fmt;

/// The m-line proto of MSRP over TCP (RFC 4975 §8.1).
pub const MSRP_TCP: &str = "TCP/MSRP";
/// The m-line proto of MSRP over TLS, with `msrps:` paths (RFC 4975 §8.1, §14.1).
pub const MSRP_TLS: &str = "TCP/TLS/MSRP";

/// Types a chat client accepts (RFC 4975 §8.6; seed 004 7.1.1: message/cpim).
pub const CHAT_ACCEPT_TYPES: &[&str] = &[
    "message/cpim",
    "text/plain",
    "application/im-iscomposing+xml",
];

/// Types a chat client accepts inside message/cpim.
pub const CHAT_ACCEPT_WRAPPED_TYPES: &[&str] = &[
    "text/plain",
    "application/im-iscomposing+xml",
    "message/imdn+xml",
];

/// `a=setup` (RFC 4145 §4, used for MSRP by RFC 6135).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
    HoldConn,
}

impl Setup {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::ActPass => "actpass",
            Self::HoldConn => "holdconn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "active" => Some(Self::Active),
            "passive" => Some(Self::Passive),
            "actpass" => Some(Self::ActPass),
            "holdconn" => Some(Self::HoldConn),
            _ => None,
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the answerer picks when offered `actpass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetupPreference {
    /// Answer `active` and connect (RFC 6135 §4.2: the answerer SHOULD).
    #[default]
    Active,
    /// Answer `passive` and wait (e.g. behind nothing, with a listening port).
    Passive,
}

/// `a=file-selector` (RFC 5547 §5): what tells a file transfer apart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileSelector {
    /// `name:"..."` (quotes removed).
    pub name: Option<String>,
    /// `size:<bytes>`.
    pub size: Option<u64>,
    /// `type:<media-type>[;params]`.
    pub file_type: Option<String>,
    /// `hash:<algorithm>:<hex pairs>`.
    pub hash: Option<String>,
}

impl FileSelector {
    /// Reads the attribute value.
    pub fn parse(value: &str) -> Result<Self, SdpError> {
        let bad = || SdpError::BadAttribute {
            name: "file-selector",
            value: value.to_string(),
        };
        let mut out = FileSelector::default();
        let mut rest = value.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once(':').ok_or_else(bad)?;
            let (item, next) = if after.starts_with('"') {
                let body = after.get(1..).unwrap_or_default();
                let end = body.find('"').ok_or_else(bad)?;
                (&body[..end], &body[end + 1..])
            } else {
                after.split_once(' ').unwrap_or((after, ""))
            };
            match key {
                "name" => out.name = Some(item.to_string()),
                "size" => out.size = Some(item.parse().map_err(|_| bad())?),
                "type" => out.file_type = Some(item.to_string()),
                "hash" => out.hash = Some(item.to_string()),
                _ => {} // RFC 5547 §5: unknown selectors are ignored
            }
            rest = next.trim_start();
        }
        Ok(out)
    }
}

impl fmt::Display for FileSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("name:\"{n}\""));
        }
        if let Some(t) = &self.file_type {
            parts.push(format!("type:{t}"));
        }
        if let Some(s) = self.size {
            parts.push(format!("size:{s}"));
        }
        if let Some(h) = &self.hash {
            parts.push(format!("hash:{h}"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// An `m=message` line for MSRP, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpMedia {
    pub port: u16,
    /// `TCP/MSRP` or `TCP/TLS/MSRP`.
    pub transport: String,
    /// Effective `c=` address.
    pub connection: Option<ConnectionAddress>,
    /// `a=path`: our URI last, relays first (RFC 4975 §8.2).
    pub path: Vec<String>,
    pub accept_types: Vec<String>,
    pub accept_wrapped_types: Vec<String>,
    pub setup: Option<Setup>,
    pub direction: Direction,
    /// `a=max-size` (RFC 4975 §8.6).
    pub max_size: Option<u64>,
    /// Large Message: the whole message's size (seed 003 9.x). Written as
    /// `a=file-size`; `a=filesize` and `a=filelength` (seed spellings) are read.
    pub file_size: Option<u64>,
    pub file_selector: Option<FileSelector>,
    /// `a=file-transfer-id` (RFC 5547 §6).
    pub file_transfer_id: Option<String>,
    /// `a=file-disposition` (RFC 5547 §6).
    pub file_disposition: Option<String>,
    /// Every other attribute, in order.
    pub other: Vec<Attribute>,
}

impl MsrpMedia {
    /// An offer line: `TCP/MSRP`, `a=setup:actpass`, `sendrecv`.
    pub fn offer(
        port: u16,
        connection: ConnectionAddress,
        path: Vec<String>,
        accept_types: &[&str],
    ) -> Self {
        Self {
            port,
            transport: MSRP_TCP.into(),
            connection: Some(connection),
            path,
            accept_types: accept_types.iter().map(|s| s.to_string()).collect(),
            accept_wrapped_types: Vec::new(),
            setup: Some(Setup::ActPass),
            direction: Direction::SendRecv,
            max_size: None,
            file_size: None,
            file_selector: None,
            file_transfer_id: None,
            file_disposition: None,
            other: Vec::new(),
        }
    }

    /// A chat offer with [`CHAT_ACCEPT_TYPES`] / [`CHAT_ACCEPT_WRAPPED_TYPES`].
    pub fn chat_offer(port: u16, connection: ConnectionAddress, path: Vec<String>) -> Self {
        Self {
            accept_wrapped_types: CHAT_ACCEPT_WRAPPED_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Self::offer(port, connection, path, CHAT_ACCEPT_TYPES)
        }
    }

    pub(super) fn rejected(connection: Option<ConnectionAddress>) -> Self {
        Self {
            port: 0,
            setup: None,
            connection,
            ..Self::offer(
                0,
                ConnectionAddress::Ip([0, 0, 0, 0].into()),
                Vec::new(),
                &[],
            )
        }
    }

    /// This line over TLS (`TCP/TLS/MSRP`, RFC 4975 §8.1) or over TCP; the
    /// caller gives the matching `msrps:` / `msrp:` path.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.transport = if tls { MSRP_TLS } else { MSRP_TCP }.into();
        self
    }

    /// True for `TCP/TLS/MSRP`.
    pub fn is_tls(&self) -> bool {
        self.transport.eq_ignore_ascii_case(MSRP_TLS)
    }

    /// RFC 4975 §8.1, §14.1: the proto and the path agree, `TCP/TLS/MSRP`
    /// with `msrps:` URIs only and `TCP/MSRP` with `msrp:` only. An offer
    /// mixing them is refused (488).
    pub fn check_transport(&self) -> Result<(), SdpError> {
        let tls = self.is_tls();
        for uri in &self.path {
            let secure = uri
                .get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("msrps://"));
            if secure != tls {
                return Err(SdpError::MsrpTransportMismatch {
                    transport: self.transport.clone(),
                    uri: uri.clone(),
                });
            }
        }
        Ok(())
    }

    /// True if this line offers a file transfer (RFC 5547 §5: has a
    /// file-selector).
    pub fn is_file_transfer(&self) -> bool {
        self.file_selector.is_some()
    }

    /// True if this line offers a Large Message: sendonly with the whole
    /// size given (seed 003 9.2.2 step 2).
    pub fn is_large_message(&self) -> bool {
        self.direction == Direction::SendOnly && self.file_size.is_some()
    }

    /// Our URI (the last of `a=path`, RFC 4975 §8.2).
    pub fn own_uri(&self) -> Option<&str> {
        self.path.last().map(String::as_str)
    }

    pub(super) fn from_parts(
        port: u16,
        transport: String,
        connection: Option<ConnectionAddress>,
        direction: Direction,
        attributes: Vec<Attribute>,
    ) -> Result<Self, SdpError> {
        let mut m = Self {
            port,
            transport,
            connection,
            path: Vec::new(),
            accept_types: Vec::new(),
            accept_wrapped_types: Vec::new(),
            setup: None,
            direction,
            max_size: None,
            file_size: None,
            file_selector: None,
            file_transfer_id: None,
            file_disposition: None,
            other: Vec::new(),
        };
        let words = |v: &str| v.split_whitespace().map(String::from).collect::<Vec<_>>();
        for a in attributes {
            let Some(value) = a.value.as_deref() else {
                if a.name == "file-selector" {
                    // RFC 5547 §5: the selector list may be empty
                    m.file_selector = Some(FileSelector::default());
                    continue;
                }
                m.other.push(a);
                continue;
            };
            let number = |name: &'static str| {
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| SdpError::BadAttribute {
                        name,
                        value: value.to_string(),
                    })
            };
            match a.name.as_str() {
                // RFC 4975 §8.2: several URIs, space separated; several
                // a=path lines are not allowed, we join them
                "path" => m.path.extend(words(value)),
                "accept-types" => m.accept_types.extend(words(value)),
                "accept-wrapped-types" => m.accept_wrapped_types.extend(words(value)),
                "setup" => {
                    m.setup = Some(Setup::parse(value).ok_or_else(|| SdpError::BadAttribute {
                        name: "setup",
                        value: value.to_string(),
                    })?)
                }
                "max-size" => m.max_size = Some(number("max-size")?),
                "file-size" | "filesize" | "filelength" => m.file_size = Some(number("file-size")?),
                "file-selector" => m.file_selector = Some(FileSelector::parse(value)?),
                "file-transfer-id" => m.file_transfer_id = Some(value.to_string()),
                "file-disposition" => m.file_disposition = Some(value.to_string()),
                _ => m.other.push(a),
            }
        }
        Ok(m)
    }

    pub(super) fn write(
        &self,
        f: &mut fmt::Formatter<'_>,
        connection: Option<&ConnectionAddress>,
    ) -> fmt::Result {
        write!(f, "m=message {} {} *\r\n", self.port, self.transport)?;
        if let Some(c) = connection {
            write!(f, "c={c}\r\n")?;
        }
        let list = |f: &mut fmt::Formatter<'_>, name: &str, items: &[String]| {
            if items.is_empty() {
                Ok(())
            } else {
                write!(f, "a={name}:{}\r\n", items.join(" "))
            }
        };
        list(f, "accept-types", &self.accept_types)?;
        list(f, "accept-wrapped-types", &self.accept_wrapped_types)?;
        list(f, "path", &self.path)?;
        if let Some(s) = self.setup {
            write!(f, "a=setup:{s}\r\n")?;
        }
        if !(self.port == 0 && self.direction == Direction::SendRecv) {
            write!(f, "a={}\r\n", self.direction)?;
        }
        if let Some(n) = self.max_size {
            write!(f, "a=max-size:{n}\r\n")?;
        }
        match &self.file_selector {
            Some(s) if *s == FileSelector::default() => f.write_str("a=file-selector\r\n")?,
            Some(s) => write!(f, "a=file-selector:{s}\r\n")?,
            None => {}
        }
        if let Some(id) = &self.file_transfer_id {
            write!(f, "a=file-transfer-id:{id}\r\n")?;
        }
        if let Some(d) = &self.file_disposition {
            write!(f, "a=file-disposition:{d}\r\n")?;
        }
        if let Some(n) = self.file_size {
            write!(f, "a=file-size:{n}\r\n")?;
        }
        for a in &self.other {
            write!(f, "{a}\r\n")?;
        }
        Ok(())
    }

    /// Answers this offered line (RFC 4975 §8.6, RFC 6135 §4.2, RFC 3264
    /// §6.1): accept-types and accept-wrapped-types are intersected with
    /// ours (nothing in common → [`SdpError::NoCommonAcceptTypes`], 488),
    /// setup is chosen to pair with the offer, direction is mirrored, the
    /// path, port and address are ours.
    pub fn answer(&self, ours: &MsrpAnswerParams) -> Result<MsrpMedia, SdpError> {
        if self.path.is_empty() {
            return Err(SdpError::MissingAttribute("path"));
        }
        self.check_transport()?;
        let accept_types = intersect(&self.accept_types, &ours.accept_types);
        if accept_types.is_empty() {
            return Err(SdpError::NoCommonAcceptTypes);
        }
        let accept_wrapped_types =
            intersect(&self.accept_wrapped_types, &ours.accept_wrapped_types);
        // RFC 6135 §4.2 / RFC 4145 §4.1
        let setup = match self.setup {
            Some(Setup::ActPass) => match ours.setup_preference {
                SetupPreference::Active => Setup::Active,
                SetupPreference::Passive => Setup::Passive,
            },
            Some(Setup::Active) => Setup::Passive,
            Some(Setup::Passive) => Setup::Active,
            Some(Setup::HoldConn) => Setup::HoldConn,
            // RFC 4975 §5.4: without a=setup the offerer connects
            None => Setup::Passive,
        };
        let answer = MsrpMedia {
            port: ours.port,
            transport: self.transport.clone(),
            connection: Some(ours.connection.clone()),
            path: ours.path.clone(),
            accept_types,
            accept_wrapped_types,
            setup: Some(setup),
            direction: Direction::answer(self.direction, ours.direction),
            max_size: ours.max_size,
            file_size: None,
            file_selector: self.file_selector.clone(),
            file_transfer_id: self.file_transfer_id.clone(),
            file_disposition: None,
            other: Vec::new(),
        };
        // Our path must be of the offer's scheme (an msrps offer needs our
        // msrps URI: the caller picks it).
        answer.check_transport()?;
        Ok(answer)
    }
}

/// What the answerer brings to [`MsrpMedia::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpAnswerParams {
    pub port: u16,
    pub connection: ConnectionAddress,
    pub path: Vec<String>,
    pub accept_types: Vec<String>,
    pub accept_wrapped_types: Vec<String>,
    pub setup_preference: SetupPreference,
    /// The most we would like to do (e.g. `RecvOnly` for a Large Message
    /// recipient); the answer is this limited by the mirrored offer.
    pub direction: Direction,
    pub max_size: Option<u64>,
}

impl MsrpAnswerParams {
    /// A chat answerer: [`CHAT_ACCEPT_TYPES`], sendrecv, setup active.
    pub fn chat(port: u16, connection: ConnectionAddress, path: Vec<String>) -> Self {
        Self {
            port,
            connection,
            path,
            accept_types: CHAT_ACCEPT_TYPES.iter().map(|s| s.to_string()).collect(),
            accept_wrapped_types: CHAT_ACCEPT_WRAPPED_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            setup_preference: SetupPreference::Active,
            direction: Direction::SendRecv,
            max_size: None,
        }
    }
}

/// Helpers on media-type lists with wildcards (`*`, `text/*`).
pub struct AcceptTypes;

impl AcceptTypes {
    /// Does the accepted pattern `pattern` cover the type `t`?
    pub fn covers(pattern: &str, t: &str) -> bool {
        let t = t.split(';').next().unwrap_or(t).trim();
        let pattern = pattern.split(';').next().unwrap_or(pattern).trim();
        if pattern == "*" {
            return true;
        }
        match pattern.strip_suffix("/*") {
            Some(major) => t
                .split_once('/')
                .is_some_and(|(m, _)| m.eq_ignore_ascii_case(major)),
            None => pattern.eq_ignore_ascii_case(t),
        }
    }

    /// Does any of `accepted` cover `t`?
    pub fn accepts(accepted: &[String], t: &str) -> bool {
        accepted.iter().any(|p| Self::covers(p, t))
    }
}

/// Types both sides accept: each of ours the offer covers, then each of the
/// offer's concrete types one of our wildcards covers; no duplicates.
fn intersect(offered: &[String], ours: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: &String| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(t)) {
            out.push(t.clone());
        }
    };
    for t in ours {
        if AcceptTypes::accepts(offered, t) {
            push(t);
        }
    }
    for t in offered {
        if !t.contains('*') && AcceptTypes::accepts(ours, t) {
            push(t);
        }
    }
    out
}

/// Which end opens the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpActiveSide {
    Offerer,
    Answerer,
    /// `holdconn`: nobody connects yet.
    Neither,
}

/// Who connects, given the offered and the answered line (RFC 6135 §4.2,
/// RFC 4145 §4.1; without `a=setup` RFC 4975 §5.4: the offerer).
pub fn tcp_active_side(offer: &MsrpMedia, answer: &MsrpMedia) -> Result<TcpActiveSide, SdpError> {
    let conflict = |o: Setup, a: Setup| SdpError::SetupConflict {
        offer: o,
        answer: a,
    };
    let offered = offer.setup.unwrap_or(Setup::Active);
    // an answer without a=setup keeps RFC 4975 behaviour: the answerer waits
    let answered = answer.setup.unwrap_or(Setup::Passive);
    match (offered, answered) {
        (Setup::HoldConn, _) | (_, Setup::HoldConn) => Ok(TcpActiveSide::Neither),
        (Setup::ActPass | Setup::Passive, Setup::Active) => Ok(TcpActiveSide::Answerer),
        (Setup::ActPass | Setup::Active, Setup::Passive) => Ok(TcpActiveSide::Offerer),
        (o, a) => Err(conflict(o, a)),
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

    fn chat() -> MsrpMedia {
        MsrpMedia::chat_offer(7654, lo(), vec!["msrp://127.0.0.1:7654/abc;tcp".into()])
    }

    #[test]
    fn prints_offer() {
        let sdp = Sdp::new("alice", 1, lo()).with_media(chat());
        assert_eq!(
            sdp.to_string(),
            "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=message 7654 TCP/MSRP *\r\n\
             a=accept-types:message/cpim text/plain application/im-iscomposing+xml\r\n\
             a=accept-wrapped-types:text/plain application/im-iscomposing+xml message/imdn+xml\r\n\
             a=path:msrp://127.0.0.1:7654/abc;tcp\r\n\
             a=setup:actpass\r\na=sendrecv\r\n"
        );
    }

    #[test]
    fn file_selector_round_trip() {
        let v = "name:\"My cool picture.jpg\" type:image/jpeg size:32349 hash:sha-1:72:24:5F";
        let fs = FileSelector::parse(v).unwrap();
        assert_eq!(fs.name.as_deref(), Some("My cool picture.jpg"));
        assert_eq!(fs.size, Some(32349));
        assert_eq!(fs.to_string(), v);
        assert_eq!(FileSelector::parse(&fs.to_string()).unwrap(), fs);
    }

    #[test]
    fn seed_size_spellings() {
        for name in ["file-size", "filesize", "filelength"] {
            let body = format!(
                "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=message 9 TCP/MSRP *\r\na=path:msrp://x:9/a;tcp\r\na=sendonly\r\na={name}:1234\r\n"
            );
            let sdp = parse_sdp(body.as_bytes()).unwrap();
            let m = sdp.msrp().next().unwrap();
            assert_eq!(m.file_size, Some(1234));
            assert_eq!(m.direction, Direction::SendOnly);
        }
    }

    #[test]
    fn answer_intersects_and_pairs_setup() {
        let mut ours =
            MsrpAnswerParams::chat(8888, lo(), vec!["msrp://127.0.0.1:8888/b;tcp".into()]);
        ours.accept_types = vec!["text/plain".into(), "image/*".into()];
        let mut offer = chat();
        offer.accept_types.push("image/png".into());
        let a = offer.answer(&ours).unwrap();
        assert_eq!(a.accept_types, ["text/plain", "image/png"]);
        assert_eq!(a.setup, Some(Setup::Active));
        assert_eq!(a.path, ours.path);
        assert_eq!(
            tcp_active_side(&offer, &a).unwrap(),
            TcpActiveSide::Answerer
        );

        ours.setup_preference = SetupPreference::Passive;
        let a = offer.answer(&ours).unwrap();
        assert_eq!(a.setup, Some(Setup::Passive));
        assert_eq!(tcp_active_side(&offer, &a).unwrap(), TcpActiveSide::Offerer);

        offer.setup = Some(Setup::Passive);
        assert_eq!(offer.answer(&ours).unwrap().setup, Some(Setup::Active));
        offer.setup = Some(Setup::Active);
        assert_eq!(offer.answer(&ours).unwrap().setup, Some(Setup::Passive));
        offer.setup = None;
        let a = offer.answer(&ours).unwrap();
        assert_eq!(tcp_active_side(&offer, &a).unwrap(), TcpActiveSide::Offerer);
    }

    #[test]
    fn answer_mirrors_direction() {
        let ours = MsrpAnswerParams::chat(8888, lo(), vec!["msrp://h:1/b;tcp".into()]);
        let mut offer = chat();
        offer.direction = Direction::SendOnly;
        assert_eq!(offer.answer(&ours).unwrap().direction, Direction::RecvOnly);
        offer.direction = Direction::RecvOnly;
        assert_eq!(offer.answer(&ours).unwrap().direction, Direction::SendOnly);
    }

    #[test]
    fn no_common_type_is_488() {
        let mut ours = MsrpAnswerParams::chat(1, lo(), vec!["msrp://h:1/b;tcp".into()]);
        ours.accept_types = vec!["image/png".into()];
        let err = chat().answer(&ours).unwrap_err();
        assert_eq!(err, SdpError::NoCommonAcceptTypes);
        assert!(err.is_not_acceptable());
    }

    #[test]
    fn setup_conflict() {
        let mut offer = chat();
        offer.setup = Some(Setup::Active);
        let mut answer = chat();
        answer.setup = Some(Setup::Active);
        assert!(tcp_active_side(&offer, &answer).is_err());
    }

    fn tls_chat() -> MsrpMedia {
        MsrpMedia::chat_offer(7655, lo(), vec!["msrps://127.0.0.1:7655/abc;tcp".into()])
            .with_tls(true)
    }

    #[test]
    fn prints_and_reads_a_tls_line() {
        let sdp = Sdp::new("alice", 1, lo()).with_media(tls_chat());
        let text = sdp.to_string();
        assert!(text.contains("m=message 7655 TCP/TLS/MSRP *\r\n"), "{text}");
        assert!(
            text.contains("a=path:msrps://127.0.0.1:7655/abc;tcp\r\n"),
            "{text}"
        );
        let back = parse_sdp(text.as_bytes()).unwrap();
        let m = back.msrp().next().unwrap();
        assert!(m.is_tls());
        assert_eq!(m.check_transport(), Ok(()));
        assert_eq!(back, sdp);
        assert!(!chat().is_tls());
        assert_eq!(chat().check_transport(), Ok(()));
    }

    #[test]
    fn tls_offer_is_answered_over_tls() {
        let ours = MsrpAnswerParams::chat(9, lo(), vec!["msrps://h:9/b;tcp".into()]);
        let a = tls_chat().answer(&ours).unwrap();
        assert_eq!(a.transport, MSRP_TLS);
        assert_eq!(a.path, ["msrps://h:9/b;tcp"]);
        // An msrp: URI of ours cannot answer an msrps offer.
        let plain = MsrpAnswerParams::chat(9, lo(), vec!["msrp://h:9/b;tcp".into()]);
        let err = tls_chat().answer(&plain).unwrap_err();
        assert!(matches!(err, SdpError::MsrpTransportMismatch { .. }));
    }

    #[test]
    fn proto_and_scheme_must_agree() {
        // RFC 4975 §8.1: TCP/MSRP with an msrps: path, and the reverse.
        for (proto, path) in [
            ("TCP/MSRP", "msrps://127.0.0.1:9/a;tcp"),
            ("TCP/TLS/MSRP", "msrp://127.0.0.1:9/a;tcp"),
        ] {
            let body = format!(
                "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=message 9 {proto} *\r\na=accept-types:text/plain\r\na=path:{path}\r\n"
            );
            let m = parse_sdp(body.as_bytes())
                .unwrap()
                .msrp()
                .next()
                .unwrap()
                .clone();
            let err = m.check_transport().unwrap_err();
            assert!(err.is_not_acceptable(), "488");
            assert!(err.to_string().contains(path), "{err}");
            let ours = MsrpAnswerParams::chat(9, lo(), vec![path.replace("/a;", "/b;")]);
            assert_eq!(m.answer(&ours).unwrap_err(), err);
        }
    }

    fn arb_token() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9.+-]{0,8}/[a-z0-9.+*-]{1,8}"
    }

    prop_compose! {
        fn arb_msrp()(
            port in 1u16..,
            path in proptest::collection::vec("msrp://[a-z0-9.]{1,10}:[0-9]{1,5}/[a-zA-Z0-9]{1,10};tcp", 1..3),
            accept_types in proptest::collection::vec(arb_token(), 1..4),
            accept_wrapped_types in proptest::collection::vec(arb_token(), 0..3),
            setup in proptest::option::of(prop_oneof![
                Just(Setup::Active), Just(Setup::Passive), Just(Setup::ActPass), Just(Setup::HoldConn)]),
            direction in prop_oneof![
                Just(Direction::SendRecv), Just(Direction::SendOnly),
                Just(Direction::RecvOnly), Just(Direction::Inactive)],
            max_size in proptest::option::of(any::<u64>()),
            file_size in proptest::option::of(any::<u64>()),
            selector in proptest::option::of((
                proptest::option::of("[a-zA-Z0-9 ._-]{1,12}"),
                proptest::option::of(any::<u64>()),
                proptest::option::of(arb_token()),
            )),
        ) -> MsrpMedia {
            let mut m = MsrpMedia::offer(port, ConnectionAddress::Ip(Ipv4Addr::LOCALHOST.into()), path, &[]);
            m.accept_types = accept_types;
            m.accept_wrapped_types = accept_wrapped_types;
            m.setup = setup;
            m.direction = direction;
            m.max_size = max_size;
            m.file_size = file_size;
            m.file_selector = selector.map(|(name, size, file_type)| FileSelector {
                name, size, file_type, hash: None });
            m
        }
    }

    proptest! {
        #[test]
        fn round_trip(m in arb_msrp()) {
            let sdp = Sdp::new("u", 7, lo()).with_media(m);
            let back = parse_sdp(&sdp.to_bytes()).unwrap();
            prop_assert_eq!(back, sdp);
        }

        #[test]
        fn answer_round_trips_and_is_consistent(m in arb_msrp()) {
            let ours = MsrpAnswerParams::chat(9, lo(), vec!["msrp://h:9/x;tcp".into()]);
            if let Ok(a) = m.answer(&ours) {
                for t in &a.accept_types {
                    prop_assert!(AcceptTypes::accepts(&m.accept_types, t));
                }
                prop_assert!(tcp_active_side(&m, &a).is_ok());
                let sdp = Sdp::new("u", 7, lo()).with_media(MediaLine::Msrp(a));
                prop_assert_eq!(parse_sdp(&sdp.to_bytes()).unwrap(), sdp);
            }
        }
    }
}
