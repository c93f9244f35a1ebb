//! The tokio driver of one [`UserAgent`]: binds a [`SipTransport`], then one
//! `select!` over received bytes, application commands and the UA's next
//! timeout, and drains what the UA wants sent and reported. No protocol
//! decision is taken here.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::chat::{ChatEvent, MsrpOut};
use super::chats::ChatCommand;
use super::content_viewing::{ViewingEvent, ViewingId, ViewingOut, ViewingStats};
use super::large_message;
use super::{ClientEvent, Command, UaConfig, UserAgent};
use crate::flow::Flow;
use crate::ids::RandomIds;
use crate::media::audio_out::NullSink;
use crate::media::player::{Player, PlayerConfig, PlayerEvent};
use crate::net::SipTransport;
use crate::net::msrp_tcp::{MsrpNetEvent, MsrpTransport};
use crate::net::rtp_socket::{PlayerSockets, spawn_player};
use crate::net::sip_transport::{TlsOptions, TransportLimits};
use crate::proto::ids::IdGen;
use crate::proto::sip::transaction::Transport;
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// One SIP message on the wire, for the flow ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRecord {
    /// When the driver sent or received it.
    pub at: Instant,
    pub direction: Direction,
    /// Our address.
    pub local: SocketAddr,
    /// The other end.
    pub peer: SocketAddr,
    pub transport: Transport,
    pub bytes: Vec<u8>,
}

impl WireRecord {
    /// Adds this message to a flow ladder: `me` names this client (e.g.
    /// `alice/tv`), `peer` the other end (e.g. `server`); `start` is the
    /// flow's time origin.
    pub fn record_in(&self, flow: &mut Flow, start: Instant, me: &str, peer: &str) {
        let at = self.at.saturating_duration_since(start);
        let (from, to) = match self.direction {
            Direction::Sent => (me, peer),
            Direction::Received => (peer, me),
        };
        flow.record(at, from, to, &self.bytes);
    }
}

/// The application's side of a running client.
#[derive(Debug)]
pub struct ClientHandle {
    /// Commands to the UA. Dropping every sender shuts the client down.
    pub commands: mpsc::Sender<Command>,
    /// What the UA reports; ends after [`ClientEvent::Stopped`].
    pub events: mpsc::UnboundedReceiver<ClientEvent>,
    /// Where the client listens (UDP and TCP) and what its Contact names.
    pub local_addr: SocketAddr,
    wire: broadcast::Sender<WireRecord>,
    /// Subscribed before the driver started: nothing is missed.
    first_wire: Option<broadcast::Receiver<WireRecord>>,
    task: JoinHandle<()>,
}

impl ClientHandle {
    /// Every SIP message since the client started (the first call; later
    /// calls: from now on, as [`Self::wire`]).
    pub fn take_wire(&mut self) -> broadcast::Receiver<WireRecord> {
        self.first_wire
            .take()
            .unwrap_or_else(|| self.wire.subscribe())
    }

    /// Every SIP message sent or received from now on.
    pub fn wire(&self) -> broadcast::Receiver<WireRecord> {
        self.wire.subscribe()
    }

    /// Sends a command; false if the client has stopped.
    pub async fn send(&self, cmd: Command) -> bool {
        self.commands.send(cmd).await.is_ok()
    }

    /// The next event, waiting at most `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<ClientEvent> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the first event matching `pred`, dropping others, for at
    /// most `timeout`.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&ClientEvent) -> bool,
    ) -> Option<ClientEvent> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let ev = tokio::time::timeout_at(until, self.events.recv())
                .await
                .ok()
                .flatten()?;
            if pred(&ev) {
                return Some(ev);
            }
        }
    }

    /// Asks for shutdown (un-REGISTER) and waits for the driver to end.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown).await;
        let _ = self.task.await;
    }

    /// Ends the driver at once, sending nothing more (a crash, a lost
    /// network): registration and subscriptions are left to expire.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the driver task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Binds `bind` (use port 0 for an ephemeral port), sets `cfg.local` to
/// the bound address and runs the UA with random identifiers.
pub async fn spawn_client(cfg: UaConfig, bind: SocketAddr) -> io::Result<ClientHandle> {
    spawn_client_with(cfg, bind, Box::new(RandomIds::new())).await
}

/// [`spawn_client`] with an id generator of the caller's.
pub async fn spawn_client_with(
    mut cfg: UaConfig,
    bind: SocketAddr,
    ids: Box<dyn IdGen>,
) -> io::Result<ClientHandle> {
    // RFC 3261 §26.2, RFC 4975 §14.1: over TLS the server's certificate is
    // checked against the anchors we were given (for the name given, else
    // the address connected to); without them there is no TLS.
    let client_tls = match &cfg.tls {
        Some(t) => Some(
            t.connector()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
        ),
        None => None,
    };
    let tls = match (&client_tls, cfg.transport) {
        (Some((connector, name)), _) => TlsOptions {
            listen: None,
            connect: Some((
                connector.clone(),
                name.clone().unwrap_or_else(|| cfg.server.ip().into()),
            )),
        },
        (None, Transport::Tls) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "SIP over TLS needs the server's certificate to trust (--tls-ca)",
            ));
        }
        (None, _) => TlsOptions::default(),
    };
    let (transport, incoming) =
        SipTransport::bind_tls(bind, TransportLimits::default(), tls).await?;
    let local = transport.local_addr();
    cfg.local = local;
    // MSRP for chats: one listener per client on the same address, any port
    let (msrp, msrp_events) = MsrpTransport::bind(SocketAddr::new(local.ip(), 0)).await?;
    // msrps: (RFC 4975 §14.1): the same TLS client side
    let msrp_tls = client_tls.map(|(connector, server_name)| MsrpTlsClient {
        connector,
        server_name,
    });
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (wire, first_wire) = broadcast::channel(1024);
    let span = tracing::info_span!("client", ua = %format!("{}/{}", cfg.user, cfg.device));
    let mut ua = UserAgent::new(cfg, ids);
    ua.set_msrp_local(msrp.local_addr());
    let (player_tx, player_rx) = mpsc::channel(256);
    let driver = Driver {
        players: HashMap::new(),
        player_tx,
        player_rx,
        ua,
        transport,
        incoming,
        msrp,
        msrp_tls,
        msrp_events,
        commands: cmd_rx,
        events: ev_tx,
        wire: wire.clone(),
    };
    let task = tokio::spawn(driver.run().instrument(span));
    Ok(ClientHandle {
        commands: cmd_tx,
        events: ev_rx,
        local_addr: local,
        wire,
        first_wire: Some(first_wire),
        task,
    })
}

struct Driver {
    /// Running players by viewing: dropping the sender stops one.
    players: HashMap<ViewingId, oneshot::Sender<()>>,
    player_tx: mpsc::Sender<(ViewingId, PlayerEvent)>,
    player_rx: mpsc::Receiver<(ViewingId, PlayerEvent)>,
    ua: UserAgent,
    transport: SipTransport,
    incoming: mpsc::Receiver<crate::net::Incoming>,
    msrp: MsrpTransport,
    msrp_tls: Option<MsrpTlsClient>,
    msrp_events: mpsc::Receiver<MsrpNetEvent>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<ClientEvent>,
    wire: broadcast::Sender<WireRecord>,
}

/// The TLS client side for `msrps:` connects.
struct MsrpTlsClient {
    connector: crate::net::tls::TlsConnector,
    /// Checked in the server's certificate; `None` = the peer's IP address.
    server_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// How long the driver sleeps when the UA has no timer at all.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

impl Driver {
    async fn run(mut self) {
        self.ua.start(Instant::now());
        let mut commands_open = true;
        loop {
            self.flush().await;
            if self.ua.is_stopped() {
                break;
            }
            let next = self
                .ua
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + IDLE_WAKE);
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next));
            tokio::select! {
                input = self.incoming.recv() => match input {
                    // A stream that cannot be framed: close it (RFC 3261 §18.3).
                    Some(input) if input.is_unframeable() => self.transport.close(input.source),
                    Some(input) => {
                        let _ = self.wire.send(WireRecord {
                            at: Instant::now(),
                            direction: Direction::Received,
                            local: self.transport.local_addr(),
                            peer: input.source,
                            transport: input.transport,
                            bytes: input.bytes.clone(),
                        });
                        self.ua.handle_input(Instant::now(), input);
                    }
                    None => break,
                },
                cmd = self.commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => {
                        commands_open = false;
                        self.ua.handle_command(Instant::now(), Command::Shutdown);
                    }
                },
                Some(ev) = self.msrp_events.recv() => self.on_msrp(ev),
                Some((viewing, ev)) = self.player_rx.recv() => self.on_player(viewing, ev),
                _ = sleep => self.ua.handle_timeout(Instant::now()),
            }
        }
        tracing::debug!("client driver ended");
    }

    /// A command for the UA; a file to send is read here (IO) first.
    async fn on_command(&mut self, cmd: Command) {
        let Command::Chat(ChatCommand::SendFile {
            to,
            path,
            disposition,
            description,
        }) = cmd
        else {
            return self.ua.handle_command(Instant::now(), cmd);
        };
        let read = tokio::task::spawn_blocking(move || {
            large_message::read_file(&path, disposition, description)
        })
        .await
        .unwrap_or_else(|e| Err(format!("reading the file failed: {e}")));
        match read {
            Ok(message) => self.ua.handle_command(
                Instant::now(),
                Command::Chat(ChatCommand::SendLarge {
                    to,
                    message: Box::new(message),
                }),
            ),
            Err(reason) => {
                let _ = self.events.send(ClientEvent::Chat(ChatEvent::LargeFailed {
                    chat: None,
                    reason,
                }));
            }
        }
    }

    /// A received attachment is written to the downloads dir (never over
    /// an existing file); the event then names the path.
    async fn save_large(dir: std::path::PathBuf, ev: ChatEvent) -> ChatEvent {
        let ChatEvent::LargeReceived {
            chat,
            from,
            filename,
            description,
            body,
            ..
        } = ev
        else {
            return ev;
        };
        let size = body.len() as u64;
        let saved = tokio::task::spawn_blocking(move || {
            large_message::save_attachment(&dir, filename.as_deref(), &body)
                .map_err(|e| format!("cannot save into {}: {e}", dir.display()))
        })
        .await
        .unwrap_or_else(|e| Err(format!("saving failed: {e}")));
        match saved {
            Ok(path) => ChatEvent::LargeSaved {
                chat,
                from,
                path,
                size,
                description,
            },
            Err(reason) => ChatEvent::LargeFailed {
                chat: Some(chat),
                reason,
            },
        }
    }

    fn on_msrp(&mut self, ev: MsrpNetEvent) {
        let now = Instant::now();
        match ev {
            MsrpNetEvent::Accepted { conn, .. } => self.ua.msrp_accepted(conn),
            // reported through `connect`'s result in `flush`
            MsrpNetEvent::Connected { .. } => {}
            MsrpNetEvent::Data { conn, bytes } => self.ua.msrp_data(now, conn, &bytes),
            MsrpNetEvent::Closed { conn } => self.ua.msrp_closed(now, conn),
        }
    }

    /// MSRP work the chats asked for.
    async fn flush_msrp(&mut self) -> bool {
        let mut any = false;
        while let Some(out) = self.ua.poll_msrp() {
            any = true;
            match out {
                MsrpOut::Connect { chat, peer, tls } => {
                    let res = match (tls, &self.msrp_tls) {
                        (false, _) => self.msrp.connect(peer).await,
                        (true, Some(t)) => {
                            let name = t.server_name.clone().unwrap_or_else(|| peer.ip().into());
                            self.msrp.connect_tls(peer, &t.connector, name).await
                        }
                        (true, None) => Err(io::Error::other(
                            "msrps: URI but MSRP over TLS is not set up",
                        )),
                    };
                    match res {
                        Ok(conn) => self.ua.msrp_connected(Instant::now(), chat, conn),
                        Err(e) => self
                            .ua
                            .msrp_connect_failed(Instant::now(), chat, &e.to_string()),
                    }
                }
                MsrpOut::Send { conn, bytes } => {
                    if let Err(e) = self.msrp.send(conn, bytes).await {
                        tracing::debug!(error = %e, conn, "MSRP send failed");
                    }
                }
                MsrpOut::Close { conn } => self.msrp.close(conn),
            }
        }
        any
    }

    fn on_player(&mut self, viewing: ViewingId, ev: PlayerEvent) {
        let ev = match ev {
            PlayerEvent::Stats(s) => ViewingEvent::Stats {
                viewing,
                stats: ViewingStats::from(s.as_ref()),
            },
            PlayerEvent::Frame(f) => ViewingEvent::Frame {
                viewing,
                width: f.rgb.width.into(),
                height: f.rgb.height.into(),
                timestamp: f.timestamp,
                rgb: f.rgb.clone(),
            },
            _ => return,
        };
        self.ua.player_event(ev);
    }

    /// Players content viewing asked for: bound here, their ports handed back.
    async fn flush_viewing(&mut self) -> bool {
        let mut any = false;
        while let Some(out) = self.ua.poll_viewing() {
            any = true;
            match out {
                ViewingOut::OpenPlayer { viewing } => {
                    let ip = self.transport.local_addr().ip();
                    let now = Instant::now();
                    let cname = format!("{}@{}", self.ua.config().user, self.ua.config().device);
                    // open() never fails for the device: no card means the null sink.
                    let sink = crate::media::audio_out::open(&self.ua.config().audio)
                        .unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "audio output unavailable; no sound");
                            Box::new(NullSink::new(8000))
                        });
                    let player = Player::new(PlayerConfig::new(rand::random(), cname), sink, now);
                    match spawn_player(PlayerSockets::any(ip), player).await {
                        Ok(mut handle) => {
                            let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
                            let (a, v) = (handle.audio_port, handle.video_port);
                            self.players.insert(viewing, stop_tx);
                            let tx = self.player_tx.clone();
                            tokio::spawn(async move {
                                loop {
                                    tokio::select! {
                                        ev = handle.next_event() => match ev {
                                            Some(ev) => { let _ = tx.try_send((viewing, ev)); }
                                            None => break,
                                        },
                                        _ = &mut stop_rx => {
                                            let _ = handle.stop().await;
                                            break;
                                        }
                                    }
                                }
                            });
                            self.ua.player_ready(Instant::now(), viewing, ip, a, v);
                        }
                        Err(e) => self
                            .ua
                            .player_failed(Instant::now(), viewing, &e.to_string()),
                    }
                }
                ViewingOut::ClosePlayer { viewing } => {
                    if let Some(stop) = self.players.remove(&viewing) {
                        let _ = stop.send(());
                    }
                }
                ViewingOut::StartChat { .. } => {}
            }
        }
        any
    }

    async fn flush(&mut self) {
        while self.flush_viewing().await {
            self.flush_sip().await;
        }
        while self.flush_msrp().await {
            self.flush_sip().await;
        }
        self.flush_sip().await;
    }

    async fn flush_sip(&mut self) {
        while let Some((to, transport, bytes)) = self.ua.poll_transmit() {
            let _ = self.wire.send(WireRecord {
                at: Instant::now(),
                direction: Direction::Sent,
                local: self.transport.local_addr(),
                peer: to,
                transport,
                bytes: bytes.clone(),
            });
            if let Err(e) = self.transport.send(to, transport, bytes.clone()).await {
                tracing::debug!(error = %e, %to, "send failed");
                self.ua
                    .handle_send_error(Instant::now(), &bytes, &e.to_string());
            }
        }
        while let Some(ev) = self.ua.poll_event() {
            let ev = match ev {
                ClientEvent::Chat(c @ ChatEvent::LargeReceived { .. }) => {
                    let dir = self
                        .ua
                        .config()
                        .downloads_dir
                        .clone()
                        .unwrap_or_else(large_message::default_downloads_dir);
                    ClientEvent::Chat(Self::save_large(dir, c).await)
                }
                ev => ev,
            };
            let _ = self.events.send(ev);
        }
    }
}
