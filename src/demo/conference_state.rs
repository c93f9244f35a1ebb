//! `conference-state` (FLOWS.md, seed 002 D.1, seed 004 7.1.1.11 /
//! 7.2.2.10): Alice creates an ad-hoc group with Bob, subscribes to its
//! state, sees Carol join and Bob leave.

use crate::client::chat::{ChatEvent, ChatId};
use crate::client::chats::ChatCommand;
use crate::client::group::{RosterEntry, RosterStatus, same_uri};
use crate::client::{ClientEvent, Command};

use super::{DemoError, Device, Scenario, ScriptFuture, Stage, Step, not_seen};

pub const SCENARIO: Scenario = Scenario::new(
    "conference-state",
    "Alice watches her group's state: Carol joins, Bob leaves",
    &["alice", "bob", "carol"],
    STEPS,
    script,
)
.columns(&[
    "alice",
    "server:reg",
    "server:focus",
    "server:cpm",
    "bob",
    "carol",
])
.function(group_function);

const STEPS: &[Step] = &[
    Step::seen("0", "alice", "her group with Bob is up (session identity)"),
    Step::wire("1", "alice", "server:focus", "SUBSCRIBE").carrying("+g.oma.sip-im"),
    Step::wire("2", "server:focus", "alice", "200 OK (SUBSCRIBE)"),
    Step::wire("3", "server:focus", "alice", "NOTIFY").carrying("yourown"),
    Step::seen("3a", "alice", "herself (own) and Bob, joined"),
    Step::wire("4", "alice", "server:focus", "200 OK (NOTIFY)"),
    Step::wire("5", "carol", "server:focus", "INVITE").carrying("INVITE sip:conf-"),
    Step::wire("6", "server:focus", "alice", "NOTIFY").carrying("carol"),
    Step::seen("6a", "alice", "Carol joined"),
    Step::wire("7", "bob", "server:focus", "BYE"),
    Step::wire("8", "server:focus", "alice", "NOTIFY").carrying("disconnected"),
    Step::seen("8a", "alice", "Bob left"),
];

/// The conference focus for its factory, session identities, conference
/// NOTIFYs and MSRP sessions; other sessions belong to the CPM function.
pub fn group_function(raw: &[u8]) -> Option<&'static str> {
    let head = &raw[..raw.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let first = text.lines().next().unwrap_or("");
    let method = first.split(' ').next().unwrap_or("");
    if method == "MSRP" {
        return Some(if text.contains("/focus") {
            "server:focus"
        } else {
            "server:cpm"
        });
    }
    let focus = first.contains("sip:conf-")
        || text.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            (l.starts_with("event:") || l.starts_with("o:")) && l.contains("conference")
                || l.starts_with("contact:") && l.contains("isfocus")
        });
    if focus {
        return Some("server:focus");
    }
    match method {
        "INVITE" | "ACK" | "BYE" | "CANCEL" | "UPDATE" | "REFER" => Some("server:cpm"),
        _ => None,
    }
}

/// Waits for an event that is no step of its own.
pub(super) async fn wait(
    st: &Stage,
    dev: &Device,
    what: &str,
    pred: impl Fn(&ClientEvent) -> bool,
) -> Result<ClientEvent, DemoError> {
    dev.wait_for(st.left(), pred)
        .await
        .ok_or_else(|| not_seen("-", dev.name(), what))
}

pub(super) fn chat(dev: &Device, cmd: ChatCommand) -> Result<(), DemoError> {
    dev.command(Command::Chat(cmd))
}

/// Accepts the next invitation `dev` gets; its chat id.
pub(super) async fn accept_invitation(st: &Stage, dev: &Device) -> Result<ChatId, DemoError> {
    let ev = wait(st, dev, "an invitation", |e| {
        matches!(e, ClientEvent::Chat(ChatEvent::Invited { .. }))
    })
    .await?;
    let ClientEvent::Chat(ChatEvent::Invited { chat: id, .. }) = ev else {
        return Err(not_seen("-", dev.name(), "an invitation"));
    };
    chat(dev, ChatCommand::Accept { chat: id })?;
    Ok(id)
}

/// A roster event in which `pred` holds for `user`'s entry.
pub(super) fn roster_has(
    user: String,
    pred: impl Fn(&RosterEntry) -> bool,
) -> impl Fn(&ClientEvent) -> bool {
    move |e| match e {
        ClientEvent::Chat(ChatEvent::Roster { entries, .. }) => {
            entries.iter().any(|r| same_uri(&r.user, &user) && pred(r))
        }
        _ => false,
    }
}

fn script(st: &mut Stage) -> ScriptFuture<'_> {
    Box::pin(async move {
        let (bob_aor, carol_aor, alice_aor) = (st.aor("bob"), st.aor("carol"), st.aor("alice"));
        let alice = st.join("alice").await?;
        let bob = st.join("bob").await?;
        let carol = st.join("carol").await?;

        // The ad-hoc group of Alice and Bob.
        chat(
            &alice,
            ChatCommand::CreateGroup {
                invitees: vec![bob_aor.clone()],
            },
        )?;
        let bob_chat = accept_invitation(st, &bob).await?;
        let ev = st
            .expect("0", &alice, |e| {
                matches!(e, ClientEvent::Chat(ChatEvent::GroupStarted { .. }))
            })
            .await?;
        let ClientEvent::Chat(ChatEvent::GroupStarted { identity, .. }) = ev else {
            return Err(not_seen("0", "alice", "the session identity"));
        };

        // Steps 1–4: she subscribes (on her own) and gets the full state.
        let both = {
            let (a, b) = (alice_aor.clone(), bob_aor.clone());
            move |e: &ClientEvent| {
                roster_has(a.clone(), |r| r.own && r.status == RosterStatus::Joined)(e)
                    && roster_has(b.clone(), |r| r.status == RosterStatus::Joined)(e)
            }
        };
        st.expect("3a", &alice, both).await?;

        // Steps 5–6: Carol joins by the session identity.
        chat(&carol, ChatCommand::JoinGroup { uri: identity })?;
        st.expect(
            "6a",
            &alice,
            roster_has(carol_aor, |r| r.status == RosterStatus::Joined),
        )
        .await?;

        // Steps 7–8: Bob leaves.
        chat(&bob, ChatCommand::Bye { chat: bob_chat })?;
        st.expect(
            "8a",
            &alice,
            roster_has(bob_aor, |r| r.status == RosterStatus::Left),
        )
        .await?;
        Ok(())
    })
}
