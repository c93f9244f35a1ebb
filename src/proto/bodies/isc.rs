//! The project schema for the three ISC bodies.
//!
//! The seeds (000 5.11.1, 5.4.3.2, 5.4.3.3) name the elements but publish no
//! schema, so `isc` defines one namespace for all three:
//!
//! **Namespace** `urn:isc:params:xml:ns:isc` (default namespace, no prefix).
//! Writers use the seeds' element names exactly, one root element per body,
//! UTF-8, in the order listed. Readers are liberal: the elements are matched by
//! local name in any namespace or none, in any order, anywhere below the root
//! (whatever the root is called); unknown elements are ignored; values are
//! trimmed; `yes`/`no` also accept `true`/`false`/`1`/`0`.
//!
//! ## `application/ISC-content-request+xml` (INVITE for content viewing)
//!
//! | element | card. | value |
//! |---|---|---|
//! | `ContentRef` | 1 | reference of the content to watch |
//! | `SessionType` | 0..1 | `cv` or `cv-cm`; default `cv` |
//! | `UsingMultipleClient` | 0..1 | `yes` / `no`; default `no` |
//! | `CommunicationClientAddr` | 0..1 | address (GRUU or URI) of the device for the chat |
//! | `ContentViewingClientAddr` | 0..1 | address of the device that plays the content |
//! | `TargetUser` | 0..n | URI of an invited user (or group); the Request-URI when absent |
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <ISCContentRequest xmlns="urn:isc:params:xml:ns:isc">
//!   <ContentRef>movie-42</ContentRef>
//!   <SessionType>cv-cm</SessionType>
//!   <UsingMultipleClient>yes</UsingMultipleClient>
//!   <CommunicationClientAddr>sip:alice@isc.local;gr=urn:uuid:a2</CommunicationClientAddr>
//!   <ContentViewingClientAddr>sip:alice@isc.local;gr=urn:uuid:a1</ContentViewingClientAddr>
//!   <TargetUser>sip:bob@isc.local</TargetUser>
//! </ISCContentRequest>
//! ```
//!
//! ## `application/vnd.oma.isc.cm.recommendation` (MESSAGE, seed 000 5.4.3.2)
//!
//! The body is a sub-level MIME entity: `Content-Type: text/xml`, an empty line,
//! then the XML (readers also accept the bare XML).
//!
//! | element | card. | value |
//! |---|---|---|
//! | `SessionType` | 0..1 | `cv-cm` (default `cv-cm`) |
//! | `UsingMultipleClient` | 0..1 | `yes` (default `no`) |
//! | `CommunicationClientAddr` | 0..1 | the device asked to start the chat |
//! | `ContentViewingClientAddr` | 0..1 | the device playing the content |
//! | `ISCConvergenceID` | 1 | the content-viewing session identifier |
//! | `TargetUser` | 0..n | project extension: whom to chat with |
//!
//! ```text
//! Content-Type: text/xml
//!
//! <?xml version="1.0" encoding="UTF-8"?>
//! <ISCCMRecommendation xmlns="urn:isc:params:xml:ns:isc">
//!   <SessionType>cv-cm</SessionType>
//!   <UsingMultipleClient>yes</UsingMultipleClient>
//!   <CommunicationClientAddr>sip:alice@isc.local;gr=urn:uuid:a2</CommunicationClientAddr>
//!   <ContentViewingClientAddr>sip:alice@isc.local;gr=urn:uuid:a1</ContentViewingClientAddr>
//!   <ISCConvergenceID>cv-7f3a</ISCConvergenceID>
//!   <TargetUser>sip:bob@isc.local</TargetUser>
//! </ISCCMRecommendation>
//! ```
//!
//! ## `application/vnd.oma.isc.cv.cancellation` (CANCEL, seed 000 5.4.3.3)
//!
//! Same sub-level `text/xml` entity.
//!
//! | element | card. | value |
//! |---|---|---|
//! | `CVInviteIdentifer` | 1 | identifies the cancelled CV INVITE (seed's spelling; readers also accept `CVInviteIdentifier`) |
//! | `CancellationID` | 1 | identifies the reason for the cancellation |
//!
//! ```text
//! Content-Type: text/xml
//!
//! <?xml version="1.0" encoding="UTF-8"?>
//! <ISCCVCancellation xmlns="urn:isc:params:xml:ns:isc">
//!   <CVInviteIdentifer>a84b4c76e66710@isc.local</CVInviteIdentifer>
//!   <CancellationID>answered-elsewhere</CancellationID>
//! </ISCCVCancellation>
//! ```
//!
//! The same namespace carries the `yourown` attribute on RFC 4575 `<user>`
//! (see [`super::conference_info`]).

use super::BodyError;

/// The project namespace of the ISC bodies.
pub const ISC_NS: &str = "urn:isc:params:xml:ns:isc";

/// `SessionType`: content viewing alone, or with communication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionType {
    /// `cv`
    Cv,
    /// `cv-cm`
    CvCm,
}

impl SessionType {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Cv => "cv",
            SessionType::CvCm => "cv-cm",
        }
    }

    /// Reads `cv` / `cv-cm` (any case).
    pub fn parse(v: &str) -> Result<Self, BodyError> {
        match v.trim().to_ascii_lowercase().as_str() {
            "cv" => Ok(SessionType::Cv),
            "cv-cm" => Ok(SessionType::CvCm),
            _ => Err(BodyError::BadValue {
                field: "SessionType",
                value: v.to_owned(),
            }),
        }
    }
}

/// `yes` / `no` as the seeds write them.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    /// Values that survive trimming: printable, no edge whitespace.
    pub fn value() -> impl Strategy<Value = String> {
        "[!-~]([ -~]{0,24}[!-~])?"
    }

    pub fn uri() -> impl Strategy<Value = String> {
        "sips?:[a-z0-9._-]{1,10}@[a-z0-9.-]{1,12}(;gr=urn:uuid:[0-9a-f-]{1,12})?"
    }
}
