//! `c15-2` (seed 000 C.15.2): the recipient uses two devices, one for
//! viewing and one for chat. The CV and CM INVITEs fork to bob/tv and
//! bob/phone; the tv takes the viewing (the phone gets CANCEL with the
//! Reason and says "taken on your other device"), the phone takes the chat
//! (the tv gets CANCEL); RTP to alice and the tv, chat alice ↔ phone.

use super::c15_1::{
    chat_both_ways, chat_event, content_options, isc_function, rtp_counts, rtp_label,
    still_playing, viewing_event,
};
use super::{Scenario, ScriptFuture, Stage, Step};
use crate::client::chat::{ChatEvent, EndReason};
use crate::client::chats::ChatCommand;
use crate::client::content_viewing::{ViewingCommand, ViewingEvent};
use crate::client::{ClientEvent, Command};
use crate::server::runner::ServerOptions;

pub const SCENARIO: Scenario = Scenario::new(
    "c15-2",
    "seed 000 C.15.2: Bob watches on his tv and chats on his phone with Alice",
    &["alice/laptop", "bob/tv", "bob/phone"],
    STEPS,
    script,
)
.columns(&[
    "alice/laptop",
    "server:reg",
    "server:mf",
    "server:cpm",
    "bob/tv",
    "bob/phone",
])
.function(isc_function)
.server_options(options);

const REASON: &str = "Reason: SIP;cause=200;text=\"Call completed elsewhere\"";

const STEPS: &[Step] = &[
    Step::wire("1", "alice/laptop", "server:mf", "OPTIONS")
        .carrying("application/vnd.isc.content-list+xml"),
    Step::seen("1", "alice/laptop", "content list fetched"),
    Step::wire("2", "alice/laptop", "server:mf", "INVITE").carrying("ISCContentRequest"),
    Step::wire("3", "server:mf", "bob/tv", "INVITE").carrying("ISCConvergenceID: cv-"),
    Step::wire("3", "server:mf", "bob/phone", "INVITE").carrying("ISCConvergenceID: cv-"),
    Step::seen("4", "bob/tv", "invited to watch the listed content"),
    Step::wire("5", "alice/laptop", "server:cpm", "INVITE").carrying("ISCConvergenceID: cv-"),
    Step::wire("6", "server:cpm", "bob/tv", "INVITE"),
    Step::wire("6", "server:cpm", "bob/phone", "INVITE"),
    Step::wire("7", "bob/tv", "server:mf", "200 OK (INVITE)"),
    Step::wire("8", "server:mf", "alice/laptop", "200 OK (INVITE)"),
    Step::wire("9", "server:mf", "bob/phone", "CANCEL").carrying(REASON),
    Step::wire("10", "bob/phone", "server:mf", "200 OK (CANCEL)"),
    Step::wire("10", "bob/phone", "server:mf", "487"),
    Step::seen(
        "10",
        "bob/phone",
        "\"taken on your other device\", not a missed invitation",
    ),
    Step::wire("11", "server:mf", "alice/laptop", "RTP"),
    Step::wire("11", "server:mf", "bob/tv", "RTP"),
    Step::seen("11", "bob/phone", "no RTP"),
    Step::wire("12", "bob/phone", "server:cpm", "200 OK (INVITE)"),
    Step::wire("13", "server:cpm", "alice/laptop", "200 OK (INVITE)"),
    Step::wire("14", "server:cpm", "bob/tv", "CANCEL").carrying(REASON),
    Step::wire("15", "bob/tv", "server:cpm", "200 OK (CANCEL)"),
    Step::wire("15", "bob/tv", "server:cpm", "487"),
    Step::seen("15", "bob/tv", "the chat continued on another device"),
    Step::seen(
        "16a",
        "bob/phone",
        "alice's chat message (MSRP via server:cpm)",
    ),
    Step::seen("16b", "alice/laptop", "bob's answer (MSRP via server:cpm)"),
    Step::seen("17", "bob/tv", "still watching while they chat"),
];

/// Bob prefers one device for viewing and one for chat.
fn options(o: &mut ServerOptions) {
    content_options(o);
    // the demo cast, made explicit so bob's preferences can be set
    o.config.users = o.config.effective_users();
    for u in &mut o.config.users {
        if u.name == "bob" {
            u.cv_single_device = true;
            u.cm_single_device = true;
        }
    }
}

fn script(st: &mut Stage) -> ScriptFuture<'_> {
    Box::pin(async move {
        let bob = st.aor("bob");
        let alice = st.join("alice/laptop").await?;
        let tv = st.join("bob/tv").await?;
        let phone = st.join("bob/phone").await?;

        alice.command(Command::Viewing(ViewingCommand::FetchContentList))?;
        let content = match st
            .expect(
                "1",
                &alice,
                viewing_event(
                    |v| matches!(v, ViewingEvent::ContentList { entries } if !entries.is_empty()),
                ),
            )
            .await?
        {
            ClientEvent::Viewing(ViewingEvent::ContentList { entries }) => entries
                .first()
                .map(|e| e.content_ref.clone())
                .unwrap_or_default(),
            _ => String::new(),
        };
        // 2. watch with bob; 5. the chat, tied by the convergence id
        alice.command(Command::Viewing(ViewingCommand::Watch {
            content: content.clone(),
            with: bob.clone(),
            chat_on: None,
        }))?;
        let conv = match st
            .expect(
                "-",
                &alice,
                viewing_event(|v| matches!(v, ViewingEvent::Calling { .. })),
            )
            .await?
        {
            ClientEvent::Viewing(ViewingEvent::Calling { convergence_id, .. }) => convergence_id,
            _ => String::new(),
        };
        let invited = |v: &ViewingEvent| matches!(v, ViewingEvent::Invited { .. });
        let c = content.clone();
        let v_tv = match st
            .expect(
                "4",
                &tv,
                viewing_event(
                    move |v| matches!(v, ViewingEvent::Invited { content: Some(x), .. } if *x == c),
                ),
            )
            .await?
        {
            ClientEvent::Viewing(ViewingEvent::Invited { viewing, .. }) => viewing,
            _ => 0,
        };
        st.expect("-", &phone, viewing_event(invited)).await?;
        alice.command(Command::Chat(ChatCommand::Start {
            to: bob.clone(),
            convergence_id: Some(conv.clone()),
        }))?;
        let chat_invited = |c: &ChatEvent| matches!(c, ChatEvent::Invited { .. });
        st.expect("-", &tv, chat_event(chat_invited)).await?;
        let phone_chat = match st.expect("-", &phone, chat_event(chat_invited)).await? {
            ClientEvent::Chat(ChatEvent::Invited { chat, .. }) => chat,
            _ => 0,
        };

        // 7. the tv takes the viewing; 9-10. the phone hears it was taken there
        tv.command(Command::Viewing(ViewingCommand::Accept { viewing: v_tv }))?;
        st.expect(
            "-",
            &alice,
            viewing_event(|v| matches!(v, ViewingEvent::Started { .. })),
        )
        .await?;
        st.expect(
            "10",
            &phone,
            viewing_event(|v| matches!(v, ViewingEvent::TakenElsewhere { .. })),
        )
        .await?;

        // 11. RTP at alice and the tv
        let (a, v) = rtp_counts(st, "-", &alice).await?;
        st.note("server:mf", "alice/laptop", &rtp_label(a, v));
        let (a, v) = rtp_counts(st, "-", &tv).await?;
        st.note("server:mf", "bob/tv", &rtp_label(a, v));

        // 12. the phone takes the chat; 14-15. the tv's branch is cancelled
        phone.command(Command::Chat(ChatCommand::Accept { chat: phone_chat }))?;
        st.expect(
            "15",
            &tv,
            chat_event(|c| {
                matches!(
                    c,
                    ChatEvent::Ended {
                        reason: EndReason::CompletedElsewhere,
                        ..
                    }
                )
            }),
        )
        .await?;
        // 16. the chat
        chat_both_ways(
            st,
            (&alice, "16a", "Are you watching?"),
            (&phone, "16b", "Yes, on the tv", phone_chat),
        )
        .await?;
        // 17. the tv keeps playing; 11. the phone never did
        still_playing(st, "17", &tv).await?;
        let phone_played = phone
            .events()
            .iter()
            .any(|e| matches!(e, ClientEvent::Viewing(ViewingEvent::Stats { .. })));
        if !phone_played {
            st.expect("11", &phone, |_| true).await?;
        }
        Ok(())
    })
}
