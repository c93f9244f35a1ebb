//! The real `isc` binary in a detached tmux session (120×32), with its own
//! HOME / XDG dirs and a config on a free loopback port: it starts the
//! embedded server, a bot (a demo device) pages it and types, the pane
//! shows both, a reply typed with `send-keys` reaches the bot, and the quit
//! key leaves the alternate screen with exit status 0.
//!
//! tmux runs on its own socket in the test's temp dir; only that server is
//! killed. Every wait is bounded.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use isc::client::ClientEvent;
use isc::client::chat::ChatEvent;
use isc::client::chats::ChatCommand;
use isc::demo::{Device, composing, got_message};

const WAIT: Duration = Duration::from_secs(20);
const SESSION: &str = "isc-e2e";

/// A tmux server of our own; killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (install the tmux package)")
    }

    fn capture(&self) -> String {
        self.capture_of(&format!("{SESSION}:0"))
    }

    fn capture_of(&self, target: &str) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", target]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        self.keys_to(&format!("{SESSION}:0"), keys);
    }

    fn keys_to(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    /// Polls the first window's pane until `done` holds; panics with the
    /// last capture.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.wait_in(&format!("{SESSION}:0"), what, done)
    }

    fn wait_in(&self, target: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + WAIT;
        loop {
            let pane = self.capture_of(target);
            if done(&pane) {
                return pane;
            }
            assert!(
                Instant::now() < until,
                "gave up waiting for {what}; the pane:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn write_config(dir: &Path, port: u16) {
    let isc = dir.join("config").join("isc");
    std::fs::create_dir_all(&isc).expect("config dir");
    std::fs::write(
        isc.join("config.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .expect("config file");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_in_tmux_chats_with_a_bot_and_restores_the_terminal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let port = free_port();
    write_config(root, port);
    let server: SocketAddr = ([127, 0, 0, 1], port).into();

    let tmux = Tmux {
        socket: root.join("tmux.sock"),
    };
    let env = [
        ("HOME", root.join("home")),
        ("XDG_CONFIG_HOME", root.join("config")),
        ("XDG_STATE_HOME", root.join("state")),
        ("XDG_DATA_HOME", root.join("data")),
        ("XDG_CACHE_HOME", root.join("cache")),
    ];
    let mut cmd = String::from("env");
    for (k, v) in &env {
        cmd.push_str(&format!(" {k}={}", shell_quote(&v.to_string_lossy())));
    }
    let isc_cmd = |args: &str| {
        format!(
            "{cmd} {} {args}; echo \"isc exited $?\"; sleep 60",
            shell_quote(env!("CARGO_BIN_EXE_isc"))
        )
    };
    let started = tmux.run(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        "120",
        "-y",
        "32",
        &isc_cmd(""),
    ]);
    assert!(started.status.success(), "tmux new-session: {started:?}");

    // The embedded server starts on the configured port; alice/tv registers.
    let pane = tmux.wait_for("registration", |p| {
        p.contains("registered (embedded server 127.0.0.1:")
    });
    assert!(pane.contains("alice on tv"), "{pane}");

    // A second `isc` finds that server and joins as alice's phone.
    let second = tmux.run(&[
        "new-window",
        "-d",
        "-t",
        SESSION,
        &isc_cmd("--profile alice-phone"),
    ]);
    assert!(second.status.success(), "{second:?}");
    let phone = format!("{SESSION}:1");
    let pane = tmux.wait_in(&phone, "the phone's registration", |p| {
        p.contains(&format!("alice on phone · registered (server {server})"))
    });
    assert!(pane.contains("tv "), "the phone lists the tv:\n{pane}");
    tmux.wait_for("the tv to list the phone", |p| p.contains("● phone"));
    tmux.keys_to(&phone, &["C-c"]);
    let pane = tmux.wait_in(&phone, "the phone to quit", |p| p.contains("isc exited"));
    assert!(pane.contains("isc exited 0"), "{pane}");

    let bob = Device::start("bob/phone", "isc.local", "bob", server)
        .await
        .expect("bot starts");
    bob.wait_for(WAIT, |e| matches!(e, ClientEvent::Registered { .. }))
        .await
        .expect("bot registers");
    let alice = "sip:alice@isc.local";

    // A first message opens the conversation; isComposing then shows in it.
    bob.message(alice, "Hello from the bot").expect("message");
    tmux.wait_for("the bot's message", |p| p.contains("Hello from the bot"));
    bob.typing(alice).expect("typing");
    let pane = tmux.wait_for("the composing indicator", |p| p.contains("bob is typing"));
    assert!(pane.contains("Hello from the bot"), "{pane}");

    tmux.keys(&["hi bot", "Enter"]);
    let got = bob.wait_for(WAIT, got_message(alice, "hi bot")).await;
    assert!(
        got.is_some(),
        "the bot got the reply; pane:\n{}",
        tmux.capture()
    );
    // The bot saw alice typing on the way.
    assert!(
        bob.wait_for(Duration::from_secs(1), composing(alice, true))
            .await
            .is_some()
    );
    tmux.wait_for("the reply delivered", |p| p.contains("hi bot ✓"));

    // `:chat bob` starts an MSRP session; the bot accepts; text goes over it.
    tmux.keys(&[":chat bob", "Enter"]);
    let invited = bob
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Invited { .. }))
        })
        .await;
    let Some(ClientEvent::Chat(ChatEvent::Invited { chat, .. })) = invited else {
        panic!("no chat invitation; pane:\n{}", tmux.capture());
    };
    tmux.wait_for("the session conversation", |p| p.contains("bob · chat"));
    bob.command(isc::client::Command::Chat(ChatCommand::Accept { chat }))
        .expect("accept");
    tmux.wait_for("the session to connect", |p| {
        p.contains("chat session connected")
    });
    tmux.keys(&["over msrp", "Enter"]);
    let got = bob
        .wait_for(WAIT, |e| {
            matches!(e, ClientEvent::Chat(ChatEvent::Message { text, .. }) if text == "over msrp")
        })
        .await;
    assert!(got.is_some(), "pane:\n{}", tmux.capture());
    tmux.wait_for("the MSRP delivery", |p| p.contains("over msrp ✓"));

    // The quit key: the process ends with 0 and the shell's screen is back.
    tmux.keys(&["C-c"]);
    let pane = tmux.wait_for("isc to exit", |p| p.contains("isc exited"));
    assert!(pane.contains("isc exited 0"), "{pane}");
    assert!(
        !pane.contains("Conversations"),
        "alternate screen left:\n{pane}"
    );
    let alt = tmux.run(&["display-message", "-p", "-t", SESSION, "#{alternate_on}"]);
    assert_eq!(String::from_utf8_lossy(&alt.stdout).trim(), "0");

    // Logs went to the state dir, not the screen.
    let log = root.join("state").join("isc").join("client.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("embedded server"),
        "log {}: {text}",
        log.display()
    );
    bob.stop(Duration::from_secs(2)).await;
}

#[test]
fn isc_demo_in_tmux_bots_answer_and_the_flow_fills() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let tmux = Tmux {
        socket: root.join("tmux.sock"),
    };
    let home = root.join("home");
    let run = |window: &str, args: &str| {
        let cmd = format!(
            "env HOME={h} XDG_STATE_HOME={h}/state XDG_CONFIG_HOME={h}/config {} {args}; \
             echo \"isc exited $?\"; sleep 60",
            shell_quote(env!("CARGO_BIN_EXE_isc")),
            h = shell_quote(&home.to_string_lossy()),
        );
        let out = if window == "0" {
            tmux.run(&[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                SESSION,
                "-x",
                "120",
                "-y",
                "32",
                &cmd,
            ])
        } else {
            tmux.run(&["new-window", "-d", "-t", SESSION, &cmd])
        };
        assert!(out.status.success(), "{out:?}");
    };

    // free-play: Bob greets, answers what alice writes.
    run("0", "demo");
    tmux.wait_for("bob's greeting", |p| p.contains("Hi Alice!"));
    tmux.keys(&["ping", "Enter"]);
    tmux.wait_for("bob's answer", |p| {
        p.contains("bob here: you said \"ping\"")
    });
    tmux.keys(&["F3"]);
    let pane = tmux.wait_for("the flow view", |p| p.contains("Flow ·"));
    assert!(pane.contains("bob/phone"), "{pane}");
    tmux.keys(&["C-c"]);
    let pane = tmux.wait_for("isc demo to exit", |p| p.contains("isc exited"));
    assert!(pane.contains("isc exited 0"), "{pane}");

    // pager: the flow view is up from the start and fills with the scenario.
    run("1", "demo pager");
    let pager = format!("{SESSION}:1");
    let pane = tmux.wait_in(&pager, "the pager flow", |p| {
        p.contains("Flow ·") && p.contains("bob/phone") && p.contains("MESSAGE")
    });
    assert!(pane.contains("alice/phone"), "{pane}");
    tmux.keys_to(&pager, &["C-c"]);
    let pane = tmux.wait_in(&pager, "isc demo pager to exit", |p| {
        p.contains("isc exited")
    });
    assert!(pane.contains("isc exited 0"), "{pane}");
}
