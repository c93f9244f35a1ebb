//! Idle CPU of the client: the bundled server alone, then with a registered
//! headless client, then with that client under the TUI's event loop
//! (drawing on a 200×60 `TestBackend`, no terminal events), each left idle
//! for N seconds. Prints CPU seconds per wall second of the whole process
//! (getrusage: user + system, every thread); asserts nothing.
//!
//!     cargo run --example bench-idle [-- SECONDS]
//!
//! The figure of a phase minus the one before it is what that part costs.

use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use isc::client::runner::spawn_client;
use isc::client::{ClientEvent, UaConfig};
use isc::server::runner::{Server, ServerOptions};
use isc::tui::app::{AppConfig, Registration};
use isc::tui::event_loop::run_loop;
use isc::tui::{App, ClientLink};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// User + system CPU time of this process, all threads.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we hand it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU seconds per wall second over `idle`.
async fn measure(idle: Duration) -> f64 {
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(idle).await;
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    cpu.as_secs_f64() / wall.as_secs_f64()
}

fn report(phase: &str, ratio: f64, before: Option<f64>) {
    let extra = before
        .map(|b| {
            format!(
                "  ({:+.2} ms CPU/s against the phase before)",
                (ratio - b) * 1e3
            )
        })
        .unwrap_or_default();
    println!(
        "{phase:<44} {:>8.2} ms CPU/s  = {:>6.3} %{extra}",
        ratio * 1e3,
        ratio * 100.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let idle = Duration::from_secs(secs);
    println!("idle CPU, {secs} s per phase (debug builds cost more than --release)");

    let server = Server::start(ServerOptions::loopback_demo())
        .await
        .expect("server starts");
    let addr = server.local_addr();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alone = measure(idle).await;
    report("embedded server alone", alone, None);

    let instance = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let bind = "127.0.0.1:0".parse().expect("address");
    let ua = UaConfig::new("alice", "isc.local", "alice", "tv", &instance, addr, bind);
    let mut handle = spawn_client(ua, bind).await.expect("client binds");
    handle
        .wait_for(Duration::from_secs(10), |e| {
            matches!(e, ClientEvent::Registered { .. })
        })
        .await
        .expect("client registers");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let headless = measure(idle).await;
    report("+ headless client, registered", headless, Some(alone));

    // The same client under the TUI's loop: no key, no message, nothing to draw.
    let link = ClientLink::new(handle, "alice/tv", addr);
    let mut config = AppConfig::new("alice", "isc.local", "tv");
    config.server = format!("embedded server {addr}");
    let app = App::new(config, Instant::now(), SystemTime::now());
    let (keys, events) = futures::channel::mpsc::unbounded::<std::io::Result<Event>>();
    let tui = tokio::spawn(async move {
        let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
        run_loop(app, &mut terminal, events, link).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with_tui = measure(idle).await;
    report(
        "+ TUI event loop (200×60 TestBackend)",
        with_tui,
        Some(headless),
    );

    let quit = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    keys.unbounded_send(Ok(Event::Key(quit)))
        .expect("loop still running");
    let app = tui.await.expect("loop task").expect("loop ends");
    assert!(
        matches!(
            app.registration,
            Registration::Registered { .. } | Registration::Unregistered
        ),
        "the client stayed registered while idle: {:?}",
        app.registration
    );

    // For comparison: the same screen redrawn on a fixed 250 ms tick, as the
    // loop did before it slept until the state's next deadline.
    let mut app = app;
    let ticking = tokio::spawn(async move {
        let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            app.update(isc::tui::Action::Tick {
                now: Instant::now(),
                wall: SystemTime::now(),
            });
            terminal
                .draw(|f| isc::tui::view::render(&app, f))
                .expect("draw");
        }
    });
    let fixed_tick = measure(idle).await;
    ticking.abort();
    report(
        "(former) redraw on a 250 ms tick, no client",
        fixed_tick,
        Some(alone),
    );
    server.shutdown().await;
}
