//! Headless mode's chat words end to end: two `run_headless` sessions on
//! in-memory pipes against the bundled server.

mod headless_support;

use headless_support::Session;
use isc::server::runner::{Server, ServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chat_commands_and_events() {
    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let state = tempfile::tempdir().unwrap();
    let mut alice = Session::start(server.local_addr(), "alice", "laptop", state.path()).await;
    alice.expect("registered").await;
    let mut bob = Session::start(server.local_addr(), "bob", "phone", state.path()).await;
    bob.expect("registered").await;

    alice.say(r#"{"cmd":"chat","to":"bob"}"#).await;
    let calling = alice.expect("chat_calling").await;
    assert_eq!(calling["to"], "sip:bob@isc.local");
    let a = calling["chat"].as_u64().unwrap();
    let inv = bob.expect("chat_invited").await;
    assert_eq!(inv["from"], "sip:alice@isc.local");
    let b = inv["chat"].as_u64().unwrap();
    bob.say(&format!("accept {b}")).await;
    assert_eq!(alice.expect("chat_started").await["chat"], a);
    bob.expect("chat_started").await;

    alice
        .say(&format!(
            r#"{{"cmd":"chat_send","chat":{a},"text":"hello over msrp"}}"#
        ))
        .await;
    let sent = alice.expect("chat_sent").await;
    let m = bob.expect("chat_message").await;
    assert_eq!(m["text"], "hello over msrp");
    assert_eq!(m["from"], "sip:alice@isc.local");
    assert!(m["at"].is_string());
    assert_eq!(
        alice.expect("chat_delivered").await["message_id"],
        sent["message_id"]
    );

    bob.say(&format!("chat_typing {b}")).await;
    let c = alice.expect("chat_composing").await;
    assert_eq!(c["active"], true);
    bob.say(&format!("say {b} hi alice")).await;
    assert_eq!(alice.expect("chat_message").await["text"], "hi alice");

    alice.say(&format!("bye {a}")).await;
    assert_eq!(alice.expect("chat_ended").await["reason"], "normal");
    assert_eq!(bob.expect("chat_ended").await["reason"], "normal");

    alice.say("quit").await;
    alice.expect("stopped").await;
    alice.task.await.unwrap().unwrap();
    bob.say("quit").await;
    bob.expect("stopped").await;
    bob.task.await.unwrap().unwrap();
    server.shutdown().await;
}
