//! `isc demo SCENARIO --headless` through the real binary: exit 0, the
//! ladder's key arrows carry their step numbers, the checklist passes.

use std::process::Command;

fn run_demo(scenario: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_isc"))
        .args(["demo", scenario, "--headless", "--timeout", "20"])
        .output()
        .expect("run isc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The ladder section: from `== ladder ==` to `== messages ==`.
fn ladder(out: &str) -> &str {
    let start = out.find("== ladder ==").expect("a ladder");
    let end = out.find("== messages ==").expect("the messages");
    &out[start..end]
}

/// The ladder line carrying step `[id]`.
fn arrow<'a>(ladder: &'a str, id: &str) -> &'a str {
    let tag = format!("  [{id}]");
    ladder
        .lines()
        .find(|l| l.ends_with(&tag))
        .unwrap_or_else(|| panic!("no arrow for step {id} in\n{ladder}"))
}

#[test]
fn pager() {
    let (code, out, err) = run_demo("pager");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let ladder = ladder(&out);
    let head = ladder.lines().nth(1).expect("column heads");
    for name in [
        "alice/tv",
        "alice/phone",
        "server:reg",
        "server",
        "bob/phone",
    ] {
        assert!(head.contains(name), "{head}");
    }
    // Column positions, to check each arrow runs between the right ones.
    let col = |name: &str| {
        let at = head
            .match_indices(name)
            .map(|(i, _)| i)
            .find(|&i| !head[i + name.len()..].starts_with(':'))
            .unwrap();
        at + name.len() / 2
    };
    let spans = |line: &str, a: &str, b: &str| {
        let (lo, hi) = (col(a).min(col(b)), col(a).max(col(b)));
        line.as_bytes()[lo] == b'|' && line.as_bytes()[hi] == b'|' && line[lo + 1..hi].contains('-')
    };
    let l = arrow(ladder, "1");
    assert!(
        l.contains("REGISTER") && spans(l, "alice/tv", "server:reg"),
        "{l}"
    );
    let l = arrow(ladder, "4");
    assert!(l.contains("NOTIFY") && l.contains("<-"), "{l}");
    let l = arrow(ladder, "12");
    assert!(
        l.contains("MESSAGE") && spans(l, "server", "bob/phone") && l.contains("<-"),
        "{l}"
    );
    for (id, to) in [("16a", "alice/tv"), ("16b", "alice/phone")] {
        let l = arrow(ladder, id);
        assert!(l.contains("MESSAGE") && spans(l, to, "server"), "{l}");
    }
    let l = arrow(ladder, "20");
    assert!(l.contains("MESSAGE") && l.contains("->|"), "{l}");

    // The messages follow in full, with their step.
    assert!(out.contains("[step 16a] ---"), "{out}");
    assert!(out.contains("Content-Type: application/im-iscomposing+xml"));
    assert!(out.contains("Hello Alice, movie tonight?"));
    // The checklist: every step ticked.
    let steps = &out[out.find("== steps ==").unwrap()..];
    assert!(!steps.contains('✗'), "{steps}");
    assert!(
        steps.contains("✓ [18b] alice/phone: shows Bob's message"),
        "{steps}"
    );
    assert!(steps.contains("pager: 26/26 steps passed"), "{steps}");
}

#[test]
fn cpm_multidevice() {
    let (code, out, err) = run_demo("cpm-multidevice");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let ladder = ladder(&out);
    // SIP arrows `-`, MSRP arrows `=`, each with its seed step.
    assert!(arrow(ladder, "1").contains("INVITE"));
    for id in ["2a", "2b", "2c"] {
        assert!(arrow(ladder, id).contains("INVITE"), "{id}");
    }
    let l = arrow(ladder, "5");
    assert!(
        l.contains("SEND (message/cpim)") && l.contains("==>"),
        "{l}"
    );
    for id in ["5a", "5b", "5c", "9e"] {
        assert!(arrow(ladder, id).contains("SEND"), "{id}");
    }
    assert!(arrow(ladder, "6").contains("SEND (application/im-iscompos"));
    for id in ["7a", "7b"] {
        assert!(arrow(ladder, id).contains("BYE"), "{id}");
    }
    assert!(arrow(ladder, "8").contains("<=="));
    assert!(out.contains("Reason: SIP;cause=200;text=\"Call completed elsewhere\""));
    let steps = &out[out.find("== steps ==").unwrap()..];
    assert!(!steps.contains('✗'), "{steps}");
    assert!(
        steps.contains("cpm-multidevice: 34/34 steps passed"),
        "{steps}"
    );
}

#[test]
fn conference_state() {
    let (code, out, err) = run_demo("conference-state");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let ladder = ladder(&out);
    assert!(arrow(ladder, "1").contains("SUBSCRIBE"));
    for id in ["3", "6", "8"] {
        let l = arrow(ladder, id);
        assert!(l.contains("NOTIFY") && l.contains("<-"), "{l}");
    }
    assert!(arrow(ladder, "5").contains("INVITE"));
    assert!(arrow(ladder, "7").contains("BYE"));
    let steps = &out[out.find("== steps ==").unwrap()..];
    assert!(!steps.contains('✗'), "{steps}");
    assert!(
        steps.contains("conference-state: 12/12 steps passed"),
        "{steps}"
    );
}

#[test]
fn extend_to_conference() {
    let (code, out, err) = run_demo("extend-to-conference");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let ladder = ladder(&out);
    for id in ["1", "3", "4", "5"] {
        assert!(arrow(ladder, id).contains("INVITE"), "{id}");
    }
    assert!(arrow(ladder, "8").contains("BYE"));
    assert!(arrow(ladder, "10").contains("SEND (message/cpim)"));
    // The factory INVITE: recipient list, Replaces %-escaped in the URI.
    assert!(out.contains("Require: recipient-list-invite"));
    assert!(out.contains("Content-Disposition: recipient-list"));
    assert!(
        out.contains("?Replaces=") && out.contains("%3Bto-tag%3D"),
        "{out}"
    );
    let steps = &out[out.find("== steps ==").unwrap()..];
    assert!(!steps.contains('✗'), "{steps}");
    assert!(
        steps.contains("extend-to-conference: 20/20 steps passed"),
        "{steps}"
    );
}

#[test]
fn unknown_scenario_and_the_tui_without_a_terminal_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_isc"))
        .args(["demo", "no-such-flow", "--headless"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_isc"))
        .args(["demo", "pager"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a terminal"));
}

/// Every step ticked, the summary line says so, and each listed step's
/// arrow carries its number and label.
fn check_scenario(name: &str, total: usize, arrows: &[(&str, &str)]) -> String {
    let (code, out, err) = run_demo(name);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let ladder = ladder(&out);
    for (id, label) in arrows {
        let l = arrow(ladder, id);
        assert!(l.contains(label), "step {id}: {l}");
    }
    let steps = &out[out.find("== steps ==").unwrap()..];
    assert!(!steps.contains('✗'), "{steps}");
    assert!(
        steps.contains(&format!("{name}: {total}/{total} steps passed")),
        "{steps}"
    );
    out
}

#[test]
fn c15_1() {
    let out = check_scenario(
        "c15-1",
        23,
        &[
            ("1", "OPTIONS"),
            ("2", "INVITE"),
            ("3", "INVITE"),
            ("5a", "MESSAGE"),
            ("6", "INVITE"),
            ("9", "200 OK (INVITE)"),
            ("10", "RTP audio"),
            ("12", "200 OK (INVITE)"),
        ],
    );
    let head = ladder(&out)
        .lines()
        .nth(1)
        .expect("column heads")
        .to_owned();
    for name in [
        "alice/tv",
        "alice/phone",
        "server:mf",
        "server:cpm",
        "bob/phone",
    ] {
        assert!(head.contains(name), "{head}");
    }
    assert!(out.contains("Content-Type: application/vnd.oma.isc.cm.recommendation"));
}

#[test]
fn c15_2() {
    let out = check_scenario(
        "c15-2",
        27,
        &[
            ("3", "INVITE"),
            ("7", "200 OK (INVITE)"),
            ("9", "CANCEL"),
            ("10", "200 OK (CANCEL)"),
            ("11", "RTP audio"),
            ("14", "CANCEL"),
        ],
    );
    assert!(out.contains("Reason: SIP;cause=200;text=\"Call completed elsewhere\""));
}

#[test]
fn deferred_push() {
    let out = check_scenario(
        "deferred-push",
        18,
        &[
            ("1", "REGISTER"),
            ("2-3", "INVITE"),
            ("4-5", "200 OK (INVITE)"),
            ("6-7", "ACK"),
            ("8a", "SEND (message/sip)"),
            ("8b", "SEND (multipart/mixed"),
            ("10-11", "BYE"),
            ("12-13", "200 OK (BYE)"),
        ],
    );
    let ladder = ladder(&out);
    let head = ladder.lines().nth(1).expect("column heads");
    for name in ["carol/phone", "server:store", "bob/phone"] {
        assert!(head.contains(name), "{head}");
    }
    // MSRP arrows run store → bob and back.
    assert!(arrow(ladder, "8a").contains("==>"));
    assert!(arrow(ladder, "9a").contains("<=="));
    // The messages in full: the push INVITE and bob's answer (seed 003 12.4.2.2 b).
    assert!(out.contains("From: <sip:Deferred@isc.local>"), "{out}");
    assert!(out.contains(";automata"));
    assert!(out.contains("a=sendonly"));
    assert!(out.contains("a=setup:passive"));
    assert!(out.contains("Content-Type: message/msrp"));
}
