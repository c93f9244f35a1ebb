//! Scale-out behind Kamailio's dispatcher (issue #10 part 2), over real
//! sockets: Kamailio (the shipped cfg with `WITH_DISPATCHER`) in front of
//! two `isc server` instances in AS mode sharing one PostgreSQL store, both
//! started by the test on loopback. Every device talks to Kamailio only.
//!
//! 1. alice creates an ad-hoc conference: Kamailio balances the factory
//!    INVITE to one instance (the creator), whose focus mints
//!    `conf-i<N>.…` and invites bob's device through Kamailio;
//! 2. carol's requests are balanced: she pages offline ted until a MESSAGE
//!    has landed on each instance, each stored in the shared store (202);
//! 3. carol joins the conference through Kamailio: the session identity
//!    routes back to the creator (the other instance never sees it), and
//!    her MSRP binds there;
//! 4. ted retrieves his deferred messages from `Deferred@isc.local`:
//!    whichever instance Kamailio balances that to streams them all,
//!    those the other instance stored included, each once, and the shared
//!    store is empty after;
//! 5. dan (push on registration) registers at Kamailio: both instances get
//!    the REGISTER copy, one takes the push lease and pushes his message
//!    once; the other does not push it again.
#![cfg(all(unix, feature = "postgres"))]

mod common;
mod cpm_common;
mod focus_common;
mod kamailio_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Peer;
use cpm_common::{MsrpConn, ack_2xx, answer, final_for, msrp_sdp, recv_request, send_invite};
use focus_common::{bind_send, contact_uri, factory_invite, join_invite, send_auth};
use isc::config::ServerMode;
use isc::proto::bodies::resource_lists::Entry;
use isc::proto::msrp::MsrpUri;
use isc::server::kamailio::{KamailioSite, write_dispatcher_site};
use isc::server::pg_store::cluster::{ClusterError, LocalCluster};
use isc::server::runner::{Direction, Server, ServerOptions};
use kamailio_support::{WireLog, free_port, kamailio_binary, kamailio_present};
use tokio::net::TcpListener;

const DB: &str = "dispatch";

fn cluster() -> Option<LocalCluster> {
    match LocalCluster::start() {
        Ok(c) => Some(c),
        Err(ClusterError::NotInstalled(why)) => {
            eprintln!("skipped: {why}");
            None
        }
        Err(e) => panic!("PostgreSQL cluster: {e}"),
    }
}

fn options(url: &str, n: u16, core: SocketAddr, data: &Path) -> ServerOptions {
    let mut o = ServerOptions::loopback_demo();
    o.history_in_memory = false;
    o.config.data_dir = Some(data.to_path_buf());
    o.config.store.url = Some(url.to_string());
    o.config.instance = Some(n);
    o.config.mode = ServerMode::As;
    o.config.core = Some(core);
    o.config.users = ["alice", "bob", "carol", "ted", "dan"]
        .iter()
        .map(|name| {
            let mut u = isc::config::UserConfig::new(name, name);
            // ted retrieves his messages (no push on registration).
            u.offline_delivery = *name != "ted";
            u
        })
        .collect();
    o
}

/// Kamailio run from `dir` under `timeout`, killed on Drop.
struct Router {
    child: Child,
    dir: std::path::PathBuf,
}

impl Router {
    fn start(dir: &Path, core: SocketAddr) -> Router {
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
        let child = Command::new("timeout")
            .arg("120")
            .arg(kamailio_binary().unwrap())
            .arg("-f")
            .arg(dir.join("kamailio.cfg"))
            .args(["-DD", "-E", "-Y"])
            .arg(&run)
            .arg("-P")
            .arg(run.join("kamailio.pid"))
            .arg("-w")
            .arg(dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut r = Router {
            child,
            dir: dir.to_path_buf(),
        };
        // Ready when it answers an OPTIONS.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let me = sock.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        for n in 0.. {
            if let Ok(Some(s)) = r.child.try_wait() {
                panic!("kamailio exited ({s}):\n{}", r.log());
            }
            assert!(Instant::now() < deadline, "kamailio silent:\n{}", r.log());
            let probe = format!(
                "OPTIONS sip:{core} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKdp{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@isc.local>;tag=p\r\nTo: <sip:{core}>\r\nCall-ID: dprobe-{n}@{me}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = sock.send_to(probe.as_bytes(), core);
            if let Ok((len, _)) = sock.recv_from(&mut buf)
                && buf[..len].starts_with(b"SIP/2.0 ")
            {
                break;
            }
        }
        r
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- kamailio.log ---\n{}", self.log());
        }
        // SIGTERM to our `timeout`, which passes it on to kamailio, whose
        // main process stops its children (a SIGKILL would orphan them).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: our own child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device registered at Kamailio, with an MSRP listener.
async fn device(core: SocketAddr, user: &str) -> (Peer, TcpListener, MsrpUri) {
    let mut p = Peer::new(core, user, user).await;
    let r = p.register(&format!("{user}-dev"), "dev").await;
    assert_eq!(r.status_code.code(), 200, "{user} registers at Kamailio");
    assert!(
        r.headers
            .get_raw("Server")
            .is_some_and(|s| s.starts_with("kamailio"))
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = MsrpUri::new(
        "127.0.0.1",
        l.local_addr().unwrap().port(),
        format!("{user}s"),
    );
    (p, l, uri)
}

use isc::proto::sip::headers::HeadersExt;

/// Which instance (0 or 1) received the request carrying Message-ID `mid`.
async fn landed(logs: &[WireLog; 2], mid: &str) -> usize {
    let needle = format!("\r\nMessage-ID: {mid}\r\n");
    for _ in 0..200 {
        for (i, log) in logs.iter().enumerate() {
            if log
                .texts(Direction::In)
                .iter()
                .any(|(_, t)| t.contains(&needle))
            {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no instance received {mid}");
}

/// Which instance (0 or 1) received a request starting with `prefix`,
/// asserting the other did not.
async fn landed_invite(logs: &[WireLog; 2], prefix: &str) -> usize {
    for _ in 0..200 {
        let got: Vec<usize> = (0..2).filter(|i| received(&logs[*i], prefix) > 0).collect();
        match got.as_slice() {
            [one] => return *one,
            [] => tokio::time::sleep(Duration::from_millis(10)).await,
            both => panic!("{prefix} reached both instances: {both:?}"),
        }
    }
    panic!("no instance received {prefix}");
}

/// Requests an instance received whose start line begins with `prefix`.
fn received(log: &WireLog, prefix: &str) -> usize {
    log.texts(Direction::In)
        .iter()
        .filter(|(_, t)| t.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conference_routes_back_to_its_instance_and_deferred_cross_instances() {
    if !kamailio_present() {
        return;
    }
    let Some(pg) = cluster() else { return };
    let url = pg.create_database(DB).unwrap();
    let (d1, d2, kdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let core = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let o1 = options(&url, 1, core, d1.path());
    let config = o1.config.clone();
    let one = Server::start(o1).await.expect("instance 1");
    let two = Server::start(options(&url, 2, core, d2.path()))
        .await
        .expect("instance 2");
    let logs = [WireLog::follow(&one), WireLog::follow(&two)];
    let handles = [&one, &two];
    let site = KamailioSite {
        core,
        app_server: one.local_addr(),
        domain: "isc.local".into(),
    };
    write_dispatcher_site(
        kdir.path(),
        &site,
        &[(1, one.local_addr()), (2, two.local_addr())],
        &config,
    )
    .unwrap();
    let router = tokio::task::block_in_place(|| Router::start(kdir.path(), core));

    let (mut alice, _al, alice_uri) = device(core, "alice").await;
    let (bob, bob_l, bob_uri) = device(core, "bob").await;
    let (mut carol, carol_l, carol_uri) = device(core, "carol").await;
    // Both instances learn every device (Kamailio's copies of the REGISTERs).
    for log in &logs {
        let regs = log.wait_for(Direction::In, "REGISTER ", 3).await;
        assert_eq!(regs.len(), 3, "{}", router.log());
    }

    // 1. The factory INVITE: balanced to one instance, the creator.
    let req = factory_invite(
        &mut alice,
        &msrp_sdp(&alice_uri, "actpass", ""),
        vec![Entry::new("sip:bob@isc.local")],
        &[],
    );
    let invite = send_invite(&mut alice, req).await;
    let inv = recv_request(&bob, rsip::Method::Invite).await;
    answer(
        &bob,
        &inv,
        200,
        "bobtag",
        Some(&msrp_sdp(&bob_uri, "passive", "")),
    )
    .await;
    let mut bob_msrp = MsrpConn::accept(&bob_l).await;
    let _bind = bob_msrp.recv_request().await;
    let ok = final_for(&alice, &invite).await;
    assert_eq!(ok.status_code.code(), 200, "{}", router.log());
    let ack = ack_2xx(&mut alice, &invite, &ok);
    alice.send(ack).await;
    let (identity, isfocus) = contact_uri(&ok);
    assert!(isfocus, "the focus's Contact");
    let creator = if identity.starts_with("sip:conf-i1.") {
        0
    } else {
        assert!(identity.starts_with("sip:conf-i2."), "{identity}");
        1
    };
    let other = 1 - creator;
    assert_eq!(received(&logs[creator], "INVITE sip:conf-factory@"), 1);
    assert_eq!(received(&logs[other], "INVITE sip:conf-factory@"), 0);

    // 2. carol's requests are balanced: she pages offline ted until one
    // MESSAGE has been stored via each instance (round robin: two or three).
    let mut stored_via: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for i in 0..8 {
        if stored_via.iter().all(|v| !v.is_empty()) {
            break;
        }
        let mid = format!("carol-t-{i}");
        let msg = carol.request(
            "MESSAGE",
            "sip:ted@isc.local",
            "sip:ted@isc.local",
            &[
                format!("Message-ID: {mid}"),
                "Content-Type: text/plain".into(),
            ],
            &format!("for ted {i}"),
        );
        let r = carol.send_authenticated(msg).await;
        assert_eq!(r.status_code.code(), 202, "stored for ted");
        let at = landed(&logs, &mid).await;
        stored_via[at].push(mid);
    }
    assert!(
        stored_via.iter().all(|v| !v.is_empty()),
        "balanced over both: {stored_via:?}"
    );
    let total = stored_via[0].len() + stored_via[1].len();
    assert_eq!(
        pg.query_i64(DB, "SELECT COUNT(*) FROM deferred").unwrap(),
        total as i64,
        "one shared queue"
    );

    // 3. carol joins through Kamailio: back to the creator.
    let req = join_invite(
        &mut carol,
        &identity,
        &msrp_sdp(&carol_uri, "active", ""),
        &[],
    );
    let join = send_auth(&mut carol, req).await;
    let ok = final_for(&carol, &join).await;
    assert_eq!(ok.status_code.code(), 200, "carol joins");
    assert_eq!(contact_uri(&ok), (identity.clone(), true));
    let ack = ack_2xx(&mut carol, &join, &ok);
    carol.send(ack).await;
    let user = identity.trim_start_matches("sip:");
    let user = user.split('@').next().unwrap();
    assert_eq!(received(&logs[creator], &format!("INVITE sip:{user}@")), 1);
    assert_eq!(
        received(&logs[other], "INVITE sip:conf-"),
        0,
        "the other instance never sees the conference"
    );
    // Her MSRP binds at the creator, where the conference lives.
    let focus_path = cpm_common::sdp_path(&ok.body);
    let mut c = MsrpConn::connect(handles[creator].msrp_addr()).await;
    c.send(&bind_send(&focus_path, &carol_uri)).await;
    let r = c.recv().await;
    assert_eq!(r.code(), Some(200), "bound at the creator");
    drop(carol_l);

    // 4. ted retrieves everything from `Deferred@`: whichever instance
    // serves it streams the messages stored via the other one too.
    let mut ted = Peer::new(core, "ted", "ted").await;
    let tl = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let turi = MsrpUri::new("127.0.0.1", tl.local_addr().unwrap().port(), "teds");
    let sdp = format!(
        "v=0\r\no=ted 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {} TCP/MSRP *\r\na=accept-types:message/sip message/cpim multipart/mixed\r\na=accept-wrapped-types:*\r\na=path:{turi}\r\na=setup:actpass\r\na=recvonly\r\n",
        turi.port.unwrap()
    );
    let contact = format!("Contact: <sip:ted@{};transport=udp>", ted.addr());
    let req = ted.request(
        "INVITE",
        "sip:Deferred@isc.local",
        "sip:Deferred@isc.local",
        &[contact, "Content-Type: application/sdp".into()],
        &sdp,
    );
    let sent = send_invite(&mut ted, req).await;
    let ok = final_for(&ted, &sent).await;
    assert_eq!(ok.status_code.code(), 200, "{}", router.log());
    let ack = ack_2xx(&mut ted, &sent, &ok);
    ted.send(ack).await;
    let server = landed_invite(&logs, "INVITE sip:Deferred@").await;
    let mut conn = MsrpConn::accept(&tl).await;
    let mut got = Vec::new();
    while let Some(m) = conn.recv_within(3.0).await {
        if m.is_request() {
            conn.send(&m.ok_response().unwrap()).await;
            if let Some(b) = m.body.as_deref().filter(|b| !b.is_empty()) {
                let text = String::from_utf8_lossy(b).into_owned();
                assert!(
                    text.starts_with("MESSAGE sip:ted@isc.local SIP/2.0\r\n"),
                    "{text}"
                );
                let mid = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Message-ID: "))
                    .unwrap()
                    .to_string();
                let n = mid.trim_start_matches("carol-t-");
                assert!(text.ends_with(&format!("for ted {n}")), "{text}");
                got.push(mid);
            }
        }
    }
    let mut all: Vec<String> = stored_via.concat();
    all.sort();
    got.sort();
    assert_eq!(got, all, "every message, once");
    assert!(
        stored_via[1 - server].iter().all(|m| got.contains(m)),
        "instance {} delivered what instance {} stored",
        server + 1,
        2 - server
    );
    assert_eq!(
        pg.query_i64(DB, "SELECT COUNT(*) FROM deferred").unwrap(),
        0,
        "retrieved messages leave the shared store"
    );

    // 5. A message for offline dan, pushed once when he registers.
    let msg = carol.request(
        "MESSAGE",
        "sip:dan@isc.local",
        "sip:dan@isc.local",
        &[
            "Message-ID: carol-d-1".to_string(),
            "Content-Type: text/plain".into(),
        ],
        "for dan",
    );
    assert_eq!(carol.send_authenticated(msg).await.status_code.code(), 202);
    let (dan, dan_l, dan_uri) = device(core, "dan").await;
    let inv = recv_request(&dan, rsip::Method::Invite).await;
    answer(
        &dan,
        &inv,
        200,
        "danpush",
        Some(&msrp_sdp(&dan_uri, "passive", "")),
    )
    .await;
    let mut push = MsrpConn::accept(&dan_l).await;
    let send = push.recv().await;
    let body = String::from_utf8_lossy(send.body.as_deref().unwrap()).into_owned();
    assert!(body.contains("Message-ID: carol-d-1\r\n"), "{body}");
    assert!(body.ends_with("for dan"), "{body}");
    push.send(&send.ok_response().unwrap()).await;
    // Nothing but the ACK and the BYE of this one push reaches dan.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        match dan.recv_within(0.2).await {
            Some(rsip::SipMessage::Request(r)) if r.method == rsip::Method::Invite => {
                panic!("a second push INVITE:\n{r}")
            }
            Some(rsip::SipMessage::Request(r)) if r.method == rsip::Method::Bye => {
                dan.answer(&r, 200).await;
            }
            _ => {}
        }
    }
    let pushers: Vec<usize> = (0..2)
        .filter(|i| {
            logs[*i]
                .texts(Direction::Out)
                .iter()
                .any(|(_, t)| t.starts_with("INVITE sip:dan@"))
        })
        .collect();
    assert_eq!(pushers.len(), 1, "one instance pushes: {pushers:?}");
    assert_eq!(
        pg.query_i64(DB, "SELECT COUNT(*) FROM deferred").unwrap(),
        0
    );

    drop(router);
    one.shutdown().await;
    two.shutdown().await;
}
