//! The challenging side of Digest (RFC 3261 §22.4, RFC 7616 §3.3–3.5,
//! RFC 8760 §2.4).
//!
//! Nonces are stateless: `base64url(issue-ms ‖ salt ‖ HMAC-SHA-256(key,
//! issue-ms ‖ salt ‖ realm)[..16])`, so any nonce we issued is recognised
//! and its age known without a table. A bounded table keeps, per nonce in
//! use, the highest nonce-count seen (RFC 7616 §3.4 replay protection).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsip::headers::UntypedHeader;

use super::{
    Algorithm, Challenge, Credentials, Qop, ResponseInput, compute_response, constant_time_eq,
    hmac_sha256,
};

/// Which header pair a challenge uses (RFC 3261 §22.1 / §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// 401, `WWW-Authenticate` / `Authorization`: registrars and UASs.
    Www,
    /// 407, `Proxy-Authenticate` / `Proxy-Authorization`: proxies.
    Proxy,
}

impl AuthKind {
    /// 401 for REGISTER (the registrar), 407 for every other request (the
    /// server acting as proxy).
    pub fn for_method(method: &rsip::Method) -> Self {
        if *method == rsip::Method::Register {
            Self::Www
        } else {
            Self::Proxy
        }
    }

    /// The status code of a challenge.
    pub fn status(self) -> rsip::StatusCode {
        match self {
            Self::Www => rsip::StatusCode::Unauthorized,
            Self::Proxy => rsip::StatusCode::ProxyAuthenticationRequired,
        }
    }

    /// A challenge header of this kind.
    pub fn challenge_header(self, c: &Challenge) -> rsip::Header {
        match self {
            Self::Www => {
                rsip::Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(c.to_string()))
            }
            Self::Proxy => rsip::Header::ProxyAuthenticate(rsip::headers::ProxyAuthenticate::new(
                c.to_string(),
            )),
        }
    }

    /// A credentials header of this kind.
    pub fn credentials_header(self, c: &Credentials) -> rsip::Header {
        match self {
            Self::Www => {
                rsip::Header::Authorization(rsip::headers::Authorization::new(c.to_string()))
            }
            Self::Proxy => rsip::Header::ProxyAuthorization(
                rsip::headers::ProxyAuthorization::new(c.to_string()),
            ),
        }
    }

    /// The credentials header values of this kind in `headers`.
    pub fn credentials_values(self, headers: &rsip::Headers) -> Vec<&str> {
        headers
            .iter()
            .filter_map(|h| match (self, h) {
                (Self::Www, rsip::Header::Authorization(a)) => Some(a.value()),
                (Self::Proxy, rsip::Header::ProxyAuthorization(a)) => Some(a.value()),
                _ => None,
            })
            .collect()
    }

    /// The challenge header values of this kind in `headers`.
    pub fn challenge_values(self, headers: &rsip::Headers) -> Vec<&str> {
        headers
            .iter()
            .filter_map(|h| match (self, h) {
                (Self::Www, rsip::Header::WwwAuthenticate(a)) => Some(a.value()),
                (Self::Proxy, rsip::Header::ProxyAuthenticate(a)) => Some(a.value()),
                _ => None,
            })
            .collect()
    }
}

/// Configuration of a [`DigestServer`].
#[derive(Debug, Clone)]
pub struct DigestServerConfig {
    /// The realm: the SIP domain (RFC 3261 §22.1).
    pub realm: String,
    /// Algorithms offered, one challenge each, in this order
    /// (RFC 8760 §2.4: SHA-256 before MD5). Recent SIPp answers the first
    /// challenge it can compute; SIPp before SHA-256 support reads the first
    /// `algorithm=` only and gives up on SHA-256, so for it use `[Md5]`.
    pub algorithms: Vec<Algorithm>,
    /// A nonce older than this gets a new challenge with `stale=true`.
    pub nonce_lifetime: Duration,
    /// Accept the RFC 2069 form (MD5 without qop) of old clients, e.g. SIPp
    /// answering a challenge without qop. Such answers have no nonce-count,
    /// so their only replay limit is the nonce lifetime.
    pub allow_rfc2069: bool,
    /// How many nonces' nonce-counts are remembered at most.
    pub max_tracked_nonces: usize,
    /// Check that the credentials' `uri` is the Request-URI
    /// (RFC 7616 §3.4.6).
    pub check_uri: bool,
}

impl DigestServerConfig {
    /// Defaults: SHA-256 then MD5, 300 s nonces, RFC 2069 accepted,
    /// 4096 tracked nonces, uri checked.
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            nonce_lifetime: Duration::from_secs(300),
            allow_rfc2069: true,
            max_tracked_nonces: 4096,
            check_uri: true,
        }
    }
}

/// Result of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestOutcome {
    /// The credentials are good: `user` is the authenticated username.
    Authenticated { user: String },
    /// Answer with a new challenge (401/407), `stale=true` if the password
    /// was right but the nonce is not usable any more.
    Challenge {
        stale: bool,
        reason: ChallengeReason,
    },
    /// Answer 403: the credentials are wrong.
    Forbidden { reason: ForbiddenReason },
}

/// Why a request gets a new challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeReason {
    /// No credentials for our realm.
    NoCredentials,
    /// Credentials for our realm that we cannot read.
    Malformed,
    /// An algorithm we did not offer.
    UnsupportedAlgorithm,
    /// No qop where we require one.
    QopRequired,
    /// A nonce (or opaque) we did not issue, e.g. before a restart.
    UnknownNonce,
    /// The nonce is older than its lifetime.
    ExpiredNonce,
    /// A nonce-count not above the last one seen for this nonce.
    NonceReplay,
}

/// Why credentials are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForbiddenReason {
    UnknownUser,
    WrongPassword,
    /// The digest `uri` is not the Request-URI.
    UriMismatch,
}

#[derive(Debug, Clone, Copy)]
struct NonceUse {
    issued: Duration,
    highest_nc: u32,
}

const NONCE_DATA_LEN: usize = 8 + 16;
const NONCE_MAC_LEN: usize = 16;

/// Issues Digest challenges and verifies credentials. Sans-IO.
#[derive(Debug)]
pub struct DigestServer {
    config: DigestServerConfig,
    key: [u8; 32],
    epoch: Instant,
    opaque: String,
    used: HashMap<String, NonceUse>,
    /// The newest issue time among nonces evicted from `used`: an unknown
    /// nonce issued no later than this may have been used already.
    evicted_upto: Option<Duration>,
}

impl DigestServer {
    /// `key` is the secret the nonces are signed with (random, from the
    /// caller); `epoch` is the instant nonce times count from.
    pub fn new(config: DigestServerConfig, key: [u8; 32], epoch: Instant) -> Self {
        let mac = hmac_sha256(&key, &[b"opaque", config.realm.as_bytes()]);
        let opaque = hex::encode(mac.get(..8).unwrap_or(&mac[..]));
        Self {
            config,
            key,
            epoch,
            opaque,
            used: HashMap::new(),
            evicted_upto: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DigestServerConfig {
        &self.config
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.config.realm
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.key, &[b"nonce", data, self.config.realm.as_bytes()])
    }

    /// A fresh nonce for `now`; `salt` is random bytes from the caller.
    pub fn nonce(&self, now: Instant, salt: &[u8; 16]) -> String {
        let ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        let mut raw = Vec::with_capacity(NONCE_DATA_LEN + NONCE_MAC_LEN);
        raw.extend_from_slice(&ms.to_be_bytes());
        raw.extend_from_slice(salt);
        let mac = self.mac(&raw);
        raw.extend_from_slice(mac.get(..NONCE_MAC_LEN).unwrap_or(&mac[..]));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// When a nonce we issued was issued (since `epoch`); `None` if not ours.
    fn nonce_issued(&self, nonce: &str) -> Option<Duration> {
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if raw.len() != NONCE_DATA_LEN + NONCE_MAC_LEN {
            return None;
        }
        let (data, mac) = raw.split_at(NONCE_DATA_LEN);
        let want = self.mac(data);
        if !constant_time_eq(mac, want.get(..NONCE_MAC_LEN)?) {
            return None;
        }
        let ms: [u8; 8] = data.get(..8)?.try_into().ok()?;
        Some(Duration::from_millis(u64::from_be_bytes(ms)))
    }

    /// One challenge per configured algorithm, all with the same nonce,
    /// `qop="auth"`, the realm and opaque.
    pub fn challenges(&self, now: Instant, salt: &[u8; 16], stale: bool) -> Vec<Challenge> {
        let nonce = self.nonce(now, salt);
        self.config
            .algorithms
            .iter()
            .map(|a| Challenge {
                realm: self.config.realm.clone(),
                domain: None,
                nonce: nonce.clone(),
                opaque: Some(self.opaque.clone()),
                stale,
                algorithm: Some(a.clone()),
                qop: vec![Qop::Auth],
                userhash: false,
                other: Vec::new(),
            })
            .collect()
    }

    /// The challenge headers to put in a 401 (`Www`) or 407 (`Proxy`).
    pub fn challenge_headers(
        &self,
        now: Instant,
        kind: AuthKind,
        salt: &[u8; 16],
        stale: bool,
    ) -> Vec<rsip::Header> {
        self.challenges(now, salt, stale)
            .iter()
            .map(|c| kind.challenge_header(c))
            .collect()
    }

    /// Check the `kind` credentials of `request` for our realm. `password`
    /// looks a user's password up.
    pub fn verify_request(
        &mut self,
        now: Instant,
        request: &rsip::Request,
        kind: AuthKind,
        password: impl FnOnce(&str) -> Option<String>,
    ) -> DigestOutcome {
        let mut malformed = false;
        let mut ours = None;
        for v in kind.credentials_values(&request.headers) {
            match v.parse::<Credentials>() {
                Ok(c) if c.realm == self.config.realm => {
                    ours = Some(c);
                    break;
                }
                Ok(_) => {}
                Err(_) => malformed = true,
            }
        }
        let Some(creds) = ours else {
            let reason = if malformed {
                ChallengeReason::Malformed
            } else {
                ChallengeReason::NoCredentials
            };
            return DigestOutcome::Challenge {
                stale: false,
                reason,
            };
        };
        if self.config.check_uri && !uri_matches(&creds.uri, &request.uri) {
            return DigestOutcome::Forbidden {
                reason: ForbiddenReason::UriMismatch,
            };
        }
        let method = request.method.to_string();
        self.verify(now, &creds, &method, &request.body, password)
    }

    /// Check parsed credentials for `method` and `body`.
    pub fn verify(
        &mut self,
        now: Instant,
        creds: &Credentials,
        method: &str,
        body: &[u8],
        password: impl FnOnce(&str) -> Option<String>,
    ) -> DigestOutcome {
        use DigestOutcome::{Authenticated, Challenge as Chal, Forbidden};
        let fresh = |reason| Chal {
            stale: false,
            reason,
        };
        if creds.realm != self.config.realm {
            return fresh(ChallengeReason::NoCredentials);
        }
        let algorithm = creds.effective_algorithm();
        if !self.config.algorithms.contains(&algorithm) {
            return fresh(ChallengeReason::UnsupportedAlgorithm);
        }
        let (nc, cnonce) = match &creds.qop {
            Some(Qop::Auth | Qop::AuthInt) => match (creds.nc, &creds.cnonce) {
                (Some(nc), Some(cnonce)) => (nc, cnonce.as_str()),
                _ => return fresh(ChallengeReason::Malformed),
            },
            Some(Qop::Other(_)) => return fresh(ChallengeReason::Malformed),
            // RFC 2617 §3.2.2: the RFC 2069 compatible form, MD5 only
            None if self.config.allow_rfc2069 && algorithm == Algorithm::Md5 => (0, ""),
            None => return fresh(ChallengeReason::QopRequired),
        };
        if algorithm.is_sess() && cnonce.is_empty() {
            return fresh(ChallengeReason::Malformed);
        }
        let Some(secret) = password(&creds.username) else {
            return Forbidden {
                reason: ForbiddenReason::UnknownUser,
            };
        };
        let expected = compute_response(&ResponseInput {
            algorithm: &algorithm,
            username: &creds.username,
            realm: &creds.realm,
            password: &secret,
            nonce: &creds.nonce,
            qop: creds.qop.as_ref(),
            nc,
            cnonce,
            method,
            uri: &creds.uri,
            body,
        });
        let given = creds.response.to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Forbidden {
                reason: ForbiddenReason::WrongPassword,
            };
        }
        // The password is right; the nonce decides between success and a
        // stale challenge (RFC 7616 §3.3 stale).
        let stale = |reason| Chal {
            stale: true,
            reason,
        };
        let opaque_ok = creds.opaque.as_ref().is_none_or(|o| *o == self.opaque);
        let Some(issued) = self.nonce_issued(&creds.nonce).filter(|_| opaque_ok) else {
            return stale(ChallengeReason::UnknownNonce);
        };
        let age_now = now.saturating_duration_since(self.epoch);
        if issued > age_now + Duration::from_secs(1) {
            return stale(ChallengeReason::UnknownNonce);
        }
        if age_now.saturating_sub(issued) > self.config.nonce_lifetime {
            return stale(ChallengeReason::ExpiredNonce);
        }
        if creds.qop.is_some() {
            self.purge(age_now);
            match self.used.get_mut(&creds.nonce) {
                // RFC 7616 §3.4: nc must grow
                Some(u) if nc <= u.highest_nc => return stale(ChallengeReason::NonceReplay),
                Some(u) => u.highest_nc = nc,
                None => {
                    if self.evicted_upto.is_some_and(|e| issued <= e) {
                        return stale(ChallengeReason::NonceReplay);
                    }
                    self.evict_if_full();
                    self.used.insert(
                        creds.nonce.clone(),
                        NonceUse {
                            issued,
                            highest_nc: nc,
                        },
                    );
                }
            }
        }
        Authenticated {
            user: creds.username.clone(),
        }
    }

    fn purge(&mut self, age_now: Duration) {
        let lifetime = self.config.nonce_lifetime;
        self.used
            .retain(|_, u| age_now.saturating_sub(u.issued) <= lifetime);
    }

    fn evict_if_full(&mut self) {
        while self.used.len() >= self.config.max_tracked_nonces.max(1) {
            let oldest = self
                .used
                .iter()
                .min_by_key(|(_, u)| u.issued)
                .map(|(k, u)| (k.clone(), u.issued));
            let Some((k, issued)) = oldest else { break };
            self.used.remove(&k);
            self.evicted_upto = Some(self.evicted_upto.map_or(issued, |e| e.max(issued)));
        }
    }
}

/// Whether `user` is the user part of `uri`: an authenticated user may act
/// only for its own AOR (From of requests, To of REGISTER).
pub fn user_matches_uri(user: &str, uri: &rsip::Uri) -> bool {
    uri.user() == Some(user)
}

/// The digest-uri against the Request-URI: equal as text, or as parsed
/// URIs with scheme, user, host (case-insensitive) and port alike.
fn uri_matches(digest_uri: &str, request_uri: &rsip::Uri) -> bool {
    let req = request_uri.to_string();
    if digest_uri == req {
        return true;
    }
    let Ok(d) = rsip::Uri::try_from(digest_uri) else {
        return false;
    };
    let host = |u: &rsip::Uri| u.host().to_string().to_ascii_lowercase();
    let port = |u: &rsip::Uri| u.port().map(|p| *p.value()).unwrap_or(5060);
    let scheme = |u: &rsip::Uri| {
        u.scheme
            .as_ref()
            .map(|s| s.to_string().to_ascii_lowercase())
    };
    d.user() == request_uri.user()
        && host(&d) == host(request_uri)
        && port(&d) == port(request_uri)
        && scheme(&d) == scheme(request_uri)
}
