//! The player pane with terminal graphics: the renderer follows the
//! detected protocol, kitty / sixel / iTerm2 escapes land in the buffer at
//! every pane size without panics, half blocks stay what tests and plain
//! terminals see, and a frame overtaken before the draw is never encoded.

mod tui_common;

use isc::media::picture::{PictureProtocol, PictureRenderer, PictureSupport};
use isc::media::video::HALF_BLOCK;
use isc::tui::app::ConvId;
use isc::tui::{Action, App, SessionEvent, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use tui_common::*;

const SIZES: [(u16, u16); 5] = [(120, 30), (160, 48), (200, 60), (133, 41), (300, 90)];

fn support(protocol: PictureProtocol) -> PictureSupport {
    PictureSupport {
        protocol,
        font_size: (8, 16),
    }
}

/// The populated state (viewing session open) drawing with `protocol`.
fn viewing_with(protocol: PictureProtocol) -> App {
    let (mut app, _) = populated();
    app.picture = PictureRenderer::new(support(protocol));
    app.update(Action::OpenConversation(ConvId(2)));
    app
}

/// What the loop does per wake: prepare, then draw.
fn frame_buffer(app: &mut App, w: u16, h: u16) -> Buffer {
    app.update(Action::Resize {
        width: w,
        height: h,
    });
    app.prepare_picture();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::render(app, f)).unwrap();
    t.backend().buffer().clone()
}

fn cells_in(buf: &Buffer, r: Rect) -> Vec<String> {
    r.positions().map(|p| buf[p].symbol().to_string()).collect()
}

#[test]
fn the_detected_protocol_picks_the_renderer() {
    for p in [
        PictureProtocol::HalfBlocks,
        PictureProtocol::Sixel,
        PictureProtocol::Kitty,
        PictureProtocol::Iterm2,
    ] {
        let mut c = config();
        c.picture = support(p);
        let app = App::new(c, std::time::Instant::now(), wall(0));
        assert_eq!(app.picture.protocol(), p);
    }
    // The tests' own config: half blocks.
    assert_eq!(empty().0.picture.protocol(), PictureProtocol::HalfBlocks);
}

#[test]
fn graphics_protocols_put_their_escapes_in_the_player_pane_at_every_size() {
    for (p, intro) in [
        (PictureProtocol::Sixel, "\x1bP"),
        (PictureProtocol::Kitty, "\x1b_G"),
        (PictureProtocol::Iterm2, "\x1b]1337;File="),
    ] {
        for (w, h) in SIZES {
            let mut app = viewing_with(p);
            let buf = frame_buffer(&mut app, w, h);
            let video = view::video_area(&app).expect("a picture area");
            let cells = cells_in(&buf, video);
            let escapes = cells.iter().filter(|s| s.contains(intro)).count();
            assert!(escapes >= 1, "{p:?} at {w}×{h}: no {intro:?} in {video:?}");
            assert!(
                !cells.iter().any(|s| s == HALF_BLOCK),
                "{p:?} at {w}×{h}: half blocks drawn as well"
            );
            // Nothing outside the pane carries an escape.
            let outside = buf
                .area
                .positions()
                .filter(|pos| !video.contains(*pos))
                .filter(|pos| buf[*pos].symbol().contains('\x1b'))
                .count();
            assert_eq!(outside, 0, "{p:?} at {w}×{h}");
            // The progress line is still drawn under the picture.
            let screen = {
                let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
                t.draw(|f| view::render(&app, f)).unwrap();
                t.backend().to_string()
            };
            assert!(screen.contains("01:23 / 10:00"), "{p:?} at {w}×{h}");
        }
    }
}

#[test]
fn without_room_for_a_picture_nothing_is_encoded_or_drawn() {
    let mut app = viewing_with(PictureProtocol::Sixel);
    // 80×24 keeps only the player's progress line.
    let buf = frame_buffer(&mut app, 80, 24);
    assert_eq!(view::video_area(&app), None);
    assert!(
        !buf.area
            .positions()
            .any(|pos| buf[pos].symbol().contains('\x1b'))
    );
    // A session that ended leaves no picture behind.
    let mut app = viewing_with(PictureProtocol::Kitty);
    frame_buffer(&mut app, 160, 48);
    let area = view::video_area(&app).unwrap();
    assert!(app.picture.ready_for(area));
    app.update(Action::Session(SessionEvent::Closed {
        key: "cv-1".into(),
        reason: "viewing ended".into(),
    }));
    app.prepare_picture();
    assert!(!app.picture.ready_for(area));
}

#[test]
fn half_blocks_are_drawn_straight_from_the_frame() {
    let mut app = viewing_with(PictureProtocol::HalfBlocks);
    let buf = frame_buffer(&mut app, 160, 48);
    let video = view::video_area(&app).unwrap();
    assert!(!app.picture.ready_for(video));
    let cells = cells_in(&buf, video);
    assert!(cells.iter().any(|s| s == HALF_BLOCK));
    assert!(!cells.iter().any(|s| s.contains('\x1b')));
}

#[test]
fn a_frame_overtaken_before_the_draw_is_dropped() {
    let mut app = viewing_with(PictureProtocol::Sixel);
    // Two frames arrive in one batch; only the newer is encoded and drawn.
    app.update(Action::Session(SessionEvent::Frame(gradient(40, 20))));
    let newest = {
        let mut f = gradient(40, 20);
        f.data.iter_mut().for_each(|b| *b = 255 - *b);
        f
    };
    app.update(Action::Session(SessionEvent::Frame(newest.clone())));
    let buf = frame_buffer(&mut app, 160, 48);
    let video = view::video_area(&app).unwrap();
    let mut alone = PictureRenderer::new(support(PictureProtocol::Sixel));
    alone.prepare(&newest, video);
    let mut expected = Buffer::empty(buf.area);
    alone.render(video, &mut expected);
    assert_eq!(cells_in(&buf, video), cells_in(&expected, video));
}
