//! The server's TLS identity, one choice for SIP over TLS and `msrps:`
//! (RFC 3261 §26.2, RFC 4975 §14.1): the `[server.tls]` certificate and key
//! when given, else a self-signed certificate kept in `<data_dir>/tls/`.

use std::path::PathBuf;

use crate::config::ServerConfig;
use crate::net::tls::{Identity, TlsError, default_names};

/// `None` when `[server.tls] enabled` is off. Otherwise the identity, and
/// for a self-signed one the path of its certificate (the file clients are
/// told to trust, `--tls-ca`); `None` for a configured `cert`/`key`.
pub fn tls_identity(
    config: &ServerConfig,
) -> Result<Option<(Identity, Option<PathBuf>)>, TlsError> {
    let tls = &config.tls;
    if !tls.enabled {
        return Ok(None);
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        return Ok(Some((Identity::load(cert, key)?, None)));
    }
    let dir = config.data_dir().join("tls");
    let names = default_names(&config.domain, config.listen.ip());
    let (id, cert) = Identity::self_signed_in(&dir, &names)?;
    tracing::info!(cert = %cert.display(), "TLS: self-signed certificate; clients trust it with --tls-ca");
    Ok(Some((id, Some(cert))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_configured_or_self_signed() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            data_dir: Some(dir.path().to_owned()),
            ..ServerConfig::default()
        };
        assert!(tls_identity(&config).unwrap().is_none(), "off by default");
        config.tls.enabled = true;
        let (id, cert) = tls_identity(&config).unwrap().unwrap();
        let cert = cert.expect("self-signed: its path is given");
        assert!(cert.starts_with(dir.path().join("tls")));
        let (again, _) = tls_identity(&config).unwrap().unwrap();
        assert_eq!(id.chain, again.chain, "kept for the next run");
        config.tls.cert = Some(cert.clone());
        config.tls.key = Some(dir.path().join("tls/key.pem"));
        let (loaded, path) = tls_identity(&config).unwrap().unwrap();
        assert_eq!(loaded.chain, id.chain);
        assert!(path.is_none(), "configured: nothing made");
    }
}
