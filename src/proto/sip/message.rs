//! Parsing and printing SIP messages with rsip 0.4 as the model.
//!
//! rsip parses too strictly in some places and too loosely in others (DEPENDENCIES.md), so
//! [`parse_message`] does its own work before and after it:
//! - reads the start line itself (any extension method, any reason phrase, URIs that rsip's
//!   grammar refuses: RFC 4475 §3.1.1) and builds the rsip values programmatically;
//! - unfolds header lines (RFC 3261 §7.3.1), accepts LF-only line ends, expands compact
//!   names (§7.3.3), tidies LWS around `:` `;` `=` `/`, and splits comma-joined Via /
//!   Contact / Route / Record-Route values into one header each;
//! - frames the body by Content-Length (§18.3: shorter is an error, longer is truncated);
//! - validates what rsip only checks lazily and names the offending header.
//!
//! **Extension methods.** rsip's `Method` is a closed enum. A request whose method it does not
//! know is returned as [`SipParseError::UnknownMethod`] carrying the real method name and a
//! fully parsed and validated `rsip::Request` whose `method` is the placeholder
//! [`EXTENSION_METHOD_PLACEHOLDER`]; every header (CSeq included) is kept verbatim, so a UAS can
//! answer it with `build::response_to(&request, 501, ..)` and a proxy can relay it with
//! [`extension_request_to_bytes`], which prints the real name back.
//!
//! [`to_bytes`] prints a message with the start line, reason phrases and `Contact: *` fixed and
//! a Content-Length that matches the body.

use super::framing::{find_header_end, parse_content_length};
use super::headers::{
    NameAddr, TypedHeader, ViaValue, expand_compact, is_token, name_value, split_list,
};

/// The `rsip::Method` put in a request whose real method rsip does not know.
pub const EXTENSION_METHOD_PLACEHOLDER: rsip::Method = rsip::Method::Options;

/// Why bytes are not an acceptable SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SipParseError {
    #[error("empty message")]
    Empty,
    #[error("no empty line ends the header section")]
    MissingHeaderEnd,
    #[error("header section is not UTF-8")]
    NonUtf8Headers,
    #[error("bad start line: {0:?}")]
    BadStartLine(String),
    #[error("unsupported SIP version {0:?}")]
    BadVersion(String),
    #[error("bad Request-URI: {0:?}")]
    BadRequestUri(String),
    /// RFC 3261 §19.1.1: headers are not allowed in a Request-URI.
    #[error("Request-URI carries headers: {0:?}")]
    RequestUriHeaders(String),
    #[error("malformed header line: {0:?}")]
    BadHeaderLine(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("invalid {header} header: {value:?}")]
    InvalidHeader { header: &'static str, value: String },
    #[error("CSeq method {cseq:?} does not match the request method {method:?}")]
    CSeqMethodMismatch { method: String, cseq: String },
    #[error("body has {actual} bytes, Content-Length says {declared}")]
    BodyTooShort { declared: usize, actual: usize },
    /// A well-formed request with a method rsip does not know (see the module docs).
    #[error("unknown method {method:?}")]
    UnknownMethod {
        method: String,
        request: Box<rsip::Request>,
    },
    #[error("expected a request")]
    NotARequest,
    #[error("expected a response")]
    NotAResponse,
}

impl SipParseError {
    /// The status a UAS answers with when it can answer at all (RFC 3261 §8.2, §21):
    /// 501 for an unknown method, 505 for another version, 400 otherwise. The text suits a `Warning: 399 <host> "<text>"`.
    pub fn status(&self) -> (u16, String) {
        let code = match self {
            Self::UnknownMethod { .. } => 501,
            Self::BadVersion(_) => 505,
            _ => 400,
        };
        (code, self.to_string())
    }

    fn invalid(header: &'static str, value: &str) -> Self {
        Self::InvalidHeader {
            header,
            value: value.chars().take(80).collect(),
        }
    }
}

/// Splits a header section into logical lines: LF or CRLF ends, folded lines joined with a
/// single space (RFC 3261 §7.3.1). The first line is the start line.
pub fn logical_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            let cont = line.trim();
            if !cont.is_empty() {
                last.truncate(last.trim_end().len());
                last.push(' ');
                last.push_str(cont);
            }
            continue;
        }
        out.push(line.to_owned());
    }
    out
}

/// Parses one SIP message (a datagram, or one message cut by the `StreamFramer`).
pub fn parse_message(bytes: &[u8]) -> Result<rsip::SipMessage, SipParseError> {
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let start = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or(SipParseError::Empty)?;
    let bytes = bytes.get(start..).unwrap_or_default();
    let header_end = find_header_end(bytes, 0).ok_or(SipParseError::MissingHeaderEnd)?;
    let head = std::str::from_utf8(bytes.get(..header_end).unwrap_or_default())
        .map_err(|_| SipParseError::NonUtf8Headers)?;
    let rest = bytes.get(header_end..).unwrap_or_default();

    let lines = logical_lines(head);
    let mut lines = lines.iter();
    let start_line = lines.next().ok_or(SipParseError::Empty)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| SipParseError::BadHeaderLine(line.chars().take(80).collect()))?;
        let name = name.trim();
        if !is_token(name) {
            return Err(SipParseError::BadHeaderLine(
                line.chars().take(80).collect(),
            ));
        }
        let name = expand_compact(name)
            .map(str::to_owned)
            .unwrap_or_else(|| name.to_owned());
        for value in normalise_value(&name, value.trim()) {
            headers.push((name.clone(), value));
        }
    }

    // RFC 3261 §18.3: Content-Length frames the body of a datagram too.
    let declared = match find(&headers, "Content-Length") {
        Some(v) => Some(
            parse_content_length(v)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| SipParseError::invalid("Content-Length", v))?,
        ),
        None => None,
    };
    let body = match declared {
        Some(n) if n > rest.len() => {
            return Err(SipParseError::BodyTooShort {
                declared: n,
                actual: rest.len(),
            });
        }
        Some(n) => rest.get(..n).unwrap_or_default().to_vec(),
        None => rest.to_vec(),
    };

    let rsip_headers: rsip::Headers = headers
        .iter()
        .map(|(n, v)| super::headers::make_header(n, v))
        .collect::<Vec<_>>()
        .into();

    if start_line.starts_with("SIP/") {
        let status = parse_status_line(start_line)?;
        validate(&headers, None)?;
        Ok(rsip::SipMessage::Response(rsip::Response {
            status_code: status,
            version: rsip::Version::V2,
            headers: rsip_headers,
            body,
        }))
    } else {
        let (method_name, uri) = parse_request_line(start_line)?;
        validate(&headers, Some(&method_name))?;
        let known = rsip::Method::all()
            .into_iter()
            .find(|m| m.to_string() == method_name);
        let request = rsip::Request {
            method: known.unwrap_or(EXTENSION_METHOD_PLACEHOLDER),
            uri,
            version: rsip::Version::V2,
            headers: rsip_headers,
            body,
        };
        match known {
            Some(_) => Ok(rsip::SipMessage::Request(request)),
            None => Err(SipParseError::UnknownMethod {
                method: method_name,
                request: Box::new(request),
            }),
        }
    }
}

/// [`parse_message`], expecting a request.
pub fn parse_request(bytes: &[u8]) -> Result<rsip::Request, SipParseError> {
    match parse_message(bytes)? {
        rsip::SipMessage::Request(r) => Ok(r),
        rsip::SipMessage::Response(_) => Err(SipParseError::NotARequest),
    }
}

/// [`parse_message`], expecting a response.
pub fn parse_response(bytes: &[u8]) -> Result<rsip::Response, SipParseError> {
    match parse_message(bytes)? {
        rsip::SipMessage::Response(r) => Ok(r),
        rsip::SipMessage::Request(_) => Err(SipParseError::NotAResponse),
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

const SPLIT_LISTS: &[&str] = &["Via", "Contact", "Route", "Record-Route"];
const TIDY: &[&str] = &[
    "Via",
    "From",
    "To",
    "Contact",
    "Route",
    "Record-Route",
    "CSeq",
    "Content-Type",
    "Content-Disposition",
    "Event",
    "Subscription-State",
    "Session-Expires",
    "Min-SE",
    "Accept-Contact",
    "Reject-Contact",
    "Refer-To",
    "Referred-By",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Max-Forwards",
    "Content-Length",
];

/// LWS tidying and list splitting for the headers whose grammar we know.
fn normalise_value(name: &str, value: &str) -> Vec<String> {
    let known = |list: &[&str]| list.iter().any(|n| n.eq_ignore_ascii_case(name));
    if !known(TIDY) {
        return vec![value.to_owned()];
    }
    let tidy = tidy_lws(value, name.eq_ignore_ascii_case("Via"));
    if known(SPLIT_LISTS) && tidy != "*" {
        let parts = split_list(&tidy);
        if parts.len() > 1 {
            return parts.into_iter().map(str::to_owned).collect();
        }
    }
    vec![tidy]
}

/// Collapses LWS runs to one space and drops it around `;` `=` `,` (and `/` in Via),
/// outside quoted strings.
fn tidy_lws(value: &str, via: bool) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut quoted, mut escaped, mut pending_space) = (false, false, false);
    let sticky = |c: char| c == ';' || c == '=' || c == ',' || (via && c == '/');
    for c in value.chars() {
        if quoted {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        if c == ' ' || c == '\t' {
            pending_space = true;
            continue;
        }
        if pending_space && !sticky(c) && !out.ends_with(sticky) && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        if c == '"' {
            quoted = true;
        }
        out.push(c);
    }
    out
}

fn parse_request_line(line: &str) -> Result<(String, rsip::Uri), SipParseError> {
    let bad = || SipParseError::BadStartLine(line.chars().take(120).collect());
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !is_token(method) {
        return Err(bad());
    }
    check_version(version)?;
    let parsed = parse_uri(uri)?;
    // RFC 3261 §19.1.1 (RFC 4475 §3.1.2.11): the `?headers` part of a
    // SIP URI is not allowed in a Request-URI; parse_uri drops it elsewhere.
    if !matches!(parsed.scheme, Some(rsip::Scheme::Other(_)))
        && uri
            .rsplit('@')
            .next()
            .is_some_and(|host| host.contains('?'))
    {
        return Err(SipParseError::RequestUriHeaders(
            uri.chars().take(120).collect(),
        ));
    }
    Ok((method.to_owned(), parsed))
}

fn check_version(v: &str) -> Result<(), SipParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else {
        Err(SipParseError::BadVersion(v.chars().take(20).collect()))
    }
}

fn parse_status_line(line: &str) -> Result<rsip::StatusCode, SipParseError> {
    let bad = || SipParseError::BadStartLine(line.chars().take(120).collect());
    let (version, rest) = line.split_once(' ').ok_or_else(bad)?;
    check_version(version)?;
    let rest = rest.trim_start_matches(' ');
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let code: u16 = code.parse().map_err(|_| bad())?;
    if !(100..=699).contains(&code) {
        return Err(bad());
    }
    // Known codes become rsip's named variants (the phrase is printed from our table);
    // unknown codes keep the phrase received.
    Ok(match rsip::StatusCode::from(code) {
        rsip::StatusCode::Other(c, _) => rsip::StatusCode::Other(c, reason.to_owned()),
        known => known,
    })
}

/// Required headers and the values rsip only checks lazily (RFC 3261 §8.1.1, §20).
fn validate(headers: &[(String, String)], method: Option<&str>) -> Result<(), SipParseError> {
    let call_id = find(headers, "Call-ID").ok_or(SipParseError::MissingHeader("Call-ID"))?;
    if call_id.is_empty() || call_id.contains(char::is_whitespace) {
        return Err(SipParseError::invalid("Call-ID", call_id));
    }
    for name in ["From", "To"] {
        let v = find(headers, name).ok_or(SipParseError::MissingHeader(if name == "From" {
            "From"
        } else {
            "To"
        }))?;
        NameAddr::parse(v)
            .map_err(|_| SipParseError::invalid(if name == "From" { "From" } else { "To" }, v))?;
    }
    let mut vias = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Via"))
        .peekable();
    if vias.peek().is_none() {
        return Err(SipParseError::MissingHeader("Via"));
    }
    for (_, v) in vias {
        ViaValue::parse(v).map_err(|_| SipParseError::invalid("Via", v))?;
    }
    let cseq = find(headers, "CSeq").ok_or(SipParseError::MissingHeader("CSeq"))?;
    let (num, cseq_method) =
        parse_cseq(cseq).ok_or_else(|| SipParseError::invalid("CSeq", cseq))?;
    let _ = num;
    if let Some(m) = method {
        // Methods are case-sensitive (RFC 3261 §7.1).
        if m != cseq_method {
            return Err(SipParseError::CSeqMethodMismatch {
                method: m.to_owned(),
                cseq: cseq_method.to_owned(),
            });
        }
    }
    if let Some(v) = find(headers, "Max-Forwards")
        && (v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(SipParseError::invalid("Max-Forwards", v));
    }
    Ok(())
}

/// `CSeq: 1*DIGIT LWS Method`; the number must be below 2**31 (RFC 3261 §8.1.1.5).
pub fn parse_cseq(v: &str) -> Option<(u32, &str)> {
    let (n, m) = v.trim().split_once(' ')?;
    let m = m.trim();
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || !is_token(m) {
        return None;
    }
    let n = n.trim_start_matches('0');
    let n: u32 = if n.is_empty() { 0 } else { n.parse().ok()? };
    (n < 1 << 31).then_some((n, m))
}

/// Parses a URI into rsip's model. rsip's own URI grammar refuses or misreads valid URIs
/// (escaped characters, `;` or `?` in the user part, passwords: RFC 4475 §3.1.1.2, §3.1.1.3,
/// §3.1.1.9), so sip/sips URIs are split here and the rsip value built from the parts; the
/// user part stays escaped as received. Other schemes (tel:, urn:) are kept opaque.
pub fn parse_uri(s: &str) -> Result<rsip::Uri, SipParseError> {
    let bad = || SipParseError::BadRequestUri(s.chars().take(120).collect());
    if s.is_empty()
        || s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad());
    }
    let (scheme, rest) = s.split_once(':').ok_or_else(bad)?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok || rest.is_empty() {
        return Err(bad());
    }
    let is_sip = scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips");
    if !is_sip {
        // Opaque (tel:, urn:, ...): keep the rest as the "host" so it prints back unchanged.
        return Ok(rsip::Uri {
            scheme: Some(rsip::Scheme::Other(scheme.to_owned())),
            auth: None,
            host_with_port: rsip::HostWithPort {
                host: rsip::Host::Domain(rest.into()),
                port: None,
            },
            params: Vec::new(),
            headers: Vec::new(),
        });
    }
    // RFC 3261 §25.1: the user part may hold '?' and ';' but '@' in the headers part must be
    // escaped, so userinfo ends at the last '@'.
    let at = rest.rfind('@');
    let (auth, hostpart) = match at {
        Some(i) => (rest.get(..i), rest.get(i + 1..).unwrap_or("")),
        None => (None, rest),
    };
    let auth = match auth {
        Some("") => return Err(bad()),
        Some(a) => {
            let (user, password) = match a.split_once(':') {
                Some((u, p)) => (u, Some(p.to_owned())),
                None => (a, None),
            };
            Some(rsip::Auth {
                user: user.to_owned(),
                password,
            })
        }
        None => None,
    };
    let hostpart = hostpart.split('?').next().unwrap_or(hostpart);
    let (hostport, params) = hostpart.split_once(';').unwrap_or((hostpart, ""));
    let (host, port) = super::headers::via_split_host_port(hostport).ok_or_else(bad)?;
    let host: rsip::Host = host.as_str().into();
    let mut out_params = Vec::new();
    for p in params.split(';').filter(|p| !p.is_empty()) {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        // rsip's typed param where it prints back the same (transport, lr, maddr, ...).
        let typed = rsip::Param::try_from((n, v))
            .ok()
            .filter(|t| !matches!(t, rsip::Param::Other(..)))
            .filter(|t| t.to_string().eq_ignore_ascii_case(&format!(";{p}")));
        out_params.push(typed.unwrap_or_else(|| rsip::Param::Other(n.into(), v.map(Into::into))));
    }
    let scheme = if scheme.eq_ignore_ascii_case("sips") {
        rsip::Scheme::Sips
    } else {
        rsip::Scheme::Sip
    };
    Ok(rsip::Uri {
        scheme: Some(scheme),
        auth,
        host_with_port: rsip::HostWithPort {
            host,
            port: port.map(Into::into),
        },
        params: out_params,
        headers: Vec::new(),
    })
}

/// Prints a URI; unlike rsip's Display, opaque schemes print as `tel:...`, not `tel://...`.
pub fn print_uri(uri: &rsip::Uri) -> String {
    match &uri.scheme {
        Some(rsip::Scheme::Other(s)) => {
            let printed = uri.to_string();
            let rest = printed
                .strip_prefix(&format!("{s}://"))
                .unwrap_or(&printed)
                .to_owned();
            format!("{s}:{rest}")
        }
        _ => uri.to_string(),
    }
}

/// The reason phrase printed for a status code (RFC 3261 §21 and extensions).
pub fn reason_phrase(status: &rsip::StatusCode) -> String {
    if let rsip::StatusCode::Other(code, reason) = status {
        if !reason.is_empty() && reason != "Other" {
            return reason.clone();
        }
        return default_reason(*code).to_owned();
    }
    default_reason(status.code()).to_owned()
}

/// The standard reason phrase for a code, or "" if unknown.
pub fn default_reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        429 => "Provide Referrer Identity",
        430 => "Flow Failed",
        439 => "First Hop Lacks Outbound Support",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

/// Prints a message for the wire: our start line, headers in order with `Contact: *` fixed,
/// every Content-Length dropped and one written last that matches the body.
pub fn to_bytes(msg: &rsip::SipMessage) -> Vec<u8> {
    match msg {
        rsip::SipMessage::Request(r) => write_message(
            &format!("{} {} SIP/2.0", r.method, print_uri(&r.uri)),
            &r.headers,
            &r.body,
        ),
        rsip::SipMessage::Response(r) => {
            let reason = reason_phrase(&r.status_code);
            write_message(
                &format!("SIP/2.0 {} {}", r.status_code.code(), reason),
                &r.headers,
                &r.body,
            )
        }
    }
}

/// Prints a request carrying an extension method (see [`SipParseError::UnknownMethod`]).
pub fn extension_request_to_bytes(method: &str, request: &rsip::Request) -> Vec<u8> {
    write_message(
        &format!("{} {} SIP/2.0", method, print_uri(&request.uri)),
        &request.headers,
        &request.body,
    )
}

fn write_message(start: &str, headers: &rsip::Headers, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + body.len());
    out.extend_from_slice(start.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers.iter() {
        let (name, value) = name_value(h);
        let full = expand_compact(&name).unwrap_or(&name);
        if full.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let value =
            if full.eq_ignore_ascii_case(super::headers::Contact::NAME) && value.trim() == "<*>" {
                "*".to_owned()
            } else {
                value
            };
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy() {
        assert_eq!(
            tidy_lws("\"J  R\" <sip:a@b>  ;  tag = 98", false),
            "\"J  R\" <sip:a@b>;tag=98"
        );
        assert_eq!(
            tidy_lws(
                "SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9",
                true
            ),
            "SIP/2.0/TCP spindle.example.com;branch=z9"
        );
    }

    #[test]
    fn lines_unfold() {
        assert_eq!(
            logical_lines("A\r\nB: x\r\n  y\n\tz\r\n\r\n"),
            vec!["A".to_owned(), "B: x y z".to_owned()]
        );
    }

    #[test]
    fn cseq() {
        assert_eq!(parse_cseq("0009 INVITE"), Some((9, "INVITE")));
        assert_eq!(parse_cseq("2147483648 INVITE"), None);
        assert_eq!(parse_cseq("1"), None);
    }

    #[test]
    fn uri_fallback_round_trips() {
        for s in [
            "sip:sips%3Auser%40example.com@example.net",
            "sip:user;par=u%40example.net@example.com",
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
            "sip:vivekg@chair-dnrc.example.com;unknownparam",
            "tel:+1-201-555-0123",
            "sip:[2001:db8::10]:5070;lr",
        ] {
            let u = parse_uri(s).unwrap();
            assert_eq!(print_uri(&u), s);
        }
        assert!(parse_uri("nocolon").is_err());
        assert!(parse_uri("sip:a b").is_err());
    }
}
