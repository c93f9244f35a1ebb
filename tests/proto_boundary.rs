//! The sans-IO boundary (STYLE.md habit 11): nothing under `src/proto`
//! touches a runtime, a socket, a clock or a random number generator. Time
//! and ids come in from the caller; the drivers live in `src/net`.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::rng",
    "OsRng",
    "std::fs",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
];

fn scan(dir: &Path, hits: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir)
        .expect("src/proto is readable")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            scan(&path, hits);
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
}

#[test]
fn proto_is_sans_io() {
    let mut hits = Vec::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto"),
        &mut hits,
    );
    assert!(
        hits.is_empty(),
        "IO, clock or randomness under src/proto:\n{}",
        hits.join("\n")
    );
}
