//! RFC 4028 session timers on a virtual clock (`proto::sip::session_timer`).
//! Kept out of `src/proto`, which never reads a clock, not even in tests.
use isc::proto::sip::build::{RequestBuilder, response_with};
use isc::proto::sip::headers::{HeadersExt, make_header};
use isc::proto::sip::headers::{NameAddr, ViaValue};
use isc::proto::sip::message::parse_uri;
use isc::proto::sip::session_timer::*;
use std::time::{Duration, Instant};

fn invite(cseq: u32, extra: Vec<rsip::Header>) -> rsip::Request {
    let mut b = RequestBuilder::new(
        rsip::Method::Invite,
        parse_uri("sip:bob@isc.local").unwrap(),
        ViaValue::new("UDP", "127.0.0.1", Some(5060), &format!("z9hG4bK{cseq}")),
        NameAddr::new("sip:alice@isc.local"),
        "a1",
        NameAddr::new("sip:bob@isc.local"),
        "c1",
        cseq,
    )
    .header(make_header("Supported", "timer"));
    for h in extra {
        b = b.header(h);
    }
    b.build()
}

fn answer(req: &rsip::Request, code: u16, extra: Vec<rsip::Header>) -> rsip::Response {
    response_with(req, code, Some("b1"), None, extra)
}

fn cfg(se: u32, min: u32) -> SessionTimerConfig {
    SessionTimerConfig {
        session_expires: se,
        min_se: min,
    }
}

/// One refresh transaction from `uac` to `uas` at `now`.
fn transact(now: Instant, cseq: u32, uac: &mut SessionTimer, uas: &mut SessionTimer) {
    let req = invite(cseq, uac.request_headers());
    uac.request_sent();
    uas.check_request(&req).unwrap();
    let h = uas.answer_request(now, &req);
    uac.handle_2xx(now, &answer(&req, 200, h));
}

#[test]
fn initial_request_headers() {
    let t = SessionTimer::new(cfg(1800, 90));
    let req = invite(1, t.request_headers());
    assert_eq!(
        req.headers.get_raw("Session-Expires").as_deref(),
        Some("1800;refresher=uac")
    );
    assert_eq!(req.headers.get_raw("Min-SE").as_deref(), Some("90"));
    assert!(supports_timer(&req.headers));
}

#[test]
fn session_survives_past_its_expiry_because_the_refresher_refreshes() {
    let t0 = Instant::now();
    let (mut alice, mut bob) = (
        SessionTimer::new(cfg(120, 90)),
        SessionTimer::new(cfg(1800, 90)),
    );
    transact(t0, 1, &mut alice, &mut bob);
    assert!(alice.we_refresh() && !bob.we_refresh());
    assert_eq!(alice.interval(), Some(Duration::from_secs(120)));
    let mut now = t0;
    let mut cseq = 2;
    let mut refreshes = 0;
    // jump the virtual clock to each wake-up for 10 intervals
    while now < t0 + Duration::from_secs(1200) {
        let next = [alice.poll_timeout(), bob.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        now = next;
        assert_eq!(
            bob.handle_timeout(now),
            None,
            "bob must not give up at {:?}",
            now - t0
        );
        if alice.handle_timeout(now) == Some(SessionTimerAction::Refresh) {
            assert_eq!(now - t0, Duration::from_secs(60 + 60 * refreshes as u64));
            transact(now, cseq, &mut alice, &mut bob);
            cseq += 1;
            refreshes += 1;
        }
    }
    assert!(refreshes >= 19);
    assert!(alice.is_active() && bob.is_active());
}

#[test]
fn peer_that_stops_refreshing_gets_bye() {
    let t0 = Instant::now();
    let (mut alice, mut bob) = (
        SessionTimer::new(cfg(120, 90)),
        SessionTimer::new(cfg(1800, 90)),
    );
    transact(t0, 1, &mut alice, &mut bob);
    // alice goes silent; bob waits 120 - min(32, 40) = 88 s
    assert_eq!(bob.poll_timeout(), Some(t0 + Duration::from_secs(88)));
    assert_eq!(bob.handle_timeout(t0 + Duration::from_secs(87)), None);
    assert_eq!(
        bob.handle_timeout(t0 + Duration::from_secs(88)),
        Some(SessionTimerAction::Bye)
    );
    assert!(!bob.is_active());
    assert_eq!(bob.poll_timeout(), None);
    // a refresher whose refresh never succeeds gives up too
    assert_eq!(
        alice.handle_timeout(t0 + Duration::from_secs(60)),
        Some(SessionTimerAction::Refresh)
    );
    alice.refresh_failed();
    assert_eq!(
        alice.handle_timeout(t0 + Duration::from_secs(88)),
        Some(SessionTimerAction::Bye)
    );
}

#[test]
fn long_interval_uses_the_32_second_margin() {
    let t0 = Instant::now();
    let (mut alice, mut bob) = (
        SessionTimer::new(cfg(1800, 90)),
        SessionTimer::new(cfg(1800, 90)),
    );
    transact(t0, 1, &mut alice, &mut bob);
    assert_eq!(alice.poll_timeout(), Some(t0 + Duration::from_secs(900)));
    assert_eq!(
        bob.poll_timeout(),
        Some(t0 + Duration::from_secs(1800 - 32))
    );
}

#[test]
fn too_small_is_retried_with_the_larger_min_se() {
    let t0 = Instant::now();
    let (mut alice, mut bob) = (
        SessionTimer::new(cfg(90, 90)),
        SessionTimer::new(cfg(1800, 600)),
    );
    let req = invite(1, alice.request_headers());
    let err = bob.check_request(&req).unwrap_err();
    assert_eq!(
        err,
        SessionTimerError::TooSmall {
            requested: 90,
            min_se: 600
        }
    );
    assert_eq!(err.status_code(), 422);
    let resp = answer(&req, 422, err.response_headers());
    alice.handle_422(&resp).unwrap();
    let retry = invite(2, alice.request_headers());
    assert_eq!(
        retry.headers.get_raw("Session-Expires").as_deref(),
        Some("600;refresher=uac")
    );
    assert_eq!(retry.headers.get_raw("Min-SE").as_deref(), Some("600"));
    bob.check_request(&retry).unwrap();
    let h = bob.answer_request(t0, &retry);
    alice.handle_2xx(t0, &answer(&retry, 200, h));
    assert_eq!(alice.interval(), Some(Duration::from_secs(600)));
    // a second 422 with nothing larger is an error
    assert_eq!(
        alice.handle_422(&resp),
        Err(SessionTimerError::NoLargerMinSe)
    );
}

#[test]
fn uas_names_the_refresher_and_requires_timer() {
    let t0 = Instant::now();
    let mut bob = SessionTimer::new(cfg(1800, 90));
    // no refresher param, UAC supports timer: the UAC refreshes
    let req = invite(1, vec![make_header("Session-Expires", "300")]);
    let h = bob.answer_request(t0, &req);
    let resp = answer(&req, 200, h);
    assert_eq!(
        resp.headers.get_raw("Session-Expires").as_deref(),
        Some("300;refresher=uac")
    );
    assert_eq!(resp.headers.get_raw("Require").as_deref(), Some("timer"));
    assert!(!bob.we_refresh());
    // no Session-Expires at all: we refresh ourselves, no Require
    let mut bob = SessionTimer::new(cfg(1800, 90));
    let req = invite(1, vec![]);
    let resp = answer(&req, 200, bob.answer_request(t0, &req));
    assert_eq!(
        resp.headers.get_raw("Session-Expires").as_deref(),
        Some("1800;refresher=uas")
    );
    assert_eq!(resp.headers.get_raw("Require"), None);
    assert!(bob.we_refresh());
    // the peer refreshes: our re-INVITE says refresher=uas
    let mut alice = SessionTimer::new(cfg(1800, 90));
    alice.handle_2xx(t0, &resp);
    assert!(!alice.we_refresh());
    assert_eq!(
        invite(2, alice.request_headers())
            .headers
            .get_raw("Session-Expires")
            .as_deref(),
        Some("1800;refresher=uas")
    );
}

#[test]
fn no_session_expires_in_2xx_means_no_timer() {
    let t0 = Instant::now();
    let mut alice = SessionTimer::new(cfg(1800, 90));
    let req = invite(1, alice.request_headers());
    alice.handle_2xx(t0, &answer(&req, 200, vec![]));
    assert!(!alice.is_active());
    assert_eq!(alice.poll_timeout(), None);
}

#[test]
fn bad_headers_are_refused_not_panicked_on() {
    let bob = SessionTimer::new(cfg(1800, 90));
    let req = invite(1, vec![make_header("Session-Expires", "soon")]);
    assert_eq!(bob.check_request(&req).unwrap_err().status_code(), 400);
}
