//! Animated GIF to RGB frames at a fixed rate: frames are composited in
//! order (disposal honoured, transparent pixels over black) and sampled every
//! 1/[`GIF_FPS`] s, so each GIF frame lasts as long as its delay says.

use std::io::Read;

use crate::proto::rtp::jpeg_codec::RgbFrame;

/// Rate imported GIFs are sampled at (GIF delays are in 1/100 s).
pub const GIF_FPS: u32 = 10;
/// Delay used for frames that declare 0 or 1 (what browsers do).
const DEFAULT_DELAY_CS: u32 = 10;
/// Longest GIF imported, in sampled frames (10 minutes).
const MAX_FRAMES: usize = 6000;

/// Decode and resample a GIF; returns its frames at [`GIF_FPS`].
pub fn read_gif(r: impl Read) -> Result<Vec<RgbFrame>, gif::DecodingError> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = opts.read_info(r)?;
    let (w, h) = (usize::from(dec.width()), usize::from(dec.height()));
    let mut canvas = vec![0u8; w * h * 3];
    let mut out = Vec::new();
    // sample k is taken at k/GIF_FPS s; the frame on the canvas then is shown
    let mut elapsed_cs = 0u32;
    while let Some(f) = dec.read_next_frame()? {
        let saved = (f.dispose == gif::DisposalMethod::Previous).then(|| canvas.clone());
        let (fl, ft, fw, fh) = (
            usize::from(f.left),
            usize::from(f.top),
            usize::from(f.width),
            usize::from(f.height),
        );
        for (i, px) in f.buffer.chunks_exact(4).enumerate() {
            let (x, y) = (fl + i % fw.max(1), ft + i / fw.max(1));
            if x >= w || y >= h || px[3] == 0 {
                continue;
            }
            if let Some(dst) = canvas.get_mut((y * w + x) * 3..(y * w + x) * 3 + 3) {
                dst.copy_from_slice(&px[..3]);
            }
        }
        let delay = match u32::from(f.delay) {
            0 | 1 => DEFAULT_DELAY_CS,
            d => d,
        };
        let end_cs = elapsed_cs + delay;
        // frames whose sample time k/GIF_FPS s falls in [elapsed, end)
        while out.len() < MAX_FRAMES && (out.len() as u32) * 100 < end_cs * GIF_FPS {
            out.push(RgbFrame {
                width: w as u16,
                height: h as u16,
                data: canvas.clone(),
            });
        }
        elapsed_cs = end_cs;
        match f.dispose {
            gif::DisposalMethod::Background => {
                for y in ft..(ft + fh).min(h) {
                    for x in fl..(fl + fw).min(w) {
                        if let Some(dst) = canvas.get_mut((y * w + x) * 3..(y * w + x) * 3 + 3) {
                            dst.fill(0);
                        }
                    }
                }
            }
            gif::DisposalMethod::Previous => {
                if let Some(s) = saved {
                    canvas = s;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Build a GIF from palette-indexed frames (tests and tools): `(indices, delay_cs)`.
pub fn write_gif(
    width: u16,
    height: u16,
    palette: &[u8],
    frames: &[(Vec<u8>, u16)],
) -> Result<Vec<u8>, gif::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, width, height, palette)?;
        for (indices, delay) in frames {
            let frame = gif::Frame {
                width,
                height,
                delay: *delay,
                buffer: std::borrow::Cow::Borrowed(indices),
                ..gif::Frame::default()
            };
            enc.write_frame(&frame)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_become_a_fixed_rate() {
        // red for 0.3 s, blue for 0.2 s
        let palette = [255, 0, 0, 0, 0, 255];
        let bytes = write_gif(2, 2, &palette, &[(vec![0; 4], 30), (vec![1; 4], 20)]).unwrap();
        let frames = read_gif(&bytes[..]).unwrap();
        assert_eq!(frames.len(), 5);
        assert_eq!(&frames[2].data[..3], &[255, 0, 0]);
        assert_eq!(&frames[3].data[..3], &[0, 0, 255]);
        assert_eq!((frames[4].width, frames[4].height), (2, 2));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_gif(&b"GIF89a junk"[..]).is_err());
        assert!(read_gif(&b""[..]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let palette = [0, 0, 0, 255, 255, 255];
            let good = write_gif(3, 2, &palette, &[(vec![1, 0, 1, 0, 1, 0], 5)]).unwrap();
            let mut spliced = good[..good.len().min(bytes.len())].to_vec();
            spliced.extend_from_slice(&bytes);
            let _ = read_gif(&spliced[..]);
            let _ = read_gif(&bytes[..]);
        }
    }
}
