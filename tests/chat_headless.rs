//! Headless mode's chat words end to end: two `run_headless` sessions on
//! in-memory pipes against the bundled server.

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
async fn headless_chat_commands_and_events() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let state = tempfile::tempdir().unwrap();
    let mut alice = Session::start(server.local_addr(), "alice", "laptop", state.path()).await;
    alice.expect("registered").await;
    let mut bob = Session::start(server.local_addr(), "bob", "phone", state.path()).await;
    bob.expect("registered").await;

    alice.say(r#"{"cmd":"chat","to":"bob"}"#).await;
    let calling = alice.expect("chat_calling").await;
    assert_eq!(calling["to"], "sip:bob@isc.local");
    let a = calling["chat"].as_u64().unwrap();
    let inv = bob.expect("chat_invited").await;
    assert_eq!(inv["from"], "sip:alice@isc.local");
    let b = inv["chat"].as_u64().unwrap();
    bob.say(&format!("accept {b}")).await;
    assert_eq!(alice.expect("chat_started").await["chat"], a);
    bob.expect("chat_started").await;

    alice
        .say(&format!(
            r#"{{"cmd":"chat_send","chat":{a},"text":"hello over msrp"}}"#
        ))
        .await;
    let sent = alice.expect("chat_sent").await;
    let m = bob.expect("chat_message").await;
    assert_eq!(m["text"], "hello over msrp");
    assert_eq!(m["from"], "sip:alice@isc.local");
    assert!(m["at"].is_string());
    assert_eq!(
        alice.expect("chat_delivered").await["message_id"],
        sent["message_id"]
    );

    bob.say(&format!("chat_typing {b}")).await;
    let c = alice.expect("chat_composing").await;
    assert_eq!(c["active"], true);
    bob.say(&format!("say {b} hi alice")).await;
    assert_eq!(alice.expect("chat_message").await["text"], "hi alice");

    alice.say(&format!("bye {a}")).await;
    assert_eq!(alice.expect("chat_ended").await["reason"], "normal");
    assert_eq!(bob.expect("chat_ended").await["reason"], "normal");

    alice.say("quit").await;
    alice.expect("stopped").await;
    alice.task.await.unwrap().unwrap();
    bob.say("quit").await;
    bob.expect("stopped").await;
    bob.task.await.unwrap().unwrap();
    server.shutdown().await;
}
