//! How retrieved history shows in a conversation (seed 003 13.1.3): the
//! items the view does not have yet go in at their original times (older
//! ones above), then one system line says how many came. Pure: no clock,
//! `wall` is the App's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::history::{HistoryError, HistoryItem, Shown, unseen};

use super::app::{Conversation, Entry, EntryKind, Sender, bare_uri};

/// The sender key [`unseen`] compares: `you` for our own messages.
const YOU: &str = "\u{0}you";

/// How the App names `uri`: the user part in our domain.
fn short_name(uri: &str, domain: &str) -> String {
    let no_scheme = bare_uri(uri)
        .trim_start_matches("sip:")
        .trim_start_matches("sips:");
    match no_scheme.split_once('@') {
        Some((u, d)) if d == domain => u.to_string(),
        _ => no_scheme.to_string(),
    }
}

fn unix(at: SystemTime) -> Option<u64> {
    at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Adds what `items` holds that `c` does not show, in time order, and the
/// summary line; returns that line. `me` is our AOR; an item without a
/// CPIM From is the peer's.
pub fn merge(
    c: &mut Conversation,
    items: &[HistoryItem],
    complete: bool,
    me: &str,
    domain: &str,
    wall: SystemTime,
) -> String {
    let peer = match &c.kind {
        super::app::ConvKind::OneToOne { peer } => peer.clone(),
        _ => c.key.clone(),
    };
    let sender_key = |from: &str| {
        if bare_uri(from) == bare_uri(me) {
            YOU.to_string()
        } else if from.is_empty() {
            short_name(&peer, domain)
        } else {
            short_name(from, domain)
        }
    };
    let shown_keys: Vec<(String, &str, Option<u64>)> = c
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { from, text, .. } => Some((
                match from {
                    Sender::You => YOU.to_string(),
                    Sender::Peer(p) => p.clone(),
                },
                text.as_str(),
                unix(e.at),
            )),
            EntryKind::System(_) => None,
        })
        .collect();
    let shown: Vec<Shown<'_>> = shown_keys
        .iter()
        .map(|(s, t, a)| Shown {
            sender: s,
            text: t,
            at_unix: *a,
        })
        .collect();
    let new: Vec<HistoryItem> = unseen(&shown, items, |i| sender_key(&i.from))
        .into_iter()
        .cloned()
        .collect();
    for item in &new {
        let at = item
            .at_unix()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .unwrap_or(wall);
        let key = sender_key(&item.from);
        let from = if key == YOU {
            Sender::You
        } else {
            Sender::Peer(key)
        };
        let entry = Entry {
            at,
            kind: EntryKind::Message {
                from,
                text: item.text.clone(),
                private: None,
                delivery: None,
                late: false,
            },
            id: None,
        };
        // After every entry not newer: stored order is kept among equals.
        let pos = c.entries.partition_point(|e| e.at <= at);
        c.entries.insert(pos, entry);
        if let Some(fu) = &mut c.first_unread
            && pos <= *fu
        {
            *fu += 1;
        }
    }
    c.search = None;
    let dup = items.len() - new.len();
    let mut line = match new.len() {
        1 => "history from server: 1 message".to_string(),
        n => format!("history from server: {n} messages"),
    };
    if dup > 0 {
        line.push_str(&format!(" ({dup} already shown)"));
    }
    if !complete {
        line.push_str(" — incomplete: the server stopped sending");
    }
    push_system(c, &line, wall);
    line
}

/// The line for a retrieval that failed, added to `c`; returned too.
pub fn failed(c: &mut Conversation, error: &HistoryError, wall: SystemTime) -> String {
    let line = format!("history: {error}");
    push_system(c, &line, wall);
    line
}

/// What an automatic retrieval that found nothing leaves in the view.
pub fn nothing_stored(c: &mut Conversation, wall: SystemTime) -> String {
    let line = "history: no earlier messages on the server".to_string();
    push_system(c, &line, wall);
    line
}

fn push_system(c: &mut Conversation, text: &str, wall: SystemTime) {
    c.entries.push(Entry {
        at: wall,
        kind: EntryKind::System(text.to_string()),
        id: None,
    });
}
