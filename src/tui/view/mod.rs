//! Pure rendering: `render(&App, &mut Frame)` reads the state (and the
//! clock reading in it) and changes nothing.

mod conversation;
mod flow;
mod overlay;
mod player;
mod side;

pub use player::video_area;

use std::time::{SystemTime, UNIX_EPOCH};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::action::Pane;
use super::app::{App, Prompt, Registration};

/// Where each pane sits for a terminal size (also used by tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub title: Rect,
    pub conversations: Option<Rect>,
    pub messages: Rect,
    pub input: Rect,
    pub devices: Option<Rect>,
    pub roster: Option<Rect>,
    pub player: Option<Rect>,
    pub status: Rect,
}

/// Splits the screen. Below 120×30 the side panes go and the player keeps
/// only its progress line.
pub fn areas(app: &App, area: Rect) -> Areas {
    let wide = area.width >= 120 && area.height >= 30;
    let playing = app.player.session.is_some();
    let player_h = match (playing, wide) {
        (false, _) => 0,
        (true, true) => (area.height / 3).clamp(6, 16),
        (true, false) => 2,
    };
    let [title, body, player, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(player_h),
        Constraint::Length(1),
    ])
    .areas(area);
    let (conversations, middle, side) = if wide {
        let [l, m, r] = Layout::horizontal([
            Constraint::Length(22),
            Constraint::Min(20),
            Constraint::Length(30),
        ])
        .areas(body);
        (Some(l), m, Some(r))
    } else {
        (None, body, None)
    };
    let input_lines = app.input.lines().len().clamp(1, 5) as u16;
    let [messages, input] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(input_lines + 2)]).areas(middle);
    let (devices, roster) = match side {
        Some(s) => {
            let dh = (app.devices.len() as u16 + 2).clamp(3, s.height / 2);
            let [d, r] = Layout::vertical([Constraint::Length(dh), Constraint::Min(3)]).areas(s);
            (Some(d), Some(r))
        }
        None => (None, None),
    };
    Areas {
        title,
        conversations,
        messages,
        input,
        devices,
        roster,
        player: playing.then_some(player),
        status,
    }
}

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let a = areas(app, area);
    title(app, frame, a.title);
    if app.show_flow {
        let body = Rect {
            y: a.title.y + 1,
            height: a.status.y.saturating_sub(a.title.y + 1),
            ..area
        };
        flow::render(app, frame, body);
    } else {
        if let Some(r) = a.conversations {
            conversation::list(app, frame, r);
        }
        conversation::messages(app, frame, a.messages);
        conversation::input(app, frame, a.input);
        if let Some(r) = a.devices {
            side::devices(app, frame, r);
        }
        if let Some(r) = a.roster {
            side::roster(app, frame, r);
        }
        if let Some(r) = a.player {
            player::render(app, frame, r);
        }
    }
    status(app, frame, a.status);
    if !app.invitations.is_empty() {
        overlay::invitation(app, frame, area);
    }
    if app.show_help {
        overlay::help(app, frame, area);
    }
    if let Some(Prompt::Command { matches, .. }) = &app.prompt
        && !matches.is_empty()
    {
        overlay::completions(matches, frame, a.status);
    }
}

/// A bordered block whose border shows focus.
pub(crate) fn pane_block<'a>(app: &App, pane: Pane, title: impl Into<Line<'a>>) -> Block<'a> {
    let focused = app.focus == pane && !app.show_flow && app.prompt.is_none();
    Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(if focused {
            Style::new().fg(Color::Cyan)
        } else {
            Style::new().fg(Color::DarkGray)
        })
}

fn title(app: &App, frame: &mut Frame, r: Rect) {
    let c = &app.config;
    let (reg, style) = match &app.registration {
        Registration::Registering => ("registering…".to_string(), Style::new().fg(Color::Yellow)),
        Registration::Registered { .. } => {
            ("registered".to_string(), Style::new().fg(Color::Green))
        }
        Registration::Failed { reason, retry_in } => (
            match retry_in {
                Some(d) => format!("not registered: {reason} (retry in {} s)", d.as_secs()),
                None => format!("not registered: {reason}"),
            },
            Style::new().fg(Color::Red),
        ),
        Registration::Unregistered => ("unregistered".to_string(), Style::new().fg(Color::Yellow)),
    };
    // Narrow screens drop the server and profile: who and where matter most.
    let wide = r.width >= 120;
    let server = if c.server.is_empty() || !wide {
        String::new()
    } else {
        format!(" ({})", c.server)
    };
    let profile = if wide {
        format!(" · profile {}", c.profile)
    } else {
        String::new()
    };
    let help = format!("{} help ", app.keymap.keys_of("help"));
    let left = vec![
        Span::styled(" isc ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!("· {} on {} · ", c.user, c.device)),
        Span::styled(reg, style),
        Span::raw(format!("{server}{profile}")),
    ];
    let used: usize = left.iter().map(|s| s.width()).sum();
    let fill = (r.width as usize).saturating_sub(used + help.len() + 1);
    let mut spans = left;
    spans.push(Span::styled(
        format!(" {}", "─".repeat(fill)),
        Style::new().fg(Color::DarkGray),
    ));
    spans.push(Span::raw(help));
    frame.render_widget(Paragraph::new(Line::from(spans)), r);
}

fn status(app: &App, frame: &mut Frame, r: Rect) {
    let line = match &app.prompt {
        Some(Prompt::Command { line, .. }) | Some(Prompt::Search { line }) => {
            frame.set_cursor_position((r.x + line.chars().count() as u16, r.y));
            Line::from(line.as_str())
        }
        None => match &app.notice {
            Some((text, until)) if *until > app.now => {
                Line::from(Span::styled(text.as_str(), Style::new().fg(Color::Yellow)))
            }
            _ => {
                let k = |n: &str| app.keymap.keys_of(n);
                let focus = if app.show_flow {
                    "flow"
                } else {
                    app.focus.name()
                };
                Line::from(Span::styled(
                    format!(
                        " [{focus}]  {} panes · {} command · {} search · {} unread · {} flow · {} quit",
                        k("next_pane"),
                        k("command_line"),
                        k("search"),
                        k("jump_unread"),
                        k("flow"),
                        k("quit")
                    ),
                    Style::new().fg(Color::DarkGray),
                ))
            }
        },
    };
    frame.render_widget(Paragraph::new(line), r);
}

/// `HH:MM` (UTC) of a wall-clock time.
pub fn clock(t: SystemTime) -> String {
    let s = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60)
}

/// `mm:ss`.
pub fn mmss(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}
