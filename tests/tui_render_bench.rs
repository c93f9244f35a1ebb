//! Render benchmark: prints, asserts nothing. One frame at 200×60 with
//! 100,000 messages in the open conversation's scrollback, against 100, to
//! show the cost follows the screen and not the history.
//!
//! `cargo test --release --test tui_render_bench -- --nocapture`

mod tui_common;

use std::time::{Duration, Instant};

use isc::tui::app::ViewPos;
use isc::tui::{Action, App};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui_common::*;

fn app_with(n: usize) -> App {
    let (mut app, _) = populated();
    for i in 0..n {
        let text = if i % 7 == 0 {
            format!(
                "message {i}: a longer line that wraps at two hundred columns only when it is really rather long, which this one is, going on and on and on for a while"
            )
        } else {
            format!("message {i}")
        };
        app.update(received("bob", &text));
    }
    app.update(Action::Resize {
        width: 200,
        height: 60,
    });
    app
}

fn time_frames(app: &App, frames: u32) -> Duration {
    let mut t = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let start = Instant::now();
    for _ in 0..frames {
        t.draw(|f| isc::tui::view::render(app, f)).unwrap();
    }
    start.elapsed() / frames
}

#[test]
fn render_cost_follows_the_screen_not_the_history() {
    let frames = 50;
    for n in [100, 100_000] {
        let mut app = app_with(n);
        let bottom = time_frames(&app, frames);
        if let Some(c) = app.current.map(|c| c.0) {
            app.conversations[c].view = ViewPos::Bottom { skip: n / 2 };
        }
        let middle = time_frames(&app, frames);
        println!(
            "200x60, {n:>7} messages: {:>8.1} µs/frame at the bottom, {:>8.1} µs/frame scrolled to the middle",
            bottom.as_secs_f64() * 1e6,
            middle.as_secs_f64() * 1e6
        );
    }
}
