//! Overload (issue #11 part 5): SIPp floods `isc server` with OPTIONS far
//! above what it keeps up with. Past capacity the server answers 503 with
//! Retry-After instead of queueing without bound, does not crash, its
//! memory stays bounded, and it serves normally once the flood stops. The
//! figures (rates, counts) are printed, never asserted as speeds.
//!
//! Needs `sipp` on the PATH (Debian: `sip-tester`); without it the test
//! fails, it does not skip.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use isc::server::runner::{Direction, Server, ServerOptions};
use tokio::process::Command;

/// The resident set of this process (the server runs in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn options_answered(server: SocketAddr) -> Option<u16> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKafter;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@isc.local>;tag=a\r\nTo: <sip:{server}>\r\n\
         Call-ID: after-flood\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .get(8..11)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_flood_gets_503_retry_after_without_crash_and_recovers() {
    let mut opts = ServerOptions::loopback_demo();
    // The overload path, not the per-source limit, is under test here.
    opts.config.limits.source_messages_per_sec = 10_000_000;
    opts.config.limits.source_burst = 10_000_000;
    opts.config.limits.overload_queue_high = 8;
    let server = Server::start(opts).await.expect("server starts");
    let addr = server.local_addr();
    let rss_before = rss_kib();

    // Count the 503s (with Retry-After) and 200s the server sends.
    let (busy, ok) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut wire = server.wire();
    let counter = {
        let (busy, ok) = (busy.clone(), ok.clone());
        tokio::spawn(async move {
            loop {
                match wire.recv().await {
                    Ok(ev) if ev.direction == Direction::Out => {
                        if ev.bytes.starts_with(b"SIP/2.0 503")
                            && ev.bytes.windows(13).any(|w| w == b"Retry-After: ")
                        {
                            busy.fetch_add(1, Ordering::Relaxed);
                        } else if ev.bytes.starts_with(b"SIP/2.0 200") {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        })
    };

    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/options_flood.xml");
    let out = Command::new("timeout")
        .arg("90")
        .arg("sipp")
        .arg(addr.to_string())
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args(["-r", "20000", "-rp", "1000", "-m", "40000", "-l", "20000"])
        .args(["-timeout", "60s", "-nostdin", "-nd"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .expect("sipp runs (apt-get install sip-tester)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 0: every call answered; 1: some lost (datagrams dropped in the flood).
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "sipp: {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );

    // Recovers: an OPTIONS after the flood is served.
    assert_eq!(options_answered(addr).await, Some(200));
    let rss_after = rss_kib();
    counter.abort();
    let (busy, ok) = (busy.load(Ordering::Relaxed), ok.load(Ordering::Relaxed));
    println!(
        "flood of 40000 OPTIONS at 20000/s offered: {ok} answered 200, {busy} answered 503; \
         RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(busy > 0, "no 503 seen ({ok} 200s)");
    assert!(ok > 0, "nothing served during the flood");
    // Bounded: the queue holds at most work_queue_capacity messages.
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    server.shutdown().await;
}
