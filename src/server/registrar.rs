//! The registrar (RFC 3261 §10.3) with GRUU (RFC 5627 §6), instance and
//! reg-id (RFC 5626 §6) and Path (RFC 3327 §5.3). Sans-IO:
//! [`Registrar::handle_register`] takes `now`, the request, where it came
//! from and who the digest layer authenticated, and returns the response
//! plus the binding changes the registration event package (RFC 3680)
//! serves from ([`RegEventState`]).

pub mod contact;
pub mod reg_event;

pub use reg_event::{
    ContactEvent, ContactState, RegContact, RegEventState, RegInfo, RegInfoKind, RegistrationState,
};

use std::time::Instant;

use rsip::headers::UntypedHeader;
use rsip::{Header, StatusCode};
use sha2::{Digest, Sha256};

use crate::server::location_service::{
    Binding, BindingKey, ContactParam, LocationService, Source, canonical_aor, public_gruu, secs,
};
use contact::{ContactEntry, ContactList, parse_contacts, parse_entry};

/// Registrar settings.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// The domain whose AORs we hold (`isc.local`).
    pub domain: String,
    /// Other host names / addresses that mean the domain in a To URI
    /// (e.g. the server's IP, which SIPp puts there).
    pub local_hosts: Vec<String>,
    /// Expiry when the REGISTER names none.
    pub default_expires: u32,
    /// Below this a non-zero expiry gets 423 (RFC 3261 §10.3 step 7).
    pub min_expires: u32,
    /// Longer expiries are cut to this.
    pub max_expires: u32,
    /// At most this many bindings per AOR; `None` = unlimited.
    pub max_bindings_per_aor: Option<usize>,
    /// Option tags understood in `Require` (RFC 3261 §10.3 step 1).
    pub supported: Vec<String>,
}

impl RegistrarConfig {
    /// Defaults: 3600 s default, 60 s min, 7200 s max, no cap;
    /// supports `gruu`, `outbound`, `path`.
    pub fn new(domain: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            local_hosts: Vec::new(),
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_bindings_per_aor: None,
            supported: vec!["gruu".into(), "outbound".into(), "path".into()],
        }
    }
}

/// What happened to a binding (the reginfo contact `event`, RFC 3680 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingEvent {
    Registered,
    Refreshed,
    Unregistered,
    Expired,
}

/// A change of one binding, with its state after (or, when removed, just
/// before) the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingChange {
    pub event: BindingEvent,
    pub binding: Binding,
}

impl BindingChange {
    pub fn aor(&self) -> &str {
        &self.binding.aor
    }
    pub fn instance(&self) -> Option<&str> {
        self.binding.instance.as_deref()
    }
    pub fn gruu(&self) -> Option<&str> {
        self.binding.gruu.as_deref()
    }
    pub fn device_name(&self) -> Option<&str> {
        self.binding.device_name.as_deref()
    }
}

/// The response to a REGISTER and what it changed.
#[derive(Debug, Clone)]
pub struct RegistrarOutcome {
    pub response: rsip::Response,
    pub changes: Vec<BindingChange>,
    /// Why the REGISTER failed, if it did (the response says it too).
    pub error: Option<RegisterError>,
}

/// Why a REGISTER is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    #[error("not a REGISTER")]
    NotRegister,
    #[error("Require names unsupported option tags {0:?}")]
    UnsupportedRequire(Vec<String>),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("unreadable header {0}")]
    BadHeader(&'static str),
    #[error("unreadable Contact: {0}")]
    BadContact(contact::ContactError),
    #[error("Contact {0:?} is not a SIP URI")]
    NotSipContact(String),
    #[error("`Contact: *` needs Expires: 0 and no other contact")]
    BadStar,
    #[error("{0:?} is not in our domain")]
    NotOurDomain(String),
    #[error("user {user:?} may not register {aor}")]
    NotOwnAor { user: String, aor: String },
    #[error("expiry {asked} s is below the minimum")]
    IntervalTooBrief { asked: u32 },
    #[error("CSeq {cseq} not above {last} for this Call-ID")]
    OutOfOrder { cseq: u32, last: u32 },
    #[error("more than {cap} contacts for one AOR")]
    TooManyBindings { cap: usize },
}

impl RegisterError {
    /// The one place a registrar error becomes a status code and headers.
    pub fn status_and_headers(&self, config: &RegistrarConfig) -> (StatusCode, Vec<Header>) {
        let warning = || {
            Header::Warning(rsip::headers::Warning::new(format!(
                "399 {} {}",
                config.domain,
                crate::server::location_service::quote(&self.to_string())
            )))
        };
        match self {
            Self::NotRegister => (
                StatusCode::MethodNotAllowed,
                vec![Header::Allow(rsip::headers::Allow::new("REGISTER"))],
            ),
            // RFC 3261 §10.3 step 1
            Self::UnsupportedRequire(tags) => (
                StatusCode::BadExtension,
                vec![Header::Unsupported(rsip::headers::Unsupported::new(
                    tags.join(", "),
                ))],
            ),
            Self::MissingHeader(_)
            | Self::BadHeader(_)
            | Self::BadContact(_)
            | Self::NotSipContact(_)
            | Self::BadStar => (StatusCode::BadRequest, vec![warning()]),
            Self::NotOurDomain(_) => (StatusCode::NotFound, vec![warning()]),
            Self::NotOwnAor { .. } | Self::TooManyBindings { .. } => {
                (StatusCode::Forbidden, vec![warning()])
            }
            // RFC 3261 §10.3 step 7
            Self::IntervalTooBrief { .. } => (
                StatusCode::IntervalTooBrief,
                vec![Header::MinExpires(config.min_expires.into())],
            ),
            // RFC 3261 §10.3 step 7: same Call-ID, CSeq not higher: "the
            // request fails"; 500 as the RFC names no code.
            Self::OutOfOrder { .. } => (StatusCode::ServerInternalError, vec![warning()]),
        }
    }
}

/// The registrar: owns the [`LocationService`].
#[derive(Debug, Clone)]
pub struct Registrar {
    config: RegistrarConfig,
    location: LocationService,
}

/// One contact of the request, read and checked.
struct Wanted {
    entry: ContactEntry,
    key: BindingKey,
    instance: Option<String>,
    reg_id: Option<u32>,
    expires: u32,
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Self {
        Self {
            config,
            location: LocationService::new(),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// The bindings, for the proxy's lookups.
    pub fn location(&self) -> &LocationService {
        &self.location
    }

    pub fn location_mut(&mut self) -> &mut LocationService {
        &mut self.location
    }

    /// The canonical AOR of a URI if it is in our domain (a local host name
    /// counts as the domain).
    pub fn aor_for(&self, uri: &str) -> Option<String> {
        let aor = canonical_aor(uri)?;
        let (user, host) = aor.strip_prefix("sip:")?.rsplit_once('@')?;
        let ours = host.eq_ignore_ascii_case(&self.config.domain)
            || self
                .config
                .local_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host));
        ours.then(|| format!("sip:{user}@{}", self.config.domain.to_ascii_lowercase()))
    }

    /// The targets of a request URI: the binding of a GRUU, or every active
    /// binding of the AOR (local host names mapped to the domain).
    pub fn lookup(&self, now: Instant, request_uri: &str) -> Vec<&Binding> {
        if let Some((aor, instance)) = location_gruu(request_uri) {
            let aor = self.aor_for(&aor).unwrap_or(aor);
            return self
                .location
                .find_instance(now, &aor, &instance)
                .into_iter()
                .collect();
        }
        match self.aor_for(request_uri) {
            Some(aor) => self.location.active_bindings(now, &aor),
            None => Vec::new(),
        }
    }

    /// Remove the bindings expired at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<BindingChange> {
        self.location
            .expire(now)
            .into_iter()
            .map(|binding| BindingChange {
                event: BindingEvent::Expired,
                binding,
            })
            .collect()
    }

    /// When [`expire`](Self::expire) has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.location.poll_timeout()
    }

    /// Process a REGISTER (RFC 3261 §10.3). `authenticated_user` is the
    /// digest username, `None` when authentication is off.
    pub fn handle_register(
        &mut self,
        now: Instant,
        request: &rsip::Request,
        source: Source,
        authenticated_user: Option<&str>,
    ) -> RegistrarOutcome {
        let mut changes = Vec::new();
        match self.register(now, request, source, authenticated_user, &mut changes) {
            Ok(extra) => RegistrarOutcome {
                response: response_for(request, StatusCode::OK, extra),
                changes,
                error: None,
            },
            Err(e) => {
                // Expiries swept on the way are still reported.
                changes.retain(|c| c.event == BindingEvent::Expired);
                let (status, extra) = e.status_and_headers(&self.config);
                RegistrarOutcome {
                    response: response_for(request, status, extra),
                    changes,
                    error: Some(e),
                }
            }
        }
    }

    fn register(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        source: Source,
        authenticated_user: Option<&str>,
        changes: &mut Vec<BindingChange>,
    ) -> Result<Vec<Header>, RegisterError> {
        use RegisterError as E;
        if req.method != rsip::Method::Register {
            return Err(E::NotRegister);
        }
        // RFC 3261 §10.3 step 1: Require
        let unknown: Vec<String> = option_tags(req, "Require", None)
            .into_iter()
            .filter(|t| {
                !self
                    .config
                    .supported
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            })
            .collect();
        if !unknown.is_empty() {
            return Err(E::UnsupportedRequire(unknown));
        }
        // Step 5: the AOR from To (steps 2-3, domain and authentication,
        // are the domain check here and the caller's digest check)
        let to = header_value(req, "To", Some("t")).ok_or(E::MissingHeader("To"))?;
        let to = parse_entry(to).map_err(|_| E::BadHeader("To"))?;
        let aor = self
            .aor_for(&to.uri)
            .ok_or_else(|| E::NotOurDomain(to.uri.clone()))?;
        // Step 4: a user registers only its own AOR
        if let Some(user) = authenticated_user {
            let own = aor
                .strip_prefix("sip:")
                .and_then(|r| r.rsplit_once('@'))
                .is_some_and(|(u, _)| u == user);
            if !own {
                return Err(E::NotOwnAor {
                    user: user.to_owned(),
                    aor,
                });
            }
        }
        let call_id = header_value(req, "Call-ID", Some("i"))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(E::MissingHeader("Call-ID"))?
            .to_owned();
        let cseq = header_value(req, "CSeq", None)
            .ok_or(E::MissingHeader("CSeq"))?
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or(E::BadHeader("CSeq"))?;
        let expires_header = match header_value(req, "Expires", None) {
            Some(v) => Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| E::BadHeader("Expires"))?,
            ),
            None => None,
        };
        let mut star = false;
        let mut entries = Vec::new();
        for v in header_values(req, "Contact", Some("m")) {
            match parse_contacts(v).map_err(E::BadContact)? {
                ContactList::Star => star = true,
                ContactList::Entries(e) => entries.extend(e),
            }
        }
        // Expired bindings go first, so the response and the checks below
        // see only live ones.
        changes.extend(
            self.location
                .expire_aor(now, &aor)
                .into_iter()
                .map(|binding| BindingChange {
                    event: BindingEvent::Expired,
                    binding,
                }),
        );
        let supported = option_tags(req, "Supported", Some("k"));
        let gruu = supported.iter().any(|t| t.eq_ignore_ascii_case("gruu"));
        let outbound = supported.iter().any(|t| t.eq_ignore_ascii_case("outbound"));
        let path_ok = supported.iter().any(|t| t.eq_ignore_ascii_case("path"));
        let mut current = self.location.bindings(&aor).to_vec();

        if star {
            // Step 6: `*` only alone and with Expires: 0
            if !entries.is_empty() || expires_header != Some(0) {
                return Err(E::BadStar);
            }
            // Step 7 applies to each binding removed
            if let Some(b) = current
                .iter()
                .find(|b| b.call_id == call_id && cseq <= b.cseq)
            {
                return Err(E::OutOfOrder { cseq, last: b.cseq });
            }
            changes.extend(current.drain(..).map(|binding| BindingChange {
                event: BindingEvent::Unregistered,
                binding,
            }));
            self.location.set_bindings(&aor, current);
            return Ok(Vec::new());
        }

        let user_agent = header_value(req, "User-Agent", None).map(|s| s.trim().to_owned());
        let path: Vec<String> = header_values(req, "Path", None)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();

        // Step 6: expiry per contact, 423 below the minimum
        let mut wanted = Vec::new();
        for entry in entries {
            if !has_sip_scheme(&entry.uri) {
                return Err(E::NotSipContact(entry.uri));
            }
            let expires = match entry.param("expires") {
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(u64::from(self.config.default_expires)),
                None => expires_header.unwrap_or(u64::from(self.config.default_expires)),
            };
            let expires = u32::try_from(expires.min(u64::from(self.config.max_expires)))
                .unwrap_or(self.config.max_expires);
            if expires != 0 && expires < self.config.min_expires {
                return Err(E::IntervalTooBrief { asked: expires });
            }
            let instance = entry
                .param("+sip.instance")
                .map(|i| {
                    i.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned()
                })
                .filter(|i| !i.is_empty());
            // RFC 5626 §6: reg-id counts only with an instance
            let reg_id = instance
                .as_ref()
                .and_then(|_| entry.param("reg-id"))
                .and_then(|r| r.trim().parse::<u32>().ok());
            let key = BindingKey::new(instance.as_deref(), reg_id, &entry.uri);
            wanted.push(Wanted {
                entry,
                key,
                instance,
                reg_id,
                expires,
            });
        }

        // Step 7: update the bindings on a copy, commit only if all succeed
        let mut reg_id_used = false;
        let mut pending = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        for w in wanted {
            let existing = current.iter().position(|b| {
                b.key() == w.key
                    || (w.instance.is_some() && b.instance.is_none() && b.contact == w.entry.uri)
            });
            if let Some(i) = existing {
                let Some(b) = current.get(i) else { continue };
                // (a binding this same request already wrote is not re-checked)
                if b.call_id == call_id && cseq <= b.cseq && !touched.contains(&b.id) {
                    return Err(E::OutOfOrder { cseq, last: b.cseq });
                }
                if w.expires == 0 {
                    let binding = current.remove(i);
                    pending.push(BindingChange {
                        event: BindingEvent::Unregistered,
                        binding,
                    });
                    continue;
                }
            } else if w.expires == 0 {
                continue;
            }
            reg_id_used |= w.reg_id.is_some();
            let binding =
                self.binding_from(now, &aor, &w, &call_id, cseq, source, &user_agent, &path);
            touched.push(binding.id.clone());
            let event = match existing {
                Some(i) => {
                    if let Some(slot) = current.get_mut(i) {
                        let registered_at = slot.registered_at;
                        *slot = Binding {
                            registered_at,
                            ..binding.clone()
                        };
                    }
                    BindingEvent::Refreshed
                }
                None => {
                    current.push(binding.clone());
                    BindingEvent::Registered
                }
            };
            pending.push(BindingChange { event, binding });
        }
        if let Some(cap) = self.config.max_bindings_per_aor
            && current.len() > cap
        {
            return Err(E::TooManyBindings { cap });
        }
        // A refresh keeps the first registration time of the binding.
        for c in &mut pending {
            if let Some(b) = current.iter().find(|b| b.id == c.binding.id) {
                c.binding.registered_at = b.registered_at;
            }
        }
        changes.extend(pending);

        // Step 8: the 200 lists every current binding
        let mut extra = Vec::new();
        for b in &current {
            extra.push(Header::Contact(rsip::headers::Contact::new(contact_value(
                now, b, gruu,
            ))));
        }
        // RFC 5626 §6: say outbound was applied
        if outbound && reg_id_used {
            extra.push(Header::Require(rsip::headers::Require::new("outbound")));
        }
        // RFC 3327 §5.3: echo Path
        if path_ok && !path.is_empty() {
            extra.push(Header::Other("Path".into(), path.join(", ")));
        }
        if gruu {
            extra.push(Header::Supported(rsip::headers::Supported::new("gruu")));
        }
        self.location.set_bindings(&aor, current);
        Ok(extra)
    }

    #[allow(clippy::too_many_arguments)]
    fn binding_from(
        &self,
        now: Instant,
        aor: &str,
        w: &Wanted,
        call_id: &str,
        cseq: u32,
        source: Source,
        user_agent: &Option<String>,
        path: &[String],
    ) -> Binding {
        let q = w.entry.param("q").and_then(parse_q);
        // Device name: Contact `+sip.description` (RFC 3840 §10.20), else
        // the User-Agent.
        let device_name = w
            .entry
            .param("+sip.description")
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
            .or_else(|| user_agent.clone());
        let params: Vec<ContactParam> = w
            .entry
            .params
            .iter()
            .filter(|p| {
                ![
                    "expires",
                    "q",
                    "+sip.instance",
                    "reg-id",
                    "pub-gruu",
                    "temp-gruu",
                ]
                .iter()
                .any(|n| p.name.eq_ignore_ascii_case(n))
            })
            .cloned()
            .collect();
        Binding {
            id: w.key.id(aor),
            aor: aor.to_owned(),
            contact: w.entry.uri.clone(),
            display_name: w.entry.display_name.clone(),
            instance: w.instance.clone(),
            reg_id: w.reg_id,
            expires_at: now + secs(w.expires),
            registered_at: now,
            refreshed_at: now,
            q,
            call_id: call_id.to_owned(),
            cseq,
            path: path.to_vec(),
            source,
            device_name,
            user_agent: user_agent.clone(),
            // RFC 5627 §3.1: one public GRUU per instance
            gruu: w.instance.as_deref().map(|i| public_gruu(aor, i)),
            params,
        }
    }
}

fn location_gruu(uri: &str) -> Option<(String, String)> {
    crate::server::location_service::parse_gruu(uri)
}

fn has_sip_scheme(uri: &str) -> bool {
    uri.split_once(':').is_some_and(|(s, rest)| {
        (s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips")) && !rest.is_empty()
    })
}

/// `q` as thousandths (RFC 3261 §25.1 qvalue).
fn parse_q(s: &str) -> Option<u16> {
    let v: f64 = s.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&v)
        .then(|| (v * 1000.0).round() as u16)
}

fn format_q(q: u16) -> String {
    let s = format!("{}.{:03}", q / 1000, q % 1000);
    let s = s.trim_end_matches('0');
    s.strip_suffix('.')
        .map_or_else(|| s.to_owned(), |t| format!("{t}.0"))
}

/// One Contact of the 200: the binding with its remaining expiry and, when
/// the REGISTER supported gruu, its `pub-gruu` (RFC 5627 §6).
fn contact_value(now: Instant, b: &Binding, gruu: bool) -> String {
    let mut s = String::new();
    if let Some(d) = &b.display_name {
        s.push_str(&crate::server::location_service::quote(d));
        s.push(' ');
    }
    s.push('<');
    s.push_str(&b.contact);
    s.push('>');
    for p in &b.params {
        s.push_str(&p.to_string());
    }
    if let Some(q) = b.q {
        s.push_str(";q=");
        s.push_str(&format_q(q));
    }
    s.push_str(&format!(";expires={}", b.expires_in(now)));
    if let Some(i) = &b.instance {
        s.push_str(&format!(";+sip.instance=\"<{i}>\""));
    }
    if let Some(r) = b.reg_id {
        s.push_str(&format!(";reg-id={r}"));
    }
    if gruu && let Some(g) = &b.gruu {
        s.push_str(&format!(";pub-gruu=\"{g}\""));
    }
    s
}

/// `(name, value)` of a header, for the variants the registrar reads.
fn name_value(h: &Header) -> Option<(&str, &str)> {
    Some(match h {
        Header::To(v) => ("To", v.value()),
        Header::From(v) => ("From", v.value()),
        Header::CallId(v) => ("Call-ID", v.value()),
        Header::CSeq(v) => ("CSeq", v.value()),
        Header::Contact(v) => ("Contact", v.value()),
        Header::Expires(v) => ("Expires", v.value()),
        Header::Require(v) => ("Require", v.value()),
        Header::Supported(v) => ("Supported", v.value()),
        Header::UserAgent(v) => ("User-Agent", v.value()),
        Header::Via(v) => ("Via", v.value()),
        Header::Other(n, v) => (n.as_str(), v.as_str()),
        _ => return None,
    })
}

/// Values of header `name` (or its compact form), in order.
fn header_values<'a>(req: &'a rsip::Request, name: &str, compact: Option<&str>) -> Vec<&'a str> {
    req.headers
        .iter()
        .filter_map(name_value)
        .filter(|(n, _)| {
            n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
        })
        .map(|(_, v)| v)
        .collect()
}

fn header_value<'a>(req: &'a rsip::Request, name: &str, compact: Option<&str>) -> Option<&'a str> {
    header_values(req, name, compact).into_iter().next()
}

/// The option tags of every `name` header.
fn option_tags(req: &rsip::Request, name: &str, compact: Option<&str>) -> Vec<String> {
    header_values(req, name, compact)
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// A response to `req` (RFC 3261 §8.2.6.2): Via, From, To (with a tag),
/// Call-ID and CSeq copied, then `extra`. The To tag is derived from the
/// request, so a retransmission gets the same one. Used for the registrar's
/// own answers and for the 401/403 the digest check decides; to give way to
/// the shared message builder later.
pub fn response_for(req: &rsip::Request, status: StatusCode, extra: Vec<Header>) -> rsip::Response {
    let mut headers = rsip::Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::Other(n, _) if ["v", "f", "i"].iter().any(|c| n.eq_ignore_ascii_case(c)) => {
                headers.push(h.clone())
            }
            Header::To(v) => {
                headers.push(Header::To(rsip::headers::To::new(with_tag(req, v.value()))))
            }
            Header::Other(n, v) if n.eq_ignore_ascii_case("t") => {
                headers.push(Header::To(rsip::headers::To::new(with_tag(req, v))))
            }
            _ => {}
        }
    }
    headers.extend(extra);
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    rsip::Response {
        status_code: status,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

fn with_tag(req: &rsip::Request, to: &str) -> String {
    let has_tag = parse_entry(to).is_ok_and(|e| e.param("tag").is_some());
    if has_tag {
        return to.to_owned();
    }
    let mut h = Sha256::new();
    for n in ["Call-ID", "CSeq", "From", "Via"] {
        if let Some(v) = header_value(req, n, None) {
            h.update(v.as_bytes());
            h.update(b"\n");
        }
    }
    let d = h.finalize();
    format!("{to};tag={}", hex::encode(d.get(..5).unwrap_or(&[])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(format_q(500), "0.5");
        assert_eq!(format_q(1000), "1.0");
        assert_eq!(format_q(0), "0.0");
        assert_eq!(format_q(125), "0.125");
    }
}
