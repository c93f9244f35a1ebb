//! Conversation history (seed 001 8.3.2.1.1 "Upon receiving an MSRP SEND"
//! step 2, seed 003 13.x): every chat message the CPM function accepts.
//!
//! [`HistoryStore`] has two implementations: [`SqliteHistory`] keeps it in
//! SQLite (WAL) in a file under the server's data directory, or in memory;
//! `pg_store::PgHistory` (feature `postgres`) in PostgreSQL, shared by
//! several instances.

use std::path::Path;

use rusqlite::{Connection, params};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("history database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("history directory: {0}")]
    Io(#[from] std::io::Error),
    /// The shared PostgreSQL store ([`super::pg_store::PgHistory`]).
    #[cfg(feature = "postgres")]
    #[error("history store: {0}")]
    Postgres(#[from] super::pg_store::PgError),
}

/// One stored chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The two AORs of the conversation, sorted and joined by a space
    /// ([`conversation_key`]).
    pub conversation: String,
    /// CPIM `From` / `To` / `DateTime` as written (empty when absent).
    pub cpim_from: String,
    pub cpim_to: String,
    pub cpim_date_time: String,
    /// MSRP Message-ID.
    pub message_id: String,
    /// The MSRP Content-Type (usually `message/cpim`).
    pub content_type: String,
    pub body: Vec<u8>,
    /// Arrival at the server, milliseconds since the Unix epoch.
    pub arrived_unix_ms: i64,
}

impl HistoryEntry {
    /// The entry for one chat message as it crossed an MSRP relay: the CPIM
    /// From / To / DateTime are read from `body` when it is CPIM (RFC 3862),
    /// else left empty.
    pub fn from_msrp(
        conversation: String,
        message_id: String,
        content_type: String,
        body: Vec<u8>,
        arrived_unix_ms: i64,
    ) -> Self {
        let cpim = crate::proto::bodies::cpim::CpimMessage::parse(&body).ok();
        let header = |name: &str| {
            cpim.as_ref()
                .and_then(|m| m.header(name))
                .unwrap_or_default()
                .to_string()
        };
        HistoryEntry {
            conversation,
            cpim_from: header("From"),
            cpim_to: header("To"),
            cpim_date_time: header("DateTime"),
            message_id,
            content_type,
            body,
            arrived_unix_ms,
        }
    }
}

/// The conversation key of two users: their AORs sorted.
pub fn conversation_key(a: &str, b: &str) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    format!("{x} {y}")
}

/// Where chat history goes.
pub trait HistoryStore: Send {
    fn store(&mut self, entry: &HistoryEntry) -> Result<(), HistoryError>;
    /// Every message of the conversation of `a` and `b`, in arrival order.
    fn conversation(&self, a: &str, b: &str) -> Result<Vec<HistoryEntry>, HistoryError>;
    /// The stored messages with this MSRP Message-ID (seed 003 13.2.1.1:
    /// a history reference), in arrival order.
    fn by_message_id(&self, message_id: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
        let _ = message_id;
        Ok(Vec::new())
    }
}

/// SQLite history.
pub struct SqliteHistory {
    db: Connection,
}

impl std::fmt::Debug for SqliteHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteHistory").finish_non_exhaustive()
    }
}

/// The file name under the data directory.
pub const FILE_NAME: &str = "history.sqlite3";

impl SqliteHistory {
    /// Opens (creating) `dir/history.sqlite3` in WAL mode.
    pub fn open_in(dir: &Path) -> Result<Self, HistoryError> {
        std::fs::create_dir_all(dir)?;
        let db = Connection::open(dir.join(FILE_NAME))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        Self::init(db)
    }

    /// A store that lives as long as the value.
    pub fn in_memory() -> Result<Self, HistoryError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Self, HistoryError> {
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS history (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                conversation TEXT NOT NULL,
                cpim_from TEXT NOT NULL,
                cpim_to TEXT NOT NULL,
                cpim_date_time TEXT NOT NULL,
                message_id TEXT NOT NULL,
                content_type TEXT NOT NULL,
                body BLOB NOT NULL,
                arrived_unix_ms INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS history_conversation ON history (conversation, id);",
        )?;
        Ok(SqliteHistory { db })
    }
}

impl HistoryStore for SqliteHistory {
    fn store(&mut self, e: &HistoryEntry) -> Result<(), HistoryError> {
        self.db.execute(
            "INSERT INTO history (conversation, cpim_from, cpim_to, cpim_date_time, message_id,
                content_type, body, arrived_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                e.conversation,
                e.cpim_from,
                e.cpim_to,
                e.cpim_date_time,
                e.message_id,
                e.content_type,
                e.body,
                e.arrived_unix_ms
            ],
        )?;
        Ok(())
    }

    fn conversation(&self, a: &str, b: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
        let mut stmt = self.db.prepare(
            "SELECT conversation, cpim_from, cpim_to, cpim_date_time, message_id, content_type,
                body, arrived_unix_ms FROM history WHERE conversation = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![conversation_key(a, b)], |r| {
            Ok(HistoryEntry {
                conversation: r.get(0)?,
                cpim_from: r.get(1)?,
                cpim_to: r.get(2)?,
                cpim_date_time: r.get(3)?,
                message_id: r.get(4)?,
                content_type: r.get(5)?,
                body: r.get(6)?,
                arrived_unix_ms: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn by_message_id(&self, message_id: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
        let mut stmt = self.db.prepare(
            "SELECT conversation, cpim_from, cpim_to, cpim_date_time, message_id, content_type,
                body, arrived_unix_ms FROM history WHERE message_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![message_id], |r| {
            Ok(HistoryEntry {
                conversation: r.get(0)?,
                cpim_from: r.get(1)?,
                cpim_to: r.get(2)?,
                cpim_date_time: r.get(3)?,
                message_id: r.get(4)?,
                content_type: r.get(5)?,
                body: r.get(6)?,
                arrived_unix_ms: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(n: u8) -> HistoryEntry {
        HistoryEntry {
            conversation: conversation_key("sip:bob@isc.local", "sip:alice@isc.local"),
            cpim_from: "<sip:alice@isc.local>".into(),
            cpim_to: "<sip:bob@isc.local>".into(),
            cpim_date_time: "2026-11-23T15:00:00Z".into(),
            message_id: format!("m{n}"),
            content_type: "message/cpim".into(),
            body: vec![n; 3],
            arrived_unix_ms: i64::from(n),
        }
    }

    /// The semantics every backend shares; `open` opens the same
    /// persistent store again (a restart, or another instance).
    pub(crate) fn check_semantics(open: &mut dyn FnMut() -> Box<dyn HistoryStore>) {
        {
            let mut s = open();
            s.store(&entry(1)).unwrap();
            s.store(&entry(2)).unwrap();
        }
        let s = open();
        let got = s
            .conversation("sip:alice@isc.local", "sip:bob@isc.local")
            .unwrap();
        assert_eq!(got, vec![entry(1), entry(2)]);
        assert_eq!(
            s.conversation("sip:bob@isc.local", "sip:alice@isc.local")
                .unwrap(),
            got,
            "either order names the conversation"
        );
        assert_eq!(s.by_message_id("m2").unwrap(), vec![entry(2)]);
        assert!(s.by_message_id("nope").unwrap().is_empty());
        assert!(
            s.conversation("sip:alice@isc.local", "x")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn key_is_symmetric() {
        assert_eq!(conversation_key("b", "a"), conversation_key("a", "b"));
    }

    #[test]
    fn sqlite_file_semantics() {
        let dir = tempfile::tempdir().unwrap();
        check_semantics(&mut || Box::new(SqliteHistory::open_in(dir.path()).unwrap()));
    }

    #[test]
    fn in_memory_works() {
        let mut s = SqliteHistory::in_memory().unwrap();
        s.store(&entry(3)).unwrap();
        assert_eq!(
            s.conversation("sip:bob@isc.local", "sip:alice@isc.local")
                .unwrap()
                .len(),
            1
        );
    }
}
