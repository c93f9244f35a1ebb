//! RTP streaming of one content (`test-card`: PCMU 20 ms packets + RFC 2435
//! JPEG at 10 fps) measured two ways, each with 1 and then `--viewers`
//! viewers:
//!
//! 1. **streamer task**: one `RtpStreamer` with every viewer, driven by its
//!    own tokio task (`rtp_sender::spawn_stream`), looping. One session
//!    shared by all viewers.
//! 2. **server path** (the product): `Server::start` in-process on a thread
//!    of its own; N content-viewing sessions opened over SIP/UDP as a client
//!    does (seed 000 5.11.1): alice INVITEs bob with a multipart/mixed body
//!    (SDP with recvonly PCMU audio and JPEG video at her own UDP sockets +
//!    `application/ISC-content-request+xml` naming `test-card`), answering
//!    the 407 with Digest; bob's one registered device answers 200 declining
//!    the media (ports 0), alice ACKs. So each session has ONE media viewer
//!    (alice's sockets) and the ISC Media Function runs N streamers from the
//!    server's single main loop (`runner.rs`). The content does not loop
//!    there (12 s): the window is cut to what is left after the setup.
//!
//! Every viewer has its own audio and video UDP socket on loopback; the
//! audio ones are read with kernel receive timestamps (SO_TIMESTAMPNS), so
//! the receivers' own scheduling does not count, and only packets that
//! arrived inside the measuring window count. Figures: the CPU of the thread
//! that sends (schedstat: the streamer task's thread; the server's thread,
//! which runs all of the server), the pacing error (|inter-arrival − 20 ms|
//! of consecutive audio packets of one viewer, p50 / p99 over all viewers),
//! the fan-out lag (streamer task only: a packet's arrival at a viewer after
//! its first arrival at any viewer, p99) and the lateness (both: a packet's
//! arrival after its slot, the slot being its RTP timestamp on the viewer's
//! own best-placed packet's grid, p99; for separate sessions this is what
//! the fan-out lag is for one). Prints figures; asserts nothing.
//!
//!     cargo build --release --bin isc --example bench-rtp
//!     target/release/examples/bench-rtp [--viewers 500] [--secs 10] [--only task|server]

#[path = "bench_support/mod.rs"]
mod bench_support;
// the SIP peers of the server tests (raw requests, Digest, ISC bodies)
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/cpm_common/mod.rs"]
mod cpm_common;
#[path = "../tests/mf_common/mod.rs"]
mod mf_common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_support::{own_thread_cpu, provenance, quantile};
use isc::media::content::Content;
use isc::proto::sip::digest::client::DigestClient;
use isc::proto::sip::headers::HeadersExt;
use isc::server::rtp_sender::{MediaSockets, StreamCommand, spawn_stream};
use isc::server::rtp_streamer::{
    MediaDest, RtpStreamer, StreamIds, StreamerConfig, ViewerDest, ViewerId,
};
use isc::server::runner::{Server, ServerOptions};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

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

/// (RTP sequence number, RTP timestamp, arrival ns) of every audio RTP
/// packet until `stop`.
async fn receive(sock: UdpSocket, stop: CancellationToken) -> Vec<(u16, u32, i128)> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    let fd = sock.as_raw_fd();
    loop {
        let ready = tokio::select! {
            r = sock.readable() => r,
            _ = stop.cancelled() => break,
        };
        if ready.is_err() {
            break;
        }
        match sock.try_io(Interest::READABLE, || recv_stamped(fd, &mut buf)) {
            Ok((n, at)) if n >= 12 => {
                // RTCP (PT 200..=204 in the whole second byte) shares the socket
                if (200..=204).contains(&buf[1]) {
                    continue;
                }
                let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                got.push((u16::from_be_bytes([buf[2], buf[3]]), ts, at));
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
    /// One shared session only.
    lag_p99: Option<Duration>,
    late_p99: Duration,
}

/// Now on the clock of the kernel timestamps (CLOCK_REALTIME, ns).
fn realtime_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The figures from what each viewer received within [`from`, `to`] (ns).
fn figures(
    viewers: usize,
    cpu: Duration,
    secs: f64,
    received: Vec<Vec<(u16, u32, i128)>>,
    (from, to): (i128, i128),
    shared: bool,
) -> Figures {
    let mut devs = Vec::new();
    let mut first: HashMap<u16, i128> = HashMap::new();
    let mut lates = Vec::new();
    let mut packets = 0;
    let per_viewer: Vec<Vec<(u16, u32, i128)>> = received
        .into_iter()
        .map(|got| {
            got.into_iter()
                .filter(|(_, _, at)| (from..=to).contains(at))
                .collect()
        })
        .collect();
    for got in &per_viewer {
        packets += got.len();
        for w in got.windows(2) {
            let ((s0, _, t0), (s1, _, t1)) = (w[0], w[1]);
            if s1 == s0.wrapping_add(1) {
                let d = (t1 - t0) - AUDIO_PACKET.as_nanos() as i128;
                devs.push(Duration::from_nanos(d.unsigned_abs() as u64));
            }
        }
        for &(s, _, at) in got {
            first
                .entry(s)
                .and_modify(|f| *f = (*f).min(at))
                .or_insert(at);
        }
        // arrival − media time (8 kHz clock, unwrapped from the first packet)
        let Some(&(_, ts0, _)) = got.first() else {
            continue;
        };
        let offsets: Vec<i128> = got
            .iter()
            .map(|&(_, ts, at)| {
                let media = i128::from(ts.wrapping_sub(ts0) as i32) * 1_000_000_000 / 8000;
                at - media
            })
            .collect();
        let best = offsets.iter().copied().min().unwrap_or(0);
        lates.extend(
            offsets
                .iter()
                .map(|o| Duration::from_nanos((o - best).max(0) as u64)),
        );
    }
    let lag_p99 = shared.then(|| {
        let mut lags = Vec::new();
        for got in &per_viewer {
            for &(s, _, at) in got {
                if let Some(f) = first.get(&s) {
                    lags.push(Duration::from_nanos((at - f).max(0) as u64));
                }
            }
        }
        quantile(&mut lags, 0.99)
    });
    Figures {
        viewers,
        cpu,
        secs,
        packets,
        dev_p50: quantile(&mut devs, 0.5),
        dev_p99: quantile(&mut devs, 0.99),
        lag_p99,
        late_p99: quantile(&mut lates, 0.99),
    }
}

/// The streamer task: one session, every viewer, for `secs`.
async fn run_task(content: Arc<Content>, viewers: usize, secs: u64) -> Figures {
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
    let stop = CancellationToken::new();
    let tasks: Vec<_> = audio
        .into_iter()
        .map(|s| tokio::spawn(receive(s, stop.clone())))
        .collect();
    let cpu0 = own_thread_cpu(tid);
    let t0 = Instant::now();
    let from = realtime_ns();
    let _ = commands.send(StreamCommand::Resume);
    tokio::time::sleep_until(until - Duration::from_millis(300)).await;
    let cpu = own_thread_cpu(tid).saturating_sub(cpu0);
    let elapsed = t0.elapsed().as_secs_f64();
    let to = realtime_ns();
    tokio::time::sleep_until(until).await;
    stop.cancel();
    let _ = commands.send(StreamCommand::Pause);
    let _ = stop_tx.send(());
    let _ = thread.join();
    let mut received = Vec::new();
    for t in tasks {
        received.push(t.await.unwrap_or_default());
    }
    drop(video);
    figures(viewers, cpu, elapsed, received, (from, to), true)
}

/// The content's length in the server (it does not loop there).
const SERVER_CONTENT: Duration = Duration::from_secs(12);

/// Bob's answer: the content-viewing session is accepted, its media declined.
const DECLINED_SDP: &str = "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=video 0 RTP/AVP 26\r\n";

/// One content-viewing session alice → bob over SIP; alice's sockets get
/// the media. Errors name the step that failed.
async fn open_session(
    alice: &mut common::Peer,
    bob: &common::Peer,
    i: usize,
    audio: u16,
    video: u16,
) -> Result<(), String> {
    let sdp = format!(
        "v=0\r\no=alice {i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {audio} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:{audio}\r\na=recvonly\r\nm=video {video} RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=rtcp:{video}\r\na=recvonly\r\n"
    );
    let request = mf_common::content_request("test-card", None, None, "sip:bob@isc.local");
    let conv = format!("ISCConvergenceID: cv-bench-{i}");
    let invite = mf_common::cv_invite(
        alice,
        "sip:bob@isc.local",
        mf_common::ICSI_1_1,
        &sdp,
        &request,
        vec![],
        &[&conv],
    );
    let mut sent = invite;
    alice.digest.authorize(&mut sent, "0a4f113b");
    alice.send(sent.clone()).await;
    let call = sent.headers.get_raw("Call-ID").unwrap_or_default();
    // alice's final response (answering one challenge) and bob's INVITE
    let ok = loop {
        let got = tokio::select! {
            m = alice.recv_within(5.0) => (true, m),
            m = bob.recv_within(5.0) => (false, m),
        };
        match got {
            (_, None) => return Err(format!("session {i}: nothing for 5 s")),
            (false, Some(rsip::SipMessage::Request(r))) if r.method == rsip::Method::Invite => {
                mf_common::answer_ok(bob, &r, &format!("bob{i}"), DECLINED_SDP).await;
            }
            (true, Some(rsip::SipMessage::Response(r)))
                if r.status_code.code() >= 200
                    && r.headers.get_raw("Call-ID").as_deref() == Some(call.as_str()) =>
            {
                match r.status_code.code() {
                    200 => break r,
                    407 => {
                        alice.send(cpm_common::ack_non_2xx(&sent, &r)).await;
                        alice.digest = DigestClient::new("alice", "alice");
                        alice
                            .digest
                            .handle_challenge(&r)
                            .map_err(|e| format!("challenge: {e}"))?;
                        let seq = isc::proto::sip::build::cseq(&sent.headers)
                            .map(|(n, _)| n + 1)
                            .ok_or("no CSeq")?;
                        common::bump_cseq(&mut sent, seq);
                        let branch = format!("z9hG4bK{}", alice.token());
                        common::new_branch(&mut sent, &branch);
                        alice.digest.authorize(&mut sent, "0a4f113b");
                        alice.send(sent.clone()).await;
                    }
                    c => {
                        alice.send(cpm_common::ack_non_2xx(&sent, &r)).await;
                        return Err(format!("session {i}: {c} to the INVITE"));
                    }
                }
            }
            _ => {}
        }
    };
    let seq = isc::proto::sip::build::cseq(&sent.headers)
        .map(|(n, _)| n)
        .ok_or("no CSeq")?;
    let ack = mf_common::DialogView::uac(&sent, &ok).ack(alice, seq);
    alice.send(ack).await;
    Ok(())
}

/// The server path: `sessions` content-viewing sessions opened over SIP.
async fn run_server(sessions: usize, secs: u64) -> Result<Figures, String> {
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data_dir = data.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as i64;
            let mut opts = ServerOptions::loopback_demo();
            opts.config.users = ["alice", "bob"]
                .iter()
                .map(|n| isc::config::UserConfig::new(n, n))
                .collect();
            opts.config.content_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/content");
            opts.config.data_dir = Some(data_dir);
            match Server::start(opts).await {
                Ok(server) => {
                    let _ = tx.send(Ok((tid, server.local_addr())));
                    let _ = stop_rx.await;
                    server.shutdown().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let (tid, addr) = rx.recv().map_err(|e| e.to_string())??;
    let mut bob = common::Peer::new(addr, "bob", "bob").await;
    let reg = bob.register("0000bench-bob-tv", "tv").await;
    if reg.status_code.code() != 200 {
        return Err(format!("bob's REGISTER: {}", reg.status_code));
    }
    let mut alice = common::Peer::new(addr, "alice", "alice").await;
    let started = Instant::now();
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut video = Vec::new();
    for i in 0..sessions {
        let a = stamped_socket().await;
        let v = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (ap, vp) = (
            a.local_addr().map_err(|e| e.to_string())?.port(),
            v.local_addr().map_err(|e| e.to_string())?.port(),
        );
        tokio::time::timeout(
            Duration::from_secs(10),
            open_session(&mut alice, &bob, i, ap, vp),
        )
        .await
        .map_err(|_| format!("session {i}: no answer in 10 s"))??;
        // read from the start; only the window counts
        tasks.push(tokio::spawn(receive(a, stop.clone())));
        video.push(v); // not read: the kernel drops what overflows
    }
    let setup = started.elapsed();
    let left = SERVER_CONTENT
        .saturating_sub(setup)
        .saturating_sub(Duration::from_millis(700));
    let window = Duration::from_secs(secs).min(left);
    println!(
        "  server path: {sessions} session(s) opened over SIP in {:.2} s; measuring {:.1} s",
        setup.as_secs_f64(),
        window.as_secs_f64()
    );
    let cpu0 = own_thread_cpu(tid);
    let t0 = Instant::now();
    let from = realtime_ns();
    tokio::time::sleep(window).await;
    let cpu = own_thread_cpu(tid).saturating_sub(cpu0);
    let elapsed = t0.elapsed().as_secs_f64();
    let to = realtime_ns();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let _ = stop_tx.send(());
    let _ = thread.join();
    let mut received = Vec::new();
    for t in tasks {
        received.push(t.await.unwrap_or_default());
    }
    drop(video);
    Ok(figures(sessions, cpu, elapsed, received, (from, to), false))
}

fn show(what: &str, f: &Figures) {
    let lag = match f.lag_p99 {
        Some(l) => format!("fan-out lag p99 {:.3} ms, ", l.as_secs_f64() * 1e3),
        None => String::new(),
    };
    println!(
        "{what} {:>4} viewer(s): CPU {:.3} s in {:.1} s ({:.2} % of a core, {:.1} µs per viewer-second); {} audio packets received; pacing error p50 {:.3} ms, p99 {:.3} ms; {lag}lateness p99 {:.3} ms",
        f.viewers,
        f.cpu.as_secs_f64(),
        f.secs,
        f.cpu.as_secs_f64() / f.secs * 100.0,
        f.cpu.as_secs_f64() * 1e6 / f.secs / f.viewers as f64,
        f.packets,
        f.dev_p50.as_secs_f64() * 1e3,
        f.dev_p99.as_secs_f64() * 1e3,
        f.late_p99.as_secs_f64() * 1e3,
    );
}

fn ratio(viewers: usize, one: &Figures, many: &Figures) {
    let per = |f: &Figures| f.cpu.as_secs_f64() / f.secs / f.viewers as f64;
    println!(
        "  ratio {viewers} viewers / 1 viewer: CPU {:.1} (per viewer {:.2}), pacing error p99 {:.1}",
        (many.cpu.as_secs_f64() / many.secs) / (one.cpu.as_secs_f64() / one.secs).max(1e-9),
        per(many) / per(one).max(1e-12),
        many.dev_p99.as_secs_f64() / one.dev_p99.as_secs_f64().max(1e-9),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (mut viewers, mut secs, mut only) = (500usize, 10u64, String::new());
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--viewers" => viewers = v.parse().unwrap_or(viewers),
            "--secs" => secs = v.parse().unwrap_or(secs),
            "--only" => only = v,
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
    if only != "server" {
        println!(
            "1. streamer task (rtp_sender::spawn_stream, one session, looping), {secs} s per run"
        );
        let one = run_task(content.clone(), 1, secs).await;
        show("  task  ", &one);
        let many = run_task(content.clone(), viewers, secs).await;
        show("  task  ", &many);
        ratio(viewers, &one, &many);
    }
    if only != "task" {
        println!(
            "2. server path (Server::start, one content-viewing session per viewer over SIP), up to {secs} s per run"
        );
        let mut runs = Vec::new();
        for n in [1, viewers] {
            match run_server(n, secs).await {
                Ok(f) => {
                    show("  server", &f);
                    runs.push(f);
                }
                Err(e) => println!("  server path with {n} session(s) failed: {e}"),
            }
        }
        if let [one, many] = &runs[..] {
            ratio(viewers, one, many);
        }
    }
}
