//! Deferred messages (seed 002 D.2; seed 003 12.4.x): what reached a user
//! with no registered device, kept until it is pushed on the user's next
//! registration or retrieved from `Deferred@domain`.
//!
//! [`DeferredStore`] has two implementations: [`SqliteDeferred`] keeps the
//! messages in the same SQLite file as the chat history (WAL), the
//! default for one machine; `pg_store::PgDeferred` (feature `postgres`)
//! keeps them in PostgreSQL, shared by several instances. A message is stored before the sender gets its
//! 202 / MSRP 200, inside one SQLite transaction, keyed by
//! (recipient, [`DeferredKey`]) with `INSERT OR IGNORE`: a crash at any
//! moment loses nothing acknowledged, and a resend is stored once.
//! `synchronous=NORMAL` in WAL mode survives the death of the process
//! (kill -9); a power loss may take the last commits (set FULL for that).
//!
//! The role that fills and drains the store is [`function::DeferredFunction`].

pub mod function;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeferredError {
    #[error("deferred database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("deferred directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("unknown deferred kind {0}")]
    UnknownKind(i64),
    /// The shared PostgreSQL store ([`super::pg_store::PgDeferred`]).
    #[cfg(feature = "postgres")]
    #[error("deferred store: {0}")]
    Postgres(#[from] super::pg_store::PgError),
}

/// How the message reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferredKind {
    /// A SIP MESSAGE (pager mode): pushed as `message/sip`.
    Pager,
    /// An MSRP SEND of a session the server accepted on the user's behalf:
    /// pushed as a multipart of `message/sip` (INVITE, 200) + `message/msrp`.
    Session,
}

impl DeferredKind {
    pub(crate) fn code(self) -> i64 {
        match self {
            Self::Pager => 1,
            Self::Session => 2,
        }
    }

    pub(crate) fn from_code(c: i64) -> Result<Self, DeferredError> {
        match c {
            1 => Ok(Self::Pager),
            2 => Ok(Self::Session),
            c => Err(DeferredError::UnknownKind(c)),
        }
    }
}

/// The identity of a message for duplicate suppression: a resend carries
/// the same one (RFC 3261 §8.1.1.4/§8.1.1.5: same Call-ID and CSeq; RFC
/// 4975 §7.1.1: same Message-ID within a session).
pub fn pager_key(call_id: &str, cseq: u32) -> String {
    format!("sip:{call_id} {cseq}")
}

/// The key of an MSRP message of a session (`Call-ID` scopes Message-ID).
pub fn session_key(call_id: &str, message_id: &str) -> String {
    format!("msrp:{call_id} {message_id}")
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeferred {
    /// The recipient's AOR, `sip:bob@domain`.
    pub recipient: String,
    /// The originator (authenticated) AOR.
    pub sender: String,
    /// [`pager_key`] or [`session_key`].
    pub key: String,
    pub kind: DeferredKind,
    pub call_id: String,
    /// The MSRP Message-ID (sessions) or `None` (pager).
    pub message_id: Option<String>,
    /// The SIP request as received (MESSAGE, or the session's INVITE).
    pub request: Vec<u8>,
    /// The session's 200 as the server sent it (empty for a pager message).
    pub response: Vec<u8>,
    /// The MSRP SEND as received (empty for a pager message).
    pub msrp: Vec<u8>,
    /// Arrival at the server, ms since the Unix epoch.
    pub arrived_unix_ms: i64,
}

/// A stored message: its row id (the public message id used in the
/// retrieval URI lists as `deferred:<id>`) and what was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredMessage {
    pub id: i64,
    pub message: NewDeferred,
}

impl DeferredMessage {
    /// The URI naming this message in a retrieval URI list.
    pub fn uri(&self) -> String {
        format!("deferred:{}", self.id)
    }

    /// Does a retrieval list entry name this message? Accepted forms:
    /// `deferred:<id>`, the bare id, the MSRP Message-ID or the Call-ID.
    pub fn is_named_by(&self, entry: &str) -> bool {
        let e = entry.trim();
        e == self.uri()
            || e == self.id.to_string()
            || self.message.message_id.as_deref() == Some(e)
            || (self.message.kind == DeferredKind::Pager && e == self.message.call_id)
    }
}

/// Whether [`DeferredStore::store`] wrote a new row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored(i64),
    /// The same key was stored before (a resend): not stored again.
    Duplicate(i64),
}

impl StoreOutcome {
    pub fn id(self) -> i64 {
        match self {
            Self::Stored(i) | Self::Duplicate(i) => i,
        }
    }
}

/// Where deferred messages go.
pub trait DeferredStore: Send {
    /// Stores `m` once per (recipient, key); durable when this returns Ok.
    fn store(&mut self, m: &NewDeferred) -> Result<StoreOutcome, DeferredError>;
    /// The recipient's messages, oldest first.
    fn pending(&self, recipient: &str) -> Result<Vec<DeferredMessage>, DeferredError>;
    /// Removes one message (after its delivery was confirmed); false if gone.
    fn remove(&mut self, id: i64) -> Result<bool, DeferredError>;
    /// How many messages wait for `recipient`.
    fn count(&self, recipient: &str) -> Result<u64, DeferredError>;
    /// Takes (or renews) the right to push `recipient`'s messages for
    /// `owner` (a server instance) until `until_ms`; false while another
    /// owner's lease runs — several instances sharing the store then push
    /// a user's messages once, not once each (README "Scale-out").
    fn lease_push(
        &mut self,
        recipient: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, DeferredError>;
    /// Gives `owner`'s lease on `recipient` back (no-op if not its own).
    fn release_push(&mut self, recipient: &str, owner: &str) -> Result<(), DeferredError>;
}

/// SQLite deferred store (WAL, the history database file).
pub struct SqliteDeferred {
    db: Connection,
}

impl std::fmt::Debug for SqliteDeferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDeferred").finish_non_exhaustive()
    }
}

impl SqliteDeferred {
    /// Opens (creating) the table in `dir/history.sqlite3`, WAL mode.
    pub fn open_in(dir: &Path) -> Result<Self, DeferredError> {
        std::fs::create_dir_all(dir)?;
        let db = Connection::open(dir.join(super::history_store::FILE_NAME))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        Self::init(db)
    }

    /// A store that lives as long as the value.
    pub fn in_memory() -> Result<Self, DeferredError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Self, DeferredError> {
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS deferred (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                recipient TEXT NOT NULL,
                sender TEXT NOT NULL,
                msg_key TEXT NOT NULL,
                kind INTEGER NOT NULL,
                call_id TEXT NOT NULL,
                message_id TEXT,
                request BLOB NOT NULL,
                response BLOB NOT NULL,
                msrp BLOB NOT NULL,
                arrived_unix_ms INTEGER NOT NULL,
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
                until_ms INTEGER NOT NULL
            );",
        )?;
        Ok(SqliteDeferred { db })
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, NewDeferred, i64)> {
        Ok((
            r.get(0)?,
            NewDeferred {
                recipient: r.get(1)?,
                sender: r.get(2)?,
                key: r.get(3)?,
                kind: DeferredKind::Pager,
                call_id: r.get(5)?,
                message_id: r.get(6)?,
                request: r.get(7)?,
                response: r.get(8)?,
                msrp: r.get(9)?,
                arrived_unix_ms: r.get(10)?,
            },
            r.get(4)?,
        ))
    }
}

impl DeferredStore for SqliteDeferred {
    fn store(&mut self, m: &NewDeferred) -> Result<StoreOutcome, DeferredError> {
        let tx = self.db.transaction()?;
        // A resend of a message already pushed and removed is not stored
        // again either: delivered keys are remembered.
        let delivered: bool = tx
            .query_row(
                "SELECT 1 FROM deferred_delivered WHERE recipient = ?1 AND msg_key = ?2",
                params![m.recipient, m.key],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if delivered {
            tx.commit()?;
            return Ok(StoreOutcome::Duplicate(0));
        }
        let n = tx.execute(
            "INSERT OR IGNORE INTO deferred (recipient, sender, msg_key, kind, call_id,
                message_id, request, response, msrp, arrived_unix_ms)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                m.recipient,
                m.sender,
                m.key,
                m.kind.code(),
                m.call_id,
                m.message_id,
                m.request,
                m.response,
                m.msrp,
                m.arrived_unix_ms
            ],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM deferred WHERE recipient = ?1 AND msg_key = ?2",
            params![m.recipient, m.key],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(if n == 1 {
            StoreOutcome::Stored(id)
        } else {
            StoreOutcome::Duplicate(id)
        })
    }

    fn pending(&self, recipient: &str) -> Result<Vec<DeferredMessage>, DeferredError> {
        let mut stmt = self.db.prepare(
            "SELECT id, recipient, sender, msg_key, kind, call_id, message_id, request,
                response, msrp, arrived_unix_ms FROM deferred WHERE recipient = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![recipient], Self::row)?;
        let mut out = Vec::new();
        for r in rows {
            let (id, mut message, kind) = r?;
            message.kind = DeferredKind::from_code(kind)?;
            out.push(DeferredMessage { id, message });
        }
        Ok(out)
    }

    fn remove(&mut self, id: i64) -> Result<bool, DeferredError> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO deferred_delivered (recipient, msg_key)
                SELECT recipient, msg_key FROM deferred WHERE id = ?1",
            params![id],
        )?;
        let n = tx.execute("DELETE FROM deferred WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn lease_push(
        &mut self,
        recipient: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, DeferredError> {
        let n = self.db.execute(
            "INSERT INTO deferred_push_lease (recipient, owner, until_ms) VALUES (?1, ?2, ?4)
                ON CONFLICT (recipient) DO UPDATE SET owner = excluded.owner,
                    until_ms = excluded.until_ms
                WHERE deferred_push_lease.owner = excluded.owner
                    OR deferred_push_lease.until_ms < ?3",
            params![recipient, owner, now_ms, until_ms],
        )?;
        Ok(n == 1)
    }

    fn release_push(&mut self, recipient: &str, owner: &str) -> Result<(), DeferredError> {
        self.db.execute(
            "DELETE FROM deferred_push_lease WHERE recipient = ?1 AND owner = ?2",
            params![recipient, owner],
        )?;
        Ok(())
    }

    fn count(&self, recipient: &str) -> Result<u64, DeferredError> {
        let n: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM deferred WHERE recipient = ?1",
            params![recipient],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn msg(n: u32) -> NewDeferred {
        NewDeferred {
            recipient: "sip:bob@isc.local".into(),
            sender: "sip:carol@isc.local".into(),
            key: pager_key(&format!("c{n}"), 1),
            kind: DeferredKind::Pager,
            call_id: format!("c{n}"),
            message_id: None,
            request: format!("MESSAGE {n}").into_bytes(),
            response: Vec::new(),
            msrp: Vec::new(),
            arrived_unix_ms: i64::from(n),
        }
    }

    /// The store semantics every backend shares; `open` opens the same
    /// persistent store again (a restart, or another instance).
    pub(crate) fn check_semantics(open: &mut dyn FnMut() -> Box<dyn DeferredStore>) {
        {
            let mut s = open();
            assert!(matches!(s.store(&msg(1)).unwrap(), StoreOutcome::Stored(_)));
            assert!(matches!(s.store(&msg(2)).unwrap(), StoreOutcome::Stored(_)));
            assert!(matches!(
                s.store(&msg(1)).unwrap(),
                StoreOutcome::Duplicate(_)
            ));
            let mut session = msg(3);
            session.kind = DeferredKind::Session;
            session.key = session_key("c3", "mid3");
            session.message_id = Some("mid3".into());
            session.response = b"SIP/2.0 200 OK\r\n\r\n".to_vec();
            session.msrp = vec![0, 159, 255, b'\r', b'\n'];
            assert!(matches!(
                s.store(&session).unwrap(),
                StoreOutcome::Stored(_)
            ));
        }
        let mut s = open();
        let got = s.pending("sip:bob@isc.local").unwrap();
        let mut session = msg(3);
        session.kind = DeferredKind::Session;
        session.key = session_key("c3", "mid3");
        session.message_id = Some("mid3".into());
        session.response = b"SIP/2.0 200 OK\r\n\r\n".to_vec();
        session.msrp = vec![0, 159, 255, b'\r', b'\n'];
        assert_eq!(
            got.iter().map(|m| m.message.clone()).collect::<Vec<_>>(),
            vec![msg(1), msg(2), session]
        );
        assert_eq!(s.count("sip:bob@isc.local").unwrap(), 3);
        assert_eq!(s.count("sip:alice@isc.local").unwrap(), 0);
        // Removed only once; a resend of a delivered message is not stored.
        let id = got[0].id;
        assert!(s.remove(id).unwrap());
        assert!(!s.remove(id).unwrap());
        assert_eq!(s.store(&msg(1)).unwrap(), StoreOutcome::Duplicate(0));
        assert_eq!(s.count("sip:bob@isc.local").unwrap(), 2);
        // The same key for another recipient is another message.
        let mut to_alice = msg(1);
        to_alice.recipient = "sip:alice@isc.local".into();
        assert!(matches!(
            s.store(&to_alice).unwrap(),
            StoreOutcome::Stored(_)
        ));
        assert_eq!(open().count("sip:alice@isc.local").unwrap(), 1);
        // Push leases: one owner at a time, renewable, taken over once run out.
        let (mut a, mut b) = (open(), open());
        let bob = "sip:bob@isc.local";
        assert!(a.lease_push(bob, "i1", 1_000, 61_000).unwrap());
        assert!(
            !b.lease_push(bob, "i2", 2_000, 62_000).unwrap(),
            "i1 holds it"
        );
        assert!(a.lease_push(bob, "i1", 3_000, 63_000).unwrap(), "renewed");
        assert!(
            b.lease_push("sip:alice@isc.local", "i2", 3_000, 63_000)
                .unwrap()
        );
        assert!(
            !b.lease_push(bob, "i2", 62_000, 122_000).unwrap(),
            "renewal counts"
        );
        b.release_push(bob, "i2").unwrap();
        assert!(
            !b.lease_push(bob, "i2", 4_000, 64_000).unwrap(),
            "not i2's to release"
        );
        a.release_push(bob, "i1").unwrap();
        assert!(b.lease_push(bob, "i2", 5_000, 65_000).unwrap(), "released");
        assert!(
            a.lease_push(bob, "i1", 65_001, 125_001).unwrap(),
            "expired: taken over"
        );
    }

    #[test]
    fn sqlite_file_store_semantics() {
        let dir = tempfile::tempdir().unwrap();
        check_semantics(&mut || Box::new(SqliteDeferred::open_in(dir.path()).unwrap()));
    }

    #[test]
    fn removed_messages_are_not_stored_again_on_resend() {
        let mut s = SqliteDeferred::in_memory().unwrap();
        let id = s.store(&msg(1)).unwrap().id();
        assert!(s.remove(id).unwrap());
        assert!(!s.remove(id).unwrap());
        assert_eq!(s.store(&msg(1)).unwrap(), StoreOutcome::Duplicate(0));
        assert_eq!(s.count("sip:bob@isc.local").unwrap(), 0);
    }

    #[test]
    fn shares_the_history_file() {
        let dir = tempfile::tempdir().unwrap();
        let _h = super::super::history_store::SqliteHistory::open_in(dir.path()).unwrap();
        let mut s = SqliteDeferred::open_in(dir.path()).unwrap();
        s.store(&msg(3)).unwrap();
        assert!(
            dir.path()
                .join(super::super::history_store::FILE_NAME)
                .exists()
        );
    }

    #[test]
    fn list_entries_name_messages() {
        let mut m = DeferredMessage {
            id: 7,
            message: msg(7),
        };
        assert!(m.is_named_by("deferred:7"));
        assert!(m.is_named_by("7"));
        assert!(m.is_named_by("c7"));
        assert!(!m.is_named_by("deferred:8"));
        m.message.kind = DeferredKind::Session;
        m.message.message_id = Some("mid".into());
        assert!(m.is_named_by("mid"));
    }
}
