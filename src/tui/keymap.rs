//! Keys as data: every binding is a row (action name, key, where it works,
//! what it does). Defaults live here; `[client.keys]` overrides replace the
//! keys of an action by name (`quit = "ctrl-q"`, several keys comma
//! separated). `?` shows this table and [`COMMANDS`].

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, Answer, Pane};

/// Where a binding applies. `Global` works everywhere except on the
/// command line and the search prompt, which take text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Context {
    Global,
    /// Any pane but the input (single-key bindings that would otherwise be text).
    Normal,
    Input,
    Conversations,
    Messages,
    Player,
    Flow,
    Invitation,
    /// The `:` command line and the `/` prompt.
    Prompt,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::Global => "everywhere",
            Context::Normal => "outside the input",
            Context::Input => "input",
            Context::Conversations => "conversation list",
            Context::Messages => "messages",
            Context::Player => "player",
            Context::Flow => "flow view",
            Context::Invitation => "invitation",
            Context::Prompt => "command line / search",
        }
    }
}

/// One key with its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub const fn new(code: KeyCode, mods: KeyModifiers) -> Self {
        Key { code, mods }
    }

    const fn plain(code: KeyCode) -> Self {
        Key::new(code, KeyModifiers::NONE)
    }

    const fn ch(c: char) -> Self {
        Key::plain(KeyCode::Char(c))
    }

    const fn ctrl(c: char) -> Self {
        Key::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    /// Normalises a terminal key event: Shift is dropped for characters
    /// (`N` arrives as Shift+N), BackTab is Shift-Tab.
    pub fn from_event(ev: &KeyEvent) -> Self {
        let mut mods =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match ev.code {
            KeyCode::BackTab => {
                mods |= KeyModifiers::SHIFT;
                KeyCode::Tab
            }
            KeyCode::Char(c) => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::Char(if mods.contains(KeyModifiers::CONTROL) {
                    c.to_ascii_lowercase()
                } else {
                    c
                })
            }
            other => other,
        };
        Key { code, mods }
    }

    /// Parses `ctrl-q`, `alt-enter`, `shift-tab`, `pgup`, `f1`, `?`, `n`, `N`.
    pub fn parse(s: &str) -> Result<Key, KeyMapError> {
        let bad = || KeyMapError::BadKey(s.to_string());
        let mut mods = KeyModifiers::NONE;
        let mut rest = s.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            let (m, len) = if lower.starts_with("ctrl-") {
                (KeyModifiers::CONTROL, 5)
            } else if lower.starts_with("alt-") {
                (KeyModifiers::ALT, 4)
            } else if lower.starts_with("shift-") {
                (KeyModifiers::SHIFT, 6)
            } else {
                break;
            };
            if rest.len() == len {
                break;
            }
            mods |= m;
            rest = &rest[len..];
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(if mods.contains(KeyModifiers::CONTROL) {
                c.to_ascii_lowercase()
            } else {
                c
            }),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "tab" => KeyCode::Tab,
                "backtab" => {
                    mods |= KeyModifiers::SHIFT;
                    KeyCode::Tab
                }
                "esc" | "escape" => KeyCode::Esc,
                "space" => KeyCode::Char(' '),
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pgup" | "pageup" => KeyCode::PageUp,
                "pgdn" | "pagedown" => KeyCode::PageDown,
                f if f.starts_with('f') => KeyCode::F(f[1..].parse().map_err(|_| bad())?),
                _ => return Err(bad()),
            },
        };
        if let KeyCode::Char(_) = code {
            mods.remove(KeyModifiers::SHIFT);
        }
        Ok(Key { code, mods })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Up => f.write_str("up"),
            KeyCode::Down => f.write_str("down"),
            KeyCode::Left => f.write_str("left"),
            KeyCode::Right => f.write_str("right"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// One row of the key map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The name `[client.keys]` uses.
    pub name: &'static str,
    pub keys: Vec<Key>,
    pub context: Context,
    pub help: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyMapError {
    #[error("unknown key {0:?}")]
    BadKey(String),
    #[error("unknown action {0:?} in [client.keys]")]
    UnknownAction(String),
}

/// The action a binding name stands for.
pub fn action_for(name: &str) -> Option<Action> {
    Some(match name {
        "quit" => Action::Quit,
        "help" => Action::ToggleHelp,
        "flow" => Action::ToggleFlow,
        "next_pane" => Action::FocusNext,
        "prev_pane" => Action::FocusPrev,
        "input" => Action::Focus(Pane::Input),
        "escape" => Action::Escape,
        "up" => Action::Up,
        "down" => Action::Down,
        "page_up" => Action::PageUp,
        "page_down" => Action::PageDown,
        "select" => Action::Select,
        "jump_unread" => Action::JumpToUnread,
        "command_line" => Action::OpenCommandLine,
        "search" => Action::OpenSearch,
        "search_next" => Action::SearchNext,
        "search_prev" => Action::SearchPrev,
        "send" => Action::Send,
        "newline" => Action::InsertNewline,
        "history_prev" => Action::HistoryPrev,
        "history_next" => Action::HistoryNext,
        "complete" => Action::Complete,
        "accept" => Action::AnswerInvitation(Answer::AcceptHere),
        // The device is filled in by the app (the other device with a chat role).
        "accept_split" => Action::AnswerInvitation(Answer::AcceptSplit {
            chat_on: String::new(),
        }),
        "decline" => Action::AnswerInvitation(Answer::Decline),
        "show_invite" => Action::ShowInvite,
        "pause" => Action::TogglePause,
        "seek_back" => Action::SeekBy(-10),
        "seek_forward" => Action::SeekBy(10),
        "stats" => Action::ToggleStats,
        "filter_dialog" => Action::FlowFilterSelected,
        "clear_filter" => Action::FlowClearFilter,
        _ => return None,
    })
}

fn row(name: &'static str, keys: &[Key], context: Context, help: &'static str) -> Binding {
    Binding {
        name,
        keys: keys.to_vec(),
        context,
        help,
    }
}

/// The key map: the default rows with any overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMap {
    pub bindings: Vec<Binding>,
}

impl Default for KeyMap {
    fn default() -> Self {
        use Context::*;
        use KeyCode as K;
        let alt_enter = Key::new(K::Enter, KeyModifiers::ALT);
        let shift_enter = Key::new(K::Enter, KeyModifiers::SHIFT);
        let shift_tab = Key::new(K::Tab, KeyModifiers::SHIFT);
        KeyMap {
            bindings: vec![
                row(
                    "quit",
                    &[Key::ctrl('c'), Key::ctrl('q')],
                    Global,
                    "quit (restores the terminal)",
                ),
                row("help", &[Key::plain(K::F(1))], Global, "this help"),
                row("help", &[Key::ch('?')], Normal, "this help"),
                row(
                    "flow",
                    &[Key::plain(K::F(3)), Key::ctrl('f')],
                    Global,
                    "flow view: the wire ladder",
                ),
                row("next_pane", &[Key::plain(K::Tab)], Global, "next pane"),
                row("prev_pane", &[shift_tab], Global, "previous pane"),
                row("input", &[Key::ch('i')], Normal, "type a message"),
                row(
                    "escape",
                    &[Key::plain(K::Esc)],
                    Global,
                    "close overlay / leave prompt",
                ),
                row("page_up", &[Key::plain(K::PageUp)], Global, "scroll back"),
                row(
                    "page_down",
                    &[Key::plain(K::PageDown)],
                    Global,
                    "scroll forward",
                ),
                row(
                    "jump_unread",
                    &[Key::new(K::Char('u'), KeyModifiers::ALT)],
                    Global,
                    "jump to the first unread message",
                ),
                row(
                    "jump_unread",
                    &[Key::ch('u')],
                    Normal,
                    "jump to the first unread message",
                ),
                row(
                    "command_line",
                    &[Key::ch(':')],
                    Normal,
                    "command line (also ':' in an empty input)",
                ),
                row(
                    "search",
                    &[Key::ch('/')],
                    Normal,
                    "search the conversation (also '/' in an empty input)",
                ),
                row("search_next", &[Key::ch('n')], Messages, "next match"),
                row("search_prev", &[Key::ch('N')], Messages, "previous match"),
                row(
                    "up",
                    &[Key::plain(K::Up), Key::ch('k')],
                    Normal,
                    "move up / older",
                ),
                row(
                    "down",
                    &[Key::plain(K::Down), Key::ch('j')],
                    Normal,
                    "move down / newer",
                ),
                row(
                    "select",
                    &[Key::plain(K::Enter)],
                    Normal,
                    "open the selected item",
                ),
                row("send", &[Key::plain(K::Enter)], Input, "send"),
                row(
                    "newline",
                    &[alt_enter, shift_enter],
                    Input,
                    "new line in the message",
                ),
                row(
                    "history_prev",
                    &[Key::plain(K::Up)],
                    Input,
                    "previous sent message (on the first line)",
                ),
                row(
                    "history_next",
                    &[Key::plain(K::Down)],
                    Input,
                    "next sent message (on the last line)",
                ),
                row(
                    "complete",
                    &[Key::plain(K::Tab)],
                    Prompt,
                    "complete user / device / content",
                ),
                row("accept", &[Key::ch('a')], Invitation, "accept here"),
                row(
                    "accept_split",
                    &[Key::ch('s')],
                    Invitation,
                    "play here, chat on my other device",
                ),
                row("decline", &[Key::ch('d')], Invitation, "decline"),
                row(
                    "show_invite",
                    &[Key::ch('i')],
                    Invitation,
                    "show the INVITE",
                ),
                row(
                    "pause",
                    &[Key::ch(' '), Key::ch('p')],
                    Player,
                    "pause / resume for everyone",
                ),
                row(
                    "seek_back",
                    &[Key::plain(K::Left)],
                    Player,
                    "seek back 10 s",
                ),
                row(
                    "seek_forward",
                    &[Key::plain(K::Right)],
                    Player,
                    "seek forward 10 s",
                ),
                row("stats", &[Key::ch('s')], Player, "show / hide stream stats"),
                row(
                    "filter_dialog",
                    &[Key::ch('f')],
                    Flow,
                    "show only the selected row's dialog (Call-ID)",
                ),
                row("clear_filter", &[Key::ch('F')], Flow, "show every dialog"),
            ],
        }
    }
}

impl KeyMap {
    /// The defaults with `[client.keys]` applied. Bad rows are reported and
    /// skipped; the rest still apply.
    pub fn with_overrides(overrides: &BTreeMap<String, String>) -> (KeyMap, Vec<KeyMapError>) {
        let mut map = KeyMap::default();
        let mut errors = Vec::new();
        for (name, keys) in overrides {
            let parsed: Result<Vec<Key>, _> = keys.split(',').map(Key::parse).collect();
            match parsed {
                Err(e) => errors.push(e),
                Ok(keys) => {
                    let mut found = false;
                    for b in map.bindings.iter_mut().filter(|b| b.name == name) {
                        b.keys = keys.clone();
                        found = true;
                    }
                    if !found {
                        errors.push(KeyMapError::UnknownAction(name.clone()));
                    }
                }
            }
        }
        (map, errors)
    }

    /// The first binding of `key` among `contexts`, tried in order.
    pub fn lookup(&self, key: Key, contexts: &[Context]) -> Option<&Binding> {
        contexts.iter().find_map(|c| {
            self.bindings
                .iter()
                .find(|b| b.context == *c && b.keys.contains(&key))
        })
    }

    /// The keys of an action, for hints (`? help`).
    pub fn keys_of(&self, name: &str) -> String {
        self.bindings
            .iter()
            .find(|b| b.name == name)
            .and_then(|b| b.keys.first())
            .map(|k| k.to_string())
            .unwrap_or_default()
    }
}

/// One `:` command: its syntax and what it does (also shown by `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHelp {
    pub name: &'static str,
    pub usage: &'static str,
    pub help: &'static str,
}

pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "chat",
        usage: ":chat <user>",
        help: "open a 1-1 conversation",
    },
    CommandHelp {
        name: "watch",
        usage: ":watch <content> with <user>[,<user>] [chat-on <device>]",
        help: "watch together (seed 000)",
    },
    CommandHelp {
        name: "group",
        usage: ":group <name> <user> <user>...",
        help: "start an ad-hoc group chat",
    },
    CommandHelp {
        name: "invite",
        usage: ":invite <user>...",
        help: "invite users into this session",
    },
    CommandHelp {
        name: "join",
        usage: ":join <group>",
        help: "join a group session",
    },
    CommandHelp {
        name: "rejoin",
        usage: ":rejoin [<group>]",
        help: "rejoin a session you left",
    },
    CommandHelp {
        name: "pause",
        usage: ":pause",
        help: "pause / resume the shared playback",
    },
    CommandHelp {
        name: "seek",
        usage: ":seek <mm:ss>|+<s>|-<s>",
        help: "seek the shared playback",
    },
    CommandHelp {
        name: "block",
        usage: ":block <user>",
        help: "add to the blocklist (:unblock removes)",
    },
    CommandHelp {
        name: "unblock",
        usage: ":unblock <user>",
        help: "remove from the blocklist",
    },
    CommandHelp {
        name: "send-file",
        usage: ":send-file <path>",
        help: "send a file in this conversation",
    },
    CommandHelp {
        name: "deferred",
        usage: ":deferred [<message-id>...]",
        help: "retrieve deferred messages (none named: all)",
    },
    CommandHelp {
        name: "export-flow",
        usage: ":export-flow <path> [mermaid]",
        help: "write the flow as text or Mermaid",
    },
    CommandHelp {
        name: "history",
        usage: ":history [<user>]",
        help: "fetch this conversation's history from the server",
    },
    CommandHelp {
        name: "quit",
        usage: ":quit",
        help: "quit",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_print() {
        for s in [
            "ctrl-q",
            "alt-enter",
            "shift-tab",
            "pgup",
            "f3",
            "?",
            "N",
            "space",
        ] {
            let k = Key::parse(s).unwrap();
            assert_eq!(Key::parse(&k.to_string()).unwrap(), k, "{s}");
        }
        assert_eq!(
            Key::parse("backtab").unwrap(),
            Key::parse("shift-tab").unwrap()
        );
        assert_eq!(Key::parse("ctrl-Q").unwrap(), Key::ctrl('q'));
        assert!(Key::parse("hyper-x").is_err());
        assert!(Key::parse("fx").is_err());
    }

    #[test]
    fn overrides_replace_keys_by_name() {
        let mut o = BTreeMap::new();
        o.insert("quit".to_string(), "ctrl-x, f10".to_string());
        o.insert("nope".to_string(), "a".to_string());
        let (map, errors) = KeyMap::with_overrides(&o);
        assert_eq!(errors, vec![KeyMapError::UnknownAction("nope".into())]);
        let b = map.lookup(Key::ctrl('x'), &[Context::Global]).unwrap();
        assert_eq!(b.name, "quit");
        assert!(map.lookup(Key::ctrl('c'), &[Context::Global]).is_none());
        assert!(
            map.lookup(Key::plain(KeyCode::F(10)), &[Context::Global])
                .is_some()
        );
    }

    #[test]
    fn every_binding_names_an_action() {
        for b in KeyMap::default().bindings {
            assert!(action_for(b.name).is_some(), "{}", b.name);
        }
    }
}
