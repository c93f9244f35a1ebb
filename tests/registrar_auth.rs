//! REGISTER with digest authentication in front of the registrar, the way
//! the server core wires them: 401 with SHA-256 and MD5 challenges, the
//! client answers, the registrar sees the authenticated user.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use isc::proto::sip::digest::{
    AuthKind, DigestClient, DigestOutcome, DigestServer, DigestServerConfig,
};
use isc::server::location_service::Source;
use isc::server::registrar::{Registrar, RegistrarConfig, response_for};

fn register(user: &str, cseq: u32) -> rsip::Request {
    let text = format!(
        "REGISTER sip:isc.local SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKreg{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@isc.local>;tag=a73kszlfl\r\n\
         To: <sip:{user}@isc.local>\r\n\
         Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Supported: gruu\r\n\
         Contact: <sip:{user}@192.0.2.10:5060>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-0000000000a1>\"\r\n\
         Content-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_str()).expect("REGISTER parses")
}

/// The server side: digest check, then the registrar.
fn serve(
    now: Instant,
    digest: &mut DigestServer,
    registrar: &mut Registrar,
    req: &rsip::Request,
) -> rsip::Response {
    let source = Source {
        addr: SocketAddr::from(([192, 0, 2, 10], 5060)),
        transport: rsip::Transport::Udp,
    };
    let kind = AuthKind::for_method(&req.method);
    let lookup = |u: &str| match u {
        "alice" => Some("wonderland".to_owned()),
        "bob" => Some("builder".to_owned()),
        _ => None,
    };
    match digest.verify_request(now, req, kind, lookup) {
        DigestOutcome::Authenticated { user } => {
            registrar
                .handle_register(now, req, source, Some(&user))
                .response
        }
        DigestOutcome::Challenge { stale, .. } => response_for(
            req,
            kind.status(),
            digest.challenge_headers(now, kind, &[3; 16], stale),
        ),
        DigestOutcome::Forbidden { .. } => response_for(req, rsip::StatusCode::Forbidden, vec![]),
    }
}

#[test]
fn register_with_digest_then_refresh_on_same_nonce() {
    let t0 = Instant::now();
    let mut digest = DigestServer::new(DigestServerConfig::new("isc.local"), [5; 32], t0);
    let mut registrar = Registrar::new(RegistrarConfig::new("isc.local"));
    let mut alice = DigestClient::new("alice", "wonderland");

    let first = register("alice", 1);
    let resp = serve(t0, &mut digest, &mut registrar, &first);
    assert_eq!(resp.status_code, rsip::StatusCode::Unauthorized);
    assert!(resp.to_string().contains("algorithm=SHA-256"));
    alice.handle_challenge(&resp).unwrap();

    let mut second = register("alice", 2);
    alice.authorize(&mut second, "c0ffee01");
    let resp = serve(t0, &mut digest, &mut registrar, &second);
    assert_eq!(resp.status_code, rsip::StatusCode::OK);
    assert!(resp.to_string().contains("pub-gruu="));
    assert_eq!(registrar.lookup(t0, "sip:alice@isc.local").len(), 1);

    // A refresh a minute later re-uses the nonce (nc=2) and is accepted.
    let t1 = t0 + Duration::from_secs(60);
    let mut third = register("alice", 3);
    alice.authorize(&mut third, "c0ffee02");
    let resp = serve(t1, &mut digest, &mut registrar, &third);
    assert_eq!(resp.status_code, rsip::StatusCode::OK);

    // Much later the nonce is stale: 401 stale=TRUE, then success.
    let t2 = t0 + Duration::from_secs(1000);
    let mut fourth = register("alice", 4);
    alice.authorize(&mut fourth, "c0ffee03");
    let resp = serve(t2, &mut digest, &mut registrar, &fourth);
    assert_eq!(resp.status_code, rsip::StatusCode::Unauthorized);
    assert!(resp.to_string().contains("stale=TRUE"));
    alice.handle_challenge(&resp).unwrap();
    let mut fifth = register("alice", 5);
    alice.authorize(&mut fifth, "c0ffee04");
    assert_eq!(
        serve(t2, &mut digest, &mut registrar, &fifth).status_code,
        rsip::StatusCode::OK
    );
}

#[test]
fn authenticated_bob_cannot_register_alice() {
    let t0 = Instant::now();
    let mut digest = DigestServer::new(DigestServerConfig::new("isc.local"), [5; 32], t0);
    let mut registrar = Registrar::new(RegistrarConfig::new("isc.local"));
    let mut bob = DigestClient::new("bob", "builder");
    let resp = serve(t0, &mut digest, &mut registrar, &register("alice", 1));
    bob.handle_challenge(&resp).unwrap();
    let mut req = register("alice", 2);
    bob.authorize(&mut req, "b0b");
    let resp = serve(t0, &mut digest, &mut registrar, &req);
    assert_eq!(resp.status_code, rsip::StatusCode::Forbidden);
    assert!(registrar.location().is_empty());
}
