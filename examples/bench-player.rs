//! CPU cost of the player per second of playback: the `test-card` (PCMU +
//! 160×120 MJPEG at 10 fps) is packetized, fed to the sans-IO player in
//! simulated time (audio resampled to 48 kHz into the null sink, video
//! depacketized and decoded), and every presented frame is rendered into an
//! 80×24 ratatui buffer with half blocks, or encoded for sixel / kitty (at a
//! 10×20-pixel cell) and drawn, as the TUI's player pane does. Prints
//! figures; asserts nothing.
//!
//!     cargo run --example bench-player [-- PASSES [COLS ROWS]]
//!
//! CPU time is the process's (utime + stime from /proc/self/stat, plus the
//! main thread's nanosecond runtime from /proc/self/schedstat when present).
//! A debug build reads several times slower than `--release`.

use std::path::Path;
use std::time::{Duration, Instant};

use isc::media::audio_out::NullSink;
use isc::media::content::Content;
use isc::media::picture::{PictureProtocol, PictureRenderer, PictureSupport};
use isc::media::player::{Media, Player, PlayerConfig, PlayerEvent, Port};
use isc::media::video::render_half_blocks;
use isc::proto::rtp::g711::{PcmuPacketizer, SAMPLES_PER_20MS};
use isc::proto::rtp::jpeg::JpegPacketizer;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

/// Process CPU time from /proc (Linux); `None` elsewhere.
fn cpu_time() -> Option<Duration> {
    if let Ok(s) = std::fs::read_to_string("/proc/self/schedstat")
        && let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
    {
        return Some(Duration::from_nanos(ns));
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the parenthesised command: utime is 14th, stime 15th overall
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

struct Run {
    media: Duration,
    cpu: Duration,
    frames: u64,
    rendered: u64,
}

fn run(
    content: &Content,
    area: Rect,
    audio: bool,
    video: bool,
    render: Option<PictureProtocol>,
) -> Run {
    let t0 = Instant::now();
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let mut arrivals: Vec<(Instant, Media, Vec<u8>)> = Vec::new();
    if audio {
        let mut tx = PcmuPacketizer::new(1, 0, 0, SAMPLES_PER_20MS);
        for (i, p) in tx.push(&content.audio.samples).into_iter().enumerate() {
            let at = t0 + Duration::from_millis(20 * i as u64);
            arrivals.push((at, Media::Audio, p.to_bytes().unwrap_or_default()));
        }
    }
    if video && let Some(v) = &content.video {
        let mut tx = JpegPacketizer::new(2, 0, 1200);
        for (i, f) in v.frames.iter().enumerate() {
            let at = t0 + Duration::from_secs_f64(i as f64 / f64::from(v.fps));
            for p in tx.packetize(&f.jpeg, 9000 * i as u32).unwrap_or_default() {
                arrivals.push((at, Media::Video, p.to_bytes().unwrap_or_default()));
            }
        }
    }
    arrivals.sort_by_key(|a| a.0);
    let end = t0 + content.duration + Duration::from_millis(500);
    let cpu0 = cpu_time().unwrap_or_default();
    let mut p = Player::new(
        PlayerConfig::new(3, "bench"),
        Box::new(NullSink::new(48_000)),
        t0,
    );
    let mut buf = Buffer::empty(area);
    // kitty / sixel: encoded per frame as the TUI's update step does, then drawn.
    let mut picture = render.map(|protocol| {
        PictureRenderer::new(PictureSupport {
            protocol,
            ..PictureSupport::default()
        })
    });
    let (mut frames, mut rendered) = (0u64, 0u64);
    let mut it = arrivals.into_iter().peekable();
    let mut now = t0;
    while now < end {
        while let Some((_, m, b)) = it.next_if(|a| a.0 <= now) {
            p.handle_datagram(now, m, Port::Rtp, peer, &b);
        }
        p.handle_timeout(now);
        while let Some(e) = p.poll_event() {
            if let PlayerEvent::Frame(f) = e {
                frames += 1;
                match &mut picture {
                    Some(r) if r.protocol() != PictureProtocol::HalfBlocks => {
                        r.prepare(&f.rgb, area);
                        r.render(area, &mut buf);
                        rendered += 1;
                    }
                    Some(_) => {
                        render_half_blocks(&f.rgb, area, &mut buf);
                        rendered += 1;
                    }
                    None => {}
                }
            }
        }
        let next = [p.poll_timeout(), it.peek().map(|a| a.0)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
        now = next.max(now + Duration::from_micros(200));
    }
    let cpu = cpu_time().unwrap_or_default().saturating_sub(cpu0);
    Run {
        media: content.duration,
        cpu,
        frames,
        rendered,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let passes: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let cols: u16 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(80);
    let rows: u16 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(24);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/content/test-card");
    let content = match Content::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot load {}: {e}", dir.display());
            return;
        }
    };
    let area = Rect::new(0, 0, cols, rows);
    println!(
        "bench-player: test-card {:.1} s, pane {cols}x{rows} cells, {passes} passes, {} build",
        content.duration.as_secs_f64(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    for (name, a, v, r) in [
        ("audio only (PCMU→48 kHz, null sink)", true, false, None),
        ("video decode only", false, true, None),
        ("audio + video, no render", true, true, None),
        (
            "audio + video + half-block render",
            true,
            true,
            Some(PictureProtocol::HalfBlocks),
        ),
        (
            "audio + video + sixel encode + render",
            true,
            true,
            Some(PictureProtocol::Sixel),
        ),
        (
            "audio + video + kitty encode + render",
            true,
            true,
            Some(PictureProtocol::Kitty),
        ),
    ] {
        let mut best: Option<Run> = None;
        for _ in 0..passes.max(1) {
            let run = run(&content, area, a, v, r);
            if best.as_ref().is_none_or(|b| run.cpu < b.cpu) {
                best = Some(run);
            }
        }
        let Some(b) = best else { continue };
        let per_s = b.cpu.as_secs_f64() / b.media.as_secs_f64();
        println!(
            "  {name:<40} {:>7.2} ms CPU per s of playback ({:>5.2} % of a core), frames {} rendered {}",
            per_s * 1000.0,
            per_s * 100.0,
            b.frames,
            b.rendered
        );
    }
}
