//! What happens to the TUI ([`Action`]: a key turned into intent, or an event
//! from the client side) and what the TUI asks for in return ([`Command`]).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::client::{self, ClientEvent};
use crate::config::DeviceRole;
use crate::flow::FlowEvent;
use crate::proto::rtp::jpeg_codec::RgbFrame;

use super::app::{ConvId, ConvKind, Delivery, InvitationId, RosterStatus};

/// The panes focus can move between (Tab / Shift-Tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Conversations,
    Messages,
    Input,
    Devices,
    Roster,
    Player,
}

impl Pane {
    pub fn name(self) -> &'static str {
        match self {
            Pane::Conversations => "conversations",
            Pane::Messages => "messages",
            Pane::Input => "input",
            Pane::Devices => "devices",
            Pane::Roster => "roster",
            Pane::Player => "player",
        }
    }
}

/// How an invitation is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Accept everything on this device.
    AcceptHere,
    /// Play the content here; the chat goes to another device of ours
    /// (seed 000: UsingMultipleClient=yes, CommunicationClientAddr = that device).
    AcceptSplit {
        chat_on: String,
    },
    Decline,
}

/// Intent from a key (through the key map) or an event from outside.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    // --- time and terminal
    /// The clock moved: `now` for deadlines, `wall` for timestamps.
    Tick {
        now: Instant,
        wall: SystemTime,
    },
    Resize {
        width: u16,
        height: u16,
    },
    // --- navigation
    Quit,
    ToggleHelp,
    ToggleFlow,
    FocusNext,
    FocusPrev,
    Focus(Pane),
    /// Close the topmost overlay (help, popup detail, command line, search).
    Escape,
    Up,
    Down,
    PageUp,
    PageDown,
    /// Mouse wheel: positive = towards older lines.
    Scroll(i32),
    /// Open the selected conversation / flow row.
    Select,
    OpenConversation(ConvId),
    JumpToUnread,
    // --- the input line
    InsertChar(char),
    InsertNewline,
    Backspace,
    Delete,
    CursorLeft,
    CursorRight,
    CursorHome,
    CursorEnd,
    HistoryPrev,
    HistoryNext,
    Send,
    /// Replace the input with this text (paste).
    Paste(String),
    // --- command line and search
    OpenCommandLine,
    Complete,
    /// Run a `:` command given as text (also what Enter does on the command line).
    RunCommand(String),
    OpenSearch,
    SearchNext,
    SearchPrev,
    // --- invitations and player
    AnswerInvitation(Answer),
    ShowInvite,
    TogglePause,
    SeekBy(i64),
    ToggleStats,
    // --- flow view
    FlowFilterSelected,
    FlowClearFilter,
    // --- from the client core
    Client(ClientEvent),
    /// A SIP/MSRP message this device sent or received.
    Flow(FlowEvent),
    /// Events the session helpers (chat, viewing, rosters, player) will send.
    Session(SessionEvent),
}

/// Events from the chat / viewing / conference layers, modelled now so they
/// only need wiring.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A session conversation exists (chat session, group, viewing session).
    Opened {
        key: String,
        kind: ConvKind,
        title: String,
    },
    Closed {
        key: String,
        reason: String,
    },
    /// A chat message in a session (MSRP/CPIM). `private` when CPIM To named us only.
    Message {
        key: String,
        from: String,
        text: String,
        private: bool,
        /// The CPIM DateTime when it differs from now (deferred delivery).
        sent_at: Option<SystemTime>,
        late: bool,
    },
    Composing {
        key: String,
        from: String,
        active: bool,
    },
    /// Our message `text` went out in session `key` as `message_id`.
    Sent {
        key: String,
        message_id: String,
        text: String,
    },
    /// Where our message `message_id` is; an empty id names the oldest of
    /// ours in `key` not yet sent (refused before it had an id).
    Delivery {
        key: String,
        message_id: String,
        delivery: Delivery,
    },
    /// A line of what happened in session `key` ("calling bob…", "connected").
    Note {
        key: String,
        text: String,
    },
    /// The content ids the server offers (completion of `:watch`).
    Contents(Vec<String>),
    /// A line about a Large Message transfer (progress, sent, saved path),
    /// replacing the earlier line with the same `id`.
    Transfer {
        key: String,
        id: String,
        text: String,
    },
    /// The session moved to another of our devices ("continued on your other device").
    ContinuedElsewhere {
        key: String,
        device: String,
    },
    /// Conference state: the whole roster (full or merged partial NOTIFY).
    Roster {
        key: String,
        entries: Vec<(String, RosterStatus, bool)>,
    },
    Invitation(Invitation),
    InvitationGone {
        id: InvitationId,
        reason: String,
    },
    DeviceActivity {
        device: String,
        activity: String,
        role: Option<DeviceRole>,
    },
    Frame(RgbFrame),
    Progress {
        position: Duration,
        duration: Option<Duration>,
    },
    /// Someone paused, resumed or seeked the shared playback.
    Control {
        by: String,
        what: String,
        at: Duration,
    },
    Stats {
        loss_pct: f32,
        jitter_ms: f32,
        packets: u64,
    },
    Error(String),
}

/// An incoming invitation waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub from: String,
    /// `Some(content)` for a content-viewing invitation.
    pub content: Option<String>,
    /// The invitation also carries chat (cv-cm).
    pub with_chat: bool,
    /// A group session identity, when it is one.
    pub group: Option<String>,
    /// The INVITE as received.
    pub raw: Vec<u8>,
}

/// What the TUI asks for. `Client` goes straight to the client core; the
/// others name features other helpers wire later (the event loop reports
/// them as not available until then, never as done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Client(client::Command),
    StartChat {
        with: String,
    },
    /// We are (`active`) or stopped composing in a session conversation.
    SessionTyping {
        session: String,
        active: bool,
    },
    /// A chat message in a session conversation (MSRP), optionally private.
    SendChat {
        session: String,
        text: String,
        private_to: Option<String>,
    },
    Watch {
        content: String,
        with: Vec<String>,
        chat_on: Option<String>,
    },
    CreateGroup {
        name: String,
        members: Vec<String>,
    },
    /// More users into a running group session (REFER).
    Invite {
        session: String,
        users: Vec<String>,
    },
    /// A running 1-1 session becomes a group with these users too
    /// (seed 002 App. M).
    Extend {
        session: String,
        users: Vec<String>,
    },
    Join {
        uri: String,
    },
    Rejoin {
        uri: String,
    },
    Pause {
        session: String,
    },
    Resume {
        session: String,
    },
    Seek {
        session: String,
        to: Duration,
    },
    Block {
        user: String,
    },
    Unblock {
        user: String,
    },
    SendFile {
        to: String,
        path: PathBuf,
    },
    AnswerInvitation {
        id: InvitationId,
        answer: Answer,
    },
    /// Write the flow (ladder + messages, or Mermaid) to a file.
    ExportFlow {
        path: PathBuf,
        mermaid: bool,
    },
}
