//! An audio call from baresip 1.0.0 (PCMU offer) to an isc device: isc
//! takes MSRP chats and content viewing, not calls, so the device declines
//! it politely — 488 Not Acceptable Here with a Warning 304 saying why
//! (RFC 3261 §21.4.26, §20.43) — and tells its user; baresip ACKs and
//! reports the reason. Skipped, with the reason printed, only when baresip
//! is absent (`.ci/run` installs it).

mod peers_support;

use std::time::Duration;

use isc::client::ClientEvent;
use isc::demo::Device;
use isc::server::runner::Direction;
use peers_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_audio_call_is_declined_with_488_and_a_warning() {
    if !have("baresip", "-h", "baresip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server().await;
    let wire = Wire::tap(&server);
    let addr = server.local_addr();
    let alice = Device::start("alice/tv", DOMAIN, "alice", addr)
        .await
        .unwrap();
    assert!(
        alice
            .wait_for(Duration::from_secs(5), |e| matches!(
                e,
                ClientEvent::Registered { .. }
            ))
            .await
            .is_some()
    );
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

    // what alice's user sees: a declined audio call from carol
    let declined = alice
        .wait_for(Duration::from_secs(10), |e| {
            matches!(e, ClientEvent::CallDeclined { .. })
        })
        .await;
    assert_eq!(
        declined,
        Some(ClientEvent::CallDeclined {
            from: "sip:carol@isc.local".into(),
            media: vec!["audio".into()],
        }),
        "{}\n{}",
        bare.output(),
        wire.dump()
    );
    // on the wire: baresip's PCMU offer, relayed to alice's device; her 488
    // with the Warning relayed back to baresip, which ACKs it
    let invite = wire
        .find(|s| {
            s.direction == Direction::Out
                && s.peer == alice.local_addr()
                && s.first_line().starts_with("INVITE ")
        })
        .pop()
        .unwrap_or_else(|| panic!("INVITE not relayed\n{}", wire.dump()));
    assert!(invite.body().contains("m=audio "), "{}", invite.text);
    assert!(invite.body().contains("PCMU/8000"), "{}", invite.text);
    let bare_addr = wire.find(request_in("INVITE sip:alice@isc.local"))[0].peer;
    let to_bare = wire
        .wait(Duration::from_secs(3), |s| {
            s.direction == Direction::Out
                && s.peer == bare_addr
                && s.first_line().starts_with("SIP/2.0 488")
        })
        .await
        .unwrap_or_else(|| panic!("no 488 to baresip\n{}", wire.dump()));
    let warning = to_bare.header("Warning").unwrap_or_default();
    assert!(warning.starts_with("304 isc.local \""), "{warning}");
    assert!(warning.contains("no calls"), "{warning}");
    let ack = wire
        .wait(Duration::from_secs(3), |s| {
            s.direction == Direction::In
                && s.peer == bare_addr
                && s.first_line().starts_with("ACK ")
        })
        .await;
    assert!(ack.is_some(), "{}", wire.dump());
    // the device is not left with a dialog: it reported nothing else
    assert!(
        !alice
            .events()
            .iter()
            .any(|e| matches!(e, ClientEvent::Chat(_) | ClientEvent::Viewing(_))),
        "{:?}",
        alice.events()
    );
    assert!(
        bare.wait_output("488", Duration::from_secs(3)).await,
        "{}",
        bare.output()
    );
    let _ = bare.finish(Duration::from_secs(15)).await;
    alice.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}
