//! Shared by the `peers_*` tests: real third-party programs (baresip,
//! linphonec, GStreamer, ffmpeg) next to the bundled server, each in its own
//! temp dir (HOME too) with its own loopback ports, its life bounded by
//! `timeout` and ended only by its own PID. The recipes are in README.md
//! ("Works with").
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isc::proto::sip::digest::Algorithm;
use isc::server::runner::{Direction, Server, ServerHandle, ServerOptions};
use tokio::process::{Child, Command};

pub const DOMAIN: &str = "isc.local";

/// True when `bin` can be run; otherwise prints why the test is skipped
/// (CI installs every peer, see `.ci/run`).
pub fn have(bin: &str, version_arg: &str, package: &str) -> bool {
    let found = std::process::Command::new(bin)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED: `{bin}` is not installed (Debian: apt-get install {package})");
    }
    found
}

/// A UDP port free right now on loopback.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The demo cast in `isc.local`, challenging with Digest MD5 only: baresip
/// 1.0.0 (libre) computes MD5 only, and answers the first challenge it
/// reads (ours are SHA-256 first, RFC 8760 §2.4).
pub async fn md5_server() -> ServerHandle {
    let mut options = ServerOptions::loopback_demo();
    options.config.users = ["alice", "bob", "carol", "ted"]
        .iter()
        .map(|n| isc::config::UserConfig::new(n, n))
        .collect();
    options.config.content_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/content").into();
    options.digest = Some(|c| c.algorithms = vec![Algorithm::Md5]);
    Server::start(options).await.expect("server starts")
}

/// One SIP message seen by the server, as text.
#[derive(Debug, Clone)]
pub struct Seen {
    pub direction: Direction,
    pub peer: SocketAddr,
    pub text: String,
}

impl Seen {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    /// The value of header `name` (first one, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.text
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .lines()
            .skip(1)
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
    }

    pub fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    pub fn cseq_method(&self) -> String {
        self.header("CSeq")
            .and_then(|c| c.split_whitespace().nth(1).map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Everything on the server's wire from now on.
#[derive(Clone)]
pub struct Wire(Arc<Mutex<Vec<Seen>>>);

impl Wire {
    pub fn tap(server: &ServerHandle) -> Wire {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut rx = server.wire();
        let task_log = log.clone();
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                let seen = Seen {
                    direction: ev.direction,
                    peer: ev.peer,
                    text: String::from_utf8_lossy(&ev.bytes).into_owned(),
                };
                task_log.lock().unwrap().push(seen);
            }
        });
        Wire(log)
    }

    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub fn find(&self, pred: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        self.all().into_iter().filter(|s| pred(s)).collect()
    }

    /// Waits until a message satisfies `pred`.
    pub async fn wait(&self, within: Duration, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
        let end = tokio::time::Instant::now() + within;
        loop {
            if let Some(s) = self.all().into_iter().find(|s| pred(s)) {
                return Some(s);
            }
            if tokio::time::Instant::now() > end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message satisfying `pred`, once there is at least one (or
    /// after 5 s): the tap task may lag behind the events a test waits on.
    pub async fn matching(&self, pred: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        let _ = self.wait(Duration::from_secs(5), &pred).await;
        self.find(pred)
    }

    /// The last message satisfying `pred`, waiting up to 5 s for one.
    pub async fn last(&self, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
        self.matching(pred).await.pop()
    }

    /// The whole trace, for failure messages.
    pub fn dump(&self) -> String {
        self.all()
            .iter()
            .map(|s| format!("--- {:?} {}\n{}", s.direction, s.peer, s.text))
            .collect()
    }
}

/// `in` and a request line starting with `start` (e.g. `MESSAGE sip:alice`).
pub fn request_in(start: &'static str) -> impl Fn(&Seen) -> bool {
    move |s| s.direction == Direction::In && s.first_line().starts_with(start)
}

/// Waits for the 200 the server sends to `user`'s REGISTER (a peer
/// program's registration).
pub async fn peer_registered(wire: &Wire, user: &str, proc: &PeerProcess) {
    let aor = format!("sip:{user}@{DOMAIN}");
    let ok = wire
        .wait(Duration::from_secs(15), |s| {
            s.direction == Direction::Out
                && s.first_line().starts_with("SIP/2.0 200")
                && s.cseq_method() == "REGISTER"
                && s.header("To").is_some_and(|t| t.contains(&aor))
        })
        .await;
    assert!(
        ok.is_some(),
        "{user} did not register\n{}\n{}",
        proc.output(),
        wire.dump()
    );
}

/// A running peer program: `timeout SECS bin args`, output to `log`.
pub struct PeerProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl PeerProcess {
    /// Spawns `timeout -s INT secs bin args` in `dir` with HOME=`dir/home`,
    /// stdout and stderr to `dir/<name>.log`, stdin from `stdin` (a pipe
    /// when Some is asked).
    pub fn spawn(
        dir: &Path,
        name: &str,
        secs: u32,
        bin: &str,
        args: &[&str],
        piped_stdin: bool,
    ) -> PeerProcess {
        let home = dir.join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new("timeout")
            .args(["-s", "INT", "-k", "3", &secs.to_string(), bin])
            .args(args)
            .current_dir(dir)
            .env("HOME", &home)
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        PeerProcess { child, log }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the output contains `needle`.
    pub async fn wait_output(&self, needle: &str, within: Duration) -> bool {
        let end = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < end {
            if self.output().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn write_line(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        if let Some(stdin) = self.child.stdin.as_mut() {
            stdin.write_all(line.as_bytes()).await.unwrap();
            stdin.write_all(b"\n").await.unwrap();
            stdin.flush().await.unwrap();
        }
    }

    /// Waits for the process to end by itself (its `-t`, `quit` or the
    /// outer `timeout`), else ends it by its PID.
    pub async fn finish(mut self, within: Duration) -> Option<i32> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                self.stop().await;
                None
            }
        }
    }

    /// SIGTERM to our `timeout`, which passes it on to the peer and
    /// SIGKILLs it 3 s later (`-k 3`) if it is still there.
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            terminate(pid);
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

impl Drop for PeerProcess {
    /// A failed test still ends its peer: SIGTERM to `timeout`, which
    /// forwards it and SIGKILLs the peer 3 s later if need be (no SIGKILL
    /// to `timeout` itself, which would orphan the peer).
    fn drop(&mut self) {
        if let (Ok(None), Some(pid)) = (self.child.try_wait(), self.child.id()) {
            terminate(pid);
        }
    }
}

/// `kill -TERM pid`, for a process this test started: `timeout` forwards
/// the signal to the program it runs.
pub fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A baresip 1.0.0 configuration directory for `user` (password = name) of
/// the isc server at `server`, listening on `sip_port`: PCMU only, sine
/// source, ALSA null sink (PEERS.md §3), sndfile dumps, `contact` as its one
/// contact for `/message`.
pub fn baresip_dir(
    dir: &Path,
    user: &str,
    server: SocketAddr,
    sip_port: u16,
    contact: &str,
    extra_account: &str,
) -> PathBuf {
    let conf = dir.join("baresip");
    std::fs::create_dir_all(&conf).unwrap();
    let config = format!(
        "poll_method\t\tepoll\n\
         sip_listen\t\t127.0.0.1:{sip_port}\n\
         net_interface\t\t127.0.0.1\n\
         audio_player\t\talsa,null\n\
         audio_source\t\tausine,440\n\
         audio_alert\t\talsa,null\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tg711.so\n\
         module\t\t\tausine.so\n\
         module\t\t\talsa.so\n\
         module_tmp\t\taccount.so\n\
         module_app\t\tcontact.so\n\
         module_app\t\tmenu.so\n\
         ausrc_srate\t\t48000\n\
         ausrc_channels\t\t2\n"
    );
    std::fs::write(conf.join("config"), config).unwrap();
    // RFC 3261 §8.1.2: every request goes to the isc server (outbound proxy)
    let account = format!(
        "<sip:{user}@{DOMAIN}>;auth_pass={user};outbound=\"sip:{server};transport=udp\";regint=60;audio_codecs=PCMU{extra_account}\n"
    );
    std::fs::write(conf.join("accounts"), account).unwrap();
    std::fs::write(conf.join("contacts"), format!("\"Peer\" <{contact}>\n")).unwrap();
    conf
}

/// A linphonec 5.1 `linphonerc` for `user` (password = name) registering
/// at `server` from `sip_port` (PEERS.md §4), no GRUU trouble: the isc
/// registrar routes the GRUU itself.
pub fn linphonerc(dir: &Path, user: &str, server: SocketAddr, sip_port: u16) -> PathBuf {
    let path = dir.join("linphonerc");
    let rtp = free_port();
    let rc = format!(
        "[sip]\nsip_port={sip_port}\nsip_tcp_port=0\nsip_tls_port=0\ndefault_proxy=0\n\
         guess_hostname=1\nipv6_enabled=0\n\
         [net]\nbind_address=127.0.0.1\n\
         [proxy_0]\nreg_proxy=<sip:{server};transport=udp>\nreg_route=<sip:{server};transport=udp;lr>\n\
         reg_identity=sip:{user}@{DOMAIN}\nreg_expires=60\nreg_sendregister=1\npublish=0\n\
         [auth_info_0]\nusername={user}\npasswd={user}\nrealm={DOMAIN}\ndomain={DOMAIN}\n\
         [rtp]\naudio_rtp_port={rtp}\n\
         [sound]\nechocancellation=0\n\
         [misc]\nenable_basic_to_client_group_chat_room_migration=0\n"
    );
    std::fs::write(&path, rc).unwrap();
    path
}

/// linphonec with `rc`, fed commands on stdin (it has no batch mode),
/// its debug log in `dir/linphone-debug.log`.
pub fn linphonec(dir: &Path, rc: &Path, secs: u32) -> PeerProcess {
    let log = dir.join("linphone-debug.log");
    PeerProcess::spawn(
        dir,
        "linphonec",
        secs,
        "linphonec",
        &[
            "-c",
            rc.to_str().unwrap(),
            "-d",
            "1",
            "-l",
            log.to_str().unwrap(),
        ],
        true,
    )
}

/// `isc client --headless` (the real binary) as `user` on `device`: what
/// its user sees is the JSON events on its stdout.
pub struct HeadlessClient {
    child: Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    pub seen: Vec<serde_json::Value>,
}

impl HeadlessClient {
    pub fn start(server: SocketAddr, user: &str, device: &str, state: &Path) -> HeadlessClient {
        let mut child = Command::new(env!("CARGO_BIN_EXE_isc"))
            .args(["client", "--headless", "--server", &server.to_string()])
            .args(["--domain", DOMAIN, "--user", user, "--password", user])
            .args(["--device", device, "--state-dir"])
            .arg(state)
            .env("HOME", state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn isc client --headless");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        HeadlessClient {
            child,
            stdin,
            lines: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)),
            seen: Vec::new(),
        }
    }

    pub async fn command(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next event named `name` (the ones before it are kept in `seen`).
    pub async fn event(&mut self, name: &str, within: Duration) -> serde_json::Value {
        let until = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(until, self.lines.next_line()).await;
            let Ok(Ok(Some(line))) = line else {
                panic!("no `{name}` event ({line:?}); saw {:#?}", self.seen);
            };
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            self.seen.push(v.clone());
            if v["event"] == name {
                return v;
            }
        }
    }

    /// `quit`, then every event up to `stopped`; the process exits 0.
    pub async fn quit(mut self) -> Vec<serde_json::Value> {
        self.command("quit").await;
        self.event("stopped", Duration::from_secs(5)).await;
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .expect("isc client exits after quit")
            .unwrap();
        assert!(status.success(), "{status:?}");
        self.seen
    }
}
