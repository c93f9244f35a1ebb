//! [`History`] without sockets: its SIP goes through a real
//! [`TransactionLayer`], the server's answers are built here, time jumps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::client::ComposingConfig;
use crate::client::chats::rfc3339;
use crate::proto::bodies::multipart::Multipart;
use crate::proto::ids::SeqIds;
use crate::proto::msrp::{ByteRange, MsrpHeader, MsrpMessage, MsrpMethod};
use crate::proto::sip::digest::DigestClient;
use crate::proto::sip::message::parse_message;
use crate::proto::sip::session_timer::SessionTimerConfig;

const SERVER: &str = "127.0.0.1:5060";
const CONN: MsrpConn = 7;

fn local() -> ChatLocal {
    ChatLocal {
        aor: "sip:bob@isc.local".into(),
        display_name: None,
        contact_uri: "sip:bob@127.0.0.1:5072;transport=udp".into(),
        instance_id: None,
        sip_local: "127.0.0.1:5072".parse().unwrap(),
        transport: Transport::Udp,
        msrp_local: "127.0.0.1:7072".parse().unwrap(),
        timer: SessionTimerConfig::default(),
        composing: ComposingConfig::default(),
        msrp_chunk_size: 2048,
        msrp_tls: false,
    }
}

struct Rig {
    h: History,
    layer: TransactionLayer,
    ids: SeqIds,
    digest: DigestClient,
    now: Instant,
    /// Our requests as the server received them.
    sent: Vec<rsip::SipMessage>,
}

impl Rig {
    fn new() -> Self {
        Rig {
            h: History::new(),
            layer: TransactionLayer::new(),
            ids: SeqIds::new("t"),
            digest: DigestClient::new("bob", "bob"),
            now: Instant::now(),
            sent: Vec::new(),
        }
    }

    fn server() -> SocketAddr {
        SERVER.parse().unwrap()
    }

    fn flush(&mut self) {
        self.h
            .flush_sip(&mut self.layer, self.now, Self::server(), Transport::Udp);
        while let Some(t) = self.layer.poll_transmit() {
            self.sent.push(t.message);
        }
    }

    fn start(&mut self, q: HistoryQuery) -> HistoryId {
        let mut ctx = ChatCtx {
            ids: &mut self.ids,
            digest: &mut self.digest,
        };
        let id = self.h.start(&mut ctx, &local(), q);
        self.flush();
        id
    }

    /// A message from the server through the layer to the retrievals.
    fn receive(&mut self, m: rsip::SipMessage) {
        self.layer
            .handle_message(self.now, m, Self::server(), Transport::Udp)
            .unwrap();
        self.pump();
    }

    /// The layer's events to the retrievals.
    fn pump(&mut self) {
        while let Some(ev) = self.layer.poll_event() {
            let mut ctx = ChatCtx {
                ids: &mut self.ids,
                digest: &mut self.digest,
            };
            if let Some(ev) = self.h.handle_layer_event(&mut ctx, self.now, ev) {
                assert!(
                    matches!(ev, LayerEvent::Terminated { .. }),
                    "not taken: {ev:?}"
                );
            }
        }
        self.flush();
    }

    fn timeout(&mut self, at: Instant) {
        self.now = at;
        self.layer.handle_timeout(at);
        self.pump();
        let mut ctx = ChatCtx {
            ids: &mut self.ids,
            digest: &mut self.digest,
        };
        self.h.handle_timeout(&mut ctx, at);
        self.flush();
    }

    fn last_request(&self, method: Method) -> Request {
        self.sent
            .iter()
            .rev()
            .find_map(|m| match m {
                rsip::SipMessage::Request(r) if r.method == method => Some(r.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {method} sent"))
    }

    fn events(&mut self) -> Vec<HistoryEvent> {
        std::iter::from_fn(|| self.h.poll_event()).collect()
    }

    fn msrp(&mut self) -> Vec<MsrpOut> {
        std::iter::from_fn(|| self.h.poll_msrp()).collect()
    }
}

/// Our SDP and URI list, out of the INVITE.
fn parts(invite: &Request) -> (String, Vec<String>) {
    let ct = invite.headers.get_raw("Content-Type").unwrap();
    let mp = Multipart::parse_with_content_type(&ct, &invite.body).unwrap();
    let sdp = String::from_utf8(mp.part_of_type("application/sdp").unwrap().body.clone()).unwrap();
    let list = mp.part_of_type("application/resource-lists+xml").unwrap();
    assert_eq!(list.disposition().as_deref(), Some("recipient-list"));
    let list = ResourceLists::parse(&list.body).unwrap();
    (sdp, list.entries().iter().map(|e| e.uri.clone()).collect())
}

fn our_msrp_uri(invite: &Request) -> MsrpUri {
    let (sdp, _) = parts(invite);
    let path = sdp.lines().find_map(|l| l.strip_prefix("a=path:")).unwrap();
    MsrpUri::parse(path.trim()).unwrap()
}

const SERVER_MSRP: &str = "msrp://127.0.0.1:7000/srv1;tcp";

fn answer(direction: &str, setup: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=isc 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 7000 TCP/MSRP *\r\na=accept-types:message/cpim text/plain\r\na=path:{SERVER_MSRP}\r\na=setup:{setup}\r\na={direction}\r\n"
    )
    .into_bytes()
}

fn respond(
    invite: &Request,
    code: u16,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
) -> rsip::SipMessage {
    let mut r = response_with(invite, code, Some("srvtag"), None, headers);
    if let Some(b) = body {
        r.headers.remove_named("Content-Length");
        r.headers
            .push(make_header("Content-Type", "application/sdp"));
        r.headers
            .push(make_header("Content-Length", &b.len().to_string()));
        r.body = b;
    }
    rsip::SipMessage::Response(r)
}

fn ok(invite: &Request, direction: &str) -> rsip::SipMessage {
    respond(
        invite,
        200,
        vec![make_header(
            "Contact",
            "<sip:127.0.0.1:5060;transport=udp>;+g.oma.sip-im;automata",
        )],
        Some(answer(direction, "active")),
    )
}

/// The server's BYE in the dialog of `invite`'s 200.
fn bye(invite: &Request) -> rsip::SipMessage {
    let cid = call_id(&invite.headers).unwrap();
    let our_tag = from_tag(&invite.headers).unwrap();
    let text = format!(
        "BYE sip:bob@127.0.0.1:5072;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsrvbye\r\nFrom: <sip:history@isc.local>;tag=srvtag\r\nTo: <sip:bob@isc.local>;tag={our_tag}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    parse_message(text.as_bytes()).unwrap()
}

fn send(to: &MsrpUri, n: u32, cpim: &str) -> MsrpMessage {
    let body = cpim.as_bytes().to_vec();
    let len = body.len() as u64;
    MsrpMessage::request(
        MsrpMethod::Send,
        format!("tx{n}"),
        MsrpPath::single(to.clone()),
        MsrpPath::parse(SERVER_MSRP).unwrap(),
    )
    .with_header(MsrpHeader::MessageId(format!("srv-m{n}")))
    .with_header(MsrpHeader::ByteRange(ByteRange {
        start: 1,
        end: Some(len),
        total: Some(len),
    }))
    .with_body("message/cpim", body)
}

fn cpim(from: &str, at: &str, text: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <sip:bob@isc.local>\r\nDateTime: {at}\r\n\r\nContent-Type: text/plain\r\n\r\n{text}"
    )
}

#[test]
fn the_invite_is_recvonly_with_the_conversation_as_reference() {
    let mut r = Rig::new();
    let id = r.start(HistoryQuery::conversation("sip:alice@isc.local"));
    let invite = r.last_request(Method::Invite);
    // Seed 003 13.1.3 steps 2–4.
    assert_eq!(invite.uri.to_string(), "sip:history@isc.local");
    assert!(
        invite
            .headers
            .get_raw("Content-Type")
            .unwrap()
            .starts_with("multipart/mixed")
    );
    let (sdp, list) = parts(&invite);
    assert!(sdp.contains("a=recvonly\r\n"), "{sdp}");
    assert!(sdp.contains("a=setup:actpass\r\n"), "{sdp}");
    assert!(sdp.contains("m=message 7072 TCP/MSRP *"), "{sdp}");
    assert_eq!(list, ["sip:alice@isc.local"]);
    assert_eq!(
        invite.headers.get_raw("Accept-Contact").as_deref(),
        Some("*;+g.oma.sip-im")
    );
    assert!(
        invite
            .headers
            .get_raw("Contact")
            .unwrap()
            .ends_with(";+g.oma.sip-im")
    );
    assert_eq!(
        r.events(),
        [HistoryEvent::Requested {
            id,
            conversation: "sip:alice@isc.local".into(),
            references: vec!["sip:alice@isc.local".into()],
        }]
    );
    // Explicit references replace the conversation in the list.
    r.start(HistoryQuery {
        conversation: "sip:alice@isc.local".into(),
        references: vec!["m-1".into(), "m-2".into()],
    });
    let (_, list) = parts(&r.last_request(Method::Invite));
    assert_eq!(list, ["m-1", "m-2"]);
}

#[test]
fn a_challenge_is_answered_and_a_refusal_reads_as_a_sentence() {
    let mut r = Rig::new();
    let id = r.start(HistoryQuery::conversation("sip:alice@isc.local"));
    r.events();
    let first = r.last_request(Method::Invite);
    r.receive(respond(
        &first,
        407,
        vec![make_header(
            "Proxy-Authenticate",
            "Digest realm=\"isc.local\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"",
        )],
        None,
    ));
    let second = r.last_request(Method::Invite);
    assert_eq!(cseq(&second.headers).unwrap().0, 2);
    assert!(second.headers.get_raw("Proxy-Authorization").is_some());
    assert_eq!(call_id(&second.headers), call_id(&first.headers));
    assert!(r.events().is_empty());
    // Seed 003 13.2.1.1 step 4: not recvonly → 403 with the server's reason.
    r.receive(respond(
        &second,
        403,
        vec![make_header(
            "Warning",
            "399 isc.local \"the SDP must be recvonly\"",
        )],
        None,
    ));
    let evs = r.events();
    let [HistoryEvent::Failed { id: got, error, .. }] = evs.as_slice() else {
        panic!("{evs:?}")
    };
    assert_eq!(*got, id);
    assert_eq!(error.status(), Some(403));
    assert_eq!(
        error.to_string(),
        "history refused by the server: the SDP must be recvonly (403 Forbidden)"
    );
    assert_eq!(r.h.pending(), 0);
}

#[test]
fn items_stream_until_the_bye_even_before_the_200() {
    let mut r = Rig::new();
    let id = r.start(HistoryQuery::conversation("sip:alice@isc.local"));
    r.events();
    let invite = r.last_request(Method::Invite);
    let ours = our_msrp_uri(&invite);
    // The function connects at once: the first SEND may beat the 200.
    let early = send(
        &ours,
        1,
        &cpim("sip:alice@isc.local", "2026-11-23T15:00:00Z", "hi bob"),
    );
    assert!(r.h.msrp_frame(r.now, CONN, early).is_none());
    assert!(r.msrp().is_empty(), "no answer before the session exists");
    r.receive(ok(&invite, "sendonly"));
    let ack = r.last_request(Method::Ack);
    assert_eq!(call_id(&ack.headers), call_id(&invite.headers));
    let out = r.msrp();
    assert!(
        matches!(&out[..], [MsrpOut::Send { conn: CONN, bytes }] if bytes.starts_with(b"MSRP tx1 200")),
        "{out:?}"
    );
    let second = send(
        &ours,
        2,
        &cpim("sip:bob@isc.local", "2026-11-23T15:01:00Z", "hi alice"),
    );
    assert!(r.h.msrp_frame(r.now, CONN, second).is_none());
    assert_eq!(r.msrp().len(), 1);
    assert!(r.events().is_empty(), "reported at the BYE only");
    r.receive(bye(&invite));
    let answered = r.sent.iter().any(|m| {
        matches!(m, rsip::SipMessage::Response(resp) if resp.status_code.code() == 200
            && cseq(&resp.headers).is_some_and(|c| c.1 == "BYE"))
    });
    assert!(answered, "the BYE is answered 200");
    assert_eq!(r.msrp(), [MsrpOut::Close { conn: CONN }]);
    assert_eq!(
        r.events(),
        [HistoryEvent::Retrieved {
            id,
            conversation: "sip:alice@isc.local".into(),
            items: vec![
                HistoryItem {
                    from: "sip:alice@isc.local".into(),
                    to: "sip:bob@isc.local".into(),
                    at: Some("2026-11-23T15:00:00Z".into()),
                    text: "hi bob".into(),
                },
                HistoryItem {
                    from: "sip:bob@isc.local".into(),
                    to: "sip:bob@isc.local".into(),
                    at: Some("2026-11-23T15:01:00Z".into()),
                    text: "hi alice".into(),
                },
            ],
            complete: true,
        }]
    );
    // Another session's frame is given back.
    let stray = send(
        &MsrpUri::parse("msrp://127.0.0.1:7072/other;tcp").unwrap(),
        3,
        "x",
    );
    assert!(r.h.msrp_frame(r.now, 9, stray).is_some());
}

#[test]
fn a_sendrecv_answer_is_refused_and_the_session_ended() {
    let mut r = Rig::new();
    r.start(HistoryQuery::conversation("sip:alice@isc.local"));
    r.events();
    let invite = r.last_request(Method::Invite);
    r.receive(ok(&invite, "sendrecv"));
    r.last_request(Method::Ack);
    let bye = r.last_request(Method::Bye);
    assert_eq!(call_id(&bye.headers), call_id(&invite.headers));
    let evs = r.events();
    assert!(
        matches!(
            &evs[..],
            [HistoryEvent::Failed {
                error: HistoryError::NotSendOnly,
                ..
            }]
        ),
        "{evs:?}"
    );
}

#[test]
fn a_silent_server_is_left_with_what_came() {
    let mut r = Rig::new();
    let id = r.start(HistoryQuery::conversation("sip:alice@isc.local"));
    r.events();
    let invite = r.last_request(Method::Invite);
    r.receive(ok(&invite, "sendonly"));
    let ours = our_msrp_uri(&invite);
    let one = send(
        &ours,
        1,
        &cpim("sip:alice@isc.local", "2026-11-23T15:00:00Z", "only"),
    );
    r.h.msrp_frame(r.now, CONN, one);
    let due = r.h.poll_timeout().expect("an idle deadline");
    assert_eq!(due, r.now + IDLE_TIMEOUT);
    r.timeout(due - Duration::from_millis(1));
    assert!(r.events().is_empty());
    r.timeout(due);
    r.last_request(Method::Bye);
    let evs = r.events();
    assert!(
        matches!(&evs[..], [HistoryEvent::Retrieved { id: i, items, complete: false, .. }]
            if *i == id && items.len() == 1),
        "{evs:?}"
    );
}

#[test]
fn no_response_is_reported() {
    let mut r = Rig::new();
    r.start(HistoryQuery::conversation("sip:alice@isc.local"));
    r.events();
    // Timer B (64·T1) fires.
    let mut at = r.now;
    for _ in 0..20 {
        at += Duration::from_secs(4);
        r.timeout(at);
    }
    let evs = r.events();
    assert!(
        matches!(
            &evs[..],
            [HistoryEvent::Failed {
                error: HistoryError::NoResponse,
                ..
            }]
        ),
        "{evs:?}"
    );
}

#[test]
fn an_empty_reference_is_refused_before_any_invite() {
    let mut r = Rig::new();
    r.start(HistoryQuery::conversation(" "));
    assert!(r.sent.is_empty());
    let evs = r.events();
    assert!(matches!(
        &evs[..],
        [
            HistoryEvent::Requested { .. },
            HistoryEvent::Failed {
                error: HistoryError::BadRequest(_),
                ..
            }
        ]
    ));
}

fn item(from: &str, at: &str, text: &str) -> HistoryItem {
    HistoryItem {
        from: from.into(),
        to: String::new(),
        at: Some(at.into()),
        text: text.into(),
    }
}

#[test]
fn unseen_drops_what_the_view_shows_once_per_message() {
    let t0 = parse_rfc3339("2026-11-23T15:00:00Z").unwrap();
    let items = [
        item("a", "2026-11-23T15:00:00Z", "hi"),
        item("a", "2026-11-23T15:00:30Z", "hi"),
        item("b", "2026-11-23T15:01:00Z", "yo"),
        item("a", "2026-11-23T16:00:00Z", "yo"),
    ];
    let shown = [
        // our clock 40 s after the sender's: the same message
        Shown {
            sender: "a",
            text: "hi",
            at_unix: Some(t0 + 40),
        },
        // same text, other sender: not the same
        Shown {
            sender: "b",
            text: "hi",
            at_unix: Some(t0),
        },
        // same sender and text, an hour off: not the same
        Shown {
            sender: "a",
            text: "yo",
            at_unix: Some(t0),
        },
    ];
    let left = unseen(&shown, &items, |i| i.from.clone());
    assert_eq!(left, [&items[1], &items[2], &items[3]]);
    assert_eq!(unseen(&[], &items, |i| i.from.clone()).len(), 4);
}

#[test]
fn items_read_cpim_and_bare_bodies() {
    let i = HistoryItem::from_msrp(
        Some("message/cpim"),
        cpim("sip:alice@isc.local", "2026-11-23T15:00:00Z", "hé").as_bytes(),
    );
    assert_eq!(i.text, "hé");
    assert_eq!(i.at_unix(), Some(1_795_446_000));
    let bare = HistoryItem::from_msrp(Some("text/plain;charset=UTF-8"), b"plain");
    assert_eq!((bare.from.as_str(), bare.text.as_str()), ("", "plain"));
    let bin = HistoryItem::from_msrp(Some("image/png"), &[0, 1, 2]);
    assert_eq!(bin.text, "[image/png, 3 bytes]");
}

#[test]
fn rfc3339_dates_read_with_offsets_and_fractions() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2026-11-23T15:00:00Z"), Some(1_795_446_000));
    assert_eq!(
        parse_rfc3339("2026-11-23T16:00:00.250+01:00"),
        Some(1_795_446_000)
    );
    assert_eq!(
        parse_rfc3339("2026-11-23T10:00:00-05:00"),
        Some(1_795_446_000)
    );
    for bad in [
        "",
        "2026-11-23",
        "2026-13-01T00:00:00Z",
        "2026-11-23T15:00:00",
        "1969-12-31T23:59:59Z",
        "2026-11-23T15:00:00.Z",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

proptest! {
    #[test]
    fn rfc3339_round_trips(secs in 0u64..4_102_444_800) {
        prop_assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
    }

    #[test]
    fn rfc3339_never_panics(s in ".{0,40}") {
        let _ = parse_rfc3339(&s);
    }

    #[test]
    fn items_never_panic(ct in proptest::option::of(".{0,30}"), body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = HistoryItem::from_msrp(ct.as_deref(), &body);
    }
}
