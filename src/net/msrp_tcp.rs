//! MSRP over TCP (RFC 4975 §6, RFC 6135): a thin tokio driver. It listens on
//! one local port, opens connections on request, and reports each
//! connection's raw bytes by connection id. Framing, session matching and
//! every protocol decision belong to the sans-IO MSRP core.
//!
//! `msrps:` (RFC 4975 §14.1): a second listener that accepts TLS
//! ([`MsrpTransport::listen_tls`]) and TLS connects
//! ([`MsrpTransport::connect_tls`]); after the handshake a TLS stream goes
//! through the same reader, writer and partial-chunk bound as plain TCP.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::tls::{TlsAcceptor, TlsConnector};

/// Identifies one TCP connection for the life of the driver.
pub type ConnId = u64;

/// Bytes queued towards one connection before `send` waits.
const WRITE_QUEUE: usize = 1024;
/// How long a TLS handshake may take before the connection is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The default bound on a half-sent chunk (`msrp_partial_chunk_timeout_secs`).
pub const DEFAULT_PARTIAL_CHUNK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The last bytes read, to tell whether the stream rests between frames
/// (its last bytes are an end-line `-------<tid>[$+#]` CRLF, RFC 4975 §7)
/// and since when it has not.
#[derive(Debug, Default)]
struct FrameTail {
    last: Vec<u8>,
    started: Option<tokio::time::Instant>,
}

impl FrameTail {
    const KEEP: usize = 128;

    fn push(&mut self, bytes: &[u8]) {
        self.last.extend_from_slice(bytes);
        let excess = self.last.len().saturating_sub(Self::KEEP);
        self.last.drain(..excess);
        if ends_with_end_line(&self.last) {
            self.started = None;
        } else if self.started.is_none() {
            self.started = Some(tokio::time::Instant::now());
        }
    }
}

/// `...\r\n-------<transaction-id><flag>\r\n` at the very end (RFC 4975 §9:
/// transact-id is 4-32 alphanumerics and `.`, `-`, `+`, `%`, `=`).
fn ends_with_end_line(b: &[u8]) -> bool {
    let Some(rest) = b.strip_suffix(b"\r\n") else {
        return false;
    };
    let Some((flag, rest)) = rest.split_last() else {
        return false;
    };
    if !matches!(flag, b'$' | b'+' | b'#') {
        return false;
    }
    let tid_len = rest
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || b".-+%=".contains(c))
        .count();
    // '-' is in the tid's alphabet too: take the run greedily and ask that
    // it start with the seven dashes and follow a line end.
    let tid_and_dashes = rest
        .get(rest.len().saturating_sub(tid_len)..)
        .unwrap_or_default();
    let body = rest
        .get(..rest.len().saturating_sub(tid_len))
        .unwrap_or_default();
    (body.is_empty() || body.ends_with(b"\n"))
        && tid_and_dashes.starts_with(b"-------")
        && tid_and_dashes.len() > 7
}

/// What happened on the MSRP transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpNetEvent {
    /// A peer connected to our listening port (we are the passive side);
    /// `tls`: to the `msrps:` one ([`MsrpTransport::listen_tls`]), its
    /// handshake done.
    Accepted {
        conn: ConnId,
        peer: SocketAddr,
        tls: bool,
    },
    /// A connection we opened is up (we are the active side).
    Connected { conn: ConnId, peer: SocketAddr },
    /// Bytes from the peer, in order.
    Data { conn: ConnId, bytes: Vec<u8> },
    /// The connection is gone (closed by either side or failed).
    Closed { conn: ConnId },
}

type Writers = Arc<Mutex<HashMap<ConnId, mpsc::Sender<Vec<u8>>>>>;

/// A bound MSRP transport. Cheap to clone.
#[derive(Clone)]
pub struct MsrpTransport {
    /// How long a peer may leave a chunk unfinished before it is dropped.
    partial_chunk_timeout: std::time::Duration,
    local: SocketAddr,
    writers: Writers,
    next_id: Arc<AtomicU64>,
    events: mpsc::Sender<MsrpNetEvent>,
}

impl MsrpTransport {
    /// Listens on `addr` (port 0 picks one).
    pub async fn bind(addr: SocketAddr) -> io::Result<(Self, mpsc::Receiver<MsrpNetEvent>)> {
        Self::bind_with(addr, DEFAULT_PARTIAL_CHUNK_TIMEOUT).await
    }

    /// [`Self::bind`] with the half-sent chunk bound (`[server.limits]`).
    pub async fn bind_with(
        addr: SocketAddr,
        partial_chunk_timeout: std::time::Duration,
    ) -> io::Result<(Self, mpsc::Receiver<MsrpNetEvent>)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (events, rx) = mpsc::channel(4096);
        let transport = MsrpTransport {
            partial_chunk_timeout,
            local,
            writers: Arc::new(Mutex::new(HashMap::new())),
            next_id: Arc::new(AtomicU64::new(1)),
            events,
        };
        let this = transport.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let conn = this.adopt(stream);
                        if this
                            .events
                            .send(MsrpNetEvent::Accepted {
                                conn,
                                peer,
                                tls: false,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "MSRP accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok((transport, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Also listens on `addr` for `msrps:` (RFC 4975 §14.1): each accepted
    /// connection does the TLS handshake as the server first; a failed or
    /// slow one ([`TLS_HANDSHAKE_TIMEOUT`]) is logged and dropped, so the
    /// MSRP core never sees its bytes. Connections share the ids and events
    /// of the plain listener. Returns the bound address.
    pub async fn listen_tls(
        &self,
        addr: SocketAddr,
        acceptor: TlsAcceptor,
    ) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "MSRP TLS accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if this.events.is_closed() {
                    return;
                }
                let _ = stream.set_nodelay(true);
                let this = this.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let tls =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::info!(%peer, error = %e, "MSRP TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::info!(%peer, "MSRP TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = this.adopt(tls);
                    let _ = this
                        .events
                        .send(MsrpNetEvent::Accepted {
                            conn,
                            peer,
                            tls: true,
                        })
                        .await;
                });
            }
        });
        Ok(local)
    }

    /// Opens a connection to `peer` (the active side, RFC 6135); a
    /// `Connected` event follows on success.
    pub async fn connect(&self, peer: SocketAddr) -> io::Result<ConnId> {
        let stream = TcpStream::connect(peer).await?;
        let _ = stream.set_nodelay(true);
        let conn = self.adopt(stream);
        let _ = self
            .events
            .send(MsrpNetEvent::Connected { conn, peer })
            .await;
        Ok(conn)
    }

    /// [`Self::connect`] to an `msrps:` URI (RFC 4975 §14.1): we are the TLS
    /// client and check the peer's certificate against `name`. A refused
    /// certificate is the error returned (`invalid peer certificate: ...`).
    pub async fn connect_tls(
        &self,
        peer: SocketAddr,
        connector: &TlsConnector,
        name: ServerName<'static>,
    ) -> io::Result<ConnId> {
        let stream = TcpStream::connect(peer).await?;
        let _ = stream.set_nodelay(true);
        let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, connector.connect(name, stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let conn = self.adopt(tls);
        let _ = self
            .events
            .send(MsrpNetEvent::Connected { conn, peer })
            .await;
        Ok(conn)
    }

    /// Queues bytes for `conn`.
    pub async fn send(&self, conn: ConnId, bytes: Vec<u8>) -> io::Result<()> {
        let writer = self
            .writers
            .lock()
            .map_err(|_| poisoned())?
            .get(&conn)
            .cloned();
        match writer {
            Some(w) => w
                .send(bytes)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "MSRP connection closed")),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no such MSRP connection",
            )),
        }
    }

    /// Closes `conn` once what is queued has been written.
    pub fn close(&self, conn: ConnId) {
        if let Ok(mut w) = self.writers.lock() {
            w.remove(&conn);
        }
    }

    fn adopt<S>(&self, stream: S) -> ConnId
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let conn = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = tokio::io::split(stream);
        let (wtx, mut wrx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        if let Ok(mut w) = self.writers.lock() {
            w.insert(conn, wtx);
        }
        tokio::spawn(async move {
            while let Some(bytes) = wrx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        let events = self.events.clone();
        let writers = self.writers.clone();
        let timeout = self.partial_chunk_timeout;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut tail = FrameTail::default();
            loop {
                let read = match tail.started {
                    // RFC 4975 §7: a frame ends with its end-line; one left
                    // half-sent holds the relay's buffer, so it has a deadline.
                    Some(at) => {
                        match tokio::time::timeout_at(at + timeout, reader.read(&mut buf)).await {
                            Ok(r) => r,
                            Err(_) => {
                                tracing::warn!(
                                    conn,
                                    ?timeout,
                                    "closing MSRP connection: chunk unfinished in time"
                                );
                                break;
                            }
                        }
                    }
                    None => reader.read(&mut buf).await,
                };
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.push(buf.get(..n).unwrap_or_default());
                        if events
                            .send(MsrpNetEvent::Data {
                                conn,
                                bytes: buf[..n].to_vec(),
                            })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            if let Ok(mut w) = writers.lock() {
                w.remove(&conn);
            }
            let _ = events.send(MsrpNetEvent::Closed { conn }).await;
        });
        conn
    }
}

fn poisoned() -> io::Error {
    io::Error::other("MSRP connection table poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_lines_are_recognised() {
        assert!(super::ends_with_end_line(
            b"SEND\r\n\r\nhi\r\n-------a1b2$\r\n"
        ));
        assert!(super::ends_with_end_line(b"\r\n-------a.1+\r\n"));
        assert!(!super::ends_with_end_line(b"SEND\r\n\r\nhi\r\n-------a1b2"));
        assert!(!super::ends_with_end_line(
            b"MSRP a1 SEND\r\nTo-Path: x\r\n"
        ));
        assert!(!super::ends_with_end_line(b"hi -------a1$\r\n"));
    }

    #[tokio::test]
    async fn connect_send_receive_close() {
        let (a, mut a_rx) = MsrpTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (b, mut b_rx) = MsrpTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let conn = b.connect(a.local_addr()).await.unwrap();
        assert!(matches!(
            b_rx.recv().await,
            Some(MsrpNetEvent::Connected { .. })
        ));
        let Some(MsrpNetEvent::Accepted { conn: a_conn, .. }) = a_rx.recv().await else {
            panic!("accepted")
        };
        b.send(conn, b"MSRP a1 SEND\r\n".to_vec()).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 14 {
            match a_rx.recv().await {
                Some(MsrpNetEvent::Data { bytes, .. }) => got.extend(bytes),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, b"MSRP a1 SEND\r\n");
        a.close(a_conn);
        assert_eq!(b_rx.recv().await, Some(MsrpNetEvent::Closed { conn }));
        assert!(b.send(conn, b"x".to_vec()).await.is_err());
    }

    #[tokio::test]
    async fn tls_listener_carries_msrp_and_refuses_plaintext() {
        use crate::net::tls::{Identity, connector, server_name};
        let id = Identity::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let (a, mut a_rx) = MsrpTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let tls_addr = a
            .listen_tls("127.0.0.1:0".parse().unwrap(), id.acceptor().unwrap())
            .await
            .unwrap();
        let (b, mut b_rx) = MsrpTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let trusting = connector(&id.chain).unwrap();
        let conn = b
            .connect_tls(tls_addr, &trusting, server_name("127.0.0.1").unwrap())
            .await
            .unwrap();
        assert!(matches!(
            b_rx.recv().await,
            Some(MsrpNetEvent::Connected { .. })
        ));
        assert!(matches!(
            a_rx.recv().await,
            Some(MsrpNetEvent::Accepted { .. })
        ));
        b.send(conn, b"MSRP a1 SEND\r\n".to_vec()).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 14 {
            match a_rx.recv().await {
                Some(MsrpNetEvent::Data { bytes, .. }) => got.extend(bytes),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, b"MSRP a1 SEND\r\n");

        // A certificate we do not trust: the connect fails and says why.
        let other = Identity::self_signed(&["127.0.0.1".into()]).unwrap();
        let err = b
            .connect_tls(
                tls_addr,
                &connector(&other.chain).unwrap(),
                server_name("127.0.0.1").unwrap(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");

        // Plaintext MSRP on the TLS port: closed, and nothing reaches the core.
        let mut raw = TcpStream::connect(tls_addr).await.unwrap();
        raw.write_all(b"MSRP a2 SEND\r\nTo-Path: msrps://127.0.0.1/x;tcp\r\n\r\n-------a2$\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), raw.read_to_end(&mut buf))
            .await
            .expect("closed by the server");
        assert!(!buf.starts_with(b"MSRP"), "no MSRP answer: {buf:?}");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(200), a_rx.recv())
                .await
                .is_err(),
            "the core saw nothing"
        );
    }
}
