//! The content list served over SIP, and the server's loaded content library.
//!
//! ## Mechanism
//!
//! A client asks with `OPTIONS sip:content@<domain>` carrying
//! `Accept: application/vnd.isc.content-list+xml`; the server answers
//! `200 OK` with that body (RFC 3261 §11.2: the body of a 200 to OPTIONS is of
//! a type the request's Accept names). OPTIONS was chosen over MESSAGE because
//! a 2xx to MESSAGE carries no body (RFC 3428 §7), and over a SUBSCRIBE fetch
//! because the list is small and changes only when the server restarts. The
//! list comes from the server's `content_dir`; a client never hard-codes it.
//!
//! ## `application/vnd.isc.content-list+xml`
//!
//! Project schema, in the ISC namespace `urn:isc:params:xml:ns:isc` (see
//! [`crate::proto::bodies::isc`]); readers are liberal in the same way.
//!
//! | element | card. | value |
//! |---|---|---|
//! | `ISCContentList` | root | |
//! | `Content` | 0..n | one piece |
//! | `Content/ContentRef` | 1 | the id to put in an ISC content request |
//! | `Content/Title` | 1 | human-readable title |
//! | `Content/Duration` | 1 | length in milliseconds |
//! | `Content/Media` | 1..n | `audio` / `video` |
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <ISCContentList xmlns="urn:isc:params:xml:ns:isc">
//!   <Content>
//!     <ContentRef>melody</ContentRef>
//!     <Title>Melody</Title>
//!     <Duration>12000</Duration>
//!     <Media>audio</Media>
//!     <Media>video</Media>
//!   </Content>
//! </ISCContentList>
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::media::content::{Content, ContentError};
use crate::media::import::{ImportOptions, Unavailable, load_all};
use crate::proto::bodies::BodyError;
use crate::proto::bodies::isc::ISC_NS;
use crate::proto::bodies::xml::{XmlOut, parse_document};

/// Content-Type of the list.
pub const CONTENT_TYPE: &str = "application/vnd.isc.content-list+xml";
/// Root element written.
pub const ROOT: &str = "ISCContentList";
/// The user part of the list's service URI (`sip:content@<domain>`).
pub const CONTENT_LIST_USER: &str = "content";

/// One listed piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentEntry {
    pub content_ref: String,
    pub title: String,
    pub duration_ms: u64,
    /// `audio`, `video`.
    pub media: Vec<String>,
}

/// The list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentList {
    pub entries: Vec<ContentEntry>,
}

impl ContentList {
    /// Liberal reader: elements by local name, any namespace, unknown ones ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let root = parse_document(bytes)?;
        let mut entries = Vec::new();
        collect_entries(&root, &mut entries)?;
        Ok(ContentList { entries })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlOut::new();
        w.open(ROOT, &[("xmlns", ISC_NS)]);
        for e in &self.entries {
            w.open("Content", &[]);
            w.leaf("ContentRef", &e.content_ref);
            w.leaf("Title", &e.title);
            w.leaf("Duration", &e.duration_ms.to_string());
            for m in &e.media {
                w.leaf("Media", m);
            }
            w.close("Content");
        }
        w.close(ROOT);
        w.finish()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_xml().into_bytes()
    }
}

fn collect_entries(
    e: &crate::proto::bodies::xml::Element,
    out: &mut Vec<ContentEntry>,
) -> Result<(), BodyError> {
    for c in e.elements() {
        if c.name != "Content" {
            collect_entries(c, out)?;
            continue;
        }
        let content_ref = c
            .child_text("ContentRef")
            .ok_or(BodyError::MissingElement("ContentRef"))?;
        let title = c.child_text("Title").unwrap_or_default();
        let duration_ms = match c.child_text("Duration") {
            Some(v) => v.trim().parse().map_err(|_| BodyError::BadValue {
                field: "Duration",
                value: v.clone(),
            })?,
            None => 0,
        };
        let media = c.children_named("Media").map(|m| m.text()).collect();
        out.push(ContentEntry {
            content_ref,
            title,
            duration_ms,
            media,
        });
    }
    Ok(())
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<ContentList, BodyError> {
    ContentList::parse(bytes)
}

/// Every piece under the server's `content_dir`, loaded once at start so the
/// IO-free core never reads a file.
#[derive(Debug, Clone, Default)]
pub struct ContentLibrary {
    items: BTreeMap<String, Arc<Content>>,
    unavailable: Vec<Unavailable>,
}

impl ContentLibrary {
    /// Loads every piece under `root` (WAV/Y4M/GIF files too, but no ffmpeg);
    /// a piece that fails to load is [`ContentLibrary::unavailable`].
    pub fn load(root: &Path) -> Result<Self, ContentError> {
        Self::load_with(root, &ImportOptions::default())
    }

    /// [`ContentLibrary::load`] with ffmpeg and a cache dir ([`crate::media::import`]).
    pub fn load_with(root: &Path, options: &ImportOptions) -> Result<Self, ContentError> {
        let imported = load_all(root, options)?;
        Ok(ContentLibrary {
            items: imported
                .items
                .into_iter()
                .map(|c| (c.id.clone(), Arc::new(c)))
                .collect(),
            unavailable: imported.unavailable,
        })
    }

    /// Files under the content dir that cannot be played, and why.
    pub fn unavailable(&self) -> &[Unavailable] {
        &self.unavailable
    }

    pub fn from_items(items: impl IntoIterator<Item = Content>) -> Self {
        ContentLibrary {
            items: items
                .into_iter()
                .map(|c| (c.id.clone(), Arc::new(c)))
                .collect(),
            unavailable: Vec::new(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Content>> {
        self.items.get(id).cloned()
    }

    /// The list to serve.
    pub fn list(&self) -> ContentList {
        ContentList {
            entries: self
                .items
                .values()
                .map(|c| ContentEntry {
                    content_ref: c.id.clone(),
                    title: c.title.clone(),
                    duration_ms: duration_ms(c.duration),
                    media: std::iter::once("audio".to_owned())
                        .chain(c.video.as_ref().map(|_| "video".to_owned()))
                        .collect(),
                })
                .collect(),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shipped_content_is_listed() {
        let lib = ContentLibrary::load(Path::new("assets/content")).unwrap();
        let l = lib.list();
        let ids: Vec<_> = l.entries.iter().map(|e| e.content_ref.as_str()).collect();
        assert_eq!(ids, ["melody", "test-card"]);
        assert_eq!(l.entries[0].duration_ms, 12000);
        assert_eq!(l.entries[0].media, ["audio", "video"]);
        assert_eq!(ContentList::parse(&l.to_bytes()).unwrap(), l);
    }

    #[test]
    fn liberal_reader() {
        let xml = br#"<x:list xmlns:x="urn:other"><x:Content><x:Media>audio</x:Media><x:ContentRef> a </x:ContentRef><x:Extra/></x:Content></x:list>"#;
        let l = ContentList::parse(xml).unwrap();
        assert_eq!(l.entries[0].content_ref, "a");
        assert_eq!(l.entries[0].media, ["audio"]);
    }

    fn value() -> impl Strategy<Value = String> {
        "[!-~]([ -~]{0,24}[!-~])?"
    }

    proptest! {
        #[test]
        fn round_trip(entries in proptest::collection::vec(
            (value(), value(), any::<u64>(), proptest::collection::vec(value(), 0..3)), 0..4)) {
            let l = ContentList { entries: entries.into_iter().map(|(r, t, d, m)| ContentEntry {
                content_ref: r, title: t, duration_ms: d, media: m }).collect() };
            prop_assert_eq!(ContentList::parse(&l.to_bytes()).unwrap(), l);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
