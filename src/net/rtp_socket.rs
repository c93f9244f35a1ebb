//! RTP/RTCP over UDP for the player: a thin tokio driver around the sans-IO
//! [`Player`]. Each stream (audio, video) gets a port pair, RTP on an even
//! port and RTCP on the next (RFC 3550 §11); with `rtcp_mux` only the RTP
//! port is bound and RTCP shares it (RFC 5761; the player tells the two apart
//! by the second byte). One `select!` over the sockets, the player's next
//! timeout and a command channel; every decision is the player's.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::media::audio_out::AudioError;
use crate::media::player::{Media, Player, PlayerEvent, PlayerStats, Port};

/// Where to listen.
#[derive(Debug, Clone)]
pub struct PlayerSockets {
    pub ip: IpAddr,
    /// RTP port of the audio pair (`Some(0)` picks a free even pair, `None`: no audio).
    pub audio_port: Option<u16>,
    pub video_port: Option<u16>,
    /// RTCP on the RTP port (RFC 5761) instead of port + 1.
    pub rtcp_mux: bool,
}

impl PlayerSockets {
    /// Audio and video on free port pairs of `ip`, RTCP on port + 1.
    pub fn any(ip: IpAddr) -> Self {
        Self {
            ip,
            audio_port: Some(0),
            video_port: Some(0),
            rtcp_mux: false,
        }
    }
}

struct Pair {
    rtp: UdpSocket,
    rtcp: Option<UdpSocket>,
}

impl Pair {
    async fn bind(ip: IpAddr, port: u16, mux: bool) -> io::Result<Self> {
        if mux {
            return Ok(Self {
                rtp: UdpSocket::bind((ip, port)).await?,
                rtcp: None,
            });
        }
        if port != 0 {
            return Ok(Self {
                rtp: UdpSocket::bind((ip, port)).await?,
                rtcp: Some(UdpSocket::bind((ip, port.wrapping_add(1))).await?),
            });
        }
        // an even RTP port with its odd neighbour free (RFC 3550 §11)
        for _ in 0..64 {
            let rtp = UdpSocket::bind((ip, 0)).await?;
            let p = rtp.local_addr()?.port();
            if p % 2 != 0 || p == u16::MAX {
                continue;
            }
            if let Ok(rtcp) = UdpSocket::bind((ip, p + 1)).await {
                return Ok(Self {
                    rtp,
                    rtcp: Some(rtcp),
                });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free RTP/RTCP port pair",
        ))
    }

    fn socket(&self, port: Port) -> &UdpSocket {
        match (port, &self.rtcp) {
            (Port::Rtcp, Some(s)) => s,
            _ => &self.rtp,
        }
    }
}

enum Command {
    Stop(oneshot::Sender<Result<PlayerStats, AudioError>>),
}

/// What the TUI and the client hold: the bound ports, the events, and stop.
pub struct PlayerHandle {
    /// RTP port of each stream (RTCP is port + 1 unless muxed): put these in the SDP.
    pub audio_port: Option<u16>,
    pub video_port: Option<u16>,
    events: mpsc::Receiver<PlayerEvent>,
    commands: mpsc::Sender<Command>,
}

/// Events queued towards the owner; when it falls behind, frames are dropped
/// (a newer one follows), never the socket loop.
const EVENT_QUEUE: usize = 64;

impl PlayerHandle {
    /// Next event (frames, stats, source changes, BYE); `None` once stopped.
    pub async fn next_event(&mut self) -> Option<PlayerEvent> {
        self.events.recv().await
    }
    /// An event if one is waiting (for a TUI tick).
    pub fn try_event(&mut self) -> Option<PlayerEvent> {
        self.events.try_recv().ok()
    }
    /// Stop playing: queued audio plays out at once, the sink closes (a WAV
    /// file is finalized), and the final figures come back.
    pub async fn stop(self) -> io::Result<PlayerStats> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Stop(tx))
            .await
            .map_err(|_| io::Error::other("player task gone"))?;
        rx.await
            .map_err(|_| io::Error::other("player task gone"))?
            .map_err(io::Error::other)
    }
}

/// Bind the sockets and run `player` on a tokio task.
pub async fn spawn_player(sockets: PlayerSockets, player: Player) -> io::Result<PlayerHandle> {
    let audio = match sockets.audio_port {
        Some(p) => Some(Pair::bind(sockets.ip, p, sockets.rtcp_mux).await?),
        None => None,
    };
    let video = match sockets.video_port {
        Some(p) => Some(Pair::bind(sockets.ip, p, sockets.rtcp_mux).await?),
        None => None,
    };
    let port = |p: &Option<Pair>| {
        p.as_ref()
            .and_then(|p| p.rtp.local_addr().ok())
            .map(|a| a.port())
    };
    let (audio_port, video_port) = (port(&audio), port(&video));
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    tokio::spawn(run(player, audio, video, ev_tx, cmd_rx));
    Ok(PlayerHandle {
        audio_port,
        video_port,
        events: ev_rx,
        commands: cmd_tx,
    })
}

async fn recv(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut player: Player,
    audio: Option<Pair>,
    video: Option<Pair>,
    events: mpsc::Sender<PlayerEvent>,
    mut commands: mpsc::Receiver<Command>,
) {
    const MAX_DATAGRAM: usize = 65_536;
    let mut bufs = vec![vec![0u8; MAX_DATAGRAM]; 4];
    let [b0, b1, b2, b3] = &mut bufs[..] else {
        return;
    };
    let a_rtp = audio.as_ref().map(|p| &p.rtp);
    let a_rtcp = audio.as_ref().and_then(|p| p.rtcp.as_ref());
    let v_rtp = video.as_ref().map(|p| &p.rtp);
    let v_rtcp = video.as_ref().and_then(|p| p.rtcp.as_ref());
    loop {
        let wake = player
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let input = tokio::select! {
            r = recv(a_rtp, b0) => r.ok().map(|(n, from)| (Media::Audio, Port::Rtp, from, &b0[..n])),
            r = recv(a_rtcp, b1) => r.ok().map(|(n, from)| (Media::Audio, Port::Rtcp, from, &b1[..n])),
            r = recv(v_rtp, b2) => r.ok().map(|(n, from)| (Media::Video, Port::Rtp, from, &b2[..n])),
            r = recv(v_rtcp, b3) => r.ok().map(|(n, from)| (Media::Video, Port::Rtcp, from, &b3[..n])),
            _ = tokio::time::sleep_until(wake.into()) => None,
            cmd = commands.recv() => {
                let result = player.finish();
                if let Some(Command::Stop(reply)) = cmd {
                    let _ = reply.send(result);
                }
                return;
            }
        };
        let now = Instant::now();
        if let Some((media, port, from, bytes)) = input {
            player.handle_datagram(now, media, port, from, bytes);
        }
        player.handle_timeout(now);
        while let Some(t) = player.poll_transmit() {
            let pair = match t.media {
                Media::Audio => audio.as_ref(),
                Media::Video => video.as_ref(),
            };
            if let Some(pair) = pair
                && let Err(e) = pair.socket(t.from_port).send_to(&t.bytes, t.to).await
            {
                tracing::debug!("RTCP to {}: {e}", t.to);
            }
        }
        while let Some(e) = player.poll_event() {
            // a full queue drops the event: the owner is behind, a newer one follows
            let _ = events.try_send(e);
        }
    }
}
