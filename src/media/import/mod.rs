//! The user's own files in the server's content directory, beside our
//! `content.toml` pieces:
//!
//! - `name.wav` (any rate, channels, bit depth hound reads) → 8 kHz mono,
//!   optionally with `name.y4m` (4:2:0/4:2:2/4:4:4) or `name.gif` as its
//!   picture; a `.y4m` or `.gif` alone plays over silence;
//! - any other media file (see [`FFMPEG_EXTENSIONS`]) through `ffmpeg`, once,
//!   into `<cache_dir>/<id>/` as an ordinary piece, reloaded while the source
//!   file's size and modification time are unchanged; without ffmpeg (or a
//!   cache dir) such a file is listed as [`Unavailable`].
//!
//! Ids come from file names ([`sanitize_id`]), titles too ([`title_from_stem`]);
//! durations are measured. Pictures are stored at ≤ 320×240 (multiples of 8)
//! and ≤ 15 fps as baseline JPEG ready for RFC 2435.

pub mod audio;
pub mod ffmpeg;
pub mod gif;
pub mod scale;
pub mod y4m;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::media::content::{
    AUDIO_SAMPLE_RATE, Audio, Content, ContentError, METADATA_FILE, Video, VideoFrame,
};
use crate::proto::rtp::jpeg::JpegError;
use crate::proto::rtp::jpeg_codec::{RgbFrame, encode_rgb};
use y4m::{Y4mError, Y4mReader};

/// Highest imported frame rate.
pub const MAX_FPS: u32 = 15;
/// JPEG quality of imported frames.
pub const JPEG_QUALITY: u8 = 75;
/// Extensions handed to ffmpeg (lower case).
pub const FFMPEG_EXTENSIONS: &[&str] = &[
    "3gp", "aac", "aif", "aiff", "amr", "au", "avi", "flac", "flv", "m2ts", "m4a", "m4v", "mka",
    "mkv", "mov", "mp2", "mp3", "mp4", "mpeg", "mpg", "mts", "oga", "ogg", "ogv", "opus", "ts",
    "webm", "wma", "wmv",
];
/// Name of the stamp file in a cached piece: the source it was made from.
const SOURCE_STAMP: &str = "source.txt";

/// Why a file could not be imported.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("bad WAV: {0}")]
    Wav(#[from] hound::Error),
    #[error("bad Y4M: {0}")]
    Y4m(#[from] Y4mError),
    #[error("bad GIF: {0}")]
    Gif(#[from] ::gif::DecodingError),
    #[error("encoding a frame: {0}")]
    Jpeg(#[from] JpegError),
    #[error("ffmpeg is not on PATH: install it to play .{0} files")]
    NoFfmpeg(String),
    #[error("no cache directory to transcode .{0} files into")]
    NoCache(String),
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
    #[error("no audio and no video")]
    Empty,
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// How to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Where transcoded pieces are kept (under the server's data dir).
    pub cache_dir: Option<PathBuf>,
    /// The ffmpeg program; `None`: files only ffmpeg reads are unavailable.
    pub ffmpeg: Option<PathBuf>,
    /// Longer media is cut here.
    pub max_duration: Duration,
}

impl Default for ImportOptions {
    /// No ffmpeg, no cache: WAV/Y4M/GIF only.
    fn default() -> Self {
        Self {
            cache_dir: None,
            ffmpeg: None,
            max_duration: Duration::from_secs(600),
        }
    }
}

impl ImportOptions {
    /// Transcode into `cache_dir` with the `ffmpeg` found on PATH, if any.
    pub fn detect(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: Some(cache_dir.into()),
            ffmpeg: ffmpeg::find_ffmpeg(),
            ..Self::default()
        }
    }
}

/// A file or piece that is there but cannot be played, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub id: String,
    pub title: String,
    pub path: PathBuf,
    pub reason: String,
}

/// Everything under a content root.
#[derive(Debug, Default)]
pub struct Imported {
    /// Loaded pieces, sorted by id.
    pub items: Vec<Content>,
    pub unavailable: Vec<Unavailable>,
}

/// A picture track ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedVideo {
    pub width: u16,
    pub height: u16,
    pub fps: u32,
    pub jpegs: Vec<Vec<u8>>,
}

/// A file name stem as a content id: lower-case ASCII letters, digits and
/// single `-`; `content` when nothing is left.
pub fn sanitize_id(stem: &str) -> String {
    let mut id = String::new();
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    while id.ends_with('-') {
        id.pop();
    }
    if id.is_empty() { "content".into() } else { id }
}

/// A file name stem as a title: `_` and `.` read as spaces, whitespace collapsed.
pub fn title_from_stem(stem: &str) -> String {
    let t: Vec<&str> = stem
        .split(|c: char| c == '_' || c == '.' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    if t.is_empty() {
        stem.to_owned()
    } else {
        t.join(" ")
    }
}

/// RGB frames at `rate` (num/den fps) → JPEG frames at ≤ [`MAX_FPS`] whole
/// frames per second, scaled by [`scale::target_size`].
pub fn encode_frames(
    frames: impl IntoIterator<Item = Result<RgbFrame, ImportError>>,
    rate: (u32, u32),
) -> Result<Option<ImportedVideo>, ImportError> {
    let (num, den) = (u64::from(rate.0.max(1)), u64::from(rate.1.max(1)));
    let fps = ((num as f64 / den as f64).round() as u32).clamp(1, MAX_FPS);
    let mut out: Option<ImportedVideo> = None;
    for (i, frame) in frames.into_iter().enumerate() {
        let frame = frame?;
        let v = out.get_or_insert_with(|| {
            let (width, height) = scale::target_size(frame.width, frame.height);
            ImportedVideo {
                width,
                height,
                fps,
                jpegs: Vec::new(),
            }
        });
        // source frame i covers [i·den/num, (i+1)·den/num) s; output k sits at k/fps s
        let mut jpeg = None;
        while (v.jpegs.len() as u64) * num < (i as u64 + 1) * den * u64::from(fps) {
            let j = match &jpeg {
                Some(j) => j,
                None => jpeg.insert(encode_rgb(
                    &scale::scale(&frame, v.width, v.height),
                    JPEG_QUALITY,
                )?),
            };
            v.jpegs.push(j.clone());
        }
    }
    Ok(out)
}

/// Every frame of a Y4M stream, encoded.
pub fn video_from_y4m<R: BufRead>(mut r: Y4mReader<R>) -> Result<ImportedVideo, ImportError> {
    let rate = r.rate;
    let frames = std::iter::from_fn(move || r.next_frame().map_err(ImportError::from).transpose());
    encode_frames(frames, rate)?.ok_or(ImportError::Empty)
}

/// A piece from 8 kHz mono samples and an optional picture: the duration is
/// the longer track's; the shorter is padded (silence, or the last frame held).
pub fn assemble(
    id: &str,
    title: &str,
    mut samples: Vec<i16>,
    video: Option<ImportedVideo>,
) -> Content {
    let rate = u64::from(AUDIO_SAMPLE_RATE);
    let video_ms = video
        .as_ref()
        .map_or(0, |v| v.jpegs.len() as u64 * 1000 / u64::from(v.fps.max(1)));
    let audio_ms = samples.len() as u64 * 1000 / rate;
    let duration_ms = audio_ms.max(video_ms);
    samples.resize(
        ((duration_ms * rate).div_ceil(1000) as usize).max(samples.len()),
        0,
    );
    let video = video.map(|mut v| {
        let want = (duration_ms * u64::from(v.fps)).div_ceil(1000) as usize;
        if let Some(last) = v.jpegs.last().cloned() {
            v.jpegs.resize(want.max(v.jpegs.len()), last);
        }
        Video {
            width: v.width,
            height: v.height,
            fps: v.fps,
            frames: v
                .jpegs
                .into_iter()
                .map(|jpeg| VideoFrame {
                    jpeg,
                    rgb: Vec::new(),
                })
                .collect(),
        }
    });
    Content {
        id: id.to_owned(),
        title: title.to_owned(),
        duration: Duration::from_millis(duration_ms),
        audio: Audio {
            sample_rate: AUDIO_SAMPLE_RATE,
            samples,
        },
        video,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(ImportError::Io)
}

fn ext_of(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A `.y4m` or `.gif` picture track.
pub fn import_picture(path: &Path) -> Result<ImportedVideo, ImportError> {
    let file = std::fs::File::open(path).map_err(ImportError::Io)?;
    let r = std::io::BufReader::new(file);
    if ext_of(path) == "gif" {
        let frames = gif::read_gif(r)?;
        encode_frames(frames.into_iter().map(Ok), (gif::GIF_FPS, 1))?.ok_or(ImportError::Empty)
    } else {
        video_from_y4m(Y4mReader::new(r)?)
    }
}

/// `wav` (if any) with `picture` (if any) as one piece.
pub fn import_native(
    id: &str,
    title: &str,
    wav: Option<&Path>,
    picture: Option<&Path>,
) -> Result<Content, ImportError> {
    let samples = match wav {
        Some(p) => audio::wav_to_8k_mono(&read(p)?, AUDIO_SAMPLE_RATE)?,
        None => Vec::new(),
    };
    let video = picture.map(import_picture).transpose()?;
    if samples.is_empty() && video.is_none() {
        return Err(ImportError::Empty);
    }
    Ok(assemble(id, title, samples, video))
}

fn stamp(path: &Path) -> Result<String, ImportError> {
    let m = std::fs::metadata(path).map_err(ImportError::Io)?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}\n{}\n{}\n", path.display(), m.len(), mtime))
}

/// A file only ffmpeg reads: from the cache when its stamp still matches,
/// else transcoded into it.
pub fn import_with_ffmpeg(
    id: &str,
    title: &str,
    path: &Path,
    opts: &ImportOptions,
) -> Result<Content, ImportError> {
    let ext = ext_of(path);
    let cache = opts
        .cache_dir
        .as_ref()
        .ok_or_else(|| ImportError::NoCache(ext.clone()))?;
    let ffmpeg = opts.ffmpeg.as_ref().ok_or(ImportError::NoFfmpeg(ext))?;
    let dir = cache.join(id);
    let stamp = stamp(path)?;
    if std::fs::read_to_string(dir.join(SOURCE_STAMP))
        .ok()
        .as_deref()
        == Some(stamp.as_str())
        && let Ok(c) = Content::load_with(&dir, false)
    {
        return Ok(c);
    }
    let audio = ffmpeg::audio(ffmpeg, path, opts.max_duration);
    let video = ffmpeg::video(ffmpeg, path, opts.max_duration);
    let content = match (audio, video) {
        (Err(e), Err(_)) => return Err(e),
        (a, v) => assemble(id, title, a.unwrap_or_default(), v.ok()),
    };
    // build beside, then swap in
    let tmp = cache.join(format!(".{id}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    content.save(&tmp)?;
    std::fs::write(tmp.join(SOURCE_STAMP), &stamp).map_err(ImportError::Io)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(ImportError::Io)?;
    Ok(Content::load_with(&dir, false)?)
}

/// Load everything under `root`: our pieces, then the user's files. A file
/// that cannot be imported, or whose id is taken, is [`Unavailable`]; only an
/// unreadable `root` is an error.
pub fn load_all(root: &Path, opts: &ImportOptions) -> Result<Imported, ContentError> {
    let io = |source| ContentError::Io {
        path: root.to_owned(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    paths.sort();
    let mut pieces = Vec::new();
    // stem → (wav, picture)
    let mut natives: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    let mut foreign = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            if p.join(METADATA_FILE).is_file() {
                pieces.push(p);
            }
            continue;
        }
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match ext_of(&p).as_str() {
            "wav" => natives.entry(stem).or_default().0 = Some(p),
            "y4m" | "gif" => match &mut natives.entry(stem).or_default().1 {
                slot @ None => *slot = Some(p),
                // `x.gif` beside `x.y4m`: the Y4M is the picture
                Some(_) => foreign.push(p),
            },
            e if FFMPEG_EXTENSIONS.contains(&e) => foreign.push(p),
            _ => {}
        }
    }
    let mut out = Imported::default();
    let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
    fn add(
        out: &mut Imported,
        taken: &mut BTreeMap<String, PathBuf>,
        (id, title, path): (String, String, PathBuf),
        r: Result<Content, ImportError>,
    ) {
        let r = match taken.get(&id) {
            Some(other) => Err(format!("id {id:?} already used by {}", other.display())),
            None => r.map_err(|e| e.to_string()),
        };
        match r {
            Ok(c) => {
                taken.insert(id, path);
                out.items.push(c);
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "content unavailable");
                out.unavailable.push(Unavailable {
                    id,
                    title,
                    path,
                    reason,
                });
            }
        }
    }
    for dir in pieces {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let r = Content::load(&dir).map_err(ImportError::from);
        let title = r
            .as_ref()
            .map_or_else(|_| name.clone(), |c| c.title.clone());
        add(&mut out, &mut taken, (name, title, dir), r);
    }
    for (stem, (wav, picture)) in natives {
        let (id, title) = (sanitize_id(&stem), title_from_stem(&stem));
        let r = import_native(&id, &title, wav.as_deref(), picture.as_deref());
        let path = wav.or(picture).unwrap_or_default();
        add(&mut out, &mut taken, (id, title, path), r);
    }
    for path in foreign {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (mut id, title) = (sanitize_id(&stem), title_from_stem(&stem));
        if taken.contains_key(&id) {
            // `x.gif` beside `x.y4m`, `x.mp3` beside `x.wav`: keep both
            id = sanitize_id(&format!("{stem}-{}", ext_of(&path)));
        }
        let r = import_with_ffmpeg(&id, &title, &path, opts);
        add(&mut out, &mut taken, (id, title, path), r);
    }
    out.items.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_titles_from_file_names() {
        assert_eq!(sanitize_id("My Holiday (2019)"), "my-holiday-2019");
        assert_eq!(sanitize_id("__été__"), "t");
        assert_eq!(sanitize_id("…"), "content");
        assert_eq!(
            title_from_stem("my_holiday.final  cut"),
            "my holiday final cut"
        );
    }
}
