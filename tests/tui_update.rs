//! Keys → actions → state and commands, without a terminal.

mod tui_common;

use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use isc::client::{self, ClientEvent};
use isc::tui::app::{ConvId, Delivery, EntryKind, ViewPos};
use isc::tui::{Action, Answer, App, Command, Pane, SessionEvent};
use tui_common::*;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, code: KeyCode) -> Vec<Command> {
    app.handle_key(key(code))
}

fn type_str(app: &mut App, s: &str) -> Vec<Command> {
    s.chars()
        .flat_map(|c| press(app, KeyCode::Char(c)))
        .collect()
}

#[test]
fn enter_sends_a_pager_message_and_typing_goes_out() {
    let (mut app, _) = empty();
    app.update(Action::RunCommand(":chat bob".into()));
    let typed = type_str(&mut app, "hi");
    assert_eq!(
        typed,
        vec![
            Command::Client(client::Command::Typing {
                to: "sip:bob@isc.local".into()
            });
            2
        ]
    );
    let sent = press(&mut app, KeyCode::Enter);
    assert_eq!(
        sent,
        vec![Command::Client(client::Command::SendMessage {
            to: "sip:bob@isc.local".into(),
            text: "hi".into(),
            id: Some("tui-1".into()),
        })]
    );
    assert!(app.input.is_empty());
    // The message shows as sending until the client says otherwise.
    app.update(Action::Client(ClientEvent::MessageFailed {
        id: "tui-1".into(),
        to: "sip:bob@isc.local".into(),
        status: Some(480),
        reason: "Temporarily Unavailable".into(),
        warning: None,
    }));
    let c = app.current_conv().unwrap();
    match &c.entries[0].kind {
        EntryKind::Message { delivery, .. } => {
            assert_eq!(
                delivery,
                &Some(Delivery::Failed("480 Temporarily Unavailable".into()))
            )
        }
        other => panic!("{other:?}"),
    }
    // Clearing the input stops composing.
    type_str(&mut app, "x");
    assert_eq!(
        press(&mut app, KeyCode::Backspace),
        vec![Command::Client(client::Command::StopTyping {
            to: "sip:bob@isc.local".into()
        })]
    );
}

#[test]
fn alt_enter_adds_a_line_and_up_recalls_history() {
    let (mut app, _) = empty();
    app.update(Action::RunCommand(":chat bob".into()));
    type_str(&mut app, "one");
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    type_str(&mut app, "two");
    assert_eq!(app.input.text(), "one\ntwo");
    let sent = press(&mut app, KeyCode::Enter);
    assert!(
        matches!(&sent[0], Command::Client(client::Command::SendMessage { text, .. }) if text == "one\ntwo")
    );
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input.text(), "one\ntwo");
}

#[test]
fn command_line_completes_and_watch_names_the_chat_device() {
    let (mut app, _) = populated();
    app.input.clear();
    press(&mut app, KeyCode::Char(':'));
    assert!(
        app.prompt.is_some(),
        "':' in an empty input opens the command line"
    );
    type_str(&mut app, "wa");
    press(&mut app, KeyCode::Tab);
    type_str(&mut app, "si");
    press(&mut app, KeyCode::Tab);
    type_str(&mut app, "with bo");
    press(&mut app, KeyCode::Tab);
    type_str(&mut app, "chat-on ph");
    press(&mut app, KeyCode::Tab);
    let out = press(&mut app, KeyCode::Enter);
    assert_eq!(
        out,
        vec![Command::Watch {
            content: "sintel".into(),
            with: vec!["sip:bob@isc.local".into()],
            chat_on: Some("sip:alice@isc.local;gr=urn:uuid:phone".into()),
        }]
    );
    assert!(app.prompt.is_none());
    // No fake result: no conversation appears until the session layer says so.
    assert_eq!(app.conversations.len(), 3);
}

#[test]
fn every_command_produces_its_command() {
    let (mut app, _) = populated();
    app.update(Action::OpenConversation(ConvId(1)));
    let run = |app: &mut App, s: &str| app.update(Action::RunCommand(s.into()));
    assert_eq!(
        run(&mut app, ":group g bob carol"),
        vec![Command::CreateGroup {
            name: "g".into(),
            members: vec!["sip:bob@isc.local".into(), "sip:carol@isc.local".into()]
        }]
    );
    assert_eq!(
        run(&mut app, ":invite ted"),
        vec![Command::Invite {
            session: "sip:team@isc.local".into(),
            users: vec!["sip:ted@isc.local".into()]
        }]
    );
    assert_eq!(
        run(&mut app, ":join team"),
        vec![Command::Join {
            uri: "sip:team@isc.local".into()
        }]
    );
    assert_eq!(
        run(&mut app, ":rejoin"),
        vec![Command::Rejoin {
            uri: "sip:team@isc.local".into()
        }]
    );
    // The player is paused (bob paused it): :pause resumes.
    assert_eq!(
        run(&mut app, ":pause"),
        vec![Command::Resume {
            session: "cv-1".into()
        }]
    );
    assert_eq!(
        run(&mut app, ":seek +10"),
        vec![Command::Seek {
            session: "cv-1".into(),
            to: Duration::from_secs(93)
        }]
    );
    assert_eq!(
        run(&mut app, ":block ted"),
        vec![Command::Block {
            user: "sip:ted@isc.local".into()
        }]
    );
    assert!(app.blocklist.contains("sip:ted@isc.local"));
    assert_eq!(
        run(&mut app, ":send-file /tmp/x.png"),
        vec![Command::SendFile {
            to: "sip:team@isc.local".into(),
            path: PathBuf::from("/tmp/x.png")
        }]
    );
    assert_eq!(
        run(&mut app, ":export-flow /tmp/f.txt"),
        vec![Command::ExportFlow {
            path: "/tmp/f.txt".into(),
            mermaid: false
        }]
    );
    assert!(run(&mut app, ":bogus").is_empty());
    assert!(app.notice.as_ref().unwrap().0.contains("unknown command"));
    assert_eq!(
        run(&mut app, ":quit"),
        vec![Command::Client(client::Command::Shutdown)]
    );
    assert!(app.quitting);
    assert!(run(&mut app, ":quit").is_empty(), "shutdown asked once");
}

#[test]
fn group_messages_can_be_private() {
    let (mut app, _) = populated();
    app.update(Action::OpenConversation(ConvId(1)));
    type_str(&mut app, "@bob: just you");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![Command::SendChat {
            session: "sip:team@isc.local".into(),
            text: "just you".into(),
            private_to: Some("sip:bob@isc.local".into()),
        }]
    );
}

#[test]
fn tab_cycles_visible_panes() {
    let (mut app, _) = populated();
    app.update(Action::Resize {
        width: 160,
        height: 48,
    });
    let mut seen = vec![app.focus];
    for _ in 0..6 {
        press(&mut app, KeyCode::Tab);
        seen.push(app.focus);
    }
    assert_eq!(
        seen,
        vec![
            Pane::Input,
            Pane::Devices,
            Pane::Roster,
            Pane::Player,
            Pane::Conversations,
            Pane::Messages,
            Pane::Input
        ]
    );
    app.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    assert_eq!(app.focus, Pane::Messages);
    // At 80×24 the side panes are gone from the cycle.
    app.update(Action::Resize {
        width: 80,
        height: 24,
    });
    assert_eq!(app.panes(), vec![Pane::Messages, Pane::Input, Pane::Player]);
}

#[test]
fn conversation_list_navigation_opens_and_clears_unread() {
    let (mut app, _) = populated();
    app.update(Action::Resize {
        width: 160,
        height: 48,
    });
    app.update(Action::Focus(Pane::Conversations));
    assert_eq!(app.conversations[1].unread, 2);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.current, Some(ConvId(1)));
    assert_eq!(app.conversations[1].unread, 0);
    assert_eq!(app.focus, Pane::Input);
}

#[test]
fn scrolling_paging_wheel_and_unread_jump() {
    let (mut app, _) = populated();
    for i in 0..50 {
        app.update(received("bob", &format!("m{i}")));
    }
    press(&mut app, KeyCode::PageUp);
    let ViewPos::Bottom { skip } = app.current_conv().unwrap().view else {
        panic!()
    };
    assert!(skip > 0);
    // New messages while scrolled back count as unread and keep the view still.
    app.update(received("bob", "new one"));
    let c = app.current_conv().unwrap();
    assert_eq!(c.view, ViewPos::Bottom { skip: skip + 1 });
    assert_eq!(c.unread, 1);
    let first = c.first_unread.unwrap();
    app.handle_mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    });
    let ViewPos::Bottom { skip: after } = app.current_conv().unwrap().view else {
        panic!()
    };
    assert_eq!(after, skip + 1 - 3);
    app.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::ALT));
    assert_eq!(app.current_conv().unwrap().view, ViewPos::Top { first });
    press(&mut app, KeyCode::PageDown);
    for _ in 0..20 {
        press(&mut app, KeyCode::PageDown);
    }
    assert_eq!(
        app.current_conv().unwrap().view,
        ViewPos::Bottom { skip: 0 }
    );
}

#[test]
fn search_moves_between_matches() {
    let (mut app, _) = populated();
    for i in 0..10 {
        app.update(received("bob", &format!("needle {i}")));
    }
    app.input.clear();
    press(&mut app, KeyCode::Char('/'));
    type_str(&mut app, "NEEDLE");
    press(&mut app, KeyCode::Enter);
    let s = app.current_conv().unwrap().search.clone().unwrap();
    assert_eq!(s.matches.len(), 10);
    assert_eq!(s.current, 9);
    press(&mut app, KeyCode::Esc); // leave the input
    assert_eq!(app.focus, Pane::Messages);
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(
        app.current_conv().unwrap().search.as_ref().unwrap().current,
        8
    );
    app.handle_key(KeyEvent::new(KeyCode::Char('N'), KeyModifiers::SHIFT));
    press(&mut app, KeyCode::Char('N'));
    assert_eq!(
        app.current_conv().unwrap().search.as_ref().unwrap().current,
        0,
        "wraps"
    );
}

#[test]
fn invitations_are_answered_by_key() {
    let (mut app, _) = populated();
    app.update(Action::Session(SessionEvent::Invitation(invitation())));
    // While it shows, typing goes to the popup, not the input.
    assert!(press(&mut app, KeyCode::Char('x')).is_empty());
    press(&mut app, KeyCode::Char('i'));
    assert!(app.show_invite);
    press(&mut app, KeyCode::Esc);
    assert!(!app.show_invite);
    assert_eq!(
        press(&mut app, KeyCode::Char('s')),
        vec![Command::AnswerInvitation {
            id: invitation().id,
            answer: Answer::AcceptSplit {
                chat_on: "sip:alice@isc.local;gr=urn:uuid:phone".into()
            },
        }]
    );
    assert!(app.invitations.is_empty());
    app.update(Action::Session(SessionEvent::Invitation(invitation())));
    assert_eq!(
        press(&mut app, KeyCode::Char('d')),
        vec![Command::AnswerInvitation {
            id: invitation().id,
            answer: Answer::Decline
        }]
    );
    app.update(Action::Session(SessionEvent::Invitation(invitation())));
    app.update(Action::Session(SessionEvent::InvitationGone {
        id: invitation().id,
        reason: "bob cancelled".into(),
    }));
    assert!(app.invitations.is_empty());
}

#[test]
fn split_accept_needs_another_device() {
    let (mut app, _) = empty();
    app.update(Action::Session(SessionEvent::Invitation(invitation())));
    assert!(press(&mut app, KeyCode::Char('s')).is_empty());
    assert_eq!(app.invitations.len(), 1, "still waiting for an answer");
    assert!(app.notice.is_some());
}

#[test]
fn composing_expires_on_the_clock() {
    let (mut app, now) = populated();
    assert_eq!(app.current_conv().unwrap().typing(app.now), vec!["bob"]);
    tick(&mut app, now, 1);
    assert_eq!(app.current_conv().unwrap().typing(app.now), vec!["bob"]);
    tick(&mut app, now, 4);
    assert!(app.current_conv().unwrap().typing(app.now).is_empty());
    assert!(
        app.current_conv().unwrap().composing.is_empty(),
        "tick drops it from the state too"
    );
}

#[test]
fn flow_view_keys_select_filter_and_detail() {
    let (mut app, _) = populated();
    with_flow(&mut app);
    app.handle_key(KeyEvent::new(KeyCode::F(3), KeyModifiers::NONE));
    assert!(app.show_flow);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up);
    assert_eq!(app.flow.selected_event().unwrap().label, "200 OK (INVITE)");
    press(&mut app, KeyCode::Enter);
    assert!(app.flow.detail);
    press(&mut app, KeyCode::Char('f'));
    assert_eq!(app.flow.filter.as_deref(), Some("cv-1"));
    assert_eq!(app.flow.len(), 4);
    app.handle_key(KeyEvent::new(KeyCode::Char('F'), KeyModifiers::SHIFT));
    assert_eq!(app.flow.len(), 6);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Esc);
    assert!(!app.show_flow);
}

#[test]
fn help_lists_from_the_key_map_and_overrides_apply() {
    let mut config = config();
    config.keys.insert("quit".into(), "ctrl-x".into());
    config.keys.insert("help".into(), "f2".into());
    let mut app = App::new(config, std::time::Instant::now(), wall(0));
    assert!(
        app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))
            .is_empty()
    );
    app.handle_key(KeyEvent::new(KeyCode::F(2), KeyModifiers::NONE));
    assert!(app.show_help);
    let screen = draw(&mut app, 160, 48);
    assert!(
        screen.contains("ctrl-x") && screen.contains(":watch <content> with"),
        "{screen}"
    );
    press(&mut app, KeyCode::Esc);
    assert!(!app.show_help);
    assert_eq!(
        app.handle_key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::CONTROL)),
        vec![Command::Client(client::Command::Shutdown)]
    );
}

#[test]
fn registration_and_devices_follow_client_events() {
    let (mut app, _) = populated();
    assert_eq!(
        app.devices
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["tv", "laptop", "phone"]
    );
    assert!(!app.devices[1].online);
    app.update(Action::Client(ClientEvent::RegistrationFailed {
        status: Some(403),
        reason: "Forbidden".into(),
        retry_in: None,
    }));
    let screen = draw(&mut app, 160, 48);
    assert!(screen.contains("not registered: 403 Forbidden"), "{screen}");
    // Devices that disappear from the reg-event state stay, offline.
    app.update(Action::Client(ClientEvent::DevicesChanged {
        devices: vec![],
    }));
    assert!(app.devices.iter().all(|d| d.is_self || !d.online));
}

#[test]
fn session_roster_changes_write_join_and_leave_lines() {
    let (app, _) = populated();
    let team = &app.conversations[1];
    let lines: Vec<&str> = team.entries.iter().map(|e| e.text()).collect();
    assert!(lines.contains(&"ted left"), "{lines:?}");
    assert!(
        lines.contains(&"mallory (blocked) joined") || lines.contains(&"mallory joined"),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("carol joined")),
        "ringing is not joined"
    );
}

#[test]
fn player_keys_pause_seek_and_toggle_stats() {
    let (mut app, _) = populated();
    app.update(Action::Focus(Pane::Player));
    // bob paused it: space resumes for everyone.
    assert_eq!(
        press(&mut app, KeyCode::Char(' ')),
        vec![Command::Resume {
            session: "cv-1".into()
        }]
    );
    assert_eq!(
        press(&mut app, KeyCode::Left),
        vec![Command::Seek {
            session: "cv-1".into(),
            to: Duration::from_secs(73)
        }]
    );
    assert!(app.player.show_stats);
    press(&mut app, KeyCode::Char('s'));
    assert!(!app.player.show_stats);
    // The shown state changes only when the session layer reports it.
    assert!(app.player.paused);
    app.update(Action::Session(SessionEvent::Control {
        by: "sip:alice@isc.local".into(),
        what: "resumed".into(),
        at: Duration::from_secs(83),
    }));
    assert!(!app.player.paused);
}

#[test]
fn player_draws_truecolor_half_blocks() {
    let (mut app, _) = populated();
    app.update(Action::Resize {
        width: 160,
        height: 48,
    });
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 48)).unwrap();
    t.draw(|f| isc::tui::view::render(&app, f)).unwrap();
    let buf = t.backend().buffer();
    let cell = (0..160u16)
        .flat_map(|x| (0..48u16).map(move |y| (x, y)))
        .find_map(|p| buf.cell(p).filter(|c| c.symbol() == "▀"))
        .expect("a video cell");
    assert!(
        matches!(cell.fg, ratatui::style::Color::Rgb(..))
            && matches!(cell.bg, ratatui::style::Color::Rgb(..))
    );
}

#[test]
fn app_config_from_the_config_file() {
    let text = r#"
[client]
default_profile = "alice-tv"
server = "127.0.0.1:5070"

[[client.profiles]]
name = "alice-tv"
user = "alice"
password = "secret"
device = "tv"
role = "content"

[client.keys]
quit = "ctrl-x"
"#;
    let config =
        isc::config::Config::from_str_with_path(text, std::path::Path::new("t.toml")).unwrap();
    let c = isc::tui::AppConfig::from_config(&config, None).unwrap();
    assert_eq!(
        (c.user.as_str(), c.device.as_str(), c.profile.as_str()),
        ("alice", "tv", "alice-tv")
    );
    assert_eq!(c.domain, config.server.domain);
    assert_eq!(c.server, "127.0.0.1:5070");
    assert_eq!(c.role, isc::config::DeviceRole::Content);
    assert_eq!(c.keys.get("quit").map(String::as_str), Some("ctrl-x"));
    assert!(!c.users.contains(&"alice".to_string()));
    assert!(isc::tui::AppConfig::from_config(&config, Some("nope")).is_none());
}

#[test]
fn a_click_opens_a_listed_conversation_or_focuses_the_pane() {
    use isc::tui::Pane;
    use isc::tui::app::ConvId;
    let (mut app, _) = populated();
    app.update(Action::Resize {
        width: 160,
        height: 48,
    });
    let click = |app: &mut isc::tui::App, column: u16, row: u16| {
        app.handle_mouse(MouseEvent {
            kind: MouseEventKind::Down(crossterm::event::MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    let r = ratatui::layout::Rect::new(0, 0, 160, 48);
    let a = isc::tui::view::areas(&app, r);
    let list = a.conversations.unwrap();
    // the second row of the list (inside the border): the group
    click(&mut app, list.x + 3, list.y + 2);
    assert_eq!(app.current, Some(ConvId(1)));
    assert_eq!(app.focus, Pane::Input);
    // below the last conversation: only the focus moves
    click(&mut app, list.x + 3, list.y + 10);
    assert_eq!(app.current, Some(ConvId(1)));
    assert_eq!(app.focus, Pane::Conversations);
    let devices = a.devices.unwrap();
    click(&mut app, devices.x + 2, devices.y + 1);
    assert_eq!(app.focus, Pane::Devices);
    // the player pane under the conversation
    let player = isc::tui::view::areas(&app, r).player.unwrap();
    click(&mut app, player.x + 2, player.y + 2);
    assert_eq!(app.focus, Pane::Player);
}
