//! `c15-1` (seed 000 C.15.1): the initiator uses two devices. alice/tv
//! fetches the content list and invites bob to watch, naming alice/phone
//! (known from the reg-event) for the chat; the Media Function relays to bob
//! and recommends the chat to alice/phone, which INVITEs bob through the CPM
//! function with the same ISCConvergenceID; RTP reaches the tv and bob, the
//! chat runs between the phone and bob.

use std::time::Duration;

use super::{DemoError, Device, Scenario, ScriptFuture, Stage, Step};
use crate::client::chat::ChatEvent;
use crate::client::chats::ChatCommand;
use crate::client::content_viewing::{ViewingCommand, ViewingEvent};
use crate::client::{ClientEvent, Command};
use crate::server::runner::ServerOptions;

pub const SCENARIO: Scenario = Scenario::new(
    "c15-1",
    "seed 000 C.15.1: Alice watches on her tv and chats on her phone with Bob",
    &["alice/tv", "alice/phone", "bob/phone"],
    STEPS,
    script,
)
.columns(&[
    "alice/tv",
    "alice/phone",
    "server:reg",
    "server:mf",
    "server:cpm",
    "bob/phone",
])
.function(isc_function)
.server_options(content_options);

const STEPS: &[Step] = &[
    Step::wire("1", "alice/tv", "server:mf", "OPTIONS")
        .carrying("application/vnd.isc.content-list+xml"),
    Step::seen(
        "1",
        "alice/tv",
        "content list fetched; the id comes from it",
    ),
    // CommunicationClientAddr = a GRUU of alice's (the phone's; UsingMultipleClient=yes)
    Step::wire("2", "alice/tv", "server:mf", "INVITE")
        .carrying("<CommunicationClientAddr>sip:alice@isc.local;gr=urn:uuid:"),
    Step::wire("3", "server:mf", "bob/phone", "INVITE").carrying("ISCConvergenceID: cv-"),
    Step::seen("4", "bob/phone", "invited to watch the listed content"),
    Step::wire("5a", "server:mf", "alice/phone", "MESSAGE")
        .carrying("application/vnd.oma.isc.cm.recommendation"),
    Step::wire("5b", "alice/phone", "server:mf", "200 OK (MESSAGE)"),
    Step::seen(
        "5",
        "alice/phone",
        "chat with bob recommended (same ISCConvergenceID)",
    ),
    Step::wire("6", "alice/phone", "server:cpm", "INVITE").carrying("ISCConvergenceID: cv-"),
    Step::wire("7", "server:cpm", "bob/phone", "INVITE").carrying("ISCConvergenceID: cv-"),
    Step::wire("8", "bob/phone", "server:mf", "200 OK (INVITE)"),
    Step::wire("9", "server:mf", "alice/tv", "200 OK (INVITE)"),
    Step::wire("9a", "server:mf", "bob/phone", "ACK"),
    Step::wire("9b", "alice/tv", "server:mf", "ACK"),
    Step::wire("10", "server:mf", "alice/tv", "RTP"),
    Step::wire("10", "server:mf", "bob/phone", "RTP"),
    Step::seen("10", "alice/phone", "no RTP: it only chats"),
    Step::wire("11", "bob/phone", "server:cpm", "200 OK (INVITE)"),
    Step::wire("12", "server:cpm", "alice/phone", "200 OK (INVITE)"),
    Step::wire("12a", "alice/phone", "server:cpm", "ACK"),
    Step::seen(
        "13a",
        "bob/phone",
        "alice's chat message (MSRP via server:cpm)",
    ),
    Step::seen("13b", "alice/phone", "bob's answer (MSRP via server:cpm)"),
    Step::seen("14", "alice/tv", "still watching while they chat"),
];

/// Content from the project's assets, wherever the demo runs from.
pub(super) fn content_options(o: &mut ServerOptions) {
    if !o.config.content_dir.exists() {
        let dev = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/content");
        if dev.exists() {
            o.config.content_dir = dev;
        }
    }
}

/// `server:mf` for the content list, CV INVITEs and the recommendation;
/// `server:cpm` for chat INVITEs.
pub(super) fn isc_function(raw: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(8192)]).to_ascii_lowercase();
    let first = text.lines().next().unwrap_or("");
    let method = first.split_whitespace().next().unwrap_or("");
    match method {
        "options" if first.contains("sip:content@") => Some("server:mf"),
        "invite" if text.contains("cpm.session") => Some("server:cpm"),
        "invite" if text.contains("oma.isc.") || text.contains("isc-content-request") => {
            Some("server:mf")
        }
        "message" if text.contains("cm.recommendation") => Some("server:mf"),
        _ => None,
    }
}

pub(super) fn viewing_event(pred: impl Fn(&ViewingEvent) -> bool) -> impl Fn(&ClientEvent) -> bool {
    move |e| matches!(e, ClientEvent::Viewing(v) if pred(v))
}

pub(super) fn chat_event(pred: impl Fn(&ChatEvent) -> bool) -> impl Fn(&ClientEvent) -> bool {
    move |e| matches!(e, ClientEvent::Chat(c) if pred(c))
}

/// Player figures showing audio and video RTP: `(audio, video)` packets.
pub(super) async fn rtp_counts(
    st: &mut Stage,
    step: &'static str,
    dev: &Device,
) -> Result<(u64, u64), DemoError> {
    let ev = st
        .expect(step, dev, viewing_event(|v| {
            matches!(v, ViewingEvent::Stats { stats, .. } if stats.audio_packets > 0 && stats.video_packets > 0)
        }))
        .await?;
    // the newest figures
    let last = dev.events().into_iter().rev().find_map(|e| match e {
        ClientEvent::Viewing(ViewingEvent::Stats { stats, .. }) => Some(stats),
        _ => None,
    });
    Ok(match (last, ev) {
        (Some(s), _) => (s.audio_packets, s.video_packets),
        (None, _) => (0, 0),
    })
}

/// The CM half of C.15.x once both chat legs are up: `a` says `a_text`
/// (step `a_step`, seen by `b`) and `b` answers `b_text` on its chat
/// `b_chat` (step `b_step`, seen by `a`).
pub(super) async fn chat_both_ways(
    st: &mut Stage,
    (a, a_step, a_text): (&Device, &'static str, &'static str),
    (b, b_step, b_text, b_chat): (&Device, &'static str, &'static str, u64),
) -> Result<(), DemoError> {
    let started = || chat_event(|c| matches!(c, ChatEvent::Started { .. }));
    let a_chat = match st.expect("-", a, started()).await? {
        ClientEvent::Chat(ChatEvent::Started { chat, .. }) => chat,
        _ => 0,
    };
    st.expect("-", b, started()).await?;
    a.command(Command::Chat(ChatCommand::Send {
        chat: a_chat,
        text: a_text.into(),
    }))?;
    let said = |text: &'static str| {
        chat_event(move |c| matches!(c, ChatEvent::Message { text: t, .. } if t == text))
    };
    st.expect(a_step, b, said(a_text)).await?;
    b.command(Command::Chat(ChatCommand::Send {
        chat: b_chat,
        text: b_text.into(),
    }))?;
    st.expect(b_step, a, said(b_text)).await?;
    Ok(())
}

/// The viewer's player keeps counting RTP while the others chat: `step`
/// is ticked only if more audio arrived over 1.2 s.
pub(super) async fn still_playing(
    st: &mut Stage,
    step: &'static str,
    viewer: &Device,
) -> Result<(), DemoError> {
    let before = rtp_counts(st, "-", viewer).await?.0;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    if rtp_counts(st, "-", viewer).await?.0 > before {
        st.expect(step, viewer, |_| true).await?;
    }
    Ok(())
}

pub(super) fn rtp_label(a: u64, v: u64) -> String {
    format!("RTP audio {a}, video {v}")
}

fn script(st: &mut Stage) -> ScriptFuture<'_> {
    Box::pin(async move {
        let bob = st.aor("bob");
        let alice_tv = st.join("alice/tv").await?;
        let alice_phone = st.join("alice/phone").await?;
        let bob_phone = st.join("bob/phone").await?;
        let phone_gruu = alice_phone.gruu().unwrap_or_default();
        st.expect("-", &alice_tv, super::sees(&alice_phone)).await?;

        // 1. the content list
        alice_tv.command(Command::Viewing(ViewingCommand::FetchContentList))?;
        let content = match st
            .expect(
                "1",
                &alice_tv,
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

        // 2. watch with bob, chat on the phone (by device name: its GRUU from the reg-event)
        alice_tv.command(Command::Viewing(ViewingCommand::Watch {
            content: content.clone(),
            with: bob.clone(),
            chat_on: Some("phone".into()),
        }))?;
        let conv = match st
            .expect(
                "-",
                &alice_tv,
                viewing_event(|v| matches!(v, ViewingEvent::Calling { .. })),
            )
            .await?
        {
            ClientEvent::Viewing(ViewingEvent::Calling { convergence_id, .. }) => convergence_id,
            _ => String::new(),
        };
        if phone_gruu.is_empty() {
            return Err(DemoError::NotSeen {
                step: "2".into(),
                who: "alice/phone".into(),
                what: "its GRUU".into(),
            });
        }

        // 3-4. bob is invited to the listed content
        let c = content.clone();
        let bv = match st
            .expect(
                "4",
                &bob_phone,
                viewing_event(
                    move |v| matches!(v, ViewingEvent::Invited { content: Some(x), .. } if *x == c),
                ),
            )
            .await?
        {
            ClientEvent::Viewing(ViewingEvent::Invited { viewing, .. }) => viewing,
            _ => 0,
        };
        // 5. the phone is recommended the chat (and starts it: 6)
        let cv = conv.clone();
        st.expect("5", &alice_phone, viewing_event(move |v| {
            matches!(v, ViewingEvent::ChatRecommended { convergence_id, .. } if *convergence_id == cv)
        }))
        .await?;
        // 8. bob accepts the viewing
        bob_phone.command(Command::Viewing(ViewingCommand::Accept { viewing: bv }))?;
        // 7 / 11. bob gets the chat with the same convergence id and accepts
        let cv = conv.clone();
        let chat = match st
            .expect("-", &bob_phone, chat_event(move |c| {
                matches!(c, ChatEvent::Invited { convergence_id: Some(x), .. } if *x == cv)
            }))
            .await?
        {
            ClientEvent::Chat(ChatEvent::Invited { chat, .. }) => chat,
            _ => 0,
        };
        bob_phone.command(Command::Chat(ChatCommand::Accept { chat }))?;
        st.expect(
            "-",
            &alice_tv,
            viewing_event(|v| matches!(v, ViewingEvent::Started { .. })),
        )
        .await?;

        // 10. RTP at the tv and at bob, counted by their players
        let (a, v) = rtp_counts(st, "-", &alice_tv).await?;
        st.note("server:mf", "alice/tv", &rtp_label(a, v));
        let (a, v) = rtp_counts(st, "-", &bob_phone).await?;
        st.note("server:mf", "bob/phone", &rtp_label(a, v));

        // 13. the chat
        chat_both_ways(
            st,
            (&alice_phone, "13a", "Great opening scene!"),
            (&bob_phone, "13b", "The music too", chat),
        )
        .await?;
        // 14. still watching: the tv's player keeps counting
        still_playing(st, "14", &alice_tv).await?;
        // 10. the phone never played anything
        let phone_played = alice_phone
            .events()
            .iter()
            .any(|e| matches!(e, ClientEvent::Viewing(ViewingEvent::Stats { .. })));
        if !phone_played {
            st.expect("10", &alice_phone, |_| true).await?;
        }
        Ok(())
    })
}
