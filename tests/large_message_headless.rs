//! Large Message in headless mode (seed 003 9.x): the `send_file` word on
//! one side, `large_*` events on both, the saved path on the receiver's
//! stdout; a file that cannot be read is a `large_failed` line.

#[path = "headless_support/mod.rs"]
mod headless_support;

use headless_support::Session;
use isc::client::headless::{ClientArgs, HeadlessOptions, run_headless};
use isc::config::Config;
use isc::server::runner::{Server, ServerOptions};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

fn start(
    server: std::net::SocketAddr,
    user: &str,
    device: &str,
    state: &std::path::Path,
    downloads: Option<&std::path::Path>,
) -> Session {
    let args = ClientArgs {
        headless: true,
        server: Some(server.to_string()),
        user: Some(user.into()),
        password: Some(user.into()),
        device: Some(device.into()),
        state_dir: Some(state.to_path_buf()),
        downloads_dir: downloads.map(|d| d.to_path_buf()),
        ..Default::default()
    };
    let opts = HeadlessOptions::resolve(&args, &Config::default()).expect("options");
    let (stdin, their_stdin) = tokio::io::duplex(64 * 1024);
    let (their_stdout, stdout) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(run_headless(
        opts,
        BufReader::new(their_stdin),
        their_stdout,
    ));
    Session {
        stdin,
        stdout: BufReader::new(stdout).lines(),
        task,
    }
}

/// Every event up to and including the first named `last`.
async fn until(s: &mut Session, last: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + headless_support::WAIT;
    let mut out = Vec::new();
    loop {
        let line = tokio::time::timeout_at(deadline, s.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {last} in time; saw {out:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stdout closed before {last}"));
        let v: Value = serde_json::from_str(&line).unwrap();
        let done = v["event"] == last;
        out.push(v);
        if done {
            return out;
        }
    }
}

fn named<'a>(evs: &'a [Value], name: &str) -> Vec<&'a Value> {
    evs.iter().filter(|v| v["event"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_file_word_and_large_events() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let state = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut alice = start(addr, "alice", "laptop", state.path(), None);
    let mut bob = start(addr, "bob", "phone", state.path(), Some(downloads.path()));
    alice.expect("registered").await;
    bob.expect("registered").await;

    let body: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = files.path().join("notes.txt");
    std::fs::write(&path, &body).unwrap();
    let cmd = serde_json::json!({
        "cmd": "send_file", "to": "bob", "path": path, "description": "meeting notes",
    });
    alice.say(&cmd.to_string()).await;

    let b = until(&mut bob, "large_saved").await;
    let incoming = named(&b, "large_incoming");
    assert_eq!(incoming.len(), 1, "{b:?}");
    assert_eq!(incoming[0]["from"], "sip:alice@isc.local");
    assert_eq!(incoming[0]["size"], body.len());
    assert_eq!(incoming[0]["content_type"], "text/plain");
    let progress = named(&b, "large_progress");
    assert!(progress.len() >= 5, "{progress:?}");
    assert!(progress.iter().all(|p| p["direction"] == "received"));
    assert_eq!(progress.last().unwrap()["percent"], 100);
    let saved = named(&b, "large_saved")[0];
    assert_eq!(saved["description"], "meeting notes");
    let saved_path = std::path::PathBuf::from(saved["path"].as_str().unwrap());
    assert_eq!(saved_path, downloads.path().join("notes.txt"));
    assert_eq!(
        Sha256::digest(std::fs::read(&saved_path).unwrap()),
        Sha256::digest(&body)
    );
    // an attachment, even of text, is saved and not shown as a chat message
    assert!(named(&b, "chat_message").is_empty(), "{b:?}");

    let a = until(&mut alice, "chat_ended").await;
    let sent = named(&a, "large_progress");
    assert!(sent.iter().all(|p| p["direction"] == "sent"));
    assert_eq!(sent.last().unwrap()["bytes"], body.len());
    assert_eq!(named(&a, "large_sent")[0]["size"], body.len());
    assert_eq!(a.last().unwrap()["reason"], "normal");

    // the text form, with a file that is not there
    alice.say("send_file bob /nonexistent/isc/x.bin").await;
    let f = alice.expect("large_failed").await;
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/isc/x.bin"),
        "{f}"
    );
    // a bad disposition is refused before anything is sent
    alice
        .say(r#"{"cmd":"send_file","to":"bob","path":"/x","disposition":"later"}"#)
        .await;
    let e = alice.expect("error").await;
    assert!(e["reason"].as_str().unwrap().contains("later"), "{e}");

    alice.say("quit").await;
    bob.say("quit").await;
    alice.expect("stopped").await;
    bob.expect("stopped").await;
    server.shutdown().await;
}
