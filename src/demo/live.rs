//! `isc demo [SCENARIO]` without `--headless`: the bundled server and the
//! scenario's bots play on loopback while a person watches (and may drive)
//! one device of the cast in the TUI. The script runs at a pace a person
//! can follow; when it is done the bots stay and answer the person's
//! messages (isComposing, then a pager MESSAGE back).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::client::{ClientEvent, Command};
use crate::server::runner::{Server, ServerHandle, ServerOptions, WireEvent};

use super::{DemoError, Device, DeviceName, Scenario, Stage};

/// How long an interactive run waits after each expected step.
pub const PACE: Duration = Duration::from_millis(900);
/// How long a bot "types" before it answers.
pub const TYPING: Duration = Duration::from_millis(800);

/// The device a person drives: started by [`Stage::join`] when the script
/// reaches it, its events copied to the TUI and the TUI's commands fed in.
pub struct Person {
    pub(super) name: String,
    tap: mpsc::UnboundedSender<ClientEvent>,
    commands: mpsc::Receiver<Command>,
}

impl Person {
    pub(super) async fn start(
        self,
        domain: &str,
        password: &str,
        server: SocketAddr,
    ) -> Result<Device, DemoError> {
        let dev =
            Device::start_tapped(&self.name, domain, password, server, |_| {}, Some(self.tap))
                .await?;
        let d = dev.clone();
        let mut rx = self.commands;
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                if d.command(c).is_err() {
                    break;
                }
            }
        });
        Ok(dev)
    }
}

/// The TUI's end of the person's device.
pub struct PersonPort {
    /// `alice/tv`.
    pub name: String,
    pub commands: mpsc::Sender<Command>,
    pub events: mpsc::UnboundedReceiver<ClientEvent>,
}

/// A running interactive demo.
pub struct LiveDemo {
    pub scenario: &'static Scenario,
    server: ServerHandle,
    /// Device names by address, filled as the script starts them.
    pub names: Arc<Mutex<HashMap<SocketAddr, String>>>,
    /// Every message through the server, from before the first one.
    pub wire: Option<broadcast::Receiver<WireEvent>>,
    pub started: Instant,
    script: JoinHandle<()>,
}

impl LiveDemo {
    pub fn server_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Ends the script and the bots' answering, then the server.
    pub async fn stop(self) {
        self.script.abort();
        let _ = self.script.await;
        self.server.shutdown().await;
    }
}

/// Starts the server and the scenario; `person` (`alice/tv`, default the
/// cast's first) is the device the TUI drives.
pub async fn start(
    scenario: &'static Scenario,
    person: Option<&str>,
) -> Result<(LiveDemo, PersonPort), DemoError> {
    let options = ServerOptions::loopback_demo();
    let domain = options.config.domain.clone();
    let server = Server::start(options)
        .await
        .map_err(|e| DemoError::Io(format!("server: {e}")))?;
    let wire = server.wire();
    let person = person
        .map(str::to_owned)
        .or_else(|| scenario.cast.first().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "alice/tv".to_owned());
    let (tap, events) = mpsc::unbounded_channel();
    let (commands, rx) = mpsc::channel(64);
    let names: Arc<Mutex<HashMap<SocketAddr, String>>> = Arc::default();
    let mut stage = Stage {
        server_addr: server.local_addr(),
        domain: domain.clone(),
        devices: Vec::new(),
        seen: Vec::new(),
        // A person may take their time.
        deadline: tokio::time::Instant::now() + Duration::from_secs(24 * 3600),
        person: Some(Person {
            name: person.clone(),
            tap,
            commands: rx,
        }),
        names: names.clone(),
        pace: PACE,
        notes: Vec::new(),
    };
    let person_name = person.clone();
    let script = tokio::spawn(async move {
        if !scenario.cast.contains(&person_name.as_str())
            && let Err(e) = stage.join(&person_name).await
        {
            tracing::warn!("demo: {e}");
        }
        if let Err(e) = (scenario.script)(&mut stage).await {
            tracing::warn!("demo {}: {e}", scenario.name);
        }
        let user = DeviceName::parse(&person_name).user;
        let aor = stage.aor(&user);
        let bots: Vec<Device> = stage
            .devices
            .iter()
            .filter(|d| DeviceName::parse(d.name()).user != user)
            .cloned()
            .collect();
        let _ = answer_back(bots, aor).await;
    });
    Ok((
        LiveDemo {
            scenario,
            server,
            names,
            wire: Some(wire),
            started: Instant::now(),
            script,
        },
        PersonPort {
            name: person,
            commands,
            events,
        },
    ))
}

/// The bots answer every text message from `from_aor` they got (already,
/// or from now on): isComposing, a short wait, then `"<bot> here: you said …"`.
pub fn answer_back(bots: Vec<Device>, from_aor: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut handled = vec![0; bots.len()];
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for (bot, done) in bots.iter().zip(handled.iter_mut()) {
                let texts = texts_from(bot, &from_aor);
                for text in texts.iter().skip(*done) {
                    let _ = bot.typing(&from_aor);
                    tokio::time::sleep(TYPING).await;
                    let me = DeviceName::parse(bot.name()).user;
                    let _ = bot.message(&from_aor, &format!("{me} here: you said \"{text}\""));
                }
                *done = texts.len();
            }
        }
    })
}

fn texts_from(bot: &Device, from_aor: &str) -> Vec<String> {
    bot.events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::MessageReceived {
                from,
                content_type,
                body,
                ..
            } if from.contains(from_aor)
                && content_type
                    .as_deref()
                    .is_none_or(|t| t.starts_with("text/plain")) =>
            {
                Some(String::from_utf8_lossy(&body).into_owned())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(port: &mut PersonPort, pred: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
        let until = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let ev = tokio::time::timeout_at(until, port.events.recv())
                .await
                .expect("in time")
                .expect("open");
            if pred(&ev) {
                return ev;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_person_sees_the_greeting_and_bob_answers_what_they_write() {
        let scenario = super::super::find("free-play").unwrap();
        let (mut live, mut port) = start(scenario, None).await.unwrap();
        assert_eq!(port.name, "alice/tv");
        let mut wire = live.wire.take().unwrap();
        next(&mut port, |e| matches!(e, ClientEvent::Registered { .. })).await;
        next(&mut port, super::super::got_message("sip:bob@", "Hi Alice")).await;
        port.commands
            .send(Command::SendMessage {
                to: "sip:bob@isc.local".into(),
                text: "ping".into(),
                id: Some("m1".into()),
            })
            .await
            .unwrap();
        next(
            &mut port,
            super::super::got_message("sip:bob@", "you said \"ping\""),
        )
        .await;
        // The server's tap saw it, and the names know the devices.
        assert!(!matches!(
            wire.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
        let names = live.names.lock().unwrap().clone();
        assert!(names.values().any(|n| n == "bob/phone"));
        live.stop().await;
    }
}
