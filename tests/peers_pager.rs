//! Pager interop (RFC 3428 MESSAGE, text/plain) between isc devices and two
//! SIP clients nobody here wrote, baresip 1.0.0 and linphonec 5.1, both
//! registered at the isc server's registrar (Digest MD5) and reached through
//! its proxy. The assertions are on the server's wire and on what the isc
//! user sees (the device's events, which the TUI and headless mode show).
//! A test is skipped, with the reason printed, only when its peer binary is
//! absent; `.ci/run` installs both.

mod peers_support;

use std::time::Duration;

use isc::client::ClientEvent;
use isc::demo::Device;
use isc::server::runner::Direction;
use peers_support::*;

async fn isc_device(server: std::net::SocketAddr, name: &str) -> Device {
    let user = name.split('/').next().unwrap();
    let dev = Device::start(name, DOMAIN, user, server).await.unwrap();
    let ok = dev
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, ClientEvent::Registered { .. })
        })
        .await;
    assert!(ok.is_some(), "{name} registers: {:?}", dev.events());
    dev
}

/// What the isc user sees of a received pager message: (from, text).
fn received(dev: &Device, text: &str) -> Option<(String, Option<String>, String)> {
    dev.events().into_iter().find_map(|e| match e {
        ClientEvent::MessageReceived {
            from,
            content_type,
            body,
            ..
        } if String::from_utf8_lossy(&body).contains(text) => Some((
            from,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        )),
        _ => None,
    })
}

async fn wait_received(dev: &Device, text: &str) -> (String, Option<String>, String) {
    let t = text.to_owned();
    dev.wait_for(Duration::from_secs(10), move |e| {
        matches!(e, ClientEvent::MessageReceived { body, .. }
            if String::from_utf8_lossy(body).contains(&t))
    })
    .await;
    received(dev, text).unwrap_or_else(|| panic!("no message {text:?}: {:?}", dev.events()))
}

/// The 200 (or other final) the device got for its MESSAGE to `to`.
async fn delivery(dev: &Device) -> ClientEvent {
    dev.wait_for(Duration::from_secs(10), |e| {
        matches!(
            e,
            ClientEvent::MessageDelivered { .. } | ClientEvent::MessageFailed { .. }
        )
    })
    .await
    .unwrap_or_else(|| panic!("no delivery report: {:?}", dev.events()))
}

/// baresip → isc: `/message` from carol's baresip reaches alice's isc
/// device as text/plain from carol, authenticated by the server (407 +
/// MD5), and baresip gets the device's 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_pages_an_isc_device() {
    if !have("baresip", "-h", "baresip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server().await;
    let wire = Wire::tap(&server);
    let addr = server.local_addr();
    let alice = isc_device(addr, "alice/tv").await;

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
            "6",
            "-e",
            "/message hello from baresip",
        ],
        false,
    );
    peer_registered(&wire, "carol", &bare).await;
    let (from, ct, text) = wait_received(&alice, "hello from baresip").await;
    assert_eq!(from, "sip:carol@isc.local");
    assert_eq!(ct.as_deref(), Some("text/plain"));
    assert_eq!(text.trim_end(), "hello from baresip");

    // on the wire: baresip's MESSAGE answered the proxy's challenge, the
    // server relayed it to alice's device with the asserted identity, and
    // the device's 200 went back to baresip
    let sent = wire
        .matching(request_in("MESSAGE sip:alice@isc.local"))
        .await;
    assert!(
        wire.matching(|s| s.first_line().starts_with("SIP/2.0 407") && s.cseq_method() == "MESSAGE")
            .await
            .iter()
            .any(|s| s
                .header("Proxy-Authenticate")
                .is_some_and(|a| a.contains("algorithm=MD5"))),
        "{}",
        wire.dump()
    );
    assert!(
        sent.iter().any(|s| s
            .header("Proxy-Authorization")
            .is_some_and(|a| a.contains("username=\"carol\""))),
        "{}",
        wire.dump()
    );
    let relayed = wire
        .last(|s| {
            s.direction == Direction::Out
                && s.peer == alice.local_addr()
                && s.first_line().starts_with("MESSAGE ")
        })
        .await
        .unwrap_or_else(|| panic!("not relayed\n{}", wire.dump()));
    assert_eq!(
        relayed.header("Content-Type").as_deref(),
        Some("text/plain")
    );
    assert!(
        relayed
            .header("P-Asserted-Identity")
            .is_some_and(|p| p.contains("sip:carol@isc.local")),
        "{}",
        relayed.text
    );
    // The peer preloads `Route: <sip:server;lr>`; the server removes its own
    // entry (RFC 3261 §16.4) instead of forwarding it to the device.
    assert!(relayed.header("Route").is_none(), "{}", relayed.text);
    let bare_addr = sent[0].peer;
    let ok = wire
        .wait(Duration::from_secs(3), |s| {
            s.direction == Direction::Out
                && s.peer == bare_addr
                && s.first_line().starts_with("SIP/2.0 200")
                && s.cseq_method() == "MESSAGE"
        })
        .await;
    assert!(ok.is_some(), "{}", wire.dump());
    let rc = bare.finish(Duration::from_secs(15)).await;
    assert_eq!(rc, Some(0), "baresip exit");
    alice.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}

/// isc → baresip, with the 415 case: baresip 1.0.0 answers isComposing
/// with 415 Unsupported Media Type. The isc device then sends no more
/// isComposing to carol (RFC 3994 §3 / RFC 3261 §21.4.13), reports no
/// failure to the user, and the text message itself goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_device_pages_baresip_and_stops_is_composing_after_415() {
    if !have("baresip", "-h", "baresip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server().await;
    let wire = Wire::tap(&server);
    let addr = server.local_addr();
    let conf = baresip_dir(
        dir.path(),
        "carol",
        addr,
        free_port(),
        "sip:alice@isc.local",
        "",
    );
    // -s: SIP trace, so the received body shows in its output
    let bare = PeerProcess::spawn(
        dir.path(),
        "baresip",
        25,
        "baresip",
        &["-f", conf.to_str().unwrap(), "-s", "-t", "8"],
        false,
    );
    peer_registered(&wire, "carol", &bare).await;
    let alice = isc_device(addr, "alice/tv").await;
    let carol = "sip:carol@isc.local";

    alice.typing(carol).unwrap();
    let refused = alice
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, ClientEvent::ComposingUnsupported { .. })
        })
        .await;
    assert_eq!(
        refused,
        Some(ClientEvent::ComposingUnsupported { to: carol.into() }),
        "{}\n{}",
        bare.output(),
        wire.dump()
    );
    let r415 = wire
        .last(|s| {
            s.direction == Direction::Out
                && s.peer == alice.local_addr()
                && s.first_line().starts_with("SIP/2.0 415")
        })
        .await
        .unwrap_or_else(|| panic!("415 not relayed to alice\n{}", wire.dump()));
    assert_eq!(r415.cseq_method(), "MESSAGE");

    // the user types on: nothing more is offered to carol as isComposing
    alice.typing(carol).unwrap();
    alice.stop_typing(carol).unwrap();
    alice.typing(carol).unwrap();
    alice.message(carol, "hello baresip from isc").unwrap();
    let report = delivery(&alice).await;
    assert!(
        matches!(report, ClientEvent::MessageDelivered { status: 200, ref to, .. } if to == carol),
        "{report:?}\n{}",
        wire.dump()
    );
    // the user saw no failure
    assert!(
        !alice
            .events()
            .iter()
            .any(|e| matches!(e, ClientEvent::MessageFailed { .. })),
        "{:?}",
        alice.events()
    );
    // baresip got the text (its SIP trace prints the body)
    assert!(
        bare.wait_output("hello baresip from isc", Duration::from_secs(3))
            .await,
        "{}",
        bare.output()
    );
    let to_bare = wire
        .last(|s| {
            s.direction == Direction::Out
                && s.first_line().starts_with("MESSAGE ")
                && s.body().contains("hello baresip from isc")
        })
        .await
        .unwrap_or_else(|| panic!("not relayed\n{}", wire.dump()));
    assert!(
        to_bare
            .header("Content-Type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{}",
        to_bare.text
    );
    let composing_sent = wire
        .matching(|s| {
            s.direction == Direction::In
                && s.peer == alice.local_addr()
                && s.first_line().starts_with("MESSAGE ")
                && s.header("Content-Type")
                    .is_some_and(|c| c.contains("im-iscomposing+xml"))
        })
        .await;
    // alice sent isComposing once (counted now that the later text is on
    // the wire): one Call-ID, its digest retry after the 407 included

    let attempts: std::collections::HashSet<_> = composing_sent
        .iter()
        .filter_map(|s| s.header("Call-ID"))
        .collect();
    assert_eq!(attempts.len(), 1, "{}", wire.dump());
    let _ = bare.finish(Duration::from_secs(20)).await;
    alice.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}

/// linphonec → isc: its `chat` command (a basic chat room: one SIP MESSAGE,
/// text/plain) from ted reaches bob's isc device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphonec_pages_an_isc_device() {
    if !have("linphonec", "-v", "linphone-cli") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server().await;
    let wire = Wire::tap(&server);
    let addr = server.local_addr();
    let bob = isc_device(addr, "bob/phone").await;
    let rc = linphonerc(dir.path(), "ted", addr, free_port());
    let mut lin = linphonec(dir.path(), &rc, 30);
    peer_registered(&wire, "ted", &lin).await;
    lin.write_line("chat sip:bob@isc.local hello from linphonec")
        .await;
    let (from, ct, text) = wait_received(&bob, "hello from linphonec").await;
    assert_eq!(from, "sip:ted@isc.local");
    assert!(
        ct.as_deref().is_some_and(|c| c.starts_with("text/plain")),
        "{ct:?}"
    );
    assert_eq!(text.trim_end(), "hello from linphonec");
    let relayed = wire
        .last(|s| {
            s.direction == Direction::Out
                && s.peer == bob.local_addr()
                && s.first_line().starts_with("MESSAGE ")
        })
        .await
        .unwrap_or_else(|| panic!("not relayed\n{}", wire.dump()));
    assert!(
        relayed
            .header("User-Agent")
            .is_some_and(|u| u.contains("Linphone")),
        "{}",
        relayed.text
    );
    assert!(
        relayed
            .header("P-Asserted-Identity")
            .is_some_and(|p| p.contains("sip:ted@isc.local")),
        "{}",
        relayed.text
    );
    // The peer preloads `Route: <sip:server;lr>`; the server removes its own
    // entry (RFC 3261 §16.4) instead of forwarding it to the device.
    assert!(relayed.header("Route").is_none(), "{}", relayed.text);
    let lin_addr = wire.matching(request_in("MESSAGE sip:bob@isc.local")).await[0].peer;
    let ok = wire
        .wait(Duration::from_secs(3), |s| {
            s.direction == Direction::Out
                && s.peer == lin_addr
                && s.first_line().starts_with("SIP/2.0 200")
                && s.cseq_method() == "MESSAGE"
        })
        .await;
    assert!(ok.is_some(), "{}", wire.dump());
    lin.write_line("quit").await;
    let rc = lin.finish(Duration::from_secs(10)).await;
    assert_eq!(
        rc,
        Some(0),
        "linphonec exit\n{}",
        std::fs::read_to_string(dir.path().join("linphonec.log")).unwrap_or_default()
    );
    bob.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}

/// isc → linphonec: alice's device pages ted, registered with linphonec;
/// linphonec answers 200 and shows the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_device_pages_linphonec() {
    if !have("linphonec", "-v", "linphone-cli") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server().await;
    let wire = Wire::tap(&server);
    let addr = server.local_addr();
    let rc = linphonerc(dir.path(), "ted", addr, free_port());
    let mut lin = linphonec(dir.path(), &rc, 30);
    peer_registered(&wire, "ted", &lin).await;
    let alice = isc_device(addr, "alice/tv").await;
    let ted = "sip:ted@isc.local";
    alice.message(ted, "hello linphonec from isc").unwrap();
    let report = delivery(&alice).await;
    assert!(
        matches!(report, ClientEvent::MessageDelivered { status: 200, ref to, .. } if to == ted),
        "{report:?}\n{}\n{}",
        lin.output(),
        wire.dump()
    );
    let to_lin = wire
        .last(|s| {
            s.direction == Direction::Out
                && s.first_line().starts_with("MESSAGE ")
                && s.body().contains("hello linphonec from isc")
        })
        .await
        .unwrap();
    assert!(
        to_lin
            .header("Content-Type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{}",
        to_lin.text
    );
    let answer = wire
        .wait(Duration::from_secs(3), |s| {
            s.direction == Direction::In
                && s.peer == to_lin.peer
                && s.cseq_method() == "MESSAGE"
                && s.first_line().starts_with("SIP/2.0 200")
        })
        .await;
    assert!(answer.is_some(), "{}", wire.dump());
    assert!(
        lin.wait_output(
            "Message received from sip:alice@isc.local: hello linphonec from isc",
            Duration::from_secs(3)
        )
        .await,
        "linphonec did not show it:\n{}",
        lin.output()
    );
    lin.write_line("quit").await;
    let _ = lin.finish(Duration::from_secs(10)).await;
    alice.stop(Duration::from_secs(2)).await;
    server.shutdown().await;
}

/// The same, as the user of `isc client --headless` sees it: baresip's
/// text arrives as a `message` event; isComposing towards baresip ends in
/// one `composing_unsupported` note, and no `failed` or `error` event ever
/// shows; the reply is `delivered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_user_chats_with_baresip_without_seeing_the_415() {
    if !have("baresip", "-h", "baresip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = md5_server().await;
    let wire = Wire::tap(&server);
    let addr = server.local_addr();
    let state = dir.path().join("isc");
    std::fs::create_dir_all(&state).unwrap();
    let mut alice = HeadlessClient::start(addr, "alice", "tv", &state);
    alice.event("registered", Duration::from_secs(5)).await;
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
        25,
        "baresip",
        &[
            "-f",
            conf.to_str().unwrap(),
            "-s",
            "-t",
            "8",
            "-e",
            "/message are you there?",
        ],
        false,
    );
    let msg = alice.event("message", Duration::from_secs(10)).await;
    assert_eq!(msg["from"], "sip:carol@isc.local", "{msg}");
    assert_eq!(msg["text"], "are you there?", "{msg}");
    assert_eq!(msg["content_type"], "text/plain", "{msg}");

    alice.command("typing carol@isc.local").await;
    let note = alice
        .event("composing_unsupported", Duration::from_secs(5))
        .await;
    assert_eq!(note["to"], "sip:carol@isc.local", "{note}");
    alice.command("typing carol@isc.local").await;
    alice
        .command(r#"{"cmd":"send","to":"carol@isc.local","text":"yes, here","id":"m1"}"#)
        .await;
    let done = alice.event("delivered", Duration::from_secs(5)).await;
    assert_eq!(
        (done["id"].as_str(), done["status"].as_u64()),
        (Some("m1"), Some(200))
    );
    assert!(
        bare.wait_output("yes, here", Duration::from_secs(3)).await,
        "{}",
        bare.output()
    );
    let seen = alice.quit().await;
    for e in &seen {
        assert!(
            e["event"] != "failed" && e["event"] != "error",
            "the user was shown {e}"
        );
    }
    let notes = seen
        .iter()
        .filter(|e| e["event"] == "composing_unsupported")
        .count();
    assert_eq!(notes, 1, "{seen:#?}");
    // one isComposing MESSAGE (one Call-ID, however often a UDP
    // retransmission repeats it) reached baresip: the 415 one (counted
    // once the text that followed it is on the wire)
    wire.last(|s| s.direction == Direction::Out && s.body().contains("yes, here"))
        .await
        .unwrap_or_else(|| panic!("text not relayed\n{}", wire.dump()));
    let composing_to_bare: std::collections::HashSet<_> = wire
        .matching(|s| {
            s.direction == Direction::Out
                && s.first_line().starts_with("MESSAGE ")
                && s.header("Content-Type")
                    .is_some_and(|c| c.contains("im-iscomposing+xml"))
        })
        .await
        .iter()
        .filter_map(|s| s.header("Call-ID"))
        .collect();
    assert_eq!(composing_to_bare.len(), 1, "{}", wire.dump());
    let _ = bare.finish(Duration::from_secs(20)).await;
    server.shutdown().await;
}
