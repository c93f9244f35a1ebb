//! TLS for SIP (RFC 3261 §26.2, `transport=tls`, port 5061) and MSRP
//! (RFC 4975 §14.1, `msrps:`) through rustls with the ring provider. Loopback
//! use needs none of it; it is for servers and clients across a network.
//!
//! The server takes a PEM certificate chain and key (`[server.tls]`), or
//! makes itself a self-signed certificate in its data directory and says
//! where, so that clients can be told to trust it (`--tls-ca`, `[client]
//! tls_ca`). Clients verify the server against the trust anchors they are
//! given (WebPKI rules: the name must be in the certificate's SANs).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// What can go wrong setting TLS up (never on the wire: per-connection
/// handshake failures are logged and the connection dropped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key in it")]
    NoKey { path: PathBuf },
    #[error("{path}: {why}")]
    BadPem { path: PathBuf, why: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0:?} is not a DNS name or IP address for TLS")]
    BadServerName(String),
}

/// A certificate chain and its private key: what a TLS server presents.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The leaf certificate in PEM, to hand to clients as their trust anchor
    /// when the certificate is self-signed.
    pub cert_pem: String,
}

impl Identity {
    /// Reads a PEM chain (leaf first) and a PEM key (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = read(cert)?;
        let chain = certs_from_pem(cert, cert_pem.as_bytes())?;
        let key_pem = read(key)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
                path: key.to_owned(),
            },
            other => TlsError::BadPem {
                path: key.to_owned(),
                why: other.to_string(),
            },
        })?;
        Ok(Identity {
            chain,
            key,
            cert_pem,
        })
    }

    /// A fresh self-signed certificate for `names` (DNS names and IP
    /// addresses; the first is the subject's common name).
    pub fn self_signed(names: &[String]) -> Result<Self, TlsError> {
        Self::generate(names).map(|(id, _)| id)
    }

    /// A self-signed identity and its key in PEM (rcgen's own encoding).
    fn generate(names: &[String]) -> Result<(Self, String), TlsError> {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names.to_vec())?;
        let id = Identity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(signing_key.serialize_der())
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.into())))?,
            cert_pem: cert.pem(),
        };
        Ok((id, signing_key.serialize_pem()))
    }

    /// The certificate and key in `dir` (`cert.pem`, `key.pem`), made
    /// self-signed for `names` the first time and kept for the next runs, so
    /// that clients told to trust it once go on trusting it.
    pub fn self_signed_in(dir: &Path, names: &[String]) -> Result<(Self, PathBuf), TlsError> {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        if cert.exists() && key.exists() {
            return Ok((Self::load(&cert, &key)?, cert));
        }
        let (id, key_pem) = Self::generate(names)?;
        let write = |path: &Path, text: &str| {
            std::fs::create_dir_all(dir)
                .and_then(|()| write_private(path, text))
                .map_err(|source| TlsError::Read {
                    path: path.to_owned(),
                    source,
                })
        };
        write(&cert, &id.cert_pem)?;
        write(&key, &key_pem)?;
        Ok((id, cert))
    }

    /// The rustls server side for this identity.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// What a client needs to reach its server over TLS (SIP over TLS and
/// `msrps:`): the certificates it trusts (`--tls-ca`) and the name the
/// server's certificate must carry (the host of `--server`, or
/// `--tls-name`; `None` = the IP address connected to). Plain data, so that
/// it can sit in the client's configuration. A client only ever connects:
/// it accepts no TLS itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub anchors: Vec<CertificateDer<'static>>,
    pub server_name: Option<String>,
}

impl ClientTls {
    /// Trusting the certificates of the PEM file `ca`, checking the IP
    /// address connected to.
    pub fn from_ca_file(ca: &Path) -> Result<Self, TlsError> {
        Ok(ClientTls {
            anchors: load_anchors(ca)?,
            server_name: None,
        })
    }

    /// Checking `name` instead (a DNS name or an IP address).
    pub fn with_name(mut self, name: &str) -> Self {
        self.server_name = Some(name.to_owned());
        self
    }

    /// The rustls connector and the name to check, if one was given.
    pub fn connector(&self) -> Result<(TlsConnector, Option<ServerName<'static>>), TlsError> {
        let name = match &self.server_name {
            Some(n) => Some(server_name(n)?),
            None => None,
        };
        Ok((connector(&self.anchors)?, name))
    }
}

/// The client side, trusting exactly the certificates in `anchors` (a
/// self-signed server certificate, or a private CA).
pub fn connector(anchors: &[CertificateDer<'static>]) -> Result<TlsConnector, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for a in anchors {
        roots.add(a.clone())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The certificates of a PEM file (`--tls-ca`).
pub fn load_anchors(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_from_pem(path, read(path)?.as_bytes())
}

/// The name a client checks the server's certificate against: an IP
/// address as such, anything else as a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::BadServerName(host.to_owned()))
}

/// The names a server's self-signed certificate carries: its domain, the
/// host it listens on, and the loopback names.
pub fn default_names(domain: &str, listen: std::net::IpAddr) -> Vec<String> {
    let mut names = vec![domain.to_owned()];
    let listen = (!listen.is_unspecified()).then(|| listen.to_string());
    for n in listen
        .into_iter()
        .chain(["localhost", "127.0.0.1", "::1"].map(String::from))
    {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs_from_pem(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Writes `text` readable by its owner only (a private key).
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    io::Write::write_all(&mut opts.open(path)?, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn names_hold_domain_listen_and_loopback_once() {
        let n = default_names("isc.local", "127.0.0.1".parse().unwrap());
        assert_eq!(n, ["isc.local", "127.0.0.1", "localhost", "::1"]);
        let n = default_names("isc.local", "0.0.0.0".parse().unwrap());
        assert_eq!(n, ["isc.local", "localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("isc.local"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = Identity::load(&empty, &empty).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = load_anchors(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[tokio::test]
    async fn self_signed_is_kept_and_verifies_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let names = default_names("isc.local", "127.0.0.1".parse().unwrap());
        let (id, cert) = Identity::self_signed_in(dir.path(), &names).unwrap();
        let (again, _) = Identity::self_signed_in(dir.path(), &names).unwrap();
        assert_eq!(id.chain, again.chain, "made once, then reused");
        let acceptor = id.acceptor().unwrap();
        let anchors = load_anchors(&cert).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.unwrap();
            buf
        });
        // Trusted and named as in the certificate: the handshake succeeds.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector(&anchors)
            .unwrap()
            .connect(server_name("isc.local").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(b"hello").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"hello");
        // A name the certificate does not carry is refused.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = id.acceptor().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let err = connector(&anchors)
            .unwrap()
            .connect(server_name("other.example").unwrap(), tcp)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
    }
}
