//! The registration event package's notifier (RFC 3680, with the GRUUs of
//! RFC 5628): a device SUBSCRIBEs to its own AOR and is NOTIFYed of every
//! binding of it, so it knows its sibling devices (GRUU, name, state).
//!
//! Each NOTIFY carries the full state (RFC 3680 §5.3 allows full documents
//! at any time); the version counts per subscription from 0.

use std::net::SocketAddr;
use std::time::Instant;

use crate::proto::bodies::reginfo::{
    Contact, ContactEvent, ContactState, DocState, Reginfo, Registration, RegistrationState,
    UnknownParam,
};
use crate::proto::sip::dialog::{Dialog, DialogId};
use crate::proto::sip::transaction::Transport;
use crate::server::location_service::Binding;

/// Device name parameter a client puts in its Contact and the reginfo
/// echoes as an `unknown-param` (and as `display-name`).
pub const DEVICE_PARAM: &str = "+sip.description";

/// Longest subscription we grant (RFC 3680 §6: the notifier may shorten).
pub const MAX_EXPIRES: u32 = 3600;
/// Default when the SUBSCRIBE names none (RFC 3680 §6: 3761 s; we cap it).
pub const DEFAULT_EXPIRES: u32 = 3600;

/// One subscription: a UAS dialog of ours.
#[derive(Debug)]
pub struct RegSubscription {
    pub dialog: Dialog,
    pub aor: String,
    pub expires_at: Instant,
    /// Where the subscriber is reached: its flow (source and transport).
    pub dest: SocketAddr,
    pub transport: Transport,
    /// The version of the next NOTIFY body.
    pub next_version: u32,
}

/// Every reg-event subscription of the server.
#[derive(Debug, Default)]
pub struct RegNotifier {
    subs: Vec<RegSubscription>,
}

impl RegNotifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, sub: RegSubscription) -> &mut RegSubscription {
        self.subs.push(sub);
        let last = self.subs.len() - 1;
        &mut self.subs[last]
    }

    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut RegSubscription> {
        self.subs.iter_mut().find(|s| s.dialog.id() == id)
    }

    pub fn remove(&mut self, id: &DialogId) -> Option<RegSubscription> {
        let i = self.subs.iter().position(|s| s.dialog.id() == id)?;
        Some(self.subs.remove(i))
    }

    /// The subscriptions watching `aor`.
    pub fn for_aor<'a>(
        &'a mut self,
        aor: &'a str,
    ) -> impl Iterator<Item = &'a mut RegSubscription> + 'a {
        self.subs.iter_mut().filter(move |s| s.aor == aor)
    }

    /// Removes and returns the subscriptions expired at `now`.
    pub fn take_expired(&mut self, now: Instant) -> Vec<RegSubscription> {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.subs)
            .into_iter()
            .partition(|s| s.expires_at <= now);
        self.subs = keep;
        gone
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subs.iter().map(|s| s.expires_at).min()
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }
}

/// The granted expiry for a requested one.
pub fn grant(requested: Option<u32>) -> u32 {
    requested.unwrap_or(DEFAULT_EXPIRES).min(MAX_EXPIRES)
}

/// The seconds left of a subscription at `now`.
pub fn remaining(expires_at: Instant, now: Instant) -> u32 {
    u32::try_from(expires_at.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX)
}

/// A full `reginfo` document of `aor` from its active bindings.
pub fn full_state(
    now: Instant,
    aor: &str,
    bindings: &[&Binding],
    version: u32,
    terminated: bool,
) -> Reginfo {
    let contacts = bindings
        .iter()
        .map(|b| {
            let mut c = Contact::new(b.id.clone(), b.contact.clone());
            c.state = ContactState::Active;
            c.event = ContactEvent::Registered;
            c.expires = Some(b.expires_in(now));
            c.callid = Some(b.call_id.clone());
            c.cseq = Some(b.cseq);
            c.duration_registered = Some(
                u32::try_from(now.saturating_duration_since(b.registered_at).as_secs())
                    .unwrap_or(0),
            );
            c.display_name = b.device_name.clone();
            if let Some(instance) = &b.instance {
                c.set_instance_id(instance.trim_start_matches('<').trim_end_matches('>'));
            }
            if let Some(device) = &b.device_name {
                c.unknown_params.push(UnknownParam {
                    name: DEVICE_PARAM.to_string(),
                    value: Some(device.clone()),
                });
            }
            c.pub_gruu = b.gruu.clone();
            c
        })
        .collect::<Vec<_>>();
    let state = if terminated {
        RegistrationState::Terminated
    } else if contacts.is_empty() {
        RegistrationState::Init
    } else {
        RegistrationState::Active
    };
    Reginfo {
        version,
        state: DocState::Full,
        registrations: vec![Registration {
            aor: aor.to_string(),
            id: registration_id(aor),
            state,
            contacts,
        }],
    }
}

fn registration_id(aor: &str) -> String {
    // A stable id per AOR: the AOR's characters folded into a short hash.
    let h = aor.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("reg{h:016x}")
}
