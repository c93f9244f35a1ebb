//! Flow D.2 (seed 002 D.2, seed 003 12.4.2.2) over real sockets: pager
//! messages and a chat session to offline bob are stored; bob registers;
//! the server INVITEs his device and pushes each message over MSRP, in
//! order, with its original Call-ID / Message-ID and a Date, removing each
//! only after its MSRP 200; a second registration receives nothing.

mod common;
mod cpm_common;

use std::path::Path;
use std::time::Duration;

use common::Peer;
use cpm_common::{
    Device, MsrpConn, ack_2xx, answer, cpm_invite, final_for, msrp_sdp, recv_request, sdp_path,
    send_invite,
};
use isc::proto::bodies::multipart::Multipart;
use isc::proto::msrp::{MsrpHeader, MsrpMessage, MsrpMethod, MsrpPath, MsrpUri};
use isc::proto::sip::headers::HeadersExt;
use isc::server::deferred_message_store::{DeferredStore, SqliteDeferred};
use isc::server::runner::{Server, ServerHandle, ServerOptions};

const BOB: &str = "sip:bob@isc.local";

async fn start(dir: &Path, bob_push: bool) -> ServerHandle {
    let mut opts = ServerOptions::loopback_demo();
    opts.history_in_memory = false;
    opts.config.data_dir = Some(dir.to_path_buf());
    opts.config.users = ["alice", "bob", "carol"]
        .iter()
        .map(|n| {
            let mut u = isc::config::UserConfig::new(n, n);
            u.offline_delivery = bob_push;
            u
        })
        .collect();
    Server::start(opts).await.expect("server starts")
}

fn store_count(dir: &Path) -> u64 {
    SqliteDeferred::open_in(dir).unwrap().count(BOB).unwrap()
}

/// Waits until the store holds `n` messages for bob (the server writes
/// from its own task).
async fn store_reaches(dir: &Path, n: u64) {
    for _ in 0..100 {
        if store_count(dir) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store_count(dir), n, "store size");
}

/// A pager MESSAGE from `peer` to bob with a Message-ID; returns the request
/// and the final status.
async fn pager(peer: &mut Peer, text: &str, mid: &str) -> (rsip::Request, u16) {
    let req = peer.request(
        "MESSAGE",
        BOB,
        BOB,
        &[
            format!("Message-ID: {mid}"),
            "Content-Type: text/plain".into(),
        ],
        text,
    );
    let resp = peer.send_authenticated(req.clone()).await;
    (req, resp.status_code.code())
}

/// Carol's chat session to offline bob: the server answers on bob's
/// behalf and takes the messages. Returns the Call-ID.
async fn offline_session(server: &ServerHandle, carol: &mut Peer, texts: &[&str]) -> String {
    let _ = server;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let uri = MsrpUri::new("127.0.0.1", port, "carolsess");
    let sdp = msrp_sdp(&uri, "actpass", "");
    let req = cpm_invite(carol, BOB, &sdp, &[]);
    let invite = send_invite(carol, req).await;
    let ok = final_for(carol, &invite).await;
    assert_eq!(ok.status_code.code(), 200, "the server accepts for bob");
    let contact = ok.headers.get_raw("Contact").unwrap();
    assert!(contact.contains("automata"), "{contact}");
    let ack = ack_2xx(carol, &invite, &ok);
    carol.send(ack).await;
    let answer_sdp = String::from_utf8_lossy(&ok.body).to_string();
    assert!(answer_sdp.contains("a=recvonly"), "{answer_sdp}");
    assert!(answer_sdp.contains("a=setup:active"), "{answer_sdp}");
    let to_server = sdp_path(&ok.body);
    // The server connects (RFC 6135 active) and binds with an empty SEND.
    let mut c = MsrpConn::accept(&listener).await;
    let bind = c.recv_request().await;
    assert!(bind.body.as_ref().is_none_or(|b| b.is_empty()));
    for (i, t) in texts.iter().enumerate() {
        let cpim = format!(
            "From: <sip:carol@isc.local>\r\nTo: <sip:bob@isc.local>\r\nDateTime: 2026-11-23T15:00:0{i}Z\r\n\r\nContent-Type: text/plain\r\n\r\n{t}"
        );
        let send = MsrpMessage::request(
            MsrpMethod::Send,
            format!("ct{i}"),
            to_server.clone(),
            MsrpPath::single(uri.clone()),
        )
        .with_header(MsrpHeader::MessageId(format!("carol-s-{i}")))
        .with_body("message/cpim", cpim.into_bytes());
        c.send(&send).await;
        let r = c.recv().await;
        assert_eq!(r.code(), Some(200), "MSRP 200 only once stored");
    }
    invite.headers.get_raw("Call-ID").unwrap()
}

struct Pushed {
    conn: MsrpConn,
    invite: rsip::Request,
}

/// Bob's device registers and accepts the push INVITE.
async fn bob_accepts_push(server: &ServerHandle, instance: &str) -> (Device, Pushed) {
    let bob = Device::register(server.local_addr(), "bob", instance, "phone").await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    answer(
        &bob.sip,
        &inv,
        200,
        "bobpush",
        Some(&msrp_sdp(&bob.uri, "passive", "")),
    )
    .await;
    let ack = recv_request(&bob.sip, rsip::Method::Ack).await;
    assert_eq!(
        ack.headers.get_raw("Call-ID"),
        inv.headers.get_raw("Call-ID")
    );
    let conn = MsrpConn::accept(&bob.listener).await;
    (bob, Pushed { conn, invite: inv })
}

#[tokio::test]
async fn d2_push_on_registration_in_order_removed_only_after_200() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true).await;
    let mut carol = Peer::new(server.local_addr(), "carol", "carol").await;

    // Step 0: eight pager messages (one resent) and a two-message session.
    let mut sent = Vec::new();
    for i in 0..8 {
        let (req, code) = pager(&mut carol, &format!("pager {i}"), &format!("carol-p-{i}")).await;
        assert_eq!(code, 202, "pager {i} accepted for later");
        sent.push(req);
    }
    let (_, code) = pager(&mut carol, "pager 3", "carol-p-3").await;
    assert_eq!(code, 202, "a resend is acknowledged");
    store_reaches(dir.path(), 8).await;
    let mut carol_chat = Peer::new(server.local_addr(), "carol", "carol").await;
    let session_call =
        offline_session(&server, &mut carol_chat, &["hi bob", "are you there"]).await;
    store_reaches(dir.path(), 10).await;

    // Steps 1–7.
    let (bob, mut push) = bob_accepts_push(&server, "bob-phone").await;
    let inv = &push.invite;
    let sdp = String::from_utf8_lossy(&inv.body).to_string();
    assert!(sdp.contains("a=sendonly"), "{sdp}");
    let contact = inv.headers.get_raw("Contact").unwrap();
    assert!(contact.contains("automata"), "{contact}");
    assert!(inv.headers.get_raw("Session-Expires").is_some());
    assert!(
        inv.headers
            .get_raw("Accept-Contact")
            .unwrap()
            .contains("+g.oma.sip-im")
    );

    // Steps 8–9, for each message, in order.
    for (i, req) in sent.iter().enumerate() {
        let send = push.conn.recv().await;
        assert_eq!(send.method(), Some(&MsrpMethod::Send));
        assert_eq!(send.content_type(), Some("message/sip"));
        let body = String::from_utf8(send.body.clone().unwrap()).unwrap();
        assert!(
            body.starts_with("MESSAGE sip:bob@isc.local SIP/2.0\r\n"),
            "{body}"
        );
        let call = req.headers.get_raw("Call-ID").unwrap();
        assert!(body.contains(&format!("Call-ID: {call}\r\n")), "{body}");
        assert!(
            body.contains(&format!("Message-ID: carol-p-{i}\r\n")),
            "{body}"
        );
        assert!(body.contains("\r\nDate: "), "Date added: {body}");
        assert!(body.contains("From: <sip:carol@isc.local>"), "{body}");
        assert!(body.ends_with(&format!("pager {i}")), "{body}");
        // Not yet removed: no 200 sent.
        store_reaches(dir.path(), 10 - i as u64).await;
        push.conn.send(&send.ok_response().unwrap()).await;
        store_reaches(dir.path(), 10 - i as u64 - 1).await;
    }
    for (i, text) in ["hi bob", "are you there"].iter().enumerate() {
        let send = push.conn.recv().await;
        let ct = send.content_type().unwrap().to_string();
        assert!(ct.starts_with("multipart/mixed"), "{ct}");
        let mp = Multipart::parse_with_content_type(&ct, send.body.as_deref().unwrap()).unwrap();
        let types: Vec<_> = mp.parts.iter().filter_map(|p| p.media_type()).collect();
        assert_eq!(types, ["message/sip", "message/sip", "message/msrp"]);
        let invite = String::from_utf8_lossy(&mp.parts[0].body).to_string();
        assert!(invite.starts_with("INVITE "), "{invite}");
        assert!(invite.contains(&format!("Call-ID: {session_call}\r\n")));
        assert!(invite.contains("\r\nDate: "));
        let ok = String::from_utf8_lossy(&mp.parts[1].body).to_string();
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        let msrp = String::from_utf8_lossy(&mp.parts[2].body).to_string();
        assert!(
            msrp.contains(&format!("Message-ID: carol-s-{i}\r\n")),
            "{msrp}"
        );
        assert!(msrp.contains("\r\nDate: "), "{msrp}");
        assert!(msrp.contains(text), "{msrp}");
        store_reaches(dir.path(), 2 - i as u64).await;
        push.conn.send(&send.ok_response().unwrap()).await;
        store_reaches(dir.path(), 1 - i as u64).await;
    }

    // Steps 10–13: BYE after the last.
    let bye = recv_request(&bob.sip, rsip::Method::Bye).await;
    assert_eq!(
        bye.headers.get_raw("Call-ID"),
        inv.headers.get_raw("Call-ID")
    );
    bob.sip.answer(&bye, 200).await;
    assert!(push.conn.closed_within(2.0).await);

    // A second registration receives nothing twice.
    let mut again = bob.sip;
    assert_eq!(
        again
            .register("bob-phone", "phone")
            .await
            .status_code
            .code(),
        200
    );
    assert!(
        again.recv_within(1.0).await.is_none(),
        "nothing pushed again"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unanswered_push_keeps_the_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true).await;
    let mut carol = Peer::new(server.local_addr(), "carol", "carol").await;
    for i in 0..2 {
        assert_eq!(
            pager(&mut carol, &format!("m{i}"), &format!("k-{i}"))
                .await
                .1,
            202
        );
    }
    let bob = Device::register(server.local_addr(), "bob", "bob-tv", "tv").await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    bob.sip.answer(&inv, 486).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store_count(dir.path()), 2, "refused push: all kept");
    // The MSRP 200 never comes for the first: it stays; the second is not sent.
    let (bob, mut push) = {
        let mut sip = bob.sip;
        assert_eq!(sip.register("bob-tv", "tv").await.status_code.code(), 200);
        let inv = recv_request(&sip, rsip::Method::Invite).await;
        answer(
            &sip,
            &inv,
            200,
            "t2",
            Some(&msrp_sdp(&bob.uri, "passive", "")),
        )
        .await;
        let conn = MsrpConn::accept(&bob.listener).await;
        (sip, Pushed { conn, invite: inv })
    };
    let first = push.conn.recv().await;
    assert!(push.conn.recv_within(0.5).await.is_none(), "one at a time");
    drop(first);
    drop(push.conn);
    let bye = recv_request(&bob, rsip::Method::Bye).await;
    bob.answer(&bye, 200).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store_count(dir.path()), 2, "no 200: nothing removed");
    let _ = push.invite;
    server.shutdown().await;
}
