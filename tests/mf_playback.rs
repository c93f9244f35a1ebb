//! Shared playback control (INFO, `isc-playback` Info Package): what one
//! viewer does, the others see — in the INFO the server sends them and in
//! the RTP timestamps; the sender reports to two viewers map one media
//! position to the same wall-clock time.

mod common;
mod cpm_common;
mod mf_common;

use std::time::Duration;

use isc::server::isc_playback::{PlaybackAction, PlaybackControl};

use cpm_common::recv_request;
use mf_common::*;

const PCMU_RATE: f64 = 8000.0;

#[tokio::test]
async fn pause_and_seek_by_one_viewer_are_seen_by_the_other() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let mut bob = Viewer::register(addr, "bob", "b1", "phone").await;
    let (_ad, mut bd, _) = watch_1_1(&mut alice, &mut bob, "melody").await;

    // the stream runs; the first packet names position 0
    let first = alice.audio_rtp(Duration::from_millis(500)).await;
    assert!(first.len() >= 10);
    let (_, p0) = &first[0];
    assert!(p0.marker, "first packet of the stream");
    let base = p0.timestamp;

    // bob pauses
    let info = bd.request(
        &mut bob.sip,
        "INFO",
        &[
            "Info-Package: isc-playback",
            "Content-Type: application/vnd.isc.playback",
            "Content-Disposition: Info-Package",
        ],
        "action=pause\r\n",
    );
    let call = info.headers.get_raw_call_id();
    bob.sip.send(info).await;
    assert_eq!(
        response_to(&bob.sip, &call, "INFO")
            .await
            .status_code
            .code(),
        200
    );
    // alice is told who did what
    let told = recv_request(&alice.sip, rsip::Method::Info).await;
    assert_eq!(
        isc::proto::sip::headers::HeadersExt::get_raw(&told.headers, "Info-Package").as_deref(),
        Some("isc-playback")
    );
    let c = PlaybackControl::parse(&told.body).unwrap();
    assert_eq!(c.action, PlaybackAction::Pause);
    assert_eq!(c.by.as_deref(), Some("sip:bob@isc.local"));
    let paused_at = c.position_ms.unwrap();
    assert!((400..3000).contains(&paused_at), "{paused_at}");
    alice.sip.answer(&told, 200).await;
    // and no more media reaches her
    tokio::time::sleep(Duration::from_millis(50)).await;
    drain(&alice.audio.rtp).await;
    assert!(
        alice.audio_rtp(Duration::from_millis(300)).await.is_empty(),
        "paused"
    );

    // bob seeks to 5 s and resumes
    for body in ["action=seek\r\nposition=5000\r\n", "action=resume\r\n"] {
        let info = bd.request(
            &mut bob.sip,
            "INFO",
            &[
                "Info-Package: isc-playback",
                "Content-Type: application/vnd.isc.playback",
            ],
            body,
        );
        bob.sip.send(info).await;
        assert_eq!(
            response_to(&bob.sip, &call, "INFO")
                .await
                .status_code
                .code(),
            200
        );
        let told = recv_request(&alice.sip, rsip::Method::Info).await;
        alice.sip.answer(&told, 200).await;
        let c = PlaybackControl::parse(&told.body).unwrap();
        assert_eq!(c.by.as_deref(), Some("sip:bob@isc.local"));
        assert_eq!(c.position_ms, Some(5000));
    }
    let after = alice.audio_rtp(Duration::from_millis(300)).await;
    let (_, p) = &after[0];
    assert!(p.marker, "a new talkspurt after the jump");
    assert_eq!(
        p.timestamp.wrapping_sub(base),
        5 * 8000,
        "alice's timestamps show bob's seek to 5 s"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn sender_reports_to_two_viewers_agree_on_wall_clock() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Viewer::register(addr, "alice", "al", "laptop").await;
    let mut bob = Viewer::register(addr, "bob", "b1", "phone").await;
    watch_1_1(&mut alice, &mut bob, "melody").await;
    let (sa, sb) = tokio::join!(
        alice.audio_srs(Duration::from_millis(2600)),
        bob.audio_srs(Duration::from_millis(2600)),
    );
    assert!(
        !sa.is_empty() && !sb.is_empty(),
        "SRs: {} {}",
        sa.len(),
        sb.len()
    );
    // the wall-clock time at which audio timestamp X plays, per SR
    let x = sa[0].rtp_timestamp.wrapping_add(8000);
    let at = |i: &isc::proto::rtp::rtcp::SenderInfo| {
        let d = f64::from(x.wrapping_sub(i.rtp_timestamp) as i32) / PCMU_RATE;
        i.ntp.to_unix().as_secs_f64() + d
    };
    for a in &sa {
        for b in &sb {
            let diff = (at(a) - at(b)).abs();
            assert!(diff < 0.020, "SRs disagree by {diff} s");
        }
    }
    server.shutdown().await;
}

trait CallIdExt {
    fn get_raw_call_id(&self) -> String;
}

impl CallIdExt for rsip::Headers {
    fn get_raw_call_id(&self) -> String {
        isc::proto::sip::headers::HeadersExt::get_raw(self, "Call-ID").unwrap()
    }
}
