//! The TUI's state and its one entry point, [`App::update`]: an [`Action`]
//! in, the [`Command`]s for the client out. No IO, no clock: time arrives in
//! [`Action::Tick`], so tests replay exactly and render reads `app.now`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use crate::client::{self, ClientEvent};
use crate::config::{Config, DeviceRole};
use crate::media::picture::{PictureProtocol, PictureRenderer, PictureSupport};
use crate::proto::rtp::jpeg_codec::RgbFrame;

use super::action::{Action, Answer, Command, Invitation, Pane, SessionEvent};
use super::command::{self, Candidates, Cmd, SeekTo};
use super::input::TextInput;
use super::keymap::{Context, Key, KeyMap, action_for};
use super::ladder::FlowView;

/// How long a peer's "typing…" shows without a refresh (RFC 3994 §4 default).
pub const COMPOSING_TIMEOUT: Duration = client::composing::DEFAULT_RECEIVER_TIMEOUT;
/// Entries shown above a search match.
const SEARCH_CONTEXT: usize = 2;
/// The prefix of the ids the TUI gives its own messages.
const TUI_ID: &str = "tui-";
/// How long a status-bar notice stays.
pub const NOTICE_TIME: Duration = Duration::from_secs(8);

/// Index of a conversation in [`App::conversations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConvId(pub usize);

/// Names an invitation (given by whoever raises it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InvitationId(pub u64);

/// What a conversation is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvKind {
    /// 1-1 (pager MESSAGEs or a CPM session).
    OneToOne { peer: String },
    /// A group session (ad-hoc or pre-defined).
    Group { uri: String },
    /// A content-viewing session, with its chat.
    Viewing { content: String, with: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    You,
    Peer(String),
}

/// Where one of our messages is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sending,
    Delivered,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Message {
        from: Sender,
        text: String,
        /// A private message: to us only, or (ours) to this participant only.
        private: Option<String>,
        delivery: Option<Delivery>,
        /// Stored by the server and delivered when we came back (seed 002 D.2).
        late: bool,
    },
    /// A line of what happened (joins, leaves, "continued on your other
    /// device", errors).
    System(String),
}

/// One line of a conversation's scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it was sent (the CPIM DateTime for deferred messages).
    pub at: SystemTime,
    pub kind: EntryKind,
    /// Our message id, to match delivery reports.
    pub id: Option<String>,
}

impl Entry {
    /// One of ours, still sending, with only the TUI's own id: the session
    /// has not named it yet.
    fn awaits_id(&self) -> bool {
        matches!(
            self.kind,
            EntryKind::Message {
                from: Sender::You,
                delivery: Some(Delivery::Sending),
                ..
            }
        ) && self.id.as_deref().is_some_and(|i| i.starts_with(TUI_ID))
    }

    pub fn text(&self) -> &str {
        match &self.kind {
            EntryKind::Message { text, .. } => text,
            EntryKind::System(t) => t,
        }
    }
}

/// Conference state of one participant (RFC 4575 endpoint status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterStatus {
    Connected,
    /// `alerting`.
    Ringing,
    /// `disconnected`.
    Left,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    pub user: String,
    pub status: RosterStatus,
    /// The OMA `yourown` mark.
    pub is_self: bool,
}

/// Which part of the scrollback the view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewPos {
    /// The newest entries, minus `skip` hidden below.
    Bottom { skip: usize },
    /// From entry `first` downwards (after a jump).
    Top { first: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub query: String,
    /// Matching entry indices, oldest first.
    pub matches: Vec<usize>,
    /// Index into `matches`.
    pub current: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The peer AOR (pager 1-1) or the session key given by the session layer.
    pub key: String,
    pub kind: ConvKind,
    pub title: String,
    /// Backed by a session (MSRP) rather than pager MESSAGEs.
    pub session: bool,
    pub entries: Vec<Entry>,
    pub unread: usize,
    /// The first message not yet seen (shown as a marker; a key jumps to it).
    pub first_unread: Option<usize>,
    pub view: ViewPos,
    /// Who is typing, and until when.
    pub composing: BTreeMap<String, Instant>,
    pub roster: Vec<RosterEntry>,
    pub search: Option<Search>,
    pub closed: Option<String>,
}

impl Conversation {
    fn new(key: String, kind: ConvKind, title: String, session: bool) -> Self {
        Conversation {
            key,
            kind,
            title,
            session,
            entries: Vec::new(),
            unread: 0,
            first_unread: None,
            view: ViewPos::Bottom { skip: 0 },
            composing: BTreeMap::new(),
            roster: Vec::new(),
            search: None,
            closed: None,
        }
    }

    /// Who is typing at `now`.
    pub fn typing(&self, now: Instant) -> Vec<&str> {
        self.composing
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(who, _)| who.as_str())
            .collect()
    }
}

/// One of this user's devices (ourselves included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    pub name: String,
    pub gruu: Option<String>,
    pub is_self: bool,
    pub role: Option<DeviceRole>,
    /// What it is doing (`playing Sintel`, `chatting`, `registered`).
    pub activity: String,
    pub online: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Registering,
    Registered {
        gruu: Option<String>,
    },
    Failed {
        reason: String,
        retry_in: Option<Duration>,
    },
    Unregistered,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamStats {
    pub loss_pct: f32,
    pub jitter_ms: f32,
    pub packets: u64,
}

/// The shared playback of a viewing session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Player {
    pub session: Option<String>,
    pub title: Option<String>,
    pub frame: Option<RgbFrame>,
    pub position: Duration,
    pub duration: Option<Duration>,
    pub paused: bool,
    /// (who, what, where): "bob paused at 01:20".
    pub last_control: Option<(String, String, Duration)>,
    pub stats: Option<StreamStats>,
    pub show_stats: bool,
}

/// Which prompt the bottom line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Command { line: String, matches: Vec<String> },
    Search { line: String },
}

/// Who runs this TUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    pub user: String,
    pub domain: String,
    pub device: String,
    pub profile: String,
    /// Shown in the title (`embedded server 127.0.0.1:5060`).
    pub server: String,
    pub role: DeviceRole,
    pub keys: BTreeMap<String, String>,
    /// Content ids offered by completion.
    pub contents: Vec<String>,
    /// Users and groups offered by completion.
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// How the player pane draws pictures (detected at startup; half
    /// blocks unless told otherwise).
    pub picture: PictureSupport,
}

impl AppConfig {
    pub fn new(user: &str, domain: &str, device: &str) -> Self {
        AppConfig {
            user: user.into(),
            domain: domain.into(),
            device: device.into(),
            profile: format!("{user}-{device}"),
            server: String::new(),
            role: DeviceRole::Both,
            keys: BTreeMap::new(),
            contents: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            picture: PictureSupport::default(),
        }
    }

    /// From the config file and a profile name (None: the default profile).
    pub fn from_config(config: &Config, profile: Option<&str>) -> Option<Self> {
        let p = config.client.profile(profile)?;
        let user = p.user.trim_start_matches("sip:");
        let (user, domain) = match user.split_once('@') {
            Some((u, d)) => (u.to_string(), d.to_string()),
            None => (user.to_string(), config.server.domain.clone()),
        };
        let device = p.device.clone().unwrap_or_else(|| p.name.clone());
        let mut c = AppConfig::new(&user, &domain, &device);
        c.profile = p.name.clone();
        c.role = p.role;
        c.keys = config.client.keys.clone();
        c.server = match &config.client.server {
            Some(s) => s.clone(),
            None => format!("embedded server {}", config.server.listen),
        };
        c.users = config
            .server
            .effective_users()
            .into_iter()
            .map(|u| u.name)
            .filter(|n| *n != user)
            .collect();
        c.groups = config
            .server
            .groups
            .iter()
            .map(|g| g.name.clone())
            .collect();
        Some(c)
    }
}

/// Everything the screen shows.
#[derive(Debug, Clone)]
pub struct App {
    pub config: AppConfig,
    pub keymap: KeyMap,
    pub now: Instant,
    pub wall: SystemTime,
    pub size: (u16, u16),
    pub registration: Registration,
    pub conversations: Vec<Conversation>,
    /// The open conversation.
    pub current: Option<ConvId>,
    /// Highlighted row of the conversation list.
    pub selected: usize,
    pub focus: Pane,
    pub input: TextInput,
    pub prompt: Option<Prompt>,
    pub show_help: bool,
    /// First line of the help shown.
    pub help_scroll: usize,
    pub show_flow: bool,
    pub flow: FlowView,
    pub devices: Vec<DeviceView>,
    pub blocklist: BTreeSet<String>,
    pub invitations: VecDeque<Invitation>,
    /// Show the raw INVITE of the invitation on top.
    pub show_invite: bool,
    pub player: Player,
    /// The player's picture encoded for the terminal's graphics protocol
    /// ([`App::prepare_picture`]); render only reads it.
    pub picture: PictureRenderer,
    /// A notice for the status bar, until its deadline.
    pub notice: Option<(String, Instant)>,
    pub quitting: bool,
    /// `:chat` asked for a session with this peer: its conversation opens
    /// when the session layer reports it (None again if the client cannot).
    pub pending_chat: Option<String>,
    /// The client finished its shutdown.
    pub stopped: bool,
    next_id: u64,
    /// History retrievals under way: peer AOR → the conversation asking.
    history_targets: BTreeMap<String, String>,
    /// Conversations whose history was asked for (fetched once by itself).
    history_asked: BTreeSet<String>,
    /// Peers whose pending retrieval was asked for by opening a
    /// conversation, not by `:history`: its outcome raises no notice.
    history_auto: BTreeSet<String>,
}

impl App {
    /// A fresh state; `now`/`wall` are the clock readings to start from.
    pub fn new(config: AppConfig, now: Instant, wall: SystemTime) -> Self {
        let (keymap, errors) = KeyMap::with_overrides(&config.keys);
        let picture = PictureRenderer::new(config.picture);
        let me = DeviceView {
            name: config.device.clone(),
            gruu: None,
            is_self: true,
            role: Some(config.role),
            activity: "starting".into(),
            online: true,
        };
        let mut app = App {
            config,
            keymap,
            now,
            wall,
            size: (160, 48),
            registration: Registration::Registering,
            conversations: Vec::new(),
            current: None,
            selected: 0,
            focus: Pane::Input,
            input: TextInput::default(),
            prompt: None,
            show_help: false,
            help_scroll: 0,
            show_flow: false,
            flow: FlowView::default(),
            devices: vec![me],
            blocklist: BTreeSet::new(),
            invitations: VecDeque::new(),
            show_invite: false,
            player: Player::default(),
            picture,
            notice: None,
            quitting: false,
            pending_chat: None,
            stopped: false,
            next_id: 0,
            history_targets: BTreeMap::new(),
            history_asked: BTreeSet::new(),
            history_auto: BTreeSet::new(),
        };
        if let Some(e) = errors.first() {
            app.notify(format!("[client.keys]: {e}"));
        }
        app
    }

    /// Our AOR.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.config.user, self.config.domain)
    }

    /// `bob` → `sip:bob@<domain>`; a full URI stays as it is.
    pub fn user_uri(&self, user: &str) -> String {
        let u = user.trim().trim_start_matches('<').trim_end_matches('>');
        if u.contains('@') {
            if u.starts_with("sip:") || u.starts_with("sips:") || u.starts_with("tel:") {
                u.to_string()
            } else {
                format!("sip:{u}")
            }
        } else {
            format!(
                "sip:{}@{}",
                u.trim_start_matches("sip:"),
                self.config.domain
            )
        }
    }

    /// How a URI is shown: the user part when it is in our domain.
    pub fn short_name(&self, uri: &str) -> String {
        let bare = bare_uri(uri);
        let no_scheme = bare.trim_start_matches("sip:").trim_start_matches("sips:");
        match no_scheme.split_once('@') {
            Some((u, d)) if d == self.config.domain => u.to_string(),
            _ => no_scheme.to_string(),
        }
    }

    pub fn current_conv(&self) -> Option<&Conversation> {
        self.current.and_then(|c| self.conversations.get(c.0))
    }

    fn current_conv_mut(&mut self) -> Option<&mut Conversation> {
        self.current.and_then(|c| self.conversations.get_mut(c.0))
    }

    /// Whether the side panes fit (the 80×24 layout hides them).
    pub fn wide(&self) -> bool {
        self.size.0 >= 120 && self.size.1 >= 30
    }

    /// The panes Tab visits at the current size.
    pub fn panes(&self) -> Vec<Pane> {
        let mut v = Vec::new();
        if self.wide() {
            v.push(Pane::Conversations);
        }
        v.push(Pane::Messages);
        v.push(Pane::Input);
        if self.wide() {
            v.push(Pane::Devices);
            v.push(Pane::Roster);
        }
        if self.player.session.is_some() {
            v.push(Pane::Player);
        }
        v
    }

    /// Rows of the message area, for paging.
    fn page(&self) -> usize {
        usize::from(self.size.1.saturating_sub(14)).max(3) / 2
    }

    /// Encodes the player's current frame for the terminal's graphics
    /// protocol at the pane's size, when that is not done yet: the last part
    /// of the update step, run once before each draw so that frames
    /// overtaken by newer ones in the same batch are never encoded (dropped
    /// as late). Nothing to do for half blocks, which render draws straight
    /// from the frame.
    pub fn prepare_picture(&mut self) {
        if self.picture.protocol() == PictureProtocol::HalfBlocks {
            return;
        }
        let area = super::view::video_area(self);
        match (&self.player.frame, area) {
            (Some(frame), Some(area)) if self.player.session.is_some() => {
                self.picture.prepare(frame, area)
            }
            _ => self.picture.clear(),
        }
    }

    /// The next instant the screen changes by itself (a notice or a
    /// "typing…" expiring): the event loop sleeps until then, not on a
    /// fixed tick.
    pub fn next_deadline(&self) -> Option<Instant> {
        let notice = self.notice.as_ref().map(|(_, until)| *until);
        let typing = self
            .conversations
            .iter()
            .flat_map(|c| c.composing.values().copied());
        notice.into_iter().chain(typing).min()
    }

    pub fn notify(&mut self, text: impl Into<String>) {
        self.notice = Some((text.into(), self.now + NOTICE_TIME));
    }

    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("{TUI_ID}{}", self.next_id)
    }

    /// The conversation for `key`, created if new.
    pub fn conversation_for(
        &mut self,
        key: &str,
        kind: ConvKind,
        title: &str,
        session: bool,
    ) -> ConvId {
        if let Some(i) = self.conversations.iter().position(|c| c.key == key) {
            return ConvId(i);
        }
        self.conversations.push(Conversation::new(
            key.to_string(),
            kind,
            title.to_string(),
            session,
        ));
        if self.current.is_none() {
            self.current = Some(ConvId(self.conversations.len() - 1));
        }
        ConvId(self.conversations.len() - 1)
    }

    fn open(&mut self, id: ConvId) {
        if id.0 >= self.conversations.len() {
            return;
        }
        self.current = Some(id);
        self.selected = id.0;
        let c = &mut self.conversations[id.0];
        c.unread = 0;
        c.view = ViewPos::Bottom { skip: 0 };
    }

    /// Appends an entry; counts it unread unless the user sees the bottom of it.
    fn push_entry(&mut self, id: ConvId, entry: Entry, counts: bool) {
        let is_current = self.current == Some(id);
        let Some(c) = self.conversations.get_mut(id.0) else {
            return;
        };
        c.entries.push(entry);
        let at_bottom = matches!(c.view, ViewPos::Bottom { skip: 0 });
        if let ViewPos::Bottom { skip } = &mut c.view
            && *skip > 0
        {
            *skip += 1;
        }
        if counts && !(is_current && at_bottom) {
            c.unread += 1;
            if c.first_unread.is_none() {
                c.first_unread = Some(c.entries.len() - 1);
            }
        }
    }

    fn system(&mut self, id: ConvId, text: String) {
        let entry = Entry {
            at: self.wall,
            kind: EntryKind::System(text),
            id: None,
        };
        self.push_entry(id, entry, false);
    }

    /// Turns a terminal key into actions through the key map.
    pub fn handle_key(&mut self, ev: KeyEvent) -> Vec<Command> {
        match self.key_action(ev) {
            Some(a) => self.update(a),
            None => Vec::new(),
        }
    }

    /// The action a key means in the current state.
    pub fn key_action(&self, ev: KeyEvent) -> Option<Action> {
        let key = Key::from_event(&ev);
        let text_char = match ev.code {
            KeyCode::Char(c)
                if !ev
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                Some(c)
            }
            _ => None,
        };
        let bound = |ctxs: &[Context]| {
            self.keymap
                .lookup(key, ctxs)
                .and_then(|b| action_for(b.name))
        };
        if self.prompt.is_some() {
            if let Some(a) = bound(&[Context::Prompt]) {
                return Some(a);
            }
            return match ev.code {
                KeyCode::Enter => Some(Action::Send),
                KeyCode::Esc => Some(Action::Escape),
                KeyCode::Backspace => Some(Action::Backspace),
                _ => match text_char {
                    Some(c) => Some(Action::InsertChar(c)),
                    None => bound(&[Context::Global]),
                },
            };
        }
        if !self.invitations.is_empty() && !self.show_help {
            return bound(&[Context::Invitation, Context::Global]);
        }
        if self.show_help {
            return bound(&[Context::Global, Context::Normal]).filter(|a| {
                matches!(
                    a,
                    Action::ToggleHelp
                        | Action::Escape
                        | Action::Quit
                        | Action::Up
                        | Action::Down
                        | Action::PageUp
                        | Action::PageDown
                )
            });
        }
        if self.show_flow {
            return bound(&[Context::Flow, Context::Global, Context::Normal]);
        }
        if self.focus == Pane::Input {
            if let Some(a) = bound(&[Context::Input, Context::Global]) {
                return Some(a);
            }
            if self.input.is_empty()
                && let Some(a @ (Action::OpenCommandLine | Action::OpenSearch)) =
                    bound(&[Context::Normal])
            {
                return Some(a);
            }
            return match ev.code {
                KeyCode::Backspace => Some(Action::Backspace),
                KeyCode::Delete => Some(Action::Delete),
                KeyCode::Left => Some(Action::CursorLeft),
                KeyCode::Right => Some(Action::CursorRight),
                KeyCode::Home => Some(Action::CursorHome),
                KeyCode::End => Some(Action::CursorEnd),
                _ => text_char.map(Action::InsertChar),
            };
        }
        let pane = match self.focus {
            Pane::Conversations => Context::Conversations,
            Pane::Player => Context::Player,
            _ => Context::Messages,
        };
        bound(&[pane, Context::Normal, Context::Global])
    }

    /// Mouse: the wheel scrolls the messages (or the flow view); a click
    /// opens a conversation of the list, or focuses the pane under it.
    pub fn handle_mouse(&mut self, ev: MouseEvent) -> Vec<Command> {
        match ev.kind {
            MouseEventKind::ScrollUp => self.update(Action::Scroll(3)),
            MouseEventKind::ScrollDown => self.update(Action::Scroll(-3)),
            MouseEventKind::Down(crossterm::event::MouseButton::Left) => {
                self.click(ev.column, ev.row);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn click(&mut self, x: u16, y: u16) {
        if self.show_flow || self.show_help || self.prompt.is_some() || !self.invitations.is_empty()
        {
            return;
        }
        let at = ratatui::layout::Position::new(x, y);
        let a = super::view::areas(
            self,
            ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1),
        );
        let panes = [
            (a.conversations, Pane::Conversations),
            (Some(a.messages), Pane::Messages),
            (Some(a.input), Pane::Input),
            (a.devices, Pane::Devices),
            (a.roster, Pane::Roster),
            (a.player, Pane::Player),
        ];
        let Some((r, pane)) = panes
            .into_iter()
            .find_map(|(r, p)| r.filter(|r| r.contains(at)).map(|r| (r, p)))
        else {
            return;
        };
        if pane == Pane::Conversations {
            // The rows as the list draws them: inside the border, scrolled
            // so that the highlighted row shows.
            let rows = usize::from(r.height.saturating_sub(2));
            let first = self.selected.saturating_sub(rows.saturating_sub(1));
            let row = usize::from(y.saturating_sub(r.y + 1));
            if y > r.y && row < rows && first + row < self.conversations.len() {
                self.open(ConvId(first + row));
                self.focus = Pane::Input;
                return;
            }
        }
        self.focus = pane;
    }

    /// The one state transition.
    pub fn update(&mut self, action: Action) -> Vec<Command> {
        let mut out = Vec::new();
        match action {
            Action::Tick { now, wall } => {
                self.now = now;
                self.wall = wall;
                for c in &mut self.conversations {
                    c.composing.retain(|_, until| *until > now);
                }
                if self.notice.as_ref().is_some_and(|(_, until)| *until <= now) {
                    self.notice = None;
                }
            }
            Action::Resize { width, height } => {
                self.size = (width, height);
                if !self.panes().contains(&self.focus) {
                    self.focus = Pane::Input;
                }
            }
            Action::Quit => {
                if !self.quitting {
                    self.quitting = true;
                    out.push(Command::Client(client::Command::Shutdown));
                }
            }
            Action::ToggleHelp => {
                self.show_help = !self.show_help;
                self.help_scroll = 0;
            }
            Action::ToggleFlow => self.show_flow = !self.show_flow,
            Action::FocusNext | Action::FocusPrev => {
                let panes = self.panes();
                let i = panes.iter().position(|p| *p == self.focus).unwrap_or(0);
                let n = panes.len();
                let j = if action == Action::FocusNext {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.focus = panes[j];
            }
            Action::Focus(p) => self.focus = p,
            Action::Escape => {
                if self.prompt.is_some() {
                    self.prompt = None;
                } else if self.show_invite {
                    self.show_invite = false;
                } else if self.show_help {
                    self.show_help = false;
                } else if self.show_flow && self.flow.detail {
                    self.flow.detail = false;
                } else if self.show_flow {
                    self.show_flow = false;
                } else if self.focus == Pane::Input {
                    self.focus = Pane::Messages;
                } else if let Some(c) = self.current_conv_mut() {
                    c.search = None;
                }
            }
            Action::Up | Action::Down => {
                let up = action == Action::Up;
                if self.show_help {
                    self.help_scroll = if up {
                        self.help_scroll.saturating_sub(1)
                    } else {
                        self.help_scroll + 1
                    };
                } else if self.show_flow {
                    self.flow.step(if up { -1 } else { 1 });
                } else if self.focus == Pane::Conversations {
                    let n = self.conversations.len();
                    if n > 0 {
                        self.selected = if up {
                            self.selected.saturating_sub(1)
                        } else {
                            (self.selected + 1).min(n - 1)
                        };
                    }
                } else {
                    self.scroll(if up { 1 } else { -1 });
                }
            }
            Action::PageUp | Action::PageDown => {
                let page = self.page() as i32;
                let d = if action == Action::PageUp {
                    page
                } else {
                    -page
                };
                if self.show_flow {
                    self.flow.step(-d as isize);
                } else {
                    self.scroll(d);
                }
            }
            Action::Scroll(d) => {
                if self.show_flow {
                    self.flow.step(-d as isize);
                } else {
                    self.scroll(d);
                }
            }
            Action::Select => {
                if self.show_flow {
                    self.flow.detail = !self.flow.detail;
                } else if self.focus == Pane::Conversations {
                    self.open(ConvId(self.selected));
                    self.focus = Pane::Input;
                    out.extend(self.auto_history(ConvId(self.selected)));
                }
            }
            Action::OpenConversation(id) => {
                self.open(id);
                out.extend(self.auto_history(id));
            }
            Action::JumpToUnread => self.jump_to_unread(),
            Action::InsertChar(c) => {
                if let Some(p) = &mut self.prompt {
                    match p {
                        Prompt::Command { line, matches } => {
                            line.push(c);
                            matches.clear();
                        }
                        Prompt::Search { line } => line.push(c),
                    }
                } else {
                    self.focus = Pane::Input;
                    self.input.insert(c);
                    out.extend(self.typing());
                }
            }
            Action::InsertNewline => self.input.newline(),
            Action::Paste(text) => match &mut self.prompt {
                // A prompt is one line: newlines become spaces.
                Some(Prompt::Command { line, .. }) | Some(Prompt::Search { line }) => {
                    line.push_str(&text.replace(['\r', '\n'], " "))
                }
                None => {
                    self.input.insert_str(&text);
                    out.extend(self.typing());
                }
            },
            Action::Backspace => match &mut self.prompt {
                Some(Prompt::Command { line, matches }) => {
                    matches.clear();
                    if line.len() <= 1 {
                        self.prompt = None;
                    } else {
                        line.pop();
                    }
                }
                Some(Prompt::Search { line }) => {
                    if line.len() <= 1 {
                        self.prompt = None;
                    } else {
                        line.pop();
                    }
                }
                None => {
                    self.input.backspace();
                    if self.input.is_empty() {
                        out.extend(self.stop_typing());
                    }
                }
            },
            Action::Delete => self.input.delete(),
            Action::CursorLeft => self.input.left(),
            Action::CursorRight => self.input.right(),
            Action::CursorHome => self.input.home(),
            Action::CursorEnd => self.input.end(),
            Action::HistoryPrev => self.input.up(),
            Action::HistoryNext => self.input.down(),
            Action::Send => match self.prompt.take() {
                Some(Prompt::Command { line, .. }) => out.extend(self.run_command(&line)),
                Some(Prompt::Search { line }) => self.search(line.trim_start_matches('/')),
                None => out.extend(self.send()),
            },
            Action::OpenCommandLine => {
                self.prompt = Some(Prompt::Command {
                    line: ":".into(),
                    matches: Vec::new(),
                })
            }
            Action::OpenSearch => self.prompt = Some(Prompt::Search { line: "/".into() }),
            Action::Complete => {
                if let Some(Prompt::Command { line, matches }) = &mut self.prompt {
                    let candidates = candidates(&self.config, &self.devices, &self.conversations);
                    let done = command::complete(line, &candidates);
                    *line = done.line;
                    *matches = if done.matches.len() > 1 {
                        done.matches
                    } else {
                        Vec::new()
                    };
                }
            }
            Action::RunCommand(line) => out.extend(self.run_command(&line)),
            Action::SearchNext | Action::SearchPrev => {
                let older = action == Action::SearchNext;
                if let Some(c) = self.current_conv_mut()
                    && let Some(s) = &mut c.search
                    && !s.matches.is_empty()
                {
                    s.current = if older {
                        s.current.checked_sub(1).unwrap_or(s.matches.len() - 1)
                    } else {
                        (s.current + 1) % s.matches.len()
                    };
                    let idx = s.matches[s.current];
                    c.view = ViewPos::Top {
                        first: idx.saturating_sub(SEARCH_CONTEXT),
                    };
                }
            }
            Action::AnswerInvitation(answer) => out.extend(self.answer(answer)),
            Action::ShowInvite => self.show_invite = !self.show_invite,
            Action::TogglePause => out.extend(self.pause()),
            Action::SeekBy(s) => out.extend(self.seek(SeekTo::By(s))),
            Action::ToggleStats => self.player.show_stats = !self.player.show_stats,
            Action::FlowFilterSelected => self.flow.filter_selected(),
            Action::FlowClearFilter => self.flow.set_filter(None),
            Action::Client(ev) => {
                // Once registered, ask for the content list (`:watch` completion).
                let first_registration = matches!(ev, ClientEvent::Registered { .. })
                    && !matches!(self.registration, Registration::Registered { .. })
                    && self.config.contents.is_empty();
                self.client_event(ev);
                if first_registration {
                    out.push(Command::Client(client::Command::Viewing(
                        client::content_viewing::ViewingCommand::FetchContentList,
                    )));
                }
            }
            Action::Flow(ev) => self.flow.push(ev),
            Action::Session(ev) => self.session_event(ev),
        }
        out
    }

    /// Scrolls the open conversation by `d` entries (positive: older).
    fn scroll(&mut self, d: i32) {
        let Some(c) = self.current_conv_mut() else {
            return;
        };
        let n = c.entries.len();
        if n == 0 {
            return;
        }
        let skip = match c.view {
            ViewPos::Bottom { skip } => skip as i64,
            // From a jump: make it a bottom offset again, roughly where it was.
            ViewPos::Top { first } => (n - 1 - first.min(n - 1)) as i64,
        };
        let skip = (skip + i64::from(d)).clamp(0, n as i64 - 1) as usize;
        c.view = ViewPos::Bottom { skip };
        if skip == 0 {
            c.unread = 0;
        }
    }

    fn jump_to_unread(&mut self) {
        let Some(c) = self.current_conv_mut() else {
            return;
        };
        match c.first_unread {
            Some(first) if c.unread > 0 || c.view != (ViewPos::Top { first }) => {
                c.view = ViewPos::Top { first };
                c.unread = 0;
            }
            _ => {
                // Elsewhere: the first conversation with unread messages.
                if let Some(i) = self.conversations.iter().position(|c| c.unread > 0) {
                    self.open(ConvId(i));
                    let c = &mut self.conversations[i];
                    if let Some(first) = c.first_unread {
                        c.view = ViewPos::Top { first };
                    }
                }
            }
        }
    }

    fn search(&mut self, query: &str) {
        let Some(c) = self.current_conv_mut() else {
            return;
        };
        let q = query.to_lowercase();
        let matches: Vec<usize> = c
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.text().to_lowercase().contains(&q))
            .map(|(i, _)| i)
            .collect();
        let found = matches.len();
        if let Some(&last) = matches.last() {
            c.view = ViewPos::Top {
                first: last.saturating_sub(SEARCH_CONTEXT),
            };
        }
        c.search = Some(Search {
            query: query.to_string(),
            current: found.saturating_sub(1),
            matches,
        });
        if found == 0 {
            self.notify(format!("no match for {query:?}"));
        }
    }

    /// isComposing towards the peer of a pager conversation, or in the
    /// session of a session conversation (RFC 3994 over MSRP).
    fn typing(&self) -> Option<Command> {
        self.composing(true)
    }

    fn stop_typing(&self) -> Option<Command> {
        self.composing(false)
    }

    fn composing(&self, active: bool) -> Option<Command> {
        let c = self.current_conv()?;
        if c.closed.is_some() {
            return None;
        }
        Some(match &c.kind {
            ConvKind::OneToOne { peer } if !c.session => {
                let to = peer.clone();
                Command::Client(if active {
                    client::Command::Typing { to }
                } else {
                    client::Command::StopTyping { to }
                })
            }
            _ => Command::SessionTyping {
                session: c.key.clone(),
                active,
            },
        })
    }

    fn send(&mut self) -> Vec<Command> {
        if self.input.text().trim().is_empty() {
            return Vec::new();
        }
        let Some(id) = self.current else {
            self.notify("no conversation open: :chat <user> starts one");
            return Vec::new();
        };
        if let Some(c) = self.current_conv()
            && c.session
            && let Some(why) = &c.closed
        {
            // The text stays in the input: nothing would carry it.
            let (title, why) = (c.title.clone(), why.clone());
            self.notify(format!(
                "this session is over ({why}): :chat {title} starts a new one"
            ));
            return Vec::new();
        }
        let raw = self.input.take();
        let msg_id = self.fresh_id();
        let conv = &self.conversations[id.0];
        // In a group, "@bob: text" goes to bob only (seed 003 7.1.3.2.2).
        let (private, text) = match (
            &conv.kind,
            raw.strip_prefix('@').and_then(|r| r.split_once(": ")),
        ) {
            (ConvKind::Group { .. } | ConvKind::Viewing { .. }, Some((who, rest))) => {
                (Some(self.user_uri(who)), rest.to_string())
            }
            _ => (None, raw),
        };
        let command = match (&conv.kind, conv.session) {
            (ConvKind::OneToOne { peer }, false) => Command::Client(client::Command::SendMessage {
                to: peer.clone(),
                text: text.clone(),
                id: Some(msg_id.clone()),
            }),
            _ => Command::SendChat {
                session: conv.key.clone(),
                text: text.clone(),
                private_to: private.clone(),
            },
        };
        let private = private.map(|p| self.short_name(&p));
        let c = &mut self.conversations[id.0];
        c.first_unread = None;
        c.view = ViewPos::Bottom { skip: 0 };
        let entry = Entry {
            at: self.wall,
            kind: EntryKind::Message {
                from: Sender::You,
                text,
                private,
                delivery: Some(Delivery::Sending),
                late: false,
            },
            id: Some(msg_id),
        };
        self.push_entry(id, entry, false);
        vec![command]
    }

    fn run_command(&mut self, line: &str) -> Vec<Command> {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(e) => {
                self.notify(e);
                return Vec::new();
            }
        };
        let session = self.current_conv().map(|c| c.key.clone());
        let need_session = |app: &mut App| -> Option<String> {
            if session.is_none() {
                app.notify("no conversation open");
            }
            session.clone()
        };
        match cmd {
            Cmd::Chat(user) => {
                let peer = self.user_uri(&user);
                let title = self.short_name(&peer);
                let id = self.conversation_for(
                    &peer,
                    ConvKind::OneToOne { peer: peer.clone() },
                    &title,
                    false,
                );
                self.open(id);
                self.focus = Pane::Input;
                self.pending_chat = Some(peer.clone());
                let mut out = vec![Command::StartChat { with: peer }];
                out.extend(self.auto_history(id));
                out
            }
            Cmd::History(user) => {
                let target = match user {
                    Some(u) => {
                        let peer = self.user_uri(&u);
                        let title = self.short_name(&peer);
                        let id = self.conversation_for(
                            &peer,
                            ConvKind::OneToOne { peer: peer.clone() },
                            &title,
                            false,
                        );
                        self.open(id);
                        Some(id)
                    }
                    None => self.current,
                };
                match target.and_then(|id| self.history_command(id)) {
                    Some(c) => vec![c],
                    None => {
                        let group = self
                            .current_conv()
                            .is_some_and(|c| matches!(c.kind, ConvKind::Group { .. }));
                        // Our server keeps group history apart, with no
                        // record of who took part: not offered for retrieval.
                        self.notify(if group {
                            "history: only 1-1 conversations can be fetched from the server"
                        } else {
                            "history: open a 1-1 conversation or name a user"
                        });
                        Vec::new()
                    }
                }
            }
            Cmd::Watch {
                content,
                with,
                chat_on,
            } => {
                let with = with.iter().map(|u| self.user_uri(u)).collect();
                let chat_on = chat_on.map(|d| self.device_address(&d));
                vec![Command::Watch {
                    content,
                    with,
                    chat_on,
                }]
            }
            Cmd::Group { name, members } => {
                let members = members.iter().map(|u| self.user_uri(u)).collect();
                vec![Command::CreateGroup { name, members }]
            }
            Cmd::Invite(users) => {
                let Some(session) = need_session(self) else {
                    return Vec::new();
                };
                let users = users.iter().map(|u| self.user_uri(u)).collect();
                match self.current_conv().map(|c| (&c.kind, c.session)) {
                    Some((ConvKind::OneToOne { .. }, true)) => {
                        vec![Command::Extend { session, users }]
                    }
                    Some((ConvKind::OneToOne { .. }, false)) => {
                        self.notify(":invite needs a chat session: :chat <user> first");
                        Vec::new()
                    }
                    _ => vec![Command::Invite { session, users }],
                }
            }
            Cmd::Join(g) => vec![Command::Join {
                uri: self.user_uri(&g),
            }],
            Cmd::Rejoin(g) => {
                let uri = match g {
                    Some(g) => self.user_uri(&g),
                    None => match need_session(self) {
                        Some(s) => s,
                        None => return Vec::new(),
                    },
                };
                vec![Command::Rejoin { uri }]
            }
            Cmd::Pause => self.pause(),
            Cmd::Seek(to) => self.seek(to),
            Cmd::Block(user) => {
                let uri = self.user_uri(&user);
                self.blocklist.insert(uri.clone());
                vec![Command::Block { user: uri }]
            }
            Cmd::Unblock(user) => {
                let uri = self.user_uri(&user);
                self.blocklist.remove(&uri);
                vec![Command::Unblock { user: uri }]
            }
            // seed 003 9.1.1.2: to the named user or group, else this conversation's
            Cmd::SendFile { path, to } => {
                let to = match to {
                    Some(u) => Some(self.user_uri(&u)),
                    None => self.current_conv().and_then(|c| match &c.kind {
                        ConvKind::OneToOne { peer } => Some(peer.clone()),
                        ConvKind::Group { uri } => Some(uri.clone()),
                        ConvKind::Viewing { .. } => None,
                    }),
                };
                match to {
                    Some(to) => vec![Command::SendFile { to, path }],
                    None => {
                        self.notify("send to whom? :send-file PATH to USER");
                        Vec::new()
                    }
                }
            }
            Cmd::Deferred(ids) => vec![Command::Client(client::Command::Deferred(
                client::deferred::DeferredCommand::Retrieve { ids, service: None },
            ))],
            Cmd::ExportFlow { path, mermaid } => vec![Command::ExportFlow { path, mermaid }],
            Cmd::Quit => self.update(Action::Quit),
        }
    }

    /// A device name → its GRUU when we know it (else the name as typed).
    fn device_address(&self, name: &str) -> String {
        self.devices
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.gruu.clone())
            .unwrap_or_else(|| name.to_string())
    }

    fn pause(&mut self) -> Vec<Command> {
        let Some(session) = self.player.session.clone() else {
            self.notify("nothing is playing");
            return Vec::new();
        };
        if self.player.paused {
            vec![Command::Resume { session }]
        } else {
            vec![Command::Pause { session }]
        }
    }

    fn seek(&mut self, to: SeekTo) -> Vec<Command> {
        let Some(session) = self.player.session.clone() else {
            self.notify("nothing is playing");
            return Vec::new();
        };
        let to = match to {
            SeekTo::At(d) => d,
            SeekTo::By(s) => {
                let pos = self.player.position.as_secs() as i64 + s;
                Duration::from_secs(pos.max(0) as u64)
            }
        };
        vec![Command::Seek { session, to }]
    }

    fn answer(&mut self, answer: Answer) -> Vec<Command> {
        let Some(inv) = self.invitations.front() else {
            return Vec::new();
        };
        let answer = match answer {
            Answer::AcceptSplit { chat_on } if chat_on.is_empty() => {
                // The other device of ours that chats.
                let other = self.devices.iter().find(|d| {
                    !d.is_self
                        && d.online
                        && matches!(d.role, Some(DeviceRole::Chat | DeviceRole::Both) | None)
                });
                match other {
                    Some(d) => Answer::AcceptSplit {
                        chat_on: d.gruu.clone().unwrap_or_else(|| d.name.clone()),
                    },
                    None => {
                        self.notify("no other device of yours is online to chat on");
                        return Vec::new();
                    }
                }
            }
            a => a,
        };
        let id = inv.id;
        self.invitations.pop_front();
        self.show_invite = false;
        vec![Command::AnswerInvitation { id, answer }]
    }

    fn client_event(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Chat(chat) => {
                for s in super::chat_link::session_events(chat) {
                    self.session_event(s);
                }
            }
            ClientEvent::Registered { gruu, .. } => {
                if let Some(me) = self.devices.iter_mut().find(|d| d.is_self) {
                    me.gruu = gruu.clone();
                    me.activity = "registered".into();
                }
                self.registration = Registration::Registered { gruu };
            }
            ClientEvent::RegistrationFailed {
                status,
                reason,
                retry_in,
            } => {
                let reason = match status {
                    Some(s) => format!("{s} {reason}"),
                    None => reason,
                };
                self.registration = Registration::Failed { reason, retry_in };
            }
            ClientEvent::Unregistered => self.registration = Registration::Unregistered,
            ClientEvent::DevicesChanged { devices } => self.devices_changed(devices),
            ClientEvent::MessageReceived {
                from,
                content_type,
                body,
                asserted_identity,
                ..
            } => {
                let from = asserted_identity.unwrap_or(from);
                let peer = bare_uri(&from).to_string();
                let ct = content_type.unwrap_or_else(|| "text/plain".into());
                let text = if ct.starts_with("text/") {
                    String::from_utf8_lossy(&body).into_owned()
                } else {
                    format!("[{ct}, {} bytes]", body.len())
                };
                let title = self.short_name(&peer);
                let id = self.conversation_for(
                    &peer,
                    ConvKind::OneToOne { peer: peer.clone() },
                    &title,
                    false,
                );
                self.conversations[id.0].composing.remove(&title);
                let entry = Entry {
                    at: self.wall,
                    kind: EntryKind::Message {
                        from: Sender::Peer(title),
                        text,
                        private: None,
                        delivery: None,
                        late: false,
                    },
                    id: None,
                };
                self.push_entry(id, entry, true);
            }
            ClientEvent::MessageDelivered { id, .. } => self.set_delivery(&id, Delivery::Delivered),
            ClientEvent::MessageFailed {
                id,
                status,
                reason,
                warning,
                ..
            } => {
                let mut why = match status {
                    Some(s) => format!("{s} {reason}"),
                    None => reason,
                };
                if let Some(w) = warning {
                    why.push_str(&format!(" ({w})"));
                }
                self.set_delivery(&id, Delivery::Failed(why));
            }
            ClientEvent::ComposingChanged { from, active } => {
                let peer = bare_uri(&from).to_string();
                let who = self.short_name(&peer);
                if let Some(c) = self.conversations.iter_mut().find(|c| c.key == peer) {
                    if active {
                        c.composing.insert(who, self.now + COMPOSING_TIMEOUT);
                    } else {
                        c.composing.remove(&who);
                    }
                }
            }
            ClientEvent::ComposingUnsupported { .. } => {}
            ClientEvent::CallDeclined { from, media } => self.notify(format!(
                "declined a {} call from {from}: isc takes chat and content viewing only",
                media.join("+")
            )),
            ClientEvent::WatchEnded { reason } => {
                self.notify(format!("device list no longer updated: {reason}"))
            }
            ClientEvent::Stopped => self.stopped = true,
            ClientEvent::Deferred(ev) => self.deferred_event(ev),
            ClientEvent::Viewing(ev) => {
                for s in super::viewing_link::session_events(ev) {
                    self.session_event(s);
                }
            }
            ClientEvent::History(ev) => self.history_event(ev),
        }
    }

    /// The retrieval for 1-1 conversation `id` (seed 003 13.1.3: its peer
    /// is the history reference); None for other kinds.
    fn history_command(&mut self, id: ConvId) -> Option<Command> {
        let c = self.conversations.get(id.0)?;
        let ConvKind::OneToOne { peer } = &c.kind else {
            return None;
        };
        let peer = bare_uri(peer).to_string();
        self.history_asked.insert(c.key.clone());
        self.history_targets.insert(peer.clone(), c.key.clone());
        Some(Command::Client(client::Command::History(
            client::history::HistoryQuery::conversation(&peer),
        )))
    }

    /// Opening a 1-1 conversation with nothing in it fetches its history
    /// once: this device may not have been part of it.
    fn auto_history(&mut self, id: ConvId) -> Option<Command> {
        let c = self.conversations.get(id.0)?;
        if !c.entries.is_empty() || self.history_asked.contains(&c.key) {
            return None;
        }
        let ConvKind::OneToOne { peer } = &c.kind else {
            return None;
        };
        let peer = bare_uri(peer).to_string();
        let cmd = self.history_command(id)?;
        self.history_auto.insert(peer);
        Some(cmd)
    }

    fn history_event(&mut self, ev: client::history::HistoryEvent) {
        use client::history::HistoryEvent;
        let (conversation, outcome) = match ev {
            HistoryEvent::Requested { .. } => return,
            HistoryEvent::Retrieved {
                conversation,
                items,
                complete,
                ..
            } => (conversation, Ok((items, complete))),
            HistoryEvent::Failed {
                conversation,
                error,
                ..
            } => (conversation, Err(error)),
        };
        let auto = self.history_auto.remove(&conversation);
        let key = self
            .history_targets
            .remove(&conversation)
            .unwrap_or_else(|| conversation.clone());
        let title = self.short_name(&conversation);
        let id = self.conversation_for(
            &key,
            ConvKind::OneToOne {
                peer: conversation.clone(),
            },
            &title,
            false,
        );
        let me = self.aor();
        let domain = self.config.domain.clone();
        let wall = self.wall;
        let Some(c) = self.conversations.get_mut(id.0) else {
            return;
        };
        let line = match outcome {
            Ok((items, complete)) => {
                super::history_view::merge(c, &items, complete, &me, &domain, wall)
            }
            // A conversation the server never saw is not an error when the
            // user did not ask: a quiet line, no notice.
            Err(error) if auto && error.status() == Some(404) => {
                super::history_view::nothing_stored(c, wall)
            }
            Err(error) => super::history_view::failed(c, &error, wall),
        };
        if self.current != Some(id) && !auto {
            self.notify(format!("{title}: {line}"));
        }
    }

    /// Seed 002 D.2: a deferred message goes to the 1-1 conversation with
    /// its sender, at its original date, marked "delivered late".
    fn deferred_event(&mut self, ev: client::deferred::DeferredEvent) {
        use client::deferred::DeferredEvent as D;
        use client::deferred_headless::{failure_text, waiting_text};
        match ev {
            D::Message { message, .. } => {
                let peer = bare_uri(&message.from).to_string();
                let title = self.short_name(&peer);
                let id = self.conversation_for(
                    &peer,
                    ConvKind::OneToOne { peer: peer.clone() },
                    &title,
                    false,
                );
                let at = message
                    .sent_unix
                    .and_then(|s| u64::try_from(s).ok())
                    .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                    .unwrap_or(self.wall);
                let entry = Entry {
                    at,
                    kind: EntryKind::Message {
                        from: Sender::Peer(title),
                        text: message.text(),
                        private: None,
                        delivery: None,
                        late: true,
                    },
                    id: None,
                };
                self.push_entry(id, entry, true);
            }
            D::Waiting { count, .. } if count > 0 => {
                self.notify(format!("{} (:deferred to fetch)", waiting_text(count)))
            }
            D::RetrievalFailed {
                status,
                reason,
                warning,
            } => self.notify(failure_text(status, &reason, warning.as_deref())),
            D::Unreadable { reason, .. } => {
                self.notify(format!("a deferred message could not be read: {reason}"))
            }
            D::Ended { received, .. } if received > 0 => {
                self.notify(format!("{received} deferred message(s) delivered"))
            }
            _ => {}
        }
    }

    fn set_delivery(&mut self, id: &str, d: Delivery) {
        for c in &mut self.conversations {
            if let Some(e) = c
                .entries
                .iter_mut()
                .rev()
                .find(|e| e.id.as_deref() == Some(id))
            {
                if let EntryKind::Message { delivery, .. } = &mut e.kind {
                    *delivery = Some(d);
                }
                return;
            }
        }
    }

    fn devices_changed(&mut self, devices: Vec<client::Device>) {
        let old = std::mem::take(&mut self.devices);
        let mut seen = Vec::new();
        for d in devices {
            let name = d
                .name
                .clone()
                .unwrap_or_else(|| d.instance.clone().unwrap_or_else(|| d.contact.clone()));
            let prev = old
                .iter()
                .find(|o| o.name == name || (d.is_self && o.is_self));
            let online = !matches!(
                d.state.as_str(),
                "expired" | "deactivated" | "unregistered" | "rejected"
            );
            let role = if d.is_self {
                Some(self.config.role)
            } else {
                prev.and_then(|p| p.role)
            };
            let activity = match prev {
                Some(p) if online && p.activity != "offline" && p.activity != "starting" => {
                    p.activity.clone()
                }
                _ if online => "registered".into(),
                _ => "offline".into(),
            };
            seen.push(DeviceView {
                name: if d.is_self {
                    self.config.device.clone()
                } else {
                    name
                },
                gruu: d.gruu,
                is_self: d.is_self,
                role,
                activity,
                online,
            });
        }
        if !seen.iter().any(|d| d.is_self)
            && let Some(me) = old.iter().find(|d| d.is_self)
        {
            seen.insert(0, me.clone());
        }
        // Devices that left stay listed as offline.
        for o in old {
            if !seen.iter().any(|d| d.name == o.name) {
                seen.push(DeviceView {
                    online: false,
                    activity: "offline".into(),
                    ..o
                });
            }
        }
        seen.sort_by_key(|d| (!d.is_self, d.name.clone()));
        self.devices = seen;
    }

    fn session_event(&mut self, ev: SessionEvent) {
        let find = |app: &App, key: &str| {
            app.conversations
                .iter()
                .position(|c| c.key == key)
                .map(ConvId)
        };
        match ev {
            SessionEvent::Opened { key, kind, title } => {
                if let ConvKind::Viewing { content, .. } = &kind {
                    self.player = Player {
                        session: Some(key.clone()),
                        title: Some(content.clone()),
                        show_stats: self.player.show_stats,
                        ..Player::default()
                    };
                }
                // A 1-1 is named like its pager conversation (`bob`).
                let title = match &kind {
                    ConvKind::OneToOne { peer } => self.short_name(peer),
                    _ => title,
                };
                // `:chat bob` asked for this one: show it.
                let asked = match (&kind, &self.pending_chat) {
                    (ConvKind::OneToOne { peer }, Some(p)) => bare_uri(peer) == bare_uri(p),
                    _ => false,
                };
                let id = self.conversation_for(&key, kind, &title, true);
                self.conversations[id.0].session = true;
                self.conversations[id.0].closed = None;
                if asked {
                    self.pending_chat = None;
                    self.open(id);
                    self.focus = Pane::Input;
                }
            }
            SessionEvent::Closed { key, reason } => {
                if let Some(id) = find(self, &key) {
                    self.conversations[id.0].closed = Some(reason.clone());
                    self.system(id, format!("session ended: {reason}"));
                }
                if self.player.session.as_deref() == Some(key.as_str()) {
                    self.player.session = None;
                }
            }
            SessionEvent::Message {
                key,
                from,
                text,
                private,
                sent_at,
                late,
            } => {
                let Some(id) = find(self, &key) else { return };
                let who = self.short_name(&from);
                self.conversations[id.0].composing.remove(&who);
                let entry = Entry {
                    at: sent_at.unwrap_or(self.wall),
                    kind: EntryKind::Message {
                        from: Sender::Peer(who),
                        text,
                        private: private.then(|| "you".to_string()),
                        delivery: None,
                        late,
                    },
                    id: None,
                };
                self.push_entry(id, entry, true);
            }
            SessionEvent::Composing { key, from, active } => {
                let who = self.short_name(&from);
                let until = self.now + COMPOSING_TIMEOUT;
                if let Some(id) = find(self, &key) {
                    let c = &mut self.conversations[id.0].composing;
                    if active {
                        c.insert(who, until);
                    } else {
                        c.remove(&who);
                    }
                }
            }
            SessionEvent::Sent {
                key,
                message_id,
                text,
            } => {
                let Some(id) = find(self, &key) else { return };
                if let Some(e) = self.conversations[id.0]
                    .entries
                    .iter_mut()
                    .find(|e| e.awaits_id() && e.text() == text)
                {
                    e.id = Some(message_id);
                }
            }
            SessionEvent::Delivery {
                key,
                message_id,
                delivery,
            } => {
                if !message_id.is_empty() {
                    self.set_delivery(&message_id, delivery);
                } else if let Some(id) = find(self, &key)
                    && let Some(e) = self.conversations[id.0]
                        .entries
                        .iter_mut()
                        .find(|e| e.awaits_id())
                {
                    if let EntryKind::Message { delivery: d, .. } = &mut e.kind {
                        *d = Some(delivery);
                    }
                    e.id = None;
                }
            }
            SessionEvent::Contents(ids) => self.config.contents = ids,
            SessionEvent::Note { key, text } => {
                // A repeated note (a 180 per forked branch) is one line.
                if let Some(id) = find(self, &key)
                    && self.conversations[id.0]
                        .entries
                        .last()
                        .is_none_or(|e| e.kind != EntryKind::System(text.clone()))
                {
                    self.system(id, text);
                }
            }
            // A Large Message's progress: one line per transfer, updated in place.
            SessionEvent::Transfer { key, id, text } => {
                let Some(conv) = find(self, &key) else { return };
                let line = self.conversations[conv.0]
                    .entries
                    .iter_mut()
                    .rev()
                    .find(|e| e.id.as_deref() == Some(id.as_str()));
                match line {
                    Some(e) => e.kind = EntryKind::System(text),
                    None => {
                        let entry = Entry {
                            at: self.wall,
                            kind: EntryKind::System(text),
                            id: Some(id),
                        };
                        self.push_entry(conv, entry, false);
                    }
                }
            }
            SessionEvent::ContinuedElsewhere { key, device } => {
                if let Some(id) = find(self, &key) {
                    self.conversations[id.0].closed = Some(format!("continued on {device}"));
                    self.system(id, format!("continued on your other device ({device})"));
                }
            }
            SessionEvent::Roster { key, entries } => {
                let Some(id) = find(self, &key) else { return };
                let old: Vec<RosterEntry> = self.conversations[id.0].roster.clone();
                let new: Vec<RosterEntry> = entries
                    .into_iter()
                    .map(|(user, status, is_self)| RosterEntry {
                        user: self.short_name(&user),
                        status,
                        is_self,
                    })
                    .collect();
                for n in &new {
                    let before = old.iter().find(|o| o.user == n.user).map(|o| o.status);
                    let line = match (before, n.status) {
                        (b, RosterStatus::Connected) if b != Some(RosterStatus::Connected) => {
                            "joined"
                        }
                        (
                            Some(RosterStatus::Connected | RosterStatus::Ringing),
                            RosterStatus::Left,
                        ) => "left",
                        _ => continue,
                    };
                    if !n.is_self {
                        let flag = if self.blocklist.contains(&self.user_uri(&n.user)) {
                            " (blocked)"
                        } else {
                            ""
                        };
                        self.system(id, format!("{}{flag} {line}", n.user));
                    }
                }
                self.conversations[id.0].roster = new;
            }
            SessionEvent::Invitation(inv) => self.invitations.push_back(inv),
            SessionEvent::InvitationGone { id, reason } => {
                if self.invitations.front().is_some_and(|i| i.id == id) {
                    self.show_invite = false;
                }
                let before = self.invitations.len();
                self.invitations.retain(|i| i.id != id);
                if self.invitations.len() < before {
                    self.notify(reason);
                }
            }
            SessionEvent::DeviceActivity {
                device,
                activity,
                role,
            } => {
                if let Some(d) = self.devices.iter_mut().find(|d| d.name == device) {
                    d.activity = activity;
                    if role.is_some() {
                        d.role = role;
                    }
                }
            }
            SessionEvent::Frame(f) => self.player.frame = Some(f),
            SessionEvent::Progress { position, duration } => {
                self.player.position = position;
                if duration.is_some() {
                    self.player.duration = duration;
                }
            }
            SessionEvent::Control { by, what, at } => {
                self.player.paused = what == "paused";
                self.player.last_control = Some((self.short_name(&by), what, at));
            }
            SessionEvent::Stats {
                loss_pct,
                jitter_ms,
                packets,
            } => {
                self.player.stats = Some(StreamStats {
                    loss_pct,
                    jitter_ms,
                    packets,
                })
            }
            SessionEvent::Error(e) => match self.current {
                Some(id) => self.system(id, format!("error: {e}")),
                None => self.notify(e),
            },
        }
    }
}

/// What completion offers, from config, devices and conversations.
fn candidates(config: &AppConfig, devices: &[DeviceView], convs: &[Conversation]) -> Candidates {
    let mut users = config.users.clone();
    for c in convs {
        if let ConvKind::OneToOne { peer } = &c.kind {
            users.push(c.title.clone());
            let _ = peer;
        }
        users.extend(
            c.roster
                .iter()
                .filter(|r| !r.is_self)
                .map(|r| r.user.clone()),
        );
    }
    users.sort();
    users.dedup();
    Candidates {
        users,
        devices: devices
            .iter()
            .filter(|d| !d.is_self)
            .map(|d| d.name.clone())
            .collect(),
        contents: config.contents.clone(),
        groups: config.groups.clone(),
    }
}

/// `"Bob" <sip:bob@x>;tag=1` → `sip:bob@x`.
pub fn bare_uri(s: &str) -> &str {
    let s = s.trim();
    let s = match (s.find('<'), s.find('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    s.split(';').next().unwrap_or(s)
}
