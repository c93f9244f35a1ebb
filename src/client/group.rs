//! Group chat, client side (seed 004 7.1.1.3–7.1.1.11), sans-IO: what a
//! group INVITE carries (the conference factory's recipient list, RFC 5366,
//! with `?Replaces=` to extend a 1-1 chat, seed 002 App. M), REFER bodies
//! (RFC 5368), and the conference-state watch (RFC 4575 over RFC 6665)
//! that turns NOTIFYs into a roster.
//!
//! The INVITE dialog and MSRP of a group session are a
//! [`super::chat::ChatSession`] with a [`GroupLeg`]; [`super::chats::Chats`]
//! runs the commands and routes the SUBSCRIBE dialog here.

use std::collections::BTreeSet;
use std::time::Instant;

use rsip::{Method, Request, Response};

use super::USER_AGENT;
use super::chat::{ChatId, ChatLocal};
use super::ids::UaIds;
use crate::proto::bodies::conference_info::{ConferenceInfo, ElementState, EndpointStatus, User};
use crate::proto::bodies::multipart::{Multipart, Part};
use crate::proto::bodies::resource_lists::{Entry, Replaces, ResourceLists};
use crate::proto::ids::IdGen;
use crate::proto::sip::build::{RequestBuilder, to_tag};
use crate::proto::sip::headers::{HeadersExt, NameAddr, make_header};
use crate::proto::sip::message::parse_uri;

/// The IM feature tag of group sessions (SPEC.md).
pub const IM_FEATURE_TAG: &str = "+g.oma.sip-im";
/// The conference event package (RFC 4575 §3).
pub const CONFERENCE_EVENT: &str = "conference";
/// Seconds we ask for the conference subscription.
pub const CONFERENCE_EXPIRES: u32 = 600;

/// What makes a chat session a group session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLeg {
    /// The factory, a pre-defined group or a session identity.
    pub request_uri: String,
    /// The recipient list (resource-lists XML) of a factory INVITE.
    pub list: Option<Vec<u8>>,
    /// The session identity (Contact with `isfocus`), once known.
    pub identity: Option<String>,
}

/// Group settings of a user agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSettings {
    /// The conference factory (`sip:conf-factory@domain`).
    pub factory_uri: String,
    /// The service's limit on ad-hoc groups, when known (seed 004 7.1.1.3).
    pub max_adhoc_group_size: Option<u32>,
    /// Users the local user blocked: flagged in the roster.
    pub blocklist: BTreeSet<String>,
}

/// The session identity named by a Contact value, if it carries `isfocus`
/// (RFC 4579 §5.3).
pub fn focus_identity(contact: &str) -> Option<String> {
    let c = contact.trim();
    let (uri, params) = match c.find('<') {
        Some(i) => {
            let rest = &c[i + 1..];
            let end = rest.find('>')?;
            (&rest[..end], &rest[end + 1..])
        }
        None => c.split_once(';').unwrap_or((c, "")),
    };
    let has = |s: &str| {
        s.split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("isfocus"))
    };
    if !(has(params) || has(uri)) {
        return None;
    }
    // The identity is the URI without its parameters.
    Some(uri.split(';').next().unwrap_or(uri).trim().to_owned())
}

/// Two URIs name the same user: compared without parameters, `sip:` and case.
pub fn same_uri(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().trim_start_matches('<').trim_end_matches('>');
        let s = s.split([';', '?']).next().unwrap_or(s);
        s.trim_start_matches("sips:")
            .trim_start_matches("sip:")
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

/// The recipient list of a factory INVITE: `extend` (the 1-1 peer and our
/// leg's Call-ID / tags, seed 002 App. M) first, then the new users.
/// The Replaces value is %-escaped in the URI (RFC 3261 §19.1.1) and the
/// XML writer escapes its `&`.
pub fn recipient_list(extend: Option<(&str, &Replaces)>, users: &[String]) -> Vec<u8> {
    let mut entries = Vec::new();
    if let Some((peer, replaces)) = extend {
        entries.push(Entry::with_replaces(peer, replaces));
    }
    entries.extend(
        users
            .iter()
            .filter(|u| extend.is_none_or(|(p, _)| !same_uri(p, u)))
            .map(|u| Entry::new(u.clone())),
    );
    ResourceLists::of(entries).to_bytes()
}

/// The body of a factory INVITE: multipart/mixed of SDP and the list
/// (`Content-Disposition: recipient-list`, RFC 5366 §4). Returns
/// Content-Type and bytes.
pub fn factory_body(sdp: Vec<u8>, list: Vec<u8>) -> (String, Vec<u8>) {
    let mp = Multipart::new(vec![
        Part::new("application/sdp", sdp),
        Part::new("application/resource-lists+xml", list)
            .with_header("Content-Disposition", "recipient-list"),
    ]);
    (mp.content_type(), mp.to_bytes())
}

/// Headers and body of a REFER inviting `users` (seed 004 7.1.1.7): one
/// user by `Refer-To` with `Refer-Sub: false`; several by RFC 5368
/// (`Require: multiple-refer`, a `cid:` Refer-To naming the list).
pub fn refer_parts(
    users: &[String],
    token: &str,
    aor: &str,
) -> (Vec<rsip::Header>, Option<(String, Vec<u8>)>) {
    let mut h = vec![make_header("User-Agent", USER_AGENT)];
    if let [one] = users {
        h.push(make_header("Refer-To", &format!("<{one}>")));
        h.push(make_header("Refer-Sub", "false"));
        return (h, None);
    }
    let domain = aor.rsplit('@').next().unwrap_or("localhost");
    let cid = format!(
        "{}@{domain}",
        token.replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    h.push(make_header("Refer-To", &format!("<cid:{cid}>")));
    h.push(make_header("Refer-Sub", "false"));
    h.push(make_header("Require", "multiple-refer, norefersub"));
    h.push(make_header("Content-Disposition", "recipient-list"));
    h.push(make_header("Content-ID", &format!("<{cid}>")));
    let list = ResourceLists::of(users.iter().map(|u| Entry::new(u.clone())).collect()).to_bytes();
    (h, Some(("application/resource-lists+xml".into(), list)))
}

/// Where a participant stands, as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterStatus {
    Joined,
    Ringing,
    Left,
    /// Another endpoint status (on-hold, ...), as written.
    Other(String),
}

/// One line of the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    pub user: String,
    pub display_name: Option<String>,
    pub status: RosterStatus,
    /// Our own entry (`yourown`, seed 004 7.2.2.10).
    pub own: bool,
    /// On the local blocklist.
    pub blocked: bool,
}

fn status_of(u: &User) -> RosterStatus {
    if u.state == ElementState::Deleted {
        return RosterStatus::Left;
    }
    match u.status() {
        Some(EndpointStatus::Connected) | None => RosterStatus::Joined,
        Some(EndpointStatus::Alerting | EndpointStatus::Pending | EndpointStatus::DialingOut) => {
            RosterStatus::Ringing
        }
        Some(EndpointStatus::Disconnected | EndpointStatus::Disconnecting) => RosterStatus::Left,
        Some(other) => RosterStatus::Other(other.as_str().to_owned()),
    }
}

/// The roster of a conference-info document (seed 004 7.1.1.11).
pub fn roster(info: &ConferenceInfo, own: &str, blocklist: &BTreeSet<String>) -> Vec<RosterEntry> {
    info.users
        .iter()
        .map(|u| RosterEntry {
            user: u.entity.clone(),
            display_name: u.display_text.clone(),
            status: status_of(u),
            own: u.yourown || same_uri(&u.entity, own),
            blocked: blocklist.iter().any(|b| same_uri(b, &u.entity)),
        })
        .collect()
}

/// Our subscription to one conference's state (RFC 4575, RFC 6665).
#[derive(Debug, Clone)]
pub struct ConferenceWatch {
    pub chat: ChatId,
    pub identity: String,
    pub call_id: String,
    pub from_tag: String,
    pub remote_tag: Option<String>,
    pub cseq: u32,
    pub auth_tries: u8,
    doc: Option<ConferenceInfo>,
    /// Terminated by the focus or by us.
    pub ended: bool,
    /// When to refresh the subscription (RFC 6665 §4.1.2.1).
    refresh_at: Option<Instant>,
}

impl ConferenceWatch {
    pub fn new(chat: ChatId, identity: &str, ids: &mut dyn IdGen) -> Self {
        ConferenceWatch {
            chat,
            identity: identity.to_owned(),
            call_id: ids.call_id(),
            from_tag: ids.tag(),
            remote_tag: None,
            cseq: 0,
            auth_tries: 0,
            doc: None,
            ended: false,
            refresh_at: None,
        }
    }

    /// The SUBSCRIBE (seed 004 7.1.1.11): to the session identity, Event:
    /// conference, the IM feature tag. `expires` 0 ends it.
    pub fn subscribe(
        &mut self,
        local: &ChatLocal,
        ids: &mut dyn IdGen,
        expires: u32,
    ) -> Option<Request> {
        self.cseq += 1;
        let uri = parse_uri(&self.identity).ok()?;
        let mut to = NameAddr::new(self.identity.clone());
        if let Some(t) = &self.remote_tag {
            to = to.with_param("tag", Some(t));
        }
        let b = RequestBuilder::new(
            Method::Subscribe,
            uri,
            super::chat::via(local.sip_local, local.transport, &ids.branch()),
            NameAddr::new(local.aor.clone()),
            &self.from_tag,
            to,
            &self.call_id,
            self.cseq,
        )
        .contact(format!("<{}>", local.contact_uri))
        .header(make_header("Event", CONFERENCE_EVENT))
        .header(make_header("Accept", "application/conference-info+xml"))
        .header(make_header(
            "Accept-Contact",
            &format!("*;{IM_FEATURE_TAG}"),
        ))
        .header(make_header("User-Agent", USER_AGENT))
        .header(make_header("Expires", &expires.to_string()));
        Some(b.build())
    }

    /// A response to our SUBSCRIBE: keeps the notifier's tag and schedules
    /// the refresh at three quarters of the granted time.
    pub fn handle_response(&mut self, now: Instant, resp: &Response) {
        let code = resp.status_code.code();
        if (200..300).contains(&code) {
            if self.remote_tag.is_none() {
                self.remote_tag = to_tag(&resp.headers);
            }
            let granted = resp
                .headers
                .get_raw("Expires")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(u64::from(CONFERENCE_EXPIRES));
            self.refresh_at = (!self.ended && granted > 0)
                .then(|| now + std::time::Duration::from_secs(granted * 3 / 4));
        } else if code >= 300 && !matches!(code, 401 | 407) {
            self.ended = true;
            self.refresh_at = None;
        }
    }

    /// When the subscription wants refreshing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended { None } else { self.refresh_at }
    }

    /// The refresh is due: the in-dialog SUBSCRIBE.
    pub fn refresh(&mut self, local: &ChatLocal, ids: &mut dyn IdGen) -> Option<Request> {
        self.refresh_at = None;
        self.subscribe(local, ids, CONFERENCE_EXPIRES)
    }

    /// Is this NOTIFY ours (Call-ID and our tag)?
    pub fn matches(&self, req: &Request) -> bool {
        crate::proto::sip::build::call_id(&req.headers).as_deref() == Some(self.call_id.as_str())
            && to_tag(&req.headers).as_deref() == Some(self.from_tag.as_str())
    }

    /// A NOTIFY: applies its document (full or partial, RFC 4575 §4.6).
    /// Returns the roster when it changed.
    pub fn handle_notify(
        &mut self,
        _now: Instant,
        req: &Request,
        own: &str,
        blocklist: &BTreeSet<String>,
    ) -> Option<Vec<RosterEntry>> {
        if self.remote_tag.is_none() {
            self.remote_tag = crate::proto::sip::build::from_tag(&req.headers);
        }
        if req
            .headers
            .get_raw("Subscription-State")
            .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"))
        {
            self.ended = true;
        }
        if req.body.is_empty() {
            return None;
        }
        let n = match ConferenceInfo::parse(&req.body) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "unreadable conference-info");
                return None;
            }
        };
        match &mut self.doc {
            Some(doc) if n.state != ElementState::Full => {
                if let Err(e) = doc.apply(&n) {
                    tracing::debug!(error = %e, "conference-info not applied");
                    return None;
                }
            }
            _ => match ConferenceInfo::from_first(&n) {
                Ok(d) => self.doc = Some(d),
                Err(e) => {
                    tracing::debug!(error = %e, "first conference-info is not full");
                    return None;
                }
            },
        }
        self.doc.as_ref().map(|d| roster(d, own, blocklist))
    }

    /// The document as it stands.
    pub fn document(&self) -> Option<&ConferenceInfo> {
        self.doc.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isfocus_contact_gives_the_identity() {
        assert_eq!(
            focus_identity("<sip:conf-1@isc.local>;isfocus").as_deref(),
            Some("sip:conf-1@isc.local")
        );
        assert_eq!(
            focus_identity("<sip:conf-1@isc.local;transport=udp>;+g.oma.sip-im;isfocus").as_deref(),
            Some("sip:conf-1@isc.local")
        );
        assert_eq!(focus_identity("<sip:bob@10.0.0.1>"), None);
    }

    #[test]
    fn replaces_is_escaped_in_the_uri_and_the_xml() {
        let r = Replaces::new("a1@host", "srv.x", "own&1");
        let xml = String::from_utf8(recipient_list(
            Some(("sip:bob@isc.local", &r)),
            &[
                "sip:ted@isc.local".to_owned(),
                "sip:bob@isc.local".to_owned(),
            ],
        ))
        .unwrap();
        assert!(
            xml.contains(
                "sip:bob@isc.local?Replaces=a1%40host%3Bto-tag%3Dsrv.x%3Bfrom-tag%3Down%261"
            ),
            "{xml}"
        );
        assert!(xml.contains("sip:ted@isc.local"));
        assert_eq!(xml.matches("sip:bob@isc.local").count(), 1, "{xml}");
        let back = ResourceLists::parse(xml.as_bytes()).unwrap();
        let e = back.entries()[0].clone();
        assert_eq!(e.replaces(), Some(r));
    }

    #[test]
    fn refer_one_and_many() {
        let (h, b) = refer_parts(&["sip:carol@isc.local".into()], "t1", "sip:alice@isc.local");
        assert!(b.is_none());
        assert!(
            h.iter()
                .any(|h| h.to_string() == "Refer-To: <sip:carol@isc.local>")
        );
        let (h, b) = refer_parts(
            &["sip:carol@isc.local".into(), "sip:ted@isc.local".into()],
            "t-1",
            "sip:alice@isc.local",
        );
        assert!(
            h.iter()
                .any(|h| h.to_string() == "Refer-To: <cid:t1@isc.local>")
        );
        assert!(
            h.iter()
                .any(|h| h.to_string() == "Content-ID: <t1@isc.local>")
        );
        assert!(
            String::from_utf8(b.unwrap().1)
                .unwrap()
                .contains("sip:ted@isc.local")
        );
    }

    #[test]
    fn roster_marks_own_left_ringing_and_blocked() {
        use crate::proto::bodies::conference_info::Endpoint;
        let mut info = ConferenceInfo::new("sip:conf-1@isc.local", 1);
        let mut a = User::new("sip:alice@isc.local");
        a.yourown = true;
        a.endpoints
            .push(Endpoint::new("sip:alice@h", EndpointStatus::Connected));
        let mut b = User::new("sip:bob@isc.local");
        b.endpoints
            .push(Endpoint::new("sip:bob@h", EndpointStatus::Disconnected));
        let mut c = User::new("sip:carol@isc.local");
        c.endpoints
            .push(Endpoint::new("sip:carol@h", EndpointStatus::Alerting));
        info.users = vec![a, b, c];
        let block: BTreeSet<String> = ["sip:carol@isc.local".to_owned()].into();
        let r = roster(&info, "sip:nobody@x", &block);
        assert!(r[0].own && r[0].status == RosterStatus::Joined && !r[0].blocked);
        assert_eq!(r[1].status, RosterStatus::Left);
        assert!(r[2].status == RosterStatus::Ringing && r[2].blocked);
    }
}

#[cfg(test)]
mod refresh_tests {
    use super::*;
    use crate::proto::ids::SeqIds;

    #[test]
    fn a_granted_subscription_is_refreshed_in_dialog_before_it_expires() {
        let mut ids = SeqIds::new("g");
        let local = ChatLocal {
            aor: "sip:alice@isc.local".into(),
            display_name: None,
            contact_uri: "sip:alice@127.0.0.1:5070;transport=udp".into(),
            instance_id: None,
            sip_local: "127.0.0.1:5070".parse().unwrap(),
            transport: crate::proto::sip::transaction::Transport::Udp,
            msrp_local: "127.0.0.1:5071".parse().unwrap(),
            timer: Default::default(),
            composing: Default::default(),
            msrp_chunk_size: 2048,
            msrp_tls: false,
        };
        let mut w = ConferenceWatch::new(1, "sip:conf-1@isc.local", &mut ids);
        let sub = w.subscribe(&local, &mut ids, CONFERENCE_EXPIRES).unwrap();
        assert_eq!(sub.headers.get_raw("Event").as_deref(), Some("conference"));
        let now = Instant::now();
        let ok = crate::proto::sip::build::response_with(
            &sub,
            200,
            Some("focus1"),
            None,
            vec![make_header("Expires", "400")],
        );
        w.handle_response(now, &ok);
        assert_eq!(
            w.poll_timeout(),
            Some(now + std::time::Duration::from_secs(300))
        );
        let again = w.refresh(&local, &mut ids).unwrap();
        assert!(again.headers.get_raw("To").unwrap().contains("tag=focus1"));
        assert!(again.headers.get_raw("CSeq").unwrap().starts_with('2'));
        assert_eq!(w.poll_timeout(), None);
    }
}
