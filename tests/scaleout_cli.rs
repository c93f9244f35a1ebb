//! `isc server --write-kamailio DIR --dispatch N=ADDR ...` writes the
//! dispatcher deployment (README "Scale-out"), which Kamailio accepts
//! (`kamailio -c`, when installed); bad values are refused with a message
//! naming them.

use std::path::Path;
use std::process::{Command, Output};

fn isc(home: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_isc"))
        .args(args)
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .output()
        .expect("isc runs")
}

#[test]
fn writes_the_dispatcher_deployment_kamailio_accepts() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("deploy");
    let out = isc(
        home.path(),
        &[
            "server",
            "--listen",
            "127.0.0.1:25071",
            "--behind",
            "127.0.0.1:25060",
            "--write-kamailio",
            dir.to_str().unwrap(),
            "--dispatch",
            "1=127.0.0.1:25071",
            "--dispatch",
            "2=127.0.0.1:25072",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("WITH_DISPATCHER"), "{stdout}");
    assert!(stdout.contains("for 2 instances"), "{stdout}");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert!(read("kamailio.cfg").starts_with("#!KAMAILIO\n#!define WITH_DISPATCHER\n"));
    assert!(read("kamailio.cfg").contains("#!substdef \"!CORE_PORT!25060!g\""));
    assert_eq!(
        read("dispatcher.list")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        [
            "1 sip:127.0.0.1:25071",
            "101 sip:127.0.0.1:25071",
            "1 sip:127.0.0.1:25072",
            "102 sip:127.0.0.1:25072"
        ]
    );
    assert!(read("isc-instances.cfg").contains("forward(\"127.0.0.1\", 25072);"));
    assert!(read("isc-users.cfg").contains("route[ISC_PASSWORD]"));

    // Kamailio's own check of the cfg (its relative includes and list file
    // are read from the working directory).
    let kamailio = ["/usr/sbin/kamailio", "kamailio"]
        .into_iter()
        .find(|k| Command::new(k).arg("-v").output().is_ok());
    match kamailio {
        None => eprintln!("kamailio not installed: cfg check skipped"),
        Some(k) => {
            let check = Command::new("timeout")
                .args(["30", k, "-c", "-f"])
                .arg(dir.join("kamailio.cfg"))
                .current_dir(&dir)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&[check.stdout, check.stderr].concat()).into_owned();
            assert!(check.status.success(), "{text}");
            assert!(text.contains("config file ok"), "{text}");
        }
    }
}

#[test]
fn bad_dispatch_and_instance_values_are_named() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("deploy");
    let d = dir.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["server", "--write-kamailio", d, "--dispatch", "x"],
            "expected N=ADDR:PORT",
        ),
        (
            vec![
                "server",
                "--write-kamailio",
                d,
                "--dispatch",
                "0=127.0.0.1:1",
            ],
            "not 1 to 899",
        ),
        (
            vec!["server", "--write-kamailio", d, "--dispatch", "1=nowhere"],
            "is not an ADDR:PORT",
        ),
        (
            vec!["server", "--dispatch", "1=127.0.0.1:25071"],
            "--dispatch goes with --write-kamailio",
        ),
        (
            vec!["server", "--listen", "127.0.0.1:0", "--instance", "0"],
            "server.instance",
        ),
    ] {
        let out = isc(home.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!dir.exists(), "nothing written on bad input");
}
