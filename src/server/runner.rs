//! The server's tokio driver: one task that feeds the [`ServerCore`] what
//! the SIP transport receives, wakes it at its timeouts and sends what it
//! returns. Every message in and out is also published as a [`WireEvent`],
//! which the demo's ladder and the tests read.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::ids::RandomIds;
use crate::net::sip_transport::SipTransport;
use crate::proto::sip::transaction::Transport;

use super::content_list::ContentLibrary;
use super::core::{CoreSettings, ServerCore, UserAccount};
use super::isc_media_function::{IscMediaFunction, MediaPorts, MfConfig};
use super::rtp_sender::{MediaSockets, wall_clock};

/// Which way a message went, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// One message on the server's wire.
#[derive(Debug, Clone)]
pub struct WireEvent {
    pub at: Instant,
    pub direction: Direction,
    pub peer: SocketAddr,
    pub transport: Transport,
    pub bytes: Arc<[u8]>,
}

/// How to start a server: its configuration (`[server]` of the TOML file).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub config: ServerConfig,
}

impl ServerOptions {
    pub fn new(config: ServerConfig) -> Self {
        ServerOptions { config }
    }

    /// Loopback on an ephemeral port with the demo cast (alice, bob, carol,
    /// ted; each password its own name) in `isc.local`.
    pub fn loopback_demo() -> Self {
        let config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerConfig::default()
        };
        ServerOptions { config }
    }
}

/// A running server. Dropping it does not stop it: call [`Self::shutdown`].
pub struct ServerHandle {
    local: SocketAddr,
    stop: Arc<Notify>,
    wire: broadcast::Sender<WireEvent>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Every message from now on, in and out.
    pub fn wire(&self) -> broadcast::Receiver<WireEvent> {
        self.wire.subscribe()
    }

    /// Stops the server task and waits for it.
    pub async fn shutdown(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// The bundled server.
pub struct Server;

impl Server {
    /// Binds and starts the server on the current tokio runtime.
    pub async fn start(options: ServerOptions) -> io::Result<ServerHandle> {
        let config = options.config;
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let (transport, mut incoming) = SipTransport::bind(config.listen).await?;
        let local = transport.local_addr();
        let settings = CoreSettings {
            domain: config.domain.clone(),
            local,
            users: config
                .effective_users()
                .into_iter()
                .map(|u| UserAccount {
                    name: u.name,
                    password: u.password,
                })
                .collect(),
            nonce_lifetime: Duration::from_secs(config.nonce_lifetime_secs),
        };
        let mut core = ServerCore::new(settings, Box::new(RandomIds::new()), Instant::now());
        // The Media Function's content (loaded once) and media sockets.
        let media_ip = if local.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            local.ip()
        };
        let media = MediaSockets::bind(media_ip).await?;
        let library = ContentLibrary::load(&config.content_dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, dir = %config.content_dir.display(), "no content");
            ContentLibrary::default()
        });
        core.set_media_function(IscMediaFunction::new(
            MfConfig::from_server_config(&config),
            library,
            Some(MediaPorts {
                ip: media_ip,
                audio: media.audio_port(),
                video: media.video_port(),
            }),
        ));
        let stop = Arc::new(Notify::new());
        let (wire, _) = broadcast::channel(4096);
        let task = {
            let stop = stop.clone();
            let wire = wire.clone();
            tokio::spawn(async move {
                loop {
                    let media_wake = core.poll_media_timeout();
                    let wake = [core.poll_timeout(), media_wake]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                    tokio::select! {
                        msg = incoming.recv() => {
                            let Some(msg) = msg else { break };
                            let _ = wire.send(WireEvent {
                                at: Instant::now(),
                                direction: Direction::In,
                                peer: msg.source,
                                transport: msg.transport,
                                bytes: msg.bytes.clone().into(),
                            });
                            core.handle_input(Instant::now(), &msg.bytes, msg.source, msg.transport);
                        }
                        _ = tokio::time::sleep_until(wake.into()) => {
                            let now = Instant::now();
                            if media_wake.is_some_and(|m| m <= now) {
                                core.handle_media_timeout(now, wall_clock());
                            }
                            if core.poll_timeout().is_some_and(|t| t <= now) {
                                core.handle_timeout(now);
                            }
                        }
                        _ = stop.notified() => break,
                    }
                    while let Some(out) = core.poll_transmit() {
                        let _ = wire.send(WireEvent {
                            at: Instant::now(),
                            direction: Direction::Out,
                            peer: out.to,
                            transport: out.transport,
                            bytes: out.bytes.clone().into(),
                        });
                        if let Err(e) = transport.send(out.to, out.transport, out.bytes).await {
                            tracing::info!(error = %e, to = %out.to, "send failed");
                        }
                    }
                    while let Some(t) = core.poll_rtp_transmit() {
                        media.send(&t).await;
                    }
                }
            })
        };
        tracing::info!(%local, "server started");
        Ok(ServerHandle {
            local,
            stop,
            wire,
            task,
        })
    }
}
