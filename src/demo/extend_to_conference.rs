//! `extend-to-conference` (FLOWS.md, seed 002 App. M, seed 004 7.1.1.6):
//! Alice's 1-1 chat with Bob becomes a conference with Ted; Bob's client
//! takes the focus's INVITE with Replaces in place of the old chat.

use crate::client::ClientEvent;
use crate::client::chat::{ChatEvent, EndReason};
use crate::client::chats::ChatCommand;

use super::conference_state::{accept_invitation, chat, group_function, wait};
use super::{Scenario, ScriptFuture, Stage, Step, not_seen};

pub const SCENARIO: Scenario = Scenario::new(
    "extend-to-conference",
    "Alice extends her chat with Bob to a conference with Ted (Replaces)",
    &["alice", "bob", "ted"],
    STEPS,
    script,
)
.columns(&[
    "alice",
    "server:reg",
    "server:cpm",
    "server:focus",
    "bob",
    "ted",
])
.function(group_function);

const STEPS: &[Step] = &[
    Step::wire("1", "alice", "server:cpm", "INVITE"),
    Step::wire("2", "server:cpm", "alice", "200 OK (INVITE)"),
    Step::wire("2a", "alice", "server:cpm", "ACK"),
    Step::wire("3", "alice", "server:focus", "INVITE").carrying("?Replaces="),
    Step::wire("4", "server:focus", "bob", "INVITE").carrying("Replaces:"),
    Step::wire("5", "server:focus", "ted", "INVITE"),
    Step::wire("6", "bob", "server:focus", "200 OK (INVITE)"),
    Step::wire("7", "server:focus", "alice", "200 OK (INVITE)").carrying("isfocus"),
    Step::seen("7a", "alice", "the conference continues her chat with Bob"),
    Step::wire("8", "bob", "server:cpm", "BYE"),
    Step::seen("8a", "alice", "the old 1-1 dialog ended"),
    Step::wire("9", "ted", "server:focus", "200 OK (INVITE)"),
    Step::wire("10", "alice", "server:focus", "SEND (message/cpim)").carrying("Welcome Ted"),
    Step::wire("10a", "server:focus", "bob", "SEND (message/cpim)").carrying("Welcome Ted"),
    Step::wire("10b", "server:focus", "ted", "SEND (message/cpim)").carrying("Welcome Ted"),
    Step::seen("10c", "bob", "shows Alice's message in the conference"),
    Step::seen("10d", "ted", "shows Alice's message"),
    Step::wire("10e", "ted", "server:focus", "SEND (message/cpim)").carrying("Hi all"),
    Step::seen("10f", "alice", "shows Ted's message"),
    Step::seen("10g", "bob", "shows Ted's message"),
];

fn message(text: &'static str) -> impl Fn(&ClientEvent) -> bool {
    move |e| matches!(e, ClientEvent::Chat(ChatEvent::Message { text: t, .. }) if t.contains(text))
}

fn script(st: &mut Stage) -> ScriptFuture<'_> {
    Box::pin(async move {
        let (bob_aor, ted_aor) = (st.aor("bob"), st.aor("ted"));
        let alice = st.join("alice").await?;
        let bob = st.join("bob").await?;
        let ted = st.join("ted").await?;

        // Steps 1–2: the 1-1 chat.
        chat(
            &alice,
            ChatCommand::Start {
                to: bob_aor,
                convergence_id: None,
            },
        )?;
        accept_invitation(st, &bob).await?;
        let ev = wait(st, &alice, "her chat up", |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Started { .. }))
        })
        .await?;
        let ClientEvent::Chat(ChatEvent::Started { chat: one, .. }) = ev else {
            return Err(not_seen("2", "alice", "her chat"));
        };

        // Steps 3–9: extended with Ted; Bob's client replaces the old chat.
        chat(
            &alice,
            ChatCommand::Extend {
                chat: one,
                add: vec![ted_aor],
            },
        )?;
        let ted_chat = accept_invitation(st, &ted).await?;
        let ev = st
            .expect("7a", &alice, move |e| {
                matches!(e, ClientEvent::Chat(ChatEvent::GroupStarted { continues: Some(c), .. }) if *c == one)
            })
            .await?;
        let ClientEvent::Chat(ChatEvent::GroupStarted { chat: group, .. }) = ev else {
            return Err(not_seen("7a", "alice", "the conference"));
        };
        wait(st, &bob, "the conference in place of the chat", |e| {
            matches!(
                e,
                ClientEvent::Chat(ChatEvent::GroupStarted {
                    continues: Some(_),
                    ..
                })
            )
        })
        .await?;
        st.expect("8a", &alice, move |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Ended { chat, reason: EndReason::Normal }) if *chat == one)
        })
        .await?;
        wait(st, &ted, "the conference up", |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Started { .. }))
        })
        .await?;

        // Step 10: all three talk.
        chat(
            &alice,
            ChatCommand::Send {
                chat: group,
                text: "Welcome Ted!".into(),
            },
        )?;
        st.expect("10c", &bob, message("Welcome Ted")).await?;
        st.expect("10d", &ted, message("Welcome Ted")).await?;
        chat(
            &ted,
            ChatCommand::Send {
                chat: ted_chat,
                text: "Hi all".into(),
            },
        )?;
        st.expect("10f", &alice, message("Hi all")).await?;
        st.expect("10g", &bob, message("Hi all")).await?;
        Ok(())
    })
}
