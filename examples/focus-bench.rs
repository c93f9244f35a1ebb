//! The conference focus under load: a 50-participant ad-hoc conference
//! (alice + 49 invitees, one device each, raw SIP/MSRP peers over loopback)
//! and one message from alice relayed to all 49 others. Prints figures;
//! asserts nothing.
//!
//!     cargo run --example focus-bench [-- MESSAGES]

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "../tests/cpm_common/mod.rs"]
#[allow(unused_imports)]
mod cpm_common;
#[path = "../tests/focus_common/mod.rs"]
#[allow(unused_imports)]
mod focus_common;

use std::time::Instant;

use cpm_common::*;
use focus_common::*;
use isc::config::UserConfig;
use isc::proto::bodies::resource_lists::Entry;
use isc::proto::msrp::MsrpUri;

const INVITEES: usize = 49;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let names: Vec<String> = (1..=INVITEES).map(|i| format!("user{i}")).collect();
    let server = start(|o| {
        o.config.max_adhoc_group_size = 64;
        o.config.users = std::iter::once("alice".to_string())
            .chain(names.iter().cloned())
            .map(|n| UserConfig::new(&n, &n))
            .collect();
    })
    .await;
    let addr = server.local_addr();
    let t0 = Instant::now();
    let mut devs = Vec::new();
    for n in &names {
        devs.push(Device::register(addr, n, &format!("{n}-dev"), "dev").await);
    }
    let registered = t0.elapsed();

    let t1 = Instant::now();
    let mut alice = common::Peer::new(addr, "alice", "alice").await;
    let alice_uri = MsrpUri::new("127.0.0.1", 7, "alicesess");
    let entries = names
        .iter()
        .map(|n| Entry::new(format!("sip:{n}@isc.local")))
        .collect();
    let req = factory_invite(
        &mut alice,
        &msrp_sdp(&alice_uri, "actpass", ""),
        entries,
        &[],
    );
    let invite = send_invite(&mut alice, req).await;
    let mut conns = Vec::new();
    for d in &devs {
        let inv = recv_request(&d.sip, rsip::Method::Invite).await;
        answer(
            &d.sip,
            &inv,
            200,
            "t",
            Some(&msrp_sdp(&d.uri, "passive", "")),
        )
        .await;
    }
    let ok = final_for(&alice, &invite).await;
    let ack = ack_2xx(&mut alice, &invite, &ok);
    alice.send(ack).await;
    for d in &devs {
        let mut c = MsrpConn::accept(&d.listener).await;
        let _bind = c.recv_request().await;
        conns.push(c);
    }
    let (identity, _) = contact_uri(&ok);
    let path = sdp_path(&ok.body);
    let mut a = MsrpConn::connect(server.msrp_addr()).await;
    a.send(&bind_send(&path, &alice_uri)).await;
    let _ = a.recv().await;
    let set_up = t1.elapsed();

    println!("focus bench: 1 sender, {INVITEES} receivers (debug build is slower than --release)");
    println!("  register {INVITEES} devices     {registered:>10.2?}");
    println!("  conference set up (SIP+MSRP) {set_up:>10.2?}");
    let mut total = std::time::Duration::ZERO;
    for i in 0..messages {
        let m = cpim_send(
            &path,
            &alice_uri,
            &format!("m{i}"),
            "sip:alice@isc.local",
            &identity,
            "hello everybody",
        );
        let start = Instant::now();
        a.send(&m).await;
        for c in &mut conns {
            let _ = c.recv_request().await;
        }
        let took = start.elapsed();
        total += took;
        let _ = a.recv().await;
        println!("  message {i}: reached all {INVITEES} in {took:>10.2?}");
    }
    if messages > 0 {
        println!(
            "  mean relay time to all       {:>10.2?}",
            total / messages as u32
        );
    }
    server.shutdown().await;
}
