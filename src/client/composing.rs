//! isComposing (RFC 3994) over SIP MESSAGE: when to send `active`, its
//! refreshes and `idle` ([`ComposingSender`]), and when a peer's indication
//! has run out ([`ComposingReceiver`]). Pure state: the UA sends what these
//! return.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::proto::bodies::is_composing::{ComposingState, IsComposing};

/// RFC 3994 §3.2: "idle" after 15 s without typing.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// RFC 3994 §3.2: the active-state refresh interval, at least 60 s.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// RFC 3994 §4: a receiver given no `<refresh>` times an `active` out after 120 s.
pub const DEFAULT_RECEIVER_TIMEOUT: Duration = Duration::from_secs(120);

/// The sender's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComposingConfig {
    /// Idle timeout: `idle` is sent this long after the last keystroke.
    pub idle_timeout: Duration,
    /// Refresh interval announced in `<refresh>`.
    pub refresh: Duration,
}

impl Default for ComposingConfig {
    fn default() -> Self {
        ComposingConfig {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            refresh: DEFAULT_REFRESH,
        }
    }
}

impl ComposingConfig {
    /// The `active` document to send.
    pub fn active_body(&self) -> IsComposing {
        IsComposing::active(Some(self.refresh.as_secs().max(1) as u32))
    }

    /// When to re-send `active`: before the announced refresh runs out
    /// (RFC 3994 §3.2), here at nine tenths of it.
    fn refresh_due(&self, sent: Instant) -> Instant {
        sent + self.refresh.mul_f64(0.9)
    }
}

/// What the sender wants on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposingAction {
    /// Send an `active` isComposing MESSAGE to the peer.
    SendActive { to: String },
    /// Send an `idle` isComposing MESSAGE to the peer.
    SendIdle { to: String },
}

#[derive(Debug, Clone, Copy)]
struct Active {
    last_typed: Instant,
    refresh_at: Instant,
}

impl Active {
    fn next(&self, cfg: &ComposingConfig) -> Instant {
        (self.last_typed + cfg.idle_timeout).min(self.refresh_at)
    }
}

/// The local user's composing state towards every peer.
#[derive(Debug, Clone, Default)]
pub struct ComposingSender {
    cfg: ComposingConfig,
    active: HashMap<String, Active>,
    /// Peers that answered isComposing with 415: they get no more.
    unsupported: HashSet<String>,
}

impl ComposingSender {
    pub fn new(cfg: ComposingConfig) -> Self {
        ComposingSender {
            cfg,
            ..Default::default()
        }
    }

    pub fn config(&self) -> &ComposingConfig {
        &self.cfg
    }

    /// A keystroke in the message to `to`. RFC 3994 §3.2: idle → active
    /// sends `active`; while active only the idle timer restarts.
    pub fn typing(&mut self, now: Instant, to: &str) -> Option<ComposingAction> {
        if self.unsupported.contains(to) {
            return None;
        }
        if let Some(a) = self.active.get_mut(to) {
            a.last_typed = now;
            return None;
        }
        self.active.insert(
            to.to_owned(),
            Active {
                last_typed: now,
                refresh_at: self.cfg.refresh_due(now),
            },
        );
        Some(ComposingAction::SendActive { to: to.to_owned() })
    }

    /// The user cleared the input (or asked so): `idle` now if active.
    pub fn stop(&mut self, to: &str) -> Option<ComposingAction> {
        self.active
            .remove(to)
            .map(|_| ComposingAction::SendIdle { to: to.to_owned() })
    }

    /// A content message went to `to`: RFC 3994 §3.2 says the state goes
    /// idle without an `idle` message (the receiver ends it on the message).
    pub fn message_sent(&mut self, to: &str) {
        self.active.remove(to);
    }

    /// The peer answered isComposing with 415 Unsupported Media Type.
    pub fn mark_unsupported(&mut self, to: &str) {
        self.active.remove(to);
        self.unsupported.insert(to.to_owned());
    }

    pub fn is_unsupported(&self, to: &str) -> bool {
        self.unsupported.contains(to)
    }

    pub fn is_active(&self, to: &str) -> bool {
        self.active.contains_key(to)
    }

    /// Idle timeouts and refreshes due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<ComposingAction> {
        let mut out = Vec::new();
        let cfg = self.cfg;
        let mut peers: Vec<&String> = self.active.keys().collect();
        peers.sort();
        let peers: Vec<String> = peers.into_iter().cloned().collect();
        for to in peers {
            let Some(a) = self.active.get_mut(&to) else {
                continue;
            };
            if now >= a.last_typed + cfg.idle_timeout {
                // RFC 3994 §3.2: idle timeout expired
                self.active.remove(&to);
                out.push(ComposingAction::SendIdle { to });
            } else if now >= a.refresh_at {
                a.refresh_at = cfg.refresh_due(now);
                out.push(ComposingAction::SendActive { to });
            }
        }
        out
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.values().map(|a| a.next(&self.cfg)).min()
    }
}

/// What peers are composing towards us.
#[derive(Debug, Clone, Default)]
pub struct ComposingReceiver {
    /// Peer → when its `active` runs out.
    active: HashMap<String, Instant>,
}

impl ComposingReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// An isComposing document from `from`. Returns the new state when it
    /// changed (`Some(true)` = started composing).
    pub fn indication(&mut self, now: Instant, from: &str, doc: &IsComposing) -> Option<bool> {
        match doc.state {
            ComposingState::Active => {
                // RFC 3994 §4: no refresh given → 120 s
                let lifetime = doc
                    .refresh
                    .map(|r| Duration::from_secs(u64::from(r)))
                    .unwrap_or(DEFAULT_RECEIVER_TIMEOUT);
                let was = self.active.insert(from.to_owned(), now + lifetime);
                was.is_none().then_some(true)
            }
            ComposingState::Idle => self.active.remove(from).map(|_| false),
        }
    }

    /// A content message from `from`: RFC 3994 §4, its arrival ends `active`.
    /// True when the peer was composing.
    pub fn message(&mut self, from: &str) -> bool {
        self.active.remove(from).is_some()
    }

    pub fn is_active(&self, from: &str) -> bool {
        self.active.contains_key(from)
    }

    /// Peers whose `active` ran out by `now` (RFC 3994 §4), now idle.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<String> {
        let mut gone: Vec<String> = self
            .active
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| p.clone())
            .collect();
        gone.sort();
        for p in &gone {
            self.active.remove(p);
        }
        gone
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "sip:bob@isc.local";

    #[test]
    fn sender_active_refresh_idle() {
        let t0 = Instant::now();
        let cfg = ComposingConfig::default();
        let mut s = ComposingSender::new(cfg);
        assert_eq!(
            s.typing(t0, BOB),
            Some(ComposingAction::SendActive { to: BOB.into() })
        );
        // keep typing every 10 s: no message until the refresh is due at 54 s
        let mut now = t0;
        let mut sent = Vec::new();
        for _ in 0..6 {
            now += Duration::from_secs(10);
            assert_eq!(s.typing(now, BOB), None);
            if let Some(at) = s.poll_timeout().filter(|at| *at <= now) {
                sent.extend(s.handle_timeout(at));
            }
        }
        assert_eq!(sent, vec![ComposingAction::SendActive { to: BOB.into() }]);
        // stop typing at 60 s: idle 15 s later
        let at = s.poll_timeout().unwrap();
        assert_eq!(at, now + Duration::from_secs(15));
        assert_eq!(
            s.handle_timeout(at),
            vec![ComposingAction::SendIdle { to: BOB.into() }]
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn message_ends_composing_and_415_stops_it() {
        let t0 = Instant::now();
        let mut s = ComposingSender::new(ComposingConfig::default());
        s.typing(t0, BOB);
        s.message_sent(BOB);
        assert!(!s.is_active(BOB));
        assert_eq!(s.poll_timeout(), None);
        s.typing(t0, BOB);
        s.mark_unsupported(BOB);
        assert_eq!(s.typing(t0, BOB), None);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn receiver_expiry_and_message() {
        let t0 = Instant::now();
        let mut r = ComposingReceiver::new();
        assert_eq!(
            r.indication(t0, BOB, &IsComposing::active(Some(60))),
            Some(true)
        );
        assert_eq!(r.indication(t0, BOB, &IsComposing::active(Some(60))), None);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        assert_eq!(
            r.handle_timeout(t0 + Duration::from_secs(59)),
            Vec::<String>::new()
        );
        assert_eq!(
            r.handle_timeout(t0 + Duration::from_secs(60)),
            vec![BOB.to_string()]
        );
        assert_eq!(
            r.indication(t0, BOB, &IsComposing::active(None)),
            Some(true)
        );
        assert_eq!(r.poll_timeout(), Some(t0 + DEFAULT_RECEIVER_TIMEOUT));
        assert!(r.message(BOB));
        assert!(!r.message(BOB));
        assert_eq!(r.indication(t0, BOB, &IsComposing::idle()), None);
    }
}
