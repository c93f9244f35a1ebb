//! Dialogs (RFC 3261 §12) as plain data keyed by [`DialogId`], plus the UAS
//! core's 2xx retransmission (§13.3.1.4) in [`OkRetransmission`].
//!
//! A [`Dialog`] is created from the dialog-creating request (INVITE,
//! SUBSCRIBE, REFER) and a 1xx-with-To-tag or 2xx response: one per To tag,
//! so each fork of an INVITE gets its own early dialog ([`Dialogs`] keeps
//! them apart). It builds in-dialog requests (§12.2.1.1) and checks incoming
//! ones (§12.2.2). The dialog's `secure` flag is not kept (ignored, as
//! agreed for `isc`).

pub mod ok_retransmission;

pub use ok_retransmission::{OkRetransmission, OkRetransmissionEvent};

use rsip::prelude::*;
use rsip::{Header, Method, Param, Request, Response, Uri, UriWithParams};
use std::collections::HashMap;

/// What is wrong with a message for a dialog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("bad header {name}: {reason}")]
    BadHeader { name: &'static str, reason: String },
    #[error("missing tag in {0}")]
    MissingTag(&'static str),
    /// RFC 3261 §12.2.2: answer 500.
    #[error("CSeq {received} is lower than the remote CSeq {remote}")]
    CSeqOutOfOrder { remote: u32, received: u32 },
    #[error("response {0} does not create a dialog")]
    NotDialogCreating(u16),
    #[error("{0} is not built with create_request")]
    WrongMethod(String),
    #[error("the request belongs to another dialog")]
    WrongDialog,
    #[error("the dialog is terminated")]
    Terminated,
}

impl DialogError {
    /// The status code a UAS answers an in-dialog request that failed with
    /// this error (RFC 3261 §12.2.2).
    pub fn status_code(&self) -> u16 {
        match self {
            DialogError::CSeqOutOfOrder { .. } => 500,
            DialogError::WrongDialog | DialogError::Terminated => 481,
            _ => 400,
        }
    }
}

fn bad(name: &'static str, e: rsip::Error) -> DialogError {
    DialogError::BadHeader {
        name,
        reason: e.to_string(),
    }
}

/// Call-ID, local tag and remote tag (RFC 3261 §12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a received request belongs to: local tag from To, remote
    /// tag from From (RFC 3261 §12.2.2).
    pub fn for_received_request(request: &Request) -> Result<Self, DialogError> {
        Ok(Self {
            call_id: call_id(request)?,
            local_tag: to_typed(request)?
                .tag()
                .map(|t| t.to_string())
                .ok_or(DialogError::MissingTag("To"))?,
            remote_tag: from_typed(request)?
                .tag()
                .map(|t| t.to_string())
                .ok_or(DialogError::MissingTag("From"))?,
        })
    }

    /// The dialog a received response belongs to: local tag from From,
    /// remote tag from To (RFC 3261 §12.1.2).
    pub fn for_received_response(response: &Response) -> Result<Self, DialogError> {
        Ok(Self {
            call_id: call_id(response)?,
            local_tag: from_typed(response)?
                .tag()
                .map(|t| t.to_string())
                .ok_or(DialogError::MissingTag("From"))?,
            remote_tag: to_typed(response)?
                .tag()
                .map(|t| t.to_string())
                .ok_or(DialogError::MissingTag("To"))?,
        })
    }
}

/// Early or confirmed (RFC 3261 §12), or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// Which side created the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogRole {
    Uac,
    Uas,
}

/// One dialog's state (RFC 3261 §12.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    id: DialogId,
    role: DialogRole,
    state: DialogState,
    local_seq: u32,
    remote_seq: Option<u32>,
    local: rsip::typed::From,
    remote: rsip::typed::To,
    local_contact: Option<rsip::headers::Contact>,
    remote_target: Uri,
    route_set: Vec<UriWithParams>,
    last_ack: Option<Request>,
}

/// Methods whose Contact replaces the remote target (RFC 3261 §12.2,
/// RFC 3311 UPDATE, RFC 6665 SUBSCRIBE/NOTIFY).
pub fn is_target_refresh(method: Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify
    )
}

impl Dialog {
    /// The UAC side (RFC 3261 §12.1.2) from the request we sent and a
    /// 101–199 response with a To tag (early) or a 2xx (confirmed). Route
    /// set: Record-Route reversed; remote target: the response's Contact.
    pub fn new_uac(request: &Request, response: &Response) -> Result<Self, DialogError> {
        let status = response.status_code.code();
        let state = match status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            s => return Err(DialogError::NotDialogCreating(s)),
        };
        let id = DialogId::for_received_response(response)?;
        let remote_target = match contact_uri(response) {
            Ok(uri) => uri,
            // Lenient: an early dialog from a 1xx without Contact targets the R-URI.
            Err(_) if state == DialogState::Early => request.uri.clone(),
            Err(e) => return Err(e),
        };
        let mut route_set = record_route(response)?;
        route_set.reverse();
        Ok(Self {
            id,
            role: DialogRole::Uac,
            state,
            local_seq: crate::proto::sip::transaction::cseq(request)
                .map_err(|_| DialogError::MissingHeader("CSeq"))?
                .seq,
            remote_seq: None,
            local: from_typed(request)?,
            remote: to_typed(response)?,
            local_contact: request.contact_header().ok().cloned(),
            remote_target,
            route_set,
            last_ack: None,
        })
    }

    /// The UAS side (RFC 3261 §12.1.1) from the received request and the
    /// 1xx-with-tag or 2xx we answer with. Route set: Record-Route in order;
    /// remote target: the request's Contact. The local CSeq is empty in the
    /// RFC; the caller passes the first number to use (`initial_local_seq`).
    pub fn new_uas(
        request: &Request,
        response: &Response,
        initial_local_seq: u32,
    ) -> Result<Self, DialogError> {
        let status = response.status_code.code();
        let state = match status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            s => return Err(DialogError::NotDialogCreating(s)),
        };
        let to = to_typed(response)?;
        let from = from_typed(request)?;
        let id = DialogId {
            call_id: call_id(request)?,
            local_tag: to
                .tag()
                .map(|t| t.to_string())
                .ok_or(DialogError::MissingTag("To"))?,
            remote_tag: from
                .tag()
                .map(|t| t.to_string())
                .ok_or(DialogError::MissingTag("From"))?,
        };
        Ok(Self {
            id,
            role: DialogRole::Uas,
            state,
            local_seq: initial_local_seq.saturating_sub(1),
            remote_seq: Some(
                crate::proto::sip::transaction::cseq(request)
                    .map_err(|_| DialogError::MissingHeader("CSeq"))?
                    .seq,
            ),
            local: rsip::typed::From {
                display_name: to.display_name,
                uri: to.uri,
                params: to.params,
            },
            remote: rsip::typed::To {
                display_name: from.display_name,
                uri: from.uri,
                params: from.params,
            },
            local_contact: response.contact_header().ok().cloned(),
            remote_target: contact_uri(request)?,
            route_set: record_route(request)?,
            last_ack: None,
        })
    }

    pub fn id(&self) -> &DialogId {
        &self.id
    }

    pub fn role(&self) -> DialogRole {
        self.role
    }

    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The last local CSeq number used.
    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    pub fn route_set(&self) -> &[UriWithParams] {
        &self.route_set
    }

    /// Where in-dialog requests go first: the first route, or the remote
    /// target when the route set is empty.
    pub fn next_hop(&self) -> &Uri {
        self.route_set
            .first()
            .map(|r| &r.uri)
            .unwrap_or(&self.remote_target)
    }

    /// Our Contact, put in target refresh requests.
    pub fn set_local_contact(&mut self, contact: rsip::headers::Contact) {
        self.local_contact = Some(contact);
    }

    /// End the dialog (BYE sent or received, §15).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// Build an in-dialog request (RFC 3261 §12.2.1.1): CSeq one above the
    /// last, To/From with the tags, Request-URI and Route from the route set
    /// (loose or strict), Contact on target refresh requests. `via` is the
    /// caller's (sent-by and a fresh branch). Not for ACK or CANCEL.
    pub fn create_request(
        &mut self,
        method: Method,
        via: rsip::typed::Via,
    ) -> Result<Request, DialogError> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Err(DialogError::WrongMethod(method.to_string()));
        }
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        self.local_seq = self.local_seq.wrapping_add(1);
        Ok(self.build(method, self.local_seq, via))
    }

    /// The ACK for a 2xx to INVITE number `invite_seq` (RFC 3261 §13.2.2.4):
    /// an end-to-end request built from the dialog with the INVITE's CSeq
    /// number. Kept so [`Self::ack_for_retransmission`] can re-send it.
    pub fn create_ack(&mut self, invite_seq: u32, via: rsip::typed::Via) -> Request {
        let ack = self.build(Method::Ack, invite_seq, via);
        self.last_ack = Some(ack.clone());
        ack
    }

    /// The ACK to re-send when a 2xx to INVITE arrives again (RFC 3261
    /// §13.2.2.4): the stored one if its CSeq number matches.
    pub fn ack_for_retransmission(&self, response: &Response) -> Option<Request> {
        let cseq = crate::proto::sip::transaction::cseq(response).ok()?;
        if !(200..300).contains(&response.status_code.code()) || cseq.method != Method::Invite {
            return None;
        }
        let ack = self.last_ack.as_ref()?;
        let ack_seq = crate::proto::sip::transaction::cseq(ack).ok()?.seq;
        (ack_seq == cseq.seq).then(|| ack.clone())
    }

    /// The ACK for a 2xx to `invite` (RFC 3261 §13.2.2.4): as
    /// [`Self::create_ack`] with the INVITE's CSeq number, plus its
    /// Authorization and Proxy-Authorization headers.
    pub fn create_ack_for_invite(
        &mut self,
        invite: &Request,
        via: rsip::typed::Via,
    ) -> Result<Request, DialogError> {
        let seq = crate::proto::sip::transaction::cseq(invite)
            .map_err(|_| DialogError::MissingHeader("CSeq"))?
            .seq;
        let mut ack = self.build(Method::Ack, seq, via);
        let credentials = invite
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_)))
            .cloned()
            .collect::<Vec<_>>();
        // Before Content-Length, which `build` puts last.
        let mut headers: Vec<Header> = ack.headers.into();
        let at = headers.len().saturating_sub(1);
        headers.splice(at..at, credentials);
        ack.headers = headers.into();
        self.last_ack = Some(ack.clone());
        Ok(ack)
    }

    /// UAS: a response we sent on the dialog-creating INVITE (RFC 3261
    /// §13.3.1.4): a 2xx confirms an early dialog, a non-2xx final ends it.
    pub fn handle_sent_response(&mut self, response: &Response) {
        if self.state != DialogState::Early {
            return;
        }
        match response.status_code.code() {
            200..=299 => self.state = DialogState::Confirmed,
            300..=699 => self.state = DialogState::Terminated,
            _ => {}
        }
    }

    fn build(&self, method: Method, seq: u32, via: rsip::typed::Via) -> Request {
        let mut headers = rsip::Headers::default();
        headers.push(via.into());
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::from(70u32)));
        // RFC 3261 §12.2.1.1: loose routing if the first route has `lr`.
        let (uri, routes): (Uri, Vec<UriWithParams>) = match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if is_loose(first) => (self.remote_target.clone(), self.route_set.clone()),
            Some(first) => {
                // Strict router: it becomes the Request-URI, the remote
                // target goes last in Route.
                let mut rest: Vec<UriWithParams> = self.route_set[1..].to_vec();
                rest.push(UriWithParams {
                    uri: self.remote_target.clone(),
                    params: Vec::new(),
                });
                let mut r_uri = first.uri.clone();
                r_uri
                    .params
                    .retain(|p| !matches!(p, Param::Method(_) | Param::Ttl(_) | Param::Lr));
                (r_uri, rest)
            }
        };
        for route in routes {
            headers.push(rsip::typed::Route(vec![route].into()).into());
        }
        headers.push(self.local.clone().into());
        headers.push(self.remote.clone().into());
        headers.push(Header::CallId(self.id.call_id.clone().into()));
        headers.push(rsip::typed::CSeq { seq, method }.into());
        if is_target_refresh(method)
            && let Some(c) = &self.local_contact
        {
            headers.push(Header::Contact(c.clone()));
        }
        headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
            0u32,
        )));
        Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    }

    /// A request received in this dialog (RFC 3261 §12.2.2): checks the
    /// remote CSeq (lower -> [`DialogError::CSeqOutOfOrder`], answer 500),
    /// records it, refreshes the remote target, and ends the dialog on BYE.
    /// ACK and CANCEL carry the INVITE's number and are not checked.
    pub fn handle_request(&mut self, request: &Request) -> Result<(), DialogError> {
        if DialogId::for_received_request(request)? != self.id {
            return Err(DialogError::WrongDialog);
        }
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        if matches!(request.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        let seq = crate::proto::sip::transaction::cseq(request)
            .map_err(|_| DialogError::MissingHeader("CSeq"))?
            .seq;
        if let Some(remote) = self.remote_seq
            && seq < remote
        {
            return Err(DialogError::CSeqOutOfOrder {
                remote,
                received: seq,
            });
        }
        self.remote_seq = Some(seq);
        if is_target_refresh(request.method)
            && let Ok(uri) = contact_uri(request)
        {
            self.remote_target = uri;
        }
        if request.method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// A response to a request we sent in (or to create) this dialog.
    pub fn handle_response(&mut self, response: &Response) -> Result<(), DialogError> {
        let status = response.status_code.code();
        let cseq = crate::proto::sip::transaction::cseq(response)
            .map_err(|_| DialogError::MissingHeader("CSeq"))?;
        match status {
            // RFC 3261 §13.2.2.4: a 2xx confirms an early dialog; the route
            // set is recomputed from it (UAC).
            200..=299 if self.state == DialogState::Early && cseq.method == Method::Invite => {
                self.state = DialogState::Confirmed;
                if self.role == DialogRole::Uac {
                    let mut rr = record_route(response)?;
                    rr.reverse();
                    self.route_set = rr;
                }
                if let Ok(uri) = contact_uri(response) {
                    self.remote_target = uri;
                }
            }
            // RFC 3261 §12.2.1.2: a 2xx to a target refresh request.
            200..=299 if is_target_refresh(cseq.method) => {
                if let Ok(uri) = contact_uri(response) {
                    self.remote_target = uri;
                }
            }
            // A later 1xx of an early dialog may carry a newer Contact.
            101..=199 if self.state == DialogState::Early => {
                if let Ok(uri) = contact_uri(response) {
                    self.remote_target = uri;
                }
            }
            // §12.2.1.2: 481 or 408 to an in-dialog request ends the dialog.
            408 | 481 => self.state = DialogState::Terminated,
            // An early dialog dies with a non-2xx final to its INVITE.
            300..=699 if self.state == DialogState::Early && cseq.method == Method::Invite => {
                self.state = DialogState::Terminated
            }
            _ => {}
        }
        if cseq.method == Method::Bye && status >= 200 {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }
}

/// All dialogs of a user agent, forks kept apart by their To tag.
#[derive(Debug, Default, Clone)]
pub struct Dialogs {
    dialogs: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    pub fn new() -> Self {
        Self::default()
    }

    /// UAC: a response to the dialog-creating `request`. A 1xx with a To tag
    /// or a 2xx creates the dialog for its To tag (one early dialog per
    /// fork) or updates it; a non-2xx final ends every early dialog of the
    /// request. Returns the dialog the response belongs to, if any.
    pub fn handle_uac_response(
        &mut self,
        request: &Request,
        response: &Response,
    ) -> Result<Option<DialogId>, DialogError> {
        let status = response.status_code.code();
        if status >= 300 {
            let call = call_id(response)?;
            let local_tag = from_typed(response)?.tag().map(|t| t.to_string());
            for d in self.dialogs.values_mut() {
                if d.state == DialogState::Early
                    && d.id.call_id == call
                    && Some(&d.id.local_tag) == local_tag.as_ref()
                {
                    d.state = DialogState::Terminated;
                }
            }
            return Ok(None);
        }
        if status <= 100 {
            return Ok(None);
        }
        let id = match DialogId::for_received_response(response) {
            Ok(id) => id,
            Err(DialogError::MissingTag("To")) if status < 200 => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.dialogs.get_mut(&id) {
            Some(d) => d.handle_response(response)?,
            None => {
                let d = Dialog::new_uac(request, response)?;
                self.dialogs.insert(id.clone(), d);
            }
        }
        Ok(Some(id))
    }

    pub fn insert(&mut self, dialog: Dialog) {
        self.dialogs.insert(dialog.id.clone(), dialog);
    }

    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.get_mut(id)
    }

    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.dialogs.remove(id)
    }

    /// The dialog a received in-dialog request belongs to.
    pub fn for_request(&mut self, request: &Request) -> Option<&mut Dialog> {
        let id = DialogId::for_received_request(request).ok()?;
        self.dialogs.get_mut(&id)
    }

    /// The dialogs sharing a Call-ID and local tag (the forks of one INVITE).
    pub fn forks<'a>(
        &'a self,
        call_id: &'a str,
        local_tag: &'a str,
    ) -> impl Iterator<Item = &'a Dialog> + 'a {
        self.dialogs
            .values()
            .filter(move |d| d.id.call_id == call_id && d.id.local_tag == local_tag)
    }

    /// Drop terminated dialogs.
    pub fn purge(&mut self) {
        self.dialogs
            .retain(|_, d| d.state != DialogState::Terminated);
    }

    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }
}

fn is_loose(route: &UriWithParams) -> bool {
    route
        .uri
        .params
        .iter()
        .chain(route.params.iter())
        .any(|p| matches!(p, Param::Lr))
}

fn call_id<M: HeadersExt>(m: &M) -> Result<String, DialogError> {
    Ok(m.call_id_header()
        .map_err(|_| DialogError::MissingHeader("Call-ID"))?
        .value()
        .trim()
        .to_string())
}

fn from_typed<M: HeadersExt>(m: &M) -> Result<rsip::typed::From, DialogError> {
    m.from_header()
        .map_err(|_| DialogError::MissingHeader("From"))?
        .typed()
        .map_err(|e| bad("From", e))
}

fn to_typed<M: HeadersExt>(m: &M) -> Result<rsip::typed::To, DialogError> {
    m.to_header()
        .map_err(|_| DialogError::MissingHeader("To"))?
        .typed()
        .map_err(|e| bad("To", e))
}

/// The Contact URI. rsip's typed Contact refuses quoted feature-tag values
/// (`+g.3gpp.icsi-ref="urn%3A..."`, `+sip.instance="<urn:...>"`), so those
/// are read with our own name-addr and URI parsers instead.
fn contact_uri<M: HeadersExt>(m: &M) -> Result<Uri, DialogError> {
    let header = m
        .contact_header()
        .map_err(|_| DialogError::MissingHeader("Contact"))?;
    match header.typed() {
        Ok(c) => Ok(c.uri),
        Err(e) => {
            let value = header.value().to_string();
            super::headers::NameAddr::parse(&value)
                .ok()
                .and_then(|n| super::message::parse_uri(&n.uri).ok())
                .ok_or_else(|| bad("Contact", e))
        }
    }
}

/// Every Record-Route entry, top to bottom, across headers.
fn record_route<M: HeadersExt>(m: &M) -> Result<Vec<UriWithParams>, DialogError> {
    let mut out = Vec::new();
    for h in m.headers().iter() {
        if let Header::RecordRoute(rr) = h {
            let typed = rr.typed().map_err(|e| bad("Record-Route", e))?;
            out.extend(typed.uris().iter().cloned());
        }
    }
    Ok(out)
}
