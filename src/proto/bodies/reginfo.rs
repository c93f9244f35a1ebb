//! `application/reginfo+xml` (RFC 3680 §5.3) with the RFC 5628 GRUU elements:
//! what the registrar NOTIFYs for Event: reg, and how a device learns its
//! sibling devices (their `+sip.instance`, GRUUs and names).

use super::BodyError;
use super::xml::{Element, XmlOut, parse_root, parse_u32};

/// The Content-Type of this body.
pub const CONTENT_TYPE: &str = "application/reginfo+xml";
/// RFC 3680 §5.4 namespace.
pub const NS: &str = "urn:ietf:params:xml:ns:reginfo";
/// RFC 5628 namespace of `pub-gruu` / `temp-gruu`.
pub const GRUU_NS: &str = "urn:ietf:params:xml:ns:gruuinfo";

macro_rules! closed_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant,)* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            pub fn parse(v: &str) -> Result<Self, BodyError> {
                match v.trim() {
                    $($text => Ok($name::$variant),)*
                    other => Err(BodyError::BadValue { field: $field, value: other.to_owned() }),
                }
            }

            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
        }
    };
}

closed_enum!(
    /// The document `state` attribute.
    DocState, "reginfo state" { Full = "full", Partial = "partial" }
);
closed_enum!(
    /// `<registration state>` (RFC 3680 §5.3).
    RegistrationState, "registration state" { Init = "init", Active = "active", Terminated = "terminated" }
);
closed_enum!(
    /// `<contact state>`.
    ContactState, "contact state" { Active = "active", Terminated = "terminated" }
);
closed_enum!(
    /// `<contact event>` (RFC 3680 §5.3: what changed).
    ContactEvent, "contact event" {
        Registered = "registered",
        Created = "created",
        Refreshed = "refreshed",
        Shortened = "shortened",
        Expired = "expired",
        Deactivated = "deactivated",
        Probation = "probation",
        Unregistered = "unregistered",
        Rejected = "rejected",
    }
);

/// `<unknown-param name=...>value</unknown-param>`: a Contact parameter the
/// schema does not name, such as `+sip.instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownParam {
    pub name: String,
    /// `None` for a parameter without value (empty element).
    pub value: Option<String>,
}

/// `<gr:temp-gruu uri=... first-cseq=.../>` (RFC 5628 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempGruu {
    pub uri: String,
    pub first_cseq: u32,
}

/// `<contact>`: one registered binding (one device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    pub state: ContactState,
    pub event: ContactEvent,
    pub duration_registered: Option<u32>,
    pub expires: Option<u32>,
    pub retry_after: Option<u32>,
    pub q: Option<String>,
    pub callid: Option<String>,
    pub cseq: Option<u32>,
    pub uri: String,
    /// `<display-name>`: `isc` puts the device name here.
    pub display_name: Option<String>,
    pub unknown_params: Vec<UnknownParam>,
    pub pub_gruu: Option<String>,
    pub temp_gruu: Option<TempGruu>,
}

impl Contact {
    /// An active, registered binding.
    pub fn new(id: impl Into<String>, uri: impl Into<String>) -> Self {
        Contact {
            id: id.into(),
            state: ContactState::Active,
            event: ContactEvent::Registered,
            duration_registered: None,
            expires: None,
            retry_after: None,
            q: None,
            callid: None,
            cseq: None,
            uri: uri.into(),
            display_name: None,
            unknown_params: Vec::new(),
            pub_gruu: None,
            temp_gruu: None,
        }
    }

    /// The value of `+sip.instance` with quotes and `<>` removed
    /// (`urn:uuid:...`).
    pub fn instance_id(&self) -> Option<&str> {
        let v = self
            .unknown_params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case("+sip.instance"))?
            .value
            .as_deref()?
            .trim();
        let v = v.strip_prefix('"').unwrap_or(v);
        let v = v.strip_suffix('"').unwrap_or(v);
        let v = v.strip_prefix('<').unwrap_or(v);
        Some(v.strip_suffix('>').unwrap_or(v))
    }

    /// Sets `+sip.instance` to `"<instance>"` (RFC 5626 §4.1 form).
    pub fn set_instance_id(&mut self, instance: &str) {
        self.unknown_params
            .retain(|p| !p.name.eq_ignore_ascii_case("+sip.instance"));
        self.unknown_params.push(UnknownParam {
            name: "+sip.instance".to_owned(),
            value: Some(format!("\"<{instance}>\"")),
        });
    }
}

/// `<registration>`: the bindings of one AOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub aor: String,
    pub id: String,
    pub state: RegistrationState,
    pub contacts: Vec<Contact>,
}

/// A `<reginfo>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reginfo {
    pub version: u32,
    pub state: DocState,
    pub registrations: Vec<Registration>,
}

fn opt_u32(e: &Element, name: &'static str) -> Result<Option<u32>, BodyError> {
    e.attr(name).map(|v| parse_u32(name, v)).transpose()
}

fn req<'a>(e: &'a Element, name: &'static str) -> Result<&'a str, BodyError> {
    e.attr(name).ok_or(BodyError::MissingAttribute(name))
}

impl Reginfo {
    /// Reads a document; unknown elements are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let root = parse_root(bytes, "reginfo")?;
        let mut registrations = Vec::new();
        for r in root.children_in(NS, "registration") {
            let mut contacts = Vec::new();
            for c in r.children_in(NS, "contact") {
                contacts.push(read_contact(c)?);
            }
            registrations.push(Registration {
                aor: req(r, "aor")?.to_owned(),
                id: req(r, "id")?.to_owned(),
                state: RegistrationState::parse(req(r, "state")?)?,
                contacts,
            });
        }
        Ok(Reginfo {
            version: parse_u32("version", req(&root, "version")?)?,
            state: DocState::parse(req(&root, "state")?)?,
            registrations,
        })
    }

    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut w = XmlOut::new();
        let version = self.version.to_string();
        let gruu = self
            .registrations
            .iter()
            .flat_map(|r| &r.contacts)
            .any(|c| c.pub_gruu.is_some() || c.temp_gruu.is_some());
        let mut attrs = vec![("xmlns", NS)];
        if gruu {
            attrs.push(("xmlns:gr", GRUU_NS));
        }
        attrs.extend([
            ("version", version.as_str()),
            ("state", self.state.as_str()),
        ]);
        w.open("reginfo", &attrs);
        for r in &self.registrations {
            w.open(
                "registration",
                &[
                    ("aor", r.aor.as_str()),
                    ("id", r.id.as_str()),
                    ("state", r.state.as_str()),
                ],
            );
            for c in &r.contacts {
                write_contact(&mut w, c);
            }
            w.close("registration");
        }
        w.close("reginfo");
        w.finish()
    }

    /// The body bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_xml().into_bytes()
    }

    /// Applies a notification (RFC 3680 §4.4 / §5.2): `full` replaces, a
    /// `partial` must carry version + 1 and replaces the registrations it
    /// names (contacts keyed by `id`, `terminated` ones removed).
    pub fn apply(&mut self, n: &Reginfo) -> Result<(), BodyError> {
        if n.version <= self.version {
            return Err(BodyError::StaleVersion {
                have: self.version,
                got: n.version,
            });
        }
        if n.state == DocState::Full {
            *self = n.clone();
            self.prune();
            return Ok(());
        }
        if n.version != self.version.saturating_add(1) {
            return Err(BodyError::VersionGap {
                have: self.version,
                got: n.version,
            });
        }
        self.version = n.version;
        for r in &n.registrations {
            match self.registrations.iter_mut().find(|m| m.id == r.id) {
                None => self.registrations.push(r.clone()),
                Some(mine) => {
                    mine.state = r.state;
                    mine.aor.clone_from(&r.aor);
                    for c in &r.contacts {
                        match mine.contacts.iter_mut().find(|m| m.id == c.id) {
                            Some(slot) => *slot = c.clone(),
                            None => mine.contacts.push(c.clone()),
                        }
                    }
                }
            }
        }
        self.prune();
        Ok(())
    }

    /// Drops terminated contacts and registrations.
    fn prune(&mut self) {
        for r in &mut self.registrations {
            r.contacts.retain(|c| c.state == ContactState::Active);
        }
        self.registrations
            .retain(|r| r.state != RegistrationState::Terminated);
    }

    /// Active contacts of `aor` (a device's siblings, itself included).
    pub fn active_contacts(&self, aor: &str) -> Vec<&Contact> {
        self.registrations
            .iter()
            .filter(|r| r.aor == aor)
            .flat_map(|r| &r.contacts)
            .filter(|c| c.state == ContactState::Active)
            .collect()
    }
}

fn read_contact(c: &Element) -> Result<Contact, BodyError> {
    let unknown_params = c
        .children_in(NS, "unknown-param")
        .map(|p| {
            Ok(UnknownParam {
                name: req(p, "name")?.to_owned(),
                value: if p.children.is_empty() {
                    None
                } else {
                    Some(p.text())
                },
            })
        })
        .collect::<Result<Vec<_>, BodyError>>()?;
    let temp_gruu = match c.child_in(GRUU_NS, "temp-gruu") {
        Some(t) => Some(TempGruu {
            uri: req(t, "uri")?.to_owned(),
            first_cseq: parse_u32("first-cseq", req(t, "first-cseq")?)?,
        }),
        None => None,
    };
    let pub_gruu = match c.child_in(GRUU_NS, "pub-gruu") {
        Some(p) => Some(req(p, "uri")?.to_owned()),
        None => None,
    };
    Ok(Contact {
        id: req(c, "id")?.to_owned(),
        state: ContactState::parse(req(c, "state")?)?,
        event: ContactEvent::parse(req(c, "event")?)?,
        duration_registered: opt_u32(c, "duration-registered")?,
        expires: opt_u32(c, "expires")?,
        retry_after: opt_u32(c, "retry-after")?,
        q: c.attr("q").map(str::to_owned),
        callid: c.attr("callid").map(str::to_owned),
        cseq: opt_u32(c, "cseq")?,
        uri: c
            .child_text_in(NS, "uri")
            .ok_or(BodyError::MissingElement("uri"))?,
        display_name: c.child_text_in(NS, "display-name"),
        unknown_params,
        pub_gruu,
        temp_gruu,
    })
}

fn write_contact(w: &mut XmlOut, c: &Contact) {
    let nums = [
        ("duration-registered", c.duration_registered),
        ("expires", c.expires),
        ("retry-after", c.retry_after),
    ]
    .map(|(k, v)| (k, v.map(|v| v.to_string())));
    let cseq = c.cseq.map(|v| v.to_string());
    let mut attrs = vec![
        ("id", c.id.as_str()),
        ("state", c.state.as_str()),
        ("event", c.event.as_str()),
    ];
    for (k, v) in &nums {
        if let Some(v) = v {
            attrs.push((k, v.as_str()));
        }
    }
    if let Some(q) = &c.q {
        attrs.push(("q", q));
    }
    if let Some(id) = &c.callid {
        attrs.push(("callid", id));
    }
    if let Some(cs) = &cseq {
        attrs.push(("cseq", cs));
    }
    w.open("contact", &attrs);
    w.leaf("uri", &c.uri);
    w.opt_leaf("display-name", c.display_name.as_deref());
    for p in &c.unknown_params {
        match &p.value {
            Some(v) => w.leaf_attrs("unknown-param", &[("name", &p.name)], v),
            None => w.empty("unknown-param", &[("name", &p.name)]),
        }
    }
    if let Some(g) = &c.pub_gruu {
        w.empty("gr:pub-gruu", &[("uri", g)]);
    }
    if let Some(t) = &c.temp_gruu {
        let cseq = t.first_cseq.to_string();
        w.empty("gr:temp-gruu", &[("uri", &t.uri), ("first-cseq", &cseq)]);
    }
    w.close("contact");
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<Reginfo, BodyError> {
    Reginfo::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::isc::strategies::{uri, value};
    use super::*;
    use proptest::prelude::*;

    fn contact() -> impl Strategy<Value = Contact> {
        (
            (
                "[a-z0-9]{1,8}",
                proptest::sample::select(ContactState::ALL),
                proptest::sample::select(ContactEvent::ALL),
            ),
            proptest::array::uniform3(proptest::option::of(any::<u32>())),
            (
                proptest::option::of("0(\\.[0-9]{1,3})?|1(\\.0)?"),
                proptest::option::of(value()),
                proptest::option::of(any::<u32>()),
            ),
            (uri(), proptest::option::of(value())),
            proptest::collection::vec(("[+a-z.]{1,12}", proptest::option::of(value())), 0..3),
            (
                proptest::option::of(uri()),
                proptest::option::of((uri(), any::<u32>())),
            ),
        )
            .prop_map(
                |((id, state, event), [d, e, r], (q, callid, cseq), (u, dn), ups, (pg, tg))| {
                    Contact {
                        id,
                        state,
                        event,
                        duration_registered: d,
                        expires: e,
                        retry_after: r,
                        q,
                        callid,
                        cseq,
                        uri: u,
                        display_name: dn,
                        unknown_params: ups
                            .into_iter()
                            .map(|(name, value)| UnknownParam { name, value })
                            .collect(),
                        pub_gruu: pg,
                        temp_gruu: tg.map(|(uri, first_cseq)| TempGruu { uri, first_cseq }),
                    }
                },
            )
    }

    fn reginfo() -> impl Strategy<Value = Reginfo> {
        let reg = (
            uri(),
            "[a-z0-9]{1,6}",
            proptest::sample::select(RegistrationState::ALL),
            proptest::collection::vec(contact(), 0..3),
        )
            .prop_map(|(aor, id, state, contacts)| Registration {
                aor,
                id,
                state,
                contacts,
            });
        (
            any::<u32>(),
            proptest::sample::select(DocState::ALL),
            proptest::collection::vec(reg, 0..3),
        )
            .prop_map(|(version, state, registrations)| Reginfo {
                version,
                state,
                registrations,
            })
    }

    #[test]
    fn instance_and_siblings() {
        let mut a = Contact::new("1", "sip:alice@192.0.2.1");
        a.set_instance_id("urn:uuid:a1");
        a.display_name = Some("Alice TV".into());
        let mut full = Reginfo {
            version: 0,
            state: DocState::Full,
            registrations: vec![Registration {
                aor: "sip:alice@isc.local".into(),
                id: "r1".into(),
                state: RegistrationState::Active,
                contacts: vec![a],
            }],
        };
        let back = Reginfo::parse(&full.to_bytes()).unwrap();
        assert_eq!(
            back.active_contacts("sip:alice@isc.local")[0].instance_id(),
            Some("urn:uuid:a1")
        );

        let mut b = Contact::new("2", "sip:alice@192.0.2.2");
        b.event = ContactEvent::Created;
        let p = Reginfo {
            version: 1,
            state: DocState::Partial,
            registrations: vec![Registration {
                contacts: vec![b],
                ..full.registrations[0].clone()
            }],
        };
        full.apply(&p).unwrap();
        assert_eq!(full.active_contacts("sip:alice@isc.local").len(), 2);
        let mut gone = Contact::new("1", "sip:alice@192.0.2.1");
        gone.state = ContactState::Terminated;
        gone.event = ContactEvent::Unregistered;
        let p2 = Reginfo {
            version: 2,
            registrations: vec![Registration {
                contacts: vec![gone],
                ..full.registrations[0].clone()
            }],
            ..p.clone()
        };
        full.apply(&p2).unwrap();
        assert_eq!(full.active_contacts("sip:alice@isc.local").len(), 1);
        assert_eq!(
            full.apply(&p2),
            Err(BodyError::StaleVersion { have: 2, got: 2 })
        );
    }

    proptest! {
        #[test]
        fn round_trip(r in reginfo()) {
            prop_assert_eq!(Reginfo::parse(&r.to_bytes()), Ok(r));
        }

        #[test]
        fn apply_never_panics(a in reginfo(), b in reginfo()) {
            let mut s = a;
            let _ = s.apply(&b);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
