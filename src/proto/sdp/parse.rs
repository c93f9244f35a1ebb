//! Reading an SDP body through `sdp-rs` 0.2.
//!
//! `sdp-rs` needs some help, so a pre-pass runs first:
//! - it finds line ends by searching for the first `\r\n` anywhere ahead, so
//!   mixed LF / CRLF input glues lines together: we split lines ourselves and
//!   hand it CRLF only;
//! - it silently drops whatever it cannot place (a line out of order, a last
//!   line without a line end): we check that nothing is left over;
//! - its `o=` / `c=` addresses must be IP literals, but RFC 4566 §5.7 allows a
//!   host name (RFC 3264 / 4975 examples use them): we swap names for a
//!   placeholder IP and put them back afterwards;
//! - it panics (chrono `Duration` overflow) on huge `r=` / `z=` times: we
//!   bound them first, and as a last resort catch a panic (`ParserPanicked`);
//! - it reads `a=inactive` as an unknown attribute (it matches "inacive"):
//!   harmless, since we read direction attributes by name.

use super::msrp::MsrpMedia;
use super::rtp::{self, RtpMap, RtpMedia};
use super::{
    AddrType, Attribute, ConnectionAddress, Direction, MediaLine, Origin, OtherMedia, Sdp, SdpError,
};
use sdp_rs::lines::attribute::Attribute as RsAttribute;
use sdp_rs::tokenizers::session_description::Tokenizer;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest `r=` / `z=` time value we pass to `sdp-rs` (it multiplies days by
/// 86 400 000 ms inside chrono and panics past `i64`).
const MAX_TYPED_TIME: u64 = 10_000_000_000;

/// Parses an SDP body. Never panics.
pub fn parse_sdp(bytes: &[u8]) -> Result<Sdp, SdpError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SdpError::NotUtf8)?;
    let (normalised, hosts) = prepare(text)?;
    // sdp-rs panics on some inputs `prepare` is meant to have filtered out;
    // this catch is the backstop for any we have not found.
    let parsed = std::panic::catch_unwind(|| {
        let (rest, tokens) =
            Tokenizer::tokenize(&normalised).map_err(|e| SdpError::Syntax(e.to_string()))?;
        if !rest.is_empty() {
            let line = normalised.matches("\r\n").count() - rest.matches("\r\n").count() + 1;
            let text = rest.split("\r\n").next().unwrap_or_default().to_string();
            return Err(SdpError::UnexpectedLine { line, text });
        }
        // attributes as sent (sdp-rs's typed ones print back lossily)
        let raw = |attrs: &[sdp_rs::tokenizers::key_optvalue::Tokenizer<'_, 'a'>]| {
            attrs
                .iter()
                .map(|a| Attribute {
                    name: a.key.to_string(),
                    value: a.value.map(String::from),
                })
                .collect::<Vec<_>>()
        };
        let session_attributes = raw(&tokens.attributes);
        let media_attributes: Vec<Vec<Attribute>> = tokens
            .media_descriptions
            .iter()
            .map(|m| raw(&m.attributes))
            .collect();
        let sd = sdp_rs::SessionDescription::try_from(tokens)
            .map_err(|e| SdpError::Syntax(e.to_string()))?;
        Ok(Raw {
            sd,
            session_attributes,
            media_attributes,
        })
    })
    .map_err(|_| SdpError::ParserPanicked)??;
    convert(parsed, hosts)
}

/// What `sdp-rs` gave: the typed description and the attributes as text.
struct Raw {
    sd: sdp_rs::SessionDescription,
    session_attributes: Vec<Attribute>,
    media_attributes: Vec<Vec<Attribute>>,
}

/// Splits lines, checks their shape, bounds `r=`/`z=` values and swaps host
/// names for placeholders. Returns the CRLF text and the names, in order of
/// the `o=` and `c=` lines (`None` where the address was an IP).
fn prepare(text: &str) -> Result<(String, Vec<Option<String>>), SdpError> {
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return Err(SdpError::Empty);
    }
    let mut out = String::with_capacity(text.len() + 2 * lines.len());
    let mut hosts = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let bad = |reason| SdpError::BadLine {
            line: number,
            reason,
        };
        let bytes = line.as_bytes();
        if bytes.len() < 2 || !bytes[0].is_ascii_lowercase() || bytes[1] != b'=' {
            return Err(bad("not <letter>=<value>"));
        }
        if line.contains('\r') {
            return Err(bad("bare CR inside a line"));
        }
        let value = &line[2..];
        match bytes[0] {
            b'o' => {
                let fields: Vec<&str> = value.split(' ').collect();
                let [user, id, version, net, addrtype, addr] = fields.as_slice() else {
                    return Err(bad("o= needs 6 fields"));
                };
                let (addr, host) = placeholder(addrtype, addr);
                hosts.push(host);
                out.push_str(&format!(
                    "o={user} {id} {version} {net} {addrtype} {addr}\r\n"
                ));
                continue;
            }
            b'c' => {
                let fields: Vec<&str> = value.split(' ').collect();
                let [net, addrtype, addr] = fields.as_slice() else {
                    return Err(bad("c= needs 3 fields"));
                };
                let (base, suffix) = match addr.split_once('/') {
                    Some((b, s)) => (b, Some(s)),
                    None => (*addr, None),
                };
                let (base, host) = placeholder(addrtype, base);
                hosts.push(host);
                out.push_str(&format!("c={net} {addrtype} {base}"));
                if let Some(s) = suffix {
                    out.push('/');
                    out.push_str(s);
                }
                out.push_str("\r\n");
                continue;
            }
            b'r' | b'z' => {
                for field in value.split(' ') {
                    let digits = field.trim_end_matches(['d', 'h', 'm', 's']);
                    if digits
                        .parse::<i64>()
                        .is_ok_and(|v| v.unsigned_abs() > MAX_TYPED_TIME)
                    {
                        return Err(bad("time value out of range"));
                    }
                }
            }
            _ => {}
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok((out, hosts))
}

/// An IP literal stays; a host name becomes `0.0.0.0` / `::` and is returned.
fn placeholder(addrtype: &str, addr: &str) -> (String, Option<String>) {
    if addr.parse::<IpAddr>().is_ok() {
        return (addr.to_string(), None);
    }
    let ip = if addrtype == "IP6" {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    (ip.to_string(), Some(addr.to_string()))
}

fn address(
    addrtype: &sdp_rs::lines::common::Addrtype,
    ip: IpAddr,
    host: Option<String>,
) -> ConnectionAddress {
    match host {
        None => ConnectionAddress::Ip(ip),
        Some(name) => ConnectionAddress::Host {
            addrtype: match addrtype.to_string().as_str() {
                "IP6" => AddrType::Ip6,
                _ => AddrType::Ip4,
            },
            name,
        },
    }
}

fn convert(raw: Raw, hosts: Vec<Option<String>>) -> Result<Sdp, SdpError> {
    let Raw {
        sd,
        session_attributes: attributes,
        media_attributes,
    } = raw;
    let mut hosts = hosts.into_iter();
    let mut next_host = || hosts.next().flatten();
    if sd.version.to_string() != "v=0" {
        return Err(SdpError::Syntax(format!("unsupported {}", sd.version)));
    }
    let o = &sd.origin;
    let origin = Origin {
        username: o.username.clone(),
        session_id: o
            .sess_id
            .parse()
            .map_err(|_| SdpError::BadOrigin("sess-id"))?,
        session_version: o
            .sess_version
            .parse()
            .map_err(|_| SdpError::BadOrigin("sess-version"))?,
        address: address(&o.addrtype, o.unicast_address, next_host()),
    };
    let connection = sd
        .connection
        .as_ref()
        .map(|c| address(&c.addrtype, c.connection_address.base, next_host()));
    let session_direction = direction_of(&attributes);

    let mut media = Vec::with_capacity(sd.media_descriptions.len());
    for (md, attrs) in sd.media_descriptions.iter().zip(media_attributes) {
        let mut own = None;
        for (i, c) in md.connections.iter().enumerate() {
            let a = address(&c.addrtype, c.connection_address.base, next_host());
            if i == 0 {
                own = Some(a);
            }
        }
        let connection = own.or_else(|| connection.clone());
        let direction = direction_of(&attrs)
            .or(session_direction)
            .unwrap_or_default();
        let not_direction =
            |a: &Attribute| a.value.is_some() || Direction::from_attribute(&a.name).is_none();
        let kind = md.media.media.to_string();
        let proto = md.media.proto.to_string();
        let port = md.media.port;
        let line = if kind == "message" && proto.ends_with("/MSRP") {
            let attrs = attrs.into_iter().filter(not_direction).collect();
            MediaLine::Msrp(MsrpMedia::from_parts(
                port, proto, connection, direction, attrs,
            )?)
        } else if proto == rtp::RTP_AVP {
            let rtpmaps = md
                .attributes
                .iter()
                .filter_map(|a| match a {
                    RsAttribute::Rtpmap(map) => Some(RtpMap::try_from(map)),
                    _ => None,
                })
                .collect::<Result<Vec<_>, _>>()?;
            let other = attrs
                .into_iter()
                .filter(|a| not_direction(a) && a.name != "rtpmap")
                .collect();
            MediaLine::Rtp(RtpMedia::from_parts(
                &kind,
                port,
                &md.media.fmt,
                connection,
                direction,
                rtpmaps,
                other,
            )?)
        } else {
            MediaLine::Other(OtherMedia {
                media: kind,
                port,
                proto,
                fmt: md.media.fmt.clone(),
                connection,
                attributes: attrs,
            })
        };
        media.push(line);
    }
    let session_name = sd.session_name.to_string();
    Ok(Sdp {
        origin,
        session_name: session_name
            .strip_prefix("s=")
            .unwrap_or(&session_name)
            .to_string(),
        connection,
        attributes,
        media,
    })
}

/// The last direction attribute among these (RFC 3264 §5.1).
fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .rev()
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::from_attribute(&a.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn host_names_come_back() {
        let sdp = parse_sdp(
            b"v=0\r\no=a 1 2 IN IP4 host.example.com\r\ns=-\r\nc=IN IP6 h6.example.com\r\nt=0 0\r\n",
        )
        .unwrap();
        assert_eq!(
            sdp.origin.address,
            ConnectionAddress::Host {
                addrtype: AddrType::Ip4,
                name: "host.example.com".into()
            }
        );
        assert_eq!(
            sdp.connection,
            Some(ConnectionAddress::Host {
                addrtype: AddrType::Ip6,
                name: "h6.example.com".into()
            })
        );
    }

    #[test]
    fn leftover_line_is_an_error() {
        // a= before c= inside a media section: sdp-rs would drop the rest
        let err = parse_sdp(
            b"v=0\no=a 1 2 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 4 RTP/AVP 0\na=sendonly\nc=IN IP4 1.2.3.4\n",
        )
        .unwrap_err();
        assert!(
            matches!(err, SdpError::UnexpectedLine { line: 7, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn huge_repeat_time_does_not_panic() {
        let err =
            parse_sdp(b"v=0\no=a 1 2 IN IP4 1.2.3.4\ns=-\nt=0 0\nr=9223372036854775807d 1 0\n")
                .unwrap_err();
        assert!(matches!(err, SdpError::BadLine { line: 5, .. }), "{err:?}");
    }

    /// Why `parse_sdp` guards `r=` and keeps a `catch_unwind`: sdp-rs 0.2.1
    /// itself panics here (chrono `Duration::days` overflow).
    #[test]
    fn sdp_rs_itself_panics_on_huge_repeat_time() {
        let body =
            "v=0\r\no=a 1 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nr=9223372036854775807d 1 0\r\n";
        let caught = std::panic::catch_unwind(|| sdp_rs::SessionDescription::try_from(body));
        assert!(caught.is_err());
    }

    #[test]
    fn most_negative_repeat_time_does_not_panic() {
        for t in [
            "-9223372036854775808d",
            "-9223372036854775808",
            "9223372036854775807m",
        ] {
            let body = format!("v=0\no=a 1 2 IN IP4 1.2.3.4\ns=-\nt=0 0\nr={t} 1 0\n");
            assert!(parse_sdp(body.as_bytes()).is_err());
            let body = format!("v=0\no=a 1 2 IN IP4 1.2.3.4\ns=-\nt=0 0\nz=1 {t}\n");
            assert!(parse_sdp(body.as_bytes()).is_err());
        }
    }

    #[test]
    fn last_line_without_line_end() {
        let sdp = parse_sdp(b"v=0\no=a 1 2 IN IP4 1.2.3.4\ns=-\nt=0 0\na=recvonly").unwrap();
        assert_eq!(sdp.attributes, vec![Attribute::flag("recvonly")]);
    }

    proptest! {
        #[test]
        fn never_panics_on_strings(s in "\\PC*") {
            let _ = parse_sdp(s.as_bytes());
        }

        #[test]
        fn never_panics_on_time_lines(r in "[rz]=(-?[0-9]{1,20}[dhms]? ?){1,4}") {
            let body = format!("v=0\r\no=a 1 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n{r}\r\n");
            let _ = parse_sdp(body.as_bytes());
        }

        #[test]
        fn never_panics_on_sdp_like_lines(lines in proptest::collection::vec(
            "[vosctmarzbk]=[ -~]{0,40}", 0..12)) {
            let _ = parse_sdp(lines.join("\r\n").as_bytes());
        }
    }
}
