//! The TUI's picture pane with terminal graphics: kitty, sixel or iTerm2
//! images through `ratatui-image`, falling back to the half-block renderer
//! ([`crate::media::video::render_half_blocks`]).
//!
//! Detection ([`detect`]) runs once at startup, before the TUI enters raw
//! mode and starts its event loop; it asks the terminal only when both stdin
//! and stdout are terminals, reads the answers itself within
//! [`DETECT_TIMEOUT`] (no reader is left behind to steal keys), and
//! `ISC_PICTURE` (or [`Detect::Force`]) skips it. Encoding a frame for kitty/sixel/iTerm2 costs
//! far more than drawing it, so [`PictureRenderer`] encodes each new frame or
//! pane size once ([`PictureRenderer::prepare`], in the update step) and
//! [`PictureRenderer::render`] stays pure.

use std::io::IsTerminal;
use std::time::Duration;

use image::{DynamicImage, RgbImage};
use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::widgets::Widget;
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
    match query_terminal(DETECT_TIMEOUT, iterm2_from_env()) {
        Some(support) => support,
        None => {
            tracing::debug!("the terminal did not answer: half blocks");
            PictureSupport::default()
        }
    }
}

/// The queries: kitty graphics (a 1×1 image, query only), the cell size in
/// pixels (XTWINOPS 16), then Primary Device Attributes, which every
/// terminal answers, last: its answer ends the wait.
const QUERIES: &[u8] = b"\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\\x1b[16t\x1b[c";

/// iTerm2's inline images where the environment names a terminal that
/// has them (iTerm2, WezTerm) and no kitty answer says better.
fn iterm2_from_env() -> bool {
    std::env::var("TERM_PROGRAM").is_ok_and(|t| t == "iTerm.app")
        || std::env::var_os("WEZTERM_EXECUTABLE").is_some_and(|v| !v.is_empty())
}

/// Asks the terminal on stdin/stdout in raw mode and reads its answers
/// here, with a deadline: no thread is left reading stdin afterwards (the
/// TUI's own event reader must get every key).
#[cfg(unix)]
fn query_terminal(timeout: Duration, iterm2: bool) -> Option<PictureSupport> {
    use std::io::Write;
    crossterm::terminal::enable_raw_mode().ok()?;
    let answers = (|| {
        let mut out = std::io::stdout();
        out.write_all(QUERIES).ok()?;
        out.flush().ok()?;
        let deadline = std::time::Instant::now() + timeout;
        let mut buf = Vec::new();
        loop {
            if let Some(found) = parse_answers(&buf, iterm2) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut fd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            // SAFETY: one pollfd of ours; read into a buffer of its length.
            if unsafe { libc::poll(&mut fd, 1, ms) } <= 0 {
                continue;
            }
            let mut chunk = [0u8; 512];
            let n = unsafe { libc::read(0, chunk.as_mut_ptr().cast(), chunk.len()) };
            let n = usize::try_from(n).ok().filter(|n| *n > 0)?;
            buf.extend_from_slice(chunk.get(..n)?);
        }
    })();
    let _ = crossterm::terminal::disable_raw_mode();
    answers
}

#[cfg(not(unix))]
fn query_terminal(_timeout: Duration, _iterm2: bool) -> Option<PictureSupport> {
    None
}

/// What the terminal's answers say, once its Device Attributes answer
/// (`ESC [ ? … c`) is in: kitty graphics (`ESC _ G i=31;OK`), else sixel
/// (attribute 4), else iTerm2 when `iterm2`, else half blocks; the cell size
/// from `ESC [ 6 ; height ; width t`. `None` while the answer is incomplete.
pub fn parse_answers(answers: &[u8], iterm2: bool) -> Option<PictureSupport> {
    let text = String::from_utf8_lossy(answers);
    let da = text.find("\x1b[?")?;
    let da_body = &text[da + 3..];
    let end = da_body.find('c')?;
    let sixel = da_body[..end].split(';').any(|p| p == "4");
    let kitty = text.contains("\x1b_Gi=31;OK");
    let font_size = text
        .find("\x1b[6;")
        .and_then(|i| {
            let rest = &text[i + 4..];
            let (body, _) = rest.split_once('t')?;
            let (h, w) = body.split_once(';')?;
            Some((w.parse::<u16>().ok()?, h.parse::<u16>().ok()?))
        })
        .filter(|(w, h)| *w > 0 && *h > 0)
        .unwrap_or(DEFAULT_FONT_SIZE);
    let protocol = if kitty {
        PictureProtocol::Kitty
    } else if sixel {
        PictureProtocol::Sixel
    } else if iterm2 {
        PictureProtocol::Iterm2
    } else {
        PictureProtocol::HalfBlocks
    };
    Some(PictureSupport {
        protocol,
        font_size,
    })
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
    fn terminal_answers_name_the_protocol_once_device_attributes_arrive() {
        // kitty: its graphics answer, the cell size, then DA1
        let kitty = parse_answers(b"\x1b_Gi=31;OK\x1b\\\x1b[6;20;10t\x1b[?62;22c", false);
        assert_eq!(
            kitty,
            Some(PictureSupport {
                protocol: PictureProtocol::Kitty,
                font_size: (10, 20)
            })
        );
        // xterm -ti vt340: sixel is attribute 4
        let vt340 = parse_answers(b"\x1b[6;16;8t\x1b[?63;1;2;4;6;9;15;22c", false).unwrap();
        assert_eq!(vt340.protocol, PictureProtocol::Sixel);
        assert_eq!(vt340.font_size, (8, 16));
        // tmux / a plain terminal: half blocks, unless the environment says iTerm2
        let plain = parse_answers(b"\x1b[?1;2c", false).unwrap();
        assert_eq!(plain, PictureSupport::default());
        let iterm = parse_answers(b"\x1b[?1;2c", true).unwrap();
        assert_eq!(iterm.protocol, PictureProtocol::Iterm2);
        // attribute 42 is not 4
        let p = parse_answers(b"\x1b[?62;42c", false).unwrap();
        assert_eq!(p.protocol, PictureProtocol::HalfBlocks);
        // not yet: no Device Attributes answer
        assert_eq!(parse_answers(b"\x1b_Gi=31;OK\x1b\\", false), None);
        assert_eq!(parse_answers(b"\x1b[?62;4", false), None);
        // garbage never panics
        assert!(parse_answers(b"\x1b[6;;t\x1b[?c", false).is_some());
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
