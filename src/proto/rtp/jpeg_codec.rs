//! Encode RGB frames to RFC 2435-compatible baseline JPEG (4:2:0, standard
//! Huffman tables, no restart markers) and decode JPEG back to RGB.

use super::jpeg::JpegError;

/// An RGB24 picture, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    pub width: u16,
    pub height: u16,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// A black frame.
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            width,
            height,
            data: vec![0; usize::from(width) * usize::from(height) * 3],
        }
    }
}

/// Encode to baseline JPEG, 4:2:0 (RFC 2435 type 1), quality 1–100.
pub fn encode_rgb(frame: &RgbFrame, quality: u8) -> Result<Vec<u8>, JpegError> {
    let expected = usize::from(frame.width) * usize::from(frame.height) * 3;
    if frame.data.len() != expected {
        return Err(JpegError::Encode(format!(
            "{} bytes for {}x{}",
            frame.data.len(),
            frame.width,
            frame.height
        )));
    }
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.set_optimized_huffman_tables(false);
    enc.set_progressive(false);
    enc.encode(
        &frame.data,
        frame.width,
        frame.height,
        jpeg_encoder::ColorType::Rgb,
    )
    .map_err(|e| JpegError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decode a JPEG stream to RGB.
pub fn decode_rgb(jpeg: &[u8]) -> Result<RgbFrame, JpegError> {
    let mut dec = jpeg_decoder::Decoder::new(jpeg);
    let data = dec.decode().map_err(|e| JpegError::Decode(e.to_string()))?;
    let info = dec
        .info()
        .ok_or_else(|| JpegError::Decode("no frame header".into()))?;
    match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => Ok(RgbFrame {
            width: info.width,
            height: info.height,
            data,
        }),
        jpeg_decoder::PixelFormat::L8 => Ok(RgbFrame {
            width: info.width,
            height: info.height,
            data: data.iter().flat_map(|&l| [l, l, l]).collect(),
        }),
        other => Err(JpegError::Decode(format!(
            "unsupported pixel format {other:?}"
        ))),
    }
}

/// Peak signal-to-noise ratio in dB between two equally sized 8-bit buffers
/// (infinite when identical, 0 when the sizes differ).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}
