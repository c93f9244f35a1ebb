//! The user's own files in the content directory: WAV + Y4M, GIF, and
//! anything ffmpeg reads (transcoded once into a cache dir).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use isc::media::content::Content;
use isc::media::import::gif::write_gif;
use isc::media::import::y4m::write_y4m;
use isc::media::import::{ImportOptions, load_all};
use isc::proto::rtp::jpeg_codec::{RgbFrame, decode_rgb};
use isc::server::content_list::ContentLibrary;

fn solid(w: u16, h: u16, rgb: [u8; 3]) -> RgbFrame {
    RgbFrame {
        width: w,
        height: h,
        data: rgb.repeat(usize::from(w) * usize::from(h)),
    }
}

fn write_wav(path: &Path, rate: u32, channels: u16, secs: f64) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(f64::from(rate) * secs) as usize {
        let s =
            (8000.0 * (std::f64::consts::TAU * 440.0 * i as f64 / f64::from(rate)).sin()) as i16;
        for _ in 0..channels {
            w.write_sample(s).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn middle_pixel(c: &Content, frame: usize) -> [u8; 3] {
    let v = c.video.as_ref().unwrap();
    let f = decode_rgb(&v.frames[frame].jpeg).unwrap();
    let i = (usize::from(f.height / 2) * usize::from(f.width) + usize::from(f.width / 2)) * 3;
    [f.data[i], f.data[i + 1], f.data[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 12)
}

#[test]
fn wav_with_y4m_and_a_lone_gif_load_without_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // 1.5 s of 44.1 kHz stereo, with 640×480 4:2:0 at 5 fps for 2 s (red, then blue)
    write_wav(&root.join("Holiday Clip.wav"), 44_100, 2, 1.5);
    let frames: Vec<_> = (0..10)
        .map(|i| solid(640, 480, if i < 5 { [220, 30, 30] } else { [30, 30, 220] }))
        .collect();
    std::fs::write(root.join("Holiday Clip.y4m"), write_y4m(&frames, 5, true)).unwrap();
    // a GIF alone: green 0.5 s then white 0.5 s
    let gif = write_gif(
        16,
        8,
        &[0, 200, 0, 255, 255, 255],
        &[(vec![0; 128], 50), (vec![1; 128], 50)],
    )
    .unwrap();
    std::fs::write(root.join("spinner.gif"), gif).unwrap();
    std::fs::write(root.join("notes.txt"), "ignored").unwrap();
    // our own piece format sits beside them
    let copy = root.join("melody");
    std::fs::create_dir(&copy).unwrap();
    for f in ["content.toml", "audio.wav", "video.mjpeg"] {
        std::fs::copy(Path::new("assets/content/melody").join(f), copy.join(f)).unwrap();
    }

    let got = load_all(root, &ImportOptions::default()).unwrap();
    assert!(got.unavailable.is_empty(), "{:?}", got.unavailable);
    let ids: Vec<_> = got.items.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["holiday-clip", "melody", "spinner"]);

    let clip = &got.items[0];
    assert_eq!(clip.title, "Holiday Clip");
    // the longer track (the picture, 2 s) sets the duration; audio padded
    assert_eq!(clip.duration, Duration::from_secs(2));
    assert_eq!(clip.audio.sample_rate, 8000);
    assert_eq!(clip.audio.samples.len(), 16_000);
    let v = clip.video.as_ref().unwrap();
    assert_eq!(
        (v.width, v.height, v.fps, v.frames.len()),
        (320, 240, 5, 10)
    );
    assert!(
        close(middle_pixel(clip, 0), [220, 30, 30]),
        "{:?}",
        middle_pixel(clip, 0)
    );
    assert!(close(middle_pixel(clip, 9), [30, 30, 220]));

    let spin = &got.items[2];
    assert_eq!(spin.duration, Duration::from_secs(1));
    assert!(spin.audio.samples.iter().all(|&s| s == 0));
    let v = spin.video.as_ref().unwrap();
    // 16×8 stored as 16×8 (multiples of 8), 10 fps
    assert_eq!((v.width, v.height, v.fps, v.frames.len()), (16, 8, 10, 10));
    assert!(close(middle_pixel(spin, 4), [0, 200, 0]));
    assert!(close(middle_pixel(spin, 5), [255, 255, 255]));

    // the server's library serves the same list
    let lib = ContentLibrary::load(root).unwrap();
    assert_eq!(lib.list().entries.len(), 3);
    assert_eq!(lib.list().entries[0].media, ["audio", "video"]);
}

#[test]
fn files_only_ffmpeg_reads_are_unavailable_without_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("film.mkv"), b"not really").unwrap();
    std::fs::write(dir.path().join("broken.wav"), b"RIFF....").unwrap();
    let got = load_all(
        dir.path(),
        &ImportOptions {
            cache_dir: Some(dir.path().join("cache")),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert!(got.items.is_empty());
    let reasons: Vec<_> = got
        .unavailable
        .iter()
        .map(|u| (u.id.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(reasons[0].0, "broken");
    assert!(reasons[0].1.contains("WAV"), "{reasons:?}");
    assert_eq!(
        reasons[1],
        (
            "film",
            "ffmpeg is not on PATH: install it to play .mkv files"
        )
    );
}

fn ffmpeg() -> std::path::PathBuf {
    // CI installs ffmpeg: its absence is a failure, not a skip
    isc::media::import::ffmpeg::find_ffmpeg().expect("ffmpeg on PATH")
}

#[test]
fn an_mp4_is_transcoded_once_and_a_bad_file_is_reported() {
    let ffmpeg = ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("content");
    std::fs::create_dir(&root).unwrap();
    let status = Command::new(&ffmpeg)
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:duration=2",
            "-c:v",
            "mpeg4",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(root.join("Test Card.mp4"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(root.join("broken.mp4"), b"this is no mp4").unwrap();
    let opts = ImportOptions {
        cache_dir: Some(dir.path().join("cache")),
        ffmpeg: Some(ffmpeg),
        ..ImportOptions::default()
    };

    let got = load_all(&root, &opts).unwrap();
    assert_eq!(got.unavailable.len(), 1);
    assert_eq!(got.unavailable[0].id, "broken");
    assert!(
        got.unavailable[0].reason.starts_with("ffmpeg: "),
        "{:?}",
        got.unavailable
    );
    let [card] = &got.items[..] else {
        panic!("{:?}", got.items.len())
    };
    assert_eq!(
        (card.id.as_str(), card.title.as_str()),
        ("test-card", "Test Card")
    );
    assert!(
        card.duration.abs_diff(Duration::from_secs(2)) <= Duration::from_millis(100),
        "{:?}",
        card.duration
    );
    let v = card.video.as_ref().unwrap();
    assert_eq!((v.width, v.height, v.fps), (320, 176, 15));
    assert!(v.frames.len().abs_diff(30) <= 2, "{}", v.frames.len());
    let tone = isc::media::resample::goertzel(&card.audio.samples[2000..14000], 8000, 1000.0);
    assert!(tone > 1000.0, "{tone}");

    // cached: the second load reads the piece, whatever happens to ffmpeg
    let cached = dir.path().join("cache/test-card");
    assert!(cached.join("content.toml").is_file());
    let again = load_all(
        &root,
        &ImportOptions {
            ffmpeg: Some("/nonexistent/ffmpeg".into()),
            ..opts
        },
    )
    .unwrap();
    assert_eq!(again.items[0].duration, card.duration);
    assert_eq!(
        again.items[0].video.as_ref().unwrap().frames.len(),
        v.frames.len()
    );
}
