//! Loading `config.example.toml`, errors that name the key and line, the
//! defaults, the demo cast and its loopback-only rule.

use isc::config::{
    Config, ConfigError, DeviceRole, JoiningPolicy, MediaType, ServerConfig, UserConfig,
};
use std::path::{Path, PathBuf};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_path(text, Path::new("test.toml"))
}

/// The error's (line, key), and its Display starts with `test.toml:<line>:`.
fn parse_error(text: &str) -> (usize, Option<String>, String) {
    let err = parse(text).expect_err("should not load");
    let shown = err.to_string();
    match err {
        ConfigError::Parse {
            line, key, path, ..
        } => {
            assert_eq!(path, PathBuf::from("test.toml"));
            assert!(shown.starts_with(&format!("test.toml:{line}:")), "{shown}");
            (line, key, shown)
        }
        other => panic!("not a parse error: {other:?}"),
    }
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml")
}

#[test]
fn example_file_loads_and_validates() {
    let c = Config::load(Some(&example_path())).unwrap();
    c.validate().unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(c.server.domain, "isc.local");
    assert_eq!(
        c.server.required_user_agent_version.as_deref(),
        Some("0.1.0")
    );
    assert_eq!(
        c.server.sdp_policy.allowed_media,
        [MediaType::Message, MediaType::Audio, MediaType::Video]
    );
    assert_eq!(c.server.users.len(), 3);
    assert_eq!(c.server.users[0].chat_blacklist, ["sip:ted@isc.local"]);
    assert!(c.server.users[1].cv_single_device);
    // keys left out take their defaults
    assert!(c.server.users[2].offline_delivery);
    assert!(c.server.users[2].isc_authorised);
    let g = &c.server.groups[0];
    assert_eq!(g.joining_policy, JoiningPolicy::MembersOnly);
    assert_eq!(
        g.member_uris(&c.server.domain),
        [
            "sip:alice@isc.local",
            "sip:bob@isc.local",
            "sip:ted@isc.local"
        ]
    );
    let tv = c.client.profile(None).unwrap();
    assert_eq!(tv.name, "alice-tv");
    assert_eq!(tv.role, DeviceRole::Content);
    assert!(tv.auto_accept.content && !tv.auto_accept.chat);
    assert_eq!(
        c.client.profile(Some("alice-phone")).unwrap().role,
        DeviceRole::Chat
    );
    assert_eq!(
        c.client.keys.get("quit").map(String::as_str),
        Some("ctrl-q")
    );
}

#[test]
fn unknown_key_names_key_and_line() {
    let (line, key, shown) = parse_error("[server]\nlisten = \"127.0.0.1:5060\"\nbogus = 1\n");
    assert_eq!(line, 3);
    assert_eq!(key.as_deref(), Some("server.bogus"));
    assert!(shown.contains("bogus"), "{shown}");
}

#[test]
fn unknown_key_in_second_array_entry() {
    let text = "[[server.users]]\nname = \"a\"\npassword = \"a\"\n\n\
                [[server.users]]\nname = \"b\"\npassword = \"b\"\ncolour = \"red\"\n";
    let (line, key, _) = parse_error(text);
    assert_eq!(line, 8);
    assert_eq!(key.as_deref(), Some("server.users.colour"));
}

#[test]
fn unknown_table_and_top_level_key() {
    let (line, key, _) = parse_error("[client]\n\n[clients]\nserver = \"x\"\n");
    assert_eq!(line, 3);
    assert_eq!(key.as_deref(), Some("clients"));
    let (line, key, _) = parse_error("verbose = true\n");
    assert_eq!((line, key.as_deref()), (1, Some("verbose")));
}

#[test]
fn bad_values_name_key_and_line() {
    let (line, key, shown) =
        parse_error("[server]\ndomain = \"isc.local\"\nlisten = \"nowhere\"\n");
    assert_eq!((line, key.as_deref()), (3, Some("server.listen")));
    assert!(shown.contains("server.listen"), "{shown}");

    let (line, key, _) =
        parse_error("[[server.groups]]\nname = \"g\"\njoining_policy = \"closed\"\n");
    assert_eq!(
        (line, key.as_deref()),
        (3, Some("server.groups.joining_policy"))
    );

    let (line, key, _) = parse_error("[server]\nnonce_lifetime_secs = -5\n");
    assert_eq!(
        (line, key.as_deref()),
        (2, Some("server.nonce_lifetime_secs"))
    );

    let (line, key, _) = parse_error(
        "[[client.profiles]]\nname = \"p\"\nuser = \"u\"\npassword = \"p\"\nrole = \"viewer\"\n",
    );
    assert_eq!((line, key.as_deref()), (5, Some("client.profiles.role")));

    let (line, key, _) =
        parse_error("[server.sdp_policy]\nallowed_media = [\n  \"audio\",\n  \"fax\",\n]\n");
    assert_eq!(
        (line, key.as_deref()),
        (4, Some("server.sdp_policy.allowed_media"))
    );
}

#[test]
fn missing_required_key() {
    let (_, key, shown) = parse_error("[[server.users]]\nname = \"x\"\n");
    assert!(
        key.as_deref()
            .is_some_and(|k| k.starts_with("server.users")),
        "{key:?}"
    );
    assert!(shown.contains("password"), "{shown}");
}

#[test]
fn syntax_error_has_a_line() {
    let (line, _, _) = parse_error("[server]\nlisten = \n");
    assert_eq!(line, 2);
}

#[test]
fn defaults() {
    let c = parse("").unwrap();
    assert_eq!(c, Config::default());
    let s = &c.server;
    assert_eq!(s.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(s.domain, "isc.local");
    assert_eq!(s.content_dir, PathBuf::from("assets/content"));
    assert_eq!(s.conference_factory_uri(), "sip:conf-factory@isc.local");
    assert_eq!(s.deferred_uri(), "sip:Deferred@isc.local");
    assert_eq!(s.history_uri(), "sip:history@isc.local");
    assert!(s.data_dir().is_absolute() || s.data_dir() == Path::new("isc-data"));
    assert!(c.client.server.is_none(), "no server = embedded");
    assert!(c.client.profiles.is_empty());
    c.validate().unwrap();
    // port 0 is allowed
    let c = parse("[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    assert_eq!(c.server.listen.port(), 0);
}

#[test]
fn demo_cast_when_no_users() {
    let s = ServerConfig::default();
    let users = s.effective_users();
    let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol", "ted"]);
    for u in &users {
        assert_eq!(u.password, u.name);
        assert_eq!(s.aor(&u.name), format!("sip:{}@isc.local", u.name));
    }
    let mut s = s;
    s.users = vec![UserConfig::new("zed", "secret")];
    assert_eq!(s.effective_users(), s.users);
}

#[test]
fn demo_cast_refused_off_loopback() {
    for listen in [
        "0.0.0.0:5060",
        "[::]:5060",
        "192.168.1.10:5060",
        "[2001:db8::1]:0",
    ] {
        let c = parse(&format!("[server]\nlisten = \"{listen}\"\n")).unwrap();
        assert!(
            matches!(
                c.server.validate(),
                Err(ConfigError::DemoCastOnPublicAddress { .. })
            ),
            "{listen}"
        );
    }
    for listen in ["127.0.0.1:5060", "127.9.9.9:0", "[::1]:5060"] {
        let c = parse(&format!("[server]\nlisten = \"{listen}\"\n")).unwrap();
        c.server.validate().unwrap();
    }
    let c = parse(
        "[server]\nlisten = \"0.0.0.0:5060\"\n[[server.users]]\nname = \"a\"\npassword = \"pw\"\n",
    )
    .unwrap();
    c.server.validate().unwrap();
}

#[test]
fn semantic_checks() {
    let dup = "[[server.users]]\nname = \"a\"\npassword = \"1\"\n[[server.users]]\nname = \"a\"\npassword = \"2\"\n";
    assert!(matches!(
        parse(dup).unwrap().server.validate(),
        Err(ConfigError::Duplicate { .. })
    ));
    let bad_uri = "[server]\nhistory = \"history@isc.local\"\n";
    assert!(matches!(
        parse(bad_uri).unwrap().server.validate(),
        Err(ConfigError::Invalid { .. })
    ));
    let no_profile = "[client]\ndefault_profile = \"ghost\"\n";
    assert!(parse(no_profile).unwrap().client.validate().is_err());
}

#[test]
fn missing_file_names_it() {
    let err = Config::load(Some(Path::new("/nonexistent/isc.toml"))).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/isc.toml"), "{err}");
}
