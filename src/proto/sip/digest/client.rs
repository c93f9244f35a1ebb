//! The answering side of Digest (RFC 3261 §22.2–22.3, RFC 8760 §2.3): read
//! the challenges of a 401/407, keep the strongest per realm, and add
//! credentials to this and later requests, counting `nc` per nonce.

use super::server::AuthKind;
use super::{
    Algorithm, Challenge, Credentials, DigestError, Qop, ResponseInput, compute_response,
    parse_challenges,
};

#[derive(Debug, Clone)]
struct Active {
    kind: AuthKind,
    challenge: Challenge,
    algorithm: Algorithm,
    qop: Option<Qop>,
    nc: u32,
}

/// Answers Digest challenges for one user. Sans-IO: the cnonce comes from
/// the caller.
#[derive(Debug, Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    active: Vec<Active>,
}

impl DigestClient {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            active: Vec::new(),
        }
    }

    /// The username credentials are sent for.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether a challenge is held, i.e. requests will carry credentials.
    pub fn has_challenge(&self) -> bool {
        !self.active.is_empty()
    }

    /// The algorithm in use for `realm`, if challenged there.
    pub fn algorithm_for(&self, realm: &str) -> Option<&Algorithm> {
        self.active
            .iter()
            .find(|a| a.challenge.realm == realm)
            .map(|a| &a.algorithm)
    }

    /// Forget every challenge (e.g. after a change of server).
    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// Read the challenges of a 401 or 407. `Ok` means: resend the request
    /// through [`authorize`](Self::authorize).
    ///
    /// Fails with [`DigestError::Rejected`] when a realm we already
    /// answered challenges again without `stale=true` (a wrong password),
    /// and [`DigestError::NoSupportedChallenge`] when nothing can be answered.
    pub fn handle_challenge(&mut self, response: &rsip::Response) -> Result<(), DigestError> {
        let kind = match response.status_code {
            rsip::StatusCode::ProxyAuthenticationRequired => AuthKind::Proxy,
            _ => AuthKind::Www,
        };
        let mut offered = Vec::new();
        for v in kind.challenge_values(&response.headers) {
            // An unreadable header does not spoil the others.
            offered.extend(parse_challenges(v).unwrap_or_default());
        }
        // RFC 8760 §2.3: use the strongest supported algorithm per realm.
        let mut best: Vec<(Challenge, Algorithm, Option<Qop>)> = Vec::new();
        for c in offered {
            let algorithm = c.effective_algorithm();
            if !algorithm.is_supported() {
                continue;
            }
            let qop = if c.qop.is_empty() {
                None
            } else if c.qop.contains(&Qop::Auth) {
                Some(Qop::Auth)
            } else if c.qop.contains(&Qop::AuthInt) {
                Some(Qop::AuthInt)
            } else {
                continue;
            };
            if algorithm.is_sess() && qop.is_none() {
                continue;
            }
            match best.iter_mut().find(|(b, _, _)| b.realm == c.realm) {
                Some(slot) if slot.1.strength() >= algorithm.strength() => {}
                Some(slot) => *slot = (c, algorithm, qop),
                None => best.push((c, algorithm, qop)),
            }
        }
        if best.is_empty() {
            return Err(DigestError::NoSupportedChallenge);
        }
        let mut rejected = None;
        for (challenge, algorithm, qop) in best {
            let prior = self
                .active
                .iter()
                .position(|a| a.kind == kind && a.challenge.realm == challenge.realm);
            if let Some(i) = prior {
                let used = self.active.get(i).is_some_and(|a| a.nc > 0);
                self.active.remove(i);
                // RFC 7616 §3.3: without stale the credentials were refused
                if used && !challenge.stale {
                    rejected = Some(challenge.realm.clone());
                    continue;
                }
            }
            self.active.push(Active {
                kind,
                challenge,
                algorithm,
                qop,
                nc: 0,
            });
        }
        match rejected {
            Some(realm) => Err(DigestError::Rejected { realm }),
            None => Ok(()),
        }
    }

    /// Credentials for one request, one per challenged realm; each use
    /// counts `nc` up for its nonce.
    pub fn credentials(
        &mut self,
        method: &str,
        uri: &str,
        body: &[u8],
        cnonce: &str,
    ) -> Vec<(AuthKind, Credentials)> {
        let (username, password) = (&self.username, &self.password);
        self.active
            .iter_mut()
            .map(|a| {
                a.nc = a.nc.saturating_add(1);
                let with_qop = a.qop.is_some();
                let response = compute_response(&ResponseInput {
                    algorithm: &a.algorithm,
                    username,
                    realm: &a.challenge.realm,
                    password,
                    nonce: &a.challenge.nonce,
                    qop: a.qop.as_ref(),
                    nc: a.nc,
                    cnonce,
                    method,
                    uri,
                    body,
                });
                let creds = Credentials {
                    username: username.clone(),
                    realm: a.challenge.realm.clone(),
                    nonce: a.challenge.nonce.clone(),
                    uri: uri.to_owned(),
                    response,
                    algorithm: Some(a.algorithm.clone()),
                    cnonce: with_qop.then(|| cnonce.to_owned()),
                    opaque: a.challenge.opaque.clone(),
                    qop: a.qop.clone(),
                    nc: with_qop.then_some(a.nc),
                    userhash: false,
                    other: Vec::new(),
                };
                (a.kind, creds)
            })
            .collect()
    }

    /// Replace the request's `Authorization` / `Proxy-Authorization`
    /// headers with fresh credentials for every challenged realm.
    pub fn authorize(&mut self, request: &mut rsip::Request, cnonce: &str) {
        if self.active.is_empty() {
            return;
        }
        let method = request.method.to_string();
        let uri = request.uri.to_string();
        let creds = self.credentials(&method, &uri, &request.body, cnonce);
        request.headers.retain(|h| {
            !matches!(
                h,
                rsip::Header::Authorization(_) | rsip::Header::ProxyAuthorization(_)
            )
        });
        for (kind, c) in creds {
            request.headers.push(kind.credentials_header(&c));
        }
    }
}
