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
        let branch = match via.branch() {
            Some(b) => b.to_string(),
            None => rfc2543_branch(request)?,
        };
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

/// RFC 3261 §17.2.3: a request from an RFC 2543 element (no branch) is
/// matched on its Request-URI, From tag, Call-ID and CSeq number (the top
/// Via goes into `sent_by`); the key folds them into one pseudo-branch that
/// can never carry the magic cookie. The To tag is left out so the ACK of a
/// non-2xx, which carries our To tag, still matches its INVITE.
fn rfc2543_branch(request: &rsip::Request) -> Result<String, TransactionError> {
    use crate::proto::sip::headers::HeadersExt as _;
    let call_id = request
        .headers
        .get_raw("Call-ID")
        .ok_or(TransactionError::MissingHeader("Call-ID"))?;
    let from_tag = crate::proto::sip::build::from_tag(&request.headers).unwrap_or_default();
    Ok(format!(
        "rfc2543|{}|{}|{}|{}",
        request.uri,
        from_tag,
        call_id.trim(),
        cseq(request)?.seq
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, via: &str) -> rsip::Request {
        let text = format!(
            "{method} sip:bob@example.com SIP/2.0\r\nVia: {via}\r\nTo: <sip:bob@example.com>\r\n\
             From: <sip:alice@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        rsip::Request::try_from(text.as_str()).unwrap()
    }

    #[test]
    fn ack_matches_invite_and_cancel_does_not() {
        let via = "SIP/2.0/UDP host.example.com;branch=z9hG4bKx";
        let invite = TsxKey::server(&request("INVITE", via)).unwrap();
        assert_eq!(TsxKey::server(&request("ACK", via)).unwrap(), invite);
        let cancel = TsxKey::server(&request("CANCEL", via)).unwrap();
        assert_ne!(cancel, invite);
        assert_eq!(cancel.with_method(Method::Invite), invite);
        assert!(invite.is_rfc3261());
    }

    #[test]
    fn sent_by_is_part_of_the_server_key_only() {
        let a = request("OPTIONS", "SIP/2.0/UDP Host.Example.com;branch=z9hG4bKx");
        let b = request(
            "OPTIONS",
            "SIP/2.0/UDP host.example.com:5060;branch=z9hG4bKx",
        );
        let c = request("OPTIONS", "SIP/2.0/UDP other.example.com;branch=z9hG4bKx");
        assert_eq!(TsxKey::server(&a).unwrap(), TsxKey::server(&b).unwrap());
        assert_ne!(TsxKey::server(&a).unwrap(), TsxKey::server(&c).unwrap());
        assert_eq!(TsxKey::client(&a).unwrap(), TsxKey::client(&c).unwrap());
    }

    #[test]
    fn missing_branch_and_call_id_is_an_error() {
        let text = "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com\r\n\
                    CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let r = rsip::Request::try_from(text).unwrap();
        assert_eq!(
            TsxKey::server(&r),
            Err(TransactionError::MissingHeader("Call-ID"))
        );
    }

    #[test]
    fn branchless_request_gets_an_rfc2543_key() {
        let invite = request("INVITE", "SIP/2.0/UDP host.example.com");
        let key = TsxKey::server(&invite).unwrap();
        assert!(!key.is_rfc3261());
        assert_eq!(key.sent_by.as_deref(), Some("host.example.com:5060"));
        // its ACK matches it; another CSeq does not
        let ack = request("ACK", "SIP/2.0/UDP host.example.com");
        assert_eq!(TsxKey::server(&ack).unwrap(), key);
        let text = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP host.example.com\r\n\
                    To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\n\
                    Call-ID: c\r\nCSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n";
        let other = rsip::Request::try_from(text).unwrap();
        assert_ne!(TsxKey::server(&other).unwrap(), key);
    }
}
