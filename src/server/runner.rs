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
use crate::proto::sip::digest::DigestServerConfig;
use crate::proto::sip::transaction::Transport;

use super::core::{CoreSettings, ServerCore, UserAccount};

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
    /// Changes to the Digest defaults (SHA-256 then MD5, uri checked), e.g.
    /// MD5 only for SIPp 3.6.1.
    pub digest: Option<fn(&mut DigestServerConfig)>,
}

impl ServerOptions {
    pub fn new(config: ServerConfig) -> Self {
        ServerOptions {
            config,
            digest: None,
        }
    }

    /// Loopback on an ephemeral port with the demo cast (alice, bob, carol,
    /// ted; each password its own name) in `isc.local`.
    pub fn loopback_demo() -> Self {
        let config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerConfig::default()
        };
        ServerOptions {
            config,
            digest: None,
        }
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
        if let Some(change) = options.digest {
            core.configure_digest(Instant::now(), change);
        }
        let stop = Arc::new(Notify::new());
        let (wire, _) = broadcast::channel(4096);
        let task = {
            let stop = stop.clone();
            let wire = wire.clone();
            tokio::spawn(async move {
                loop {
                    let wake = core
                        .poll_timeout()
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
                        _ = tokio::time::sleep_until(wake.into()) => core.handle_timeout(Instant::now()),
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
