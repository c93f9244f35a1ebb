//! Message bodies carried by SIP and MSRP: one file per body, each with its data
//! type, a `parse(&[u8])` that never panics and a `to_bytes()` printer, plus its
//! round-trip proptest.
//!
//! XML readers go through [`xml::parse_document`], which refuses DTDs (so no
//! entity can ever be expanded), bounds the document size and nesting depth and
//! builds a small element tree with resolved namespaces. The ISC readers match
//! elements by local name in any namespace or none; the RFC body readers take
//! their RFC's namespace or none and skip elements of other namespaces
//! (extensions). All take any order and ignore unknown elements.
//!
//! The three ISC bodies share one project namespace, documented in [`isc`].

pub mod cm_recommendation;
pub mod conference_info;
pub mod cpim;
pub mod cv_cancellation;
pub mod is_composing;
pub mod isc;
pub mod isc_content_request;
pub mod mime;
pub mod multipart;
pub mod reginfo;
pub mod resource_lists;
pub mod xml;

/// Everything that can be wrong with a body.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("XML nested deeper than {limit} elements")]
    TooDeep { limit: usize },
    #[error("XML document declares a DTD (<!DOCTYPE>): refused, entities are never expanded")]
    DtdRefused,
    #[error("XML entity reference &{0}; is not allowed (only the five predefined ones)")]
    UnknownEntity(String),
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("XML document has no root element")]
    NoRoot,
    #[error("wrong root element <{found}>, expected <{expected}>")]
    WrongRoot {
        expected: &'static str,
        found: String,
    },
    #[error("missing element <{0}>")]
    MissingElement(&'static str),
    #[error("missing attribute `{0}`")]
    MissingAttribute(&'static str),
    #[error("bad value {value:?} for {field}")]
    BadValue { field: &'static str, value: String },
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("malformed header line {0:?}")]
    BadHeaderLine(String),
    #[error("header block not terminated by an empty line")]
    UnterminatedHeaders,
    #[error("Content-Type has no boundary parameter")]
    MissingBoundary,
    #[error("bad multipart boundary {0:?}")]
    BadBoundary(String),
    #[error("multipart delimiter --{0} not found")]
    NoDelimiter(String),
    #[error("multipart body has no close delimiter")]
    NoCloseDelimiter,
    #[error("notification version {got} is not newer than {have}")]
    StaleVersion { have: u32, got: u32 },
    #[error("notification version {got} skips versions after {have}: re-subscribe for full state")]
    VersionGap { have: u32, got: u32 },
    #[error("partial notification without a previous full state")]
    PartialWithoutFull,
}

impl BodyError {
    /// The SIP status to answer a request whose body fails this way: 413 for
    /// an oversized body, else 400 (the body is bad; a body of a type we do
    /// not take is 415, decided before parsing). Put `self` in the Warning.
    pub fn sip_status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}
