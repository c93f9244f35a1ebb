//! The RTP stream task (`rtp_sender::spawn_stream`) over real sockets: two
//! viewers get the same packets; a pause stops both; the last viewer
//! leaving stops the task.

mod common;
mod cpm_common;
mod mf_common;

use std::sync::Arc;
use std::time::Duration;

use isc::ids::RandomIds;
use isc::media::content::Content;
use isc::server::rtp_sender::PortPair;
use isc::server::rtp_sender::{MediaSockets, StreamCommand, spawn_stream};
use isc::server::rtp_streamer::{
    MediaDest, RtpStreamer, StreamIds, StreamerConfig, StreamerEvent, ViewerDest, ViewerId,
};

use mf_common::collect_rtp;

#[tokio::test]
async fn stream_task_serves_two_viewers_and_stops_with_the_last() {
    let ip = "127.0.0.1".parse().unwrap();
    let content = Content::load(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/content/test-card")
            .as_path(),
    )
    .unwrap();
    let mut ids = RandomIds::new();
    let streamer = RtpStreamer::new(
        Arc::new(content),
        StreamerConfig::default(),
        StreamIds::generate(&mut ids),
    );
    let sockets = MediaSockets::bind(ip).await.unwrap();
    assert_eq!(sockets.audio_port() % 2, 0, "RTP on an even port");
    let mut handle = spawn_stream(streamer, sockets);
    let v1 = PortPair::bind(ip).await.unwrap();
    let v2 = PortPair::bind(ip).await.unwrap();
    let dest = |p: &PortPair| ViewerDest {
        audio: Some(MediaDest::new(std::net::SocketAddr::new(ip, p.port()))),
        video: None,
    };
    handle
        .commands
        .send(StreamCommand::AddViewer(ViewerId(1), dest(&v1)))
        .unwrap();
    handle
        .commands
        .send(StreamCommand::AddViewer(ViewerId(2), dest(&v2)))
        .unwrap();
    handle.commands.send(StreamCommand::Resume).unwrap();
    let (a, b) = tokio::join!(
        collect_rtp(&v1.rtp, Duration::from_millis(500)),
        collect_rtp(&v2.rtp, Duration::from_millis(500)),
    );
    assert!(a.len() >= 20 && b.len() >= 20);
    let sa: Vec<_> = a
        .iter()
        .map(|(_, p)| (p.sequence_number, p.timestamp))
        .collect();
    let sb: Vec<_> = b
        .iter()
        .map(|(_, p)| (p.sequence_number, p.timestamp))
        .collect();
    assert_eq!(sa[..15], sb[..15], "one timeline, the same packets");

    handle.commands.send(StreamCommand::Pause).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    mf_common::drain(&v1.rtp).await;
    assert!(
        collect_rtp(&v1.rtp, Duration::from_millis(200))
            .await
            .is_empty()
    );

    handle
        .commands
        .send(StreamCommand::RemoveViewer(ViewerId(1)))
        .unwrap();
    handle
        .commands
        .send(StreamCommand::RemoveViewer(ViewerId(2)))
        .unwrap();
    let mut events = Vec::new();
    while let Some(e) = handle.events.recv().await {
        events.push(e);
    }
    assert_eq!(events.last(), Some(&StreamerEvent::Stopped));
    tokio::time::timeout(Duration::from_secs(1), handle.task)
        .await
        .expect("the task ends")
        .unwrap();
}
