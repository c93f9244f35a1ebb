//! The deferred-message part of [`UserAgent`] ([`Deferred`]): it sees
//! transaction-layer events before the chats (a push INVITE is an MSRP
//! INVITE too), takes the MSRP connections the store opens to us, and its
//! events go up as [`ClientEvent::Deferred`].

use std::time::Instant;

use super::UserAgent;
use crate::client::chat::{ChatCtx, MsrpConn, MsrpOut};
use crate::client::deferred::{Deferred, DeferredCommand, DeferredLocal, MsrpRoute};
use crate::client::{ClientEvent, USER_AGENT, UaConfig};
use crate::proto::sip::transaction::LayerEvent;

/// A [`Deferred`] for this configuration (MSRP address set by the runner).
pub(crate) fn new_deferred(cfg: &UaConfig, contact_uri: String) -> Deferred {
    Deferred::new(DeferredLocal {
        aor: cfg.aor(),
        deferred_uri: format!("sip:Deferred@{}", cfg.domain),
        contact_uri,
        sip_local: cfg.local,
        transport: cfg.transport,
        msrp_local: std::net::SocketAddr::new(cfg.local.ip(), 0),
        user_agent: USER_AGENT.to_string(),
    })
}

impl UserAgent {
    /// Offers a transaction-layer event to the deferred sessions.
    pub(crate) fn deferred_layer_event(
        &mut self,
        now: Instant,
        ev: LayerEvent,
    ) -> Option<LayerEvent> {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.deferred.handle_layer_event(&mut ctx, now, ev)
    }

    pub(crate) fn deferred_flush(&mut self, now: Instant) {
        self.deferred
            .flush_sip(&mut self.layer, now, self.cfg.server, self.cfg.transport);
        while let Some(e) = self.deferred.poll_event() {
            self.events.push_back(ClientEvent::Deferred(e));
        }
    }

    pub(crate) fn deferred_command(&mut self, now: Instant, cmd: DeferredCommand) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.deferred.command(&mut ctx, cmd);
        self.deferred_flush(now);
    }

    pub(crate) fn deferred_timeout(&mut self, now: Instant) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.deferred.handle_timeout(&mut ctx, now);
        self.deferred_flush(now);
    }

    /// Registered anew: watch the waiting count when configured (seed 003 12.4.2.6).
    pub(crate) fn deferred_registered(&mut self, now: Instant) {
        if self.cfg.watch_deferred {
            self.deferred_command(now, DeferredCommand::WatchWaiting);
        }
    }

    /// Shutting down: end the message-summary subscription.
    pub(crate) fn deferred_shutdown(&mut self, now: Instant) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.deferred.unwatch(&mut ctx);
        self.deferred_flush(now);
    }

    /// The deferred sessions, read-only.
    pub fn deferred(&self) -> &Deferred {
        &self.deferred
    }

    /// MSRP bytes: the store's connections go to the deferred sessions;
    /// what is not theirs comes back for the chats (`None`: nothing now).
    pub(crate) fn deferred_msrp_data(
        &mut self,
        now: Instant,
        conn: MsrpConn,
        bytes: &[u8],
    ) -> Option<Option<Vec<u8>>> {
        match self.deferred.route(conn, bytes) {
            MsrpRoute::Ours => {
                self.deferred_flush(now);
                None
            }
            MsrpRoute::Undecided => None,
            MsrpRoute::NotOurs(held) => Some(held),
        }
    }

    pub(crate) fn deferred_msrp_accepted(&mut self, conn: MsrpConn) {
        self.deferred.msrp_accepted(conn);
    }

    pub(crate) fn deferred_msrp_closed(&mut self, now: Instant, conn: MsrpConn) -> bool {
        let ours = self.deferred.msrp_closed(now, conn);
        self.deferred_flush(now);
        ours
    }

    pub(crate) fn deferred_poll_msrp(&mut self) -> Option<MsrpOut> {
        self.deferred.poll_msrp()
    }
}
