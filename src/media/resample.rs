//! A streaming linear-interpolation resampler for mono 16-bit PCM (8 kHz PCMU
//! up to the device rate). Linear interpolation is enough for telephone-band
//! audio going up in rate: images above 4 kHz stay well below the signal.

/// Converts a stream from `from` Hz to `to` Hz, block by block, with no gap
/// or repeat at block edges.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Last input sample of the previous block (input index −1 of the next).
    prev: i16,
    /// Position of the next output sample, in 1/`to` input samples, counted
    /// from `prev`.
    phase: u64,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Self {
        let (from, to) = (from.max(1), to.max(1));
        Self {
            from,
            to,
            prev: 0,
            // the first output sample sits on the first input sample
            phase: u64::from(to),
        }
    }

    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// Resample one block, appending to `out`.
    pub fn process_into(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        let to = u64::from(self.to);
        let n = input.len() as u64;
        let at = |i: u64| -> f64 {
            if i == 0 {
                f64::from(self.prev)
            } else {
                input.get((i - 1) as usize).copied().map_or(0.0, f64::from)
            }
        };
        out.reserve((n * to / u64::from(self.from) + 1) as usize);
        while self.phase / to < n {
            let i = self.phase / to;
            let frac = (self.phase % to) as f64 / to as f64;
            let (a, b) = (at(i), at(i + 1));
            out.push((a + (b - a) * frac).round() as i16);
            self.phase += u64::from(self.from);
        }
        if let Some(&last) = input.last() {
            self.prev = last;
            self.phase -= n * to;
        }
    }

    /// Resample one block into a new vector.
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::new();
        self.process_into(input, &mut out);
        out
    }
}

/// Goertzel magnitude of `freq` in `samples` at `rate`, normalized so a full
/// sine of amplitude A reads ≈ A/2 (used by the tests to check tones).
pub fn goertzel(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / f64::from(rate.max(1));
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power.max(0.0).sqrt() / samples.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn identity_passes_samples_through() {
        let mut r = Resampler::new(8000, 8000);
        assert_eq!(r.process(&[1, -2, 3]), vec![1, -2, 3]);
    }

    #[test]
    fn length_follows_the_rate_ratio_across_blocks() {
        for to in [44_100u32, 48_000, 16_000, 22_050] {
            let mut r = Resampler::new(8000, to);
            let mut total = 0usize;
            for _ in 0..100 {
                total += r.process(&[0; 160]).len();
            }
            // 2 s of input; output lags by at most one input sample (the
            // interpolation waits for the right-hand neighbour)
            let want = 2 * to as usize;
            let lag = (to / 8000 + 1) as usize;
            assert!(
                total <= want && want - total <= lag,
                "{to}: {total} vs {want}"
            );
        }
    }

    #[test]
    fn block_edges_leave_no_seam() {
        let input = sine(1000.0, 8000, 1600, 10_000.0);
        let whole = Resampler::new(8000, 48_000).process(&input);
        let mut r = Resampler::new(8000, 48_000);
        let mut pieces = Vec::new();
        for chunk in input.chunks(37) {
            r.process_into(chunk, &mut pieces);
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_level() {
        let input = sine(1000.0, 8000, 8000, 10_000.0);
        let out = Resampler::new(8000, 48_000).process(&input);
        let at_1k = goertzel(&out, 48_000, 1000.0);
        let at_7k = goertzel(&out, 48_000, 7000.0);
        // amplitude 10 000 reads ≈ 5 000; linear interpolation loses a little
        assert!(at_1k > 4_500.0, "{at_1k}");
        assert!(at_7k < at_1k / 20.0, "image at 7 kHz: {at_7k}");
        let down = Resampler::new(48_000, 8000).process(&out);
        assert!(goertzel(&down, 8000, 1000.0) > 4_500.0);
    }
}
