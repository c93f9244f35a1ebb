//! Every pane in its main states, at 160×48 and 80×24, with a fixed clock.

mod tui_common;

use insta::assert_snapshot;
use isc::tui::app::ConvId;
use isc::tui::{Action, SessionEvent};
use tui_common::*;

#[test]
fn empty_start() {
    let (mut app, _) = empty();
    assert_snapshot!("empty_160x48", draw(&mut app, 160, 48));
    assert_snapshot!("empty_80x24", draw(&mut app, 80, 24));
}

#[test]
fn conversation_with_messages_and_composing() {
    let (mut app, _) = populated();
    assert_snapshot!("conversation_160x48", draw(&mut app, 160, 48));
    assert_snapshot!("conversation_80x24", draw(&mut app, 80, 24));
}

#[test]
fn composing_expires_without_a_refresh() {
    let (mut app, now) = populated();
    tick(&mut app, now, 3);
    let screen = draw(&mut app, 80, 24);
    assert!(!screen.contains("typing"), "{screen}");
}

#[test]
fn group_roster_all_states() {
    let (mut app, _) = populated();
    app.update(Action::OpenConversation(ConvId(1)));
    assert_snapshot!("group_roster_160x48", draw(&mut app, 160, 48));
    assert_snapshot!("group_roster_80x24", draw(&mut app, 80, 24));
}

#[test]
fn viewing_session_with_player_and_devices() {
    let (mut app, _) = populated();
    app.update(Action::OpenConversation(ConvId(2)));
    assert_snapshot!("viewing_160x48", draw(&mut app, 160, 48));
    assert_snapshot!("viewing_80x24", draw(&mut app, 80, 24));
}

#[test]
fn invitation_popup() {
    let (mut app, _) = populated();
    app.update(Action::Session(SessionEvent::Invitation(invitation())));
    assert_snapshot!("invitation_160x48", draw(&mut app, 160, 48));
    assert_snapshot!("invitation_80x24", draw(&mut app, 80, 24));
    app.update(Action::ShowInvite);
    assert_snapshot!("invitation_raw_80x24", draw(&mut app, 80, 24));
}

#[test]
fn flow_view_with_selected_message() {
    let (mut app, _) = populated();
    with_flow(&mut app);
    app.update(Action::ToggleFlow);
    assert_snapshot!("flow_160x48", draw(&mut app, 160, 48));
    app.update(Action::Up);
    app.update(Action::Up);
    app.update(Action::Select);
    assert_snapshot!("flow_selected_160x48", draw(&mut app, 160, 48));
    assert_snapshot!("flow_selected_80x24", draw(&mut app, 80, 24));
    app.update(Action::FlowFilterSelected);
    assert_snapshot!("flow_filtered_80x24", draw(&mut app, 80, 24));
}

#[test]
fn help_screen() {
    let (mut app, _) = empty();
    app.update(Action::ToggleHelp);
    assert_snapshot!("help_160x48", draw(&mut app, 160, 48));
    assert_snapshot!("help_80x24", draw(&mut app, 80, 24));
}

#[test]
fn command_line_with_completion() {
    let (mut app, _) = populated();
    app.update(Action::OpenCommandLine);
    for c in "watch sintel with b".chars() {
        app.update(Action::InsertChar(c));
    }
    app.update(Action::Complete);
    assert_snapshot!("command_completion_160x48", draw(&mut app, 160, 48));
    assert_snapshot!("command_completion_80x24", draw(&mut app, 80, 24));
}

#[test]
fn search_and_scrolled_back() {
    let (mut app, _) = populated();
    for i in 0..40 {
        app.update(received("bob", &format!("line {i}")));
    }
    app.update(Action::OpenSearch);
    for c in "sintel".chars() {
        app.update(Action::InsertChar(c));
    }
    app.update(Action::Send);
    assert_snapshot!("search_80x24", draw(&mut app, 80, 24));
}

#[test]
fn unread_marker_after_jump() {
    let (mut app, _) = populated();
    app.update(Action::OpenConversation(ConvId(1)));
    for i in 0..30 {
        app.update(received("bob", &format!("missed {i}")));
    }
    app.update(Action::OpenConversation(ConvId(0)));
    app.update(Action::JumpToUnread);
    assert_snapshot!("unread_jump_80x24", draw(&mut app, 80, 24));
}

/// `:chat carol` as the session layer answers it: calling, a message typed
/// too early (refused: no session yet), connected, a message delivered.
#[test]
fn chat_session_from_calling_to_connected() {
    use isc::tui::Command;
    use isc::tui::app::{ConvKind, Delivery};
    let (mut app, _) = populated();
    let out = app.update(Action::RunCommand(":chat carol".into()));
    // The session, then (an empty conversation) its history from the server.
    assert_eq!(
        out.first(),
        Some(&Command::StartChat {
            with: "sip:carol@isc.local".into()
        })
    );
    let key = "chat:5".to_string();
    app.update(session(SessionEvent::Opened {
        key: key.clone(),
        kind: ConvKind::OneToOne {
            peer: "sip:carol@isc.local".into(),
        },
        title: "carol@isc.local".into(),
    }));
    app.update(session(SessionEvent::Note {
        key: key.clone(),
        text: "calling carol@isc.local…".into(),
    }));
    for _ in 0..2 {
        app.update(session(SessionEvent::Note {
            key: key.clone(),
            text: "ringing…".into(),
        }));
    }
    assert_eq!(app.current_conv().unwrap().key, key);
    for c in "too early".chars() {
        let out = app.update(Action::InsertChar(c));
        assert_eq!(
            out,
            vec![Command::SessionTyping {
                session: key.clone(),
                active: true
            }]
        );
    }
    app.update(Action::Send);
    app.update(session(SessionEvent::Delivery {
        key: key.clone(),
        message_id: String::new(),
        delivery: Delivery::Failed("the session is not up".into()),
    }));
    assert_snapshot!("chat_session_calling_80x24", draw(&mut app, 80, 24));
    app.update(session(SessionEvent::Note {
        key: key.clone(),
        text: "chat session connected (MSRP)".into(),
    }));
    for c in "hello carol".chars() {
        app.update(Action::InsertChar(c));
    }
    let out = app.update(Action::Send);
    assert_eq!(
        out,
        vec![Command::SendChat {
            session: key.clone(),
            text: "hello carol".into(),
            private_to: None
        }]
    );
    app.update(session(SessionEvent::Sent {
        key: key.clone(),
        message_id: "m1".into(),
        text: "hello carol".into(),
    }));
    app.update(session(SessionEvent::Delivery {
        key: key.clone(),
        message_id: "m1".into(),
        delivery: Delivery::Delivered,
    }));
    assert_snapshot!("chat_session_160x48", draw(&mut app, 160, 48));
    // :invite in a 1-1 session makes it a group (seed 002 App. M).
    assert_eq!(
        app.update(Action::RunCommand(":invite ted".into())),
        vec![Command::Extend {
            session: key.clone(),
            users: vec!["sip:ted@isc.local".into()]
        }]
    );
    // Once the session is over nothing is sent into it.
    app.update(session(SessionEvent::Closed {
        key,
        reason: "ended".into(),
    }));
    for c in "anyone?".chars() {
        assert_eq!(app.update(Action::InsertChar(c)), vec![]);
    }
    assert_eq!(app.update(Action::Send), vec![]);
    assert_eq!(app.input.text(), "anyone?");
    assert_eq!(
        app.notice.as_ref().unwrap().0,
        "this session is over (ended): :chat carol starts a new one"
    );
}

/// The player while it plays, stats hidden, after someone resumed it.
#[test]
fn player_playing_without_stats() {
    let (mut app, _) = populated();
    app.update(Action::OpenConversation(ConvId(2)));
    app.update(session(SessionEvent::Control {
        by: "sip:bob@isc.local".into(),
        what: "resumed".into(),
        at: std::time::Duration::from_secs(83),
    }));
    app.update(Action::ToggleStats);
    let screen = draw(&mut app, 160, 48);
    assert!(!screen.contains("jitter"), "{screen}");
    assert_snapshot!("viewing_playing_160x48", screen);
}

/// The content list from the server completes `:watch`.
#[test]
fn content_ids_from_the_server_complete_watch() {
    let (mut app, _) = populated();
    app.update(session(SessionEvent::Contents(vec![
        "big-buck".into(),
        "sintel".into(),
    ])));
    app.update(Action::OpenCommandLine);
    for c in "watch bi".chars() {
        app.update(Action::InsertChar(c));
    }
    app.update(Action::Complete);
    assert_eq!(
        app.prompt,
        Some(isc::tui::app::Prompt::Command {
            line: ":watch big-buck ".into(),
            matches: vec![]
        })
    );
}
