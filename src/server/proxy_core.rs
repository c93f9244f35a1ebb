//! The stateful proxy (RFC 3261 §16): forking a request to every target in
//! parallel, collecting the responses of the branches and choosing what goes
//! back upstream. The core hands it the transaction layer to act through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::proto::sip::build::response_to;
use crate::proto::sip::transaction::{TransactionLayer, Transport, TsxKey};

use super::sip_util::pop_via;

/// Where one branch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The Request-URI of the forwarded request (a contact or GRUU).
    pub uri: rsip::Uri,
    pub addr: SocketAddr,
    pub transport: Transport,
}

#[derive(Debug)]
struct Branch {
    key: TsxKey,
    final_code: Option<u16>,
}

/// The response context of one forwarded request (RFC 3261 §16.7).
#[derive(Debug)]
struct Context {
    server: TsxKey,
    invite: bool,
    branches: Vec<Branch>,
    best: Option<rsip::Response>,
    /// A final response went upstream (a 2xx for non-INVITE, or the best).
    final_sent: bool,
    got_2xx: bool,
}

/// What the proxy wants the core to do after a branch event.
#[derive(Debug, Default)]
pub struct ProxyActions {
    /// Client INVITE transactions to CANCEL (RFC 3261 §16.7 step 10).
    pub cancel: Vec<TsxKey>,
}

/// All response contexts, keyed by the upstream server transaction.
#[derive(Debug, Default)]
pub struct ProxyCore {
    contexts: HashMap<TsxKey, Context>,
    by_branch: HashMap<TsxKey, TsxKey>,
}

impl ProxyCore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a response context for `server` with the branches already
    /// sent as client transactions `branches`.
    pub fn open(&mut self, server: TsxKey, invite: bool, branches: Vec<TsxKey>) {
        for b in &branches {
            self.by_branch.insert(b.clone(), server.clone());
        }
        self.contexts.insert(
            server.clone(),
            Context {
                server,
                invite,
                branches: branches
                    .into_iter()
                    .map(|key| Branch {
                        key,
                        final_code: None,
                    })
                    .collect(),
                best: None,
                final_sent: false,
                got_2xx: false,
            },
        );
    }

    /// True if the client transaction `branch` belongs to a proxy context.
    pub fn owns_branch(&self, branch: &TsxKey) -> bool {
        self.by_branch.contains_key(branch)
    }

    /// True if `server` is a request this proxy forwarded.
    pub fn owns_server(&self, server: &TsxKey) -> bool {
        self.contexts.contains_key(server)
    }

    /// A response on branch `branch` (RFC 3261 §16.7). Forwards what must go
    /// upstream through `tsx` and returns the branches to CANCEL.
    pub fn on_response(
        &mut self,
        now: Instant,
        tsx: &mut TransactionLayer,
        branch: &TsxKey,
        mut response: rsip::Response,
    ) -> ProxyActions {
        let mut actions = ProxyActions::default();
        let Some(server) = self.by_branch.get(branch).cloned() else {
            return actions;
        };
        let Some(ctx) = self.contexts.get_mut(&server) else {
            return actions;
        };
        let code = response.status_code.code();
        // §16.7 step 3: the top Via is ours.
        pop_via(&mut response.headers);
        match code {
            // §16.7 step 5: 100 Trying is not forwarded.
            100 => {}
            101..=199 => {
                if !ctx.final_sent {
                    let _ = tsx.send_response(now, &ctx.server, response);
                }
            }
            200..=299 => {
                mark_final(ctx, branch, code);
                ctx.got_2xx = true;
                // §16.7 step 5: every 2xx to an INVITE goes upstream at once;
                // for other methods only the first final response does.
                if ctx.invite || !ctx.final_sent {
                    let _ = tsx.send_response(now, &ctx.server, response);
                }
                ctx.final_sent = true;
                if ctx.invite {
                    // §16.7 step 10: a 2xx cancels the other pending branches.
                    actions.cancel.extend(pending(ctx));
                }
            }
            _ => {
                mark_final(ctx, branch, code);
                if code >= 600 && ctx.invite {
                    actions.cancel.extend(pending(ctx));
                }
                if better(ctx.best.as_ref(), code) {
                    ctx.best = Some(response);
                }
            }
        }
        self.finish_if_done(now, tsx, &server);
        actions
    }

    /// A branch timed out (Timer B/F) or failed at the transport: it counts
    /// as a 408 (§16.7 step 2) or 503 (§16.9) from that branch.
    pub fn on_branch_failure(
        &mut self,
        now: Instant,
        tsx: &mut TransactionLayer,
        branch: &TsxKey,
        code: u16,
    ) {
        let Some(server) = self.by_branch.get(branch).cloned() else {
            return;
        };
        let Some(ctx) = self.contexts.get_mut(&server) else {
            return;
        };
        if ctx
            .branches
            .iter()
            .any(|b| &b.key == branch && b.final_code.is_none())
        {
            mark_final(ctx, branch, code);
            if better(ctx.best.as_ref(), code)
                && let Some(req) = tsx.server_request(&ctx.server)
            {
                ctx.best = Some(response_to(req, code, None));
            }
        }
        self.finish_if_done(now, tsx, &server);
    }

    /// The upstream CANCELled `server` (RFC 3261 §16.10): the pending
    /// branches to CANCEL in turn. Their 487s end the context.
    pub fn on_cancel(&mut self, server: &TsxKey) -> Vec<TsxKey> {
        self.contexts.get(server).map(pending).unwrap_or_default()
    }

    /// Drops the bookkeeping of a terminated client transaction.
    pub fn on_branch_terminated(&mut self, branch: &TsxKey) {
        if let Some(server) = self.by_branch.remove(branch)
            && let Some(ctx) = self.contexts.get(&server)
            && ctx.final_sent
            && ctx
                .branches
                .iter()
                .all(|b| !self.by_branch.contains_key(&b.key))
        {
            self.contexts.remove(&server);
        }
    }

    fn finish_if_done(&mut self, now: Instant, tsx: &mut TransactionLayer, server: &TsxKey) {
        let Some(ctx) = self.contexts.get_mut(server) else {
            return;
        };
        let all_done = ctx.branches.iter().all(|b| b.final_code.is_some());
        if all_done && !ctx.final_sent {
            ctx.final_sent = true;
            if let Some(mut best) = ctx.best.take() {
                // §16.7 step 6: a 503 from downstream becomes 500 upstream.
                if best.status_code.code() == 503 {
                    best.status_code = rsip::StatusCode::ServerInternalError;
                }
                let _ = tsx.send_response(now, &ctx.server, best);
            }
        }
    }

    /// Number of open contexts (for tests and stats).
    pub fn len(&self) -> usize {
        self.contexts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }
}

fn mark_final(ctx: &mut Context, branch: &TsxKey, code: u16) {
    if let Some(b) = ctx.branches.iter_mut().find(|b| &b.key == branch) {
        b.final_code.get_or_insert(code);
    }
}

fn pending(ctx: &Context) -> Vec<TsxKey> {
    ctx.branches
        .iter()
        .filter(|b| b.final_code.is_none())
        .map(|b| b.key.clone())
        .collect()
}

/// §16.7 step 6: a 6xx beats everything; else the lowest class wins, and
/// within it the first seen.
fn better(current: Option<&rsip::Response>, code: u16) -> bool {
    let Some(cur) = current else { return true };
    let cur = cur.status_code.code();
    if cur >= 600 {
        return false;
    }
    if code >= 600 {
        return true;
    }
    code / 100 < cur / 100
}
