//! The chat words of headless mode ([`super::headless`]): commands read
//! from a line (JSON or text) and the JSON of [`ChatEvent`]s. The
//! vocabulary is documented with the rest in `headless.rs`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Command;
use super::chat::{ChatEvent, ChatId, EndReason};
use super::chats::ChatCommand;
use super::group::RosterStatus;
use super::headless::expand_uri;
use super::large_message::{Disposition, LargeMessage};

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum JsonChat {
    Chat {
        to: String,
        convergence_id: Option<String>,
    },
    ChatSend {
        chat: ChatId,
        text: String,
    },
    ChatTyping {
        chat: ChatId,
    },
    ChatIdle {
        chat: ChatId,
    },
    Accept {
        chat: ChatId,
    },
    Decline {
        chat: ChatId,
    },
    Bye {
        chat: ChatId,
    },
    GroupCreate {
        invitees: Vec<String>,
    },
    GroupJoin {
        uri: String,
    },
    GroupExtend {
        chat: ChatId,
        add: Vec<String>,
    },
    GroupAdd {
        chat: ChatId,
        users: Vec<String>,
    },
    GroupRejoin {
        chat: ChatId,
    },
    GroupPrivate {
        chat: ChatId,
        to: String,
        text: String,
    },
    SendFile {
        to: Recipients,
        path: std::path::PathBuf,
        disposition: Option<String>,
        description: Option<String>,
    },
    SendLarge {
        to: Recipients,
        text: String,
    },
}

/// One recipient or several (then through the conference factory).
#[derive(Deserialize)]
#[serde(untagged)]
enum Recipients {
    One(String),
    Many(Vec<String>),
}

impl Recipients {
    fn expand(self, domain: &str) -> Vec<String> {
        match self {
            Recipients::One(u) => vec![expand_uri(&u, domain)],
            Recipients::Many(v) => v.iter().map(|u| expand_uri(u, domain)).collect(),
        }
    }
}

const JSON_WORDS: &[&str] = &[
    "chat",
    "chat_send",
    "chat_typing",
    "chat_idle",
    "accept",
    "decline",
    "bye",
    "group_create",
    "group_join",
    "group_extend",
    "group_add",
    "group_rejoin",
    "group_private",
    "send_file",
    "send_large",
];

fn chat_id(s: &str, usage: &str) -> Result<ChatId, String> {
    s.trim().parse().map_err(|_| format!("usage: {usage}"))
}

/// A chat command, if the line is one (`None`: not a chat word).
pub fn parse_command(line: &str, domain: &str) -> Option<Result<Command, String>> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        let word = v.get("cmd")?.as_str()?;
        if !JSON_WORDS.contains(&word) {
            return None;
        }
        let c = match serde_json::from_value::<JsonChat>(v) {
            Ok(c) => c,
            Err(e) => return Some(Err(e.to_string())),
        };
        let cmd = match c {
            JsonChat::Chat { to, convergence_id } => ChatCommand::Start {
                to: expand_uri(&to, domain),
                convergence_id,
            },
            JsonChat::ChatSend { chat, text } => ChatCommand::Send { chat, text },
            JsonChat::ChatTyping { chat } => ChatCommand::Typing { chat },
            JsonChat::ChatIdle { chat } => ChatCommand::StopTyping { chat },
            JsonChat::Accept { chat } => ChatCommand::Accept { chat },
            JsonChat::Decline { chat } => ChatCommand::Decline { chat },
            JsonChat::Bye { chat } => ChatCommand::Bye { chat },
            JsonChat::GroupCreate { invitees } => ChatCommand::CreateGroup {
                invitees: invitees.iter().map(|u| expand_uri(u, domain)).collect(),
            },
            JsonChat::GroupJoin { uri } => ChatCommand::JoinGroup {
                uri: expand_uri(&uri, domain),
            },
            JsonChat::GroupExtend { chat, add } => ChatCommand::Extend {
                chat,
                add: add.iter().map(|u| expand_uri(u, domain)).collect(),
            },
            JsonChat::GroupAdd { chat, users } => ChatCommand::AddToGroup {
                chat,
                users: users.iter().map(|u| expand_uri(u, domain)).collect(),
            },
            JsonChat::GroupRejoin { chat } => ChatCommand::Rejoin { chat },
            JsonChat::GroupPrivate { chat, to, text } => ChatCommand::SendPrivate {
                chat,
                to: expand_uri(&to, domain),
                text,
            },
            JsonChat::SendFile {
                to,
                path,
                disposition,
                description,
            } => {
                let disposition = match disposition.as_deref() {
                    None => Disposition::Attachment,
                    Some(d) => match Disposition::parse(d) {
                        Some(d) => d,
                        None => {
                            return Some(Err(format!(
                                "disposition must be attachment or render, not {d:?}"
                            )));
                        }
                    },
                };
                ChatCommand::SendFile {
                    to: to.expand(domain),
                    path,
                    disposition,
                    description,
                }
            }
            JsonChat::SendLarge { to, text } => ChatCommand::SendLarge {
                to: to.expand(domain),
                message: Box::new(LargeMessage::text(&text)),
            },
        };
        return Some(Ok(Command::Chat(cmd)));
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim_start();
    let cmd = match word.to_ascii_lowercase().as_str() {
        "chat" if !rest.is_empty() => Ok(ChatCommand::Start {
            to: expand_uri(rest, domain),
            convergence_id: None,
        }),
        "chat_send" | "say" => {
            let (n, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            chat_id(n, "say CHAT TEXT").map(|chat| ChatCommand::Send {
                chat,
                text: text.trim_start().to_owned(),
            })
        }
        "chat_typing" => chat_id(rest, "chat_typing CHAT").map(|chat| ChatCommand::Typing { chat }),
        "chat_idle" => chat_id(rest, "chat_idle CHAT").map(|chat| ChatCommand::StopTyping { chat }),
        "accept" => chat_id(rest, "accept CHAT").map(|chat| ChatCommand::Accept { chat }),
        "decline" => chat_id(rest, "decline CHAT").map(|chat| ChatCommand::Decline { chat }),
        "bye" => chat_id(rest, "bye CHAT").map(|chat| ChatCommand::Bye { chat }),
        "send_file" => match rest.split_once(char::is_whitespace) {
            Some((to, path)) if !path.trim().is_empty() => Ok(ChatCommand::SendFile {
                to: vec![expand_uri(to, domain)],
                path: path.trim().into(),
                disposition: Disposition::Attachment,
                description: None,
            }),
            _ => Err("usage: send_file URI PATH".to_string()),
        },
        _ => return None,
    };
    Some(cmd.map(Command::Chat))
}

/// The stdout line for a chat event.
pub fn event_json(ev: &ChatEvent) -> Value {
    match ev {
        ChatEvent::Calling { chat, to } => json!({"event": "chat_calling", "chat": chat, "to": to}),
        ChatEvent::Invited {
            chat,
            from,
            convergence_id,
        } => {
            json!({"event": "chat_invited", "chat": chat, "from": from, "convergence_id": convergence_id})
        }
        ChatEvent::Ringing { chat } => json!({"event": "chat_ringing", "chat": chat}),
        ChatEvent::Started { chat, peer } => {
            json!({"event": "chat_started", "chat": chat, "peer": peer})
        }
        ChatEvent::Message {
            chat,
            from,
            text,
            at,
            message_id,
        } => json!({
            "event": "chat_message", "chat": chat, "from": from, "text": text, "at": at, "message_id": message_id,
        }),
        ChatEvent::Composing { chat, from, active } => {
            json!({"event": "chat_composing", "chat": chat, "from": from, "active": active})
        }
        ChatEvent::Sent {
            chat, message_id, ..
        } => {
            json!({"event": "chat_sent", "chat": chat, "message_id": message_id})
        }
        ChatEvent::Delivered { chat, message_id } => {
            json!({"event": "chat_delivered", "chat": chat, "message_id": message_id})
        }
        ChatEvent::SendFailed {
            chat,
            message_id,
            code,
        } => {
            json!({"event": "chat_send_failed", "chat": chat, "message_id": message_id, "code": code})
        }
        ChatEvent::Ended { chat, reason } => match reason {
            EndReason::Normal => json!({"event": "chat_ended", "chat": chat, "reason": "normal"}),
            EndReason::CompletedElsewhere => {
                json!({"event": "chat_ended", "chat": chat, "reason": "completed_elsewhere"})
            }
            EndReason::Error {
                status,
                reason,
                warning,
            } => json!({
                "event": "chat_ended", "chat": chat, "reason": "error",
                "status": status, "text": reason, "warning": warning,
            }),
        },
        ChatEvent::GroupStarted {
            chat,
            identity,
            continues,
        } => json!({
            "event": "group_started", "chat": chat, "identity": identity, "continues": continues,
        }),
        ChatEvent::Roster {
            chat,
            identity,
            entries,
        } => {
            let entries: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let status = match &e.status {
                        RosterStatus::Joined => "joined",
                        RosterStatus::Ringing => "ringing",
                        RosterStatus::Left => "left",
                        RosterStatus::Other(s) => s.as_str(),
                    };
                    json!({"user": e.user, "display_name": e.display_name, "status": status,
                        "own": e.own, "blocked": e.blocked})
                })
                .collect();
            json!({"event": "group_roster", "chat": chat, "identity": identity, "entries": entries})
        }
        ChatEvent::PrivateMessage {
            chat,
            from,
            text,
            at,
            message_id,
        } => json!({
            "event": "chat_message", "chat": chat, "from": from, "text": text, "at": at,
            "message_id": message_id, "private": true,
        }),
        ChatEvent::LargeIncoming {
            chat,
            from,
            content_type,
            size,
        } => json!({
            "event": "large_incoming", "chat": chat, "from": from,
            "content_type": content_type, "size": size,
        }),
        ChatEvent::LargeProgress {
            chat,
            outgoing,
            bytes,
            total,
        } => json!({
            "event": "large_progress", "chat": chat,
            "direction": if *outgoing { "sent" } else { "received" },
            "bytes": bytes, "total": total,
            "percent": (bytes.saturating_mul(100)).checked_div(*total).unwrap_or(100),
        }),
        ChatEvent::LargeSent {
            chat,
            message_id,
            size,
        } => json!({"event": "large_sent", "chat": chat, "message_id": message_id, "size": size}),
        ChatEvent::LargeReceived {
            chat,
            from,
            content_type,
            disposition,
            filename,
            description,
            body,
        } => json!({
            "event": "large_received", "chat": chat, "from": from,
            "content_type": content_type, "disposition": disposition.as_str(),
            "filename": filename, "description": description, "size": body.len(),
        }),
        ChatEvent::LargeSaved {
            chat,
            from,
            path,
            size,
            description,
        } => json!({
            "event": "large_saved", "chat": chat, "from": from,
            "path": path.display().to_string(), "size": size, "description": description,
        }),
        ChatEvent::LargeFailed { chat, reason } => {
            json!({"event": "large_failed", "chat": chat, "reason": reason})
        }
        ChatEvent::GroupError { chat, reason } => {
            json!({"event": "group_error", "chat": chat, "reason": reason})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_words() {
        let d = "isc.local";
        assert_eq!(
            parse_command(
                r#"{"cmd":"group_create","invitees":["bob","sip:ted@x"]}"#,
                d
            ),
            Some(Ok(Command::Chat(ChatCommand::CreateGroup {
                invitees: vec!["sip:bob@isc.local".into(), "sip:ted@x".into()],
            })))
        );
        assert_eq!(
            parse_command(r#"{"cmd":"group_extend","chat":3,"add":["ted"]}"#, d),
            Some(Ok(Command::Chat(ChatCommand::Extend {
                chat: 3,
                add: vec!["sip:ted@isc.local".into()],
            })))
        );
        assert_eq!(
            parse_command(
                r#"{"cmd":"group_private","chat":3,"to":"bob","text":"hi"}"#,
                d
            ),
            Some(Ok(Command::Chat(ChatCommand::SendPrivate {
                chat: 3,
                to: "sip:bob@isc.local".into(),
                text: "hi".into(),
            })))
        );
        let v = event_json(&ChatEvent::Roster {
            chat: 1,
            identity: "sip:conf-1@isc.local".into(),
            entries: vec![crate::client::group::RosterEntry {
                user: "sip:bob@isc.local".into(),
                display_name: None,
                status: RosterStatus::Left,
                own: false,
                blocked: true,
            }],
        });
        assert_eq!(v["event"], "group_roster");
        assert_eq!(v["entries"][0]["status"], "left");
        assert_eq!(v["entries"][0]["blocked"], true);
    }

    #[test]
    fn commands_json_and_text() {
        let d = "isc.local";
        assert_eq!(
            parse_command(r#"{"cmd":"chat","to":"bob"}"#, d),
            Some(Ok(Command::Chat(ChatCommand::Start {
                to: "sip:bob@isc.local".into(),
                convergence_id: None
            })))
        );
        assert_eq!(
            parse_command(r#"{"cmd":"chat_send","chat":3,"text":"hi"}"#, d),
            Some(Ok(Command::Chat(ChatCommand::Send {
                chat: 3,
                text: "hi".into()
            })))
        );
        assert_eq!(
            parse_command("say 2 hello there", d),
            Some(Ok(Command::Chat(ChatCommand::Send {
                chat: 2,
                text: "hello there".into()
            })))
        );
        assert_eq!(
            parse_command("accept 1", d),
            Some(Ok(Command::Chat(ChatCommand::Accept { chat: 1 })))
        );
        assert!(matches!(parse_command("bye x", d), Some(Err(_))));
        assert!(matches!(
            parse_command(r#"{"cmd":"accept"}"#, d),
            Some(Err(_))
        ));
        assert_eq!(
            parse_command(r#"{"cmd":"send","to":"bob","text":"x"}"#, d),
            None
        );
        assert_eq!(parse_command("send bob hi", d), None);
    }

    #[test]
    fn events() {
        let v = event_json(&ChatEvent::Ended {
            chat: 4,
            reason: EndReason::CompletedElsewhere,
        });
        assert_eq!(
            v,
            json!({"event": "chat_ended", "chat": 4, "reason": "completed_elsewhere"})
        );
    }
}
