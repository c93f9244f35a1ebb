//! The isc client itself behind Kamailio (issue 10): devices register at
//! Kamailio, watch their registrations through the AS (Kamailio routes
//! `Event: reg` SUBSCRIBEs there; the AS knows the devices from Kamailio's
//! third-party REGISTERs), and page each other through Kamailio's forking
//! proxy. Seen through the client's events only. Skipped (with a message)
//! when kamailio is absent.

mod kamailio_support;

use std::time::Duration;

use isc::client::ClientEvent;
use isc::demo::{Device, got_message, misses, sees};
use isc::server::runner::{Direction, ServerOptions};

use kamailio_support::{Site, header_of};

const DOMAIN: &str = "isc.local";
const WAIT: Duration = Duration::from_secs(5);
const ALICE: &str = "sip:alice@isc.local";
const BOB: &str = "sip:bob@isc.local";

/// A device of the demo cast registered at the core, watching its
/// registrations; returns once it sees itself in its device list.
async fn joined(site: &Site, name: &str) -> Device {
    let user = name.split('/').next().unwrap_or(name).to_owned();
    let dev = Device::start(name, DOMAIN, &user, site.core).await.unwrap();
    let ok = dev
        .wait_for(WAIT, |e| matches!(e, ClientEvent::DevicesChanged { devices } if devices.iter().any(|d| d.is_self)))
        .await;
    assert!(ok.is_some(), "{name} did not join: {:?}", dev.events());
    dev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_register_at_kamailio_see_their_devices_and_page() {
    let Some(site) = Site::start(ServerOptions::loopback_demo()).await else {
        return;
    };
    let tv = joined(&site, "alice/tv").await;
    let registered = tv.events().into_iter().find_map(|e| match e {
        ClientEvent::Registered { gruu, .. } => gruu,
        _ => None,
    });
    assert!(
        registered.is_some_and(|g| g.starts_with("sip:alice@isc.local;gr=urn:uuid:")),
        "Kamailio's GRUU: {:?}",
        tv.events()
    );
    let phone = joined(&site, "alice/phone").await;
    // The reg-event NOTIFYs come from the AS, through Kamailio.
    assert!(tv.wait_for(WAIT, sees(&phone)).await.is_some());
    assert!(phone.wait_for(WAIT, sees(&tv)).await.is_some());
    let subs = site.wire.wait_for(Direction::In, "SUBSCRIBE ", 2).await;
    assert!(subs.len() >= 2, "both reg SUBSCRIBEs reached the AS");
    assert!(
        subs.iter()
            .all(|(from, t)| *from == site.core && header_of(t, "Event").as_deref() == Some("reg"))
    );

    // Bob pages alice's AOR: Kamailio forks to both devices, with its
    // P-Asserted-Identity.
    let bob = joined(&site, "bob/phone").await;
    bob.message(ALICE, "to both").unwrap();
    for dev in [&tv, &phone] {
        match dev.wait_for(WAIT, got_message(BOB, "to both")).await {
            Some(ClientEvent::MessageReceived {
                asserted_identity, ..
            }) => assert!(asserted_identity.is_some_and(|a| a.contains(BOB))),
            other => panic!("{}: {other:?}", dev.name()),
        }
    }
    // A GRUU reaches the one device.
    let gruu = tv.gruu().expect("tv has a GRUU");
    bob.message(&gruu, "only the tv").unwrap();
    assert!(
        tv.wait_for(WAIT, got_message(BOB, "only the tv"))
            .await
            .is_some()
    );

    // The phone un-registers at Kamailio; the AS learns it and tells the tv.
    assert!(phone.stop(WAIT).await, "the phone's un-REGISTER completed");
    assert!(
        tv.wait_for(WAIT, misses(&phone)).await.is_some(),
        "{:?}",
        tv.events()
    );
    assert!(
        !phone
            .events()
            .iter()
            .any(|e| got_message(BOB, "only the tv")(e)),
        "the GRUU message reached the tv only"
    );
    tv.stop(WAIT).await;
    bob.stop(WAIT).await;
    site.shutdown().await;
}
