//! [`ClientLink`]: the [`ClientPort`] over the client runner's
//! [`ClientHandle`]. Client events become [`Action::Client`], the wire tap
//! becomes [`Action::Flow`] rows (this device ↔ the server or a peer).

use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::broadcast;
use tokio::sync::mpsc::error::TrySendError;

use crate::client::runner::{ClientHandle, Direction, WireRecord};
use crate::flow::{FlowEvent, describe};

use super::action::{Action, Command};
use super::event_loop::ClientPort;

/// A running client as the TUI sees it.
pub struct ClientLink {
    handle: ClientHandle,
    wire: broadcast::Receiver<WireRecord>,
    started: Instant,
    /// This device's name in the ladder (`alice/tv`).
    me: String,
    server: SocketAddr,
    events_open: bool,
    wire_open: bool,
}

impl ClientLink {
    /// `me` names this device in the flow view; messages to or from
    /// `server` are drawn against `server`, others against their address.
    pub fn new(mut handle: ClientHandle, me: &str, server: SocketAddr) -> Self {
        let wire = handle.take_wire();
        ClientLink {
            handle,
            wire,
            started: Instant::now(),
            me: me.to_string(),
            server,
            events_open: true,
            wire_open: true,
        }
    }

    fn flow_event(&self, r: WireRecord) -> FlowEvent {
        let peer = if r.peer == self.server {
            "server".to_string()
        } else {
            r.peer.to_string()
        };
        let (from, to) = match r.direction {
            Direction::Sent => (self.me.clone(), peer),
            Direction::Received => (peer, self.me.clone()),
        };
        let (protocol, label) = describe(&r.bytes);
        FlowEvent {
            at: self.started.elapsed(),
            from,
            to,
            protocol,
            label,
            step: None,
            raw: r.bytes,
        }
    }
}

impl ClientPort for ClientLink {
    fn send(&mut self, command: Command) -> Result<(), Command> {
        match command {
            // Never wait on the client: a full queue is reported, typing goes on.
            Command::Client(c) => match self.handle.commands.try_send(c) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(c) | TrySendError::Closed(c)) => Err(Command::Client(c)),
            },
            other => match super::viewing_link::viewing_command(other)
                .or_else(super::chat_link::chat_command)
            {
                Ok(c) => self.handle.commands.try_send(c).map_err(|e| match e {
                    TrySendError::Full(c) | TrySendError::Closed(c) => Command::Client(c),
                }),
                Err(other) => Err(other),
            },
        }
    }

    async fn next_event(&mut self) -> Option<Action> {
        loop {
            if !self.events_open && !self.wire_open {
                return None;
            }
            // Wire first: the ladder shows a message before what it caused.
            tokio::select! {
                biased;
                rec = self.wire.recv(), if self.wire_open => match rec {
                    Ok(r) => return Some(Action::Flow(self.flow_event(r))),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("flow view skipped {n} messages");
                    }
                    Err(broadcast::error::RecvError::Closed) => self.wire_open = false,
                },
                ev = self.handle.events.recv(), if self.events_open => match ev {
                    Some(ev) => return Some(Action::Client(ev)),
                    // The client stopped: the TUI is told once.
                    None => {
                        self.events_open = false;
                        self.wire_open = false;
                        return None;
                    }
                },
            }
        }
    }
}
