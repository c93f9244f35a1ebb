//! `Config::load(None)`: the platform config dir's `config.toml`, else the
//! defaults. Alone in its test binary because it sets environment variables.

use isc::config::Config;

#[test]
fn load_without_path_uses_platform_dir_then_defaults() {
    let home = tempfile::tempdir().unwrap();
    let xdg = home.path().join("xdg-config");
    // SAFETY: the only test in this binary, so no other thread reads the
    // environment meanwhile.
    unsafe {
        std::env::set_var("HOME", home.path());
        std::env::set_var("XDG_CONFIG_HOME", &xdg);
    }
    let Some(path) = Config::default_path() else {
        return; // no platform config dir here: nothing to test
    };
    assert_eq!(Config::load(None).unwrap(), Config::default());
    if cfg!(target_os = "linux") {
        assert_eq!(path, xdg.join("isc").join("config.toml"));
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "[server]\ndomain = \"from.platform.dir\"\n").unwrap();
    assert_eq!(
        Config::load(None).unwrap().server.domain,
        "from.platform.dir"
    );
    std::fs::write(&path, "[server]\nnope = 1\n").unwrap();
    let err = Config::load(None).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:2:", path.display())), "{err}");
}
