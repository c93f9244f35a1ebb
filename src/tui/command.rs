//! The `:` command line: parsing and completion.

use std::path::PathBuf;
use std::time::Duration;

use super::keymap::COMMANDS;

/// A parsed `:` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Chat(String),
    Watch {
        content: String,
        with: Vec<String>,
        chat_on: Option<String>,
    },
    Group {
        name: String,
        members: Vec<String>,
    },
    Invite(Vec<String>),
    Join(String),
    Rejoin(Option<String>),
    Pause,
    Seek(SeekTo),
    Block(String),
    Unblock(String),
    /// `:send-file PATH [to USER|GROUP]`: a Large Message (seed 003 9.1.1.2).
    SendFile {
        path: PathBuf,
        to: Option<String>,
    },
    /// Retrieve deferred messages (seed 003 12.1.1): these ids, or all.
    Deferred(Vec<String>),
    ExportFlow {
        path: PathBuf,
        mermaid: bool,
    },
    /// `:history [<user>]`: stored history of a 1-1 conversation (seed 003 13.1.3).
    History(Option<String>),
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    At(Duration),
    By(i64),
}

/// Parses `mm:ss`, `ss`, `+s`, `-s`.
fn parse_seek(s: &str) -> Option<SeekTo> {
    if let Some(n) = s.strip_prefix('+') {
        return n.parse().ok().map(SeekTo::By);
    }
    if let Some(n) = s.strip_prefix('-') {
        return n.parse::<i64>().ok().map(|n| SeekTo::By(-n));
    }
    let secs = match s.split_once(':') {
        Some((m, sec)) => m.parse::<u64>().ok()? * 60 + sec.parse::<u64>().ok()?,
        None => s.parse().ok()?,
    };
    Some(SeekTo::At(Duration::from_secs(secs)))
}

fn users(words: &[&str]) -> Vec<String> {
    words
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a command line (with or without the leading `:`). The error is a
/// line for the status bar.
pub fn parse(line: &str) -> Result<Cmd, String> {
    let line = line.trim().trim_start_matches(':');
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&name, args)) = words.split_first() else {
        return Err("empty command".into());
    };
    let usage = || {
        COMMANDS
            .iter()
            .find(|c| c.name == name)
            .map(|c| format!("usage: {}", c.usage))
            .unwrap_or_else(|| format!("unknown command :{name} (? lists them)"))
    };
    let one = || match args {
        [a] => Ok(a.to_string()),
        _ => Err(usage()),
    };
    Ok(match name {
        "chat" => Cmd::Chat(one()?),
        "watch" => {
            // :watch <content> with <users> [chat-on <device>]
            let (content, rest) = args.split_first().ok_or_else(usage)?;
            let rest = match rest.split_first() {
                Some((&"with", r)) => r,
                _ => return Err(usage()),
            };
            let (with, chat_on) = match rest.iter().position(|w| *w == "chat-on") {
                Some(i) => match &rest[i + 1..] {
                    [d] => (&rest[..i], Some(d.to_string())),
                    _ => return Err(usage()),
                },
                None => (rest, None),
            };
            let with = users(with);
            if with.is_empty() {
                return Err(usage());
            }
            Cmd::Watch {
                content: content.to_string(),
                with,
                chat_on,
            }
        }
        "group" => match args {
            [name, members @ ..] if !members.is_empty() => Cmd::Group {
                name: name.to_string(),
                members: users(members),
            },
            _ => return Err(usage()),
        },
        "invite" if !args.is_empty() => Cmd::Invite(users(args)),
        "join" => Cmd::Join(one()?),
        "rejoin" => match args {
            [] => Cmd::Rejoin(None),
            [g] => Cmd::Rejoin(Some(g.to_string())),
            _ => return Err(usage()),
        },
        "pause" if args.is_empty() => Cmd::Pause,
        "seek" => Cmd::Seek(args.first().and_then(|a| parse_seek(a)).ok_or_else(usage)?),
        "block" => Cmd::Block(one()?),
        "unblock" => Cmd::Unblock(one()?),
        "send-file" if !args.is_empty() => match args {
            [path @ .., "to", who] if !path.is_empty() => Cmd::SendFile {
                path: PathBuf::from(path.join(" ")),
                to: Some(who.to_string()),
            },
            _ => Cmd::SendFile {
                path: PathBuf::from(args.join(" ")),
                to: None,
            },
        },
        "deferred" => Cmd::Deferred(users(args)),
        "export-flow" => match args {
            [p] => Cmd::ExportFlow {
                path: p.into(),
                mermaid: p.ends_with(".mmd"),
            },
            [p, "mermaid"] => Cmd::ExportFlow {
                path: p.into(),
                mermaid: true,
            },
            [p, "text"] => Cmd::ExportFlow {
                path: p.into(),
                mermaid: false,
            },
            _ => return Err(usage()),
        },
        "history" => match args {
            [] => Cmd::History(None),
            [u] => Cmd::History(Some(u.to_string())),
            _ => return Err(usage()),
        },
        "quit" | "q" => Cmd::Quit,
        _ => return Err(usage()),
    })
}

/// What may complete the word under the cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    pub users: Vec<String>,
    pub devices: Vec<String>,
    pub contents: Vec<String>,
    pub groups: Vec<String>,
}

/// The result of Tab on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The line with the last word extended as far as it is unambiguous.
    pub line: String,
    /// Every candidate matching the last word (shown when several).
    pub matches: Vec<String>,
}

/// Completes the last word of `line` from what the command expects there.
pub fn complete(line: &str, c: &Candidates) -> Completion {
    let body = line.trim_start_matches(':');
    let words: Vec<&str> = body.split(' ').collect();
    let last = words.last().copied().unwrap_or("");
    let prev: Vec<&str> = words[..words.len().saturating_sub(1)]
        .iter()
        .copied()
        .filter(|w| !w.is_empty())
        .collect();
    let pool: Vec<String> = match (prev.first().copied(), prev.last().copied()) {
        (None, _) => COMMANDS.iter().map(|c| c.name.to_string()).collect(),
        (Some("watch"), Some("watch")) => c.contents.clone(),
        (Some("watch"), Some("chat-on")) => c.devices.clone(),
        (Some("watch"), Some(w)) if w != "with" && prev.contains(&"with") => {
            let mut v = c.users.clone();
            v.push("chat-on".into());
            v
        }
        (Some("watch"), Some(_)) if prev.len() == 2 => vec!["with".into()],
        (Some("watch"), Some("with")) => c.users.clone(),
        (Some("chat" | "invite" | "block" | "unblock" | "history"), _) => c.users.clone(),
        (Some("group"), _) if prev.len() >= 2 => c.users.clone(),
        (Some("join" | "rejoin"), _) => c.groups.clone(),
        (Some("export-flow"), _) if prev.len() == 2 => vec!["mermaid".into(), "text".into()],
        _ => Vec::new(),
    };
    // After "with", users may be comma separated: complete the last one.
    let (head, stem) = match last.rfind(',') {
        Some(i) => (&last[..=i], &last[i + 1..]),
        None => ("", last),
    };
    let mut matches: Vec<String> = pool.into_iter().filter(|p| p.starts_with(stem)).collect();
    matches.sort();
    matches.dedup();
    let extended = match matches.as_slice() {
        [] => stem.to_string(),
        [one] => format!("{one} "),
        many => common_prefix(many),
    };
    let mut out = String::from(":");
    for w in &words[..words.len().saturating_sub(1)] {
        out.push_str(w);
        out.push(' ');
    }
    out.push_str(head);
    out.push_str(&extended);
    Completion { line: out, matches }
}

fn common_prefix(v: &[String]) -> String {
    let first = &v[0];
    let mut n = first.len();
    for s in &v[1..] {
        n = n.min(
            first
                .char_indices()
                .zip(s.chars())
                .take_while(|((_, a), b)| a == b)
                .map(|((i, a), _)| i + a.len_utf8())
                .last()
                .unwrap_or(0),
        );
    }
    first[..n].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(parse(":chat bob"), Ok(Cmd::Chat("bob".into())));
        assert_eq!(
            parse(":watch sintel with bob,carol chat-on phone"),
            Ok(Cmd::Watch {
                content: "sintel".into(),
                with: vec!["bob".into(), "carol".into()],
                chat_on: Some("phone".into())
            })
        );
        assert_eq!(
            parse("watch sintel with bob"),
            Ok(Cmd::Watch {
                content: "sintel".into(),
                with: vec!["bob".into()],
                chat_on: None
            })
        );
        assert!(
            parse(":watch sintel bob")
                .unwrap_err()
                .starts_with("usage: :watch")
        );
        assert_eq!(
            parse(":group team bob carol"),
            Ok(Cmd::Group {
                name: "team".into(),
                members: vec!["bob".into(), "carol".into()]
            })
        );
        assert_eq!(parse(":invite ted"), Ok(Cmd::Invite(vec!["ted".into()])));
        assert_eq!(parse(":join team"), Ok(Cmd::Join("team".into())));
        assert_eq!(parse(":rejoin"), Ok(Cmd::Rejoin(None)));
        assert_eq!(parse(":pause"), Ok(Cmd::Pause));
        assert_eq!(
            parse(":seek 1:20"),
            Ok(Cmd::Seek(SeekTo::At(Duration::from_secs(80))))
        );
        assert_eq!(parse(":seek -5"), Ok(Cmd::Seek(SeekTo::By(-5))));
        assert_eq!(parse(":block mallory"), Ok(Cmd::Block("mallory".into())));
        assert_eq!(
            parse(":send-file /tmp/a b.txt"),
            Ok(Cmd::SendFile {
                path: "/tmp/a b.txt".into(),
                to: None
            })
        );
        assert_eq!(
            parse(":send-file /tmp/a b.txt to bob"),
            Ok(Cmd::SendFile {
                path: "/tmp/a b.txt".into(),
                to: Some("bob".into())
            })
        );
        assert_eq!(
            parse(":export-flow f.mmd"),
            Ok(Cmd::ExportFlow {
                path: "f.mmd".into(),
                mermaid: true
            })
        );
        assert_eq!(parse(":quit"), Ok(Cmd::Quit));
        assert!(
            parse(":frobnicate")
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(parse(":").is_err());
    }

    #[test]
    fn completes_by_position() {
        let c = Candidates {
            users: vec!["bob".into(), "bella".into(), "carol".into()],
            devices: vec!["phone".into(), "tv".into()],
            contents: vec!["sintel".into(), "bunny".into()],
            groups: vec!["team".into()],
        };
        assert_eq!(complete(":wa", &c).line, ":watch ");
        assert_eq!(complete(":watch si", &c).line, ":watch sintel ");
        assert_eq!(complete(":watch sintel w", &c).line, ":watch sintel with ");
        let r = complete(":watch sintel with b", &c);
        assert_eq!(r.line, ":watch sintel with b");
        assert_eq!(r.matches, vec!["bella".to_string(), "bob".into()]);
        assert_eq!(
            complete(":watch sintel with bob,c", &c).line,
            ":watch sintel with bob,carol "
        );
        assert_eq!(
            complete(":watch sintel with bob ch", &c).line,
            ":watch sintel with bob chat-on "
        );
        assert_eq!(
            complete(":watch sintel with bob chat-on p", &c).line,
            ":watch sintel with bob chat-on phone "
        );
        assert_eq!(complete(":chat ca", &c).line, ":chat carol ");
        assert_eq!(complete(":join t", &c).line, ":join team ");
        assert_eq!(
            complete(":s", &c).matches,
            vec!["seek".to_string(), "send-file".into()]
        );
    }
}
