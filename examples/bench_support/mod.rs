//! What the `bench-*` examples share: CPU and memory of a process tree from
//! /proc (Linux), percentiles, free loopback ports, and child processes that
//! are stopped (TERM to their `timeout`, then waited for) when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Clock ticks per second of /proc/PID/stat's utime and stime.
fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// (ppid, utime + stime in ticks) of one process.
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the fields after the parenthesised command: state is the 3rd overall,
    // ppid the 4th, utime the 14th, stime the 15th
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ppid, ticks))
}

/// `pid` and every process below it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut all: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && let Some((ppid, _)) = stat_of(p)
            {
                all.push((p, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

/// CPU time used so far by `pid` and the processes below it: the sum of
/// every thread's run time from /proc/PID/task/TID/schedstat (nanoseconds),
/// else utime + stime from /proc/PID/stat (clock ticks).
pub fn tree_cpu(pid: u32) -> Duration {
    process_tree(pid).into_iter().map(process_cpu_of).sum()
}

/// CPU time used so far by one process (all its live threads; see [`tree_cpu`]).
pub fn process_cpu_of(pid: u32) -> Duration {
    let mut ns = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Some(v) = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| {
                    s.split_whitespace()
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                })
            {
                ns += v;
                found = true;
            }
        }
    }
    if found {
        return Duration::from_nanos(ns);
    }
    let ticks = stat_of(pid).map(|s| s.1).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / ticks_per_sec() as f64)
}

/// CPU time used so far by one thread of this process (schedstat, ns).
pub fn own_thread_cpu(tid: i64) -> Duration {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Resident set size of `pid` and the processes below it, in bytes
/// (VmRSS of /proc/PID/status; shared pages are counted once per process).
pub fn tree_rss(pid: u32) -> u64 {
    process_tree(pid).into_iter().map(rss_of).sum()
}

/// VmRSS of one process, in bytes.
pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of this whole process (CLOCK_PROCESS_CPUTIME_ID).
pub fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The `q`-quantile (0..=1) of `v` (sorted in place); zero when empty.
pub fn quantile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A loopback port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let Ok(u) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = u.local_addr().map(|a| a.port()) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A program started under `timeout` (so its life is bounded even if we
/// die); dropping it sends TERM to that `timeout`, which forwards it, and
/// waits.
pub struct Bounded {
    pub child: Child,
    pub name: String,
}

impl Bounded {
    /// `timeout -k 3 SECS program`: add the program's arguments, env and
    /// stdio to it, then [`Bounded::start`].
    pub fn command(secs: u64, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut t = Command::new("timeout");
        t.arg("-k").arg("3").arg(secs.to_string()).arg(program);
        t.stdin(std::process::Stdio::null());
        t
    }

    pub fn start(name: &str, mut cmd: Command) -> std::io::Result<Bounded> {
        Ok(Bounded {
            child: cmd.spawn()?,
            name: name.into(),
        })
    }

    /// The `timeout` process; the program is its child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits for the program to exit by itself.
    pub fn wait(mut self) -> Option<i32> {
        let code = self.child.wait().ok().and_then(|s| s.code());
        std::mem::forget(self);
        code
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: a signal to our own child, by its id.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

/// `isc` built next to this example (`target/<profile>/isc`), or `$ISC_BIN`.
pub fn isc_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ISC_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/examples/<name> → target/<profile>/isc
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("isc"))
        .unwrap_or_else(|| PathBuf::from("isc"))
}

/// The commit and date for the figures.
pub fn provenance() -> String {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!(
        "commit {commit}, {date}, {cores} cores, load average {load}, {} build",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    )
}

/// The two servers compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Isc,
    Kamailio,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Isc => "isc server",
            Kind::Kamailio => "kamailio 5.6",
        }
    }
}

/// Kamailio's configuration for the benchmarks (`PORT` replaced by the port).
pub const KAMAILIO_CFG: &str = r#"#!KAMAILIO
# bench-pager: /work/shared/PEERS.md section 1's registrar + stateful proxy,
# with Digest (auth module, plain passwords: each user's password is its
# name, as for isc's demo cast) and without the per-request xlog.
debug=1
log_stderror=yes
children=2
tcp_children=1
auto_aliases=no
listen=udp:127.0.0.1:PORT
listen=tcp:127.0.0.1:PORT
alias="127.0.0.1:PORT"
alias="isc.local"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "pv.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "append_branches", 1)
modparam("rr", "append_fromtag", 0)
request_route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (has_totag()) {
        if (loose_route()) {
            if (uri==myself) lookup("location");
            t_relay(); exit;
        }
        if (is_method("ACK")) { if (t_check_trans()) t_relay(); exit; }
        if (uri!=myself) { t_relay(); exit; }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) { if (t_check_trans()) t_relay(); exit; }
    # Digest, qop=auth, for every initial request (as isc does)
    if (!pv_auth_check("isc.local", "$au", "0", "1")) {
        auth_challenge("isc.local", "1");
        exit;
    }
    consume_credentials();
    if (is_method("REGISTER")) {
        if (!save("location")) sl_reply_error();
        exit;
    }
    if (is_method("INVITE|SUBSCRIBE|REFER")) record_route();
    if (uri==myself) {
        lookup("location");
        switch ($rc) {
            case -1: case -3: sl_send_reply("404", "Not Found"); exit;
            case -2: sl_send_reply("405", "Method Not Allowed"); exit;
        }
    }
    if (!t_relay()) sl_reply_error();
    exit;
}
"#;

/// Starts the server on `port`; returns it once it listens.
pub fn start_server(
    kind: Kind,
    dir: &Path,
    port: u16,
    users: &[String],
    limit: u64,
) -> Option<Bounded> {
    match kind {
        Kind::Isc => {
            let cfg = dir.join("isc.toml");
            let data = dir.join("data");
            std::fs::write(
                &cfg,
                format!(
                    "[server]\nlisten = \"127.0.0.1:{port}\"\ndomain = \"isc.local\"\ndata_dir = \"{}\"\ncontent_dir = \"{}\"\ndigest_algorithms = [\"MD5\"]\n{}",
                    data.display(),
                    dir.join("no-content").display(),
                    users
                        .iter()
                        .map(|u| format!("\n[[server.users]]\nname = \"{u}\"\npassword = \"{u}\"\n"))
                        .collect::<String>()
                ),
            )
            .ok()?;
            let mut cmd = Bounded::command(limit, isc_binary());
            cmd.arg("server")
                .arg("--config")
                .arg(&cfg)
                .env("HOME", dir)
                .env("XDG_STATE_HOME", dir.join("state"))
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(dir.join("isc.stderr")).ok()?);
            let mut s = Bounded::start("isc", cmd).ok()?;
            let out = s.stdout()?;
            let mut out = BufReader::new(out);
            let mut line = String::new();
            out.read_line(&mut line).ok()?;
            // keep reading what else it prints (a closed pipe would kill it)
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            if !line.contains("listening") {
                let err = std::fs::read_to_string(dir.join("isc.stderr")).unwrap_or_default();
                eprintln!("isc server: {line}{err}");
                return None;
            }
            Some(s)
        }
        Kind::Kamailio => {
            let cfg = dir.join("kamailio.cfg");
            std::fs::write(&cfg, KAMAILIO_CFG.replace("PORT", &port.to_string())).ok()?;
            let run = dir.join("run");
            std::fs::create_dir_all(&run).ok()?;
            let log = std::fs::File::create(dir.join("kamailio.log")).ok()?;
            let mut cmd = Bounded::command(limit, "kamailio");
            cmd.args(["-m", "1024", "-M", "16", "-f"])
                .arg(&cfg)
                .args(["-DD", "-E", "-Y"])
                .arg(&run)
                .arg("-P")
                .arg(run.join("kam.pid"))
                .arg("-w")
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(log);
            let s = Bounded::start("kamailio", cmd).ok()?;
            std::thread::sleep(Duration::from_millis(1500));
            Some(s)
        }
    }
}

/// The program under a [`Bounded`]'s `timeout` (its first child), if any yet.
pub fn program_pid(b: &Bounded) -> Option<u32> {
    process_tree(b.pid()).get(1).copied()
}

/// Proportional set size (Pss of /proc/PID/smaps_rollup, bytes) of `pid`
/// and the processes below it: shared pages (Kamailio's shared memory) are
/// divided among the processes that map them, so the sum counts them once.
pub fn tree_pss(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .map(|p| {
            std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Pss:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|kb| kb.parse::<u64>().ok())
                })
                .map(|kb| kb * 1024)
                .unwrap_or(0)
        })
        .sum()
}
