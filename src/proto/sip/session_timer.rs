//! Session timers (RFC 4028), sans-IO, for one dialog: negotiate the
//! interval and the refresher on each session refresh transaction (INVITE,
//! re-INVITE, UPDATE), then tell the owner when to refresh (the refresher,
//! at half the interval) or when to give up with a BYE (the other side,
//! §10: at expiry minus min(32 s, interval/3)).
//!
//! Used by the client's chat sessions and, later, by the server's B2BUA legs.
//! The owner builds and sends the requests; this machine only reads and
//! writes the Session-Expires / Min-SE / Supported / Require headers.

use std::time::{Duration, Instant};

use super::headers::{
    HeadersExt, MinSe, Params, Refresher, Require, SessionExpires, Supported, TypedHeader,
    make_header,
};

/// The option tag (RFC 4028 §3).
pub const OPTION_TAG: &str = "timer";
/// The smallest Min-SE anyone may ask for (RFC 4028 §4, §5).
pub const MIN_SE_FLOOR: u32 = 90;
/// The interval we ask for by default (RFC 4028 §4 recommends 1800 s).
pub const DEFAULT_SESSION_EXPIRES: u32 = 1800;
/// The most the non-refresher subtracts before it sends BYE (§10).
pub const BYE_MARGIN_MAX: u32 = 32;

/// What a dialog asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// Session-Expires we request (and insert as UAS when the UAC did not).
    pub session_expires: u32,
    /// The smallest interval we accept (our Min-SE).
    pub min_se: u32,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        Self {
            session_expires: DEFAULT_SESSION_EXPIRES,
            min_se: MIN_SE_FLOOR,
        }
    }
}

/// What the owner must do when a timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimerAction {
    /// Send a session refresh (re-INVITE or UPDATE) with
    /// [`SessionTimer::request_headers`].
    Refresh,
    /// No refresh came in time: end the session with BYE (RFC 4028 §10).
    Bye,
}

/// What is wrong with a session refresh request or a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionTimerError {
    /// RFC 4028 §9: answer 422 with Min-SE.
    #[error("Session-Expires {requested} is below our Min-SE {min_se}")]
    TooSmall { requested: u32, min_se: u32 },
    #[error("bad header {name}: {value}")]
    BadHeader { name: &'static str, value: String },
    /// A 422 whose Min-SE does not let us ask for more (§7.3).
    #[error("422 without a usable Min-SE")]
    NoLargerMinSe,
}

impl SessionTimerError {
    /// The status code a UAS answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            SessionTimerError::TooSmall { .. } => 422,
            _ => 400,
        }
    }

    /// Headers for that response: Min-SE on 422 (RFC 4028 §6).
    pub fn response_headers(&self) -> Vec<rsip::Header> {
        match self {
            SessionTimerError::TooSmall { min_se, .. } => {
                vec![make_header("Min-SE", &min_se.to_string())]
            }
            _ => Vec::new(),
        }
    }
}

/// Does any Supported header of these headers list `timer`?
pub fn supports_timer(headers: &rsip::Headers) -> bool {
    headers
        .get_all_raw("Supported")
        .iter()
        .filter_map(|v| <Supported as TypedHeader>::parse(v).ok())
        .any(|s| s.contains(OPTION_TAG))
}

fn session_expires(headers: &rsip::Headers) -> Result<Option<SessionExpires>, SessionTimerError> {
    headers
        .typed::<SessionExpires>()
        .map_err(|_| SessionTimerError::BadHeader {
            name: "Session-Expires",
            value: headers.get_raw("Session-Expires").unwrap_or_default(),
        })
}

fn min_se(headers: &rsip::Headers) -> Result<Option<u32>, SessionTimerError> {
    headers
        .typed::<MinSe>()
        .map(|m| m.map(|m| m.delta))
        .map_err(|_| SessionTimerError::BadHeader {
            name: "Min-SE",
            value: headers.get_raw("Min-SE").unwrap_or_default(),
        })
}

/// The session timer of one dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    config: SessionTimerConfig,
    /// The largest Min-SE we know of (ours, a 422's, a request's): what we
    /// put in Min-SE (RFC 4028 §7.3, §7.4).
    min_se: u32,
    /// Session-Expires we ask for in our next refresh request.
    requested: u32,
    /// The negotiated interval; `None`: no session timer on this session.
    interval: Option<u32>,
    /// We are the refresher.
    we_refresh: bool,
    /// When the last refresh transaction succeeded.
    refreshed_at: Option<Instant>,
    /// A refresh of ours is under way (or was asked for).
    refreshing: bool,
}

impl SessionTimer {
    pub fn new(config: SessionTimerConfig) -> Self {
        let min_se = config.min_se.max(MIN_SE_FLOOR);
        Self {
            config,
            min_se,
            requested: config.session_expires.max(min_se),
            interval: None,
            we_refresh: false,
            refreshed_at: None,
            refreshing: false,
        }
    }

    pub fn config(&self) -> SessionTimerConfig {
        self.config
    }

    /// The negotiated interval, once a refresh transaction succeeded.
    pub fn interval(&self) -> Option<Duration> {
        self.interval.map(|s| Duration::from_secs(u64::from(s)))
    }

    /// Whether we are the refresher.
    pub fn we_refresh(&self) -> bool {
        self.interval.is_some() && self.we_refresh
    }

    /// Whether the timer runs (negotiated and not expired or stopped).
    pub fn is_active(&self) -> bool {
        self.interval.is_some() && self.refreshed_at.is_some()
    }

    /// The Min-SE we currently send.
    pub fn min_se(&self) -> u32 {
        self.min_se
    }

    /// Session-Expires and Min-SE for a session refresh request we send
    /// (the initial INVITE too; the caller adds `Supported: timer`). RFC 4028
    /// §7.1 / §7.4: refresher=uac on the first request and whenever we are
    /// the refresher; refresher=uas when the peer refreshes.
    pub fn request_headers(&self) -> Vec<rsip::Header> {
        let (delta, refresher) = match self.interval {
            Some(i) if !self.we_refresh => (i.max(self.min_se), Refresher::Uas),
            Some(i) => (i.max(self.min_se), Refresher::Uac),
            None => (self.requested, Refresher::Uac),
        };
        vec![
            make_header(
                "Session-Expires",
                &SessionExpires::new(delta, Some(refresher)).to_string(),
            ),
            make_header("Min-SE", &self.min_se.to_string()),
        ]
    }

    /// UAC: we sent a session refresh request (counts as the refresh under way).
    pub fn request_sent(&mut self) {
        self.refreshing = true;
    }

    /// UAC: a 2xx to our INVITE / re-INVITE / UPDATE (RFC 4028 §7.2). With
    /// Session-Expires the interval and refresher are the response's; without
    /// it the peer does not do session timers and nothing expires.
    pub fn handle_2xx(&mut self, now: Instant, response: &rsip::Response) {
        self.refreshing = false;
        match session_expires(&response.headers) {
            Ok(Some(se)) if se.delta > 0 => {
                self.interval = Some(se.delta);
                // refresher=uac (or none, §7.2: the UAC then refreshes): us
                self.we_refresh = se.refresher != Some(Refresher::Uas);
                self.refreshed_at = Some(now);
            }
            // §7.2: no Session-Expires in the 2xx, no session expiration
            _ => {
                self.interval = None;
                self.refreshed_at = None;
            }
        }
    }

    /// UAC: a non-2xx final response to our refresh request other than 422.
    /// The session goes on until it expires (the BYE deadline still holds).
    pub fn refresh_failed(&mut self) {
        // the refresher stops trying; poll_timeout now gives the BYE deadline
    }

    /// UAC: a 422 (RFC 4028 §7.3): remember its Min-SE and ask again with at
    /// least that. `Ok` means: re-send the request with [`Self::request_headers`].
    pub fn handle_422(&mut self, response: &rsip::Response) -> Result<(), SessionTimerError> {
        self.refreshing = false;
        let theirs = min_se(&response.headers)?.ok_or(SessionTimerError::NoLargerMinSe)?;
        let current = self.interval.unwrap_or(self.requested);
        if theirs <= current && theirs <= self.min_se {
            return Err(SessionTimerError::NoLargerMinSe);
        }
        self.min_se = self.min_se.max(theirs);
        self.requested = self.requested.max(self.min_se);
        if let Some(i) = self.interval.as_mut() {
            *i = (*i).max(self.min_se);
        }
        Ok(())
    }

    /// UAS: may this INVITE / re-INVITE / UPDATE be answered 2xx? RFC 4028
    /// §9: a Session-Expires below our Min-SE gets 422 from a UAS whose UAC
    /// supports timers; otherwise [`Self::answer_request`] raises it.
    pub fn check_request(&self, request: &rsip::Request) -> Result<(), SessionTimerError> {
        let se = session_expires(&request.headers)?;
        min_se(&request.headers)?;
        match se {
            Some(se)
                if se.delta < self.config.min_se.max(MIN_SE_FLOOR)
                    && supports_timer(&request.headers) =>
            {
                Err(SessionTimerError::TooSmall {
                    requested: se.delta,
                    min_se: self.config.min_se.max(MIN_SE_FLOOR),
                })
            }
            _ => Ok(()),
        }
    }

    /// UAS: we answer `request` with a 2xx at `now`: negotiate (RFC 4028 §9)
    /// and return the headers for the 2xx (Session-Expires with the refresher,
    /// Require: timer when the UAC refreshes). Call [`Self::check_request`] first.
    pub fn answer_request(&mut self, now: Instant, request: &rsip::Request) -> Vec<rsip::Header> {
        let uac_supports = supports_timer(&request.headers);
        let their_min = min_se(&request.headers).ok().flatten().unwrap_or(0);
        self.min_se = self.min_se.max(their_min);
        let floor = self.config.min_se.max(MIN_SE_FLOOR).max(their_min);
        let (interval, refresher) = match session_expires(&request.headers).ok().flatten() {
            Some(se) => {
                let refresher = match se.refresher {
                    Some(r) => r,
                    None if uac_supports => Refresher::Uac,
                    None => Refresher::Uas,
                };
                // without timer support a UAC cannot retry a 422: raise it
                (
                    se.delta.max(floor),
                    if uac_supports {
                        refresher
                    } else {
                        Refresher::Uas
                    },
                )
            }
            // §9: we may still run a timer, refreshing ourselves
            None => (self.config.session_expires.max(floor), Refresher::Uas),
        };
        self.interval = Some(interval);
        self.we_refresh = refresher == Refresher::Uas;
        self.refreshed_at = Some(now);
        self.refreshing = false;
        let mut out = vec![make_header(
            "Session-Expires",
            &SessionExpires {
                delta: interval,
                refresher: Some(refresher),
                params: Params::default(),
            }
            .to_string(),
        )];
        if refresher == Refresher::Uac {
            out.push(make_header(
                "Require",
                &Require(vec![OPTION_TAG.into()]).to_string(),
            ));
        }
        out
    }

    /// Stop the timer (the session ended).
    pub fn stop(&mut self) {
        self.interval = None;
        self.refreshed_at = None;
        self.refreshing = false;
    }

    /// When the next action is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (interval, at) = (self.interval?, self.refreshed_at?);
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        if self.we_refresh && !self.refreshing {
            // §10: the refresher refreshes at half the interval
            return Some(at + secs(interval / 2));
        }
        // §10: expiry minus min(32 s, interval/3)
        Some(at + secs(interval) - secs(BYE_MARGIN_MAX.min(interval / 3)))
    }

    /// Fire what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<SessionTimerAction> {
        if self.poll_timeout()? > now {
            return None;
        }
        if self.we_refresh && !self.refreshing {
            self.refreshing = true;
            return Some(SessionTimerAction::Refresh);
        }
        self.stop();
        Some(SessionTimerAction::Bye)
    }
}
