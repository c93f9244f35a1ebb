//! A demo device ("bot"): one client runner on its own loopback socket. The script talks to it through a
//! [`Device`] handle: commands in, [`ClientEvent`]s kept in a log the script
//! waits on.
//!
//! The device is a [`crate::client::runner`] client on its own ephemeral
//! loopback port, exactly as `isc client` runs one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::client::instance::new_instance_id;
use crate::client::runner::{ClientHandle, spawn_client};
use crate::client::{ClientEvent, Command, UaConfig};

use super::DemoError;

/// Who a device is: `alice/tv` is user `alice`, device `tv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName {
    pub user: String,
    pub device: String,
}

impl DeviceName {
    /// Splits `user/device`; a bare `user` is device `main`.
    pub fn parse(name: &str) -> DeviceName {
        match name.split_once('/') {
            Some((u, d)) => DeviceName {
                user: u.to_owned(),
                device: d.to_owned(),
            },
            None => DeviceName {
                user: name.to_owned(),
                device: "main".to_owned(),
            },
        }
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.user, self.device)
    }
}

#[derive(Default)]
struct EventLog {
    events: Mutex<Vec<ClientEvent>>,
    changed: Notify,
}

/// A handle on one running demo device. Cheap to clone.
#[derive(Clone)]
pub struct Device {
    name: String,
    aor: String,
    local: SocketAddr,
    commands: mpsc::Sender<Command>,
    log: Arc<EventLog>,
    handle: Arc<ClientHandle>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Starts a client runner on loopback; the user agent registers, then
    /// subscribes to its own registration state.
    pub async fn start(
        name: &str,
        domain: &str,
        password: &str,
        server: SocketAddr,
    ) -> Result<Device, DemoError> {
        Self::start_with(name, domain, password, server, |_| {}).await
    }

    /// [`Self::start`], with a last word on the user agent's configuration
    /// (timers, transport, ...).
    pub async fn start_with(
        name: &str,
        domain: &str,
        password: &str,
        server: SocketAddr,
        adjust: impl FnOnce(&mut UaConfig),
    ) -> Result<Device, DemoError> {
        Self::start_tapped(name, domain, password, server, adjust, None).await
    }

    /// [`Self::start_with`], also copying every event to `tap` (the TUI of
    /// an interactive demo shows the device the script drives).
    pub async fn start_tapped(
        name: &str,
        domain: &str,
        password: &str,
        server: SocketAddr,
        adjust: impl FnOnce(&mut UaConfig),
        tap: Option<mpsc::UnboundedSender<ClientEvent>>,
    ) -> Result<Device, DemoError> {
        let who = DeviceName::parse(name);
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut cfg = UaConfig::new(
            &who.user,
            domain,
            password,
            &who.device,
            &new_instance_id(),
            server,
            loopback,
        );
        adjust(&mut cfg);
        let aor = cfg.aor();
        let mut handle = spawn_client(cfg, loopback)
            .await
            .map_err(|e| DemoError::Io(format!("{name}: bind: {e}")))?;
        let local = handle.local_addr;
        // The runner's events go to a log every waiter can read.
        let (_, empty) = mpsc::unbounded_channel();
        let mut events = std::mem::replace(&mut handle.events, empty);
        let log = Arc::new(EventLog::default());
        let task_log = log.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let Some(tap) = &tap {
                    let _ = tap.send(ev.clone());
                }
                task_log
                    .events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(ev);
                task_log.changed.notify_waiters();
            }
        });
        Ok(Device {
            name: name.to_owned(),
            aor,
            local,
            commands: handle.commands.clone(),
            log,
            handle: Arc::new(handle),
        })
    }

    /// `alice/tv`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user's address of record, `sip:alice@isc.local`.
    pub fn aor(&self) -> &str {
        &self.aor
    }

    /// The device's SIP address (UDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The public GRUU from the last registration, if any.
    pub fn gruu(&self) -> Option<String> {
        self.events().iter().rev().find_map(|e| match e {
            ClientEvent::Registered { gruu, .. } => gruu.clone(),
            _ => None,
        })
    }

    /// Everything the device reported so far.
    pub fn events(&self) -> Vec<ClientEvent> {
        self.log
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends a command to the user agent (its queue holds 64).
    pub fn command(&self, cmd: Command) -> Result<(), DemoError> {
        self.commands.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                DemoError::Io(format!("{}: command queue full", self.name))
            }
            mpsc::error::TrySendError::Closed(_) => DemoError::Stopped(self.name.clone()),
        })
    }

    /// A pager MESSAGE (`text/plain`) to a user or a GRUU.
    pub fn message(&self, to: &str, text: &str) -> Result<(), DemoError> {
        self.command(Command::SendMessage {
            to: to.to_owned(),
            text: text.to_owned(),
            id: None,
        })
    }

    /// The user types towards `to`: isComposing `active`.
    pub fn typing(&self, to: &str) -> Result<(), DemoError> {
        self.command(Command::Typing { to: to.to_owned() })
    }

    /// The user clears the input: isComposing `idle`.
    pub fn stop_typing(&self, to: &str) -> Result<(), DemoError> {
        self.command(Command::StopTyping { to: to.to_owned() })
    }

    /// Waits until an event (any so far, or a new one) satisfies `pred`.
    pub async fn wait_for(
        &self,
        within: Duration,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> Option<ClientEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.log.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Stops the device at once, sending nothing more (a crash, a lost
    /// network): its registration and subscriptions are left to expire.
    pub fn abort(&self) {
        self.handle.abort();
    }

    /// Un-SUBSCRIBE and un-REGISTER, waiting at most `within`.
    pub async fn stop(&self, within: Duration) -> bool {
        if self.command(Command::Shutdown).is_err() {
            return true;
        }
        self.wait_for(within, |e| *e == ClientEvent::Stopped)
            .await
            .is_some()
    }
}
