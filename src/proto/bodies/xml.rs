//! A small, hardened XML reader on quick-xml: the document becomes an
//! [`Element`] tree (local names, prefixes and resolved namespace URIs) the
//! body readers walk by local name.
//!
//! Security: a `<!DOCTYPE` is refused ([`BodyError::DtdRefused`]), so no entity
//! is ever declared or expanded; only the five predefined entities and
//! character references are resolved; input is capped at [`MAX_XML_BYTES`] and
//! nesting at [`MAX_XML_DEPTH`].

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};

use super::BodyError;

/// Largest XML body accepted.
pub const MAX_XML_BYTES: usize = 256 * 1024;
/// Deepest element nesting accepted.
pub const MAX_XML_DEPTH: usize = 32;

/// One attribute; `prefix` is kept for writers, readers match on `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub prefix: Option<String>,
    pub name: String,
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An element: local name, prefix, resolved namespace, attributes and children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub prefix: Option<String>,
    pub name: String,
    /// The namespace URI the prefix (or the default namespace) resolves to;
    /// `None` when unbound.
    pub ns: Option<String>,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

impl Element {
    /// The value of the attribute with this local name (any prefix but `xmlns`).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == local && a.prefix.as_deref() != Some("xmlns"))
            .map(|a| a.value.as_str())
    }

    /// Child elements in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Child elements with this local name.
    pub fn children_named<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a Element> {
        self.elements().filter(move |e| e.name == local)
    }

    /// Whether this element is in `ns` or in no namespace (readers of RFC
    /// bodies skip elements of other namespaces: extensions).
    pub fn in_ns(&self, ns: &str) -> bool {
        self.ns.as_deref().is_none_or(|n| n == ns)
    }

    /// Child elements with this local name in `ns` or in none.
    pub fn children_in<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> {
        self.children_named(local).filter(move |e| e.in_ns(ns))
    }

    /// First child with this local name in `ns` or in none.
    pub fn child_in(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == local && e.in_ns(ns))
    }

    /// Trimmed text of [`Element::child_in`].
    pub fn child_text_in(&self, ns: &str, local: &str) -> Option<String> {
        self.child_in(ns, local).map(Element::text)
    }

    /// First child element with this local name.
    pub fn child(&self, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == local)
    }

    /// First element with this local name anywhere below (depth first).
    pub fn descendant(&self, local: &str) -> Option<&Element> {
        for e in self.elements() {
            if e.name == local {
                return Some(e);
            }
            if let Some(found) = e.descendant(local) {
                return Some(found);
            }
        }
        None
    }

    /// The concatenated text of this element's own text nodes, trimmed.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s.trim().to_owned()
    }

    /// Trimmed text of the first child with this local name.
    pub fn child_text(&self, local: &str) -> Option<String> {
        self.child(local).map(Element::text)
    }
}

fn xml_err(e: impl std::fmt::Display) -> BodyError {
    BodyError::Xml(e.to_string())
}

fn split_qname(s: &str) -> Result<(Option<String>, String), BodyError> {
    Ok(match s.split_once(':') {
        Some((p, l)) => (Some(p.to_owned()), l.to_owned()),
        None => (None, s.to_owned()),
    })
}

/// The namespace `prefix` is bound to, looking at `own` then the open
/// elements from the innermost out (`xmlns=""` unbinds the default).
fn resolve(prefix: Option<&str>, own: &Element, open: &[Element]) -> Option<String> {
    if prefix == Some("xml") {
        return Some("http://www.w3.org/XML/1998/namespace".to_owned());
    }
    for el in std::iter::once(own).chain(open.iter().rev()) {
        let decl = el.attrs.iter().find(|a| match prefix {
            None => a.prefix.is_none() && a.name == "xmlns",
            Some(p) => a.prefix.as_deref() == Some("xmlns") && a.name == p,
        });
        if let Some(a) = decl {
            return (!a.value.is_empty()).then(|| a.value.clone());
        }
    }
    None
}

fn start_element(e: &BytesStart<'_>, open: &[Element]) -> Result<Element, BodyError> {
    let mut el = read_start(e)?;
    el.ns = resolve(el.prefix.as_deref(), &el, open);
    Ok(el)
}

fn read_start(e: &BytesStart<'_>) -> Result<Element, BodyError> {
    let (prefix, name) = split_qname(e.name().as_ref())?;
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(xml_err)?;
        let (prefix, name) = split_qname(a.key.as_ref())?;
        let value =
            a.normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| match err {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                    ) => BodyError::UnknownEntity(name),
                    other => xml_err(other),
                })?
                .into_owned();
        attrs.push(Attr {
            prefix,
            name,
            value,
        });
    }
    Ok(Element {
        prefix,
        name,
        ns: None,
        attrs,
        children: Vec::new(),
    })
}

/// Parses a whole XML document into its root element. Never panics.
pub fn parse_document(bytes: &[u8]) -> Result<Element, BodyError> {
    if bytes.len() > MAX_XML_BYTES {
        return Err(BodyError::TooLarge {
            len: bytes.len(),
            limit: MAX_XML_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| BodyError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(xml_err)?;
        match event {
            Event::DocType(_) => return Err(BodyError::DtdRefused),
            Event::Start(e) => {
                if root.is_some() {
                    return Err(BodyError::Xml("content after the root element".into()));
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(BodyError::TooDeep {
                        limit: MAX_XML_DEPTH,
                    });
                }
                let el = start_element(&e, &stack)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = start_element(&e, &stack)?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| BodyError::Xml("unmatched end tag".into()))?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => {
                push_text(&mut stack, &c)?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(xml_err)? {
                    Some(ch) => ch.to_string(),
                    None => {
                        let name: &str = &r;
                        resolve_predefined_entity(name)
                            .ok_or_else(|| BodyError::UnknownEntity(name.to_owned()))?
                            .to_owned()
                    }
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(BodyError::Xml("unclosed element at end of document".into()));
    }
    root.ok_or(BodyError::NoRoot)
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<(), BodyError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None if root.is_none() => *root = Some(el),
        None => return Err(BodyError::Xml("more than one root element".into())),
    }
    Ok(())
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), BodyError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(prev)) = parent.children.last_mut() {
                prev.push_str(s);
            } else {
                parent.children.push(Node::Text(s.to_owned()));
            }
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(BodyError::Xml("text outside the root element".into())),
    }
}

/// Parses and checks the root's local name.
pub fn parse_root(bytes: &[u8], expected: &'static str) -> Result<Element, BodyError> {
    let root = parse_document(bytes)?;
    if root.name != expected {
        return Err(BodyError::WrongRoot {
            expected,
            found: root.name,
        });
    }
    Ok(root)
}

/// A minimal XML printer: indented elements, escaped text and attributes.
#[derive(Debug, Default)]
pub struct XmlOut {
    buf: String,
    depth: usize,
}

impl XmlOut {
    /// Starts a document with the XML declaration.
    pub fn new() -> Self {
        XmlOut {
            buf: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".to_owned(),
            depth: 0,
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.buf.push_str("  ");
        }
    }

    fn tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.buf.push('<');
        self.buf.push_str(name);
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("=\"");
            self.buf.push_str(&escape(*v));
            self.buf.push('"');
        }
    }

    /// `<name attrs>` and one level deeper.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.tag(name, attrs);
        self.buf.push_str(">\n");
        self.depth += 1;
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    /// `<name attrs/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.tag(name, attrs);
        self.buf.push_str("/>\n");
    }

    /// `<name attrs>text</name>`.
    pub fn leaf_attrs(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.tag(name, attrs);
        self.buf.push('>');
        self.buf.push_str(&escape(text));
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    /// `<name>text</name>`.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.leaf_attrs(name, &[], text);
    }

    /// `<name>text</name>` when `text` is present.
    pub fn opt_leaf(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(name, t);
        }
    }

    /// The document text.
    pub fn finish(self) -> String {
        self.buf
    }
}

/// Reads `yes`/`no` liberally (also `true`/`false`/`1`/`0`, any case).
pub fn parse_bool(field: &'static str, v: &str) -> Result<bool, BodyError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(BodyError::BadValue {
            field,
            value: v.to_owned(),
        }),
    }
}

/// Reads an unsigned number.
pub fn parse_u32(field: &'static str, v: &str) -> Result<u32, BodyError> {
    v.trim().parse().map_err(|_| BodyError::BadValue {
        field,
        value: v.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn namespaces_resolve() {
        let e = parse_document(
            br#"<a xmlns="urn:a" xmlns:b="urn:b"><x/><b:y/><z xmlns=""/><w xmlns="urn:w"><v/></w><c:u/></a>"#,
        )
        .unwrap();
        let ns: Vec<_> = e.elements().map(|c| c.ns.as_deref()).collect();
        assert_eq!(e.ns.as_deref(), Some("urn:a"));
        assert_eq!(
            ns,
            [Some("urn:a"), Some("urn:b"), None, Some("urn:w"), None]
        );
        let v = e.child("w").and_then(|w| w.child("v")).unwrap();
        assert_eq!(v.ns.as_deref(), Some("urn:w"));
        assert_eq!(e.children_in("urn:a", "y").count(), 0);
        assert!(e.child_in("urn:a", "z").is_some());
    }

    #[test]
    fn doctype_is_refused() {
        let doc = b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x \"boom\">]><a>&x;</a>";
        assert_eq!(parse_document(doc), Err(BodyError::DtdRefused));
    }

    #[test]
    fn unknown_entity_is_refused() {
        assert_eq!(
            parse_document(b"<a>&x;</a>"),
            Err(BodyError::UnknownEntity("x".into()))
        );
        assert_eq!(
            parse_document(b"<a b=\"&x;\"/>"),
            Err(BodyError::UnknownEntity("x".into()))
        );
    }

    #[test]
    fn predefined_and_char_refs_resolve() {
        let e = parse_document(b"<a b=\"&amp;&#65;\">x&lt;&#x42;<![CDATA[<c>]]></a>").unwrap();
        assert_eq!(e.attr("b"), Some("&A"));
        assert_eq!(e.text(), "x<B<c>");
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1) + &"</a>".repeat(MAX_XML_DEPTH + 1);
        assert_eq!(
            parse_document(deep.as_bytes()),
            Err(BodyError::TooDeep {
                limit: MAX_XML_DEPTH
            })
        );
        let big = vec![b' '; MAX_XML_BYTES + 1];
        assert!(matches!(
            parse_document(&big),
            Err(BodyError::TooLarge { .. })
        ));
    }

    #[test]
    fn mismatched_and_trailing_are_errors() {
        assert!(parse_document(b"<a></b>").is_err());
        assert!(parse_document(b"<a/><b/>").is_err());
        assert!(parse_document(b"<a>").is_err());
        assert_eq!(parse_document(b""), Err(BodyError::NoRoot));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_document(&bytes);
        }

        #[test]
        fn never_panics_on_xmlish(s in "[<>/a-c=\"'&;#x0-9 !\\[\\]?-]{0,64}") {
            let _ = parse_document(s.as_bytes());
        }
    }
}
