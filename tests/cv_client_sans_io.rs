//! Content viewing in the sans-IO [`UserAgent`]: bytes in, bytes out, no
//! sockets. The CV INVITE it builds, an invitation and its CANCEL (taken
//! elsewhere vs. missed), the recommendation starting the chat, and the
//! headless words never panicking.

use std::net::SocketAddr;
use std::time::Instant;

use isc::client::content_viewing::{ViewingCommand, ViewingEnd, ViewingEvent, ViewingOut};
use isc::client::{ClientEvent, Command, UaConfig, UserAgent};
use isc::net::sip_transport::Incoming;
use isc::proto::bodies::isc_content_request::IscContentRequest;
use isc::proto::bodies::multipart::Multipart;
use isc::proto::ids::SeqIds;
use isc::proto::sip::transaction::Transport;
use proptest::prelude::*;

const SERVER: &str = "127.0.0.1:5060";

fn ua() -> UserAgent {
    let cfg = UaConfig::new(
        "bob",
        "isc.local",
        "bob",
        "phone",
        "urn:uuid:b2",
        SERVER.parse().unwrap(),
        "127.0.0.1:5070".parse().unwrap(),
    );
    UserAgent::new(cfg, Box::new(SeqIds::new("t")))
}

fn sent(ua: &mut UserAgent) -> Vec<String> {
    std::iter::from_fn(|| ua.poll_transmit())
        .map(|(_, _, b)| String::from_utf8(b).unwrap())
        .collect()
}

fn events(ua: &mut UserAgent) -> Vec<ViewingEvent> {
    std::iter::from_fn(|| ua.poll_event())
        .filter_map(|e| match e {
            ClientEvent::Viewing(v) => Some(v),
            _ => None,
        })
        .collect()
}

fn feed(ua: &mut UserAgent, now: Instant, text: &str) {
    let server: SocketAddr = SERVER.parse().unwrap();
    ua.handle_input(
        now,
        Incoming {
            bytes: text.replace('\n', "\r\n").into_bytes(),
            source: server,
            transport: Transport::Udp,
        },
    );
}

#[test]
fn watch_builds_the_cv_invite_after_the_player_is_bound() {
    let mut ua = ua();
    let now = Instant::now();
    ua.handle_command(
        now,
        Command::Viewing(ViewingCommand::Watch {
            content: "melody".into(),
            with: "sip:alice@isc.local".into(),
            chat_on: Some("sip:bob@isc.local;gr=urn:uuid:b1".into()),
        }),
    );
    assert!(
        sent(&mut ua).is_empty(),
        "nothing before the player's ports"
    );
    let Some(ViewingOut::OpenPlayer { viewing }) = ua.poll_viewing() else {
        panic!("no player asked for")
    };
    ua.player_ready(
        now,
        viewing,
        "127.0.0.1".parse().unwrap(),
        Some(40000),
        Some(40002),
    );
    let out = sent(&mut ua);
    let invite = out
        .iter()
        .find(|m| m.starts_with("INVITE sip:alice@isc.local"))
        .expect("INVITE");
    let (head, body) = invite.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.isc.1-1-cv-cm")
    );
    assert!(head.contains("Accept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\""), "{head}");
    assert!(head.contains("ISCConvergenceID: cv-"));
    assert!(head.contains("Recv-Info: isc-playback"));
    let ct = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap();
    let m = Multipart::parse_with_content_type(ct, body.as_bytes()).unwrap();
    let sdp = String::from_utf8(m.part_of_type("application/sdp").unwrap().body.clone()).unwrap();
    assert!(
        sdp.contains("m=audio 40000 RTP/AVP 0") && sdp.contains("m=video 40002 RTP/AVP 26"),
        "{sdp}"
    );
    assert_eq!(sdp.matches("a=recvonly").count(), 2);
    let cr = IscContentRequest::parse(
        &m.part_of_type("application/ISC-content-request+xml")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(cr.content_ref, "melody");
    assert!(cr.using_multiple_client);
    assert_eq!(
        cr.communication_client_addr.as_deref(),
        Some("sip:bob@isc.local;gr=urn:uuid:b1")
    );
    assert_eq!(cr.target_users, ["sip:alice@isc.local"]);
    assert!(
        matches!(events(&mut ua).as_slice(), [ViewingEvent::Calling { content, .. }] if content == "melody")
    );
}

const SDP: &str = "v=0\no=srv 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 30000 RTP/AVP 0\na=sendonly\nm=video 30002 RTP/AVP 26\na=sendonly\n";

fn cv_invite(branch: &str) -> String {
    let cr = "<?xml version=\"1.0\"?><ISCContentRequest><ContentRef>melody</ContentRef></ISCContentRequest>";
    let body = format!(
        "--b\nContent-Type: application/sdp\n\n{SDP}\n--b\nContent-Type: application/ISC-content-request+xml\n\n{cr}\n--b--\n"
    );
    let len = body.replace('\n', "\r\n").len();
    format!(
        "INVITE sip:bob@isc.local;gr=urn:uuid:b2 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\nMax-Forwards: 70\nFrom: <sip:alice@isc.local>;tag=s1\nTo: <sip:bob@isc.local>\nCall-ID: cv1@srv\nCSeq: 1 INVITE\nContact: <sip:mf@127.0.0.1:5060>\nISCConvergenceID: cv-x\nAccept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\"\nContent-Type: multipart/mixed;boundary=b\nContent-Length: {len}\n\n{body}"
    )
}

fn cancel(branch: &str, reason: bool) -> String {
    let r = if reason {
        "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\n"
    } else {
        ""
    };
    format!(
        "CANCEL sip:bob@isc.local;gr=urn:uuid:b2 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\nMax-Forwards: 70\nFrom: <sip:alice@isc.local>;tag=s1\nTo: <sip:bob@isc.local>\nCall-ID: cv1@srv\nCSeq: 1 CANCEL\n{r}Content-Length: 0\n\n"
    )
}

#[test]
fn cancel_with_the_reason_is_taken_elsewhere_not_missed() {
    for (reason, branch) in [(true, "z9hG4bKa"), (false, "z9hG4bKb")] {
        let mut ua = ua();
        let now = Instant::now();
        feed(&mut ua, now, &cv_invite(branch));
        assert!(sent(&mut ua).iter().any(|m| m.starts_with("SIP/2.0 180")));
        let viewing = match events(&mut ua).as_slice() {
            [
                ViewingEvent::Invited {
                    viewing,
                    content,
                    convergence_id,
                    ..
                },
            ] => {
                assert_eq!(content.as_deref(), Some("melody"));
                assert_eq!(convergence_id.as_deref(), Some("cv-x"));
                *viewing
            }
            other => panic!("{other:?}"),
        };
        feed(&mut ua, now, &cancel(branch, reason));
        let out = sent(&mut ua);
        assert!(
            out.iter()
                .any(|m| m.starts_with("SIP/2.0 200") && m.contains("CANCEL")),
            "{out:?}"
        );
        assert!(out.iter().any(|m| m.starts_with("SIP/2.0 487")), "{out:?}");
        let evs = events(&mut ua);
        if reason {
            assert_eq!(
                evs,
                [ViewingEvent::TakenElsewhere {
                    viewing,
                    from: "sip:alice@isc.local".into()
                }]
            );
        } else {
            assert_eq!(
                evs,
                [ViewingEvent::Ended {
                    viewing,
                    reason: ViewingEnd::Cancelled
                }]
            );
        }
    }
}

#[test]
fn recommendation_is_answered_and_starts_the_chat() {
    let mut ua = ua();
    let now = Instant::now();
    let body = "Content-Type: text/xml\n\n<?xml version=\"1.0\"?><ISCCMRecommendation><SessionType>cv-cm</SessionType><UsingMultipleClient>yes</UsingMultipleClient><ISCConvergenceID>cv-7</ISCConvergenceID><TargetUser>sip:carol@isc.local</TargetUser></ISCCMRecommendation>\n";
    let len = body.replace('\n', "\r\n").len();
    feed(
        &mut ua,
        now,
        &format!(
            "MESSAGE sip:bob@isc.local;gr=urn:uuid:b2 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKm\nMax-Forwards: 70\nFrom: <sip:bob@isc.local>;tag=m1\nTo: <sip:bob@isc.local>\nCall-ID: rec1\nCSeq: 1 MESSAGE\nContent-Type: application/vnd.oma.isc.cm.recommendation\nContent-Length: {len}\n\n{body}"
        ),
    );
    let out = sent(&mut ua);
    assert!(out.iter().any(|m| m.starts_with("SIP/2.0 200")), "{out:?}");
    let chat = out
        .iter()
        .find(|m| m.starts_with("INVITE sip:carol@isc.local"))
        .expect("chat INVITE");
    assert!(
        chat.contains("ISCConvergenceID: cv-7") && chat.contains("m=message"),
        "{chat}"
    );
    assert!(events(&mut ua).iter().any(|e| matches!(e, ViewingEvent::ChatRecommended { convergence_id, with, .. } if convergence_id == "cv-7" && with == &["sip:carol@isc.local"])));
}

proptest! {
    #[test]
    fn headless_viewing_words_never_panic(line in ".{0,80}") {
        let _ = isc::client::cv_headless::parse_command(&line, "isc.local");
    }

    #[test]
    fn any_invite_body_is_handled(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut ua = ua();
        let now = Instant::now();
        let head = format!("INVITE sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp\r\nFrom: <sip:a@isc.local>;tag=1\r\nTo: <sip:bob@isc.local>\r\nCall-ID: p\r\nCSeq: 1 INVITE\r\nAccept-Contact: *;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\"\r\nContent-Type: multipart/mixed;boundary=b\r\nContent-Length: {}\r\n\r\n", body.len());
        let mut bytes = head.into_bytes();
        bytes.extend(body);
        ua.handle_input(now, Incoming { bytes, source: SERVER.parse().unwrap(), transport: Transport::Udp });
        let _ = sent(&mut ua);
    }
}

#[test]
fn headless_words_and_events() {
    use isc::client::cv_headless::{event_json, parse_command};
    let c = parse_command("watch melody bob phone", "isc.local")
        .unwrap()
        .unwrap();
    assert_eq!(
        c,
        Command::Viewing(ViewingCommand::Watch {
            content: "melody".into(),
            with: "sip:bob@isc.local".into(),
            chat_on: Some("phone".into()),
        })
    );
    let c = parse_command(
        r#"{"cmd":"seek","viewing":2,"position_ms":5000}"#,
        "isc.local",
    );
    assert_eq!(
        c,
        Some(Ok(Command::Viewing(ViewingCommand::Seek {
            viewing: 2,
            position_ms: 5000
        })))
    );
    assert!(
        parse_command(r#"{"cmd":"watch"}"#, "isc.local")
            .unwrap()
            .is_err()
    );
    assert!(
        parse_command("send bob hi", "isc.local").is_none(),
        "not a viewing word"
    );
    let v = event_json(&ViewingEvent::TakenElsewhere {
        viewing: 1,
        from: "sip:alice@isc.local".into(),
    });
    assert_eq!(v["event"], "viewing_taken_elsewhere");
    let v = event_json(&ViewingEvent::Ended {
        viewing: 1,
        reason: ViewingEnd::Cancelled,
    });
    assert_eq!(v["reason"], "cancelled");
}

/// RFC 3261 §13.3.1.4: our 200 to the CV INVITE is re-sent until its ACK.
#[test]
fn accepted_invitation_200_is_retransmitted_until_ack() {
    let mut ua = ua();
    let t0 = Instant::now();
    feed(&mut ua, t0, &cv_invite("z9hG4bKr"));
    let _ = sent(&mut ua);
    let viewing = match events(&mut ua).as_slice() {
        [ViewingEvent::Invited { viewing, .. }] => *viewing,
        other => panic!("{other:?}"),
    };
    ua.handle_command(t0, Command::Viewing(ViewingCommand::Accept { viewing }));
    assert_eq!(ua.poll_viewing(), Some(ViewingOut::OpenPlayer { viewing }));
    ua.player_ready(
        t0,
        viewing,
        "127.0.0.1".parse().unwrap(),
        Some(40000),
        Some(40002),
    );
    let ok = sent(&mut ua);
    let ok = ok
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200"))
        .expect("200")
        .clone();
    assert!(
        ok.contains("m=audio 40000") && ok.contains("Recv-Info: isc-playback"),
        "{ok}"
    );
    assert!(
        events(&mut ua)
            .iter()
            .any(|e| matches!(e, ViewingEvent::Started { .. }))
    );
    let t1 = t0 + std::time::Duration::from_millis(600);
    ua.handle_timeout(t1);
    assert!(
        sent(&mut ua).iter().any(|m| m.starts_with("SIP/2.0 200")),
        "re-sent at T1"
    );
    let to = ok
        .lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap()
        .to_owned();
    feed(
        &mut ua,
        t1,
        &format!(
            "ACK sip:bob@127.0.0.1:5070 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack\nMax-Forwards: 70\nFrom: <sip:alice@isc.local>;tag=s1\nTo: {to}\nCall-ID: cv1@srv\nCSeq: 1 ACK\nContent-Length: 0\n\n"
        ),
    );
    let t2 = t1 + std::time::Duration::from_secs(5);
    ua.handle_timeout(t2);
    assert!(
        !sent(&mut ua).iter().any(|m| m.starts_with("SIP/2.0 200")),
        "no more after the ACK"
    );
}
