//! Headless mode end to end: two `run_headless` sessions (alice, bob) on
//! in-memory stdin/stdout pipes, against the bundled server.

use std::time::Duration;

use isc::client::headless::{ClientArgs, HeadlessOptions, run_headless};
use isc::config::Config;
use isc::server::runner::{Server, ServerOptions};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

const WAIT: Duration = Duration::from_secs(10);

struct Session {
    stdin: DuplexStream,
    stdout: Lines<BufReader<DuplexStream>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Session {
    async fn start(
        server: std::net::SocketAddr,
        user: &str,
        device: &str,
        state: &std::path::Path,
    ) -> Session {
        let args = ClientArgs {
            headless: true,
            server: Some(server.to_string()),
            user: Some(user.into()),
            password: Some(user.into()),
            device: Some(device.into()),
            state_dir: Some(state.to_path_buf()),
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

    async fn say(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next event named `name`, skipping others.
    async fn expect(&mut self, name: &str) -> Value {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(until, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {name} event in time"))
                .unwrap()
                .unwrap_or_else(|| panic!("stdout closed before {name}"));
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if v["event"] == name {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_headless_clients_chat() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let state = tempfile::tempdir().unwrap();
    let mut alice = Session::start(server.local_addr(), "alice", "tv", state.path()).await;
    let started = alice.expect("started").await;
    assert_eq!(started["aor"], "sip:alice@isc.local");
    let reg = alice.expect("registered").await;
    assert!(reg["gruu"].as_str().unwrap().contains("gr="));
    let mut bob = Session::start(server.local_addr(), "bob", "phone", state.path()).await;
    bob.expect("registered").await;

    alice.say("typing bob").await;
    let c = bob.expect("composing").await;
    assert_eq!(c["from"], "sip:alice@isc.local");
    assert_eq!(c["active"], true);
    alice
        .say(r#"{"cmd":"send","to":"sip:bob@isc.local","text":"hi bob","id":"a1"}"#)
        .await;
    let d = alice.expect("delivered").await;
    assert_eq!(d["id"], "a1");
    let m = bob.expect("message").await;
    assert_eq!(m["text"], "hi bob");
    assert_eq!(m["from"], "sip:alice@isc.local");

    bob.say("send alice hello back").await;
    assert_eq!(alice.expect("message").await["text"], "hello back");

    alice.say("what is this").await;
    assert!(
        alice.expect("error").await["reason"]
            .as_str()
            .unwrap()
            .contains("unknown")
    );
    alice.say("devices").await;
    let devs = alice.expect("devices").await;
    assert!(
        devs["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["self"] == true)
    );

    alice.say("quit").await;
    alice.expect("unregistered").await;
    alice.expect("stopped").await;
    alice.task.await.unwrap().unwrap();
    // EOF quits too
    bob.stdin.shutdown().await.unwrap();
    bob.expect("stopped").await;
    bob.task.await.unwrap().unwrap();
    server.shutdown().await;
}
