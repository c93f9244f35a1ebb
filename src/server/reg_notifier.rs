//! The registration event package's notifier (RFC 3680, with the GRUUs of
//! RFC 5628): a device SUBSCRIBEs to its own AOR and is NOTIFYed of every
//! binding of it, so it knows its sibling devices (GRUU, name, state).
//!
//! Each NOTIFY carries the full state (RFC 3680 §5.3 allows full documents
//! at any time); the version counts per subscription from 0.

use std::collections::{BTreeMap, HashMap};
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

/// Every reg-event subscription of the server, indexed so that nothing
/// scans them all: by dialog, by AOR (in order of subscription) and by
/// expiry. Every device subscribes to its own AOR, so with many registered
/// devices a scan per message would be the server's main cost (as the
/// transaction and binding timers were, README "Performance").
#[derive(Debug, Default)]
pub struct RegNotifier {
    subs: HashMap<DialogId, RegSubscription>,
    by_aor: HashMap<String, Vec<DialogId>>,
    /// (expiry, sequence) → dialog; the sequence tells equal instants apart.
    expiry: BTreeMap<(Instant, u64), DialogId>,
    /// Where each subscription sits in `expiry`.
    expiry_key: HashMap<DialogId, (Instant, u64)>,
    seq: u64,
}

impl RegNotifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `sub` (replacing one of the same dialog), indexed by its
    /// current `expires_at`: change a subscription by `remove`, edit, `add`.
    pub fn add(&mut self, sub: RegSubscription) {
        let id = sub.dialog.id().clone();
        self.remove(&id);
        self.seq += 1;
        let key = (sub.expires_at, self.seq);
        self.expiry.insert(key, id.clone());
        self.expiry_key.insert(id.clone(), key);
        self.by_aor
            .entry(sub.aor.clone())
            .or_default()
            .push(id.clone());
        self.subs.insert(id, sub);
    }

    /// Whether `id` is a subscription of ours.
    pub fn contains(&self, id: &DialogId) -> bool {
        self.subs.contains_key(id)
    }

    pub fn remove(&mut self, id: &DialogId) -> Option<RegSubscription> {
        let sub = self.subs.remove(id)?;
        if let Some(key) = self.expiry_key.remove(id) {
            self.expiry.remove(&key);
        }
        if let Some(ids) = self.by_aor.get_mut(&sub.aor) {
            ids.retain(|d| d != id);
            if ids.is_empty() {
                self.by_aor.remove(&sub.aor);
            }
        }
        Some(sub)
    }

    /// The subscriptions watching `aor`, oldest first.
    pub fn ids_for_aor(&self, aor: &str) -> Vec<DialogId> {
        self.by_aor.get(aor).cloned().unwrap_or_default()
    }

    /// Removes and returns the subscriptions expired at `now`, soonest first.
    pub fn take_expired(&mut self, now: Instant) -> Vec<RegSubscription> {
        let mut gone = Vec::new();
        while let Some(entry) = self.expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.get().clone();
            gone.extend(self.remove(&id));
        }
        gone
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.keys().next().map(|(at, _)| *at)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sip::message::parse_message;
    use std::time::Duration;

    fn sub(n: u32, aor: &str, expires_at: Instant) -> RegSubscription {
        let text = format!(
            "SUBSCRIBE sip:{aor} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{n}\r\nFrom: <sip:{aor}>;tag=f{n}\r\nTo: <sip:{aor}>\r\nCall-ID: c{n}\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:127.0.0.1:5070>\r\nEvent: reg\r\nContent-Length: 0\r\n\r\n"
        );
        let Ok(rsip::SipMessage::Request(req)) = parse_message(text.as_bytes()) else {
            panic!("request parses")
        };
        let ok = crate::proto::sip::build::response_with(&req, 200, Some("n"), None, vec![]);
        RegSubscription {
            dialog: Dialog::new_uas(&req, &ok, 1).unwrap(),
            aor: aor.into(),
            expires_at,
            dest: "127.0.0.1:5070".parse().unwrap(),
            transport: Transport::Udp,
            next_version: 0,
        }
    }

    #[test]
    fn indexes_follow_add_remove_and_expiry() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut n = RegNotifier::new();
        n.add(sub(1, "alice@isc.local", s(30)));
        n.add(sub(2, "bob@isc.local", s(10)));
        n.add(sub(3, "alice@isc.local", s(10)));
        assert_eq!(n.poll_timeout(), Some(s(10)));
        let alice: Vec<_> = n
            .ids_for_aor("alice@isc.local")
            .into_iter()
            .map(|d| d.call_id)
            .collect();
        assert_eq!(alice, ["c1", "c3"], "oldest first");
        // A refresh: remove, change, add; the index follows.
        let id3 = n.ids_for_aor("alice@isc.local")[1].clone();
        let mut three = n.remove(&id3).unwrap();
        three.expires_at = s(60);
        n.add(three);
        assert!(n.contains(&id3));
        let gone: Vec<_> = n
            .take_expired(s(30))
            .into_iter()
            .map(|x| x.dialog.id().call_id.clone())
            .collect();
        assert_eq!(gone, ["c2", "c1"], "soonest first, equal-or-past only");
        assert_eq!(n.len(), 1);
        assert_eq!(n.poll_timeout(), Some(s(60)));
        assert!(n.ids_for_aor("bob@isc.local").is_empty());
        assert!(n.remove(&id3).is_some() && n.is_empty() && n.poll_timeout().is_none());
    }
}
