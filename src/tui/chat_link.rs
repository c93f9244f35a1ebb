//! How the client's MSRP chat events show in the TUI: each chat session is
//! a conversation keyed `chat:<id>`; "Call completed elsewhere" becomes
//! "continued on your other device", never an error (seed 001 8.3.2.1.1).

use crate::client::chat::{ChatEvent, EndReason};

use super::action::SessionEvent;
use super::app::ConvKind;

/// The conversation key of chat session `chat`.
pub fn chat_key(chat: u64) -> String {
    format!("chat:{chat}")
}

/// The TUI session events one chat event stands for.
pub fn session_events(ev: ChatEvent) -> Vec<SessionEvent> {
    match ev {
        ChatEvent::Calling { chat, to } => vec![opened(chat, &to)],
        ChatEvent::Invited { chat, from, .. } => vec![opened(chat, &from)],
        ChatEvent::Started { chat, peer } => vec![opened(chat, &peer)],
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
        ChatEvent::Ended { chat, reason } => match reason {
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
        },
        // Progress of our own messages shows through the message line itself.
        ChatEvent::Ringing { .. }
        | ChatEvent::Sent { .. }
        | ChatEvent::Delivered { .. }
        | ChatEvent::SendFailed { .. } => Vec::new(),
        // Group sessions are not shown by the TUI yet.
        ChatEvent::GroupStarted { .. }
        | ChatEvent::Roster { .. }
        | ChatEvent::PrivateMessage { .. }
        | ChatEvent::GroupError { .. } => Vec::new(),
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
    use super::*;

    #[test]
    fn completed_elsewhere_is_not_an_error() {
        let ev = ChatEvent::Ended {
            chat: 7,
            reason: EndReason::CompletedElsewhere,
        };
        assert_eq!(
            session_events(ev),
            vec![SessionEvent::ContinuedElsewhere {
                key: "chat:7".into(),
                device: "another device".into()
            }]
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
}
