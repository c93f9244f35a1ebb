//! Network input never panics the registrar or the digest check.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use isc::proto::sip::digest::{
    AuthKind, DigestServer, DigestServerConfig, parse_challenge_bytes, parse_credentials_bytes,
};
use isc::server::location_service::Source;
use isc::server::registrar::contact::parse_contacts_bytes;
use isc::server::registrar::{Registrar, RegistrarConfig};
use proptest::prelude::*;

fn register(contact: &str, expires: &str, auth: &str) -> Option<rsip::Request> {
    let text = format!(
        "REGISTER sip:isc.local SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n\
         From: <sip:alice@isc.local>;tag=1\r\n\
         To: <sip:alice@isc.local>\r\n\
         Call-ID: x\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: {contact}\r\n\
         Expires: {expires}\r\n\
         Authorization: {auth}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_str()).ok()
}

proptest! {
    #[test]
    fn bytes_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_challenge_bytes(&bytes);
        let _ = parse_credentials_bytes(&bytes);
        let _ = parse_contacts_bytes(&bytes);
    }

    #[test]
    fn register_never_panics(
        contact in r#"[ -~]{0,60}"#,
        expires in r#"[0-9]{0,12}|[ -~]{0,6}"#,
        auth in r#"Digest( [a-z]{1,8}=("[ -~]{0,10}"|[a-z0-9]{0,8}),?){0,8}"#,
        later in 0u64..100_000,
    ) {
        let t0 = Instant::now();
        let Some(req) = register(&contact, &expires, &auth) else { return Ok(()) };
        let mut digest = DigestServer::new(DigestServerConfig::new("isc.local"), [1; 32], t0);
        let _ = digest.verify_request(t0, &req, AuthKind::Www, |_| Some("pw".into()));
        let source = Source {
            addr: SocketAddr::from(([192, 0, 2, 10], 5060)),
            transport: rsip::Transport::Udp,
        };
        let mut reg = Registrar::new(RegistrarConfig::new("isc.local"));
        let out = reg.handle_register(t0, &req, source, Some("alice"));
        prop_assert!(out.response.status_code.code() >= 200);
        let _ = reg.expire(t0 + Duration::from_secs(later));
    }
}
