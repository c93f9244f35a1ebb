//! How the client's MSRP chat events show in the TUI: each chat session is
//! a conversation keyed `chat:<id>`; "Call completed elsewhere" becomes
//! "continued on your other device", never an error (seed 001 8.3.2.1.1).

use crate::client::chat::{ChatEvent, EndReason};

use crate::client;
use crate::client::chats::ChatCommand;

use super::action::{Answer, Command, Invitation, SessionEvent};
use super::app::{ConvKind, Delivery, InvitationId, RosterStatus};
use crate::client::group::RosterStatus as GroupStatus;

/// The conversation key of chat session `chat`.
pub fn chat_key(chat: u64) -> String {
    format!("chat:{chat}")
}

/// The TUI session events one chat event stands for.
pub fn session_events(ev: ChatEvent) -> Vec<SessionEvent> {
    match ev {
        ChatEvent::Calling { chat, to } => vec![
            opened(chat, &to),
            note(chat, format!("calling {}…", to.trim_start_matches("sip:"))),
        ],
        // The invitation box answers it (a / s accept, d declines).
        ChatEvent::Invited { chat, from, .. } => vec![
            opened(chat, &from),
            SessionEvent::Invitation(Invitation {
                id: InvitationId(chat),
                from,
                content: None,
                with_chat: true,
                group: None,
                raw: Vec::new(),
            }),
        ],
        ChatEvent::Started { chat, peer } => vec![
            opened(chat, &peer),
            note(chat, "chat session connected (MSRP)".into()),
        ],
        ChatEvent::Message {
            chat, from, text, ..
        } => vec![SessionEvent::Message {
            key: chat_key(chat),
            from,
            text,
            private: false,
            sent_at: None,
            late: false,
        }],
        ChatEvent::Composing { chat, from, active } => {
            vec![SessionEvent::Composing {
                key: chat_key(chat),
                from,
                active,
            }]
        }
        ChatEvent::Ended { chat, reason } => {
            // Unanswered when it ended: the box goes (silent if answered).
            let gone = match reason {
                EndReason::CompletedElsewhere => "answered on your other device",
                _ => "the chat invitation was withdrawn",
            };
            let mut out = ended(chat, reason);
            out.push(SessionEvent::InvitationGone {
                id: InvitationId(chat),
                reason: gone.into(),
            });
            out
        }
        ChatEvent::Ringing { chat } => vec![note(chat, "ringing…".into())],
        // Progress of our own messages shows through the message line itself.
        ChatEvent::Sent {
            chat,
            message_id,
            text,
        } => vec![SessionEvent::Sent {
            key: chat_key(chat),
            message_id,
            text,
        }],
        ChatEvent::Delivered { chat, message_id } => vec![SessionEvent::Delivery {
            key: chat_key(chat),
            message_id,
            delivery: Delivery::Delivered,
        }],
        ChatEvent::SendFailed {
            chat,
            message_id,
            code,
        } => vec![SessionEvent::Delivery {
            key: chat_key(chat),
            delivery: Delivery::Failed(if message_id.is_empty() {
                "the session is not up".into()
            } else {
                format!("MSRP {code}")
            }),
            message_id,
        }],
        // Group sessions are not shown by the TUI yet.
        ChatEvent::GroupStarted { chat, identity, .. } => vec![SessionEvent::Opened {
            key: chat_key(chat),
            title: format!("group {}", identity.trim_start_matches("sip:")),
            kind: ConvKind::Group { uri: identity },
        }],
        // Conference state (RFC 4575) as the roster pane's lines.
        ChatEvent::Roster { chat, entries, .. } => vec![SessionEvent::Roster {
            key: chat_key(chat),
            entries: entries
                .into_iter()
                .map(|e| {
                    let status = match e.status {
                        GroupStatus::Joined => RosterStatus::Connected,
                        GroupStatus::Ringing => RosterStatus::Ringing,
                        GroupStatus::Left | GroupStatus::Other(_) => RosterStatus::Left,
                    };
                    (e.user, status, e.own)
                })
                .collect(),
        }],
        // seed 003 7.1.3.2.2: shown apart from the group's messages.
        ChatEvent::PrivateMessage {
            chat, from, text, ..
        } => vec![SessionEvent::Message {
            key: chat_key(chat),
            from,
            text,
            private: true,
            sent_at: None,
            late: false,
        }],
        ChatEvent::GroupError { reason, .. } => vec![SessionEvent::Error(reason)],
        ChatEvent::LargeIncoming {
            chat,
            from,
            content_type,
            size,
        } => vec![
            opened(chat, &from),
            transfer(
                chat,
                format!(
                    "receiving {} ({})",
                    content_type.as_deref().unwrap_or("a large message"),
                    mib(size)
                ),
            ),
        ],
        ChatEvent::LargeProgress {
            chat,
            outgoing,
            bytes,
            total,
        } => vec![transfer(
            chat,
            format!(
                "{} {}% · {} of {}",
                if outgoing { "sending" } else { "receiving" },
                (bytes.saturating_mul(100))
                    .checked_div(total)
                    .unwrap_or(100),
                mib(bytes),
                mib(total)
            ),
        )],
        ChatEvent::LargeSent { chat, size, .. } => {
            vec![transfer(chat, format!("sent {} ✓", mib(size)))]
        }
        ChatEvent::LargeReceived {
            chat,
            filename,
            body,
            ..
        } => vec![transfer(
            chat,
            format!(
                "received {} ({}), not saved",
                filename.as_deref().unwrap_or("an attachment"),
                mib(body.len() as u64)
            ),
        )],
        ChatEvent::LargeSaved {
            chat, path, size, ..
        } => vec![transfer(
            chat,
            format!("received {} → saved to {}", mib(size), path.display()),
        )],
        ChatEvent::LargeFailed { reason, .. } => vec![SessionEvent::Error(reason)],
    }
}

/// The progress line of Large Message chat `chat`.
fn transfer(chat: u64, text: String) -> SessionEvent {
    SessionEvent::Transfer {
        key: chat_key(chat),
        id: format!("large:{chat}"),
        text,
    }
}

/// Bytes as `1.5 MiB` (or `512 B` below a KiB).
fn mib(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

fn ended(chat: u64, reason: EndReason) -> Vec<SessionEvent> {
    match reason {
        EndReason::CompletedElsewhere => vec![SessionEvent::ContinuedElsewhere {
            key: chat_key(chat),
            device: "another device".into(),
        }],
        EndReason::Normal => vec![SessionEvent::Closed {
            key: chat_key(chat),
            reason: "ended".into(),
        }],
        EndReason::Error { status, reason, .. } => vec![SessionEvent::Closed {
            key: chat_key(chat),
            reason: match status {
                Some(code) => format!("failed: {code} {reason}"),
                None => format!("failed: {reason}"),
            },
        }],
    }
}

/// The client command for a TUI command about a chat session
/// (`chat:<id>` conversations, chat invitations); the command back when it
/// is not one.
pub fn chat_command(c: Command) -> Result<client::Command, Command> {
    let chat_of = |key: &str| {
        key.strip_prefix("chat:")
            .and_then(|n| n.parse::<u64>().ok())
    };
    match c {
        // `:chat bob`: an MSRP session (seed 001 / SPEC "Client procedures").
        Command::StartChat { with } => Ok(client::Command::Chat(ChatCommand::Start {
            to: with,
            convergence_id: None,
        })),
        Command::SessionTyping { session, active } => match chat_of(&session) {
            Some(chat) => Ok(client::Command::Chat(if active {
                ChatCommand::Typing { chat }
            } else {
                ChatCommand::StopTyping { chat }
            })),
            None => Err(Command::SessionTyping { session, active }),
        },
        Command::SendChat {
            session,
            text,
            private_to,
        } => match (chat_of(&session), private_to) {
            (Some(chat), None) => Ok(client::Command::Chat(ChatCommand::Send { chat, text })),
            // seed 003 7.1.3.2.2: to one participant of the group only
            (Some(chat), Some(to)) => Ok(client::Command::Chat(ChatCommand::SendPrivate {
                chat,
                to,
                text,
            })),
            (None, private_to) => Err(Command::SendChat {
                session,
                text,
                private_to,
            }),
        },
        // seed 004 7.1.1.3: an ad-hoc group through the conference factory
        Command::CreateGroup { members, .. } => {
            Ok(client::Command::Chat(ChatCommand::CreateGroup {
                invitees: members,
            }))
        }
        // 7.1.1.4: a pre-defined group or a conference by its URI
        Command::Join { uri } => Ok(client::Command::Chat(ChatCommand::JoinGroup { uri })),
        // 7.1.1.8: the ended group session of a conversation, or a group URI
        Command::Rejoin { uri } => Ok(client::Command::Chat(match chat_of(&uri) {
            Some(chat) => ChatCommand::Rejoin { chat },
            None => ChatCommand::JoinGroup { uri },
        })),
        // 7.1.1.7: REFER into the running group session
        Command::Invite { session, users } => match chat_of(&session) {
            Some(chat) => Ok(client::Command::Chat(ChatCommand::AddToGroup {
                chat,
                users,
            })),
            None => Err(Command::Invite { session, users }),
        },
        // 7.1.1.6: the 1-1 session becomes a conference
        Command::Extend { session, users } => match chat_of(&session) {
            Some(chat) => Ok(client::Command::Chat(ChatCommand::Extend {
                chat,
                add: users,
            })),
            None => Err(Command::Extend { session, users }),
        },
        // Viewing invitations carry VIEWING_INVITATION and go to viewing_link.
        Command::AnswerInvitation { id, answer }
            if id.0 & super::viewing_link::VIEWING_INVITATION == 0 =>
        {
            let chat = id.0;
            Ok(client::Command::Chat(match answer {
                Answer::AcceptHere | Answer::AcceptSplit { .. } => ChatCommand::Accept { chat },
                Answer::Decline => ChatCommand::Decline { chat },
            }))
        }
        // a file as a Large Message: the runner reads it (seed 003 9.1.1.2)
        Command::SendFile { to, path } => Ok(client::Command::Chat(ChatCommand::SendFile {
            to: vec![to],
            path,
            disposition: crate::client::large_message::Disposition::Attachment,
            description: None,
        })),
        other => Err(other),
    }
}

fn note(chat: u64, text: String) -> SessionEvent {
    SessionEvent::Note {
        key: chat_key(chat),
        text,
    }
}

fn opened(chat: u64, peer: &str) -> SessionEvent {
    SessionEvent::Opened {
        key: chat_key(chat),
        kind: ConvKind::OneToOne {
            peer: peer.to_string(),
        },
        title: peer.trim_start_matches("sip:").to_string(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn conference_state_fills_the_roster_and_private_messages_are_marked() {
        use crate::client::group::RosterEntry;
        let entry = |user: &str, status, own| RosterEntry {
            user: user.into(),
            display_name: None,
            status,
            own,
            blocked: false,
        };
        let ev = ChatEvent::Roster {
            chat: 2,
            identity: "sip:conf-1@isc.local".into(),
            entries: vec![
                entry("sip:alice@isc.local", GroupStatus::Joined, true),
                entry("sip:carol@isc.local", GroupStatus::Ringing, false),
                entry("sip:bob@isc.local", GroupStatus::Left, false),
            ],
        };
        assert_eq!(
            session_events(ev),
            vec![SessionEvent::Roster {
                key: "chat:2".into(),
                entries: vec![
                    ("sip:alice@isc.local".into(), RosterStatus::Connected, true),
                    ("sip:carol@isc.local".into(), RosterStatus::Ringing, false),
                    ("sip:bob@isc.local".into(), RosterStatus::Left, false),
                ],
            }]
        );
        let private = ChatEvent::PrivateMessage {
            chat: 2,
            from: "sip:bob@isc.local".into(),
            text: "psst".into(),
            at: None,
            message_id: "m1".into(),
        };
        assert!(matches!(
            &session_events(private)[0],
            SessionEvent::Message { private: true, .. }
        ));
    }

    use super::*;

    #[test]
    fn completed_elsewhere_is_not_an_error() {
        let ev = ChatEvent::Ended {
            chat: 7,
            reason: EndReason::CompletedElsewhere,
        };
        assert_eq!(
            session_events(ev)[0],
            SessionEvent::ContinuedElsewhere {
                key: "chat:7".into(),
                device: "another device".into()
            }
        );
        let failed = ChatEvent::Ended {
            chat: 7,
            reason: EndReason::Error {
                status: Some(480),
                reason: "Temporarily Unavailable".into(),
                warning: None,
            },
        };
        assert!(
            matches!(&session_events(failed)[0], SessionEvent::Closed { reason, .. } if reason == "failed: 480 Temporarily Unavailable")
        );
    }

    #[test]
    fn an_invitation_is_answered_and_session_text_goes_to_the_chat() {
        let evs = session_events(ChatEvent::Invited {
            chat: 3,
            from: "sip:bob@isc.local".into(),
            convergence_id: None,
        });
        assert!(
            matches!(&evs[1], SessionEvent::Invitation(i) if i.id == InvitationId(3) && i.with_chat)
        );
        assert_eq!(
            chat_command(Command::AnswerInvitation {
                id: InvitationId(3),
                answer: Answer::AcceptHere
            }),
            Ok(client::Command::Chat(ChatCommand::Accept { chat: 3 }))
        );
        assert_eq!(
            chat_command(Command::SendChat {
                session: "chat:3".into(),
                text: "hi".into(),
                private_to: None
            }),
            Ok(client::Command::Chat(ChatCommand::Send {
                chat: 3,
                text: "hi".into()
            }))
        );
        let group = Command::SendChat {
            session: "group:x".into(),
            text: "hi".into(),
            private_to: None,
        };
        assert_eq!(chat_command(group.clone()), Err(group));
    }

    #[test]
    fn session_commands_reach_the_chat_core() {
        let chat = |c| Ok(client::Command::Chat(c));
        assert_eq!(
            chat_command(Command::StartChat {
                with: "sip:bob@isc.local".into()
            }),
            chat(ChatCommand::Start {
                to: "sip:bob@isc.local".into(),
                convergence_id: None
            })
        );
        assert_eq!(
            chat_command(Command::SessionTyping {
                session: "chat:2".into(),
                active: false
            }),
            chat(ChatCommand::StopTyping { chat: 2 })
        );
        assert_eq!(
            chat_command(Command::SendChat {
                session: "chat:2".into(),
                text: "psst".into(),
                private_to: Some("sip:bob@isc.local".into())
            }),
            chat(ChatCommand::SendPrivate {
                chat: 2,
                to: "sip:bob@isc.local".into(),
                text: "psst".into()
            })
        );
        assert_eq!(
            chat_command(Command::CreateGroup {
                name: "team".into(),
                members: vec!["sip:bob@isc.local".into()]
            }),
            chat(ChatCommand::CreateGroup {
                invitees: vec!["sip:bob@isc.local".into()]
            })
        );
        assert_eq!(
            chat_command(Command::Join {
                uri: "sip:team@isc.local".into()
            }),
            chat(ChatCommand::JoinGroup {
                uri: "sip:team@isc.local".into()
            })
        );
        assert_eq!(
            chat_command(Command::Rejoin {
                uri: "chat:4".into()
            }),
            chat(ChatCommand::Rejoin { chat: 4 })
        );
        assert_eq!(
            chat_command(Command::Invite {
                session: "chat:4".into(),
                users: vec!["sip:ted@isc.local".into()]
            }),
            chat(ChatCommand::AddToGroup {
                chat: 4,
                users: vec!["sip:ted@isc.local".into()]
            })
        );
        assert_eq!(
            chat_command(Command::Extend {
                session: "chat:1".into(),
                users: vec!["sip:ted@isc.local".into()]
            }),
            chat(ChatCommand::Extend {
                chat: 1,
                add: vec!["sip:ted@isc.local".into()]
            })
        );
        // A pager conversation has no session to invite into.
        let pager = Command::Invite {
            session: "sip:bob@isc.local".into(),
            users: vec![],
        };
        assert_eq!(chat_command(pager.clone()), Err(pager));
    }

    #[test]
    fn our_messages_follow_their_msrp_ids() {
        assert_eq!(
            session_events(ChatEvent::Sent {
                chat: 1,
                message_id: "m9".into(),
                text: "hi".into()
            }),
            vec![SessionEvent::Sent {
                key: "chat:1".into(),
                message_id: "m9".into(),
                text: "hi".into()
            }]
        );
        assert_eq!(
            session_events(ChatEvent::SendFailed {
                chat: 1,
                message_id: String::new(),
                code: 481
            }),
            vec![SessionEvent::Delivery {
                key: "chat:1".into(),
                message_id: String::new(),
                delivery: Delivery::Failed("the session is not up".into())
            }]
        );
    }
}
