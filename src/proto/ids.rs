//! Identifiers (tags, branches, Call-IDs, nonces' salt) come from outside the
//! protocol core, so tests replay exactly: [`SeqIds`] counts, the drivers
//! pass [`crate::ids::RandomIds`].

/// A source of unique tokens and random bytes.
pub trait IdGen: Send {
    /// A fresh token of letters and digits, unique for this generator.
    fn token(&mut self) -> String;
    /// Fills `buf` with unpredictable bytes (nonce salt, secrets).
    fn fill(&mut self, buf: &mut [u8]);
}

/// Deterministic ids for tests: `<prefix>1`, `<prefix>2`, ...
#[derive(Debug, Clone)]
pub struct SeqIds {
    prefix: String,
    next: u64,
}

impl SeqIds {
    pub fn new(prefix: impl Into<String>) -> Self {
        SeqIds {
            prefix: prefix.into(),
            next: 1,
        }
    }
}

impl IdGen for SeqIds {
    fn token(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        format!("{}{n}", self.prefix)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            *b = (self.next % 251) as u8;
            self.next += 1;
        }
    }
}
