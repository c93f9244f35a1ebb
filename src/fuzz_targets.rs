//! One entry point per parser, shared by the `cargo fuzz` targets under
//! `fuzz/` and by the stable-toolchain smoke test `tests/fuzz_smoke.rs`
//! (proptest drives the same functions on every CI run). Each takes arbitrary
//! bytes and must return without panicking, whatever they are.

use crate::proto::{bodies, msrp, rtp, sdp, sip};

/// A fuzz target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by name, for the smoke test and the fuzz runner script.
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_message", sip_message),
    ("sip_stream", sip_stream),
    ("msrp_stream", msrp_stream),
    ("sdp", sdp_body),
    ("isc_content_request", isc_content_request),
    ("cm_recommendation", cm_recommendation),
    ("cv_cancellation", cv_cancellation),
    ("conference_info", conference_info),
    ("is_composing", is_composing),
    ("resource_lists", resource_lists),
    ("reginfo", reginfo),
    ("cpim", cpim),
    ("multipart", multipart),
    ("digest", digest),
    ("rtp", rtp_packets),
    ("content_disposition", content_disposition),
    ("message_summary", message_summary),
    ("deferred_payload", deferred_payload),
];

/// RFC 3842 message-summary, and a round trip of whatever parses.
pub fn message_summary(data: &[u8]) {
    use crate::client::deferred::summary;
    if let Ok(s) = summary::parse(data) {
        let _ = summary::parse(&s.to_bytes());
    }
}

/// A deferred SEND's payload (seed 002 D.2), under each type it may have.
pub fn deferred_payload(data: &[u8]) {
    use crate::client::deferred::unwrap::unwrap_deferred;
    for ct in [
        "message/sip",
        "message/cpim",
        "multipart/mixed; boundary=deferred-boundary",
    ] {
        let _ = unwrap_deferred(ct, data);
    }
}

/// A SIP datagram, and a round trip of whatever parses.
pub fn sip_message(data: &[u8]) {
    if let Ok(msg) = sip::message::parse_message(data) {
        let again = sip::message::to_bytes(&msg);
        let _ = sip::message::parse_message(&again);
    }
}

/// SIP over TCP: the framer, cut in two at a point taken from the data.
pub fn sip_stream(data: &[u8]) {
    let mut framer = sip::framing::StreamFramer::new(Default::default());
    let cut = data
        .first()
        .map(|b| usize::from(*b) % (data.len() + 1))
        .unwrap_or(0);
    framer.push(&data[..cut]);
    while let Some(Ok(m)) = framer.next_message() {
        let _ = sip::message::parse_message(&m);
    }
    framer.push(&data[cut..]);
    while let Some(next) = framer.next_message() {
        match next {
            Ok(m) => {
                let _ = sip::message::parse_message(&m);
            }
            Err(_) => break,
        }
    }
}

/// An MSRP byte stream, fed in two pieces.
pub fn msrp_stream(data: &[u8]) {
    let mut parser = msrp::MsrpParser::new(msrp::ParserConfig::default());
    let cut = data
        .first()
        .map(|b| usize::from(*b) % (data.len() + 1))
        .unwrap_or(0);
    for piece in [&data[..cut], &data[cut..]] {
        parser.push(piece);
        while let Some(frame) = parser.next() {
            if let Err(e) = frame
                && e.is_fatal()
            {
                return;
            }
        }
    }
}

pub fn sdp_body(data: &[u8]) {
    if let Ok(s) = sdp::parse_sdp(data) {
        let _ = sdp::parse_sdp(&s.to_bytes());
    }
}

pub fn isc_content_request(data: &[u8]) {
    let _ = bodies::isc_content_request::parse(data);
}

pub fn cm_recommendation(data: &[u8]) {
    let _ = bodies::cm_recommendation::parse(data);
}

pub fn cv_cancellation(data: &[u8]) {
    let _ = bodies::cv_cancellation::parse(data);
}

pub fn conference_info(data: &[u8]) {
    let _ = bodies::conference_info::parse(data);
}

pub fn is_composing(data: &[u8]) {
    let _ = bodies::is_composing::parse(data);
}

pub fn resource_lists(data: &[u8]) {
    let _ = bodies::resource_lists::parse(data);
}

pub fn reginfo(data: &[u8]) {
    let _ = bodies::reginfo::parse(data);
}

pub fn cpim(data: &[u8]) {
    let _ = bodies::cpim::parse(data);
}

/// A Large Message's Content-Disposition (seed 003 9.4.2), and a round
/// trip of whatever parses; the file name made safe for the downloads dir.
pub fn content_disposition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(cd) = crate::client::large_message::ContentDisposition::parse(&text) {
        let _ = crate::client::large_message::ContentDisposition::parse(&cd.to_string());
    }
    let _ = crate::client::large_message::safe_file_name(Some(&text));
}

pub fn multipart(data: &[u8]) {
    let _ = bodies::multipart::parse(data);
}

/// Digest challenge and credentials header values.
pub fn digest(data: &[u8]) {
    let _ = sip::digest::parse_challenge_bytes(data);
    let _ = sip::digest::parse_credentials_bytes(data);
}

/// RTP, RTCP and the RFC 2435 JPEG payload header.
pub fn rtp_packets(data: &[u8]) {
    let _ = rtp::packet::parse_rtp(data);
    let _ = rtp::rtcp::parse_compound(data);
    let _ = rtp::jpeg::parse_jpeg_payload(data);
}
