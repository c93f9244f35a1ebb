//! [`DemoLink`]: the [`ClientPort`] of an interactive demo. Commands and
//! events are those of the person's device; the flow view shows every
//! message through the server, named as the headless ladder names them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::broadcast;
use tokio::sync::mpsc::error::TrySendError;

use crate::demo::Namer;
use crate::demo::live::{LiveDemo, PersonPort};
use crate::flow::{FlowEvent, describe};
use crate::server::runner::WireEvent;

use super::action::{Action, Command};
use super::event_loop::ClientPort;

/// The person's device plus the server's wire tap.
pub struct DemoLink {
    person: PersonPort,
    wire: Option<broadcast::Receiver<WireEvent>>,
    names: Arc<Mutex<HashMap<SocketAddr, String>>>,
    namer: Namer,
    started: Instant,
    events_open: bool,
}

impl DemoLink {
    /// Takes the demo's wire receiver (once).
    pub fn new(live: &mut LiveDemo, person: PersonPort) -> DemoLink {
        DemoLink {
            person,
            wire: live.wire.take(),
            names: live.names.clone(),
            namer: Namer::new(live.scenario.function),
            started: live.started,
            events_open: true,
        }
    }

    fn flow_event(&mut self, ev: &WireEvent) -> FlowEvent {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (from, to) = self.namer.ends(ev, &names);
        let (protocol, label) = describe(&ev.bytes);
        FlowEvent {
            at: ev.at.saturating_duration_since(self.started),
            from,
            to,
            protocol,
            label,
            step: None,
            raw: ev.bytes.to_vec(),
        }
    }
}

impl ClientPort for DemoLink {
    fn send(&mut self, command: Command) -> Result<(), Command> {
        match command {
            Command::Client(c) => match self.person.commands.try_send(c) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(c) | TrySendError::Closed(c)) => Err(Command::Client(c)),
            },
            other => match super::viewing_link::viewing_command(other)
                .or_else(super::chat_link::chat_command)
            {
                Ok(c) => self.person.commands.try_send(c).map_err(|e| match e {
                    TrySendError::Full(c) | TrySendError::Closed(c) => Command::Client(c),
                }),
                Err(other) => Err(other),
            },
        }
    }

    async fn next_event(&mut self) -> Option<Action> {
        loop {
            if !self.events_open {
                return None;
            }
            let events = &mut self.person.events;
            let wire = &mut self.wire;
            // Wire first: the ladder shows a message before what it caused.
            let got = tokio::select! {
                biased;
                rec = async {
                    match wire.as_mut() {
                        Some(w) => w.recv().await,
                        None => std::future::pending().await,
                    }
                } => Err(rec),
                ev = events.recv() => Ok(ev),
            };
            match got {
                Ok(Some(ev)) => return Some(Action::Client(ev)),
                Ok(None) => {
                    self.events_open = false;
                    return None;
                }
                Err(Ok(ev)) => return Some(Action::Flow(self.flow_event(&ev))),
                Err(Err(broadcast::error::RecvError::Lagged(n))) => {
                    tracing::warn!("flow view skipped {n} messages");
                }
                Err(Err(broadcast::error::RecvError::Closed)) => self.wire = None,
            }
        }
    }
}
