//! MSRP through the CPM Participating Function of `isc server` (a separate
//! process; history in SQLite under a tmpfs data dir), side by side with a
//! plain loopback TCP copy (a thread of this process doing nothing but
//! `copy_bidirectional` between the two sockets) in one run:
//!
//! - throughput: alice sends 1 MiB messages chunked in 64 KiB SENDs; bob
//!   parses every frame and answers each SEND with 200; MB/s of body bytes
//!   arrived at bob, and the relay's CPU per MB;
//! - latency: 1,000 concurrent sessions (one INVITE through the CPM function
//!   each: its own B2BUA legs and MSRP connections), each sending one chat
//!   SEND a second at a random phase; the time from alice's write to bob's
//!   parse, p50 / p99.
//!
//! Prints figures; asserts nothing.
//!
//!     cargo build --release --bin isc --example bench-msrp
//!     target/release/examples/bench-msrp [--sessions 1000] [--secs 10] [--mib 64]

#[path = "bench_support/mod.rs"]
mod bench_support;
#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "../tests/cpm_common/mod.rs"]
#[allow(unused_imports)]
mod cpm_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_support::{
    Kind, free_port, own_thread_cpu, provenance, quantile, start_server, tree_cpu,
};
use cpm_common::*;
use isc::proto::msrp::{
    ByteRange, Chunker, FailureReport, MsrpHeader, MsrpMessage, MsrpMethod, MsrpParser, MsrpPath,
    MsrpUri, ParserConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One established session: alice's and bob's sockets and alice's paths.
struct Pair {
    a: TcpStream,
    b: TcpStream,
    to: MsrpPath,
    from: MsrpUri,
}

/// How pairs are made: through `isc server`, or through the copy relay.
enum Via {
    Isc {
        server: SocketAddr,
        /// one SIP peer per session (our test digest client answers one
        /// challenge per realm), kept for the session's life
        alices: Vec<common::Peer>,
        bob: Box<Device>,
        n: usize,
    },
    Copy {
        relay: SocketAddr,
        bob: TcpListener,
        n: usize,
    },
}

impl Via {
    async fn pair(&mut self) -> Pair {
        match self {
            Via::Isc {
                server,
                alices,
                bob,
                n,
            } => {
                alices.push(common::Peer::new(*server, "alice", "alice").await);
                let Some(alice) = alices.last_mut() else {
                    unreachable!("just pushed")
                };
                *n += 1;
                let i = *n;
                let from = MsrpUri::new("127.0.0.1", 7, format!("alice{i}"));
                let req = cpm_invite(
                    alice,
                    "sip:bob@isc.local",
                    &msrp_sdp(&from, "actpass", ""),
                    &[],
                );
                let invite = send_invite(alice, req).await;
                let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
                let port = bob.listener.local_addr().map(|a| a.port()).unwrap_or(0);
                let bob_uri = MsrpUri::new("127.0.0.1", port, format!("bob{i}"));
                answer(
                    &bob.sip,
                    &inv,
                    200,
                    &format!("bob{i}"),
                    Some(&msrp_sdp(&bob_uri, "passive", "")),
                )
                .await;
                let ok = final_for(alice, &invite).await;
                let ack = ack_2xx(alice, &invite, &ok);
                alice.send(ack).await;
                let to = sdp_path(&ok.body);
                let (b, _) = bob.listener.accept().await.expect("the relay connects");
                b.set_nodelay(true).ok();
                let mut b = MsrpConnRaw::new(b);
                b.next_request().await; // the relay's empty bind SEND
                let server = to.0.first().expect("a path");
                let addr = format!("{}:{}", server.host, server.port.unwrap_or(2855));
                let a = TcpStream::connect(addr)
                    .await
                    .expect("connect to the relay");
                a.set_nodelay(true).ok();
                Pair {
                    a,
                    b: b.stream,
                    to,
                    from,
                }
            }
            Via::Copy { relay, bob, n } => {
                *n += 1;
                let i = *n;
                let a = TcpStream::connect(*relay)
                    .await
                    .expect("connect to the copy");
                a.set_nodelay(true).ok();
                let (b, _) = bob.accept().await.expect("the copy connects");
                b.set_nodelay(true).ok();
                let port = bob.local_addr().map(|a| a.port()).unwrap_or(0);
                Pair {
                    a,
                    b,
                    to: MsrpPath::single(MsrpUri::new("127.0.0.1", port, format!("bob{i}"))),
                    from: MsrpUri::new("127.0.0.1", 7, format!("alice{i}")),
                }
            }
        }
    }
}

/// A raw MSRP reader that answers each SEND with 200.
struct MsrpConnRaw {
    stream: TcpStream,
    parser: MsrpParser,
    buf: Vec<u8>,
}

impl MsrpConnRaw {
    fn new(stream: TcpStream) -> Self {
        MsrpConnRaw {
            stream,
            parser: MsrpParser::new(ParserConfig::default()),
            buf: vec![0u8; 256 * 1024],
        }
    }

    /// The next SEND (answered 200), or None at EOF.
    async fn next_request(&mut self) -> Option<MsrpMessage> {
        loop {
            if let Some(m) = self.parser.next() {
                let m = m.ok()?;
                if m.is_request() {
                    if let Some(ok) = m.ok_response()
                        && let Ok(bytes) = ok.to_bytes()
                    {
                        self.stream.write_all(&bytes).await.ok()?;
                    }
                    return Some(m);
                }
                continue;
            }
            let n = self.stream.read(&mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
            self.parser.push(&self.buf[..n]);
        }
    }
}

/// Reads and drops whatever comes (alice's 200s and REPORTs).
fn drain(mut r: tokio::net::tcp::OwnedReadHalf) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
    });
}

fn chat(to: &MsrpPath, from: &MsrpUri, tid: &str, text: &str) -> Vec<u8> {
    let body = format!(
        "From: <sip:alice@isc.local>\r\nTo: <sip:bob@isc.local>\r\n\r\nContent-Type: text/plain\r\n\r\n{text}"
    )
    .into_bytes();
    let n = body.len() as u64;
    MsrpMessage::request(
        MsrpMethod::Send,
        tid,
        to.clone(),
        MsrpPath::single(from.clone()),
    )
    .with_header(MsrpHeader::MessageId(format!("m{tid}")))
    .with_header(MsrpHeader::ByteRange(ByteRange {
        start: 1,
        end: Some(n),
        total: Some(n),
    }))
    .with_body("message/cpim", body)
    .to_bytes()
    .unwrap_or_default()
}

/// MB/s of body bytes from alice to bob over one pair: the SENDs are
/// serialized beforehand (`Failure-Report: no`, so bob sends nothing back)
/// and bob only counts bytes until the last message's end marker arrives,
/// so the figure is the relay's, not the peers' parsing.
async fn throughput(p: Pair, mib: usize) -> (f64, u64) {
    let Pair { a, b, to, from } = p;
    let (ar, mut aw) = a.into_split();
    drain(ar);
    let cpim = b"From: <sip:alice@isc.local>\r\nTo: <sip:bob@isc.local>\r\n\r\nContent-Type: application/octet-stream\r\n\r\n";
    let mut body = cpim.to_vec();
    body.extend(
        (0..(1usize << 20) - cpim.len()).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8),
    );
    let total = (body.len() * mib) as u64;
    let mut frames = Vec::new();
    let mut tid = 0u64;
    for m in 0..mib {
        let mut chunker = Chunker::new(
            to.clone(),
            MsrpPath::single(from.clone()),
            format!("big{m}"),
            Some("message/cpim".into()),
            body.clone(),
            64 * 1024,
        )
        .with_reports(Some(false), Some(FailureReport::No));
        while let Some(mut chunk) = chunker.next_chunk() {
            tid += 1;
            chunk.transaction_id = format!("t{tid}");
            frames.push(chunk.to_bytes().unwrap_or_default());
        }
    }
    frames.push(chat(&to, &from, "end", "end"));
    const MARK: &[u8] = b"Message-ID: mend";
    let t0 = Instant::now();
    let writer = tokio::spawn(async move {
        for f in frames {
            if aw.write_all(&f).await.is_err() {
                return;
            }
        }
        // keep the write half (and so the connection) open until the end
        std::future::pending::<()>().await;
    });
    let mut b = b;
    let mut buf = vec![0u8; 256 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    let mut wire = 0u64;
    loop {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(30), b.read(&mut buf)).await
        else {
            break;
        };
        if n == 0 {
            break;
        }
        wire += n as u64;
        // the marker may straddle two reads
        let head = &buf[..n.min(MARK.len())];
        tail.extend_from_slice(head);
        if tail.windows(MARK.len()).any(|w| w == MARK)
            || buf[..n].windows(MARK.len()).any(|w| w == MARK)
        {
            break;
        }
        tail.clear();
        tail.extend_from_slice(&buf[n.saturating_sub(MARK.len())..n]);
    }
    let secs = t0.elapsed().as_secs_f64();
    writer.abort();
    let got = if wire >= total { total } else { 0 };
    (got as f64 / 1e6 / secs, got)
}

/// Latencies of one chat SEND per session per second for `secs`.
async fn latency(pairs: Vec<Pair>, secs: u64) -> (Vec<Duration>, u64) {
    let t0 = Instant::now() + Duration::from_millis(500);
    let sent = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for (i, p) in pairs.into_iter().enumerate() {
        let Pair { a, b, to, from } = p;
        let (ar, mut aw) = a.into_split();
        drain(ar);
        let sent = sent.clone();
        // a random phase in the second
        let phase = Duration::from_micros(rand::random_range(0..1_000_000));
        tokio::spawn(async move {
            for k in 0..secs {
                let at = t0 + phase + Duration::from_secs(k);
                tokio::time::sleep_until(at.into()).await;
                let stamp = t0.elapsed().as_nanos();
                let bytes = chat(&to, &from, &format!("c{i}x{k}"), &format!("{stamp}"));
                if aw.write_all(&bytes).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            std::future::pending::<()>().await;
        });
        readers.push(tokio::spawn(async move {
            let mut b = MsrpConnRaw::new(b);
            let mut lat = Vec::new();
            while (lat.len() as u64) < secs {
                let Ok(Some(m)) =
                    tokio::time::timeout(Duration::from_secs(secs + 10), b.next_request()).await
                else {
                    break;
                };
                let now = t0.elapsed();
                let Some(body) = m.body else { continue };
                let text = String::from_utf8_lossy(&body);
                if let Some(ns) = text
                    .rsplit("\r\n\r\n")
                    .next()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                {
                    lat.push(now.saturating_sub(Duration::from_nanos(ns)));
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await.unwrap_or_default());
    }
    (all, sent.load(Ordering::Relaxed))
}

/// The plain copy: a thread with its own runtime that accepts on a port and
/// copies each connection to `to` and back. Returns its port and its TID.
fn copy_relay(to: SocketAddr) -> (SocketAddr, i64) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as i64;
            let _ = tx.send((l.local_addr().expect("addr"), tid));
            loop {
                let Ok((mut a, _)) = l.accept().await else {
                    break;
                };
                a.set_nodelay(true).ok();
                tokio::spawn(async move {
                    if let Ok(mut b) = TcpStream::connect(to).await {
                        b.set_nodelay(true).ok();
                        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                    }
                });
            }
        });
    });
    rx.recv().expect("the copy relay starts")
}

struct Figures {
    mbps: f64,
    cpu_per_mb: Duration,
    p50: Duration,
    p99: Duration,
    received: usize,
    sent: u64,
    setup: Duration,
}

async fn measure(
    mut via: Via,
    cpu: impl Fn() -> Duration,
    sessions: usize,
    secs: u64,
    mib: usize,
) -> Figures {
    let one = via.pair().await;
    let c0 = cpu();
    let (mbps, bytes) = throughput(one, mib).await;
    let cpu_per_mb = (cpu().saturating_sub(c0)).div_f64((bytes as f64 / 1e6).max(1e-9));
    let t = Instant::now();
    let mut pairs = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        pairs.push(via.pair().await);
    }
    let setup = t.elapsed();
    let (mut lat, sent) = latency(pairs, secs).await;
    Figures {
        mbps,
        cpu_per_mb,
        p50: quantile(&mut lat, 0.50),
        p99: quantile(&mut lat, 0.99),
        received: lat.len(),
        sent,
        setup,
    }
}

fn show(name: &str, f: &Figures, sessions: usize) {
    println!(
        "{name:<22} {:>8.1} MB/s  relay CPU {:>7.3} ms/MB   {sessions} sessions set up in {:.1} s; chat latency p50 {:.2} ms  p99 {:.2} ms ({} of {} messages)",
        f.mbps,
        f.cpu_per_mb.as_secs_f64() * 1e3,
        f.setup.as_secs_f64(),
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.received,
        f.sent
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (mut sessions, mut secs, mut mib) = (1000usize, 10u64, 64usize);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--sessions" => sessions = v.parse().unwrap_or(sessions),
            "--secs" => secs = v.parse().unwrap_or(secs),
            "--mib" => mib = v.parse().unwrap_or(mib),
            _ => eprintln!("unknown argument {k}"),
        }
    }
    println!("bench-msrp: {}", provenance());
    println!(
        "throughput: {mib} messages of 1 MiB in 64 KiB SENDs over one session; latency: {sessions} sessions, one SEND each per second for {secs} s"
    );

    // the plain copy first (its own thread), then isc server (own process)
    let bob = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (relay, tid) = copy_relay(bob.local_addr().expect("addr"));
    let copy = measure(
        Via::Copy { relay, bob, n: 0 },
        move || own_thread_cpu(tid),
        sessions,
        secs,
        mib,
    )
    .await;
    show("plain TCP copy", &copy, sessions);

    let base = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    };
    let Ok(tmp) = base else { return };
    // BENCH_KEEP=1 keeps the server's dir (config, log) for a look afterwards
    let tmp = if std::env::var_os("BENCH_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("keeping {}", kept.display());
        kept
    } else {
        tmp.path().to_path_buf()
    };
    let port = free_port();
    let users = ["alice".to_string(), "bob".to_string()];
    let Some(server) = start_server(Kind::Isc, &tmp, port, &users, 900) else {
        println!("isc server did not start");
        return;
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let bob = Device::register(addr, "bob", "bob-phone", "phone").await;
    let pid = server.pid();
    let isc = measure(
        Via::Isc {
            server: addr,
            alices: Vec::new(),
            bob: Box::new(bob),
            n: 0,
        },
        move || tree_cpu(pid),
        sessions,
        secs,
        mib,
    )
    .await;
    show("isc CPM function", &isc, sessions);
    println!(
        "ratio isc/plain: throughput {:.3}, CPU per MB {:.1}, latency p50 {:.1}, p99 {:.1}",
        isc.mbps / copy.mbps,
        isc.cpu_per_mb.as_secs_f64() / copy.cpu_per_mb.as_secs_f64().max(1e-9),
        isc.p50.as_secs_f64() / copy.p50.as_secs_f64().max(1e-9),
        isc.p99.as_secs_f64() / copy.p99.as_secs_f64().max(1e-9),
    );
    drop(server);
}
