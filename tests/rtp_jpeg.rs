//! RFC 2435 end to end: encode → packetize → (reorder) → depacketize → decode.

use isc::proto::rtp::RtpPacket;
use isc::proto::rtp::jpeg::{
    JpegDepacketizer, JpegError, JpegPacketizer, JpegPayload, make_tables, split_jpeg,
};
use isc::proto::rtp::jpeg_codec::{RgbFrame, decode_rgb, encode_rgb, psnr};

/// A test card: smooth colour gradients, a soft-edged disc and grey steps
/// (luma edges; hard saturated colour edges are what 4:2:0 loses most).
fn picture(width: u16, height: u16) -> RgbFrame {
    let mut f = RgbFrame::new(width, height);
    let (w, h) = (usize::from(width), usize::from(height));
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let (cx, cy) = (x as f64 - 80.0, y as f64 - 60.0);
            let inside = (30.0 - (cx * cx + cy * cy).sqrt()).clamp(0.0, 4.0) / 4.0;
            let base = [(x * 255 / w) as f64, (y * 255 / h) as f64, 128.0];
            let disc = [240.0, 200.0, 40.0];
            let px = if y > h * 3 / 4 {
                [[255u8; 3], [170; 3], [85; 3], [0; 3]][x * 4 / w]
            } else {
                std::array::from_fn(|c| (base[c] * (1.0 - inside) + disc[c] * inside) as u8)
            };
            f.data[i..i + 3].copy_from_slice(&px);
        }
    }
    f
}

#[test]
fn frame_survives_rtp_in_any_packet_order() {
    let src = picture(160, 120);
    let jpeg = encode_rgb(&src, 85).unwrap();
    let mut packetizer = JpegPacketizer::new(0x1234, 65533, 400);
    let mut packets = packetizer.packetize(&jpeg, 90_000).unwrap();
    assert!(packets.len() > 2, "{} packets", packets.len());
    assert!(
        packets
            .iter()
            .all(|p| p.len() <= 400 && p.payload_type == 26 && p.timestamp == 90_000)
    );
    assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
    assert!(packets.last().unwrap().marker);
    assert_eq!(
        packetizer.next_seq(),
        65533u16.wrapping_add(packets.len() as u16)
    );
    let first = JpegPayload::parse(&packets[0].payload).unwrap();
    let h = first.header;
    assert_eq!(
        (h.jpeg_type, h.q, h.width, h.height, h.fragment_offset),
        (1, 255, 160, 120, 0)
    );
    assert_eq!(first.quant.as_ref().unwrap().data.len(), 128);

    packets.reverse();
    let mut depacketizer = JpegDepacketizer::new();
    let mut frames = Vec::new();
    for p in &packets {
        let p = RtpPacket::parse(&p.to_bytes().unwrap()).unwrap();
        if let Some(frame) = depacketizer.push(&p).unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 1);
    let frame = &frames[0];
    assert_eq!(
        (frame.width, frame.height, frame.timestamp),
        (160, 120, 90_000)
    );

    // The rebuilt stream carries the same tables and entropy data, so it decodes
    // to exactly the picture the sender's JPEG decodes to.
    let direct = decode_rgb(&jpeg).unwrap();
    let via_rtp = decode_rgb(&frame.jpeg).unwrap();
    assert_eq!(via_rtp, direct);
    // Against the source: 30 dB is the usual floor for "good" lossy video.
    // This card measures 35.6 dB at quality 85 / 4:2:0 (pure gradients alone
    // 47 dB; the disc's colour edge costs most, as 4:2:0 halves chroma). A
    // wrong table, sampling type or fragment order falls below 20 dB, so 33 dB
    // separates "the frame came back" from "something is broken" with margin
    // for encoder changes.
    let db = psnr(&src.data, &via_rtp.data);
    eprintln!("PSNR source vs RTP round trip: {db:.1} dB");
    assert!(db > 33.0, "PSNR {db:.1} dB");
}

#[test]
fn four_two_two_is_type_0() {
    let src = picture(160, 120);
    let mut jpeg = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 80);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_1);
    enc.encode(&src.data, 160, 120, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let parts = split_jpeg(&jpeg).unwrap();
    assert_eq!(parts.jpeg_type, 0);
    let packets = JpegPacketizer::new(1, 0, 1200).packetize(&jpeg, 0).unwrap();
    let mut d = JpegDepacketizer::new();
    let frame = packets.iter().find_map(|p| d.push(p).unwrap()).unwrap();
    assert_eq!(decode_rgb(&frame.jpeg).unwrap(), decode_rgb(&jpeg).unwrap());
}

#[test]
fn encoder_tables_match_appendix_a() {
    // jpeg-encoder scales Annex K like RFC 2435 Appendix A; its DQT is zig-zag.
    let jpeg = encode_rgb(&picture(160, 120), 50).unwrap();
    assert_eq!(split_jpeg(&jpeg).unwrap().quant, make_tables(50));
    let jpeg = encode_rgb(&picture(160, 120), 80).unwrap();
    assert_eq!(split_jpeg(&jpeg).unwrap().quant, make_tables(80));
}

#[test]
fn q_below_128_uses_appendix_a_tables() {
    let jpeg = encode_rgb(&picture(160, 120), 75).unwrap();
    let mut packets = JpegPacketizer::new(1, 0, 1200).packetize(&jpeg, 0).unwrap();
    // rewrite the first packet as Q = 75 without in-band tables
    let mut first = JpegPayload::parse(&packets[0].payload).unwrap();
    first.header.q = 75;
    first.quant = None;
    packets[0].payload = first.to_bytes().unwrap();
    let mut d = JpegDepacketizer::new();
    let frame = packets.iter().find_map(|p| d.push(p).unwrap()).unwrap();
    assert_eq!(decode_rgb(&frame.jpeg).unwrap(), decode_rgb(&jpeg).unwrap());
}

#[test]
fn incomplete_frame_is_dropped_when_the_next_begins() {
    let a = encode_rgb(&picture(160, 120), 60).unwrap();
    let mut pk = JpegPacketizer::new(1, 0, 300);
    let mut first = pk.packetize(&a, 0).unwrap();
    first.remove(1);
    let second = pk.packetize(&a, 9000).unwrap();
    let mut d = JpegDepacketizer::new();
    let frames: Vec<_> = first
        .iter()
        .chain(&second)
        .filter_map(|p| d.push(p).unwrap())
        .collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].timestamp, 9000);
    assert_eq!(d.frames_dropped, 1);
}

#[test]
fn rejects_what_rfc_2435_cannot_carry() {
    let src = picture(160, 120);
    let mut restart = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut restart, 80);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.set_restart_interval(4);
    enc.encode(&src.data, 160, 120, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    assert_eq!(
        split_jpeg(&restart),
        Err(JpegError::Unsupported("restart markers"))
    );

    let mut optimized = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut optimized, 80);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.set_optimized_huffman_tables(true);
    enc.encode(&src.data, 160, 120, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    assert!(split_jpeg(&optimized).is_err());

    let odd = encode_rgb(&RgbFrame::new(100, 50), 80).unwrap();
    assert!(matches!(split_jpeg(&odd), Err(JpegError::BadSize { .. })));
    assert_eq!(
        split_jpeg(b"not a jpeg"),
        Err(JpegError::MissingSegment("SOI"))
    );
}

#[test]
fn endless_fragments_are_capped() {
    use isc::proto::rtp::jpeg::{JpegHeader, MAX_FRAME_BYTES};
    let mut d = JpegDepacketizer::new();
    let mut result = Ok(None);
    for i in 0..(MAX_FRAME_BYTES / 60_000 + 2) {
        let payload = JpegPayload {
            header: JpegHeader {
                type_specific: 0,
                fragment_offset: (i * 60_000) as u32 + 1,
                jpeg_type: 1,
                q: 50,
                width: 160,
                height: 120,
            },
            restart: None,
            quant: None,
            data: vec![0; 60_000],
        };
        result = d.push(&RtpPacket::new(
            26,
            i as u16,
            0,
            1,
            payload.to_bytes().unwrap(),
        ));
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(JpegError::FrameTooLarge(_))),
        "{result:?}"
    );
    assert_eq!(d.frames_dropped, 1);
}
