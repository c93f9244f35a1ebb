//! Request validation before any role sees a request (RFC 3261 §16.3 steps
//! 1–5 for the proxy, §8.2.1–§8.2.3 for what the server answers itself):
//! what is wrong gets its status and a Warning naming the fault, before
//! authentication, so a bad request never reaches stored state. Pure
//! functions over a parsed request; the core sends the answer.

use crate::proto::sip::headers::{HeadersExt, expand_compact, name_value};

/// Option tags the server understands (RFC 3261 §8.2.2.3, §16.3 step 5):
/// the ones it advertises in `Supported`, plus those the B2BUA roles act on.
pub const SUPPORTED_OPTIONS: &[&str] = &[
    "gruu",
    "timer",
    "replaces",
    "norefersub",
    "multiple-refer",
    "recipient-list-invite",
    "outbound",
    "path",
];

/// Headers that appear at most once in a request (RFC 3261 §7.3.1: only
/// comma-list headers may repeat; RFC 4475 §3.3.8, §3.3.9).
const SINGLE_VALUED: &[&str] = &[
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

/// Why a request is refused before processing, with the answer to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    pub reason: &'static str,
    /// The Warning text (`399 <host> "<text>"` is built by the caller).
    pub warning: String,
    /// `Unsupported` for a 420 (RFC 3261 §8.2.2.3).
    pub unsupported: Vec<String>,
}

impl Rejection {
    fn bad(warning: impl Into<String>) -> Self {
        Rejection {
            code: 400,
            reason: "Bad Request",
            warning: warning.into(),
            unsupported: Vec::new(),
        }
    }
}

/// Whom the request is for, which decides what is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The server answers it itself (REGISTER, OPTIONS to the server).
    Uas,
    /// The server routes it on (proxy or B2BUA role).
    Proxy,
}

/// Checks `req` (RFC 3261 §16.3 steps 1–5, §8.2.2); `None` = go ahead.
pub fn check(req: &rsip::Request, role: Role) -> Option<Rejection> {
    // §8.2.2.1 / §16.3 step 2: a scheme we do not know gets 416.
    if let Some(rsip::Scheme::Other(s)) = &req.uri.scheme {
        return Some(Rejection {
            code: 416,
            reason: "Unsupported URI Scheme",
            warning: format!("Request-URI scheme {s:?} is not supported"),
            unsupported: Vec::new(),
        });
    }
    // §7.3.1: single-valued headers appear once (RFC 4475 §3.3.8).
    for name in SINGLE_VALUED {
        let count = req
            .headers
            .iter()
            .filter(|h| {
                let (n, _) = name_value(h);
                expand_compact(&n).unwrap_or(&n).eq_ignore_ascii_case(name)
            })
            .count();
        if count > 1 {
            return Some(Rejection::bad(format!(
                "{count} {name} headers, one allowed"
            )));
        }
    }
    // §20.10 / §25.1: a display name with non-token characters is quoted
    // (RFC 4475 §3.1.2.15).
    for name in ["From", "To"] {
        if let Some(value) = req.headers.get_raw(name)
            && unquoted_bad_display_name(&value)
        {
            return Some(Rejection::bad(format!(
                "{name} display name must be quoted"
            )));
        }
    }
    // §20.10: a Contact URI with headers or parameters must be in <>
    // (RFC 4475 §3.1.2.13).
    for value in req.headers.get_all_raw("Contact") {
        let v = value.trim();
        if v != "*" && !v.contains('<') && v.contains('?') {
            return Some(Rejection::bad(
                "Contact URI with headers must be enclosed in <>",
            ));
        }
    }
    // §10.2: the To of a REGISTER is the address-of-record, a SIP URI
    // (RFC 4475 §3.3.4).
    if req.method == rsip::Method::Register
        && let Some(to) = req.headers.get_raw("To")
        && !names_sip_uri(&to)
    {
        return Some(Rejection::bad("To of a REGISTER must be a SIP or SIPS URI"));
    }
    // §16.3 step 3: a proxy does not forward Max-Forwards 0 (RFC 4475 §3.3.11).
    if role == Role::Proxy
        && req
            .headers
            .get_raw("Max-Forwards")
            .is_some_and(|v| v.trim() == "0")
    {
        return Some(Rejection {
            code: 483,
            reason: "Too Many Hops",
            warning: "Max-Forwards is 0".into(),
            unsupported: Vec::new(),
        });
    }
    // §16.3 step 5 (Proxy-Require) and §8.2.2.3 (Require, when we are the UAS).
    let mut unsupported = option_tags(req, "Proxy-Require");
    if role == Role::Uas {
        unsupported.extend(option_tags(req, "Require"));
    }
    unsupported.retain(|t| !SUPPORTED_OPTIONS.iter().any(|s| s.eq_ignore_ascii_case(t)));
    if !unsupported.is_empty() {
        return Some(Rejection {
            code: 420,
            reason: "Bad Extension",
            warning: format!("unsupported extension {}", unsupported.join(", ")),
            unsupported,
        });
    }
    None
}

fn option_tags(req: &rsip::Request, header: &str) -> Vec<String> {
    req.headers
        .get_all_raw(header)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `Bell, Alexander <sip:...>`: a display name before `<` that is not a
/// quoted string and holds characters outside `token` and LWS.
fn unquoted_bad_display_name(value: &str) -> bool {
    let Some((name, _)) = value.split_once('<') else {
        return false;
    };
    let name = name.trim();
    if name.is_empty() || name.starts_with('"') {
        return false;
    }
    !name
        .split_whitespace()
        .all(crate::proto::sip::headers::is_token)
}

fn names_sip_uri(value: &str) -> bool {
    let v = value.trim();
    let uri = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    };
    let scheme = uri.trim().split(':').next().unwrap_or("");
    scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sip::message::parse_message;

    fn req(extra: &str, uri: &str, method: &str) -> rsip::Request {
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c\r\n\
             CSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_message(text.as_bytes()).unwrap() {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn each_fault_gets_its_status() {
        let to = "To: <sip:b@example.com>\r\n";
        assert_eq!(
            check(&req(to, "sip:b@example.com", "OPTIONS"), Role::Proxy),
            None
        );
        let r = check(&req(to, "urn:x:y", "OPTIONS"), Role::Proxy).unwrap();
        assert_eq!(r.code, 416);
        let two = format!("{to}{to}");
        assert_eq!(
            check(&req(&two, "sip:b@example.com", "OPTIONS"), Role::Proxy)
                .unwrap()
                .code,
            400
        );
        let dn = "To: Watson, Thomas <sip:b@example.com>\r\n";
        assert!(
            check(&req(dn, "sip:b@example.com", "OPTIONS"), Role::Proxy)
                .unwrap()
                .warning
                .contains("display name")
        );
        let pr = format!("{to}Proxy-Require: foo, gruu\r\nRequire: bar\r\n");
        let r = check(&req(&pr, "sip:b@example.com", "OPTIONS"), Role::Proxy).unwrap();
        assert_eq!(
            (r.code, r.unsupported.clone()),
            (420, vec!["foo".to_string()])
        );
        let r = check(&req(&pr, "sip:example.com", "OPTIONS"), Role::Uas).unwrap();
        assert_eq!(r.unsupported, vec!["foo".to_string(), "bar".to_string()]);
        let isbn = "To: isbn:2983792873\r\n";
        assert_eq!(
            check(&req(isbn, "sip:example.com", "REGISTER"), Role::Uas)
                .unwrap()
                .code,
            400
        );
    }

    #[test]
    fn max_forwards_zero_only_stops_forwarding() {
        let text = "OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                    Max-Forwards: 0\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
                    Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Request(r) = parse_message(text.as_bytes()).unwrap() else {
            unreachable!()
        };
        assert_eq!(check(&r, Role::Proxy).unwrap().code, 483);
        assert_eq!(check(&r, Role::Uas), None);
    }

    proptest::proptest! {
        /// Whatever the headers hold, the checks answer and never panic.
        #[test]
        fn never_panics(
            from in "[ -~]{0,40}",
            to in "[ -~]{0,40}",
            contact in "[ -~]{0,40}",
            tags in "[ -~]{0,30}",
            mf in "[0-9a-z ]{0,4}",
        ) {
            let extra = format!(
                "To: {to}\r\nContact: {contact}\r\nProxy-Require: {tags}\r\nRequire: {tags}\r\nMax-Forwards: {mf}\r\n"
            );
            let text = format!(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 From: {from}\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
            );
            if let Ok(rsip::SipMessage::Request(r)) = parse_message(text.as_bytes()) {
                let _ = check(&r, Role::Uas);
                let _ = check(&r, Role::Proxy);
            }
        }
    }
}
