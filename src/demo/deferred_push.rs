//! `deferred-push` (seed 002 D.2, seed 003 12.4.2.2; FLOWS.md): carol
//! pages bob and chats with him while he has no device; the server stores
//! it all. Bob's phone registers: the store INVITEs it (sendonly, Contact
//! `automata`), pushes each message over MSRP (`message/sip` for a pager
//! message, a multipart of `message/sip` + `message/msrp` for the chat's),
//! deletes each on its MSRP 200 and says BYE. Bob's phone shows each once,
//! in carol's conversation, at its original time, marked delivered late; a
//! second registration brings nothing more.

use super::{Device, Scenario, ScriptFuture, Stage, Step};
use crate::client::chat::ChatEvent;
use crate::client::chats::ChatCommand;
use crate::client::deferred::{DeferredEvent, DeferredMode, LateKind};
use crate::client::{ClientEvent, Command};
use crate::server::runner::ServerOptions;

pub const SCENARIO: Scenario = Scenario::new(
    "deferred-push",
    "seed 002 D.2: messages for offline Bob are stored, then pushed over MSRP when he registers",
    &["carol/phone", "bob/phone"],
    STEPS,
    script,
)
.columns(&[
    "carol/phone",
    "server",
    "server:store",
    "server:reg",
    "bob/phone",
])
.function(store_function)
.server_options(options);

/// Pager messages and chat messages carol sends.
const PAGERS: &[&str] = &["are you up?", "call me when you're back"];
const CHATS: &[&str] = &["bob, movie tonight?", "Sintel at 8"];

const STEPS: &[Step] = &[
    Step::wire("0", "carol/phone", "server", "MESSAGE").carrying(PAGERS_0),
    Step::wire("0", "server", "carol/phone", "202"),
    Step::wire("0", "carol/phone", "server", "INVITE"),
    Step::wire("0", "server", "carol/phone", "200 OK (INVITE)").carrying("automata"),
    Step::wire("0", "carol/phone", "server:store", "SEND (message/cpim)"),
    Step::seen(
        "0",
        "carol/phone",
        "each message accepted for later (202 / MSRP 200)",
    ),
    Step::wire("1", "bob/phone", "server:reg", "REGISTER"),
    Step::wire("2-3", "server:store", "bob/phone", "INVITE").carrying("automata"),
    Step::wire("4-5", "bob/phone", "server:store", "200 OK (INVITE)").carrying("a=recvonly"),
    Step::wire("6-7", "server:store", "bob/phone", "ACK"),
    Step::wire("8a", "server:store", "bob/phone", "SEND (message/sip)").carrying(PAGERS_0),
    Step::wire("9a", "bob/phone", "server:store", "200"),
    Step::wire("8b", "server:store", "bob/phone", "SEND (multipart/mixed").carrying("message/msrp"),
    Step::wire("9b", "bob/phone", "server:store", "200"),
    Step::wire("10-11", "server:store", "bob/phone", "BYE"),
    Step::wire("12-13", "bob/phone", "server:store", "200 OK (BYE)"),
    Step::seen(
        "14",
        "bob/phone",
        "each message once, from carol, at its original time, marked late",
    ),
    Step::seen(
        "15",
        "bob/phone",
        "a second registration brings nothing more",
    ),
];

const PAGERS_0: &str = "are you up?";

/// Bob's messages are pushed on registration (`offline-delivery` active).
fn options(o: &mut ServerOptions) {
    o.config.users = o.config.effective_users();
    for u in &mut o.config.users {
        if u.name == "bob" {
            u.offline_delivery = true;
        }
    }
}

/// The Deferred Messaging Function's messages: SIP from or to
/// `Deferred@`, and every MSRP frame (in this scenario only the store
/// speaks MSRP: it takes carol's chat and pushes to bob).
fn store_function(raw: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(4096)]);
    if text.starts_with("MSRP ") {
        return Some("server:store");
    }
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .any(|l| {
            let l = l.to_ascii_lowercase();
            (l.starts_with("from:") || l.starts_with("to:")) && l.contains("sip:deferred@")
        })
        .then_some("server:store")
}

fn late(e: &ClientEvent) -> Option<&crate::client::deferred::LateMessage> {
    match e {
        ClientEvent::Deferred(DeferredEvent::Message { message, .. }) => Some(message),
        _ => None,
    }
}

async fn chat(st: &mut Stage, carol: &Device, bob: &str) -> Result<(), super::DemoError> {
    carol.command(Command::Chat(ChatCommand::Start {
        to: bob.to_string(),
        convergence_id: None,
    }))?;
    let started = st
        .expect("0", carol, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Started { .. }))
        })
        .await?;
    let ClientEvent::Chat(ChatEvent::Started { chat, .. }) = started else {
        return Ok(());
    };
    for text in CHATS {
        carol.command(Command::Chat(ChatCommand::Send {
            chat,
            text: (*text).to_string(),
        }))?;
        let sent = st
            .expect("0", carol, move |e| {
                matches!(e, ClientEvent::Chat(ChatEvent::Sent { chat: c, text: t, .. }) if *c == chat && t == text)
            })
            .await?;
        let ClientEvent::Chat(ChatEvent::Sent { message_id, .. }) = sent else {
            return Ok(());
        };
        // the store's MSRP 200 comes only once the message is stored
        st.expect("0", carol, move |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Delivered { message_id: m, .. }) if *m == message_id)
        })
        .await?;
    }
    carol.command(Command::Chat(ChatCommand::Bye { chat }))?;
    st.expect(
        "0",
        carol,
        move |e| matches!(e, ClientEvent::Chat(ChatEvent::Ended { chat: c, .. }) if *c == chat),
    )
    .await?;
    Ok(())
}

fn script(st: &mut Stage) -> ScriptFuture<'_> {
    Box::pin(async move {
        let bob = st.aor("bob");
        let carol_aor = st.aor("carol");
        let carol = st.join("carol/phone").await?;
        // Step 0: bob has no device; each is accepted (202) and stored.
        for (i, text) in PAGERS.iter().enumerate() {
            carol.message(&bob, text)?;
            // the UA numbers its pager messages m1, m2, ...
            let id = format!("m{}", i + 1);
            st.expect(
                "0",
                &carol,
                move |e| matches!(e, ClientEvent::MessageDelivered { id: i, .. } if *i == id),
            )
            .await?;
        }
        let accepted = carol
            .events()
            .iter()
            .filter(|e| matches!(e, ClientEvent::MessageDelivered { status: 202, .. }))
            .count();
        if accepted != PAGERS.len() {
            return Err(super::DemoError::NotSeen {
                step: "0".into(),
                who: "carol/phone".into(),
                what: format!(
                    "{} pager messages stored (202), got {accepted}",
                    PAGERS.len()
                ),
            });
        }
        chat(st, &carol, &bob).await?;

        // Steps 1–13: bob's phone registers and takes the push.
        let phone = st.join("bob/phone").await?;
        st.expect("14", &phone, |e| {
            matches!(
                e,
                ClientEvent::Deferred(DeferredEvent::Ended {
                    mode: DeferredMode::Push,
                    ..
                })
            )
        })
        .await?;
        let shown: Vec<_> = phone.events().iter().filter_map(late).cloned().collect();
        let texts: Vec<String> = shown.iter().map(|m| m.text()).collect();
        let expected: Vec<String> = PAGERS.iter().chain(CHATS).map(|s| s.to_string()).collect();
        let kinds_ok = shown
            .iter()
            .take(PAGERS.len())
            .all(|m| m.kind == LateKind::Pager)
            && shown
                .iter()
                .skip(PAGERS.len())
                .all(|m| m.kind == LateKind::Session);
        let dated = shown
            .iter()
            .all(|m| m.sent_unix.is_some() && m.from == carol_aor);
        if texts != expected || !kinds_ok || !dated {
            return Err(super::DemoError::NotSeen {
                step: "14".into(),
                who: "bob/phone".into(),
                what: format!("{expected:?} once each, from carol, dated; got {texts:?}"),
            });
        }
        // Step 15: once more, nothing.
        phone.command(Command::Register)?;
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let again = phone.events().iter().filter_map(late).count();
        let starts = phone
            .events()
            .iter()
            .filter(|e| matches!(e, ClientEvent::Deferred(DeferredEvent::Started { .. })))
            .count();
        if again != expected.len() || starts != 1 {
            return Err(super::DemoError::NotSeen {
                step: "15".into(),
                who: "bob/phone".into(),
                what: format!("nothing pushed again ({again} messages, {starts} pushes)"),
            });
        }
        st.expect("15", &phone, |_| true).await?;
        Ok(())
    })
}
