//! The event loop's pieces that need no terminal: dispatching commands to
//! a port, and the exports.

mod tui_common;

use isc::client;
use isc::tui::event_loop::dispatch;
use isc::tui::{Action, ChannelPort, ClientPort, Command};
use tui_common::*;

/// A port that only knows the client core's commands, as today's client.
struct CoreOnly(Vec<Command>);

impl ClientPort for CoreOnly {
    fn send(&mut self, command: Command) -> Result<(), Command> {
        match command {
            Command::Client(_) => {
                self.0.push(command);
                Ok(())
            }
            other => Err(other),
        }
    }

    async fn next_event(&mut self) -> Option<Action> {
        None
    }
}

#[test]
fn unsupported_commands_become_a_notice_not_a_result() {
    let (mut app, _) = populated();
    let mut port = CoreOnly(Vec::new());
    for c in app.update(Action::RunCommand(":watch sintel with bob".into())) {
        dispatch(&mut app, &mut port, c);
    }
    assert!(port.0.is_empty());
    assert_eq!(
        app.notice.as_ref().unwrap().0,
        "not available in this build yet: :watch"
    );
    // Pager chat needs nothing more: no notice for :chat.
    app.notice = None;
    for c in app.update(Action::RunCommand(":chat carol".into())) {
        dispatch(&mut app, &mut port, c);
    }
    assert!(app.notice.is_none());
    for c in app.update(Action::Quit) {
        dispatch(&mut app, &mut port, c);
    }
    // Opening the empty conversation with carol asked for its history
    // (seed 003 13.1.3); then quitting shuts the client down.
    assert_eq!(
        port.0,
        vec![
            Command::Client(client::Command::History(
                client::history::HistoryQuery::conversation("sip:carol@isc.local")
            )),
            Command::Client(client::Command::Shutdown)
        ]
    );
}

#[test]
fn export_flow_writes_text_and_mermaid() {
    let (mut app, _) = populated();
    with_flow(&mut app);
    let dir = tempfile::tempdir().unwrap();
    let (txt, mmd) = (dir.path().join("flow.txt"), dir.path().join("flow.mmd"));
    let mut port = CoreOnly(Vec::new());
    for line in [
        format!(":export-flow {}", txt.display()),
        format!(":export-flow {}", mmd.display()),
    ] {
        for c in app.update(Action::RunCommand(line)) {
            dispatch(&mut app, &mut port, c);
        }
    }
    let text = std::fs::read_to_string(&txt).unwrap();
    assert!(text.contains("INVITE") && text.contains("--- #1"), "{text}");
    let mermaid = std::fs::read_to_string(&mmd).unwrap();
    assert!(
        mermaid.starts_with("sequenceDiagram") && mermaid.contains("participant alice_tv"),
        "{mermaid}"
    );
    assert!(
        app.notice
            .as_ref()
            .unwrap()
            .0
            .starts_with("flow written to")
    );
}

#[tokio::test]
async fn channel_port_carries_both_ways() {
    let (mut port, mut commands, events) = ChannelPort::pair();
    port.send(Command::StartChat {
        with: "sip:bob@isc.local".into(),
    })
    .unwrap();
    assert_eq!(
        commands.recv().await,
        Some(Command::StartChat {
            with: "sip:bob@isc.local".into()
        })
    );
    events.send(Action::ToggleHelp).unwrap();
    assert_eq!(port.next_event().await, Some(Action::ToggleHelp));
    drop(events);
    assert_eq!(port.next_event().await, None);
    drop(commands);
    assert!(port.send(Command::Join { uri: "x".into() }).is_err());
}

/// The loop on a `TestBackend` in simulated time: a message is drawn, an
/// hour with nothing happening draws nothing (no fixed tick), the composing
/// indicator's expiry is the one wake-up it needs, and ctrl-c ends it.
#[tokio::test(start_paused = true)]
async fn the_loop_draws_on_change_and_sleeps_when_idle() {
    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
    use isc::client::ClientEvent;
    use isc::tui::event_loop::run_loop;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::{Duration, Instant, SystemTime};

    let app = isc::tui::App::new(config(), Instant::now(), SystemTime::now());
    let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();
    let (keys, key_events) = futures::channel::mpsc::unbounded::<std::io::Result<Event>>();
    let (port, mut commands, actions) = ChannelPort::pair();
    let driver = async {
        actions.send(received("bob", "anyone there?")).unwrap();
        actions
            .send(Action::Client(ClientEvent::ComposingChanged {
                from: "sip:bob@isc.local".into(),
                active: true,
            }))
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let quit = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        keys.unbounded_send(Ok(Event::Key(quit))).unwrap();
    };
    let (app, ()) = tokio::join!(
        async {
            run_loop(app, &mut terminal, key_events, port)
                .await
                .unwrap()
        },
        driver
    );
    let draws = terminal.get_frame().count();
    let screen = terminal.backend().to_string();
    assert!(screen.contains("anyone there?"), "{screen}");
    // the "typing…" line expired during the hour
    assert!(!screen.contains("typing"), "{screen}");
    assert!(app.quitting);
    assert_eq!(
        commands.try_recv().ok(),
        Some(Command::Client(client::Command::Shutdown))
    );
    // First draw, the two events (one batch or two), the typing expiry,
    // ctrl-c, the end of the quit grace: a handful, not 4 per second.
    assert!((3..=8).contains(&draws), "{draws} draws in an idle hour");
}
