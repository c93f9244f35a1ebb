//! The user agent's identifiers, made from the project-wide [`IdGen`]
//! tokens: tags, branches (with the RFC 3261 magic cookie), Call-IDs and
//! cnonces. The UA never draws randomness itself; the runner passes
//! [`crate::ids::RandomIds`], tests pass [`crate::proto::ids::SeqIds`].

use crate::proto::ids::IdGen;
use crate::proto::sip::transaction::key::MAGIC_COOKIE;

/// Identifier kinds the UA needs, on top of any [`IdGen`].
pub trait UaIds {
    /// A From/To tag (RFC 3261 §19.3).
    fn tag(&mut self) -> String;
    /// A Via branch starting with `z9hG4bK` (RFC 3261 §8.1.1.7).
    fn branch(&mut self) -> String;
    /// A Call-ID (RFC 3261 §8.1.1.4).
    fn call_id(&mut self) -> String;
    /// A Digest cnonce (RFC 7616 §3.4).
    fn cnonce(&mut self) -> String;
}

impl<T: IdGen + ?Sized> UaIds for T {
    fn tag(&mut self) -> String {
        self.token()
    }
    fn branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{}", self.token())
    }
    fn call_id(&mut self) -> String {
        self.token()
    }
    fn cnonce(&mut self) -> String {
        self.token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::SeqIds;

    #[test]
    fn branches_carry_the_magic_cookie() {
        let mut s = SeqIds::new("a");
        assert_eq!(s.branch(), "z9hG4bKa1");
        assert_eq!(s.tag(), "a2");
        let mut r = crate::ids::RandomIds::new();
        assert!(r.branch().starts_with("z9hG4bK"));
        assert_ne!(r.call_id(), r.call_id());
    }
}
