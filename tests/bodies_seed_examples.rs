//! The bodies as the seeds use them (seed 000 5.4.3.2 / 5.4.3.3, seed 002
//! App. M and D.2).

use isc::proto::bodies::cm_recommendation::{self, CmRecommendation};
use isc::proto::bodies::cpim::{CpimAddress, CpimMessage};
use isc::proto::bodies::cv_cancellation::{self, CvCancellation};
use isc::proto::bodies::isc::SessionType;
use isc::proto::bodies::isc_content_request::{self, IscContentRequest};
use isc::proto::bodies::multipart::{Multipart, Part};
use isc::proto::bodies::resource_lists::{Entry, Replaces, ResourceLists};

#[test]
fn c15_1_content_request_and_recommendation() {
    // seed 000 C.15.1 step 2: A1 asks for CV with A2 doing the chat
    let mut req = IscContentRequest::new("movie-42");
    req.session_type = SessionType::CvCm;
    req.using_multiple_client = true;
    req.communication_client_addr = Some("sip:alice@isc.local;gr=urn:uuid:a2".into());
    req.content_viewing_client_addr = Some("sip:alice@isc.local;gr=urn:uuid:a1".into());
    req.target_users.push("sip:bob@isc.local".into());
    assert_eq!(
        isc_content_request::CONTENT_TYPE,
        "application/ISC-content-request+xml"
    );
    let got = IscContentRequest::parse(&req.to_bytes()).unwrap();
    assert_eq!(got, req);

    // seed 000 5.4.3.2: the server recommends A2 to start the CM session
    let mut rec = CmRecommendation::new(
        got.communication_client_addr.clone().unwrap(),
        got.content_viewing_client_addr.clone().unwrap(),
        "cv-7f3a",
    );
    rec.target_users = got.target_users.clone();
    let body = rec.to_bytes();
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.starts_with("Content-Type: text/xml\r\n\r\n"));
    for element in [
        "<SessionType>cv-cm</SessionType>",
        "<UsingMultipleClient>yes</UsingMultipleClient>",
        "<CommunicationClientAddr>",
        "<ContentViewingClientAddr>",
        "<ISCConvergenceID>cv-7f3a</ISCConvergenceID>",
    ] {
        assert!(text.contains(element), "{element} in {text}");
    }
    assert_eq!(
        cm_recommendation::CONTENT_TYPE,
        "application/vnd.oma.isc.cm.recommendation"
    );
    assert_eq!(CmRecommendation::parse(&body).unwrap(), rec);
}

#[test]
fn c15_2_cancellation() {
    let c = CvCancellation::new("a84b4c76e66710@isc.local", "answered-elsewhere");
    let text = String::from_utf8(c.to_bytes()).unwrap();
    assert!(text.contains("<CVInviteIdentifer>a84b4c76e66710@isc.local</CVInviteIdentifer>"));
    assert!(text.contains("<CancellationID>answered-elsewhere</CancellationID>"));
    assert_eq!(
        cv_cancellation::CONTENT_TYPE,
        "application/vnd.oma.isc.cv.cancellation"
    );
    assert_eq!(CvCancellation::parse(text.as_bytes()).unwrap(), c);
}

#[test]
fn app_m_extend_to_conference_with_replaces() {
    // seed 002 App. M step 3: Alice invites the factory with Bob (replacing
    // the 1-1 dialog) and Ted
    let bob = Entry::with_replaces(
        "sip:bob@biloxi.com",
        &Replaces::new("a84b4c76e66710", "1928301774", "a6c85cf"),
    );
    let list = ResourceLists::of(vec![bob, Entry::new("sip:ted@example.net")]);
    let sdp = Part::new("application/sdp", "v=0\r\n");
    let rl = Part::new("application/resource-lists+xml", list.to_bytes())
        .with_header("Content-Disposition", "recipient-list");
    let body = Multipart::new(vec![sdp, rl]);

    let got = Multipart::parse_with_content_type(&body.content_type(), &body.to_bytes()).unwrap();
    let part = got
        .parts
        .iter()
        .find(|p| p.disposition().as_deref() == Some("recipient-list"))
        .unwrap();
    let list = ResourceLists::parse(&part.body).unwrap();
    let entries = list.entries();
    assert_eq!(entries[0].target(), "sip:bob@biloxi.com");
    let r = entries[0].replaces().unwrap();
    assert_eq!(
        (r.call_id.as_str(), r.to_tag.as_str(), r.from_tag.as_str()),
        ("a84b4c76e66710", "1928301774", "a6c85cf")
    );
    assert_eq!(entries[1].uri, "sip:ted@example.net");
    assert_eq!(entries[1].replaces(), None);
}

#[test]
fn d2_deferred_message_as_message_sip_and_cpim() {
    // seed 002 D.2 example 1: the stored MESSAGE, with a Date added, pushed
    // as message/sip; its bytes must arrive untouched
    let stored = b"MESSAGE sip:user2@imserver.com SIP/2.0\r\n\
Via: SIP/2.0/TCP user1pc.imserver.com;branch=z9hG4bK776sgdkse\r\n\
Max-Forwards: 70\r\n\
From: sip:user1@imserver.com;tag=49583\r\n\
To: sip:user2@imserver.com\r\n\
Call-ID: asd88asd77a@1.2.3.4\r\n\
Date: Thu, 21 Feb 2002 13:02:03 GMT\r\n\
CSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\n\
Content-Length: 18\r\n\
\r\n\
Watson, come here.";
    let m = Multipart::new(vec![
        Part::message_sip(&stored[..]),
        Part::message_sip(&stored[..]),
    ]);
    let got = Multipart::parse_with_content_type(&m.content_type(), &m.to_bytes()).unwrap();
    assert_eq!(got.parts.len(), 2);
    assert!(got.parts.iter().all(|p| p.body == stored));
    assert_eq!(got.parts[0].media_type().as_deref(), Some("message/sip"));

    // the same message as message/cpim keeps its original date
    let cpim = CpimMessage::new(
        &CpimAddress::new("sip:user1@imserver.com"),
        &CpimAddress::new("sip:user2@imserver.com"),
        "text/plain",
        "Watson, come here.",
    )
    .with_header("DateTime", "2002-02-21T13:02:03Z");
    let back = CpimMessage::parse(&cpim.to_bytes()).unwrap();
    assert_eq!(back.date_time(), Some("2002-02-21T13:02:03Z"));
    assert_eq!(back.body, b"Watson, come here.");
}
