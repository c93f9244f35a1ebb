//! What a deferred MSRP SEND carries (seed 002 D.2 B), read back into one
//! message for the user: a stored pager MESSAGE as `message/sip`, a stored
//! session message as `multipart/mixed` of `message/sip` (INVITE, 200) and
//! `message/msrp` (the SEND), or a bare `message/cpim`. The original
//! Call-ID / Message-ID give the duplicate key, the `Date` the server added
//! (RFC 3261 §20.17, RFC 1123 form) the time shown.

use sha2::Digest;

use crate::proto::bodies::cpim::CpimMessage;
use crate::proto::bodies::multipart::Multipart;
use crate::proto::sip::build::{call_id, cseq};
use crate::proto::sip::headers::{HeadersExt, NameAddr};
use crate::proto::sip::message::parse_message;

/// Why a deferred payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnwrapError {
    #[error("unsupported deferred payload type {0:?}")]
    UnsupportedType(String),
    #[error("the encapsulated SIP message does not parse: {0}")]
    BadSip(String),
    #[error("the encapsulated SIP message is not a request")]
    NotARequest,
    #[error("the multipart body does not parse: {0}")]
    BadMultipart(String),
    #[error("the multipart body has no {0} part")]
    MissingPart(&'static str),
    #[error("the encapsulated MSRP SEND does not parse: {0}")]
    BadMsrp(String),
    #[error("the CPIM body does not parse: {0}")]
    BadCpim(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
}

/// How the message first reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateKind {
    /// A pager MESSAGE (RFC 3428).
    Pager,
    /// A message of a chat session (MSRP).
    Session,
}

/// A deferred message, unwrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateMessage {
    pub kind: LateKind,
    /// The original sender: P-Asserted-Identity, else From (bare URI).
    pub from: String,
    pub to: String,
    /// The original Call-ID (of the MESSAGE, or of the session's INVITE).
    pub call_id: String,
    /// The MSRP Message-ID (sessions), or the MESSAGE's `Message-ID` header if any.
    pub message_id: Option<String>,
    /// The inner content type (after CPIM).
    pub content_type: String,
    pub body: Vec<u8>,
    /// The `Date` as written (or the CPIM DateTime).
    pub date: Option<String>,
    /// That date, seconds since the Unix epoch.
    pub sent_unix: Option<i64>,
    /// What identifies the message for duplicate suppression (the store's key).
    pub key: String,
}

impl LateMessage {
    /// The text to show: the body of a `text/*` content, else a short note.
    pub fn text(&self) -> String {
        if self.content_type.to_ascii_lowercase().starts_with("text/") {
            String::from_utf8_lossy(&self.body).into_owned()
        } else {
            format!("[{}, {} bytes]", self.content_type, self.body.len())
        }
    }
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or(ct)
        .trim()
        .to_ascii_lowercase()
}

fn bare(v: &str) -> String {
    NameAddr::parse(v).map(|n| n.uri).unwrap_or_else(|_| {
        v.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    })
}

/// Reads the payload of one deferred SEND (`content_type` is its MSRP Content-Type).
pub fn unwrap_deferred(content_type: &str, body: &[u8]) -> Result<LateMessage, UnwrapError> {
    match media_type(content_type).as_str() {
        "message/sip" => from_pager(body),
        "multipart/mixed" => from_session(content_type, body),
        "message/cpim" => from_cpim(body),
        other => Err(UnwrapError::UnsupportedType(other.to_string())),
    }
}

fn sip_request(bytes: &[u8]) -> Result<rsip::Request, UnwrapError> {
    match parse_message(bytes) {
        Ok(rsip::SipMessage::Request(r)) => Ok(r),
        Ok(_) => Err(UnwrapError::NotARequest),
        Err(e) => Err(UnwrapError::BadSip(e.to_string())),
    }
}

/// Sender and recipient of a stored request.
fn parties(req: &rsip::Request) -> Result<(String, String), UnwrapError> {
    let from = req
        .headers
        .get_raw("P-Asserted-Identity")
        .or_else(|| req.headers.get_raw("From"))
        .map(|v| bare(&v))
        .ok_or(UnwrapError::MissingHeader("From"))?;
    let to = req
        .headers
        .get_raw("To")
        .map(|v| bare(&v))
        .unwrap_or_default();
    Ok((from, to))
}

/// Content type and body, with a CPIM wrapper taken off (RFC 3862); the
/// CPIM DateTime is returned too.
fn content(
    ct: Option<String>,
    body: Vec<u8>,
) -> Result<(String, Vec<u8>, Option<String>), UnwrapError> {
    let ct = ct.unwrap_or_else(|| "text/plain".into());
    if media_type(&ct) == "message/cpim" {
        let m = CpimMessage::parse(&body).map_err(|e| UnwrapError::BadCpim(e.to_string()))?;
        let inner = m.content_type().unwrap_or("text/plain").to_string();
        return Ok((inner, m.body.clone(), m.date_time().map(str::to_string)));
    }
    Ok((ct, body, None))
}

/// Seed 002 D.2 B.1: `message/sip`, a stored MESSAGE with a Date added.
fn from_pager(body: &[u8]) -> Result<LateMessage, UnwrapError> {
    let req = sip_request(body)?;
    let (from, to) = parties(&req)?;
    let cid = call_id(&req.headers).ok_or(UnwrapError::MissingHeader("Call-ID"))?;
    let seq = cseq(&req.headers).map(|c| c.0).unwrap_or(0);
    let message_id = req
        .headers
        .get_raw("Message-ID")
        .map(|m| m.trim().to_string());
    // The store's key (server deferred_message_store::pager_key): a resend
    // keeps its Message-ID, or its Call-ID and CSeq (RFC 3261 §8.1.1.4-5).
    let key = match &message_id {
        Some(m) => format!("mid:{m}"),
        None => format!("sip:{cid} {seq}"),
    };
    let date = req.headers.get_raw("Date").map(|d| d.trim().to_string());
    let (content_type, body, cpim_date) = content(req.headers.get_raw("Content-Type"), req.body)?;
    let (date, sent_unix) = dated(date, cpim_date);
    Ok(LateMessage {
        kind: LateKind::Pager,
        from,
        to,
        call_id: cid,
        message_id,
        content_type,
        body,
        date,
        sent_unix,
        key,
    })
}

/// The Date wins (the server's arrival stamp, seed 002 D.2 step 8); the
/// CPIM DateTime stands in without one.
fn dated(date: Option<String>, cpim: Option<String>) -> (Option<String>, Option<i64>) {
    if let Some(d) = date {
        let t = parse_http_date(&d);
        if t.is_some() {
            return (Some(d), t);
        }
    }
    match cpim {
        Some(c) => {
            let t = parse_rfc3339(&c);
            (Some(c), t)
        }
        None => (None, None),
    }
}

/// Seed 002 D.2 B.2: `multipart/mixed` of the session's INVITE (and 200)
/// as `message/sip` and the SEND as `message/msrp`.
fn from_session(content_type: &str, body: &[u8]) -> Result<LateMessage, UnwrapError> {
    let mp = Multipart::parse_with_content_type(content_type, body)
        .map_err(|e| UnwrapError::BadMultipart(e.to_string()))?;
    let invite = mp
        .parts
        .iter()
        .filter(|p| p.media_type().as_deref() == Some("message/sip"))
        .find_map(|p| sip_request(&p.body).ok())
        .ok_or(UnwrapError::MissingPart("message/sip (the INVITE)"))?;
    let send = mp
        .part_of_type("message/msrp")
        .ok_or(UnwrapError::MissingPart("message/msrp"))?;
    let send = crate::proto::msrp::parse_message(&send.body)
        .map_err(|e| UnwrapError::BadMsrp(e.to_string()))?;
    let (from, to) = parties(&invite)?;
    let cid = call_id(&invite.headers).ok_or(UnwrapError::MissingHeader("Call-ID"))?;
    let mid = send
        .message_id()
        .ok_or(UnwrapError::MissingHeader("Message-ID"))?
        .to_string();
    let date = send
        .header("Date")
        .map(str::to_string)
        .or_else(|| invite.headers.get_raw("Date"))
        .map(|d| d.trim().to_string());
    let (content_type, body, cpim_date) = content(
        send.content_type().map(str::to_string),
        send.body.clone().unwrap_or_default(),
    )?;
    let (date, sent_unix) = dated(date, cpim_date);
    Ok(LateMessage {
        kind: LateKind::Session,
        from,
        to,
        key: format!("msrp:{cid} {mid}"),
        call_id: cid,
        message_id: Some(mid),
        content_type,
        body,
        date,
        sent_unix,
    })
}

/// A bare `message/cpim` (SPEC: the other deferred wrapper): From and
/// DateTime come from CPIM; there is no Call-ID, the key is the DateTime,
/// sender and body.
fn from_cpim(body: &[u8]) -> Result<LateMessage, UnwrapError> {
    let m = CpimMessage::parse(body).map_err(|e| UnwrapError::BadCpim(e.to_string()))?;
    let from = m
        .from()
        .map(|a| a.uri)
        .ok_or(UnwrapError::MissingHeader("From"))?;
    let to = m.to().first().map(|a| a.uri.clone()).unwrap_or_default();
    let at = m.date_time().map(str::to_string);
    let key = format!(
        "cpim:{from} {} {}",
        at.as_deref().unwrap_or(""),
        hex::encode(sha2::Sha256::digest(&m.body))
    );
    Ok(LateMessage {
        kind: LateKind::Session,
        from,
        to,
        call_id: String::new(),
        message_id: None,
        content_type: m.content_type().unwrap_or("text/plain").to_string(),
        body: m.body.clone(),
        sent_unix: at.as_deref().and_then(parse_rfc3339),
        date: at,
        key,
    })
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn hms(s: &str) -> Option<(i64, i64, i64)> {
    let mut it = s.split(':');
    let h: i64 = it.next()?.trim().parse().ok()?;
    let m: i64 = it.next()?.trim().parse().ok()?;
    let sec: i64 = it.next()?.trim().parse().ok()?;
    if it.next().is_some()
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..61).contains(&sec)
    {
        return None;
    }
    Some((h, m, sec))
}

/// RFC 1123 date (RFC 3261 §20.17): `Thu, 21 Feb 2002 13:02:03 GMT` →
/// seconds since the epoch. `None` for anything else.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.split_once(',').map(|(_, r)| r).unwrap_or(s);
    let mut f = rest.split_whitespace();
    let d: i64 = f.next()?.parse().ok()?;
    let mon = f.next()?;
    const MO: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let m = MO.iter().position(|x| mon.eq_ignore_ascii_case(x))? as i64 + 1;
    let y: i64 = f.next()?.parse().ok()?;
    let (h, mi, sec) = hms(f.next()?)?;
    if !f.next().is_some_and(|z| z.eq_ignore_ascii_case("GMT")) || !(1..=31).contains(&d) {
        return None;
    }
    if !(0..=9999).contains(&y) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// RFC 3339 date-time (CPIM DateTime, RFC 3862 §4.7.2):
/// `2026-11-23T15:00:00Z`, fractions and `±hh:mm` offsets allowed.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    if dp.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(0..=9999).contains(&y)
    {
        return None;
    }
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off.get(1..)?.split_once(':')?;
        let (oh, om): (i64, i64) = (oh.parse().ok()?, om.parse().ok()?);
        (c, sign * (oh * 3600 + om * 60))
    };
    let clock = clock.split('.').next()?;
    let (h, mi, sec) = hms(clock)?;
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::deferred_message_store::function::{encapsulate, http_date};
    use crate::server::deferred_message_store::{
        DeferredKind, DeferredMessage, NewDeferred, pager_key,
    };

    #[test]
    fn dates_read_back_what_the_server_writes() {
        assert_eq!(
            parse_http_date("Thu, 21 Feb 2002 13:02:03 GMT"),
            Some(1_014_296_523)
        );
        assert_eq!(parse_rfc3339("2002-02-21T13:02:03Z"), Some(1_014_296_523));
        assert_eq!(
            parse_rfc3339("2002-02-21T14:02:03.5+01:00"),
            Some(1_014_296_523)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Thu, 21 Feb 2002 25:02:03 GMT"), None);
        for ms in [0_i64, 951_782_400_000, 1_795_446_000_000] {
            assert_eq!(parse_http_date(&http_date(ms)), Some(ms / 1000));
        }
    }

    proptest::proptest! {
        #[test]
        fn http_dates_round_trip(secs in 0_i64..253_402_300_799) {
            proptest::prop_assert_eq!(parse_http_date(&http_date(secs * 1000)), Some(secs));
        }

        #[test]
        fn unwrapping_never_panics(ct in "(message/sip|multipart/mixed; boundary=b|message/cpim|x/y)", body in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = unwrap_deferred(&ct, &body);
        }

        #[test]
        fn date_parsers_never_panic(s in ".{0,60}") {
            let _ = parse_http_date(&s);
            let _ = parse_rfc3339(&s);
        }
    }

    fn stored(kind: DeferredKind, request: &str, msrp: &str) -> DeferredMessage {
        DeferredMessage {
            id: 1,
            message: NewDeferred {
                recipient: "sip:bob@isc.local".into(),
                sender: "sip:carol@isc.local".into(),
                key: pager_key("c1", 1),
                kind,
                call_id: "c1".into(),
                message_id: None,
                request: request.as_bytes().to_vec(),
                response: b"SIP/2.0 200 OK\r\nCall-ID: c1\r\nContent-Length: 0\r\n\r\n".to_vec(),
                msrp: msrp.as_bytes().to_vec(),
                arrived_unix_ms: 1_014_296_523_000,
            },
        }
    }

    #[test]
    fn a_pager_message_keeps_its_call_id_and_date() {
        let m = stored(
            DeferredKind::Pager,
            "MESSAGE sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:carol@isc.local>;tag=49583\r\nTo: <sip:bob@isc.local>\r\nCall-ID: asd88asd77a@1.2.3.4\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\nWatson, come here.",
            "",
        );
        let (ct, body) = encapsulate(&m);
        let late = unwrap_deferred(&ct, &body).unwrap();
        assert_eq!(late.kind, LateKind::Pager);
        assert_eq!(late.from, "sip:carol@isc.local");
        assert_eq!(late.call_id, "asd88asd77a@1.2.3.4");
        assert_eq!(late.key, "sip:asd88asd77a@1.2.3.4 1");
        assert_eq!(late.date.as_deref(), Some("Thu, 21 Feb 2002 13:02:03 GMT"));
        assert_eq!(late.sent_unix, Some(1_014_296_523));
        assert_eq!(late.text(), "Watson, come here.");
    }

    #[test]
    fn a_session_message_keeps_its_message_id_and_cpim_text() {
        let cpim = "From: <sip:carol@isc.local>\r\nTo: <sip:bob@isc.local>\r\nDateTime: 2002-02-21T13:00:00Z\r\n\r\nContent-Type: text/plain\r\n\r\nHi, Alice!";
        let send = format!(
            "MSRP t1 SEND\r\nTo-Path: msrp://127.0.0.1:9/s;tcp\r\nFrom-Path: msrp://127.0.0.1:8/c;tcp\r\nMessage-ID: 456\r\nByte-Range: 1-{n}/{n}\r\nContent-Type: message/cpim\r\n\r\n{cpim}\r\n-------t1$\r\n",
            n = cpim.len()
        );
        let m = stored(
            DeferredKind::Session,
            "INVITE sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\r\nFrom: <sip:carol@isc.local>;tag=786\r\nTo: <sip:bob@isc.local>\r\nCall-ID: 3413an89KU\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            &send,
        );
        let (ct, body) = encapsulate(&m);
        assert!(ct.starts_with("multipart/mixed"), "{ct}");
        let late = unwrap_deferred(&ct, &body).unwrap();
        assert_eq!(late.kind, LateKind::Session);
        assert_eq!(late.call_id, "3413an89KU");
        assert_eq!(late.message_id.as_deref(), Some("456"));
        assert_eq!(late.key, "msrp:3413an89KU 456");
        assert_eq!(late.text(), "Hi, Alice!");
        // The server's Date (arrival) wins over the CPIM DateTime.
        assert_eq!(late.sent_unix, Some(1_014_296_523));
    }

    #[test]
    fn odd_payloads_are_named_errors() {
        assert_eq!(
            unwrap_deferred("application/pdf", b"x"),
            Err(UnwrapError::UnsupportedType("application/pdf".into()))
        );
        assert!(matches!(
            unwrap_deferred(
                "message/sip",
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
            ),
            Err(UnwrapError::NotARequest)
        ));
        assert!(matches!(
            unwrap_deferred(
                "multipart/mixed; boundary=b",
                b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
            ),
            Err(UnwrapError::MissingPart(_))
        ));
    }
}
