//! Digest server and client against each other, sans-IO with fixed instants.

use std::time::{Duration, Instant};

use isc::proto::sip::digest::{
    Algorithm, AuthKind, Challenge, ChallengeReason, Credentials, DigestClient, DigestError,
    DigestOutcome, DigestServer, DigestServerConfig, ForbiddenReason, Qop, ResponseInput,
    compute_response, user_matches_uri,
};
use rsip::headers::UntypedHeader;

const KEY: [u8; 32] = [7; 32];
const SALT: [u8; 16] = [1; 16];

fn request(method: &str, uri: &str) -> rsip::Request {
    let text = format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@isc.local>;tag=1928301774\r\n\
         To: <sip:alice@isc.local>\r\n\
         Call-ID: a84b4c76e66710@192.0.2.10\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@192.0.2.10:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_str()).expect("test request parses")
}

fn challenge_response(
    server: &DigestServer,
    now: Instant,
    kind: AuthKind,
    stale: bool,
) -> rsip::Response {
    rsip::Response {
        status_code: kind.status(),
        version: rsip::Version::V2,
        headers: server.challenge_headers(now, kind, &SALT, stale).into(),
        body: Vec::new(),
    }
}

fn passwords(user: &str) -> Option<String> {
    (user == "alice").then(|| "wonderland".to_owned())
}

fn authorization(req: &rsip::Request) -> Credentials {
    let v = req
        .headers
        .iter()
        .find_map(|h| match h {
            rsip::Header::Authorization(a) => Some(a.value().to_owned()),
            rsip::Header::ProxyAuthorization(a) => Some(a.value().to_owned()),
            _ => None,
        })
        .expect("credentials header");
    v.parse().expect("credentials parse")
}

fn setup() -> (Instant, DigestServer) {
    let t0 = Instant::now();
    (
        t0,
        DigestServer::new(DigestServerConfig::new("isc.local"), KEY, t0),
    )
}

#[test]
fn challenge_lists_sha256_then_md5() {
    let (t0, server) = setup();
    let resp = challenge_response(&server, t0, AuthKind::Www, false);
    assert_eq!(resp.status_code, rsip::StatusCode::Unauthorized);
    let values: Vec<Challenge> = AuthKind::Www
        .challenge_values(&resp.headers)
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 2);
    assert_eq!(values[0].algorithm, Some(Algorithm::Sha256));
    assert_eq!(values[1].algorithm, Some(Algorithm::Md5));
    for c in &values {
        assert_eq!(c.realm, "isc.local");
        assert_eq!(c.qop, vec![Qop::Auth]);
        assert!(c.opaque.is_some());
        assert!(!c.stale);
    }
}

#[test]
fn sha256_round_trip_client_and_server() {
    let (t0, mut server) = setup();
    let mut client = DigestClient::new("alice", "wonderland");
    client
        .handle_challenge(&challenge_response(&server, t0, AuthKind::Www, false))
        .unwrap();
    assert_eq!(client.algorithm_for("isc.local"), Some(&Algorithm::Sha256));

    let mut req = request("REGISTER", "sip:isc.local");
    client.authorize(&mut req, "0a4f113b");
    let creds = authorization(&req);
    assert_eq!(creds.algorithm, Some(Algorithm::Sha256));
    assert_eq!(creds.nc, Some(1));
    assert_eq!(creds.cnonce.as_deref(), Some("0a4f113b"));
    let outcome =
        server.verify_request(t0 + Duration::from_secs(1), &req, AuthKind::Www, passwords);
    assert_eq!(
        outcome,
        DigestOutcome::Authenticated {
            user: "alice".into()
        }
    );

    // The nonce is re-used for the next request with nc=2.
    let mut req2 = request("REGISTER", "sip:isc.local");
    client.authorize(&mut req2, "77aa");
    assert_eq!(authorization(&req2).nc, Some(2));
    assert_eq!(authorization(&req2).nonce, creds.nonce);
    let outcome =
        server.verify_request(t0 + Duration::from_secs(2), &req2, AuthKind::Www, passwords);
    assert_eq!(
        outcome,
        DigestOutcome::Authenticated {
            user: "alice".into()
        }
    );
}

#[test]
fn md5_round_trip_when_only_md5_offered() {
    let t0 = Instant::now();
    let mut config = DigestServerConfig::new("isc.local");
    config.algorithms = vec![Algorithm::Md5];
    let mut server = DigestServer::new(config, KEY, t0);
    let mut client = DigestClient::new("alice", "wonderland");
    client
        .handle_challenge(&challenge_response(&server, t0, AuthKind::Www, false))
        .unwrap();
    let mut req = request("REGISTER", "sip:isc.local");
    client.authorize(&mut req, "abc");
    assert_eq!(authorization(&req).algorithm, Some(Algorithm::Md5));
    assert_eq!(
        server.verify_request(t0, &req, AuthKind::Www, passwords),
        DigestOutcome::Authenticated {
            user: "alice".into()
        }
    );
    // A SHA-256 answer is refused by a server that did not offer it.
    let mut sha = authorization(&req);
    sha.algorithm = Some(Algorithm::Sha256);
    assert_eq!(
        server.verify(t0, &sha, "REGISTER", b"", passwords),
        DigestOutcome::Challenge {
            stale: false,
            reason: ChallengeReason::UnsupportedAlgorithm
        }
    );
}

#[test]
fn client_picks_sha256_whatever_the_order() {
    let (t0, server) = setup();
    let mut resp = challenge_response(&server, t0, AuthKind::Www, false);
    let mut headers: Vec<rsip::Header> = resp.headers.clone().into();
    headers.reverse(); // MD5 first now
    resp.headers = headers.into();
    let mut client = DigestClient::new("alice", "wonderland");
    client.handle_challenge(&resp).unwrap();
    assert_eq!(client.algorithm_for("isc.local"), Some(&Algorithm::Sha256));
}

#[test]
fn wrong_password_is_forbidden() {
    let (t0, mut server) = setup();
    let mut client = DigestClient::new("alice", "looking-glass");
    client
        .handle_challenge(&challenge_response(&server, t0, AuthKind::Www, false))
        .unwrap();
    let mut req = request("REGISTER", "sip:isc.local");
    client.authorize(&mut req, "c1");
    assert_eq!(
        server.verify_request(t0, &req, AuthKind::Www, passwords),
        DigestOutcome::Forbidden {
            reason: ForbiddenReason::WrongPassword
        }
    );
    let mut bob = DigestClient::new("bob", "x");
    bob.handle_challenge(&challenge_response(&server, t0, AuthKind::Www, false))
        .unwrap();
    let mut req = request("REGISTER", "sip:isc.local");
    bob.authorize(&mut req, "c1");
    assert_eq!(
        server.verify_request(t0, &req, AuthKind::Www, passwords),
        DigestOutcome::Forbidden {
            reason: ForbiddenReason::UnknownUser
        }
    );
}

#[test]
fn no_credentials_gets_a_challenge() {
    let (t0, mut server) = setup();
    let req = request("REGISTER", "sip:isc.local");
    assert_eq!(
        server.verify_request(t0, &req, AuthKind::Www, passwords),
        DigestOutcome::Challenge {
            stale: false,
            reason: ChallengeReason::NoCredentials
        }
    );
}

#[test]
fn expired_nonce_gets_stale_challenge_and_client_retries() {
    let (t0, mut server) = setup();
    let mut client = DigestClient::new("alice", "wonderland");
    client
        .handle_challenge(&challenge_response(&server, t0, AuthKind::Www, false))
        .unwrap();
    let mut req = request("REGISTER", "sip:isc.local");
    client.authorize(&mut req, "c1");
    let late = t0 + Duration::from_secs(301);
    assert_eq!(
        server.verify_request(late, &req, AuthKind::Www, passwords),
        DigestOutcome::Challenge {
            stale: true,
            reason: ChallengeReason::ExpiredNonce
        }
    );
    // stale=true: the client retries with the new nonce, no rejection.
    client
        .handle_challenge(&challenge_response(&server, late, AuthKind::Www, true))
        .unwrap();
    let mut req = request("REGISTER", "sip:isc.local");
    client.authorize(&mut req, "c2");
    assert_eq!(authorization(&req).nc, Some(1));
    assert_eq!(
        server.verify_request(late, &req, AuthKind::Www, passwords),
        DigestOutcome::Authenticated {
            user: "alice".into()
        }
    );
}

#[test]
fn repeated_or_lower_nc_is_refused() {
    let (t0, mut server) = setup();
    let mut client = DigestClient::new("alice", "wonderland");
    client
        .handle_challenge(&challenge_response(&server, t0, AuthKind::Www, false))
        .unwrap();
    let mut first = request("REGISTER", "sip:isc.local");
    client.authorize(&mut first, "c1");
    let mut second = request("REGISTER", "sip:isc.local");
    client.authorize(&mut second, "c2");
    let ok = DigestOutcome::Authenticated {
        user: "alice".into(),
    };
    let replay = DigestOutcome::Challenge {
        stale: true,
        reason: ChallengeReason::NonceReplay,
    };
    assert_eq!(
        server.verify_request(t0, &first, AuthKind::Www, passwords),
        ok
    );
    assert_eq!(
        server.verify_request(t0, &first, AuthKind::Www, passwords),
        replay
    );
    assert_eq!(
        server.verify_request(t0, &second, AuthKind::Www, passwords),
        ok
    );
    // nc=1 after nc=2: lower, refused
    assert_eq!(
        server.verify_request(t0, &first, AuthKind::Www, passwords),
        replay
    );
}

#[test]
fn evicted_nonce_cannot_be_replayed() {
    let t0 = Instant::now();
    let mut config = DigestServerConfig::new("isc.local");
    config.max_tracked_nonces = 1;
    let mut server = DigestServer::new(config, KEY, t0);
    let mut a = DigestClient::new("alice", "wonderland");
    a.handle_challenge(&challenge_response(&server, t0, AuthKind::Www, false))
        .unwrap();
    let mut ra = request("REGISTER", "sip:isc.local");
    a.authorize(&mut ra, "a1");
    let t1 = t0 + Duration::from_secs(1);
    let mut b = DigestClient::new("alice", "wonderland");
    b.handle_challenge(&challenge_response(&server, t1, AuthKind::Www, false))
        .unwrap();
    let mut rb = request("REGISTER", "sip:isc.local");
    b.authorize(&mut rb, "b1");
    let ok = DigestOutcome::Authenticated {
        user: "alice".into(),
    };
    assert_eq!(server.verify_request(t1, &ra, AuthKind::Www, passwords), ok);
    assert_eq!(server.verify_request(t1, &rb, AuthKind::Www, passwords), ok); // evicts a's
    assert_eq!(
        server.verify_request(t1, &ra, AuthKind::Www, passwords),
        DigestOutcome::Challenge {
            stale: true,
            reason: ChallengeReason::NonceReplay
        }
    );
}

#[test]
fn nonce_of_another_server_is_stale_if_password_right() {
    let (t0, mut server) = setup();
    let other = DigestServer::new(DigestServerConfig::new("isc.local"), [9; 32], t0);
    let mut client = DigestClient::new("alice", "wonderland");
    client
        .handle_challenge(&challenge_response(&other, t0, AuthKind::Www, false))
        .unwrap();
    let mut req = request("REGISTER", "sip:isc.local");
    client.authorize(&mut req, "c1");
    assert_eq!(
        server.verify_request(t0, &req, AuthKind::Www, passwords),
        DigestOutcome::Challenge {
            stale: true,
            reason: ChallengeReason::UnknownNonce
        }
    );
}

#[test]
fn client_reports_rejection_on_non_stale_rechallenge() {
    let (t0, server) = setup();
    let mut client = DigestClient::new("alice", "wrong");
    let resp = challenge_response(&server, t0, AuthKind::Www, false);
    client.handle_challenge(&resp).unwrap();
    let mut req = request("REGISTER", "sip:isc.local");
    client.authorize(&mut req, "c1");
    assert_eq!(
        client.handle_challenge(&resp),
        Err(DigestError::Rejected {
            realm: "isc.local".into()
        })
    );
    let none = rsip::Response {
        status_code: rsip::StatusCode::Unauthorized,
        version: rsip::Version::V2,
        headers: vec![rsip::Header::WwwAuthenticate(
            rsip::headers::WwwAuthenticate::new(
                "Digest realm=\"x\", nonce=\"1\", algorithm=AKAv1-MD5",
            ),
        )]
        .into(),
        body: Vec::new(),
    };
    assert_eq!(
        client.handle_challenge(&none),
        Err(DigestError::NoSupportedChallenge)
    );
}

#[test]
fn proxy_challenge_for_invite() {
    let (t0, mut server) = setup();
    let method = rsip::Method::Invite;
    let kind = AuthKind::for_method(&method);
    assert_eq!(kind, AuthKind::Proxy);
    assert_eq!(AuthKind::for_method(&rsip::Method::Register), AuthKind::Www);
    let resp = challenge_response(&server, t0, kind, false);
    assert_eq!(
        resp.status_code,
        rsip::StatusCode::ProxyAuthenticationRequired
    );
    let mut client = DigestClient::new("alice", "wonderland");
    client.handle_challenge(&resp).unwrap();
    let mut req = request("INVITE", "sip:bob@isc.local");
    client.authorize(&mut req, "c1");
    assert!(
        req.headers
            .iter()
            .any(|h| matches!(h, rsip::Header::ProxyAuthorization(_)))
    );
    assert_eq!(
        server.verify_request(t0, &req, kind, passwords),
        DigestOutcome::Authenticated {
            user: "alice".into()
        }
    );
    // Same credentials for another Request-URI: refused.
    let creds = authorization(&req);
    let mut moved = request("INVITE", "sip:carol@isc.local");
    moved.headers.push(kind.credentials_header(&creds));
    assert_eq!(
        server.verify_request(t0, &moved, kind, passwords),
        DigestOutcome::Forbidden {
            reason: ForbiddenReason::UriMismatch
        }
    );
}

/// What SIPp sends when the challenge has no qop (RFC 2069 form), and with
/// qop: `Digest username="..",realm="..",cnonce="..",nc=00000001,qop=auth,
/// uri="..",nonce="..",response="..",algorithm=MD5,opaque=".."`.
#[test]
fn sipp_style_md5_answers() {
    let (t0, mut server) = setup();
    let c = &server.challenges(t0, &SALT, false)[1];
    assert_eq!(c.algorithm, Some(Algorithm::Md5));
    let uri = "sip:isc.local";
    let old = compute_response(&ResponseInput {
        algorithm: &Algorithm::Md5,
        username: "alice",
        realm: "isc.local",
        password: "wonderland",
        nonce: &c.nonce,
        qop: None,
        nc: 0,
        cnonce: "",
        method: "REGISTER",
        uri,
        body: b"",
    });
    let header = format!(
        "Digest username=\"alice\",realm=\"isc.local\",uri=\"{uri}\",nonce=\"{}\",response=\"{old}\",algorithm=MD5,opaque=\"{}\"",
        c.nonce,
        c.opaque.clone().unwrap()
    );
    let mut req = request("REGISTER", uri);
    req.headers.push(rsip::Header::Authorization(
        rsip::headers::Authorization::new(header.clone()),
    ));
    let ok = DigestOutcome::Authenticated {
        user: "alice".into(),
    };
    assert_eq!(
        server.verify_request(t0, &req, AuthKind::Www, passwords),
        ok
    );

    let with_qop = compute_response(&ResponseInput {
        qop: Some(&Qop::Auth),
        nc: 1,
        cnonce: "6b8b4567",
        algorithm: &Algorithm::Md5,
        username: "alice",
        realm: "isc.local",
        password: "wonderland",
        nonce: &c.nonce,
        method: "REGISTER",
        uri,
        body: b"",
    });
    let header = format!(
        "Digest username=\"alice\",realm=\"isc.local\",cnonce=\"6b8b4567\",nc=00000001,qop=auth,uri=\"{uri}\",nonce=\"{}\",response=\"{with_qop}\",algorithm=MD5",
        c.nonce
    );
    let mut req = request("REGISTER", uri);
    req.headers.push(rsip::Header::Authorization(
        rsip::headers::Authorization::new(header),
    ));
    assert_eq!(
        server.verify_request(t0, &req, AuthKind::Www, passwords),
        ok
    );

    // With the RFC 2069 form switched off, a qop is required.
    let mut config = DigestServerConfig::new("isc.local");
    config.allow_rfc2069 = false;
    let mut strict = DigestServer::new(config, KEY, t0);
    let mut req = request("REGISTER", uri);
    let old_header = format!(
        "Digest username=\"alice\",realm=\"isc.local\",uri=\"{uri}\",nonce=\"{}\",response=\"{old}\",algorithm=MD5",
        c.nonce
    );
    req.headers.push(rsip::Header::Authorization(
        rsip::headers::Authorization::new(old_header),
    ));
    assert_eq!(
        strict.verify_request(t0, &req, AuthKind::Www, passwords),
        DigestOutcome::Challenge {
            stale: false,
            reason: ChallengeReason::QopRequired
        }
    );
}

#[test]
fn user_must_match_its_uri() {
    let alice = rsip::Uri::try_from("sip:alice@isc.local").unwrap();
    assert!(user_matches_uri("alice", &alice));
    assert!(!user_matches_uri("bob", &alice));
}
