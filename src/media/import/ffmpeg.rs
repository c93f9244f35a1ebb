//! Any file ffmpeg reads, through the `ffmpeg` program: audio as raw 8 kHz
//! mono s16le, video as a Y4M pipe at ≤ 320×240 and ≤ 15 fps, both read from
//! its stdout (nothing but the final piece is written to disk).

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::y4m::Y4mReader;
use super::{ImportError, ImportedVideo, MAX_FPS, video_from_y4m};
use crate::media::content::AUDIO_SAMPLE_RATE;

/// `ffmpeg` on `PATH`, if any (looked up without running anything).
pub fn find_ffmpeg() -> Option<PathBuf> {
    let name = if cfg!(windows) {
        "ffmpeg.exe"
    } else {
        "ffmpeg"
    };
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn base(ffmpeg: &Path, input: &Path, max: Duration) -> Command {
    let mut c = Command::new(ffmpeg);
    c.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(input)
        .arg("-t")
        .arg(format!("{:.3}", max.as_secs_f64()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Run `cmd`, handing its stdout to `read`; ffmpeg's last stderr line on failure.
fn run<T>(
    mut cmd: Command,
    read: impl FnOnce(&mut dyn Read) -> Result<T, ImportError>,
) -> Result<T, ImportError> {
    let mut child = cmd
        .spawn()
        .map_err(|e| ImportError::Ffmpeg(format!("cannot run ffmpeg: {e}")))?;
    // drain stderr on a thread so a chatty ffmpeg cannot block on a full pipe
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    let result = match child.stdout.take() {
        Some(mut out) => {
            let r = read(&mut out);
            // read what is left so ffmpeg can finish
            let _ = std::io::copy(&mut out, &mut std::io::sink());
            r
        }
        None => Err(ImportError::Ffmpeg("no stdout".into())),
    };
    let status = child
        .wait()
        .map_err(|e| ImportError::Ffmpeg(e.to_string()))?;
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        return Err(ImportError::Ffmpeg(last.trim().to_owned()));
    }
    result
}

/// The first audio stream as 8 kHz mono PCM.
pub fn audio(ffmpeg: &Path, input: &Path, max: Duration) -> Result<Vec<i16>, ImportError> {
    let mut c = base(ffmpeg, input, max);
    c.args(["-map", "0:a:0", "-vn", "-sn", "-ac", "1", "-ar"])
        .arg(AUDIO_SAMPLE_RATE.to_string())
        .args(["-f", "s16le", "-"]);
    run(c, |out| {
        let mut bytes = Vec::new();
        out.read_to_end(&mut bytes).map_err(ImportError::Io)?;
        Ok(bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect())
    })
}

/// The first video stream (not cover art) as JPEG frames.
pub fn video(ffmpeg: &Path, input: &Path, max: Duration) -> Result<ImportedVideo, ImportError> {
    let mut c = base(ffmpeg, input, max);
    let filter = format!(
        "fps=fps='min(source_fps,{MAX_FPS})',scale=w={}:h={}:force_original_aspect_ratio=decrease",
        super::scale::MAX_WIDTH,
        super::scale::MAX_HEIGHT
    );
    c.args(["-map", "0:V:0", "-an", "-sn", "-vf", &filter])
        .args(["-pix_fmt", "yuv444p", "-f", "yuv4mpegpipe", "-"]);
    run(c, |out| {
        let reader = Y4mReader::new(BufReader::new(out))?;
        video_from_y4m(reader)
    })
}
