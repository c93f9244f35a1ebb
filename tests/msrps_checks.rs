//! RFC 4975 §8.1 / §14.1 at the CPM Participating Function: an offer
//! whose m-line proto and a=path scheme disagree, an msrps: offer to a
//! server without TLS, and an msrps: offer asking the server to connect
//! each get 488 with a Warning saying why.

mod common;
mod cpm_common;

use common::Peer;
use cpm_common::*;
use isc::proto::sip::headers::HeadersExt;

/// Alice INVITEs bob (one registered device) with an MSRP line of `proto`,
/// `path` and `setup`; the final response.
async fn offer(tls_on: bool, proto: &str, path: &str, setup: &str) -> rsip::Response {
    let dir = tempfile::tempdir().unwrap();
    let server = start(|o| {
        o.config.data_dir = Some(dir.path().to_owned());
        o.config.tls.enabled = tls_on;
        o.config.tls.sip_port = 0;
    })
    .await;
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let _bob = Device::register(addr, "bob", "bob-phone", "phone").await;
    let sdp = format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=message 7 {proto} *\r\na=accept-types:message/cpim\r\na=path:{path}\r\n\
         a=setup:{setup}\r\n"
    );
    let req = cpm_invite(&mut alice, "sip:bob@isc.local", &sdp, &[]);
    let req = send_invite(&mut alice, req).await;
    let resp = final_for(&alice, &req).await;
    server.shutdown().await;
    resp
}

fn assert_488(r: &rsip::Response, words: &str) {
    assert_eq!(r.status_code.code(), 488, "{r}");
    let w = r.headers.get_raw("Warning").unwrap_or_default();
    assert!(w.starts_with("399 isc.local \""), "{w}");
    assert!(w.contains(words), "{w}");
}

#[tokio::test]
async fn tcp_msrp_with_an_msrps_path_gets_488() {
    let r = offer(
        true,
        "TCP/MSRP",
        "msrps://127.0.0.1:7/alicesess;tcp",
        "actpass",
    )
    .await;
    assert_488(
        &r,
        "does not match a=path URI msrps://127.0.0.1:7/alicesess;tcp",
    );
}

#[tokio::test]
async fn tcp_tls_msrp_with_an_msrp_path_gets_488() {
    let r = offer(
        true,
        "TCP/TLS/MSRP",
        "msrp://127.0.0.1:7/alicesess;tcp",
        "actpass",
    )
    .await;
    assert_488(&r, "m=message proto TCP/TLS/MSRP does not match");
}

#[tokio::test]
async fn msrps_to_a_server_without_tls_gets_488() {
    let r = offer(
        false,
        "TCP/TLS/MSRP",
        "msrps://127.0.0.1:7/alicesess;tcp",
        "actpass",
    )
    .await;
    assert_488(&r, "MSRP over TLS (TCP/TLS/MSRP) is not enabled here");
}

#[tokio::test]
async fn msrps_asking_the_server_to_connect_gets_488() {
    let r = offer(
        true,
        "TCP/TLS/MSRP",
        "msrps://127.0.0.1:7/alicesess;tcp",
        "passive",
    )
    .await;
    assert_488(&r, "the device connects");
}
