//! Interop with SIPp 3.6.1 (software nobody here wrote) over loopback, with
//! the scenario files in tests/sipp/.
//!
//! The server is configured to offer Digest MD5 only: SIPp 3.6.1 reads the
//! first `WWW-Authenticate` / `Proxy-Authenticate` it gets and computes MD5
//! (or AKA) only, so with our default challenges (SHA-256 first, then MD5,
//! RFC 8760 §2.4) it aborts with "authentication must use MD5 or
//! AKAv1-MD5".
//!
//!
//! SIPp 3.6.1 also puts `uri="sip:<remote ip>:<remote port>"` (or
//! `sip:<-auth_uri>`) in its credentials, not the Request-URI. The REGISTER
//! runs give `-auth_uri isc.local`, which matches `REGISTER sip:isc.local`, so
//! the registrar keeps its uri check (RFC 7616 §3.4.6); the one run that also
//! answers a 407 for `MESSAGE sip:bob@isc.local` needs the check off.
//!
//! These tests need `sipp` on the PATH (Debian: `sip-tester`); without it
//! they fail, they do not skip.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use isc::client::ClientEvent;
use isc::demo::Device;
use isc::proto::sip::digest::Algorithm;
use isc::server::runner::{Server, ServerHandle, ServerOptions};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const DOMAIN: &str = "isc.local";

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

fn require_sipp() {
    let found = std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "sipp is not installed: these interop tests need SIPp 3.6.1 \
         (Debian/Ubuntu: apt-get install sip-tester)"
    );
}

/// A UDP port free right now on loopback.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// MD5 challenges only; `check_uri: false` also accepts SIPp's credentials
/// whose uri is not the Request-URI (see the module docs).
async fn md5_server(check_uri: bool) -> ServerHandle {
    let mut options = ServerOptions::loopback_demo();
    options.digest = Some(if check_uri {
        |c| c.algorithms = vec![Algorithm::Md5]
    } else {
        |c| {
            c.algorithms = vec![Algorithm::Md5];
            c.check_uri = false;
        }
    });
    Server::start(options).await.expect("server starts")
}

/// `timeout 20 sipp ARGS -i 127.0.0.1 -p PORT -m 1 -timeout 10s
/// -timeout_error -nostdin`, with stdout/stderr captured. The child is
/// killed (by its pid) if the test drops it.
fn sipp(port: u16, args: &[&str]) -> Child {
    let port = port.to_string();
    Command::new("timeout")
        .arg("20")
        .arg("sipp")
        .args(args)
        .args(["-i", "127.0.0.1", "-p", &port, "-m", "1"])
        .args(["-timeout", "10s", "-timeout_error", "-nostdin"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn timeout/sipp")
}

fn explain(what: &str, out: &Output, logs: &[&Path]) -> String {
    let mut s = format!(
        "{what}: exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for l in logs {
        s.push_str(&format!(
            "\n--- {}\n{}",
            l.display(),
            std::fs::read_to_string(l).unwrap_or_default()
        ));
    }
    s
}

async fn registered(dev: &Device) {
    let ok = dev
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, ClientEvent::Registered { .. })
        })
        .await;
    assert!(
        ok.is_some(),
        "{} did not register: {:?}",
        dev.name(),
        dev.events()
    );
}

/// `isc client --headless` (the real binary) as `user`: JSON events out,
/// commands in.
struct HeadlessClient {
    child: Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: Vec<Value>,
}

impl HeadlessClient {
    fn start(server: SocketAddr, user: &str, device: &str, state: &Path) -> HeadlessClient {
        let server = server.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_isc"))
            .args([
                "client",
                "--headless",
                "--server",
                &server,
                "--domain",
                DOMAIN,
            ])
            .args(["--user", user, "--password", user, "--device", device])
            .arg("--state-dir")
            .arg(state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn isc client --headless");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        HeadlessClient {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next event named `name` (earlier ones are kept in `seen`).
    async fn event(&mut self, name: &str, within: Duration) -> Value {
        let until = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(until, self.lines.next_line()).await;
            let line = match line {
                Ok(Ok(Some(l))) => l,
                other => panic!("no `{name}` event ({other:?}); saw {:#?}", self.seen),
            };
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            self.seen.push(v.clone());
            if v["event"] == name {
                return v;
            }
        }
    }

    async fn quit(mut self) {
        self.stdin.write_all(b"quit\n").await.unwrap();
        self.event("stopped", Duration::from_secs(5)).await;
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .expect("isc client exits after quit")
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// (a) SIPp REGISTERs carol with Digest MD5, then sends a MESSAGE to bob,
/// answering the proxy's 407; bob's headless isc client reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_registers_with_digest_and_pages_a_headless_isc_client() {
    require_sipp();
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server(false).await;
    let addr: SocketAddr = server.local_addr();
    let mut bob = HeadlessClient::start(addr, "bob", "phone", dir.path());
    let reg = bob.event("registered", Duration::from_secs(5)).await;
    assert_eq!(reg["aor"], "sip:bob@isc.local");

    let messages = dir.path().join("uac_msg.log");
    let errors = dir.path().join("uac_err.log");
    let target = addr.to_string();
    let child = sipp(
        free_port(),
        &[
            &target,
            "-sf",
            scenario("uac_register_message.xml").to_str().unwrap(),
            "-s",
            "bob",
            "-au",
            "carol",
            "-ap",
            "carol",
            "-key",
            "user",
            "carol",
            "-key",
            "domain",
            DOMAIN,
            "-key",
            "text",
            "hello from sipp",
            "-trace_msg",
            "-message_file",
            messages.to_str().unwrap(),
            "-trace_err",
            "-error_file",
            errors.to_str().unwrap(),
        ],
    );
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        explain("sipp uac", &out, &[&messages, &errors])
    );
    let trace = std::fs::read_to_string(&messages).unwrap();
    assert!(trace.contains("algorithm=MD5"), "{trace}");
    assert!(trace.contains("Proxy-Authorization: Digest"), "{trace}");

    let msg = bob.event("message", Duration::from_secs(5)).await;
    assert!(
        msg["text"]
            .as_str()
            .is_some_and(|t| t.contains("hello from sipp")),
        "{msg}"
    );
    assert_eq!(msg["content_type"], "text/plain", "{msg}");
    assert!(
        msg["from"]
            .as_str()
            .is_some_and(|f| f.contains("sip:carol@isc.local")),
        "{msg}"
    );
    assert!(
        msg["asserted_identity"]
            .as_str()
            .is_some_and(|a| a.contains("sip:carol@isc.local")),
        "{msg}"
    );
    bob.quit().await;
    server.shutdown().await;
}

/// (b) A SIPp UAS registered (by a second SIPp, with Digest MD5) as ted
/// receives the MESSAGE an isc client sends to ted's AOR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_client_pages_a_registered_sipp_uas() {
    require_sipp();
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server(true).await;
    let addr = server.local_addr();

    let uas_port = free_port();
    let uas_log = dir.path().join("uas.log");
    let uas_err = dir.path().join("uas_err.log");
    let uas = sipp(
        uas_port,
        &[
            "-sf",
            scenario("msg_uas.xml").to_str().unwrap(),
            "-trace_logs",
            "-log_file",
            uas_log.to_str().unwrap(),
            "-trace_err",
            "-error_file",
            uas_err.to_str().unwrap(),
        ],
    );

    let reg_err = dir.path().join("reg_err.log");
    let target = addr.to_string();
    let contact_port = uas_port.to_string();
    let reg = sipp(
        free_port(),
        &[
            &target,
            "-sf",
            scenario("reg_contact.xml").to_str().unwrap(),
            "-auth_uri",
            DOMAIN,
            "-au",
            "ted",
            "-ap",
            "ted",
            "-key",
            "user",
            "ted",
            "-key",
            "domain",
            DOMAIN,
            "-key",
            "contact_port",
            &contact_port,
            "-trace_err",
            "-error_file",
            reg_err.to_str().unwrap(),
        ],
    )
    .wait_with_output()
    .await
    .unwrap();
    assert_eq!(
        reg.status.code(),
        Some(0),
        "{}",
        explain("sipp register", &reg, &[&reg_err])
    );

    let alice = Device::start("alice/tv", DOMAIN, "alice", addr)
        .await
        .unwrap();
    registered(&alice).await;
    alice
        .message("sip:ted@isc.local", "hello sipp from isc")
        .unwrap();
    let delivered = alice
        .wait_for(Duration::from_secs(8), |e| {
            matches!(
                e,
                ClientEvent::MessageDelivered { .. } | ClientEvent::MessageFailed { .. }
            )
        })
        .await;
    let out = uas.wait_with_output().await.unwrap();
    assert!(
        matches!(
            delivered,
            Some(ClientEvent::MessageDelivered { status: 200, .. })
        ),
        "{delivered:?}\n{}",
        explain("sipp uas", &out, &[&uas_log, &uas_err])
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        explain("sipp uas", &out, &[&uas_log, &uas_err])
    );
    let log = std::fs::read_to_string(&uas_log).unwrap();
    assert!(log.contains("got MESSAGE ct= text/plain"), "{log}");
    assert!(log.contains("body=hello sipp from isc"), "{log}");
    alice.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}
