//! `isc` / `isc client` / `isc --profile NAME`: find the server (or start
//! the bundled one in-process), start this profile's client, run the TUI.
//!
//! With no `--server` and no `[client].server`, the server is
//! `[server].listen`: [`probe`] asks it (SIP OPTIONS over UDP, then a TCP
//! connect); when nothing answers on a loopback address the bundled server
//! starts there, in this process, and the title says "embedded server". A
//! second `isc --profile alice-phone` then finds it and joins as another
//! device. With no profile at all, the TUI is `alice-tv` (the demo cast).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::{TcpStream, UdpSocket};

use crate::client::UaConfig;
use crate::client::headless::{ClientArgs, HeadlessError, HeadlessOptions, TransportArg};
use crate::client::runner::spawn_client;
use crate::config::{Config, is_loopback};
use crate::demo::{DeviceName, Scenario};
use crate::flow::Flow;
use crate::media::picture::{self, Detect, PictureSupport};
use crate::server::runner::{Server, ServerHandle, ServerOptions};

use super::app::{App, AppConfig};
use super::client_link::ClientLink;
use super::demo_link::DemoLink;

/// How long [`probe`] waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// The profile used when neither the flags nor the config name one.
pub const FALLBACK_PROFILE: &str = "alice-tv";

/// Why the TUI could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Profile(#[from] HeadlessError),
    #[error("nothing answers at {0} and it is not a loopback address to start the server on")]
    NoServer(SocketAddr),
    #[error("embedded server on {addr}: {source}")]
    Embedded { addr: SocketAddr, source: io::Error },
    #[error("client: {0}")]
    Client(io::Error),
    #[error("demo: {0}")]
    Demo(String),
    #[error("terminal: {0}")]
    Terminal(io::Error),
}

/// Does a SIP server answer at `addr`? An OPTIONS over UDP (any response
/// will do), else a TCP connect, each within `timeout`.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> bool {
    if probe_udp(addr, timeout).await.unwrap_or(false) {
        return true;
    }
    matches!(
        tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

async fn probe_udp(addr: SocketAddr, timeout: Duration) -> io::Result<bool> {
    let local: SocketAddr = if addr.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        "[::1]:0".parse().map_err(io::Error::other)?
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(addr).await?;
    let me = sock.local_addr()?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    // RFC 3261 §11: OPTIONS asks a server about itself.
    let request = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK{tag}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{me}>;tag={tag}\r\n\
         To: <sip:{addr}>\r\n\
         Call-ID: probe-{tag}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send(request.as_bytes()).await?;
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(timeout, sock.recv(&mut buf)).await {
        Ok(Ok(n)) => Ok(buf.get(..n).is_some_and(|b| b.starts_with(b"SIP/2.0"))),
        _ => Ok(false),
    }
}

/// The server the client will use, and the bundled one if we started it.
pub struct ServerChoice {
    pub addr: SocketAddr,
    /// Some when the bundled server runs in this process.
    pub embedded: Option<ServerHandle>,
    /// The client reaches it over TLS (`--transport tls`).
    pub tls: bool,
}

impl ServerChoice {
    /// The title bar's words: `embedded server 127.0.0.1:5060` / `server ...`.
    pub fn label(&self) -> String {
        let over = if self.tls { " over TLS" } else { "" };
        match self.embedded {
            Some(_) => format!("embedded server {}{over}", self.addr),
            None => format!("server {}{over}", self.addr),
        }
    }
}

/// `--server` / `[client].server` are used as given; otherwise
/// `[server].listen` is probed and, when silent and on loopback, the bundled
/// server starts there.
pub async fn choose_server(
    args: &ClientArgs,
    config: &Config,
) -> Result<ServerChoice, LaunchError> {
    if args.server.is_some() || config.client.server.is_some() {
        let addr = HeadlessOptions::resolve(args, config)?.ua.server;
        return Ok(ServerChoice {
            addr,
            embedded: None,
            tls: args.transport == TransportArg::Tls,
        });
    }
    let addr = config.server.listen;
    // `--transport tls` reaches the local server on its TLS port.
    let tls = args.transport == TransportArg::Tls;
    let client_addr = |plain: SocketAddr| match tls {
        true => SocketAddr::new(plain.ip(), config.server.tls.sip_port),
        false => plain,
    };
    if probe(addr, PROBE_TIMEOUT).await {
        return Ok(ServerChoice {
            addr: client_addr(addr),
            embedded: None,
            tls: args.transport == TransportArg::Tls,
        });
    }
    if !is_loopback(addr.ip()) {
        return Err(LaunchError::NoServer(addr));
    }
    match Server::start(ServerOptions::new(config.server.clone())).await {
        Ok(server) => {
            tracing::info!("embedded server on {}", server.local_addr());
            Ok(ServerChoice {
                addr: match tls {
                    true => server.tls_local_addr().unwrap_or(client_addr(addr)),
                    false => server.local_addr(),
                },
                embedded: Some(server),
                tls: args.transport == TransportArg::Tls,
            })
        }
        // Another `isc` started it meanwhile.
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(ServerChoice {
            addr: client_addr(addr),
            embedded: None,
            tls: args.transport == TransportArg::Tls,
        }),
        Err(source) => Err(LaunchError::Embedded { addr, source }),
    }
}

/// The flags with a profile filled in: `--profile`, else the config's
/// default, else [`FALLBACK_PROFILE`] (when no `--user` either).
pub fn with_profile(args: &ClientArgs, config: &Config) -> ClientArgs {
    let mut args = args.clone();
    if args.profile.is_none() && args.user.is_none() && config.client.profile(None).is_none() {
        args.profile = Some(FALLBACK_PROFILE.to_owned());
    }
    args
}

/// What the TUI shows about who runs it, from the resolved user agent.
pub fn app_config(ua: &UaConfig, args: &ClientArgs, config: &Config, server: &str) -> AppConfig {
    let profile = args.profile.as_deref();
    let mut c = AppConfig::from_config(config, profile)
        .filter(|c| c.user == ua.user && c.device == ua.device)
        .unwrap_or_else(|| {
            let mut c = AppConfig::new(&ua.user, &ua.domain, &ua.device);
            c.keys = config.client.keys.clone();
            c.users = config
                .server
                .effective_users()
                .into_iter()
                .map(|u| u.name)
                .filter(|n| *n != ua.user)
                .collect();
            c.groups = config
                .server
                .groups
                .iter()
                .map(|g| g.name.clone())
                .collect();
            if let Some(p) = profile {
                c.profile = p.to_owned();
            }
            c
        });
    c.domain = ua.domain.clone();
    c.server = server.to_owned();
    c
}

/// How the player draws pictures: `--picture`, else `[client].picture`,
/// else `auto` (the config is validated, so a bad name there means auto).
pub fn picture_choice(args: &ClientArgs, config: &Config) -> Detect {
    args.picture
        .or_else(|| config.client.picture.as_deref().and_then(Detect::parse))
        .unwrap_or_default()
}

/// The terminal's graphics, asked once before the TUI takes the terminal
/// (raw mode, event loop): never on a non-terminal, within
/// [`picture::DETECT_TIMEOUT`], off the async threads.
pub async fn detect_picture(how: Detect) -> PictureSupport {
    tokio::task::spawn_blocking(move || picture::detect(how))
        .await
        .unwrap_or_default()
}

/// `isc` without `--headless`: the whole start, the TUI, and the way out
/// (un-REGISTER, then the embedded server stops).
pub async fn run_client_tui(args: &ClientArgs) -> Result<(), LaunchError> {
    let mut config = Config::load(args.config.as_deref())?;
    // `--transport tls` on the local server: it listens for TLS too, and the
    // client trusts the certificate it keeps (unless told otherwise).
    if args.transport == TransportArg::Tls
        && args.server.is_none()
        && config.client.server.is_none()
    {
        config.server.tls.enabled = true;
    }
    let args = with_profile(args, &config);
    let server = choose_server(&args, &config).await?;
    let mut resolved = HeadlessOptions::resolve(&args, &config)?;
    resolved.ua.server = server.addr;
    resolved.ua.audio = crate::media::audio_out::AudioOut::from_option(args.audio_out.as_deref());
    // seed 003 12.4.2.6: the user is told when messages wait for retrieval
    resolved.ua.watch_deferred = true;
    let mut app = app_config(&resolved.ua, &args, &config, &server.label());
    app.picture = detect_picture(picture_choice(&args, &config)).await;
    tracing::info!(picture = app.picture.protocol.name(), "player pictures");
    let me = format!("{}/{}", resolved.ua.user, resolved.ua.device);
    let handle = spawn_client(resolved.ua, resolved.bind)
        .await
        .map_err(LaunchError::Client)?;
    let link = ClientLink::new(handle, &me, server.addr);
    let result = super::run(app, link).await.map_err(LaunchError::Terminal);
    if let Some(s) = server.embedded {
        s.shutdown().await;
    }
    result
}

/// `isc demo [SCENARIO]`: the scenario plays on an in-process server while
/// the TUI shows its first device (`alice/tv`); the flow view (shown at
/// once, except for `free-play`) fills with every message through the server.
pub async fn run_demo_tui(scenario: &'static Scenario) -> Result<(), LaunchError> {
    let (mut live, person) = crate::demo::live::start(scenario, None)
        .await
        .map_err(|e| LaunchError::Demo(e.to_string()))?;
    let who = DeviceName::parse(&person.name);
    let config = Config::default();
    let mut app_config = AppConfig::new(&who.user, &config.server.domain, &who.device);
    app_config.profile = format!("demo {}", scenario.name);
    app_config.picture = detect_picture(Detect::Query).await;
    app_config.server = format!("embedded server {}", live.server_addr());
    app_config.users = config
        .server
        .effective_users()
        .into_iter()
        .map(|u| u.name)
        .filter(|n| *n != who.user)
        .collect();
    let link = DemoLink::new(&mut live, person);
    let mut app = App::new(app_config, Instant::now(), SystemTime::now());
    app.flow.flow = Flow::with_entities(crate::demo::columns(scenario));
    app.show_flow = scenario.name != "free-play";
    app.notify(format!("demo {}: {}", scenario.name, scenario.summary));
    let result = super::run_app(app, link)
        .await
        .map(|_| ())
        .map_err(LaunchError::Terminal);
    live.stop().await;
    result
}

/// Sends this process's stderr to `path` (ALSA and friends write there)
/// until the guard drops. Unix only; elsewhere a no-op.
pub struct StderrRedirect {
    #[cfg(unix)]
    saved: Option<std::os::fd::OwnedFd>,
}

impl StderrRedirect {
    pub fn to_file(path: &std::path::Path) -> StderrRedirect {
        #[cfg(unix)]
        {
            use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
            let saved = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
                .and_then(|file| {
                    // SAFETY: dup/dup2 on descriptors we own or on fd 2.
                    unsafe {
                        let old = libc::dup(2);
                        if old < 0 {
                            return None;
                        }
                        if libc::dup2(file.as_raw_fd(), 2) < 0 {
                            libc::close(old);
                            return None;
                        }
                        Some(OwnedFd::from_raw_fd(old))
                    }
                });
            StderrRedirect { saved }
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            StderrRedirect {}
        }
    }
}

impl Drop for StderrRedirect {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(old) = self.saved.take() {
            use std::os::fd::AsRawFd;
            // SAFETY: puts the saved descriptor back on fd 2.
            unsafe {
                libc::dup2(old.as_raw_fd(), 2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_finds_the_bundled_server_and_not_an_empty_port() {
        let server = Server::start(ServerOptions::loopback_demo()).await.unwrap();
        assert!(probe(server.local_addr(), PROBE_TIMEOUT).await);
        assert!(probe_udp(server.local_addr(), PROBE_TIMEOUT).await.unwrap());
        server.shutdown().await;
        // A port nobody holds: a freshly bound then dropped socket's.
        let free = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!probe(free, Duration::from_millis(200)).await);
    }

    #[test]
    fn with_no_profile_the_tui_is_alice_tv() {
        let config = Config::default();
        let args = with_profile(&ClientArgs::default(), &config);
        assert_eq!(args.profile.as_deref(), Some(FALLBACK_PROFILE));
        let opts = HeadlessOptions::resolve(
            &ClientArgs {
                instance: Some("urn:uuid:x".into()),
                ..args.clone()
            },
            &config,
        )
        .unwrap();
        assert_eq!(
            (opts.ua.user.as_str(), opts.ua.device.as_str()),
            ("alice", "tv")
        );
        let app = app_config(&opts.ua, &args, &config, "embedded server 127.0.0.1:5060");
        assert_eq!(app.profile, "alice-tv");
        assert!(app.users.contains(&"bob".to_owned()));
        assert_eq!(app.server, "embedded server 127.0.0.1:5060");
    }

    #[test]
    fn picture_mode_from_flag_then_config_then_auto() {
        use crate::media::picture::PictureProtocol;
        let mut config = Config::default();
        let args = ClientArgs::default();
        assert_eq!(picture_choice(&args, &config), Detect::Query);
        config.client.picture = Some("sixel".into());
        assert!(config.client.validate().is_ok());
        assert_eq!(
            picture_choice(&args, &config),
            Detect::Force(PictureProtocol::Sixel)
        );
        let flag = ClientArgs {
            picture: Some(Detect::Force(PictureProtocol::HalfBlocks)),
            ..ClientArgs::default()
        };
        assert_eq!(
            picture_choice(&flag, &config),
            Detect::Force(PictureProtocol::HalfBlocks)
        );
        config.client.picture = Some("vt340".into());
        let err = config.client.validate().unwrap_err().to_string();
        assert!(err.contains("client.picture"), "{err}");
    }

    #[test]
    fn the_picture_flag_parses() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ClientArgs,
        }
        let cli = Cli::try_parse_from(["isc", "--picture", "kitty"]).unwrap();
        assert_eq!(
            cli.args.picture,
            Some(Detect::Force(crate::media::picture::PictureProtocol::Kitty))
        );
        assert!(Cli::try_parse_from(["isc", "--picture", "ascii"]).is_err());
        let auto = Cli::try_parse_from(["isc", "--picture", "auto"]).unwrap();
        assert_eq!(auto.args.picture, Some(Detect::Query));
    }

    #[test]
    fn the_title_says_when_the_server_is_reached_over_tls() {
        let mut choice = ServerChoice {
            addr: "127.0.0.1:5061".parse().unwrap(),
            embedded: None,
            tls: true,
        };
        assert_eq!(choice.label(), "server 127.0.0.1:5061 over TLS");
        choice.tls = false;
        assert_eq!(choice.label(), "server 127.0.0.1:5061");
    }
}
