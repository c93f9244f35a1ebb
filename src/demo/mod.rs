//! `isc demo SCENARIO --headless`: an in-process server and the scenario's
//! devices (bots: client runners) on loopback, a script that makes them act,
//! and a record of every message that crossed the server, checked against
//! the seed's steps.
//!
//! # Adding a scenario
//!
//! One file `src/demo/<name>.rs` holding a `pub const SCENARIO: Scenario`
//! (see [`pager`]), listed in [`SCENARIOS`]:
//!
//! * the cast (`"alice/tv"`: user `alice`, device `tv`, password = user
//!   name as in the demo cast);
//! * the expected steps, a table like FLOWS.md's: [`Step::wire`]`(id, from,
//!   to, label)` for a message crossing the server (entities as on the
//!   ladder: devices, `server:reg`, `server`, or the functions a
//!   [`Scenario::function`] names), optionally [`Step::carrying`] a text the
//!   message must contain; [`Step::seen`]`(id, who, what)` for something a
//!   device reports, ticked by the script's [`Stage::expect`];
//! * the script: `st.join("alice/tv")` starts a [`Device`] and waits until it
//!   is registered and watching; `device.message(to, text)`,
//!   `device.typing(to)`, `device.command(..)` act; `st.expect(step, &device,
//!   predicate)` waits (within the deadline) for a [`ClientEvent`] —
//!   [`got_message`], [`composing`], [`delivered`], [`sees`], [`misses`].
//!
//! [`run`] plays it and returns a [`Report`]: the [`Flow`] with each wire
//! step's id on the first matching arrow no earlier step took, and the
//! checklist; [`render_report`] prints ladder, messages and checklist.

pub mod c15_1;
pub mod c15_2;
pub mod conference_state;
pub mod cpm_multidevice;
pub mod deferred_push;
pub mod device;
pub mod extend_to_conference;
pub mod free_play;
pub mod live;
mod names;
pub mod pager;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::ClientEvent;
use crate::flow::{Flow, render_ladder, render_messages};
use crate::server::runner::{Server, ServerOptions, WireEvent};

pub use device::{Device, DeviceName};
pub use names::{Namer, columns, server_function};

/// Every scenario `isc demo` knows, by name.
pub const SCENARIOS: &[Scenario] = &[
    pager::SCENARIO,
    c15_1::SCENARIO,
    c15_2::SCENARIO,
    cpm_multidevice::SCENARIO,
    conference_state::SCENARIO,
    extend_to_conference::SCENARIO,
    deferred_push::SCENARIO,
    free_play::SCENARIO,
];

/// The scenario named `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// Why a demo run failed before its checklist could pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[error("i/o: {0}")]
    Io(String),
    #[error("device {0} has stopped")]
    Stopped(String),
    #[error("step {step}: {who} did not see {what} in time")]
    NotSeen {
        step: String,
        who: String,
        what: String,
    },
    #[error("the scenario did not finish within {0:?}")]
    Deadline(Duration),
}

/// Names the server function that handled a request, from its bytes.
pub type FunctionNamer = fn(&[u8]) -> Option<&'static str>;

/// The future a script returns.
pub type ScriptFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DemoError>> + Send + 'a>>;

/// A scenario: who plays, what must happen, and the script that makes it happen.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// `isc demo NAME`.
    pub name: &'static str,
    /// One line for the report's heading.
    pub summary: &'static str,
    /// Device names (`alice/tv`).
    pub cast: &'static [&'static str],
    /// The expected steps, in seed order.
    pub steps: &'static [Step],
    /// Drives the devices; the steps are checked afterwards on the record.
    pub script: for<'a> fn(&'a mut Stage) -> ScriptFuture<'a>,
    /// Ladder columns, left to right; empty: the first user's devices,
    /// `server:reg`, `server`, then the others. Unlisted entities are
    /// appended as they appear.
    pub columns: &'static [&'static str],
    /// Names the server function that handled a request (`server:mf`), tried
    /// before [`server_function`]; `None` falls back to it.
    pub function: Option<FunctionNamer>,
    /// Adjusts the server's options (user preferences) before it starts.
    pub server: Option<fn(&mut ServerOptions)>,
}

impl Scenario {
    pub const fn new(
        name: &'static str,
        summary: &'static str,
        cast: &'static [&'static str],
        steps: &'static [Step],
        script: for<'a> fn(&'a mut Stage) -> ScriptFuture<'a>,
    ) -> Scenario {
        Scenario {
            name,
            summary,
            cast,
            steps,
            script,
            columns: &[],
            function: None,
            server: None,
        }
    }

    /// Fixes the ladder's column order.
    pub const fn columns(mut self, columns: &'static [&'static str]) -> Scenario {
        self.columns = columns;
        self
    }

    /// Adjusts the server's options before it starts.
    pub const fn server_options(mut self, f: fn(&mut ServerOptions)) -> Scenario {
        self.server = Some(f);
        self
    }

    /// Names server functions beyond `server:reg` / `server`.
    pub const fn function(mut self, f: FunctionNamer) -> Scenario {
        self.function = Some(f);
        self
    }
}

/// One expected step of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The seed's step number (`5a`), shown on the ladder arrow.
    pub id: &'static str,
    pub kind: StepKind,
}

/// What makes a step happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A message crossed the server: `from` → `to` (entity names as on the
    /// ladder), its arrow label starts with `label`, and, when given, its
    /// bytes contain `carrying`.
    Wire {
        from: &'static str,
        to: &'static str,
        label: &'static str,
        carrying: Option<&'static str>,
    },
    /// A device reported something; the script checks it with [`Stage::expect`].
    Seen {
        who: &'static str,
        what: &'static str,
    },
}

impl Step {
    /// `from` → `to`: a message whose label starts with `label`.
    pub const fn wire(
        id: &'static str,
        from: &'static str,
        to: &'static str,
        label: &'static str,
    ) -> Step {
        Step {
            id,
            kind: StepKind::Wire {
                from,
                to,
                label,
                carrying: None,
            },
        }
    }

    /// ... whose bytes contain `text` (a header value, a content type, a body word).
    pub const fn carrying(self, text: &'static str) -> Step {
        match self.kind {
            StepKind::Wire {
                from, to, label, ..
            } => Step {
                id: self.id,
                kind: StepKind::Wire {
                    from,
                    to,
                    label,
                    carrying: Some(text),
                },
            },
            StepKind::Seen { .. } => self,
        }
    }

    /// `who` (a device) reported `what`; checked by the script.
    pub const fn seen(id: &'static str, who: &'static str, what: &'static str) -> Step {
        Step {
            id,
            kind: StepKind::Seen { who, what },
        }
    }

    fn describe(&self) -> String {
        match self.kind {
            StepKind::Wire {
                from,
                to,
                label,
                carrying,
            } => match carrying {
                Some(c) => format!("{from} -> {to}: {label} [{c}]"),
                None => format!("{from} -> {to}: {label}"),
            },
            StepKind::Seen { who, what } => format!("{who}: {what}"),
        }
    }
}

/// How a demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The whole scenario must finish within this; a stalled one fails.
    pub deadline: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            deadline: Duration::from_secs(20),
        }
    }
}

/// What the script acts on: the server and the devices on stage.
pub struct Stage {
    server_addr: std::net::SocketAddr,
    domain: String,
    devices: Vec<Device>,
    seen: Vec<&'static str>,
    deadline: tokio::time::Instant,
    /// Interactive runs: the device a person drives from the TUI.
    person: Option<live::Person>,
    /// Who owns which address, for a live ladder.
    names: Arc<Mutex<HashMap<std::net::SocketAddr, String>>>,
    /// Interactive runs wait this long after each expected step, so a
    /// person can follow.
    pace: Duration,
    /// Arrows the script adds to the ladder (media the server's SIP wire
    /// does not carry, e.g. RTP packet counts): when, from, to, text.
    notes: Vec<(Instant, String, String, Vec<u8>)>,
}

impl Stage {
    /// The server's SIP domain (`isc.local`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// `sip:user@domain`.
    pub fn aor(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.domain)
    }

    /// The devices on stage, in join order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Adds an arrow `from` → `to` labelled `text` (its first line) to the
    /// ladder at the current time; a [`Step::wire`] whose label starts the
    /// text matches it (e.g. `RTP audio 120 / video 30 packets`).
    pub fn note(&mut self, from: &str, to: &str, text: &str) {
        self.notes.push((
            Instant::now(),
            from.to_owned(),
            to.to_owned(),
            text.as_bytes().to_vec(),
        ));
    }

    fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Starts device `name` (`alice/tv`, password = the user's name as in
    /// the demo cast) and waits until it is registered and its reg-event
    /// subscription lists it.
    pub async fn join(&mut self, name: &str) -> Result<Device, DemoError> {
        let who = DeviceName::parse(name);
        let server = self.server_addr;
        let dev = match self.person.take_if(|p| p.name == name) {
            Some(person) => person.start(&self.domain, &who.user, server).await?,
            None => Device::start(name, &self.domain, &who.user, server).await?,
        };
        self.devices.push(dev.clone());
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dev.local_addr(), name.to_owned());
        let left = self.left();
        let registered = dev
            .wait_for(left, |e| matches!(e, ClientEvent::Registered { .. }))
            .await;
        if registered.is_none() {
            return Err(not_seen("join", name, "its registration"));
        }
        let left = self.left();
        dev.wait_for(left, |e| matches!(e, ClientEvent::DevicesChanged { devices } if devices.iter().any(|d| d.is_self)))
            .await
            .ok_or_else(|| not_seen("join", name, "itself in its reg-event state"))?;
        Ok(dev)
    }

    /// True when a person watches (and drives one device) in the TUI.
    pub fn interactive(&self) -> bool {
        !self.pace.is_zero()
    }

    /// Waits (within the deadline) until `dev` reports an event matching
    /// `pred`, and marks step `step` done.
    pub async fn expect(
        &mut self,
        step: &'static str,
        dev: &Device,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> Result<ClientEvent, DemoError> {
        match dev.wait_for(self.left(), pred).await {
            Some(e) => {
                self.seen.push(step);
                if !self.pace.is_zero() {
                    tokio::time::sleep(self.pace).await;
                }
                Ok(e)
            }
            None => Err(not_seen(step, dev.name(), "the expected event")),
        }
    }
}

fn not_seen(step: &str, who: &str, what: &str) -> DemoError {
    DemoError::NotSeen {
        step: step.to_owned(),
        who: who.to_owned(),
        what: what.to_owned(),
    }
}

// --- predicates the scripts use ---------------------------------------------

/// A MESSAGE whose body contains `text`, from `from` (a URI prefix, e.g. the AOR).
pub fn got_message(from: &str, text: &str) -> impl Fn(&ClientEvent) -> bool {
    let (from, text) = (from.to_owned(), text.to_owned());
    move |e| match e {
        ClientEvent::MessageReceived { from: f, body, .. } => {
            f.contains(&from) && String::from_utf8_lossy(body).contains(&text)
        }
        _ => false,
    }
}

/// isComposing from `from` turned `active` (or idle).
pub fn composing(from: &str, active: bool) -> impl Fn(&ClientEvent) -> bool {
    let from = from.to_owned();
    move |e| matches!(e, ClientEvent::ComposingChanged { from: f, active: a } if f.contains(&from) && *a == active)
}

/// Our MESSAGE was answered with a 2xx.
pub fn delivered() -> impl Fn(&ClientEvent) -> bool {
    |e| matches!(e, ClientEvent::MessageDelivered { .. })
}

/// The reg-event state lists `other` (matched by its GRUU, else its address).
pub fn sees(other: &Device) -> impl Fn(&ClientEvent) -> bool {
    let key = device_key(other);
    move |e| matches!(e, ClientEvent::DevicesChanged { devices } if devices.iter().any(|d| is_listed(d, &key)))
}

/// The reg-event state no longer lists `other` as registered.
pub fn misses(other: &Device) -> impl Fn(&ClientEvent) -> bool {
    let key = device_key(other);
    move |e| matches!(e, ClientEvent::DevicesChanged { devices } if !devices.iter().any(|d| is_listed(d, &key)))
}

fn device_key(d: &Device) -> (Option<String>, String) {
    let port = format!(":{}", d.local_addr().port());
    (d.gruu(), port)
}

fn is_listed(d: &crate::client::Device, (gruu, port): &(Option<String>, String)) -> bool {
    let same = match (gruu, &d.gruu) {
        (Some(a), Some(b)) => a == b,
        _ => d.contact.contains(port.as_str()),
    };
    same && !matches!(
        d.state.as_str(),
        "expired" | "unregistered" | "deactivated" | "rejected" | "probation"
    )
}

// --- running ------------------------------------------------------------------

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: &'static str,
    pub flow: Flow,
    /// Each expected step and whether it happened.
    pub checklist: Vec<(Step, bool)>,
    /// Why the script stopped early, if it did.
    pub error: Option<DemoError>,
}

impl Report {
    /// Every expected step happened and the script finished.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checklist.iter().all(|(_, ok)| *ok)
    }
}

/// Plays `scenario` on a fresh loopback server with the demo cast.
pub async fn run(scenario: &'static Scenario, opts: DemoOptions) -> Result<Report, DemoError> {
    let mut options = ServerOptions::loopback_demo();
    if let Some(f) = scenario.server {
        f(&mut options);
    }
    let domain = options.config.domain.clone();
    let server = Server::start(options)
        .await
        .map_err(|e| DemoError::Io(format!("server: {e}")))?;
    let server_addr = server.local_addr();
    let started = Instant::now();
    let wire: Arc<Mutex<Vec<WireEvent>>> = Arc::default();
    let recorder = {
        let mut rx = server.wire();
        let wire = wire.clone();
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                wire.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
            }
        })
    };
    let mut stage = Stage {
        server_addr,
        domain,
        devices: Vec::new(),
        seen: Vec::new(),
        deadline: tokio::time::Instant::now() + opts.deadline,
        person: None,
        names: Arc::default(),
        pace: Duration::ZERO,
        notes: Vec::new(),
    };
    let error = match tokio::time::timeout(opts.deadline, (scenario.script)(&mut stage)).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(DemoError::Deadline(opts.deadline)),
    };
    // Let the last answers land before the record closes.
    tokio::time::sleep(Duration::from_millis(150)).await;
    recorder.abort();
    let events: Vec<WireEvent> = wire.lock().unwrap_or_else(|p| p.into_inner()).clone();

    let names: HashMap<_, _> = stage
        .devices
        .iter()
        .map(|d| (d.local_addr(), d.name().to_owned()))
        .collect();
    let mut flow = names::flow_for(scenario, started, &events, &names, server_addr);
    if !stage.notes.is_empty() {
        for (at, from, to, raw) in &stage.notes {
            flow.record(at.saturating_duration_since(started), from, to, raw);
        }
        flow.events_mut().sort_by_key(|e| e.at);
    }
    let checklist = check(scenario.steps, &mut flow, &stage.seen);

    for d in &stage.devices {
        d.stop(Duration::from_secs(2)).await;
    }
    server.shutdown().await;
    Ok(Report {
        scenario: scenario.name,
        flow,
        checklist,
        error,
    })
}

/// Matches the steps against the record: each wire step takes the first
/// message it fits that no other step took, and puts its id on that arrow.
fn check(steps: &[Step], flow: &mut Flow, seen: &[&str]) -> Vec<(Step, bool)> {
    let mut taken = vec![false; flow.events().len()];
    let mut out = Vec::new();
    for step in steps {
        let ok = match step.kind {
            StepKind::Seen { .. } => seen.contains(&step.id),
            StepKind::Wire {
                from,
                to,
                label,
                carrying,
            } => {
                let hit = flow.events().iter().enumerate().position(|(i, ev)| {
                    !taken[i]
                        && ev.from == from
                        && ev.to == to
                        && ev.label.starts_with(label)
                        && carrying.is_none_or(|c| contains(&ev.raw, c))
                });
                if let Some(i) = hit {
                    taken[i] = true;
                    flow.events_mut()[i].step = Some(step.id.to_owned());
                }
                hit.is_some()
            }
        };
        out.push((*step, ok));
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w == n)
}

/// The headless output: ladder, every message in full, the checklist.
pub fn render_report(report: &Report, summary: &str) -> String {
    let mut out = String::new();
    writeln!(out, "== isc demo {}: {summary} ==", report.scenario).ok();
    writeln!(out, "\n== ladder ==").ok();
    out.push_str(&render_ladder(&report.flow));
    writeln!(out, "\n== messages ==").ok();
    out.push_str(&render_messages(&report.flow));
    writeln!(out, "\n== steps ==").ok();
    for (step, ok) in &report.checklist {
        let mark = if *ok { '✓' } else { '✗' };
        writeln!(out, "{mark} [{}] {}", step.id, step.describe()).ok();
    }
    if let Some(e) = &report.error {
        writeln!(out, "error: {e}").ok();
    }
    let done = report.checklist.iter().filter(|(_, ok)| *ok).count();
    writeln!(
        out,
        "{}: {done}/{} steps {}",
        report.scenario,
        report.checklist.len(),
        if report.passed() { "passed" } else { "FAILED" }
    )
    .ok();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stall(st: &mut Stage) -> ScriptFuture<'_> {
        Box::pin(async move {
            let tv = st.join("alice/tv").await?;
            // Nobody ever sends alice a message.
            st.expect("2", &tv, got_message("bob", "never")).await?;
            Ok(())
        })
    }

    const STALL: Scenario = Scenario::new(
        "stall",
        "waits for a message nobody sends",
        &["alice/tv"],
        &[
            Step::wire("1", "alice/tv", "server:reg", "REGISTER"),
            Step::seen("2", "alice/tv", "a message from bob"),
            Step::wire("3", "bob/phone", "server", "MESSAGE"),
        ],
        stall,
    );

    #[tokio::test]
    async fn a_stalled_scenario_fails_at_its_deadline_with_its_checklist() {
        let started = std::time::Instant::now();
        let report = run(
            &STALL,
            DemoOptions {
                deadline: Duration::from_millis(800),
            },
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!report.passed());
        let marks: Vec<bool> = report.checklist.iter().map(|(_, ok)| *ok).collect();
        assert_eq!(marks, [true, false, false]);
        assert!(report.error.is_some());
        let text = render_report(&report, STALL.summary);
        assert!(
            text.contains("✓ [1] alice/tv -> server:reg: REGISTER"),
            "{text}"
        );
        assert!(
            text.contains("✗ [2] alice/tv: a message from bob"),
            "{text}"
        );
        assert!(text.contains("stall: 1/3 steps FAILED"), "{text}");
        // The REGISTER arrow carries its step number.
        let ladder = render_ladder(&report.flow);
        assert!(
            ladder
                .lines()
                .any(|l| l.contains("REGISTER") && l.ends_with("[1]")),
            "{ladder}"
        );
    }

    #[test]
    fn every_scenario_has_a_unique_name_and_step_ids() {
        for (i, s) in SCENARIOS.iter().enumerate() {
            assert!(SCENARIOS[..i].iter().all(|o| o.name != s.name));
            // A seed step may stand for several arrows (step 10: RTP to
            // each viewer), but no step is listed twice.
            for (j, st) in s.steps.iter().enumerate() {
                assert!(s.steps[..j].iter().all(|o| o != st), "{} {}", s.name, st.id);
            }
        }
        assert!(find("pager").is_some());
    }
}
