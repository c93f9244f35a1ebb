//! The client. [`UserAgent`] is the sans-IO aggregate (registration with
//! GRUU, the reg-event watch of sibling devices, pager MESSAGEs,
//! isComposing, OPTIONS); [`runner`] drives it over tokio sockets and
//! [`headless`] puts a line protocol on stdin/stdout around the runner.

pub mod chat;
pub mod chat_headless;
pub mod chats;
pub mod composing;
pub mod content_viewing;
pub mod cv_headless;
pub mod deferred;
pub mod deferred_headless;
pub mod group;
pub mod headless;
pub mod history;
pub mod history_headless;
pub mod ids;
pub mod instance;
pub mod large_message;
pub mod outgoing;
pub mod reg_watch;
pub mod registration;
pub mod runner;
pub mod user_agent;

use std::net::SocketAddr;
use std::time::Duration;

pub use composing::ComposingConfig;
pub use ids::UaIds;
pub use user_agent::UserAgent;

use crate::proto::sip::transaction::Transport;

/// The `User-Agent` value: `isc/<crate version>`.
pub const USER_AGENT: &str = concat!("isc/", env!("CARGO_PKG_VERSION"));

/// The Contact parameter carrying the device name: the RFC 3840 §10.20
/// `sip.description` feature tag with the name quoted, `+sip.description="tv"`.
/// The registrar keeps it as the binding's device name and the reg-event
/// NOTIFY carries it back (as `<unknown-param name="+sip.description">` and
/// `<display-name>`), so siblings can show which device does what.
pub const DEVICE_PARAM: &str = "+sip.description";

/// What one user agent is: whose, which device, where it talks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaConfig {
    /// User part of the AOR (`alice`).
    pub user: String,
    /// Domain of the AOR and the registrar's Request-URI (`isc.local`).
    pub domain: String,
    /// Digest password.
    pub password: String,
    /// Device name (`tv`, `phone`), sent as [`DEVICE_PARAM`].
    pub device: String,
    /// `urn:uuid:...`, stable per profile (RFC 5627 §4.1 / RFC 5626 §4.1).
    pub instance_id: String,
    /// Display name for From, if any.
    pub display_name: Option<String>,
    /// The server (registrar and outbound proxy): every request goes there.
    pub server: SocketAddr,
    /// Our own address, as put in Via and Contact.
    pub local: SocketAddr,
    pub transport: Transport,
    /// TLS towards the server: whom to trust and which name its
    /// certificate must carry (RFC 3261 §26.3.1). With it chats are offered
    /// over `msrps:` (RFC 4975 §14.1) and connect to the server over TLS,
    /// and SIP goes over TLS when `transport` says so.
    pub tls: Option<crate::net::tls::ClientTls>,
    /// Registration lifetime asked for (seconds).
    pub register_expires: u32,
    /// Reg-event subscription lifetime asked for (seconds).
    pub subscribe_expires: u32,
    /// Subscribe to our own AOR's registration state (RFC 3680).
    pub watch_registrations: bool,
    pub composing: ComposingConfig,
    /// First retry delay after a failed REGISTER/SUBSCRIBE; doubles per failure.
    pub retry_base: Duration,
    /// Upper bound of the retry delay.
    pub retry_max: Duration,
    /// How long shutdown waits for the un-REGISTER before giving up.
    pub shutdown_grace: Duration,
    /// Where a viewing's sound goes: `Null` for bots and tests, `Device`
    /// for a person (falls back to null without a sound card), or a WAV file
    /// (`--audio-out`).
    pub audio: crate::media::audio_out::AudioOut,
    /// The service's limit on ad-hoc groups, when known: a larger group is
    /// refused before any INVITE (seed 004 7.1.1.3).
    pub max_adhoc_group_size: Option<u32>,
    /// Users on the local blocklist, flagged in group rosters.
    pub blocklist: Vec<String>,
    /// What this device takes in Large Message mode (seed 003 9.2.2).
    pub large: large_message::LargeSettings,
    /// Where received attachments are saved (None: the platform's
    /// downloads dir, [`large_message::default_downloads_dir`]).
    pub downloads_dir: Option<std::path::PathBuf>,
    /// Subscribe to `message-summary` (RFC 3842) once registered: the
    /// count of deferred messages waiting for retrieval (seed 003 12.4.2.6).
    pub watch_deferred: bool,
}

impl UaConfig {
    /// A configuration with the defaults: 3600 s registration and
    /// subscription, RFC 3994 composing timers, retries from 1 s to 60 s.
    pub fn new(
        user: &str,
        domain: &str,
        password: &str,
        device: &str,
        instance_id: &str,
        server: SocketAddr,
        local: SocketAddr,
    ) -> Self {
        UaConfig {
            user: user.to_owned(),
            domain: domain.to_owned(),
            password: password.to_owned(),
            device: device.to_owned(),
            instance_id: instance_id.to_owned(),
            display_name: None,
            server,
            local,
            transport: Transport::Udp,
            tls: None,
            register_expires: 3600,
            subscribe_expires: 3600,
            watch_registrations: true,
            composing: ComposingConfig::default(),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(4),
            audio: crate::media::audio_out::AudioOut::Null,
            max_adhoc_group_size: None,
            blocklist: Vec::new(),
            large: large_message::LargeSettings::default(),
            downloads_dir: None,
            watch_deferred: false,
        }
    }

    /// `sip:user@domain`.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }
}

/// What the application asks of the user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Register now (the UA also registers on its own when started).
    Register,
    /// Send a pager MESSAGE (`text/plain`) to a user URI or a GRUU. `id`
    /// names it in the delivery events; `None` lets the UA number it (`m1`, ...).
    SendMessage {
        to: String,
        text: String,
        id: Option<String>,
    },
    /// The user typed in the message to `to` (RFC 3994 isComposing).
    Typing { to: String },
    /// The user stopped composing to `to` (cleared the input): `idle` now.
    StopTyping { to: String },
    /// Un-SUBSCRIBE, un-REGISTER (Expires: 0), then [`ClientEvent::Stopped`].
    Shutdown,
    /// A 1-1 chat command ([`chats::ChatCommand`]).
    Chat(chats::ChatCommand),
    /// A content-viewing command ([`content_viewing::ViewingCommand`]).
    Viewing(content_viewing::ViewingCommand),
    /// Retrieve conversation history from the server ([`history`], seed 003 13.1.3).
    History(history::HistoryQuery),
    /// Deferred messages: retrieval, message-summary ([`deferred::DeferredCommand`]).
    Deferred(deferred::DeferredCommand),
}

/// One registered device of our AOR, from the reg-event state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `urn:uuid:...` without quotes or angle brackets.
    pub instance: Option<String>,
    /// Public GRUU (RFC 5628 `<gr:pub-gruu>`).
    pub gruu: Option<String>,
    /// Device name (`+sip.description` or `<display-name>`).
    pub name: Option<String>,
    /// The contact URI.
    pub contact: String,
    /// The reginfo contact event of its last change (`registered`, `refreshed`, ...).
    pub state: String,
    /// This is the device the UA runs as.
    pub is_self: bool,
}

/// What the user agent tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Registered (first time, after a failure, or with a new GRUU).
    Registered {
        aor: String,
        gruu: Option<String>,
        expires: u32,
    },
    /// A REGISTER failed; the UA retries in `retry_in` (None: gives up, e.g. 403).
    RegistrationFailed {
        status: Option<u16>,
        reason: String,
        retry_in: Option<Duration>,
    },
    /// The un-REGISTER completed.
    Unregistered,
    /// The sibling devices (ourselves included) changed.
    DevicesChanged { devices: Vec<Device> },
    /// A MESSAGE arrived (any content type but isComposing).
    MessageReceived {
        from: String,
        to: String,
        content_type: Option<String>,
        body: Vec<u8>,
        asserted_identity: Option<String>,
        call_id: Option<String>,
    },
    /// Our MESSAGE `id` got a 2xx.
    MessageDelivered { id: String, to: String, status: u16 },
    /// Our MESSAGE `id` failed: final status (None on timeout / transport
    /// error), reason phrase and Warning text.
    MessageFailed {
        id: String,
        to: String,
        status: Option<u16>,
        reason: String,
        warning: Option<String>,
    },
    /// A peer started (`active`) or stopped composing towards us.
    ComposingChanged { from: String, active: bool },
    /// A peer refused isComposing (415): it gets no more.
    ComposingUnsupported { to: String },
    /// An INVITE we take no part in (an audio/video call: `media` lists the
    /// offered m= lines) was declined with 488 and a Warning.
    CallDeclined { from: String, media: Vec<String> },
    /// The reg-event subscription ended and will not be retried.
    WatchEnded { reason: String },
    /// Shutdown finished: nothing more will be sent.
    Stopped,
    /// Something happened in a 1-1 chat ([`chat::ChatEvent`]).
    Chat(chat::ChatEvent),
    /// Something happened in content viewing ([`content_viewing::ViewingEvent`]).
    Viewing(content_viewing::ViewingEvent),
    /// A history retrieval progressed ([`history::HistoryEvent`]).
    History(history::HistoryEvent),
    /// Deferred messages: pushed, retrieved, waiting ([`deferred::DeferredEvent`]).
    Deferred(deferred::DeferredEvent),
}
