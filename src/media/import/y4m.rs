//! YUV4MPEG2 (`.y4m`) reader, streaming: 8-bit 4:2:0 (any siting), 4:2:2,
//! 4:4:4 or mono, converted to RGB with BT.601 limited-range coefficients
//! (`XCOLORRANGE=FULL` selects full range).

use std::io::BufRead;

use crate::proto::rtp::jpeg_codec::RgbFrame;

/// Longest header or FRAME line accepted.
const MAX_LINE: usize = 4096;
/// Largest accepted width or height.
pub const MAX_SIDE: u16 = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    C420,
    C422,
    C444,
    Mono,
}

/// What is wrong with a Y4M stream.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a YUV4MPEG2 stream")]
    NotY4m,
    #[error("bad header parameter {0:?}")]
    BadParameter(String),
    #[error("missing header parameter {0}")]
    MissingParameter(&'static str),
    #[error("unsupported colour space {0:?} (8-bit 420/422/444/mono only)")]
    UnsupportedColorspace(String),
    #[error("frame {0}: expected FRAME")]
    BadFrameHeader(usize),
    #[error("frame {0}: truncated")]
    Truncated(usize),
}

/// A Y4M stream being read frame by frame.
pub struct Y4mReader<R> {
    r: R,
    pub width: u16,
    pub height: u16,
    /// Frame rate as numerator / denominator.
    pub rate: (u32, u32),
    pub chroma: Chroma,
    full_range: bool,
    frames_read: usize,
    plane: Vec<u8>,
}

fn read_line<R: BufRead>(r: &mut R) -> Result<Option<Vec<u8>>, std::io::Error> {
    let mut line = Vec::new();
    let n = std::io::Read::take(r, MAX_LINE as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Some(line))
}

fn number<T: std::str::FromStr>(tok: &str) -> Result<T, Y4mError> {
    tok.get(1..)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Y4mError::BadParameter(tok.to_owned()))
}

impl<R: BufRead> Y4mReader<R> {
    /// Read the stream header.
    pub fn new(mut r: R) -> Result<Self, Y4mError> {
        let line = read_line(&mut r)?.ok_or(Y4mError::NotY4m)?;
        let line = String::from_utf8_lossy(&line);
        let mut toks = line.split(' ').filter(|t| !t.is_empty());
        if toks.next() != Some("YUV4MPEG2") {
            return Err(Y4mError::NotY4m);
        }
        let (mut width, mut height, mut rate) = (None, None, (25, 1));
        let (mut chroma, mut full_range) = (Chroma::C420, false);
        for tok in toks {
            match tok.as_bytes().first() {
                Some(b'W') => width = Some(number::<u16>(tok)?),
                Some(b'H') => height = Some(number::<u16>(tok)?),
                Some(b'F') => {
                    let bad = || Y4mError::BadParameter(tok.to_owned());
                    let (n, d) = tok
                        .get(1..)
                        .and_then(|v| v.split_once(':'))
                        .ok_or_else(bad)?;
                    let (n, d) = (n.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
                    if n == 0 || d == 0 {
                        return Err(bad());
                    }
                    rate = (n, d);
                }
                Some(b'C') => {
                    chroma = match tok.get(1..).unwrap_or_default() {
                        "420jpeg" | "420paldv" | "420mpeg2" | "420" => Chroma::C420,
                        "422" => Chroma::C422,
                        "444" => Chroma::C444,
                        "mono" => Chroma::Mono,
                        other => return Err(Y4mError::UnsupportedColorspace(other.to_owned())),
                    }
                }
                Some(b'X') if tok == "XCOLORRANGE=FULL" => full_range = true,
                _ => {}
            }
        }
        let width = width.ok_or(Y4mError::MissingParameter("W"))?;
        let height = height.ok_or(Y4mError::MissingParameter("H"))?;
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(Y4mError::BadParameter(format!("W{width} H{height}")));
        }
        Ok(Self {
            r,
            width,
            height,
            rate,
            chroma,
            full_range,
            frames_read: 0,
            plane: Vec::new(),
        })
    }

    fn chroma_size(&self) -> (usize, usize) {
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        match self.chroma {
            Chroma::C420 => (w.div_ceil(2), h.div_ceil(2)),
            Chroma::C422 => (w.div_ceil(2), h),
            Chroma::C444 => (w, h),
            Chroma::Mono => (0, 0),
        }
    }

    /// The next frame as RGB, or `None` at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<RgbFrame>, Y4mError> {
        let index = self.frames_read;
        let Some(line) = read_line(&mut self.r)? else {
            return Ok(None);
        };
        if !line.starts_with(b"FRAME") {
            return Err(Y4mError::BadFrameHeader(index));
        }
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        let (cw, ch) = self.chroma_size();
        self.plane.resize(w * h + 2 * cw * ch, 0);
        self.r
            .read_exact(&mut self.plane)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Y4mError::Truncated(index),
                _ => Y4mError::Io(e),
            })?;
        self.frames_read += 1;
        let (ys, rest) = self.plane.split_at(w * h);
        let (us, vs) = rest.split_at(cw * ch);
        let mut out = RgbFrame::new(self.width, self.height);
        for (i, px) in out.data.chunks_exact_mut(3).enumerate() {
            let (x, y) = (i % w, i / w);
            let c = match self.chroma {
                Chroma::C420 => (y / 2) * cw + x / 2,
                Chroma::C422 => y * cw + x / 2,
                Chroma::C444 => i,
                Chroma::Mono => usize::MAX,
            };
            let luma = ys.get(i).copied().unwrap_or(0);
            let (u, v) = (
                us.get(c).copied().unwrap_or(128),
                vs.get(c).copied().unwrap_or(128),
            );
            px.copy_from_slice(&yuv_to_rgb(luma, u, v, self.full_range));
        }
        Ok(Some(out))
    }
}

/// BT.601 YCbCr to RGB.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8, full_range: bool) -> [u8; 3] {
    let (y, u, v) = (f32::from(y), f32::from(u) - 128.0, f32::from(v) - 128.0);
    let (y, k) = if full_range {
        (y, 1.0)
    } else {
        (1.164_383 * (y - 16.0), 1.138_393)
    };
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + k * 1.402 * v),
        clamp(y - k * (0.344_136 * u + 0.714_136 * v)),
        clamp(y + k * 1.772 * u),
    ]
}

/// BT.601 RGB to limited-range YCbCr (for tests and tools that write Y4M).
pub fn rgb_to_yuv(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(f32::from);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [
        clamp(16.0 + y * 219.0 / 255.0),
        clamp(128.0 + (b - y) / 1.772 * 224.0 / 255.0),
        clamp(128.0 + (r - y) / 1.402 * 224.0 / 255.0),
    ]
}

/// Write `frames` (all `width`×`height` RGB) as a 4:4:4 or 4:2:0 Y4M stream.
pub fn write_y4m(frames: &[RgbFrame], fps: u32, chroma_420: bool) -> Vec<u8> {
    let Some(first) = frames.first() else {
        return Vec::new();
    };
    let (w, h) = (usize::from(first.width), usize::from(first.height));
    let cs = if chroma_420 { "420jpeg" } else { "444" };
    let mut out = format!("YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C{cs}\n").into_bytes();
    for f in frames {
        out.extend_from_slice(b"FRAME\n");
        let yuv: Vec<[u8; 3]> = f
            .data
            .chunks_exact(3)
            .map(|p| rgb_to_yuv([p[0], p[1], p[2]]))
            .collect();
        out.extend(yuv.iter().map(|p| p[0]));
        for c in 1..3 {
            if chroma_420 {
                for y in (0..h).step_by(2) {
                    for x in (0..w).step_by(2) {
                        out.push(yuv.get(y * w + x).map_or(128, |p| p[c]));
                    }
                }
            } else {
                out.extend(yuv.iter().map(|p| p[c]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_survive_a_444_and_a_420_round_trip() {
        let mut f = RgbFrame::new(4, 2);
        let colours = [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 255, 255],
            [0, 0, 0],
            [128, 64, 32],
            [10, 200, 90],
            [255, 255, 0],
        ];
        for (p, c) in f.data.chunks_exact_mut(3).zip(colours) {
            p.copy_from_slice(&c);
        }
        let bytes = write_y4m(&[f.clone(), f.clone()], 5, false);
        let mut r = Y4mReader::new(&bytes[..]).unwrap();
        assert_eq!(
            (r.width, r.height, r.rate, r.chroma),
            (4, 2, (5, 1), Chroma::C444)
        );
        for _ in 0..2 {
            let g = r.next_frame().unwrap().unwrap();
            for (a, b) in g.data.iter().zip(&f.data) {
                assert!(a.abs_diff(*b) <= 2, "{:?} vs {:?}", g.data, f.data);
            }
        }
        assert!(r.next_frame().unwrap().is_none());

        let flat = RgbFrame {
            width: 3,
            height: 3,
            data: [200, 100, 50].repeat(9),
        };
        let bytes = write_y4m(&[flat], 1, true);
        let mut r = Y4mReader::new(&bytes[..]).unwrap();
        let g = r.next_frame().unwrap().unwrap();
        assert!(
            g.data
                .chunks(3)
                .all(|p| p[0].abs_diff(200) <= 2 && p[2].abs_diff(50) <= 2)
        );
    }

    #[test]
    fn bad_streams_are_errors() {
        assert!(matches!(
            Y4mReader::new(&b"RIFF"[..]),
            Err(Y4mError::NotY4m)
        ));
        assert!(matches!(
            Y4mReader::new(&b"YUV4MPEG2 W4\n"[..]),
            Err(Y4mError::MissingParameter("H"))
        ));
        assert!(matches!(
            Y4mReader::new(&b"YUV4MPEG2 W4 H4 C420p10\n"[..]),
            Err(Y4mError::UnsupportedColorspace(_))
        ));
        let mut r = Y4mReader::new(&b"YUV4MPEG2 W4 H4 C444\nFRAME\nabc"[..]).unwrap();
        assert!(matches!(r.next_frame(), Err(Y4mError::Truncated(0))));
        let mut r = Y4mReader::new(&b"YUV4MPEG2 W4 H4\nJUNK\n"[..]).unwrap();
        assert!(matches!(r.next_frame(), Err(Y4mError::BadFrameHeader(0))));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let mut head = b"YUV4MPEG2 W3 H3 C420\n".to_vec();
            head.extend_from_slice(&bytes);
            if let Ok(mut r) = Y4mReader::new(&head[..]) {
                while let Ok(Some(_)) = r.next_frame() {}
            }
            let _ = Y4mReader::new(&bytes[..]);
        }
    }
}
