//! The shared store for scale-out: deferred messages ([`PgDeferred`]) and
//! chat history ([`PgHistory`]) in PostgreSQL, so that several `isc server`
//! instances see the same messages (README "Scale-out").
//!
//! Same semantics as the SQLite stores: a deferred message is keyed by
//! (recipient, Message-ID / Call-ID+CSeq) under a UNIQUE constraint and
//! inserted with `ON CONFLICT DO NOTHING` inside one transaction, so a
//! resend — through the same instance or another one — is stored once; a
//! message is deleted (and its key remembered as delivered) only after its
//! MSRP 200, in one transaction.
//!
//! The stores are synchronous (the server core calls them inline). The
//! `postgres` client runs its own small runtime, which must not be entered
//! from a tokio worker, so each store owns one thread with one connection
//! ([`PgWorker`]) and its calls wait for that thread's answer. A broken
//! connection is re-opened on the next call.

#[cfg(unix)]
pub mod cluster;

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::{Client, NoTls};

use super::deferred_message_store::{
    DeferredError, DeferredKind, DeferredMessage, DeferredStore, NewDeferred, StoreOutcome,
};
use super::history_store::{HistoryEntry, HistoryError, HistoryStore, conversation_key};

/// How long a connection attempt may take before the store reports it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    #[error("store url: {0}")]
    BadUrl(String),
    #[error("cannot connect to the store: {}", with_causes(.0))]
    Connect(postgres::Error),
    #[error("store query: {}", with_causes(.0))]
    Query(#[from] postgres::Error),
    #[error("the store's connection thread is gone")]
    WorkerGone,
    #[error("store thread: {0}")]
    Thread(std::io::Error),
}

/// An error and its sources, `a: b: c`.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Checks a `postgres://` / `postgresql://` URL (or key=value string)
/// without connecting.
pub fn parse_url(url: &str) -> Result<postgres::Config, PgError> {
    url.parse::<postgres::Config>()
        .map_err(|e| PgError::BadUrl(e.to_string()))
}

type Job = Box<dyn FnOnce(Option<&mut Client>) + Send>;

/// One connection on its own thread; jobs run there in order.
pub struct PgWorker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PgWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWorker").finish_non_exhaustive()
    }
}

impl PgWorker {
    /// Connects to `url` and runs `schema` (idempotent DDL) under an
    /// advisory lock, so that instances starting together do not race on
    /// `CREATE TABLE IF NOT EXISTS`.
    pub fn connect(url: &str, schema: &'static str) -> Result<Self, PgError> {
        let mut config = parse_url(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), PgError>>();
        let thread = std::thread::Builder::new()
            .name("isc-pg-store".into())
            .spawn(move || {
                let open = |c: &postgres::Config| -> Result<Client, PgError> {
                    let mut client = c.connect(NoTls).map_err(PgError::Connect)?;
                    let mut tx = client.transaction()?;
                    tx.execute("SELECT pg_advisory_xact_lock(7411)", &[])?;
                    tx.batch_execute(schema)?;
                    tx.commit()?;
                    Ok(client)
                };
                let mut client = match open(&config) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        Some(c)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = match open(&config) {
                            Ok(c) => Some(c),
                            Err(e) => {
                                tracing::warn!(error = %e, "store reconnect failed");
                                None
                            }
                        };
                    }
                    job(client.as_mut());
                }
            })
            .map_err(PgError::Thread)?;
        let worker = PgWorker {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        ready_rx.recv().map_err(|_| PgError::WorkerGone)??;
        Ok(worker)
    }

    /// Runs `f` on the connection's thread and waits for its result.
    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, PgError> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |client| {
            let r = match client {
                Some(c) => f(c).map_err(PgError::Query),
                None => Err(PgError::WorkerGone),
            };
            let _ = tx.send(r);
        });
        self.jobs
            .as_ref()
            .ok_or(PgError::WorkerGone)?
            .send(job)
            .map_err(|_| PgError::WorkerGone)?;
        rx.recv().map_err(|_| PgError::WorkerGone)?
    }
}

impl Drop for PgWorker {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; it closes the connection.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const DEFERRED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deferred (
    id BIGSERIAL PRIMARY KEY,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    kind BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    message_id TEXT,
    request BYTEA NOT NULL,
    response BYTEA NOT NULL,
    msrp BYTEA NOT NULL,
    arrived_unix_ms BIGINT NOT NULL,
    UNIQUE (recipient, msg_key)
);
CREATE INDEX IF NOT EXISTS deferred_recipient ON deferred (recipient, id);
CREATE TABLE IF NOT EXISTS deferred_delivered (
    recipient TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    PRIMARY KEY (recipient, msg_key)
);
CREATE TABLE IF NOT EXISTS deferred_push_lease (
    recipient TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);";

/// Deferred messages in PostgreSQL, shared by every instance using `url`.
#[derive(Debug)]
pub struct PgDeferred {
    worker: PgWorker,
}

impl PgDeferred {
    /// Connects and creates the tables when missing.
    pub fn connect(url: &str) -> Result<Self, DeferredError> {
        Ok(PgDeferred {
            worker: PgWorker::connect(url, DEFERRED_SCHEMA)?,
        })
    }
}

impl DeferredStore for PgDeferred {
    fn store(&mut self, m: &NewDeferred) -> Result<StoreOutcome, DeferredError> {
        let m = m.clone();
        Ok(self.worker.run(move |c| {
            let mut tx = c.transaction()?;
            // A resend of a message already pushed and removed is not stored
            // again either: delivered keys are remembered.
            let delivered = tx.query_opt(
                "SELECT 1 FROM deferred_delivered WHERE recipient = $1 AND msg_key = $2",
                &[&m.recipient, &m.key],
            )?;
            if delivered.is_some() {
                tx.commit()?;
                return Ok(StoreOutcome::Duplicate(0));
            }
            let inserted = tx.query_opt(
                "INSERT INTO deferred (recipient, sender, msg_key, kind, call_id, message_id,
                    request, response, msrp, arrived_unix_ms)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                    ON CONFLICT (recipient, msg_key) DO NOTHING RETURNING id",
                &[
                    &m.recipient,
                    &m.sender,
                    &m.key,
                    &m.kind.code(),
                    &m.call_id,
                    &m.message_id,
                    &m.request,
                    &m.response,
                    &m.msrp,
                    &m.arrived_unix_ms,
                ],
            )?;
            let outcome = match inserted {
                Some(row) => StoreOutcome::Stored(row.get(0)),
                None => {
                    let row = tx.query_one(
                        "SELECT id FROM deferred WHERE recipient = $1 AND msg_key = $2",
                        &[&m.recipient, &m.key],
                    )?;
                    StoreOutcome::Duplicate(row.get(0))
                }
            };
            tx.commit()?;
            Ok(outcome)
        })?)
    }

    fn pending(&self, recipient: &str) -> Result<Vec<DeferredMessage>, DeferredError> {
        let recipient = recipient.to_string();
        let rows = self.worker.run(move |c| {
            c.query(
                "SELECT id, recipient, sender, msg_key, kind, call_id, message_id, request,
                    response, msrp, arrived_unix_ms FROM deferred WHERE recipient = $1
                    ORDER BY id",
                &[&recipient],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok(DeferredMessage {
                    id: r.try_get(0).map_err(PgError::Query)?,
                    message: NewDeferred {
                        recipient: r.try_get(1).map_err(PgError::Query)?,
                        sender: r.try_get(2).map_err(PgError::Query)?,
                        key: r.try_get(3).map_err(PgError::Query)?,
                        kind: DeferredKind::from_code(r.try_get(4).map_err(PgError::Query)?)?,
                        call_id: r.try_get(5).map_err(PgError::Query)?,
                        message_id: r.try_get(6).map_err(PgError::Query)?,
                        request: r.try_get(7).map_err(PgError::Query)?,
                        response: r.try_get(8).map_err(PgError::Query)?,
                        msrp: r.try_get(9).map_err(PgError::Query)?,
                        arrived_unix_ms: r.try_get(10).map_err(PgError::Query)?,
                    },
                })
            })
            .collect()
    }

    fn remove(&mut self, id: i64) -> Result<bool, DeferredError> {
        Ok(self.worker.run(move |c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO deferred_delivered (recipient, msg_key)
                    SELECT recipient, msg_key FROM deferred WHERE id = $1
                    ON CONFLICT DO NOTHING",
                &[&id],
            )?;
            let n = tx.execute("DELETE FROM deferred WHERE id = $1", &[&id])?;
            tx.commit()?;
            Ok(n == 1)
        })?)
    }

    fn lease_push(
        &mut self,
        recipient: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, DeferredError> {
        let (recipient, owner) = (recipient.to_string(), owner.to_string());
        let n = self.worker.run(move |c| {
            c.execute(
                "INSERT INTO deferred_push_lease (recipient, owner, until_ms) VALUES ($1, $2, $4)
                    ON CONFLICT (recipient) DO UPDATE SET owner = EXCLUDED.owner,
                        until_ms = EXCLUDED.until_ms
                    WHERE deferred_push_lease.owner = EXCLUDED.owner
                        OR deferred_push_lease.until_ms < $3",
                &[&recipient, &owner, &now_ms, &until_ms],
            )
        })?;
        Ok(n == 1)
    }

    fn release_push(&mut self, recipient: &str, owner: &str) -> Result<(), DeferredError> {
        let (recipient, owner) = (recipient.to_string(), owner.to_string());
        self.worker.run(move |c| {
            c.execute(
                "DELETE FROM deferred_push_lease WHERE recipient = $1 AND owner = $2",
                &[&recipient, &owner],
            )
        })?;
        Ok(())
    }

    fn count(&self, recipient: &str) -> Result<u64, DeferredError> {
        let recipient = recipient.to_string();
        let n: i64 = self.worker.run(move |c| {
            c.query_one(
                "SELECT COUNT(*) FROM deferred WHERE recipient = $1",
                &[&recipient],
            )?
            .try_get(0)
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

const HISTORY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history (
    id BIGSERIAL PRIMARY KEY,
    conversation TEXT NOT NULL,
    cpim_from TEXT NOT NULL,
    cpim_to TEXT NOT NULL,
    cpim_date_time TEXT NOT NULL,
    message_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BYTEA NOT NULL,
    arrived_unix_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_conversation ON history (conversation, id);
CREATE INDEX IF NOT EXISTS history_message_id ON history (message_id, id);";

/// Chat history in PostgreSQL, shared by every instance using `url`.
#[derive(Debug)]
pub struct PgHistory {
    worker: PgWorker,
}

impl PgHistory {
    /// Connects and creates the table when missing.
    pub fn connect(url: &str) -> Result<Self, HistoryError> {
        Ok(PgHistory {
            worker: PgWorker::connect(url, HISTORY_SCHEMA)?,
        })
    }

    fn select(
        &self,
        column: &'static str,
        value: String,
    ) -> Result<Vec<HistoryEntry>, HistoryError> {
        let rows = self.worker.run(move |c| {
            c.query(
                &format!(
                    "SELECT conversation, cpim_from, cpim_to, cpim_date_time, message_id,
                        content_type, body, arrived_unix_ms FROM history WHERE {column} = $1
                        ORDER BY id"
                ),
                &[&value],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    conversation: r.try_get(0).map_err(PgError::Query)?,
                    cpim_from: r.try_get(1).map_err(PgError::Query)?,
                    cpim_to: r.try_get(2).map_err(PgError::Query)?,
                    cpim_date_time: r.try_get(3).map_err(PgError::Query)?,
                    message_id: r.try_get(4).map_err(PgError::Query)?,
                    content_type: r.try_get(5).map_err(PgError::Query)?,
                    body: r.try_get(6).map_err(PgError::Query)?,
                    arrived_unix_ms: r.try_get(7).map_err(PgError::Query)?,
                })
            })
            .collect()
    }
}

impl HistoryStore for PgHistory {
    fn store(&mut self, e: &HistoryEntry) -> Result<(), HistoryError> {
        let e = e.clone();
        self.worker.run(move |c| {
            c.execute(
                "INSERT INTO history (conversation, cpim_from, cpim_to, cpim_date_time,
                    message_id, content_type, body, arrived_unix_ms)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &e.conversation,
                    &e.cpim_from,
                    &e.cpim_to,
                    &e.cpim_date_time,
                    &e.message_id,
                    &e.content_type,
                    &e.body,
                    &e.arrived_unix_ms,
                ],
            )
        })?;
        Ok(())
    }

    fn conversation(&self, a: &str, b: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
        self.select("conversation", conversation_key(a, b))
    }

    fn by_message_id(&self, message_id: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
        self.select("message_id", message_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(parse_url("postgres://isc@127.0.0.1:5432/isc").is_ok());
        assert!(parse_url("host=127.0.0.1 port=5432 user=isc").is_ok());
        let e = parse_url("postgres://isc@127.0.0.1:notaport/isc").unwrap_err();
        assert!(e.to_string().starts_with("store url:"), "{e}");
    }

    #[test]
    fn a_refused_connection_is_an_error_not_a_hang() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://isc@127.0.0.1:{port}/isc");
        let e = PgDeferred::connect(&url).unwrap_err();
        assert!(e.to_string().contains("cannot connect"), "{e}");
        let e = PgHistory::connect(&url).unwrap_err();
        assert!(e.to_string().contains("cannot connect"), "{e}");
    }

    /// A cluster, or `None` (with the reason printed) when PostgreSQL is
    /// not installed.
    #[cfg(unix)]
    fn cluster() -> Option<cluster::LocalCluster> {
        match cluster::LocalCluster::start() {
            Ok(c) => Some(c),
            Err(cluster::ClusterError::NotInstalled(why)) => {
                eprintln!("skipped: {why}");
                None
            }
            Err(e) => panic!("PostgreSQL cluster: {e}"),
        }
    }

    /// The SQLite stores' semantics tests, run against PostgreSQL; four
    /// instances storing one message at once store it once; a server that
    /// goes away mid-life is an error, not a panic.
    #[cfg(unix)]
    #[test]
    fn postgres_stores_have_the_sqlite_semantics() {
        let Some(pg) = cluster() else { return };
        let url = pg.create_database("semantics").unwrap();
        crate::server::deferred_message_store::tests::check_semantics(&mut || {
            Box::new(PgDeferred::connect(&url).unwrap())
        });
        crate::server::history_store::tests::check_semantics(&mut || {
            Box::new(PgHistory::connect(&url).unwrap())
        });
        // Another instance storing the same message concurrently stores it once.
        let other = pg.create_database("race").unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let url = other.clone();
                std::thread::spawn(move || {
                    let mut s = PgDeferred::connect(&url).unwrap();
                    s.store(&crate::server::deferred_message_store::tests::msg(9))
                        .unwrap()
                })
            })
            .collect();
        let outcomes: Vec<StoreOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, StoreOutcome::Stored(_)))
                .count(),
            1,
            "{outcomes:?}"
        );
        let ids: std::collections::BTreeSet<i64> = outcomes.iter().map(|o| o.id()).collect();
        assert_eq!(
            ids.len(),
            1,
            "every instance names the same row: {outcomes:?}"
        );
        // The server goes away: a clear error.
        let s = PgDeferred::connect(&url).unwrap();
        drop(pg);
        let e = s.count("sip:bob@isc.local").unwrap_err();
        assert!(e.to_string().starts_with("deferred store: "), "{e}");
    }
}
