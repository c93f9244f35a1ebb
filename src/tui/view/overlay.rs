//! Things drawn on top: the invitation popup, the help, completions.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::tui::app::App;
use crate::tui::keymap::COMMANDS;

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub fn invitation(app: &App, frame: &mut Frame, area: Rect) {
    let Some(inv) = app.invitations.front() else {
        return;
    };
    let from = app.short_name(&inv.from);
    let what = match (&inv.content, inv.with_chat, &inv.group) {
        (Some(c), true, _) => format!("{from} invites you to watch \"{c}\" (with chat)"),
        (Some(c), false, _) => format!("{from} invites you to watch \"{c}\""),
        (None, _, Some(g)) => format!("{from} invites you to the group {}", app.short_name(g)),
        (None, _, None) => format!("{from} wants to chat"),
    };
    let more = if app.invitations.len() > 1 {
        format!(" (+{} more)", app.invitations.len() - 1)
    } else {
        String::new()
    };
    let k = |n: &str| app.keymap.keys_of(n);
    let key = |s: String| {
        Span::styled(
            s,
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        )
    };
    let mut lines = vec![Line::from(vec![
        key(format!("[{}]", k("accept"))),
        Span::raw(" accept here    "),
        key(format!("[{}]", k("decline"))),
        Span::raw(" decline    "),
        key(format!("[{}]", k("show_invite"))),
        Span::raw(" show the INVITE"),
    ])];
    if inv.content.is_some() {
        let other = app
            .devices
            .iter()
            .find(|d| !d.is_self && d.online)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| "my other device".into());
        lines.push(Line::from(vec![
            key(format!("[{}]", k("accept_split"))),
            Span::raw(format!(" play here, chat on {other}")),
        ]));
    }
    let title = format!(" {what}{more} ");
    let w = (title.chars().count() as u16 + 4).max(64);
    let r = centered(area, w, lines.len() as u16 + 2);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title)
                .border_style(Style::new().fg(Color::Yellow)),
        ),
        r,
    );
    if app.show_invite {
        let raw = String::from_utf8_lossy(&inv.raw).replace("\r\n", "\n");
        let big = centered(
            area,
            area.width.saturating_sub(8),
            area.height.saturating_sub(6),
        );
        frame.render_widget(Clear, big);
        frame.render_widget(
            Paragraph::new(raw).wrap(Wrap { trim: false }).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" INVITE · esc closes "),
            ),
            big,
        );
    }
}

/// Every key (from the key map) and every command.
pub fn help(app: &App, frame: &mut Frame, area: Rect) {
    let r = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    frame.render_widget(Clear, r);
    let head = Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
    let keys_style = Style::new().fg(Color::Yellow);
    let mut left = vec![Line::from(Span::styled("Keys", head))];
    for b in &app.keymap.bindings {
        let keys: Vec<String> = b.keys.iter().map(|k| k.to_string()).collect();
        left.push(Line::from(vec![
            Span::styled(format!("{:<22}", keys.join(" ")), keys_style),
            Span::raw(format!("{:<23}", b.context.name())),
            Span::raw(b.help),
        ]));
    }
    left.push(Line::from(vec![
        Span::styled(format!("{:<22}", "←→ home end bs"), keys_style),
        Span::raw(format!("{:<23}", "input")),
        Span::raw("edit (fixed)"),
    ]));
    left.push(Line::from(vec![
        Span::styled(format!("{:<22}", "wheel"), keys_style),
        Span::raw(format!("{:<23}", "everywhere")),
        Span::raw("scroll"),
    ]));
    let mut right = vec![Line::from(Span::styled("Commands", head))];
    for c in COMMANDS {
        right.push(Line::from(Span::styled(c.usage, keys_style)));
        right.push(Line::from(format!("    {}", c.help)));
    }
    right.push(Line::from(""));
    right.push(Line::from("[client.keys] in the config file rebinds"));
    right.push(Line::from("any key by its action name, e.g."));
    right.push(Line::from("  quit = \"ctrl-x\""));
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" help · ↑↓ pgup pgdn scroll · esc closes ")
        .border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(r);
    frame.render_widget(block, r);
    if inner.width >= 110 {
        let lw = inner.width * 3 / 5;
        frame.render_widget(Paragraph::new(left), Rect { width: lw, ..inner });
        frame.render_widget(
            Paragraph::new(right),
            Rect {
                x: inner.x + lw + 1,
                width: inner.width - lw - 1,
                ..inner
            },
        );
    } else {
        left.push(Line::from(""));
        left.extend(right);
        frame.render_widget(Paragraph::new(left), inner);
    }
}

/// Candidates above the command line.
pub fn completions(matches: &[String], frame: &mut Frame, status: Rect) {
    let h = (matches.len() as u16).min(8) + 2;
    let w = matches.iter().map(|m| m.chars().count()).max().unwrap_or(0) as u16 + 4;
    let r = Rect {
        x: status.x + 1,
        y: status.y.saturating_sub(h),
        width: w.min(status.width),
        height: h.min(status.y),
    };
    frame.render_widget(Clear, r);
    let lines: Vec<Line> = matches
        .iter()
        .map(|m| Line::from(format!(" {m}")))
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::new().fg(Color::DarkGray)),
        ),
        r,
    );
}
