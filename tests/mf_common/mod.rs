//! Raw peers for the ISC Media Function tests: a SIP peer (`common::Peer`)
//! plus the UDP sockets a viewer receives RTP/RTCP on, and the ISC request
//! builders, so the assertions are on the bytes the server sends.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use isc::proto::bodies::isc::SessionType;
use isc::proto::bodies::isc_content_request::{self, IscContentRequest};
use isc::proto::bodies::multipart::{Multipart, Part};
use isc::proto::rtp::RtpPacket;
use isc::proto::rtp::rtcp::{RtcpPacket, SenderInfo, parse_compound};
use isc::proto::sip::headers::{HeadersExt, make_header};
use isc::server::rtp_sender::PortPair;
use isc::server::runner::{Server, ServerHandle, ServerOptions};

use crate::common::Peer;

pub const ICSI_1_1: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.isc.1-1-cv-cm";
pub const ICSI_GROUP: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.isc.group-cv-cm";

pub fn accept_contact(icsi: &str) -> String {
    format!(
        "Accept-Contact: *;+g.3gpp.icsi-ref=\"{}\"",
        icsi.replace(':', "%3A")
    )
}

/// A server with alice, bob, carol, ted and `tweak` applied.
pub async fn start(tweak: impl FnOnce(&mut ServerOptions)) -> ServerHandle {
    let mut opts = ServerOptions::loopback_demo();
    opts.config.users = ["alice", "bob", "carol", "ted"]
        .iter()
        .map(|n| isc::config::UserConfig::new(n, n))
        .collect();
    opts.config.content_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/content").into();
    tweak(&mut opts);
    Server::start(opts).await.expect("server starts")
}

pub fn user_mut<'a>(opts: &'a mut ServerOptions, name: &str) -> &'a mut isc::config::UserConfig {
    opts.config
        .users
        .iter_mut()
        .find(|u| u.name == name)
        .expect("user in the cast")
}

/// A registered device with RTP/RTCP sockets for audio and video.
pub struct Viewer {
    pub sip: Peer,
    pub gruu: String,
    pub audio: PortPair,
    pub video: PortPair,
}

impl Viewer {
    pub async fn register(server: SocketAddr, user: &str, instance: &str, name: &str) -> Viewer {
        let mut sip = Peer::new(server, user, user).await;
        let resp = sip.register(instance, name).await;
        assert_eq!(resp.status_code.code(), 200, "{user}/{name} registers");
        let gruu = format!("sip:{user}@isc.local;gr=urn:uuid:{instance}");
        let ip = "127.0.0.1".parse().unwrap();
        Viewer {
            sip,
            gruu,
            audio: PortPair::bind(ip).await.unwrap(),
            video: PortPair::bind(ip).await.unwrap(),
        }
    }

    /// A recvonly offer/answer for PCMU audio and JPEG video at our ports.
    pub fn sdp(&self) -> String {
        format!(
            "v=0\r\no={} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\nm=video {} RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=recvonly\r\n",
            self.sip.user,
            self.audio.port(),
            self.video.port()
        )
    }

    /// RTP packets arriving on the audio socket within `d`.
    pub async fn audio_rtp(&self, d: Duration) -> Vec<(Instant, RtpPacket)> {
        collect_rtp(&self.audio.rtp, d).await
    }

    pub async fn video_rtp(&self, d: Duration) -> Vec<(Instant, RtpPacket)> {
        collect_rtp(&self.video.rtp, d).await
    }

    /// Sender reports arriving on the audio RTCP socket within `d`.
    pub async fn audio_srs(&self, d: Duration) -> Vec<SenderInfo> {
        collect_srs(&self.audio.rtcp, d).await
    }
}

pub async fn collect_rtp(sock: &tokio::net::UdpSocket, d: Duration) -> Vec<(Instant, RtpPacket)> {
    let end = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(end.into(), sock.recv_from(&mut buf)).await {
        if let Ok(p) = RtpPacket::parse(&buf[..n]) {
            out.push((Instant::now(), p));
        }
    }
    out
}

pub async fn collect_srs(sock: &tokio::net::UdpSocket, d: Duration) -> Vec<SenderInfo> {
    let end = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(end.into(), sock.recv_from(&mut buf)).await {
        for p in parse_compound(&buf[..n]).unwrap_or_default() {
            if let RtcpPacket::SenderReport(sr) = p {
                out.push(sr.info);
            }
        }
    }
    out
}

/// Drains whatever is queued on a socket now.
pub async fn drain(sock: &tokio::net::UdpSocket) {
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(5), sock.recv_from(&mut buf)).await
    {}
}

/// The content request body A1 sends.
pub fn content_request(
    content_ref: &str,
    cca: Option<&str>,
    cvca: Option<&str>,
    target: &str,
) -> IscContentRequest {
    let mut r = IscContentRequest::new(content_ref);
    r.session_type = SessionType::CvCm;
    r.using_multiple_client = cca.is_some();
    r.communication_client_addr = cca.map(str::to_owned);
    r.content_viewing_client_addr = cvca.map(str::to_owned);
    r.target_users = vec![target.to_owned()];
    r
}

/// A CV INVITE: multipart SDP + content request (+ `more` parts).
#[allow(clippy::too_many_arguments)]
pub fn cv_invite(
    peer: &mut Peer,
    to: &str,
    icsi: &str,
    sdp: &str,
    request: &IscContentRequest,
    more: Vec<Part>,
    extra: &[&str],
) -> rsip::Request {
    let mut parts = vec![
        Part::new("application/sdp", sdp.as_bytes().to_vec()),
        Part::new(isc_content_request::CONTENT_TYPE, request.to_bytes()),
    ];
    parts.extend(more);
    let body = Multipart::new(parts);
    let mut lines: Vec<String> = vec![
        accept_contact(icsi),
        format!("P-Preferred-Service: {icsi}"),
        format!("Contact: <sip:{}@{};transport=udp>", peer.user, peer.addr()),
        "ISCConvergenceID: cv-test-1".into(),
        "Recv-Info: isc-playback".into(),
        "User-Agent: isc/1.0 ISC-client/OMA1.0".into(),
        format!("Content-Type: {}", body.content_type()),
    ];
    for e in extra {
        let name = e.split(':').next().unwrap();
        lines.retain(|l| !l.starts_with(&format!("{name}:")));
        if !e.ends_with(':') {
            lines.push(e.to_string());
        }
    }
    let body = String::from_utf8(body.to_bytes()).unwrap();
    peer.request("INVITE", to, to, &lines, &body)
}

/// A part of a multipart body of a message.
pub fn part(headers: &rsip::Headers, body: &[u8], media_type: &str) -> Option<Part> {
    let ct = headers.get_raw("Content-Type")?;
    let m = Multipart::parse_with_content_type(&ct, body).ok()?;
    m.part_of_type(media_type).cloned()
}

/// Answers an INVITE with 200 + SDP (+ Recv-Info) as a device; returns the
/// To tag used.
pub async fn answer_ok(peer: &Peer, invite: &rsip::Request, tag: &str, sdp: &str) {
    let mut resp = isc::proto::sip::build::response_to(invite, 200, Some(tag));
    resp.headers.remove_named("Content-Length");
    resp.headers.push(make_header(
        "Contact",
        &format!("<sip:{}@{};transport=udp>", peer.user, peer.addr()),
    ));
    resp.headers.push(make_header("Recv-Info", "isc-playback"));
    resp.headers
        .push(make_header("Content-Type", "application/sdp"));
    resp.headers
        .push(make_header("Content-Length", &sdp.len().to_string()));
    resp.body = sdp.as_bytes().to_vec();
    peer.send(resp).await;
}

/// Our view of a dialog, enough to send requests in it.
pub struct DialogView {
    pub call_id: String,
    /// Our From (with our tag).
    pub local: String,
    /// Their To (with their tag).
    pub remote: String,
    pub target: String,
    pub cseq: u32,
}

fn contact_uri(v: &str) -> String {
    v.trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string()
}

impl DialogView {
    /// The caller's side: its INVITE and the 200.
    pub fn uac(invite: &rsip::Request, ok: &rsip::Response) -> Self {
        DialogView {
            call_id: invite.headers.get_raw("Call-ID").unwrap(),
            local: invite.headers.get_raw("From").unwrap(),
            remote: ok.headers.get_raw("To").unwrap(),
            target: contact_uri(&ok.headers.get_raw("Contact").unwrap()),
            cseq: isc::proto::sip::build::cseq(&invite.headers).unwrap().0 + 10,
        }
    }

    /// The callee's side: the received INVITE and the tag we answered with.
    pub fn uas(invite: &rsip::Request, tag: &str) -> Self {
        DialogView {
            call_id: invite.headers.get_raw("Call-ID").unwrap(),
            local: format!("{};tag={tag}", invite.headers.get_raw("To").unwrap()),
            remote: invite.headers.get_raw("From").unwrap(),
            target: contact_uri(&invite.headers.get_raw("Contact").unwrap()),
            cseq: 100,
        }
    }

    pub fn request(
        &mut self,
        peer: &mut Peer,
        method: &str,
        extra: &[&str],
        body: &str,
    ) -> rsip::Request {
        self.cseq += 1;
        let mut text = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nFrom: {local}\r\nTo: {remote}\r\nCall-ID: {call}\r\nCSeq: {seq} {method}\r\n",
            target = self.target,
            addr = peer.addr(),
            branch = peer.token(),
            local = self.local,
            remote = self.remote,
            call = self.call_id,
            seq = self.cseq,
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

    /// The ACK for the 2xx this dialog was made by.
    pub fn ack(&self, peer: &mut Peer, invite_seq: u32) -> rsip::Request {
        let text = format!(
            "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {invite_seq} ACK\r\nContent-Length: 0\r\n\r\n",
            self.target,
            peer.addr(),
            peer.token(),
            self.local,
            self.remote,
            self.call_id
        );
        match isc::proto::sip::message::parse_message(text.as_bytes()).unwrap() {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }
}

/// The next response (final or not) to a request with this Call-ID and CSeq method.
pub async fn response_to(peer: &Peer, call_id: &str, method: &str) -> rsip::Response {
    loop {
        match peer.recv().await {
            rsip::SipMessage::Response(r)
                if r.headers.get_raw("Call-ID").as_deref() == Some(call_id)
                    && r.headers
                        .get_raw("CSeq")
                        .is_some_and(|c| c.trim().ends_with(method))
                    && r.status_code.code() >= 200 =>
            {
                return r;
            }
            _ => continue,
        }
    }
}

/// Sets up a 1-1 CV session alice(`a`) → bob(`b`), both viewers. Returns
/// alice's dialog view, bob's and bob's received INVITE.
pub async fn watch_1_1(
    a: &mut Viewer,
    b: &mut Viewer,
    content: &str,
) -> (DialogView, DialogView, rsip::Request) {
    let req = content_request(content, None, None, "sip:bob@isc.local");
    let sdp = a.sdp();
    let inv = cv_invite(
        &mut a.sip,
        "sip:bob@isc.local",
        ICSI_1_1,
        &sdp,
        &req,
        vec![],
        &[],
    );
    let sent = send_invite(&mut a.sip, inv).await;
    let binv = crate::cpm_common::recv_request(&b.sip, rsip::Method::Invite).await;
    answer_ok(&b.sip, &binv, "bobtag", &b.sdp()).await;
    let ok = crate::cpm_common::final_for(&a.sip, &sent).await;
    assert_eq!(ok.status_code.code(), 200);
    let ad = DialogView::uac(&sent, &ok);
    let seq = isc::proto::sip::build::cseq(&sent.headers).unwrap().0;
    let ack = ad.ack(&mut a.sip, seq);
    a.sip.send(ack).await;
    let bd = DialogView::uas(&binv, "bobtag");
    (ad, bd, binv)
}

/// Sends an INVITE with the credentials the peer already holds (if any);
/// on a 407 ACKs it and re-sends answering the challenge. Returns the
/// request as finally sent (its final response is not awaited).
pub async fn send_invite(peer: &mut Peer, mut req: rsip::Request) -> rsip::Request {
    peer.digest.authorize(&mut req, "0a4f113b");
    peer.send(req.clone()).await;
    loop {
        let resp = match peer.recv_within(1.0).await {
            Some(rsip::SipMessage::Response(r)) => r,
            Some(_) => continue,
            None => return req,
        };
        match resp.status_code.code() {
            100 | 180 | 183 => return req,
            c if c >= 200 && c != 407 => panic!("unexpected {c} to the INVITE: {resp}"),
            407 => {
                peer.send(crate::cpm_common::ack_non_2xx(&req, &resp)).await;
                peer.digest = isc::proto::sip::digest::client::DigestClient::new(
                    peer.user.clone(),
                    peer.user.clone(),
                );
                peer.digest.handle_challenge(&resp).unwrap();
                let seq = isc::proto::sip::build::cseq(&req.headers).unwrap().0 + 1;
                crate::common::bump_cseq(&mut req, seq);
                let branch = format!("z9hG4bK{}", peer.token());
                crate::common::new_branch(&mut req, &branch);
                peer.digest.authorize(&mut req, "0a4f113b");
                peer.send(req.clone()).await;
                return req;
            }
            _ => continue,
        }
    }
}

/// Sends an INVITE (answering a challenge) and returns its final response
/// (ACKed when it is not a 2xx).
pub async fn invite_final(peer: &mut Peer, req: rsip::Request) -> rsip::Response {
    let mut req = req;
    peer.digest.authorize(&mut req, "0a4f113b");
    peer.send(req.clone()).await;
    let call = req.headers.get_raw("Call-ID").unwrap();
    loop {
        let resp = match peer.recv().await {
            rsip::SipMessage::Response(r)
                if r.status_code.code() >= 200
                    && r.headers.get_raw("Call-ID").as_deref() == Some(call.as_str()) =>
            {
                r
            }
            _ => continue,
        };
        if resp.status_code.code() >= 300 {
            peer.send(crate::cpm_common::ack_non_2xx(&req, &resp)).await;
        }
        if resp.status_code.code() != 407 {
            return resp;
        }
        peer.digest = isc::proto::sip::digest::client::DigestClient::new(
            peer.user.clone(),
            peer.user.clone(),
        );
        peer.digest.handle_challenge(&resp).unwrap();
        let seq = isc::proto::sip::build::cseq(&req.headers).unwrap().0 + 1;
        crate::common::bump_cseq(&mut req, seq);
        let branch = format!("z9hG4bK{}", peer.token());
        crate::common::new_branch(&mut req, &branch);
        peer.digest.authorize(&mut req, "0a4f113b");
        peer.send(req.clone()).await;
    }
}
