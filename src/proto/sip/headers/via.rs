//! One Via value (RFC 3261 §20.42), parsed leniently: rsip's typed Via refuses unknown
//! transports (RFC 4475 §3.1.1.10) and LWS inside the sent-protocol (§3.1.1.1).

use super::{HeaderError, Params, TypedHeader};
use std::fmt;

/// `sent-protocol LWS sent-by *( SEMI via-params )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaValue {
    /// e.g. `SIP/2.0`
    pub protocol: String,
    /// e.g. `UDP`, `TCP`, `TLS`, `WS`, or anything else
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl ViaValue {
    pub fn new(transport: &str, host: &str, port: Option<u16>, branch: &str) -> Self {
        let mut params = Params::default();
        params.set("branch", Some(branch));
        Self {
            protocol: "SIP/2.0".into(),
            transport: transport.into(),
            host: host.into(),
            port,
            params,
        }
    }

    /// Adds an empty `rport` asking the server to report the source port (RFC 3581 §3).
    pub fn with_rport(mut self) -> Self {
        self.params.set("rport", None);
        self
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }

    pub fn received(&self) -> Option<&str> {
        self.params.get("received").flatten()
    }

    /// `Some(None)` when `rport` is present without a value (RFC 3581 §3).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|v| v.parse().ok()))
    }
}

impl TypedHeader for ViaValue {
    const NAME: &'static str = "Via";
    const COMPACT: Option<char> = Some('v');

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let value = value.trim();
        let (proto_part, rest) = split_sent_protocol(value)
            .ok_or_else(|| HeaderError::invalid("Via sent-protocol", value))?;
        let mut parts = proto_part.split('/').map(str::trim);
        let (Some(name), Some(version), Some(transport), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HeaderError::invalid("Via sent-protocol", value));
        };
        if !super::is_token(name) || !super::is_token(version) || !super::is_token(transport) {
            return Err(HeaderError::invalid("Via sent-protocol", value));
        }
        let (sent_by, params) = match rest.split_once(';') {
            Some((s, p)) => (s.trim(), Params::parse(p)?),
            None => (rest.trim(), Params::default()),
        };
        let (host, port) =
            split_host_port(sent_by).ok_or_else(|| HeaderError::invalid("Via sent-by", value))?;
        Ok(Self {
            protocol: format!("{name}/{version}"),
            transport: transport.to_owned(),
            host,
            port,
            params,
        })
    }
}

/// Finds where the sent-protocol (with optional LWS around `/`) ends.
fn split_sent_protocol(s: &str) -> Option<(&str, &str)> {
    let mut slashes = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) == Some(&b'/') {
            slashes += 1;
            if slashes == 2 {
                // skip LWS then the transport token
                let mut j = i + 1;
                while bytes.get(j).is_some_and(|b| b.is_ascii_whitespace()) {
                    j += 1;
                }
                while bytes
                    .get(j)
                    .is_some_and(|b| !b.is_ascii_whitespace() && *b != b';')
                {
                    j += 1;
                }
                return Some((s.get(..j)?, s.get(j..)?));
            }
        }
        i += 1;
    }
    None
}

/// `host [ ":" port ]`, host may be an IPv6 reference.
pub(crate) fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let host = s.get(..=end)?;
        match s.get(end + 1..)?.trim() {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?.trim())),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h.trim(), Some(p.trim())),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:_".contains(&b));
    if !host_ok {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_owned(), port))
}

impl fmt::Display for ViaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.protocol, self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lws() {
        let v = ViaValue::parse("SIP  /   2.0 /UDP 192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 192.0.2.2;rport;branch=390skdjuw"
        );
        assert_eq!(v.rport(), Some(None));
        let v = ViaValue::parse("SIP/2.0/UNKNOWN [2001:db8::9:1]:5070;branch=z9hG4bKx").unwrap();
        assert_eq!((v.transport.as_str(), v.port), ("UNKNOWN", Some(5070)));
        assert_eq!(ViaValue::parse(&v.to_string()).unwrap(), v);
        assert!(ViaValue::parse("SIP/2.0 host").is_err());
        assert!(ViaValue::parse("SIP/2.0/UDP host:99999").is_err());
    }
}
