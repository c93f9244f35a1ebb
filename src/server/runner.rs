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
use crate::net::msrp_tcp::{MsrpNetEvent, MsrpTransport};
use crate::net::sip_transport::{SipTransport, TlsOptions, TransportLimits};
use crate::proto::sip::digest::DigestServerConfig;
use crate::proto::sip::transaction::Transport;

use super::content_list::ContentLibrary;
use super::core::{AppServer, CoreSettings, ServerCore, UserAccount};
use super::cpm_participating_function::{
    CpmConfig, CpmParticipatingFunction, system_wall_clock_ms,
};
use super::deferred_message_store::function::{DeferredConfig, DeferredFunction};
use super::deferred_message_store::{DeferredStore, SqliteDeferred};
use super::history_store::{HistoryStore, SqliteHistory};
use super::im_controlling_function::{FocusConfig, ImControllingFunction, NOTIFY_INTERVAL};
use super::isc_media_function::{IscMediaFunction, MediaPorts, MfConfig};
use super::msrp_relay::{RelayInput, RelayOutput};
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
    /// Keep chat history in memory, not under `data_dir` (demos, tests).
    pub history_in_memory: bool,
    /// Changes to the Digest defaults (SHA-256 then MD5, uri checked), e.g.
    /// MD5 only for SIPp 3.6.1.
    pub digest: Option<fn(&mut DigestServerConfig)>,
    /// Store messages for users with no registered device and deliver them
    /// later (seed 002 D.2, seed 003 12.4); off = 480 as before.
    pub deferred_messages: bool,
}

impl ServerOptions {
    pub fn new(config: ServerConfig) -> Self {
        ServerOptions {
            config,
            history_in_memory: false,
            digest: None,
            deferred_messages: true,
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
            history_in_memory: true,
            digest: None,
            deferred_messages: true,
        }
    }
}

/// A running server. Dropping it does not stop it: call [`Self::shutdown`].
pub struct ServerHandle {
    local: SocketAddr,
    tls_local: Option<SocketAddr>,
    tls_cert: Option<std::path::PathBuf>,
    msrp: SocketAddr,
    msrps: Option<SocketAddr>,
    stop: Arc<Notify>,
    wire: broadcast::Sender<WireEvent>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The SIP-over-TLS listener, when `[server.tls]` is on.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_local
    }

    /// The certificate file clients should trust (`--tls-ca`), when
    /// `[server.tls]` is on.
    pub fn tls_cert(&self) -> Option<&std::path::Path> {
        self.tls_cert.as_deref()
    }

    /// The MSRP listener of the B2BUA roles (TCP, same IP, own port).
    pub fn msrp_addr(&self) -> SocketAddr {
        self.msrp
    }

    /// The `msrps:` listener (MSRP over TLS, RFC 4975 §14.1), when
    /// `[server.tls]` is on.
    pub fn msrps_addr(&self) -> Option<SocketAddr> {
        self.msrps
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

/// The history store `[server.store]` names: PostgreSQL when a URL is
/// given (no fallback: an instance must not silently stop sharing), else
/// SQLite under `data_dir` (in memory when that fails, or for demos).
fn open_history(options: &ServerOptions, what: &str) -> io::Result<Box<dyn HistoryStore>> {
    let config = &options.config;
    #[cfg(feature = "postgres")]
    if let Some(url) = &config.store.url {
        return match super::pg_store::PgHistory::connect(url) {
            Ok(h) => Ok(Box::new(h)),
            Err(e) => Err(io::Error::other(format!("server.store.url: {e}"))),
        };
    }
    let opened = if options.history_in_memory && config.data_dir.is_none() {
        SqliteHistory::in_memory()
    } else {
        SqliteHistory::open_in(&config.data_dir())
    };
    match opened {
        Ok(h) => Ok(Box::new(h)),
        Err(e) => {
            tracing::warn!(error = %e, "{what} kept in memory only");
            Ok(Box::new(
                SqliteHistory::in_memory().map_err(|e| io::Error::other(e.to_string()))?,
            ))
        }
    }
}

/// The deferred store `[server.store]` names (see [`open_history`]).
fn open_deferred(options: &ServerOptions) -> io::Result<Box<dyn DeferredStore>> {
    let config = &options.config;
    #[cfg(feature = "postgres")]
    if let Some(url) = &config.store.url {
        return match super::pg_store::PgDeferred::connect(url) {
            Ok(s) => Ok(Box::new(s)),
            Err(e) => Err(io::Error::other(format!("server.store.url: {e}"))),
        };
    }
    let opened = if options.history_in_memory && config.data_dir.is_none() {
        SqliteDeferred::in_memory()
    } else {
        SqliteDeferred::open_in(&config.data_dir())
    };
    match opened {
        Ok(s) => Ok(Box::new(s)),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// The bundled server.
pub struct Server;

impl Server {
    /// Binds and starts the server on the current tokio runtime.
    pub async fn start(options: ServerOptions) -> io::Result<ServerHandle> {
        let config = options.config.clone();
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // RFC 3261 §26.2: SIP over TLS on a port of its own, when configured.
        let tls = super::tls_setup::tls_identity(&config)?;
        let tls_options = match &tls {
            Some((id, _)) => TlsOptions {
                listen: Some((
                    SocketAddr::new(config.listen.ip(), config.tls.sip_port),
                    id.acceptor()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
                )),
                connect: None,
            },
            None => TlsOptions::default(),
        };
        let (transport, mut incoming) = SipTransport::bind_tls(
            config.listen,
            TransportLimits::from(&config.limits),
            tls_options.clone(),
        )
        .await?;
        let local = transport.local_addr();
        let tls_local = transport.tls_local_addr();
        if let (Some(at), Some((_, cert))) = (tls_local, &tls) {
            tracing::info!(%at, cert = %cert.display(), "SIP over TLS listening; clients trust the certificate with --tls-ca");
        }
        let settings = CoreSettings {
            domain: config.domain.clone(),
            local,
            tls_local,
            users: config
                .effective_users()
                .into_iter()
                .map(|u| UserAccount {
                    name: u.name,
                    password: u.password,
                })
                .collect(),
            nonce_lifetime: Duration::from_secs(config.nonce_lifetime_secs),
            app_server: match (config.mode, config.core) {
                (crate::config::ServerMode::As, Some(core)) => Some(AppServer {
                    core,
                    trusted: config.trusted_core(),
                }),
                _ => None,
            },
        };
        let mut core = ServerCore::new(settings, Box::new(RandomIds::new()), Instant::now());
        core.set_limits(super::limits::SourceLimits::new(
            &config.limits,
            Instant::now(),
        ));
        if !config.digest_algorithms.is_empty() {
            let algorithms = config
                .digest_algorithms
                .iter()
                .map(|a| crate::proto::sip::digest::Algorithm::from_token(a))
                .collect();
            core.configure_digest(Instant::now(), |d| d.algorithms = algorithms);
        }
        if let Some(change) = options.digest {
            core.configure_digest(Instant::now(), change);
        }
        // The Media Function's content (loaded once) and media sockets.
        let media_ip = if local.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            local.ip()
        };
        let media = MediaSockets::bind(media_ip).await?;
        let import =
            crate::media::import::ImportOptions::detect(config.data_dir().join("content-cache"));
        let library = ContentLibrary::load_with(&config.content_dir, &import).unwrap_or_else(|e| {
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
        // The MSRP side of the B2BUA roles (seed 001 8.3.2.1.1).
        let (msrp, mut msrp_events) = MsrpTransport::bind_with(
            SocketAddr::new(local.ip(), 0),
            Duration::from_secs(config.limits.msrp_partial_chunk_timeout_secs),
        )
        .await?;
        let msrp_local = msrp.local_addr();
        // `[server.tls]`: MSRP over TLS on its own port (RFC 4975 §14.1),
        // with the SIP listener's certificate.
        let msrps_local = match &tls_options.listen {
            Some((_, acceptor)) => {
                let addr = msrp
                    .listen_tls(SocketAddr::new(local.ip(), 0), acceptor.clone())
                    .await?;
                tracing::info!(%addr, "msrps listener");
                Some(addr)
            }
            None => None,
        };
        let history = open_history(&options, "history")?;
        let cpm_config = CpmConfig {
            domain: config.domain.clone(),
            msrp_local,
            msrps_local,
            required_user_agent_version: config.required_user_agent_version.clone(),
            sdp_policy: config.sdp_policy.clone(),
            users: config
                .effective_users()
                .into_iter()
                .map(|u| (u.name.clone(), u))
                .collect(),
            wall_clock_ms: system_wall_clock_ms,
        };
        let mut tid_seed = [0u8; 4];
        rand::Rng::fill(&mut rand::rng(), &mut tid_seed[..]);
        core.enable_cpm(CpmParticipatingFunction::new(
            cpm_config,
            history,
            &format!("r{}", hex::encode(tid_seed)),
        ));
        // The IM Controlling Function (conference focus), seed 003 7.2.x.
        let focus_history = open_history(&options, "conference history")?;
        let focus_config = FocusConfig {
            domain: config.domain.clone(),
            msrp_local,
            msrps_local,
            factory_uri: config.conference_factory_uri(),
            max_adhoc_group_size: config.max_adhoc_group_size,
            groups: config.groups.clone(),
            users: config
                .effective_users()
                .into_iter()
                .map(|u| (u.name.clone(), u))
                .collect(),
            sdp_policy: config.sdp_policy.clone(),
            notify_interval: NOTIFY_INTERVAL,
            wall_clock_ms: system_wall_clock_ms,
            instance: config.instance,
        };
        core.enable_focus(ImControllingFunction::new(
            focus_config,
            focus_history,
            &hex::encode(tid_seed),
        ));
        // Seed 002 D.2 / seed 003 12.4: the deferred store shares the history file
        // (or the history's PostgreSQL database).
        let deferred_store = open_deferred(&options)?;
        if options.deferred_messages {
            core.enable_deferred(
                DeferredFunction::new(
                    DeferredConfig {
                        domain: config.domain.clone(),
                        msrp_local,
                        deferred_uri: config.deferred_uri(),
                        history_uri: config.history_uri(),
                        offline_delivery: config
                            .effective_users()
                            .into_iter()
                            .map(|u| (u.name, u.offline_delivery))
                            .collect(),
                        wall_clock_ms: system_wall_clock_ms,
                    },
                    deferred_store,
                )
                .with_lease_owner(match config.instance {
                    Some(n) => format!("instance-{n}"),
                    None => "local".into(),
                }),
            );
        }
        let overload_high = config.limits.overload_queue_high.max(1);
        let (connect_tx, mut connect_rx) =
            tokio::sync::mpsc::channel::<(u64, SocketAddr, io::Result<u64>)>(64);
        let stop = Arc::new(Notify::new());
        let (wire, _) = broadcast::channel(4096);
        let task = {
            let stop = stop.clone();
            let wire = wire.clone();
            tokio::spawn(async move {
                let mut msrp_trace = MsrpTrace::default();
                let mut overloaded = false;
                let mut rtp_out = super::rtp_sender::RtpOutQueue::new();
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
                            if msg.is_unframeable() {
                                // Its earlier messages are answered: close it (RFC 3261 §18.3).
                                transport.close(msg.source);
                                continue;
                            }
                            let _ = wire.send(WireEvent {
                                at: Instant::now(),
                                direction: Direction::In,
                                peer: msg.source,
                                transport: msg.transport,
                                bytes: msg.bytes.clone().into(),
                            });
                            // Past capacity new work is refused, not queued (RFC 3261 §21.5.4).
                            let backlog = incoming.len();
                            if backlog >= overload_high {
                                if !overloaded {
                                    overloaded = true;
                                    tracing::warn!(backlog, "overloaded: new requests get 503");
                                }
                                core.handle_input_overloaded(Instant::now(), &msg.bytes, msg.source, msg.transport);
                            } else {
                                if overloaded && backlog < overload_high / 2 {
                                    overloaded = false;
                                    tracing::info!(backlog, "load back under capacity");
                                }
                                core.handle_input(Instant::now(), &msg.bytes, msg.source, msg.transport);
                            }
                        }
                        ev = msrp_events.recv() => {
                            let input = match ev {
                                Some(MsrpNetEvent::Accepted { conn, peer, tls }) => {
                                    msrp_trace.peers.insert(conn, peer);
                                    Some(RelayInput::Accepted { conn, tls })
                                }
                                // Our own connects are reported through `connect_rx`.
                                Some(MsrpNetEvent::Connected { .. }) => None,
                                Some(MsrpNetEvent::Data { conn, bytes }) => {
                                    msrp_trace.received(&wire, conn, &bytes);
                                    Some(RelayInput::Data { conn, bytes })
                                }
                                Some(MsrpNetEvent::Closed { conn }) => {
                                    msrp_trace.closed(conn);
                                    Some(RelayInput::Closed { conn })
                                }
                                None => break,
                            };
                            if let Some(input) = input {
                                core.handle_msrp(Instant::now(), input);
                            }
                        }
                        res = connect_rx.recv() => {
                            let Some((leg, addr, res)) = res else { break };
                            let input = match res {
                                Ok(conn) => {
                                    msrp_trace.peers.insert(conn, addr);
                                    RelayInput::Connected { leg, conn }
                                }
                                Err(e) => {
                                    tracing::info!(error = %e, leg, "MSRP connect failed");
                                    RelayInput::ConnectFailed { leg }
                                }
                            };
                            core.handle_msrp(Instant::now(), input);
                        }
                        // video still queued: one turn of the scheduler, then its next slice
                        _ = tokio::task::yield_now(), if rtp_out.has_bulk() => {}
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
                    while let Some(out) = core.poll_msrp() {
                        match out {
                            RelayOutput::Connect { leg, addr } => {
                                let msrp = msrp.clone();
                                let tx = connect_tx.clone();
                                tokio::spawn(async move {
                                    let res = msrp.connect(addr).await;
                                    let _ = tx.send((leg, addr, res)).await;
                                });
                            }
                            RelayOutput::Send { conn, bytes } => {
                                msrp_trace.sent(&wire, conn, &bytes);
                                if let Err(e) = msrp.send(conn, bytes).await {
                                    tracing::info!(error = %e, conn, "MSRP send failed");
                                }
                            }
                            RelayOutput::Close { conn } => {
                                msrp_trace.closed(conn);
                                msrp.close(conn)
                            }
                        }
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
                    // RTP: what is due now first (the audio due while video went
                    // out), then one slice of video per turn (RtpOutQueue)
                    let now = Instant::now();
                    if core.poll_media_timeout().is_some_and(|m| m <= now) {
                        core.handle_media_timeout(now, wall_clock());
                    }
                    rtp_out.extend(std::iter::from_fn(|| core.poll_rtp_transmit()));
                    rtp_out.send_batch(&media).await;
                }
            })
        };
        tracing::info!(%local, "server started");
        Ok(ServerHandle {
            local,
            tls_local,
            tls_cert: tls.map(|(_, cert)| cert),
            msrp: msrp_local,
            msrps: msrps_local,
            stop,
            wire,
            task,
        })
    }
}

/// The MSRP side of the wire trace: each connection's peer, and the bytes
/// received so far cut into whole frames (RFC 4975 §7: a frame ends with
/// `-------<tid>` and `$`, `+` or `#`), so the ladder shows one arrow per
/// SEND or response. Does nothing while nobody listens.
#[derive(Default)]
struct MsrpTrace {
    peers: std::collections::HashMap<u64, SocketAddr>,
    buffers: std::collections::HashMap<u64, Vec<u8>>,
}

/// A frame this long without its end-line is published as it is.
const MSRP_TRACE_MAX: usize = 256 * 1024;

impl MsrpTrace {
    fn publish(
        wire: &broadcast::Sender<WireEvent>,
        direction: Direction,
        peer: SocketAddr,
        bytes: &[u8],
    ) {
        let _ = wire.send(WireEvent {
            at: Instant::now(),
            direction,
            peer,
            transport: Transport::Tcp,
            bytes: bytes.into(),
        });
    }

    fn sent(&mut self, wire: &broadcast::Sender<WireEvent>, conn: u64, bytes: &[u8]) {
        if wire.receiver_count() == 0 {
            return;
        }
        let Some(&peer) = self.peers.get(&conn) else {
            return;
        };
        let mut rest = bytes.to_vec();
        for frame in split_msrp_frames(&mut rest) {
            Self::publish(wire, Direction::Out, peer, &frame);
        }
        if !rest.is_empty() {
            Self::publish(wire, Direction::Out, peer, &rest);
        }
    }

    fn received(&mut self, wire: &broadcast::Sender<WireEvent>, conn: u64, bytes: &[u8]) {
        if wire.receiver_count() == 0 {
            return;
        }
        let Some(&peer) = self.peers.get(&conn) else {
            return;
        };
        let buf = self.buffers.entry(conn).or_default();
        buf.extend_from_slice(bytes);
        for frame in split_msrp_frames(buf) {
            Self::publish(wire, Direction::In, peer, &frame);
        }
        if buf.len() > MSRP_TRACE_MAX {
            Self::publish(wire, Direction::In, peer, buf);
            buf.clear();
        }
    }

    fn closed(&mut self, conn: u64) {
        self.peers.remove(&conn);
        self.buffers.remove(&conn);
    }
}

/// Takes the whole MSRP frames off the front of `buf`.
fn split_msrp_frames(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") {
        let first = String::from_utf8_lossy(&buf[..line_end]);
        let mut words = first.split_whitespace();
        let tid = match (words.next(), words.next()) {
            (Some("MSRP"), Some(tid)) => tid.to_owned(),
            _ => break,
        };
        let end_line = format!("\r\n-------{tid}");
        let needle = end_line.as_bytes();
        let Some(at) = buf[line_end..]
            .windows(needle.len() + 1)
            .position(|w| w.starts_with(needle) && matches!(w[needle.len()], b'$' | b'+' | b'#'))
        else {
            break;
        };
        // The end-line, its flag and CRLF.
        let end = (line_end + at + needle.len() + 3).min(buf.len());
        frames.push(buf.drain(..end).collect());
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::split_msrp_frames;

    #[test]
    fn msrp_trace_cuts_whole_frames_and_keeps_the_rest() {
        let a = b"MSRP t1 SEND\r\nTo-Path: msrp://a\r\n\r\nhi\r\n-------t1$\r\n";
        let b = b"MSRP t2 200 OK\r\nTo-Path: msrp://b\r\n-------t2$\r\n";
        let mut buf = [&a[..], &b[..], b"MSRP t3 SEND\r\nTo-Pa"].concat();
        let frames = split_msrp_frames(&mut buf);
        assert_eq!(frames, vec![a.to_vec(), b.to_vec()]);
        assert_eq!(buf, b"MSRP t3 SEND\r\nTo-Pa");
        // a body mentioning another end-line does not cut the frame
        let c = b"MSRP t4 SEND\r\n\r\n-------t9$\r\n-------t4+\r\n";
        let mut buf = c.to_vec();
        assert_eq!(split_msrp_frames(&mut buf), vec![c.to_vec()]);
        // not MSRP: left alone
        let mut junk = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        assert!(split_msrp_frames(&mut junk).is_empty());
    }
}
