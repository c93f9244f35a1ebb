//! The device's `+sip.instance` (RFC 5626 §4.1): a UUID URN kept per
//! profile in a state file, so one device keeps its GRUU across restarts
//! while two profiles of one user stay two devices.

use std::io;
use std::path::{Path, PathBuf};

/// Name of the file holding the instance URN in a profile's state dir.
pub const INSTANCE_FILE: &str = "instance-id";

/// The state directory of profile `profile`: `<state dir>/isc/profiles/<profile>`
/// (`$XDG_STATE_HOME` on Linux, the local data dir elsewhere).
pub fn profile_state_dir(profile: &str) -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "isc")?;
    let base = dirs
        .state_dir()
        .unwrap_or_else(|| dirs.data_local_dir())
        .to_path_buf();
    Some(base.join("profiles").join(sanitize(profile)))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The instance URN stored in `dir`, created (`urn:uuid:<v4>`) on first use.
pub fn load_or_create_instance(dir: &Path) -> io::Result<String> {
    let path = dir.join(INSTANCE_FILE);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if s.starts_with("urn:") {
            return Ok(s.to_owned());
        }
    }
    std::fs::create_dir_all(dir)?;
    let urn = new_instance_id();
    std::fs::write(&path, format!("{urn}\n"))?;
    Ok(urn)
}

/// A fresh `urn:uuid:...`.
pub fn new_instance_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_across_loads() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create_instance(&d.path().join("p")).unwrap();
        assert!(a.starts_with("urn:uuid:"));
        assert_eq!(load_or_create_instance(&d.path().join("p")).unwrap(), a);
        assert_ne!(load_or_create_instance(&d.path().join("q")).unwrap(), a);
        assert_eq!(sanitize("a/b c"), "a_b_c");
    }
}
