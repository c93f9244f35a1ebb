//! Shared playback control: the `isc-playback` Info Package (RFC 6086) of
//! the content-viewing dialog.
//!
//! * A viewer that wants to control the shared timeline sends INFO in its CV
//!   dialog with `Info-Package: isc-playback` and a body of type
//!   [`CONTENT_TYPE`]. Both sides announce `Recv-Info: isc-playback` (the
//!   viewer in its INVITE or 200, the server in its INVITE or 200).
//! * The server applies it to the session's timeline, answers 200 and sends
//!   an INFO of the same package to every other viewer, with `by` naming who
//!   did it and `position` the resulting position. An INFO of another package
//!   gets 469 Bad Info Package (RFC 6086 §4.2.2.1).
//!
//! ## Body `application/vnd.isc.playback` (project-defined)
//!
//! UTF-8 text, one `key=value` per line (CRLF or LF), keys in any order,
//! unknown keys ignored:
//!
//! | key | value |
//! |---|---|
//! | `action` | `pause`, `resume` or `seek` (required) |
//! | `position` | milliseconds: the target of `seek` (required there); in the server's INFO the shared position after the action |
//! | `by` | in the server's INFO: the URI of the user who acted |
//!
//! ```text
//! action=seek
//! position=5000
//! ```

use std::fmt;
use std::time::Duration;

/// Info Package name (RFC 6086 §10: Info-Package / Recv-Info value).
pub const INFO_PACKAGE: &str = "isc-playback";
/// Content-Type of the INFO body.
pub const CONTENT_TYPE: &str = "application/vnd.isc.playback";
/// Largest body accepted.
pub const MAX_BODY: usize = 1024;

/// What is wrong with a playback body.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaybackError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("body of {0} bytes is too large")]
    TooLarge(usize),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("bad value {value:?} for {key}")]
    BadValue { key: &'static str, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackAction {
    Pause,
    Resume,
    Seek,
}

impl PlaybackAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaybackAction::Pause => "pause",
            PlaybackAction::Resume => "resume",
            PlaybackAction::Seek => "seek",
        }
    }
}

/// One playback control (request or notification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackControl {
    pub action: PlaybackAction,
    /// Milliseconds.
    pub position_ms: Option<u64>,
    pub by: Option<String>,
}

impl PlaybackControl {
    pub fn new(action: PlaybackAction) -> Self {
        PlaybackControl {
            action,
            position_ms: None,
            by: None,
        }
    }

    pub fn seek(position: Duration) -> Self {
        PlaybackControl {
            action: PlaybackAction::Seek,
            position_ms: Some(u64::try_from(position.as_millis()).unwrap_or(u64::MAX)),
            by: None,
        }
    }

    pub fn position(&self) -> Option<Duration> {
        self.position_ms.map(Duration::from_millis)
    }

    /// Never panics.
    pub fn parse(bytes: &[u8]) -> Result<Self, PlaybackError> {
        if bytes.len() > MAX_BODY {
            return Err(PlaybackError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| PlaybackError::NotUtf8)?;
        let mut action = None;
        let mut position_ms = None;
        let mut by = None;
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "action" => {
                    action = Some(match v.to_ascii_lowercase().as_str() {
                        "pause" => PlaybackAction::Pause,
                        "resume" | "play" => PlaybackAction::Resume,
                        "seek" => PlaybackAction::Seek,
                        _ => {
                            return Err(PlaybackError::BadValue {
                                key: "action",
                                value: v.into(),
                            });
                        }
                    })
                }
                "position" => {
                    position_ms = Some(v.parse().map_err(|_| PlaybackError::BadValue {
                        key: "position",
                        value: v.into(),
                    })?)
                }
                "by" => by = Some(v.to_owned()),
                _ => {}
            }
        }
        let action = action.ok_or(PlaybackError::Missing("action"))?;
        if action == PlaybackAction::Seek && position_ms.is_none() {
            return Err(PlaybackError::Missing("position"));
        }
        Ok(PlaybackControl {
            action,
            position_ms,
            by,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for PlaybackControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "action={}\r\n", self.action.as_str())?;
        if let Some(p) = self.position_ms {
            write!(f, "position={p}\r\n")?;
        }
        if let Some(b) = &self.by {
            write!(f, "by={b}\r\n")?;
        }
        Ok(())
    }
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<PlaybackControl, PlaybackError> {
    PlaybackControl::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_and_writes() {
        let c = PlaybackControl::parse(b"action=seek\nposition=5000\nx=y\n").unwrap();
        assert_eq!(c, PlaybackControl::seek(Duration::from_secs(5)));
        assert_eq!(c.to_string(), "action=seek\r\nposition=5000\r\n");
        assert_eq!(
            PlaybackControl::parse(b"action=seek"),
            Err(PlaybackError::Missing("position"))
        );
        assert!(PlaybackControl::parse(b"action=rewind").is_err());
    }

    fn arb() -> impl Strategy<Value = PlaybackControl> {
        (
            prop_oneof![
                Just(PlaybackAction::Pause),
                Just(PlaybackAction::Resume),
                Just(PlaybackAction::Seek)
            ],
            any::<u64>(),
            proptest::option::of("sip:[a-z]{1,8}@[a-z.]{1,10}"),
        )
            .prop_map(|(action, p, by)| PlaybackControl {
                action,
                position_ms: Some(p),
                by,
            })
    }

    proptest! {
        #[test]
        fn round_trip(c in arb()) {
            prop_assert_eq!(PlaybackControl::parse(&c.to_bytes()).unwrap(), c);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&bytes);
        }
    }
}
