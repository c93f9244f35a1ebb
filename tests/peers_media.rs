//! Media peers nobody here wrote, on loopback:
//! - GStreamer 1.22 (`gst-launch-1.0`: udpsrc → rtpjitterbuffer →
//!   rtppcmudepay/mulawdec and rtpjpegdepay/jpegdec) and ffmpeg 5.1 (given
//!   an SDP file made from the server's offer) each receive the ISC Media
//!   Function's content stream — PCMU audio and RFC 2435 JPEG video — and
//!   decode it to files. The test checks each file's duration (ffprobe),
//!   the audio level against the source asset, and that every decoded
//!   picture is one of the asset's frames, in order.
//! - GStreamer sends a 1 kHz PCMU tone (RFC 3551 §4.5.14) that the isc
//!   player decodes (ffmpeg's twin is tests/player_ffmpeg.rs).
//!
//! Skipped, with the reason printed, only when the peer binary is absent;
//! `.ci/run` installs gstreamer1.0-tools, -plugins-good, -plugins-base and
//! ffmpeg.

mod common;
mod cpm_common;
mod mf_common;
mod peers_support;
mod player_support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isc::media::audio_out::{self, AudioOut};
use isc::media::content::Content;
use isc::media::player::{Player, PlayerConfig};
use isc::media::resample::goertzel;
use isc::net::rtp_socket::{PlayerSockets, spawn_player};
use isc::proto::sdp::{MediaKind, parse_sdp};
use isc::server::rtp_sender::PortPair;

use cpm_common::{final_for, recv_request};
use mf_common::*;
use peers_support::have;

/// Packets of 20 ms (audio) and frames at the content's 10 fps (video) the
/// receivers keep: 3 s of each.
const AUDIO_PACKETS: u32 = 150;
const VIDEO_FRAMES: u32 = 30;
const SECONDS: f64 = 3.0;
const CONTENT: &str = "test-card";

fn content() -> Content {
    Content::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/content")
            .join(CONTENT),
    )
    .unwrap()
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// An even RTP port whose RTCP neighbour (+1) is free too, right now.
async fn rtp_port() -> u16 {
    let pair = PortPair::bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    pair.port()
}

/// The server's offer to bob's device for `CONTENT`, watched by alice
/// (seed 000 C.15-style 1-1 viewing), and the handles to answer it.
struct Viewing {
    server: isc::server::runner::ServerHandle,
    alice: Viewer,
    bob: Viewer,
    invite_to_bob: rsip::Request,
    sent: rsip::Request,
}

impl Viewing {
    async fn offer() -> Viewing {
        let server = start(|_| {}).await;
        let addr = server.local_addr();
        let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
        let bob = Viewer::register(addr, "bob", "b1", "peer").await;
        let request = content_request(CONTENT, None, None, "sip:bob@isc.local");
        let sdp = alice.sdp();
        let inv = cv_invite(
            &mut alice.sip,
            "sip:bob@isc.local",
            ICSI_1_1,
            &sdp,
            &request,
            vec![],
            &[],
        );
        let sent = send_invite(&mut alice.sip, inv).await;
        let invite_to_bob = recv_request(&bob.sip, rsip::Method::Invite).await;
        Viewing {
            server,
            alice,
            bob,
            invite_to_bob,
            sent,
        }
    }

    /// The offer's audio and video `a=rtpmap` values, checked to be what
    /// the receivers are set up for (PCMU/8000 on 0, JPEG/90000 on 26).
    fn codecs(&self) -> (String, String) {
        let body = part(
            &self.invite_to_bob.headers,
            &self.invite_to_bob.body,
            "application/sdp",
        )
        .unwrap()
        .body;
        let offer = parse_sdp(&body).unwrap();
        let audio = offer.rtp().find(|l| l.kind == MediaKind::Audio).unwrap();
        let video = offer.rtp().find(|l| l.kind == MediaKind::Video).unwrap();
        assert_eq!(audio.payload_types, [0]);
        assert_eq!(video.payload_types, [26]);
        let a = audio.codec(0).unwrap().to_string();
        let v = video.codec(26).unwrap().to_string();
        assert_eq!(a, "0 PCMU/8000");
        assert_eq!(v, "26 JPEG/90000");
        (a, v)
    }

    /// bob's device answers with the receiver's ports; alice gets her 200.
    async fn answer(&self, audio_port: u16, video_port: u16) {
        let answer = format!(
            "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {audio_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n\
             m=video {video_port} RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=recvonly\r\n"
        );
        answer_ok(&self.bob.sip, &self.invite_to_bob, "bobtag", &answer).await;
        assert_eq!(
            final_for(&self.alice.sip, &self.sent)
                .await
                .status_code
                .code(),
            200
        );
    }
}

/// Waits for a child (`timeout` running a peer) with a deadline; ends it
/// by its PID on expiry. Returns its exit code.
async fn wait_child(mut child: std::process::Child, within: Duration) -> Option<i32> {
    tokio::task::spawn_blocking(move || {
        let end = Instant::now() + within;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s.code();
            }
            if Instant::now() > end {
                // TERM to our `timeout`, which passes it on to the peer
                // (and SIGKILLs it 3 s later, `-k 3`)
                peers_support::terminate(child.id());
                std::thread::sleep(Duration::from_secs(5));
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap()
}

/// `ffprobe`'s format duration of `path`, in seconds.
fn probe_duration(path: &Path) -> f64 {
    let out = Command::new("timeout")
        .args(["10", "ffprobe", "-v", "error", "-show_entries"])
        .args(["format=duration", "-of", "default=nw=1:nk=1"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe {}: {text:?} {:?}", path.display(), out))
}

/// The luma planes of a YUV4MPEG2 file (4:2:0), with its width and height.
fn y4m_frames(path: &Path) -> (usize, usize, Vec<Vec<u8>>) {
    let data = std::fs::read(path).unwrap();
    let nl = data.iter().position(|b| *b == b'\n').expect("y4m header");
    let header = String::from_utf8_lossy(&data[..nl]).into_owned();
    assert!(header.starts_with("YUV4MPEG2 "), "{header}");
    let field = |c: char| -> usize {
        header
            .split(' ')
            .find_map(|f| f.strip_prefix(c))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {c} in {header}"))
    };
    let (w, h) = (field('W'), field('H'));
    let frame_len = w * h + 2 * (w.div_ceil(2) * h.div_ceil(2));
    let mut frames = Vec::new();
    let mut at = nl + 1;
    while at < data.len() {
        let Some(end) = data[at..].iter().position(|b| *b == b'\n') else {
            break;
        };
        assert!(data[at..].starts_with(b"FRAME"), "bad y4m frame at {at}");
        let start = at + end + 1;
        if start + frame_len > data.len() {
            break;
        }
        frames.push(data[start..start + w * h].to_vec());
        at = start + frame_len;
    }
    (w, h, frames)
}

/// The asset's frames as luma, full range (JFIF) and limited range
/// (BT.601), since a decoder may hand either to the file.
fn content_luma(content: &Content) -> Vec<[Vec<u8>; 2]> {
    let video = content.video.as_ref().expect("content has video");
    video
        .frames
        .iter()
        .map(|f| {
            let px = f.rgb.chunks_exact(3);
            let full = px
                .clone()
                .map(|p| {
                    let (r, g, b) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
                    (0.299 * r + 0.587 * g + 0.114 * b).round() as u8
                })
                .collect();
            let limited = px
                .map(|p| {
                    let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
                    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
                })
                .collect();
            [full, limited]
        })
        .collect()
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len().max(1) as f64
}

/// Every decoded picture is one of the asset's frames (mean luma error
/// under 4 of 255; neighbouring frames of the test card differ by its
/// counter and bouncing square) and they advance along the content's timeline.
fn check_pictures(who: &str, path: &Path, content: &Content) {
    let video = content.video.as_ref().unwrap();
    let (w, h, frames) = y4m_frames(path);
    assert_eq!(
        (w, h),
        (usize::from(video.width), usize::from(video.height)),
        "{who}"
    );
    assert!(
        frames.len() >= (VIDEO_FRAMES as usize) - 1,
        "{who}: {} frames",
        frames.len()
    );
    let reference = content_luma(content);
    let mut matched = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let (best, err) = reference
            .iter()
            .enumerate()
            .map(|(j, r)| (j, mean_abs_diff(f, &r[0]).min(mean_abs_diff(f, &r[1]))))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(
            err < 4.0,
            "{who}: picture {i} matches no frame (best {best}, error {err:.1})"
        );
        matched.push(best);
    }
    eprintln!(
        "{who}: {} pictures {w}x{h}, matching asset frames {matched:?}",
        frames.len()
    );
    // one asset frame after the other, none repeated, hardly any skipped
    // (a jitter buffer under load may drop a late one): the pictures
    // follow the content's 10 fps timeline
    assert!(
        matched.windows(2).all(|p| p[1] > p[0]),
        "{who}: pictures out of order or repeated: {matched:?}"
    );
    let span = matched[matched.len() - 1] - matched[0];
    assert!(
        span + 1 >= matched.len() && span <= matched.len() + 2,
        "{who}: pictures skip frames: {matched:?}"
    );
}

/// The decoded audio: 8 kHz mono, `SECONDS` long (ffprobe), at the level
/// of the asset's first seconds (PCMU keeps it within a fraction of a dB;
/// 3 dB allows for where the receiver started).
fn check_audio(who: &str, path: &Path, content: &Content) {
    let secs = probe_duration(path);
    assert!((secs - SECONDS).abs() < 0.15, "{who}: {secs} s of audio");
    let mut wav = hound::WavReader::open(path).unwrap();
    let spec = wav.spec();
    assert_eq!((spec.sample_rate, spec.channels), (8000, 1), "{who}");
    let decoded: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let reference = rms(&content.audio.samples[..(SECONDS * 8000.0) as usize]);
    let got = rms(&decoded);
    let db = 20.0 * (got / reference).log10();
    eprintln!("{who}: {secs:.2} s, rms {got:.0} vs source {reference:.0} ({db:+.2} dB)");
    assert!(
        db.abs() < 3.0,
        "{who}: level {got:.0} vs {reference:.0} ({db:.1} dB)"
    );
}

fn output_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_decodes_the_content_stream() {
    if !have("gst-launch-1.0", "--version", "gstreamer1.0-tools")
        || !have("ffprobe", "-version", "ffmpeg")
    {
        return;
    }
    let viewing = Viewing::offer().await;
    viewing.codecs();
    let (ap, vp) = (rtp_port().await, rtp_port().await);
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("audio.wav");
    let y4m = dir.path().join("video.y4m");
    let log = dir.path().join("gst.log");
    // Caps stand in for the SDP (udpsrc has none): the offer's rtpmap lines.
    let pipeline = format!(
        "udpsrc address=127.0.0.1 port={ap} num-buffers={AUDIO_PACKETS} \
           caps=application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0 \
         ! rtpjitterbuffer ! rtppcmudepay ! mulawdec ! audioconvert \
         ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! wavenc ! filesink location={} \
         udpsrc address=127.0.0.1 port={vp} \
           caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26,a-framerate=(string)10 \
         ! rtpjitterbuffer ! rtpjpegdepay ! jpegdec ! identity eos-after={VIDEO_FRAMES} \
         ! videoconvert ! video/x-raw,format=I420 ! y4menc ! filesink location={}",
        wav.display(),
        y4m.display()
    );
    let child = Command::new("timeout")
        .args(["-s", "INT", "-k", "3", "25", "gst-launch-1.0", "-e"])
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("gst.err")).unwrap())
        .spawn()
        .expect("gst-launch-1.0 starts");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    viewing.answer(ap, vp).await;
    let rc = wait_child(child, Duration::from_secs(30)).await;
    assert_eq!(
        rc,
        Some(0),
        "gst-launch-1.0:\n{}\n{}",
        output_of(&log),
        output_of(&dir.path().join("gst.err"))
    );
    let content = content();
    check_audio("gstreamer", &wav, &content);
    check_pictures("gstreamer", &y4m, &content);
    let secs = probe_duration(&y4m);
    assert!(
        (secs - SECONDS).abs() < 0.15,
        "gstreamer: {secs} s of video"
    );
    viewing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_the_content_stream() {
    if !have("ffmpeg", "-version", "ffmpeg") {
        return;
    }
    let viewing = Viewing::offer().await;
    let (a, v) = viewing.codecs();
    let (ap, vp) = (rtp_port().await, rtp_port().await);
    let dir = tempfile::tempdir().unwrap();
    // The receiver's SDP: the server's rtpmaps at the ports ffmpeg listens on.
    let sdp = format!(
        "v=0\r\no=ffmpeg 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {ap} RTP/AVP 0\r\na=rtpmap:{a}\r\na=recvonly\r\n\
         m=video {vp} RTP/AVP 26\r\na=rtpmap:{v}\r\na=framerate:10\r\na=recvonly\r\n"
    );
    let sdp_path = dir.path().join("stream.sdp");
    std::fs::write(&sdp_path, sdp).unwrap();
    let wav = dir.path().join("audio.wav");
    let y4m = dir.path().join("video.y4m");
    let log = dir.path().join("ffmpeg.log");
    let secs = SECONDS.to_string();
    let child = Command::new("timeout")
        .args([
            "-k",
            "3",
            "25",
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
        ])
        .args(["-protocol_whitelist", "file,udp,rtp", "-i"])
        .arg(&sdp_path)
        .args(["-map", "0:a", "-t", &secs, "-ac", "1", "-ar", "8000", "-y"])
        .arg(&wav)
        .args([
            "-map", "0:v", "-t", &secs, "-r", "10", "-pix_fmt", "yuv420p", "-y",
        ])
        .arg(&y4m)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("ffmpeg starts");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    viewing.answer(ap, vp).await;
    let rc = wait_child(child, Duration::from_secs(30)).await;
    assert_eq!(rc, Some(0), "ffmpeg:\n{}", output_of(&log));
    let content = content();
    check_audio("ffmpeg", &wav, &content);
    check_pictures("ffmpeg", &y4m, &content);
    let secs = probe_duration(&y4m);
    assert!((secs - SECONDS).abs() < 0.15, "ffmpeg: {secs} s of video");
    viewing.server.shutdown().await;
}

/// GStreamer (PEERS.md §5 recipe) sends 2 s of a 1 kHz PCMU tone; the
/// player decodes it: energy at 1 kHz, none at 1.3 kHz (Goertzel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_pcmu_tone_is_decoded_by_the_player() {
    if !have("gst-launch-1.0", "--version", "gstreamer1.0-tools") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wav: PathBuf = dir.path().join("rx.wav");
    let sink = audio_out::open(&AudioOut::Wav {
        path: wav.clone(),
        rate: 8000,
    })
    .unwrap();
    let player = Player::new(
        PlayerConfig::new(0x65_7a, "player@test"),
        sink,
        Instant::now(),
    );
    let sockets = PlayerSockets {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        audio_port: Some(0),
        video_port: None,
        rtcp_mux: false,
    };
    let handle = spawn_player(sockets, player).await.unwrap();
    let port = handle.audio_port.unwrap();
    let pipeline = format!(
        "audiotestsrc wave=sine freq=1000 volume=0.125 num-buffers=100 samplesperbuffer=160 is-live=true \
         ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! mulawenc ! rtppcmupay pt=0 \
         ! udpsink host=127.0.0.1 port={port}"
    );
    let child = Command::new("timeout")
        .args(["-k", "3", "20", "gst-launch-1.0"])
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("gst.err")).unwrap())
        .spawn()
        .expect("gst-launch-1.0 starts");
    let rc = wait_child(child, Duration::from_secs(25)).await;
    assert_eq!(rc, Some(0), "{}", output_of(&dir.path().join("gst.err")));
    // let the jitter buffer play out
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stats = handle.stop().await.unwrap();
    let (rate, samples) = player_support::read_wav(&wav);
    let secs = samples.len() as f64 / f64::from(rate);
    let at_1k = goertzel(&samples, rate, 1000.0);
    let at_1k3 = goertzel(&samples, rate, 1300.0);
    eprintln!(
        "gstreamer → player: {secs:.2} s, mag@1000Hz={at_1k:.0} mag@1300Hz={at_1k3:.0}, {} packets",
        stats.audio.packets_received
    );
    assert_eq!(stats.audio.packets_received, 100);
    assert!(secs > 1.8 && secs < 2.3, "{secs} s");
    // amplitude 1/8 of full scale (4096): Goertzel reads ≈ 2048
    assert!(at_1k > 1500.0 && at_1k < 2600.0, "{at_1k}");
    assert!(at_1k3 < at_1k / 50.0, "{at_1k3}");
}
