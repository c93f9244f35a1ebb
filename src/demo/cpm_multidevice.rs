//! `cpm-multidevice` (FLOWS.md, seed 001 8.3.2.1 / 8.3.2.1.1): Alice chats
//! with Bob, whose three devices all answer; Alice's first message reaches
//! all three; Bob types on his phone, the tv and the laptop get BYE with
//! "Call completed elsewhere", and the chat goes on with the phone.

use crate::client::chat::{ChatEvent, ChatId, EndReason};
use crate::client::chats::ChatCommand;
use crate::client::{ClientEvent, Command};

use super::{DemoError, Device, Scenario, ScriptFuture, Stage, Step, not_seen};

pub const SCENARIO: Scenario = Scenario::new(
    "cpm-multidevice",
    "Alice's chat forks to Bob's three devices; he types on the phone, the others are released",
    &["alice/laptop", "bob/tv", "bob/phone", "bob/laptop"],
    STEPS,
    script,
)
.columns(&[
    "alice/laptop",
    "server:reg",
    "server:cpm",
    "bob/tv",
    "bob/phone",
    "bob/laptop",
])
.function(cpm_function);

const STEPS: &[Step] = &[
    Step::wire("1", "alice/laptop", "server:cpm", "INVITE").carrying("oma.cpm.session"),
    Step::wire("2a", "server:cpm", "bob/tv", "INVITE").carrying(";gr="),
    Step::wire("2b", "server:cpm", "bob/phone", "INVITE").carrying(";gr="),
    Step::wire("2c", "server:cpm", "bob/laptop", "INVITE").carrying(";gr="),
    Step::wire("3a", "bob/tv", "server:cpm", "200 OK (INVITE)"),
    Step::wire("3b", "bob/phone", "server:cpm", "200 OK (INVITE)"),
    Step::wire("3c", "bob/laptop", "server:cpm", "200 OK (INVITE)"),
    Step::wire("3d", "server:cpm", "alice/laptop", "200 OK (INVITE)"),
    Step::wire("3e", "alice/laptop", "server:cpm", "ACK"),
    Step::seen("4", "alice/laptop", "the chat is up"),
    Step::wire("4a", "alice/laptop", "server:cpm", "SEND"),
    Step::wire("4b", "server:cpm", "bob/tv", "SEND"),
    Step::wire("4c", "server:cpm", "bob/phone", "SEND"),
    Step::wire("4d", "server:cpm", "bob/laptop", "SEND"),
    Step::wire("5", "alice/laptop", "server:cpm", "SEND (message/cpim)").carrying("Hi Bob"),
    Step::wire("5a", "server:cpm", "bob/tv", "SEND (message/cpim)").carrying("Hi Bob"),
    Step::wire("5b", "server:cpm", "bob/phone", "SEND (message/cpim)").carrying("Hi Bob"),
    Step::wire("5c", "server:cpm", "bob/laptop", "SEND (message/cpim)").carrying("Hi Bob"),
    Step::seen("5d", "bob/tv", "shows Alice's message"),
    Step::seen("5e", "bob/phone", "shows Alice's message"),
    Step::seen("5f", "bob/laptop", "shows Alice's message"),
    Step::wire("6", "bob/phone", "server:cpm", "SEND").carrying("im-iscomposing"),
    Step::wire("7a", "server:cpm", "bob/tv", "BYE").carrying("Call completed elsewhere"),
    Step::wire("7b", "server:cpm", "bob/laptop", "BYE").carrying("Call completed elsewhere"),
    Step::seen("7c", "bob/tv", "its chat continued elsewhere"),
    Step::seen("7d", "bob/laptop", "its chat continued elsewhere"),
    Step::wire("8", "server:cpm", "alice/laptop", "SEND").carrying("im-iscomposing"),
    Step::seen("8a", "alice/laptop", "Bob is composing"),
    Step::wire("9a", "bob/phone", "server:cpm", "SEND (message/cpim)").carrying("Hi Alice"),
    Step::wire("9b", "server:cpm", "alice/laptop", "SEND (message/cpim)").carrying("Hi Alice"),
    Step::seen("9c", "alice/laptop", "shows Bob's answer"),
    Step::wire("9d", "alice/laptop", "server:cpm", "SEND (message/cpim)").carrying("phone only"),
    Step::wire("9e", "server:cpm", "bob/phone", "SEND (message/cpim)").carrying("phone only"),
    Step::seen("9f", "bob/phone", "shows Alice's next message"),
];

/// Sessions (INVITE dialogs and MSRP) belong to the CPM Participating
/// Function; registrations fall through to `server:reg`.
fn cpm_function(raw: &[u8]) -> Option<&'static str> {
    let method = raw.split(|b| *b == b' ').next().unwrap_or_default();
    match method {
        b"MSRP" | b"INVITE" | b"ACK" | b"BYE" | b"CANCEL" | b"UPDATE" | b"PRACK" => {
            Some("server:cpm")
        }
        _ => None,
    }
}

fn chat_of(e: &ClientEvent) -> Option<ChatId> {
    match e {
        ClientEvent::Chat(
            ChatEvent::Calling { chat, .. }
            | ChatEvent::Invited { chat, .. }
            | ChatEvent::Started { chat, .. },
        ) => Some(*chat),
        _ => None,
    }
}

/// Waits for an event that is no step of its own.
async fn wait(
    st: &Stage,
    dev: &Device,
    what: &str,
    pred: impl Fn(&ClientEvent) -> bool,
) -> Result<ClientEvent, DemoError> {
    dev.wait_for(st.left(), pred)
        .await
        .ok_or_else(|| not_seen("-", dev.name(), what))
}

fn chat(dev: &Device, cmd: ChatCommand) -> Result<(), DemoError> {
    dev.command(Command::Chat(cmd))
}

fn message(text: &'static str) -> impl Fn(&ClientEvent) -> bool {
    move |e| matches!(e, ClientEvent::Chat(ChatEvent::Message { text: t, .. }) if t.contains(text))
}

fn script(st: &mut Stage) -> ScriptFuture<'_> {
    Box::pin(async move {
        let bob = st.aor("bob");
        let alice = st.join("alice/laptop").await?;
        let mut bobs = Vec::new();
        for d in ["bob/tv", "bob/phone", "bob/laptop"] {
            bobs.push(st.join(d).await?);
        }

        // Steps 1–3: the INVITE forks; every device accepts.
        chat(
            &alice,
            ChatCommand::Start {
                to: bob.clone(),
                convergence_id: None,
            },
        )?;
        let ev = wait(st, &alice, "its chat calling", |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Calling { .. }))
        })
        .await?;
        let a = chat_of(&ev).ok_or_else(|| not_seen("1", "alice/laptop", "a chat id"))?;
        let mut ids = Vec::new();
        for d in &bobs {
            let ev = wait(st, d, "the invitation", |e| {
                matches!(e, ClientEvent::Chat(ChatEvent::Invited { .. }))
            })
            .await?;
            let id = chat_of(&ev).ok_or_else(|| not_seen("2", d.name(), "a chat id"))?;
            chat(d, ChatCommand::Accept { chat: id })?;
            ids.push(id);
        }
        st.expect("4", &alice, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Started { .. }))
        })
        .await?;
        for d in &bobs {
            wait(st, d, "its chat up", |e| {
                matches!(e, ClientEvent::Chat(ChatEvent::Started { .. }))
            })
            .await?;
        }

        // Step 5: Alice's message reaches all three.
        chat(
            &alice,
            ChatCommand::Send {
                chat: a,
                text: "Hi Bob, which device is this?".into(),
            },
        )?;
        for (step, d) in ["5d", "5e", "5f"].into_iter().zip(&bobs) {
            st.expect(step, d, message("Hi Bob")).await?;
        }

        // Steps 6–8: Bob types on the phone; the others are released.
        let (tv, phone, laptop) = (&bobs[0], &bobs[1], &bobs[2]);
        chat(phone, ChatCommand::Typing { chat: ids[1] })?;
        let elsewhere = |e: &ClientEvent| {
            matches!(
                e,
                ClientEvent::Chat(ChatEvent::Ended {
                    reason: EndReason::CompletedElsewhere,
                    ..
                })
            )
        };
        st.expect("7c", tv, elsewhere).await?;
        st.expect("7d", laptop, elsewhere).await?;
        st.expect("8a", &alice, |e| {
            matches!(
                e,
                ClientEvent::Chat(ChatEvent::Composing { active: true, .. })
            )
        })
        .await?;

        // Step 9: the conversation goes on with the phone alone.
        chat(
            phone,
            ChatCommand::Send {
                chat: ids[1],
                text: "Hi Alice, on my phone".into(),
            },
        )?;
        st.expect("9c", &alice, message("Hi Alice")).await?;
        chat(
            &alice,
            ChatCommand::Send {
                chat: a,
                text: "phone only from now on".into(),
            },
        )?;
        st.expect("9f", phone, message("phone only")).await?;
        Ok(())
    })
}
