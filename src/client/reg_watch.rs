//! The watch of our own AOR's registrations (RFC 3680 reg event package,
//! RFC 5628 GRUUs in reginfo, RFC 6665 subscriptions): the subscription
//! dialog's state, the reginfo document kept up to date from full and
//! partial NOTIFYs, and the sibling devices derived from it.

use std::time::{Duration, Instant};

use super::DEVICE_PARAM;
use super::Device;
use super::registration::strip_instance;
use crate::proto::bodies::reginfo::{ContactState, DocState, Reginfo};
use crate::proto::sip::headers::{SubState, SubscriptionState};

/// Where the subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchState {
    /// Not subscribed, nothing scheduled.
    Idle,
    /// An initial SUBSCRIBE is in flight.
    Subscribing,
    /// Subscribed (2xx or a NOTIFY seen).
    Active,
    /// Failed or terminated by the notifier; a new subscription is scheduled.
    Failed,
    /// The Expires: 0 SUBSCRIBE is in flight or done.
    Ending,
    /// Terminated for good (rejected / noresource / given up).
    Ended,
}

/// What a NOTIFY asks of the UA besides its 200.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyOutcome {
    /// The device list, when it changed.
    pub devices: Option<Vec<Device>>,
    /// The subscription ended for good, with the reason.
    pub ended: Option<String>,
}

/// The parts of a NOTIFY the watch reads.
#[derive(Debug, Clone, Default)]
pub struct ReceivedNotify {
    pub sub_state: Option<SubscriptionState>,
    /// The notifier's tag (From).
    pub from_tag: Option<String>,
    /// The notifier's Contact URI.
    pub contact: Option<String>,
    /// The reginfo body, read.
    pub body: Option<Reginfo>,
}

/// The reg-event subscription of one UA.
#[derive(Debug, Clone)]
pub struct RegWatch {
    pub state: WatchState,
    pub call_id: String,
    pub from_tag: String,
    /// The notifier's tag, from the 2xx or the first NOTIFY.
    pub remote_tag: Option<String>,
    /// The notifier's Contact (RFC 6665 §4.1.2.1: in-dialog SUBSCRIBEs go there).
    pub remote_target: Option<String>,
    pub cseq: u32,
    /// Seconds granted.
    pub expires: u32,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
    doc: Option<Reginfo>,
    devices: Vec<Device>,
}

impl RegWatch {
    pub fn new() -> Self {
        RegWatch {
            state: WatchState::Idle,
            call_id: String::new(),
            from_tag: String::new(),
            remote_tag: None,
            remote_target: None,
            cseq: 0,
            expires: 0,
            refresh_at: None,
            retry_at: None,
            failures: 0,
            doc: None,
            devices: Vec::new(),
        }
    }

    /// A new subscription (new dialog) with `call_id` and `from_tag`.
    pub fn start(&mut self, call_id: String, from_tag: String) {
        self.state = WatchState::Subscribing;
        self.call_id = call_id;
        self.from_tag = from_tag;
        self.remote_tag = None;
        self.remote_target = None;
        self.cseq = 0;
        self.refresh_at = None;
        self.retry_at = None;
        // the next full NOTIFY starts a new version count (RFC 3680 §4.1)
        self.doc = None;
    }

    /// A SUBSCRIBE (initial or refresh) went out: no refresh until it is answered.
    pub fn sending(&mut self) {
        self.refresh_at = None;
        self.retry_at = None;
    }

    pub fn next_cseq(&mut self) -> u32 {
        self.cseq += 1;
        self.cseq
    }

    /// Whether a dialog exists to refresh in.
    pub fn in_dialog(&self) -> bool {
        self.state == WatchState::Active && self.remote_tag.is_some()
    }

    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// A 2xx to a SUBSCRIBE: refresh at half of the granted `expires`.
    pub fn subscribed(
        &mut self,
        now: Instant,
        expires: u32,
        remote_tag: Option<String>,
        target: Option<String>,
    ) {
        if self.state != WatchState::Ending {
            self.state = WatchState::Active;
        }
        self.failures = 0;
        if self.remote_tag.is_none() {
            self.remote_tag = remote_tag;
        }
        if target.is_some() {
            self.remote_target = target;
        }
        self.set_expires(now, expires);
    }

    fn set_expires(&mut self, now: Instant, expires: u32) {
        self.expires = expires;
        self.refresh_at = Some(now + Duration::from_secs(u64::from(expires.max(2)) / 2));
    }

    /// The SUBSCRIBE failed (or the dialog is gone): schedule a new one.
    pub fn failed(&mut self, now: Instant, base: Duration, max: Duration) -> Duration {
        self.state = WatchState::Failed;
        self.failures = self.failures.saturating_add(1);
        let delay = base
            .saturating_mul(1u32 << (self.failures - 1).min(16))
            .min(max);
        self.retry_at = Some(now + delay);
        self.refresh_at = None;
        delay
    }

    /// Ended for good.
    pub fn ended(&mut self) {
        self.state = WatchState::Ended;
        self.refresh_at = None;
        self.retry_at = None;
    }

    pub fn ending(&mut self) {
        self.state = WatchState::Ending;
        self.refresh_at = None;
        self.retry_at = None;
    }

    /// A refresh (in-dialog SUBSCRIBE) is due.
    pub fn refresh_due(&self, now: Instant) -> bool {
        self.state == WatchState::Active && self.refresh_at.is_some_and(|at| at <= now)
    }

    /// A new subscription is due.
    pub fn retry_due(&self, now: Instant) -> bool {
        self.state == WatchState::Failed && self.retry_at.is_some_and(|at| at <= now)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            WatchState::Active => self.refresh_at,
            WatchState::Failed => self.retry_at,
            _ => None,
        }
    }

    /// Whether a NOTIFY with this Call-ID and To tag is ours.
    pub fn matches(&self, call_id: &str, to_tag: Option<&str>) -> bool {
        !matches!(self.state, WatchState::Idle | WatchState::Ended)
            && call_id == self.call_id
            && to_tag == Some(self.from_tag.as_str())
    }

    /// A NOTIFY of this subscription (RFC 6665 §4.1.3, RFC 3680 §4.4):
    /// its Subscription-State and reginfo body.
    /// `retry_default` is the wait after `probation`/`giveup` without `retry-after`.
    pub fn handle_notify(
        &mut self,
        now: Instant,
        notify: ReceivedNotify,
        aor: &str,
        own_instance: &str,
        retry_default: Duration,
    ) -> NotifyOutcome {
        let ReceivedNotify {
            sub_state,
            from_tag,
            contact,
            body,
        } = notify;
        let sub_state = sub_state.as_ref();
        let mut out = NotifyOutcome::default();
        if self.remote_tag.is_none() {
            self.remote_tag = from_tag;
        }
        if contact.is_some() {
            self.remote_target = contact;
        }
        if let Some(doc) = body {
            let changed = match (&mut self.doc, doc.state) {
                // a full document always replaces: a new subscription restarts the versions
                (slot, DocState::Full) => {
                    *slot = Some(doc);
                    true
                }
                (Some(mine), DocState::Partial) => mine.apply(&doc).is_ok(),
                // a partial without a base: wait for the full state of the next refresh
                (None, DocState::Partial) => {
                    self.refresh_at = Some(now);
                    false
                }
            };
            if !changed && self.doc.is_some() {
                // RFC 3680 §4.4: a version gap means lost state: refresh to get it all
                self.refresh_at = Some(now);
            }
            if let Some(d) = &self.doc {
                let devices = devices_from(d, aor, own_instance);
                if devices != self.devices {
                    self.devices = devices.clone();
                    out.devices = Some(devices);
                }
            }
        }
        match sub_state.map(|s| (&s.state, s)) {
            Some((SubState::Terminated, s)) => {
                // RFC 6665 §4.1.3: deactivated / timeout → re-subscribe now;
                // probation / giveup → after retry-after; others → stop.
                match s.reason.as_deref() {
                    Some("deactivated") | Some("timeout") | None => {
                        self.state = WatchState::Failed;
                        self.retry_at = Some(now);
                        self.refresh_at = None;
                    }
                    Some("probation") | Some("giveup") => {
                        self.state = WatchState::Failed;
                        let after = s.retry_after.map(|r| Duration::from_secs(u64::from(r)));
                        self.retry_at = Some(now + after.unwrap_or(retry_default));
                        self.refresh_at = None;
                    }
                    Some(other) => {
                        self.ended();
                        out.ended = Some(other.to_owned());
                    }
                }
            }
            Some((_, s)) => {
                if matches!(self.state, WatchState::Subscribing | WatchState::Failed) {
                    self.state = WatchState::Active;
                }
                if let Some(e) = s.expires
                    && self.state == WatchState::Active
                    && self.refresh_at.is_none_or(|at| at > now)
                {
                    self.set_expires(now, e);
                }
            }
            None => {}
        }
        out
    }
}

impl Default for RegWatch {
    fn default() -> Self {
        Self::new()
    }
}

/// The devices of `aor` in a reginfo document (every registration if none
/// names `aor` exactly), active contacts only.
pub fn devices_from(doc: &Reginfo, aor: &str, own_instance: &str) -> Vec<Device> {
    let mut contacts = doc.active_contacts(aor);
    if contacts.is_empty() {
        contacts = doc
            .registrations
            .iter()
            .flat_map(|r| &r.contacts)
            .filter(|c| c.state == ContactState::Active)
            .collect();
    }
    contacts
        .into_iter()
        .map(|c| {
            let instance = c.instance_id().map(strip_instance);
            let name = c
                .unknown_params
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(DEVICE_PARAM))
                .and_then(|p| p.value.as_deref())
                .map(strip_instance)
                .or_else(|| c.display_name.clone());
            Device {
                is_self: instance.as_deref() == Some(own_instance),
                instance,
                gruu: c.pub_gruu.clone(),
                name,
                contact: c.uri.clone(),
                state: c.event.as_str().to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bodies::reginfo::{
        Contact, ContactEvent, Registration, RegistrationState, UnknownParam,
    };

    fn doc(version: u32, state: DocState, contacts: Vec<Contact>) -> Reginfo {
        Reginfo {
            version,
            state,
            registrations: vec![Registration {
                aor: "sip:alice@isc.local".into(),
                id: "r1".into(),
                state: RegistrationState::Active,
                contacts,
            }],
        }
    }

    fn device(id: &str, inst: &str, name: &str) -> Contact {
        let mut c = Contact::new(id, format!("sip:alice@127.0.0.1:{id}"));
        c.set_instance_id(inst);
        c.unknown_params.push(UnknownParam {
            name: DEVICE_PARAM.into(),
            value: Some(format!("\"{name}\"")),
        });
        c.pub_gruu = Some(format!("sip:alice@isc.local;gr={inst}"));
        c
    }

    #[test]
    fn full_then_partial() {
        let t0 = Instant::now();
        let mut w = RegWatch::new();
        w.start("c".into(), "t".into());
        assert!(w.matches("c", Some("t")));
        let retry = Duration::from_secs(1);
        let n = |s: &SubscriptionState, tag: Option<&str>, body: Option<Reginfo>| ReceivedNotify {
            sub_state: Some(s.clone()),
            from_tag: tag.map(str::to_owned),
            contact: None,
            body,
        };
        let ss = SubscriptionState::active(600);
        let full = doc(0, DocState::Full, vec![device("1", "urn:uuid:tv", "tv")]);
        let o = w.handle_notify(
            t0,
            n(&ss, Some("n"), Some(full)),
            "sip:alice@isc.local",
            "urn:uuid:tv",
            retry,
        );
        let d = o.devices.unwrap();
        assert_eq!(d.len(), 1);
        assert!(d[0].is_self);
        assert_eq!(d[0].name.as_deref(), Some("tv"));
        assert_eq!(w.state, WatchState::Active);
        assert_eq!(w.poll_timeout(), Some(t0 + Duration::from_secs(300)));
        let partial = doc(
            1,
            DocState::Partial,
            vec![device("2", "urn:uuid:ph", "phone")],
        );
        let o = w.handle_notify(
            t0,
            n(&ss, None, Some(partial.clone())),
            "sip:alice@isc.local",
            "urn:uuid:tv",
            retry,
        );
        assert_eq!(o.devices.unwrap().len(), 2);
        let mut gone = device("2", "urn:uuid:ph", "phone");
        gone.state = ContactState::Terminated;
        gone.event = ContactEvent::Unregistered;
        let o = w.handle_notify(
            t0,
            n(&ss, None, Some(doc(2, DocState::Partial, vec![gone]))),
            "sip:alice@isc.local",
            "urn:uuid:tv",
            retry,
        );
        assert_eq!(o.devices.unwrap().len(), 1);
        // a gap asks for a refresh now
        let o = w.handle_notify(
            t0,
            n(&ss, None, Some(doc(9, DocState::Partial, vec![]))),
            "sip:alice@isc.local",
            "urn:uuid:tv",
            retry,
        );
        assert_eq!(o.devices, None);
        assert!(w.refresh_due(t0));
        // terminated;reason=rejected ends it
        let o = w.handle_notify(
            t0,
            n(&SubscriptionState::terminated("rejected"), None, None),
            "sip:alice@isc.local",
            "urn:uuid:tv",
            retry,
        );
        assert_eq!(o.ended.as_deref(), Some("rejected"));
        assert_eq!(w.poll_timeout(), None);
    }
}
