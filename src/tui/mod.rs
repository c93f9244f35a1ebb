//! The terminal UI (issue 9). State apart from rendering, gitui style:
//! [`app::App`] holds everything and changes only in [`app::App::update`]
//! (an [`action::Action`] in, [`action::Command`]s out, no IO, no clock);
//! [`view::render`] draws it, purely; [`keymap`] keeps the keys as data;
//! [`event_loop::run`] owns the terminal and the one `select!`.

pub mod action;
pub mod app;
pub mod client_link;
pub mod command;
pub mod event_loop;
pub mod input;
pub mod keymap;
pub mod ladder;
pub mod terminal;
pub mod view;

pub use action::{Action, Answer, Command, Invitation, Pane, SessionEvent};
pub use app::{App, AppConfig};
pub use client_link::ClientLink;
pub use event_loop::{ChannelPort, ClientPort, run, run_app};
