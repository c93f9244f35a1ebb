//! Any WAV hound reads (8/16/24/32-bit integer or 32-bit float, any rate and
//! channel count) to 8 kHz mono 16-bit PCM: channels averaged, then a
//! band-limited polyphase resampler (windowed sinc). Unlike the player's
//! linear [`crate::media::resample::Resampler`], which only goes up in rate,
//! this one goes down from 44.1/48 kHz without folding the band above 4 kHz
//! back into the telephone band.

use std::f64::consts::PI;

/// Zero crossings of the sinc on each side of the kernel centre.
const ZERO_CROSSINGS: f64 = 8.0;
/// The pass band ends at this fraction of the lower Nyquist frequency.
const PASS_FRACTION: f64 = 0.9;

/// Interleaved frames → mono, by averaging the channels.
pub fn downmix(interleaved: &[f32], channels: u16) -> Vec<f32> {
    let n = usize::from(channels.max(1));
    interleaved
        .chunks(n)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Resample `input` from `from` Hz to `to` Hz with a Blackman-windowed sinc
/// low-pass at 0.9 × the lower Nyquist frequency; gain 1 at DC. The output has
/// `round(len × to / from)` samples.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    let (from, to) = (u64::from(from.max(1)), u64::from(to.max(1)));
    if from == to {
        return input.to_vec();
    }
    let g = gcd(from, to);
    // output n sits at input position n·m/l
    let (l, m) = (to / g, from / g);
    // cut-off in cycles per input sample
    let fc = 0.5 * PASS_FRACTION * (to.min(from) as f64) / from as f64;
    let half_width = ZERO_CROSSINGS / (2.0 * fc);
    let k = half_width.ceil() as i64;
    let taps = (2 * k) as usize;
    // one normalised kernel per phase (fraction p/l of an input sample)
    let mut table = vec![0f32; l as usize * taps];
    for (p, row) in table.chunks_mut(taps).enumerate() {
        let frac = p as f64 / l as f64;
        let mut sum = 0.0;
        let mut vals = vec![0f64; taps];
        for (j, v) in vals.iter_mut().enumerate() {
            // tap j multiplies input[base + j - k + 1]
            let d = (j as i64 - k + 1) as f64 - frac;
            if d.abs() >= half_width {
                continue;
            }
            let x = 2.0 * fc * d;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (PI * x).sin() / (PI * x)
            };
            let w =
                0.42 + 0.5 * (PI * d / half_width).cos() + 0.08 * (2.0 * PI * d / half_width).cos();
            *v = sinc * w;
            sum += *v;
        }
        for (r, v) in row.iter_mut().zip(vals) {
            *r = (v / sum) as f32;
        }
    }
    let out_len =
        ((input.len() as u128 * u128::from(to) + u128::from(from) / 2) / u128::from(from)) as usize;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len as u64 {
        let pos = n * m;
        let (base, phase) = ((pos / l) as i64, (pos % l) as usize);
        let row = table
            .get(phase * taps..(phase + 1) * taps)
            .unwrap_or_default();
        let mut acc = 0f32;
        for (j, &h) in row.iter().enumerate() {
            let i = base + j as i64 - k + 1;
            if let Some(&x) = usize::try_from(i).ok().and_then(|i| input.get(i)) {
                acc += x * h;
            }
        }
        out.push(acc);
    }
    out
}

/// Samples in −1..1 to 16-bit PCM (clipped).
pub fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Decode a WAV file's bytes to 8 kHz mono 16-bit PCM.
pub fn wav_to_8k_mono(bytes: &[u8], target_rate: u32) -> Result<Vec<i16>, hound::Error> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes))?;
    let spec = reader.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1));
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|s| (f64::from(s) * scale) as f32))
                .collect::<Result<_, _>>()?
        }
    };
    let mono = downmix(&interleaved, spec.channels);
    Ok(to_i16(&resample(&mono, spec.sample_rate, target_rate)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::resample::goertzel;

    fn sine(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
        (0..(f64::from(rate) * secs) as usize)
            .map(|i| {
                (amp * (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn down_from_44k1_keeps_a_1k_tone_and_drops_a_6k_one() {
        let tone = to_i16(&resample(&sine(1000.0, 44_100, 1.0, 0.5), 44_100, 8000));
        assert_eq!(tone.len(), 8000);
        // amplitude 16384 reads ≈ 8192
        let at_1k = goertzel(&tone[200..7800], 8000, 1000.0);
        assert!((7600.0..8600.0).contains(&at_1k), "{at_1k}");
        // 6 kHz would fold to 2 kHz with plain decimation / linear interpolation
        let high = to_i16(&resample(&sine(6000.0, 44_100, 1.0, 0.5), 44_100, 8000));
        let folded = goertzel(&high[200..7800], 8000, 2000.0);
        assert!(folded < 80.0, "aliased: {folded}");
    }

    #[test]
    fn up_and_identity_rates() {
        assert_eq!(resample(&[0.25, -0.5], 8000, 8000), vec![0.25, -0.5]);
        let up = to_i16(&resample(&sine(500.0, 4000, 1.0, 0.5), 4000, 8000));
        assert_eq!(up.len(), 8000);
        assert!(goertzel(&up[200..7800], 8000, 500.0) > 7600.0);
        // DC passes at gain 1 (away from the edges)
        let dc = resample(&[0.5; 4800], 48_000, 8000);
        assert_eq!(dc.len(), 800);
        assert!(dc[100..700].iter().all(|&v| (v - 0.5).abs() < 1e-3));
    }

    #[test]
    fn stereo_24_bit_wav_is_downmixed_and_scaled() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut bytes, spec).unwrap();
        for _ in 0..1600 {
            // left +half scale, right 0 → mono quarter scale
            w.write_sample(1i32 << 22).unwrap();
            w.write_sample(0i32).unwrap();
        }
        w.finalize().unwrap();
        let pcm = wav_to_8k_mono(bytes.get_ref(), 8000).unwrap();
        assert_eq!(pcm.len(), 800);
        assert!((pcm[400] - 8192).abs() <= 2, "{}", pcm[400]);
    }
}
