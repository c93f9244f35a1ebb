//! How content viewing (seed 000) shows in the TUI and how its commands
//! reach the client: each viewing is a `view:<id>` conversation with the
//! player; an invitation pops up; "picked up on your other device"
//! (seed 000 5.4.3.3) is never shown as a missed invitation.

use crate::client::{
    self,
    content_viewing::{ViewingCommand, ViewingEnd, ViewingEvent},
};

use super::action::{Answer, Command, Invitation, SessionEvent};
use super::app::{ConvKind, InvitationId};

/// Viewing invitations share the TUI's invitation ids with chat ones; this
/// bit keeps them apart.
pub const VIEWING_INVITATION: u64 = 1 << 62;

/// The conversation key of viewing `id`.
pub fn viewing_key(id: u64) -> String {
    format!("view:{id}")
}

fn viewing_of(key: &str) -> Option<u64> {
    key.strip_prefix("view:").and_then(|n| n.parse().ok())
}

/// The TUI session events one viewing event stands for.
pub fn session_events(ev: ViewingEvent) -> Vec<SessionEvent> {
    let opened = |viewing: u64, content: &str, peer: &str| SessionEvent::Opened {
        key: viewing_key(viewing),
        kind: ConvKind::Viewing {
            content: content.to_string(),
            with: vec![peer.to_string()],
        },
        title: format!("{content} · {}", peer.trim_start_matches("sip:")),
    };
    match ev {
        ViewingEvent::Calling {
            viewing,
            to,
            content,
            ..
        } => vec![opened(viewing, &content, &to)],
        ViewingEvent::Invited {
            viewing,
            from,
            content,
            ..
        } => {
            vec![SessionEvent::Invitation(Invitation {
                id: InvitationId(VIEWING_INVITATION | viewing),
                from,
                content: Some(content.unwrap_or_else(|| "content".into())),
                with_chat: true,
                group: None,
                raw: Vec::new(),
            })]
        }
        ViewingEvent::Started { viewing, peer } => vec![opened(viewing, "viewing", &peer)],
        ViewingEvent::TakenElsewhere { viewing, .. } => vec![SessionEvent::InvitationGone {
            id: InvitationId(VIEWING_INVITATION | viewing),
            reason: "picked up on your other device".into(),
        }],
        ViewingEvent::Ended { viewing, reason } => {
            let why = match reason {
                ViewingEnd::RemoteBye | ViewingEnd::LocalBye => "viewing ended".to_string(),
                ViewingEnd::Declined => "declined".to_string(),
                ViewingEnd::Cancelled => "invitation withdrawn".to_string(),
                ViewingEnd::Failed { status, reason } => match status {
                    Some(code) => format!("failed: {code} {reason}"),
                    None => format!("failed: {reason}"),
                },
            };
            vec![
                SessionEvent::InvitationGone {
                    id: InvitationId(VIEWING_INVITATION | viewing),
                    reason: why.clone(),
                },
                SessionEvent::Closed {
                    key: viewing_key(viewing),
                    reason: why,
                },
            ]
        }
        ViewingEvent::PlaybackChanged {
            by,
            action,
            position_ms,
            ..
        } => vec![SessionEvent::Control {
            by: by.unwrap_or_else(|| "someone".into()),
            what: action,
            at: std::time::Duration::from_millis(position_ms.unwrap_or(0)),
        }],
        ViewingEvent::Stats { stats, .. } => {
            let packets = stats.audio_packets + stats.video_packets;
            let expected = stats.audio_packets as f64 + stats.audio_lost.max(0) as f64;
            let loss = if expected > 0.0 {
                (stats.audio_lost.max(0) as f64 / expected * 100.0) as f32
            } else {
                0.0
            };
            vec![SessionEvent::Stats {
                loss_pct: loss,
                jitter_ms: 0.0,
                packets,
            }]
        }
        ViewingEvent::ChatRecommended { with, .. } => vec![SessionEvent::DeviceActivity {
            device: "this device".into(),
            activity: format!("chatting with {}", with.join(", ")),
            role: None,
        }],
        ViewingEvent::ContentListFailed { reason } => {
            vec![SessionEvent::Error(format!("content list: {reason}"))]
        }
        ViewingEvent::Frame { rgb, .. } => vec![SessionEvent::Frame((*rgb).clone())],
        // The content list feeds completion; it is not a line on screen.
        ViewingEvent::ContentList { entries } => vec![SessionEvent::Contents(
            entries.into_iter().map(|e| e.content_ref).collect(),
        )],
        // The answer to our own playback INFO is not a line on screen.
        ViewingEvent::PlaybackAnswered { .. } => Vec::new(),
    }
}

/// The client command for a TUI command about viewing; the command back
/// when it is not one.
pub fn viewing_command(c: Command) -> Result<client::Command, Command> {
    let cmd = match c {
        Command::Watch {
            content,
            with,
            chat_on,
        } if !with.is_empty() => ViewingCommand::Watch {
            content,
            with: with[0].clone(),
            chat_on,
        },
        Command::AnswerInvitation { id, answer } if id.0 & VIEWING_INVITATION != 0 => {
            let viewing = id.0 & !VIEWING_INVITATION;
            match answer {
                Answer::AcceptHere | Answer::AcceptSplit { .. } => {
                    ViewingCommand::Accept { viewing }
                }
                Answer::Decline => ViewingCommand::Decline { viewing },
            }
        }
        Command::Pause { session } if viewing_of(&session).is_some() => ViewingCommand::Pause {
            viewing: viewing_of(&session).unwrap_or_default(),
        },
        Command::Resume { session } if viewing_of(&session).is_some() => ViewingCommand::Resume {
            viewing: viewing_of(&session).unwrap_or_default(),
        },
        Command::Seek { session, to } if viewing_of(&session).is_some() => ViewingCommand::Seek {
            viewing: viewing_of(&session).unwrap_or_default(),
            position_ms: u64::try_from(to.as_millis()).unwrap_or(u64::MAX),
        },
        other => return Err(other),
    };
    Ok(client::Command::Viewing(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_elsewhere_withdraws_the_invitation() {
        let ev = ViewingEvent::TakenElsewhere {
            viewing: 3,
            from: "sip:alice@isc.local".into(),
        };
        assert_eq!(
            session_events(ev),
            vec![SessionEvent::InvitationGone {
                id: InvitationId(VIEWING_INVITATION | 3),
                reason: "picked up on your other device".into()
            }]
        );
    }

    #[test]
    fn frames_reach_the_player_pane() {
        let rgb = crate::proto::rtp::jpeg_codec::RgbFrame {
            width: 2,
            height: 2,
            data: vec![9; 12],
        };
        let ev = ViewingEvent::Frame {
            viewing: 1,
            width: 2,
            height: 2,
            timestamp: 0,
            rgb: std::sync::Arc::new(rgb.clone()),
        };
        assert_eq!(session_events(ev), vec![SessionEvent::Frame(rgb)]);
    }

    #[test]
    fn commands_map_to_viewing_commands() {
        let accept = Command::AnswerInvitation {
            id: InvitationId(VIEWING_INVITATION | 4),
            answer: Answer::AcceptHere,
        };
        assert_eq!(
            viewing_command(accept),
            Ok(client::Command::Viewing(ViewingCommand::Accept {
                viewing: 4
            }))
        );
        let pause = Command::Pause {
            session: "view:4".into(),
        };
        assert_eq!(
            viewing_command(pause),
            Ok(client::Command::Viewing(ViewingCommand::Pause {
                viewing: 4
            }))
        );
        let chat_answer = Command::AnswerInvitation {
            id: InvitationId(4),
            answer: Answer::Decline,
        };
        assert_eq!(viewing_command(chat_answer.clone()), Err(chat_answer));
    }
}
