//! The viewer's sound can go to a WAV file (`--audio-out`) and its
//! pictures reach the application as RGB frames (what the TUI's player pane
//! draws): alice watches the test card with bob over loopback sockets.

use std::net::SocketAddr;
use std::time::Duration;

use isc::client::content_viewing::{ViewingCommand, ViewingEvent};
use isc::client::runner::{ClientHandle, spawn_client};
use isc::client::{ClientEvent, Command, UaConfig};
use isc::media::audio_out::AudioOut;
use isc::server::runner::{Server, ServerOptions};

const WAIT: Duration = Duration::from_secs(20);

async fn client(server: SocketAddr, user: &str, device: &str, audio: AudioOut) -> ClientHandle {
    let instance = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let mut cfg = UaConfig::new(
        user,
        "isc.local",
        user,
        device,
        &instance,
        server,
        "127.0.0.1:0".parse().unwrap(),
    );
    cfg.audio = audio;
    let mut c = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("client binds");
    let registered = c
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await;
    assert!(registered.is_some(), "{user}/{device} registers");
    c
}

async fn viewing(
    c: &mut ClientHandle,
    what: &str,
    pred: impl Fn(&ViewingEvent) -> bool,
) -> ViewingEvent {
    match c
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Viewing(v) if pred(v)))
        .await
    {
        Some(ClientEvent::Viewing(v)) => v,
        other => panic!("no {what}: {other:?}"),
    }
}

#[tokio::test]
async fn viewer_sound_goes_to_a_wav_file_and_frames_carry_pixels() {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.content_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/content").into();
    let server = Server::start(opts).await.expect("server starts");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("alice-tv.wav");
    let mut alice = client(
        server.local_addr(),
        "alice",
        "tv",
        AudioOut::from_option(Some(&wav)),
    )
    .await;
    let mut bob = client(server.local_addr(), "bob", "tv", AudioOut::Null).await;

    assert!(
        alice
            .send(Command::Viewing(ViewingCommand::Watch {
                content: "test-card".into(),
                with: "sip:bob@isc.local".into(),
                chat_on: None,
            }))
            .await
    );
    let invited = viewing(&mut bob, "invitation", |v| {
        matches!(v, ViewingEvent::Invited { .. })
    })
    .await;
    let ViewingEvent::Invited { viewing: bv, .. } = invited else {
        unreachable!()
    };
    assert!(
        bob.send(Command::Viewing(ViewingCommand::Accept { viewing: bv }))
            .await
    );

    // A presented frame carries the picture: the test card's size, RGB24.
    let frame = viewing(&mut alice, "a frame", |v| {
        matches!(v, ViewingEvent::Frame { .. })
    })
    .await;
    let ViewingEvent::Frame {
        width,
        height,
        rgb,
        viewing: av,
        ..
    } = frame
    else {
        unreachable!()
    };
    assert_eq!((width, height), (160, 120));
    assert_eq!(rgb.data.len(), 160 * 120 * 3);
    viewing(
        &mut alice,
        "stats with sound played",
        |v| matches!(v, ViewingEvent::Stats { stats, .. } if stats.audio_played_ms >= 1000),
    )
    .await;
    assert!(
        alice
            .send(Command::Viewing(ViewingCommand::Bye { viewing: av }))
            .await
    );
    viewing(&mut alice, "the end", |v| {
        matches!(v, ViewingEvent::Ended { .. })
    })
    .await;

    // The WAV is finalised when the player stops: at least the second heard.
    let mut samples = 0;
    for _ in 0..50 {
        if let Ok(r) = hound::WavReader::open(&wav)
            && r.len() >= 8000
        {
            samples = r.len();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        samples >= 8000,
        "the WAV holds at least one second of sound ({samples} samples)"
    );
    server.shutdown().await;
}
