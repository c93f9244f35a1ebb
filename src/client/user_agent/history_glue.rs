//! The history part of [`UserAgent`]: retrievals started from a
//! [`Command::History`](crate::client::Command::History), the SIP and MSRP
//! that belong to them, their events as [`ClientEvent::History`].

use std::time::Instant;

use super::UserAgent;
use crate::client::ClientEvent;
use crate::client::chat::ChatCtx;
use crate::client::history::HistoryQuery;
use crate::proto::sip::transaction::LayerEvent;

impl UserAgent {
    pub(crate) fn history_command(&mut self, now: Instant, query: HistoryQuery) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        let local = self.chats.local().clone();
        self.history.start(&mut ctx, &local, query);
        self.history_flush(now);
    }

    /// Offers a transaction-layer event to the retrievals; gives it back if it is not theirs.
    pub(crate) fn history_layer_event(
        &mut self,
        now: Instant,
        ev: LayerEvent,
    ) -> Option<LayerEvent> {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.history.handle_layer_event(&mut ctx, now, ev)
    }

    pub(crate) fn history_timeout(&mut self, now: Instant) {
        let mut ctx = ChatCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
        };
        self.history.handle_timeout(&mut ctx, now);
        self.history_flush(now);
    }

    /// Frames no chat claimed go to the retrievals (else they are dropped).
    pub(crate) fn history_unclaimed(&mut self, now: Instant) {
        while let Some((conn, frame)) = self.chats.poll_unclaimed() {
            if self.history.msrp_frame(now, conn, frame).is_some() {
                tracing::debug!(conn, "MSRP frame for no session of ours");
            }
        }
        self.history_flush(now);
    }

    /// Hands the retrievals' SIP to the layer and their events to the application.
    pub(crate) fn history_flush(&mut self, now: Instant) {
        self.history
            .flush_sip(&mut self.layer, now, self.cfg.server, self.cfg.transport);
        while let Some(e) = self.history.poll_event() {
            self.events.push_back(ClientEvent::History(e));
        }
    }

    /// History retrievals not yet reported.
    pub fn history_pending(&self) -> usize {
        self.history.pending()
    }
}
