//! MSRP (RFC 4975), sans-IO: URIs and paths, messages with typed headers, a
//! streaming parser over a TCP byte stream, chunking and reassembly, and a
//! session state machine driven by `handle_input` / `poll_*`.
//!
//! A driver owns one [`MsrpSession`] per session: it feeds bytes read from
//! the TCP connection with `handle_input(now, MsrpInput::Bytes(..))`, writes
//! whatever `poll_transmit()` returns, reads `poll_event()`, calls
//! `handle_timeout(now)` at `poll_timeout()`, and closes the connection when a
//! [`MsrpEvent::StreamError`] is fatal.

pub mod chunking;
pub mod message;
pub mod parser;
pub mod session;
pub mod uri;

pub use chunking::{ChunkError, Chunker, Reassembler, ReassemblyOutcome};
pub use message::{
    ByteRange, ContinuationFlag, FailureReport, MessageError, MsrpFrame, MsrpHeader, MsrpMessage,
    MsrpMethod, StartLine, Status, reason_phrase,
};
pub use parser::{MsrpParseError, MsrpParser, ParserConfig, parse_message};
pub use session::{MsrpEvent, MsrpInput, MsrpSession, SessionConfig};
pub use uri::{MsrpPath, MsrpUri, UriError};

/// Source of transaction ids and message ids, injected so that tests replay
/// exactly. Ids must be RFC 4975 `ident`s (alphanumeric first, then
/// alphanumerics or `.-+%=`).
pub trait IdGenerator {
    fn next_id(&mut self) -> String;
}

impl<F: FnMut() -> String> IdGenerator for F {
    fn next_id(&mut self) -> String {
        self()
    }
}

/// Deterministic ids `<prefix><n>` with `n` from 1 written with at least four
/// digits (`a0001`), so every id meets RFC 4975's 4-character minimum; for
/// tests and demos.
#[derive(Debug, Clone)]
pub struct SequentialIds {
    prefix: String,
    n: u64,
}

impl SequentialIds {
    pub fn new(prefix: impl Into<String>) -> Self {
        SequentialIds {
            prefix: prefix.into(),
            n: 0,
        }
    }
}

impl IdGenerator for SequentialIds {
    fn next_id(&mut self) -> String {
        self.n += 1;
        format!("{}{:04}", self.prefix, self.n)
    }
}
