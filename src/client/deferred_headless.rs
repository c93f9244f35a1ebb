//! The deferred-message words of headless mode ([`super::headless`]):
//! `deferred` / `deferred_watch` commands and the JSON of
//! [`DeferredEvent`]s. Documented with the rest in `headless.rs`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Command;
use super::deferred::{DeferredCommand, DeferredEvent, LateKind};

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum JsonDeferred {
    Deferred {
        #[serde(default)]
        ids: Vec<String>,
        service: Option<String>,
    },
    DeferredWatch,
}

const JSON_WORDS: &[&str] = &["deferred", "deferred_watch"];

/// A deferred command from a line, `None` when the line is not one.
pub fn parse_command(line: &str) -> Option<Result<Command, String>> {
    let line = line.trim();
    let cmd = if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        if !JSON_WORDS.contains(&v.get("cmd")?.as_str()?) {
            return None;
        }
        match serde_json::from_value::<JsonDeferred>(v) {
            Ok(JsonDeferred::Deferred { ids, service }) => {
                DeferredCommand::Retrieve { ids, service }
            }
            Ok(JsonDeferred::DeferredWatch) => DeferredCommand::WatchWaiting,
            Err(e) => return Some(Err(e.to_string())),
        }
    } else {
        let mut words = line.split_whitespace();
        match words.next()?.to_ascii_lowercase().as_str() {
            // `deferred [ID...]`: none = all (seed 003 12.1.1 step 2)
            "deferred" => DeferredCommand::Retrieve {
                ids: words.map(str::to_string).collect(),
                service: None,
            },
            "deferred_watch" => DeferredCommand::WatchWaiting,
            _ => return None,
        }
    };
    Some(Ok(Command::Deferred(cmd)))
}

/// The stdout line for a deferred event.
pub fn event_json(ev: &DeferredEvent) -> Value {
    match ev {
        DeferredEvent::Started { session, mode } => {
            json!({"event": "deferred_started", "session": session, "mode": mode.as_str()})
        }
        DeferredEvent::Message {
            session,
            message: m,
        } => json!({
            "event": "deferred_message",
            "session": session,
            "from": m.from,
            "to": m.to,
            "text": m.text(),
            "content_type": m.content_type,
            "date": m.date,
            "sent_unix": m.sent_unix,
            "call_id": m.call_id,
            "message_id": m.message_id,
            "kind": match m.kind { LateKind::Pager => "pager", LateKind::Session => "session" },
            "late": true,
        }),
        DeferredEvent::Duplicate { session, key } => {
            json!({"event": "deferred_duplicate", "session": session, "key": key})
        }
        DeferredEvent::Unreadable { session, reason } => {
            json!({"event": "deferred_unreadable", "session": session, "reason": reason})
        }
        DeferredEvent::Ended {
            session,
            mode,
            received,
        } => json!({
            "event": "deferred_ended", "session": session, "mode": mode.as_str(), "received": received,
        }),
        DeferredEvent::RetrievalFailed {
            status,
            reason,
            warning,
        } => json!({
            "event": "deferred_failed",
            "status": status,
            "reason": reason,
            "warning": warning,
            "text": failure_text(*status, reason, warning.as_deref()),
        }),
        DeferredEvent::Waiting { count, account } => {
            json!({"event": "deferred_waiting", "count": count, "account": account, "text": waiting_text(*count)})
        }
        DeferredEvent::WaitingUnavailable { reason } => {
            json!({"event": "deferred_waiting_unavailable", "reason": reason})
        }
    }
}

/// "3 messages waiting" (seed 003 12.4.2.6, what the user is told).
pub fn waiting_text(count: u32) -> String {
    match count {
        0 => "no messages waiting".into(),
        1 => "1 message waiting".into(),
        n => format!("{n} messages waiting"),
    }
}

/// A refused retrieval, said plainly (seed 003 12.4.1 steps 2–5: 403 for
/// authorisation, policy and a non-recvonly offer, 404 for a store that is
/// not ours; 488 for an offer the store cannot use).
pub fn failure_text(status: Option<u16>, reason: &str, warning: Option<&str>) -> String {
    let what = match status {
        Some(403) => "deferred messages: retrieval refused (403 Forbidden)".to_string(),
        Some(404) => "deferred messages: no such message store (404 Not Found)".to_string(),
        Some(488) => "deferred messages: the store cannot use our media offer (488)".to_string(),
        Some(s) => format!("deferred messages: retrieval failed ({s} {reason})"),
        None => format!("deferred messages: {reason}"),
    };
    match warning {
        Some(w) if !w.is_empty() => format!("{what}: {w}"),
        _ => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse_command("deferred").unwrap().unwrap(),
            Command::Deferred(DeferredCommand::Retrieve {
                ids: vec![],
                service: None
            })
        );
        assert_eq!(
            parse_command(r#"{"cmd":"deferred","ids":["a","deferred:3"]}"#)
                .unwrap()
                .unwrap(),
            Command::Deferred(DeferredCommand::Retrieve {
                ids: vec!["a".into(), "deferred:3".into()],
                service: None
            })
        );
        assert_eq!(
            parse_command(r#"{"cmd":"deferred_watch"}"#)
                .unwrap()
                .unwrap(),
            Command::Deferred(DeferredCommand::WatchWaiting)
        );
        assert!(
            parse_command(r#"{"cmd":"deferred","idz":[]}"#)
                .unwrap()
                .is_err()
        );
        assert!(parse_command("send bob hi").is_none());
    }

    #[test]
    fn failures_read_plainly() {
        assert_eq!(
            failure_text(
                Some(403),
                "Forbidden",
                Some("deferred messages are pushed to this user")
            ),
            "deferred messages: retrieval refused (403 Forbidden): deferred messages are pushed to this user"
        );
        assert!(failure_text(Some(404), "Not Found", None).contains("no such message store"));
        assert!(failure_text(Some(488), "Not Acceptable Here", None).contains("488"));
        assert_eq!(waiting_text(2), "2 messages waiting");
    }
}
