//! The side panes: this user's devices, and the roster of the open conversation.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::conversation::fit;
use super::pane_block;
use crate::config::DeviceRole;
use crate::tui::action::Pane;
use crate::tui::app::{App, ConvKind, RosterStatus};

pub fn devices(app: &App, frame: &mut Frame, r: Rect) {
    let block = pane_block(app, Pane::Devices, " My devices ");
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let w = inner.width as usize;
    let lines: Vec<Line> = app
        .devices
        .iter()
        .take(inner.height as usize)
        .map(|d| {
            let (dot, color) = if d.online {
                ("●", Color::Green)
            } else {
                ("○", Color::DarkGray)
            };
            let role = match d.role {
                Some(DeviceRole::Content) => "▶",
                Some(DeviceRole::Chat) => "✎",
                Some(DeviceRole::Both) => "▶✎",
                None => "",
            };
            let name = if d.is_self {
                format!("{} (this)", d.name)
            } else {
                d.name.clone()
            };
            let left = format!("{} {:<12} ", dot, fit(&name, 12));
            let room = w.saturating_sub(left.chars().count() + role.chars().count() + 1);
            let activity = fit(&d.activity, room);
            let pad = room.saturating_sub(activity.chars().count());
            let style = if d.is_self {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::styled(format!("{dot} "), Style::new().fg(color)),
                Span::styled(format!("{:<12} ", fit(&name, 12)), style),
                Span::styled(
                    format!("{activity}{} ", " ".repeat(pad)),
                    Style::new().fg(Color::Gray),
                ),
                Span::styled(role.to_string(), Style::new().fg(Color::Cyan)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

pub fn roster(app: &App, frame: &mut Frame, r: Rect) {
    let conv = app.current_conv();
    let title = match conv {
        Some(c) => format!(" Roster · {} ", c.title),
        None => " Roster ".to_string(),
    };
    let block = pane_block(app, Pane::Roster, title);
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let Some(c) = conv else { return };
    let mut lines = Vec::new();
    if c.roster.is_empty() {
        // A 1-1 without conference state: the peer and us.
        if let ConvKind::OneToOne { .. } = c.kind {
            lines.push(Line::from(vec![
                Span::styled("● ", Style::new().fg(Color::Green)),
                Span::raw(c.title.clone()),
            ]));
        }
    }
    for e in c.roster.iter().take(inner.height as usize) {
        let blocked = app.blocklist.contains(&app.user_uri(&e.user));
        let (sym, color, what) = match e.status {
            RosterStatus::Connected => ("●", Color::Green, "connected"),
            RosterStatus::Ringing => ("◌", Color::Yellow, "ringing"),
            RosterStatus::Left => ("✕", Color::DarkGray, "left"),
        };
        let (sym, color) = if blocked {
            ("⚠", Color::Red)
        } else {
            (sym, color)
        };
        let who = if e.is_self {
            format!("{} (you)", e.user)
        } else {
            e.user.clone()
        };
        let what = if blocked {
            format!("blocked, {what}")
        } else {
            what.to_string()
        };
        let style = if e.is_self {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{sym} "), Style::new().fg(color)),
            Span::styled(format!("{:<12} ", fit(&who, 12)), style),
            Span::styled(
                what,
                Style::new().fg(if blocked { Color::Red } else { Color::Gray }),
            ),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
