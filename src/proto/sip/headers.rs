//! Typed headers that rsip 0.4 lacks (or gets wrong), on top of its untyped
//! `rsip::Header` values, plus [`HeadersExt`] to read and write them on `rsip::Headers`.
//!
//! Each type has `parse(&str)` for the header *value* and `Display` printing the value;
//! [`TypedHeader::NAME`] gives the header name.

mod contact;
mod dialog_ext;
mod event;
mod misc;
mod params;
mod via;

pub use contact::{
    AcceptContact, Contact, ContactValue, FeatureSet, RejectContact, decode_service_ref,
    encode_service_ref, service,
};
pub use dialog_ext::{MinSe, ReferSub, ReferTo, ReferredBy, Refresher, Replaces, SessionExpires};
pub use event::{AllowEvents, Event, SubState, SubscriptionState};
pub use misc::{
    Allow, ContentDisposition, IscConvergenceId, PAssertedIdentity, PAssertedService,
    PPreferredIdentity, PPreferredService, Path, Privacy, Product, Reason, ReasonValue,
    RecordRoute, RequestDisposition, Require, Route, Server, Supported, UserAgent, Warning,
    WarningValue,
};
pub use params::{NameAddr, Params, is_token, quote, split_list, split_top, unquote};
pub use via::ViaValue;
pub(crate) use via::split_host_port as via_split_host_port;

/// What is wrong with a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("invalid {what}: {value:?}")]
    Invalid { what: &'static str, value: String },
    #[error("missing {0}")]
    Missing(&'static str),
}

impl HeaderError {
    pub(crate) fn invalid(what: &'static str, value: &str) -> Self {
        Self::Invalid {
            what,
            value: value.chars().take(80).collect(),
        }
    }
}

/// A header we know how to parse and print.
pub trait TypedHeader: Sized + std::fmt::Display {
    /// Full header name as printed.
    const NAME: &'static str;
    /// Compact form (RFC 3261 §7.3.3 and extensions), if any.
    const COMPACT: Option<char> = None;
    /// Parses one header line's value.
    fn parse(value: &str) -> Result<Self, HeaderError>;
}

/// RFC 3261 §7.3.3 compact forms plus RFC 3265/6665 (o, u), RFC 3515 (r), RFC 3892 (b),
/// RFC 4028 (x), RFC 4474 (y, n), RFC 3841 (a, j, d).
pub const COMPACT_FORMS: &[(char, &str)] = &[
    ('a', "Accept-Contact"),
    ('b', "Referred-By"),
    ('c', "Content-Type"),
    ('d', "Request-Disposition"),
    ('e', "Content-Encoding"),
    ('f', "From"),
    ('i', "Call-ID"),
    ('j', "Reject-Contact"),
    ('k', "Supported"),
    ('l', "Content-Length"),
    ('m', "Contact"),
    ('n', "Identity-Info"),
    ('o', "Event"),
    ('r', "Refer-To"),
    ('s', "Subject"),
    ('t', "To"),
    ('u', "Allow-Events"),
    ('v', "Via"),
    ('x', "Session-Expires"),
    ('y', "Identity"),
];

/// The full name for a compact one (`"i"` → `"Call-ID"`), case-insensitive.
pub fn expand_compact(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    let c = c.to_ascii_lowercase();
    COMPACT_FORMS.iter().find(|(k, _)| *k == c).map(|(_, v)| *v)
}

/// Whether `name` (full or compact) designates the header `wanted` (full name).
pub fn name_matches(name: &str, wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted)
        || expand_compact(name).is_some_and(|n| n.eq_ignore_ascii_case(wanted))
}

/// Name and value of any rsip header, as they would be printed.
pub fn name_value(h: &rsip::Header) -> (String, String) {
    if let rsip::Header::Other(n, v) = h {
        return (n.clone(), v.clone());
    }
    let s = h.to_string();
    match s.split_once(':') {
        Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
        None => (s, String::new()),
    }
}

/// Builds an rsip header from a name and value, choosing rsip's own variant when it has one
/// (so `rsip`'s accessors such as `via_header()` find it) and `Header::Other` otherwise.
pub fn make_header(name: &str, value: &str) -> rsip::Header {
    use std::convert::TryInto;
    let name = expand_compact(name).unwrap_or(name);
    let tok = rsip::headers::header::Tokenizer {
        name: name.as_bytes(),
        value: value.as_bytes(),
    };
    let made: Result<rsip::Header, rsip::Error> = tok.try_into();
    made.unwrap_or_else(|_| rsip::Header::Other(name.to_owned(), value.to_owned()))
}

/// Typed and raw access to headers by name (full or compact, any case).
pub trait HeadersExt {
    /// Value of the first header named `name`.
    fn get_raw(&self, name: &str) -> Option<String>;
    /// Values of every header named `name`, in order.
    fn get_all_raw(&self, name: &str) -> Vec<String>;
    /// The first `T` header, parsed.
    fn typed<T: TypedHeader>(&self) -> Result<Option<T>, HeaderError>;
    /// Every `T` header line, parsed.
    fn all<T: TypedHeader>(&self) -> Result<Vec<T>, HeaderError>;
    /// Replaces every `T` header with `value`.
    fn set<T: TypedHeader>(&mut self, value: T);
    /// Appends `value` as a new header line.
    fn push_typed<T: TypedHeader>(&mut self, value: T);
    /// Removes every header named `name` (full or compact).
    fn remove_named(&mut self, name: &str);
}

impl HeadersExt for rsip::Headers {
    fn get_raw(&self, name: &str) -> Option<String> {
        self.iter().find_map(|h| {
            let (n, v) = name_value(h);
            same_header(&n, name).then_some(v)
        })
    }

    fn get_all_raw(&self, name: &str) -> Vec<String> {
        self.iter()
            .filter_map(|h| {
                let (n, v) = name_value(h);
                same_header(&n, name).then_some(v)
            })
            .collect()
    }

    fn typed<T: TypedHeader>(&self) -> Result<Option<T>, HeaderError> {
        self.get_raw(T::NAME).map(|v| T::parse(&v)).transpose()
    }

    fn all<T: TypedHeader>(&self) -> Result<Vec<T>, HeaderError> {
        self.get_all_raw(T::NAME)
            .iter()
            .map(|v| T::parse(v))
            .collect()
    }

    fn set<T: TypedHeader>(&mut self, value: T) {
        self.remove_named(T::NAME);
        self.push_typed(value);
    }

    fn push_typed<T: TypedHeader>(&mut self, value: T) {
        self.push(make_header(T::NAME, &value.to_string()));
    }

    fn remove_named(&mut self, name: &str) {
        self.retain(|h| !same_header(&name_value(h).0, name));
    }
}

fn same_header(a: &str, b: &str) -> bool {
    let a = expand_compact(a).unwrap_or(a);
    let b = expand_compact(b).unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lookup_matches_compact_and_case() {
        let mut h = rsip::Headers::default();
        h.push(rsip::Header::Other("o".into(), "conference;id=1".into()));
        h.push(rsip::Header::Other("EVENT".into(), "reg".into()));
        assert_eq!(h.get_all_raw("Event"), vec!["conference;id=1", "reg"]);
        assert_eq!(h.get_raw("o").as_deref(), Some("conference;id=1"));
        let e: Event = h.typed().unwrap().unwrap();
        assert_eq!(e.id.as_deref(), Some("1"));
        h.set(Event::new("dialog"));
        assert_eq!(h.get_all_raw("event"), vec!["dialog"]);
    }

    #[test]
    fn make_header_picks_rsip_variant() {
        assert!(matches!(
            make_header("v", "SIP/2.0/UDP a"),
            rsip::Header::Via(_)
        ));
        assert!(
            matches!(make_header("x", "90"), rsip::Header::Other(n, _) if n == "Session-Expires")
        );
    }
}
