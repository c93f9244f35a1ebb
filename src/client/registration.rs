//! The registration of one device (RFC 3261 §10.2, RFC 5627 GRUU): its
//! Call-ID and CSeq, what the registrar granted, when to refresh (at half
//! the granted time) and when to retry after a failure (doubling backoff).

use std::time::{Duration, Instant};

use crate::proto::sip::headers::{Contact, ContactValue, HeadersExt, unquote};

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    /// Nothing sent yet.
    Idle,
    /// A REGISTER is in flight.
    Registering,
    /// The registrar holds our binding.
    Registered,
    /// The last REGISTER failed; a retry is scheduled (or not, if given up).
    Failed,
    /// The Expires: 0 REGISTER is in flight.
    Unregistering,
    /// Our binding is removed.
    Unregistered,
}

/// The registration state of the UA.
#[derive(Debug, Clone)]
pub struct Registration {
    pub call_id: String,
    pub cseq: u32,
    pub state: RegState,
    /// Our public GRUU from the last 200 (RFC 5627 §5.1 `pub-gruu`).
    pub gruu: Option<String>,
    /// Seconds granted by the last 200.
    pub granted: Option<u32>,
    /// Seconds to ask for (raised by a 423's Min-Expires).
    pub expires: u32,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
    retry_base: Duration,
    retry_max: Duration,
}

impl Registration {
    pub fn new(call_id: String, expires: u32, retry_base: Duration, retry_max: Duration) -> Self {
        Registration {
            call_id,
            cseq: 0,
            state: RegState::Idle,
            gruu: None,
            granted: None,
            expires,
            refresh_at: None,
            retry_at: None,
            failures: 0,
            retry_base,
            retry_max,
        }
    }

    /// The CSeq number for the next REGISTER (RFC 3261 §10.2.4: same
    /// Call-ID, CSeq one higher each time).
    pub fn next_cseq(&mut self) -> u32 {
        self.cseq += 1;
        self.cseq
    }

    pub fn is_registered(&self) -> bool {
        self.state == RegState::Registered
    }

    /// A REGISTER went out.
    pub fn sending(&mut self) {
        self.state = RegState::Registering;
        self.refresh_at = None;
        self.retry_at = None;
    }

    /// A 2xx granted `granted` seconds. Returns true when this is news for
    /// the application (first registration, recovery, or a new GRUU).
    pub fn succeeded(&mut self, now: Instant, granted: u32, gruu: Option<String>) -> bool {
        let news = self.granted.is_none() || self.failures > 0 || gruu != self.gruu;
        self.state = RegState::Registered;
        self.granted = Some(granted);
        self.gruu = gruu;
        self.failures = 0;
        self.retry_at = None;
        // refresh at half of the granted time
        self.refresh_at = Some(now + Duration::from_secs(u64::from(granted.max(2)) / 2));
        news
    }

    /// The REGISTER failed; `retry` false gives up. Returns the retry delay.
    pub fn failed(&mut self, now: Instant, retry: bool) -> Option<Duration> {
        self.state = RegState::Failed;
        self.refresh_at = None;
        self.granted = None;
        self.failures = self.failures.saturating_add(1);
        if !retry {
            self.retry_at = None;
            return None;
        }
        let factor = 1u32 << (self.failures - 1).min(16);
        let delay = self.retry_base.saturating_mul(factor).min(self.retry_max);
        self.retry_at = Some(now + delay);
        Some(delay)
    }

    /// Re-register as soon as possible (e.g. a request to the server timed out).
    pub fn retry_now(&mut self, now: Instant) {
        if matches!(self.state, RegState::Registered | RegState::Failed) {
            self.refresh_at = Some(now);
        }
    }

    /// The un-REGISTER went out.
    pub fn unregistering(&mut self) {
        self.state = RegState::Unregistering;
        self.refresh_at = None;
        self.retry_at = None;
    }

    pub fn unregistered(&mut self) {
        self.state = RegState::Unregistered;
        self.gruu = None;
        self.granted = None;
    }

    /// Whether a REGISTER (refresh or retry) is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.poll_timeout().is_some_and(|at| at <= now)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            RegState::Registered => self.refresh_at,
            RegState::Failed => self.retry_at.or(self.refresh_at),
            _ => None,
        }
    }
}

/// Our binding in a 2xx to REGISTER: the Contact whose `+sip.instance` is
/// ours (RFC 5627 §5.1), or the one whose URI is ours.
pub fn our_binding(
    response: &rsip::Response,
    instance: &str,
    contact_uri: &str,
) -> Option<ContactValue> {
    let contacts: Vec<ContactValue> = response
        .headers
        .all::<Contact>()
        .unwrap_or_default()
        .into_iter()
        .flat_map(|c| match c {
            Contact::Addresses(a) => a,
            Contact::Star => Vec::new(),
        })
        .collect();
    let by_instance = contacts
        .iter()
        .find(|c| c.instance().is_some_and(|i| strip_instance(&i) == instance));
    by_instance
        .or_else(|| contacts.iter().find(|c| c.uri() == contact_uri))
        .cloned()
}

/// The expiry a registrar granted our binding: the Contact's `expires`,
/// else the Expires header, else what we asked for (RFC 3261 §10.2.4).
pub fn granted_expires(
    response: &rsip::Response,
    binding: Option<&ContactValue>,
    asked: u32,
) -> u32 {
    binding
        .and_then(ContactValue::expires)
        .or_else(|| {
            response
                .headers
                .get_raw("Expires")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(asked)
}

/// `"<urn:uuid:x>"` / `<urn:uuid:x>` / `urn:uuid:x` → `urn:uuid:x`.
pub fn strip_instance(v: &str) -> String {
    let v = unquote(v.trim());
    let v = v.trim();
    v.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(v)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(contact: &str) -> rsip::Response {
        let raw = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
        );
        match crate::proto::sip::message::parse_message(raw.as_bytes()).unwrap() {
            rsip::SipMessage::Response(r) => r,
            rsip::SipMessage::Request(_) => unreachable!(),
        }
    }

    #[test]
    fn finds_our_binding_and_gruu() {
        let r = ok(
            "<sip:a@127.0.0.1:1;transport=udp>;+sip.instance=\"<urn:uuid:o>\";expires=100, <sip:a@127.0.0.1:2>;+sip.instance=\"<urn:uuid:me>\";pub-gruu=\"sip:a@x;gr=urn:uuid:me\";expires=300",
        );
        let b = our_binding(&r, "urn:uuid:me", "sip:none").unwrap();
        assert_eq!(b.pub_gruu().as_deref(), Some("sip:a@x;gr=urn:uuid:me"));
        assert_eq!(granted_expires(&r, Some(&b), 3600), 300);
        assert_eq!(granted_expires(&r, None, 3600), 3600);
    }

    #[test]
    fn refresh_at_half_and_backoff() {
        let t0 = Instant::now();
        let mut reg = Registration::new(
            "c".into(),
            3600,
            Duration::from_secs(1),
            Duration::from_secs(5),
        );
        assert!(reg.succeeded(t0, 600, None));
        assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(300)));
        assert!(!reg.succeeded(t0, 600, None));
        let d: Vec<_> = (0..5)
            .map(|_| reg.failed(t0, true).unwrap().as_secs())
            .collect();
        assert_eq!(d, vec![1, 2, 4, 5, 5]);
        assert!(reg.succeeded(t0, 600, None));
        assert_eq!(reg.failed(t0, false), None);
        assert_eq!(reg.poll_timeout(), None);
    }
}
