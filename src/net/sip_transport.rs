//! SIP over UDP and TCP on one local address (RFC 3261 §18), and over TLS
//! on a port of its own when asked (RFC 3261 §26.2): a thin tokio driver. It frames TCP streams with the sans-IO [`StreamFramer`], reuses
//! connections in both directions (a device registered over TCP is reached
//! over the connection it opened) and hands every datagram or framed message
//! to the core unparsed: no protocol decision is taken here.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::tls::{TlsAcceptor, TlsConnector};
use crate::proto::sip::framing::{FramerConfig, StreamFramer};
use crate::proto::sip::transaction::Transport;

/// Largest UDP datagram we accept (RFC 3261 §18.1.1 leaves the bound to us).
const MAX_DATAGRAM: usize = 65_535;
/// Messages queued towards one TCP peer before sends start failing.
const TCP_QUEUE: usize = 256;

/// One message (or datagram) received from the network.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub bytes: Vec<u8>,
    pub source: SocketAddr,
    pub transport: Transport,
}

impl Incoming {
    /// Empty `bytes` mark a TCP stream from `source` that cannot be framed
    /// any further (RFC 3261 §18.3): it carries no message, and the driver
    /// closes the connection with [`SipTransport::close`] once it has
    /// answered what came before (the queue keeps the order).
    pub fn is_unframeable(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Bounds on what one TCP peer can make the transport hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportLimits {
    /// Largest header section and Content-Length (RFC 3261 §18.3 framing).
    pub framer: FramerConfig,
    /// How long a peer may take to finish a message it started (slowloris).
    pub partial_message_timeout: std::time::Duration,
    /// Messages queued for the receiver at most (then readers wait).
    pub queue_capacity: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self::from(&crate::config::LimitsConfig::default())
    }
}

impl From<&crate::config::LimitsConfig> for TransportLimits {
    fn from(c: &crate::config::LimitsConfig) -> Self {
        TransportLimits {
            framer: FramerConfig {
                max_header_size: c.max_sip_header_bytes,
                max_body_size: c.max_sip_body_bytes,
            },
            partial_message_timeout: std::time::Duration::from_secs(
                c.sip_partial_message_timeout_secs,
            ),
            queue_capacity: c.work_queue_capacity.max(1),
        }
    }
}

type ConnMap = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// SIP over TLS (RFC 3261 §26.2): a listening side (a server), a connecting
/// side (a client, which checks the server's certificate against `name`),
/// or both.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Where to accept TLS (port 0: any) and with which certificate.
    pub listen: Option<(SocketAddr, TlsAcceptor)>,
    /// How to open TLS connections: the connector and the name the peer's
    /// certificate must carry.
    pub connect: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
}

/// A bound SIP transport: UDP and TCP on the same address and port, and TLS
/// when [`TlsOptions`] ask for it.
#[derive(Clone)]
pub struct SipTransport {
    udp: Arc<UdpSocket>,
    local: SocketAddr,
    tls_local: Option<SocketAddr>,
    connector: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    conns: ConnMap,
    incoming: mpsc::Sender<Incoming>,
    limits: TransportLimits,
}

impl SipTransport {
    /// Binds UDP and TCP on `addr`. Port 0 picks one free port for both.
    pub async fn bind(addr: SocketAddr) -> io::Result<(Self, mpsc::Receiver<Incoming>)> {
        Self::bind_with(addr, TransportLimits::default()).await
    }

    /// [`Self::bind`] with explicit limits (`[server.limits]`).
    pub async fn bind_with(
        addr: SocketAddr,
        limits: TransportLimits,
    ) -> io::Result<(Self, mpsc::Receiver<Incoming>)> {
        Self::bind_tls(addr, limits, TlsOptions::default()).await
    }

    /// [`Self::bind_with`] plus SIP over TLS as `tls` asks.
    pub async fn bind_tls(
        addr: SocketAddr,
        limits: TransportLimits,
        tls: TlsOptions,
    ) -> io::Result<(Self, mpsc::Receiver<Incoming>)> {
        let (udp, tcp) = bind_pair(addr).await?;
        let local = udp.local_addr()?;
        let tls_listener = match &tls.listen {
            Some((at, acceptor)) => {
                let l = TcpListener::bind(at).await?;
                Some((l, acceptor.clone()))
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel(limits.queue_capacity);
        let transport = SipTransport {
            udp: Arc::new(udp),
            local,
            tls_local: match &tls_listener {
                Some((l, _)) => Some(l.local_addr()?),
                None => None,
            },
            connector: tls.connect,
            conns: Arc::new(Mutex::new(HashMap::new())),
            incoming: tx,
            limits,
        };
        transport.spawn_udp_reader();
        transport.spawn_tcp_acceptor(tcp);
        if let Some((listener, acceptor)) = tls_listener {
            transport.spawn_tls_acceptor(listener, acceptor);
        }
        Ok((transport, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The SIP-over-TLS listening address, when there is one.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_local
    }

    /// Sends bytes to `dest`. Over TCP an existing connection to `dest` is
    /// reused (either direction); otherwise one is opened.
    pub async fn send(
        &self,
        dest: SocketAddr,
        transport: Transport,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        match transport {
            Transport::Udp => self.udp.send_to(&bytes, dest).await.map(|_| ()),
            Transport::Tcp | Transport::Tls => {
                let existing = self
                    .conns
                    .lock()
                    .map_err(|_| poisoned())?
                    .get(&dest)
                    .cloned();
                let sender = match existing {
                    Some(s) if !s.is_closed() => s,
                    _ if transport == Transport::Tcp => {
                        let stream = TcpStream::connect(dest).await?;
                        let _ = stream.set_nodelay(true);
                        self.adopt_stream(stream, dest, Transport::Tcp)?
                    }
                    // RFC 3261 §26.3.1: a TLS connection is opened only to a
                    // peer whose certificate we can check (the server); the
                    // server reaches a TLS device over the connection the
                    // device opened (RFC 5923 reuse), never a new one.
                    _ => {
                        let Some((connector, name)) = &self.connector else {
                            return Err(io::Error::new(
                                io::ErrorKind::NotConnected,
                                format!("no TLS connection from {dest}"),
                            ));
                        };
                        let stream = TcpStream::connect(dest).await?;
                        let _ = stream.set_nodelay(true);
                        let tls = connector.connect(name.clone(), stream).await?;
                        self.adopt_stream(tls, dest, Transport::Tls)?
                    }
                };
                sender
                    .send(bytes)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "TCP connection closed"))
            }
        }
    }

    /// Forgets the connection to `peer`: its writer sends what is queued,
    /// then the connection closes.
    pub fn close(&self, peer: SocketAddr) {
        if let Ok(mut map) = self.conns.lock() {
            map.remove(&peer);
        }
    }

    fn spawn_udp_reader(&self) {
        let udp = self.udp.clone();
        let tx = self.incoming.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match udp.recv_from(&mut buf).await {
                    Ok((n, source)) => {
                        // RFC 5626 §4.4.1 keep-alives (CRLF) carry no message.
                        if buf[..n].iter().all(|b| matches!(b, b'\r' | b'\n')) {
                            continue;
                        }
                        let msg = Incoming {
                            bytes: buf[..n].to_vec(),
                            source,
                            transport: Transport::Udp,
                        };
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    // ICMP port unreachable surfaces here on Linux: not fatal.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "UDP receive failed");
                        return;
                    }
                }
            }
        });
    }

    fn spawn_tcp_acceptor(&self, listener: TcpListener) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        if let Err(e) = this.adopt_stream(stream, peer, Transport::Tcp) {
                            tracing::warn!(error = %e, %peer, "TCP connection not adopted");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TCP accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }

    /// Accepts TLS connections; each handshake runs on its own and must
    /// end within the partial-message bound (a peer stalling its handshake
    /// holds no more than one stalling mid-message would).
    fn spawn_tls_acceptor(&self, listener: TcpListener, acceptor: TlsAcceptor) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let this = this.clone();
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let bound = this.limits.partial_message_timeout;
                            match tokio::time::timeout(bound, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => {
                                    if let Err(e) = this.adopt_stream(tls, peer, Transport::Tls) {
                                        tracing::warn!(error = %e, %peer, "TLS connection not adopted");
                                    }
                                }
                                Ok(Err(e)) => {
                                    tracing::info!(error = %e, %peer, "SIP TLS handshake failed")
                                }
                                Err(_) => {
                                    tracing::info!(%peer, ?bound, "SIP TLS handshake unfinished in time")
                                }
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }

    /// Registers a connection in the map and starts its reader and writer.
    fn adopt_stream<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        transport: Transport,
    ) -> io::Result<mpsc::Sender<Vec<u8>>>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let (wtx, mut wrx) = mpsc::channel::<Vec<u8>>(TCP_QUEUE);
        self.conns
            .lock()
            .map_err(|_| poisoned())?
            .insert(peer, wtx.clone());
        tokio::spawn(async move {
            while let Some(bytes) = wrx.recv().await {
                if let Err(e) = writer.write_all(&bytes).await {
                    tracing::debug!(error = %e, %peer, "TCP write failed");
                    return;
                }
                // TLS buffers what it encrypts: push each message out.
                if writer.flush().await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
        let conns = self.conns.clone();
        let tx = self.incoming.clone();
        let limits = self.limits;
        tokio::spawn(async move {
            let mut framer = StreamFramer::new(limits.framer);
            let mut buf = vec![0u8; 16 * 1024];
            // When the message now buffered in part was begun.
            let mut started: Option<tokio::time::Instant> = None;
            'read: loop {
                let read = match started {
                    // A started message must be finished in time (slowloris).
                    Some(at) => {
                        let deadline = at + limits.partial_message_timeout;
                        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
                            Ok(r) => r,
                            Err(_) => {
                                tracing::warn!(
                                    %peer,
                                    buffered = framer.buffered(),
                                    timeout = ?limits.partial_message_timeout,
                                    "closing SIP stream: message unfinished in time"
                                );
                                break;
                            }
                        }
                    }
                    None => reader.read(&mut buf).await,
                };
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                framer.push(&buf[..n]);
                let mut completed = false;
                while let Some(next) = framer.next_message() {
                    match next {
                        Ok(bytes) => {
                            completed = true;
                            let msg = Incoming {
                                bytes,
                                source: peer,
                                transport,
                            };
                            if tx.send(msg).await.is_err() {
                                break 'read;
                            }
                        }
                        // A stream that cannot be framed cannot be resynchronised:
                        // close this connection only (RFC 3261 §18.3), after the
                        // answers to the messages before the fault (the driver
                        // closes it when this marker comes out of the queue).
                        Err(e) => {
                            tracing::warn!(error = %e, %peer, "closing unframeable SIP stream");
                            let _ = tx
                                .send(Incoming {
                                    bytes: Vec::new(),
                                    source: peer,
                                    transport,
                                })
                                .await;
                            return;
                        }
                    }
                }
                started = match (framer.buffered(), started) {
                    (0, _) => None,
                    (_, Some(at)) if !completed => Some(at),
                    _ => Some(tokio::time::Instant::now()),
                };
            }
            if let Ok(mut map) = conns.lock() {
                map.remove(&peer);
            }
        });
        Ok(wtx)
    }
}

fn poisoned() -> io::Error {
    io::Error::other("connection table poisoned")
}

/// Binds UDP, then TCP on the same port; with port 0 retries until both fit.
async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port free for UDP and TCP")))
}
