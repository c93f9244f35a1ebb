//! The chat part of [`UserAgent`]: its [`Chats`] built from the UA's
//! configuration, commands and timers handed over, and the MSRP side the
//! runner drives (connections by handle). Kept apart from `user_agent.rs`,
//! which only calls [`UserAgent::chat_drain`] and friends.

use std::net::SocketAddr;
use std::time::Instant;

use super::UserAgent;
use crate::client::chat::{ChatCtx, ChatId, ChatLocal, MsrpConn, MsrpOut};
use crate::client::chats::{ChatCommand, Chats, PagerOutcome, WallClock, system_clock};
use crate::client::{ClientEvent, UaConfig};
use crate::proto::sip::session_timer::SessionTimerConfig;
use crate::proto::sip::transaction::LayerEvent;

/// A [`Chats`] for this configuration; its Contact and MSRP address are
/// filled in by [`UserAgent::set_msrp_local`] and the UA.
pub(crate) fn new_chats(cfg: &UaConfig, contact_uri: String, clock: WallClock) -> Chats {
    let local = ChatLocal {
        aor: cfg.aor(),
        display_name: cfg.display_name.clone(),
        contact_uri,
        instance_id: Some(cfg.instance_id.clone()),
        sip_local: cfg.local,
        transport: cfg.transport,
        msrp_local: SocketAddr::new(cfg.local.ip(), 0),
        timer: SessionTimerConfig::default(),
        composing: cfg.composing,
        msrp_chunk_size: 2048,
        msrp_tls: cfg.tls.is_some(),
    };
    let mut chats = Chats::new(local, clock);
    let g = chats.group_settings_mut();
    g.max_adhoc_group_size = cfg.max_adhoc_group_size;
    g.blocklist = cfg.blocklist.iter().cloned().collect();
    *chats.large_settings_mut() = cfg.large.clone();
    chats
}

impl UserAgent {
    pub(crate) fn default_chats(cfg: &UaConfig, contact_uri: String) -> Chats {
        new_chats(cfg, contact_uri, system_clock())
    }

    /// Offers a transaction-layer event to the chats; gives it back if it is not theirs.
    pub(crate) fn chat_layer_event(&mut self, now: Instant, ev: LayerEvent) -> Option<LayerEvent> {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.chats.handle_layer_event(&mut ctx, now, ev)
    }

    /// Hands the chats' SIP to the layer and their events to the application.
    pub(crate) fn chat_flush(&mut self, now: Instant) {
        self.chats
            .flush_sip(&mut self.layer, now, self.cfg.server, self.cfg.transport);
        while let Some(e) = self.chats.poll_event() {
            let pager = self.chats.pager_outcome(&e);
            self.events.push_back(ClientEvent::Chat(e));
            match pager {
                Some(PagerOutcome::Delivered { id, to }) => {
                    self.events.push_back(ClientEvent::MessageDelivered {
                        id,
                        to,
                        status: 200,
                    })
                }
                Some(PagerOutcome::Failed {
                    id,
                    to,
                    status,
                    reason,
                    warning,
                }) => self.events.push_back(ClientEvent::MessageFailed {
                    id,
                    to,
                    status,
                    reason,
                    warning,
                }),
                None => {}
            }
        }
    }

    /// A pager MESSAGE too large for the pager (RFC 3428 §4): sent in Large
    /// Message mode instead (seed 003 9.1.1.2).
    pub(crate) fn pager_as_large(&mut self, now: Instant, id: String, to: String, text: &str) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        if self
            .chats
            .send_pager_as_large(&mut ctx, now, id.clone(), to.clone(), text)
            .is_none()
        {
            self.events.push_back(ClientEvent::MessageFailed {
                id,
                to,
                status: None,
                reason: "cannot start a Large Message session".into(),
                warning: None,
            });
        }
        self.chat_flush(now);
    }

    pub(crate) fn chat_command(&mut self, now: Instant, cmd: ChatCommand) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.chats.command(&mut ctx, now, cmd);
        self.chat_flush(now);
    }

    pub(crate) fn chat_timeout(&mut self, now: Instant) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.chats.handle_timeout(&mut ctx, now);
        self.chat_flush(now);
    }

    /// Group settings (factory, ad-hoc limit, blocklist), e.g. when the
    /// user blocks someone.
    pub fn group_settings_mut(&mut self) -> &mut crate::client::group::GroupSettings {
        self.chats.group_settings_mut()
    }

    /// The chats, read-only (sessions, local settings).
    pub fn chats(&self) -> &Chats {
        &self.chats
    }

    /// Where our MSRP listener is bound (the runner calls this once).
    pub fn set_msrp_local(&mut self, addr: SocketAddr) {
        self.chats.set_msrp_local(addr);
        self.deferred.local_mut().msrp_local = addr;
    }

    /// Replaces the CPIM DateTime clock (tests).
    pub fn set_chat_clock(&mut self, clock: WallClock) {
        self.chats.set_clock(clock);
    }

    /// Session timer settings for new chats.
    pub fn set_chat_timer(&mut self, timer: SessionTimerConfig) {
        self.chats.local_mut().timer = timer;
    }

    /// MSRP work for the driver: connect, send, close.
    pub fn poll_msrp(&mut self) -> Option<MsrpOut> {
        self.chats
            .poll_msrp()
            .or_else(|| self.history.poll_msrp())
            .or_else(|| self.deferred_poll_msrp())
    }

    /// Our connection for `chat` is up.
    pub fn msrp_connected(&mut self, now: Instant, chat: ChatId, conn: MsrpConn) {
        self.chats.msrp_connected(now, chat, conn);
        self.chat_flush(now);
    }

    /// Connecting for `chat` failed.
    pub fn msrp_connect_failed(&mut self, now: Instant, chat: ChatId, error: &str) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.chats.msrp_connect_failed(&mut ctx, now, chat, error);
        self.chat_flush(now);
    }

    /// A peer connected to our MSRP listener.
    pub fn msrp_accepted(&mut self, conn: MsrpConn) {
        self.deferred_msrp_accepted(conn);
        self.chats.msrp_accepted(conn);
    }

    /// Bytes from an MSRP connection.
    pub fn msrp_data(&mut self, now: Instant, conn: MsrpConn, bytes: &[u8]) {
        match self.deferred_msrp_data(now, conn, bytes) {
            None => return,
            Some(Some(held)) => self.chats.msrp_data(now, conn, &held),
            Some(None) => self.chats.msrp_data(now, conn, bytes),
        }
        self.history_unclaimed(now);
        self.chat_flush(now);
    }

    /// An MSRP connection closed.
    pub fn msrp_closed(&mut self, now: Instant, conn: MsrpConn) {
        // an unbound entry the chats keep since the accept goes too
        self.deferred_msrp_closed(now, conn);
        self.chats.msrp_closed(now, conn);
        self.history.msrp_closed(conn);
        self.chat_flush(now);
    }
}
