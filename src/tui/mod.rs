//! The terminal UI (issue 9). State apart from rendering, gitui style:
//! [`app::App`] holds everything and changes only in [`app::App::update`]
//! (an [`action::Action`] in, [`action::Command`]s out, no IO, no clock);
//! [`view::render`] draws it, purely; [`keymap`] keeps the keys as data;
//! [`event_loop::run`] owns the terminal and the one `select!`, which sleeps
//! until a key, a client event, SIGTERM or the state's next deadline
//! ([`App::next_deadline`]) and draws once per wake. The player pane's
//! picture is encoded for the terminal's graphics protocol (detected once
//! at startup, [`crate::media::picture`]) by [`App::prepare_picture`], the
//! last part of the update step, never by render.
//!
//! [`launch`] wires it for `isc` (find or embed the server, start the
//! profile's client, [`run`]) and for `isc demo` ([`demo_link::DemoLink`]
//! over the scenario's bots):
//!
//! ```ignore
//! let app_config = tui::AppConfig::from_config(&config, profile.as_deref())?;
//! let handle = client::runner::spawn_client(ua_config, bind).await?;
//! let link = tui::ClientLink::new(handle, "alice/tv", server_addr);
//! tui::run(app_config, link).await?; // restores the terminal on every exit
//! ```
//!
//! Features the client core cannot do yet still produce their
//! [`Command`]; a [`ClientPort`] hands back what it cannot run and the TUI
//! shows "not available in this build yet" instead of a result. Logging
//! must go to a file (see `crate::logging`): nothing here prints.

pub mod action;
pub mod app;
pub mod chat_link;
pub mod client_link;
pub mod command;
pub mod demo_link;
pub mod event_loop;
pub mod history_view;
pub mod input;
pub mod keymap;
pub mod ladder;
pub mod launch;
pub mod terminal;
pub mod view;
pub mod viewing_link;

pub use action::{Action, Answer, Command, Invitation, Pane, SessionEvent};
pub use app::{App, AppConfig};
pub use client_link::ClientLink;
pub use event_loop::{ChannelPort, ClientPort, run, run_app};
