//! The content-viewing words of headless mode ([`super::headless`]):
//! commands read from a line (JSON or text) and the JSON of
//! [`ViewingEvent`]s. The vocabulary is documented in `headless.rs`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Command;
use super::content_viewing::{ViewingCommand, ViewingEnd, ViewingEvent, ViewingId};
use super::headless::expand_uri;

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum JsonViewing {
    Contents,
    Watch {
        content: String,
        with: String,
        chat_on: Option<String>,
    },
    ViewAccept {
        viewing: ViewingId,
    },
    ViewDecline {
        viewing: ViewingId,
    },
    ViewStop {
        viewing: ViewingId,
    },
    Pause {
        viewing: ViewingId,
    },
    Resume {
        viewing: ViewingId,
    },
    Seek {
        viewing: ViewingId,
        position_ms: u64,
    },
    AutoChat {
        on: bool,
    },
}

const JSON_WORDS: &[&str] = &[
    "contents",
    "watch",
    "view_accept",
    "view_decline",
    "view_stop",
    "pause",
    "resume",
    "seek",
    "auto_chat",
];

fn id(s: &str, usage: &str) -> Result<ViewingId, String> {
    s.trim().parse().map_err(|_| format!("usage: {usage}"))
}

/// A viewing command, if the line is one (`None`: not a viewing word).
pub fn parse_command(line: &str, domain: &str) -> Option<Result<Command, String>> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        let word = v.get("cmd")?.as_str()?;
        if !JSON_WORDS.contains(&word) {
            return None;
        }
        let c = match serde_json::from_value::<JsonViewing>(v) {
            Ok(c) => c,
            Err(e) => return Some(Err(e.to_string())),
        };
        let cmd = match c {
            JsonViewing::Contents => ViewingCommand::FetchContentList,
            JsonViewing::Watch {
                content,
                with,
                chat_on,
            } => ViewingCommand::Watch {
                content,
                with: expand_uri(&with, domain),
                chat_on,
            },
            JsonViewing::ViewAccept { viewing } => ViewingCommand::Accept { viewing },
            JsonViewing::ViewDecline { viewing } => ViewingCommand::Decline { viewing },
            JsonViewing::ViewStop { viewing } => ViewingCommand::Bye { viewing },
            JsonViewing::Pause { viewing } => ViewingCommand::Pause { viewing },
            JsonViewing::Resume { viewing } => ViewingCommand::Resume { viewing },
            JsonViewing::Seek {
                viewing,
                position_ms,
            } => ViewingCommand::Seek {
                viewing,
                position_ms,
            },
            JsonViewing::AutoChat { on } => ViewingCommand::SetAutoChat(on),
        };
        return Some(Ok(Command::Viewing(cmd)));
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim_start();
    let mut args = rest.split_whitespace();
    let cmd = match word.to_ascii_lowercase().as_str() {
        "contents" => Ok(ViewingCommand::FetchContentList),
        "watch" => match (args.next(), args.next()) {
            (Some(content), Some(with)) => Ok(ViewingCommand::Watch {
                content: content.to_owned(),
                with: expand_uri(with, domain),
                chat_on: args.next().map(str::to_owned),
            }),
            _ => Err("usage: watch CONTENT URI [CHAT_DEVICE]".to_owned()),
        },
        "view_accept" => {
            id(rest, "view_accept N").map(|viewing| ViewingCommand::Accept { viewing })
        }
        "view_decline" => {
            id(rest, "view_decline N").map(|viewing| ViewingCommand::Decline { viewing })
        }
        "view_stop" => id(rest, "view_stop N").map(|viewing| ViewingCommand::Bye { viewing }),
        "pause" => id(rest, "pause N").map(|viewing| ViewingCommand::Pause { viewing }),
        "resume" => id(rest, "resume N").map(|viewing| ViewingCommand::Resume { viewing }),
        "seek" => match (args.next(), args.next().and_then(|p| p.parse().ok())) {
            (Some(n), Some(position_ms)) => {
                id(n, "seek N MS").map(|viewing| ViewingCommand::Seek {
                    viewing,
                    position_ms,
                })
            }
            _ => Err("usage: seek N MS".to_owned()),
        },
        "auto_chat" => match rest {
            "on" => Ok(ViewingCommand::SetAutoChat(true)),
            "off" => Ok(ViewingCommand::SetAutoChat(false)),
            _ => Err("usage: auto_chat on|off".to_owned()),
        },
        _ => return None,
    };
    Some(cmd.map(Command::Viewing))
}

/// The stdout line for a viewing event (`None`: not printed, e.g. frames).
pub fn event_json(ev: &ViewingEvent) -> Value {
    match ev {
        ViewingEvent::ContentList { entries } => json!({
            "event": "content_list",
            "entries": entries.iter().map(|e| json!({
                "content_ref": e.content_ref, "title": e.title,
                "duration_ms": e.duration_ms, "media": e.media,
            })).collect::<Vec<_>>(),
        }),
        ViewingEvent::ContentListFailed { reason } => {
            json!({"event": "content_list_failed", "reason": reason})
        }
        ViewingEvent::Calling {
            viewing,
            to,
            content,
            convergence_id,
        } => json!({
            "event": "viewing_calling", "viewing": viewing, "to": to,
            "content": content, "convergence_id": convergence_id,
        }),
        ViewingEvent::Invited {
            viewing,
            from,
            content,
            convergence_id,
        } => json!({
            "event": "viewing_invited", "viewing": viewing, "from": from,
            "content": content, "convergence_id": convergence_id,
        }),
        ViewingEvent::Started { viewing, peer } => {
            json!({"event": "viewing_started", "viewing": viewing, "peer": peer})
        }
        ViewingEvent::TakenElsewhere { viewing, from } => {
            json!({"event": "viewing_taken_elsewhere", "viewing": viewing, "from": from})
        }
        ViewingEvent::Ended { viewing, reason } => {
            let mut v = json!({"event": "viewing_ended", "viewing": viewing});
            match reason {
                ViewingEnd::RemoteBye => v["reason"] = json!("remote_bye"),
                ViewingEnd::LocalBye => v["reason"] = json!("local_bye"),
                ViewingEnd::Declined => v["reason"] = json!("declined"),
                ViewingEnd::Cancelled => v["reason"] = json!("cancelled"),
                ViewingEnd::Failed { status, reason } => {
                    v["reason"] = json!("failed");
                    v["status"] = json!(status);
                    v["text"] = json!(reason);
                }
            }
            v
        }
        ViewingEvent::ChatRecommended {
            with,
            convergence_id,
            content_viewing_client,
        } => json!({
            "event": "chat_recommended", "with": with, "convergence_id": convergence_id,
            "content_viewing_client": content_viewing_client,
        }),
        ViewingEvent::PlaybackChanged {
            viewing,
            by,
            action,
            position_ms,
        } => json!({
            "event": "playback_changed", "viewing": viewing, "by": by,
            "action": action, "position_ms": position_ms,
        }),
        ViewingEvent::PlaybackAnswered { viewing, status } => {
            json!({"event": "playback_answered", "viewing": viewing, "status": status})
        }
        ViewingEvent::Stats { viewing, stats } => json!({
            "event": "viewing_stats", "viewing": viewing,
            "audio_packets": stats.audio_packets, "video_packets": stats.video_packets,
            "audio_lost": stats.audio_lost, "frames_decoded": stats.frames_decoded,
            "frames_presented": stats.frames_presented, "audio_played_ms": stats.audio_played_ms,
        }),
        ViewingEvent::Frame {
            viewing,
            width,
            height,
            timestamp,
            ..
        } => json!({
            "event": "viewing_frame", "viewing": viewing, "width": width,
            "height": height, "timestamp": timestamp,
        }),
    }
}
