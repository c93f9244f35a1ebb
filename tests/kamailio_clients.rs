//! The isc client itself behind Kamailio (issue 10): devices register at
//! Kamailio, watch their registrations through the AS (Kamailio routes
//! `Event: reg` SUBSCRIBEs there; the AS knows the devices from Kamailio's
//! third-party REGISTERs), and page each other through Kamailio's forking
//! proxy. Seen through the client's events only. Skipped (with a message)
//! when kamailio is absent.

mod kamailio_support;

use std::time::Duration;

use isc::client::chat::{ChatEvent, EndReason};
use isc::client::chats::ChatCommand;
use isc::client::content_viewing::{ViewingCommand, ViewingEvent};
use isc::client::{ClientEvent, Command};
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

/// A device on TCP: Kamailio reaches it over the connection it registered
/// on, for the AS's reg-event NOTIFYs and for a pager from a UDP device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_device_behind_kamailio() {
    let Some(site) = Site::start(ServerOptions::loopback_demo()).await else {
        return;
    };
    let tv = Device::start_with("alice/tv", DOMAIN, "alice", site.core, |c| {
        c.transport = isc::proto::sip::transaction::Transport::Tcp;
    })
    .await
    .unwrap();
    let me = tv
        .wait_for(WAIT, |e| matches!(e, ClientEvent::DevicesChanged { devices } if devices.iter().any(|d| d.is_self)))
        .await;
    assert!(me.is_some(), "{:?}", tv.events());
    let bob = joined(&site, "bob/phone").await;
    bob.message(ALICE, "over tcp").unwrap();
    assert!(
        tv.wait_for(WAIT, got_message(BOB, "over tcp"))
            .await
            .is_some(),
        "{:?}",
        tv.events()
    );
    tv.stop(WAIT).await;
    bob.stop(WAIT).await;
    site.shutdown().await;
}

/// The next event of `dev` matching `pred`, or a panic listing its events.
async fn expect(dev: &Device, what: &str, pred: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
    match dev.wait_for(WAIT, pred).await {
        Some(e) => e,
        None => panic!("{} did not see {what}: {:?}", dev.name(), dev.events()),
    }
}

fn viewing(pred: impl Fn(&ViewingEvent) -> bool) -> impl Fn(&ClientEvent) -> bool {
    move |e| matches!(e, ClientEvent::Viewing(v) if pred(v))
}

fn chat(pred: impl Fn(&ChatEvent) -> bool) -> impl Fn(&ClientEvent) -> bool {
    move |e| matches!(e, ClientEvent::Chat(c) if pred(c))
}

/// Seed 000 C.15.2 with the isc client on every device, all registered at
/// Kamailio (the `c15-2` demo's script): bob watches on his tv and chats on
/// his phone. What each user sees: the phone says the viewing was taken on
/// the other device (from the Reason Kamailio carries on its CANCEL), the
/// tv that the chat continued elsewhere; the tv plays, the phone never
/// does; alice and bob chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c15_2_with_isc_clients_behind_kamailio() {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.content_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/content").into();
    opts.config.users = opts.config.effective_users();
    for u in &mut opts.config.users {
        if u.name == "bob" {
            u.cv_single_device = true;
            u.cm_single_device = true;
        }
    }
    let Some(site) = Site::start(opts).await else {
        return;
    };
    let alice = joined(&site, "alice/laptop").await;
    let tv = joined(&site, "bob/tv").await;
    let phone = joined(&site, "bob/phone").await;

    // 1. the content list (OPTIONS sip:content@, a service URI)
    alice
        .command(Command::Viewing(ViewingCommand::FetchContentList))
        .unwrap();
    let content = match expect(
        &alice,
        "the content list",
        viewing(|v| matches!(v, ViewingEvent::ContentList { entries } if !entries.is_empty())),
    )
    .await
    {
        ClientEvent::Viewing(ViewingEvent::ContentList { entries }) => {
            entries[0].content_ref.clone()
        }
        other => panic!("{other:?}"),
    };
    // 2-4. watch with bob: both of bob's devices are invited
    alice
        .command(Command::Viewing(ViewingCommand::Watch {
            content: content.clone(),
            with: BOB.into(),
            chat_on: None,
        }))
        .unwrap();
    let conv = match expect(
        &alice,
        "calling",
        viewing(|v| matches!(v, ViewingEvent::Calling { .. })),
    )
    .await
    {
        ClientEvent::Viewing(ViewingEvent::Calling { convergence_id, .. }) => convergence_id,
        other => panic!("{other:?}"),
    };
    let c = content.clone();
    let v_tv = match expect(&tv, "the invitation", viewing(move |v| {
        matches!(v, ViewingEvent::Invited { content: Some(x), from, .. } if *x == c && from.contains(ALICE))
    }))
    .await
    {
        ClientEvent::Viewing(ViewingEvent::Invited { viewing, .. }) => viewing,
        other => panic!("{other:?}"),
    };
    expect(
        &phone,
        "the invitation",
        viewing(|v| matches!(v, ViewingEvent::Invited { .. })),
    )
    .await;
    // 5-6. the chat, tied by the convergence id, reaches both devices
    alice
        .command(Command::Chat(ChatCommand::Start {
            to: BOB.into(),
            convergence_id: Some(conv.clone()),
        }))
        .unwrap();
    let invited = |c: &ChatEvent| matches!(c, ChatEvent::Invited { .. });
    expect(&tv, "the chat invitation", chat(invited)).await;
    let phone_chat = match expect(&phone, "the chat invitation", chat(invited)).await {
        ClientEvent::Chat(ChatEvent::Invited {
            chat,
            convergence_id,
            ..
        }) => {
            assert_eq!(convergence_id.as_deref(), Some(conv.as_str()));
            chat
        }
        other => panic!("{other:?}"),
    };
    // 7-10. the tv takes the viewing; the phone hears it was taken there
    tv.command(Command::Viewing(ViewingCommand::Accept { viewing: v_tv }))
        .unwrap();
    expect(
        &alice,
        "the viewing start",
        viewing(|v| matches!(v, ViewingEvent::Started { .. })),
    )
    .await;
    expect(
        &phone,
        "taken on the other device",
        viewing(|v| matches!(v, ViewingEvent::TakenElsewhere { .. })),
    )
    .await;
    // 11. RTP at the tv's player
    expect(&tv, "audio and video playing", viewing(|v| {
        matches!(v, ViewingEvent::Stats { stats, .. } if stats.audio_packets > 0 && stats.video_packets > 0)
    }))
    .await;
    // 12-15. the phone takes the chat; the tv's chat ended elsewhere
    phone
        .command(Command::Chat(ChatCommand::Accept { chat: phone_chat }))
        .unwrap();
    expect(
        &tv,
        "the chat continued elsewhere",
        chat(|c| {
            matches!(
                c,
                ChatEvent::Ended {
                    reason: EndReason::CompletedElsewhere,
                    ..
                }
            )
        }),
    )
    .await;
    // 16. the chat, both ways (MSRP through the CPM function)
    let a_chat = match expect(
        &alice,
        "the chat start",
        chat(|c| matches!(c, ChatEvent::Started { .. })),
    )
    .await
    {
        ClientEvent::Chat(ChatEvent::Started { chat, .. }) => chat,
        other => panic!("{other:?}"),
    };
    alice
        .command(Command::Chat(ChatCommand::Send {
            chat: a_chat,
            text: "Are you watching?".into(),
        }))
        .unwrap();
    expect(
        &phone,
        "alice's message",
        chat(|c| matches!(c, ChatEvent::Message { text, .. } if text == "Are you watching?")),
    )
    .await;
    phone
        .command(Command::Chat(ChatCommand::Send {
            chat: phone_chat,
            text: "Yes, on the tv".into(),
        }))
        .unwrap();
    expect(
        &alice,
        "bob's answer",
        chat(|c| matches!(c, ChatEvent::Message { text, .. } if text == "Yes, on the tv")),
    )
    .await;
    // the phone never played
    assert!(
        !phone
            .events()
            .iter()
            .any(|e| matches!(e, ClientEvent::Viewing(ViewingEvent::Stats { .. }))),
        "no RTP at the phone"
    );
    for d in [&alice, &tv, &phone] {
        d.stop(WAIT).await;
    }
    site.shutdown().await;
}
