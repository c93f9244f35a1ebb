//! Video for the TUI: decoded frames waiting for their turn ([`FrameQueue`])
//! and a pure renderer drawing an [`RgbFrame`] into a ratatui [`Buffer`] with
//! half blocks: each cell is `▀` with the upper pixel as foreground and the
//! lower pixel as background, so a cell carries two square-ish pixels.

use std::collections::VecDeque;
use std::sync::Arc;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;

use crate::proto::rtp::jpeg_codec::RgbFrame;

/// The upper half block.
pub const HALF_BLOCK: &str = "▀";

/// Where a `width`×`height` picture lands inside `area`, in cells, keeping its
/// aspect (one cell = one pixel wide, two pixels high): (rect, pixel width,
/// pixel height).
pub fn fit(width: u16, height: u16, area: Rect) -> Option<(Rect, u16, u16)> {
    if width == 0 || height == 0 || area.width == 0 || area.height == 0 {
        return None;
    }
    let (aw, ah) = (u32::from(area.width), u32::from(area.height) * 2);
    let (fw, fh) = (u32::from(width), u32::from(height));
    // scale = min(aw/fw, ah/fh), in integers
    let (pw, ph) = if aw * fh <= ah * fw {
        (aw, (fh * aw / fw).max(1))
    } else {
        ((fw * ah / fh).max(1), ah)
    };
    let (pw, ph) = (pw.min(aw) as u16, ph.min(ah) as u16);
    let cells_h = ph.div_ceil(2);
    let x = area.x + (area.width - pw) / 2;
    let y = area.y + (area.height - cells_h) / 2;
    Some((Rect::new(x, y, pw, cells_h), pw, ph))
}

/// Source span [start, end) covering output pixel `i` of `n` over `len` source pixels.
fn span(i: u32, n: u32, len: u32) -> (u32, u32) {
    let start = i * len / n;
    let end = ((i + 1) * len / n).max(start + 1).min(len);
    (start.min(len.saturating_sub(1)), end)
}

/// Draw `frame` into `area` of `buf`, scaled by area averaging (each output
/// pixel is the mean of the source pixels it covers) with the aspect kept and
/// the picture centred; the letterbox is left as it was. Pure: reads nothing else.
pub fn render_half_blocks(frame: &RgbFrame, area: Rect, buf: &mut Buffer) {
    let area = area.intersection(buf.area);
    let Some((rect, pw, ph)) = fit(frame.width, frame.height, area) else {
        return;
    };
    let (fw, fh) = (u32::from(frame.width), u32::from(frame.height));
    if frame.data.len() < (fw * fh * 3) as usize {
        return;
    }
    let cols: Vec<(u32, u32)> = (0..u32::from(pw))
        .map(|x| span(x, u32::from(pw), fw))
        .collect();
    let pixel = |py: u32, (x0, x1): (u32, u32)| -> Color {
        let (y0, y1) = span(py, u32::from(ph), fh);
        let mut sum = [0u32; 3];
        for y in y0..y1 {
            let row = (y * fw * 3) as usize;
            for x in x0..x1 {
                let i = row + (x * 3) as usize;
                if let Some(p) = frame.data.get(i..i + 3) {
                    sum[0] += u32::from(p[0]);
                    sum[1] += u32::from(p[1]);
                    sum[2] += u32::from(p[2]);
                }
            }
        }
        let n = ((y1 - y0) * (x1 - x0)).max(1);
        Color::Rgb(
            ((sum[0] + n / 2) / n) as u8,
            ((sum[1] + n / 2) / n) as u8,
            ((sum[2] + n / 2) / n) as u8,
        )
    };
    for cy in 0..rect.height {
        let top = u32::from(cy) * 2;
        for (cx, &col) in cols.iter().enumerate() {
            let upper = pixel(top, col);
            // an odd pixel height leaves the last cell's lower half black
            let lower = if top + 1 < u32::from(ph) {
                pixel(top + 1, col)
            } else {
                Color::Rgb(0, 0, 0)
            };
            if let Some(cell) = buf.cell_mut((rect.x + cx as u16, rect.y + cy)) {
                cell.set_symbol(HALF_BLOCK).set_fg(upper).set_bg(lower);
            }
        }
    }
}

/// A decoded frame waiting for its presentation time.
#[derive(Debug, Clone)]
pub struct QueuedFrame {
    /// RTP timestamp (90 kHz).
    pub timestamp: u32,
    pub rgb: Arc<RgbFrame>,
}

/// Decoded frames in timestamp order, at most `capacity`: when full the oldest
/// is dropped (counted), so a stalled clock cannot grow memory.
#[derive(Debug, Clone)]
pub struct FrameQueue {
    frames: VecDeque<QueuedFrame>,
    capacity: usize,
    pub overflow: u64,
}

impl FrameQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            capacity: capacity.max(1),
            overflow: 0,
        }
    }

    pub fn push(&mut self, frame: QueuedFrame) {
        // keep timestamp order (frames come out of the jitter buffer in order,
        // but a new source may restart its timestamps: then flush)
        if self
            .frames
            .back()
            .is_some_and(|b| (frame.timestamp.wrapping_sub(b.timestamp) as i32) < 0)
        {
            self.overflow += self.frames.len() as u64;
            self.frames.clear();
        }
        if self.frames.len() == self.capacity {
            self.frames.pop_front();
            self.overflow += 1;
        }
        self.frames.push_back(frame);
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
    pub fn front(&self) -> Option<&QueuedFrame> {
        self.frames.front()
    }
    pub fn pop(&mut self) -> Option<QueuedFrame> {
        self.frames.pop_front()
    }
    pub fn clear(&mut self) {
        self.frames.clear();
    }

    /// Takes the newest frame for which `due` holds, dropping the older due
    /// ones; returns it and how many were dropped as late.
    pub fn take_due(
        &mut self,
        mut due: impl FnMut(&QueuedFrame) -> bool,
    ) -> (Option<QueuedFrame>, u64) {
        let mut shown = None;
        let mut late = 0;
        while self.frames.front().is_some_and(&mut due) {
            if shown.is_some() {
                late += 1;
            }
            shown = self.frames.pop_front();
        }
        (shown, late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn frame(w: u16, h: u16, f: impl Fn(u16, u16) -> [u8; 3]) -> RgbFrame {
        let mut fr = RgbFrame::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let i = (usize::from(y) * usize::from(w) + usize::from(x)) * 3;
                fr.data[i..i + 3].copy_from_slice(&f(x, y));
            }
        }
        fr
    }

    #[test]
    fn two_by_two_fills_two_cells_exactly() {
        // red green / blue white
        let f = frame(2, 2, |x, y| match (x, y) {
            (0, 0) => [255, 0, 0],
            (1, 0) => [0, 255, 0],
            (0, 1) => [0, 0, 255],
            _ => [255, 255, 255],
        });
        let mut buf = Buffer::empty(Rect::new(0, 0, 2, 1));
        render_half_blocks(&f, buf.area, &mut buf);
        let c0 = &buf[(0, 0)];
        assert_eq!(c0.symbol(), HALF_BLOCK);
        assert_eq!(c0.fg, Color::Rgb(255, 0, 0));
        assert_eq!(c0.bg, Color::Rgb(0, 0, 255));
        let c1 = &buf[(1, 0)];
        assert_eq!(c1.fg, Color::Rgb(0, 255, 0));
        assert_eq!(c1.bg, Color::Rgb(255, 255, 255));
    }

    #[test]
    fn downscale_averages_areas_and_keeps_aspect_centred() {
        // 4×4: left half black, right half white → 2 px wide, 2 px high = one
        // row of 2 cells, centred in a 6×3 pane
        let f = frame(4, 4, |x, _| if x < 2 { [0; 3] } else { [200; 3] });
        let backend = TestBackend::new(6, 3);
        let mut term = Terminal::new(backend).unwrap();
        term.draw(|fr| {
            let area = fr.area();
            render_half_blocks(&f, area, fr.buffer_mut());
        })
        .unwrap();
        let buf = term.backend().buffer().clone();
        // aspect 1:1 in a 6 px × 6 px grid → 6×6 px = 3 rows of cells, full width
        let (rect, pw, ph) = fit(4, 4, buf.area).unwrap();
        assert_eq!((rect, pw, ph), (Rect::new(0, 0, 6, 3), 6, 6));
        assert_eq!(buf[(0, 0)].fg, Color::Rgb(0, 0, 0));
        assert_eq!(buf[(5, 2)].bg, Color::Rgb(200, 200, 200));

        // 4×2 of alternating columns in a 2×1 pane: each pixel averages 2×2
        let g = frame(4, 2, |x, _| if x % 2 == 0 { [0; 3] } else { [100; 3] });
        let mut buf = Buffer::empty(Rect::new(0, 0, 2, 1));
        render_half_blocks(&g, buf.area, &mut buf);
        // 4:2 into 2 px × 2 px keeps aspect → 2×1 px: only the upper halves
        assert_eq!(buf[(0, 0)].fg, Color::Rgb(50, 50, 50));
        assert_eq!(buf[(0, 0)].bg, Color::Rgb(0, 0, 0));
    }

    #[test]
    fn wide_frame_is_letterboxed() {
        let f = frame(160, 120, |_, _| [10, 20, 30]);
        let area = Rect::new(0, 0, 80, 24);
        // 80 px × 48 px: height bound → 64×48 px, centred horizontally
        let (rect, pw, ph) = fit(160, 120, area).unwrap();
        assert_eq!((pw, ph), (64, 48));
        assert_eq!(rect, Rect::new(8, 0, 64, 24));
        let mut buf = Buffer::empty(area);
        render_half_blocks(&f, area, &mut buf);
        assert_eq!(buf[(7, 0)].symbol(), " ");
        assert_eq!(buf[(8, 0)].fg, Color::Rgb(10, 20, 30));
        assert_eq!(buf[(71, 23)].bg, Color::Rgb(10, 20, 30));
        assert_eq!(buf[(72, 23)].symbol(), " ");
    }

    #[test]
    fn empty_or_short_frames_draw_nothing() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 2));
        let before = buf.clone();
        render_half_blocks(&RgbFrame::new(0, 0), buf.area, &mut buf);
        let bad = RgbFrame {
            width: 4,
            height: 4,
            data: vec![1; 5],
        };
        render_half_blocks(&bad, buf.area, &mut buf);
        render_half_blocks(&frame(2, 2, |_, _| [1; 3]), Rect::new(0, 0, 0, 0), &mut buf);
        assert_eq!(buf, before);
    }

    #[test]
    fn queue_is_bounded_and_shows_the_newest_due_frame() {
        let f = Arc::new(RgbFrame::new(1, 1));
        let mut q = FrameQueue::new(3);
        for ts in [0u32, 9000, 18000, 27000] {
            q.push(QueuedFrame {
                timestamp: ts,
                rgb: f.clone(),
            });
        }
        assert_eq!((q.len(), q.overflow), (3, 1));
        let (shown, late) = q.take_due(|fr| fr.timestamp <= 20_000);
        assert_eq!(shown.map(|s| s.timestamp), Some(18000));
        assert_eq!(late, 1);
        assert_eq!(q.front().map(|s| s.timestamp), Some(27000));
    }
}
