//! `application/vnd.oma.isc.cm.recommendation`: the MESSAGE body that asks the
//! initiator's communication device to start the chat (seed 000 5.4.3.2 6.b).
//! The body is a sub-level `text/xml` MIME entity; schema in [`super::isc`].

use super::BodyError;
use super::isc::{ISC_NS, SessionType, yes_no};
use super::isc_content_request::collect;
use super::mime::{sub_level_xml, wrap_sub_level_xml};
use super::xml::{XmlOut, parse_bool, parse_document};

/// The top-level Content-Type (seed 000 5.4.3.2 6.a).
pub const CONTENT_TYPE: &str = "application/vnd.oma.isc.cm.recommendation";
/// Root element written.
pub const ROOT: &str = "ISCCMRecommendation";

/// A communication-task recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmRecommendation {
    pub session_type: SessionType,
    pub using_multiple_client: bool,
    pub communication_client_addr: Option<String>,
    pub content_viewing_client_addr: Option<String>,
    pub isc_convergence_id: String,
    /// Project extension: the users to start the chat with.
    pub target_users: Vec<String>,
}

impl CmRecommendation {
    /// The values seed 000 5.4.3.2 6.b prescribes: `cv-cm`, `yes`.
    pub fn new(
        communication_client_addr: impl Into<String>,
        content_viewing_client_addr: impl Into<String>,
        isc_convergence_id: impl Into<String>,
    ) -> Self {
        CmRecommendation {
            session_type: SessionType::CvCm,
            using_multiple_client: true,
            communication_client_addr: Some(communication_client_addr.into()),
            content_viewing_client_addr: Some(content_viewing_client_addr.into()),
            isc_convergence_id: isc_convergence_id.into(),
            target_users: Vec::new(),
        }
    }

    /// Reads the body, with or without the sub-level header block.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let root = parse_document(sub_level_xml(bytes)?)?;
        let text = |n: &str| root.descendant(n).map(|e| e.text());
        let session_type = match text("SessionType") {
            Some(v) => SessionType::parse(&v)?,
            None => SessionType::CvCm,
        };
        let using_multiple_client = match text("UsingMultipleClient") {
            Some(v) => parse_bool("UsingMultipleClient", &v)?,
            None => false,
        };
        let mut target_users = Vec::new();
        collect(&root, "TargetUser", &mut target_users);
        Ok(CmRecommendation {
            session_type,
            using_multiple_client,
            communication_client_addr: text("CommunicationClientAddr"),
            content_viewing_client_addr: text("ContentViewingClientAddr"),
            isc_convergence_id: text("ISCConvergenceID")
                .ok_or(BodyError::MissingElement("ISCConvergenceID"))?,
            target_users,
        })
    }

    /// The inner XML document.
    pub fn to_xml(&self) -> String {
        let mut w = XmlOut::new();
        w.open(ROOT, &[("xmlns", ISC_NS)]);
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
        w.leaf("ISCConvergenceID", &self.isc_convergence_id);
        for t in &self.target_users {
            w.leaf("TargetUser", t);
        }
        w.close(ROOT);
        w.finish()
    }

    /// The body: `Content-Type: text/xml`, empty line, XML (seed 000 5.4.3.2 6.b).
    pub fn to_bytes(&self) -> Vec<u8> {
        wrap_sub_level_xml(&self.to_xml())
    }
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<CmRecommendation, BodyError> {
    CmRecommendation::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::isc::strategies::{uri, value};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn with_and_without_sub_level_headers() {
        let r = CmRecommendation::new("sip:a2@isc.local", "sip:a1@isc.local", "conv-1");
        let bytes = r.to_bytes();
        assert!(bytes.starts_with(b"Content-Type: text/xml\r\n\r\n<?xml"));
        assert_eq!(CmRecommendation::parse(&bytes), Ok(r.clone()));
        assert_eq!(
            CmRecommendation::parse(r.to_xml().as_bytes()),
            Ok(r.clone())
        );
        let lf = String::from_utf8(bytes).unwrap().replace("\r\n", "\n");
        assert_eq!(CmRecommendation::parse(lf.as_bytes()), Ok(r));
    }

    #[test]
    fn missing_convergence_id() {
        assert_eq!(
            CmRecommendation::parse(
                b"Content-Type: text/xml\r\n\r\n<r><SessionType>cv-cm</SessionType></r>"
            ),
            Err(BodyError::MissingElement("ISCConvergenceID"))
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            s in prop_oneof![Just(SessionType::Cv), Just(SessionType::CvCm)],
            u in any::<bool>(),
            cc in proptest::option::of(uri()),
            cv in proptest::option::of(uri()),
            id in value(),
            t in proptest::collection::vec(uri(), 0..3),
        ) {
            let r = CmRecommendation {
                session_type: s, using_multiple_client: u, communication_client_addr: cc,
                content_viewing_client_addr: cv, isc_convergence_id: id, target_users: t,
            };
            prop_assert_eq!(CmRecommendation::parse(&r.to_bytes()), Ok(r));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
