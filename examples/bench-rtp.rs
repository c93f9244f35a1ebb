//! RTP: the ISC Media Function's streamer (`RtpStreamer` driven by its
//! tokio task, `rtp_sender::spawn_stream`, from the server's media sockets)
//! streaming one content (`test-card`: PCMU 20 ms packets + RFC 2435 JPEG at
//! 10 fps, looping) to 1 viewer and then to 500 viewers, side by side in one
//! run. Each viewer has its own audio and video UDP socket on loopback; the
//! audio ones are read with kernel receive timestamps (SO_TIMESTAMPNS), so
//! the receivers' own scheduling does not count. Figures: the streamer
//! thread's CPU (schedstat), the pacing error (|inter-arrival − 20 ms| of
//! consecutive audio packets of one viewer, p50 / p99 over all viewers) and
//! the fan-out lag (a packet's arrival at a viewer after its first arrival
//! at any viewer, p99). Prints figures; asserts nothing.
//!
//!     cargo build --release --example bench-rtp
//!     target/release/examples/bench-rtp [--viewers 500] [--secs 10]

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_support::{own_thread_cpu, provenance, quantile};
use isc::media::content::Content;
use isc::server::rtp_sender::{MediaSockets, StreamCommand, spawn_stream};
use isc::server::rtp_streamer::{
    MediaDest, RtpStreamer, StreamIds, StreamerConfig, ViewerDest, ViewerId,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

const AUDIO_PACKET: Duration = Duration::from_millis(20);

/// One datagram and its kernel receive time (ns, CLOCK_REALTIME).
fn recv_stamped(fd: i32, buf: &mut [u8]) -> std::io::Result<(usize, i128)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points into live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut at = 0i128;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, at))
}

/// A viewer's audio socket with kernel timestamps on.
async fn stamped_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let on: libc::c_int = 1;
    // SAFETY: a valid option value of the size given, on our own socket.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as _,
        );
    }
    s
}

/// (RTP sequence number, arrival ns) of every audio RTP packet until `until`.
async fn receive(sock: UdpSocket, until: tokio::time::Instant) -> Vec<(u16, i128)> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    let fd = sock.as_raw_fd();
    loop {
        let ready = tokio::time::timeout_at(until, sock.readable()).await;
        if !matches!(ready, Ok(Ok(()))) {
            break;
        }
        match sock.try_io(Interest::READABLE, || recv_stamped(fd, &mut buf)) {
            Ok((n, at)) if n >= 12 => {
                // RTCP (PT 200..=204 in the whole second byte) shares the socket
                if (200..=204).contains(&buf[1]) {
                    continue;
                }
                got.push((u16::from_be_bytes([buf[2], buf[3]]), at));
            }
            _ => continue,
        }
    }
    got
}

struct Figures {
    viewers: usize,
    cpu: Duration,
    secs: f64,
    packets: usize,
    dev_p50: Duration,
    dev_p99: Duration,
    lag_p99: Duration,
}

/// Streams to `viewers` for `secs` and measures.
async fn run(content: Arc<Content>, viewers: usize, secs: u64) -> Figures {
    // the streamer on a thread of its own, so its CPU is its thread's
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let c = content.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as i64;
            let sockets = MediaSockets::bind([127, 0, 0, 1].into())
                .await
                .expect("media sockets");
            let ids = StreamIds {
                audio_ssrc: 0x1111,
                video_ssrc: 0x2222,
                audio_seq: 1,
                video_seq: 1,
                audio_ts: 0,
                video_ts: 0,
            };
            let config = StreamerConfig {
                looping: true,
                ..StreamerConfig::default()
            };
            let handle = spawn_stream(RtpStreamer::new(c, config, ids), sockets);
            let _ = tx.send((tid, handle.commands.clone()));
            let _ = stop_rx.await;
            handle.task.abort();
        });
    });
    let (tid, commands) = rx.recv().expect("the streamer starts");
    let mut audio = Vec::new();
    let mut video = Vec::new();
    for i in 0..viewers {
        let a = stamped_socket().await;
        let v = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let a_addr: SocketAddr = a.local_addr().expect("addr");
        let v_addr: SocketAddr = v.local_addr().expect("addr");
        let dest = ViewerDest {
            audio: Some(MediaDest {
                rtp: a_addr,
                rtcp: a_addr,
            }),
            video: Some(MediaDest {
                rtp: v_addr,
                rtcp: v_addr,
            }),
        };
        let _ = commands.send(StreamCommand::AddViewer(ViewerId(i as u64), dest));
        audio.push(a);
        video.push(v); // not read: the kernel drops what overflows
    }
    let until =
        tokio::time::Instant::now() + Duration::from_secs(secs) + Duration::from_millis(300);
    let tasks: Vec<_> = audio
        .into_iter()
        .map(|s| tokio::spawn(receive(s, until)))
        .collect();
    let cpu0 = own_thread_cpu(tid);
    let t0 = Instant::now();
    let _ = commands.send(StreamCommand::Resume);
    tokio::time::sleep_until(until - Duration::from_millis(300)).await;
    let cpu = own_thread_cpu(tid).saturating_sub(cpu0);
    let elapsed = t0.elapsed().as_secs_f64();
    let _ = commands.send(StreamCommand::Pause);
    let _ = stop_tx.send(());
    let _ = thread.join();
    let mut devs = Vec::new();
    let mut first: HashMap<u16, i128> = HashMap::new();
    let mut per_viewer = Vec::new();
    let mut packets = 0;
    for t in tasks {
        let got = t.await.unwrap_or_default();
        packets += got.len();
        for w in got.windows(2) {
            let ((s0, t0), (s1, t1)) = (w[0], w[1]);
            if s1 == s0.wrapping_add(1) {
                let d = (t1 - t0) - AUDIO_PACKET.as_nanos() as i128;
                devs.push(Duration::from_nanos(d.unsigned_abs() as u64));
            }
        }
        for &(s, at) in &got {
            first
                .entry(s)
                .and_modify(|f| *f = (*f).min(at))
                .or_insert(at);
        }
        per_viewer.push(got);
    }
    let mut lags = Vec::new();
    for got in &per_viewer {
        for &(s, at) in got {
            if let Some(f) = first.get(&s) {
                lags.push(Duration::from_nanos((at - f).max(0) as u64));
            }
        }
    }
    drop(video);
    Figures {
        viewers,
        cpu,
        secs: elapsed,
        packets,
        dev_p50: quantile(&mut devs, 0.5),
        dev_p99: quantile(&mut devs, 0.99),
        lag_p99: quantile(&mut lags, 0.99),
    }
}

fn show(f: &Figures) {
    println!(
        "{:>4} viewer(s): streamer CPU {:.3} s in {:.1} s ({:.2} % of a core, {:.1} µs per viewer-second); {} audio packets received; pacing error p50 {:.3} ms, p99 {:.3} ms; fan-out lag p99 {:.3} ms",
        f.viewers,
        f.cpu.as_secs_f64(),
        f.secs,
        f.cpu.as_secs_f64() / f.secs * 100.0,
        f.cpu.as_secs_f64() * 1e6 / f.secs / f.viewers as f64,
        f.packets,
        f.dev_p50.as_secs_f64() * 1e3,
        f.dev_p99.as_secs_f64() * 1e3,
        f.lag_p99.as_secs_f64() * 1e3,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (mut viewers, mut secs) = (500usize, 10u64);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--viewers" => viewers = v.parse().unwrap_or(viewers),
            "--secs" => secs = v.parse().unwrap_or(secs),
            _ => eprintln!("unknown argument {k}"),
        }
    }
    println!("bench-rtp: {}", provenance());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/content/test-card");
    let content = match Content::load(&dir) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            println!("cannot load {}: {e}", dir.display());
            return;
        }
    };
    println!("test-card (PCMU + JPEG, looping), {secs} s per run");
    let one = run(content.clone(), 1, secs).await;
    show(&one);
    let many = run(content, viewers, secs).await;
    show(&many);
    let per = |f: &Figures| f.cpu.as_secs_f64() / f.secs / f.viewers as f64;
    println!(
        "ratio {viewers} viewers / 1 viewer: CPU {:.1} (per viewer {:.2}), pacing error p99 {:.1}",
        many.cpu.as_secs_f64() / one.cpu.as_secs_f64().max(1e-9),
        per(&many) / per(&one).max(1e-12),
        many.dev_p99.as_secs_f64() / one.dev_p99.as_secs_f64().max(1e-9),
    );
}
