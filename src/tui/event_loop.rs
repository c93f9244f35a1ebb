//! The one loop: a `select!` over terminal events, client events, SIGTERM
//! and the state's next deadline. It feeds [`App::update`], hands the
//! commands to the client side and draws once per wake.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::{FutureExt, Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use super::action::{Action, Command};
use super::app::{App, AppConfig};
use super::terminal::TerminalGuard;
use super::view;

/// How long quitting waits for the client's shutdown (un-REGISTER).
pub const QUIT_GRACE: Duration = Duration::from_secs(3);
/// At most this many client events already waiting are applied before a redraw
/// (frames among them replace each other: only the newest is drawn).
pub const BATCH: usize = 256;

/// What the TUI needs from the client side.
pub trait ClientPort {
    /// Hands a command over; gives it back when this build cannot do it yet
    /// (the TUI then says so instead of pretending).
    fn send(&mut self, command: Command) -> Result<(), Command>;
    /// The next event: a client event, a flow record, a session event, all
    /// as [`Action`]s. `None` when the client side is gone. Must be
    /// cancel-safe (it is raced against the terminal in a `select!`).
    fn next_event(&mut self) -> impl Future<Output = Option<Action>> + Send;
}

/// A [`ClientPort`] over two channels: every command goes out as it is;
/// whoever reads decides what it can do.
pub struct ChannelPort {
    pub commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::UnboundedReceiver<Action>,
}

impl ChannelPort {
    /// The port and the other ends (commands to read, actions to send).
    pub fn pair() -> (
        ChannelPort,
        mpsc::UnboundedReceiver<Command>,
        mpsc::UnboundedSender<Action>,
    ) {
        let (ctx, crx) = mpsc::unbounded_channel();
        let (etx, erx) = mpsc::unbounded_channel();
        (
            ChannelPort {
                commands: ctx,
                events: erx,
            },
            crx,
            etx,
        )
    }
}

impl ClientPort for ChannelPort {
    fn send(&mut self, command: Command) -> Result<(), Command> {
        self.commands.send(command).map_err(|e| e.0)
    }

    fn next_event(&mut self) -> impl Future<Output = Option<Action>> + Send {
        self.events.recv()
    }
}

/// Runs the TUI until the user quits or SIGTERM: takes over the terminal,
/// and gives it back whatever happens.
pub async fn run<P: ClientPort>(config: AppConfig, port: P) -> io::Result<()> {
    let app = App::new(config, now(), SystemTime::now());
    run_app(app, port).await.map(|_| ())
}

/// [`run`] with a prepared state; returns the final state.
pub async fn run_app<P: ClientPort>(app: App, port: P) -> io::Result<App> {
    let mut guard = TerminalGuard::enter()?;
    let result = run_loop(app, &mut guard.terminal, EventStream::new(), port).await;
    drop(guard);
    result
}

/// What woke the loop.
enum Wake {
    Terminal(Option<io::Result<Event>>),
    Client(Option<Action>),
    /// A deadline of the state ([`App::next_deadline`]) or of quitting.
    Deadline,
    Sigterm,
}

/// The loop itself, on any backend and any terminal event stream (tests
/// and the idle benchmark run it on a `TestBackend`). It sleeps until
/// something happens: a terminal event, a client event, SIGTERM, or the
/// state's next deadline — no fixed tick, no polling. Each wake applies
/// what is ready (at most [`BATCH`] events), prepares the picture and
/// draws once.
pub async fn run_loop<B, S, P>(
    mut app: App,
    terminal: &mut Terminal<B>,
    mut events: S,
    mut port: P,
) -> io::Result<App>
where
    B: Backend,
    B::Error: std::error::Error + Send + Sync + 'static,
    S: Stream<Item = io::Result<Event>> + Unpin,
    P: ClientPort,
{
    let size = terminal.size().map_err(backend_error)?;
    app.update(Action::Resize {
        width: size.width,
        height: size.height,
    });
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut client_open = true;
    let mut quit_by: Option<Instant> = None;
    loop {
        app.prepare_picture();
        terminal
            .draw(|f| view::render(&app, f))
            .map_err(backend_error)?;
        #[cfg(unix)]
        let sigterm = term.recv();
        #[cfg(not(unix))]
        let sigterm = std::future::pending::<Option<()>>();
        let wake_at = app.next_deadline().into_iter().chain(quit_by).min();
        let deadline = async move {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let wake = tokio::select! {
            ev = events.next() => Wake::Terminal(ev),
            ev = port.next_event(), if client_open => Wake::Client(ev),
            _ = deadline => Wake::Deadline,
            _ = sigterm => Wake::Sigterm,
        };
        // The clock first: what follows is stamped with the time it happened.
        app.update(Action::Tick {
            now: now(),
            wall: SystemTime::now(),
        });
        let mut commands = apply(&mut app, wake, &mut client_open)?;
        // Client events already waiting join this redraw. (Not terminal
        // events: crossterm's EventStream must only be polled with the
        // loop's own waker, or its reader thread wakes nobody.)
        for _ in 0..BATCH {
            if !client_open {
                break;
            }
            let Some(ev) = port.next_event().now_or_never() else {
                break;
            };
            commands.extend(apply(&mut app, Wake::Client(ev), &mut client_open)?);
        }
        for c in commands {
            dispatch(&mut app, &mut port, c);
        }
        if app.quitting {
            let by = *quit_by.get_or_insert_with(|| now() + QUIT_GRACE);
            if app.stopped || !client_open || now() >= by {
                break;
            }
        }
    }
    Ok(app)
}

/// The loop's clock is its timer's: deadlines it sleeps until are met by
/// the `now` it then hands the state (also under tokio's paused test time).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A backend's error as the loop's `io::Error` (crossterm's is one already).
fn backend_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> io::Error {
    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
    match e.downcast::<io::Error>() {
        Ok(io) => *io,
        Err(other) => io::Error::other(other),
    }
}

fn apply(app: &mut App, wake: Wake, client_open: &mut bool) -> io::Result<Vec<Command>> {
    Ok(match wake {
        Wake::Terminal(Some(Ok(ev))) => terminal_event(app, ev),
        Wake::Terminal(Some(Err(e))) => return Err(e),
        Wake::Terminal(None) => app.update(Action::Quit),
        Wake::Client(Some(a)) => app.update(a),
        Wake::Client(None) => {
            *client_open = false;
            app.notify("the client stopped");
            Vec::new()
        }
        // The Tick before `apply` did what the deadline was for.
        Wake::Deadline => Vec::new(),
        Wake::Sigterm => {
            tracing::info!("SIGTERM: quitting");
            app.update(Action::Quit)
        }
    })
}

fn terminal_event(app: &mut App, ev: Event) -> Vec<Command> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => app.handle_key(k),
        Event::Mouse(m) => app.handle_mouse(m),
        Event::Paste(text) => app.update(Action::Paste(text)),
        Event::Resize(width, height) => app.update(Action::Resize { width, height }),
        _ => Vec::new(),
    }
}

/// Runs one command: local ones (export) here, the rest through the port;
/// what the port cannot do yet becomes a status notice, never a fake result.
pub fn dispatch<P: ClientPort>(app: &mut App, port: &mut P, c: Command) {
    match c {
        Command::ExportFlow { path, mermaid } => {
            match std::fs::write(&path, app.flow.export(mermaid)) {
                Ok(()) => app.notify(format!("flow written to {}", path.display())),
                Err(e) => app.notify(format!("cannot write {}: {e}", path.display())),
            }
        }
        c => {
            if let Err(c) = port.send(c) {
                let what = match &c {
                    // Pager chat needs no session: the pager conversation
                    // `:chat` opened stays the conversation.
                    Command::StartChat { .. } => {
                        app.pending_chat = None;
                        return;
                    }
                    // Nobody is told we type: nothing to say either.
                    Command::SessionTyping { .. } => return,
                    Command::Client(_) => "the client is not running".to_string(),
                    other => format!("not available in this build yet: {}", name(other)),
                };
                app.notify(what);
            }
        }
    }
}

fn name(c: &Command) -> &'static str {
    match c {
        Command::Client(_) => "client",
        Command::StartChat { .. } => ":chat",
        Command::SendChat { .. } | Command::SessionTyping { .. } => "session chat",
        Command::Watch { .. } => ":watch",
        Command::CreateGroup { .. } => ":group",
        Command::Invite { .. } | Command::Extend { .. } => ":invite",
        Command::Join { .. } => ":join",
        Command::Rejoin { .. } => ":rejoin",
        Command::Pause { .. } | Command::Resume { .. } => ":pause",
        Command::Seek { .. } => ":seek",
        Command::Block { .. } | Command::Unblock { .. } => ":block",
        Command::SendFile { .. } => ":send-file",
        Command::AnswerInvitation { .. } => "answering invitations",
        Command::ExportFlow { .. } => ":export-flow",
    }
}
