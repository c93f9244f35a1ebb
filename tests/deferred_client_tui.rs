//! What the user sees of deferred messages in the TUI (seed 002 D.2): each
//! in the 1-1 conversation with its sender, at its original time, with the
//! "delivered late" mark and the date it was sent; the waiting count and a
//! refused retrieval in the status bar. Fixed clock (`tui_common`).

mod tui_common;

use insta::assert_snapshot;
use isc::client::ClientEvent;
use isc::client::deferred::{DeferredEvent, LateKind, LateMessage};
use isc::tui::Action;
use isc::tui::app::ConvId;
use tui_common::*;

fn late(text: &str, kind: LateKind, minutes_before_noon: i64, n: u32) -> Action {
    // 12:00 UTC on day 0 minus the minutes: before the app's own clock (12:01)
    let sent = 12 * 3600 - minutes_before_noon * 60;
    Action::Client(ClientEvent::Deferred(DeferredEvent::Message {
        session: 1,
        message: LateMessage {
            kind,
            from: "sip:carol@isc.local".into(),
            to: "sip:alice@isc.local".into(),
            call_id: format!("c{n}"),
            message_id: (kind == LateKind::Session).then(|| format!("m{n}")),
            content_type: "text/plain".into(),
            body: text.as_bytes().to_vec(),
            date: None,
            sent_unix: Some(sent),
            key: format!("k{n}"),
        },
    }))
}

#[test]
fn deferred_messages_show_late_at_their_time() {
    let (mut app, _) = empty();
    app.update(Action::Client(ClientEvent::Deferred(
        DeferredEvent::Waiting {
            count: 3,
            account: Some("sip:Deferred@isc.local".into()),
        },
    )));
    app.update(late("are you up?", LateKind::Pager, 95, 1));
    app.update(late("movie tonight?", LateKind::Session, 50, 2));
    app.update(late("Sintel at 8", LateKind::Session, 49, 3));
    app.update(Action::OpenConversation(ConvId(0)));
    let screen = draw(&mut app, 100, 16);
    assert!(
        screen.contains("10:25 carol   are you up? (delivered late, sent 1970-01-01 10:25)"),
        "{screen}"
    );
    assert!(
        screen.contains("3 messages waiting (:deferred to fetch)"),
        "{screen}"
    );
    assert_snapshot!("deferred_late_100x16", screen);

    // A refused retrieval, in plain words.
    app.update(Action::Client(ClientEvent::Deferred(
        DeferredEvent::RetrievalFailed {
            status: Some(403),
            reason: "Forbidden".into(),
            warning: Some(
                "deferred messages are pushed to this user (offline-delivery active)".into(),
            ),
        },
    )));
    let screen = draw(&mut app, 160, 16);
    assert!(
        screen.contains(
            "deferred messages: retrieval refused (403 Forbidden): deferred messages are pushed"
        ),
        "{screen}"
    );
}

#[test]
fn the_deferred_command_retrieves() {
    use isc::client::Command as ClientCommand;
    use isc::client::deferred::DeferredCommand;
    use isc::tui::Command;
    let (mut app, _) = empty();
    let cmds = app.update(Action::RunCommand(":deferred m1 deferred:7".into()));
    assert_eq!(
        cmds,
        vec![Command::Client(ClientCommand::Deferred(
            DeferredCommand::Retrieve {
                ids: vec!["m1".into(), "deferred:7".into()],
                service: None,
            }
        ))]
    );
    let cmds = app.update(Action::RunCommand(":deferred".into()));
    assert_eq!(
        cmds,
        vec![Command::Client(ClientCommand::Deferred(
            DeferredCommand::Retrieve {
                ids: vec![],
                service: None
            }
        ))]
    );
}
