//! Picture size for imported video: at most 320×240, aspect kept, both sides
//! a multiple of 8 (RFC 2435 counts the size in 8-pixel blocks); area-average
//! scaling of RGB frames.

use crate::proto::rtp::jpeg_codec::RgbFrame;

/// Largest imported picture.
pub const MAX_WIDTH: u16 = 320;
pub const MAX_HEIGHT: u16 = 240;

fn round8(v: u32) -> u16 {
    ((v / 8).max(1) * 8).min(2040) as u16
}

/// The size a `width`×`height` picture is stored at.
pub fn target_size(width: u16, height: u16) -> (u16, u16) {
    let (w, h) = (u32::from(width.max(1)), u32::from(height.max(1)));
    let (mw, mh) = (u32::from(MAX_WIDTH), u32::from(MAX_HEIGHT));
    let (w, h) = if w <= mw && h <= mh {
        (w, h)
    } else if w * mh >= h * mw {
        (mw, (h * mw / w).max(1))
    } else {
        ((w * mh / h).max(1), mh)
    };
    (round8(w), round8(h))
}

/// Source span [start, end) covering output pixel `i` of `n` over `len` source pixels.
fn span(i: u32, n: u32, len: u32) -> (u32, u32) {
    let start = (i * len / n).min(len.saturating_sub(1));
    let end = ((i + 1) * len / n).max(start + 1).min(len);
    (start, end)
}

/// Scale `frame` to `width`×`height`: each output pixel is the mean of the
/// source pixels it covers (the nearest one when enlarging).
pub fn scale(frame: &RgbFrame, width: u16, height: u16) -> RgbFrame {
    if (frame.width, frame.height) == (width, height) {
        return frame.clone();
    }
    let (fw, fh) = (u32::from(frame.width), u32::from(frame.height));
    let mut out = RgbFrame::new(width, height);
    if fw == 0 || fh == 0 || frame.data.len() < (fw * fh * 3) as usize {
        return out;
    }
    let cols: Vec<_> = (0..u32::from(width))
        .map(|x| span(x, u32::from(width), fw))
        .collect();
    let mut o = 0;
    for y in 0..u32::from(height) {
        let (y0, y1) = span(y, u32::from(height), fh);
        for &(x0, x1) in &cols {
            let mut sum = [0u32; 3];
            for sy in y0..y1 {
                let row = (sy * fw * 3) as usize;
                for sx in x0..x1 {
                    let i = row + (sx * 3) as usize;
                    if let Some(p) = frame.data.get(i..i + 3) {
                        sum[0] += u32::from(p[0]);
                        sum[1] += u32::from(p[1]);
                        sum[2] += u32::from(p[2]);
                    }
                }
            }
            let n = ((y1 - y0) * (x1 - x0)).max(1);
            for (c, s) in sum.iter().enumerate() {
                if let Some(d) = out.data.get_mut(o + c) {
                    *d = ((s + n / 2) / n) as u8;
                }
            }
            o += 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fit_320_by_240_in_multiples_of_8() {
        assert_eq!(target_size(640, 480), (320, 240));
        assert_eq!(target_size(1920, 1080), (320, 176));
        assert_eq!(target_size(480, 640), (176, 240));
        assert_eq!(target_size(100, 50), (96, 48));
        assert_eq!(target_size(3, 2), (8, 8));
    }

    #[test]
    fn scaling_averages_areas() {
        let mut f = RgbFrame::new(4, 2);
        // columns 0,2 black; 1,3 value 100
        for (i, p) in f.data.chunks_mut(3).enumerate() {
            if i % 2 == 1 {
                p.copy_from_slice(&[100; 3]);
            }
        }
        let s = scale(&f, 2, 1);
        assert_eq!(s.data, vec![50; 6]);
        let up = scale(&s, 4, 2);
        assert_eq!(up.data, vec![50; 24]);
    }
}
