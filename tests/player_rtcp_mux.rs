//! The driver with rtcp-mux (RFC 5761): one socket per stream carries RTP and
//! RTCP both ways; the RR comes back from the RTP port to the SR's source.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use isc::media::audio_out::MemorySink;
use isc::media::player::{Player, PlayerConfig};
use isc::net::rtp_socket::{PlayerSockets, spawn_player};
use isc::proto::rtp::g711::{PcmuPacketizer, SAMPLES_PER_20MS};
use isc::proto::rtp::rtcp::{SenderInfo, SenderReport, build_compound, parse_compound};
use isc::proto::rtp::{NtpTime, RtcpPacket};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_mux_reports_back_over_the_rtp_port() {
    let mut cfg = PlayerConfig::new(0x77, "mux@test");
    cfg.rr_interval = Duration::from_millis(400);
    let sink = MemorySink::new(8000);
    let played = sink.tap();
    let player = Player::new(cfg, Box::new(sink), Instant::now());
    let sockets = PlayerSockets {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        audio_port: Some(0),
        video_port: None,
        rtcp_mux: true,
    };
    let handle = spawn_player(sockets, player).await.unwrap();
    let to = (Ipv4Addr::LOCALHOST, handle.audio_port.unwrap());
    let rr = tokio::task::spawn_blocking(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut tx = PcmuPacketizer::new(42, 1, 0, SAMPLES_PER_20MS);
        let sr = build_compound(&[RtcpPacket::SenderReport(SenderReport {
            ssrc: 42,
            info: SenderInfo {
                ntp: NtpTime::from_system_time(SystemTime::now()),
                rtp_timestamp: 0,
                packet_count: 0,
                octet_count: 0,
            },
            reports: vec![],
            extension: vec![],
        })])
        .unwrap();
        sock.send_to(&sr, to).unwrap();
        let t0 = Instant::now();
        let mut got = None;
        for (i, p) in tx.push(&[1000i16; 8000]).into_iter().enumerate() {
            let due = t0 + Duration::from_millis(20 * i as u64);
            while Instant::now() < due {
                let mut buf = [0u8; 1500];
                if let Ok((n, _)) = sock.recv_from(&mut buf)
                    && let Ok(pkts) = parse_compound(&buf[..n])
                    && let Some(RtcpPacket::ReceiverReport(rr)) = pkts.first()
                {
                    got.get_or_insert(rr.clone());
                }
            }
            sock.send_to(&p.to_bytes().unwrap(), to).unwrap();
        }
        got
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = handle.stop().await.unwrap();
    let rr = rr.expect("no RR came back over the RTP port");
    assert_eq!(rr.ssrc, 0x77);
    assert_eq!(rr.reports.first().map(|b| b.ssrc), Some(42));
    // the SR came before any RTP: its LSR is still echoed (RFC 3550 §6.4.1)
    assert_ne!(rr.reports.first().map(|b| b.last_sr), Some(0));
    assert_eq!(stats.audio.sender_reports, 1);
    assert!(stats.audio.receiver_reports_sent >= 1);
    assert!(played.lock().unwrap().len() >= 7800);
}
