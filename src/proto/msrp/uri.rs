//! MSRP URIs and paths (RFC 4975 §6, §9).

use std::fmt;
use std::str::FromStr;

/// What is wrong with an MSRP URI or path.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("URI scheme is not msrp or msrps")]
    BadScheme,
    #[error("URI has no authority")]
    MissingAuthority,
    #[error("bad port in URI")]
    BadPort,
    #[error("URI has no transport (;tcp)")]
    MissingTransport,
    #[error("invalid character in {0}")]
    InvalidChar(&'static str),
    #[error("empty path")]
    EmptyPath,
}

/// An MSRP URI: `msrp[s]://[userinfo@]host[:port][/session-id];transport[;param]*`.
///
/// Equality follows RFC 4975 §6.1: scheme, authority and transport compare
/// case-insensitively, the session-id case-sensitively, parameters are ignored.
#[derive(Debug, Clone, Eq)]
pub struct MsrpUri {
    /// `msrps:` (TLS) when true.
    pub secure: bool,
    pub userinfo: Option<String>,
    /// Host as written (IPv6 literal with its brackets).
    pub host: String,
    pub port: Option<u16>,
    pub session_id: Option<String>,
    /// Transport as written (`tcp`).
    pub transport: String,
    /// Further `;name[=value]` parameters, in order.
    pub params: Vec<(String, Option<String>)>,
}

impl MsrpUri {
    /// A `msrp://host:port/session-id;tcp` URI.
    pub fn new(host: impl Into<String>, port: u16, session_id: impl Into<String>) -> Self {
        MsrpUri {
            secure: false,
            userinfo: None,
            host: host.into(),
            port: Some(port),
            session_id: Some(session_id.into()),
            transport: "tcp".into(),
            params: Vec::new(),
        }
    }

    /// The same URI as `msrps:` (TLS, RFC 4975 §14.1) when `secure`.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Parses one URI from raw bytes (the entry point a fuzz target calls).
    pub fn parse_bytes(b: &[u8]) -> Result<Self, UriError> {
        let s = std::str::from_utf8(b).map_err(|_| UriError::InvalidChar("URI"))?;
        Self::parse(s)
    }

    /// Parses one URI.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let lower_prefix = |p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
        let (secure, rest) = if lower_prefix("msrps://") {
            (true, &s[8..])
        } else if lower_prefix("msrp://") {
            (false, &s[7..])
        } else {
            return Err(UriError::BadScheme);
        };
        // authority ends at '/' or ';'
        let auth_end = rest.find(['/', ';']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(auth_end);
        if authority.is_empty() {
            return Err(UriError::MissingAuthority);
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(authority[..i].to_string()), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err(UriError::MissingAuthority);
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_[]:%".contains(&b))
        {
            return Err(UriError::InvalidChar("host"));
        }
        let (session_id, rest) = match rest.strip_prefix('/') {
            Some(r) => {
                let end = r.find(';').unwrap_or(r.len());
                let sid = &r[..end];
                if sid.is_empty() || !sid.bytes().all(is_unreserved_ish) {
                    return Err(UriError::InvalidChar("session-id"));
                }
                (Some(sid.to_string()), &r[end..])
            }
            None => (None, rest),
        };
        let rest = rest.strip_prefix(';').ok_or(UriError::MissingTransport)?;
        let mut parts = rest.split(';');
        let transport = parts.next().unwrap_or_default();
        if transport.is_empty()
            || !transport
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(UriError::MissingTransport);
        }
        let mut params = Vec::new();
        for p in parts {
            if p.is_empty() || !p.bytes().all(is_unreserved_ish) {
                return Err(UriError::InvalidChar("parameter"));
            }
            match p.split_once('=') {
                Some((n, v)) => params.push((n.to_string(), Some(v.to_string()))),
                None => params.push((p.to_string(), None)),
            }
        }
        Ok(MsrpUri {
            secure,
            userinfo,
            host: host.to_string(),
            port,
            session_id,
            transport: transport.to_string(),
            params,
        })
    }
}

fn is_unreserved_ish(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@%".contains(&b)
}

fn split_host_port(hp: &str) -> Result<(&str, Option<u16>), UriError> {
    // IPv6 literal: [..]:port
    let port_sep = if hp.starts_with('[') {
        let close = hp.find(']').ok_or(UriError::InvalidChar("host"))?;
        match hp.get(close + 1..) {
            Some("") => None,
            Some(r) if r.starts_with(':') => Some(close + 1),
            _ => return Err(UriError::InvalidChar("host")),
        }
    } else {
        hp.find(':')
    };
    match port_sep {
        None => Ok((hp, None)),
        Some(i) => {
            let p = &hp[i + 1..];
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(UriError::BadPort);
            }
            let port = p.parse::<u16>().map_err(|_| UriError::BadPort)?;
            Ok((&hp[..i], Some(port)))
        }
    }
}

impl PartialEq for MsrpUri {
    // RFC 4975 §6.1
    fn eq(&self, other: &Self) -> bool {
        let ci = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        self.secure == other.secure
            && ci(&self.userinfo, &other.userinfo)
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(&other.transport)
    }
}

impl fmt::Display for MsrpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "msrps://" } else { "msrp://" })?;
        if let Some(u) = &self.userinfo {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(s) = &self.session_id {
            write!(f, "/{s}")?;
        }
        write!(f, ";{}", self.transport)?;
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

impl FromStr for MsrpUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MsrpUri::parse(s)
    }
}

/// A `To-Path` / `From-Path` value: one or more URIs separated by spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpPath(pub Vec<MsrpUri>);

impl MsrpPath {
    /// A path of one URI.
    pub fn single(uri: MsrpUri) -> Self {
        MsrpPath(vec![uri])
    }

    /// Parses a header value (liberal about runs of whitespace).
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let uris = s
            .split_ascii_whitespace()
            .map(MsrpUri::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if uris.is_empty() {
            return Err(UriError::EmptyPath);
        }
        Ok(MsrpPath(uris))
    }

    /// First URI (the next hop for To-Path, the previous hop for From-Path).
    pub fn first(&self) -> Option<&MsrpUri> {
        self.0.first()
    }

    /// Last URI (the final destination for To-Path, the originator for From-Path).
    pub fn last(&self) -> Option<&MsrpUri> {
        self.0.last()
    }

    /// The same URIs in reverse order (how a response's To-Path is built from
    /// a request's From-Path over relays; RFC 4975 §7.2).
    pub fn reversed(&self) -> Self {
        MsrpPath(self.0.iter().rev().cloned().collect())
    }
}

impl fmt::Display for MsrpPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{u}")?;
        }
        Ok(())
    }
}

impl FromStr for MsrpPath {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MsrpPath::parse(s)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn secure_uri_prints_msrps_and_differs_from_msrp() {
        let plain = MsrpUri::new("127.0.0.1", 9000, "s1");
        let tls = plain.clone().with_secure(true);
        assert_eq!(tls.to_string(), "msrps://127.0.0.1:9000/s1;tcp");
        assert_eq!(MsrpUri::parse(&tls.to_string()).unwrap(), tls);
        assert_ne!(plain, tls, "RFC 4975 §6.1: the scheme is compared");
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_print() {
        let u = MsrpUri::parse("msrp://bob.example.com:8888/9di4eae923wzd;tcp").unwrap();
        assert!(!u.secure);
        assert_eq!(u.host, "bob.example.com");
        assert_eq!(u.port, Some(8888));
        assert_eq!(u.session_id.as_deref(), Some("9di4eae923wzd"));
        assert_eq!(u.transport, "tcp");
        assert_eq!(
            u.to_string(),
            "msrp://bob.example.com:8888/9di4eae923wzd;tcp"
        );

        let r = MsrpUri::parse("msrps://alice@intra.example.com;tcp;foo=bar;baz").unwrap();
        assert!(r.secure);
        assert_eq!(r.userinfo.as_deref(), Some("alice"));
        assert_eq!(r.session_id, None);
        assert_eq!(r.port, None);
        assert_eq!(
            r.to_string(),
            "msrps://alice@intra.example.com;tcp;foo=bar;baz"
        );

        let v6 = MsrpUri::parse("msrp://[2001:db8::1]:2855/abc;tcp").unwrap();
        assert_eq!(v6.host, "[2001:db8::1]");
        assert_eq!(v6.port, Some(2855));
    }

    #[test]
    fn comparison_rules_6_1() {
        let a = MsrpUri::parse("msrp://BOB.example.com:8888/9di4eae923wzd;TCP").unwrap();
        let b = MsrpUri::parse("MSRP://bob.EXAMPLE.com:8888/9di4eae923wzd;tcp;x=y").unwrap();
        assert_eq!(a, b);
        let c = MsrpUri::parse("msrp://bob.example.com:8888/9DI4eae923wzd;tcp").unwrap();
        assert_ne!(a, c, "session-id is case-sensitive");
        let d = MsrpUri::parse("msrps://bob.example.com:8888/9di4eae923wzd;tcp").unwrap();
        assert_ne!(a, d, "scheme differs");
        let e = MsrpUri::parse("msrp://bob.example.com/9di4eae923wzd;tcp").unwrap();
        assert_ne!(a, e, "an explicit port never equals a missing one");
    }

    #[test]
    fn rejects() {
        for bad in [
            "sip:bob@example.com",
            "msrp://",
            "msrp://host:99999/a;tcp",
            "msrp://host:80/a",
            "msrp://host:80/;tcp",
            "msrp://host:x/a;tcp",
        ] {
            assert!(MsrpUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_several_uris() {
        let s = "msrp://relay.example.com:2855/a1;tcp msrp://bob.example.com:8888/9di4;tcp";
        let p = MsrpPath::parse(s).unwrap();
        assert_eq!(p.0.len(), 2);
        assert_eq!(p.last().unwrap().host, "bob.example.com");
        assert_eq!(p.to_string(), s);
        assert_eq!(p.reversed().first().unwrap().host, "bob.example.com");
        assert_eq!(MsrpPath::parse("  "), Err(UriError::EmptyPath));
    }

    fn arb_uri() -> impl Strategy<Value = MsrpUri> {
        (
            any::<bool>(),
            proptest::option::of("[a-z]{1,6}"),
            "[a-z0-9]{1,8}(\\.[a-z]{2,5}){0,2}",
            proptest::option::of(any::<u16>()),
            proptest::option::of("[A-Za-z0-9]{1,16}"),
            prop_oneof![Just("tcp".to_string()), Just("ws".to_string())],
            proptest::collection::vec(("[a-z]{1,4}", proptest::option::of("[a-z0-9]{1,4}")), 0..3),
        )
            .prop_map(
                |(secure, userinfo, host, port, session_id, transport, params)| MsrpUri {
                    secure,
                    userinfo,
                    host,
                    port,
                    session_id,
                    transport,
                    params,
                },
            )
    }

    proptest! {
        #[test]
        fn uri_round_trip(u in arb_uri()) {
            let s = u.to_string();
            let back = MsrpUri::parse(&s).unwrap();
            prop_assert_eq!(&back, &u);
            prop_assert_eq!(back.params, u.params);
        }

        #[test]
        fn uri_parse_never_panics(s in "\\PC*", b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = MsrpUri::parse_bytes(&b);
            let _ = MsrpUri::parse(&s);
            let _ = MsrpPath::parse(&s);
        }
    }
}
