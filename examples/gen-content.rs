//! Regenerates the shipped content pieces under `assets/content/` (or the
//! directory given as the first argument):
//!
//! ```text
//! cargo run --example gen-content [-- OUT_DIR]
//! ```
//!
//! Everything is synthesised here (no outside material) and deterministic:
//! `test-card`, colour bars with a bouncing square, a frame counter and a
//! 1 kHz beep with a white border flash on every whole second (an A/V sync
//! check), and `melody`, a little sine tune with a picture per note.

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};

use isc::media::content::{AUDIO_SAMPLE_RATE, AudioMeta, Metadata, VideoMeta};
use isc::proto::rtp::jpeg_codec::{RgbFrame, encode_rgb};

const W: u16 = 160;
const H: u16 = 120;
const FPS: u32 = 10;
const SECONDS: u32 = 12;
const QUALITY: u8 = 80;

/// 3×5 bitmaps of the digits 0–9, one row per u8 (bit 2 = left column).
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 2, 2, 2],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

fn fill(f: &mut RgbFrame, x0: i32, y0: i32, w: i32, h: i32, rgb: [u8; 3]) {
    for y in y0.max(0)..(y0 + h).min(i32::from(f.height)) {
        for x in x0.max(0)..(x0 + w).min(i32::from(f.width)) {
            let i = (y as usize * usize::from(f.width) + x as usize) * 3;
            f.data[i..i + 3].copy_from_slice(&rgb);
        }
    }
}

fn number(f: &mut RgbFrame, x0: i32, y0: i32, scale: i32, value: u32, digits: u32, rgb: [u8; 3]) {
    for d in 0..digits {
        let digit = (value / 10u32.pow(digits - 1 - d) % 10) as usize;
        for (row, bits) in DIGITS[digit].iter().enumerate() {
            for col in 0..3 {
                if bits >> (2 - col) & 1 == 1 {
                    let x = x0 + (d as i32 * 4 + col) * scale;
                    fill(f, x, y0 + row as i32 * scale, scale, scale, rgb);
                }
            }
        }
    }
}

fn write_piece(root: &Path, meta: &Metadata, samples: &[i16], frames: &[RgbFrame]) {
    let dir = root.join(&meta.id);
    std::fs::create_dir_all(&dir).expect("create content dir");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: AUDIO_SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(dir.join(&meta.audio.file), spec).expect("create WAV");
    for &s in samples {
        wav.write_sample(s).expect("write sample");
    }
    wav.finalize().expect("finish WAV");
    if let Some(v) = &meta.video {
        let mut mjpeg = Vec::new();
        for f in frames {
            mjpeg.extend(encode_rgb(f, QUALITY).expect("encode frame"));
        }
        std::fs::write(dir.join(&v.file), mjpeg).expect("write video");
    }
    std::fs::write(
        dir.join("content.toml"),
        toml::to_string(meta).expect("metadata"),
    )
    .expect("write metadata");
    println!("wrote {}", dir.display());
}

fn metadata(id: &str, title: &str) -> Metadata {
    Metadata {
        id: id.into(),
        title: title.into(),
        duration_ms: u64::from(SECONDS) * 1000,
        audio: AudioMeta {
            file: "audio.wav".into(),
        },
        video: Some(VideoMeta {
            file: "video.mjpeg".into(),
            width: W,
            height: H,
            fps: FPS,
        }),
    }
}

/// Linear 5 ms fade in and out of a note of `len` samples.
fn envelope(i: usize, len: usize) -> f64 {
    let ramp = (AUDIO_SAMPLE_RATE / 200) as usize;
    (i.min(len.saturating_sub(i)) as f64 / ramp as f64).min(1.0)
}

fn test_card(root: &Path) {
    let rate = AUDIO_SAMPLE_RATE as usize;
    let mut samples = vec![0i16; rate * SECONDS as usize];
    let beep = rate / 10;
    for second in 0..SECONDS as usize {
        for i in 0..beep {
            let v = (TAU * 1000.0 * i as f64 / rate as f64).sin() * envelope(i, beep) * 0.5;
            samples[second * rate + i] = (v * 32767.0) as i16;
        }
    }
    let bars: [[u16; 3]; 8] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
        [0, 0, 0],
    ];
    let frames: Vec<RgbFrame> = (0..SECONDS * FPS)
        .map(|n| {
            let mut f = RgbFrame::new(W, H);
            for (i, c) in bars.iter().enumerate() {
                fill(
                    &mut f,
                    i as i32 * 20,
                    0,
                    20,
                    80,
                    c.map(|v| (v * 3 / 4) as u8),
                );
            }
            fill(&mut f, 0, 80, 160, 40, [40, 40, 40]);
            // a square bouncing left and right over the bars
            let period = 2 * (160 - 24);
            let p = (n * 4) as i32 % period;
            let x = if p < 160 - 24 { p } else { period - p };
            fill(&mut f, x, 28, 24, 24, [255, 140, 0]);
            // frame counter and seconds
            number(&mut f, 8, 88, 4, n, 4, [255, 255, 255]);
            number(&mut f, 112, 92, 3, n / FPS, 2, [255, 220, 0]);
            // progress bar
            fill(
                &mut f,
                0,
                116,
                (160 * n / (SECONDS * FPS)) as i32,
                4,
                [0, 200, 0],
            );
            if n % FPS == 0 {
                // the beep frame: white border
                fill(&mut f, 0, 0, 160, 4, [255; 3]);
                fill(&mut f, 0, 0, 4, 120, [255; 3]);
                fill(&mut f, 156, 0, 4, 120, [255; 3]);
                fill(&mut f, 0, 76, 160, 4, [255; 3]);
            }
            f
        })
        .collect();
    write_piece(
        root,
        &metadata("test-card", "Test card (bars, counter, beep every second)"),
        &samples,
        &frames,
    );
}

fn melody(root: &Path) {
    // MIDI note numbers, half a second each: a scale up, down, and an arpeggio (24 × 0.5 s = 12 s)
    let notes: [u8; 24] = [
        60, 62, 64, 65, 67, 69, 71, 72, 72, 71, 69, 67, 65, 64, 62, 60, 60, 64, 67, 72, 67, 64, 60,
        60,
    ];
    let rate = AUDIO_SAMPLE_RATE as usize;
    let note_len = rate / 2;
    let mut samples = Vec::with_capacity(rate * SECONDS as usize);
    for &m in &notes {
        let hz = 440.0 * 2f64.powf((f64::from(m) - 69.0) / 12.0);
        for i in 0..note_len {
            let t = i as f64 / rate as f64;
            let decay = (-2.5 * t).exp();
            let v = ((TAU * hz * t).sin() + 0.25 * (TAU * 2.0 * hz * t).sin())
                * 0.4
                * decay
                * envelope(i, note_len);
            samples.push((v * 32767.0) as i16);
        }
    }
    let frames: Vec<RgbFrame> = (0..SECONDS * FPS)
        .map(|n| {
            let index = (n / (FPS / 2)) as usize;
            let m = notes[index.min(notes.len() - 1)];
            let step = u32::from(m - 60);
            let mut f = RgbFrame::new(W, H);
            let hue = [
                (30 + step * 15) as u8,
                (200 - step * 10) as u8,
                (90 + step * 12) as u8,
            ];
            fill(&mut f, 0, 0, 160, 120, [hue[0] / 3, hue[1] / 3, hue[2] / 3]);
            // a keyboard of 13 keys with the sounding one lit
            for k in 0..13 {
                let lit = k == step;
                let colour = if lit {
                    [255, 230, 80]
                } else if [1, 3, 6, 8, 10].contains(&k) {
                    [30, 30, 30]
                } else {
                    [220, 220, 220]
                };
                fill(&mut f, 2 + k as i32 * 12, 84, 11, 32, colour);
            }
            // a bar whose height is the pitch, shrinking as the note decays
            let within = (n % (FPS / 2)) as i32;
            let height = 8 + step as i32 * 5 - within * 4;
            fill(&mut f, 70, 76 - height, 20, height, [255, 255, 255]);
            number(&mut f, 4, 4, 3, index as u32 + 1, 2, [255, 255, 255]);
            f
        })
        .collect();
    write_piece(
        root,
        &metadata("melody", "Melody (sine notes, a scale and an arpeggio)"),
        &samples,
        &frames,
    );
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("assets/content"));
    test_card(&root);
    melody(&root);
}
