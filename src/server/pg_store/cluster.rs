//! A throwaway PostgreSQL cluster for tests and local scale-out trials:
//! `initdb` in a fresh temporary directory, `postgres` listening on
//! 127.0.0.1 at a free port with its unix socket in that directory, trust
//! authentication for the role `isc`. Dropping the [`LocalCluster`] stops
//! the server (fast shutdown, then SIGKILL) and removes the directory; the
//! server also dies with the thread that started it (`PR_SET_PDEATHSIG`),
//! so a killed test leaves nothing behind.
//!
//! initdb and postgres refuse to run as root; as root both run as the
//! `postgres` system user (what `runuser -u postgres` would do, but with
//! the server as our own child so that we hold its PID).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

/// What stops a cluster from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No PostgreSQL binaries (tests skip on this one only).
    #[error("PostgreSQL is not installed: {0}")]
    NotInstalled(String),
    #[error("cluster directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("{step} failed ({status}): {output}")]
    Failed {
        step: &'static str,
        status: String,
        output: String,
    },
    #[error("{0} did not finish in time")]
    Timeout(&'static str),
    #[error("database: {0}")]
    Database(#[from] postgres::Error),
}

/// How long initdb and the server's start may take on a busy 2-core box.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The role that owns everything (trust authentication on loopback).
pub const ROLE: &str = "isc";

/// A running PostgreSQL server in its own temporary directory.
#[derive(Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    port: u16,
    server: Option<Child>,
}

/// The bin directory of the newest installed PostgreSQL
/// (`$ISC_PG_BINDIR`, else `/usr/lib/postgresql/<version>/bin`).
pub fn bin_dir() -> Result<PathBuf, ClusterError> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("ISC_PG_BINDIR") {
        let d = PathBuf::from(d);
        return if has_both(&d) {
            Ok(d)
        } else {
            Err(ClusterError::NotInstalled(format!(
                "ISC_PG_BINDIR={} has no initdb and postgres",
                d.display()
            )))
        };
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|_| ClusterError::NotInstalled(format!("no {}", root.display())))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| ClusterError::NotInstalled(format!("no initdb under {}", root.display())))
}

/// The uid/gid to run as: `postgres` when we are root, else ourselves.
fn run_as() -> Result<Option<(u32, u32)>, ClusterError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    // SAFETY: the name is NUL-terminated; the returned record is read at
    // once, before any other getpw* call on this thread.
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if pw.is_null() {
        return Err(ClusterError::NotInstalled(
            "running as root and there is no `postgres` user to run initdb as".into(),
        ));
    }
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

fn fresh_dir() -> Result<PathBuf, ClusterError> {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "isc-pg-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

fn command(bin: &Path, user: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c
}

/// Waits for `child` with a deadline; kills it when the deadline passes.
fn wait_bounded(mut child: Child, step: &'static str) -> Result<(), ClusterError> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            if status.success() {
                return Ok(());
            }
            return Err(ClusterError::Failed {
                step,
                status: status.to_string(),
                output: String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned(),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ClusterError::Timeout(step));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `f` with a client on a plain thread: the synchronous `postgres`
/// client must not run inside a tokio runtime, where tests call from.
fn off_runtime<R: Send + 'static>(
    url: String,
    f: impl FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
) -> Result<R, ClusterError> {
    std::thread::spawn(move || -> Result<R, ClusterError> {
        let mut client = Client::connect(&url, NoTls)?;
        Ok(f(&mut client)?)
    })
    .join()
    .map_err(|_| ClusterError::Timeout("database client thread"))?
}

impl LocalCluster {
    /// initdb + postgres on 127.0.0.1 at a free port. Blocks until the
    /// server accepts connections. The server lives no longer than the
    /// calling thread.
    pub fn start() -> Result<Self, ClusterError> {
        let bin = bin_dir()?;
        let user = run_as()?;
        let dir = fresh_dir()?;
        let mut cluster = LocalCluster {
            dir: dir.clone(),
            port: 0,
            server: None,
        };
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        let data = dir.join("data");
        let initdb = command(&bin.join("initdb"), user, &dir)
            .arg("-D")
            .arg(&data)
            .args(["-U", ROLE, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .spawn()?;
        wait_bounded(initdb, "initdb")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        cluster.port = port;
        let log = std::fs::File::create(dir.join("postgres.log"))?;
        let mut server = command(&bin.join("postgres"), user, &dir);
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=40"])
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs in the
        // child between fork and exec. Set after the uid change, which
        // would clear it.
        unsafe {
            server.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cluster.server = Some(server.spawn()?);
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn wait_ready(&mut self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(s) = self
                .server
                .as_mut()
                .map(Child::try_wait)
                .transpose()?
                .flatten()
            {
                return Err(ClusterError::Failed {
                    step: "postgres",
                    status: s.to_string(),
                    output: std::fs::read_to_string(self.dir.join("postgres.log"))
                        .unwrap_or_default(),
                });
            }
            let url = self.url("postgres");
            if off_runtime(url, |c| c.simple_query("SELECT 1")).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout("postgres start"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data, socket, `postgres.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `postgres://isc@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database (a name of ASCII letters, digits and `_`)
    /// and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, ClusterError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ClusterError::Failed {
                step: "create database",
                status: "refused".into(),
                output: format!("bad database name {name:?}"),
            });
        }
        let sql = format!("CREATE DATABASE {name}");
        off_runtime(self.url("postgres"), move |c| c.batch_execute(&sql))?;
        Ok(self.url(name))
    }

    /// Runs one SQL statement returning a single BIGINT (for tests that
    /// look into the shared store).
    pub fn query_i64(&self, database: &str, sql: &str) -> Result<i64, ClusterError> {
        let sql = sql.to_string();
        off_runtime(self.url(database), move |c| {
            c.query_one(&sql, &[])?.try_get(0)
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: `pid` is our own child, not yet reaped.
                unsafe {
                    libc::kill(pid, libc::SIGINT);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
