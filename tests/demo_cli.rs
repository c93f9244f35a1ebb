//! The `isc` command line: every flag is described in `--help`; the client
//! without `--headless` says the TUI is not built yet and exits 2.

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
fn client_without_headless_exits_2_until_the_tui_exists() {
    for args in [&[][..], &["client"][..]] {
        let out = isc(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("terminal UI is not built yet"), "{err}");
        assert!(out.stdout.is_empty());
    }
}
