//! Parse and print of the Digest challenge (`WWW-Authenticate`,
//! `Proxy-Authenticate`) and credentials (`Authorization`,
//! `Proxy-Authorization`) header values: RFC 7235 §2.1 auth-params with
//! RFC 7230 §3.2.6 quoted strings, RFC 7616 §3.3 / §3.4 parameters,
//! RFC 3261 §25.1 quoting rules.

use super::{Algorithm, DigestError, Qop};

/// An auth-param we keep but do not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam {
    pub name: String,
    /// The value with quotes removed and escapes resolved.
    pub value: String,
    /// Whether it was (and will be printed) a quoted-string.
    pub quoted: bool,
}

/// A Digest challenge (RFC 7616 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub domain: Option<String>,
    pub nonce: String,
    pub opaque: Option<String>,
    pub stale: bool,
    /// `None` means MD5 (RFC 7616 §3.3).
    pub algorithm: Option<Algorithm>,
    /// Empty for an RFC 2069 challenge without qop.
    pub qop: Vec<Qop>,
    pub userhash: bool,
    pub other: Vec<AuthParam>,
}

impl Challenge {
    /// A challenge with only realm and nonce.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            domain: None,
            nonce: nonce.into(),
            opaque: None,
            stale: false,
            algorithm: None,
            qop: Vec::new(),
            userhash: false,
            other: Vec::new(),
        }
    }

    /// The algorithm, MD5 when absent.
    pub fn effective_algorithm(&self) -> Algorithm {
        self.algorithm.clone().unwrap_or(Algorithm::Md5)
    }

    fn from_params(params: Vec<AuthParam>) -> Result<Self, DigestError> {
        let mut c = Challenge::new("", "");
        let (mut realm, mut nonce) = (None, None);
        for p in params {
            match p.name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(p.value),
                "nonce" => nonce = Some(p.value),
                "domain" => c.domain = Some(p.value),
                "opaque" => c.opaque = Some(p.value),
                "stale" => c.stale = p.value.eq_ignore_ascii_case("true"),
                "algorithm" => c.algorithm = Some(Algorithm::from_token(&p.value)),
                "qop" => {
                    c.qop = p
                        .value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(Qop::from_token)
                        .collect()
                }
                "userhash" => c.userhash = p.value.eq_ignore_ascii_case("true"),
                _ => c.other.push(p),
            }
        }
        c.realm = realm.ok_or(DigestError::MissingParam("realm"))?;
        c.nonce = nonce.ok_or(DigestError::MissingParam("nonce"))?;
        Ok(c)
    }
}

impl std::fmt::Display for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest realm={}", quote(&self.realm))?;
        if let Some(d) = &self.domain {
            write!(f, ", domain={}", quote(d))?;
        }
        write!(f, ", nonce={}", quote(&self.nonce))?;
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", quote(o))?;
        }
        if self.stale {
            f.write_str(", stale=TRUE")?;
        }
        if let Some(a) = &self.algorithm {
            write!(f, ", algorithm={a}")?;
        }
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(Qop::as_str).collect();
            write!(f, ", qop={}", quote(&list.join(",")))?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        write_other(f, &self.other)
    }
}

impl std::str::FromStr for Challenge {
    type Err = DigestError;

    /// The first challenge of the value, which must be Digest.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut all = tokenize(s)?.into_iter();
        let (scheme, params) = all.next().ok_or(DigestError::Syntax {
            at: 0,
            expected: "auth-scheme",
        })?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest(scheme));
        }
        Challenge::from_params(params)
    }
}

/// Every Digest challenge of one header value (RFC 7235 §4.1 allows
/// several, comma-separated); other schemes and unreadable Digest
/// challenges are skipped.
pub fn parse_challenges(s: &str) -> Result<Vec<Challenge>, DigestError> {
    Ok(tokenize(s)?
        .into_iter()
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Digest"))
        .filter_map(|(_, params)| Challenge::from_params(params).ok())
        .collect())
}

/// [`Challenge`] parser over bytes, for fuzzing.
pub fn parse_challenge_bytes(b: &[u8]) -> Result<Challenge, DigestError> {
    std::str::from_utf8(b)
        .map_err(|_| DigestError::NotUtf8)?
        .parse()
}

/// Digest credentials (RFC 7616 §3.4, RFC 3261 §25.1 `digest-response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    /// `None` means MD5.
    pub algorithm: Option<Algorithm>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    /// `None` for the RFC 2069 form.
    pub qop: Option<Qop>,
    pub nc: Option<u32>,
    pub userhash: bool,
    pub other: Vec<AuthParam>,
}

impl Credentials {
    /// The algorithm, MD5 when absent.
    pub fn effective_algorithm(&self) -> Algorithm {
        self.algorithm.clone().unwrap_or(Algorithm::Md5)
    }

    fn from_params(params: Vec<AuthParam>) -> Result<Self, DigestError> {
        let (mut username, mut realm, mut nonce, mut uri, mut response) =
            (None, None, None, None, None);
        let mut c = Credentials {
            username: String::new(),
            realm: String::new(),
            nonce: String::new(),
            uri: String::new(),
            response: String::new(),
            algorithm: None,
            cnonce: None,
            opaque: None,
            qop: None,
            nc: None,
            userhash: false,
            other: Vec::new(),
        };
        for p in params {
            match p.name.to_ascii_lowercase().as_str() {
                "username" => username = Some(p.value),
                "realm" => realm = Some(p.value),
                "nonce" => nonce = Some(p.value),
                "uri" => uri = Some(p.value),
                "response" => response = Some(p.value),
                "algorithm" => c.algorithm = Some(Algorithm::from_token(&p.value)),
                "cnonce" => c.cnonce = Some(p.value),
                "opaque" => c.opaque = Some(p.value),
                "qop" => c.qop = Some(Qop::from_token(&p.value)),
                "nc" => {
                    // RFC 7616 §3.4: nc = 8LHEX (we accept 1 to 8 digits)
                    let ok = !p.value.is_empty()
                        && p.value.len() <= 8
                        && p.value.bytes().all(|b| b.is_ascii_hexdigit());
                    let n = ok
                        .then(|| u32::from_str_radix(&p.value, 16).ok())
                        .flatten()
                        .ok_or(DigestError::BadParam {
                            name: "nc",
                            value: p.value.clone(),
                        })?;
                    c.nc = Some(n);
                }
                "userhash" => c.userhash = p.value.eq_ignore_ascii_case("true"),
                _ => c.other.push(p),
            }
        }
        c.username = username.ok_or(DigestError::MissingParam("username"))?;
        c.realm = realm.ok_or(DigestError::MissingParam("realm"))?;
        c.nonce = nonce.ok_or(DigestError::MissingParam("nonce"))?;
        c.uri = uri.ok_or(DigestError::MissingParam("uri"))?;
        c.response = response.ok_or(DigestError::MissingParam("response"))?;
        Ok(c)
    }
}

impl std::fmt::Display for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response)
        )?;
        if let Some(a) = &self.algorithm {
            write!(f, ", algorithm={a}")?;
        }
        if let Some(c) = &self.cnonce {
            write!(f, ", cnonce={}", quote(c))?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", quote(o))?;
        }
        // RFC 3261 §25.1: message-qop and nonce-count are not quoted
        if let Some(q) = &self.qop {
            write!(f, ", qop={q}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={}", super::format_nc(nc))?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        write_other(f, &self.other)
    }
}

impl std::str::FromStr for Credentials {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut all = tokenize(s)?.into_iter();
        let (scheme, params) = all.next().ok_or(DigestError::Syntax {
            at: 0,
            expected: "auth-scheme",
        })?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest(scheme));
        }
        Credentials::from_params(params)
    }
}

/// [`Credentials`] parser over bytes, for fuzzing.
pub fn parse_credentials_bytes(b: &[u8]) -> Result<Credentials, DigestError> {
    std::str::from_utf8(b)
        .map_err(|_| DigestError::NotUtf8)?
        .parse()
}

fn write_other(f: &mut std::fmt::Formatter<'_>, other: &[AuthParam]) -> std::fmt::Result {
    for p in other {
        if p.quoted {
            write!(f, ", {}={}", p.name, quote(&p.value))?;
        } else {
            write!(f, ", {}={}", p.name, p.value)?;
        }
    }
    Ok(())
}

/// A quoted-string with `"` and `\` escaped (RFC 7230 §3.2.6).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// RFC 7230 §3.2.6 tchar.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_lws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// A quoted-string; the cursor is on the opening quote.
    fn quoted(&mut self) -> Result<String, DigestError> {
        let start = self.pos;
        self.pos += 1;
        let rest = self.s.get(self.pos..).ok_or(DigestError::Syntax {
            at: start,
            expected: "quoted-string",
        })?;
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, esc)) => out.push(esc),
                    None => break,
                },
                _ => out.push(ch),
            }
        }
        Err(DigestError::Syntax {
            at: start,
            expected: "closing quote",
        })
    }
}

/// Split a header value into challenges / credentials: scheme and its
/// auth-params. A token68 (RFC 7235 §2.1, e.g. Basic) becomes one param
/// with an empty name.
fn tokenize(s: &str) -> Result<Vec<(String, Vec<AuthParam>)>, DigestError> {
    let mut c = Cursor { s, pos: 0 };
    let mut out = Vec::new();
    loop {
        while matches!(c.peek(), Some(b' ' | b'\t' | b'\r' | b'\n' | b',')) {
            c.pos += 1;
        }
        if c.peek().is_none() {
            break;
        }
        let scheme = c.token();
        if scheme.is_empty() {
            return Err(DigestError::Syntax {
                at: c.pos,
                expected: "auth-scheme",
            });
        }
        let mut params = Vec::new();
        c.skip_lws();
        loop {
            let save = c.pos;
            let name = c.token();
            if name.is_empty() {
                break;
            }
            c.skip_lws();
            if c.peek() != Some(b'=') {
                // Not `name=`: the next challenge's scheme.
                c.pos = save;
                break;
            }
            c.pos += 1;
            c.skip_lws();
            let (value, quoted) = if c.peek() == Some(b'"') {
                (c.quoted()?, true)
            } else {
                let v = c.token();
                if v.is_empty() {
                    // token68 such as `dXNlcjpw==`
                    while c.peek() == Some(b'=') {
                        c.pos += 1;
                    }
                    (String::new(), false)
                } else {
                    (v.to_owned(), false)
                }
            };
            params.push(AuthParam {
                name: name.to_owned(),
                value,
                quoted,
            });
            c.skip_lws();
            match c.peek() {
                Some(b',') => {
                    c.pos += 1;
                    while matches!(c.peek(), Some(b' ' | b'\t' | b'\r' | b'\n' | b',')) {
                        c.pos += 1;
                    }
                }
                None => break,
                Some(_) => {
                    return Err(DigestError::Syntax {
                        at: c.pos,
                        expected: "comma",
                    });
                }
            }
        }
        out.push((scheme.to_owned(), params));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The values of the `name` header fields of an RFC example file
    /// (folded lines, LF ends: see tests/data/rfc7616/README.md).
    fn header_values(text: &str, name: &str) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        for line in text.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                }
            } else {
                fields.push(line.to_owned());
            }
        }
        fields
            .iter()
            .filter_map(|f| f.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    const RFC7616_CHALLENGE: &str =
        include_str!("../../../../tests/data/rfc7616/challenge-401.txt");
    const RFC7616_SHA256: &str =
        include_str!("../../../../tests/data/rfc7616/authorization-sha256.txt");
    const RFC7616_MD5: &str = include_str!("../../../../tests/data/rfc7616/authorization-md5.txt");

    #[test]
    fn parses_rfc7616_challenges() {
        let values = header_values(RFC7616_CHALLENGE, "WWW-Authenticate");
        assert_eq!(values.len(), 2);
        let c: Challenge = values[0].parse().unwrap();
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(c.algorithm, Some(Algorithm::Sha256));
        assert_eq!(c.nonce, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v");
        assert_eq!(
            c.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        assert_eq!(c.to_string().parse::<Challenge>().unwrap(), c);
        let md5: Challenge = values[1].parse().unwrap();
        assert_eq!(md5.algorithm, Some(Algorithm::Md5));
    }

    #[test]
    fn parses_rfc7616_credentials() {
        for (text, alg) in [
            (RFC7616_SHA256, Algorithm::Sha256),
            (RFC7616_MD5, Algorithm::Md5),
        ] {
            let values = header_values(text, "Authorization");
            let c: Credentials = values[0].parse().unwrap();
            assert_eq!(c.username, "Mufasa");
            assert_eq!(c.algorithm, Some(alg));
            assert_eq!(c.nc, Some(1));
            assert_eq!(c.qop, Some(Qop::Auth));
            assert_eq!(c.uri, "/dir/index.html");
            assert_eq!(c.to_string().parse::<Credentials>().unwrap(), c);
            // RFC 7616 §3.9.1: the response is that of "Circle of Life"
            let response = super::super::compute_response(&super::super::ResponseInput {
                algorithm: &c.effective_algorithm(),
                username: &c.username,
                realm: &c.realm,
                password: "Circle of Life",
                nonce: &c.nonce,
                qop: c.qop.as_ref(),
                nc: 1,
                cnonce: c.cnonce.as_deref().unwrap_or(""),
                method: "GET",
                uri: &c.uri,
                body: b"",
            });
            assert_eq!(response, c.response);
        }
    }

    #[test]
    fn parses_sipp_credentials() {
        // The shape SIPp's createAuthHeaderDigest prints (no spaces).
        let s = r#"Digest username="alice",realm="isc.local",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="abc",response="0123",algorithm=MD5,opaque="xyz""#;
        let c: Credentials = s.parse().unwrap();
        assert_eq!(c.cnonce.as_deref(), Some("6b8b4567"));
        assert_eq!(c.algorithm, Some(Algorithm::Md5));
        assert_eq!(c.opaque.as_deref(), Some("xyz"));
    }

    #[test]
    fn quoted_escapes_round_trip() {
        let mut c = Challenge::new(r#"we "quote" \ here"#, "n");
        c.other.push(AuthParam {
            name: "charset".into(),
            value: "UTF-8".into(),
            quoted: false,
        });
        let printed = c.to_string();
        assert!(printed.contains(r#"realm="we \"quote\" \\ here""#));
        assert_eq!(printed.parse::<Challenge>().unwrap(), c);
    }

    #[test]
    fn several_challenges_in_one_value() {
        let s = r#"Basic realm="x", Digest realm="a", nonce="1", algorithm=SHA-256, qop="auth", Digest realm="a", nonce="1", algorithm=MD5"#;
        let all = parse_challenges(s).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].algorithm, Some(Algorithm::Sha256));
        assert_eq!(all[1].algorithm, Some(Algorithm::Md5));
        assert_eq!(
            "Basic dXNlcjpw==".parse::<Challenge>(),
            Err(DigestError::NotDigest("Basic".into()))
        );
    }

    #[test]
    fn missing_and_bad_params() {
        assert_eq!(
            r#"Digest nonce="1""#.parse::<Challenge>(),
            Err(DigestError::MissingParam("realm"))
        );
        let bad_nc = r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", nc=zz"#;
        assert!(matches!(
            bad_nc.parse::<Credentials>(),
            Err(DigestError::BadParam { name: "nc", .. })
        ));
        assert!(matches!(
            r#"Digest realm="unterminated"#.parse::<Challenge>(),
            Err(DigestError::Syntax { .. })
        ));
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~äé]{0,12}"
    }

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}"
    }

    fn algorithm() -> impl Strategy<Value = Option<Algorithm>> {
        prop_oneof![
            Just(None),
            Just(Some(Algorithm::Md5)),
            Just(Some(Algorithm::Sha256)),
            Just(Some(Algorithm::Sha512_256Sess)),
            "X[A-Z0-9]{1,6}".prop_map(|s| Some(Algorithm::Other(s))),
        ]
    }

    fn other() -> impl Strategy<Value = Vec<AuthParam>> {
        prop::collection::vec(
            ("x[a-z]{1,6}", text(), token(), any::<bool>()).prop_map(|(name, t, k, quoted)| {
                AuthParam {
                    name,
                    value: if quoted { t } else { k },
                    quoted,
                }
            }),
            0..3,
        )
    }

    proptest! {
        #[test]
        fn challenge_round_trips(
            realm in text(), nonce in text(), domain in prop::option::of(text()),
            opaque in prop::option::of(text()), stale in any::<bool>(),
            algorithm in algorithm(), auth in any::<bool>(), auth_int in any::<bool>(),
            userhash in any::<bool>(), other in other(),
        ) {
            let mut qop = Vec::new();
            if auth { qop.push(Qop::Auth) }
            if auth_int { qop.push(Qop::AuthInt) }
            let c = Challenge { realm, domain, nonce, opaque, stale, algorithm, qop, userhash, other };
            prop_assert_eq!(c.to_string().parse::<Challenge>().unwrap(), c);
        }

        #[test]
        fn credentials_round_trip(
            username in text(), realm in text(), nonce in text(), uri in text(),
            response in "[0-9a-f]{0,64}", algorithm in algorithm(),
            cnonce in prop::option::of(text()), opaque in prop::option::of(text()),
            qop in prop::option::of(prop_oneof![Just(Qop::Auth), Just(Qop::AuthInt)]),
            nc in prop::option::of(any::<u32>()), userhash in any::<bool>(), other in other(),
        ) {
            let c = Credentials {
                username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc,
                userhash, other,
            };
            prop_assert_eq!(c.to_string().parse::<Credentials>().unwrap(), c);
        }

        #[test]
        fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_challenge_bytes(&bytes);
            let _ = parse_credentials_bytes(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = parse_challenges(s);
            }
        }

        #[test]
        fn parsers_never_panic_on_near_valid(s in r#"(Digest|Basic)?[ ,]*([a-z]{1,5}[ ]*=[ ]*("[^"]{0,5}"?|[a-z0-9=]{0,5})[ ,]*){0,6}"#) {
            let _ = s.parse::<Challenge>();
            let _ = s.parse::<Credentials>();
            let _ = parse_challenges(&s);
        }
    }
}
