//! JPEG over RTP (RFC 2435): the payload headers, a packetizer that splits a
//! baseline JPEG frame into MTU-sized payloads (type 0/1, Q = 255 with in-band
//! tables, no restart markers) and a depacketizer that rebuilds a JFIF image
//! a standard decoder reads (RFC 2435 Appendix A and B).

use std::collections::{BTreeMap, HashMap};

use super::{PT_JPEG, Reader, RtpError, RtpPacket};

/// What is wrong with a JPEG frame or an RFC 2435 payload.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// The RTP/JPEG payload headers are malformed.
    #[error("RTP/JPEG payload: {0}")]
    Payload(#[from] RtpError),
    /// A type other than 0/1 (or 64/65 with restart markers).
    #[error("unsupported RTP/JPEG type {0}")]
    UnsupportedType(u8),
    /// Q ≥ 128 with no in-band tables and none cached for this Q.
    #[error("no quantization tables for Q={0}")]
    MissingQuantTables(u8),
    /// The quantization table header does not hold whole tables.
    #[error("bad quantization table header: {0}")]
    BadQuantTables(&'static str),
    /// The JPEG stream lacks a required segment.
    #[error("JPEG stream has no {0}")]
    MissingSegment(&'static str),
    /// The JPEG frame uses something RFC 2435 cannot carry.
    #[error("JPEG frame not representable in RFC 2435: {0}")]
    Unsupported(&'static str),
    /// Width or height is not a multiple of 8 in 8..=2040.
    #[error("frame size {width}x{height} not a multiple of 8 up to 2040")]
    BadSize { width: u16, height: u16 },
    /// The payload budget is too small for the headers.
    #[error("payload size {0} too small")]
    PayloadTooSmall(usize),
    /// A frame being reassembled grew past [`MAX_FRAME_BYTES`].
    #[error("frame of more than {0} bytes")]
    FrameTooLarge(usize),
    /// The encoder failed.
    #[error("JPEG encode: {0}")]
    Encode(String),
    /// The decoder failed.
    #[error("JPEG decode: {0}")]
    Decode(String),
}

/// The main JPEG header (RFC 2435 §3.1), sizes in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegHeader {
    pub type_specific: u8,
    pub fragment_offset: u32,
    pub jpeg_type: u8,
    pub q: u8,
    pub width: u16,
    pub height: u16,
}

/// Restart Marker header (RFC 2435 §3.1.7), present for types 64–127.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartHeader {
    pub interval: u16,
    pub first: bool,
    pub last: bool,
    /// 14-bit restart count.
    pub count: u16,
}

/// Quantization Table header (RFC 2435 §3.1.8): tables in zig-zag order as in DQT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantTables {
    /// Bit i set: table i has 16-bit entries.
    pub precision: u8,
    pub data: Vec<u8>,
}

/// One RTP/JPEG payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegPayload {
    pub header: JpegHeader,
    pub restart: Option<RestartHeader>,
    /// Present when Q ≥ 128 and fragment offset is 0.
    pub quant: Option<QuantTables>,
    pub data: Vec<u8>,
}

impl JpegPayload {
    /// Parse the RFC 2435 headers and data of one payload.
    pub fn parse(buf: &[u8]) -> Result<Self, JpegError> {
        let mut r = Reader::new(buf);
        let type_specific = r.u8("JPEG main header")?;
        let fragment_offset = r.u24("JPEG main header")?;
        let jpeg_type = r.u8("JPEG main header")?;
        let q = r.u8("JPEG main header")?;
        let width = u16::from(r.u8("JPEG main header")?) * 8;
        let height = u16::from(r.u8("JPEG main header")?) * 8;
        let header = JpegHeader {
            type_specific,
            fragment_offset,
            jpeg_type,
            q,
            width,
            height,
        };
        // RFC 2435 §3.1.7: types 64-127 carry a Restart Marker header
        let restart = if (64..128).contains(&jpeg_type) {
            let interval = r.u16("JPEG restart header")?;
            let flags = r.u16("JPEG restart header")?;
            Some(RestartHeader {
                interval,
                first: flags & 0x8000 != 0,
                last: flags & 0x4000 != 0,
                count: flags & 0x3fff,
            })
        } else {
            None
        };
        // RFC 2435 §3.1.8: Q 128-255 has the table header in the first packet of a frame
        let quant = if q >= 128 && fragment_offset == 0 {
            r.u8("JPEG quantization table header")?;
            let precision = r.u8("JPEG quantization table header")?;
            let len = usize::from(r.u16("JPEG quantization table header")?);
            Some(QuantTables {
                precision,
                data: r.take(len, "JPEG quantization tables")?.to_vec(),
            })
        } else {
            None
        };
        Ok(Self {
            header,
            restart,
            quant,
            data: r.rest().to_vec(),
        })
    }

    /// Serialise; sizes must be multiples of 8 up to 2040.
    pub fn to_bytes(&self) -> Result<Vec<u8>, JpegError> {
        let h = &self.header;
        let (w, hh) = (
            block_count(h.width, h.height)?,
            block_count(h.height, h.width)?,
        );
        let mut out = Vec::with_capacity(8 + 4 + 132 + self.data.len());
        out.push(h.type_specific);
        out.extend_from_slice(&(h.fragment_offset & 0xff_ffff).to_be_bytes()[1..]);
        out.extend_from_slice(&[h.jpeg_type, h.q, w, hh]);
        if let Some(rh) = &self.restart {
            out.extend_from_slice(&rh.interval.to_be_bytes());
            let flags = if rh.first { 0x8000 } else { 0 }
                | if rh.last { 0x4000 } else { 0 }
                | (rh.count & 0x3fff);
            out.extend_from_slice(&flags.to_be_bytes());
        }
        if let Some(qt) = &self.quant {
            let len = u16::try_from(qt.data.len())
                .map_err(|_| JpegError::BadQuantTables("longer than 65535"))?;
            out.extend_from_slice(&[0, qt.precision]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&qt.data);
        }
        out.extend_from_slice(&self.data);
        Ok(out)
    }
}

fn block_count(v: u16, other: u16) -> Result<u8, JpegError> {
    if !v.is_multiple_of(8) || v == 0 || v > 2040 {
        let (width, height) = (v, other);
        return Err(JpegError::BadSize { width, height });
    }
    Ok((v / 8) as u8)
}

/// `JpegPayload::parse` over bytes, for fuzz targets.
pub fn parse_jpeg_payload(buf: &[u8]) -> Result<JpegPayload, JpegError> {
    JpegPayload::parse(buf)
}

// ---- JPEG stream pieces (ITU-T T.81) --------------------------------------

const SOI: u8 = 0xd8;
const EOI: u8 = 0xd9;
const SOF0: u8 = 0xc0;
const DHT: u8 = 0xc4;
const DQT: u8 = 0xdb;
const DRI: u8 = 0xdd;
const SOS: u8 = 0xda;

/// What the packetizer needs from a baseline JPEG frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanParts<'a> {
    pub width: u16,
    pub height: u16,
    /// RFC 2435 type: 0 = 4:2:2, 1 = 4:2:0.
    pub jpeg_type: u8,
    /// Luma then chroma table, zig-zag order, as carried in-band.
    pub quant: QuantTables,
    /// Entropy-coded data (EOI excluded).
    pub scan: &'a [u8],
}

/// Split a baseline YCbCr JPEG into what RFC 2435 carries, checking that the
/// rest of it is what the receiver will rebuild (standard Huffman tables, no restarts).
pub fn split_jpeg(jpeg: &[u8]) -> Result<ScanParts<'_>, JpegError> {
    let mut r = Reader::new(jpeg);
    if r.u16("SOI")? != 0xff00 | u16::from(SOI) {
        return Err(JpegError::MissingSegment("SOI"));
    }
    let mut tables: [Option<(bool, &[u8])>; 4] = [None; 4];
    let mut frame: Option<(u16, u16, u8, [u8; 2])> = None;
    loop {
        let mut marker = r.u8("marker")?;
        if marker != 0xff {
            return Err(JpegError::MissingSegment("marker"));
        }
        while marker == 0xff {
            marker = r.u8("marker")?;
        }
        if marker == EOI {
            return Err(JpegError::MissingSegment("SOS"));
        }
        let len = usize::from(r.u16("segment length")?);
        let body = r.take(len.saturating_sub(2), "segment")?;
        let mut s = Reader::new(body);
        match marker {
            DQT => {
                while s.remaining() > 0 {
                    let pq_tq = s.u8("DQT")?;
                    let wide = pq_tq >> 4 != 0;
                    let t = s.take(if wide { 128 } else { 64 }, "DQT table")?;
                    if let Some(slot) = tables.get_mut(usize::from(pq_tq & 0x0f)) {
                        *slot = Some((wide, t));
                    }
                }
            }
            SOF0 => {
                if s.u8("SOF0 precision")? != 8 {
                    return Err(JpegError::Unsupported("sample precision other than 8"));
                }
                let height = s.u16("SOF0 height")?;
                let width = s.u16("SOF0 width")?;
                if s.u8("SOF0 components")? != 3 {
                    return Err(JpegError::Unsupported("not 3 components"));
                }
                let mut comp = [[0u8; 3]; 3];
                for c in &mut comp {
                    c.copy_from_slice(s.take(3, "SOF0 component")?);
                }
                let jpeg_type = match (comp[0][1], comp[1][1], comp[2][1]) {
                    (0x21, 0x11, 0x11) => 0,
                    (0x22, 0x11, 0x11) => 1,
                    _ => return Err(JpegError::Unsupported("sampling other than 4:2:2 or 4:2:0")),
                };
                if comp[1][2] != comp[2][2] {
                    return Err(JpegError::Unsupported(
                        "Cb and Cr with different quantization tables",
                    ));
                }
                frame = Some((width, height, jpeg_type, [comp[0][2], comp[1][2]]));
            }
            0xc1..=0xcf if marker != DHT && marker != 0xc8 && marker != 0xcc => {
                return Err(JpegError::Unsupported("not baseline sequential DCT"));
            }
            DHT => {
                while s.remaining() > 0 {
                    let tc_th = s.u8("DHT")?;
                    let bits = s.take(16, "DHT bits")?;
                    let n = bits.iter().map(|&b| usize::from(b)).sum();
                    let vals = s.take(n, "DHT values")?;
                    let standard = match tc_th {
                        0x00 => (&DC_LUMA_BITS[..], &DC_LUMA_VALS[..]),
                        0x01 => (&DC_CHROMA_BITS[..], &DC_CHROMA_VALS[..]),
                        0x10 => (&AC_LUMA_BITS[..], &AC_LUMA_VALS[..]),
                        0x11 => (&AC_CHROMA_BITS[..], &AC_CHROMA_VALS[..]),
                        _ => return Err(JpegError::Unsupported("Huffman table id above 1")),
                    };
                    if (bits, vals) != standard {
                        return Err(JpegError::Unsupported("non-standard Huffman tables"));
                    }
                }
            }
            // RFC 2435 types 0/1: no restart markers
            DRI => match s.u16("DRI")? {
                0 => {}
                _ => return Err(JpegError::Unsupported("restart markers")),
            },
            SOS => {
                let (width, height, jpeg_type, [tq_luma, tq_chroma]) =
                    frame.ok_or(JpegError::MissingSegment("SOF0"))?;
                if s.u8("SOS components")? != 3 {
                    return Err(JpegError::Unsupported("non-interleaved scan"));
                }
                let mut sel = [0u8; 3];
                for t in &mut sel {
                    s.u8("SOS component")?;
                    *t = s.u8("SOS tables")?;
                }
                if sel != [0x00, 0x11, 0x11] {
                    return Err(JpegError::Unsupported(
                        "scan Huffman table selectors other than 0/1/1",
                    ));
                }
                let mut quant = QuantTables {
                    precision: 0,
                    data: Vec::with_capacity(128),
                };
                for (i, tq) in [tq_luma, tq_chroma].into_iter().enumerate() {
                    let (wide, t) = tables
                        .get(usize::from(tq))
                        .copied()
                        .flatten()
                        .ok_or(JpegError::MissingSegment("DQT for a component"))?;
                    quant.precision |= u8::from(wide) << i;
                    quant.data.extend_from_slice(t);
                }
                block_count(width, height)?;
                block_count(height, width)?;
                let rest = r.rest();
                let end = rest
                    .windows(2)
                    .position(|w| w == [0xff, EOI])
                    .unwrap_or(rest.len());
                let scan = rest.get(..end).unwrap_or_default();
                return Ok(ScanParts {
                    width,
                    height,
                    jpeg_type,
                    quant,
                    scan,
                });
            }
            _ => {} // APPn, COM: not carried
        }
    }
}

/// Split a JPEG frame into RFC 2435 payloads of at most `max_payload` bytes.
pub fn packetize_payloads(jpeg: &[u8], max_payload: usize) -> Result<Vec<JpegPayload>, JpegError> {
    let parts = split_jpeg(jpeg)?;
    let first_overhead = 8 + 4 + parts.quant.data.len();
    if max_payload <= first_overhead {
        return Err(JpegError::PayloadTooSmall(max_payload));
    }
    let mut out = Vec::new();
    let mut offset = 0usize;
    while offset < parts.scan.len() || out.is_empty() {
        let first = offset == 0;
        let room = max_payload - if first { first_overhead } else { 8 };
        let end = (offset + room).min(parts.scan.len());
        out.push(JpegPayload {
            header: JpegHeader {
                type_specific: 0,
                fragment_offset: offset as u32,
                jpeg_type: parts.jpeg_type,
                // RFC 2435 §4.2: Q = 255, tables in-band in every frame
                q: 255,
                width: parts.width,
                height: parts.height,
            },
            restart: None,
            quant: first.then(|| parts.quant.clone()),
            data: parts.scan.get(offset..end).unwrap_or_default().to_vec(),
        });
        offset = end;
    }
    Ok(out)
}

/// Turns JPEG frames into RTP packets (PT 26, 90 kHz clock, marker on the last).
#[derive(Debug, Clone)]
pub struct JpegPacketizer {
    pub ssrc: u32,
    pub payload_type: u8,
    next_seq: u16,
    max_payload: usize,
}

impl JpegPacketizer {
    /// `mtu` is the RTP packet budget (e.g. 1200); the payload gets mtu − 12.
    pub fn new(ssrc: u32, first_seq: u16, mtu: usize) -> Self {
        Self {
            ssrc,
            payload_type: PT_JPEG,
            next_seq: first_seq,
            max_payload: mtu.saturating_sub(12),
        }
    }
    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }
    /// Packetize one frame with the given RTP timestamp.
    pub fn packetize(&mut self, jpeg: &[u8], timestamp: u32) -> Result<Vec<RtpPacket>, JpegError> {
        let payloads = packetize_payloads(jpeg, self.max_payload)?;
        let n = payloads.len();
        let mut packets = Vec::with_capacity(n);
        for (i, p) in payloads.into_iter().enumerate() {
            let mut packet = RtpPacket::new(
                self.payload_type,
                self.next_seq,
                timestamp,
                self.ssrc,
                p.to_bytes()?,
            );
            // RFC 2435 §3: marker on the last packet of a frame
            packet.marker = i + 1 == n;
            self.next_seq = self.next_seq.wrapping_add(1);
            packets.push(packet);
        }
        Ok(packets)
    }
}

/// Most scan bytes the depacketizer holds for one frame (a 2040×2040 frame at
/// high quality stays well below it).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// A reassembled frame, as a complete JFIF stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegFrame {
    pub timestamp: u32,
    pub width: u16,
    pub height: u16,
    pub jpeg: Vec<u8>,
}

#[derive(Debug)]
struct Assembly {
    timestamp: u32,
    header: JpegHeader,
    restart: Option<RestartHeader>,
    quant: Option<QuantTables>,
    fragments: BTreeMap<u32, Vec<u8>>,
    bytes: usize,
    end: Option<u32>,
}

/// Reassembles RTP/JPEG packets (in any order within a frame) into JFIF frames.
#[derive(Debug, Default)]
pub struct JpegDepacketizer {
    current: Option<Assembly>,
    /// Q 128–254 tables seen earlier (RFC 2435 §3.1.8: Length 0 reuses them).
    cached_tables: HashMap<u8, QuantTables>,
    /// Frames abandoned incomplete.
    pub frames_dropped: u64,
}

impl JpegDepacketizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one packet; returns a frame when its last fragment completes it.
    pub fn push(&mut self, packet: &RtpPacket) -> Result<Option<JpegFrame>, JpegError> {
        let p = JpegPayload::parse(&packet.payload)?;
        if !matches!(p.header.jpeg_type & !64, 0 | 1) {
            return Err(JpegError::UnsupportedType(p.header.jpeg_type));
        }
        if self
            .current
            .as_ref()
            .is_some_and(|a| a.timestamp != packet.timestamp)
        {
            self.current = None;
            self.frames_dropped += 1;
        }
        let a = self.current.get_or_insert_with(|| Assembly {
            timestamp: packet.timestamp,
            header: p.header,
            restart: p.restart,
            quant: None,
            fragments: BTreeMap::new(),
            bytes: 0,
            end: None,
        });
        if p.header.fragment_offset == 0 {
            a.header = p.header;
            a.restart = p.restart;
            a.quant = p.quant;
        }
        let end = p.header.fragment_offset + p.data.len() as u32;
        if packet.marker {
            a.end = Some(end);
        }
        if let std::collections::btree_map::Entry::Vacant(slot) =
            a.fragments.entry(p.header.fragment_offset)
        {
            a.bytes += p.data.len();
            slot.insert(p.data);
        }
        if a.bytes > MAX_FRAME_BYTES {
            let bytes = a.bytes;
            self.current = None;
            self.frames_dropped += 1;
            return Err(JpegError::FrameTooLarge(bytes));
        }
        let Some(total) = a.end else { return Ok(None) };
        // complete when fragments tile 0..total
        let mut next = 0u32;
        for (&off, data) in &a.fragments {
            if off != next {
                return Ok(None);
            }
            next += data.len() as u32;
        }
        if next != total {
            return Ok(None);
        }
        let Some(a) = self.current.take() else {
            return Ok(None);
        };
        let frame = self.finish(a);
        if frame.is_err() {
            self.frames_dropped += 1;
        }
        frame.map(Some)
    }

    fn finish(&mut self, a: Assembly) -> Result<JpegFrame, JpegError> {
        let h = a.header;
        let tables = if h.q >= 128 {
            match a.quant {
                Some(qt) if !qt.data.is_empty() => {
                    if h.q < 255 {
                        self.cached_tables.insert(h.q, qt.clone());
                    }
                    qt
                }
                // RFC 2435 §3.1.8: Q = 255 must carry tables; 128-254 may reuse
                _ if h.q == 255 => return Err(JpegError::MissingQuantTables(h.q)),
                _ => self
                    .cached_tables
                    .get(&h.q)
                    .cloned()
                    .ok_or(JpegError::MissingQuantTables(h.q))?,
            }
        } else {
            make_tables(h.q)
        };
        let scan_len: usize = a.fragments.values().map(Vec::len).sum();
        let mut jpeg = make_headers(
            h.jpeg_type & 1,
            h.width,
            h.height,
            &tables,
            a.restart.map(|r| r.interval),
        )?;
        jpeg.reserve(scan_len + 2);
        for data in a.fragments.values() {
            jpeg.extend_from_slice(data);
        }
        if !jpeg.ends_with(&[0xff, EOI]) {
            jpeg.extend_from_slice(&[0xff, EOI]);
        }
        Ok(JpegFrame {
            timestamp: a.timestamp,
            width: h.width,
            height: h.height,
            jpeg,
        })
    }
}

/// Table K.1 (luminance), natural order.
const JPEG_LUMA_QUANTIZER: [u8; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
/// Table K.2 (chrominance), natural order.
const JPEG_CHROMA_QUANTIZER: [u8; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];
/// Natural-order index of the k-th coefficient in zig-zag order (T.81 figure A.6).
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Quantization tables for Q 1–99 (RFC 2435 Appendix A), in zig-zag order as
/// DQT wants them (the appendix's tables are natural order; we reorder, as
/// common depacketizers do).
pub fn make_tables(q: u8) -> QuantTables {
    let factor = u32::from(q.clamp(1, 99));
    let scale = if factor < 50 {
        5000 / factor
    } else {
        200 - factor * 2
    };
    let mut data = Vec::with_capacity(128);
    for table in [&JPEG_LUMA_QUANTIZER, &JPEG_CHROMA_QUANTIZER] {
        for &natural in &ZIGZAG {
            let v = table.get(natural).copied().map_or(1, u32::from);
            data.push(((v * scale + 50) / 100).clamp(1, 255) as u8);
        }
    }
    QuantTables { precision: 0, data }
}

/// The JFIF headers for an RFC 2435 frame (Appendix B, MakeHeaders).
pub fn make_headers(
    jpeg_type: u8,
    width: u16,
    height: u16,
    tables: &QuantTables,
    restart_interval: Option<u16>,
) -> Result<Vec<u8>, JpegError> {
    let mut out = Vec::with_capacity(700);
    out.extend_from_slice(&[0xff, SOI]);
    // DQT: table 0 (luma) and 1 (chroma); a single table serves both
    let mut rest = tables.data.as_slice();
    let mut found: Vec<(u8, &[u8])> = Vec::new();
    for i in 0..2u8 {
        if rest.is_empty() {
            break;
        }
        let wide = tables.precision >> i & 1;
        let n = if wide == 1 { 128 } else { 64 };
        let (t, tail) = rest
            .split_at_checked(n)
            .ok_or(JpegError::BadQuantTables("partial table"))?;
        found.push(((wide << 4) | i, t));
        rest = tail;
    }
    if found.is_empty() {
        return Err(JpegError::BadQuantTables("no table"));
    }
    if found.len() == 1
        && let Some(&(pq, t)) = found.first()
    {
        found.push((pq | 1, t));
    }
    for (pq_tq, t) in found {
        out.extend_from_slice(&[0xff, DQT]);
        out.extend_from_slice(&(3 + t.len() as u16).to_be_bytes());
        out.push(pq_tq);
        out.extend_from_slice(t);
    }
    if let Some(interval) = restart_interval {
        out.extend_from_slice(&[0xff, DRI, 0, 4]);
        out.extend_from_slice(&interval.to_be_bytes());
    }
    // SOF0, components 0/1/2, luma sampling 2x1 (type 0) or 2x2 (type 1)
    out.extend_from_slice(&[0xff, SOF0, 0, 17, 8]);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&width.to_be_bytes());
    let luma = if jpeg_type == 0 { 0x21 } else { 0x22 };
    out.extend_from_slice(&[3, 0, luma, 0, 1, 0x11, 1, 2, 0x11, 1]);
    for (tc_th, bits, vals) in [
        (0x00, &DC_LUMA_BITS[..], &DC_LUMA_VALS[..]),
        (0x10, &AC_LUMA_BITS[..], &AC_LUMA_VALS[..]),
        (0x01, &DC_CHROMA_BITS[..], &DC_CHROMA_VALS[..]),
        (0x11, &AC_CHROMA_BITS[..], &AC_CHROMA_VALS[..]),
    ] {
        out.extend_from_slice(&[0xff, DHT]);
        out.extend_from_slice(&(3 + 16 + vals.len() as u16).to_be_bytes());
        out.push(tc_th);
        out.extend_from_slice(bits);
        out.extend_from_slice(vals);
    }
    out.extend_from_slice(&[0xff, SOS, 0, 12, 3, 0, 0x00, 1, 0x11, 2, 0x11, 0, 63, 0]);
    Ok(out)
}

// Standard Huffman tables, ITU-T T.81 Annex K.3 (tables K.3–K.6).
const DC_LUMA_BITS: [u8; 16] = [
    0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];
const DC_LUMA_VALS: [u8; 12] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
];

const AC_LUMA_BITS: [u8; 16] = [
    0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d,
];
const AC_LUMA_VALS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

const DC_CHROMA_BITS: [u8; 16] = [
    0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
];
const DC_CHROMA_VALS: [u8; 12] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
];

const AC_CHROMA_BITS: [u8; 16] = [
    0x00, 0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77,
];
const AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn make_tables_q50_is_annex_k_in_zigzag() {
        let t = make_tables(50);
        assert_eq!(&t.data[..6], &[16, 11, 12, 14, 12, 10]);
        assert_eq!(&t.data[64..70], &[17, 18, 18, 24, 21, 24]);
        assert_eq!(make_tables(1).data[0], 255);
        assert_eq!(make_tables(99).data[0], 1);
    }

    #[test]
    fn payload_errors() {
        assert!(matches!(
            JpegPayload::parse(&[0; 7]),
            Err(JpegError::Payload(RtpError::Truncated { .. }))
        ));
        // Q = 255 at offset 0 needs the table header
        assert!(matches!(
            JpegPayload::parse(&[0, 0, 0, 0, 1, 255, 20, 15]),
            Err(JpegError::Payload(RtpError::Truncated {
                what: "JPEG quantization table header",
                ..
            }))
        ));
        let bad = JpegPayload {
            header: JpegHeader {
                type_specific: 0,
                fragment_offset: 0,
                jpeg_type: 1,
                q: 50,
                width: 161,
                height: 120,
            },
            restart: None,
            quant: None,
            data: vec![],
        };
        assert!(matches!(
            bad.to_bytes(),
            Err(JpegError::BadSize { width: 161, .. })
        ));
    }

    fn arb_payload() -> impl Strategy<Value = JpegPayload> {
        (
            (
                any::<u8>(),
                0u32..0x100_0000,
                any::<u8>(),
                any::<u8>(),
                1u16..=255,
                1u16..=255,
            ),
            any::<(u16, bool, bool, u16)>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..140),
            prop::collection::vec(any::<u8>(), 0..100),
        )
            .prop_map(|((ts, off, ty, q, w, h), (ri, f, l, c), prec, qt, data)| {
                JpegPayload {
                    header: JpegHeader {
                        type_specific: ts,
                        fragment_offset: off,
                        jpeg_type: ty,
                        q,
                        width: w * 8,
                        height: h * 8,
                    },
                    restart: (64..128).contains(&ty).then_some(RestartHeader {
                        interval: ri,
                        first: f,
                        last: l,
                        count: c & 0x3fff,
                    }),
                    quant: (q >= 128 && off == 0).then_some(QuantTables {
                        precision: prec,
                        data: qt,
                    }),
                    data,
                }
            })
    }

    proptest! {
        #[test]
        fn payload_round_trip(p in arb_payload()) {
            let bytes = p.to_bytes().unwrap();
            prop_assert_eq!(JpegPayload::parse(&bytes).unwrap(), p);
        }

        #[test]
        fn payload_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_jpeg_payload(&bytes);
        }

        #[test]
        fn split_and_depacketize_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = split_jpeg(&bytes);
            let mut d = JpegDepacketizer::new();
            let mut p = RtpPacket::new(26, 0, 0, 1, bytes);
            p.marker = true;
            let _ = d.push(&p);
        }
    }
}
