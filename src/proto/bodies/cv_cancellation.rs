//! `application/vnd.oma.isc.cv.cancellation`: the CANCEL body sent to a
//! recipient's other devices (seed 000 5.4.3.3 5.c/5.d); schema in [`super::isc`].
//! RFC 3261 gives CANCEL no body; every device can rely on the Reason header
//! instead, this body is an extra where the server reaches the device itself.

use super::BodyError;
use super::isc::ISC_NS;
use super::mime::{sub_level_xml, wrap_sub_level_xml};
use super::xml::{XmlOut, parse_document};

/// The top-level Content-Type (seed 000 5.4.3.3 5.c).
pub const CONTENT_TYPE: &str = "application/vnd.oma.isc.cv.cancellation";
/// Root element written.
pub const ROOT: &str = "ISCCVCancellation";

/// A content-viewing invitation cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CvCancellation {
    /// `CVInviteIdentifer` (the seed's spelling).
    pub cv_invite_identifier: String,
    /// `CancellationID`.
    pub cancellation_id: String,
}

impl CvCancellation {
    pub fn new(
        cv_invite_identifier: impl Into<String>,
        cancellation_id: impl Into<String>,
    ) -> Self {
        CvCancellation {
            cv_invite_identifier: cv_invite_identifier.into(),
            cancellation_id: cancellation_id.into(),
        }
    }

    /// Reads the body, with or without the sub-level header block.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let root = parse_document(sub_level_xml(bytes)?)?;
        let cv = root
            .descendant("CVInviteIdentifer")
            .or_else(|| root.descendant("CVInviteIdentifier"))
            .map(|e| e.text())
            .ok_or(BodyError::MissingElement("CVInviteIdentifer"))?;
        let id = root
            .descendant("CancellationID")
            .map(|e| e.text())
            .ok_or(BodyError::MissingElement("CancellationID"))?;
        Ok(CvCancellation::new(cv, id))
    }

    /// The inner XML document.
    pub fn to_xml(&self) -> String {
        let mut w = XmlOut::new();
        w.open(ROOT, &[("xmlns", ISC_NS)]);
        // seed 000 5.4.3.3 5.d.i: the seed's spelling
        w.leaf("CVInviteIdentifer", &self.cv_invite_identifier);
        w.leaf("CancellationID", &self.cancellation_id);
        w.close(ROOT);
        w.finish()
    }

    /// The body: `Content-Type: text/xml`, empty line, XML.
    pub fn to_bytes(&self) -> Vec<u8> {
        wrap_sub_level_xml(&self.to_xml())
    }
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<CvCancellation, BodyError> {
    CvCancellation::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::isc::strategies::value;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_both_spellings_and_bare_xml() {
        let c = CvCancellation::parse(
            b"<c><CancellationID>1</CancellationID><CVInviteIdentifier>x</CVInviteIdentifier></c>",
        )
        .unwrap();
        assert_eq!(c, CvCancellation::new("x", "1"));
        assert_eq!(
            CvCancellation::parse(b"<c><CancellationID>1</CancellationID></c>"),
            Err(BodyError::MissingElement("CVInviteIdentifer"))
        );
    }

    proptest! {
        #[test]
        fn round_trip(a in value(), b in value()) {
            let c = CvCancellation::new(a, b);
            let bytes = c.to_bytes();
            prop_assert!(bytes.starts_with(b"Content-Type: text/xml\r\n\r\n"));
            prop_assert_eq!(CvCancellation::parse(&bytes), Ok(c));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
