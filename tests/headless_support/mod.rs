//! A headless client session on in-memory pipes (`run_headless`), for the
//! tests of headless mode's vocabulary.
#![allow(dead_code)]

use std::time::Duration;

use isc::client::headless::{ClientArgs, HeadlessOptions, run_headless};
use isc::config::Config;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Session {
    pub stdin: DuplexStream,
    pub stdout: Lines<BufReader<DuplexStream>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Session {
    pub async fn start(
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

    pub async fn say(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next event named `name`, skipping others.
    pub async fn expect(&mut self, name: &str) -> Value {
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
