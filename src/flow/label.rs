//! Short arrow labels from a message's first line, without a full parse: a
//! ladder must show even a message our parsers refuse.

/// The protocol a recorded message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Sip,
    Msrp,
    Rtp,
    Other,
}

/// Classifies a message and returns its arrow label.
///
/// SIP requests give their method (`INVITE`), responses their status and the
/// CSeq method (`200 OK (INVITE)`); MSRP requests their method and, for a SEND,
/// the body's content type; MSRP responses their status.
pub fn describe(raw: &[u8]) -> (Protocol, String) {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(4096)]);
    let first = text.lines().next().unwrap_or("").trim();
    let mut words = first.split_whitespace();
    let w0 = words.next().unwrap_or("");
    if w0 == "MSRP" {
        // RFC 4975 §7: "MSRP <tid> <method>" or "MSRP <tid> <code> <comment>"
        let _tid = words.next();
        let rest: Vec<&str> = words.collect();
        let label = match rest.first() {
            Some(code) if code.chars().all(|c| c.is_ascii_digit()) => rest.join(" "),
            Some(method) => match header(&text, "Content-Type") {
                Some(ct) if *method == "SEND" => format!("SEND ({ct})"),
                _ => method.to_string(),
            },
            None => "MSRP".to_string(),
        };
        return (Protocol::Msrp, label);
    }
    if w0.starts_with("SIP/") {
        let rest: Vec<&str> = words.collect();
        // Long reason phrases would widen every column of the ladder: keep
        // the code alone when the phrase is long ("407 (SUBSCRIBE)").
        let reason = rest.get(1..).map(|r| r.join(" ")).unwrap_or_default();
        let code = rest.first().copied().unwrap_or("");
        let status = if reason.chars().count() <= 12 {
            rest.join(" ")
        } else {
            code.to_string()
        };
        let method =
            header(&text, "CSeq").and_then(|c| c.split_whitespace().nth(1).map(str::to_string));
        let label = match method {
            Some(m) => format!("{status} ({m})"),
            None => status,
        };
        return (Protocol::Sip, label);
    }
    if first.ends_with("SIP/2.0") && !w0.is_empty() {
        return (Protocol::Sip, w0.to_string());
    }
    if raw.len() >= 12 && raw[0] >> 6 == 2 {
        return (Protocol::Rtp, "RTP".to_string());
    }
    (Protocol::Other, first.chars().take(30).collect())
}

/// The value of the first header named `name` (case-insensitive), or of its
/// compact form for the few SIP headers a label needs.
fn header(text: &str, name: &str) -> Option<String> {
    let compact = match name {
        "Content-Type" => Some("c"),
        _ => None,
    };
    for line in text.lines().skip(1) {
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)) {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let inv = b"INVITE sip:bob@isc.local SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(describe(inv), (Protocol::Sip, "INVITE".into()));
        let ok = b"SIP/2.0 200 OK\r\nVia: x\r\nCSeq: 2 MESSAGE\r\n\r\n";
        assert_eq!(describe(ok), (Protocol::Sip, "200 OK (MESSAGE)".into()));
        let auth = b"SIP/2.0 407 Proxy Authentication Required\r\nCSeq: 2 SUBSCRIBE\r\n\r\n";
        assert_eq!(describe(auth), (Protocol::Sip, "407 (SUBSCRIBE)".into()));
        let send = b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://x\r\nContent-Type: message/cpim\r\n\r\nhi\r\n-------a786hjs2$\r\n";
        assert_eq!(
            describe(send),
            (Protocol::Msrp, "SEND (message/cpim)".into())
        );
        let resp = b"MSRP a786hjs2 200 OK\r\nTo-Path: msrp://x\r\n-------a786hjs2$\r\n";
        assert_eq!(describe(resp), (Protocol::Msrp, "200 OK".into()));
        assert_eq!(describe(b"").0, Protocol::Other);
    }
}
