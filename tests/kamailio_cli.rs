//! `isc server --write-kamailio DIR` (README "Behind Kamailio"): the
//! deployment for a config, checked by `kamailio -c` when Kamailio is
//! installed; clear errors for what cannot be deployed.

mod kamailio_support;

use std::process::{Command, Output};

fn isc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_isc"))
        .args(args)
        .output()
        .expect("run isc")
}

fn config(dir: &std::path::Path, password: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:5070\"\ndomain = \"home.test\"\n[[server.users]]\nname = \"dora\"\npassword = \"{password}\"\n[[server.groups]]\nname = \"book-club\"\nmembers = [\"dora\"]\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn write_kamailio_writes_a_deployment_kamailio_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "d0ra");
    let out_dir = tmp.path().join("deploy");
    let out = isc(&[
        "server",
        "--config",
        &cfg,
        "--behind",
        "127.0.0.1:5066",
        "--write-kamailio",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Kamailio at 127.0.0.1:5066, isc server at 127.0.0.1:5070"));
    let main = std::fs::read_to_string(out_dir.join("kamailio.cfg")).unwrap();
    for line in [
        "#!substdef \"!CORE_PORT!5066!g\"",
        "#!substdef \"!AS_PORT!5070!g\"",
        "#!substdef \"!ISC_DOMAIN!home.test!g\"",
    ] {
        assert!(main.contains(line), "{line}");
    }
    let users = std::fs::read_to_string(out_dir.join("isc-users.cfg")).unwrap();
    assert!(users.contains("case \"dora\": $var(password) = \"d0ra\"; break;"));
    assert!(users.contains("if ($rU == \"book-club\") return 1;"));
    assert!(
        !users.contains("\"alice\""),
        "configured users, not the demo cast"
    );
    if kamailio_support::kamailio_present() {
        let bin = kamailio_support::kamailio_binary().unwrap();
        let check = Command::new("timeout")
            .arg("30")
            .arg(bin)
            .arg("-c")
            .arg("-f")
            .arg(out_dir.join("kamailio.cfg"))
            .output()
            .unwrap();
        assert_eq!(
            check.status.code(),
            Some(0),
            "kamailio -c:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn write_kamailio_refuses_what_cannot_be_deployed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "d0ra");
    let dir = tmp.path().join("d1");
    let out = isc(&[
        "server",
        "--config",
        &cfg,
        "--behind",
        "127.0.0.1:5070",
        "--write-kamailio",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot both listen on 127.0.0.1:5070"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing written");

    let cfg = config(tmp.path(), "a\\\"b");
    let dir = tmp.path().join("d2");
    let out = isc(&[
        "server",
        "--config",
        &cfg,
        "--behind",
        "127.0.0.1:5066",
        "--write-kamailio",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be written into kamailio.cfg"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dir.exists(), "nothing written");
}
