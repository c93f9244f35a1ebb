//! A real sender: Debian's ffmpeg streams a 1 kHz tone as PCMU over RTP
//! (PEERS.md §5 recipe) to the player, which must decode it correctly
//! (Goertzel at 1 kHz vs 1.3 kHz). Skipped, loudly, when ffmpeg is not
//! installed (CI installs it: `apt-get install ffmpeg`).

mod player_support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use isc::media::audio_out::{self, AudioOut};
use isc::media::player::{Player, PlayerConfig};
use isc::media::resample::goertzel;
use isc::net::rtp_socket::{PlayerSockets, spawn_player};
use player_support::read_wav;

fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_pcmu_tone_is_decoded() {
    // A real peer is the point of this test: no silent skip (.ci/run installs ffmpeg).
    assert!(
        have_ffmpeg(),
        "ffmpeg is not installed: apt-get install -y ffmpeg"
    );
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("rx.wav");
    let sink = audio_out::open(&AudioOut::Wav {
        path: wav.clone(),
        rate: 8000,
    })
    .unwrap();
    let player = Player::new(
        PlayerConfig::new(0xf00d, "player@test"),
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
    let url = format!("rtp://127.0.0.1:{port}");
    let ffmpeg = tokio::task::spawn_blocking(move || {
        Command::new("ffmpeg")
            .args(["-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i"])
            .arg("sine=frequency=1000:sample_rate=8000:duration=2")
            .args(["-ac", "1", "-ar", "8000", "-c:a", "pcm_mulaw"])
            .args(["-f", "rtp", "-payload_type", "0"])
            .arg(url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        ffmpeg.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&ffmpeg.stderr)
    );
    // let the jitter buffer play out
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stats = handle.stop().await.unwrap();
    let (rate, samples) = read_wav(&wav);
    let secs = samples.len() as f64 / f64::from(rate);
    let at_1k = goertzel(&samples, rate, 1000.0);
    let at_1k3 = goertzel(&samples, rate, 1300.0);
    eprintln!(
        "ffmpeg → player: {secs:.2} s, mag@1000Hz={at_1k:.0} mag@1300Hz={at_1k3:.0}, stats {}",
        serde_json::to_string(&stats).unwrap()
    );
    assert!(stats.audio.packets_received > 0);
    assert!(secs > 1.8 && secs < 2.3, "{secs} s");
    // lavfi's sine is 1/8 of full scale (4096): Goertzel reads ≈ 2048
    assert!(at_1k > 1500.0, "{at_1k}");
    assert!(at_1k3 < at_1k / 50.0, "{at_1k3}");
    assert!(stats.audio.sender_reports >= 1, "ffmpeg's SR not seen");
}
