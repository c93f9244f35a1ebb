//! RFC 4475 §3.1.1–§3.4: every torture message sent to `isc server` over UDP
//! and over TCP, the answer checked on the wire, and after each one an
//! OPTIONS to the server itself still answered 200.
//!
//! The server is an authenticating proxy and registrar for `example.com`
//! (the messages' domain): a valid request reaches digest authentication
//! and gets its 401/407 challenge (RFC 3261 §22), or the answer of the
//! role that takes it; an invalid one is refused before that with the code
//! the RFC names and a Warning naming the fault; a response that matches no
//! transaction is dropped (RFC 3261 §18.1.2). Each message goes to a fresh
//! server: many of them share a branch, which would make a later one a
//! retransmission of an earlier one (RFC 3261 §17.2.3).

use std::net::SocketAddr;
use std::time::Duration;

use isc::proto::sip::framing::StreamFramer;
use isc::server::runner::{Server, ServerHandle, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const DOMAIN: &str = "example.com";
/// A bound for waiting on the server, never a timed assertion.
const WAIT: Duration = Duration::from_secs(5);

fn torture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/data/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

async fn start() -> ServerHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut opts = ServerOptions::loopback_demo();
    // The torture messages address example.com: make it ours, so the
    // registrar and proxy semantics apply to them.
    opts.config.domain = DOMAIN.into();
    opts.config.users = ["alice", "bob"]
        .iter()
        .map(|n| isc::config::UserConfig::new(n, n))
        .collect();
    Server::start(opts).await.expect("server starts")
}

/// An OPTIONS for the server itself (RFC 3261 §11), answered 200 without
/// authentication; `n` makes its Call-ID unique.
fn probe(transport: &str, local: SocketAddr, n: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bKprobe{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{DOMAIN}>;tag=p{n}\r\nTo: <sip:{DOMAIN}>\r\n\
         Call-ID: probe-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn is_probe_answer(msg: &[u8], n: usize) -> bool {
    let text = String::from_utf8_lossy(msg);
    text.contains(&format!("Call-ID: probe-{n}\r\n"))
}

fn status(msg: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(msg).ok()?;
    let rest = text.strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

/// Over UDP: the torture datagram, then the probe; returns what came back
/// before the probe's 200 (the server handles one socket's datagrams in order).
async fn over_udp(server: SocketAddr, name: &str, n: usize) -> Vec<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    sock.send_to(&torture(name), server).await.unwrap();
    sock.send_to(&probe("UDP", local, n), server).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{name}/udp: no answer to the probe; got {got:?}"))
            .unwrap();
        let msg = &buf[..len];
        if is_probe_answer(msg, n) {
            assert_eq!(status(msg), Some(200), "{name}/udp: probe answer");
            return got;
        }
        got.push(String::from_utf8_lossy(msg).into_owned());
    }
}

/// What a TCP connection carried back.
#[derive(Debug)]
struct TcpOutcome {
    answers: Vec<String>,
    /// The server closed the connection (before any probe answer).
    closed: bool,
}

/// Over TCP: the torture bytes, then the probe on the same connection;
/// reads until the probe is answered or the server closes the connection.
async fn over_tcp(server: SocketAddr, bytes: &[u8], name: &str, n: usize) -> TcpOutcome {
    let mut conn = TcpStream::connect(server).await.unwrap();
    let local = conn.local_addr().unwrap();
    conn.write_all(bytes).await.unwrap();
    conn.write_all(&probe("TCP", local, n)).await.unwrap();
    let mut framer = StreamFramer::new(Default::default());
    let mut answers = Vec::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        let read = tokio::time::timeout(WAIT, conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{name}/tcp: neither answered nor closed; got {answers:?}"));
        let len = match read {
            Ok(0) | Err(_) => {
                return TcpOutcome {
                    answers,
                    closed: true,
                };
            }
            Ok(len) => len,
        };
        framer.push(&buf[..len]);
        while let Some(Ok(msg)) = framer.next_message() {
            if is_probe_answer(&msg, n) {
                assert_eq!(status(&msg), Some(200), "{name}/tcp: probe answer");
                return TcpOutcome {
                    answers,
                    closed: false,
                };
            }
            answers.push(String::from_utf8_lossy(&msg).into_owned());
        }
    }
}

/// The server still answers a probe on a fresh UDP socket.
async fn alive(server: SocketAddr, name: &str, n: usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    sock.send_to(&probe("UDP", local, n), server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("server dead after {name}"))
        .unwrap();
    assert!(is_probe_answer(&buf[..len], n) && status(&buf[..len]) == Some(200));
}

/// The bytes for a stream: `baddn.dat` ends without the empty line that ends
/// a header section (as in the RFC's archive); on a stream that would make
/// the next message part of it, so its CRLF is added (RFC 3261 §7).
fn stream_bytes(name: &str) -> Vec<u8> {
    let mut bytes = torture(name);
    if !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

/// What the server must answer to one torture message on one transport.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// These final responses, in order, each 4xx-6xx but 401/407 with a
    /// Warning containing `warning` (when given); then the probe's 200.
    Answer(&'static [u16], Option<&'static str>),
    /// Nothing before the probe's 200 (a response matching no transaction).
    Nothing,
    /// TCP: these answers, then the connection closed (RFC 3261 §18.3: a
    /// stream that cannot be framed is not resynchronised).
    Closed(&'static [u16]),
    /// TCP: the body is shorter than Content-Length, so the server waits
    /// for the rest (RFC 4475 §3.1.2.2); when the peer ends its side it
    /// closes too, having answered nothing.
    Waits,
}

async fn run(name: &str, udp: Want, tcp: Want) {
    let server = start().await;
    let got = over_udp(server.local_addr(), name, 1).await;
    check(name, "udp", &got, false, udp);
    alive(server.local_addr(), name, 2).await;
    server.shutdown().await;

    let server = start().await;
    if let Want::Waits = tcp {
        let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
        conn.write_all(&stream_bytes(name)).await.unwrap();
        conn.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, conn.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("{name}/tcp: not closed after our FIN"))
            .unwrap();
        assert!(rest.is_empty(), "{name}/tcp: answered {rest:?}");
    } else {
        let out = over_tcp(server.local_addr(), &stream_bytes(name), name, 3).await;
        check(name, "tcp", &out.answers, out.closed, tcp);
    }
    alive(server.local_addr(), name, 4).await;
    server.shutdown().await;
}

fn check(name: &str, transport: &str, got: &[String], closed: bool, want: Want) {
    let codes: Vec<u16> = got.iter().filter_map(|m| status(m.as_bytes())).collect();
    let ctx = format!("{name}/{transport}: got {:?}", summary(got));
    match want {
        Want::Nothing => assert!(got.is_empty() && !closed, "{ctx}"),
        Want::Answer(expected, warning) => {
            assert!(!closed, "{ctx}: closed");
            assert_eq!(codes, expected, "{ctx}");
            for (msg, code) in got.iter().zip(expected) {
                check_answer(&ctx, msg, *code, warning);
            }
        }
        Want::Closed(expected) => {
            assert!(closed, "{ctx}: not closed");
            assert_eq!(codes, expected, "{ctx}");
        }
        Want::Waits => unreachable!("handled in run"),
    }
}

/// The headers each answer must carry (RFC 3261 §8.2, §20.43, §21.4.16).
fn check_answer(ctx: &str, msg: &str, code: u16, warning: Option<&str>) {
    match code {
        401 => assert!(
            header(msg, "WWW-Authenticate").is_some_and(|v| v.starts_with("Digest ")),
            "{ctx}"
        ),
        407 => assert!(
            header(msg, "Proxy-Authenticate").is_some_and(|v| v.starts_with("Digest ")),
            "{ctx}"
        ),
        501 => assert!(header(msg, "Allow").is_some(), "{ctx}: 501 without Allow"),
        // RFC 3261 §12.2.2: no dialog, nothing else to say.
        481 => {}
        _ => {
            let w = header(msg, "Warning").unwrap_or_else(|| panic!("{ctx}: no Warning"));
            assert!(w.starts_with(&format!("399 {DOMAIN} \"")), "{ctx}: {w}");
            if let Some(text) = warning {
                assert!(w.contains(text), "{ctx}: Warning {w:?} lacks {text:?}");
            }
        }
    }
}

fn summary(msgs: &[String]) -> Vec<String> {
    msgs.iter()
        .map(|m| {
            let first = m.split("\r\n").next().unwrap_or("").to_string();
            match header(m, "Warning") {
                Some(w) => format!("{first} | Warning: {w}"),
                None => first,
            }
        })
        .collect()
}

use Want::*;

/// One test per message: `name, udp, tcp`, the RFC section in the comment.
macro_rules! torture {
    ($($(#[doc = $doc:literal])* $name:ident: $udp:expr, $tcp:expr;)*) => {$(
        $(#[doc = $doc])*
        #[tokio::test]
        async fn $name() {
            run(stringify!($name), $udp, $tcp).await;
        }
    )*};
}

const AUTH: Want = Answer(&[407], None);
const REG_AUTH: Want = Answer(&[401], None);

torture! {
    // --- §3.1.1 valid messages: parsed and handled -------------------------
    /// §3.1.1.1 short tortuous INVITE: it has a To tag, so it is in-dialog,
    /// and no dialog matches (RFC 3261 §12.2.2).
    wsinv: Answer(&[481], None), Answer(&[481], None);
    /// §3.1.1.2 wide range of valid characters: an extension method we do
    /// not implement (RFC 3261 §8.2.1: 501 with Allow).
    intmeth: Answer(&[501], None), Answer(&[501], None);
    /// §3.1.1.3 valid use of % escaping.
    esc01: AUTH, AUTH;
    /// §3.1.1.4 escaped nulls in URIs.
    escnull: REG_AUTH, REG_AUTH;
    /// §3.1.1.5 use of % when it is not an escape: RE%47IST%45R is not
    /// REGISTER but an unknown method.
    esc02: Answer(&[501], None), Answer(&[501], None);
    /// §3.1.1.6 message with no LWS between display name and <.
    lwsdisp: AUTH, AUTH;
    /// §3.1.1.7 long values in header fields (and an RFC 2543 top Via
    /// with no branch, matched per RFC 3261 §17.2.3).
    longreq: AUTH, AUTH;
    /// §3.1.1.8 extra trailing octets in a UDP datagram: only the first
    /// request is answered. On TCP both are messages, and the 5 octets after
    /// the second's Content-Length cannot be framed: answered, then closed.
    dblreq: REG_AUTH, Closed(&[401, 407]);
    /// §3.1.1.9 semicolon-separated parameters in URI user part.
    semiuri: AUTH, AUTH;
    /// §3.1.1.10 varied and unknown transport types.
    transports: AUTH, AUTH;
    /// §3.1.1.11 multipart MIME message.
    mpart01: AUTH, AUTH;
    /// §3.1.1.12 unusual reason phrase: a response matching no transaction.
    unreason: Nothing, Nothing;
    /// §3.1.1.13 empty reason phrase.
    noreason: Nothing, Nothing;

    // --- §3.1.2 invalid messages: refused ----------------------------------
    /// §3.1.2.1 extraneous header field separators.
    badinv01: Answer(&[400], Some("Via")), Answer(&[400], Some("Via"));
    /// §3.1.2.2 Content-Length larger than the message: 400 on UDP; on TCP
    /// the rest of the body is awaited.
    clerr: Answer(&[400], Some("Content-Length says 9999")), Waits;
    /// §3.1.2.3 negative Content-Length: 400 on UDP, the stream closed on TCP.
    ncl: Answer(&[400], Some("Content-Length")), Closed(&[]);
    /// §3.1.2.4 request scalar fields with overlarge values.
    scalar02: Answer(&[400], Some("CSeq")), Answer(&[400], Some("CSeq"));
    /// §3.1.2.5 response scalar fields with overlarge values: dropped.
    scalarlg: Nothing, Nothing;
    /// §3.1.2.6 unterminated quoted string in display name.
    quotbal: Answer(&[400], Some("To")), Answer(&[400], Some("To"));
    /// §3.1.2.7 <> enclosing Request-URI.
    ltgtruri: Answer(&[400], Some("Request-URI")), Answer(&[400], Some("Request-URI"));
    /// §3.1.2.8 malformed SIP Request-URI (embedded LWS).
    lwsruri: Answer(&[400], Some("start line")), Answer(&[400], Some("start line"));
    /// §3.1.2.9 multiple SP separating Request-Line elements: "an element
    /// that is liberal in what it accepts may ignore these extra SP".
    lwsstart: AUTH, AUTH;
    /// §3.1.2.10 SP characters at end of Request-Line: the same latitude.
    trws: AUTH, AUTH;
    /// §3.1.2.11 escaped headers in SIP Request-URI (RFC 3261 §19.1.1).
    escruri: Answer(&[400], Some("Request-URI carries headers")), Answer(&[400], Some("Request-URI carries headers"));
    /// §3.1.2.12 invalid time zone in Date: not rejected unless the Date
    /// matters to the processing, which it does not here.
    baddate: AUTH, AUTH;
    /// §3.1.2.13 failure to enclose name-addr URI in <>.
    regbadct: Answer(&[400], Some("Contact")), Answer(&[400], Some("Contact"));
    /// §3.1.2.14 spaces within addr-spec: elements may ignore them.
    badaspec: AUTH, AUTH;
    /// §3.1.2.15 non-token characters in display name. The archive's copy
    /// also lacks the empty line ending its header section, which the UDP
    /// answer names; on TCP that CRLF is supplied (see `stream_bytes`).
    baddn: Answer(&[400], Some("no empty line")), Answer(&[400], Some("display name must be quoted"));
    /// §3.1.2.16 unknown protocol version.
    badvers: Answer(&[505], Some("SIP/7.0")), Answer(&[505], Some("SIP/7.0"));
    /// §3.1.2.17 start line and CSeq method mismatch.
    mismatch01: Answer(&[400], Some("CSeq method")), Answer(&[400], Some("CSeq method"));
    /// §3.1.2.18 unknown method with CSeq method mismatch: 400, not 501.
    mismatch02: Answer(&[400], Some("CSeq method")), Answer(&[400], Some("CSeq method"));
    /// §3.1.2.19 overlarge response code: dropped.
    bigcode: Nothing, Nothing;

    // --- §3.2 transaction layer semantics ----------------------------------
    /// §3.2.1 missing transaction identifier (a bare magic cookie): handled.
    badbranch: AUTH, AUTH;

    // --- §3.3 application layer semantics ----------------------------------
    /// §3.3.1 missing required header fields.
    insuf: Answer(&[400], Some("Call-ID")), Answer(&[400], Some("Call-ID"));
    /// §3.3.2 Request-URI with unknown scheme.
    unkscm: Answer(&[416], Some("nobodyKnowsThisScheme")), Answer(&[416], Some("nobodyKnowsThisScheme"));
    /// §3.3.3 Request-URI with known but atypical scheme: not one we serve.
    novelsc: Answer(&[416], Some("soap.beep")), Answer(&[416], Some("soap.beep"));
    /// §3.3.4 unknown URI schemes in header fields: a REGISTER whose To is
    /// not a SIP address-of-record.
    unksm2: Answer(&[400], Some("To of a REGISTER")), Answer(&[400], Some("To of a REGISTER"));
    /// §3.3.5 Proxy-Require and Require: 420 listing the Proxy-Require tags.
    bext01: Answer(&[420], Some("noProxiesSupportThis")), Answer(&[420], Some("noProxiesSupportThis"));
    /// §3.3.6 unknown Content-Type: a proxy does not look at the body.
    invut: AUTH, AUTH;
    /// §3.3.7 unknown authorization scheme: challenged with Digest.
    regaut01: REG_AUTH, REG_AUTH;
    /// §3.3.8 multiple values in single-value required fields.
    multi01: Answer(&[400], Some("Call-ID headers")), Answer(&[400], Some("Call-ID headers"));
    /// §3.3.9 multiple Content-Length values: 400 on UDP; on TCP the
    /// stream cannot be framed and is closed.
    mcl01: Answer(&[400], Some("Content-Length headers")), Closed(&[]);
    /// §3.3.10 200 OK response with broadcast Via: dropped, never sent on.
    bcast: Nothing, Nothing;
    /// §3.3.11 Max-Forwards of zero: a proxy does not forward it.
    zeromf: Answer(&[483], Some("Max-Forwards")), Answer(&[483], Some("Max-Forwards"));
    /// §3.3.12 REGISTER with a Contact header parameter.
    cparam01: REG_AUTH, REG_AUTH;
    /// §3.3.13 REGISTER with a url-parameter.
    cparam02: REG_AUTH, REG_AUTH;
    /// §3.3.14 REGISTER with a URL escaped header (inside <>: allowed).
    regescrt: REG_AUTH, REG_AUTH;
    /// §3.3.15 unacceptable Accept offering: a proxy forwards (here
    /// challenges) it; 406 is for the UAS.
    sdp01: AUTH, AUTH;

    // --- §3.4 backward compatibility ----------------------------------------
    /// §3.4.1 INVITE with RFC 2543 syntax: matched without a branch (RFC
    /// 3261 §17.2.3). Without Content-Length it cannot be framed on TCP.
    inv2543: AUTH, Closed(&[]);
}
