//! The conversation list, the open conversation and the input.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{clock, pane_block};
use crate::tui::action::Pane;
use crate::tui::app::{
    App, ConvKind, Conversation, Delivery, Entry, EntryKind, RosterStatus, Sender, ViewPos,
};

/// Width of the sender column.
const WHO: usize = 7;

pub fn list(app: &App, frame: &mut Frame, r: Rect) {
    let block = pane_block(app, Pane::Conversations, " Conversations ");
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let w = inner.width as usize;
    let rows = inner.height as usize;
    // Keep the highlighted row in view.
    let first = app.selected.saturating_sub(rows.saturating_sub(1));
    let lines: Vec<Line> = app
        .conversations
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, c)| {
            let open = app.current.map(|x| x.0) == Some(i);
            let mark = if open { "▸ " } else { "  " };
            let name = match &c.kind {
                // An MSRP session beside the pager conversation with the same peer.
                ConvKind::OneToOne { .. } if c.session => format!("{} · chat", c.title),
                ConvKind::OneToOne { .. } => c.title.clone(),
                ConvKind::Group { .. } => format!("{} ({})", c.title, c.roster.len()),
                ConvKind::Viewing { content, .. } => format!("▶ {content} · {}", c.title),
            };
            let unread = if c.unread > 0 {
                format!("{:>3}", c.unread)
            } else {
                String::new()
            };
            let room = w.saturating_sub(2 + unread.chars().count());
            let name = fit(&name, room);
            let pad = room.saturating_sub(name.chars().count());
            let mut style = Style::new();
            if c.unread > 0 {
                style = style.add_modifier(Modifier::BOLD);
            }
            if c.closed.is_some() {
                style = style.fg(Color::DarkGray);
            }
            if i == app.selected && app.focus == Pane::Conversations {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Line::from(vec![
                Span::styled(format!("{mark}{name}{}", " ".repeat(pad)), style),
                Span::styled(
                    unread,
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ),
            ])
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![Line::from(" none yet"), Line::from(" :chat <user>")])
                .style(Style::new().fg(Color::DarkGray)),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// Cuts `s` to `n` chars with `…`.
pub fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else if n == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Breaks `text` into pieces of at most `width` chars (at spaces when it can).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        for word in para.split(' ') {
            let wl = word.chars().count();
            if len > 0 && len + 1 + wl > width {
                out.push(std::mem::take(&mut line));
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            let mut rest = word;
            while len + rest.chars().count() > width {
                let take = width - len;
                let cut = rest
                    .char_indices()
                    .nth(take)
                    .map(|(i, _)| i)
                    .unwrap_or(rest.len());
                line.push_str(&rest[..cut]);
                out.push(std::mem::take(&mut line));
                len = 0;
                rest = &rest[cut..];
            }
            line.push_str(rest);
            len += rest.chars().count();
        }
        out.push(line);
    }
    out
}

/// `2026-11-23 12:00` (UTC, as the time column).
fn sent_on(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let iso = crate::client::chats::rfc3339(secs);
    iso.get(..16).unwrap_or(&iso).replace('T', " ")
}

/// The lines one entry takes at `width`.
fn entry_lines<'a>(c: &Conversation, idx: usize, e: &'a Entry, width: usize) -> Vec<Line<'a>> {
    let time = clock(e.at);
    let indent = " ".repeat(6 + WHO + 1);
    let body_w = width.saturating_sub(6 + WHO + 1).max(8);
    let search = c.search.as_ref();
    let hit = search.is_some_and(|s| s.matches.binary_search(&idx).is_ok());
    let current_hit = search.is_some_and(|s| s.matches.get(s.current) == Some(&idx));
    let mut text_style = Style::new();
    if hit {
        text_style = text_style.bg(Color::Indexed(58));
    }
    if current_hit {
        text_style = text_style.add_modifier(Modifier::REVERSED);
    }
    match &e.kind {
        EntryKind::System(t) => {
            let style = Style::new().fg(Color::DarkGray).patch(text_style);
            wrap(t, width.saturating_sub(8).max(8))
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    let head = if i == 0 {
                        format!("{time} ─ ")
                    } else {
                        "        ".into()
                    };
                    Line::from(vec![
                        Span::styled(head, Style::new().fg(Color::DarkGray)),
                        Span::styled(l, style),
                    ])
                })
                .collect()
        }
        EntryKind::Message {
            from,
            text,
            private,
            delivery,
            late,
        } => {
            let (who, who_style) = match from {
                Sender::You => ("you".to_string(), Style::new().fg(Color::Cyan)),
                Sender::Peer(p) => (
                    p.clone(),
                    Style::new().fg(peer_color(p)).add_modifier(Modifier::BOLD),
                ),
            };
            let mut prefix = String::new();
            if let Some(to) = private {
                prefix = match from {
                    Sender::You => format!("→ {to} only: "),
                    Sender::Peer(_) => "→ you only: (private) ".to_string(),
                };
            }
            let suffix = match (delivery, late) {
                // seed 002 D.2: stored by the server, shown with when it was sent
                (_, true) => format!(" (delivered late, sent {})", sent_on(e.at)),
                (Some(Delivery::Sending), _) => " …".to_string(),
                (Some(Delivery::Delivered), _) => " ✓".to_string(),
                (Some(Delivery::Failed(why)), _) => format!(" ✗ not delivered: {why}"),
                (None, false) => String::new(),
            };
            let full = format!("{prefix}{text}{suffix}");
            let pieces = wrap(&full, body_w);
            let n = pieces.len();
            let private_style = if private.is_some() {
                Style::new().fg(Color::Magenta)
            } else {
                Style::new()
            };
            pieces
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    let mut spans = if i == 0 {
                        vec![
                            Span::styled(format!("{time} "), Style::new().fg(Color::DarkGray)),
                            Span::styled(format!("{:<WHO$} ", fit(&who, WHO)), who_style),
                        ]
                    } else {
                        vec![Span::raw(indent.clone())]
                    };
                    if i + 1 == n && !suffix.is_empty() && l.ends_with(suffix.as_str()) {
                        let cut = l.len() - suffix.len();
                        let style = match delivery {
                            Some(Delivery::Failed(_)) => Style::new().fg(Color::Red),
                            _ => Style::new().fg(Color::DarkGray),
                        };
                        spans.push(Span::styled(
                            l[..cut].to_string(),
                            private_style.patch(text_style),
                        ));
                        spans.push(Span::styled(suffix.clone(), style));
                    } else {
                        spans.push(Span::styled(l, private_style.patch(text_style)));
                    }
                    Line::from(spans)
                })
                .collect()
        }
    }
}

fn peer_color(name: &str) -> Color {
    const COLORS: [Color; 5] = [
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::LightRed,
    ];
    let h = name
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    COLORS[h % COLORS.len()]
}

/// The open conversation: only the entries that fit are laid out, so the
/// cost follows the screen, not the history.
pub fn messages(app: &App, frame: &mut Frame, r: Rect) {
    let Some(c) = app.current_conv() else {
        let block = pane_block(app, Pane::Messages, " isc ");
        let inner = block.inner(r);
        frame.render_widget(block, r);
        let k = |n: &str| app.keymap.keys_of(n);
        let hint = vec![
            Line::from(""),
            Line::from(format!(
                "  Welcome, {}. No conversation yet.",
                app.config.user
            )),
            Line::from(""),
            Line::from("  :chat <user>                          talk to someone"),
            Line::from("  :watch <content> with <user>          watch together"),
            Line::from("  :group <name> <user> <user>           start a group"),
            Line::from(""),
            Line::from(format!("  {} lists every key and command.", k("help"))),
        ];
        frame.render_widget(
            Paragraph::new(hint).style(Style::new().fg(Color::DarkGray)),
            inner,
        );
        return;
    };
    let mut title = format!(" {} ", c.title);
    if !app.wide() && !c.roster.is_empty() {
        // No roster pane at this size: a summary in the title instead.
        let count = |st: RosterStatus| {
            c.roster
                .iter()
                .filter(|e| e.status == st && !e.is_self)
                .count()
        };
        let mut parts = vec![format!("{} connected", count(RosterStatus::Connected))];
        for (st, word) in [
            (RosterStatus::Ringing, "ringing"),
            (RosterStatus::Left, "left"),
        ] {
            if count(st) > 0 {
                parts.push(format!("{} {word}", count(st)));
            }
        }
        title.push_str(&format!("· {} ", parts.join(", ")));
    }
    if let Some(s) = &c.search {
        title.push_str(&format!(
            "· /{} {}/{} ",
            s.query,
            if s.matches.is_empty() {
                0
            } else {
                s.current + 1
            },
            s.matches.len()
        ));
    }
    if let Some(why) = &c.closed {
        title.push_str(&format!("· {why} "));
    }
    let block = pane_block(app, Pane::Messages, title);
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let width = inner.width as usize;
    let typing = c.typing(app.now);
    let mut rows = inner.height as usize;
    if !typing.is_empty() && rows > 1 {
        rows -= 1;
    }
    let marker = || {
        Line::from(Span::styled(
            format!("{:─^w$}", " new ", w = width),
            Style::new().fg(Color::Red),
        ))
    };
    let n = c.entries.len();
    let mut lines: Vec<Line> = Vec::new();
    let below = |k: Option<usize>| {
        let what = match k {
            Some(k) => format!(" {k} newer below · PgDn "),
            None => " newer below · PgDn ".to_string(),
        };
        Line::from(Span::styled(
            format!("{what:─^width$}"),
            Style::new().fg(Color::DarkGray),
        ))
    };
    match c.view {
        ViewPos::Top { first } => {
            let mut idx = first.min(n);
            while idx < n && lines.len() < rows {
                if c.first_unread == Some(idx) {
                    lines.push(marker());
                }
                lines.extend(entry_lines(c, idx, &c.entries[idx], width));
                idx += 1;
            }
            if idx < n || lines.len() > rows {
                // Not everything fits: keep the last row to say so.
                lines.truncate(rows.saturating_sub(1));
                lines.push(below(None));
            }
        }
        ViewPos::Bottom { skip } => {
            let rows = if skip > 0 {
                rows.saturating_sub(1)
            } else {
                rows
            };
            let mut idx = n.saturating_sub(skip);
            while idx > 0 && lines.len() < rows {
                idx -= 1;
                let mut block = entry_lines(c, idx, &c.entries[idx], width);
                if c.first_unread == Some(idx) {
                    block.insert(0, marker());
                }
                block.append(&mut lines);
                lines = block;
            }
            if lines.len() > rows {
                lines.drain(..lines.len() - rows);
            }
            if skip > 0 {
                // Scrolled back: say so on the row kept for it.
                lines.push(below(Some(skip)));
            }
        }
    }
    if !typing.is_empty() {
        while lines.len() < rows {
            lines.push(Line::from(""));
        }
        let who = typing.join(", ");
        let verb = if typing.len() == 1 { "is" } else { "are" };
        lines.push(Line::from(Span::styled(
            format!("{who} {verb} typing…"),
            Style::new()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        )));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

pub fn input(app: &App, frame: &mut Frame, r: Rect) {
    let hint = match app.current_conv() {
        Some(c) => match &c.kind {
            ConvKind::OneToOne { .. } => format!(" to {} ", c.title),
            _ => format!(" to {} · @name: private ", c.title),
        },
        None => " : command ".into(),
    };
    let block = pane_block(app, Pane::Input, hint);
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let (row, col) = app.input.cursor();
    let rows = inner.height as usize;
    let first = row.saturating_sub(rows.saturating_sub(1));
    let lines: Vec<Line> = app
        .input
        .lines()
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, l)| Line::from(format!("{}{l}", if i == 0 { "> " } else { "  " })))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    if app.focus == Pane::Input
        && app.prompt.is_none()
        && app.invitations.is_empty()
        && !app.show_help
        && !app.show_flow
    {
        let x = inner.x + 2 + col as u16;
        let y = inner.y + (row - first) as u16;
        frame.set_cursor_position((x.min(inner.right().saturating_sub(1)), y));
    }
}
