//! The server core in AS mode, sans IO (issue 10): what it takes from the
//! SIP/IP core (third-party REGISTER, P-Asserted-Identity) and from anyone
//! else, and how it reaches a device (through the core, at its GRUU).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use isc::proto::ids::SeqIds;
use isc::proto::sip::transaction::Transport;
use isc::server::core::{AppServer, CoreSettings, ServerCore, UserAccount};

const CORE: &str = "127.0.0.1:25060";
const AS: &str = "127.0.0.1:25070";
const DEVICE: &str = "127.0.0.1:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn as_core() -> ServerCore {
    let users = ["alice", "bob"]
        .iter()
        .map(|n| UserAccount {
            name: (*n).into(),
            password: (*n).into(),
        })
        .collect();
    let settings = CoreSettings {
        domain: "isc.local".into(),
        local: addr(AS),
        tls_local: None,
        users,
        nonce_lifetime: Duration::from_secs(300),
        app_server: Some(AppServer {
            core: addr(CORE),
            trusted: vec![addr(CORE)],
        }),
    };
    ServerCore::new(settings, Box::new(SeqIds::new("s")), Instant::now())
}

fn feed(core: &mut ServerCore, from: &str, text: &str) -> Vec<(SocketAddr, String)> {
    core.handle_input(Instant::now(), text.as_bytes(), addr(from), Transport::Udp);
    let mut out = Vec::new();
    while let Some(o) = core.poll_transmit() {
        out.push((o.to, String::from_utf8_lossy(&o.bytes).into_owned()));
    }
    out
}

/// Kamailio's copy of bob's REGISTER (t_replicate): its Via on top.
fn third_party_register(pai: &str) -> String {
    format!(
        "REGISTER sip:isc.local SIP/2.0\r\nVia: SIP/2.0/UDP {CORE};branch=z9hG4bKk1\r\nVia: SIP/2.0/UDP {DEVICE};received=127.0.0.1;branch=z9hG4bKd1;rport=40000\r\nMax-Forwards: 69\r\nFrom: <sip:bob@isc.local>;tag=1\r\nTo: <sip:bob@isc.local>\r\nCall-ID: reg1\r\nCSeq: 2 REGISTER\r\nSupported: gruu\r\nContact: <sip:bob@{DEVICE};transport=udp>;+sip.instance=\"<urn:uuid:b1>\";+sip.description=\"tv\";expires=600\r\n{pai}Content-Length: 0\r\n\r\n"
    )
}

/// A MESSAGE as the core forwards it (each call its own transaction).
fn message(pai: &str, to: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "MESSAGE {to} SIP/2.0\r\nVia: SIP/2.0/UDP {CORE};branch=z9hG4bKk{n}\r\nVia: SIP/2.0/UDP 127.0.0.1:40001;branch=z9hG4bKa{n};rport=40001\r\nMax-Forwards: 69\r\nFrom: <sip:alice@isc.local>;tag=a\r\nTo: <{to}>\r\nCall-ID: m{n}\r\nCSeq: 1 MESSAGE\r\n{pai}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    )
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn third_party_register_from_the_core_binds_and_requests_go_back_through_it_at_the_gruu() {
    let mut core = as_core();
    let out = feed(
        &mut core,
        CORE,
        &third_party_register("P-Asserted-Identity: <sip:bob@isc.local>\r\n"),
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let (to, resp) = &out[0];
    assert_eq!(*to, addr(CORE), "answered to the core");
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    let binding = core
        .registrar()
        .location()
        .find_instance(Instant::now(), "sip:bob@isc.local", "urn:uuid:b1")
        .expect("bob/tv bound")
        .clone();
    assert_eq!(binding.source.addr, addr(CORE), "reached through the core");
    assert_eq!(
        binding.gruu.as_deref(),
        Some("sip:bob@isc.local;gr=urn:uuid:b1")
    );

    // A request the core hands over for bob goes back to the core, its
    // Request-URI the device's GRUU, not the device's contact.
    let out = feed(
        &mut core,
        CORE,
        &message(
            "P-Asserted-Identity: <sip:alice@isc.local>\r\n",
            "sip:bob@isc.local",
        ),
    );
    let (to, fwd) = out
        .iter()
        .find(|(_, t)| t.starts_with("MESSAGE "))
        .expect("forwarded");
    assert_eq!(*to, addr(CORE));
    assert!(
        fwd.starts_with("MESSAGE sip:bob@isc.local;gr=urn:uuid:b1 SIP/2.0\r\n"),
        "{fwd}"
    );
    assert_eq!(
        header(fwd, "P-Asserted-Identity"),
        Some("<sip:alice@isc.local>")
    );
    assert!(
        !out.iter().any(|(to, _)| *to == addr(DEVICE)),
        "nothing straight to the device"
    );
}

#[test]
fn identity_is_believed_only_from_the_core_and_only_for_known_users() {
    let mut core = as_core();
    // From a device, not the core: 403, whatever it asserts.
    let out = feed(
        &mut core,
        "127.0.0.1:40001",
        &message(
            "P-Asserted-Identity: <sip:alice@isc.local>\r\n",
            "sip:bob@isc.local",
        ),
    );
    let (_, resp) = &out[0];
    assert!(resp.starts_with("SIP/2.0 403"), "{resp}");
    assert!(
        header(resp, "Warning").is_some_and(|w| w.contains("trusted only from the SIP/IP core")),
        "{resp}"
    );
    assert!(header(resp, "Proxy-Authenticate").is_none(), "no challenge");
    // From the core without an assertion, or asserting a stranger: 403.
    for pai in ["", "P-Asserted-Identity: <sip:mallory@isc.local>\r\n"] {
        let out = feed(&mut core, CORE, &message(pai, "sip:bob@isc.local"));
        let (to, resp) = &out[0];
        assert_eq!(*to, addr(CORE));
        assert!(resp.starts_with("SIP/2.0 403"), "{resp}");
        assert!(
            header(resp, "Warning")
                .is_some_and(|w| w.contains("no P-Asserted-Identity of a known user")),
            "{resp}"
        );
    }
    // The registrar is off for devices: their REGISTER is refused.
    let reg = third_party_register("P-Asserted-Identity: <sip:bob@isc.local>\r\n");
    let out = feed(&mut core, DEVICE, &reg);
    assert!(out[0].1.starts_with("SIP/2.0 403"), "{}", out[0].1);
    assert!(
        core.registrar().location().is_empty(),
        "nothing bound from a device"
    );
}
