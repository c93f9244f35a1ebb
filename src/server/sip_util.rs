//! Small SIP helpers the server roles share: reading a Request-URI, our own
//! Via / Record-Route / Contact, and the Via juggling of a proxy (RFC 3261
//! §16.6, §16.7). No IO.

use std::net::{IpAddr, SocketAddr};

use crate::proto::sip::headers::{
    HeadersExt, NameAddr, TypedHeader, ViaValue, make_header, name_value, split_list,
};
use crate::proto::sip::message::{parse_uri, print_uri};
use crate::proto::sip::transaction::Transport;

/// What the server needs from a SIP URI, read leniently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriView {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<Transport>,
    /// The `gr` parameter of a GRUU (RFC 5627 §3.1), `Some("")` when bare.
    pub gr: Option<String>,
    pub lr: bool,
}

impl UriView {
    pub fn of(uri: &rsip::Uri) -> Self {
        let mut transport = None;
        let mut gr = None;
        let mut lr = false;
        for p in &uri.params {
            match p {
                rsip::Param::Transport(t) => transport = Some(Transport::from_rsip(*t)),
                rsip::Param::Lr => lr = true,
                rsip::Param::Other(name, value) if name.to_string().eq_ignore_ascii_case("gr") => {
                    gr = Some(value.as_ref().map(|v| v.to_string()).unwrap_or_default())
                }
                rsip::Param::Other(name, _) if name.to_string().eq_ignore_ascii_case("lr") => {
                    lr = true
                }
                rsip::Param::Other(name, Some(v))
                    if name.to_string().eq_ignore_ascii_case("transport") =>
                {
                    transport =
                        Some(Transport::from_token(&v.to_string()).unwrap_or(Transport::Udp))
                }
                _ => {}
            }
        }
        UriView {
            user: uri.user().map(str::to_string),
            host: uri.host().to_string(),
            port: uri.port().map(|p| *p.value()),
            transport,
            gr,
            lr,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        parse_uri(s.trim().trim_start_matches('<').trim_end_matches('>'))
            .ok()
            .map(|u| Self::of(&u))
    }

    /// The socket address named by the URI when its host is an IP literal
    /// (RFC 3263 is not needed on loopback: no DNS here).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        Some(SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }
}

/// Host part for our own URIs: IPv6 in brackets.
pub fn host_of(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    }
}

/// Our address on a leg over `t`: SIP over TLS listens on a port of its own
/// (RFC 3261 §26.2.2, 5061), UDP and TCP share `local`.
pub fn local_for(local: SocketAddr, tls_local: Option<SocketAddr>, t: Transport) -> SocketAddr {
    match (t, tls_local) {
        (Transport::Tls, Some(tls)) => tls,
        _ => local,
    }
}

/// The server's own Contact on a leg over `t` (RFC 3261 §8.1.1.8):
/// `<sip:host:port;transport=t>`.
pub fn contact_uri(local: SocketAddr, t: Transport) -> String {
    format!(
        "<sip:{}:{};transport={}>",
        host_of(local),
        local.port(),
        t.uri_param()
    )
}

/// A Via value of ours (RFC 3261 §8.1.1.7, with `rport`, RFC 3581).
pub fn via_text(local: SocketAddr, t: Transport, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {}:{};branch={branch};rport",
        t.via_token(),
        host_of(local),
        local.port()
    )
}

/// Our Via for a request we send or forward, on top of all others.
pub fn push_via(
    headers: &mut rsip::Headers,
    local: SocketAddr,
    transport: Transport,
    branch: &str,
) {
    let via = ViaValue::new(
        transport.via_token(),
        &host_of(local),
        Some(local.port()),
        branch,
    )
    .with_rport();
    insert_first(headers, make_header("Via", &via.to_string()));
}

/// Puts `header` before every other header (a Via or Record-Route that must
/// come first among its kind, RFC 3261 §16.6 steps 4 and 8).
pub fn insert_first(headers: &mut rsip::Headers, header: rsip::Header) {
    let mut all: Vec<rsip::Header> = std::mem::take(headers).into();
    all.insert(0, header);
    *headers = all.into();
}

/// Removes the topmost Via value (RFC 3261 §16.7 step 3), splitting a header
/// line that carries several comma-separated values. Returns it.
pub fn pop_via(headers: &mut rsip::Headers) -> Option<String> {
    let mut all: Vec<rsip::Header> = std::mem::take(headers).into();
    let idx = all
        .iter()
        .position(|h| name_value(h).0.eq_ignore_ascii_case("Via") || name_value(h).0 == "v");
    let mut popped = None;
    if let Some(i) = idx {
        let (_, value) = name_value(&all[i]);
        let values = split_list(&value);
        popped = values.first().map(|v| v.trim().to_string());
        if values.len() > 1 {
            let rest = values[1..]
                .iter()
                .map(|v| v.trim())
                .collect::<Vec<_>>()
                .join(", ");
            all[i] = make_header("Via", &rest);
        } else {
            all.remove(i);
        }
    }
    *headers = all.into();
    popped
}

/// The top Via value, parsed.
pub fn top_via(headers: &rsip::Headers) -> Option<ViaValue> {
    let raw = headers.get_raw("Via")?;
    let first = split_list(&raw).first().map(|s| s.trim().to_string())?;
    ViaValue::parse(&first).ok()
}

/// Where a response goes: the top Via's `received`/`rport` or sent-by
/// (RFC 3261 §18.2.2, RFC 3581 §4).
pub fn response_destination(via: &ViaValue) -> Option<(SocketAddr, Transport)> {
    let host = via
        .received()
        .map(str::to_string)
        .unwrap_or_else(|| via.host.clone());
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(5060),
    };
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let transport = Transport::from_token(&via.transport).unwrap_or(Transport::Udp);
    Some((SocketAddr::new(ip, port), transport))
}

/// Our Record-Route value (RFC 3261 §16.6 step 4): loose routing, and the
/// transport of the leg so the other side reaches us the same way.
pub fn record_route_value(local: SocketAddr, transport: Transport) -> String {
    format!(
        "<sip:{}:{};transport={};lr>",
        host_of(local),
        local.port(),
        transport.uri_param()
    )
}

/// True if a Route/Record-Route URI names this server (any of its `locals`:
/// the UDP/TCP address and the TLS one).
pub fn is_us(uri: &UriView, locals: &[SocketAddr], domain: &str) -> bool {
    if uri.host.eq_ignore_ascii_case(domain) && uri.user.is_none() {
        return true;
    }
    uri.socket_addr().is_some_and(|a| locals.contains(&a))
}

/// Removes the top Route if it names us (loose routing, RFC 3261 §16.4).
pub fn pop_own_route(headers: &mut rsip::Headers, locals: &[SocketAddr], domain: &str) {
    let mut all: Vec<rsip::Header> = std::mem::take(headers).into();
    if let Some(i) = all
        .iter()
        .position(|h| name_value(h).0.eq_ignore_ascii_case("Route"))
    {
        let (_, value) = name_value(&all[i]);
        let values = split_list(&value);
        let first_is_us = values
            .first()
            .and_then(|v| NameAddr::parse(v.trim()).ok())
            .and_then(|na| UriView::parse(&na.uri))
            .is_some_and(|u| is_us(&u, locals, domain));
        if first_is_us {
            if values.len() > 1 {
                let rest = values[1..]
                    .iter()
                    .map(|v| v.trim())
                    .collect::<Vec<_>>()
                    .join(", ");
                all[i] = make_header("Route", &rest);
            } else {
                all.remove(i);
            }
        }
    }
    *headers = all.into();
}

/// The first Route's URI, if any.
pub fn first_route(headers: &rsip::Headers) -> Option<UriView> {
    let raw = headers.get_raw("Route")?;
    let first = split_list(&raw).first()?.trim().to_string();
    let na = NameAddr::parse(&first).ok()?;
    UriView::parse(&na.uri)
}

/// Decrements Max-Forwards, adding 70 when absent (RFC 3261 §16.6 step 3).
/// Returns false when it was already zero (→ 483, §16.3 step 3).
pub fn decrement_max_forwards(headers: &mut rsip::Headers) -> bool {
    let current = headers
        .get_raw("Max-Forwards")
        .and_then(|v| v.trim().parse::<u32>().ok());
    match current {
        Some(0) => false,
        Some(n) => {
            headers.remove_named("Max-Forwards");
            headers.push(make_header("Max-Forwards", &(n - 1).to_string()));
            true
        }
        None => {
            headers.push(make_header("Max-Forwards", "70"));
            true
        }
    }
}

/// A header value's URI, e.g. From/To, as a view.
pub fn name_addr_uri(headers: &rsip::Headers, name: &str) -> Option<(NameAddr, UriView)> {
    let raw = headers.get_raw(name)?;
    let na = NameAddr::parse(&raw).ok()?;
    let view = UriView::parse(&na.uri)?;
    Some((na, view))
}

/// Prints a URI the way our message layer does.
pub fn uri_string(uri: &rsip::Uri) -> String {
    print_uri(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_push_and_pop() {
        let mut h = rsip::Headers::default();
        h.push(make_header(
            "Via",
            "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb",
        ));
        h.push(make_header("Call-ID", "x"));
        push_via(
            &mut h,
            "127.0.0.1:5060".parse().unwrap(),
            Transport::Tcp,
            "z9hG4bKours",
        );
        assert_eq!(top_via(&h).unwrap().branch(), Some("z9hG4bKours"));
        let popped = pop_via(&mut h).unwrap();
        assert!(popped.starts_with("SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKours"));
        assert_eq!(
            pop_via(&mut h).unwrap(),
            "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa"
        );
        assert_eq!(top_via(&h).unwrap().branch(), Some("z9hG4bKb"));
    }

    #[test]
    fn response_destination_prefers_received_rport() {
        let v = ViaValue::parse(
            "SIP/2.0/UDP host.invalid:5070;branch=z9hG4bKx;received=127.0.0.2;rport=6000",
        )
        .unwrap();
        assert_eq!(
            response_destination(&v),
            Some(("127.0.0.2:6000".parse().unwrap(), Transport::Udp))
        );
    }

    #[test]
    fn route_popping_and_max_forwards() {
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut h = rsip::Headers::default();
        h.push(make_header(
            "Route",
            "<sip:127.0.0.1:5060;transport=tcp;lr>, <sip:10.1.1.1;lr>",
        ));
        pop_own_route(&mut h, &[local], "isc.local");
        assert_eq!(first_route(&h).unwrap().host, "10.1.1.1");
        h.push(make_header("Max-Forwards", "1"));
        assert!(decrement_max_forwards(&mut h));
        assert!(!decrement_max_forwards(&mut h));
    }

    #[test]
    fn uri_view_reads_gruu_and_transport() {
        let v = UriView::parse("<sip:alice@isc.local;gr=urn:uuid:1234>").unwrap();
        assert_eq!(v.user.as_deref(), Some("alice"));
        assert_eq!(v.gr.as_deref(), Some("urn:uuid:1234"));
        let c = UriView::parse("sip:alice@127.0.0.1:5071;transport=tcp").unwrap();
        assert_eq!(c.transport, Some(Transport::Tcp));
        assert_eq!(c.socket_addr(), Some("127.0.0.1:5071".parse().unwrap()));
    }
}
