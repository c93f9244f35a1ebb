//! Kamailio as the SIP/IP core in front of `isc server` in AS mode, for the
//! `kamailio_*` tests (and any other deployment test: `#[path]` it in).
//!
//! [`Site::start`] picks free loopback ports, starts `isc server` in AS mode
//! (`mode = "as"`, `core` = Kamailio), writes the shipped
//! `assets/deploy/kamailio/kamailio.cfg` with those ports and the users'
//! include into a temp dir, and runs `kamailio` there in the foreground under
//! `timeout`. Dropping the [`Kamailio`] stops the process it started (by
//! PID); when a test panics its log is printed. Returns `None`, after
//! printing why, when the `kamailio` binary is absent.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isc::config::{ServerConfig, ServerMode};
use isc::server::kamailio::{KamailioSite, write_site};
use isc::server::runner::{Direction, Server, ServerHandle, ServerOptions, WireEvent};

/// The longest a Kamailio started by a test may live.
const KAMAILIO_LIFETIME_SECS: u32 = 120;

/// The `kamailio` binary: on PATH, else Debian's `/usr/sbin/kamailio`
/// (PATH of a non-root user lacks /usr/sbin).
pub fn kamailio_binary() -> Option<PathBuf> {
    ["kamailio", "/usr/sbin/kamailio"]
        .into_iter()
        .map(PathBuf::from)
        .find(|bin| {
            Command::new(bin)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Whether `kamailio` can be run; prints the reason to skip when not.
pub fn kamailio_present() -> bool {
    let found = kamailio_binary().is_some();
    if !found {
        eprintln!("skipping: the kamailio binary is not installed (apt-get install kamailio)");
    }
    found
}

/// A loopback port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port")
}

/// A running Kamailio (the process is `timeout … kamailio -DD -E`).
pub struct Kamailio {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    child: Child,
}

impl Kamailio {
    /// Writes the deployment for `site` / `config` into `dir` and starts
    /// Kamailio; returns once it answers on `site.core`.
    pub fn start(dir: &Path, site: &KamailioSite, config: &ServerConfig) -> Kamailio {
        write_site(dir, site, config).expect("deployment written");
        let run = dir.join("run");
        std::fs::create_dir_all(&run).expect("run dir");
        let log = std::fs::File::create(dir.join("kamailio.log")).expect("log file");
        let bin = kamailio_binary().expect("kamailio installed");
        let child = Command::new("timeout")
            .arg(KAMAILIO_LIFETIME_SECS.to_string())
            .arg(bin)
            .arg("-f")
            .arg(dir.join("kamailio.cfg"))
            .args(["-DD", "-E", "-Y"])
            .arg(&run)
            .arg("-P")
            .arg(run.join("kamailio.pid"))
            .arg("-w")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("kamailio starts");
        let mut k = Kamailio {
            addr: site.core,
            dir: dir.to_path_buf(),
            child,
        };
        k.wait_ready();
        k
    }

    /// Waits until Kamailio answers an OPTIONS (any response will do).
    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let me = sock.local_addr().expect("probe addr");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        let mut n = 0;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kamailio exited ({status}):\n{}", self.log());
            }
            n += 1;
            let probe = format!(
                "OPTIONS sip:{core} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@isc.local>;tag=p\r\nTo: <sip:{core}>\r\nCall-ID: probe-{n}@{me}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n",
                core = self.addr
            );
            let _ = sock.send_to(probe.as_bytes(), self.addr);
            if let Ok((len, _)) = sock.recv_from(&mut buf)
                && buf[..len].starts_with(b"SIP/2.0 ")
            {
                return;
            }
        }
        panic!("kamailio did not answer on {}:\n{}", self.addr, self.log());
    }

    /// What Kamailio logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- kamailio.log ---\n{}", self.log());
        }
        // SIGTERM to the `timeout` we started; it passes it on to kamailio,
        // whose main process stops its children.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message on the AS's wire, kept for assertions.
#[derive(Clone, Default)]
pub struct WireLog(Arc<Mutex<Vec<WireEvent>>>);

impl WireLog {
    pub fn follow(server: &ServerHandle) -> WireLog {
        let log = WireLog::default();
        let mut rx = server.wire();
        let sink = log.0.clone();
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                if let Ok(mut v) = sink.lock() {
                    v.push(ev);
                }
            }
        });
        log
    }

    /// The SIP messages seen so far in `direction`, as text.
    pub fn texts(&self, direction: Direction) -> Vec<(SocketAddr, String)> {
        self.0
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|e| e.direction == direction)
                    .map(|e| (e.peer, String::from_utf8_lossy(&e.bytes).into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (up to 5 s) until `count` messages in `direction` start with
    /// `start_line_prefix`; returns them.
    pub async fn wait_for(
        &self,
        direction: Direction,
        start_line_prefix: &str,
        count: usize,
    ) -> Vec<(SocketAddr, String)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found: Vec<_> = self
                .texts(direction)
                .into_iter()
                .filter(|(_, t)| t.starts_with(start_line_prefix))
                .collect();
            if found.len() >= count || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The value of header `name` in a message's text (first occurrence).
pub fn header_of(text: &str, name: &str) -> Option<String> {
    text.split("\r\n\r\n")
        .next()?
        .lines()
        .skip(1)
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
}

/// Kamailio in front of `isc server` in AS mode.
pub struct Site {
    /// Where devices send everything (Kamailio).
    pub core: SocketAddr,
    pub server: ServerHandle,
    pub wire: WireLog,
    pub kamailio: Kamailio,
    pub dir: tempfile::TempDir,
}

impl Site {
    /// Starts both with `options` (its `config.mode`, `core` and `listen`
    /// are set here). `None` when kamailio is not installed.
    pub async fn start(mut options: ServerOptions) -> Option<Site> {
        if !kamailio_present() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let core = SocketAddr::from(([127, 0, 0, 1], free_port()));
        options.config.mode = ServerMode::As;
        options.config.core = Some(core);
        options.config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = options.config.clone();
        let server = Server::start(options).await.expect("isc server starts");
        let wire = WireLog::follow(&server);
        let site = KamailioSite {
            core,
            app_server: server.local_addr(),
            domain: config.domain.clone(),
        };
        let kdir = dir.path().join("kamailio");
        let kamailio = tokio::task::block_in_place(|| Kamailio::start(&kdir, &site, &config));
        Some(Site {
            core,
            server,
            wire,
            kamailio,
            dir,
        })
    }

    /// Waits until the AS has taken `count` third-party REGISTERs from the
    /// core (and answered them).
    pub async fn await_registrations(&self, count: usize) {
        let regs = self.wire.wait_for(Direction::In, "REGISTER ", count).await;
        assert!(
            regs.len() >= count,
            "the AS got {} of {count} third-party REGISTERs",
            regs.len()
        );
        for (from, _) in &regs {
            assert_eq!(*from, self.core, "third-party REGISTER from the core");
        }
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
