//! `application/im-iscomposing+xml` (RFC 3994): the typing indication.

use super::BodyError;
use super::xml::{XmlOut, parse_root, parse_u32};

/// The Content-Type of this body.
pub const CONTENT_TYPE: &str = "application/im-iscomposing+xml";
/// RFC 3994 §8 namespace.
pub const NS: &str = "urn:ietf:params:xml:ns:im-iscomposing";

/// `<state>` (RFC 3994 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComposingState {
    Active,
    Idle,
}

impl ComposingState {
    pub fn as_str(self) -> &'static str {
        match self {
            ComposingState::Active => "active",
            ComposingState::Idle => "idle",
        }
    }
}

/// An isComposing document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsComposing {
    pub state: ComposingState,
    /// `<lastactive>`, an xs:dateTime kept as written.
    pub lastactive: Option<String>,
    /// `<contenttype>`, e.g. `text/plain`.
    pub contenttype: Option<String>,
    /// `<refresh>` in seconds (RFC 3994 §4: only with `active`).
    pub refresh: Option<u32>,
}

impl IsComposing {
    /// `active` for `text/plain`, refreshed every `refresh` seconds.
    pub fn active(refresh: Option<u32>) -> Self {
        IsComposing {
            state: ComposingState::Active,
            lastactive: None,
            contenttype: Some("text/plain".to_owned()),
            refresh,
        }
    }

    /// `idle`.
    pub fn idle() -> Self {
        IsComposing {
            state: ComposingState::Idle,
            lastactive: None,
            contenttype: None,
            refresh: None,
        }
    }

    /// Reads a document; unknown elements are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let root = parse_root(bytes, "isComposing")?;
        let state = match root
            .child_text_in(NS, "state")
            .ok_or(BodyError::MissingElement("state"))?
            .as_str()
        {
            "active" => ComposingState::Active,
            "idle" => ComposingState::Idle,
            other => {
                return Err(BodyError::BadValue {
                    field: "state",
                    value: other.to_owned(),
                });
            }
        };
        let refresh = match root.child_text_in(NS, "refresh") {
            Some(r) => Some(parse_u32("refresh", &r)?),
            None => None,
        };
        Ok(IsComposing {
            state,
            lastactive: root.child_text_in(NS, "lastactive"),
            contenttype: root.child_text_in(NS, "contenttype"),
            refresh,
        })
    }

    /// The XML document (element order of the RFC 3994 §8 schema).
    pub fn to_xml(&self) -> String {
        let mut w = XmlOut::new();
        w.open("isComposing", &[("xmlns", NS)]);
        w.leaf("state", self.state.as_str());
        w.opt_leaf("lastactive", self.lastactive.as_deref());
        w.opt_leaf("contenttype", self.contenttype.as_deref());
        if let Some(r) = self.refresh {
            w.leaf("refresh", &r.to_string());
        }
        w.close("isComposing");
        w.finish()
    }

    /// The body bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_xml().into_bytes()
    }
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<IsComposing, BodyError> {
    IsComposing::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bad_state() {
        assert!(matches!(
            IsComposing::parse(b"<isComposing><state>busy</state></isComposing>"),
            Err(BodyError::BadValue { field: "state", .. })
        ));
        assert_eq!(
            IsComposing::parse(b"<isComposing/>"),
            Err(BodyError::MissingElement("state"))
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            active in any::<bool>(),
            last in proptest::option::of("20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z"),
            ct in proptest::option::of("[a-z]{1,8}(/[a-z+.-]{1,10})?"),
            refresh in proptest::option::of(any::<u32>()),
        ) {
            let c = IsComposing {
                state: if active { ComposingState::Active } else { ComposingState::Idle },
                lastactive: last, contenttype: ct, refresh,
            };
            prop_assert_eq!(IsComposing::parse(&c.to_bytes()), Ok(c));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
