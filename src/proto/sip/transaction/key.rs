//! Transaction matching keys (RFC 3261 §17.1.3, §17.2.3).

use super::{TransactionError, cseq, top_via};
use rsip::Method;
use std::hash::{Hash, Hasher};

/// The RFC 3261 branch magic cookie (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Which side of a transaction a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsxRole {
    Client,
    Server,
}

/// Identifies a transaction: the top Via branch, the method (ACK folded into
/// INVITE, CANCEL kept apart) and, for server transactions, the top Via
/// sent-by (RFC 3261 §17.2.3). Client keys leave sent-by out (§17.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsxKey {
    pub role: TsxRole,
    pub branch: String,
    pub method: Method,
    pub sent_by: Option<String>,
}

impl Hash for TsxKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.role.hash(state);
        self.branch.hash(state);
        // rsip::Method is not Hash.
        self.method.to_string().hash(state);
        self.sent_by.hash(state);
    }
}

/// ACK matches the INVITE transaction it acknowledges (§17.2.3).
fn fold_ack(method: Method) -> Method {
    match method {
        Method::Ack => Method::Invite,
        m => m,
    }
}

fn sent_by(via: &rsip::typed::Via) -> String {
    let port = via.uri.port().map(|p| *p.value()).unwrap_or(5060);
    format!(
        "{}:{}",
        via.uri.host().to_string().to_ascii_lowercase(),
        port
    )
}

impl TsxKey {
    /// The key of a client transaction created for `request` (we sent it).
    pub fn client(request: &rsip::Request) -> Result<Self, TransactionError> {
        Ok(Self {
            role: TsxRole::Client,
            branch: super::top_branch(request)?,
            method: fold_ack(request.method),
            sent_by: None,
        })
    }

    /// The key of the client transaction a received response belongs to:
    /// its top Via branch and its CSeq method (§17.1.3).
    pub fn for_response(response: &rsip::Response) -> Result<Self, TransactionError> {
        Ok(Self {
            role: TsxRole::Client,
            branch: super::top_branch(response)?,
            method: fold_ack(cseq(response)?.method),
            sent_by: None,
        })
    }

    /// The key of the server transaction a received request belongs to
    /// (§17.2.3): branch, sent-by, method with ACK matching INVITE.
    pub fn server(request: &rsip::Request) -> Result<Self, TransactionError> {
        let via = top_via(request)?;
        let branch = via
            .branch()
            .map(|b| b.to_string())
            .ok_or(TransactionError::MissingBranch)?;
        Ok(Self {
            role: TsxRole::Server,
            branch,
            method: fold_ack(request.method),
            sent_by: Some(sent_by(&via)),
        })
    }

    /// The same key with another method: the INVITE a CANCEL refers to
    /// shares its branch and sent-by (RFC 3261 §9.2).
    pub fn with_method(&self, method: Method) -> Self {
        Self {
            method: fold_ack(method),
            ..self.clone()
        }
    }

    /// Whether the branch carries the RFC 3261 magic cookie.
    pub fn is_rfc3261(&self) -> bool {
        self.branch.starts_with(MAGIC_COOKIE)
    }
}
