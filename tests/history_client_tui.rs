//! What the TUI does with history (seed 003 13.1.3): `:history [user]`
//! asks the client core, an empty 1-1 conversation asks once by itself,
//! retrieved messages go in at their original times (older above) without
//! repeating what is shown, one line says how many came, failures are said.

mod tui_common;

use insta::assert_snapshot;
use isc::client::history::{HistoryError, HistoryEvent, HistoryItem, HistoryQuery};
use isc::client::{ClientEvent, Command as UaCommand};
use isc::tui::app::{ConvId, EntryKind, Sender};
use isc::tui::{Action, Command};
use tui_common::*;

const BOB: &str = "sip:bob@isc.local";

fn history_query(cmds: &[Command]) -> Option<&HistoryQuery> {
    cmds.iter().find_map(|c| match c {
        Command::Client(UaCommand::History(q)) => Some(q),
        _ => None,
    })
}

fn item(from: &str, at: &str, text: &str) -> HistoryItem {
    HistoryItem {
        from: format!("sip:{from}@isc.local"),
        to: String::new(),
        at: Some(at.into()),
        text: text.into(),
    }
}

fn retrieved(items: Vec<HistoryItem>) -> Action {
    Action::Client(ClientEvent::History(HistoryEvent::Retrieved {
        id: 1,
        conversation: BOB.into(),
        items,
        complete: true,
    }))
}

#[test]
fn history_command_fills_the_view_in_time_order() {
    let (mut app, _) = empty();
    // 12:01: bob's pager message is already on screen.
    app.update(received("bob", "are you there?"));
    let cmds = app.update(Action::RunCommand("history bob".into()));
    assert_eq!(history_query(&cmds), Some(&HistoryQuery::conversation(BOB)));

    app.update(retrieved(vec![
        item(
            "bob",
            "1970-01-01T11:50:00Z",
            "want to watch Sintel tonight?",
        ),
        item("alice", "1970-01-01T11:51:00Z", "yes! at 8"),
        // the message the view has, stamped by bob's clock 20 s earlier
        item("bob", "1970-01-01T12:00:40Z", "are you there?"),
    ]));
    let c = &app.conversations[0];
    let lines: Vec<(String, &str)> = c
        .entries
        .iter()
        .map(|e| match &e.kind {
            EntryKind::Message {
                from: Sender::You,
                text,
                ..
            } => ("you".into(), text.as_str()),
            EntryKind::Message {
                from: Sender::Peer(p),
                text,
                ..
            } => (p.clone(), text.as_str()),
            EntryKind::System(t) => ("system".into(), t.as_str()),
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("bob".to_string(), "want to watch Sintel tonight?"),
            ("you".to_string(), "yes! at 8"),
            ("bob".to_string(), "are you there?"),
            (
                "system".to_string(),
                "history from server: 2 messages (1 already shown)"
            ),
        ]
    );
    assert_snapshot!("history_80x24", draw(&mut app, 80, 24));
}

#[test]
fn an_empty_conversation_fetches_its_history_once() {
    let (mut app, _) = empty();
    let cmds = app.update(Action::RunCommand("chat ted".into()));
    assert!(matches!(cmds[0], Command::StartChat { .. }));
    assert_eq!(
        history_query(&cmds),
        Some(&HistoryQuery::conversation("sip:ted@isc.local"))
    );
    // No history: one quiet line says why the view stays empty (the user
    // did not ask, so no notice either).
    app.update(Action::Client(ClientEvent::History(HistoryEvent::Failed {
        id: 1,
        conversation: "sip:ted@isc.local".into(),
        error: HistoryError::Refused {
            status: 404,
            reason: "Not Found".into(),
            warning: Some("no stored history for sip:ted@isc.local".into()),
        },
    })));
    let texts: Vec<&str> = app.conversations[0]
        .entries
        .iter()
        .map(|e| e.text())
        .collect();
    assert_eq!(texts, ["history: no earlier messages on the server"]);
    assert_eq!(app.notice, None);
    // Opened again: asked already, not again.
    let again = app.update(Action::OpenConversation(ConvId(0)));
    assert!(history_query(&again).is_none());
    // A conversation with messages in it does not ask by itself.
    app.update(received("carol", "hello"));
    let open = app.update(Action::OpenConversation(ConvId(1)));
    assert!(history_query(&open).is_none());
    // :history without a 1-1 conversation says what is missing.
    let (mut bare, _) = empty();
    assert!(bare.update(Action::RunCommand("history".into())).is_empty());
    assert!(
        bare.notice
            .as_ref()
            .is_some_and(|(t, _)| t.contains("open a 1-1 conversation")),
        "{:?}",
        bare.notice
    );
    // A group session: said so.
    let (mut grouped, _) = populated();
    grouped.update(Action::OpenConversation(ConvId(1)));
    assert!(
        grouped
            .update(Action::RunCommand("history".into()))
            .is_empty()
    );
    assert!(
        grouped
            .notice
            .as_ref()
            .is_some_and(|(t, _)| t.contains("only 1-1 conversations")),
        "{:?}",
        grouped.notice
    );
    assert!(
        bare.update(Action::RunCommand("history a b".into()))
            .is_empty()
    );
    assert!(
        bare.notice
            .as_ref()
            .is_some_and(|(t, _)| t.contains("usage: :history"))
    );
}
