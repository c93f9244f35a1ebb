//! The flow view: the ladder of this device's messages, one selected, and
//! the selected message in full beside (or under) it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::tui::app::App;
use crate::tui::ladder::{ladder_head, ladder_row};

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let v = &app.flow;
    let (ladder_area, detail_area) = if v.detail {
        if area.width >= 140 {
            let [l, r] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(area);
            (l, Some(r))
        } else {
            let [l, r] = Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)])
                .areas(area);
            (l, Some(r))
        }
    } else {
        (area, None)
    };
    let filter = match &v.filter {
        Some(cid) => format!(" · dialog {cid} "),
        None => String::new(),
    };
    let title = format!(" Flow · {} messages{filter} ", v.len());
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(ladder_area);
    frame.render_widget(block, ladder_area);
    let entities = v.flow.entities();
    let width = inner.width as usize;
    let rows = (inner.height as usize).saturating_sub(1);
    let mut lines = vec![Line::styled(
        ladder_head(entities, width),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if v.is_empty() {
        lines.push(Line::styled(
            "  nothing on the wire yet",
            Style::new().fg(Color::DarkGray),
        ));
    }
    let selected = v.selected().unwrap_or(0);
    // The window of rows that holds the selection, newest at the bottom.
    let first = (selected + 1).saturating_sub(rows);
    for (pos, &i) in v.visible().iter().enumerate().skip(first).take(rows) {
        let ev = &v.flow.events()[i];
        let text = ladder_row(ev, entities, width);
        let style = if pos == selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        lines.push(Line::styled(text, style));
    }
    frame.render_widget(Paragraph::new(lines), inner);
    if let Some(r) = detail_area {
        let (title, body) = match v.selected_event() {
            Some(ev) => {
                let cid = v
                    .visible()
                    .get(selected)
                    .and_then(|&i| v.call_id_of(i))
                    .unwrap_or("-");
                (
                    format!(
                        " {} → {} · {:.3}s · Call-ID {cid} ",
                        ev.from,
                        ev.to,
                        ev.at.as_secs_f64()
                    ),
                    String::from_utf8_lossy(&ev.raw).replace("\r\n", "\n"),
                )
            }
            None => (" message ".into(), String::new()),
        };
        // Only the lines that fit are built.
        let lines: Vec<Line> = body
            .lines()
            .take(r.height as usize)
            .map(|l| Line::from(l.to_string()))
            .collect();
        frame.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
            r,
        );
    }
}
