//! Where the user agent's identifiers come from: tags, branches, Call-IDs and
//! cnonces. The UA never draws randomness itself; the runner injects
//! [`RandomIds`], tests inject [`SeqIds`] so every run replays exactly.

use crate::proto::sip::transaction::key::MAGIC_COOKIE;

/// A source of fresh identifiers.
pub trait IdGenerator: Send {
    /// A From/To tag (RFC 3261 §19.3).
    fn tag(&mut self) -> String;
    /// A Via branch, starting with the magic cookie `z9hG4bK` (§8.1.1.7).
    fn branch(&mut self) -> String;
    /// A Call-ID (§8.1.1.4); the UA adds no host part.
    fn call_id(&mut self) -> String;
    /// A Digest cnonce (RFC 7616 §3.4).
    fn cnonce(&mut self) -> String;
}

/// Random identifiers from the thread-local RNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

fn random_hex(bytes: usize) -> String {
    let buf: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(buf)
}

impl IdGenerator for RandomIds {
    fn tag(&mut self) -> String {
        random_hex(6)
    }
    fn branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{}", random_hex(8))
    }
    fn call_id(&mut self) -> String {
        random_hex(12)
    }
    fn cnonce(&mut self) -> String {
        random_hex(8)
    }
}

/// Predictable identifiers for tests: `<prefix>-tag-1`, `z9hG4bK<prefix>-2`, ...
/// One counter is shared by every kind, so the order of calls is visible.
#[derive(Debug, Clone)]
pub struct SeqIds {
    prefix: String,
    n: u64,
}

impl SeqIds {
    pub fn new(prefix: impl Into<String>) -> Self {
        SeqIds {
            prefix: prefix.into(),
            n: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

impl IdGenerator for SeqIds {
    fn tag(&mut self) -> String {
        let n = self.next();
        format!("{}-tag-{n}", self.prefix)
    }
    fn branch(&mut self) -> String {
        let n = self.next();
        format!("{MAGIC_COOKIE}{}-{n}", self.prefix)
    }
    fn call_id(&mut self) -> String {
        let n = self.next();
        format!("{}-call-{n}", self.prefix)
    }
    fn cnonce(&mut self) -> String {
        let n = self.next();
        format!("{}-cnonce-{n}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_carry_the_magic_cookie() {
        assert!(RandomIds.branch().starts_with("z9hG4bK"));
        let mut s = SeqIds::new("a");
        assert_eq!(s.branch(), "z9hG4bKa-1");
        assert_eq!(s.tag(), "a-tag-2");
        assert_ne!(RandomIds.call_id(), RandomIds.call_id());
    }
}
