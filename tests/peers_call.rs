//! An audio call from baresip 1.0.0 or linphonec 5.1 (PCMU offer) to an
//! isc device: isc takes MSRP chats and content viewing, not calls, so the
//! device declines it politely — 488 Not Acceptable Here with a Warning 304
//! saying why (RFC 3261 §21.4.26, §20.43) — and tells its user; the caller
//! ACKs and reports the failure. Skipped, with the reason printed, only
//! when the peer binary is absent (`.ci/run` installs both).

mod common;
mod peers_support;

use std::time::Duration;

use isc::client::ClientEvent;
use isc::demo::Device;
use isc::server::runner::Direction;
use peers_support::*;

async fn registered_alice(addr: std::net::SocketAddr) -> Device {
    let alice = Device::start("alice/tv", DOMAIN, "alice", addr)
        .await
        .unwrap();
    let ok = alice
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, ClientEvent::Registered { .. })
        })
        .await;
    assert!(ok.is_some(), "{:?}", alice.events());
    alice
}

/// `caller`'s audio INVITE reached alice's device, which declined it with
/// 488 + Warning 304, the caller ACKed, and alice's user was told.
async fn check_declined(wire: &Wire, alice: &Device, caller: &str, peer: &PeerProcess) {
    let declined = alice
        .wait_for(Duration::from_secs(10), |e| {
            matches!(e, ClientEvent::CallDeclined { .. })
        })
        .await;
    assert_eq!(
        declined,
        Some(ClientEvent::CallDeclined {
            from: caller.into(),
            media: vec!["audio".into()],
        }),
        "{}\n{}",
        peer.output(),
        wire.dump()
    );
    // on the wire: the PCMU offer, relayed to alice's device; her 488 with
    // the Warning relayed back to the caller, which ACKs it
    let invite = wire
        .last(|s| {
            s.direction == Direction::Out
                && s.peer == alice.local_addr()
                && s.first_line().starts_with("INVITE ")
        })
        .await
        .unwrap_or_else(|| panic!("INVITE not relayed\n{}", wire.dump()));
    // PCMU: static payload type 0 (RFC 3551 §6) among the offered formats
    let audio = invite
        .body()
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .unwrap_or_else(|| panic!("no audio offer: {}", invite.text));
    assert!(
        audio.split_whitespace().skip(3).any(|pt| pt == "0"),
        "{audio}"
    );
    let from_alice = wire
        .wait(Duration::from_secs(3), |s| {
            s.direction == Direction::In
                && s.peer == alice.local_addr()
                && s.first_line().starts_with("SIP/2.0 488")
        })
        .await
        .unwrap_or_else(|| panic!("no 488 from alice\n{}", wire.dump()));
    assert_eq!(from_alice.cseq_method(), "INVITE");
    let caller_addr = wire
        .matching(request_in("INVITE sip:alice@isc.local"))
        .await[0]
        .peer;
    let to_caller = wire
        .wait(Duration::from_secs(3), |s| {
            s.direction == Direction::Out
                && s.peer == caller_addr
                && s.first_line().starts_with("SIP/2.0 488")
        })
        .await
        .unwrap_or_else(|| panic!("no 488 to the caller\n{}", wire.dump()));
    let warning = to_caller.header("Warning").unwrap_or_default();
    assert!(warning.starts_with("304 isc.local \""), "{warning}");
    assert!(warning.contains("no calls"), "{warning}");
    let ack = wire
        .wait(Duration::from_secs(3), |s| {
            s.direction == Direction::In
                && s.peer == caller_addr
                && s.first_line().starts_with("ACK ")
        })
        .await;
    assert!(ack.is_some(), "{}", wire.dump());
    // the device is left with no session: it reported nothing else
    assert!(
        !alice
            .events()
            .iter()
            .any(|e| matches!(e, ClientEvent::Chat(_) | ClientEvent::Viewing(_))),
        "{:?}",
        alice.events()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_audio_call_is_declined_with_488_and_a_warning() {
    if !have("baresip", "-h", "baresip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server().await;
    let wire = Wire::tap(&server);
    let addr = server.local_addr();
    let alice = registered_alice(addr).await;
    let conf = baresip_dir(
        dir.path(),
        "carol",
        addr,
        free_port(),
        "sip:alice@isc.local",
        "",
    );
    let bare = PeerProcess::spawn(
        dir.path(),
        "baresip",
        20,
        "baresip",
        &[
            "-f",
            conf.to_str().unwrap(),
            "-t",
            "5",
            "-e",
            "/dial sip:alice@isc.local",
        ],
        false,
    );
    check_declined(&wire, &alice, "sip:carol@isc.local", &bare).await;
    assert!(
        bare.wait_output("488", Duration::from_secs(3)).await,
        "{}",
        bare.output()
    );
    let _ = bare.finish(Duration::from_secs(15)).await;
    alice.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphonec_audio_call_is_declined_with_488_and_a_warning() {
    if !have("linphonec", "-v", "linphone-cli") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server().await;
    let wire = Wire::tap(&server);
    let addr = server.local_addr();
    let alice = registered_alice(addr).await;
    let rc = linphonerc(dir.path(), "ted", addr, free_port());
    let mut lin = linphonec(dir.path(), &rc, 30);
    peer_registered(&wire, "ted", &lin).await;
    lin.write_line("call sip:alice@isc.local").await;
    check_declined(&wire, &alice, "sip:ted@isc.local", &lin).await;
    // linphonec ends the call at once (it does not ring on)
    assert!(
        lin.wait_output(
            "Call 1 with sip:alice@isc.local error",
            Duration::from_secs(3)
        )
        .await,
        "{}",
        lin.output()
    );
    lin.write_line("quit").await;
    let code = lin.finish(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "linphonec exit\n{}", lin_tail(&dir));
    alice.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}

fn lin_tail(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("linphonec.log")).unwrap_or_default()
}

/// No peer program needed: a raw SIP peer offers video only, then a body
/// that is no SDP at all. Both get the same polite 488 + Warning 304 (no
/// panic, no dialog), and the user is told which media were offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_call_offers_are_declined_too() {
    let server = md5_server().await;
    let addr = server.local_addr();
    let alice = registered_alice(addr).await;
    let mut bob = common::Peer::new(addr, "bob", "bob").await;
    let offers = [
        (
            "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 40000 RTP/AVP 26\r\n",
            vec!["video".to_owned()],
        ),
        ("\u{1}not SDP\r\nm=\r\n=\r\n", vec![]),
    ];
    for (n, (body, media)) in offers.into_iter().enumerate() {
        let contact = format!("Contact: <sip:bob@{}>", bob.addr());
        let invite = bob.request(
            "INVITE",
            "sip:alice@isc.local",
            "sip:alice@isc.local",
            &[contact, "Content-Type: application/sdp".into()],
            body,
        );
        let resp = bob.send_authenticated(invite).await;
        assert_eq!(resp.status_code.code(), 488, "offer {n}: {resp}");
        let warning = common::header(&resp.clone().into(), "Warning").unwrap_or_default();
        assert!(
            warning.starts_with("304 isc.local \""),
            "offer {n}: {warning}"
        );
        let declined = alice
            .wait_for(Duration::from_secs(3), |e| {
                matches!(e, ClientEvent::CallDeclined { from, media: m }
                    if from == "sip:bob@isc.local" && *m == media)
            })
            .await;
        assert!(declined.is_some(), "offer {n}: {:?}", alice.events());
    }
    alice.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}
