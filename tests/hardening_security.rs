//! Security attempts (issue #11 part 4), one test each, each refused, over
//! real loopback sockets against `isc server`. Already covered elsewhere
//! and not repeated here: REGISTER for another user's AoR with one's own
//! credentials (server_core::cannot_register_another_users_aor), a From of
//! another user (server_core::offline_unknown_and_spoofed_requests), a
//! SUBSCRIBE to a conference one is not in
//! (focus_checks::only_participants_may_subscribe), and the digest
//! machine's own checks (digest_auth.rs, sans-IO).

mod common;
mod cpm_common;

use std::time::Duration;

use common::{Peer, bump_cseq, new_branch};
use cpm_common::*;
use isc::proto::msrp::{ByteRange, MsrpHeader, MsrpMessage, MsrpMethod, MsrpPath, MsrpUri};
use isc::proto::sip::headers::{HeadersExt, make_header};

fn warning(r: &rsip::Response) -> String {
    r.headers.get_raw("Warning").unwrap_or_default()
}

/// A MESSAGE from `peer` to bob with `extra` header lines.
fn message(peer: &mut Peer, extra: &[String]) -> rsip::Request {
    let mut lines = vec!["Content-Type: text/plain".to_string()];
    lines.extend(extra.iter().cloned());
    peer.request(
        "MESSAGE",
        "sip:bob@isc.local",
        "sip:bob@isc.local",
        &lines,
        "hi",
    )
}

#[tokio::test]
async fn p_preferred_identity_of_another_user_is_refused() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let mut bob = Peer::new(addr, "bob", "bob").await;
    assert_eq!(bob.register("b1", "phone").await.status_code.code(), 200);
    let req = message(
        &mut alice,
        &["P-Preferred-Identity: \"Bob\" <sip:bob@isc.local>".into()],
    );
    let resp = alice.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 403);
    assert!(
        warning(&resp).contains("P-Preferred-Identity"),
        "{}",
        warning(&resp)
    );
    // Her own preferred identity is fine: bob gets it asserted as alice.
    let req = message(
        &mut alice,
        &["P-Preferred-Identity: <sip:alice@isc.local>".into()],
    );
    let resp_task = tokio::spawn(async move { alice.send_authenticated(req).await });
    let got = common::request(bob.recv().await);
    assert_eq!(got.method, rsip::Method::Message);
    assert_eq!(
        got.headers.get_raw("P-Asserted-Identity").as_deref(),
        Some("<sip:alice@isc.local>")
    );
    assert!(got.headers.get_raw("P-Preferred-Identity").is_none());
    bob.answer(&got, 200).await;
    assert_eq!(resp_task.await.unwrap().status_code.code(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn refer_as_someone_else_is_refused() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let refer = |alice: &mut Peer, extra: &[String]| {
        let mut lines = vec!["Refer-To: <sip:carol@isc.local>".to_string()];
        lines.extend(extra.iter().cloned());
        alice.request(
            "REFER",
            "sip:bob@isc.local",
            "sip:bob@isc.local",
            &lines,
            "",
        )
    };
    // As bob, in From.
    let mut req = refer(&mut alice, &[]);
    req.headers.remove_named("From");
    req.headers
        .push(make_header("From", "<sip:bob@isc.local>;tag=spoof"));
    let resp = alice.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 403);
    assert!(
        warning(&resp).contains("From does not match"),
        "{}",
        warning(&resp)
    );
    // As bob, in Referred-By (RFC 3892).
    let req = refer(&mut alice, &["Referred-By: <sip:bob@isc.local>".into()]);
    let resp = alice.send_authenticated(req).await;
    assert_eq!(resp.status_code.code(), 403);
    assert!(warning(&resp).contains("Referred-By"), "{}", warning(&resp));
    server.shutdown().await;
}

fn send(to: &MsrpPath, from: &MsrpUri, tid: &str, text: &str) -> MsrpMessage {
    let body = format!(
        "From: <sip:alice@isc.local>\r\nTo: <sip:bob@isc.local>\r\n\r\nContent-Type: text/plain\r\n\r\n{text}"
    )
    .into_bytes();
    let n = body.len() as u64;
    MsrpMessage::request(
        MsrpMethod::Send,
        tid,
        to.clone(),
        MsrpPath::single(from.clone()),
    )
    .with_header(MsrpHeader::MessageId(format!("m{tid}")))
    .with_header(MsrpHeader::ByteRange(ByteRange {
        start: 1,
        end: Some(n),
        total: Some(n),
    }))
    .with_body("message/cpim", body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msrp_send_into_a_session_one_does_not_own_is_refused() {
    let server = start(|_| {}).await;
    let mut s = one_device_session(&server).await;
    // RFC 4975 §14.1: the session id is unguessable, at least 80 random bits.
    let sid = s.to_server.first().unwrap().session_id.clone().unwrap();
    assert!(
        sid.len() >= 20 && sid.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sid}"
    );
    // Mallory knows the session's path (as if leaked) but is not alice.
    let mallory_uri = MsrpUri::new("127.0.0.1", 9, "mallorysess");
    let mut m = MsrpConn::connect(server.msrp_addr()).await;
    m.send(&send(&s.to_server, &mallory_uri, "mal1", "I am alice"))
        .await;
    let r = m.recv().await;
    assert_eq!(r.code(), Some(403), "{r:?}");
    // A made-up session id is unknown: 481.
    let guess = MsrpPath::single(MsrpUri::new(
        "127.0.0.1",
        server.msrp_addr().port(),
        "00000000000000000000",
    ));
    m.send(&send(&guess, &mallory_uri, "mal2", "guess")).await;
    assert_eq!(m.recv().await.code(), Some(481));
    // Alice's own SEND is relayed, and it is the first thing bob gets.
    s.a.send(&send(&s.to_server, &s.alice_uri, "a1", "really alice"))
        .await;
    assert_eq!(s.a.recv().await.code(), Some(200));
    let got = s.b.recv_request().await;
    let body = String::from_utf8_lossy(got.body.as_deref().unwrap_or_default()).into_owned();
    assert!(
        body.contains("really alice") && !body.contains("I am alice"),
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn digest_challenge_requires_qop_auth_and_nonce_count_replay_is_refused() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let contact = format!(
        "Contact: <sip:alice@{};transport=udp>;expires=600",
        alice.addr()
    );
    let req = alice.request(
        "REGISTER",
        "sip:isc.local",
        "sip:alice@isc.local",
        &[contact],
        "",
    );
    alice.send(req.clone()).await;
    let challenge = alice.final_response().await;
    assert_eq!(challenge.status_code.code(), 401);
    for v in challenge.headers.get_all_raw("WWW-Authenticate") {
        assert!(v.contains("qop=\"auth\""), "{v}");
    }
    alice.digest.handle_challenge(&challenge).unwrap();
    let mut first = req.clone();
    bump_cseq(&mut first, 2);
    new_branch(&mut first, "z9hG4bKreplay1");
    alice.digest.authorize(&mut first, "c0ffee");
    let auth = first.headers.get_raw("Authorization").unwrap();
    assert!(
        auth.contains("qop=auth") && auth.contains("nc=00000001"),
        "{auth}"
    );
    alice.send(first.clone()).await;
    assert_eq!(alice.final_response().await.status_code.code(), 200);
    // The same credentials (same nonce-count) on a new transaction: a replay.
    let mut replay = first.clone();
    bump_cseq(&mut replay, 3);
    new_branch(&mut replay, "z9hG4bKreplay2");
    alice.send(replay).await;
    let refused = alice.final_response().await;
    assert!(
        matches!(refused.status_code.code(), 401 | 403),
        "{}",
        refused.status_code
    );
    // Without qop (the RFC 2069 form), nothing limits replays: refused.
    let mut old = req.clone();
    bump_cseq(&mut old, 4);
    new_branch(&mut old, "z9hG4bKreplay3");
    let rfc2069 = auth
        .split(',')
        .filter(|p| !["qop", "nc", "cnonce"].contains(&p.trim().split('=').next().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",");
    old.headers.push(make_header("Authorization", &rfc2069));
    alice.send(old).await;
    let refused = alice.final_response().await;
    assert!(
        matches!(refused.status_code.code(), 401 | 403),
        "{}",
        refused.status_code
    );
    server.shutdown().await;
}

#[tokio::test]
async fn expired_nonce_gets_stale_true_and_a_fresh_one_works() {
    let server = start(|o| o.config.nonce_lifetime_secs = 1).await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    assert_eq!(alice.register("a1", "phone").await.status_code.code(), 200);
    // Past the nonce's lifetime (waiting for expiry, not timing anything).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let contact = format!(
        "Contact: <sip:alice@{};transport=udp>;expires=600",
        alice.addr()
    );
    let mut req = alice.request(
        "REGISTER",
        "sip:isc.local",
        "sip:alice@isc.local",
        &[contact],
        "",
    );
    alice.digest.authorize(&mut req, "5ca1e");
    assert!(req.headers.get_raw("Authorization").is_some());
    alice.send(req.clone()).await;
    let resp = alice.final_response().await;
    assert_eq!(resp.status_code.code(), 401);
    let challenges = resp.headers.get_all_raw("WWW-Authenticate");
    assert!(
        !challenges.is_empty()
            && challenges
                .iter()
                .all(|c| c.to_ascii_lowercase().contains("stale=true")),
        "{challenges:?}"
    );
    // RFC 7616 §3.3: with stale=true the client retries with the new nonce.
    alice.digest.handle_challenge(&resp).unwrap();
    let mut retry = req;
    retry.headers.remove_named("Authorization");
    bump_cseq(&mut retry, 50);
    new_branch(&mut retry, "z9hG4bKstale2");
    alice.digest.authorize(&mut retry, "5ca1e");
    alice.send(retry).await;
    assert_eq!(alice.final_response().await.status_code.code(), 200);
    server.shutdown().await;
}

/// An in-dialog request (it carries a To tag, so it is never challenged)
/// outside any dialog set up through the proxy is refused 481 + Warning and
/// reaches nobody: otherwise a made-up To tag would carry an unauthenticated
/// MESSAGE "from alice" to bob. Inside a real dialog (alice INVITEd bob
/// through us) the ACK and BYE go through.
#[tokio::test]
async fn in_dialog_request_outside_any_proxied_dialog_is_refused() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut bob = Peer::new(addr, "bob", "bob").await;
    assert_eq!(bob.register("b1", "phone").await.status_code.code(), 200);
    // Mallory does not know alice's password and sends no credentials.
    let mut mallory = Peer::new(addr, "alice", "not-her-password").await;
    let mut forged = message(&mut mallory, &[]);
    forged.headers.remove_named("To");
    forged
        .headers
        .push(make_header("To", "<sip:bob@isc.local>;tag=made-up"));
    mallory.send(forged).await;
    let resp = mallory.final_response().await;
    assert_eq!(resp.status_code.code(), 481);
    assert!(warning(&resp).contains("no dialog"), "{}", warning(&resp));
    assert!(bob.recv_within(0.5).await.is_none(), "bob got nothing");

    // A real dialog through the proxy: INVITE, 200, ACK, BYE.
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let sdp = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = alice.request(
        "INVITE",
        "sip:bob@isc.local",
        "sip:bob@isc.local",
        &[
            format!("Contact: <sip:alice@{}>", alice.addr()),
            "Content-Type: application/sdp".into(),
        ],
        sdp,
    );
    let call = tokio::spawn(async move {
        let ok = alice.send_authenticated(invite.clone()).await;
        (alice, ok)
    });
    let got = loop {
        let r = common::request(bob.recv().await);
        if r.method == rsip::Method::Invite {
            break r;
        }
    };
    bob.answer(&got, 200).await;
    let (alice, ok) = call.await.unwrap();
    assert_eq!(ok.status_code.code(), 200);
    let from = ok.headers.get_raw("From").unwrap();
    let to = ok.headers.get_raw("To").unwrap();
    let call_id = ok.headers.get_raw("Call-ID").unwrap();
    for (method, seq) in [("ACK", 1), ("BYE", 9)] {
        let text = format!(
            "{method} sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bK{method}x;rport\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n",
            a = alice.addr()
        );
        let Ok(rsip::SipMessage::Request(req)) =
            isc::proto::sip::message::parse_message(text.as_bytes())
        else {
            panic!("parses")
        };
        alice.send(req).await;
        let at_bob = loop {
            let r = common::request(bob.recv().await);
            if r.method.to_string() == method {
                break r;
            }
        };
        assert_eq!(at_bob.headers.get_raw("Call-ID").unwrap(), call_id);
    }
    server.shutdown().await;
}
