//! Content viewing with the real client over loopback sockets and the
//! bundled server (seed 000 C.15.1 / C.15.2): the CV INVITE as the server
//! receives it, an invitation accepted with RTP reaching the player, the
//! recommendation reaching the chat device (which starts the chat), and the
//! recipient's other device told the viewing was taken elsewhere.

use std::net::SocketAddr;
use std::time::Duration;

use isc::client::chat::ChatEvent;
use isc::client::chats::ChatCommand;
use isc::client::content_viewing::{ViewingCommand, ViewingEvent};
use isc::client::runner::{ClientHandle, spawn_client};
use isc::client::{ClientEvent, Command, UaConfig};
use isc::proto::bodies::isc_content_request::{self, IscContentRequest};
use isc::proto::bodies::multipart::Multipart;
use isc::server::runner::{Direction as WireDirection, Server, ServerHandle, ServerOptions};

const WAIT: Duration = Duration::from_secs(20);

async fn server(single_device_bob: bool) -> ServerHandle {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.users = ["alice", "bob"]
        .iter()
        .map(|n| isc::config::UserConfig::new(n, n))
        .collect();
    for u in &mut opts.config.users {
        if u.name == "bob" {
            u.cv_single_device = single_device_bob;
        }
    }
    opts.config.content_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/content").into();
    Server::start(opts).await.expect("server starts")
}

/// A registered client and its GRUU.
async fn client(server: SocketAddr, user: &str, device: &str) -> (ClientHandle, String) {
    let instance = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let cfg = UaConfig::new(
        user,
        "isc.local",
        user,
        device,
        &instance,
        server,
        "127.0.0.1:0".parse().unwrap(),
    );
    let mut c = spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("client binds");
    match c
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
    {
        Some(ClientEvent::Registered { gruu: Some(g), .. }) => (c, g),
        other => panic!("{user}/{device} not registered: {other:?}"),
    }
}

async fn viewing(
    c: &mut ClientHandle,
    what: &str,
    pred: impl Fn(&ViewingEvent) -> bool,
) -> ViewingEvent {
    let mut seen = Vec::new();
    let found = c
        .wait_for(WAIT, |e| {
            let hit = matches!(e, ClientEvent::Viewing(v) if pred(v));
            if !hit {
                seen.push(format!("{e:?}"));
            }
            hit
        })
        .await;
    match found {
        Some(ClientEvent::Viewing(v)) => v,
        other => panic!("no {what}: {other:?}; skipped {seen:?}"),
    }
}

async fn chat_event(
    c: &mut ClientHandle,
    what: &str,
    pred: impl Fn(&ChatEvent) -> bool,
) -> ChatEvent {
    let found = c
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Chat(ce) if pred(ce)))
        .await;
    match found {
        Some(ClientEvent::Chat(e)) => e,
        other => panic!("no {what}: {other:?}"),
    }
}

async fn cmd(c: &ClientHandle, v: ViewingCommand) {
    assert!(c.send(Command::Viewing(v)).await);
}

/// Waits until `c` knows a sibling named `device` with a GRUU.
async fn knows_sibling(c: &mut ClientHandle, device: &str) {
    let found = c
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::DevicesChanged { devices }
                if devices.iter().any(|d| d.name.as_deref() == Some(device) && d.gruu.is_some() && !d.is_self))
        })
        .await;
    assert!(found.is_some(), "sibling {device} never listed");
}

async fn stats_with_packets(c: &mut ClientHandle, who: &str) -> (u64, u64) {
    match viewing(c, &format!("{who} stats with RTP"), |v| {
        matches!(v, ViewingEvent::Stats { stats, .. } if stats.audio_packets > 10 && stats.video_packets > 0)
    })
    .await
    {
        ViewingEvent::Stats { stats, .. } => (stats.audio_packets, stats.video_packets),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn c15_1_watch_with_chat_on_the_phone() {
    let srv = server(false).await;
    let addr = srv.local_addr();
    let mut wire = srv.wire();
    let (mut a1, a1_gruu) = client(addr, "alice", "tv").await;
    let (mut a2, a2_gruu) = client(addr, "alice", "phone").await;
    let (mut bob, _) = client(addr, "bob", "phone").await;
    knows_sibling(&mut a1, "phone").await;

    // 1. the content list, from the server
    cmd(&a1, ViewingCommand::FetchContentList).await;
    let content = match viewing(&mut a1, "content list", |v| {
        matches!(v, ViewingEvent::ContentList { .. })
    })
    .await
    {
        ViewingEvent::ContentList { entries } => {
            entries.first().expect("content listed").content_ref.clone()
        }
        _ => unreachable!(),
    };

    // 2. the CV INVITE, chat on the phone (named by device)
    cmd(
        &a1,
        ViewingCommand::Watch {
            content: content.clone(),
            with: "sip:bob@isc.local".into(),
            chat_on: Some("phone".into()),
        },
    )
    .await;
    let conv = match viewing(&mut a1, "calling", |v| {
        matches!(v, ViewingEvent::Calling { .. })
    })
    .await
    {
        ViewingEvent::Calling { convergence_id, .. } => convergence_id,
        _ => unreachable!(),
    };
    // as the server received it (the authorised one)
    let invite = loop {
        let ev = tokio::time::timeout(WAIT, wire.recv())
            .await
            .expect("wire")
            .expect("wire open");
        let text = String::from_utf8_lossy(&ev.bytes).into_owned();
        if ev.direction == WireDirection::In
            && text.starts_with("INVITE sip:bob@isc.local")
            && text.contains("Proxy-Authorization")
        {
            break text;
        }
    };
    let head = invite.split("\r\n\r\n").next().unwrap().to_owned();
    assert!(
        head.contains("P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.isc.1-1-cv-cm"),
        "{head}"
    );
    assert!(
        head.contains(&format!("ISCConvergenceID: {conv}")),
        "{head}"
    );
    let ac = head
        .lines()
        .find(|l| l.starts_with("Accept-Contact:"))
        .expect("Accept-Contact");
    assert!(
        ac.contains("+g.3gpp.icsi-ref") && ac.contains("1-1-cv-cm"),
        "{ac}"
    );
    let contact = head
        .lines()
        .find(|l| l.starts_with("Contact:"))
        .expect("Contact");
    assert!(
        contact.contains("1-1-cv-cm") && contact.contains("+sip.instance"),
        "{contact}"
    );
    assert!(head.contains("Recv-Info: isc-playback"));
    let ct = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .expect("Content-Type");
    let body = invite.split_once("\r\n\r\n").unwrap().1.as_bytes();
    let m = Multipart::parse_with_content_type(ct, body).expect("multipart");
    let sdp =
        String::from_utf8_lossy(&m.part_of_type("application/sdp").expect("SDP").body).into_owned();
    assert!(
        sdp.contains("m=audio ")
            && sdp.contains("RTP/AVP 0")
            && sdp.contains("m=video ")
            && sdp.contains("a=recvonly"),
        "{sdp}"
    );
    let cr = IscContentRequest::parse(
        &m.part_of_type(isc_content_request::CONTENT_TYPE)
            .expect("content request")
            .body,
    )
    .unwrap();
    assert_eq!(cr.content_ref, content);
    assert!(cr.using_multiple_client);
    assert_eq!(
        cr.communication_client_addr.as_deref(),
        Some(a2_gruu.as_str())
    );
    assert_eq!(
        cr.content_viewing_client_addr.as_deref(),
        Some(a1_gruu.as_str())
    );

    // 3. bob is invited; 5a. the phone gets the recommendation and starts the chat (6)
    let bv = match viewing(&mut bob, "viewing invitation", |v| {
        matches!(v, ViewingEvent::Invited { .. })
    })
    .await
    {
        ViewingEvent::Invited {
            viewing,
            content: c,
            convergence_id,
            ..
        } => {
            assert_eq!(c.as_deref(), Some(content.as_str()));
            assert_eq!(convergence_id.as_deref(), Some(conv.as_str()));
            viewing
        }
        _ => unreachable!(),
    };
    match viewing(&mut a2, "recommendation", |v| {
        matches!(v, ViewingEvent::ChatRecommended { .. })
    })
    .await
    {
        ViewingEvent::ChatRecommended {
            with,
            convergence_id,
            content_viewing_client,
        } => {
            assert_eq!(with, ["sip:bob@isc.local"]);
            assert_eq!(convergence_id, conv);
            assert_eq!(content_viewing_client.as_deref(), Some(a1_gruu.as_str()));
        }
        _ => unreachable!(),
    }
    // 8. bob accepts the viewing
    cmd(&bob, ViewingCommand::Accept { viewing: bv }).await;
    // 7 / 11. the chat reaches bob with the convergence id; he accepts
    let chat = match chat_event(&mut bob, "chat invitation", |e| {
        matches!(e, ChatEvent::Invited { .. })
    })
    .await
    {
        ChatEvent::Invited {
            chat,
            convergence_id,
            ..
        } => {
            assert_eq!(convergence_id.as_deref(), Some(conv.as_str()));
            chat
        }
        _ => unreachable!(),
    };
    assert!(bob.send(Command::Chat(ChatCommand::Accept { chat })).await);
    // 9. A1's viewing is up
    viewing(&mut a1, "viewing started", |v| {
        matches!(v, ViewingEvent::Started { .. })
    })
    .await;
    // 10. RTP reaches both players
    let (a, v) = stats_with_packets(&mut a1, "alice/tv").await;
    assert!(a > 10 && v > 0);
    let (a, v) = stats_with_packets(&mut bob, "bob/phone").await;
    assert!(a > 10 && v > 0);
    // 12–13. the chat on the phone
    let a2_chat = match chat_event(&mut a2, "chat started", |e| {
        matches!(e, ChatEvent::Started { .. })
    })
    .await
    {
        ChatEvent::Started { chat, .. } => chat,
        _ => unreachable!(),
    };
    assert!(
        a2.send(Command::Chat(ChatCommand::Send {
            chat: a2_chat,
            text: "nice scene".into()
        }))
        .await
    );
    chat_event(
        &mut bob,
        "chat message",
        |e| matches!(e, ChatEvent::Message { text, .. } if text == "nice scene"),
    )
    .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn c15_2_taken_on_the_tv_and_playback_control() {
    let srv = server(true).await;
    let addr = srv.local_addr();
    let (mut alice, _) = client(addr, "alice", "laptop").await;
    let (mut b1, _) = client(addr, "bob", "tv").await;
    let (mut b2, _) = client(addr, "bob", "phone").await;
    cmd(
        &alice,
        ViewingCommand::Watch {
            content: "melody".into(),
            with: "sip:bob@isc.local".into(),
            chat_on: None,
        },
    )
    .await;
    let invited = |v: &ViewingEvent| matches!(v, ViewingEvent::Invited { .. });
    let v1 = match viewing(&mut b1, "tv invited", invited).await {
        ViewingEvent::Invited { viewing, .. } => viewing,
        _ => unreachable!(),
    };
    let v2 = match viewing(&mut b2, "phone invited", invited).await {
        ViewingEvent::Invited { viewing, .. } => viewing,
        _ => unreachable!(),
    };
    cmd(&b1, ViewingCommand::Accept { viewing: v1 }).await;
    let av = match viewing(&mut alice, "alice started", |v| {
        matches!(v, ViewingEvent::Started { .. })
    })
    .await
    {
        ViewingEvent::Started { viewing, .. } => viewing,
        _ => unreachable!(),
    };
    // 9–10. the phone: taken elsewhere, not a missed invitation
    match viewing(&mut b2, "taken elsewhere", |v| {
        matches!(
            v,
            ViewingEvent::TakenElsewhere { .. } | ViewingEvent::Ended { .. }
        )
    })
    .await
    {
        ViewingEvent::TakenElsewhere { viewing, .. } => assert_eq!(viewing, v2),
        other => panic!("the phone saw {other:?}"),
    }
    // 11. RTP to alice and the tv
    stats_with_packets(&mut b1, "bob/tv").await;
    stats_with_packets(&mut alice, "alice/laptop").await;
    // playback: alice pauses, the tv hears of it
    cmd(&alice, ViewingCommand::Pause { viewing: av }).await;
    match viewing(&mut b1, "playback changed", |v| {
        matches!(v, ViewingEvent::PlaybackChanged { .. })
    })
    .await
    {
        ViewingEvent::PlaybackChanged { action, by, .. } => {
            assert_eq!(action, "pause");
            assert!(by.is_some_and(|b| b.contains("alice")));
        }
        _ => unreachable!(),
    }
    viewing(&mut alice, "INFO answered", |v| {
        matches!(v, ViewingEvent::PlaybackAnswered { status: 200, .. })
    })
    .await;
    // alice ends: the tv's viewing ends by BYE
    cmd(&alice, ViewingCommand::Bye { viewing: av }).await;
    viewing(&mut b1, "tv ended", |v| {
        matches!(v, ViewingEvent::Ended { .. })
    })
    .await;
    srv.shutdown().await;
}
