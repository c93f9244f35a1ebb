//! What the `bench-*` examples share: CPU and memory of a process tree from
//! /proc (Linux), percentiles, free loopback ports, and child processes that
//! are stopped (TERM to their `timeout`, then waited for) when dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
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

/// CPU time (user + system) used so far by `pid` and the processes below it.
pub fn tree_cpu(pid: u32) -> Duration {
    let ticks: u64 = process_tree(pid)
        .into_iter()
        .filter_map(|p| stat_of(p).map(|s| s.1))
        .sum();
    Duration::from_secs_f64(ticks as f64 / ticks_per_sec() as f64)
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
