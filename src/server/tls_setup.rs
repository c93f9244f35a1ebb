//! Where the server's TLS certificate comes from (`[server.tls]`): the
//! configured PEM files, or a self-signed certificate made once and kept in
//! `<data_dir>/tls/`. SIP over TLS and MSRP over TLS present the same one.

use std::io;
use std::path::PathBuf;

use crate::config::ServerConfig;
use crate::net::tls::{Identity, default_names};

/// The server's TLS identity, and where its certificate file is (what
/// clients are told to trust); `None` when `[server.tls]` is off.
pub fn tls_identity(config: &ServerConfig) -> io::Result<Option<(Identity, PathBuf)>> {
    if !config.tls.enabled {
        return Ok(None);
    }
    let made = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Identity::load(cert, key).map(|id| (id, cert.clone())),
        _ => Identity::self_signed_in(
            &config.data_dir().join("tls"),
            &default_names(&config.domain, config.listen.ip()),
        ),
    };
    made.map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("server.tls: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_self_signed_when_on_and_files_named_when_bad() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            data_dir: Some(dir.path().to_owned()),
            ..ServerConfig::default()
        };
        assert!(tls_identity(&config).unwrap().is_none());
        config.tls.enabled = true;
        let (_, cert) = tls_identity(&config).unwrap().unwrap();
        assert_eq!(cert, dir.path().join("tls/cert.pem"));
        // Made once and kept for the next run.
        let (first, _) = tls_identity(&config).unwrap().unwrap();
        let (again, _) = tls_identity(&config).unwrap().unwrap();
        assert_eq!(first.chain, again.chain);
        // Configured files are loaded as they are, and named as the file to trust.
        config.tls.cert = Some(cert.clone());
        config.tls.key = Some(dir.path().join("tls/key.pem"));
        let (loaded, named) = tls_identity(&config).unwrap().unwrap();
        assert_eq!((loaded.chain, named), (first.chain, cert));
        config.tls.cert = Some(dir.path().join("missing.pem"));
        config.tls.key = Some(dir.path().join("missing.key"));
        let e = tls_identity(&config).unwrap_err().to_string();
        assert!(e.contains("server.tls") && e.contains("missing.pem"), "{e}");
    }
}
