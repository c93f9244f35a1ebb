//! Raw peers for the conference focus tests: the CPM helpers (SIP over
//! UDP, raw MSRP over TCP) plus the factory INVITE, in-dialog requests of a
//! called device, SUBSCRIBE / NOTIFY of the conference event package.
#![allow(dead_code)]

use isc::proto::bodies::conference_info::ConferenceInfo;
use isc::proto::bodies::multipart::{Multipart, Part};
use isc::proto::bodies::resource_lists::{Entry, ResourceLists};
use isc::proto::msrp::{ByteRange, MsrpHeader, MsrpMessage, MsrpMethod, MsrpPath, MsrpUri};
use isc::proto::sip::headers::{HeadersExt, make_header};
use isc::server::runner::ServerHandle;

use crate::common::Peer;
use crate::cpm_common::*;

pub const IM_ACCEPT_CONTACT: &str = "Accept-Contact: *;+g.oma.sip-im";
pub const FACTORY: &str = "sip:conf-factory@isc.local";

/// A server with alice, bob, carol and ted, `tweak` applied.
pub async fn start_focus(
    tweak: impl FnOnce(&mut isc::server::runner::ServerOptions),
) -> ServerHandle {
    start(|o| {
        o.config.users = ["alice", "bob", "carol", "ted"]
            .iter()
            .map(|n| isc::config::UserConfig::new(n, n))
            .collect();
        tweak(o);
    })
    .await
}

/// The multipart body of a factory INVITE: SDP + resource-lists
/// (`Content-Disposition: recipient-list`, RFC 5366).
pub fn factory_body(sdp: &str, entries: Vec<Entry>) -> (String, Vec<u8>) {
    let list = ResourceLists::of(entries).to_bytes();
    let mp = Multipart::new(vec![
        Part::new("application/sdp", sdp.as_bytes().to_vec()),
        Part::new("application/resource-lists+xml", list)
            .with_header("Content-Disposition", "recipient-list"),
    ]);
    (mp.content_type(), mp.to_bytes())
}

/// An INVITE to the conference factory.
pub fn factory_invite(
    peer: &mut Peer,
    sdp: &str,
    entries: Vec<Entry>,
    extra: &[&str],
) -> rsip::Request {
    let (ct, body) = factory_body(sdp, entries);
    let mut lines: Vec<String> = vec![
        IM_ACCEPT_CONTACT.into(),
        format!("Contact: <sip:{}@{};transport=udp>", peer.user, peer.addr()),
        "Require: recipient-list-invite".into(),
        format!("Content-Type: {ct}"),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    peer.request(
        "INVITE",
        FACTORY,
        FACTORY,
        &lines,
        &String::from_utf8(body).unwrap(),
    )
}

/// An INVITE joining `uri` (session identity or group).
pub fn join_invite(peer: &mut Peer, uri: &str, sdp: &str, extra: &[&str]) -> rsip::Request {
    let mut lines: Vec<String> = vec![
        IM_ACCEPT_CONTACT.into(),
        format!("Contact: <sip:{}@{};transport=udp>", peer.user, peer.addr()),
        "Content-Type: application/sdp".into(),
    ];
    for e in extra {
        let name = e.split(':').next().unwrap();
        lines.retain(|l| !l.starts_with(&format!("{name}:")));
        lines.push(e.to_string());
    }
    peer.request("INVITE", uri, uri, &lines, sdp)
}

/// The URI in a Contact value, and whether it has `isfocus`.
pub fn contact_uri(resp: &rsip::Response) -> (String, bool) {
    let c = resp.headers.get_raw("Contact").expect("a Contact");
    let uri = c
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    (uri, c.to_ascii_lowercase().contains("isfocus"))
}

/// A request inside the dialog a device accepted (`inv` received, answered
/// with `tag`): From = the device, To = the focus.
pub fn uas_request(
    peer: &mut Peer,
    inv: &rsip::Request,
    tag: &str,
    method: &str,
    seq: u32,
    extra: &[String],
    body: &str,
) -> rsip::Request {
    let from = inv.headers.get_raw("From").unwrap();
    let to = inv.headers.get_raw("To").unwrap();
    let uri = inv
        .headers
        .get_raw("Contact")
        .unwrap()
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let mut text = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n",
        peer.addr(),
        peer.token(),
        inv.headers.get_raw("Call-ID").unwrap(),
    );
    for e in extra {
        text.push_str(e);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    match isc::proto::sip::message::parse_message(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

/// A request inside the dialog `req` / `resp` made (we are the UAC).
pub fn uac_request(
    peer: &mut Peer,
    req: &rsip::Request,
    resp: &rsip::Response,
    method: &str,
    seq: u32,
    extra: &[String],
    body: &str,
) -> rsip::Request {
    let (uri, _) = contact_uri(resp);
    let mut text = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n",
        peer.addr(),
        peer.token(),
        req.headers.get_raw("From").unwrap(),
        resp.headers.get_raw("To").unwrap(),
        req.headers.get_raw("Call-ID").unwrap(),
    );
    for e in extra {
        text.push_str(e);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    match isc::proto::sip::message::parse_message(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

/// The next response to `req` (any status), skipping other traffic.
pub async fn response_for(peer: &Peer, req: &rsip::Request) -> rsip::Response {
    let call = req.headers.get_raw("Call-ID").unwrap();
    loop {
        match peer.recv().await {
            rsip::SipMessage::Response(r)
                if r.status_code.code() >= 200
                    && r.headers.get_raw("Call-ID").as_deref() == Some(call.as_str()) =>
            {
                return r;
            }
            _ => continue,
        }
    }
}

/// SUBSCRIBE Event: conference to `uri` (authenticated), its 200.
pub async fn subscribe(peer: &mut Peer, uri: &str) -> (rsip::Request, rsip::Response) {
    let lines = vec![
        "Event: conference".to_string(),
        "Accept: application/conference-info+xml".into(),
        IM_ACCEPT_CONTACT.into(),
        format!("Contact: <sip:{}@{};transport=udp>", peer.user, peer.addr()),
        "Expires: 600".into(),
    ];
    let req = peer.request("SUBSCRIBE", uri, uri, &lines, "");
    let req = send_auth(peer, req).await;
    let resp = response_for(peer, &req).await;
    (req, resp)
}

/// The next NOTIFY (answered 200) and its body.
pub async fn next_notify(peer: &Peer) -> (rsip::Request, ConferenceInfo) {
    let n = recv_request(peer, rsip::Method::Notify).await;
    peer.answer(&n, 200).await;
    let info = ConferenceInfo::parse(&n.body).expect("conference-info parses");
    (n, info)
}

/// A CPIM chat SEND.
pub fn cpim_send(
    to: &MsrpPath,
    from: &MsrpUri,
    mid: &str,
    cpim_from: &str,
    cpim_to: &str,
    text: &str,
) -> MsrpMessage {
    let body = format!(
        "From: <{cpim_from}>\r\nTo: <{cpim_to}>\r\n\r\nContent-Type: text/plain\r\n\r\n{text}"
    )
    .into_bytes();
    let n = body.len() as u64;
    MsrpMessage::request(
        MsrpMethod::Send,
        format!("t{mid}"),
        to.clone(),
        MsrpPath::single(from.clone()),
    )
    .with_header(MsrpHeader::MessageId(mid.into()))
    .with_header(MsrpHeader::ByteRange(ByteRange {
        start: 1,
        end: Some(n),
        total: Some(n),
    }))
    .with_body("message/cpim", body)
}

/// An empty SEND binding a connection we opened (RFC 4975 §5.4).
pub fn bind_send(to: &MsrpPath, from: &MsrpUri) -> MsrpMessage {
    MsrpMessage::request(
        MsrpMethod::Send,
        "bind",
        to.clone(),
        MsrpPath::single(from.clone()),
    )
    .with_header(MsrpHeader::MessageId("bind".into()))
}

/// The text of a SEND's body.
pub fn body_text(m: &MsrpMessage) -> String {
    String::from_utf8_lossy(m.body.as_deref().unwrap_or_default()).into_owned()
}

pub fn hdr(resp: &rsip::Response, name: &str) -> Option<String> {
    resp.headers.get_raw(name)
}

pub fn set_header(req: &mut rsip::Request, name: &str, value: &str) {
    req.headers.remove_named(name);
    req.headers.push(make_header(name, value));
}

/// Sends `req` with credentials when the peer has a challenge already, else
/// like [`send_invite`] (first attempt, 407, ACK, retry). Returns the
/// request as finally sent.
pub async fn send_auth(peer: &mut Peer, mut req: rsip::Request) -> rsip::Request {
    if !peer.digest.has_challenge() {
        return send_invite(peer, req).await;
    }
    peer.digest.authorize(&mut req, "0b5e224c");
    peer.send(req.clone()).await;
    req
}

/// An invitee device in a conference: its SIP/MSRP ends and the focus's
/// MSRP path towards it.
pub struct Member {
    pub dev: Device,
    pub invite: rsip::Request,
    pub tag: String,
    pub conn: MsrpConn,
    /// The focus's path for this leg (from its INVITE's SDP).
    pub focus_path: MsrpPath,
}

/// An ad-hoc conference created by alice with `invitees` (one device each,
/// all accept).
pub struct Conf {
    pub alice: Peer,
    pub alice_uri: MsrpUri,
    pub a: MsrpConn,
    /// The focus's path towards alice (from its 200's SDP).
    pub a_focus_path: MsrpPath,
    pub invite: rsip::Request,
    pub ok: rsip::Response,
    pub identity: String,
    pub members: Vec<Member>,
}

pub async fn adhoc_conference(server: &ServerHandle, invitees: &[&str]) -> Conf {
    let addr = server.local_addr();
    let mut alice = Peer::new(addr, "alice", "alice").await;
    let mut devs = Vec::new();
    for name in invitees {
        devs.push(Device::register(addr, name, &format!("{name}-dev"), "dev").await);
    }
    let alice_uri = MsrpUri::new("127.0.0.1", 7, "alicesess");
    let entries = invitees
        .iter()
        .map(|n| Entry::new(format!("sip:{n}@isc.local")))
        .collect();
    let req = factory_invite(
        &mut alice,
        &msrp_sdp(&alice_uri, "actpass", ""),
        entries,
        &[],
    );
    let invite = send_invite(&mut alice, req).await;
    let mut members = Vec::new();
    for dev in devs {
        let inv = recv_request(&dev.sip, rsip::Method::Invite).await;
        let tag = format!("{}tag", dev.sip.user);
        answer(
            &dev.sip,
            &inv,
            200,
            &tag,
            Some(&msrp_sdp(&dev.uri, "passive", "")),
        )
        .await;
        let focus_path = sdp_path(&inv.body);
        let mut conn = MsrpConn::accept(&dev.listener).await;
        let bind = conn.recv_request().await;
        assert!(bind.body.is_none(), "the focus binds its connection first");
        members.push(Member {
            dev,
            invite: inv,
            tag,
            conn,
            focus_path,
        });
    }
    let ok = final_for(&alice, &invite).await;
    assert_eq!(ok.status_code.code(), 200);
    let ack = ack_2xx(&mut alice, &invite, &ok);
    alice.send(ack).await;
    let (identity, _) = contact_uri(&ok);
    let a_focus_path = sdp_path(&ok.body);
    let mut a = MsrpConn::connect(server.msrp_addr()).await;
    a.send(&bind_send(&a_focus_path, &alice_uri)).await;
    let r = a.recv().await;
    assert!(!r.is_request(), "the bind SEND is answered");
    Conf {
        alice,
        alice_uri,
        a,
        a_focus_path,
        invite,
        ok,
        identity,
        members,
    }
}
