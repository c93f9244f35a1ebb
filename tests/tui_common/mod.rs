//! Fixtures shared by the TUI tests: a fixed clock and a populated state.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use isc::client::{ClientEvent, Device};
use isc::config::DeviceRole;
use isc::flow::{FlowEvent, describe};
use isc::proto::rtp::jpeg_codec::RgbFrame;
use isc::tui::app::{ConvKind, InvitationId, RosterStatus};
use isc::tui::{Action, App, AppConfig, Invitation, SessionEvent};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// 12:01:00 UTC on day 0: every timestamp in the snapshots reads from here.
pub fn wall(min_after_12: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(12 * 3600 + 60 + min_after_12 * 60)
}

pub fn config() -> AppConfig {
    let mut c = AppConfig::new("alice", "isc.local", "tv");
    c.profile = "alice-tv".into();
    c.server = "embedded server 127.0.0.1:5060".into();
    c.role = DeviceRole::Content;
    c.users = ["bob", "bella", "carol", "ted", "mallory"]
        .map(String::from)
        .to_vec();
    c.contents = vec!["sintel".into(), "bunny".into()];
    c.groups = vec!["team".into()];
    c
}

/// A fresh app at the fixed clock; returns it with its `now`.
pub fn empty() -> (App, Instant) {
    let now = Instant::now();
    (App::new(config(), now, wall(0)), now)
}

pub fn tick(app: &mut App, now: Instant, minutes: u64) {
    app.update(Action::Tick {
        now: now + Duration::from_secs(minutes * 60),
        wall: wall(minutes),
    });
}

pub fn received(from: &str, text: &str) -> Action {
    Action::Client(ClientEvent::MessageReceived {
        from: format!("<sip:{from}@isc.local>;tag=x"),
        to: "sip:alice@isc.local".into(),
        content_type: Some("text/plain".into()),
        body: text.as_bytes().to_vec(),
        asserted_identity: None,
        call_id: None,
    })
}

fn device(name: &str, me: bool, state: &str) -> Device {
    Device {
        instance: Some(format!("urn:uuid:{name}")),
        gruu: Some(format!("sip:alice@isc.local;gr=urn:uuid:{name}")),
        name: Some(name.into()),
        contact: format!("sip:alice@127.0.0.1;{name}"),
        state: state.into(),
        is_self: me,
    }
}

pub fn session(ev: SessionEvent) -> Action {
    Action::Session(ev)
}

/// The state the sketch shows: registered, three devices, a 1-1 with bob,
/// a group with a full roster, a viewing session playing.
pub fn populated() -> (App, Instant) {
    let (mut app, now) = empty();
    app.update(Action::Client(ClientEvent::Registered {
        aor: "sip:alice@isc.local".into(),
        gruu: Some("sip:alice@isc.local;gr=urn:uuid:tv".into()),
        expires: 3600,
    }));
    app.update(Action::Client(ClientEvent::DevicesChanged {
        devices: vec![
            device("tv", true, "registered"),
            device("phone", false, "registered"),
            device("laptop", false, "expired"),
        ],
    }));
    app.update(session(SessionEvent::DeviceActivity {
        device: "phone".into(),
        activity: "chatting".into(),
        role: Some(DeviceRole::Chat),
    }));
    app.update(received("bob", "want to watch Sintel?"));
    tick(&mut app, now, 1);
    app.update(Action::RunCommand(":chat bob".into()));
    for c in "yes — video here, chat on phone".chars() {
        app.update(Action::InsertChar(c));
    }
    app.update(Action::Send);
    app.update(Action::Client(ClientEvent::MessageDelivered {
        id: "tui-1".into(),
        to: "sip:bob@isc.local".into(),
        status: 200,
    }));
    app.update(received("bob", "great, starting it. This line is long enough that it has to wrap around inside the message pane at eighty columns."));
    app.update(Action::Client(ClientEvent::ComposingChanged {
        from: "sip:bob@isc.local".into(),
        active: true,
    }));
    // A group with a roster in every state.
    app.update(session(SessionEvent::Opened {
        key: "sip:team@isc.local".into(),
        kind: ConvKind::Group {
            uri: "sip:team@isc.local".into(),
        },
        title: "team".into(),
    }));
    app.update(session(SessionEvent::Roster {
        key: "sip:team@isc.local".into(),
        entries: vec![
            ("sip:alice@isc.local".into(), RosterStatus::Connected, true),
            ("sip:bob@isc.local".into(), RosterStatus::Connected, false),
            ("sip:carol@isc.local".into(), RosterStatus::Ringing, false),
            ("sip:ted@isc.local".into(), RosterStatus::Connected, false),
            (
                "sip:mallory@isc.local".into(),
                RosterStatus::Connected,
                false,
            ),
        ],
    }));
    app.update(Action::RunCommand(":block mallory".into()));
    app.update(session(SessionEvent::Roster {
        key: "sip:team@isc.local".into(),
        entries: vec![
            ("sip:alice@isc.local".into(), RosterStatus::Connected, true),
            ("sip:bob@isc.local".into(), RosterStatus::Connected, false),
            ("sip:carol@isc.local".into(), RosterStatus::Ringing, false),
            ("sip:ted@isc.local".into(), RosterStatus::Left, false),
            (
                "sip:mallory@isc.local".into(),
                RosterStatus::Connected,
                false,
            ),
        ],
    }));
    app.update(session(SessionEvent::Message {
        key: "sip:team@isc.local".into(),
        from: "sip:bob@isc.local".into(),
        text: "psst".into(),
        private: true,
        sent_at: None,
        late: false,
    }));
    app.update(session(SessionEvent::Message {
        key: "sip:team@isc.local".into(),
        from: "sip:carol@isc.local".into(),
        text: "sent while you were away".into(),
        private: false,
        sent_at: Some(wall(0)),
        late: true,
    }));
    // A viewing session with its player.
    app.update(session(SessionEvent::Opened {
        key: "cv-1".into(),
        kind: ConvKind::Viewing {
            content: "Sintel".into(),
            with: vec!["sip:bob@isc.local".into()],
        },
        title: "bob".into(),
    }));
    app.update(session(SessionEvent::ContinuedElsewhere {
        key: "cv-1".into(),
        device: "phone".into(),
    }));
    app.update(session(SessionEvent::Frame(gradient(32, 18))));
    app.update(session(SessionEvent::Progress {
        position: Duration::from_secs(83),
        duration: Some(Duration::from_secs(600)),
    }));
    app.update(session(SessionEvent::Control {
        by: "sip:bob@isc.local".into(),
        what: "paused".into(),
        at: Duration::from_secs(80),
    }));
    app.update(session(SessionEvent::Stats {
        loss_pct: 0.1,
        jitter_ms: 3.0,
        packets: 412,
    }));
    app.update(Action::ToggleStats);
    app.update(Action::OpenConversation(isc::tui::app::ConvId(0)));
    (app, now)
}

/// A deterministic test picture.
pub fn gradient(w: u16, h: u16) -> RgbFrame {
    let mut f = RgbFrame::new(w, h);
    for y in 0..usize::from(h) {
        for x in 0..usize::from(w) {
            let i = (y * usize::from(w) + x) * 3;
            f.data[i] = (x * 255 / usize::from(w)) as u8;
            f.data[i + 1] = (y * 255 / usize::from(h)) as u8;
            f.data[i + 2] = 128;
        }
    }
    f
}

pub fn invitation() -> Invitation {
    Invitation {
        id: InvitationId(7),
        from: "sip:bob@isc.local".into(),
        content: Some("Sintel".into()),
        with_chat: true,
        group: None,
        raw: b"INVITE sip:alice@isc.local;gr=urn:uuid:tv SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:bob@isc.local>;tag=b1\r\nTo: <sip:alice@isc.local>\r\nCall-ID: cv-42\r\nCSeq: 1 INVITE\r\nContent-Type: application/ISC-content-request+xml\r\n\r\n".to_vec(),
    }
}

pub fn flow_event(ms: u64, from: &str, to: &str, raw: &str, step: Option<&str>) -> Action {
    let (protocol, label) = describe(raw.as_bytes());
    Action::Flow(FlowEvent {
        at: Duration::from_millis(ms),
        from: from.into(),
        to: to.into(),
        protocol,
        label,
        step: step.map(String::from),
        raw: raw.as_bytes().to_vec(),
    })
}

/// The C.15.2 opening as this device saw it.
pub fn with_flow(app: &mut App) {
    let inv = |cid: &str| {
        format!(
            "INVITE sip:bob@isc.local SIP/2.0\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
        )
    };
    let ok = |cid: &str| format!("SIP/2.0 200 OK\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n\r\n");
    app.update(flow_event(0, "alice/tv", "server", &inv("cv-1"), Some("2")));
    app.update(flow_event(
        3,
        "server",
        "alice/tv",
        "SIP/2.0 100 Trying\r\nCall-ID: cv-1\r\nCSeq: 1 INVITE\r\n\r\n",
        None,
    ));
    app.update(flow_event(
        9,
        "server",
        "alice/phone",
        "MESSAGE sip:alice@isc.local;gr=phone SIP/2.0\r\nCall-ID: rec-1\r\nCSeq: 1 MESSAGE\r\n\r\n",
        Some("4"),
    ));
    app.update(flow_event(40, "server", "alice/tv", &ok("cv-1"), Some("8")));
    app.update(flow_event(
        41,
        "alice/tv",
        "server",
        "ACK sip:bob@isc.local SIP/2.0\r\nCall-ID: cv-1\r\nCSeq: 1 ACK\r\n\r\n",
        None,
    ));
    app.update(flow_event(60, "alice/phone", "server", "MSRP a1 SEND\r\nTo-Path: msrp://x\r\nContent-Type: message/cpim\r\n\r\nhi\r\n-------a1$\r\n", None));
}

/// Draws at a size and returns the screen as text.
pub fn draw(app: &mut App, w: u16, h: u16) -> String {
    app.update(Action::Resize {
        width: w,
        height: h,
    });
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| isc::tui::view::render(app, f)).unwrap();
    t.backend().to_string()
}
