//! Pager MESSAGE relay: `isc server` against Kamailio 5.6, side by side in
//! one run, with the same SIPp scenario (`tests/sipp/bench_pager_uac.xml`:
//! MESSAGE, 407, MESSAGE with Digest MD5 `qop=auth`, 200 from a SIPp UAS
//! registered as bob, also with Digest) at the same offered rates. Each
//! server is a separate process: its CPU (utime + stime of the process and
//! its children, /proc) over a step, divided by the messages relayed, is its
//! CPU per message. The rate steps up until a step has a failed call (SIPp
//! `-recv_timeout 5000`: an answer more than 5 s late is a failure) or does
//! not finish in time; the last clean step is the highest rate with zero
//! failures. Prints figures; asserts nothing.
//!
//!     cargo build --release --bin isc --example bench-pager
//!     target/release/examples/bench-pager [--secs 8] [--rates 250,500,1000] [--only isc|kamailio]
//!
//! Needs `sipp` (sip-tester) and `kamailio` (5.6); a missing one is skipped
//! with a note. `isc` is the binary next to this example or `$ISC_BIN`.
//! SIPp 3.6.1 computes MD5 only, so `isc server` gets
//! `digest_algorithms = ["MD5"]`; it is given `-auth_uri` so that its
//! credentials name the Request-URI, which `isc` checks (RFC 7616 §3.4.6).

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench_support::{Bounded, Kind, free_port, provenance, start_server, tree_cpu};

struct Step {
    rate: u32,
    offered: u64,
    ok: u64,
    failed: u64,
    retrans: u64,
    wall: Duration,
    cpu: Duration,
    clean: bool,
}

impl Step {
    fn cpu_per_msg(&self) -> Option<Duration> {
        (self.ok > 0).then(|| self.cpu / self.ok as u32)
    }
}

struct Args {
    secs: u64,
    rates: Vec<u32>,
    only: Option<Kind>,
}

fn args() -> Args {
    let mut a = Args {
        secs: 8,
        rates: vec![250, 500, 1000, 1500, 2000, 3000, 4000, 6000],
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--secs" => a.secs = v.parse().unwrap_or(a.secs),
            "--rates" => a.rates = v.split(',').filter_map(|r| r.parse().ok()).collect(),
            "--only" => {
                a.only = Some(if v.starts_with('k') {
                    Kind::Kamailio
                } else {
                    Kind::Isc
                })
            }
            _ => eprintln!("unknown argument {k}"),
        }
    }
    a
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

fn sipp(dir: &Path, server_port: u16, limit: u64) -> Command {
    let mut c = Bounded::command(limit, "sipp");
    c.arg(format!("127.0.0.1:{server_port}"))
        .args(["-i", "127.0.0.1", "-nostdin"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Registers bob's contact (the UAS port) with Digest; true on 200.
fn register(dir: &Path, server_port: u16, uas_port: u16) -> bool {
    for _ in 0..5 {
        let mut c = sipp(dir, server_port, 15);
        c.arg("-sf")
            .arg(scenario("reg_contact.xml"))
            .args(["-p", &free_port().to_string(), "-m", "1"])
            .args(["-au", "bob", "-ap", "bob", "-key", "user", "bob"])
            .args(["-key", "domain", "isc.local", "-auth_uri", "isc.local"])
            .args(["-key", "contact_port", &uas_port.to_string()])
            .args(["-timeout", "10s", "-timeout_error"]);
        if Bounded::start("sipp reg", c).ok().and_then(|b| b.wait()) == Some(0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// The last line of a SIPp `-trace_stat` file as (column, value) pairs.
fn read_stat(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(head) = lines.next() else {
        return Vec::new();
    };
    let Some(last) = lines.next_back() else {
        return Vec::new();
    };
    head.split(';')
        .map(str::to_owned)
        .zip(last.split(';').map(str::to_owned))
        .collect()
}

fn stat_u64(stat: &[(String, String)], col: &str) -> u64 {
    stat.iter()
        .find(|(k, _)| k == col)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn run_step(dir: &Path, server: &Bounded, server_port: u16, rate: u32, secs: u64) -> Step {
    let offered = u64::from(rate) * secs;
    let stat = dir.join(format!("uac-{rate}.csv"));
    let _ = std::fs::remove_file(&stat);
    let limit = secs * 3 + 20;
    let mut c = sipp(dir, server_port, limit + 5);
    c.arg("-sf")
        .arg(scenario("bench_pager_uac.xml"))
        .args(["-p", &free_port().to_string()])
        .args(["-s", "bob", "-au", "alice", "-ap", "alice"])
        // SIPp 3.6.1 puts sip:<remote addr> in the credentials' uri unless told
        .args(["-auth_uri", "bob@isc.local"])
        .args(["-key", "user", "alice", "-key", "domain", "isc.local"])
        .args(["-r", &rate.to_string(), "-m", &offered.to_string()])
        .args(["-l", &(rate * 5).to_string(), "-recv_timeout", "5000"])
        .args(["-timeout", &format!("{limit}s"), "-timeout_error"])
        .args(["-trace_stat", "-fd", "3600", "-stf"])
        .arg(&stat);
    let cpu0 = tree_cpu(server.pid());
    let t0 = Instant::now();
    let rc = Bounded::start("sipp uac", c).ok().and_then(|b| b.wait());
    let wall = t0.elapsed();
    let cpu = tree_cpu(server.pid()).saturating_sub(cpu0);
    let s = read_stat(&stat);
    let ok = stat_u64(&s, "SuccessfulCall(C)");
    let failed = stat_u64(&s, "FailedCall(C)");
    let retrans = stat_u64(&s, "Retransmissions(C)");
    // kept up: all done within a second of the offered schedule plus 5 s
    let clean =
        rc == Some(0) && failed == 0 && ok == offered && wall <= Duration::from_secs(secs + 5);
    Step {
        rate,
        offered,
        ok,
        failed,
        retrans,
        wall,
        cpu,
        clean,
    }
}

fn bench(kind: Kind, a: &Args) -> Vec<Step> {
    let Ok(tmp) = tempfile::tempdir() else {
        return Vec::new();
    };
    let dir = tmp.path();
    let port = free_port();
    let limit = (a.secs * 3 + 30) * a.rates.len() as u64 + 60;
    let users = ["alice".to_string(), "bob".to_string()];
    let Some(server) = start_server(kind, dir, port, &users, limit) else {
        println!("{}: did not start", kind.name());
        return Vec::new();
    };
    let uas_port = free_port();
    let mut uas = sipp(dir, port, limit);
    uas.arg("-sf")
        .arg(scenario("bench_pager_uas.xml"))
        .args(["-p", &uas_port.to_string()]);
    let Ok(_uas) = Bounded::start("sipp uas", uas) else {
        return Vec::new();
    };
    let mut steps = Vec::new();
    for &rate in &a.rates {
        if !register(dir, port, uas_port) {
            println!("{}: bob's REGISTER failed", kind.name());
            break;
        }
        let s = run_step(dir, &server, port, rate, a.secs);
        println!(
            "{:<13} {:>6}/s  {:>7} offered {:>7} ok {:>5} failed {:>6} retrans  {:>6.1} s  cpu {:>6.2} s  {:>6.1} µs/msg  {}",
            kind.name(),
            s.rate,
            s.offered,
            s.ok,
            s.failed,
            s.retrans,
            s.wall.as_secs_f64(),
            s.cpu.as_secs_f64(),
            s.cpu_per_msg().unwrap_or_default().as_secs_f64() * 1e6,
            if s.clean { "clean" } else { "FAILED" }
        );
        let clean = s.clean;
        steps.push(s);
        if !clean {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(server);
    steps
}

fn best(steps: &[Step]) -> Option<&Step> {
    steps.iter().filter(|s| s.clean).max_by_key(|s| s.rate)
}

fn main() {
    let a = args();
    println!("bench-pager: {}", provenance());
    println!(
        "scenario tests/sipp/bench_pager_uac.xml (Digest MD5 qop=auth on both servers), {} s per step",
        a.secs
    );
    if !have("sipp") {
        println!("sipp is not installed: nothing to measure");
        return;
    }
    let kinds: Vec<Kind> = [Kind::Isc, Kind::Kamailio]
        .into_iter()
        .filter(|k| a.only.is_none_or(|o| o == *k))
        .filter(|k| {
            let ok = *k != Kind::Kamailio || have("kamailio");
            if !ok {
                println!("kamailio is not installed: skipped");
            }
            ok
        })
        .collect();
    let results: Vec<(Kind, Vec<Step>)> = kinds.iter().map(|k| (*k, bench(*k, &a))).collect();
    println!();
    for (k, steps) in &results {
        match best(steps) {
            Some(b) => println!(
                "{:<13} highest rate with zero failures: {}/s; CPU per relayed message there: {:.1} µs",
                k.name(),
                b.rate,
                b.cpu_per_msg().unwrap_or_default().as_secs_f64() * 1e6
            ),
            None => println!("{:<13} no clean step", k.name()),
        }
    }
    if let [(_, isc), (_, kam)] = &results[..] {
        // the same offered rate: the highest both ran clean
        let common = isc
            .iter()
            .filter(|s| s.clean)
            .filter_map(|s| {
                kam.iter()
                    .find(|k| k.clean && k.rate == s.rate)
                    .map(|k| (s, k))
            })
            .max_by_key(|(s, _)| s.rate);
        if let Some((i, k)) = common
            && let (Some(ci), Some(ck)) = (i.cpu_per_msg(), k.cpu_per_msg())
            && !ck.is_zero()
        {
            println!(
                "CPU per relayed message at {}/s: isc {:.1} µs, kamailio {:.1} µs, ratio isc/kamailio {:.2}",
                i.rate,
                ci.as_secs_f64() * 1e6,
                ck.as_secs_f64() * 1e6,
                ci.as_secs_f64() / ck.as_secs_f64()
            );
        }
        if let (Some(bi), Some(bk)) = (best(isc), best(kam)) {
            println!(
                "highest clean rate: isc {}/s, kamailio {}/s, ratio isc/kamailio {:.2}",
                bi.rate,
                bk.rate,
                f64::from(bi.rate) / f64::from(bk.rate)
            );
        }
    }
}
