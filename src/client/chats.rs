//! [`Chats`]: every [`ChatSession`] of one user agent, and the routing
//! around them: SIP by transaction key and dialog, MSRP by connection (an
//! unbound connection is bound by the To-Path of its first request, RFC 4975
//! §7.3 / RFC 6135). Sans-IO like the sessions; [`Chats::flush_sip`] hands
//! what they want sent to the UA's [`TransactionLayer`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rsip::{Method, Request, Response, SipMessage};

use super::chat::{
    ChatCtx, ChatEvent, ChatId, ChatLocal, ChatSession, EndReason, MsrpConn, MsrpOut, SipOut,
    is_chat_invite,
};
use super::ids::UaIds;
use crate::proto::msrp::{MsrpParser, ParserConfig};
use crate::proto::sip::build::{call_id, from_tag, response_with, to_tag};
use crate::proto::sip::transaction::{LayerEvent, TransactionLayer, Transmit, Transport, TsxKey};

/// What the application asks of the chats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    /// Start a chat with a user URI or a GRUU; [`ChatEvent::Calling`] names it.
    Start {
        to: String,
        convergence_id: Option<String>,
    },
    /// Send a text; [`ChatEvent::Sent`] gives its Message-ID.
    Send {
        chat: ChatId,
        text: String,
    },
    /// The user typed.
    Typing {
        chat: ChatId,
    },
    /// The user cleared the input.
    StopTyping {
        chat: ChatId,
    },
    Accept {
        chat: ChatId,
    },
    Decline {
        chat: ChatId,
    },
    Bye {
        chat: ChatId,
    },
    /// An ad-hoc group chat with these users (seed 004 7.1.1.3): INVITE to
    /// the conference factory with their list.
    CreateGroup {
        invitees: Vec<String>,
    },
    /// Join a pre-defined group or a conference by its URI (7.1.1.4).
    JoinGroup {
        uri: String,
    },
    /// Turn a running 1-1 chat into a conference with more users (7.1.1.6,
    /// seed 002 App. M): the peer is listed with `?Replaces=` our leg.
    Extend {
        chat: ChatId,
        add: Vec<String>,
    },
    /// Invite users into a running group session by REFER (7.1.1.7).
    AddToGroup {
        chat: ChatId,
        users: Vec<String>,
    },
    /// Join again the conference this (ended) group chat had (7.1.1.8).
    Rejoin {
        chat: ChatId,
    },
    /// A message to one participant of a group only (7.1.1.9).
    SendPrivate {
        chat: ChatId,
        to: String,
        text: String,
    },
    /// A Large Message in its own session (seed 003 9.1.1.2): to one user,
    /// or to several through the conference factory (their list).
    SendLarge {
        to: Vec<String>,
        message: Box<super::large_message::LargeMessage>,
    },
    /// A file as a Large Message. Reading it is IO: the runner turns this
    /// into [`ChatCommand::SendLarge`] (see [`super::large_message::read_file`]).
    SendFile {
        to: Vec<String>,
        path: std::path::PathBuf,
        disposition: super::large_message::Disposition,
        description: Option<String>,
    },
}

/// A wall clock for CPIM DateTime (RFC 3339), injected so tests replay.
pub type WallClock = Box<dyn FnMut() -> String + Send>;

/// The system clock as `YYYY-MM-DDThh:mm:ssZ`.
pub fn system_clock() -> WallClock {
    Box::new(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        rfc3339(secs)
    })
}

/// Seconds since 1970 as `YYYY-MM-DDThh:mm:ssZ` (civil-from-days).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

struct ConnState {
    parser: MsrpParser,
    chat: Option<ChatId>,
}

/// Every chat of a user agent.
pub struct Chats {
    local: ChatLocal,
    sessions: BTreeMap<ChatId, ChatSession>,
    next_id: ChatId,
    /// Our client transactions: whose, and for which method.
    keys: HashMap<TsxKey, (ChatId, Method)>,
    conns: HashMap<MsrpConn, ConnState>,
    clock: WallClock,
    events: VecDeque<ChatEvent>,
    msrp_out: VecDeque<MsrpOut>,
    /// Our INVITEs to CANCEL at the next flush.
    cancels: Vec<(ChatId, TsxKey)>,
    /// 200s to CANCELs, sent at the next flush.
    pending_responses: VecDeque<(TsxKey, Response)>,
    group: GroupState,
    /// Frames for no chat session (e.g. a history retrieval's), for the UA.
    unclaimed: VecDeque<(MsrpConn, crate::proto::msrp::MsrpFrame)>,
    /// What we take in Large Message mode (seed 003 9.2.2).
    large: super::large_message::LargeSettings,
    /// Pager MESSAGEs too large for the pager, sent in Large Message mode:
    /// chat → (the MESSAGE's id, its recipient).
    pager_large: HashMap<ChatId, (String, String)>,
}

/// How a pager MESSAGE sent in Large Message mode ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagerOutcome {
    Delivered {
        id: String,
        to: String,
    },
    Failed {
        id: String,
        to: String,
        status: Option<u16>,
        reason: String,
        warning: Option<String>,
    },
}

/// The group side of the chats.
#[derive(Debug, Default)]
struct GroupState {
    settings: super::group::GroupSettings,
    /// Conference subscriptions by the group chat they watch.
    watches: BTreeMap<ChatId, super::group::ConferenceWatch>,
    /// Session identities, kept after the chat ends (rejoin).
    identities: HashMap<ChatId, String>,
    /// Group chats that continue a 1-1 chat (extend), by the group chat.
    continues: HashMap<ChatId, ChatId>,
    /// Group chats reported started.
    started: BTreeSet<ChatId>,
    /// SUBSCRIBEs to send at the next flush.
    out: VecDeque<(ChatId, Request)>,
}

impl std::fmt::Debug for Chats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chats")
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl Chats {
    pub fn new(local: ChatLocal, clock: WallClock) -> Self {
        Chats {
            local,
            sessions: BTreeMap::new(),
            next_id: 0,
            keys: HashMap::new(),
            conns: HashMap::new(),
            clock,
            events: VecDeque::new(),
            msrp_out: VecDeque::new(),
            pending_responses: VecDeque::new(),
            cancels: Vec::new(),
            group: GroupState::default(),
            unclaimed: VecDeque::new(),
            large: super::large_message::LargeSettings::default(),
            pager_large: HashMap::new(),
        }
    }

    /// A pager MESSAGE above [`super::large_message::PAGER_LIMIT`] goes in
    /// Large Message mode (seed 003 9.1.1.2), rendered by the receiver;
    /// [`Self::pager_outcome`] tells how it ended under the MESSAGE's `id`.
    pub fn send_pager_as_large(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        id: String,
        to: String,
        text: &str,
    ) -> Option<ChatId> {
        let message = super::large_message::LargeMessage::text(text);
        let chat = self.command(
            ctx,
            now,
            ChatCommand::SendLarge {
                to: vec![to.clone()],
                message: Box::new(message),
            },
        )?;
        self.pager_large.insert(chat, (id, to));
        Some(chat)
    }

    /// The end of a pager MESSAGE sent as a Large Message, if `ev` is it.
    pub fn pager_outcome(&mut self, ev: &ChatEvent) -> Option<PagerOutcome> {
        match ev {
            ChatEvent::LargeSent { chat, .. } => {
                let (id, to) = self.pager_large.get(chat).cloned()?;
                Some(PagerOutcome::Delivered { id, to })
            }
            ChatEvent::Ended { chat, reason } => {
                let (id, to) = self.pager_large.remove(chat)?;
                match reason {
                    EndReason::Error {
                        status,
                        reason,
                        warning,
                    } => Some(PagerOutcome::Failed {
                        id,
                        to,
                        status: *status,
                        reason: reason.clone(),
                        warning: warning.clone(),
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The receiver's Large Message settings (accept-types, size limit).
    pub fn large_settings_mut(&mut self) -> &mut super::large_message::LargeSettings {
        &mut self.large
    }

    /// The group settings (factory, ad-hoc limit, blocklist).
    pub fn group_settings_mut(&mut self) -> &mut super::group::GroupSettings {
        &mut self.group.settings
    }

    /// The session identity a group chat had, if any.
    pub fn session_identity(&self, chat: ChatId) -> Option<&str> {
        self.group.identities.get(&chat).map(String::as_str)
    }

    /// The conference state watched for `chat`.
    pub fn conference(&self, chat: ChatId) -> Option<&super::group::ConferenceWatch> {
        self.group.watches.get(&chat)
    }

    fn group_error(&mut self, chat: Option<ChatId>, reason: String) {
        self.events
            .push_back(ChatEvent::GroupError { chat, reason });
    }

    fn start_group(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        leg: super::group::GroupLeg,
    ) -> ChatId {
        let id = self.new_id();
        self.events.push_back(ChatEvent::Calling {
            chat: id,
            to: leg.request_uri.clone(),
        });
        let s = ChatSession::outgoing_group(ctx, now, id, self.local.clone(), leg);
        self.sessions.insert(id, s);
        id
    }

    /// Seed 003 9.1.1.2 steps 2–3: one recipient is the Request-URI;
    /// several go to the conference factory with their list.
    fn start_large(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        to: Vec<String>,
        message: super::large_message::LargeMessage,
    ) -> Option<ChatId> {
        use super::group::{GroupLeg, recipient_list};
        let (target, group) = match to.as_slice() {
            [] => {
                self.events.push_back(ChatEvent::LargeFailed {
                    chat: None,
                    reason: "no recipient for the large message".into(),
                });
                return None;
            }
            [one] => (one.clone(), None),
            many => {
                if self.too_many(many.len()) {
                    return None;
                }
                let leg = GroupLeg {
                    request_uri: self.factory_uri(),
                    list: Some(recipient_list(None, many)),
                    identity: None,
                };
                (leg.request_uri.clone(), Some(leg))
            }
        };
        let id = self.new_id();
        self.events.push_back(ChatEvent::Calling {
            chat: id,
            to: target.clone(),
        });
        let s =
            ChatSession::outgoing_large(ctx, now, id, self.local.clone(), &target, group, message);
        self.sessions.insert(id, s);
        Some(id)
    }

    fn factory_uri(&self) -> String {
        if !self.group.settings.factory_uri.is_empty() {
            return self.group.settings.factory_uri.clone();
        }
        let domain = self.local.aor.rsplit('@').next().unwrap_or("localhost");
        format!("sip:conf-factory@{domain}")
    }

    /// Seed 004 7.1.1.3: no more than the service allows, when known.
    fn too_many(&mut self, count: usize) -> bool {
        match self.group.settings.max_adhoc_group_size {
            // the list plus ourselves
            Some(max) if count + 1 > max as usize => {
                self.group_error(
                    None,
                    format!(
                        "a group holds at most {max} participants; {} asked",
                        count + 1
                    ),
                );
                true
            }
            _ => false,
        }
    }

    fn group_command(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        cmd: ChatCommand,
    ) -> Option<ChatId> {
        use super::group::{GroupLeg, recipient_list};
        match cmd {
            ChatCommand::CreateGroup { invitees } => {
                if invitees.is_empty() {
                    self.group_error(None, "nobody to invite".into());
                    return None;
                }
                if self.too_many(invitees.len()) {
                    return None;
                }
                let leg = GroupLeg {
                    request_uri: self.factory_uri(),
                    list: Some(recipient_list(None, &invitees)),
                    identity: None,
                };
                Some(self.start_group(ctx, now, leg))
            }
            ChatCommand::JoinGroup { uri } => {
                let leg = GroupLeg {
                    request_uri: uri,
                    list: None,
                    identity: None,
                };
                Some(self.start_group(ctx, now, leg))
            }
            ChatCommand::Rejoin { chat } => {
                let Some(identity) = self.group.identities.get(&chat).cloned() else {
                    self.group_error(
                        Some(chat),
                        "no session identity stored for this chat".into(),
                    );
                    return None;
                };
                let leg = GroupLeg {
                    request_uri: identity,
                    list: None,
                    identity: None,
                };
                let id = self.start_group(ctx, now, leg);
                self.group.continues.insert(id, chat);
                Some(id)
            }
            ChatCommand::Extend { chat, add } => {
                let Some(s) = self.sessions.get(&chat) else {
                    self.group_error(Some(chat), "no such chat".into());
                    return None;
                };
                let (Some(remote), true) = (s.remote_tag(), s.is_established()) else {
                    self.group_error(Some(chat), "the chat is not established".into());
                    return None;
                };
                if s.group().is_some() {
                    self.group_error(Some(chat), "already a group chat: add users instead".into());
                    return None;
                }
                // seed 002 App. M: our own leg's dialog; the focus translates it
                let replaces = crate::proto::bodies::resource_lists::Replaces::new(
                    s.call_id(),
                    remote,
                    s.local_tag(),
                );
                let peer = s.peer().to_owned();
                if self.too_many(add.len() + 1) {
                    return None;
                }
                let leg = GroupLeg {
                    request_uri: self.factory_uri(),
                    list: Some(recipient_list(Some((&peer, &replaces)), &add)),
                    identity: None,
                };
                let id = self.start_group(ctx, now, leg);
                self.group.continues.insert(id, chat);
                Some(id)
            }
            ChatCommand::AddToGroup { chat, users } => {
                let ok = self
                    .sessions
                    .get_mut(&chat)
                    .filter(|s| s.session_identity().is_some())
                    .is_some_and(|s| s.refer(ctx, &users));
                if !ok {
                    self.group_error(Some(chat), "not a running group chat".into());
                }
                None
            }
            ChatCommand::SendPrivate { chat, to, text } => {
                let at = (self.clock)();
                if let Some(s) = self.sessions.get_mut(&chat) {
                    match s.send_private(now, &to, &text, &at) {
                        Some(message_id) => self.events.push_back(ChatEvent::Sent {
                            chat,
                            message_id,
                            text,
                        }),
                        None => self.events.push_back(ChatEvent::SendFailed {
                            chat,
                            message_id: String::new(),
                            code: 481,
                        }),
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// After the sessions spoke: a group chat that came up gets its
    /// GroupStarted and a conference subscription (seed 004 7.1.1.11).
    fn group_collect(&mut self, ctx: &mut ChatCtx<'_>) {
        let up: Vec<(ChatId, String)> = self
            .sessions
            .values()
            .filter(|s| {
                s.is_established() && !s.is_large() && !self.group.started.contains(&s.id())
            })
            .filter_map(|s| Some((s.id(), s.session_identity()?.to_owned())))
            .collect();
        for (chat, identity) in up {
            self.group.started.insert(chat);
            self.group.identities.insert(chat, identity.clone());
            let continues = self.group.continues.get(&chat).copied().or_else(|| {
                // invited with Replaces (RFC 3891): the chat it replaces
                let r = self.sessions.get(&chat)?.replaces()?;
                self.sessions
                    .values()
                    .find(|o| {
                        o.id() != chat && o.call_id() == r.call_id && o.local_tag() == r.to_tag
                    })
                    .map(|o| o.id())
            });
            self.events.push_back(ChatEvent::GroupStarted {
                chat,
                identity: identity.clone(),
                continues,
            });
            let mut w = super::group::ConferenceWatch::new(chat, &identity, ctx.ids);
            if let Some(mut req) =
                w.subscribe(&self.local, ctx.ids, super::group::CONFERENCE_EXPIRES)
            {
                ctx.digest.authorize(&mut req, &ctx.ids.cnonce());
                self.group.out.push_back((chat, req));
            }
            self.group.watches.insert(chat, w);
        }
        // an ended group chat ends its subscription
        let ended: Vec<ChatId> = self
            .group
            .watches
            .iter()
            .filter(|(c, w)| !w.ended && self.sessions.get(c).is_none_or(|s| s.is_terminated()))
            .map(|(c, _)| *c)
            .collect();
        for chat in ended {
            if let Some(w) = self.group.watches.get_mut(&chat) {
                w.ended = true;
                if let Some(mut req) = w.subscribe(&self.local, ctx.ids, 0) {
                    ctx.digest.authorize(&mut req, &ctx.ids.cnonce());
                    self.group.out.push_back((chat, req));
                }
            }
        }
    }

    /// A NOTIFY of a conference subscription of ours: 200 and the roster.
    fn group_notify(&mut self, now: Instant, key: &TsxKey, req: &Request) -> bool {
        let Some(chat) = self
            .group
            .watches
            .iter()
            .find(|(_, w)| w.matches(req))
            .map(|(c, _)| *c)
        else {
            return false;
        };
        let own = self.local.aor.clone();
        let blocklist = self.group.settings.blocklist.clone();
        let mut roster = None;
        let mut identity = String::new();
        if let Some(w) = self.group.watches.get_mut(&chat) {
            roster = w.handle_notify(now, req, &own, &blocklist);
            identity = w.identity.clone();
        }
        let resp = response_with(req, 200, None, None, vec![]);
        self.pending_responses.push_back((key.clone(), resp));
        if let Some(entries) = roster {
            self.events.push_back(ChatEvent::Roster {
                chat,
                identity,
                entries,
            });
        }
        true
    }

    /// A response to one of our SUBSCRIBEs; retried once with credentials.
    fn group_subscribe_response(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        chat: ChatId,
        resp: Response,
    ) {
        let code = resp.status_code.code();
        let Some(w) = self.group.watches.get_mut(&chat) else {
            return;
        };
        if matches!(code, 401 | 407) && w.auth_tries < 2 {
            w.auth_tries += 1;
            if super::chat::answer_challenge(ctx.digest, &resp, w.auth_tries - 1) {
                let expires = if w.ended {
                    0
                } else {
                    super::group::CONFERENCE_EXPIRES
                };
                if let Some(mut req) = w.subscribe(&self.local, ctx.ids, expires) {
                    ctx.digest.authorize(&mut req, &ctx.ids.cnonce());
                    self.group.out.push_back((chat, req));
                }
            }
            return;
        }
        w.handle_response(now, &resp);
    }

    /// Replaces the CPIM DateTime clock.
    pub fn set_clock(&mut self, clock: WallClock) {
        self.clock = clock;
    }

    pub fn local(&self) -> &ChatLocal {
        &self.local
    }

    /// Where the MSRP listener is, once bound (the runner sets it).
    pub fn set_msrp_local(&mut self, addr: SocketAddr) {
        self.local.msrp_local = addr;
    }

    pub fn local_mut(&mut self) -> &mut ChatLocal {
        &mut self.local
    }

    pub fn session(&self, chat: ChatId) -> Option<&ChatSession> {
        self.sessions.get(&chat)
    }

    /// Chats not yet over.
    pub fn live(&self) -> impl Iterator<Item = &ChatSession> {
        self.sessions.values().filter(|s| !s.is_terminated())
    }

    fn new_id(&mut self) -> ChatId {
        self.next_id += 1;
        self.next_id
    }

    // ---- commands ------------------------------------------------------

    /// Runs a command; `Start` returns the new chat's id.
    pub fn command(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        cmd: ChatCommand,
    ) -> Option<ChatId> {
        let mut created = None;
        match cmd {
            cmd @ (ChatCommand::CreateGroup { .. }
            | ChatCommand::JoinGroup { .. }
            | ChatCommand::Extend { .. }
            | ChatCommand::AddToGroup { .. }
            | ChatCommand::Rejoin { .. }
            | ChatCommand::SendPrivate { .. }) => {
                created = self.group_command(ctx, now, cmd);
            }
            ChatCommand::SendLarge { to, message } => {
                created = self.start_large(ctx, now, to, *message);
            }
            ChatCommand::SendFile { path, .. } => {
                // sans-IO: no file is read here
                self.events.push_back(ChatEvent::LargeFailed {
                    chat: None,
                    reason: format!(
                        "{}: files are read by the runner (send SendLarge with the bytes)",
                        path.display()
                    ),
                });
            }
            ChatCommand::Start { to, convergence_id } => {
                let id = self.new_id();
                self.events.push_back(ChatEvent::Calling {
                    chat: id,
                    to: to.clone(),
                });
                let s =
                    ChatSession::outgoing(ctx, now, id, self.local.clone(), &to, convergence_id);
                self.sessions.insert(id, s);
                created = Some(id);
            }
            ChatCommand::Send { chat, text } => {
                let at = (self.clock)();
                if let Some(s) = self.sessions.get_mut(&chat) {
                    match s.send_text(now, &text, &at) {
                        Some(message_id) => self.events.push_back(ChatEvent::Sent {
                            chat,
                            message_id,
                            text,
                        }),
                        None => self.events.push_back(ChatEvent::SendFailed {
                            chat,
                            message_id: String::new(),
                            code: 481,
                        }),
                    }
                }
            }
            ChatCommand::Typing { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.typing(now);
                }
            }
            ChatCommand::StopTyping { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.stop_typing(now);
                }
            }
            ChatCommand::Accept { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.accept(ctx, now);
                }
            }
            ChatCommand::Decline { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.decline(now);
                }
            }
            ChatCommand::Bye { chat } => {
                if let Some(s) = self.sessions.get_mut(&chat) {
                    // RFC 3261 §9.1: an unanswered INVITE is CANCELled
                    if s.is_calling() {
                        let key = self
                            .keys
                            .iter()
                            .find(|(_, (c, m))| *c == chat && *m == Method::Invite)
                            .map(|(k, _)| k.clone());
                        self.cancels.extend(key.map(|k| (chat, k)));
                    }
                    s.bye(ctx, now);
                }
            }
        }
        self.collect();
        self.group_collect(ctx);
        created
    }

    // ---- SIP in --------------------------------------------------------

    /// Offers a transaction-layer event to the chats. Returns it back when
    /// it is not theirs, for the UA's own handling.
    pub fn handle_layer_event(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        ev: LayerEvent,
    ) -> Option<LayerEvent> {
        let rest = match ev {
            LayerEvent::NewRequest {
                key,
                request,
                source,
                transport,
            } => self
                .handle_request(ctx, now, key, request, source, transport)
                .map(|(key, request)| LayerEvent::NewRequest {
                    key,
                    request,
                    source,
                    transport,
                }),
            LayerEvent::Response { key, response } => match self.keys.get(&key).cloned() {
                Some((chat, Method::Subscribe)) => {
                    if response.status_code.code() >= 200 {
                        self.keys.remove(&key);
                        self.group_subscribe_response(ctx, now, chat, response);
                    }
                    None
                }
                Some((chat, _)) => {
                    if response.status_code.code() >= 200 {
                        self.keys.remove(&key);
                    }
                    if let Some(s) = self.sessions.get_mut(&chat) {
                        s.handle_response(ctx, now, response);
                    }
                    None
                }
                None => Some(LayerEvent::Response { key, response }),
            },
            LayerEvent::Ack {
                request,
                source,
                transport,
            } => match self.by_dialog(&request) {
                Some(chat) => {
                    if let Some(s) = self.sessions.get_mut(&chat) {
                        s.handle_ack(now, &request);
                    }
                    None
                }
                None => Some(LayerEvent::Ack {
                    request,
                    source,
                    transport,
                }),
            },
            LayerEvent::Cancel {
                key,
                request,
                source,
                transport,
                invite,
                invite_pending,
            } => {
                let chat = invite.as_ref().and_then(|k| {
                    self.sessions
                        .values()
                        .find(|s| s.is_invite_key(k))
                        .map(|s| s.id())
                });
                match chat {
                    Some(chat) => {
                        // RFC 3261 §9.2: 200 to the CANCEL, 487 to the INVITE
                        let resp = crate::proto::sip::build::response_to(&request, 200, None);
                        if let Some(s) = self.sessions.get_mut(&chat) {
                            s.handle_cancel(now, &request);
                        }
                        self.pending_responses.push_back((key, resp));
                        None
                    }
                    None => Some(LayerEvent::Cancel {
                        key,
                        request,
                        source,
                        transport,
                        invite,
                        invite_pending,
                    }),
                }
            }
            LayerEvent::StrayResponse { response, source } => {
                // a 2xx retransmission after the INVITE transaction ended
                let chat = self.by_response_dialog(&response);
                match chat {
                    Some(chat) => {
                        if let Some(s) = self.sessions.get_mut(&chat) {
                            s.handle_response(ctx, now, response);
                        }
                        None
                    }
                    None => Some(LayerEvent::StrayResponse { response, source }),
                }
            }
            LayerEvent::Timeout { key } | LayerEvent::TransportError { key }
                if self.keys.contains_key(&key) =>
            {
                if let Some((chat, method)) = self.keys.remove(&key)
                    && let Some(s) = self.sessions.get_mut(&chat)
                {
                    s.handle_request_timeout(ctx, now, method);
                }
                None
            }
            other => Some(other),
        };
        self.collect();
        self.group_collect(ctx);
        rest
    }

    /// A new request: a chat INVITE starts a session; an in-dialog request
    /// of ours goes to its session. Others come back.
    fn handle_request(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        key: TsxKey,
        req: Request,
        source: SocketAddr,
        transport: Transport,
    ) -> Option<(TsxKey, Request)> {
        if req.method == Method::Notify && self.group_notify(now, &key, &req) {
            return None;
        }
        if to_tag(&req.headers).is_some() {
            return match self.by_dialog(&req) {
                Some(chat) => {
                    if let Some(s) = self.sessions.get_mut(&chat) {
                        s.handle_request(ctx, now, key, req, (source, transport));
                    }
                    None
                }
                None => Some((key, req)),
            };
        }
        if !is_chat_invite(&req) {
            return Some((key, req));
        }
        let id = self.new_id();
        let mut s = ChatSession::incoming_with(
            ctx,
            now,
            id,
            self.local.clone(),
            key,
            req,
            (source, transport),
            &self.large,
        );
        // RFC 3891 §3: an INVITE replacing a chat of ours is accepted at
        // once and the old dialog ended (seed 002 App. M step 8)
        let replaced = s.replaces().and_then(|r| {
            self.sessions
                .values()
                .find(|o| {
                    o.is_established() && o.call_id() == r.call_id && o.local_tag() == r.to_tag
                })
                .map(|o| o.id())
        });
        if let Some(old) = replaced {
            self.group.continues.insert(id, old);
            s.accept(ctx, now);
            if let Some(o) = self.sessions.get_mut(&old) {
                o.bye(ctx, now);
            }
        }
        self.sessions.insert(id, s);
        None
    }

    /// The chat whose dialog a received request belongs to (Call-ID, our tag in To).
    fn by_dialog(&self, req: &Request) -> Option<ChatId> {
        let cid = call_id(&req.headers)?;
        let ours = to_tag(&req.headers)?;
        self.sessions
            .values()
            .find(|s| s.call_id() == cid && s.local_tag() == ours)
            .map(|s| s.id())
    }

    fn by_response_dialog(&self, resp: &Response) -> Option<ChatId> {
        let cid = call_id(&resp.headers)?;
        let ours = from_tag(&resp.headers)?;
        self.sessions
            .values()
            .find(|s| s.call_id() == cid && s.local_tag() == ours)
            .map(|s| s.id())
    }

    // ---- MSRP in -------------------------------------------------------

    /// Our connection for `chat` is up.
    pub fn msrp_connected(&mut self, now: Instant, chat: ChatId, conn: MsrpConn) {
        self.conns.insert(
            conn,
            ConnState {
                parser: MsrpParser::new(ParserConfig::default()),
                chat: Some(chat),
            },
        );
        match self.sessions.get_mut(&chat) {
            Some(s) => s.msrp_connected(now, conn),
            None => self.msrp_out.push_back(MsrpOut::Close { conn }),
        }
        self.collect();
    }

    /// Connecting for `chat` failed.
    pub fn msrp_connect_failed(
        &mut self,
        ctx: &mut ChatCtx<'_>,
        now: Instant,
        chat: ChatId,
        error: &str,
    ) {
        if let Some(s) = self.sessions.get_mut(&chat) {
            s.msrp_connect_failed(ctx, now, error);
        }
        self.collect();
    }

    /// A peer connected to our listener.
    pub fn msrp_accepted(&mut self, conn: MsrpConn) {
        self.conns.entry(conn).or_insert_with(|| ConnState {
            parser: MsrpParser::new(ParserConfig::default()),
            chat: None,
        });
    }

    /// Bytes from a connection.
    pub fn msrp_data(&mut self, now: Instant, conn: MsrpConn, bytes: &[u8]) {
        let st = self.conns.entry(conn).or_insert_with(|| ConnState {
            parser: MsrpParser::new(ParserConfig::default()),
            chat: None,
        });
        st.parser.push(bytes);
        let mut frames = Vec::new();
        let mut fatal = false;
        while let Some(r) = st.parser.next() {
            match r {
                Ok(f) => frames.push(f),
                Err(e) => {
                    tracing::debug!(error = %e, conn, "MSRP framing error");
                    fatal |= e.is_fatal();
                }
            }
        }
        for f in frames {
            let bound = self.conns.get(&conn).and_then(|c| c.chat);
            let chat = bound.or_else(|| {
                let sid = f.to_path()?.first()?.session_id.clone()?;
                self.sessions
                    .values()
                    .find(|s| s.msrp_session_id() == sid && !s.is_terminated())
                    .map(|s| s.id())
            });
            let Some(chat) = chat else {
                self.unclaimed.push_back((conn, f));
                continue;
            };
            if bound.is_none() {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.chat = Some(chat);
                }
                if let Some(s) = self.sessions.get_mut(&chat) {
                    s.msrp_accepted(conn);
                }
            }
            if let Some(s) = self.sessions.get_mut(&chat) {
                s.msrp_frame(now, f);
            }
        }
        if fatal {
            self.msrp_closed(now, conn);
            self.msrp_out.push_back(MsrpOut::Close { conn });
        }
        self.collect();
    }

    /// A connection closed.
    pub fn msrp_closed(&mut self, now: Instant, conn: MsrpConn) {
        if let Some(c) = self.conns.remove(&conn)
            && let Some(chat) = c.chat
            && let Some(s) = self.sessions.get_mut(&chat)
        {
            s.msrp_closed(now, conn);
        }
        self.collect();
    }

    // ---- time and output -----------------------------------------------

    pub fn handle_timeout(&mut self, ctx: &mut ChatCtx<'_>, now: Instant) {
        for s in self.sessions.values_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(ctx, now);
            }
        }
        // conference subscriptions due for refresh (RFC 6665 §4.1.2.1)
        for (chat, w) in self.group.watches.iter_mut() {
            if w.poll_timeout().is_some_and(|t| t <= now) {
                w.auth_tries = 0;
                if let Some(mut req) = w.refresh(&self.local, ctx.ids) {
                    ctx.digest.authorize(&mut req, &ctx.ids.cnonce());
                    self.group.out.push_back((*chat, req));
                }
            }
        }
        self.collect();
        self.group_collect(ctx);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| s.poll_timeout())
            .chain(self.group.watches.values().filter_map(|w| w.poll_timeout()))
            .min()
    }

    /// Moves the sessions' MSRP output and events up, forgets ended
    /// sessions with nothing left to send.
    fn collect(&mut self) {
        for s in self.sessions.values_mut() {
            while let Some(o) = s.poll_msrp() {
                if let MsrpOut::Close { conn } = &o {
                    self.conns.remove(conn);
                }
                self.msrp_out.push_back(o);
            }
            while let Some(e) = s.poll_event() {
                self.events.push_back(e);
            }
        }
    }

    /// Hands the sessions' SIP to `layer`: requests as client transactions
    /// to `server` (tracked, so their responses come back here), responses
    /// through their server transactions, ACKs and retransmissions as they are.
    pub fn flush_sip(
        &mut self,
        layer: &mut TransactionLayer,
        now: Instant,
        server: SocketAddr,
        transport: Transport,
    ) {
        while let Some((key, resp)) = self.pending_responses.pop_front() {
            let _ = layer.send_response(now, &key, resp);
        }
        for (chat, invite) in std::mem::take(&mut self.cancels) {
            match layer.cancel(now, &invite) {
                Ok(key) => {
                    self.keys.insert(key, (chat, Method::Cancel));
                }
                Err(e) => tracing::debug!(error = %e, "no CANCEL"),
            }
        }
        let mut outs = Vec::new();
        while let Some((chat, req)) = self.group.out.pop_front() {
            outs.push((chat, SipOut::Request(req)));
        }
        for s in self.sessions.values_mut() {
            while let Some(o) = s.poll_sip() {
                outs.push((s.id(), o));
            }
        }
        for (chat, o) in outs {
            match o {
                SipOut::Request(req) => {
                    let method = req.method;
                    match layer.send_request(now, req, server, transport) {
                        Ok(key) => {
                            self.keys.insert(key, (chat, method));
                        }
                        Err(e) => tracing::debug!(error = %e, "chat request not sent"),
                    }
                }
                SipOut::Response { key, response } => {
                    if let Err(e) = layer.send_response(now, &key, response) {
                        tracing::debug!(error = %e, "chat response not sent");
                    }
                }
                SipOut::Ack(ack) => layer.send_stateless(Transmit {
                    to: server,
                    transport,
                    message: SipMessage::Request(ack),
                }),
                SipOut::Raw(t) => layer.send_stateless(t),
            }
        }
        // drop sessions that are over and quiet
        let keys = &self.keys;
        self.sessions.retain(|id, s| {
            !s.is_terminated() || s.poll_timeout().is_some() || keys.values().any(|(c, _)| c == id)
        });
    }

    pub fn poll_msrp(&mut self) -> Option<MsrpOut> {
        self.msrp_out.pop_front()
    }

    /// A frame that named no chat session (the UA offers it to history
    /// retrievals, else drops it).
    pub fn poll_unclaimed(&mut self) -> Option<(MsrpConn, crate::proto::msrp::MsrpFrame)> {
        self.unclaimed.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ChatEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_446_000), "2026-11-23T15:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
