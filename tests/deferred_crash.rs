//! Crash safety of the deferred store: the real `isc server` binary (its
//! own `--config` with a temp `data_dir`, `--listen 127.0.0.1:0`) is killed
//! with SIGKILL again and again while a raw sender sends N pager messages
//! to offline bob, resending every one not yet acknowledged. Then:
//! the store holds each Message-ID exactly once; bob's real client
//! (`spawn_client`) registers and every message reaches it over MSRP at
//! least once, though the server is killed at random moments of the push
//! (also between the client's MSRP 200 and the delete), and the client's
//! view shows each exactly once (it drops a message id it already has).
//!
//! N is the 10,000 (`DEFERRED_CRASH_N` overrides it): about 90 s
//! on a shared 2-core machine, ~45 server lives. Bounded: 600 s.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Peer, bump_cseq, new_branch};
use isc::client::deferred::DeferredEvent;
use isc::client::runner::spawn_client;
use isc::client::{ClientEvent, Command as ClientCommand, UaConfig};
use isc::proto::sip::headers::HeadersExt;
use isc::server::deferred_message_store::{DeferredStore, SqliteDeferred};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BOB: &str = "sip:bob@isc.local";

fn write_config(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndomain = \"isc.local\"\ndata_dir = \"{}\"\n\n\
         [[server.users]]\nname = \"bob\"\npassword = \"bob\"\n\n\
         [[server.users]]\nname = \"carol\"\npassword = \"carol\"\n",
        data.display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A port free for UDP and TCP now (the server's fixed address over its lives).
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts the binary; returns it and its SIP address.
async fn spawn_server(dir: &Path, config: &Path) -> (Child, SocketAddr) {
    spawn_server_on(dir, config, 0).await
}

/// Starts the binary on `port` (0: any).
async fn spawn_server_on(dir: &Path, config: &Path, port: u16) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_isc"))
        .arg("server")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        // Its log goes under the temp dir.
        .env("HOME", dir)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("isc server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("server prints its address")
        .unwrap()
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    // Keep reading its stdout so it never blocks.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Sends pager message `n` once (answering one digest challenge); the final
/// status, or None if the server did not answer in time.
async fn send_once(peer: &mut Peer, n: usize) -> Option<u16> {
    let mut req = peer.request(
        "MESSAGE",
        BOB,
        BOB,
        &[
            format!("Message-ID: crash-{n}"),
            "Content-Type: text/plain".into(),
        ],
        &format!("message {n}"),
    );
    let call = req.headers.get_raw("Call-ID").unwrap();
    for attempt in 0..2 {
        peer.digest.authorize(&mut req, "0a4f113b");
        peer.send(req.clone()).await;
        loop {
            let rsip::SipMessage::Response(resp) = peer.recv_within(0.5).await? else {
                continue;
            };
            if resp.headers.get_raw("Call-ID").as_deref() != Some(call.as_str()) {
                continue;
            }
            let code = resp.status_code.code();
            if code < 200 {
                continue;
            }
            if code == 407 && attempt == 0 {
                peer.digest.handle_challenge(&resp).ok()?;
                let seq = isc::proto::sip::build::cseq(&req.headers)?.0 + 1;
                bump_cseq(&mut req, seq);
                let branch = format!("z9hG4bK{}", peer.token());
                new_branch(&mut req, &branch);
                req.headers.remove_named("Proxy-Authorization");
                break;
            }
            return Some(code);
        }
    }
    None
}

fn message_id_of(sip: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(sip);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .map(|s| s.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged_and_duplicates_nothing() {
    let n: usize = std::env::var("DEFERRED_CRASH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let run = async {
        // Phase 1: send under fire.
        let mut acked = vec![false; n];
        let mut kills = 0;
        let mut resent_acked = 0;
        while acked.iter().any(|a| !a) {
            let (child, addr) = spawn_server(dir.path(), &config).await;
            let life = Duration::from_millis(rand::random_range(80..400));
            let killer = tokio::spawn(async move {
                let mut child = child;
                tokio::time::sleep(life).await;
                // SIGKILL, at whatever moment the server is in.
                let _ = child.start_kill();
                let _ = child.wait().await;
            });
            let mut peer = Peer::new(addr, "carol", "carol").await;
            // In order: the first one not yet acknowledged.
            while let Some(i) = acked.iter().position(|a| !a) {
                match send_once(&mut peer, i).await {
                    Some(202) => {
                        acked[i] = true;
                        // Now and then resend an acknowledged one: stored once.
                        if i % 97 == 0 && send_once(&mut peer, i / 2).await == Some(202) {
                            resent_acked += 1;
                        }
                    }
                    Some(code) => panic!("message {i} got {code}"),
                    None => {
                        if killer.is_finished() {
                            break;
                        }
                    }
                }
            }
            if !killer.is_finished() {
                killer.abort();
            }
            kills += 1;
        }
        eprintln!(
            "sent {n} messages across {kills} server lives; {resent_acked} acknowledged resends"
        );

        // The store holds each Message-ID exactly once.
        let store = SqliteDeferred::open_in(&dir.path().join("data")).unwrap();
        let pending = store.pending(BOB).unwrap();
        let ids: Vec<String> = pending
            .iter()
            .map(|m| message_id_of(&m.message.request).expect("stored with its Message-ID"))
            .collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "no Message-ID stored twice");
        assert_eq!(ids.len(), n, "every acknowledged message stored");
        drop(store);

        // Phase 2: bob's real client takes the push while the server is
        // killed at random moments of it (also between an MSRP 200 and the
        // delete); after each restart the client registers again.
        let port = free_port();
        let mut cfg = UaConfig::new(
            "bob",
            "isc.local",
            "bob",
            "phone",
            "urn:uuid:00000000-0000-4000-8000-0000000000b0",
            SocketAddr::from(([127, 0, 0, 1], port)),
            "127.0.0.1:0".parse().unwrap(),
        );
        cfg.retry_base = Duration::from_millis(100);
        cfg.retry_max = Duration::from_millis(500);
        let mut bob = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("bob's client binds");
        let mut shown: Vec<String> = Vec::new();
        let mut on_wire: BTreeSet<String> = BTreeSet::new();
        let mut duplicates = 0usize;
        let mut lives = 0;
        let mut done = false;
        while !done {
            lives += 1;
            assert!(lives < 40, "push does not finish");
            let (mut child, _) = spawn_server_on(dir.path(), &config, port).await;
            let _ = bob.send(ClientCommand::Register).await;
            // The first lives die during the push; the last runs to its BYE.
            let life = (lives <= 4).then(|| Duration::from_millis(rand::random_range(50..600)));
            let until = tokio::time::Instant::now() + life.unwrap_or(Duration::from_secs(120));
            while let Ok(Some(ev)) = tokio::time::timeout_at(until, bob.events.recv()).await {
                match ev {
                    ClientEvent::Deferred(DeferredEvent::Message { message, .. }) => {
                        let mid = message.message_id.clone().expect("the pager's Message-ID");
                        on_wire.insert(mid.clone());
                        shown.push(mid);
                    }
                    ClientEvent::Deferred(DeferredEvent::Duplicate { key, .. }) => {
                        duplicates += 1;
                        on_wire.insert(key.trim_start_matches("mid:").to_string());
                    }
                    ClientEvent::Deferred(DeferredEvent::Ended { .. })
                        if life.is_none() && on_wire.len() == n =>
                    {
                        done = true;
                        break;
                    }
                    _ => {}
                }
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
            if life.is_none() && !done {
                // the last life ended without everything: one more
                assert!(lives < 40, "push does not finish");
            }
        }
        bob.abort();
        eprintln!(
            "bob's client: {} shown, {duplicates} duplicates dropped, over {lives} server lives",
            shown.len()
        );
        let expected: BTreeSet<String> = (0..n).map(|i| format!("crash-{i}")).collect();
        assert_eq!(on_wire, expected, "every acknowledged message reached bob");
        let unique: BTreeSet<&String> = shown.iter().collect();
        assert_eq!(unique.len(), shown.len(), "bob's view shows none twice");
        assert_eq!(
            shown.len(),
            n,
            "bob's view shows each acknowledged message once"
        );
        let store = SqliteDeferred::open_in(&dir.path().join("data")).unwrap();
        // The last push ran to its end: everything confirmed is gone.
        assert_eq!(store.count(BOB).unwrap(), 0);
    };
    tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the crash test finishes within 600 s");
}
