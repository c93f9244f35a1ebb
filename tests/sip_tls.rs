//! SIP over TLS (RFC 3261 §26.2) between clients and the bundled server over
//! real loopback sockets: registration and a pager MESSAGE carried on TLS
//! (Via `SIP/2.0/TLS` with the TLS port, `transport=tls` Contact), a
//! plaintext peer on the TLS port gets nothing, and a client that does not
//! trust the server's certificate is told so and never registers.

use std::net::SocketAddr;
use std::time::Duration;

use isc::client::runner::{ClientHandle, spawn_client};
use isc::client::{ClientEvent, Command, UaConfig};
use isc::config::ServerConfig;
use isc::net::tls::{ClientTls, Identity};
use isc::proto::sip::transaction::Transport;
use isc::server::runner::{Direction, Server, ServerHandle, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

async fn tls_server(dir: &std::path::Path) -> ServerHandle {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.to_owned()),
        ..ServerConfig::default()
    };
    config.tls.enabled = true;
    config.tls.sip_port = 0;
    Server::start(ServerOptions::new(config)).await.unwrap()
}

async fn tls_client(server: SocketAddr, user: &str, tls: ClientTls) -> ClientHandle {
    let instance = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let mut cfg = UaConfig::new(
        user,
        "isc.local",
        user,
        "laptop",
        &instance,
        server,
        "127.0.0.1:0".parse().unwrap(),
    );
    cfg.transport = Transport::Tls;
    cfg.tls = Some(tls);
    spawn_client(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn registration(c: &mut ClientHandle) -> ClientEvent {
    c.wait_for(WAIT, |e| {
        matches!(
            e,
            ClientEvent::Registered { .. } | ClientEvent::RegistrationFailed { .. }
        )
    })
    .await
    .expect("a registration outcome")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn register_and_message_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let tls_at = server.tls_local_addr().expect("TLS listener");
    assert_ne!(tls_at.port(), server.local_addr().port());
    let trust = ClientTls::from_ca_file(server.tls_cert().unwrap()).unwrap();
    let mut wire = server.wire();
    let mut alice = tls_client(tls_at, "alice", trust.clone()).await;
    let mut bob = tls_client(tls_at, "bob", trust).await;
    assert!(matches!(
        registration(&mut alice).await,
        ClientEvent::Registered { .. }
    ));
    assert!(matches!(
        registration(&mut bob).await,
        ClientEvent::Registered { .. }
    ));

    alice
        .send(Command::SendMessage {
            to: "sip:bob@isc.local".into(),
            text: "over TLS".into(),
            id: Some("t1".into()),
        })
        .await;
    match bob
        .wait_for(WAIT, |e| matches!(e, ClientEvent::MessageReceived { .. }))
        .await
    {
        Some(ClientEvent::MessageReceived { body, .. }) => assert_eq!(body, b"over TLS"),
        other => panic!("bob got no message: {other:?}"),
    }
    assert!(
        alice
            .wait_for(WAIT, |e| matches!(e, ClientEvent::MessageDelivered { .. }))
            .await
            .is_some()
    );

    // On the wire: every message went over TLS; the REGISTER carried a
    // `transport=tls` Contact and the MESSAGE reached bob with the server's
    // Via naming TLS and the TLS port (RFC 3261 §18.2.2, §26.2.1).
    let mut register_contact = None;
    let mut forwarded_via = None;
    while let Ok(ev) = wire.try_recv() {
        assert_eq!(ev.transport, Transport::Tls, "{}", text(&ev.bytes));
        let t = text(&ev.bytes);
        if ev.direction == Direction::In
            && t.starts_with("REGISTER ")
            && t.contains("Authorization")
        {
            register_contact = t
                .lines()
                .find(|l| l.starts_with("Contact:"))
                .map(str::to_owned);
        }
        if ev.direction == Direction::Out && t.starts_with("MESSAGE ") {
            forwarded_via = t.lines().find(|l| l.starts_with("Via:")).map(str::to_owned);
        }
    }
    let contact = register_contact.expect("REGISTER seen");
    assert!(contact.contains("transport=tls"), "{contact}");
    let via = forwarded_via.expect("MESSAGE forwarded");
    assert!(
        via.contains(&format!("SIP/2.0/TLS 127.0.0.1:{}", tls_at.port())),
        "{via}"
    );
    alice.shutdown().await;
    bob.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn plaintext_sip_on_the_tls_port_gets_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let mut tcp = tokio::net::TcpStream::connect(server.tls_local_addr().unwrap())
        .await
        .unwrap();
    let options = "OPTIONS sip:isc.local SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKplain\r\nMax-Forwards: 70\r\nFrom: <sip:x@isc.local>;tag=1\r\nTo: <sip:isc.local>\r\nCall-ID: plain@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    tcp.write_all(options.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await;
    // The handshake fails: the connection ends (maybe after a TLS alert),
    // never with a SIP answer.
    assert!(read.is_ok(), "connection left open");
    assert!(!text(&got).contains("SIP/2.0"), "{}", text(&got));
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_told_and_not_registered() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let tls_at = server.tls_local_addr().unwrap();
    let mut wire = server.wire();
    // Another self-signed certificate than the server's.
    let stranger = Identity::self_signed(&["127.0.0.1".into()]).unwrap();
    let trust = ClientTls {
        anchors: stranger.chain.clone(),
        server_name: None,
    };
    let mut mallory = tls_client(tls_at, "alice", trust).await;
    match registration(&mut mallory).await {
        ClientEvent::RegistrationFailed { status, reason, .. } => {
            assert_eq!(status, None);
            assert!(
                reason.starts_with("cannot reach the server:") && reason.contains("certificate"),
                "{reason}"
            );
        }
        other => panic!("registered with an untrusted server: {other:?}"),
    }
    // The name must match too: the right certificate for another name fails.
    let wrong_name = ClientTls::from_ca_file(server.tls_cert().unwrap())
        .unwrap()
        .with_name("isc.example");
    let mut other = tls_client(tls_at, "bob", wrong_name).await;
    assert!(matches!(
        registration(&mut other).await,
        ClientEvent::RegistrationFailed { status: None, .. }
    ));
    assert!(wire.try_recv().is_err(), "no SIP reached the server");
    mallory.abort();
    other.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn tls_off_means_no_tls_listener() {
    let server = Server::start(ServerOptions::loopback_demo()).await.unwrap();
    assert_eq!(server.tls_local_addr(), None);
    assert_eq!(server.tls_cert(), None);
    server.shutdown().await;
}
