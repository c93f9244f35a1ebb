//! The thin tokio side of the RTP streamer: the server's media sockets (one
//! RTP/RTCP port pair per medium, RFC 3550 §11: RTP on an even port, RTCP on
//! the next) and a task that drives one [`RtpStreamer`] on its own.
//! No protocol decision is made here.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::proto::rtp::NtpTime;

use super::rtp_streamer::{
    Channel, MediaKind, RtpStreamer, RtpTransmit, StreamerEvent, ViewerDest, ViewerId,
};

/// The wall clock as NTP, read once per wake-up.
pub fn wall_clock() -> NtpTime {
    NtpTime::from_system_time(SystemTime::now())
}

/// An RTP socket and its RTCP sibling on the next port.
#[derive(Debug, Clone)]
pub struct PortPair {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
}

impl PortPair {
    /// Binds an even port and the odd one above it on `ip` (tries a few).
    pub async fn bind(ip: IpAddr) -> io::Result<PortPair> {
        let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no RTP port pair free");
        for _ in 0..64 {
            let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
            let port = rtp.local_addr()?.port();
            if port % 2 != 0 || port == u16::MAX {
                continue;
            }
            match UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
                Ok(rtcp) => {
                    return Ok(PortPair {
                        rtp: Arc::new(rtp),
                        rtcp: Arc::new(rtcp),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn port(&self) -> u16 {
        self.rtp.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// The server's media sockets: one pair for audio, one for video. Every
/// session sends from them (receivers tell sessions apart by SSRC and by
/// their own ports).
#[derive(Debug, Clone)]
pub struct MediaSockets {
    pub audio: PortPair,
    pub video: PortPair,
}

impl MediaSockets {
    pub async fn bind(ip: IpAddr) -> io::Result<MediaSockets> {
        Ok(MediaSockets {
            audio: PortPair::bind(ip).await?,
            video: PortPair::bind(ip).await?,
        })
    }

    pub fn audio_port(&self) -> u16 {
        self.audio.port()
    }

    pub fn video_port(&self) -> u16 {
        self.video.port()
    }

    /// Sends one datagram from the socket its medium and channel name.
    pub async fn send(&self, t: &RtpTransmit) {
        let pair = match t.media {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
        };
        let sock = match t.channel {
            Channel::Rtp => &pair.rtp,
            Channel::Rtcp => &pair.rtcp,
        };
        if let Err(e) = sock.send_to(&t.bytes, t.to).await {
            tracing::debug!(error = %e, to = %t.to, "RTP send failed");
        }
    }
}

/// What the owner of a stream task can ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamCommand {
    AddViewer(ViewerId, ViewerDest),
    RemoveViewer(ViewerId),
    Pause,
    Resume,
    Seek(Duration),
}

/// A running stream task: send commands, read its events.
pub struct StreamHandle {
    pub commands: mpsc::UnboundedSender<StreamCommand>,
    pub events: mpsc::UnboundedReceiver<StreamerEvent>,
    pub task: JoinHandle<()>,
}

fn apply(s: &mut RtpStreamer, now: Instant, cmd: StreamCommand) {
    match cmd {
        StreamCommand::AddViewer(id, dest) => s.add_viewer(now, id, dest),
        StreamCommand::RemoveViewer(id) => s.remove_viewer(now, id, wall_clock()),
        StreamCommand::Pause => s.pause(now),
        StreamCommand::Resume => s.resume(now),
        StreamCommand::Seek(pos) => s.seek(now, pos),
    }
}

/// Drives `streamer` from `sockets` until every command sender is gone or
/// the last viewer left.
pub fn spawn_stream(mut streamer: RtpStreamer, sockets: MediaSockets) -> StreamHandle {
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let wake = streamer.poll_timeout();
            tokio::select! {
                cmd = cmd_rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    apply(&mut streamer, Instant::now(), cmd);
                    // a change of the timeline takes effect at once
                    streamer.handle_timeout(Instant::now(), wall_clock());
                }
                _ = sleep_until(wake) => streamer.handle_timeout(Instant::now(), wall_clock()),
            }
            while let Some(t) = streamer.poll_transmit() {
                sockets.send(&t).await;
            }
            let mut stopped = false;
            while let Some(e) = streamer.poll_event() {
                stopped |= e == StreamerEvent::Stopped;
                let _ = ev_tx.send(e);
            }
            if stopped {
                break;
            }
        }
    });
    StreamHandle {
        commands: cmd_tx,
        events: ev_rx,
        task,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
