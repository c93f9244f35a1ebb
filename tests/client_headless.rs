//! Headless mode end to end: two `run_headless` sessions (alice, bob) on
//! in-memory stdin/stdout pipes, against the bundled server.

mod headless_support;

use headless_support::Session;
use isc::server::runner::{Server, ServerOptions};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_headless_clients_chat() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let state = tempfile::tempdir().unwrap();
    let mut alice = Session::start(server.local_addr(), "alice", "tv", state.path()).await;
    let started = alice.expect("started").await;
    assert_eq!(started["aor"], "sip:alice@isc.local");
    let reg = alice.expect("registered").await;
    assert!(reg["gruu"].as_str().unwrap().contains("gr="));
    let mut bob = Session::start(server.local_addr(), "bob", "phone", state.path()).await;
    bob.expect("registered").await;

    alice.say("typing bob").await;
    let c = bob.expect("composing").await;
    assert_eq!(c["from"], "sip:alice@isc.local");
    assert_eq!(c["active"], true);
    alice
        .say(r#"{"cmd":"send","to":"sip:bob@isc.local","text":"hi bob","id":"a1"}"#)
        .await;
    let d = alice.expect("delivered").await;
    assert_eq!(d["id"], "a1");
    let m = bob.expect("message").await;
    assert_eq!(m["text"], "hi bob");
    assert_eq!(m["from"], "sip:alice@isc.local");

    bob.say("send alice hello back").await;
    assert_eq!(alice.expect("message").await["text"], "hello back");

    alice.say("what is this").await;
    assert!(
        alice.expect("error").await["reason"]
            .as_str()
            .unwrap()
            .contains("unknown")
    );
    alice.say("devices").await;
    let devs = alice.expect("devices").await;
    assert!(
        devs["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["self"] == true)
    );

    alice.say("quit").await;
    alice.expect("unregistered").await;
    alice.expect("stopped").await;
    alice.task.await.unwrap().unwrap();
    // EOF quits too
    bob.stdin.shutdown().await.unwrap();
    bob.expect("stopped").await;
    bob.task.await.unwrap().unwrap();
    server.shutdown().await;
}
