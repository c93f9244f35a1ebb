//! Deferred messages in headless mode, end to end: carol's pager messages
//! wait for bob (retrieval user); bob's `run_headless` session is told
//! how many wait, retrieves them with the `deferred` command and prints
//! each as a `deferred_message` line marked late, with its original Date
//! and Call-ID; a refused retrieval prints a `deferred_failed` line.

mod deferred_client_support;
mod headless_support;

use deferred_client_support::*;
use headless_support::Session;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_bob_is_told_and_retrieves() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let addr = server.local_addr();
    let mut carol = client(addr, "carol", "phone").await;
    let a = carol_pages(&mut carol, "first").await;
    let b = carol_pages(&mut carol, "second").await;
    store_reaches(dir.path(), 2).await;

    let state = tempfile::tempdir().unwrap();
    let mut bob = Session::start(addr, "bob", "phone", state.path()).await;
    bob.expect("registered").await;
    bob.say(r#"{"cmd":"deferred_watch"}"#).await;
    let w = bob.expect("deferred_waiting").await;
    assert_eq!(w["count"], 2);
    assert_eq!(w["text"], "2 messages waiting");

    bob.say("deferred").await;
    let s = bob.expect("deferred_started").await;
    assert_eq!(s["mode"], "retrieval");
    for sent in [&a, &b] {
        let m = bob.expect("deferred_message").await;
        assert_eq!(m["text"], sent.text.as_str());
        assert_eq!(m["call_id"], sent.call_id.as_str());
        assert_eq!(m["from"], "sip:carol@isc.local");
        assert_eq!(m["kind"], "pager");
        assert_eq!(m["late"], true);
        assert!(m["date"].as_str().unwrap().ends_with(" GMT"), "{m}");
        assert!(m["sent_unix"].as_i64().is_some(), "{m}");
    }
    let e = bob.expect("deferred_ended").await;
    assert_eq!(e["received"], 2);
    assert_eq!(bob.expect("deferred_waiting").await["count"], 0);
    store_reaches(dir.path(), 0).await;

    // Another store's URI: 404, said plainly.
    bob.say(r#"{"cmd":"deferred","service":"sip:Deferred@example.org"}"#)
        .await;
    let f = bob.expect("deferred_failed").await;
    assert_eq!(f["status"], 404);
    assert!(
        f["text"]
            .as_str()
            .unwrap()
            .starts_with("deferred messages: no such message store (404 Not Found)"),
        "{f}"
    );

    bob.say("quit").await;
    bob.expect("stopped").await;
    carol.shutdown().await;
    server.shutdown().await;
}
