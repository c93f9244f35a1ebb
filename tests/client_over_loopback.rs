//! The client core (UserAgent on a real socket, driven by the demo's device
//! driver) against the real server over loopback: seen through the client's
//! commands and events only.

use std::net::SocketAddr;
use std::time::Duration;

use isc::client::{ClientEvent, ComposingConfig};
use isc::demo::{Device, composing, got_message, misses, sees};
use isc::server::runner::{Server, ServerHandle, ServerOptions};

const DOMAIN: &str = "isc.local";
const WAIT: Duration = Duration::from_secs(5);
const ALICE: &str = "sip:alice@isc.local";
const BOB: &str = "sip:bob@isc.local";

async fn server() -> ServerHandle {
    Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts")
}

/// A device of the demo cast (password = user name), registered and
/// watching its registrations.
async fn joined(server: SocketAddr, name: &str) -> Device {
    let user = name.split('/').next().unwrap_or(name).to_owned();
    let dev = Device::start(name, DOMAIN, &user, server).await.unwrap();
    let ok = dev
        .wait_for(WAIT, |e| matches!(e, ClientEvent::DevicesChanged { devices } if devices.iter().any(|d| d.is_self)))
        .await;
    assert!(ok.is_some(), "{name} did not join: {:?}", dev.events());
    dev
}

fn received_text(dev: &Device, text: &str) -> bool {
    dev.events().iter().any(|e| got_message("", text)(e))
}

#[tokio::test]
async fn register_with_digest_right_and_wrong_password() {
    let s = server().await;
    let good = Device::start("alice/tv", DOMAIN, "alice", s.local_addr())
        .await
        .unwrap();
    let reg = good
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await;
    match reg {
        Some(ClientEvent::Registered { aor, gruu, expires }) => {
            assert_eq!(aor, ALICE);
            assert!(gruu.is_some_and(|g| g.starts_with("sip:alice@isc.local;gr=urn:uuid:")));
            assert!(expires > 0);
        }
        other => panic!("{other:?}"),
    }

    let bad = Device::start("bob/phone", DOMAIN, "not-bobs-password", s.local_addr())
        .await
        .unwrap();
    let failed = bad
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::RegistrationFailed { .. })
        })
        .await;
    match failed {
        Some(ClientEvent::RegistrationFailed { status, .. }) => {
            assert!(matches!(status, Some(401 | 403)), "{status:?}");
        }
        other => panic!("{other:?}; events {:?}", bad.events()),
    }
    assert!(
        !bad.events()
            .iter()
            .any(|e| matches!(e, ClientEvent::Registered { .. }))
    );
    good.stop(WAIT).await;
    bad.abort();
    s.shutdown().await;
}

#[tokio::test]
async fn message_to_the_aor_reaches_both_devices_and_a_gruu_only_one() {
    let s = server().await;
    let tv = joined(s.local_addr(), "alice/tv").await;
    let phone = joined(s.local_addr(), "alice/phone").await;
    let bob = joined(s.local_addr(), "bob/phone").await;

    bob.message(ALICE, "to both").unwrap();
    for dev in [&tv, &phone] {
        let got = dev.wait_for(WAIT, got_message(BOB, "to both")).await;
        match got {
            Some(ClientEvent::MessageReceived {
                content_type,
                asserted_identity,
                ..
            }) => {
                assert!(content_type.is_some_and(|c| c.starts_with("text/plain")));
                assert!(asserted_identity.is_some_and(|a| a.contains(BOB)));
            }
            other => panic!("{}: {other:?}", dev.name()),
        }
    }
    assert!(
        bob.wait_for(WAIT, |e| matches!(
            e,
            ClientEvent::MessageDelivered { status: 200, .. }
        ))
        .await
        .is_some()
    );

    let gruu = tv.gruu().expect("tv has a GRUU");
    bob.message(&gruu, "only the tv").unwrap();
    assert!(
        tv.wait_for(WAIT, got_message(BOB, "only the tv"))
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !received_text(&phone, "only the tv"),
        "{:?}",
        phone.events()
    );

    for d in [&tv, &phone, &bob] {
        d.stop(WAIT).await;
    }
    s.shutdown().await;
}

#[tokio::test]
async fn is_composing_goes_active_then_idle_and_expires() {
    let s = server().await;
    let alice = joined(s.local_addr(), "alice/tv").await;
    // Bob's idle timeout is short: `idle` follows one second after typing.
    let bob = Device::start_with("bob/phone", DOMAIN, "bob", s.local_addr(), |c| {
        c.composing = ComposingConfig {
            idle_timeout: Duration::from_secs(1),
            refresh: Duration::from_secs(60),
        };
    })
    .await
    .unwrap();
    bob.wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
        .unwrap();

    bob.typing(ALICE).unwrap();
    assert!(alice.wait_for(WAIT, composing(BOB, true)).await.is_some());
    assert!(alice.wait_for(WAIT, composing(BOB, false)).await.is_some());

    // Carol announces a 1 s refresh, then vanishes: her `active` runs out
    // at Alice's side (RFC 3994 §4) without any `idle` on the wire.
    let carol = Device::start_with("carol/laptop", DOMAIN, "carol", s.local_addr(), |c| {
        c.composing = ComposingConfig {
            idle_timeout: Duration::from_secs(60),
            refresh: Duration::from_secs(1),
        };
    })
    .await
    .unwrap();
    carol
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
        .unwrap();
    carol.typing(ALICE).unwrap();
    let carol_aor = "sip:carol@isc.local";
    assert!(
        alice
            .wait_for(WAIT, composing(carol_aor, true))
            .await
            .is_some()
    );
    // Carol vanishes without an `idle`: only the receiver-side expiry of
    // her 1 s refresh (RFC 3994 §4) can turn the indicator off.
    carol.abort();
    assert!(
        alice
            .wait_for(WAIT, composing(carol_aor, false))
            .await
            .is_some()
    );

    alice.stop(WAIT).await;
    bob.stop(WAIT).await;
    s.shutdown().await;
}

#[tokio::test]
async fn reg_event_sees_a_sibling_arrive_and_an_unregister_remove_it() {
    let s = server().await;
    let tv = joined(s.local_addr(), "alice/tv").await;
    let phone = joined(s.local_addr(), "alice/phone").await;
    assert!(tv.wait_for(WAIT, sees(&phone)).await.is_some());
    assert!(phone.wait_for(WAIT, sees(&tv)).await.is_some());

    assert!(phone.stop(WAIT).await, "the phone's un-REGISTER completed");
    assert!(phone.events().contains(&ClientEvent::Unregistered));
    assert!(
        tv.wait_for(WAIT, misses(&phone)).await.is_some(),
        "{:?}",
        tv.events()
    );

    // A MESSAGE to the AOR now reaches the tv alone.
    let bob = joined(s.local_addr(), "bob/phone").await;
    bob.message(ALICE, "after the phone left").unwrap();
    assert!(
        tv.wait_for(WAIT, got_message(BOB, "after the phone left"))
            .await
            .is_some()
    );
    assert!(!received_text(&phone, "after the phone left"));
    tv.stop(WAIT).await;
    bob.stop(WAIT).await;
    s.shutdown().await;
}

#[tokio::test]
async fn offline_user_gets_480_and_a_spoofed_from_403() {
    // With deferred delivery off, a user with no device is 480 (issue 3);
    // tests/deferred_*.rs cover the 202-and-store path.
    let mut opts = ServerOptions::loopback_demo();
    opts.deferred_messages = false;
    let s = Server::start(opts).await.expect("server starts");
    let bob = joined(s.local_addr(), "bob/phone").await;
    bob.message("sip:carol@isc.local", "anyone there?").unwrap();
    let failed = bob
        .wait_for(WAIT, |e| matches!(e, ClientEvent::MessageFailed { .. }))
        .await;
    assert!(
        matches!(
            failed,
            Some(ClientEvent::MessageFailed {
                status: Some(480),
                ..
            })
        ),
        "{failed:?}"
    );

    // Bob's credentials, but a From in another domain: the server refuses
    // to let a device choose its identity (RFC 3325 §9.1).
    let spoof = Device::start_with("bob/spoof", DOMAIN, "bob", s.local_addr(), |c| {
        c.domain = "elsewhere.example".to_owned();
        c.watch_registrations = false;
    })
    .await
    .unwrap();
    spoof.message(BOB, "I am not bob").unwrap();
    let failed = spoof
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ClientEvent::MessageFailed { .. } | ClientEvent::MessageDelivered { .. }
            )
        })
        .await;
    match failed {
        Some(ClientEvent::MessageFailed {
            status, warning, ..
        }) => {
            assert_eq!(status, Some(403), "{warning:?}");
            assert!(warning.is_some_and(|w| w.contains("authenticated identity")));
        }
        other => panic!("{other:?}; events {:?}", spoof.events()),
    }
    assert!(!received_text(&bob, "I am not bob"));
    spoof.abort();
    bob.stop(WAIT).await;
    s.shutdown().await;
}
