//! The content-viewing part of [`UserAgent`]: its [`ContentViewing`] built
//! from the UA's configuration, layer events offered to it first, and the
//! player work the driver does ([`UserAgent::poll_viewing`]).

use std::net::IpAddr;
use std::time::Instant;

use super::UserAgent;
use crate::client::ClientEvent;
use crate::client::chats::ChatCommand;
use crate::client::content_viewing::{
    ContentViewing, CvCtx, CvLocal, ViewingCommand, ViewingEvent, ViewingId, ViewingOut,
};
use crate::proto::sip::transaction::LayerEvent;

impl UserAgent {
    pub(crate) fn new_viewing(&self) -> ContentViewing {
        ContentViewing::new(CvLocal {
            aor: self.cfg.aor(),
            domain: self.cfg.domain.clone(),
            contact_uri: self.contact_uri(),
            instance_id: self.cfg.instance_id.clone(),
            sip_local: self.cfg.local,
            transport: self.cfg.transport,
            server: self.cfg.server,
        })
    }

    fn with_cv<R>(&mut self, f: impl FnOnce(&mut ContentViewing, &mut CvCtx<'_>) -> R) -> R {
        let gruu = self.reg.gruu.clone();
        let devices = self.watch.devices().to_vec();
        let mut ctx = CvCtx {
            ids: self.ids.as_mut(),
            digest: &mut self.proxy_digest,
            layer: &mut self.layer,
            gruu: gruu.as_deref(),
            devices: &devices,
        };
        f(&mut self.viewing, &mut ctx)
    }

    /// Offers a transaction-layer event to content viewing first.
    pub(crate) fn cv_layer_event(&mut self, now: Instant, ev: LayerEvent) -> Option<LayerEvent> {
        self.with_cv(|cv, ctx| cv.handle_layer_event(ctx, now, ev))
    }

    /// Content viewing's events to the application; its chat wishes to the chats.
    pub(crate) fn cv_flush(&mut self, now: Instant) {
        while let Some(e) = self.viewing.poll_event() {
            self.events.push_back(ClientEvent::Viewing(e));
        }
        let mut keep = Vec::new();
        while let Some(o) = self.viewing.poll_out() {
            match o {
                ViewingOut::StartChat { to, convergence_id } => self.chat_command(
                    now,
                    ChatCommand::Start {
                        to,
                        convergence_id: Some(convergence_id),
                    },
                ),
                other => keep.push(other),
            }
        }
        self.viewing_out.extend(keep);
    }

    pub(crate) fn viewing_command(&mut self, now: Instant, cmd: ViewingCommand) {
        self.with_cv(|cv, ctx| cv.command(ctx, now, cmd));
        self.cv_flush(now);
    }

    pub(crate) fn cv_timeout(&mut self, now: Instant) {
        self.with_cv(|cv, ctx| cv.handle_timeout(ctx, now));
        self.cv_flush(now);
    }

    /// Player work for the driver: open (then [`Self::player_ready`]) or close.
    pub fn poll_viewing(&mut self) -> Option<ViewingOut> {
        self.viewing_out.pop_front()
    }

    /// The player of `viewing` listens on these RTP ports.
    pub fn player_ready(
        &mut self,
        now: Instant,
        viewing: ViewingId,
        ip: IpAddr,
        audio: Option<u16>,
        video: Option<u16>,
    ) {
        self.with_cv(|cv, ctx| cv.player_ready(ctx, now, viewing, ip, audio, video));
        self.drain(now);
    }

    /// No player could be bound for `viewing`.
    pub fn player_failed(&mut self, now: Instant, viewing: ViewingId, error: &str) {
        self.with_cv(|cv, ctx| cv.player_failed(ctx, now, viewing, error));
        self.drain(now);
    }

    /// A player event (stats, frame) for the application.
    pub fn player_event(&mut self, ev: ViewingEvent) {
        self.events.push_back(ClientEvent::Viewing(ev));
    }

    /// Content viewing, read-only.
    pub fn viewing(&self) -> &ContentViewing {
        &self.viewing
    }
}
