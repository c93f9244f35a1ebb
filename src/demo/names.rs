//! Who is who on the ladder: a peer address becomes the device that owns
//! it (`alice/tv`), the server becomes the function that acted
//! (`server:reg` for registrations and their reg-event, `server` for the
//! proxy), decided per request and kept for its Call-ID's responses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::flow::Flow;
use crate::server::runner::{Direction, WireEvent};

use super::{FunctionNamer, Scenario};

/// The server function that handles a request, from its method and
/// headers; `None` for a response (it inherits its request's function).
///
/// Later scenarios extend this: `server:mf` for the ISC content-viewing
/// INVITE and its recommendation MESSAGE, `server:cpm` for CPM sessions,
/// `server:focus` for conferences, `server:store` for deferred messages.
pub fn server_function(raw: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(8192)]);
    let first = text.lines().next().unwrap_or("");
    if first.starts_with("SIP/") {
        return None;
    }
    let method = first.split_whitespace().next().unwrap_or("");
    let event = header(&text, "Event", Some("o")).unwrap_or_default();
    let reg_event = event
        .split(';')
        .next()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("reg"));
    Some(match method {
        "REGISTER" => "server:reg",
        "SUBSCRIBE" | "NOTIFY" if reg_event => "server:reg",
        _ => "server",
    })
}

/// The record as a [`Flow`], with the cast's columns first.
pub(super) fn flow_for(
    scenario: &Scenario,
    started: Instant,
    events: &[WireEvent],
    names: &HashMap<SocketAddr, String>,
    _server: SocketAddr,
) -> Flow {
    let mut flow = Flow::with_entities(columns(scenario));
    let mut namer = Namer::new(scenario.function);
    for ev in events {
        let (from, to) = namer.ends(ev, names);
        flow.record(
            ev.at.saturating_duration_since(started),
            &from,
            &to,
            &ev.bytes,
        );
    }
    flow
}

/// The ladder's columns: the scenario's, else the first user's devices,
/// the server's functions, everyone else.
pub fn columns(scenario: &Scenario) -> Vec<String> {
    let mut columns: Vec<String> = scenario.columns.iter().map(|s| s.to_string()).collect();
    if columns.is_empty() {
        // The first user's devices, the server, everyone else.
        let user = |n: &str| super::DeviceName::parse(n).user;
        let first = scenario.cast.first().map(|n| user(n)).unwrap_or_default();
        let (mine, others): (Vec<&str>, Vec<&str>) =
            scenario.cast.iter().partition(|n| user(n) == first);
        columns.extend(mine.iter().map(|s| s.to_string()));
        columns.push("server:reg".into());
        columns.push("server".into());
        columns.extend(others.iter().map(|s| s.to_string()));
    }
    columns
}

/// Names both ends of each message the server sent or received: the
/// device owning the peer address, and the server function that acted
/// (a response inherits its request's, by Call-ID).
#[derive(Debug, Clone, Default)]
pub struct Namer {
    function: Option<FunctionNamer>,
    by_call: HashMap<String, &'static str>,
    /// MSRP authorities (`127.0.0.1:40123`) each device put in its SDP.
    msrp_paths: HashMap<String, String>,
}

impl Namer {
    /// `function` names scenario-specific server functions first.
    pub fn new(function: Option<FunctionNamer>) -> Namer {
        Namer {
            function,
            by_call: HashMap::new(),
            msrp_paths: HashMap::new(),
        }
    }

    /// `(from, to)` of `ev`; unknown peers are named by their address.
    pub fn ends(
        &mut self,
        ev: &WireEvent,
        names: &HashMap<SocketAddr, String>,
    ) -> (String, String) {
        let text = String::from_utf8_lossy(&ev.bytes[..ev.bytes.len().min(8192)]);
        let call_id = header(&text, "Call-ID", Some("i")).unwrap_or_default();
        let named = match self.function {
            Some(f) if server_function(&ev.bytes).is_some() => f(&ev.bytes),
            _ => None,
        };
        let function = match named.or_else(|| server_function(&ev.bytes)) {
            // an in-dialog request (ACK, CANCEL, BYE, INFO) the namer does
            // not know stays with the function its Call-ID started in
            Some("server") if named.is_none() && self.by_call.contains_key(&call_id) => {
                self.by_call.get(&call_id).copied().unwrap_or("server")
            }
            Some(f) => {
                self.by_call.entry(call_id).or_insert(f);
                f
            }
            None => self.by_call.get(&call_id).copied().unwrap_or("server"),
        };
        let known = names.get(&ev.peer).cloned();
        if let (Some(dev), Direction::In) = (&known, ev.direction) {
            for line in text.lines() {
                if let Some(path) = line.trim().strip_prefix("a=path:") {
                    for uri in path.split_whitespace() {
                        if let Some(a) = msrp_authority(uri) {
                            self.msrp_paths.insert(a, dev.clone());
                        }
                    }
                }
            }
        }
        let peer = known
            .or_else(|| msrp_peer(&text, ev.direction, &self.msrp_paths))
            .unwrap_or_else(|| ev.peer.to_string());
        match ev.direction {
            Direction::In => (peer, function.to_string()),
            Direction::Out => (function.to_string(), peer),
        }
    }
}

/// `host:port` of an MSRP URI (RFC 4975 §9).
fn msrp_authority(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("msrp://")
        .or_else(|| uri.strip_prefix("msrps://"))?;
    let auth = rest.split(['/', ';']).next()?;
    // Drop a userinfo part.
    Some(auth.rsplit('@').next().unwrap_or(auth).to_owned())
}

/// The device at the far end of an MSRP frame: the sender's URI (first of
/// From-Path) when it came in, the addressee's (last of To-Path) when it
/// went out, looked up among the devices' SDP paths.
fn msrp_peer(text: &str, dir: Direction, paths: &HashMap<String, String>) -> Option<String> {
    if !text.starts_with("MSRP ") {
        return None;
    }
    let uri = match dir {
        Direction::In => header(text, "From-Path", None)?
            .split_whitespace()
            .next()?
            .to_owned(),
        Direction::Out => header(text, "To-Path", None)?
            .split_whitespace()
            .last()?
            .to_owned(),
    };
    paths.get(&msrp_authority(&uri)?).cloned()
}

/// The first header `name` (or its compact form), trimmed.
fn header(text: &str, name: &str, compact: Option<&str>) -> Option<String> {
    for line in text.lines().skip(1) {
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)) {
                return Some(v.trim().to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msrp_frames_are_named_by_the_devices_sdp_paths() {
        let mut paths = HashMap::new();
        paths.insert("127.0.0.1:4000".to_owned(), "bob/tv".to_owned());
        let inbound = "MSRP t1 SEND\r\nTo-Path: msrp://127.0.0.1:9/s;tcp\r\nFrom-Path: msrp://127.0.0.1:4000/x;tcp\r\n\r\n";
        assert_eq!(
            msrp_peer(inbound, Direction::In, &paths).as_deref(),
            Some("bob/tv")
        );
        let outbound = "MSRP t2 SEND\r\nTo-Path: msrp://127.0.0.1:4000/x;tcp\r\nFrom-Path: msrp://127.0.0.1:9/s;tcp\r\n\r\n";
        assert_eq!(
            msrp_peer(outbound, Direction::Out, &paths).as_deref(),
            Some("bob/tv")
        );
        assert_eq!(
            msrp_peer("INVITE sip:x SIP/2.0\r\n", Direction::In, &paths),
            None
        );
        assert_eq!(
            msrp_authority("msrps://u@h:1/s;tcp").as_deref(),
            Some("h:1")
        );
    }

    #[test]
    fn functions() {
        assert_eq!(
            server_function(b"REGISTER sip:isc.local SIP/2.0\r\n\r\n"),
            Some("server:reg")
        );
        assert_eq!(
            server_function(b"NOTIFY sip:a@b SIP/2.0\r\nEvent: reg\r\n\r\n"),
            Some("server:reg")
        );
        assert_eq!(
            server_function(b"SUBSCRIBE sip:a@b SIP/2.0\r\no: presence\r\n\r\n"),
            Some("server")
        );
        assert_eq!(
            server_function(b"MESSAGE sip:a@b SIP/2.0\r\n\r\n"),
            Some("server")
        );
        assert_eq!(server_function(b"SIP/2.0 200 OK\r\n\r\n"), None);
    }
}
