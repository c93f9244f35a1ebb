//! Text renderings of a [`Flow`]: a ladder (one arrow per message, sngrep
//! style), the messages in full, and a Mermaid sequence diagram.

use std::fmt::Write as _;

use super::{Flow, Protocol};

/// Widest label drawn on an arrow; longer ones are cut with `…`.
const MAX_LABEL: usize = 30;

/// Draws one arrow per message between entity columns. SIP arrows are `-`,
/// MSRP `=`, RTP `~`. The seed's step number, when known, follows the arrow.
pub fn render_ladder(flow: &Flow) -> String {
    let entities = flow.entities();
    if entities.is_empty() {
        return String::new();
    }
    let longest_label = flow
        .events()
        .iter()
        .map(|e| e.label.chars().count().min(MAX_LABEL))
        .max()
        .unwrap_or(0);
    let longest_name = entities
        .iter()
        .map(|e| e.chars().count())
        .max()
        .unwrap_or(0);
    let spacing = (longest_label + 8).max(longest_name + 3);
    const TIME_COL: usize = 9;
    let pos = |i: usize| TIME_COL + spacing / 2 + i * spacing;
    let width = pos(entities.len() - 1) + spacing / 2 + 1;

    let mut out = String::new();
    let mut head = vec![' '; width];
    for (i, name) in entities.iter().enumerate() {
        let n = name.chars().count();
        let start = pos(i).saturating_sub(n / 2);
        for (k, c) in name.chars().enumerate() {
            if let Some(slot) = head.get_mut(start + k) {
                *slot = c;
            }
        }
    }
    writeln!(out, "{}", head.iter().collect::<String>().trim_end()).ok();

    for ev in flow.events() {
        let mut row = vec![' '; width];
        for i in 0..entities.len() {
            row[pos(i)] = '|';
        }
        let time = format!("{:>8.3}", ev.at.as_secs_f64());
        for (k, c) in time.chars().enumerate() {
            row[k] = c;
        }
        let index = |name: &str| entities.iter().position(|e| e == name).unwrap_or(0);
        let (a, b) = (pos(index(&ev.from)), pos(index(&ev.to)));
        let fill = match ev.protocol {
            Protocol::Msrp => '=',
            Protocol::Rtp => '~',
            _ => '-',
        };
        let label = clip(&ev.label);
        if a == b {
            // A message an entity sends itself: a note beside its column.
            let note = format!(" {label}");
            for (k, c) in note.chars().enumerate() {
                if let Some(slot) = row.get_mut(a + 1 + k) {
                    *slot = c;
                }
            }
        } else {
            let (lo, hi) = (a.min(b), a.max(b));
            for slot in &mut row[lo + 1..hi] {
                *slot = fill;
            }
            if b > a {
                row[hi - 1] = '>';
            } else {
                row[lo + 1] = '<';
            }
            let text = format!(" {label} ");
            let n = text.chars().count();
            let span = hi - lo - 1;
            if n + 2 <= span {
                let start = lo + 1 + (span - n) / 2;
                for (k, c) in text.chars().enumerate() {
                    row[start + k] = c;
                }
            }
        }
        let mut line: String = row.iter().collect::<String>().trim_end().to_string();
        if let Some(step) = &ev.step {
            line.push_str(&format!("  [{step}]"));
        }
        writeln!(out, "{line}").ok();
    }
    out
}

/// Every message in full, in order, each under a one-line heading.
pub fn render_messages(flow: &Flow) -> String {
    let mut out = String::new();
    for (n, ev) in flow.events().iter().enumerate() {
        let step = ev
            .step
            .as_deref()
            .map(|s| format!(" [step {s}]"))
            .unwrap_or_default();
        writeln!(
            out,
            "--- #{} {:.3}s {} -> {}: {}{} ---",
            n + 1,
            ev.at.as_secs_f64(),
            ev.from,
            ev.to,
            ev.label,
            step
        )
        .ok();
        let text = String::from_utf8_lossy(&ev.raw);
        out.push_str(&text.replace("\r\n", "\n"));
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// A Mermaid `sequenceDiagram` of the flow.
pub fn render_mermaid(flow: &Flow) -> String {
    let id = |name: &str| -> String {
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    let mut out = String::from("sequenceDiagram\n");
    for e in flow.entities() {
        writeln!(out, "    participant {} as {}", id(e), e).ok();
    }
    for ev in flow.events() {
        let arrow = if ev.protocol == Protocol::Msrp {
            "-)"
        } else {
            "->>"
        };
        let step = ev
            .step
            .as_deref()
            .map(|s| format!("[{s}] "))
            .unwrap_or_default();
        let label = ev.label.replace([';', '#'], " ");
        writeln!(
            out,
            "    {}{}{}: {}{}",
            id(&ev.from),
            arrow,
            id(&ev.to),
            step,
            label
        )
        .ok();
    }
    out
}

fn clip(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(MAX_LABEL - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sample() -> Flow {
        let mut flow = Flow::with_entities(["alice/tv", "server", "bob/phone"]);
        flow.record(
            Duration::from_millis(0),
            "alice/tv",
            "server",
            b"MESSAGE sip:bob@isc.local SIP/2.0\r\nCSeq: 1 MESSAGE\r\n\r\n",
        );
        flow.record(
            Duration::from_millis(2),
            "server",
            "bob/phone",
            b"MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nCSeq: 1 MESSAGE\r\n\r\n",
        )
        .step = Some("3".into());
        flow.record(
            Duration::from_millis(5),
            "bob/phone",
            "server",
            b"SIP/2.0 200 OK\r\nCSeq: 1 MESSAGE\r\n\r\n",
        );
        flow.record(
            Duration::from_millis(6),
            "server",
            "alice/tv",
            b"SIP/2.0 200 OK\r\nCSeq: 1 MESSAGE\r\n\r\n",
        );
        flow
    }

    #[test]
    fn ladder_draws_one_arrow_per_message() {
        let text = render_ladder(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].contains("alice/tv") && lines[0].contains("bob/phone"));
        assert!(
            lines[1].contains("MESSAGE") && lines[1].contains("->|"),
            "{text}"
        );
        assert!(lines[2].ends_with("[3]"), "{text}");
        assert!(
            lines[4].contains("|<-") && lines[4].contains("200 OK (MESSAGE)"),
            "{text}"
        );
        // Arrows start and end on the entity columns.
        let col = |l: &str, name: &str| {
            lines[0]
                .find(name)
                .map(|p| p + name.len() / 2)
                .unwrap_or(0)
                .min(l.len())
        };
        let c_alice = col(lines[1], "alice/tv");
        assert_eq!(lines[1].as_bytes()[c_alice], b'|', "{text}");
    }

    #[test]
    fn messages_and_mermaid() {
        let flow = sample();
        let full = render_messages(&flow);
        assert!(full.contains("--- #2 0.002s server -> bob/phone: MESSAGE [step 3] ---"));
        assert!(full.contains("MESSAGE sip:bob@127.0.0.1 SIP/2.0\nCSeq: 1 MESSAGE"));
        let m = render_mermaid(&flow);
        assert!(m.starts_with("sequenceDiagram\n"));
        assert!(m.contains("participant alice_tv as alice/tv"));
        assert!(m.contains("server->>bob_phone: [3] MESSAGE"));
    }
}
