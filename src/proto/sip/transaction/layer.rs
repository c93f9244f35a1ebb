//! The transaction layer: owns every transaction, routes incoming messages to
//! them (RFC 3261 §17.1.3, §17.2.3) and reports what matches none to the core.

use super::{
    ClientInviteTransaction, ClientNonInviteTransaction, ServerInviteState,
    ServerInviteTransaction, ServerNonInviteTransaction, TransactionError, Transmit, Transport,
    TsxEvent, TsxKey, timers::earliest,
};
use rsip::{Method, Request, Response, SipMessage};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

/// What the transaction layer tells the core (the TU).
#[derive(Debug, Clone, PartialEq)]
pub enum LayerEvent {
    /// A request that matched no transaction. A server transaction `key` was
    /// created for it; answer through [`TransactionLayer::send_response`].
    NewRequest {
        key: TsxKey,
        request: Request,
        source: SocketAddr,
        transport: Transport,
    },
    /// A CANCEL (RFC 3261 §9.2). A server transaction `key` was created for
    /// it. `invite` names the INVITE server transaction it refers to, if any:
    /// answer 481 when `None`, else 200 to the CANCEL and, when
    /// `invite_pending` (no final response yet), 487 to the INVITE.
    Cancel {
        key: TsxKey,
        request: Request,
        source: SocketAddr,
        transport: Transport,
        invite: Option<TsxKey>,
        invite_pending: bool,
    },
    /// An ACK that matched no transaction (the ACK for a 2xx, RFC 3261
    /// §17.2.3) or that reached an INVITE server transaction in Accepted.
    Ack {
        request: Request,
        source: SocketAddr,
        transport: Transport,
    },
    /// A response from client transaction `key`; every 2xx of a forked
    /// INVITE comes this way while the transaction is Accepted (RFC 6026).
    Response { key: TsxKey, response: Response },
    /// A response that matched no client transaction, e.g. a 2xx
    /// retransmission after Timer M: the UAC core re-sends its ACK.
    StrayResponse {
        response: Response,
        source: SocketAddr,
    },
    /// Timer B, F or H fired for `key`.
    Timeout { key: TsxKey },
    /// The transport failed for `key`.
    TransportError { key: TsxKey },
    /// Transaction `key` terminated and was dropped.
    Terminated { key: TsxKey },
}

#[derive(Debug)]
enum ClientTsx {
    Invite(Box<ClientInviteTransaction>),
    NonInvite(Box<ClientNonInviteTransaction>),
}

#[derive(Debug)]
enum ServerTsx {
    Invite(ServerInviteTransaction),
    NonInvite(ServerNonInviteTransaction),
}

/// The calls the layer makes on every machine alike.
trait Machine {
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_event(&mut self) -> Option<TsxEvent>;
    fn handle_timeout(&mut self, now: Instant);
    fn handle_transport_error(&mut self, now: Instant);
}

macro_rules! machine {
    ($t:ty) => {
        impl Machine for $t {
            fn poll_transmit(&mut self) -> Option<Transmit> {
                <$t>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<TsxEvent> {
                <$t>::poll_event(self)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$t>::handle_timeout(self, now)
            }
            fn handle_transport_error(&mut self, now: Instant) {
                <$t>::handle_transport_error(self, now)
            }
        }
    };
}
machine!(ClientInviteTransaction);
machine!(ClientNonInviteTransaction);
machine!(ServerInviteTransaction);
machine!(ServerNonInviteTransaction);

impl ClientTsx {
    fn machine(&mut self) -> &mut dyn Machine {
        match self {
            ClientTsx::Invite(t) => t.as_mut(),
            ClientTsx::NonInvite(t) => t.as_mut(),
        }
    }
    fn timeout(&self) -> Option<Instant> {
        match self {
            ClientTsx::Invite(t) => t.poll_timeout(),
            ClientTsx::NonInvite(t) => t.poll_timeout(),
        }
    }
}

impl ServerTsx {
    fn machine(&mut self) -> &mut dyn Machine {
        match self {
            ServerTsx::Invite(t) => t,
            ServerTsx::NonInvite(t) => t,
        }
    }
    fn timeout(&self) -> Option<Instant> {
        match self {
            ServerTsx::Invite(t) => t.poll_timeout(),
            ServerTsx::NonInvite(t) => t.poll_timeout(),
        }
    }
    fn source(&self) -> (SocketAddr, Transport) {
        match self {
            ServerTsx::Invite(t) => t.source(),
            ServerTsx::NonInvite(t) => t.source(),
        }
    }
}

/// The next timeout of each transaction of one side, ordered by time, so
/// the layer finds what is due without visiting every transaction.
#[derive(Debug, Default)]
struct Deadlines {
    by_time: BTreeMap<(Instant, u64), TsxKey>,
    by_key: HashMap<TsxKey, (Instant, u64)>,
    seq: u64,
}

impl Deadlines {
    /// Record `key`'s next timeout (`None` drops it).
    fn set(&mut self, key: &TsxKey, at: Option<Instant>) {
        if let Some(&(old, _)) = self.by_key.get(key)
            && Some(old) == at
        {
            return;
        }
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&old);
        }
        if let Some(at) = at {
            self.seq += 1;
            self.by_time.insert((at, self.seq), key.clone());
            self.by_key.insert(key.clone(), (at, self.seq));
        }
    }

    /// The keys due at `now`, earliest first.
    fn due(&self, now: Instant) -> Vec<TsxKey> {
        self.by_time
            .iter()
            .take_while(|((at, _), _)| *at <= now)
            .map(|(_, k)| k.clone())
            .collect()
    }

    fn first(&self) -> Option<Instant> {
        self.by_time.keys().next().map(|(at, _)| *at)
    }
}

/// Every transaction of one SIP endpoint, keyed by [`TsxKey`].
#[derive(Debug, Default)]
pub struct TransactionLayer {
    clients: HashMap<TsxKey, ClientTsx>,
    servers: HashMap<TsxKey, ServerTsx>,
    client_due: Deadlines,
    server_due: Deadlines,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LayerEvent>,
}

impl TransactionLayer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message from the transport layer, already parsed.
    pub fn handle_message(
        &mut self,
        now: Instant,
        message: SipMessage,
        source: SocketAddr,
        transport: Transport,
    ) -> Result<(), TransactionError> {
        match message {
            SipMessage::Request(r) => self.handle_request(now, r, source, transport),
            SipMessage::Response(r) => self.handle_response(now, r, source),
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        request: Request,
        source: SocketAddr,
        transport: Transport,
    ) -> Result<(), TransactionError> {
        let key = TsxKey::server(&request)?;
        // RFC 3261 §17.2.3: a retransmission or an ACK for a non-2xx.
        if let Some(tsx) = self.servers.get_mut(&key) {
            match tsx {
                ServerTsx::Invite(t) => t.handle_request(now, request),
                ServerTsx::NonInvite(t) => t.handle_request(now, request),
            }
            self.pump_server(&key);
            return Ok(());
        }
        match request.method {
            // An ACK matching no transaction acknowledges a 2xx: the core's.
            Method::Ack => self.events.push_back(LayerEvent::Ack {
                request,
                source,
                transport,
            }),
            Method::Invite => {
                let tsx = ServerInviteTransaction::new(now, request.clone(), source, transport)?;
                self.servers.insert(key.clone(), ServerTsx::Invite(tsx));
                self.index_server(&key);
                self.events.push_back(LayerEvent::NewRequest {
                    key,
                    request,
                    source,
                    transport,
                });
            }
            Method::Cancel => {
                let tsx = ServerNonInviteTransaction::new(now, request.clone(), source, transport)?;
                self.servers.insert(key.clone(), ServerTsx::NonInvite(tsx));
                self.index_server(&key);
                // RFC 3261 §9.2: the INVITE with the same branch and sent-by.
                let invite_key = key.with_method(Method::Invite);
                let (invite, invite_pending) = match self.servers.get(&invite_key) {
                    Some(ServerTsx::Invite(t)) => {
                        (Some(invite_key), t.state() == ServerInviteState::Proceeding)
                    }
                    _ => (None, false),
                };
                self.events.push_back(LayerEvent::Cancel {
                    key,
                    request,
                    source,
                    transport,
                    invite,
                    invite_pending,
                });
            }
            _ => {
                let tsx = ServerNonInviteTransaction::new(now, request.clone(), source, transport)?;
                self.servers.insert(key.clone(), ServerTsx::NonInvite(tsx));
                self.index_server(&key);
                self.events.push_back(LayerEvent::NewRequest {
                    key,
                    request,
                    source,
                    transport,
                });
            }
        }
        Ok(())
    }

    fn handle_response(
        &mut self,
        now: Instant,
        response: Response,
        source: SocketAddr,
    ) -> Result<(), TransactionError> {
        let key = TsxKey::for_response(&response)?;
        match self.clients.get_mut(&key) {
            Some(ClientTsx::Invite(t)) => t.handle_response(now, response),
            Some(ClientTsx::NonInvite(t)) => t.handle_response(now, response),
            // RFC 3261 §18.1.2: no match -> to the core (a late 2xx).
            None => {
                self.events
                    .push_back(LayerEvent::StrayResponse { response, source });
                return Ok(());
            }
        }
        self.pump_client(&key);
        Ok(())
    }

    /// Start a client transaction for `request` (not ACK: an ACK for a 2xx
    /// is sent with [`Self::send_stateless`]). Returns its key.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        to: SocketAddr,
        transport: Transport,
    ) -> Result<TsxKey, TransactionError> {
        let key = TsxKey::client(&request)?;
        if self.clients.contains_key(&key) {
            return Err(TransactionError::DuplicateKey);
        }
        let tsx = match request.method {
            Method::Invite => ClientTsx::Invite(Box::new(ClientInviteTransaction::new(
                now, request, to, transport,
            )?)),
            _ => ClientTsx::NonInvite(Box::new(ClientNonInviteTransaction::new(
                now, request, to, transport,
            )?)),
        };
        self.clients.insert(key.clone(), tsx);
        self.pump_client(&key);
        Ok(key)
    }

    /// The CANCEL for client INVITE transaction `invite` (RFC 3261 §9.1),
    /// started as its own non-INVITE client transaction.
    pub fn cancel(&mut self, now: Instant, invite: &TsxKey) -> Result<TsxKey, TransactionError> {
        let Some(ClientTsx::Invite(t)) = self.clients.get(invite) else {
            return Err(TransactionError::NoSuchTransaction);
        };
        let cancel = t.cancel_request();
        let (to, transport) = (t.destination(), t.transport());
        self.send_request(now, cancel, to, transport)
    }

    /// Send a response through server transaction `key`.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TsxKey,
        response: Response,
    ) -> Result<(), TransactionError> {
        match self.servers.get_mut(key) {
            Some(ServerTsx::Invite(t)) => t.send_response(now, response)?,
            Some(ServerTsx::NonInvite(t)) => t.send_response(now, response)?,
            None => return Err(TransactionError::NoSuchTransaction),
        }
        self.pump_server(key);
        Ok(())
    }

    /// Put a message on the wire outside any transaction: the ACK for a 2xx
    /// (RFC 3261 §13.2.2.4) and 2xx retransmissions (§13.3.1.4).
    pub fn send_stateless(&mut self, transmit: Transmit) {
        self.transmits.push_back(transmit);
    }

    /// The transport failed to send for transaction `key`.
    pub fn handle_transport_error(&mut self, now: Instant, key: &TsxKey) {
        if let Some(t) = self.clients.get_mut(key) {
            t.machine().handle_transport_error(now);
            self.pump_client(key);
        } else if let Some(t) = self.servers.get_mut(key) {
            t.machine().handle_transport_error(now);
            self.pump_server(key);
        }
    }

    /// Fire every transaction timer due at `now`; only the due
    /// transactions are visited.
    pub fn handle_timeout(&mut self, now: Instant) {
        for key in self.client_due.due(now) {
            if let Some(t) = self.clients.get_mut(&key) {
                t.machine().handle_timeout(now);
            }
            self.pump_client(&key);
        }
        for key in self.server_due.due(now) {
            if let Some(t) = self.servers.get_mut(&key) {
                t.machine().handle_timeout(now);
            }
            self.pump_server(&key);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LayerEvent> {
        self.events.pop_front()
    }

    /// The soonest timeout of all transactions.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([self.client_due.first(), self.server_due.first()])
    }

    /// The state of INVITE server transaction `key`, if it exists.
    pub fn server_invite_state(&self, key: &TsxKey) -> Option<ServerInviteState> {
        match self.servers.get(key) {
            Some(ServerTsx::Invite(t)) => Some(t.state()),
            _ => None,
        }
    }

    /// The request that created server transaction `key`.
    pub fn server_request(&self, key: &TsxKey) -> Option<&Request> {
        match self.servers.get(key) {
            Some(ServerTsx::Invite(t)) => Some(t.request()),
            Some(ServerTsx::NonInvite(t)) => Some(t.request()),
            None => None,
        }
    }

    /// Whether a client transaction `key` is alive.
    pub fn has_client(&self, key: &TsxKey) -> bool {
        self.clients.contains_key(key)
    }

    /// Whether a server transaction `key` is alive.
    pub fn has_server(&self, key: &TsxKey) -> bool {
        self.servers.contains_key(key)
    }

    /// How many transactions are alive (clients, servers).
    pub fn len(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    fn pump_client(&mut self, key: &TsxKey) {
        let Some(tsx) = self.clients.get_mut(key) else {
            self.client_due.set(key, None);
            return;
        };
        let m = tsx.machine();
        while let Some(t) = m.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut terminated = false;
        while let Some(e) = m.poll_event() {
            let event = match e {
                TsxEvent::Response(response) => LayerEvent::Response {
                    key: key.clone(),
                    response,
                },
                TsxEvent::Request(_) => continue,
                TsxEvent::Timeout => LayerEvent::Timeout { key: key.clone() },
                TsxEvent::TransportError => LayerEvent::TransportError { key: key.clone() },
                TsxEvent::Terminated => {
                    terminated = true;
                    LayerEvent::Terminated { key: key.clone() }
                }
            };
            self.events.push_back(event);
        }
        if terminated {
            self.clients.remove(key);
        }
        self.index_client(key);
    }

    /// Bring client `key`'s entry in the deadline index up to date.
    fn index_client(&mut self, key: &TsxKey) {
        let at = self.clients.get(key).and_then(ClientTsx::timeout);
        self.client_due.set(key, at);
    }

    /// Bring server `key`'s entry in the deadline index up to date.
    fn index_server(&mut self, key: &TsxKey) {
        let at = self.servers.get(key).and_then(ServerTsx::timeout);
        self.server_due.set(key, at);
    }

    fn pump_server(&mut self, key: &TsxKey) {
        let Some(tsx) = self.servers.get_mut(key) else {
            self.server_due.set(key, None);
            return;
        };
        let (source, transport) = tsx.source();
        let m = tsx.machine();
        while let Some(t) = m.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut terminated = false;
        while let Some(e) = m.poll_event() {
            let event = match e {
                TsxEvent::Request(request) => LayerEvent::Ack {
                    request,
                    source,
                    transport,
                },
                TsxEvent::Response(_) => continue,
                TsxEvent::Timeout => LayerEvent::Timeout { key: key.clone() },
                TsxEvent::TransportError => LayerEvent::TransportError { key: key.clone() },
                TsxEvent::Terminated => {
                    terminated = true;
                    LayerEvent::Terminated { key: key.clone() }
                }
            };
            self.events.push_back(event);
        }
        if terminated {
            self.servers.remove(key);
        }
        self.index_server(key);
    }
}
