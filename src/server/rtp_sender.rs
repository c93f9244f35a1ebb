//! The thin tokio side of the RTP streamer: the server's media sockets (one
//! RTP/RTCP port pair per medium, RFC 3550 §11: RTP on an even port, RTCP on
//! the next), the out-queue that sends audio before video
//! ([`RtpOutQueue`], shared by the server's main loop and
//! [`spawn_stream`]) and a task that drives one [`RtpStreamer`] on its own.
//! No protocol decision is made here.

use std::collections::VecDeque;
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

/// Video datagrams sent in a row before the driver asks again for what is
/// due (so the audio due meanwhile goes first).
pub const VIDEO_SLICE: usize = 64;

/// The datagrams waiting to be sent, audio first.
///
/// A video frame's fan-out to many viewers (packets × viewers datagrams)
/// takes longer than the 20 ms between two audio packets. The rule, for
/// every driver: [`push`](Self::push) everything the streamer(s) made, send
/// one [`next_batch`](Self::next_batch) (all the audio RTP, then at most
/// [`VIDEO_SLICE`] of the rest), ask the streamer(s) again for what is due
/// now, push, and so on while [`has_bulk`](Self::has_bulk). A late audio
/// packet is heard; a late video packet only delays a frame.
///
/// RTCP rides with the video: a sender report's mapping holds whenever it
/// arrives (RFC 3550 §6.4.1) and a BYE follows the RTP it ends.
#[derive(Debug, Default)]
pub struct RtpOutQueue {
    audio: VecDeque<RtpTransmit>,
    bulk: VecDeque<RtpTransmit>,
}

impl Extend<RtpTransmit> for RtpOutQueue {
    fn extend<I: IntoIterator<Item = RtpTransmit>>(&mut self, iter: I) {
        for t in iter {
            self.push(t);
        }
    }
}

impl RtpOutQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one datagram: audio RTP to the audio lane, the rest (video
    /// RTP, every RTCP) to the bulk lane; each lane keeps its order.
    pub fn push(&mut self, t: RtpTransmit) {
        match (t.media, t.channel) {
            (MediaKind::Audio, Channel::Rtp) => self.audio.push_back(t),
            _ => self.bulk.push_back(t),
        }
    }

    /// Every audio datagram queued, then at most [`VIDEO_SLICE`] others.
    pub fn next_batch(&mut self) -> impl Iterator<Item = RtpTransmit> + '_ {
        let n = self.bulk.len().min(VIDEO_SLICE);
        self.audio.drain(..).chain(self.bulk.drain(..n))
    }

    /// Video (or RTCP) still waits: the driver must come back soon.
    pub fn has_bulk(&self) -> bool {
        !self.bulk.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.audio.is_empty() && self.bulk.is_empty()
    }

    pub fn len(&self) -> usize {
        self.audio.len() + self.bulk.len()
    }

    /// Sends the [`next_batch`](Self::next_batch) from `sockets`.
    pub async fn send_batch(&mut self, sockets: &MediaSockets) {
        for t in self.next_batch() {
            sockets.send(&t).await;
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
/// the last viewer left. Audio goes out first ([`RtpOutQueue`]): video is
/// sent a slice per turn and the streamer is asked again between slices.
pub fn spawn_stream(mut streamer: RtpStreamer, sockets: MediaSockets) -> StreamHandle {
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut out = RtpOutQueue::new();
        loop {
            let wake = streamer.poll_timeout();
            let more = out.has_bulk();
            tokio::select! {
                biased;
                cmd = cmd_rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    apply(&mut streamer, Instant::now(), cmd);
                    // a change of the timeline takes effect at once
                    streamer.handle_timeout(Instant::now(), wall_clock());
                }
                // video still queued: only a turn of the scheduler, then on
                _ = tokio::task::yield_now(), if more => {}
                _ = sleep_until(wake), if !more => {}
            }
            // what is due now (the audio due while video went out)
            let now = Instant::now();
            if streamer.poll_timeout().is_some_and(|t| t <= now) {
                streamer.handle_timeout(now, wall_clock());
            }
            out.extend(std::iter::from_fn(|| streamer.poll_transmit()));
            out.send_batch(&sockets).await;
            let mut stopped = false;
            while let Some(e) = streamer.poll_event() {
                stopped |= e == StreamerEvent::Stopped;
                let _ = ev_tx.send(e);
            }
            if stopped {
                // the last BYEs
                while !out.is_empty() {
                    out.send_batch(&sockets).await;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(media: MediaKind, channel: Channel, n: u8) -> RtpTransmit {
        RtpTransmit {
            to: SocketAddr::from(([127, 0, 0, 1], 5000)),
            viewer: ViewerId(u64::from(n)),
            media,
            channel,
            bytes: vec![n],
        }
    }

    fn names(batch: impl Iterator<Item = RtpTransmit>) -> Vec<(MediaKind, u8)> {
        batch.map(|t| (t.media, t.bytes[0])).collect()
    }

    #[test]
    fn audio_goes_first_and_video_in_slices() {
        let mut q = RtpOutQueue::new();
        for n in 0..150 {
            q.push(t(MediaKind::Video, Channel::Rtp, n));
        }
        q.push(t(MediaKind::Audio, Channel::Rtp, 200));
        q.push(t(MediaKind::Audio, Channel::Rtcp, 201));
        q.push(t(MediaKind::Audio, Channel::Rtp, 202));
        assert_eq!(q.len(), 153);
        let first = names(q.next_batch());
        assert_eq!(first.len(), 2 + VIDEO_SLICE);
        assert_eq!(
            first[..2],
            [(MediaKind::Audio, 200), (MediaKind::Audio, 202)],
            "audio RTP first, in order"
        );
        let video: Vec<u8> = first[2..].iter().map(|(_, n)| *n).collect();
        assert_eq!(video, (0..VIDEO_SLICE as u8).collect::<Vec<_>>());
        assert!(q.has_bulk());
        // audio due between two slices overtakes the video still queued
        q.push(t(MediaKind::Audio, Channel::Rtp, 203));
        let second = names(q.next_batch());
        assert_eq!(second[0], (MediaKind::Audio, 203));
        assert_eq!(second[1], (MediaKind::Video, VIDEO_SLICE as u8));
        assert_eq!(second.len(), 1 + VIDEO_SLICE);
        // the rest, then the RTCP pushed after them
        let third = names(q.next_batch());
        assert_eq!(third.len(), 150 - 2 * VIDEO_SLICE + 1);
        assert_eq!(third.last(), Some(&(MediaKind::Audio, 201)));
        assert!(q.is_empty() && !q.has_bulk());
        assert_eq!(q.next_batch().count(), 0);
    }
}
