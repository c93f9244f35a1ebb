//! The `isc` command line: every flag is described in `--help`; the TUI
//! (the client without `--headless`, the demo without it) refuses to start
//! without a terminal and exits 2.

use std::process::{Command, Output};

fn isc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_isc"))
        .args(args)
        .output()
        .expect("run isc")
}

fn help(args: &[&str]) -> String {
    let out = isc(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn top_level_help_lists_the_commands() {
    let text = help(&["--help"]);
    for cmd in ["client", "server", "demo"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn server_help_describes_every_flag() {
    let text = help(&["server", "--help"]);
    for flag in ["--listen", "--config", "--help"] {
        assert!(text.contains(flag), "{flag} missing:\n{text}");
    }
    assert!(text.contains("port 0 picks a free port"), "{text}");
}

#[test]
fn client_help_describes_every_flag() {
    let text = help(&["client", "--help"]);
    for flag in [
        "--headless",
        "--profile",
        "--server",
        "--user",
        "--password",
        "--device",
        "--domain",
        "--transport",
        "--bind",
        "--instance",
        "--state-dir",
        "--config",
        "--help",
    ] {
        assert!(text.contains(flag), "{flag} missing:\n{text}");
    }
    assert!(text.contains("JSON"), "{text}");
}

#[test]
fn demo_help_names_the_scenarios_and_flags() {
    let text = help(&["demo", "--help"]);
    for word in ["SCENARIO", "--headless", "--timeout", "pager"] {
        assert!(text.contains(word), "{word} missing:\n{text}");
    }
}

#[test]
fn the_tui_without_a_terminal_exits_2_and_names_headless() {
    for args in [
        &[][..],
        &["client"][..],
        &["--profile", "bob-phone"][..],
        &["demo"][..],
    ] {
        let out = isc(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("needs a terminal"), "{err}");
        assert!(err.contains("--headless"), "{err}");
        assert!(out.stdout.is_empty());
    }
}
