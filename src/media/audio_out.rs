//! Where decoded audio goes: a sound card through cpal (feature `audio`), a
//! WAV file, or nowhere. Every sink counts the samples it has played, which is
//! the player's master clock. The null and WAV sinks pace themselves on the
//! `now` they are given ([`Pacer`]), so the clock runs at real time with or
//! without a sound card.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What went wrong opening or writing an audio output.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// No usable output device (no card, no permission, no config).
    #[error("no audio device: {0}")]
    NoDevice(String),
    /// The WAV file could not be created or written.
    #[error("WAV file {path}: {detail}")]
    Wav { path: PathBuf, detail: String },
}

/// Which output to open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioOut {
    /// The default sound device; the null sink when there is none.
    #[default]
    Device,
    /// Write what is played to a WAV file (`--audio-out FILE.wav`), at `rate` Hz.
    Wav { path: PathBuf, rate: u32 },
    /// Play into the void at real time.
    Null,
}

impl AudioOut {
    /// The choice for an optional `--audio-out FILE.wav`: the file at 8 kHz
    /// (PCMU's own rate, nothing resampled), else the device.
    pub fn from_option(path: Option<&Path>) -> Self {
        match path {
            Some(p) => Self::Wav {
                path: p.to_path_buf(),
                rate: 8000,
            },
            None => Self::Device,
        }
    }
}

/// Kind of the sink in use, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Device,
    Wav,
    Null,
    Memory,
}

/// An audio output: mono 16-bit samples at [`AudioSink::sample_rate`].
pub trait AudioSink: Send {
    fn kind(&self) -> SinkKind;
    fn sample_rate(&self) -> u32;
    /// Queue samples behind those already queued.
    fn write(&mut self, now: Instant, samples: &[i16]);
    /// Move on to `now`; returns the samples played so far (the audio clock).
    fn advance(&mut self, now: Instant) -> u64;
    /// Samples written but not yet played.
    fn queued(&self) -> u64;
    /// Times the output ran dry while started.
    fn underruns(&self) -> u64;
    /// Play out everything queued at once and close (files get their header).
    fn finish(&mut self) -> Result<(), AudioError>;
}

/// Opens `choice`; never fails for `Device`: with no usable card (this machine,
/// CI, SSH) it logs why and returns the null sink at 48 kHz.
pub fn open(choice: &AudioOut) -> Result<Box<dyn AudioSink>, AudioError> {
    match choice {
        AudioOut::Null => Ok(Box::new(NullSink::new(48_000))),
        AudioOut::Wav { path, rate } => Ok(Box::new(WavSink::create(path, *rate)?)),
        AudioOut::Device => {
            #[cfg(feature = "audio")]
            match cpal_sink::CpalSink::open_default() {
                Ok(s) => return Ok(Box::new(s)),
                Err(e) => tracing::info!("{e}; playing to the null sink"),
            }
            Ok(Box::new(NullSink::new(48_000)))
        }
    }
}

/// Playout started once this much is queued (and again after running dry):
/// absorbs the driver's wake-up jitter, like ALSA's start threshold.
pub const START_THRESHOLD: Duration = Duration::from_millis(30);

/// Real-time consumption of a queue, sans-IO: `advance(now)` plays
/// `elapsed × rate` samples, never more than were written. When it runs dry it
/// stops (the clock stalls rather than inventing silence) and restarts once
/// [`START_THRESHOLD`] is queued again.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: u32,
    written: u64,
    played: u64,
    /// Started at this instant with `played` at this count.
    running: Option<(Instant, u64)>,
    underruns: u64,
}

impl Pacer {
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(1),
            written: 0,
            played: 0,
            running: None,
            underruns: 0,
        }
    }
    pub fn write(&mut self, n: usize) {
        self.written += n as u64;
    }
    fn threshold(&self) -> u64 {
        START_THRESHOLD.as_micros() as u64 * u64::from(self.rate) / 1_000_000
    }
    /// Returns how many samples became played.
    pub fn advance(&mut self, now: Instant) -> u64 {
        let before = self.played;
        match self.running {
            None => {
                if self.written - self.played >= self.threshold().max(1) {
                    self.running = Some((now, self.played));
                }
            }
            Some((since, base)) => {
                let elapsed = now.saturating_duration_since(since);
                let due =
                    base + (elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000) as u64;
                if due >= self.written {
                    self.played = self.written;
                    self.running = None;
                    self.underruns += 1;
                } else {
                    self.played = due.max(self.played);
                }
            }
        }
        self.played - before
    }
    pub fn played(&self) -> u64 {
        self.played
    }
    pub fn queued(&self) -> u64 {
        self.written - self.played
    }
    pub fn underruns(&self) -> u64 {
        self.underruns
    }
    /// Everything written counts as played (end of stream).
    pub fn drain(&mut self) -> u64 {
        let n = self.queued();
        self.played = self.written;
        self.running = None;
        n
    }
}

/// Plays into the void at real time.
#[derive(Debug)]
pub struct NullSink {
    pacer: Pacer,
}

impl NullSink {
    pub fn new(rate: u32) -> Self {
        Self {
            pacer: Pacer::new(rate),
        }
    }
}

impl AudioSink for NullSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Null
    }
    fn sample_rate(&self) -> u32 {
        self.pacer.rate
    }
    fn write(&mut self, _now: Instant, samples: &[i16]) {
        self.pacer.write(samples.len());
    }
    fn advance(&mut self, now: Instant) -> u64 {
        self.pacer.advance(now);
        self.pacer.played()
    }
    fn queued(&self) -> u64 {
        self.pacer.queued()
    }
    fn underruns(&self) -> u64 {
        self.pacer.underruns()
    }
    fn finish(&mut self) -> Result<(), AudioError> {
        self.pacer.drain();
        Ok(())
    }
}

/// Keeps what is played in memory (tests, benchmarks), paced like
/// [`NullSink`]; [`MemorySink::tap`] reads it from outside the player.
#[derive(Debug)]
pub struct MemorySink {
    pacer: Pacer,
    queue: VecDeque<i16>,
    played: std::sync::Arc<std::sync::Mutex<Vec<i16>>>,
}

impl MemorySink {
    pub fn new(rate: u32) -> Self {
        Self {
            pacer: Pacer::new(rate),
            queue: VecDeque::new(),
            played: Default::default(),
        }
    }
    /// The samples played so far, in order, shared with the sink.
    pub fn tap(&self) -> std::sync::Arc<std::sync::Mutex<Vec<i16>>> {
        self.played.clone()
    }
    fn emit(&mut self, n: usize) {
        let n = n.min(self.queue.len());
        if let Ok(mut played) = self.played.lock() {
            played.extend(self.queue.drain(..n));
        }
    }
}

impl AudioSink for MemorySink {
    fn kind(&self) -> SinkKind {
        SinkKind::Memory
    }
    fn sample_rate(&self) -> u32 {
        self.pacer.rate
    }
    fn write(&mut self, _now: Instant, samples: &[i16]) {
        self.pacer.write(samples.len());
        self.queue.extend(samples);
    }
    fn advance(&mut self, now: Instant) -> u64 {
        let n = self.pacer.advance(now) as usize;
        self.emit(n);
        self.pacer.played()
    }
    fn queued(&self) -> u64 {
        self.pacer.queued()
    }
    fn underruns(&self) -> u64 {
        self.pacer.underruns()
    }
    fn finish(&mut self) -> Result<(), AudioError> {
        let n = self.pacer.drain() as usize;
        self.emit(n);
        Ok(())
    }
}

/// Writes what is played to a 16-bit mono WAV file, paced like [`NullSink`]:
/// sample `i` of the file is what the clock called position `i`.
pub struct WavSink {
    path: PathBuf,
    pacer: Pacer,
    queue: VecDeque<i16>,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    error: Option<String>,
}

impl WavSink {
    pub fn create(path: &Path, rate: u32) -> Result<Self, AudioError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate.max(1),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| AudioError::Wav {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            pacer: Pacer::new(rate),
            queue: VecDeque::new(),
            writer: Some(writer),
            error: None,
        })
    }

    fn emit(&mut self, n: usize) {
        let n = n.min(self.queue.len());
        if let Some(w) = self.writer.as_mut() {
            for s in self.queue.drain(..n) {
                if let Err(e) = w.write_sample(s) {
                    // keep the clock running; report at finish
                    self.error.get_or_insert(e.to_string());
                }
            }
        } else {
            self.queue.drain(..n);
        }
    }
}

impl AudioSink for WavSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Wav
    }
    fn sample_rate(&self) -> u32 {
        self.pacer.rate
    }
    fn write(&mut self, _now: Instant, samples: &[i16]) {
        self.pacer.write(samples.len());
        self.queue.extend(samples);
    }
    fn advance(&mut self, now: Instant) -> u64 {
        let n = self.pacer.advance(now) as usize;
        self.emit(n);
        self.pacer.played()
    }
    fn queued(&self) -> u64 {
        self.pacer.queued()
    }
    fn underruns(&self) -> u64 {
        self.pacer.underruns()
    }
    fn finish(&mut self) -> Result<(), AudioError> {
        let n = self.pacer.drain() as usize;
        self.emit(n);
        let wav_err = |detail: String| AudioError::Wav {
            path: self.path.clone(),
            detail,
        };
        if let Some(w) = self.writer.take() {
            w.finalize().map_err(|e| wav_err(e.to_string()))?;
        }
        match self.error.take() {
            Some(e) => Err(wav_err(e)),
            None => Ok(()),
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        if self.writer.is_some()
            && let Err(e) = self.finish()
        {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(feature = "audio")]
mod cpal_sink;
#[cfg(feature = "audio")]
pub use cpal_sink::CpalSink;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_plays_at_real_time_and_stalls_when_dry() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut p = Pacer::new(8000);
        p.write(160);
        // below the 30 ms start threshold: nothing plays
        assert_eq!(p.advance(ms(0)), 0);
        p.write(160);
        assert_eq!(p.advance(ms(5)), 0);
        assert_eq!(p.advance(ms(15)), 80);
        assert_eq!(p.played(), 80);
        assert_eq!(p.advance(ms(45)), 240);
        // dry: stalls at what was written
        assert_eq!(p.advance(ms(100)), 0);
        assert_eq!(p.played(), 320);
        assert_eq!(p.underruns(), 1);
        p.write(320);
        assert_eq!(p.advance(ms(200)), 0);
        assert_eq!(p.advance(ms(220)), 160);
        assert_eq!(p.drain(), 160);
    }

    #[test]
    fn wav_sink_writes_what_was_played() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        let t0 = Instant::now();
        let mut s = WavSink::create(&path, 8000).unwrap();
        let samples: Vec<i16> = (0..800).map(|i| i as i16).collect();
        s.write(t0, &samples);
        s.advance(t0);
        assert_eq!(s.advance(t0 + Duration::from_millis(50)), 400);
        s.finish().unwrap();
        let back: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, samples);
    }

    #[test]
    fn device_choice_never_fails() {
        // on a machine without a sound card this is the null sink
        let sink = open(&AudioOut::Device).unwrap();
        assert!(sink.sample_rate() > 0);
    }
}
