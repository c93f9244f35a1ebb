//! `application/ISC-content-request+xml`: the content-viewing request carried by
//! the CV INVITE (seed 000 5.11.1 step 7.f, 9; schema in [`super::isc`]).

use super::BodyError;
use super::isc::{ISC_NS, SessionType, yes_no};
use super::xml::{XmlOut, parse_bool, parse_document};

/// The Content-Type of this body.
pub const CONTENT_TYPE: &str = "application/ISC-content-request+xml";
/// Root element written.
pub const ROOT: &str = "ISCContentRequest";

/// An ISC content request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscContentRequest {
    pub content_ref: String,
    pub session_type: SessionType,
    pub using_multiple_client: bool,
    pub communication_client_addr: Option<String>,
    pub content_viewing_client_addr: Option<String>,
    pub target_users: Vec<String>,
}

impl IscContentRequest {
    /// A `cv` request for `content_ref`, single device, no target yet.
    pub fn new(content_ref: impl Into<String>) -> Self {
        IscContentRequest {
            content_ref: content_ref.into(),
            session_type: SessionType::Cv,
            using_multiple_client: false,
            communication_client_addr: None,
            content_viewing_client_addr: None,
            target_users: Vec::new(),
        }
    }

    /// Liberal reader (any namespace, any order, unknown elements ignored).
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let root = parse_document(bytes)?;
        let text = |n: &str| root.descendant(n).map(|e| e.text());
        let content_ref = text("ContentRef").ok_or(BodyError::MissingElement("ContentRef"))?;
        let session_type = match text("SessionType") {
            Some(v) => SessionType::parse(&v)?,
            None => SessionType::Cv,
        };
        // seed 000 5.4.3.2 ii: default value is "no"
        let using_multiple_client = match text("UsingMultipleClient") {
            Some(v) => parse_bool("UsingMultipleClient", &v)?,
            None => false,
        };
        let mut target_users = Vec::new();
        collect(&root, "TargetUser", &mut target_users);
        Ok(IscContentRequest {
            content_ref,
            session_type,
            using_multiple_client,
            communication_client_addr: text("CommunicationClientAddr"),
            content_viewing_client_addr: text("ContentViewingClientAddr"),
            target_users,
        })
    }

    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut w = XmlOut::new();
        w.open(ROOT, &[("xmlns", ISC_NS)]);
        w.leaf("ContentRef", &self.content_ref);
        w.leaf("SessionType", self.session_type.as_str());
        w.leaf("UsingMultipleClient", yes_no(self.using_multiple_client));
        w.opt_leaf(
            "CommunicationClientAddr",
            self.communication_client_addr.as_deref(),
        );
        w.opt_leaf(
            "ContentViewingClientAddr",
            self.content_viewing_client_addr.as_deref(),
        );
        for t in &self.target_users {
            w.leaf("TargetUser", t);
        }
        w.close(ROOT);
        w.finish()
    }

    /// The body bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_xml().into_bytes()
    }
}

/// All descendants named `local`, in document order.
pub(crate) fn collect(e: &super::xml::Element, local: &str, out: &mut Vec<String>) {
    for c in e.elements() {
        if c.name == local {
            out.push(c.text());
        } else {
            collect(c, local, out);
        }
    }
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<IscContentRequest, BodyError> {
    IscContentRequest::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::isc::strategies::{uri, value};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn liberal_reader() {
        let doc = br#"<x:req xmlns:x="urn:vendor"><x:Other>1</x:Other>
            <x:TargetUser> sip:bob@isc.local </x:TargetUser><x:ContentRef>m</x:ContentRef>
            <x:SessionType>CV-CM</x:SessionType></x:req>"#;
        let r = IscContentRequest::parse(doc).unwrap();
        assert_eq!(r.content_ref, "m");
        assert_eq!(r.session_type, SessionType::CvCm);
        assert!(!r.using_multiple_client, "missing UsingMultipleClient = no");
        assert_eq!(r.target_users, vec!["sip:bob@isc.local"]);
    }

    #[test]
    fn missing_content_ref() {
        assert_eq!(
            IscContentRequest::parse(b"<ISCContentRequest/>"),
            Err(BodyError::MissingElement("ContentRef"))
        );
    }

    #[test]
    fn writes_seed_names() {
        let mut r = IscContentRequest::new("movie & more");
        r.using_multiple_client = true;
        r.communication_client_addr = Some("sip:a2@isc.local".into());
        let xml = r.to_xml();
        assert!(xml.contains("<ContentRef>movie &amp; more</ContentRef>"));
        assert!(xml.contains("<UsingMultipleClient>yes</UsingMultipleClient>"));
        assert!(xml.contains("xmlns=\"urn:isc:params:xml:ns:isc\""));
    }

    pub(crate) fn request() -> impl Strategy<Value = IscContentRequest> {
        (
            value(),
            prop_oneof![Just(SessionType::Cv), Just(SessionType::CvCm)],
            any::<bool>(),
            proptest::option::of(uri()),
            proptest::option::of(uri()),
            proptest::collection::vec(uri(), 0..4),
        )
            .prop_map(|(c, s, u, cc, cv, t)| IscContentRequest {
                content_ref: c,
                session_type: s,
                using_multiple_client: u,
                communication_client_addr: cc,
                content_viewing_client_addr: cv,
                target_users: t,
            })
    }

    proptest! {
        #[test]
        fn round_trip(r in request()) {
            prop_assert_eq!(IscContentRequest::parse(&r.to_bytes()), Ok(r));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
