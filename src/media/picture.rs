//! The TUI's picture pane with terminal graphics: kitty, sixel or iTerm2
//! images through `ratatui-image`, falling back to the half-block renderer
//! ([`crate::media::video::render_half_blocks`]).
//!
//! Detection ([`detect`]) runs once at startup, before the TUI enters raw
//! mode and starts its event loop; it asks the terminal only when both stdin
//! and stdout are terminals, within [`DETECT_TIMEOUT`], and `ISC_PICTURE` (or
//! [`Detect::Force`]) skips it. Encoding a frame for kitty/sixel/iTerm2 costs
//! far more than drawing it, so [`PictureRenderer`] encodes each new frame or
//! pane size once ([`PictureRenderer::prepare`], in the update step) and
//! [`PictureRenderer::render`] stays pure.

use std::io::IsTerminal;
use std::time::Duration;

use image::{DynamicImage, RgbImage};
use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::widgets::Widget;
use ratatui_image::picker::cap_parser::QueryStdioOptions;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::{FontSize, Image, Resize};

use crate::media::video::render_half_blocks;
use crate::proto::rtp::jpeg_codec::RgbFrame;

/// Environment variable forcing the protocol: `halfblocks`, `sixel`,
/// `kitty`, `iterm2` (`none`/`off` = half blocks).
pub const PICTURE_ENV: &str = "ISC_PICTURE";
/// Cell size assumed when the terminal does not report one.
pub const DEFAULT_FONT_SIZE: (u16, u16) = (10, 20);
/// How long [`detect`] waits for the terminal's answers.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How pictures reach the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PictureProtocol {
    #[default]
    HalfBlocks,
    Sixel,
    Kitty,
    Iterm2,
}

impl PictureProtocol {
    /// `halfblocks`, `sixel`, `kitty`, `iterm2` (`none`, `off` = half blocks).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "halfblocks" | "half-blocks" | "none" | "off" => Some(Self::HalfBlocks),
            "sixel" => Some(Self::Sixel),
            "kitty" => Some(Self::Kitty),
            "iterm2" | "iterm" => Some(Self::Iterm2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::HalfBlocks => "halfblocks",
            Self::Sixel => "sixel",
            Self::Kitty => "kitty",
            Self::Iterm2 => "iterm2",
        }
    }

    fn to_ratatui_image(self) -> ProtocolType {
        match self {
            Self::HalfBlocks => ProtocolType::Halfblocks,
            Self::Sixel => ProtocolType::Sixel,
            Self::Kitty => ProtocolType::Kitty,
            Self::Iterm2 => ProtocolType::Iterm2,
        }
    }

    fn from_ratatui_image(p: ProtocolType) -> Self {
        match p {
            ProtocolType::Halfblocks => Self::HalfBlocks,
            ProtocolType::Sixel => Self::Sixel,
            ProtocolType::Kitty => Self::Kitty,
            ProtocolType::Iterm2 => Self::Iterm2,
        }
    }
}

/// What the terminal can show: the protocol and its cell size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureSupport {
    pub protocol: PictureProtocol,
    /// Pixels per cell (width, height).
    pub font_size: (u16, u16),
}

impl Default for PictureSupport {
    fn default() -> Self {
        Self {
            protocol: PictureProtocol::HalfBlocks,
            font_size: DEFAULT_FONT_SIZE,
        }
    }
}

/// How to find the protocol (`--picture`, `[client].picture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detect {
    /// Use this protocol, ask nothing (tests, config).
    Force(PictureProtocol),
    /// `ISC_PICTURE` if set, else ask the terminal (escape sequences, within
    /// [`DETECT_TIMEOUT`]) when stdin and stdout are terminals, else half blocks.
    #[default]
    Query,
}

impl Detect {
    /// `auto` (ask the terminal) or a protocol name ([`PictureProtocol::parse`]).
    pub fn parse(s: &str) -> Option<Self> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Some(Detect::Query);
        }
        PictureProtocol::parse(s).map(Detect::Force)
    }
}

/// Find the terminal's graphics protocol. Never prints or blocks unless
/// [`Detect::Query`] runs on a real terminal.
pub fn detect(how: Detect) -> PictureSupport {
    let forced = match how {
        Detect::Force(p) => Some(p),
        Detect::Query => std::env::var(PICTURE_ENV)
            .ok()
            .and_then(|v| PictureProtocol::parse(&v)),
    };
    if let Some(protocol) = forced {
        return PictureSupport {
            protocol,
            font_size: DEFAULT_FONT_SIZE,
        };
    }
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        return PictureSupport::default();
    }
    let options = QueryStdioOptions {
        timeout: DETECT_TIMEOUT,
        ..QueryStdioOptions::default()
    };
    match Picker::from_query_stdio_with_options(options) {
        Ok(p) => PictureSupport {
            protocol: PictureProtocol::from_ratatui_image(p.protocol_type()),
            font_size: (p.font_size().width.max(1), p.font_size().height.max(1)),
        },
        Err(e) => {
            tracing::debug!(error = %e, "no terminal graphics: half blocks");
            PictureSupport::default()
        }
    }
}

/// A frame encoded for the terminal at one pane size.
#[derive(Clone)]
struct Prepared {
    frame: RgbFrame,
    area: Size,
    /// `None`: half blocks (drawn straight from `frame`).
    protocol: Option<Protocol>,
}

/// Draws frames with the detected protocol; keeps the last encoding.
#[derive(Clone)]
pub struct PictureRenderer {
    support: PictureSupport,
    picker: Picker,
    prepared: Option<Prepared>,
}

impl std::fmt::Debug for PictureRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PictureRenderer")
            .field("support", &self.support)
            .finish_non_exhaustive()
    }
}

impl PictureRenderer {
    pub fn new(support: PictureSupport) -> Self {
        let (w, h) = support.font_size;
        #[allow(deprecated)] // the non-querying constructor: detection is ours
        let mut picker = Picker::from_fontsize(FontSize::new(w.max(1), h.max(1)));
        picker.set_protocol_type(support.protocol.to_ratatui_image());
        Self {
            support,
            picker,
            prepared: None,
        }
    }

    pub fn protocol(&self) -> PictureProtocol {
        self.support.protocol
    }

    pub fn support(&self) -> PictureSupport {
        self.support
    }

    /// A terminal-graphics encoding is ready for a pane of `area`'s size.
    pub fn ready_for(&self, area: Rect) -> bool {
        self.prepared
            .as_ref()
            .is_some_and(|p| p.protocol.is_some() && p.area == area.as_size())
    }

    /// Forget the prepared frame (the session ended).
    pub fn clear(&mut self) {
        self.prepared = None;
    }

    /// Encode `frame` for a pane of `area`'s size unless that is done already.
    /// On an encoding failure the frame falls back to half blocks.
    pub fn prepare(&mut self, frame: &RgbFrame, area: Rect) {
        let size = area.as_size();
        if self
            .prepared
            .as_ref()
            .is_some_and(|p| p.area == size && p.frame == *frame)
        {
            return;
        }
        let protocol = match self.support.protocol {
            PictureProtocol::HalfBlocks => None,
            _ => self.encode(frame, size),
        };
        self.prepared = Some(Prepared {
            frame: frame.clone(),
            area: size,
            protocol,
        });
    }

    fn encode(&self, frame: &RgbFrame, size: Size) -> Option<Protocol> {
        let img = RgbImage::from_raw(
            u32::from(frame.width),
            u32::from(frame.height),
            frame.data.clone(),
        )?;
        if size.width == 0 || size.height == 0 || img.width() == 0 || img.height() == 0 {
            return None;
        }
        let resize = Resize::Scale(None);
        match self
            .picker
            .new_protocol(DynamicImage::ImageRgb8(img), size, resize)
        {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(error = %e, "picture encoding failed: half blocks");
                None
            }
        }
    }

    /// Draw the prepared frame centred in `area` (pure). Nothing is drawn
    /// before the first [`PictureRenderer::prepare`].
    pub fn render(&self, area: Rect, buf: &mut Buffer) {
        let Some(p) = &self.prepared else { return };
        match &p.protocol {
            Some(proto) if area.as_size() == p.area => {
                let s = proto.size();
                let (w, h) = (s.width.min(area.width), s.height.min(area.height));
                let at = Rect::new(
                    area.x + (area.width - w) / 2,
                    area.y + (area.height - h) / 2,
                    w,
                    h,
                );
                Image::new(proto).render(at, buf);
            }
            // half blocks, or a pane resized since `prepare`
            _ => render_half_blocks(&p.frame, area, buf),
        }
    }
}

/// Prepare and draw `frame` into `area` in one call.
pub fn render_picture(
    frame: &RgbFrame,
    area: Rect,
    buf: &mut Buffer,
    renderer: &mut PictureRenderer,
) {
    renderer.prepare(frame, area);
    renderer.render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::HALF_BLOCK;

    fn frame() -> RgbFrame {
        RgbFrame {
            width: 16,
            height: 16,
            data: [200, 40, 40].repeat(256),
        }
    }

    #[test]
    fn forced_detection_asks_nothing() {
        let s = detect(Detect::Force(PictureProtocol::Sixel));
        assert_eq!(s.protocol, PictureProtocol::Sixel);
        assert_eq!(
            PictureProtocol::parse("Kitty"),
            Some(PictureProtocol::Kitty)
        );
        assert_eq!(
            PictureProtocol::parse("off"),
            Some(PictureProtocol::HalfBlocks)
        );
        assert_eq!(PictureProtocol::parse("vt340"), None);
        assert_eq!(Detect::parse("AUTO"), Some(Detect::Query));
        assert_eq!(
            Detect::parse("sixel"),
            Some(Detect::Force(PictureProtocol::Sixel))
        );
        assert_eq!(Detect::parse("ascii-art"), None);
        // under `cargo test` stdout is captured, not a terminal: no query
        if !std::io::stdout().is_terminal() && std::env::var_os(PICTURE_ENV).is_none() {
            assert_eq!(detect(Detect::Query), PictureSupport::default());
        }
    }

    #[test]
    fn half_blocks_match_the_plain_renderer() {
        let area = Rect::new(0, 0, 8, 4);
        let mut r = PictureRenderer::new(PictureSupport::default());
        let mut a = Buffer::empty(area);
        render_picture(&frame(), area, &mut a, &mut r);
        let mut b = Buffer::empty(area);
        render_half_blocks(&frame(), area, &mut b);
        assert_eq!(a, b);
        assert_eq!(a[(0, 0)].symbol(), HALF_BLOCK);
    }

    #[test]
    fn sixel_puts_one_dcs_sequence_in_the_first_cell() {
        let area = Rect::new(2, 1, 4, 2);
        let mut r = PictureRenderer::new(detect(Detect::Force(PictureProtocol::Sixel)));
        let mut buf = Buffer::empty(Rect::new(0, 0, 8, 4));
        render_picture(&frame(), area, &mut buf, &mut r);
        // 16×16 px scaled into 4×2 cells of 10×20 px: 40×40 px = 4×2 cells
        let seq = buf[(2, 1)].symbol();
        // erase the cells under it, then DCS P9;1;0 q "1;1;40;40 (40×40 px) … ST
        assert!(
            seq.contains("\x1bP9;1;0q\"1;1;40;40#0;2;78;15;15#0!40~"),
            "{seq:?}"
        );
        assert!(seq.ends_with("\x1b\\"), "{seq:?}");
        // the rest of the picture's cells are left to the terminal
        let drawn: Vec<_> = Buffer::empty(buf.area)
            .diff(&buf)
            .into_iter()
            .map(|(x, y, _)| (x, y))
            .collect();
        assert_eq!(drawn, [(2, 1)]);
        // a pane resized since `prepare` falls back to half blocks
        let mut small = Buffer::empty(Rect::new(0, 0, 3, 1));
        r.render(small.area, &mut small);
        assert_eq!(small[(1, 0)].symbol(), HALF_BLOCK);
    }

    #[test]
    fn kitty_and_iterm2_encode_too() {
        for (p, intro) in [
            (PictureProtocol::Kitty, "\x1b_G"),
            (PictureProtocol::Iterm2, "\x1b]1337;File="),
        ] {
            let area = Rect::new(0, 0, 4, 2);
            let mut r = PictureRenderer::new(detect(Detect::Force(p)));
            let mut buf = Buffer::empty(area);
            render_picture(&frame(), area, &mut buf, &mut r);
            let first = buf[(0, 0)].symbol();
            assert!(first.contains(intro), "{p:?}: {first:?}");
        }
    }
}
