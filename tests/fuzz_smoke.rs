//! The CI smoke of every fuzz target on the stable toolchain: proptest feeds
//! each `isc::fuzz_targets` entry arbitrary bytes and mutations of the RFC
//! examples in `tests/data/` (the same seeds the cargo-fuzz corpus uses).
//! A panic anywhere fails the test. Long runs: `fuzz/README.md`.

use std::path::Path;

use isc::fuzz_targets::TARGETS;
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    fn walk(dir: &Path, out: &mut Vec<Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push(bytes);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        &mut out,
    );
    assert!(out.len() > 20, "the RFC examples are the fuzz seeds");
    out
}

fn run_all(data: &[u8]) {
    for (_, target) in TARGETS {
        target(data);
    }
}

#[test]
fn every_seed_passes_every_target() {
    for seed in corpus() {
        run_all(&seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run_all(&data);
    }

    #[test]
    fn mutated_seeds(pick in any::<prop::sample::Index>(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..16)) {
        let seeds = corpus();
        let mut data = seeds[pick.index(seeds.len())].clone();
        for (at, byte, kind) in edits {
            if data.is_empty() {
                data.push(byte);
                continue;
            }
            let i = at.index(data.len());
            match kind {
                0 => data[i] = byte,
                1 => data.insert(i, byte),
                _ => { data.remove(i); }
            }
        }
        run_all(&data);
    }
}
