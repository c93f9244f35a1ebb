//! The TUI side of Large Message (seed 003 9.x): `:send-file PATH to USER`
//! becomes the client's SendFile, and a transfer shows as one progress
//! line in its conversation, updated in place, ending with the saved path.

#[path = "tui_common/mod.rs"]
mod tui_common;

use insta::assert_snapshot;
use isc::client::chat::ChatEvent;
use isc::client::chats::ChatCommand;
use isc::client::large_message::Disposition;
use isc::tui::chat_link::{chat_command, session_events};
use isc::tui::{Action, Command};
use tui_common::{draw, empty, session};

fn feed(app: &mut isc::tui::App, ev: ChatEvent) {
    for s in session_events(ev) {
        app.update(session(s));
    }
}

fn lines_with(screen: &str, needle: &str) -> usize {
    screen.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn send_file_command_names_the_recipient() {
    let (mut app, _) = empty();
    let out = app.update(Action::RunCommand(
        ":send-file /tmp/our holiday.mp4 to bob".into(),
    ));
    let send = out
        .into_iter()
        .find(|c| matches!(c, Command::SendFile { .. }))
        .expect("a SendFile command");
    assert_eq!(
        chat_command(send),
        Ok(isc::client::Command::Chat(ChatCommand::SendFile {
            to: vec!["sip:bob@isc.local".into()],
            path: "/tmp/our holiday.mp4".into(),
            disposition: Disposition::Attachment,
            description: None,
        }))
    );
}

#[test]
fn progress_line_updates_in_place_then_names_the_saved_file() {
    let (mut app, _) = empty();
    let total = 20 * 1024 * 1024;
    feed(
        &mut app,
        ChatEvent::LargeIncoming {
            chat: 4,
            from: "sip:bob@isc.local".into(),
            content_type: Some("video/mp4".into()),
            size: total,
        },
    );
    for pct in [1u64, 10, 45] {
        feed(
            &mut app,
            ChatEvent::LargeProgress {
                chat: 4,
                outgoing: false,
                bytes: total * pct / 100,
                total,
            },
        );
    }
    let screen = draw(&mut app, 100, 16);
    assert_snapshot!("large_message_receiving_100x16", screen);
    assert_eq!(lines_with(&screen, "receiving"), 1, "{screen}");
    assert_eq!(
        lines_with(&screen, "receiving 45% · 9.0 MiB of 20.0 MiB"),
        1
    );
    feed(
        &mut app,
        ChatEvent::LargeSaved {
            chat: 4,
            from: "sip:bob@isc.local".into(),
            path: "/home/alice/Downloads/holiday (1).mp4".into(),
            size: total,
            description: Some("our holiday".into()),
        },
    );
    let screen = draw(&mut app, 100, 16);
    assert_snapshot!("large_message_saved_100x16", screen);
    assert_eq!(lines_with(&screen, "receiving"), 0, "{screen}");
    assert_eq!(
        lines_with(&screen, "saved to /home/alice/Downloads/holiday (1).mp4"),
        1,
        "{screen}"
    );
}
