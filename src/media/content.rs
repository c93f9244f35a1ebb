//! Content pieces on disk: `<dir>/<id>/content.toml` (id, title, duration,
//! media files), `audio.wav` (8 kHz mono 16-bit PCM) and optionally
//! `video.mjpeg` (concatenated baseline JPEG frames, RFC 2435 type 1 ready).
//! Regenerate the shipped ones with `cargo run --example gen-content`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proto::rtp::jpeg_codec::decode_rgb;

/// Sample rate of content audio (PCMU's clock).
pub const AUDIO_SAMPLE_RATE: u32 = 8000;
/// Largest accepted gap between `duration_ms` and a track's own length.
pub const DURATION_TOLERANCE: Duration = Duration::from_millis(150);
/// Name of the metadata file in a content directory.
pub const METADATA_FILE: &str = "content.toml";

/// What is wrong with a content directory.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: bad metadata: {source}")]
    Metadata {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: bad WAV: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    #[error("{path}: audio must be {AUDIO_SAMPLE_RATE} Hz mono 16-bit PCM, found {found}")]
    AudioFormat { path: PathBuf, found: String },
    #[error("{path}: frame {index}: {detail}")]
    BadFrame {
        path: PathBuf,
        index: usize,
        detail: String,
    },
    #[error("{id}: {track} lasts {actual:?}, metadata says {declared:?}")]
    DurationMismatch {
        id: String,
        track: &'static str,
        actual: Duration,
        declared: Duration,
    },
    #[error("{path}: id {found:?} does not match its directory name")]
    IdMismatch { path: PathBuf, found: String },
}

/// `content.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub id: String,
    pub title: String,
    pub duration_ms: u64,
    pub audio: AudioMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioMeta {
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoMeta {
    pub file: String,
    pub width: u16,
    pub height: u16,
    pub fps: u32,
}

/// A listed piece: its metadata and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentInfo {
    pub id: String,
    pub title: String,
    pub duration: Duration,
    pub dir: PathBuf,
}

/// 8 kHz mono PCM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
}

/// One video frame: the JPEG as stored (what the RTP packetizer sends) and its
/// RGB24 pixels (empty when loaded with `keep_rgb = false`, as imported pieces
/// are: the server only sends the JPEG, and a long film would not fit in RAM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub jpeg: Vec<u8>,
    pub rgb: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    pub width: u16,
    pub height: u16,
    pub fps: u32,
    pub frames: Vec<VideoFrame>,
}

impl Video {
    /// Length of the track (frames / fps).
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.frames.len() as f64 / f64::from(self.fps.max(1)))
    }
}

/// A loaded piece of content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub id: String,
    pub title: String,
    pub duration: Duration,
    pub audio: Audio,
    pub video: Option<Video>,
}

fn read(path: &Path) -> Result<Vec<u8>, ContentError> {
    std::fs::read(path).map_err(|source| ContentError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Read and parse `<dir>/content.toml`.
pub fn read_metadata(dir: &Path) -> Result<Metadata, ContentError> {
    let path = dir.join(METADATA_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| ContentError::Io {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ContentError::Metadata { path, source })
}

/// The pieces under `root` (one directory each, with a `content.toml`), sorted by id.
pub fn list(root: &Path) -> Result<Vec<ContentInfo>, ContentError> {
    let entries = std::fs::read_dir(root).map_err(|source| ContentError::Io {
        path: root.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let dir = entry
            .map_err(|source| ContentError::Io {
                path: root.to_owned(),
                source,
            })?
            .path();
        if !dir.join(METADATA_FILE).is_file() {
            continue;
        }
        let m = read_metadata(&dir)?;
        out.push(ContentInfo {
            id: m.id,
            title: m.title,
            duration: Duration::from_millis(m.duration_ms),
            dir,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Split concatenated JPEG images (SOI … EOI each) into frames.
pub fn split_mjpeg(bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        if bytes.get(pos..pos + 2) != Some(&[0xff, 0xd8]) {
            return Err(format!("no SOI at byte {pos}"));
        }
        pos += 2;
        // walk marker segments up to SOS, then the entropy-coded data to EOI
        loop {
            let (Some(&0xff), Some(&marker)) = (bytes.get(pos), bytes.get(pos + 1)) else {
                return Err(format!("no marker at byte {pos}"));
            };
            if marker == 0xd9 {
                pos += 2;
                break;
            }
            let len = bytes
                .get(pos + 2..pos + 4)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            let Some(len) = len else {
                return Err(format!("truncated segment at byte {pos}"));
            };
            pos += 2 + len;
            if marker == 0xda {
                let scan = bytes.get(pos..).unwrap_or_default();
                let end = scan
                    .windows(2)
                    .position(|w| w == [0xff, 0xd9])
                    .ok_or("no EOI after the scan")?;
                pos += end + 2;
                break;
            }
        }
        frames.push(bytes.get(start..pos).ok_or("frame runs past the end")?);
    }
    Ok(frames)
}

fn check_duration(
    id: &str,
    track: &'static str,
    actual: Duration,
    declared: Duration,
) -> Result<(), ContentError> {
    if actual.abs_diff(declared) > DURATION_TOLERANCE {
        return Err(ContentError::DurationMismatch {
            id: id.to_owned(),
            track,
            actual,
            declared,
        });
    }
    Ok(())
}

impl Content {
    /// Load a piece from its directory, checking formats and durations against the metadata.
    pub fn load(dir: &Path) -> Result<Content, ContentError> {
        Self::load_with(dir, true)
    }

    /// Write the piece as `<dir>/content.toml`, `audio.wav` and (with video)
    /// `video.mjpeg`, creating `dir`; [`Content::load`] reads it back.
    pub fn save(&self, dir: &Path) -> Result<(), ContentError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ContentError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let meta = Metadata {
            id: self.id.clone(),
            title: self.title.clone(),
            duration_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            audio: AudioMeta {
                file: "audio.wav".into(),
            },
            video: self.video.as_ref().map(|v| VideoMeta {
                file: "video.mjpeg".into(),
                width: v.width,
                height: v.height,
                fps: v.fps,
            }),
        };
        let wav_path = dir.join("audio.wav");
        let wav_err = |source| ContentError::Wav {
            path: wav_path.clone(),
            source,
        };
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: self.audio.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav_path, spec).map_err(wav_err)?;
        for &s in &self.audio.samples {
            w.write_sample(s).map_err(wav_err)?;
        }
        w.finalize().map_err(wav_err)?;
        if let Some(v) = &self.video {
            let path = dir.join("video.mjpeg");
            let bytes: Vec<u8> = v
                .frames
                .iter()
                .flat_map(|f| f.jpeg.iter().copied())
                .collect();
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        let path = dir.join(METADATA_FILE);
        let text = toml::to_string(&meta).map_err(|e| ContentError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&path, text).map_err(io(&path))
    }

    /// [`Content::load`], keeping each frame's decoded pixels only if `keep_rgb`
    /// (every frame is decoded either way, to check it).
    pub fn load_with(dir: &Path, keep_rgb: bool) -> Result<Content, ContentError> {
        let meta = read_metadata(dir)?;
        if dir.file_name().is_some_and(|n| n != meta.id.as_str()) {
            return Err(ContentError::IdMismatch {
                path: dir.to_owned(),
                found: meta.id,
            });
        }
        let duration = Duration::from_millis(meta.duration_ms);

        let wav_path = dir.join(&meta.audio.file);
        let wav_err = |source| ContentError::Wav {
            path: wav_path.clone(),
            source,
        };
        let reader =
            hound::WavReader::new(std::io::Cursor::new(read(&wav_path)?)).map_err(wav_err)?;
        let spec = reader.spec();
        if spec.sample_rate != AUDIO_SAMPLE_RATE
            || spec.channels != 1
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
        {
            return Err(ContentError::AudioFormat {
                path: wav_path.clone(),
                found: format!("{spec:?}"),
            });
        }
        let samples = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(wav_err)?;
        let audio = Audio {
            sample_rate: AUDIO_SAMPLE_RATE,
            samples,
        };
        let audio_len =
            Duration::from_secs_f64(audio.samples.len() as f64 / f64::from(AUDIO_SAMPLE_RATE));
        check_duration(&meta.id, "audio", audio_len, duration)?;

        let video = match &meta.video {
            None => None,
            Some(v) => {
                let path = dir.join(&v.file);
                let bytes = read(&path)?;
                let bad = |index, detail| ContentError::BadFrame {
                    path: path.clone(),
                    index,
                    detail,
                };
                let jpegs = split_mjpeg(&bytes).map_err(|d| bad(0, d))?;
                let mut frames = Vec::with_capacity(jpegs.len());
                for (index, jpeg) in jpegs.into_iter().enumerate() {
                    let rgb = decode_rgb(jpeg).map_err(|e| bad(index, e.to_string()))?;
                    if (rgb.width, rgb.height) != (v.width, v.height) {
                        return Err(bad(
                            index,
                            format!(
                                "{}x{} instead of {}x{}",
                                rgb.width, rgb.height, v.width, v.height
                            ),
                        ));
                    }
                    frames.push(VideoFrame {
                        jpeg: jpeg.to_vec(),
                        rgb: if keep_rgb { rgb.data } else { Vec::new() },
                    });
                }
                let video = Video {
                    width: v.width,
                    height: v.height,
                    fps: v.fps,
                    frames,
                };
                check_duration(&meta.id, "video", video.duration(), duration)?;
                Some(video)
            }
        };
        Ok(Content {
            id: meta.id,
            title: meta.title,
            duration,
            audio,
            video,
        })
    }
}
