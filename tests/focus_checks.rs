//! The focus's checks over real sockets (seed 003 7.2.1.1–7.2.1.4), one
//! test per check with its status and Warning; pre-defined groups, public
//! groups, rejoin; SUBSCRIBE only for participants.

mod common;
mod cpm_common;
mod focus_common;

use common::Peer;
use cpm_common::*;
use focus_common::*;
use isc::config::{GroupConfig, JoiningPolicy};
use isc::proto::bodies::resource_lists::Entry;
use isc::proto::msrp::MsrpUri;
use isc::proto::sip::headers::HeadersExt;

fn group(
    name: &str,
    members: &[&str],
    max: u32,
    policy: JoiningPolicy,
    public: bool,
) -> GroupConfig {
    GroupConfig {
        name: name.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        max_participants: max,
        joining_policy: policy,
        public,
    }
}

async fn with_groups() -> isc::server::runner::ServerHandle {
    start_focus(|o| {
        o.config.max_adhoc_group_size = 2;
        o.config.groups = vec![
            group(
                "friends",
                &["alice", "bob"],
                16,
                JoiningPolicy::MembersOnly,
                false,
            ),
            group(
                "duo",
                &["alice", "bob", "carol"],
                1,
                JoiningPolicy::MembersOnly,
                false,
            ),
            group("lobby", &[], 16, JoiningPolicy::MembersOnly, true),
        ];
    })
    .await
}

/// `user` INVITEs `uri` (joining) with `extra` headers; the final response.
async fn join(
    server: &isc::server::runner::ServerHandle,
    user: &str,
    uri: &str,
    sdp: Option<&str>,
    extra: &[&str],
) -> (Peer, rsip::Request, rsip::Response) {
    let mut p = Peer::new(server.local_addr(), user, user).await;
    let msrp = MsrpUri::new("127.0.0.1", 9, format!("{user}sess"));
    let sdp = sdp
        .map(str::to_string)
        .unwrap_or_else(|| msrp_sdp(&msrp, "actpass", ""));
    let req = join_invite(&mut p, uri, &sdp, extra);
    let req = send_invite(&mut p, req).await;
    let resp = final_for(&p, &req).await;
    (p, req, resp)
}

fn warning(resp: &rsip::Response) -> String {
    resp.headers.get_raw("Warning").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adhoc_list_too_long_is_486_too_many_participants() {
    let server = with_groups().await;
    let mut alice = Peer::new(server.local_addr(), "alice", "alice").await;
    let uri = MsrpUri::new("127.0.0.1", 7, "a");
    let req = factory_invite(
        &mut alice,
        &msrp_sdp(&uri, "actpass", ""),
        vec![
            Entry::new("sip:bob@isc.local"),
            Entry::new("sip:carol@isc.local"),
        ],
        &[],
    );
    let req = send_invite(&mut alice, req).await;
    let resp = final_for(&alice, &req).await;
    assert_eq!(resp.status_code.code(), 486);
    assert!(
        warning(&resp).contains("too many participants"),
        "{}",
        warning(&resp)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adhoc_all_invitees_fail_gives_the_lowest_error() {
    let server = with_groups().await;
    let bob = Device::register(server.local_addr(), "bob", "bob-1", "phone").await;
    let mut alice = Peer::new(server.local_addr(), "alice", "alice").await;
    let uri = MsrpUri::new("127.0.0.1", 7, "a");
    let req = factory_invite(
        &mut alice,
        &msrp_sdp(&uri, "actpass", ""),
        vec![Entry::new("sip:bob@isc.local")],
        &[],
    );
    let req = send_invite(&mut alice, req).await;
    let inv = recv_request(&bob.sip, rsip::Method::Invite).await;
    answer(&bob.sip, &inv, 180, "bt", None).await;
    // 180 once to the creator
    loop {
        match alice.recv().await {
            rsip::SipMessage::Response(r) if r.status_code.code() == 180 => break,
            _ => continue,
        }
    }
    answer(&bob.sip, &inv, 486, "bt", None).await;
    let resp = final_for(&alice, &req).await;
    assert_eq!(resp.status_code.code(), 486);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_session_identity_is_404() {
    let server = with_groups().await;
    let (_, _, resp) = join(&server, "alice", "sip:conf-nosuch@isc.local", None, &[]).await;
    assert_eq!(resp.status_code.code(), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isfocus_in_contact_is_403_isfocus_already_assigned() {
    let server = with_groups().await;
    let (_, _, resp) = join(
        &server,
        "alice",
        "sip:friends@isc.local",
        None,
        &["Contact: <sip:conf-x@other.example>;isfocus"],
    )
    .await;
    assert_eq!(resp.status_code.code(), 403);
    assert!(
        warning(&resp).contains("isfocus already assigned"),
        "{}",
        warning(&resp)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_is_403_by_joining_policy() {
    let server = with_groups().await;
    let (_, _, resp) = join(&server, "carol", "sip:friends@isc.local", None, &[]).await;
    assert_eq!(resp.status_code.code(), 403);
    assert!(
        warning(&resp).contains("not allowed to join"),
        "{}",
        warning(&resp)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_group_is_486_too_many_participants() {
    let server = with_groups().await;
    let (_a, _, ok) = join(&server, "alice", "sip:duo@isc.local", None, &[]).await;
    assert_eq!(ok.status_code.code(), 200);
    let (_, _, resp) = join(&server, "bob", "sip:duo@isc.local", None, &[]).await;
    assert_eq!(resp.status_code.code(), 486);
    assert!(
        warning(&resp).contains("too many participants"),
        "{}",
        warning(&resp)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_msrp_stream_is_488() {
    let server = with_groups().await;
    let sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let (_, _, resp) = join(&server, "alice", "sip:friends@isc.local", Some(sdp), &[]).await;
    assert_eq!(resp.status_code.code(), 488);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_joins_active_session_and_rejoins_after_leaving() {
    let server = with_groups().await;
    let (mut alice, areq, aok) = join(&server, "alice", "sip:friends@isc.local", None, &[]).await;
    assert_eq!(aok.status_code.code(), 200);
    let (identity, isfocus) = contact_uri(&aok);
    assert!(isfocus);
    assert_eq!(
        identity, "sip:friends@isc.local",
        "a group's session identity is its URI"
    );
    let ack = ack_2xx(&mut alice, &areq, &aok);
    alice.send(ack).await;
    let (mut bob, breq, bok) = join(&server, "bob", "sip:friends@isc.local", None, &[]).await;
    assert_eq!(bok.status_code.code(), 200);
    let ack = ack_2xx(&mut bob, &breq, &bok);
    bob.send(ack).await;
    // bob leaves and rejoins by the session identity (seed 003 7.2.1.4)
    let bye = uac_request(&mut bob, &breq, &bok, "BYE", 3, &[], "");
    bob.send(bye.clone()).await;
    assert_eq!(response_for(&bob, &bye).await.status_code.code(), 200);
    let uri = MsrpUri::new("127.0.0.1", 9, "bob2");
    let req = join_invite(&mut bob, &identity, &msrp_sdp(&uri, "actpass", ""), &[]);
    let req = send_auth(&mut bob, req).await;
    assert_eq!(final_for(&bob, &req).await.status_code.code(), 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_joins_a_public_group() {
    let server = with_groups().await;
    let (_, _, resp) = join(&server, "carol", "sip:lobby@isc.local", None, &[]).await;
    assert_eq!(resp.status_code.code(), 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_participants_may_subscribe() {
    let server = with_groups().await;
    let (mut alice, areq, aok) = join(&server, "alice", "sip:friends@isc.local", None, &[]).await;
    let ack = ack_2xx(&mut alice, &areq, &aok);
    alice.send(ack).await;
    let mut carol = Peer::new(server.local_addr(), "carol", "carol").await;
    let (_, resp) = subscribe(&mut carol, "sip:friends@isc.local").await;
    assert_eq!(resp.status_code.code(), 403);
    assert!(
        warning(&resp).contains("only participants"),
        "{}",
        warning(&resp)
    );
    let (_, resp) = subscribe(&mut alice, "sip:friends@isc.local").await;
    assert_eq!(resp.status_code.code(), 200);
    let (_, info) = next_notify(&alice).await;
    assert_eq!(info.version, 1);
    assert!(info.own_user().is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_hides_the_identity_in_notifies_and_refused_when_not_allowed() {
    let server = start_focus(|o| {
        o.config.groups = vec![group(
            "friends",
            &["alice", "bob", "carol"],
            16,
            JoiningPolicy::MembersOnly,
            false,
        )];
        user_mut(o, "carol").anonymity_allowed = false;
    })
    .await;
    let (mut alice, areq, aok) = join(&server, "alice", "sip:friends@isc.local", None, &[]).await;
    let ack = ack_2xx(&mut alice, &areq, &aok);
    alice.send(ack).await;
    let (_, resp) = subscribe(&mut alice, "sip:friends@isc.local").await;
    assert_eq!(resp.status_code.code(), 200);
    let _ = next_notify(&alice).await;
    let (_, _, bok) = join(
        &server,
        "bob",
        "sip:friends@isc.local",
        None,
        &["Privacy: id"],
    )
    .await;
    assert_eq!(bok.status_code.code(), 200);
    let (_, info) = next_notify(&alice).await;
    assert!(
        info.users
            .iter()
            .any(|u| u.entity == "sip:anonymous@anonymous.invalid"),
        "{info:?}"
    );
    assert!(!info.users.iter().any(|u| u.entity == "sip:bob@isc.local"));
    // seed 003 7.2.1.3 step 4: privacy not allowed → 403
    let (_, _, cresp) = join(
        &server,
        "carol",
        "sip:friends@isc.local",
        None,
        &["Privacy: id"],
    )
    .await;
    assert_eq!(cresp.status_code.code(), 403);
    assert!(warning(&cresp).contains("anonymity not allowed"));
    server.shutdown().await;
}
