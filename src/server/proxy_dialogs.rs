//! The dialogs the proxy record-routed (RFC 3261 §16.6 step 4), so that an
//! in-dialog request is relayed only inside a dialog that was set up through
//! us. Without it anyone could send a request carrying a made-up To tag and
//! have it delivered to any registered user, unauthenticated and under any
//! From: in-dialog requests are not challenged (RFC 3261 §22.1: a proxy
//! challenges initial requests; ACK and CANCEL cannot be).
//!
//! A dialog is admitted when a 2xx (or a tagged 1xx, an early dialog) to an
//! INVITE, SUBSCRIBE or REFER passes through the proxy; it is known by its
//! Call-ID and its two tags in either order, since each side puts its own
//! tag in From. It ends with a BYE or a terminating NOTIFY, or after
//! [`IDLE_LIMIT`] without a request; at most [`MAX_DIALOGS`] are kept (the
//! longest idle goes first). Sans-IO: time is passed in.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A dialog unused this long is forgotten (sessions without a session
/// timer may sit idle, so this is long).
pub const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);
/// Dialogs kept at most.
pub const MAX_DIALOGS: usize = 200_000;

/// Call-ID and the two tags, the smaller first.
type Key = (String, String, String);

fn key(call_id: &str, tag_a: &str, tag_b: &str) -> Key {
    let (a, b) = if tag_a <= tag_b {
        (tag_a, tag_b)
    } else {
        (tag_b, tag_a)
    };
    (call_id.to_owned(), a.to_owned(), b.to_owned())
}

/// The record-routed dialogs, indexed by id and by last use.
#[derive(Debug)]
pub struct ProxiedDialogs {
    last_used: HashMap<Key, (Instant, u64)>,
    by_use: BTreeMap<(Instant, u64), Key>,
    seq: u64,
    idle_limit: Duration,
    max: usize,
}

impl Default for ProxiedDialogs {
    fn default() -> Self {
        Self::new(IDLE_LIMIT, MAX_DIALOGS)
    }
}

impl ProxiedDialogs {
    pub fn new(idle_limit: Duration, max: usize) -> Self {
        ProxiedDialogs {
            last_used: HashMap::new(),
            by_use: BTreeMap::new(),
            seq: 0,
            idle_limit,
            max: max.max(1),
        }
    }

    /// A dialog was set up through us (again: a refresh only touches it).
    pub fn admit(&mut self, now: Instant, call_id: &str, tag_a: &str, tag_b: &str) {
        self.prune(now);
        let k = key(call_id, tag_a, tag_b);
        if !self.last_used.contains_key(&k) && self.last_used.len() >= self.max {
            // Full: the longest idle dialog makes room.
            if let Some((_, oldest)) = self.by_use.pop_first() {
                self.last_used.remove(&oldest);
            }
        }
        self.mark(now, k);
    }

    /// Whether a request of this dialog may be relayed; marks it used.
    pub fn touch(&mut self, now: Instant, call_id: &str, tag_a: &str, tag_b: &str) -> bool {
        self.prune(now);
        let k = key(call_id, tag_a, tag_b);
        if !self.last_used.contains_key(&k) {
            return false;
        }
        self.mark(now, k);
        true
    }

    /// The dialog ended (BYE, terminating NOTIFY).
    pub fn end(&mut self, call_id: &str, tag_a: &str, tag_b: &str) {
        let k = key(call_id, tag_a, tag_b);
        if let Some(at) = self.last_used.remove(&k) {
            self.by_use.remove(&at);
        }
    }

    pub fn len(&self) -> usize {
        self.last_used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_used.is_empty()
    }

    fn mark(&mut self, now: Instant, k: Key) {
        if let Some(old) = self.last_used.get(&k) {
            self.by_use.remove(old);
        }
        self.seq += 1;
        let at = (now, self.seq);
        self.by_use.insert(at, k.clone());
        self.last_used.insert(k, at);
    }

    /// Forgets dialogs idle past the limit (oldest first, stops at the
    /// first one still in use).
    fn prune(&mut self, now: Instant) {
        while let Some(entry) = self.by_use.first_entry() {
            if now.saturating_duration_since(entry.key().0) < self.idle_limit {
                break;
            }
            let k = entry.remove();
            self.last_used.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_by_call_id_and_both_tags_in_either_order() {
        let t0 = Instant::now();
        let mut d = ProxiedDialogs::default();
        assert!(!d.touch(t0, "c1", "a", "b"), "nothing admitted yet");
        d.admit(t0, "c1", "a", "b");
        assert!(d.touch(t0, "c1", "a", "b"));
        assert!(d.touch(t0, "c1", "b", "a"), "the callee's requests");
        assert!(!d.touch(t0, "c1", "a", "x"), "a made-up tag");
        assert!(!d.touch(t0, "c2", "a", "b"), "another Call-ID");
        d.end("c1", "b", "a");
        assert!(!d.touch(t0, "c1", "a", "b") && d.is_empty());
    }

    #[test]
    fn idle_dialogs_expire_and_use_keeps_them() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut d = ProxiedDialogs::new(Duration::from_secs(100), 10);
        d.admit(t0, "old", "a", "b");
        d.admit(t0, "used", "a", "b");
        assert!(d.touch(s(90), "used", "a", "b"));
        assert!(!d.touch(s(150), "old", "a", "b"), "idle past the limit");
        assert!(d.touch(s(150), "used", "a", "b"), "used 60 s ago");
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn bounded_the_longest_idle_makes_room() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut d = ProxiedDialogs::new(Duration::from_secs(1000), 2);
        d.admit(s(0), "one", "a", "b");
        d.admit(s(1), "two", "a", "b");
        assert!(d.touch(s(2), "one", "a", "b"));
        d.admit(s(3), "three", "a", "b");
        assert_eq!(d.len(), 2);
        assert!(!d.touch(s(4), "two", "a", "b"), "two was the longest idle");
        assert!(d.touch(s(4), "one", "a", "b") && d.touch(s(4), "three", "a", "b"));
    }
}
