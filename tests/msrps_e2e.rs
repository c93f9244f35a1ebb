//! MSRP over TLS (RFC 4975 §14.1, `msrps:`) over real loopback sockets: a
//! server with `[server.tls]` on (self-signed certificate made in its data
//! dir), clients trusting that certificate. A 1-1 chat goes alice → bob
//! through the CPM Participating Function with `TCP/TLS/MSRP` lines and
//! `msrps:` paths; the msrps port speaks only TLS and the plain port does
//! not let anyone into an msrps: session; a group chat's creator reaches
//! the focus over msrps; a client that does not trust the server's
//! certificate cannot connect and is told why.

use std::net::SocketAddr;
use std::time::Duration;

use isc::client::ClientEvent;
use isc::client::chat::{ChatEvent, ChatId, EndReason};
use isc::client::chats::ChatCommand;
use isc::client::runner::ClientHandle;
use isc::net::tls::ClientTls;
use isc::net::tls::Identity;
use isc::server::runner::{Direction, Server, ServerHandle, ServerOptions, WireEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(20);

/// A loopback server with `[server.tls] enabled` and its data in `dir`.
async fn tls_server(dir: &std::path::Path) -> ServerHandle {
    let mut options = ServerOptions::loopback_demo();
    options.config.data_dir = Some(dir.to_owned());
    options.config.tls.enabled = true;
    options.config.tls.sip_port = 0;
    Server::start(options).await.expect("server starts")
}

mod live_client;

use live_client::chat;

async fn client_on(
    server: SocketAddr,
    user: &str,
    tls: Option<ClientTls>,
    transport: isc::proto::sip::transaction::Transport,
) -> ClientHandle {
    live_client::registered(server, user, "phone", WAIT, |c| {
        c.tls = tls;
        c.transport = transport;
    })
    .await
}

async fn chat_event(
    c: &mut ClientHandle,
    what: &str,
    pred: impl Fn(&ChatEvent) -> bool,
) -> ChatEvent {
    live_client::chat_event(c, WAIT, what, pred).await
}

/// A device on SIP over TLS (so the CPM function offers it msrps:).
async fn tls_client(server: &ServerHandle, user: &str, tls: ClientTls) -> ClientHandle {
    let addr = server.tls_local_addr().expect("SIP over TLS listener");
    client_on(
        addr,
        user,
        Some(tls),
        isc::proto::sip::transaction::Transport::Tls,
    )
    .await
}

/// A device on SIP over UDP, with `tls` for its chats if given.
async fn client(server: SocketAddr, user: &str, tls: Option<ClientTls>) -> ClientHandle {
    client_on(
        server,
        user,
        tls,
        isc::proto::sip::transaction::Transport::Udp,
    )
    .await
}

/// alice starts a chat with bob, bob accepts: alice's and bob's chat ids.
async fn start_chat(alice: &mut ClientHandle, bob: &mut ClientHandle) -> (ChatId, ChatId) {
    chat(
        alice,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    )
    .await;
    let ChatEvent::Calling { chat: a, .. } =
        chat_event(alice, "calling", |e| matches!(e, ChatEvent::Calling { .. })).await
    else {
        unreachable!()
    };
    let ev = chat_event(bob, "invitation", |e| {
        matches!(e, ChatEvent::Invited { .. } | ChatEvent::Ended { .. })
    })
    .await;
    let ChatEvent::Invited { chat: b, .. } = ev else {
        panic!("{ev:?}")
    };
    chat(bob, ChatCommand::Accept { chat: b }).await;
    (a, b)
}

/// The SIP messages on the server's wire so far, as text.
fn sip_texts(wire: &mut broadcast::Receiver<WireEvent>) -> Vec<(Direction, String)> {
    let mut out = Vec::new();
    while let Ok(ev) = wire.try_recv() {
        let text = String::from_utf8_lossy(&ev.bytes).into_owned();
        if !text.starts_with("MSRP ") {
            out.push((ev.direction, text));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_goes_over_msrps_through_the_cpm_function() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let msrps = server.msrps_addr().expect("an msrps listener");
    assert_ne!(msrps, server.msrp_addr());
    let ca = server.tls_cert().expect("self-signed: its file").to_owned();
    assert!(ca.starts_with(dir.path()));
    let trust = ClientTls::from_ca_file(&ca).unwrap();
    let mut wire = server.wire();
    if std::env::var("MSRPS_WIRE").is_ok() {
        let mut w = server.wire();
        tokio::spawn(async move {
            while let Ok(ev) = w.recv().await {
                eprintln!(
                    "--- {:?} {}\n{}",
                    ev.direction,
                    ev.peer,
                    String::from_utf8_lossy(&ev.bytes)
                );
            }
        });
    }
    let mut alice = tls_client(&server, "alice", trust.clone()).await;
    let mut bob = tls_client(&server, "bob", trust).await;

    let (a, _b) = start_chat(&mut alice, &mut bob).await;
    for (who, c) in [("alice", &mut alice), ("bob", &mut bob)] {
        let ev = chat_event(c, "started", |e| {
            matches!(e, ChatEvent::Started { .. } | ChatEvent::Ended { .. })
        })
        .await;
        assert!(matches!(ev, ChatEvent::Started { .. }), "{who}: {ev:?}");
    }
    chat(
        &alice,
        ChatCommand::Send {
            chat: a,
            text: "hello over TLS".into(),
        },
    )
    .await;
    let ev = chat_event(&mut bob, "message", |e| {
        matches!(e, ChatEvent::Message { .. })
    })
    .await;
    let ChatEvent::Message { from, text, .. } = ev else {
        unreachable!()
    };
    assert_eq!(
        (from.as_str(), text.as_str()),
        ("sip:alice@isc.local", "hello over TLS")
    );
    chat_event(&mut alice, "delivered", |e| {
        matches!(e, ChatEvent::Delivered { .. })
    })
    .await;

    // On the wire: every MSRP line of the session is TCP/TLS/MSRP with
    // msrps: paths (RFC 4975 §8.1); ours are on the TLS listener.
    let sip = sip_texts(&mut wire);
    let sdps: Vec<&(Direction, String)> = sip
        .iter()
        .filter(|(_, t)| t.contains("m=message "))
        .collect();
    assert!(sdps.len() >= 4, "two offers, two answers: {sdps:#?}");
    for (_, t) in &sdps {
        assert!(t.contains(" TCP/TLS/MSRP *\r\n"), "{t}");
        assert!(t.contains("a=path:msrps://"), "{t}");
        assert!(!t.contains("msrp://"), "{t}");
    }
    let ours = format!("a=path:msrps://{}:{}/", msrps.ip(), msrps.port());
    let (out_invite, out_ok): (Vec<&String>, Vec<&String>) = sdps
        .iter()
        .filter(|(d, _)| *d == Direction::Out)
        .map(|(_, t)| t)
        .partition(|t| t.starts_with("INVITE "));
    // the fork to bob: we wait for bob's TLS connection
    assert!(
        out_invite
            .iter()
            .any(|t| t.contains(&ours) && t.contains("a=setup:passive")),
        "{out_invite:#?}"
    );
    // the answer to alice: our msrps: path
    assert!(
        out_ok
            .iter()
            .any(|t| t.starts_with("SIP/2.0 200") && t.contains(&ours)),
        "{out_ok:#?}"
    );
    let alice_path = out_ok
        .iter()
        .find_map(|t| {
            let at = t.find(&ours)?;
            let line = t[at + "a=path:".len()..].lines().next()?;
            Some(line.to_owned())
        })
        .unwrap();

    // The msrps port speaks TLS only: a plaintext SEND to alice's session
    // there is not relayed; the handshake fails and the server hangs up.
    let mut raw = tokio::net::TcpStream::connect(msrps).await.unwrap();
    let send = format!(
        "MSRP inj1 SEND\r\nTo-Path: {alice_path}\r\nFrom-Path: msrp://127.0.0.1:9/x;tcp\r\n\
         Message-ID: inj\r\nByte-Range: 1-8/8\r\nContent-Type: text/plain\r\n\r\n\
         injected\r\n-------inj1$\r\n"
    );
    raw.write_all(send.as_bytes()).await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut back))
        .await
        .expect("the server closes the connection")
        .ok();
    assert!(
        !back.windows(4).any(|w| w == b"MSRP"),
        "no MSRP reply in clear: {back:?}"
    );

    // Nor does the plain MSRP port let anyone into the msrps: session, even
    // with alice's From-Path (RFC 4975 §14.1): 403, nothing relayed.
    let alice_own = sdps
        .iter()
        .find(|(d, t)| *d == Direction::In && t.starts_with("INVITE "))
        .and_then(|(_, t)| {
            let at = t.find("a=path:")?;
            Some(t[at + "a=path:".len()..].lines().next()?.to_owned())
        })
        .unwrap();
    let mut plain = tokio::net::TcpStream::connect(server.msrp_addr())
        .await
        .unwrap();
    let spoof = send.replace("msrp://127.0.0.1:9/x;tcp", &alice_own);
    plain.write_all(spoof.as_bytes()).await.unwrap();
    let mut reply = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), plain.read(&mut reply))
        .await
        .expect("an answer")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("MSRP inj1 403"), "{reply}");
    let late = bob
        .wait_for(Duration::from_millis(500), |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Message { .. }))
        })
        .await;
    assert!(late.is_none(), "nothing injected: {late:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_server_is_told_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let ca = server.tls_cert().unwrap().to_owned();
    let addr = server.local_addr();
    // alice trusts some other certificate, not the server's
    let stranger = Identity::self_signed(&["127.0.0.1".into()]).unwrap();
    let wrong = ClientTls {
        anchors: stranger.chain.clone(),
        server_name: None,
    };
    let mut alice = client(addr, "alice", Some(wrong)).await;
    let mut bob = client(addr, "bob", Some(ClientTls::from_ca_file(&ca).unwrap())).await;

    let (a, _b) = start_chat(&mut alice, &mut bob).await;
    let ev = chat_event(&mut alice, "ended", |e| {
        matches!(e, ChatEvent::Ended { .. })
    })
    .await;
    let ChatEvent::Ended {
        chat,
        reason: EndReason::Error { reason, .. },
    } = ev
    else {
        panic!("{ev:?}")
    };
    assert_eq!(chat, a);
    assert!(reason.contains("MSRP connect failed"), "{reason}");
    assert!(reason.contains("certificate"), "{reason}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_chat_creator_reaches_the_focus_over_msrps() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let msrps = server.msrps_addr().unwrap();
    let trust = ClientTls::from_ca_file(server.tls_cert().unwrap()).unwrap();
    let mut wire = server.wire();
    let addr = server.local_addr();
    let mut alice = client(addr, "alice", Some(trust.clone())).await;
    // bob over msrps too, carol plain: the focus invites both with msrp:
    let mut bob = client(addr, "bob", Some(trust)).await;
    let mut carol = client(addr, "carol", None).await;
    chat(
        &alice,
        ChatCommand::CreateGroup {
            invitees: vec!["sip:bob@isc.local".into(), "sip:carol@isc.local".into()],
        },
    )
    .await;
    let mut legs = Vec::new();
    for c in [&mut bob, &mut carol] {
        let ev = chat_event(c, "invitation", |e| {
            matches!(e, ChatEvent::Invited { .. } | ChatEvent::Ended { .. })
        })
        .await;
        let ChatEvent::Invited { chat: id, .. } = ev else {
            panic!("{ev:?}")
        };
        chat(c, ChatCommand::Accept { chat: id }).await;
        legs.push(id);
    }
    let ev = chat_event(&mut alice, "group started", |e| {
        matches!(e, ChatEvent::GroupStarted { .. } | ChatEvent::Ended { .. })
    })
    .await;
    let ChatEvent::GroupStarted { chat: a, .. } = ev else {
        panic!("{ev:?}")
    };
    for c in [&mut bob, &mut carol] {
        chat_event(c, "group started", |e| {
            matches!(e, ChatEvent::GroupStarted { .. })
        })
        .await;
    }
    chat(
        &alice,
        ChatCommand::Send {
            chat: a,
            text: "hello group".into(),
        },
    )
    .await;
    for c in [&mut bob, &mut carol] {
        let ev = chat_event(c, "message", |e| matches!(e, ChatEvent::Message { .. })).await;
        let ChatEvent::Message { text, .. } = ev else {
            unreachable!()
        };
        assert_eq!(text, "hello group");
    }
    // alice's offer to the factory and the focus's answer: TCP/TLS/MSRP,
    // the answer's path on the msrps listener
    let sip = sip_texts(&mut wire);
    let offer = sip
        .iter()
        .find(|(d, t)| *d == Direction::In && t.starts_with("INVITE sip:conf-factory"))
        .map(|(_, t)| t)
        .expect("alice's INVITE to the factory");
    assert!(offer.contains(" TCP/TLS/MSRP *\r\n"), "{offer}");
    let ours = format!("a=path:msrps://{}:{}/", msrps.ip(), msrps.port());
    assert!(
        sip.iter().any(|(d, t)| *d == Direction::Out
            && t.starts_with("SIP/2.0 200")
            && t.contains(" TCP/TLS/MSRP *\r\n")
            && t.contains(&ours)),
        "the focus answers over msrps"
    );
    server.shutdown().await;
}

/// Each device leg is secured as that device reaches us: alice on SIP over
/// TLS chats over msrps:, bob on plain SIP (no TLS set up) is offered plain
/// msrp: by the CPM function and the message still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_on_plain_sip_is_offered_plain_msrp() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let trust = ClientTls::from_ca_file(server.tls_cert().unwrap()).unwrap();
    let mut wire = server.wire();
    let mut alice = tls_client(&server, "alice", trust).await;
    let mut bob = client(server.local_addr(), "bob", None).await;
    let (a, _b) = start_chat(&mut alice, &mut bob).await;
    for (who, c) in [("alice", &mut alice), ("bob", &mut bob)] {
        let ev = chat_event(c, "started", |e| {
            matches!(e, ChatEvent::Started { .. } | ChatEvent::Ended { .. })
        })
        .await;
        assert!(matches!(ev, ChatEvent::Started { .. }), "{who}: {ev:?}");
    }
    chat(
        &alice,
        ChatCommand::Send {
            chat: a,
            text: "mixed".into(),
        },
    )
    .await;
    let ev = chat_event(&mut bob, "message", |e| {
        matches!(e, ChatEvent::Message { .. })
    })
    .await;
    assert!(matches!(ev, ChatEvent::Message { text, .. } if text == "mixed"));
    let sip = sip_texts(&mut wire);
    let to_bob = sip
        .iter()
        .find(|(d, t)| *d == Direction::Out && t.starts_with("INVITE ") && t.contains("m=message "))
        .map(|(_, t)| t.clone())
        .expect("the fork to bob");
    assert!(to_bob.contains(" TCP/MSRP *\r\n"), "{to_bob}");
    assert!(to_bob.contains("a=path:msrp://"), "{to_bob}");
    let from_alice = sip
        .iter()
        .find(|(d, t)| *d == Direction::In && t.starts_with("INVITE ") && t.contains("m=message "))
        .map(|(_, t)| t.clone())
        .expect("alice's offer");
    assert!(from_alice.contains("a=path:msrps://"), "{from_alice}");
    server.shutdown().await;
}
