//! `application/conference-info+xml` (RFC 4575): the conference state NOTIFY
//! body, the subset IM uses (seed 004 7.2.2.10), plus the OMA `yourown`
//! attribute on `<user>` and [`ConferenceInfo::apply`] for partial
//! notifications (RFC 4575 §4.6).
//!
//! `yourown`: seed 004 7.1.x / 7.2.2.10 say the `<user>` element gets a
//! `yourown` attribute "as defined in Appendix N", which the seeds do not
//! carry, so neither the value form nor the namespace is known. `isc` writes
//! `isc:yourown="true"` with `xmlns:isc="urn:isc:params:xml:ns:isc"` (an
//! attribute from another namespace, as the RFC 4575 schema allows) and reads
//! any attribute whose local name is `yourown`, in any namespace or none, with
//! a value of `true`/`yes`/`1` (or empty) as set.

use super::BodyError;
use super::isc::ISC_NS;
use super::xml::{Element, XmlOut, parse_root, parse_u32};

/// The Content-Type of this body.
pub const CONTENT_TYPE: &str = "application/conference-info+xml";
/// RFC 4575 §5 namespace.
pub const NS: &str = "urn:ietf:params:xml:ns:conference-info";

/// The `state` attribute of the document and its elements (RFC 4575 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ElementState {
    #[default]
    Full,
    Partial,
    Deleted,
}

impl ElementState {
    pub fn as_str(self) -> &'static str {
        match self {
            ElementState::Full => "full",
            ElementState::Partial => "partial",
            ElementState::Deleted => "deleted",
        }
    }

    fn read(e: &Element) -> Result<Self, BodyError> {
        match e.attr("state").map(str::trim) {
            None | Some("full") => Ok(ElementState::Full),
            Some("partial") => Ok(ElementState::Partial),
            Some("deleted") => Ok(ElementState::Deleted),
            Some(v) => Err(BodyError::BadValue {
                field: "state",
                value: v.to_owned(),
            }),
        }
    }
}

macro_rules! token_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A value this version does not know, kept as written.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }

            pub fn parse(v: &str) -> Self {
                match v.trim() {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }

            /// The values this version knows.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),*];
        }
    };
}

token_enum!(
    /// `<status>` of an endpoint (RFC 4575 §5.7.3).
    EndpointStatus {
        Connected = "connected",
        Disconnected = "disconnected",
        OnHold = "on-hold",
        MutedViaFocus = "muted-via-focus",
        Pending = "pending",
        Alerting = "alerting",
        DialingIn = "dialing-in",
        DialingOut = "dialing-out",
        Disconnecting = "disconnecting",
    }
);

token_enum!(
    /// `<joining-method>` (RFC 4575 §5.7.4).
    JoiningMethod {
        DialedIn = "dialed-in",
        DialedOut = "dialed-out",
        FocusOwner = "focus-owner",
    }
);

token_enum!(
    /// `<disconnection-method>` (RFC 4575 §5.7.6).
    DisconnectionMethod {
        Departed = "departed",
        Booted = "booted",
        Failed = "failed",
        Busy = "busy",
    }
);

/// `<conference-description>`: the parts IM uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConferenceDescription {
    pub display_text: Option<String>,
    pub subject: Option<String>,
}

/// `<endpoint>`: one device of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub entity: String,
    pub state: ElementState,
    pub display_text: Option<String>,
    pub status: Option<EndpointStatus>,
    pub joining_method: Option<JoiningMethod>,
    pub disconnection_method: Option<DisconnectionMethod>,
}

impl Endpoint {
    /// A full endpoint with a status.
    pub fn new(entity: impl Into<String>, status: EndpointStatus) -> Self {
        Endpoint {
            entity: entity.into(),
            state: ElementState::Full,
            display_text: None,
            status: Some(status),
            joining_method: None,
            disconnection_method: None,
        }
    }
}

/// `<user>`: one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub entity: String,
    pub state: ElementState,
    pub display_text: Option<String>,
    /// OMA `yourown`: this entry is the receiver's own (seed 004 7.2.2.10 2.a.v).
    pub yourown: bool,
    pub endpoints: Vec<Endpoint>,
}

impl User {
    /// A full user entry with no endpoint.
    pub fn new(entity: impl Into<String>) -> Self {
        User {
            entity: entity.into(),
            state: ElementState::Full,
            display_text: None,
            yourown: false,
            endpoints: Vec::new(),
        }
    }

    /// The status of the first endpoint, the one IM sends (seed 004 7.2.2.10 2.c).
    pub fn status(&self) -> Option<&EndpointStatus> {
        self.endpoints.first().and_then(|e| e.status.as_ref())
    }
}

/// A `<conference-info>` document, full or partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceInfo {
    pub entity: String,
    pub state: ElementState,
    pub version: u32,
    pub description: Option<ConferenceDescription>,
    pub users: Vec<User>,
}

impl ConferenceInfo {
    /// An empty full document.
    pub fn new(entity: impl Into<String>, version: u32) -> Self {
        ConferenceInfo {
            entity: entity.into(),
            state: ElementState::Full,
            version,
            description: None,
            users: Vec::new(),
        }
    }

    /// Reads a document; unknown elements and attributes are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let root = parse_root(bytes, "conference-info")?;
        let entity = root
            .attr("entity")
            .ok_or(BodyError::MissingAttribute("entity"))?
            .to_owned();
        let version = parse_u32(
            "version",
            root.attr("version")
                .ok_or(BodyError::MissingAttribute("version"))?,
        )?;
        let description =
            root.child_in(NS, "conference-description")
                .map(|d| ConferenceDescription {
                    display_text: d.child_text_in(NS, "display-text"),
                    subject: d.child_text_in(NS, "subject"),
                });
        let mut users = Vec::new();
        if let Some(us) = root.child_in(NS, "users") {
            for u in us.children_in(NS, "user") {
                users.push(read_user(u)?);
            }
        }
        Ok(ConferenceInfo {
            entity,
            state: ElementState::read(&root)?,
            version,
            description,
            users,
        })
    }

    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut w = XmlOut::new();
        let version = self.version.to_string();
        let yourown_used = self.users.iter().any(|u| u.yourown);
        let mut attrs = vec![("xmlns", NS)];
        if yourown_used {
            attrs.push(("xmlns:isc", ISC_NS));
        }
        attrs.extend([
            ("entity", self.entity.as_str()),
            ("state", self.state.as_str()),
            ("version", version.as_str()),
        ]);
        w.open("conference-info", &attrs);
        if let Some(d) = &self.description {
            w.open("conference-description", &[]);
            w.opt_leaf("display-text", d.display_text.as_deref());
            w.opt_leaf("subject", d.subject.as_deref());
            w.close("conference-description");
        }
        if !self.users.is_empty() {
            w.open("users", &[]);
            for u in &self.users {
                let mut attrs = vec![("entity", u.entity.as_str()), ("state", u.state.as_str())];
                if u.yourown {
                    attrs.push(("isc:yourown", "true"));
                }
                w.open("user", &attrs);
                w.opt_leaf("display-text", u.display_text.as_deref());
                for e in &u.endpoints {
                    w.open(
                        "endpoint",
                        &[("entity", e.entity.as_str()), ("state", e.state.as_str())],
                    );
                    w.opt_leaf("display-text", e.display_text.as_deref());
                    w.opt_leaf("status", e.status.as_ref().map(EndpointStatus::as_str));
                    w.opt_leaf(
                        "joining-method",
                        e.joining_method.as_ref().map(JoiningMethod::as_str),
                    );
                    w.opt_leaf(
                        "disconnection-method",
                        e.disconnection_method
                            .as_ref()
                            .map(DisconnectionMethod::as_str),
                    );
                    w.close("endpoint");
                }
                w.close("user");
            }
            w.close("users");
        }
        w.close("conference-info");
        w.finish()
    }

    /// The body bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_xml().into_bytes()
    }

    /// The user marked `yourown`, if any.
    pub fn own_user(&self) -> Option<&User> {
        self.users.iter().find(|u| u.yourown)
    }

    /// Applies a notification to this state (RFC 4575 §4.6):
    /// a `full` document replaces the state; a `partial` one must carry the
    /// next version and is merged element by element (keyed by `entity`:
    /// `deleted` removes, `full` replaces, `partial` updates what it carries).
    /// A version not above ours is [`BodyError::StaleVersion`] (ignore it); a
    /// partial that skips a version is [`BodyError::VersionGap`] (re-subscribe).
    pub fn apply(&mut self, n: &ConferenceInfo) -> Result<(), BodyError> {
        // RFC 4575 §4.6: versions increase by one per notification
        if n.version <= self.version {
            return Err(BodyError::StaleVersion {
                have: self.version,
                got: n.version,
            });
        }
        match n.state {
            ElementState::Full | ElementState::Deleted => {
                *self = n.clone();
                return Ok(());
            }
            ElementState::Partial => {}
        }
        if n.version != self.version.saturating_add(1) {
            return Err(BodyError::VersionGap {
                have: self.version,
                got: n.version,
            });
        }
        self.version = n.version;
        // RFC 4575 §4.6: an element without a `state` attribute
        // (conference-description) replaces the previous one when present
        if n.description.is_some() {
            self.description.clone_from(&n.description);
        }
        for u in &n.users {
            let pos = self.users.iter().position(|m| m.entity == u.entity);
            match (u.state, pos) {
                (ElementState::Deleted, Some(i)) => {
                    self.users.remove(i);
                }
                (ElementState::Deleted, None) => {}
                (ElementState::Full, Some(i)) => {
                    if let Some(slot) = self.users.get_mut(i) {
                        *slot = full(u);
                    }
                }
                (_, None) => self.users.push(full(u)),
                (ElementState::Partial, Some(i)) => {
                    if let Some(slot) = self.users.get_mut(i) {
                        merge_user(slot, u);
                    }
                }
            }
        }
        Ok(())
    }

    /// The partial notification (version `version`) that turns `old` into
    /// `new`, both full states: users gone are `deleted`, users new or changed
    /// are sent `full`, the description when it changed (RFC 4575 §4.6).
    pub fn diff(old: &ConferenceInfo, new: &ConferenceInfo, version: u32) -> ConferenceInfo {
        let mut users: Vec<User> = old
            .users
            .iter()
            .filter(|o| !new.users.iter().any(|u| u.entity == o.entity))
            .map(|o| User {
                state: ElementState::Deleted,
                display_text: None,
                yourown: false,
                endpoints: Vec::new(),
                entity: o.entity.clone(),
            })
            .collect();
        for u in &new.users {
            if old.users.iter().find(|o| o.entity == u.entity) != Some(u) {
                users.push(full(u));
            }
        }
        ConferenceInfo {
            entity: new.entity.clone(),
            state: ElementState::Partial,
            version,
            description: (old.description != new.description)
                .then(|| new.description.clone().unwrap_or_default()),
            users,
        }
    }

    /// A copy for one subscriber: `yourown` set on its user entry only
    /// (seed 004 7.2.2.10 2.a.v).
    pub fn for_subscriber(&self, entity: &str) -> ConferenceInfo {
        let mut c = self.clone();
        for u in &mut c.users {
            u.yourown = u.entity == entity;
        }
        c
    }

    /// A full state from a full document ([`BodyError::PartialWithoutFull`]
    /// for a partial one).
    pub fn from_first(n: &ConferenceInfo) -> Result<Self, BodyError> {
        match n.state {
            ElementState::Partial => Err(BodyError::PartialWithoutFull),
            _ => Ok(n.clone()),
        }
    }
}

/// A user as kept in a full state: its state and its endpoints' become `full`.
fn full(u: &User) -> User {
    let mut u = u.clone();
    u.state = ElementState::Full;
    u.endpoints.retain(|e| e.state != ElementState::Deleted);
    for e in &mut u.endpoints {
        e.state = ElementState::Full;
    }
    u
}

fn merge_user(mine: &mut User, u: &User) {
    if u.display_text.is_some() {
        mine.display_text.clone_from(&u.display_text);
    }
    if u.yourown {
        mine.yourown = true;
    }
    for e in &u.endpoints {
        let pos = mine.endpoints.iter().position(|m| m.entity == e.entity);
        match (e.state, pos) {
            (ElementState::Deleted, Some(i)) => {
                mine.endpoints.remove(i);
            }
            (ElementState::Deleted, None) => {}
            (ElementState::Full, Some(i)) => {
                if let Some(slot) = mine.endpoints.get_mut(i) {
                    *slot = e.clone();
                }
            }
            (_, None) => {
                let mut e = e.clone();
                e.state = ElementState::Full;
                mine.endpoints.push(e);
            }
            (ElementState::Partial, Some(i)) => {
                if let Some(slot) = mine.endpoints.get_mut(i) {
                    if e.display_text.is_some() {
                        slot.display_text.clone_from(&e.display_text);
                    }
                    if e.status.is_some() {
                        slot.status.clone_from(&e.status);
                    }
                    if e.joining_method.is_some() {
                        slot.joining_method.clone_from(&e.joining_method);
                    }
                    if e.disconnection_method.is_some() {
                        slot.disconnection_method
                            .clone_from(&e.disconnection_method);
                    }
                }
            }
        }
    }
}

fn read_user(u: &Element) -> Result<User, BodyError> {
    let mut endpoints = Vec::new();
    for e in u.children_in(NS, "endpoint") {
        endpoints.push(Endpoint {
            entity: e.attr("entity").unwrap_or_default().to_owned(),
            state: ElementState::read(e)?,
            display_text: e.child_text_in(NS, "display-text"),
            status: e
                .child_text_in(NS, "status")
                .map(|s| EndpointStatus::parse(&s)),
            joining_method: e
                .child_text_in(NS, "joining-method")
                .map(|s| JoiningMethod::parse(&s)),
            disconnection_method: e
                .child_text_in(NS, "disconnection-method")
                .map(|s| DisconnectionMethod::parse(&s)),
        });
    }
    let yourown = u.attr("yourown").is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "true" | "yes" | "1"
        )
    });
    Ok(User {
        entity: u
            .attr("entity")
            .ok_or(BodyError::MissingAttribute("entity"))?
            .to_owned(),
        state: ElementState::read(u)?,
        display_text: u.child_text_in(NS, "display-text"),
        yourown,
        endpoints,
    })
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<ConferenceInfo, BodyError> {
    ConferenceInfo::parse(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::isc::strategies::{uri, value};
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = ElementState> {
        prop_oneof![
            Just(ElementState::Full),
            Just(ElementState::Partial),
            Just(ElementState::Deleted)
        ]
    }

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        (
            uri(),
            state(),
            proptest::option::of(value()),
            proptest::option::of(proptest::sample::select(EndpointStatus::KNOWN)),
            proptest::option::of(proptest::sample::select(JoiningMethod::KNOWN)),
            proptest::option::of(proptest::sample::select(DisconnectionMethod::KNOWN)),
        )
            .prop_map(|(entity, state, display_text, status, jm, dm)| Endpoint {
                entity,
                state,
                display_text,
                status,
                joining_method: jm,
                disconnection_method: dm,
            })
    }

    pub(crate) fn doc() -> impl Strategy<Value = ConferenceInfo> {
        let user = (
            uri(),
            state(),
            proptest::option::of(value()),
            any::<bool>(),
            proptest::collection::vec(endpoint(), 0..3),
        )
            .prop_map(|(entity, state, display_text, yourown, endpoints)| User {
                entity,
                state,
                display_text,
                yourown,
                endpoints,
            });
        (
            uri(),
            state(),
            any::<u32>(),
            proptest::option::of(
                (proptest::option::of(value()), proptest::option::of(value())).prop_map(
                    |(display_text, subject)| ConferenceDescription {
                        display_text,
                        subject,
                    },
                ),
            ),
            proptest::collection::vec(user, 0..4),
        )
            .prop_map(
                |(entity, state, version, description, users)| ConferenceInfo {
                    entity,
                    state,
                    version,
                    description,
                    users,
                },
            )
    }

    fn user(entity: &str, status: EndpointStatus) -> User {
        let mut u = User::new(entity);
        u.endpoints.push(Endpoint::new(entity, status));
        u
    }

    #[test]
    fn yourown_any_prefix() {
        let doc =
            br#"<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" xmlns:o="urn:x"
            entity="sip:g@isc.local" state="full" version="1"><users>
            <user entity="sip:a@isc.local" o:yourown="true"/><user entity="sip:b@isc.local"/>
            </users></conference-info>"#;
        let c = ConferenceInfo::parse(doc).unwrap();
        assert_eq!(
            c.own_user().map(|u| u.entity.as_str()),
            Some("sip:a@isc.local")
        );
        assert!(!c.users.get(1).is_some_and(|u| u.yourown));
    }

    #[test]
    fn partial_merge() {
        let mut s = ConferenceInfo::new("sip:conf@isc.local", 1);
        s.users
            .push(user("sip:a@isc.local", EndpointStatus::Connected));
        s.users
            .push(user("sip:b@isc.local", EndpointStatus::Connected));

        let mut p = ConferenceInfo::new("sip:conf@isc.local", 2);
        p.state = ElementState::Partial;
        p.users
            .push(user("sip:c@isc.local", EndpointStatus::Alerting));
        let mut b = User::new("sip:b@isc.local");
        b.state = ElementState::Partial;
        let mut ep = Endpoint::new("sip:b@isc.local", EndpointStatus::Disconnected);
        ep.state = ElementState::Partial;
        b.endpoints.push(ep);
        p.users.push(b);
        s.apply(&p).unwrap();
        assert_eq!(s.version, 2);
        assert_eq!(s.users.len(), 3);
        let b = s
            .users
            .iter()
            .find(|u| u.entity == "sip:b@isc.local")
            .unwrap();
        assert_eq!(b.status(), Some(&EndpointStatus::Disconnected));

        let mut d = ConferenceInfo::new("sip:conf@isc.local", 3);
        d.state = ElementState::Partial;
        let mut gone = User::new("sip:a@isc.local");
        gone.state = ElementState::Deleted;
        d.users.push(gone);
        s.apply(&d).unwrap();
        assert_eq!(s.users.len(), 2);

        assert_eq!(
            s.apply(&d),
            Err(BodyError::StaleVersion { have: 3, got: 3 })
        );
        d.version = 5;
        assert_eq!(s.apply(&d), Err(BodyError::VersionGap { have: 3, got: 5 }));
        let mut f = ConferenceInfo::new("sip:conf@isc.local", 9);
        f.users
            .push(user("sip:z@isc.local", EndpointStatus::Connected));
        s.apply(&f).unwrap();
        assert_eq!(s, f);
    }

    /// A full state as `apply` keeps it: unique users, all `full`.
    fn normalized(mut c: ConferenceInfo) -> ConferenceInfo {
        c.state = ElementState::Full;
        let mut seen = std::collections::HashSet::new();
        c.users.retain(|u| seen.insert(u.entity.clone()));
        c.users = c.users.iter().map(full).collect();
        for u in &mut c.users {
            let mut seen = std::collections::HashSet::new();
            u.endpoints.retain(|e| seen.insert(e.entity.clone()));
        }
        c
    }

    #[test]
    fn for_subscriber_marks_one() {
        let mut c = ConferenceInfo::new("sip:g@isc.local", 1);
        c.users.push(User::new("sip:a@isc.local"));
        c.users.push(User::new("sip:b@isc.local"));
        let for_b = c.for_subscriber("sip:b@isc.local");
        assert_eq!(
            for_b.own_user().map(|u| u.entity.as_str()),
            Some("sip:b@isc.local")
        );
        assert!(for_b.to_xml().contains("isc:yourown=\"true\""));
        assert_eq!(for_b.users.iter().filter(|u| u.yourown).count(), 1);
    }

    proptest! {
        #[test]
        fn diff_then_apply_gives_new(a in doc(), b in doc()) {
            let mut old = normalized(a);
            let mut new = normalized(b);
            old.version = 7;
            new.version = 8;
            new.entity.clone_from(&old.entity);
            let d = ConferenceInfo::diff(&old, &new, 8);
            // through the wire and back
            let d = ConferenceInfo::parse(&d.to_bytes()).unwrap();
            let mut s = old.clone();
            s.apply(&d).unwrap();
            let key = |c: &ConferenceInfo| {
                let mut u = c.users.clone();
                u.sort_by(|x, y| x.entity.cmp(&y.entity));
                (c.description.clone().unwrap_or_default(), u)
            };
            prop_assert_eq!(key(&s), key(&new));
        }

        #[test]
        fn round_trip(c in doc()) {
            prop_assert_eq!(ConferenceInfo::parse(&c.to_bytes()), Ok(c));
        }

        #[test]
        fn apply_never_panics(a in doc(), b in doc()) {
            let mut s = a;
            let _ = s.apply(&b);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
