//! Registered devices: the memory of `isc server` holding 100,000
//! registrations (one device per user, each with its `+sip.instance`, so
//! each also gets a GRUU), side by side with Kamailio 5.6 (usrloc in memory)
//! in one run. A Rust driver floods REGISTERs with Digest MD5 `qop=auth`
//! (the 401 answered) over one TCP connection (`--transport udp`: one UDP
//! socket, resending after 1 s), a window of requests in flight; `isc server` is given the 100,000 users in its config file
//! (password = name) and `digest_algorithms = ["MD5"]`; Kamailio checks
//! each password against the user name. Memory is the proportional set
//! size (Pss, /proc/PID/smaps_rollup) of the server's processes, before the
//! first REGISTER and after the last 200. Prints figures; asserts nothing.
//!
//!     cargo build --release --bin isc --example bench-registrations
//!     target/release/examples/bench-registrations [--n 100000] [--transport tcp|udp]
//!         [--budget SECS] [--only isc|kamailio]

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bench_support::{Kind, free_port, provenance, start_server, tree_cpu, tree_pss};
use md5::{Digest, Md5};

const WINDOW: usize = 200;
const REALM: &str = "isc.local";

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn param<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let at = text.find(&format!("{name}=\""))? + name.len() + 2;
    let end = text[at..].find('"')?;
    Some(&text[at..at + end])
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l[name.len()..].starts_with(':')
        })
        .map(|l| l[name.len() + 1..].trim())
}

fn register(i: usize, local: &str, transport: &str, cseq: u32, auth: Option<&str>) -> String {
    let user = format!("u{i}");
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK-r{i}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{REALM}>;tag=t{i}\r\nTo: <sip:{user}@{REALM}>\r\nCall-ID: reg-{i}@bench\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local};transport={}>;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-{i:012}>\";expires=3600\r\nSupported: gruu\r\nExpires: 3600\r\n{auth}User-Agent: isc-bench\r\nContent-Length: 0\r\n\r\n",
        transport.to_ascii_lowercase()
    )
}

/// The Authorization for user `u{i}` (password = name) answering `challenge`.
fn authorization(i: usize, challenge: &str) -> Option<String> {
    let user = format!("u{i}");
    let nonce = param(challenge, "nonce")?;
    let uri = format!("sip:{REALM}");
    let cnonce = format!("c{i:x}");
    let ha1 = md5_hex(&format!("{user}:{REALM}:{user}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    let opaque = param(challenge, "opaque")
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    Some(format!(
        "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"{opaque}"
    ))
}

/// The driver's side of the transport: UDP (resends after 1 s) or one TCP
/// connection (no resends: RFC 3261 §17.1.2.2 leaves them to the transport).
enum Link {
    Udp(UdpSocket, std::net::SocketAddr),
    Tcp(std::net::TcpStream, Vec<u8>),
}

impl Link {
    fn connect(server: std::net::SocketAddr, tcp: bool) -> std::io::Result<Link> {
        if tcp {
            let s = std::net::TcpStream::connect(server)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_millis(5)))?;
            Ok(Link::Tcp(s, Vec::new()))
        } else {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_read_timeout(Some(Duration::from_millis(5)))?;
            Ok(Link::Udp(s, server))
        }
    }

    fn local(&self) -> String {
        match self {
            Link::Udp(s, _) => s.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Link::Tcp(s, _) => s.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        }
    }

    fn transport(&self) -> &'static str {
        match self {
            Link::Udp(..) => "UDP",
            Link::Tcp(..) => "TCP",
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        match self {
            Link::Udp(s, to) => {
                let _ = s.send_to(bytes, *to);
            }
            Link::Tcp(s, _) => {
                use std::io::Write;
                let _ = s.write_all(bytes);
            }
        }
    }

    /// The next whole message, or None after a short wait.
    fn recv(&mut self, buf: &mut [u8]) -> Option<String> {
        match self {
            Link::Udp(s, _) => s
                .recv_from(buf)
                .ok()
                .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned()),
            Link::Tcp(s, pending) => loop {
                // RFC 3261 §18.3: a message on a stream ends after Content-Length bytes of body
                if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    let body = header(&head, "Content-Length")
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if pending.len() >= end + 4 + body {
                        pending.drain(..end + 4 + body);
                        return Some(head);
                    }
                }
                use std::io::Read;
                match s.read(buf) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            },
        }
    }
}

struct Outcome {
    registered: usize,
    failed: usize,
    wall: Duration,
}

/// REGISTERs u0..u{n-1} at `server` (each answering its 401), `WINDOW` in
/// flight, giving up after `budget`.
fn flood(server: std::net::SocketAddr, n: usize, tcp: bool, budget: Duration) -> Outcome {
    let mut link = Link::connect(server, tcp).expect("a link to the server");
    let local = link.local();
    let tr = link.transport();
    // in flight: user → (cseq, request bytes, sent at, tries)
    let mut pending: HashMap<usize, (u32, String, Instant, u32)> = HashMap::new();
    let (mut next, mut registered, mut failed) = (0usize, 0usize, 0usize);
    let t0 = Instant::now();
    let mut buf = vec![0u8; 65535];
    let mut last_report = Instant::now();
    while registered + failed < n && t0.elapsed() < budget {
        while pending.len() < WINDOW && next < n {
            let req = register(next, &local, tr, 1, None);
            link.send(req.as_bytes());
            pending.insert(next, (1, req, Instant::now(), 0));
            next += 1;
        }
        match link.recv(&mut buf) {
            Some(text) => {
                let Some(i) = header(&text, "Call-ID")
                    .and_then(|c| c.strip_prefix("reg-"))
                    .and_then(|c| c.split('@').next())
                    .and_then(|c| c.parse::<usize>().ok())
                else {
                    continue;
                };
                let code: u16 = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let Some((cseq, ..)) = pending.get(&i).cloned() else {
                    continue;
                };
                let answered = header(&text, "CSeq")
                    .and_then(|c| c.split_whitespace().next())
                    .and_then(|c| c.parse::<u32>().ok());
                if answered != Some(cseq) || code < 200 {
                    continue;
                }
                match code {
                    200 => {
                        pending.remove(&i);
                        registered += 1;
                    }
                    401 if cseq == 1 => {
                        let Some(auth) =
                            header(&text, "WWW-Authenticate").and_then(|c| authorization(i, c))
                        else {
                            pending.remove(&i);
                            failed += 1;
                            continue;
                        };
                        let req = register(i, &local, tr, 2, Some(&auth));
                        link.send(req.as_bytes());
                        pending.insert(i, (2, req, Instant::now(), 0));
                    }
                    _ => {
                        if failed < 3 {
                            eprintln!("u{i}: {}", text.lines().next().unwrap_or(""));
                        }
                        pending.remove(&i);
                        failed += 1;
                    }
                }
            }
            None => {
                // RFC 3261 §17.1.2.2 in short: over UDP resend what has waited
                // 1 s, give up after 7 tries; over TCP give up after 32 s
                let (wait, tries_max) = if tcp {
                    (Duration::from_secs(32), 0)
                } else {
                    (Duration::from_secs(1), 7)
                };
                let now = Instant::now();
                let mut gone = Vec::new();
                for (i, (_, req, at, tries)) in pending.iter_mut() {
                    if now.duration_since(*at) > wait {
                        if *tries >= tries_max {
                            gone.push(*i);
                        } else {
                            link.send(req.as_bytes());
                            *at = now;
                            *tries += 1;
                        }
                    }
                }
                for i in gone {
                    pending.remove(&i);
                    failed += 1;
                }
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  … {registered} registered, {failed} failed, {:.0} s",
                t0.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    Outcome {
        registered,
        failed,
        wall: t0.elapsed(),
    }
}

struct Figures {
    before: u64,
    after: u64,
    registered: usize,
}

fn bench(kind: Kind, n: usize, tcp: bool, budget: Duration) -> Option<Figures> {
    let tmp = tempfile::tempdir().ok()?;
    let dir = tmp.path();
    let port = free_port();
    let users: Vec<String> = match kind {
        Kind::Isc => (0..n).map(|i| format!("u{i}")).collect(),
        Kind::Kamailio => Vec::new(),
    };
    let t0 = Instant::now();
    let server = start_server(kind, dir, port, &users, 1800)?;
    let started = t0.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let before = tree_pss(server.pid());
    let cpu0 = tree_cpu(server.pid());
    let out = flood(([127, 0, 0, 1], port).into(), n, tcp, budget);
    let cpu = tree_cpu(server.pid()).saturating_sub(cpu0);
    std::thread::sleep(Duration::from_secs(2));
    let after = tree_pss(server.pid());
    println!(
        "{:<13} started in {:.1} s; {} registered, {} failed in {:.1} s ({:.0}/s); server CPU {:.1} s ({:.0} µs per registration)",
        kind.name(),
        started.as_secs_f64(),
        out.registered,
        out.failed,
        out.wall.as_secs_f64(),
        out.registered as f64 / out.wall.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / out.registered.max(1) as f64,
    );
    println!(
        "{:<13} memory (Pss) before {:.1} MiB, after {:.1} MiB: {:.0} bytes per registration",
        kind.name(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / out.registered.max(1) as f64
    );
    Some(Figures {
        before,
        after,
        registered: out.registered,
    })
}

fn main() {
    let mut n = 100_000usize;
    let mut only: Option<Kind> = None;
    let mut tcp = true;
    let mut budget = Duration::from_secs(600);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--n" => n = v.parse().unwrap_or(n),
            "--transport" => tcp = !v.eq_ignore_ascii_case("udp"),
            "--budget" => budget = v.parse().map(Duration::from_secs).unwrap_or(budget),
            "--only" => {
                only = Some(if v.starts_with('k') {
                    Kind::Kamailio
                } else {
                    Kind::Isc
                })
            }
            _ => eprintln!("unknown argument {k}"),
        }
    }
    println!("bench-registrations: {}", provenance());
    println!(
        "{n} users, one device each, REGISTER with Digest MD5 qop=auth over {}, {WINDOW} in flight, at most {} s per server",
        if tcp { "one TCP connection" } else { "UDP" },
        budget.as_secs()
    );
    let isc = only
        .is_none_or(|o| o == Kind::Isc)
        .then(|| bench(Kind::Isc, n, tcp, budget))
        .flatten();
    let kam = only
        .is_none_or(|o| o == Kind::Kamailio)
        .then(|| bench(Kind::Kamailio, n, tcp, budget))
        .flatten();
    if let (Some(i), Some(k)) = (isc, kam)
        && i.registered == k.registered
    {
        let per =
            |f: &Figures| f.after.saturating_sub(f.before) as f64 / f.registered.max(1) as f64;
        println!(
            "at {n} registrations: isc {:.1} MiB, kamailio {:.1} MiB (ratio {:.2}); per registration isc {:.0} B, kamailio {:.0} B (ratio {:.2})",
            i.after as f64 / 1048576.0,
            k.after as f64 / 1048576.0,
            i.after as f64 / k.after.max(1) as f64,
            per(&i),
            per(&k),
            per(&i) / per(&k).max(1.0)
        );
    }
}
