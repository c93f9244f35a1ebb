//! The state the registration event package (RFC 3680) reports: per AOR a
//! version counter and the contacts a `reginfo` NOTIFY body is built from
//! (RFC 5628 adds the GRUUs). Plain data: the XML is written elsewhere.
//!
//! `version` here counts changes of the AOR's state; a notifier that needs
//! the per-subscription numbering of RFC 3680 §5.3 keeps its own counter.

use std::collections::HashMap;
use std::time::Instant;

use super::{BindingChange, BindingEvent};
use crate::server::location_service::{Binding, ContactParam, LocationService};

/// `registration/@state` (RFC 3680 §5.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    Init,
    Active,
    Terminated,
}

/// `reginfo/@state`: full or partial (RFC 3680 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegInfoKind {
    Full,
    Partial,
}

/// `contact/@state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    Active,
    Terminated,
}

/// `contact/@event` (RFC 3680 §5.2.4), the values the registrar produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactEvent {
    Registered,
    Refreshed,
    Unregistered,
    Expired,
}

impl ContactEvent {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Refreshed => "refreshed",
            Self::Unregistered => "unregistered",
            Self::Expired => "expired",
        }
    }
}

/// One `contact` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegContact {
    pub id: String,
    pub state: ContactState,
    pub event: ContactEvent,
    /// Seconds left; `None` for a terminated contact.
    pub expires: Option<u32>,
    /// Thousandths.
    pub q: Option<u16>,
    pub call_id: String,
    pub cseq: u32,
    pub uri: String,
    /// `display-name`: the device name.
    pub display_name: Option<String>,
    /// `+sip.instance` as `unknown-param`.
    pub instance: Option<String>,
    /// RFC 5628 `pub-gruu`.
    pub pub_gruu: Option<String>,
    /// Other Contact parameters (`unknown-param`).
    pub unknown_params: Vec<ContactParam>,
}

impl RegContact {
    fn from_binding(now: Instant, b: &Binding, event: ContactEvent) -> Self {
        let active = matches!(event, ContactEvent::Registered | ContactEvent::Refreshed);
        Self {
            id: b.id.clone(),
            state: if active {
                ContactState::Active
            } else {
                ContactState::Terminated
            },
            event,
            expires: active.then(|| b.expires_in(now)),
            q: b.q,
            call_id: b.call_id.clone(),
            cseq: b.cseq,
            uri: b.contact.clone(),
            display_name: b.device_name.clone(),
            instance: b.instance.clone(),
            pub_gruu: b.gruu.clone(),
            unknown_params: b.params.clone(),
        }
    }
}

/// The content of one `reginfo` document for one AOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegInfo {
    pub aor: String,
    pub version: u32,
    pub kind: RegInfoKind,
    pub state: RegistrationState,
    /// `registration/@id`, stable per AOR.
    pub registration_id: String,
    pub contacts: Vec<RegContact>,
}

/// Version counters per AOR.
#[derive(Debug, Clone, Default)]
pub struct RegEventState {
    versions: HashMap<String, u32>,
}

impl RegEventState {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current version of `aor` (0 before any change).
    pub fn version(&self, aor: &str) -> u32 {
        self.versions.get(aor).copied().unwrap_or(0)
    }

    /// Apply the changes of a REGISTER or an expiry sweep (after they are
    /// committed to `location`): one partial `RegInfo` per AOR touched,
    /// each with its version counted up.
    pub fn apply(
        &mut self,
        now: Instant,
        changes: &[BindingChange],
        location: &LocationService,
    ) -> Vec<RegInfo> {
        let mut out: Vec<RegInfo> = Vec::new();
        for c in changes {
            let event = match c.event {
                BindingEvent::Registered => ContactEvent::Registered,
                BindingEvent::Refreshed => ContactEvent::Refreshed,
                BindingEvent::Unregistered => ContactEvent::Unregistered,
                BindingEvent::Expired => ContactEvent::Expired,
            };
            let contact = RegContact::from_binding(now, &c.binding, event);
            match out.iter_mut().find(|r| r.aor == c.binding.aor) {
                Some(r) => r.contacts.push(contact),
                None => out.push(RegInfo {
                    aor: c.binding.aor.clone(),
                    version: 0,
                    kind: RegInfoKind::Partial,
                    state: RegistrationState::Active,
                    registration_id: registration_id(&c.binding.aor),
                    contacts: vec![contact],
                }),
            }
        }
        for r in &mut out {
            let v = self.versions.entry(r.aor.clone()).or_insert(0);
            *v = v.saturating_add(1);
            r.version = *v;
            let live = location.bindings(&r.aor).iter().any(|b| b.is_active(now));
            // RFC 3680 §5.2.3: terminated once the last contact is gone
            r.state = if live {
                RegistrationState::Active
            } else {
                RegistrationState::Terminated
            };
        }
        out
    }

    /// The full state of `aor` at `now` (for a new subscription).
    pub fn full(&self, now: Instant, aor: &str, location: &LocationService) -> RegInfo {
        let contacts: Vec<RegContact> = location
            .bindings(aor)
            .iter()
            .filter(|b| b.is_active(now))
            .map(|b| RegContact::from_binding(now, b, ContactEvent::Registered))
            .collect();
        RegInfo {
            aor: aor.to_owned(),
            version: self.version(aor),
            kind: RegInfoKind::Full,
            state: if contacts.is_empty() {
                RegistrationState::Init
            } else {
                RegistrationState::Active
            },
            registration_id: registration_id(aor),
            contacts,
        }
    }
}

fn registration_id(aor: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(aor.as_bytes());
    format!("r{}", hex::encode(d.get(..5).unwrap_or(&[])))
}
