//! Receiver statistics (RFC 3550 A.1, A.3, A.8) on a virtual clock. These
//! live here, not beside the code, because `src/proto` never calls `Instant::now`.

use std::time::{Duration, Instant};

use isc::proto::rtp::rtcp::NtpTime;
use isc::proto::rtp::{ReceiverStats, RtpPacket};

fn pkt(seq: u16, ts: u32) -> RtpPacket {
    RtpPacket::new(0, seq, ts, 42, vec![0; 160])
}

#[test]
fn wrap_and_loss() {
    let t0 = Instant::now();
    let mut s = ReceiverStats::new(8000);
    let mut seq = 65530u16;
    let mut ts = 0u32;
    let mut sent = 0;
    for i in 0..20u64 {
        // drop seq 65535 and 2
        if seq != 65535 && seq != 2 {
            s.on_packet(t0 + Duration::from_millis(20 * i), &pkt(seq, ts));
        }
        sent += 1;
        seq = seq.wrapping_add(1);
        ts += 160;
    }
    assert_eq!(sent, 20);
    assert_eq!(s.extended_highest_seq(), 65536 + 13);
    // probation swallowed the first packet: expected counts from the second
    assert_eq!(s.expected(), 19);
    assert_eq!(s.cumulative_lost(), 2);
    let block = s.report_block(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(block.fraction_lost, (2 * 256 / 19) as u8);
    assert_eq!(block.jitter, 0, "perfectly paced packets have no jitter");
    let again = s.report_block(t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(again.fraction_lost, 0);
}

#[test]
fn jitter_follows_a8() {
    let t0 = Instant::now();
    let mut s = ReceiverStats::new(8000);
    // alternate 0 and 10 ms of extra delay: |D| = 80 units every packet
    for i in 0..200u64 {
        let extra = if i % 2 == 0 { 0 } else { 10 };
        s.on_packet(
            t0 + Duration::from_millis(20 * i + extra),
            &pkt(i as u16, 160 * i as u32),
        );
    }
    assert!((78..=80).contains(&s.jitter()), "jitter {}", s.jitter());
    assert!((s.jitter_duration().as_secs_f64() - 0.01).abs() < 0.001);
}

#[test]
fn lsr_dlsr() {
    let t0 = Instant::now();
    let mut s = ReceiverStats::new(8000);
    for i in 0..3u16 {
        s.on_packet(t0, &pkt(i, 0));
    }
    let ntp = NtpTime(0x0001_2345_6789_0000);
    s.on_sender_report(t0, ntp);
    let b = s.report_block(t0 + Duration::from_millis(500)).unwrap();
    assert_eq!(b.last_sr, 0x2345_6789);
    assert_eq!(b.delay_since_last_sr, 32768);
}

#[test]
fn restart_after_large_jump() {
    let t0 = Instant::now();
    let mut s = ReceiverStats::new(8000);
    for i in 0..5u16 {
        s.on_packet(t0, &pkt(i, 0));
    }
    assert!(!s.on_packet(t0, &pkt(30000, 0)));
    assert!(s.on_packet(t0, &pkt(30001, 0)));
    assert_eq!(s.extended_highest_seq(), 30001);
    assert_eq!(s.cumulative_lost(), 0);
}

#[test]
fn sender_stats_feed_the_sr() {
    let mut s = isc::proto::rtp::SenderStats::default();
    s.on_sent(&pkt(0, 0));
    s.on_sent(&pkt(1, 160));
    let info = s.sender_info(NtpTime(5), 320);
    assert_eq!(
        (
            info.packet_count,
            info.octet_count,
            info.rtp_timestamp,
            info.ntp
        ),
        (2, 320, 320, NtpTime(5))
    );
}
