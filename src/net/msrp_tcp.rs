//! MSRP over TCP (RFC 4975 §6, RFC 6135): a thin tokio driver. It listens on
//! one local port, opens connections on request, and reports each
//! connection's raw bytes by connection id. Framing, session matching and
//! every protocol decision belong to the sans-IO MSRP core.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Identifies one TCP connection for the life of the driver.
pub type ConnId = u64;

/// Bytes queued towards one connection before `send` waits.
const WRITE_QUEUE: usize = 1024;

/// What happened on the MSRP transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpNetEvent {
    /// A peer connected to our listening port (we are the passive side).
    Accepted { conn: ConnId, peer: SocketAddr },
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
    local: SocketAddr,
    writers: Writers,
    next_id: Arc<AtomicU64>,
    events: mpsc::Sender<MsrpNetEvent>,
}

impl MsrpTransport {
    /// Listens on `addr` (port 0 picks one).
    pub async fn bind(addr: SocketAddr) -> io::Result<(Self, mpsc::Receiver<MsrpNetEvent>)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (events, rx) = mpsc::channel(4096);
        let transport = MsrpTransport {
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
                        let conn = this.adopt(stream);
                        if this
                            .events
                            .send(MsrpNetEvent::Accepted { conn, peer })
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

    /// Opens a connection to `peer` (the active side, RFC 6135); a
    /// `Connected` event follows on success.
    pub async fn connect(&self, peer: SocketAddr) -> io::Result<ConnId> {
        let stream = TcpStream::connect(peer).await?;
        let conn = self.adopt(stream);
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

    fn adopt(&self, stream: TcpStream) -> ConnId {
        let conn = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
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
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
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
}
