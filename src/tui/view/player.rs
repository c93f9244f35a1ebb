//! The player: the frame (in the terminal's graphics protocol when the
//! update step prepared it, else in truecolor half-blocks), a progress bar,
//! who paused or seeked, and the stream stats.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::mmss;
use crate::media::video::render_half_blocks;
use crate::tui::action::Pane;
use crate::tui::app::App;

/// The player pane's block, its picture area and its progress line.
fn split(app: &App, r: Rect) -> (Block<'static>, Rect, Rect) {
    let p = &app.player;
    let title = format!(" {} ", p.title.as_deref().unwrap_or("player"));
    let focused = app.focus == Pane::Player && app.prompt.is_none();
    let block = Block::default()
        .borders(Borders::TOP)
        .title(title)
        .title_alignment(ratatui::layout::Alignment::Center)
        .border_style(Style::new().fg(if focused {
            Color::Cyan
        } else {
            Color::DarkGray
        }));
    let inner = block.inner(r);
    let video = Rect {
        height: inner.height.saturating_sub(1),
        ..inner
    };
    let bar = Rect {
        y: inner.bottom().saturating_sub(1),
        height: inner.height.min(1),
        ..inner
    };
    (block, video, bar)
}

/// Where the picture goes at the app's terminal size (None: no player or no
/// room for a picture). The update step prepares pictures for this area.
pub fn video_area(app: &App) -> Option<Rect> {
    let (w, h) = app.size;
    let r = super::areas(app, Rect::new(0, 0, w, h)).player?;
    let (_, video, _) = split(app, r);
    (video.width > 0 && video.height > 0).then_some(video)
}

pub fn render(app: &App, frame: &mut Frame, r: Rect) {
    let p = &app.player;
    let (block, video, bar) = split(app, r);
    frame.render_widget(block, r);
    if bar.height == 0 {
        return;
    }
    match &p.frame {
        // kitty / sixel / iTerm2: the image prepared in the update step.
        Some(_) if video.height > 0 && app.picture.ready_for(video) => {
            app.picture.render(video, frame.buffer_mut())
        }
        // The player's renderer: area-averaged `▀` cells, aspect kept, centred.
        Some(f) if video.height > 0 => render_half_blocks(f, video, frame.buffer_mut()),
        None if video.height > 0 => frame.render_widget(
            Paragraph::new("(waiting for video)")
                .style(Style::new().fg(Color::DarkGray))
                .alignment(ratatui::layout::Alignment::Center),
            Rect {
                y: video.y + video.height / 2,
                height: 1,
                ..video
            },
        ),
        _ => {}
    }
    frame.render_widget(Paragraph::new(progress(app, bar.width as usize)), bar);
}

fn progress(app: &App, width: usize) -> Line<'static> {
    let p = &app.player;
    let state = if p.paused { "⏸" } else { "▶" };
    let total = p.duration.map(mmss).unwrap_or_else(|| "--:--".into());
    let head = format!("{state} {} / {total} ", mmss(p.position));
    let mut tail = String::new();
    if let Some((who, what, at)) = &p.last_control {
        tail.push_str(&format!(" {who} {what} at {}", mmss(*at)));
    }
    if p.show_stats
        && let Some(s) = &p.stats
    {
        tail.push_str(&format!(
            " · loss {:.1}% · jitter {:.0} ms · {} pkts",
            s.loss_pct, s.jitter_ms, s.packets
        ));
    }
    let bar_w = width
        .saturating_sub(head.chars().count() + tail.chars().count())
        .clamp(0, 60);
    let filled = match p.duration {
        Some(d) if !d.is_zero() && bar_w > 0 => {
            ((p.position.as_secs_f64() / d.as_secs_f64()).clamp(0.0, 1.0) * (bar_w - 1) as f64)
                as usize
        }
        _ => 0,
    };
    let bar = if bar_w > 0 {
        format!("{}○{}", "━".repeat(filled), "─".repeat(bar_w - 1 - filled))
    } else {
        String::new()
    };
    Line::from(vec![
        Span::raw(head),
        Span::styled(bar, Style::new().fg(Color::Cyan)),
        Span::styled(tail, Style::new().fg(Color::Gray)),
    ])
}
