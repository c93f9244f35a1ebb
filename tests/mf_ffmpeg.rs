//! An independent receiver: ffmpeg (Debian `ffmpeg`), given an SDP made from
//! the server's offer, decodes the PCMU stream the Media Function sends to a
//! WAV; its duration and level are checked against the content. Skipped
//! (with a note) when ffmpeg is not installed; CI installs it.

mod common;
mod cpm_common;
mod mf_common;

use std::process::{Command, Stdio};
use std::time::Duration;

use isc::media::content::Content;
use isc::proto::sdp::{MediaKind, parse_sdp};
use isc::server::rtp_sender::PortPair;

use cpm_common::{final_for, recv_request};
use mf_common::*;

const SECONDS: f64 = 3.0;

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

#[tokio::test]
async fn ffmpeg_decodes_the_audio_stream() {
    // A real peer is the point: no silent skip (.ci/run installs ffmpeg).
    assert!(
        Command::new("ffmpeg").arg("-version").output().is_ok(),
        "ffmpeg is not installed: apt-get install -y ffmpeg"
    );
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let bob = Viewer::register(addr, "bob", "b1", "ffmpeg").await;
    let request = content_request("melody", None, None, "sip:bob@isc.local");
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
    let binv = recv_request(&bob.sip, rsip::Method::Invite).await;

    // The receiver's SDP: the server's audio line (codec, clock) with the
    // port ffmpeg listens on.
    let offer = parse_sdp(
        &part(&binv.headers, &binv.body, "application/sdp")
            .unwrap()
            .body,
    )
    .unwrap();
    let audio = offer.rtp().find(|l| l.kind == MediaKind::Audio).unwrap();
    assert_eq!(audio.payload_types, [0]);
    let rtpmap = audio.codec(0).unwrap();
    let port = {
        let pair = PortPair::bind("127.0.0.1".parse().unwrap()).await.unwrap();
        pair.port()
    };
    let receiver_sdp = format!(
        "v=0\r\no=ffmpeg 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:{rtpmap}\r\na=recvonly\r\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let sdp_path = dir.path().join("stream.sdp");
    let wav_path = dir.path().join("out.wav");
    std::fs::write(&sdp_path, &receiver_sdp).unwrap();
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp",
        ])
        .arg("-i")
        .arg(&sdp_path)
        .args(["-t", &SECONDS.to_string(), "-ac", "1", "-ar", "8000", "-y"])
        .arg(&wav_path)
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg starts");
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // bob's device answers with ffmpeg's port (video refused)
    let answer = format!(
        "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\nm=video 0 RTP/AVP 26\r\n"
    );
    answer_ok(&bob.sip, &binv, "bobtag", &answer).await;
    assert_eq!(final_for(&alice.sip, &sent).await.status_code.code(), 200);

    let status = tokio::task::spawn_blocking(move || {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if std::time::Instant::now() > end {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "ffmpeg finished: {status:?}"
    );

    let mut wav = hound::WavReader::open(&wav_path).unwrap();
    let spec = wav.spec();
    assert_eq!((spec.sample_rate, spec.channels), (8000, 1));
    let decoded: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let secs = decoded.len() as f64 / 8000.0;
    assert!((secs - SECONDS).abs() < 0.15, "decoded {secs} s");
    // The level matches the content's first seconds (PCMU keeps it within a
    // fraction of a dB; allow for where ffmpeg started listening).
    let content = Content::load(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/content/melody")
            .as_path(),
    )
    .unwrap();
    let reference = rms(&content.audio.samples[..(SECONDS * 8000.0) as usize]);
    let got = rms(&decoded);
    let db = 20.0 * (got / reference).log10();
    assert!(
        db.abs() < 3.0,
        "level {got:.0} vs {reference:.0} ({db:.1} dB)"
    );
    server.shutdown().await;
}
