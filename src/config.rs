//! Configuration: one TOML schema for client and server, documented key by
//! key in `config.example.toml` (which a test loads).
//!
//! [`Config::load`] reads `--config PATH`, else `config.toml` in the platform
//! config directory (`directories`, `ProjectDirs::from("", "", "isc")`), else
//! uses the built-in loopback defaults. Loading checks syntax, types and
//! unknown keys (errors read `path:line:column: key: message`); the checks
//! that depend on the role — [`ServerConfig::validate`] (which refuses the
//! demo users on a non-loopback address) and [`ClientConfig::validate`] — are
//! for the server and client to call before they start.

mod span;

use crate::proto::sip::digest::Algorithm;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The application name for `directories`.
pub const APP_NAME: &str = "isc";
/// The config file's name inside the platform config directory.
pub const CONFIG_FILE_NAME: &str = "config.toml";
/// The demo users used when the server has none configured (password = name).
pub const DEMO_CAST: &[&str] = &["alice", "bob", "carol", "ted"];

/// What went wrong loading or checking the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Syntax, a bad value or an unknown key; `key` is the dotted key path.
    #[error("{}:{line}:{column}: {}{message}", path.display(), key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        key: Option<String>,
        message: String,
    },
    #[error(
        "server.listen = {listen} is not a loopback address, and with no [[server.users]] the \
         server would use the demo users (password = name): configure users or listen on 127.0.0.1"
    )]
    DemoCastOnPublicAddress { listen: SocketAddr },
    #[error("{key}: {name:?} appears twice")]
    Duplicate { key: &'static str, name: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub client: ClientConfig,
}

impl Config {
    /// Loads `path` if given, else the platform config file if it exists,
    /// else the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => match Self::default_path() {
                Some(p) if p.is_file() => p,
                _ => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_str_with_path(&text, &path)
    }

    /// Parses `text`; `path` only names the file in errors.
    pub fn from_str_with_path(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column, key) = match e.span() {
                Some(span) => span::locate(text, span.start),
                None => (1, 1, None),
            };
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                key,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// `<platform config dir>/isc/config.toml`, if the platform has one.
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", APP_NAME)
            .map(|d| d.config_dir().join(CONFIG_FILE_NAME))
    }

    /// Both role checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.client.validate()
    }
}

/// Media the server lets through in SDP (else 488).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    /// MSRP (`m=message`).
    Message,
    Audio,
    Video,
}

/// `[server.sdp_policy]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SdpPolicy {
    pub allowed_media: Vec<MediaType>,
    /// RTP encodings (rtpmap names, case-insensitive) the server accepts.
    pub allowed_codecs: Vec<String>,
}

impl MediaType {
    /// The SDP `m=` media name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }
}

impl SdpPolicy {
    /// Is this `m=` media type (`message`, `audio`, ...) allowed?
    pub fn allows_media(&self, media: &str) -> bool {
        self.allowed_media.iter().any(|m| m.as_str() == media)
    }

    /// Is this RTP encoding name allowed (case-insensitive)?
    pub fn allows_codec(&self, encoding: &str) -> bool {
        self.allowed_codecs
            .iter()
            .any(|c| c.eq_ignore_ascii_case(encoding))
    }
}

impl Default for SdpPolicy {
    fn default() -> Self {
        Self {
            allowed_media: vec![MediaType::Message, MediaType::Audio, MediaType::Video],
            allowed_codecs: vec!["PCMU".into(), "JPEG".into()],
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// SIP listen address (UDP and TCP); port 0 = any free port.
    pub listen: SocketAddr,
    pub domain: String,
    /// Where the deferred-message and history stores live; `None` = the
    /// platform data directory ([`ServerConfig::data_dir`]).
    pub data_dir: Option<PathBuf>,
    pub content_dir: PathBuf,
    pub max_adhoc_group_size: u32,
    /// If set, a User-Agent older than this gets 403 + Warning 132.
    pub required_user_agent_version: Option<String>,
    pub sdp_policy: SdpPolicy,
    /// `None` = `sip:conf-factory@<domain>`.
    pub conference_factory: Option<String>,
    /// `None` = `sip:Deferred@<domain>`.
    pub deferred: Option<String>,
    /// `None` = `sip:history@<domain>`.
    pub history: Option<String>,
    pub nonce_lifetime_secs: u64,
    pub registration_max_expires: u32,
    pub limits: LimitsConfig,
    /// Digest algorithms the server challenges with, one challenge each in
    /// this order (RFC 8760); empty = SHA-256 then MD5. `["MD5"]` for peers
    /// that compute MD5 only (SIPp 3.6.1, baresip 1.0).
    pub digest_algorithms: Vec<String>,
    pub users: Vec<UserConfig>,
    pub groups: Vec<GroupConfig>,
    /// `[server.store]`: where deferred messages and history live.
    pub store: StoreConfig,
    /// `[server.tls]`: SIP over TLS and MSRP over TLS, off by default.
    pub tls: TlsConfig,
    /// This instance's number among several sharing one store behind a
    /// dispatcher (1..=899): the session identities it mints are
    /// `conf-i<N>.<id>`, so the SIP router sends their requests back here.
    pub instance: Option<u16>,
    /// Standalone (own registrar and proxy) or application server behind a
    /// SIP/IP core such as Kamailio.
    pub mode: ServerMode,
    /// `mode = "as"`: the SIP/IP core's address; requests to devices go there.
    pub core: Option<SocketAddr>,
    /// `mode = "as"`: the addresses whose P-Asserted-Identity (and
    /// third-party REGISTERs) are trusted; empty = `core` only.
    pub trusted_core: Vec<SocketAddr>,
}

/// How `isc server` is deployed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerMode {
    /// Its own registrar (digest), proxy and the service functions.
    #[default]
    Standalone,
    /// Application server behind a SIP/IP core: no registrar of its own; it
    /// learns devices from the core's third-party REGISTERs, takes the
    /// originator from the core's P-Asserted-Identity and reaches each
    /// device through the core at its GRUU.
    As,
}

/// `[server.limits]`: bounds on what one peer can make the server hold or do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest SIP header section on TCP, in bytes.
    pub max_sip_header_bytes: usize,
    /// Largest SIP Content-Length accepted on TCP (larger: connection closed
    /// before the body is read).
    pub max_sip_body_bytes: usize,
    /// Seconds a TCP peer may take to complete a SIP message it started
    /// (slowloris bound); then the connection is closed.
    pub sip_partial_message_timeout_secs: u64,
    /// Seconds an MSRP peer may leave a chunk unfinished; then the
    /// connection is closed.
    pub msrp_partial_chunk_timeout_secs: u64,
    /// SIP messages per second from one source IP (sustained); above it they
    /// are dropped and the source logged.
    pub source_messages_per_sec: u32,
    /// Burst allowance for `source_messages_per_sec`.
    pub source_burst: u32,
    /// Out-of-dialog SUBSCRIBEs per second from one source IP; above it 503
    /// with Retry-After.
    pub subscribes_per_sec: u32,
    /// Burst allowance for `subscribes_per_sec`.
    pub subscribe_burst: u32,
    /// Apply the per-source rates to loopback sources too. Off by default:
    /// on loopback sit trusted peers (a local proxy such as Kamailio sends
    /// every user's traffic from one address) and the test harnesses.
    pub limit_loopback_sources: bool,
    /// The Retry-After of a rate-limit or overload 503, in seconds.
    pub retry_after_secs: u32,
    /// Messages waiting for the server's one worker beyond which new
    /// requests are answered 503 + Retry-After without being processed
    /// (the queue itself holds at most `work_queue_capacity`).
    pub overload_queue_high: usize,
    /// Messages the transports may queue for the worker; when it is full
    /// they wait (TCP) or the kernel drops datagrams (UDP).
    pub work_queue_capacity: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_sip_header_bytes: 16 * 1024,
            max_sip_body_bytes: 1024 * 1024,
            sip_partial_message_timeout_secs: 32,
            msrp_partial_chunk_timeout_secs: 30,
            source_messages_per_sec: 500,
            source_burst: 1000,
            subscribes_per_sec: 20,
            subscribe_burst: 40,
            limit_loopback_sources: false,
            retry_after_secs: 5,
            overload_queue_high: 256,
            work_queue_capacity: 1024,
        }
    }
}

/// `[server.tls]`: SIP over TLS (RFC 3261 §26.2, `transport=tls`) and MSRP
/// over TLS (RFC 4975 §14.1, `msrps:`) beside the plain listeners, for use
/// across a network (loopback needs neither).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// SIP over TLS port on the `listen` address (5061, RFC 3261 §19.1.2);
    /// 0 = any free port.
    pub sip_port: u16,
    /// PEM certificate chain (leaf first) and its PEM private key. Without
    /// them the server makes a self-signed certificate once, keeps it in
    /// `<data_dir>/tls/` and logs where it is, for clients' `--tls-ca`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            sip_port: 5061,
            cert: None,
            key: None,
        }
    }
}

impl TlsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(invalid(
                "server.tls",
                "give both cert and key, or neither (a self-signed certificate is made)",
            ));
        }
        Ok(())
    }
}

/// `[server.store]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user@host:port/database`: deferred messages and history
    /// in PostgreSQL, shared by every instance given the same URL
    /// (scale-out). `None` = SQLite under `data_dir` (one machine).
    pub url: Option<String>,
}

impl StoreConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.url else { return Ok(()) };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "server.store.url",
                "expected postgres://user@host:port/database",
            ));
        }
        #[cfg(feature = "postgres")]
        {
            crate::server::pg_store::parse_url(url)
                .map(|_| ())
                .map_err(|e| invalid("server.store.url", &e.to_string()))
        }
        #[cfg(not(feature = "postgres"))]
        {
            Err(invalid(
                "server.store.url",
                "this build has no PostgreSQL support (cargo feature `postgres`)",
            ))
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            domain: "isc.local".into(),
            data_dir: None,
            content_dir: PathBuf::from("assets/content"),
            max_adhoc_group_size: 16,
            required_user_agent_version: None,
            sdp_policy: SdpPolicy::default(),
            conference_factory: None,
            deferred: None,
            history: None,
            nonce_lifetime_secs: 300,
            registration_max_expires: 3600,
            limits: LimitsConfig::default(),
            digest_algorithms: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            store: StoreConfig::default(),
            tls: TlsConfig::default(),
            instance: None,
            mode: ServerMode::Standalone,
            core: None,
            trusted_core: Vec::new(),
        }
    }
}

/// Is this address loopback (IPv4 127/8, `::1`, or 127/8 mapped into IPv6)?
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl ServerConfig {
    /// The data directory: configured, else the platform's, else `./isc-data`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            directories::ProjectDirs::from("", "", APP_NAME)
                .map(|d| d.data_dir().to_path_buf())
                .unwrap_or_else(|| PathBuf::from("isc-data"))
        })
    }

    /// The conference factory URI.
    pub fn conference_factory_uri(&self) -> String {
        self.conference_factory
            .clone()
            .unwrap_or_else(|| format!("sip:conf-factory@{}", self.domain))
    }

    /// The deferred-messages service URI.
    pub fn deferred_uri(&self) -> String {
        self.deferred
            .clone()
            .unwrap_or_else(|| format!("sip:Deferred@{}", self.domain))
    }

    /// The history service URI.
    pub fn history_uri(&self) -> String {
        self.history
            .clone()
            .unwrap_or_else(|| format!("sip:history@{}", self.domain))
    }

    /// The addresses trusted to assert identities in AS mode: `trusted_core`,
    /// else `core`.
    pub fn trusted_core(&self) -> Vec<SocketAddr> {
        if self.trusted_core.is_empty() {
            self.core.into_iter().collect()
        } else {
            self.trusted_core.clone()
        }
    }

    /// `sip:<name>@<domain>`.
    pub fn aor(&self, name: &str) -> String {
        format!("sip:{name}@{}", self.domain)
    }

    /// The configured users, or the demo cast (alice, bob, carol, ted,
    /// password = name) when none are configured.
    pub fn effective_users(&self) -> Vec<UserConfig> {
        if !self.users.is_empty() {
            return self.users.clone();
        }
        DEMO_CAST
            .iter()
            .map(|name| UserConfig {
                display_name: Some(capitalise(name)),
                ..UserConfig::new(name, name)
            })
            .collect()
    }

    /// True when no users are configured, so the demo cast is in use.
    pub fn uses_demo_cast(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks what types cannot: the demo cast only on loopback, unique
    /// user and group names, service URIs that are SIP URIs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.uses_demo_cast() && !is_loopback(self.listen.ip()) {
            return Err(ConfigError::DemoCastOnPublicAddress {
                listen: self.listen,
            });
        }
        if self.domain.is_empty() || self.domain.contains(['@', ':', ' ', '/']) {
            return Err(invalid("server.domain", "not a domain name"));
        }
        for a in &self.digest_algorithms {
            if matches!(Algorithm::from_token(a), Algorithm::Other(_)) {
                return Err(invalid(
                    "server.digest_algorithms",
                    "MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256 or SHA-512-256-sess",
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for u in &self.users {
            check_user_part("server.users.name", &u.name)?;
            if !names.insert(u.name.as_str()) {
                return Err(ConfigError::Duplicate {
                    key: "server.users.name",
                    name: u.name.clone(),
                });
            }
            for uri in &u.chat_blacklist {
                check_sip_uri("server.users.chat_blacklist", uri)?;
            }
        }
        for g in &self.groups {
            check_user_part("server.groups.name", &g.name)?;
            if !names.insert(g.name.as_str()) {
                return Err(ConfigError::Duplicate {
                    key: "server.groups.name",
                    name: g.name.clone(),
                });
            }
        }
        for (key, uri) in [
            ("server.conference_factory", &self.conference_factory),
            ("server.deferred", &self.deferred),
            ("server.history", &self.history),
        ] {
            if let Some(uri) = uri {
                check_sip_uri(key, uri)?;
            }
        }
        if self.max_adhoc_group_size < 2 {
            return Err(invalid("server.max_adhoc_group_size", "must be at least 2"));
        }
        self.store.validate()?;
        self.tls.validate()?;
        if self.instance.is_some_and(|n| !(1..=899).contains(&n)) {
            return Err(invalid("server.instance", "must be 1 to 899"));
        }
        if self.mode == ServerMode::As && self.core.is_none() {
            return Err(invalid(
                "server.core",
                "mode = \"as\" needs the SIP/IP core's address (e.g. \"127.0.0.1:5060\")",
            ));
        }
        if self.mode == ServerMode::As && self.core == Some(self.listen) {
            return Err(invalid(
                "server.core",
                "the SIP/IP core and this server cannot share one address (set server.listen)",
            ));
        }
        Ok(())
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

fn check_user_part(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            &format!("{name:?} is not a SIP user name (letters, digits, - _ . and a few marks)"),
        ))
    }
}

fn check_sip_uri(key: &str, uri: &str) -> Result<(), ConfigError> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains(char::is_whitespace) => Ok(()),
        _ => Err(invalid(key, &format!("{uri:?} is not a sip: URI"))),
    }
}

/// `[[server.users]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user part: the AOR is `sip:<name>@<domain>`.
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Seed 000: content viewing on one device only (CANCEL the others).
    #[serde(default)]
    pub cv_single_device: bool,
    /// Communication (chat) on one device only.
    #[serde(default)]
    pub cm_single_device: bool,
    /// Deferred messages: `true` = pushed on registration, `false` = left
    /// for the user to retrieve (seed 003 12.x).
    #[serde(default = "yes")]
    pub offline_delivery: bool,
    /// Seed 001: sessions to this user get 480.
    #[serde(default)]
    pub do_not_disturb: bool,
    /// Seed 001: whether anonymous originators may reach this user (else 403
    /// Warning 119).
    #[serde(default = "yes")]
    pub anonymity_allowed: bool,
    /// Originators whose chat sessions get 403 Warning 122.
    #[serde(default)]
    pub chat_blacklist: Vec<String>,
    /// May use the ISC service (else 403 Warning 127).
    #[serde(default = "yes")]
    pub isc_authorised: bool,
}

fn yes() -> bool {
    true
}

impl UserConfig {
    /// A user with default preferences.
    pub fn new(name: &str, password: &str) -> Self {
        Self {
            name: name.into(),
            password: password.into(),
            display_name: None,
            cv_single_device: false,
            cm_single_device: false,
            offline_delivery: true,
            do_not_disturb: false,
            anonymity_allowed: true,
            chat_blacklist: Vec::new(),
            isc_authorised: true,
        }
    }
}

/// Who may join a pre-defined group (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoiningPolicy {
    #[default]
    MembersOnly,
    Open,
}

/// `[[server.groups]]`: a pre-defined group `sip:<name>@<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// User names or SIP URIs.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default = "default_max_participants")]
    pub max_participants: u32,
    #[serde(default)]
    pub joining_policy: JoiningPolicy,
    /// A public conference anyone may find and join.
    #[serde(default)]
    pub public: bool,
}

fn default_max_participants() -> u32 {
    16
}

impl GroupConfig {
    /// Members as SIP URIs (bare names get `@domain`).
    pub fn member_uris(&self, domain: &str) -> Vec<String> {
        self.members
            .iter()
            .map(|m| {
                if m.starts_with("sip:") || m.starts_with("sips:") {
                    m.clone()
                } else {
                    format!("sip:{m}@{domain}")
                }
            })
            .collect()
    }
}

/// `[client]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// The profile used when `--profile` is not given.
    pub default_profile: Option<String>,
    /// The SIP server (`host:port`); `None` = start the embedded server.
    pub server: Option<String>,
    pub profiles: Vec<ProfileConfig>,
    /// Key-map overrides: action name → key (e.g. `quit = "ctrl-q"`),
    /// interpreted by the TUI.
    pub keys: BTreeMap<String, String>,
    /// How the TUI's player draws pictures: `auto` (ask the terminal, the
    /// default), `halfblocks`, `sixel`, `kitty` or `iterm2`.
    pub picture: Option<String>,
    /// PEM certificate(s) a client trusts for SIP/MSRP over TLS
    /// (`--transport tls`): the server's self-signed certificate or its CA.
    pub tls_ca: Option<PathBuf>,
}

impl ClientConfig {
    /// The named profile, or the default one, or the first.
    pub fn profile(&self, name: Option<&str>) -> Option<&ProfileConfig> {
        match name.or(self.default_profile.as_deref()) {
            Some(n) => self.profiles.iter().find(|p| p.name == n),
            None => self.profiles.first(),
        }
    }

    /// Unique profile names; `default_profile` names one of them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for p in &self.profiles {
            if !names.insert(p.name.as_str()) {
                return Err(ConfigError::Duplicate {
                    key: "client.profiles.name",
                    name: p.name.clone(),
                });
            }
        }
        if let Some(d) = &self.default_profile
            && !names.contains(d.as_str())
        {
            return Err(invalid(
                "client.default_profile",
                &format!("no [[client.profiles]] named {d:?}"),
            ));
        }
        if self.server.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("client.server", "empty address"));
        }
        if let Some(p) = &self.picture
            && crate::media::picture::Detect::parse(p).is_none()
        {
            return Err(invalid(
                "client.picture",
                &format!("{p:?}: auto, halfblocks, sixel, kitty or iterm2"),
            ));
        }
        Ok(())
    }
}

/// What a device does (seed 000: content viewing device vs communication
/// device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceRole {
    /// Plays content (CV).
    Content,
    /// Chats (CM).
    Chat,
    #[default]
    Both,
}

/// `[client.profiles.auto_accept]`: invitations answered without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoAccept {
    pub content: bool,
    pub chat: bool,
    pub file_transfer: bool,
    pub conference: bool,
}

/// `[[client.profiles]]`: one device of one user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub name: String,
    /// User name (`alice`) or AOR (`sip:alice@isc.local`).
    pub user: String,
    pub password: String,
    /// Device name shown to others.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub role: DeviceRole,
    #[serde(default)]
    pub auto_accept: AutoAccept,
    #[serde(default)]
    pub downloads_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_str_with_path(text, Path::new("t.toml"))
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn sdp_policy() {
        let p = SdpPolicy::default();
        assert!(p.allows_media("message") && p.allows_media("video"));
        assert!(!p.allows_media("application"));
        assert!(p.allows_codec("pcmu") && !p.allows_codec("H261"));
    }

    #[test]
    fn loopback() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["0.0.0.0", "10.0.0.1", "::", "::2"] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn service_uris_follow_domain() {
        let c = parse("[server]\ndomain = \"ex.org\"\nhistory = \"sip:h@x\"\n").unwrap();
        assert_eq!(c.server.conference_factory_uri(), "sip:conf-factory@ex.org");
        assert_eq!(c.server.deferred_uri(), "sip:Deferred@ex.org");
        assert_eq!(c.server.history_uri(), "sip:h@x");
    }

    #[test]
    fn store_url_selects_postgres_and_is_checked() {
        assert_eq!(
            parse("").unwrap().server.store.url,
            None,
            "SQLite by default"
        );
        let c = parse("[server.store]\nurl = \"postgres://isc@127.0.0.1:5432/isc\"\n").unwrap();
        assert_eq!(
            c.server.store.url.as_deref(),
            Some("postgres://isc@127.0.0.1:5432/isc")
        );
        #[cfg(feature = "postgres")]
        c.validate().unwrap();
        for bad in ["mysql://x@y/z", "postgres://isc@127.0.0.1:port/isc"] {
            let c = parse(&format!("[server.store]\nurl = \"{bad}\"\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with("server.store.url:"), "{bad}: {e}");
        }
        assert!(
            parse("[server.store]\nuri = \"x\"\n").is_err(),
            "unknown key"
        );
        let c = parse("[server]\ninstance = 2\n").unwrap();
        assert_eq!(c.server.instance, Some(2));
        let e = parse("[server]\ninstance = 0\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("server.instance:"), "{e}");
    }

    #[test]
    fn as_mode_needs_the_core_and_trusts_it_by_default() {
        let c = parse(
            "[server]\nlisten = \"127.0.0.1:5070\"\nmode = \"as\"\ncore = \"127.0.0.1:5060\"\n",
        )
        .unwrap();
        assert_eq!(c.server.mode, ServerMode::As);
        assert_eq!(
            c.server.trusted_core(),
            vec!["127.0.0.1:5060".parse::<SocketAddr>().unwrap()]
        );
        let e = parse("[server]\nmode = \"as\"\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.core"), "{e}");
        let e = parse("[server]\nmode = \"as\"\ncore = \"127.0.0.1:5060\"\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot share one address"), "{e}");
        let e = parse("[server]\nmode = \"proxy\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode"), "{e}");
    }
}
