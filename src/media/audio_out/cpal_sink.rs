//! The sound card through cpal. The stream lives on its own thread (cpal
//! streams are not `Send` everywhere); the device callback pulls from a shared
//! queue and counts what it played, which is the audio clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::{AudioError, AudioSink, START_THRESHOLD, SinkKind};

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<VecDeque<i16>>,
    played: AtomicU64,
    underruns: AtomicU64,
    started: AtomicBool,
    stop: AtomicBool,
}

/// The default output device, mono samples spread over its channels.
pub struct CpalSink {
    rate: u32,
    shared: Arc<Shared>,
    written: u64,
    thread: Option<JoinHandle<()>>,
}

impl CpalSink {
    /// Opens the default output device. A machine with no card still has a
    /// "default" device and fails at `default_output_config()`: that is
    /// [`AudioError::NoDevice`], as is every other failure to start.
    pub fn open_default() -> Result<Self, AudioError> {
        #[cfg(target_os = "linux")]
        alsa_quiet::install();
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::channel::<Result<u32, String>>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("audio-out".into())
            .spawn(move || {
                let stream = match start_stream(thread_shared.clone()) {
                    Ok((stream, rate)) => {
                        let _ = tx.send(Ok(rate));
                        stream
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                while !thread_shared.stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(200));
                }
                drop(stream);
            })
            .map_err(|e| AudioError::NoDevice(e.to_string()))?;
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(rate)) => Ok(Self {
                rate,
                shared,
                written: 0,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(AudioError::NoDevice(e))
            }
            Err(_) => {
                shared.stop.store(true, Ordering::Relaxed);
                Err(AudioError::NoDevice("device did not start".into()))
            }
        }
    }
}

fn start_stream(shared: Arc<Shared>) -> Result<(cpal::Stream, u32), String> {
    let host = cpal::default_host();
    let device = host
        .default_output_device()
        .ok_or_else(|| "no default output device".to_string())?;
    let supported = device.default_output_config().map_err(|e| e.to_string())?;
    let config = supported.config();
    let rate = config.sample_rate;
    let stream = match supported.sample_format() {
        cpal::SampleFormat::I16 => build::<i16>(&device, config, shared),
        cpal::SampleFormat::U16 => build::<u16>(&device, config, shared),
        cpal::SampleFormat::I32 => build::<i32>(&device, config, shared),
        _ => build::<f32>(&device, config, shared),
    }?;
    stream.play().map_err(|e| e.to_string())?;
    Ok((stream, rate))
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, String>
where
    T: cpal::SizedSample + cpal::FromSample<f32>,
{
    let channels = usize::from(config.channels.max(1));
    let threshold =
        (START_THRESHOLD.as_micros() as u64 * u64::from(config.sample_rate) / 1_000_000) as usize;
    device
        .build_output_stream(
            config,
            move |data: &mut [T], _| {
                let Ok(mut q) = shared.queue.lock() else {
                    return;
                };
                if !shared.started.load(Ordering::Relaxed) && q.len() >= threshold {
                    shared.started.store(true, Ordering::Relaxed);
                }
                let mut played = 0u64;
                for frame in data.chunks_mut(channels) {
                    let s = if shared.started.load(Ordering::Relaxed) {
                        match q.pop_front() {
                            Some(s) => {
                                played += 1;
                                f32::from(s) / 32768.0
                            }
                            None => {
                                shared.started.store(false, Ordering::Relaxed);
                                shared.underruns.fetch_add(1, Ordering::Relaxed);
                                0.0
                            }
                        }
                    } else {
                        0.0
                    };
                    for out in frame {
                        *out = T::from_sample(s);
                    }
                }
                shared.played.fetch_add(played, Ordering::Relaxed);
            },
            |e| tracing::warn!("audio output: {e}"),
            Some(Duration::from_secs(2)),
        )
        .map_err(|e| e.to_string())
}

impl AudioSink for CpalSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Device
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn write(&mut self, _now: Instant, samples: &[i16]) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.extend(samples);
            self.written += samples.len() as u64;
        }
    }
    fn advance(&mut self, _now: Instant) -> u64 {
        self.shared.played.load(Ordering::Relaxed)
    }
    fn queued(&self) -> u64 {
        self.written
            .saturating_sub(self.shared.played.load(Ordering::Relaxed))
    }
    fn underruns(&self) -> u64 {
        self.shared.underruns.load(Ordering::Relaxed)
    }
    fn finish(&mut self) -> Result<(), AudioError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        Ok(())
    }
}

impl Drop for CpalSink {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// libasound reports errors by printing `ALSA lib ...` lines to stderr, which
/// would scribble over the TUI. We install our own handler with
/// `snd_lib_error_set_handler` and send them to the log instead.
#[cfg(target_os = "linux")]
mod alsa_quiet {
    use std::ffi::{CStr, c_char, c_int};
    use std::sync::Once;

    /// alsa-lib's `snd_lib_error_handler_t`: variadic (printf-style).
    type Handler =
        unsafe extern "C" fn(*const c_char, c_int, *const c_char, c_int, *const c_char, ...);

    #[link(name = "asound")]
    unsafe extern "C" {
        fn snd_lib_error_set_handler(handler: Option<Handler>) -> c_int;
    }

    fn text(p: *const c_char) -> String {
        if p.is_null() {
            return String::new();
        }
        // SAFETY: alsa-lib passes NUL-terminated static strings (__FILE__, __func__).
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// Reads only the fixed arguments; the printf arguments are ignored.
    unsafe extern "C" fn log_alsa(
        file: *const c_char,
        line: c_int,
        function: *const c_char,
        err: c_int,
        fmt: *const c_char,
    ) {
        tracing::debug!(
            "ALSA lib {}:{} ({}) err={err}: {}",
            text(file),
            line,
            text(function),
            text(fmt)
        );
    }

    pub(super) fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let fixed: unsafe extern "C" fn(
                *const c_char,
                c_int,
                *const c_char,
                c_int,
                *const c_char,
            ) = log_alsa;
            // SAFETY: on the Linux C ABIs we build for (x86-64 SysV, AArch64
            // AAPCS64) variadic arguments follow the fixed ones in the same
            // registers/stack slots, so a callee that declares only the fixed
            // arguments reads them correctly and ignores the rest. Stable Rust
            // cannot define a C-variadic function, hence the cast.
            let handler: Handler = unsafe { std::mem::transmute(fixed) };
            // SAFETY: plain FFI call; the handler is a 'static function.
            unsafe {
                snd_lib_error_set_handler(Some(handler));
            }
        });
    }
}
