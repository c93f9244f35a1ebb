//! The location service (RFC 3261 §10.2 / §16.5): the bindings of each
//! address-of-record, filled by the [registrar](super::registrar) and read
//! by the proxy.
//!
//! A binding is one registered device flow: its Contact, `+sip.instance`
//! and `reg-id` (RFC 5626), expiry, q, Call-ID/CSeq (RFC 3261 §10.3 step 7),
//! Path (RFC 3327), the address and transport the REGISTER came from (to
//! reach the device over its own connection / NAT binding), a device name
//! and a public GRUU per instance (RFC 5627 §3.1). Sans-IO: `now` is passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Where a REGISTER came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub addr: SocketAddr,
    pub transport: rsip::Transport,
}

/// A Contact header parameter other than those a binding holds as fields
/// (`expires`, `q`, `+sip.instance`, `reg-id`, `pub-gruu`, `temp-gruu`):
/// feature tags such as `+g.3gpp.icsi-ref` that caller preferences match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactParam {
    pub name: String,
    /// Unquoted and unescaped.
    pub value: Option<String>,
    /// Whether the value is printed as a quoted-string.
    pub quoted: bool,
}

impl std::fmt::Display for ContactParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.value, self.quoted) {
            (None, _) => write!(f, ";{}", self.name),
            (Some(v), true) => write!(f, ";{}={}", self.name, quote(v)),
            (Some(v), false) => write!(f, ";{}={}", self.name, v),
        }
    }
}

pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// One registered contact of an AOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Stable id (for the reginfo `contact id`), derived from AOR and
    /// instance (or contact URI).
    pub id: String,
    /// The canonical AOR, `sip:user@domain`.
    pub aor: String,
    /// The Contact URI as registered.
    pub contact: String,
    pub display_name: Option<String>,
    /// The `+sip.instance` value without its `<` `>` (e.g. `urn:uuid:...`).
    pub instance: Option<String>,
    /// RFC 5626 `reg-id`, kept only together with an instance.
    pub reg_id: Option<u32>,
    pub expires_at: Instant,
    /// When the binding was first created.
    pub registered_at: Instant,
    /// When a REGISTER last wrote it.
    pub refreshed_at: Instant,
    /// `q` in thousandths (`q=0.5` → 500).
    pub q: Option<u16>,
    pub call_id: String,
    pub cseq: u32,
    /// Path header values (RFC 3327), in order.
    pub path: Vec<String>,
    pub source: Source,
    /// From Contact `+sip.description` (RFC 3840 §10.20), else User-Agent.
    pub device_name: Option<String>,
    pub user_agent: Option<String>,
    /// The public GRUU, present when the binding has an instance.
    pub gruu: Option<String>,
    /// Other Contact parameters (feature tags).
    pub params: Vec<ContactParam>,
}

impl Binding {
    /// Seconds left at `now`, rounded up; 0 when expired.
    pub fn expires_in(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Whether it is still valid at `now`.
    pub fn is_active(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    /// The contact URI as an rsip URI (rsip's grammar is stricter than
    /// RFC 3261, so this may fail for a contact we stored).
    pub fn uri(&self) -> Result<rsip::Uri, rsip::Error> {
        rsip::Uri::try_from(self.contact.as_str())
    }

    /// The key that identifies this binding among its AOR's: instance and
    /// reg-id if it has an instance (RFC 5626 §6, RFC 5627 §6), else the
    /// contact URI (RFC 3261 §10.3 step 7).
    pub fn key(&self) -> BindingKey {
        BindingKey::new(self.instance.as_deref(), self.reg_id, &self.contact)
    }
}

/// What identifies a binding within its AOR.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindingKey {
    Instance {
        instance: String,
        reg_id: Option<u32>,
    },
    Contact(String),
}

impl BindingKey {
    pub fn new(instance: Option<&str>, reg_id: Option<u32>, contact: &str) -> Self {
        match instance {
            Some(i) => Self::Instance {
                instance: i.to_owned(),
                reg_id,
            },
            None => Self::Contact(contact.to_owned()),
        }
    }

    /// A stable short id for this key under `aor`.
    pub fn id(&self, aor: &str) -> String {
        let mut h = Sha256::new();
        h.update(aor.as_bytes());
        match self {
            Self::Instance { instance, reg_id } => {
                h.update(b"|i|");
                h.update(instance.as_bytes());
                h.update(reg_id.map(|r| r.to_string()).unwrap_or_default().as_bytes());
            }
            Self::Contact(c) => {
                h.update(b"|c|");
                h.update(c.as_bytes());
            }
        }
        let d = h.finalize();
        hex::encode(d.get(..6).unwrap_or(&[]))
    }
}

/// The public GRUU of an instance of an AOR (RFC 5627 §3.1):
/// `sip:alice@isc.local;gr=urn:uuid:...`. The same for every registration
/// of the instance.
pub fn public_gruu(aor: &str, instance: &str) -> String {
    format!("{aor};gr={instance}")
}

/// The canonical AOR of a URI (RFC 3261 §10.3 step 5): `sip:user@host`,
/// host lower-cased, port, parameters and headers dropped, `sips` as `sip`.
pub fn canonical_aor(uri: &str) -> Option<String> {
    let uri = uri.trim().trim_start_matches('<');
    let uri = uri.split('>').next().unwrap_or(uri);
    let rest = strip_scheme(uri)?;
    let rest = rest.split([';', '?']).next().unwrap_or(rest);
    let (user, hostport) = rest.rsplit_once('@')?;
    // user may carry a password (`user:pw`): drop it
    let user = user.split(':').next().unwrap_or(user);
    let host = strip_port(hostport).to_ascii_lowercase();
    let user = percent_encoding::percent_decode_str(user)
        .decode_utf8()
        .ok()?
        .into_owned();
    if user.is_empty() || host.is_empty() {
        return None;
    }
    Some(format!("sip:{user}@{host}"))
}

/// The canonical AOR of an rsip URI.
pub fn canonical_aor_of(uri: &rsip::Uri) -> Option<String> {
    canonical_aor(&uri.to_string())
}

fn strip_scheme(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")).then_some(rest)
}

fn strip_port(hostport: &str) -> &str {
    if let Some(v6) = hostport.strip_prefix('[') {
        // `[::1]:5060` → `[::1]`
        return match v6.find(']') {
            Some(end) => hostport.get(..end + 2).unwrap_or(hostport),
            None => hostport,
        };
    }
    hostport.split(':').next().unwrap_or(hostport)
}

/// Split a GRUU into its AOR and instance: `None` if it has no `gr`
/// parameter with a value.
pub fn parse_gruu(uri: &str) -> Option<(String, String)> {
    let uri = uri.trim().trim_start_matches('<');
    let uri = uri.split('>').next().unwrap_or(uri);
    let aor = canonical_aor(uri)?;
    let params = uri.split('?').next().unwrap_or(uri);
    let instance = params.split(';').skip(1).find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("gr").then(|| {
            percent_encoding::percent_decode_str(value.trim())
                .decode_utf8_lossy()
                .into_owned()
        })
    })?;
    (!instance.is_empty()).then_some((aor, instance))
}

/// The bindings of every AOR.
#[derive(Debug, Clone, Default)]
pub struct LocationService {
    aors: BTreeMap<String, Vec<Binding>>,
    /// One entry per AOR: its earliest binding expiry, so `expire` and
    /// `poll_timeout` touch only what is due.
    due: BTreeSet<(Instant, String)>,
}

impl LocationService {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every binding of `aor` (canonical form), expired ones not yet swept
    /// by [`expire`](Self::expire) included.
    pub fn bindings(&self, aor: &str) -> &[Binding] {
        self.aors.get(aor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The bindings of `aor` still valid at `now`, highest q first, then the
    /// most recently registered (RFC 3261 §16.6 target order).
    pub fn active_bindings(&self, now: Instant, aor: &str) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .bindings(aor)
            .iter()
            .filter(|b| b.is_active(now))
            .collect();
        v.sort_by(|a, b| {
            b.q.unwrap_or(1000)
                .cmp(&a.q.unwrap_or(1000))
                .then(b.registered_at.cmp(&a.registered_at))
        });
        v
    }

    /// The targets of a request URI: the one binding of a GRUU, else every
    /// active binding of the AOR.
    pub fn lookup(&self, now: Instant, request_uri: &str) -> Vec<&Binding> {
        if parse_gruu(request_uri).is_some() {
            return self.lookup_gruu(now, request_uri).into_iter().collect();
        }
        match canonical_aor(request_uri) {
            Some(aor) => self.active_bindings(now, &aor),
            None => Vec::new(),
        }
    }

    /// The binding a GRUU names (RFC 5627 §5.3): of its instance, the most
    /// recently refreshed flow.
    pub fn lookup_gruu(&self, now: Instant, gruu: &str) -> Option<&Binding> {
        let (aor, instance) = parse_gruu(gruu)?;
        self.find_instance(now, &aor, &instance)
    }

    /// The active binding of an instance of an AOR (most recent flow).
    pub fn find_instance(&self, now: Instant, aor: &str, instance: &str) -> Option<&Binding> {
        self.bindings(aor)
            .iter()
            .filter(|b| b.is_active(now) && b.instance.as_deref() == Some(instance))
            .max_by_key(|b| b.refreshed_at)
    }

    /// Every AOR with at least one binding.
    pub fn aors(&self) -> impl Iterator<Item = &str> {
        self.aors.keys().map(String::as_str)
    }

    /// The number of bindings over all AORs.
    pub fn len(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.aors.is_empty()
    }

    /// Replace all bindings of `aor` (the registrar commits a REGISTER's
    /// changes at once, RFC 3261 §10.3 step 7).
    pub fn set_bindings(&mut self, aor: &str, bindings: Vec<Binding>) {
        self.unindex(aor);
        if bindings.is_empty() {
            self.aors.remove(aor);
        } else {
            if let Some(first) = earliest(&bindings) {
                self.due.insert((first, aor.to_owned()));
            }
            self.aors.insert(aor.to_owned(), bindings);
        }
    }

    /// Remove and return the bindings expired at `now`, all AORs. Only the
    /// AORs with a binding due are visited.
    pub fn expire(&mut self, now: Instant) -> Vec<Binding> {
        let mut gone = Vec::new();
        while let Some((at, _)) = self.due.first() {
            if *at > now {
                break;
            }
            let Some((_, aor)) = self.due.pop_first() else {
                break;
            };
            gone.extend(self.sweep(now, aor));
        }
        gone
    }

    /// Remove and return the bindings of one AOR expired at `now`.
    pub fn expire_aor(&mut self, now: Instant, aor: &str) -> Vec<Binding> {
        if !self.aors.contains_key(aor) {
            return Vec::new();
        }
        self.unindex(aor);
        self.sweep(now, aor.to_owned())
    }

    /// The next instant a binding expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Drop `aor`'s entry from the expiry index.
    fn unindex(&mut self, aor: &str) {
        if let Some(first) = self.aors.get(aor).and_then(|v| earliest(v)) {
            self.due.remove(&(first, aor.to_owned()));
        }
    }

    /// Remove `aor`'s bindings expired at `now` (its index entry already
    /// removed) and index it again if any remain.
    fn sweep(&mut self, now: Instant, aor: String) -> Vec<Binding> {
        let Some(v) = self.aors.get_mut(&aor) else {
            return Vec::new();
        };
        let mut dead = Vec::new();
        let mut i = 0;
        while i < v.len() {
            if v.get(i).is_some_and(|b| !b.is_active(now)) {
                dead.push(v.remove(i));
            } else {
                i += 1;
            }
        }
        match earliest(v) {
            Some(first) => {
                self.due.insert((first, aor));
            }
            None => {
                self.aors.remove(&aor);
            }
        }
        dead
    }
}

/// The earliest expiry among `bindings`.
fn earliest(bindings: &[Binding]) -> Option<Instant> {
    bindings.iter().map(|b| b.expires_at).min()
}

/// Seconds as a `Duration`.
pub(crate) fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_aors() {
        assert_eq!(
            canonical_aor("<sips:alice@ISC.local:5061;transport=tls>").as_deref(),
            Some("sip:alice@isc.local")
        );
        assert_eq!(
            canonical_aor("sip:bob%40x@[::1]:5060").as_deref(),
            Some("sip:bob@x@[::1]")
        );
        assert_eq!(canonical_aor("sip:isc.local"), None);
        assert_eq!(canonical_aor("tel:+123"), None);
    }

    #[test]
    fn gruu_round_trip() {
        let g = public_gruu(
            "sip:alice@isc.local",
            "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        );
        assert_eq!(
            g,
            "sip:alice@isc.local;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
        );
        assert_eq!(
            parse_gruu(&g),
            Some((
                "sip:alice@isc.local".to_owned(),
                "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6".to_owned()
            ))
        );
        assert_eq!(parse_gruu("sip:alice@isc.local;gr"), None);
    }

    fn binding(aor: &str, contact: &str, now: Instant, secs_left: u64) -> Binding {
        Binding {
            id: contact.to_owned(),
            aor: aor.to_owned(),
            contact: contact.to_owned(),
            display_name: None,
            instance: None,
            reg_id: None,
            expires_at: now + Duration::from_secs(secs_left),
            registered_at: now,
            refreshed_at: now,
            q: None,
            call_id: "c".to_owned(),
            cseq: 1,
            path: Vec::new(),
            source: Source {
                addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
                transport: rsip::Transport::Udp,
            },
            device_name: None,
            user_agent: None,
            gruu: None,
            params: Vec::new(),
        }
    }

    #[test]
    fn expiry_index_follows_the_bindings() {
        let t0 = Instant::now();
        let (a, b) = ("sip:a@x", "sip:b@x");
        let mut ls = LocationService::new();
        ls.set_bindings(
            a,
            vec![binding(a, "sip:a@1", t0, 60), binding(a, "sip:a@2", t0, 30)],
        );
        ls.set_bindings(b, vec![binding(b, "sip:b@1", t0, 45)]);
        assert_eq!(ls.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        // a refresh moves a's earliest expiry past b's
        ls.set_bindings(a, vec![binding(a, "sip:a@1", t0, 60)]);
        assert_eq!(ls.poll_timeout(), Some(t0 + Duration::from_secs(45)));
        assert!(ls.expire(t0 + Duration::from_secs(44)).is_empty());
        let gone = ls.expire(t0 + Duration::from_secs(45));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone.first().map(|g| g.contact.as_str()), Some("sip:b@1"));
        assert!(ls.bindings(b).is_empty());
        assert_eq!(ls.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        assert_eq!(ls.expire_aor(t0 + Duration::from_secs(60), a).len(), 1);
        assert_eq!(ls.poll_timeout(), None);
        assert!(ls.is_empty());
    }

    proptest! {
        #[test]
        fn uri_helpers_never_panic(s in "\\PC{0,40}") {
            let _ = canonical_aor(&s);
            let _ = parse_gruu(&s);
        }
    }
}
