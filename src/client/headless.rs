//! Headless mode: the client without the TUI, for scripts and tests.
//!
//! ```text
//! isc client --headless --profile NAME [--server ADDR] [--user U --password P --device D]
//! ```
//!
//! The profile comes from `[[client.profiles]]` of the config file; the
//! flags override it (`--user` alone is enough when no profile exists). With
//! no such profile, `--profile alice-tv` means user `alice` of `[[server.users]]`
//! (else of the loopback demo cast, password = name) on device `tv`. The
//! server is `--server`, else `[client].server`, else `[server].listen`.
//! The device's `+sip.instance` is kept in `<state dir>/isc/profiles/<NAME>/instance-id`
//! (`--instance` overrides it, `--state-dir` moves it).
//!
//! **Commands**, one per line on stdin, as JSON or as text
//! (`URI` may be `bob`, `bob@host` or a full `sip:` URI / GRUU):
//!
//! | JSON | text | does |
//! |---|---|---|
//! | `{"cmd":"send","to":URI,"text":T,"id":ID}` (`id` optional) | `send URI T...` | pager MESSAGE |
//! | `{"cmd":"typing","to":URI}` | `typing URI` | isComposing `active` (then `idle` after 15 s) |
//! | `{"cmd":"idle","to":URI}` | `idle URI` | isComposing `idle` now |
//! | `{"cmd":"register"}` | `register` | REGISTER now |
//! | `{"cmd":"devices"}` | `devices` | print the last known `devices` event |
//! | `{"cmd":"quit"}` | `quit` | un-SUBSCRIBE, un-REGISTER, exit (also on EOF) |
//! | `{"cmd":"chat","to":URI,"convergence_id":ID}` (`convergence_id` optional) | `chat URI` | start a 1-1 chat (INVITE, MSRP); `chat_calling` names it |
//! | `{"cmd":"chat_send","chat":N,"text":T}` | `say N T...` | chat message (CPIM over MSRP) |
//! | `{"cmd":"chat_typing","chat":N}` | `chat_typing N` | isComposing `active` over MSRP |
//! | `{"cmd":"chat_idle","chat":N}` | `chat_idle N` | isComposing `idle` over MSRP |
//! | `{"cmd":"accept","chat":N}` | `accept N` | accept an invitation |
//! | `{"cmd":"decline","chat":N}` | `decline N` | decline it (603) |
//! | `{"cmd":"bye","chat":N}` | `bye N` | end the chat (BYE) |
//! | `{"cmd":"contents"}` | `contents` | fetch the server's content list (`content_list`) |
//! | `{"cmd":"watch","content":ID,"with":URI,"chat_on":DEV}` (`chat_on` optional: a sibling's GRUU or device name) | `watch ID URI [DEV]` | content viewing INVITE (seed 000 C.15); `viewing_calling` names it |
//! | `{"cmd":"view_accept","viewing":N}` | `view_accept N` | accept a viewing invitation (player started) |
//! | `{"cmd":"view_decline","viewing":N}` | `view_decline N` | decline it (603) |
//! | `{"cmd":"view_stop","viewing":N}` | `view_stop N` | stop watching (BYE / CANCEL) |
//! | `{"cmd":"pause","viewing":N}`, `resume` | `pause N`, `resume N` | INFO `isc-playback` |
//! | `{"cmd":"seek","viewing":N,"position_ms":MS}` | `seek N MS` | INFO `isc-playback` seek |
//! | `{"cmd":"auto_chat","on":B}` | `auto_chat on\|off` | start the chat on a `cm.recommendation` by itself (default on) |
//! | `{"cmd":"group_create","invitees":[URI,...]}` | | ad-hoc group chat (factory INVITE with the list) |
//! | `{"cmd":"group_join","uri":URI}` | | join a pre-defined group or a session identity |
//! | `{"cmd":"group_extend","chat":N,"add":[URI,...]}` | | turn 1-1 chat N into a conference (Replaces) |
//! | `{"cmd":"group_add","chat":N,"users":[URI,...]}` | | invite users into group chat N (REFER) |
//! | `{"cmd":"group_rejoin","chat":N}` | | join again the conference group chat N had |
//! | `{"cmd":"group_private","chat":N,"to":URI,"text":T}` | | private message to one participant |
//! | `{"cmd":"history","with":URI,"refs":[REF,...]}` (`refs` optional: Message-IDs or AORs; none = the whole conversation with `with`) | `history URI [REF...]` | retrieve stored history (INVITE `history@domain`, seed 003 13.1.3) |
//! | `{"cmd":"send_file","to":URI or [URI,...],"path":P,"disposition":D,"description":T}` (`disposition` `attachment` (default) or `render`, `description` optional) | `send_file URI PATH` | a file as a Large Message (seed 003 9.1.1.2): INVITE sendonly with `a=file-size`, chunked MSRP, BYE when acknowledged; several recipients go through the conference factory |
//! | `{"cmd":"send_large","to":URI or [URI,...],"text":T}` | | a long text as a Large Message, rendered by the receiver |
//! | `{"cmd":"deferred","ids":[ID,...],"service":URI}` (both optional) | `deferred [ID...]` | retrieve deferred messages (INVITE `Deferred@domain` recvonly; no ids = all; ids are Message-IDs, `deferred:N` or pager Call-IDs) |
//! | `{"cmd":"deferred_watch"}` | `deferred_watch` | subscribe to `message-summary` (RFC 3842): `deferred_waiting` events |
//!
//! **Events**, one JSON object per line on stdout:
//!
//! | event | fields |
//! |---|---|
//! | `started` | `aor`, `device`, `instance`, `local` (our `ip:port`), `server` |
//! | `registered` | `aor`, `gruu` (or null), `expires` |
//! | `registration_failed` | `status` (or null on timeout), `reason`, `retry_in` (seconds, null = given up) |
//! | `unregistered` | |
//! | `devices` | `devices`: `[{instance, gruu, name, contact, state, self}]` |
//! | `message` | `from`, `to`, `content_type`, `text`, `asserted_identity`, `call_id` |
//! | `delivered` | `id`, `to`, `status` |
//! | `failed` | `id`, `to`, `status` (or null on timeout), `reason`, `warning` |
//! | `composing` | `from`, `active` (bool) |
//! | `composing_unsupported` | `to` (it answered 415; no more isComposing to it) |
//! | `call_declined` | `from`, `media` (offered m= lines), `status` (488: audio/video calls are declined with a Warning) |
//! | `watch_ended` | `reason` (the reg-event subscription ended for good) |
//! | `error` | `reason`, `line` (a command that could not be read) |
//! | `chat_calling` | `chat` (the number for chat commands), `to` |
//! | `chat_invited` | `chat`, `from`, `convergence_id` (or null) |
//! | `chat_ringing` | `chat` |
//! | `chat_started` | `chat`, `peer` |
//! | `chat_message` | `chat`, `from`, `text`, `at` (CPIM DateTime or null), `message_id` |
//! | `chat_composing` | `chat`, `from`, `active` (bool) |
//! | `chat_sent` | `chat`, `message_id` |
//! | `chat_delivered` | `chat`, `message_id` |
//! | `chat_send_failed` | `chat`, `message_id`, `code` |
//! | `chat_ended` | `chat`, `reason`: `normal`, `completed_elsewhere` (continued on another device), or `error` with `status`, `text`, `warning` |
//! | `content_list` | `entries`: `[{content_ref, title, duration_ms, media}]` |
//! | `content_list_failed` | `reason` |
//! | `viewing_calling` | `viewing` (the number for viewing commands), `to`, `content`, `convergence_id` |
//! | `viewing_invited` | `viewing`, `from`, `content`, `convergence_id` |
//! | `viewing_started` | `viewing`, `peer` |
//! | `viewing_taken_elsewhere` | `viewing`, `from` (picked up on another of our devices: not a missed invitation) |
//! | `viewing_ended` | `viewing`, `reason`: `remote_bye`, `local_bye`, `declined`, `cancelled` (missed), or `failed` with `status`, `text` |
//! | `chat_recommended` | `with` (users), `convergence_id`, `content_viewing_client` (seed 000 5.4.3.2) |
//! | `playback_changed` | `viewing`, `by`, `action` (`pause`/`resume`/`seek`), `position_ms` |
//! | `playback_answered` | `viewing`, `status` (to our own INFO) |
//! | `viewing_stats` | `viewing`, `audio_packets`, `video_packets`, `audio_lost`, `frames_decoded`, `frames_presented`, `audio_played_ms` (every second) |
//! | `group_started` | `chat`, `identity` (session identity), `continues` (the 1-1 chat it replaced, or null) |
//! | `group_roster` | `chat`, `identity`, `entries`: [{`user`, `display_name`, `status` (`joined`/`ringing`/`left`/...), `own`, `blocked`}] |
//! | `chat_message` with `"private": true` | a private message in a group |
//! | `group_error` | `chat` (or null), `reason` |
//! | `history_requested` | `history` (the retrieval's number), `with`, `refs` (the URI list sent) |
//! | `history` | `history`, `with`, `count`, `complete` (false: the server went silent), `messages`: [{`from`, `to`, `at` (original CPIM DateTime or null), `text`}] in stored order |
//! | `history_failed` | `history`, `with`, `status` (SIP status or null), `reason` (a sentence: 403 refused, 404 no such history, not sendonly, no response) |
//! | `large_incoming` | `chat`, `from`, `content_type`, `size` (a Large Message is being received: accepted at once, seed 003 9.2.2) |
//! | `large_progress` | `chat`, `direction` (`sent`: acknowledged by 200s; `received`), `bytes`, `total`, `percent` (at most once per percent) |
//! | `large_sent` | `chat`, `message_id`, `size` (last chunk's 200 or success REPORT; the BYE follows) |
//! | `large_saved` | `chat`, `from`, `path` (in the downloads dir, never over an existing file), `size`, `description` |
//! | `large_received` | `chat`, `from`, `content_type`, `disposition`, `filename`, `description`, `size` (an attachment the runner did not save) |
//! | `large_failed` | `chat` (or null), `reason` (a file that cannot be read or saved) |
//! | a rendered text Large Message | arrives as `chat_message` |
//! | `deferred_started` | `session`, `mode` (`push`: the server INVITEd us on registration; `retrieval`: we asked) |
//! | `deferred_message` | `session`, `from`, `to`, `text`, `content_type`, `date` (the original `Date`), `sent_unix` (seconds or null), `call_id`, `message_id` (or null), `kind` (`pager`/`session`), `late` (true: delivered late) |
//! | `deferred_duplicate` | `session`, `key` (a message already shown came again: not shown twice) |
//! | `deferred_unreadable` | `session`, `reason` (answered 415/400, left in the store) |
//! | `deferred_ended` | `session`, `mode`, `received` (new messages in it) |
//! | `deferred_failed` | `status` (or null), `reason`, `warning`, `text` (retrieval refused: 403, 404, 488, ...) |
//! | `deferred_waiting` | `count`, `account`, `text` (`N messages waiting`, RFC 3842 NOTIFY) |
//! | `deferred_waiting_unavailable` | `reason` |
//! | `stopped` | (last line) |

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::instance::{load_or_create_instance, profile_state_dir};
use super::runner::spawn_client;
use super::{ClientEvent, Command, Device, UaConfig};
use crate::config::{Config, ProfileConfig};
use crate::proto::sip::transaction::Transport;

/// `isc client` flags (main.rs includes these as the client subcommand's args).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Run without the TUI: commands on stdin, one JSON event per line on stdout.
    #[arg(long)]
    pub headless: bool,
    /// Profile from `[[client.profiles]]` (default: `[client].default_profile`, else the first).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// SIP server `host:port` (default: `[client].server`, else `[server].listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub server: Option<String>,
    /// User name (`alice`) or AOR (`sip:alice@isc.local`); overrides the profile's.
    #[arg(long)]
    pub user: Option<String>,
    /// Password; overrides the profile's.
    #[arg(long)]
    pub password: Option<String>,
    /// Device name shown to the user's other devices (e.g. `tv`, `phone`).
    #[arg(long)]
    pub device: Option<String>,
    /// SIP domain when the user is a bare name (default: `[server].domain`).
    #[arg(long)]
    pub domain: Option<String>,
    /// Transport to the server. `tls` (RFC 3261 §26.2) checks the server's
    /// certificate against `--tls-ca`; its server defaults to `[server.tls]`'s
    /// port on `[server].listen`.
    #[arg(long, value_enum, default_value_t = TransportArg::Udp)]
    pub transport: TransportArg,
    /// PEM certificate(s) to trust for TLS: the server's own (a self-signed
    /// server says where it keeps it) or its CA (default: `[client].tls_ca`,
    /// else the local server's `[server.tls]` certificate).
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of
    /// `--server`).
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
    /// Local address to bind (port 0: ephemeral).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// `+sip.instance` to use instead of the one stored for the profile.
    #[arg(long, value_name = "URN")]
    pub instance: Option<String>,
    /// Directory for the profile's state (the instance id file).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Configuration file (default: the platform config dir's isc/config.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Write the sound of content viewing to this WAV file (8 kHz mono)
    /// instead of the sound card (headless: instead of nowhere).
    #[arg(long, value_name = "FILE.wav")]
    pub audio_out: Option<PathBuf>,
    /// How the TUI's player draws pictures: auto (ask the terminal),
    /// halfblocks, sixel, kitty or iterm2 (default: `[client].picture`, else auto).
    #[arg(long, value_name = "MODE", value_parser = parse_picture)]
    pub picture: Option<crate::media::picture::Detect>,
    /// Where received Large Message attachments are saved (default: the
    /// profile's `downloads_dir`, else the platform's downloads dir).
    #[arg(long, value_name = "DIR")]
    pub downloads_dir: Option<PathBuf>,
}

fn parse_picture(s: &str) -> Result<crate::media::picture::Detect, String> {
    crate::media::picture::Detect::parse(s)
        .ok_or_else(|| format!("{s:?}: auto, halfblocks, sixel, kitty or iterm2"))
}

impl Default for ClientArgs {
    fn default() -> Self {
        ClientArgs {
            headless: false,
            profile: None,
            server: None,
            user: None,
            password: None,
            device: None,
            domain: None,
            transport: TransportArg::Udp,
            tls_ca: None,
            tls_name: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            instance: None,
            state_dir: None,
            config: None,
            audio_out: None,
            picture: None,
            downloads_dir: None,
        }
    }
}

/// `--transport`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl From<TransportArg> for Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Udp => Transport::Udp,
            TransportArg::Tcp => Transport::Tcp,
            TransportArg::Tls => Transport::Tls,
        }
    }
}

/// What goes wrong before the client runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadlessError {
    #[error("no user: give --user or a [[client.profiles]] entry")]
    NoUser,
    #[error("no profile named {0:?} in the config")]
    NoSuchProfile(String),
    #[error("cannot resolve server address {0:?}")]
    BadServer(String),
    #[error("config: {0}")]
    Config(String),
    #[error("state: {0}")]
    State(io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Everything [`run_headless`] needs, resolved.
#[derive(Debug, Clone)]
pub struct HeadlessOptions {
    /// `local` is overwritten with the bound address.
    pub ua: UaConfig,
    pub bind: SocketAddr,
}

impl HeadlessOptions {
    /// Resolves flags against the config (and the profile's state dir).
    pub fn resolve(args: &ClientArgs, config: &Config) -> Result<Self, HeadlessError> {
        let found = match &args.profile {
            Some(name) => config
                .client
                .profile(Some(name))
                .filter(|p| &p.name == name)
                .cloned(),
            None => config.client.profile(None).cloned(),
        };
        let profile = match (&args.profile, found) {
            (_, Some(p)) => Some(p),
            (Some(name), None) => Some(
                server_user_profile(name, config)
                    .ok_or_else(|| HeadlessError::NoSuchProfile(name.clone()))?,
            ),
            (None, None) => None,
        };
        let profile = profile.as_ref();
        let user = args
            .user
            .clone()
            .or_else(|| profile.map(|p| p.user.clone()))
            .ok_or(HeadlessError::NoUser)?;
        let password = args
            .password
            .clone()
            .or_else(|| profile.map(|p| p.password.clone()))
            .unwrap_or_default();
        let device = args
            .device
            .clone()
            .or_else(|| profile.and_then(|p| p.device.clone()))
            .or_else(|| profile.map(|p| p.name.clone()))
            .unwrap_or_else(|| "headless".to_owned());
        let default_domain = args
            .domain
            .clone()
            .unwrap_or_else(|| config.server.domain.clone());
        let (user, domain) = split_user(&user, &default_domain);
        let tls = args.transport == TransportArg::Tls;
        let server_text = args
            .server
            .clone()
            .or_else(|| config.client.server.clone())
            .unwrap_or_else(|| match tls {
                // The local server's TLS port (RFC 3261 §26.2: 5061 by default).
                true => SocketAddr::new(config.server.listen.ip(), config.server.tls.sip_port)
                    .to_string(),
                false => config.server.listen.to_string(),
            });
        let server = resolve_addr(&server_text)?;
        let client_tls = if tls {
            Some(client_tls(args, config, &server_text)?)
        } else {
            None
        };
        let profile_name = args
            .profile
            .clone()
            .or_else(|| profile.map(|p| p.name.clone()))
            .unwrap_or_else(|| format!("{user}-{device}"));
        let instance = match &args.instance {
            Some(i) => i.clone(),
            None => {
                let dir = match &args.state_dir {
                    Some(d) => d.join(&profile_name),
                    None => profile_state_dir(&profile_name).ok_or_else(|| {
                        HeadlessError::State(io::Error::other(
                            "no state directory on this platform",
                        ))
                    })?,
                };
                load_or_create_instance(&dir).map_err(HeadlessError::State)?
            }
        };
        let mut ua = UaConfig::new(
            &user, &domain, &password, &device, &instance, server, args.bind,
        );
        ua.transport = args.transport.into();
        ua.tls = client_tls;
        ua.downloads_dir = args
            .downloads_dir
            .clone()
            .or_else(|| profile.and_then(|p| p.downloads_dir.clone()));
        if let Some(path) = &args.audio_out {
            ua.audio = crate::media::audio_out::AudioOut::from_option(Some(path));
        }
        Ok(HeadlessOptions {
            ua,
            bind: args.bind,
        })
    }
}

/// With no `[[client.profiles]]` entry, `--profile alice` (or `alice-tv`,
/// `alice/tv`) is the server's user `alice` (from `[[server.users]]`, else
/// the loopback demo cast whose passwords are the names), device `tv`.
fn server_user_profile(name: &str, config: &Config) -> Option<ProfileConfig> {
    let (user, device) = match name.split_once(['-', '/']) {
        Some((u, d)) => (u, Some(d.to_owned())),
        None => (name, None),
    };
    let account = config
        .server
        .effective_users()
        .into_iter()
        .find(|u| u.name == user)?;
    let mut p: ProfileConfig = toml::from_str(&format!(
        "name = {name:?}\nuser = {user:?}\npassword = {pw:?}\n",
        pw = account.password
    ))
    .ok()?;
    p.device = device;
    Some(p)
}

/// `alice` → (`alice`, default domain); `sip:alice@x` / `alice@x` → (`alice`, `x`).
pub fn split_user(user: &str, default_domain: &str) -> (String, String) {
    let u = user.trim();
    let u = u.strip_prefix("sip:").unwrap_or(u);
    match u.split_once('@') {
        Some((name, domain)) => (name.to_owned(), domain.to_owned()),
        None => (u.to_owned(), default_domain.to_owned()),
    }
}

/// Whom a TLS client trusts (`--tls-ca`, `[client].tls_ca`, else the local
/// server's certificate) and for which name (`--tls-name`, else the host of
/// the server address).
fn client_tls(
    args: &ClientArgs,
    config: &Config,
    server_text: &str,
) -> Result<crate::net::tls::ClientTls, HeadlessError> {
    let ca = args
        .tls_ca
        .clone()
        .or_else(|| config.client.tls_ca.clone())
        .or_else(|| {
            let s = &config.server;
            s.tls.enabled.then(|| {
                s.tls
                    .cert
                    .clone()
                    .unwrap_or_else(|| s.data_dir().join("tls").join("cert.pem"))
            })
        })
        .ok_or_else(|| {
            HeadlessError::Tls(
                "give the server's certificate to trust with --tls-ca (or [client].tls_ca)".into(),
            )
        })?;
    let host = match server_text.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => server_text,
    };
    let name = args.tls_name.as_deref().unwrap_or(host);
    crate::net::tls::ClientTls::from_ca_file(&ca)
        .map(|t| t.with_name(name))
        .map_err(|e| HeadlessError::Tls(e.to_string()))
}

fn resolve_addr(s: &str) -> Result<SocketAddr, HeadlessError> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| HeadlessError::BadServer(s.to_owned()))
}

/// `bob` → `sip:bob@domain`, `bob@x` → `sip:bob@x`, URIs unchanged.
pub fn expand_uri(to: &str, domain: &str) -> String {
    let to = to.trim();
    if to.starts_with("sip:") || to.starts_with("sips:") || to.starts_with("tel:") {
        to.to_owned()
    } else if to.contains('@') {
        format!("sip:{to}")
    } else {
        format!("sip:{to}@{domain}")
    }
}

/// One line of stdin, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadlessCommand {
    Ua(Command),
    /// Print the last device list.
    Devices,
    Quit,
}

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum JsonCommand {
    Send {
        to: String,
        text: String,
        id: Option<String>,
    },
    Typing {
        to: String,
    },
    Idle {
        to: String,
    },
    Register,
    Devices,
    Quit,
}

/// Reads one command line (JSON or text). `Ok(None)` for a blank line.
pub fn parse_command_line(line: &str, domain: &str) -> Result<Option<HeadlessCommand>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if let Some(cv) = super::cv_headless::parse_command(line, domain) {
        return cv.map(|c| Some(HeadlessCommand::Ua(c)));
    }
    if let Some(chat) = super::chat_headless::parse_command(line, domain) {
        return chat.map(|c| Some(HeadlessCommand::Ua(c)));
    }
    if let Some(h) = super::history_headless::parse_command(line, domain) {
        return h.map(|c| Some(HeadlessCommand::Ua(c)));
    }
    if let Some(d) = super::deferred_headless::parse_command(line) {
        return d.map(|c| Some(HeadlessCommand::Ua(c)));
    }
    let cmd = if line.starts_with('{') {
        match serde_json::from_str::<JsonCommand>(line).map_err(|e| e.to_string())? {
            JsonCommand::Send { to, text, id } => Command::SendMessage {
                to: expand_uri(&to, domain),
                text,
                id,
            },
            JsonCommand::Typing { to } => Command::Typing {
                to: expand_uri(&to, domain),
            },
            JsonCommand::Idle { to } => Command::StopTyping {
                to: expand_uri(&to, domain),
            },
            JsonCommand::Register => Command::Register,
            JsonCommand::Devices => return Ok(Some(HeadlessCommand::Devices)),
            JsonCommand::Quit => return Ok(Some(HeadlessCommand::Quit)),
        }
    } else {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        match word.to_ascii_lowercase().as_str() {
            "send" | "msg" => {
                let (to, text) = rest
                    .split_once(char::is_whitespace)
                    .ok_or("usage: send URI TEXT")?;
                Command::SendMessage {
                    to: expand_uri(to, domain),
                    text: text.trim_start().to_owned(),
                    id: None,
                }
            }
            "typing" if !rest.is_empty() => Command::Typing {
                to: expand_uri(rest, domain),
            },
            "idle" if !rest.is_empty() => Command::StopTyping {
                to: expand_uri(rest, domain),
            },
            "register" => Command::Register,
            "devices" => return Ok(Some(HeadlessCommand::Devices)),
            "quit" | "exit" => return Ok(Some(HeadlessCommand::Quit)),
            _ => return Err(format!("unknown command {word:?}")),
        }
    };
    Ok(Some(HeadlessCommand::Ua(cmd)))
}

fn device_json(d: &Device) -> Value {
    json!({
        "instance": d.instance,
        "gruu": d.gruu,
        "name": d.name,
        "contact": d.contact,
        "state": d.state,
        "self": d.is_self,
    })
}

/// The stdout line for an event.
pub fn event_json(ev: &ClientEvent) -> Value {
    match ev {
        ClientEvent::Registered { aor, gruu, expires } => {
            json!({"event": "registered", "aor": aor, "gruu": gruu, "expires": expires})
        }
        ClientEvent::RegistrationFailed {
            status,
            reason,
            retry_in,
        } => json!({
            "event": "registration_failed",
            "status": status,
            "reason": reason,
            "retry_in": retry_in.map(|d| d.as_secs_f64()),
        }),
        ClientEvent::Unregistered => json!({"event": "unregistered"}),
        ClientEvent::DevicesChanged { devices } => devices_json(devices),
        ClientEvent::MessageReceived {
            from,
            to,
            content_type,
            body,
            asserted_identity,
            call_id,
        } => json!({
            "event": "message",
            "from": from,
            "to": to,
            "content_type": content_type,
            "text": String::from_utf8_lossy(body),
            "asserted_identity": asserted_identity,
            "call_id": call_id,
        }),
        ClientEvent::MessageDelivered { id, to, status } => {
            json!({"event": "delivered", "id": id, "to": to, "status": status})
        }
        ClientEvent::MessageFailed {
            id,
            to,
            status,
            reason,
            warning,
        } => json!({
            "event": "failed", "id": id, "to": to, "status": status, "reason": reason, "warning": warning,
        }),
        ClientEvent::ComposingChanged { from, active } => {
            json!({"event": "composing", "from": from, "active": active})
        }
        ClientEvent::ComposingUnsupported { to } => {
            json!({"event": "composing_unsupported", "to": to})
        }
        ClientEvent::CallDeclined { from, media } => {
            json!({"event": "call_declined", "from": from, "media": media, "status": 488})
        }
        ClientEvent::WatchEnded { reason } => json!({"event": "watch_ended", "reason": reason}),
        ClientEvent::Stopped => json!({"event": "stopped"}),
        ClientEvent::Chat(e) => super::chat_headless::event_json(e),
        ClientEvent::Viewing(e) => super::cv_headless::event_json(e),
        ClientEvent::History(e) => super::history_headless::event_json(e),
        ClientEvent::Deferred(e) => super::deferred_headless::event_json(e),
    }
}

fn devices_json(devices: &[Device]) -> Value {
    json!({"event": "devices", "devices": devices.iter().map(device_json).collect::<Vec<_>>()})
}

async fn emit<W: AsyncWrite + Unpin>(out: &mut W, v: &Value) -> io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    out.write_all(line.as_bytes()).await?;
    out.flush().await
}

/// How long `quit` waits for the un-REGISTER before exiting anyway.
const QUIT_WAIT: Duration = Duration::from_secs(10);

/// Runs the client on `stdin`/`stdout` until `quit`, EOF or a stop.
pub async fn run_headless<R, W>(opts: HeadlessOptions, stdin: R, mut stdout: W) -> io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let domain = opts.ua.domain.clone();
    let started = json!({
        "event": "started",
        "aor": opts.ua.aor(),
        "device": opts.ua.device,
        "instance": opts.ua.instance_id,
        "server": opts.ua.server.to_string(),
    });
    let mut handle = spawn_client(opts.ua, opts.bind).await?;
    let mut started = started;
    started["local"] = json!(handle.local_addr.to_string());
    emit(&mut stdout, &started).await?;
    let mut lines = stdin.lines();
    let mut stdin_open = true;
    let mut quitting: Option<tokio::time::Instant> = None;
    let mut devices: Vec<Device> = Vec::new();
    loop {
        let deadline =
            quitting.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            line = lines.next_line(), if stdin_open && quitting.is_none() => {
                let cmd = match line {
                    Ok(Some(l)) => match parse_command_line(&l, &domain) {
                        Ok(Some(c)) => c,
                        Ok(None) => continue,
                        Err(reason) => {
                            emit(&mut stdout, &json!({"event": "error", "reason": reason, "line": l})).await?;
                            continue;
                        }
                    },
                    // EOF (or unreadable stdin) quits
                    Ok(None) | Err(_) => {
                        stdin_open = false;
                        HeadlessCommand::Quit
                    }
                };
                match cmd {
                    HeadlessCommand::Ua(c) => {
                        let _ = handle.commands.send(c).await;
                    }
                    HeadlessCommand::Devices => emit(&mut stdout, &devices_json(&devices)).await?,
                    HeadlessCommand::Quit => {
                        quitting = Some(tokio::time::Instant::now() + QUIT_WAIT);
                        let _ = handle.commands.send(Command::Shutdown).await;
                    }
                }
            }
            ev = handle.events.recv() => match ev {
                Some(ev) => {
                    if let ClientEvent::DevicesChanged { devices: d } = &ev {
                        devices.clone_from(d);
                    }
                    // frames are for the TUI; headless prints the stats only
                    if !matches!(ev, ClientEvent::Viewing(super::content_viewing::ViewingEvent::Frame { .. })) {
                        emit(&mut stdout, &event_json(&ev)).await?;
                    }
                    if ev == ClientEvent::Stopped {
                        break;
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline), if quitting.is_some() => {
                emit(&mut stdout, &event_json(&ClientEvent::Stopped)).await?;
                break;
            }
        }
    }
    drop(handle);
    Ok(())
}

/// `isc client --headless`: loads the config, resolves the options and
/// runs on the process's stdin/stdout (main.rs calls this inside a runtime).
pub async fn run_headless_stdio(args: &ClientArgs) -> Result<(), HeadlessError> {
    let config =
        Config::load(args.config.as_deref()).map_err(|e| HeadlessError::Config(e.to_string()))?;
    let opts = HeadlessOptions::resolve(args, &config)?;
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    run_headless(opts, stdin, tokio::io::stdout()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_commands() {
        let d = "isc.local";
        assert_eq!(
            parse_command_line("send bob hello there", d).unwrap(),
            Some(HeadlessCommand::Ua(Command::SendMessage {
                to: "sip:bob@isc.local".into(),
                text: "hello there".into(),
                id: None
            }))
        );
        assert_eq!(
            parse_command_line(
                r#"{"cmd":"send","to":"sip:bob@isc.local;gr=urn:uuid:1","text":"hi","id":"7"}"#,
                d
            )
            .unwrap(),
            Some(HeadlessCommand::Ua(Command::SendMessage {
                to: "sip:bob@isc.local;gr=urn:uuid:1".into(),
                text: "hi".into(),
                id: Some("7".into())
            }))
        );
        assert_eq!(
            parse_command_line(r#"{"cmd":"typing","to":"bob@x"}"#, d).unwrap(),
            Some(HeadlessCommand::Ua(Command::Typing {
                to: "sip:bob@x".into()
            }))
        );
        assert_eq!(
            parse_command_line("idle bob", d).unwrap(),
            Some(HeadlessCommand::Ua(Command::StopTyping {
                to: "sip:bob@isc.local".into()
            }))
        );
        assert_eq!(
            parse_command_line(r#"{"cmd":"quit"}"#, d).unwrap(),
            Some(HeadlessCommand::Quit)
        );
        assert_eq!(
            parse_command_line("devices", d).unwrap(),
            Some(HeadlessCommand::Devices)
        );
        assert_eq!(parse_command_line("  ", d).unwrap(), None);
        assert!(parse_command_line("send bob", d).is_err());
        assert!(parse_command_line("dance", d).is_err());
        assert!(parse_command_line(r#"{"cmd":"send"}"#, d).is_err());
    }

    #[test]
    fn events_as_json() {
        let v = event_json(&ClientEvent::Registered {
            aor: "sip:a@x".into(),
            gruu: None,
            expires: 60,
        });
        assert_eq!(
            v.to_string(),
            r#"{"aor":"sip:a@x","event":"registered","expires":60,"gruu":null}"#
        );
        let v = event_json(&ClientEvent::ComposingChanged {
            from: "sip:b@x".into(),
            active: true,
        });
        assert_eq!(v["event"], "composing");
        assert_eq!(v["active"], true);
    }

    #[test]
    fn users_and_uris() {
        assert_eq!(
            split_user("sip:alice@ex.org", "isc.local"),
            ("alice".into(), "ex.org".into())
        );
        assert_eq!(
            split_user("alice", "isc.local"),
            ("alice".into(), "isc.local".into())
        );
        assert_eq!(expand_uri("sip:bob@x", "d"), "sip:bob@x");
    }

    /// Large Message attachments go to `--downloads-dir`, else the profile's.
    #[test]
    fn downloads_dir_from_the_flag_or_the_profile() {
        let text = "[[client.profiles]]\nname = \"tv\"\nuser = \"alice\"\npassword = \"alice\"\ndownloads_dir = \"/tmp/isc-dl\"\n";
        let config = Config::from_str_with_path(text, std::path::Path::new("t.toml")).unwrap();
        let args = ClientArgs {
            profile: Some("tv".into()),
            instance: Some("urn:uuid:x".into()),
            ..Default::default()
        };
        let o = HeadlessOptions::resolve(&args, &config).unwrap();
        assert_eq!(o.ua.downloads_dir, Some(PathBuf::from("/tmp/isc-dl")));
        let flag = ClientArgs {
            downloads_dir: Some("/srv/dl".into()),
            ..args
        };
        let o = HeadlessOptions::resolve(&flag, &config).unwrap();
        assert_eq!(o.ua.downloads_dir, Some(PathBuf::from("/srv/dl")));
    }

    #[test]
    fn options_from_a_profile() {
        let text = "[server]\ndomain = \"isc.local\"\nlisten = \"127.0.0.1:5999\"\n[[client.profiles]]\nname = \"tv\"\nuser = \"alice\"\npassword = \"alice\"\ndevice = \"living-room\"\n";
        let config = Config::from_str_with_path(text, std::path::Path::new("t.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let args = ClientArgs {
            profile: Some("tv".into()),
            state_dir: Some(dir.path().to_path_buf()),
            bind: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        let o = HeadlessOptions::resolve(&args, &config).unwrap();
        assert_eq!(o.ua.aor(), "sip:alice@isc.local");
        assert_eq!(o.ua.device, "living-room");
        assert_eq!(o.ua.server, "127.0.0.1:5999".parse().unwrap());
        let again = HeadlessOptions::resolve(&args, &config).unwrap();
        assert_eq!(again.ua.instance_id, o.ua.instance_id);
        let demo = ClientArgs {
            profile: Some("bob-phone".into()),
            ..args.clone()
        };
        let o = HeadlessOptions::resolve(&demo, &Config::default()).unwrap();
        assert_eq!(
            (
                o.ua.user.as_str(),
                o.ua.password.as_str(),
                o.ua.device.as_str()
            ),
            ("bob", "bob", "phone")
        );
        let missing = ClientArgs {
            profile: Some("nope".into()),
            ..args
        };
        assert!(matches!(
            HeadlessOptions::resolve(&missing, &config),
            Err(HeadlessError::NoSuchProfile(_))
        ));
    }

    /// `--transport tls`: the local server's TLS port and certificate by
    /// default, the host of `--server` as the name, a clear error without
    /// anything to trust.
    #[test]
    fn tls_defaults_and_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["127.0.0.1".to_owned()];
        let (_, cert) =
            crate::net::tls::Identity::self_signed_in(&dir.path().join("tls"), &names).unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:5999\"\ndata_dir = {:?}\n[server.tls]\nenabled = true\nsip_port = 5998\n",
            dir.path()
        );
        let config = Config::from_str_with_path(&text, std::path::Path::new("t.toml")).unwrap();
        let args = ClientArgs {
            user: Some("alice".into()),
            instance: Some("urn:uuid:x".into()),
            transport: TransportArg::Tls,
            ..Default::default()
        };
        let o = HeadlessOptions::resolve(&args, &config).unwrap();
        assert_eq!(o.ua.transport, Transport::Tls);
        assert_eq!(o.ua.server, "127.0.0.1:5998".parse().unwrap());
        let tls = o.ua.tls.unwrap();
        assert_eq!(tls.server_name.as_deref(), Some("127.0.0.1"));
        assert_eq!(tls.anchors, crate::net::tls::load_anchors(&cert).unwrap());
        let named = ClientArgs {
            server: Some("localhost:5061".into()),
            tls_ca: Some(cert.clone()),
            ..args.clone()
        };
        let o = HeadlessOptions::resolve(&named, &config).unwrap();
        assert_eq!(o.ua.tls.unwrap().server_name.as_deref(), Some("localhost"));
        let nothing = HeadlessOptions::resolve(&args, &Config::default()).unwrap_err();
        assert!(nothing.to_string().contains("--tls-ca"), "{nothing}");
    }
}
