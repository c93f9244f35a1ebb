//! Tracing setup: logs go to a file under the platform state (or cache)
//! directory, never onto a terminal the TUI may own. `ISC_LOG` (an
//! `EnvFilter` directive such as `isc=debug`) chooses what is kept.

use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

/// Where log files go: `$XDG_STATE_HOME/isc` (or the cache dir on platforms
/// without a state dir), else the system temp dir.
pub fn log_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "isc")
        .map(|d| d.state_dir().unwrap_or_else(|| d.cache_dir()).to_path_buf())
        .unwrap_or_else(std::env::temp_dir)
}

/// Installs a file logger named `<name>.log`; returns its path. Logging is
/// best effort: if the directory cannot be created, nothing is logged.
pub fn init_file_logging(name: &str) -> Option<PathBuf> {
    let dir = log_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{name}.log"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    let filter = EnvFilter::try_from_env("ISC_LOG").unwrap_or_else(|_| EnvFilter::new("isc=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .ok()?;
    Some(path)
}
