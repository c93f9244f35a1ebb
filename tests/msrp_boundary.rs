//! STYLE.md habit 11 for our module: `src/proto/msrp` does no IO and reads no
//! clock or global RNG.

#[test]
fn msrp_core_is_sans_io() {
    let dir = format!("{}/src/proto/msrp", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "tokio",
            "Instant::now",
            "thread_rng",
            "std::net",
            "SystemTime::now",
        ] {
            assert!(
                !text.contains(banned),
                "{} mentions {banned}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 5);
}
