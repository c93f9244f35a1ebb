//! The random id source the drivers hand to the protocol core.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::proto::ids::IdGen;

/// Tokens of 20 base-36 characters (~103 bits) from an OS-seeded CSPRNG.
pub struct RandomIds(StdRng);

impl RandomIds {
    pub fn new() -> Self {
        RandomIds(StdRng::from_os_rng())
    }
}

impl Default for RandomIds {
    fn default() -> Self {
        Self::new()
    }
}

impl IdGen for RandomIds {
    fn token(&mut self) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..20)
            .map(|_| ALPHABET[self.0.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf);
    }
}
