//! The flow view's state: every SIP/MSRP message this device sent or
//! received (the [`crate::flow`] model), a selected row, a dialog filter by
//! Call-ID, and the exports. Rows are drawn one by one so a long flow costs
//! only what is on screen.

use std::time::Duration;

use crate::flow::{Flow, FlowEvent, Protocol, render_ladder, render_mermaid, render_messages};

#[derive(Debug, Clone, Default)]
pub struct FlowView {
    pub flow: Flow,
    /// Call-ID of each event (None for MSRP/RTP or when absent).
    call_ids: Vec<Option<String>>,
    /// Indices of the events the filter lets through.
    visible: Vec<usize>,
    /// Position in `visible`; None = follow the newest.
    selected: Option<usize>,
    /// Only this dialog.
    pub filter: Option<String>,
    /// Show the selected message in full.
    pub detail: bool,
}

/// The Call-ID header (full or compact form) of a SIP message.
pub fn call_id(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(8192)]);
    for line in text.lines().skip(1) {
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("call-id") || name == "i" {
                return Some(value.trim().to_string());
            }
        }
    }
    None
}

impl FlowView {
    /// Records one event.
    pub fn push(&mut self, ev: FlowEvent) {
        let cid = if ev.protocol == Protocol::Sip {
            call_id(&ev.raw)
        } else {
            None
        };
        let e = self.flow.record(ev.at, &ev.from, &ev.to, &ev.raw);
        e.step = ev.step;
        // Keep the caller's label (it may know better than the first line).
        e.label = ev.label;
        e.protocol = ev.protocol;
        let idx = self.call_ids.len();
        let passes = self.filter.is_none() || self.filter == cid;
        self.call_ids.push(cid);
        if passes {
            self.visible.push(idx);
        }
    }

    pub fn len(&self) -> usize {
        self.visible.len()
    }

    pub fn is_empty(&self) -> bool {
        self.visible.is_empty()
    }

    /// Indices of the shown events.
    pub fn visible(&self) -> &[usize] {
        &self.visible
    }

    /// Position of the selected row among the visible ones.
    pub fn selected(&self) -> Option<usize> {
        match self.selected {
            Some(s) => Some(s.min(self.visible.len().checked_sub(1)?)),
            None => self.visible.len().checked_sub(1),
        }
    }

    /// The selected event.
    pub fn selected_event(&self) -> Option<&FlowEvent> {
        let i = *self.visible.get(self.selected()?)?;
        self.flow.events().get(i)
    }

    pub fn call_id_of(&self, event: usize) -> Option<&str> {
        self.call_ids.get(event)?.as_deref()
    }

    /// Moves the selection by `d` rows; reaching the end follows new rows again.
    pub fn step(&mut self, d: isize) {
        let Some(cur) = self.selected() else { return };
        let last = self.visible.len() - 1;
        let next = (cur as isize + d).clamp(0, last as isize) as usize;
        self.selected = if next == last { None } else { Some(next) };
    }

    /// Shows only the dialog of the selected row.
    pub fn filter_selected(&mut self) {
        let cid = self
            .selected()
            .and_then(|s| self.visible.get(s))
            .and_then(|&i| self.call_ids.get(i).cloned().flatten());
        if cid.is_some() {
            self.set_filter(cid);
        }
    }

    pub fn set_filter(&mut self, filter: Option<String>) {
        let keep = self.selected().and_then(|s| self.visible.get(s).copied());
        self.filter = filter;
        self.visible = (0..self.call_ids.len())
            .filter(|&i| self.filter.is_none() || self.call_ids[i] == self.filter)
            .collect();
        self.selected = keep.and_then(|k| self.visible.iter().position(|&v| v == k));
    }

    /// The shown events as a flow of their own (for export).
    pub fn filtered(&self) -> Flow {
        let mut f = Flow::with_entities(self.flow.entities().iter().cloned());
        for &i in &self.visible {
            let ev = &self.flow.events()[i];
            let e = f.record(ev.at, &ev.from, &ev.to, &ev.raw);
            e.step = ev.step.clone();
            e.label = ev.label.clone();
            e.protocol = ev.protocol;
        }
        f
    }

    /// The export: Mermaid, or the ladder followed by every message in full.
    pub fn export(&self, mermaid: bool) -> String {
        let f = self.filtered();
        if mermaid {
            render_mermaid(&f)
        } else {
            format!("{}\n{}", render_ladder(&f), render_messages(&f))
        }
    }
}

/// One ladder row drawn into `width` columns: entity `i` sits at
/// `col(i)`; the arrow runs between the two columns with the label centred.
pub fn ladder_row(ev: &FlowEvent, entities: &[String], width: usize) -> String {
    let n = entities.len().max(1);
    const TIME: usize = 9;
    let spacing = (width.saturating_sub(TIME) / n).max(4);
    let col = |i: usize| TIME + spacing / 2 + i * spacing;
    let mut row: Vec<char> = vec![' '; width.max(col(n - 1) + 1)];
    for i in 0..n {
        row[col(i)] = '│';
    }
    for (k, c) in format_time(ev.at).chars().enumerate() {
        row[k] = c;
    }
    let index = |name: &str| entities.iter().position(|e| e == name).unwrap_or(0);
    let (a, b) = (col(index(&ev.from)), col(index(&ev.to)));
    let fill = match ev.protocol {
        Protocol::Msrp => '═',
        Protocol::Rtp => '~',
        _ => '─',
    };
    if a == b {
        for (k, c) in format!(" {}", ev.label).chars().enumerate() {
            if let Some(slot) = row.get_mut(a + 1 + k) {
                *slot = c;
            }
        }
    } else {
        let (lo, hi) = (a.min(b), a.max(b));
        for slot in &mut row[lo + 1..hi] {
            *slot = if *slot == '│' { '┼' } else { fill };
        }
        if b > a {
            row[hi - 1] = '▶';
        } else {
            row[lo + 1] = '◀';
        }
        // The label sits in the gap next to the sender when it fits there
        // (as in a sequence diagram), else in the middle of the arrow.
        let (ia, ib) = (index(&ev.from), index(&ev.to));
        let near = if ib > ia {
            (a, col(ia + 1))
        } else {
            (col(ia - 1), a)
        };
        let text = format!(" {} ", ev.label);
        let len = text.chars().count();
        let (lo, hi) = if len + 2 < near.1 - near.0 {
            near
        } else {
            (lo, hi)
        };
        let span = hi - lo - 1;
        let mut label = text;
        if label.chars().count() + 2 > span {
            label = label
                .chars()
                .take(span.saturating_sub(4))
                .collect::<String>()
                + "… ";
        }
        let len = label.chars().count();
        if len + 2 <= span {
            let start = lo + 1 + (span - len) / 2;
            for (k, c) in label.chars().enumerate() {
                row[start + k] = c;
            }
        }
    }
    let mut line: String = row.into_iter().collect::<String>().trim_end().to_string();
    if let Some(step) = &ev.step {
        line.push_str(&format!("  ({step})"));
    }
    line
}

/// The header row: entity names centred on their columns.
pub fn ladder_head(entities: &[String], width: usize) -> String {
    let n = entities.len().max(1);
    const TIME: usize = 9;
    let spacing = (width.saturating_sub(TIME) / n).max(4);
    let mut row: Vec<char> = vec![' '; width.max(TIME + n * spacing)];
    for (i, name) in entities.iter().enumerate() {
        let c = TIME + spacing / 2 + i * spacing;
        let len = name.chars().count();
        let start = c.saturating_sub(len / 2);
        for (k, ch) in name.chars().enumerate() {
            if let Some(slot) = row.get_mut(start + k) {
                *slot = ch;
            }
        }
    }
    row.into_iter().collect::<String>().trim_end().to_string()
}

fn format_time(d: Duration) -> String {
    format!("{:>8.3}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(from: &str, to: &str, raw: &str) -> FlowEvent {
        let (protocol, label) = crate::flow::describe(raw.as_bytes());
        FlowEvent {
            at: Duration::from_millis(5),
            from: from.into(),
            to: to.into(),
            protocol,
            label,
            step: None,
            raw: raw.as_bytes().to_vec(),
        }
    }

    #[test]
    fn filter_by_call_id_and_export() {
        let mut v = FlowView::default();
        v.push(ev(
            "a",
            "s",
            "INVITE sip:b@x SIP/2.0\r\nCall-ID: one\r\nCSeq: 1 INVITE\r\n\r\n",
        ));
        v.push(ev(
            "a",
            "s",
            "MESSAGE sip:b@x SIP/2.0\r\ni: two\r\nCSeq: 1 MESSAGE\r\n\r\n",
        ));
        v.push(ev(
            "s",
            "a",
            "SIP/2.0 200 OK\r\nCall-ID: one\r\nCSeq: 1 INVITE\r\n\r\n",
        ));
        assert_eq!(v.len(), 3);
        assert_eq!(v.selected(), Some(2));
        v.filter_selected();
        assert_eq!(v.visible(), &[0, 2]);
        assert_eq!(
            v.selected_event().map(|e| e.label.as_str()),
            Some("200 OK (INVITE)")
        );
        v.push(ev(
            "a",
            "s",
            "BYE sip:b@x SIP/2.0\r\nCall-ID: one\r\nCSeq: 2 BYE\r\n\r\n",
        ));
        v.push(ev(
            "a",
            "s",
            "MESSAGE sip:b@x SIP/2.0\r\nCall-ID: two\r\nCSeq: 2 MESSAGE\r\n\r\n",
        ));
        assert_eq!(v.visible(), &[0, 2, 3]);
        let text = v.export(false);
        assert!(text.contains("BYE") && !text.contains("MESSAGE"), "{text}");
        assert!(v.export(true).starts_with("sequenceDiagram"));
        v.set_filter(None);
        assert_eq!(v.len(), 5);
        v.step(-10);
        assert_eq!(v.selected(), Some(0));
    }

    #[test]
    fn row_draws_arrow_between_columns() {
        let ents = vec!["a".to_string(), "s".to_string(), "b".to_string()];
        let r = ladder_row(
            &ev("b", "a", "SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\n\r\n"),
            &ents,
            100,
        );
        // The label sits in the gap beside the sender; the arrow crosses `s`.
        let cross = r.find('┼').expect(&r);
        let label = r.find("180 Ringing").expect(&r);
        assert!(r.contains('◀') && label > cross, "{r}");
    }
}
