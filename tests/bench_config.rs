//! `server.digest_algorithms`: the key the pager benchmark uses so SIPp 3.6.1
//! (MD5 only) can authenticate against `isc server` started from a file.

mod common;

use std::path::Path;

use isc::config::{Config, ConfigError};
use isc::server::runner::{Server, ServerOptions};

fn parse(text: &str) -> Result<Config, ConfigError> {
    let c = Config::from_str_with_path(text, Path::new("test.toml"))?;
    c.validate()?;
    Ok(c)
}

#[test]
fn digest_algorithms_load_and_unknown_ones_are_refused() {
    let c = parse("[server]\ndigest_algorithms = [\"MD5\"]\n").unwrap();
    assert_eq!(c.server.digest_algorithms, ["MD5"]);
    assert!(parse("").unwrap().server.digest_algorithms.is_empty());
    let err = parse("[server]\ndigest_algorithms = [\"SHA-1\"]\n").unwrap_err();
    assert!(
        err.to_string().contains("server.digest_algorithms"),
        "{err}"
    );
}

#[tokio::test]
async fn md5_only_from_the_config_gives_one_md5_challenge() {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.digest_algorithms = vec!["MD5".into()];
    let server = Server::start(opts).await.unwrap();
    let mut bob = common::Peer::new(server.local_addr(), "bob", "bob").await;
    let req = bob.request(
        "REGISTER",
        "sip:isc.local",
        "sip:bob@isc.local",
        &[format!("Contact: <sip:bob@{}>", bob.addr())],
        "",
    );
    bob.send(req.clone()).await;
    let text = bob.recv_text().await;
    let challenges: Vec<&str> = text
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect();
    assert_eq!(challenges.len(), 1, "{text}");
    assert!(challenges[0].contains("algorithm=MD5"), "{text}");
    // and the MD5 answer registers
    let resp = bob.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 200);
    server.shutdown().await;
}
