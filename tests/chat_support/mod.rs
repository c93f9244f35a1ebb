//! Two (or more) chat endpoints wired together with no sockets: SIP goes
//! through each side's real TransactionLayer (printed and re-parsed on the
//! way), MSRP bytes through a fake connection table, time is virtual.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use isc::client::ComposingConfig;
use isc::client::chat::{ChatCtx, ChatEvent, ChatId, ChatLocal, MsrpConn, MsrpOut};
use isc::client::chats::{ChatCommand, Chats};
use isc::proto::ids::{IdGen, SeqIds};
use isc::proto::sip::digest::DigestClient;
use isc::proto::sip::message::{parse_message, to_bytes};
use isc::proto::sip::session_timer::SessionTimerConfig;
use isc::proto::sip::transaction::{LayerEvent, TransactionLayer, Transmit, Transport};

pub struct Peer {
    pub name: String,
    pub layer: TransactionLayer,
    pub chats: Chats,
    pub ids: SeqIds,
    pub digest: DigestClient,
    pub sip: SocketAddr,
    pub msrp: SocketAddr,
    /// Where our requests go (the other peer, acting as the proxy).
    pub server: SocketAddr,
    pub events: Vec<ChatEvent>,
    /// Requests the chats did not take (left for the UA).
    pub leftovers: Vec<LayerEvent>,
}

pub fn local(
    user: &str,
    sip: SocketAddr,
    msrp: SocketAddr,
    timer: SessionTimerConfig,
) -> ChatLocal {
    ChatLocal {
        aor: format!("sip:{user}@isc.local"),
        display_name: None,
        contact_uri: format!("sip:{user}@{sip};transport=udp"),
        instance_id: Some(format!(
            "urn:uuid:00000000-0000-0000-0000-00000000000{}",
            user.len()
        )),
        sip_local: sip,
        transport: Transport::Udp,
        msrp_local: msrp,
        timer,
        composing: ComposingConfig::default(),
        msrp_chunk_size: 2048,
        msrp_tls: false,
    }
}

impl Peer {
    pub fn new(user: &str, port: u16, server: SocketAddr, timer: SessionTimerConfig) -> Self {
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let msrp: SocketAddr = format!("127.0.0.1:{}", port + 1000).parse().unwrap();
        Peer {
            name: user.into(),
            layer: TransactionLayer::new(),
            chats: Chats::new(
                local(user, sip, msrp, timer),
                Box::new(|| "2026-11-23T15:00:00Z".to_string()),
            ),
            ids: SeqIds::new(user),
            digest: DigestClient::new(user, "secret"),
            sip,
            msrp,
            server,
            events: Vec::new(),
            leftovers: Vec::new(),
        }
    }

    pub fn command(&mut self, now: Instant, cmd: ChatCommand) -> Option<ChatId> {
        let mut ctx = ChatCtx {
            ids: &mut self.ids,
            digest: &mut self.digest,
        };
        let r = self.chats.command(&mut ctx, now, cmd);
        self.pump(now);
        r
    }

    /// Drains the layer into the chats, the chats into the layer.
    pub fn pump(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(ev) = self.layer.poll_event() {
                any = true;
                let mut ctx = ChatCtx {
                    ids: &mut self.ids,
                    digest: &mut self.digest,
                };
                if let Some(rest) = self.chats.handle_layer_event(&mut ctx, now, ev) {
                    self.leftovers.push(rest);
                }
            }
            self.chats
                .flush_sip(&mut self.layer, now, self.server, Transport::Udp);
            while let Some(e) = self.chats.poll_event() {
                any = true;
                self.events.push(e);
            }
            if !any {
                break;
            }
        }
    }

    pub fn input(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let msg = parse_message(bytes).expect("peer sent parsable SIP");
        let _ = self.layer.handle_message(now, msg, from, Transport::Udp);
        self.pump(now);
    }

    pub fn timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        let mut ctx = ChatCtx {
            ids: &mut self.ids,
            digest: &mut self.digest,
        };
        self.chats.handle_timeout(&mut ctx, now);
        self.pump(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.layer.poll_timeout(), self.chats.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn take_events(&mut self) -> Vec<ChatEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn invited(&self) -> Option<ChatId> {
        self.events.iter().rev().find_map(|e| match e {
            ChatEvent::Invited { chat, .. } => Some(*chat),
            _ => None,
        })
    }

    pub fn messages(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Message { from, text, .. } => Some((from.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn ended(&self) -> Option<&isc::client::chat::EndReason> {
        self.events.iter().rev().find_map(|e| match e {
            ChatEvent::Ended { reason, .. } => Some(reason),
            _ => None,
        })
    }
}

/// The wiring between peers: SIP by address, MSRP by connection pairs.
pub struct Net {
    pub peers: Vec<Peer>,
    pub now: Instant,
    /// conn -> (peer index owning it, the other end's conn)
    conns: HashMap<MsrpConn, (usize, MsrpConn)>,
    next_conn: MsrpConn,
    /// Drop everything a peer sends (a peer gone silent).
    pub mute: Vec<bool>,
    /// SIP messages seen on the wire, as text, in order.
    pub trace: Vec<String>,
}

impl Net {
    pub fn new(peers: Vec<Peer>) -> Self {
        let n = peers.len();
        Net {
            peers,
            now: Instant::now(),
            conns: HashMap::new(),
            next_conn: 1,
            mute: vec![false; n],
            trace: Vec::new(),
        }
    }

    fn index_of_sip(&self, addr: SocketAddr) -> Option<usize> {
        self.peers.iter().position(|p| p.sip == addr)
    }

    /// Moves everything until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("network never settled");
    }

    fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        for i in 0..self.peers.len() {
            let mut sips: Vec<Transmit> = Vec::new();
            while let Some(t) = self.peers[i].layer.poll_transmit() {
                sips.push(t);
            }
            let mut msrps = Vec::new();
            while let Some(o) = self.peers[i].chats.poll_msrp() {
                msrps.push(o);
            }
            let from = self.peers[i].sip;
            for t in sips {
                moved = true;
                if self.mute[i] {
                    continue;
                }
                let bytes = to_bytes(&t.message);
                self.trace
                    .push(String::from_utf8_lossy(&bytes).into_owned());
                if let Some(j) = self.index_of_sip(t.to) {
                    self.peers[j].input(now, from, &bytes);
                }
            }
            for o in msrps {
                moved = true;
                match o {
                    MsrpOut::Connect { chat, peer, .. } => {
                        let Some(j) = self.peers.iter().position(|p| p.msrp == peer) else {
                            let p = &mut self.peers[i];
                            let mut ctx = ChatCtx {
                                ids: &mut p.ids,
                                digest: &mut p.digest,
                            };
                            p.chats.msrp_connect_failed(&mut ctx, now, chat, "refused");
                            continue;
                        };
                        let (a, b) = (self.next_conn, self.next_conn + 1);
                        self.next_conn += 2;
                        self.conns.insert(a, (i, b));
                        self.conns.insert(b, (j, a));
                        self.peers[j].chats.msrp_accepted(b);
                        self.peers[i].chats.msrp_connected(now, chat, a);
                    }
                    MsrpOut::Send { conn, bytes } => {
                        if self.mute[i] {
                            continue;
                        }
                        if let Some(&(_, other)) = self.conns.get(&conn)
                            && let Some(&(j, _)) = self.conns.get(&other)
                        {
                            self.peers[j].chats.msrp_data(now, other, &bytes);
                        }
                    }
                    MsrpOut::Close { conn } => {
                        if let Some((_, other)) = self.conns.remove(&conn)
                            && let Some((j, _)) = self.conns.remove(&other)
                        {
                            self.peers[j].chats.msrp_closed(now, other);
                        }
                    }
                }
            }
            self.peers[i].pump(now);
        }
        moved
    }

    /// Jumps the virtual clock from wake-up to wake-up until `until`.
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            self.run();
            let next = self.peers.iter().filter_map(|p| p.poll_timeout()).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for p in &mut self.peers {
                        if p.poll_timeout().is_some_and(|t| t <= now) {
                            p.timeout(now);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = until;
        self.run();
    }
}

pub fn ids_in_use(ids: &mut dyn IdGen) -> String {
    ids.token()
}
