//! Session timers (RFC 4028), Replaces (RFC 3891), Refer-To / Refer-Sub / Referred-By
//! (RFC 3515, RFC 4488, RFC 3892).

use super::params::{NameAddr, Params};
use super::{HeaderError, TypedHeader};
use std::fmt;

/// `refresher=uac|uas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// `Session-Expires: delta-seconds [;refresher=uac|uas]` (RFC 4028 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExpires {
    pub delta: u32,
    pub refresher: Option<Refresher>,
    /// Other params, refresher excluded.
    pub params: Params,
}

impl SessionExpires {
    pub fn new(delta: u32, refresher: Option<Refresher>) -> Self {
        Self {
            delta,
            refresher,
            params: Params::default(),
        }
    }
}

fn delta_and_params(value: &str, what: &'static str) -> Result<(u32, Params), HeaderError> {
    let (d, p) = value.split_once(';').unwrap_or((value, ""));
    let d = d.trim();
    if d.is_empty() || d.len() > 10 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::invalid(what, value));
    }
    let delta = d.parse().map_err(|_| HeaderError::invalid(what, value))?;
    Ok((delta, Params::parse(p)?))
}

impl TypedHeader for SessionExpires {
    const NAME: &'static str = "Session-Expires";
    const COMPACT: Option<char> = Some('x');

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let (delta, mut params) = delta_and_params(value, "Session-Expires")?;
        let refresher = match params.get_unquoted("refresher") {
            None => None,
            Some(r) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(r) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            Some(_) => return Err(HeaderError::invalid("refresher", value)),
        };
        params.remove("refresher");
        Ok(Self {
            delta,
            refresher,
            params,
        })
    }
}

impl fmt::Display for SessionExpires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.delta)?;
        match self.refresher {
            Some(Refresher::Uac) => f.write_str(";refresher=uac")?,
            Some(Refresher::Uas) => f.write_str(";refresher=uas")?,
            None => {}
        }
        write!(f, "{}", self.params)
    }
}

/// `Min-SE: delta-seconds` (RFC 4028 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinSe {
    pub delta: u32,
    pub params: Params,
}

impl TypedHeader for MinSe {
    const NAME: &'static str = "Min-SE";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let (delta, params) = delta_and_params(value, "Min-SE")?;
        Ok(Self { delta, params })
    }
}

impl fmt::Display for MinSe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.delta, self.params)
    }
}

/// `Replaces: callid;to-tag=..;from-tag=..[;early-only]` (RFC 3891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    pub early_only: bool,
    /// Other params.
    pub params: Params,
}

impl Replaces {
    pub fn new(call_id: &str, to_tag: &str, from_tag: &str) -> Self {
        Self {
            call_id: call_id.into(),
            to_tag: to_tag.into(),
            from_tag: from_tag.into(),
            early_only: false,
            params: Params::default(),
        }
    }

    /// The form embedded in a Refer-To URI: `?Replaces=` + percent-encoded value.
    pub fn to_uri_header(&self) -> String {
        let v = self.to_string();
        format!(
            "Replaces={}",
            percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC)
        )
    }
}

impl TypedHeader for Replaces {
    const NAME: &'static str = "Replaces";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let (cid, p) = value.split_once(';').unwrap_or((value, ""));
        let call_id = cid.trim();
        if call_id.is_empty() || call_id.contains(char::is_whitespace) {
            return Err(HeaderError::invalid("Replaces call-id", value));
        }
        let mut params = Params::parse(p)?;
        let to_tag = params
            .get_unquoted("to-tag")
            .ok_or(HeaderError::Missing("Replaces to-tag"))?;
        let from_tag = params
            .get_unquoted("from-tag")
            .ok_or(HeaderError::Missing("Replaces from-tag"))?;
        let early_only = params.has("early-only");
        for n in ["to-tag", "from-tag", "early-only"] {
            params.remove(n);
        }
        Ok(Self {
            call_id: call_id.into(),
            to_tag,
            from_tag,
            early_only,
            params,
        })
    }
}

impl fmt::Display for Replaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};to-tag={};from-tag={}",
            self.call_id, self.to_tag, self.from_tag
        )?;
        if self.early_only {
            f.write_str(";early-only")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `Refer-To: name-addr` (RFC 3515 §2.1); the URI may embed `?Replaces=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferTo(pub NameAddr);

impl ReferTo {
    /// The `Replaces` embedded in the URI's headers part, decoded (RFC 3891 §5).
    pub fn embedded_replaces(&self) -> Option<Result<Replaces, HeaderError>> {
        let (_, headers) = self.0.uri.split_once('?')?;
        headers.split('&').find_map(|h| {
            let (n, v) = h.split_once('=')?;
            n.eq_ignore_ascii_case("Replaces").then(|| {
                let decoded = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                Replaces::parse(&decoded)
            })
        })
    }
}

impl TypedHeader for ReferTo {
    const NAME: &'static str = "Refer-To";
    const COMPACT: Option<char> = Some('r');

    fn parse(value: &str) -> Result<Self, HeaderError> {
        NameAddr::parse(value).map(Self)
    }
}

impl fmt::Display for ReferTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `Referred-By: name-addr` (RFC 3892).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferredBy(pub NameAddr);

impl TypedHeader for ReferredBy {
    const NAME: &'static str = "Referred-By";
    const COMPACT: Option<char> = Some('b');

    fn parse(value: &str) -> Result<Self, HeaderError> {
        NameAddr::parse(value).map(Self)
    }
}

impl fmt::Display for ReferredBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `Refer-Sub: true|false` (RFC 4488).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferSub {
    pub value: bool,
    pub params: Params,
}

impl TypedHeader for ReferSub {
    const NAME: &'static str = "Refer-Sub";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let (v, p) = value.split_once(';').unwrap_or((value, ""));
        let v = match v.trim() {
            t if t.eq_ignore_ascii_case("true") => true,
            t if t.eq_ignore_ascii_case("false") => false,
            _ => return Err(HeaderError::invalid("Refer-Sub", value)),
        };
        Ok(Self {
            value: v,
            params: Params::parse(p)?,
        })
    }
}

impl fmt::Display for ReferSub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.value, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_timer_round_trip() {
        let s = SessionExpires::parse("1800 ; refresher = UAS").unwrap();
        assert_eq!((s.delta, s.refresher), (1800, Some(Refresher::Uas)));
        assert_eq!(s.to_string(), "1800;refresher=uas");
        assert_eq!(SessionExpires::parse(&s.to_string()).unwrap(), s);
        assert!(SessionExpires::parse("-5").is_err());
        assert!(SessionExpires::parse("90;refresher=me").is_err());
        let m = MinSe::parse("90").unwrap();
        assert_eq!(MinSe::parse(&m.to_string()).unwrap(), m);
    }

    #[test]
    fn replaces_round_trip() {
        let r = Replaces::parse("425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only")
            .unwrap();
        assert!(r.early_only);
        assert_eq!(r.to_tag, "7743");
        assert_eq!(Replaces::parse(&r.to_string()).unwrap(), r);
        assert_eq!(
            Replaces::parse("a@b;to-tag=1"),
            Err(HeaderError::Missing("Replaces from-tag"))
        );
    }

    #[test]
    fn refer_to_with_embedded_replaces() {
        let r = Replaces::new("12345@x", "a", "b");
        let s = format!("<sip:bob@isc.local?{}>", r.to_uri_header());
        let rt = ReferTo::parse(&s).unwrap();
        assert_eq!(rt.embedded_replaces(), Some(Ok(r)));
        assert_eq!(ReferTo::parse(&rt.to_string()).unwrap(), rt);
        let rb = ReferredBy::parse("<sip:alice@isc.local>").unwrap();
        assert_eq!(ReferredBy::parse(&rb.to_string()).unwrap(), rb);
        let rs = ReferSub::parse("false").unwrap();
        assert!(!rs.value);
        assert_eq!(ReferSub::parse(&rs.to_string()).unwrap(), rs);
    }
}
