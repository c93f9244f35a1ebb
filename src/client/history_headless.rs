//! The history words of headless mode ([`super::headless`]): the `history`
//! command and the JSON of [`HistoryEvent`]s. The vocabulary is documented
//! with the rest in `headless.rs`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Command;
use super::headless::expand_uri;
use super::history::{HistoryEvent, HistoryItem, HistoryQuery};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHistory {
    #[allow(dead_code)]
    cmd: String,
    with: String,
    #[serde(default)]
    refs: Vec<String>,
}

/// A reference as typed: a URI-looking one (`sip:`, `user@host`) is a
/// conversation and expanded; anything else is a Message-ID, kept as is.
fn reference(r: &str, domain: &str) -> String {
    let r = r.trim();
    if r.starts_with("sip:") || r.starts_with("sips:") || r.contains('@') {
        expand_uri(r, domain)
    } else {
        r.to_owned()
    }
}

/// The history command, if the line is one (`None`: not a history word).
pub fn parse_command(line: &str, domain: &str) -> Option<Result<Command, String>> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        if v.get("cmd")?.as_str()? != "history" {
            return None;
        }
        return Some(
            serde_json::from_value::<JsonHistory>(v)
                .map_err(|e| e.to_string())
                .map(|h| {
                    Command::History(HistoryQuery {
                        conversation: expand_uri(&h.with, domain),
                        references: h.refs.iter().map(|r| reference(r, domain)).collect(),
                    })
                }),
        );
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    if !word.eq_ignore_ascii_case("history") {
        return None;
    }
    let mut words = rest.split_whitespace();
    let Some(with) = words.next() else {
        return Some(Err("usage: history URI [REF...]".into()));
    };
    Some(Ok(Command::History(HistoryQuery {
        conversation: expand_uri(with, domain),
        references: words.map(|r| reference(r, domain)).collect(),
    })))
}

fn item_json(i: &HistoryItem) -> Value {
    json!({"from": i.from, "to": i.to, "at": i.at, "text": i.text})
}

/// The stdout line for a history event.
pub fn event_json(ev: &HistoryEvent) -> Value {
    match ev {
        HistoryEvent::Requested {
            id,
            conversation,
            references,
        } => {
            json!({"event": "history_requested", "history": id, "with": conversation, "refs": references})
        }
        HistoryEvent::Retrieved {
            id,
            conversation,
            items,
            complete,
        } => json!({
            "event": "history",
            "history": id,
            "with": conversation,
            "count": items.len(),
            "complete": complete,
            "messages": items.iter().map(item_json).collect::<Vec<_>>(),
        }),
        HistoryEvent::Failed {
            id,
            conversation,
            error,
        } => json!({
            "event": "history_failed",
            "history": id,
            "with": conversation,
            "status": error.status(),
            "reason": error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::history::HistoryError;

    #[test]
    fn commands_as_json_and_text() {
        let d = "isc.local";
        let q = |c: Option<Result<Command, String>>| match c {
            Some(Ok(Command::History(q))) => q,
            other => panic!("{other:?}"),
        };
        let a = q(parse_command(r#"{"cmd":"history","with":"bob"}"#, d));
        assert_eq!(a, HistoryQuery::conversation("sip:bob@isc.local"));
        let b = q(parse_command("history bob m-1 carol@isc.local", d));
        assert_eq!(b.conversation, "sip:bob@isc.local");
        assert_eq!(b.references, ["m-1", "sip:carol@isc.local"]);
        assert!(matches!(parse_command("history", d), Some(Err(e)) if e.contains("usage")));
        assert!(matches!(
            parse_command(r#"{"cmd":"history"}"#, d),
            Some(Err(e)) if e.contains("with")
        ));
        assert!(parse_command("chat bob", d).is_none());
    }

    #[test]
    fn events_name_what_the_user_reads() {
        let failed = event_json(&HistoryEvent::Failed {
            id: 2,
            conversation: "sip:bob@isc.local".into(),
            error: HistoryError::Refused {
                status: 404,
                reason: "Not Found".into(),
                warning: Some("no stored history for m-9".into()),
            },
        });
        assert_eq!(failed["event"], "history_failed");
        assert_eq!(failed["status"], 404);
        assert_eq!(
            failed["reason"],
            "no such history on the server: no stored history for m-9 (404 Not Found)"
        );
        let got = event_json(&HistoryEvent::Retrieved {
            id: 1,
            conversation: "sip:bob@isc.local".into(),
            items: vec![HistoryItem {
                from: "sip:bob@isc.local".into(),
                to: "sip:alice@isc.local".into(),
                at: Some("2026-11-23T15:00:00Z".into()),
                text: "hi".into(),
            }],
            complete: true,
        });
        assert_eq!(got["count"], 1);
        assert_eq!(got["messages"][0]["at"], "2026-11-23T15:00:00Z");
    }
}
