//! The flow of one run, as a person reads it: every SIP and MSRP message
//! between named entities (`alice/tv`, `server`, `bob/phone`), drawn as a text
//! ladder, printed in full, or exported as a Mermaid sequence diagram. The
//! headless demo prints it; the TUI's flow view draws the same records.

mod label;
mod ladder;

pub use label::{Protocol, describe};
pub use ladder::{render_ladder, render_mermaid, render_messages};

use std::time::Duration;

/// One message seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEvent {
    /// Time since the flow started.
    pub at: Duration,
    pub from: String,
    pub to: String,
    pub protocol: Protocol,
    /// Short text for the arrow, e.g. `INVITE` or `200 OK (MESSAGE)`.
    pub label: String,
    /// The seed's step number, when a scenario names one.
    pub step: Option<String>,
    /// The whole message as sent.
    pub raw: Vec<u8>,
}

/// An ordered record of messages between entities.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    entities: Vec<String>,
    events: Vec<FlowEvent>,
}

impl Flow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fixes the column order; entities first seen later are appended.
    pub fn with_entities<I: IntoIterator<Item = S>, S: Into<String>>(entities: I) -> Self {
        Flow {
            entities: entities.into_iter().map(Into::into).collect(),
            events: Vec::new(),
        }
    }

    /// Records a message; its arrow label is derived from its first line.
    pub fn record(&mut self, at: Duration, from: &str, to: &str, raw: &[u8]) -> &mut FlowEvent {
        let (protocol, label) = describe(raw);
        for e in [from, to] {
            if !self.entities.iter().any(|x| x == e) {
                self.entities.push(e.to_string());
            }
        }
        self.events.push(FlowEvent {
            at,
            from: from.to_string(),
            to: to.to_string(),
            protocol,
            label,
            step: None,
            raw: raw.to_vec(),
        });
        let last = self.events.len() - 1;
        &mut self.events[last]
    }

    pub fn entities(&self) -> &[String] {
        &self.entities
    }

    pub fn events(&self) -> &[FlowEvent] {
        &self.events
    }

    pub fn events_mut(&mut self) -> &mut [FlowEvent] {
        &mut self.events
    }
}
