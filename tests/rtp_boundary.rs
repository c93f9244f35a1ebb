//! The RTP core stays sans-IO: no runtime, no clock reads, no ambient randomness.

#[test]
fn proto_rtp_reads_no_clock_and_no_socket() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/proto/rtp");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "tokio",
            "Instant::now",
            "SystemTime::now",
            "thread_rng",
            "std::net",
            "std::fs",
        ] {
            assert!(
                !text.contains(banned),
                "{} mentions {banned}",
                path.display()
            );
        }
    }
}
