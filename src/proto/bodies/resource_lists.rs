//! `application/resource-lists+xml` (RFC 4826 §3): URI lists for a conference
//! factory INVITE or a multiple-REFER (with `Content-Disposition:
//! recipient-list`, RFC 5366), the RFC 5364 copy-control attributes, and the
//! `?Replaces=` URI header of seed 002 App. M.
//!
//! The seed prints the entry as `uri="bob@biloxi.com;method=INVITE?Replaces:
//! a84b...;to-tag=...;from-tag= a6c85cf"`; per RFC 3261 §19.1.1 a URI header is
//! `?Replaces=<value>` with `;`, `=`, `@` (and every other character outside
//! `hnv-unreserved` / `unreserved`) %-escaped, and a second header joined by
//! `&` which XML writes as `&amp;`. `isc` writes that form and reads both.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::BodyError;
use super::xml::{Element, XmlOut, parse_root};

/// The Content-Type of this body.
pub const CONTENT_TYPE: &str = "application/resource-lists+xml";
/// RFC 4826 §3.2 namespace.
pub const NS: &str = "urn:ietf:params:xml:ns:resource-lists";
/// RFC 5364 namespace of the copy-control attributes.
pub const COPY_CONTROL_NS: &str = "urn:ietf:params:xml:ns:copycontrol";

/// Characters escaped in a URI header value: all but `hnv-unreserved` and
/// `unreserved` (RFC 3261 §19.1.1 / §25.1).
const HVALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'[')
    .remove(b']')
    .remove(b'/')
    .remove(b'?')
    .remove(b':')
    .remove(b'+')
    .remove(b'$')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// RFC 5364 `copyControl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyControl {
    To,
    Cc,
    Bcc,
}

impl CopyControl {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyControl::To => "to",
            CopyControl::Cc => "cc",
            CopyControl::Bcc => "bcc",
        }
    }
}

/// `<entry>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The URI exactly as in the attribute (URI headers still %-escaped).
    pub uri: String,
    pub display_name: Option<String>,
    /// RFC 5364 `cp:copyControl`.
    pub copy_control: Option<CopyControl>,
    /// RFC 5364 `cp:anonymize="true"`.
    pub anonymize: bool,
}

/// The dialog a Replaces header names (RFC 3891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    pub early_only: bool,
}

impl Replaces {
    pub fn new(
        call_id: impl Into<String>,
        to_tag: impl Into<String>,
        from_tag: impl Into<String>,
    ) -> Self {
        Replaces {
            call_id: call_id.into(),
            to_tag: to_tag.into(),
            from_tag: from_tag.into(),
            early_only: false,
        }
    }

    /// The header value `call-id;to-tag=x;from-tag=y[;early-only]`.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "{};to-tag={};from-tag={}",
            self.call_id, self.to_tag, self.from_tag
        );
        if self.early_only {
            s.push_str(";early-only");
        }
        s
    }

    /// Reads a Replaces header value (spaces around parts tolerated).
    pub fn parse_header_value(v: &str) -> Option<Self> {
        let mut parts = v.split(';');
        let call_id = parts.next()?.trim();
        if call_id.is_empty() {
            return None;
        }
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (k, val) = p.split_once('=').unwrap_or((p, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "to-tag" => to_tag = Some(val.trim().to_owned()),
                "from-tag" => from_tag = Some(val.trim().to_owned()),
                "early-only" => early_only = true,
                _ => {}
            }
        }
        Some(Replaces {
            call_id: call_id.to_owned(),
            to_tag: to_tag?,
            from_tag: from_tag?,
            early_only,
        })
    }
}

impl Entry {
    /// An entry for `uri`.
    pub fn new(uri: impl Into<String>) -> Self {
        Entry {
            uri: uri.into(),
            display_name: None,
            copy_control: None,
            anonymize: false,
        }
    }

    /// `target?Replaces=<escaped>` (seed 002 App. M, RFC 3261 §19.1.1): asks
    /// the target to replace that dialog with the conference.
    pub fn with_replaces(target: &str, replaces: &Replaces) -> Self {
        let value = replaces.to_header_value();
        let sep = if target.contains('?') { '&' } else { '?' };
        Entry::new(format!(
            "{target}{sep}Replaces={}",
            utf8_percent_encode(&value, HVALUE)
        ))
    }

    /// The URI without its `?headers` part.
    pub fn target(&self) -> &str {
        self.uri.split('?').next().unwrap_or(&self.uri)
    }

    /// The decoded Replaces header of the URI, if any (also reads the seed's
    /// `?Replaces: value` form).
    pub fn replaces(&self) -> Option<Replaces> {
        let (_, headers) = self.uri.split_once('?')?;
        headers.split('&').find_map(|h| {
            let (name, value) = match h.split_once('=') {
                Some((n, v)) if !n.contains(':') && !n.contains(';') => (n, v),
                _ => h.split_once(':')?,
            };
            if !name.trim().eq_ignore_ascii_case("replaces") {
                return None;
            }
            let decoded = percent_decode_str(value).decode_utf8().ok()?;
            Replaces::parse_header_value(&decoded)
        })
    }
}

/// One member of a `<list>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListItem {
    Entry(Entry),
    /// `<entry-ref ref=...>`.
    EntryRef {
        reference: String,
        display_name: Option<String>,
    },
    /// `<external anchor=...>`.
    External {
        anchor: String,
        display_name: Option<String>,
    },
    List(List),
}

/// `<list>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub items: Vec<ListItem>,
}

impl List {
    /// Every entry, depth first (nested lists included).
    pub fn entries(&self) -> Vec<&Entry> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Entry>) {
        for i in &self.items {
            match i {
                ListItem::Entry(e) => out.push(e),
                ListItem::List(l) => l.collect(out),
                ListItem::EntryRef { .. } | ListItem::External { .. } => {}
            }
        }
    }
}

/// A `<resource-lists>` document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceLists {
    pub lists: Vec<List>,
}

impl ResourceLists {
    /// One unnamed list of these entries (a recipient list).
    pub fn of(entries: Vec<Entry>) -> Self {
        ResourceLists {
            lists: vec![List {
                name: None,
                display_name: None,
                items: entries.into_iter().map(ListItem::Entry).collect(),
            }],
        }
    }

    /// Every entry of every list, in document order.
    pub fn entries(&self) -> Vec<&Entry> {
        self.lists.iter().flat_map(List::entries).collect()
    }

    /// Reads a document; unknown elements are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let root = parse_root(bytes, "resource-lists")?;
        let mut lists = Vec::new();
        for l in root.children_in(NS, "list") {
            lists.push(read_list(l)?);
        }
        Ok(ResourceLists { lists })
    }

    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut w = XmlOut::new();
        let cp = self
            .entries()
            .iter()
            .any(|e| e.copy_control.is_some() || e.anonymize);
        let mut attrs = vec![("xmlns", NS)];
        if cp {
            attrs.push(("xmlns:cp", COPY_CONTROL_NS));
        }
        w.open("resource-lists", &attrs);
        for l in &self.lists {
            write_list(&mut w, l);
        }
        w.close("resource-lists");
        w.finish()
    }

    /// The body bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_xml().into_bytes()
    }
}

fn read_list(l: &Element) -> Result<List, BodyError> {
    let mut items = Vec::new();
    for c in l.elements().filter(|c| c.in_ns(NS)) {
        match c.name.as_str() {
            "entry" => {
                let copy_control = match c.attr("copyControl").map(str::trim) {
                    None => None,
                    Some("to") => Some(CopyControl::To),
                    Some("cc") => Some(CopyControl::Cc),
                    Some("bcc") => Some(CopyControl::Bcc),
                    Some(v) => {
                        return Err(BodyError::BadValue {
                            field: "copyControl",
                            value: v.to_owned(),
                        });
                    }
                };
                items.push(ListItem::Entry(Entry {
                    uri: c
                        .attr("uri")
                        .ok_or(BodyError::MissingAttribute("uri"))?
                        .to_owned(),
                    display_name: c.child_text_in(NS, "display-name"),
                    copy_control,
                    anonymize: c
                        .attr("anonymize")
                        .is_some_and(|v| matches!(v.trim(), "true" | "1")),
                }));
            }
            "entry-ref" => items.push(ListItem::EntryRef {
                reference: c
                    .attr("ref")
                    .ok_or(BodyError::MissingAttribute("ref"))?
                    .to_owned(),
                display_name: c.child_text_in(NS, "display-name"),
            }),
            "external" => items.push(ListItem::External {
                anchor: c
                    .attr("anchor")
                    .ok_or(BodyError::MissingAttribute("anchor"))?
                    .to_owned(),
                display_name: c.child_text_in(NS, "display-name"),
            }),
            "list" => items.push(ListItem::List(read_list(c)?)),
            _ => {}
        }
    }
    Ok(List {
        name: l.attr("name").map(str::to_owned),
        display_name: l.child_text_in(NS, "display-name"),
        items,
    })
}

fn write_list(w: &mut XmlOut, l: &List) {
    match &l.name {
        Some(n) => w.open("list", &[("name", n)]),
        None => w.open("list", &[]),
    }
    w.opt_leaf("display-name", l.display_name.as_deref());
    for i in &l.items {
        match i {
            ListItem::Entry(e) => {
                let mut attrs = vec![("uri", e.uri.as_str())];
                if let Some(cc) = e.copy_control {
                    attrs.push(("cp:copyControl", cc.as_str()));
                }
                if e.anonymize {
                    attrs.push(("cp:anonymize", "true"));
                }
                leaf_or_empty(w, "entry", &attrs, e.display_name.as_deref());
            }
            ListItem::EntryRef {
                reference,
                display_name,
            } => leaf_or_empty(
                w,
                "entry-ref",
                &[("ref", reference)],
                display_name.as_deref(),
            ),
            ListItem::External {
                anchor,
                display_name,
            } => leaf_or_empty(
                w,
                "external",
                &[("anchor", anchor)],
                display_name.as_deref(),
            ),
            ListItem::List(l) => write_list(w, l),
        }
    }
    w.close("list");
}

fn leaf_or_empty(w: &mut XmlOut, name: &str, attrs: &[(&str, &str)], display: Option<&str>) {
    match display {
        Some(d) => {
            w.open(name, attrs);
            w.leaf("display-name", d);
            w.close(name);
        }
        None => w.empty(name, attrs),
    }
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<ResourceLists, BodyError> {
    ResourceLists::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::isc::strategies::{uri, value};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replaces_escaped_per_rfc3261() {
        let e = Entry::with_replaces(
            "sip:bob@biloxi.com",
            &Replaces::new("a84b4c76e66710@pc33", "1928301774", "a6c85cf"),
        );
        assert_eq!(
            e.uri,
            "sip:bob@biloxi.com?Replaces=a84b4c76e66710%40pc33%3Bto-tag%3D1928301774%3Bfrom-tag%3Da6c85cf"
        );
        let mut l = ResourceLists::of(vec![e.clone()]);
        if let Some(ListItem::Entry(x)) = l.lists.get_mut(0).and_then(|l| l.items.get_mut(0)) {
            x.uri.push_str("&Require=replaces");
        }
        let xml = l.to_xml();
        assert!(xml.contains("from-tag%3Da6c85cf&amp;Require=replaces\""));
        let back = ResourceLists::parse(xml.as_bytes()).unwrap();
        let entry = back.entries().first().copied().cloned().unwrap();
        assert_eq!(entry.target(), "sip:bob@biloxi.com");
        assert_eq!(
            entry.replaces(),
            Some(Replaces::new(
                "a84b4c76e66710@pc33",
                "1928301774",
                "a6c85cf"
            ))
        );
    }

    #[test]
    fn reads_the_seed_form() {
        // seed 002 App. M, as printed
        let e = Entry::new(
            "bob@biloxi.com;method=INVITE?Replaces: a84b4c76e66710;to-tag=1928301774;from-tag= a6c85cf",
        );
        assert_eq!(
            e.replaces(),
            Some(Replaces::new("a84b4c76e66710", "1928301774", "a6c85cf"))
        );
        assert_eq!(Entry::new("sip:ted@example.net").replaces(), None);
    }

    fn entry() -> impl Strategy<Value = Entry> {
        (
            uri(),
            proptest::option::of(value()),
            proptest::option::of(prop_oneof![
                Just(CopyControl::To),
                Just(CopyControl::Cc),
                Just(CopyControl::Bcc)
            ]),
            any::<bool>(),
        )
            .prop_map(|(uri, display_name, copy_control, anonymize)| Entry {
                uri,
                display_name,
                copy_control,
                anonymize,
            })
    }

    fn list() -> impl Strategy<Value = List> {
        let item = prop_oneof![
            4 => entry().prop_map(ListItem::Entry),
            1 => (value(), proptest::option::of(value()))
                .prop_map(|(reference, display_name)| ListItem::EntryRef { reference, display_name }),
            1 => (value(), proptest::option::of(value()))
                .prop_map(|(anchor, display_name)| ListItem::External { anchor, display_name }),
        ];
        let leaf = (
            proptest::option::of(value()),
            proptest::option::of(value()),
            proptest::collection::vec(item, 0..4),
        )
            .prop_map(|(name, display_name, items)| List {
                name,
                display_name,
                items,
            });
        leaf.prop_recursive(2, 8, 3, |inner| {
            (
                proptest::option::of(value()),
                proptest::collection::vec(inner.prop_map(ListItem::List), 0..3),
            )
                .prop_map(|(name, items)| List {
                    name,
                    display_name: None,
                    items,
                })
        })
    }

    proptest! {
        #[test]
        fn round_trip(lists in proptest::collection::vec(list(), 0..3)) {
            let r = ResourceLists { lists };
            prop_assert_eq!(ResourceLists::parse(&r.to_bytes()), Ok(r));
        }

        #[test]
        fn replaces_round_trip(
            target in uri(),
            call_id in "[a-zA-Z0-9.!%*_+~-]{1,16}(@[a-zA-Z0-9.-]{1,10})?",
            to_tag in "[a-zA-Z0-9.!%*_+~-]{1,10}",
            from_tag in "[a-zA-Z0-9.!%*_+~-]{1,10}",
            early in any::<bool>(),
        ) {
            let mut rep = Replaces::new(call_id, to_tag, from_tag);
            rep.early_only = early;
            let e = Entry::with_replaces(&target, &rep);
            prop_assert!(!e.uri[target.len()..].contains(['@', ';']));
            let back = ResourceLists::parse(&ResourceLists::of(vec![e]).to_bytes()).unwrap();
            let e = back.entries().first().copied().cloned().unwrap();
            prop_assert_eq!(e.target(), target.as_str());
            prop_assert_eq!(e.replaces(), Some(rep));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), s in "[ -~]{0,64}") {
            let _ = parse(&bytes);
            let _ = Entry::new(s).replaces();
        }
    }
}
