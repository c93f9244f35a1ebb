//! Shared grammar pieces: generic params, comma lists, name-addr (RFC 3261 §25.1).
//! Lenient on whitespace, strict on structure; never panics.

use super::HeaderError;
use std::fmt;

/// `*( SEMI generic-param )`, names kept as written, looked up case-insensitively.
/// Values keep their quotes, so printing gives back what was parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Parses `;a=b;c` (leading `;` optional).
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let mut out = Vec::new();
        for part in split_top(s, b';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((n, v)) => {
                    let (n, v) = (n.trim(), v.trim());
                    if n.is_empty() || !n.bytes().all(is_param_char) {
                        return Err(HeaderError::invalid("param", part));
                    }
                    out.push((n.to_owned(), Some(v.to_owned())));
                }
                None => {
                    if !part.bytes().all(is_param_char) {
                        return Err(HeaderError::invalid("param", part));
                    }
                    out.push((part.to_owned(), None));
                }
            }
        }
        Ok(Self(out))
    }

    /// The raw value (quotes kept) of the first param named `name`; `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The value with surrounding quotes and backslash escapes removed.
    pub fn get_unquoted(&self, name: &str) -> Option<String> {
        self.get(name).flatten().map(unquote)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Replaces (or appends) a param.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

fn is_param_char(b: u8) -> bool {
    // token plus the characters seen in feature tags and IPv6 values
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~:[]".contains(&b)
}

/// RFC 3261 §25.1 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Removes one level of quotes and `\` escapes; returns the input trimmed if not quoted.
pub fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => s.to_owned(),
    }
}

/// Quotes `s` as a quoted-string, escaping `"` and `\`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits on `sep` outside quoted strings, `<...>` and `(...)` comments.
pub fn split_top(s: &str, sep: u8) -> Vec<&str> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut paren, mut escaped) = (false, false, 0u32, false);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b'(' if !quoted => paren += 1,
            b')' if !quoted => paren = paren.saturating_sub(1),
            _ if b == sep && !quoted && !angle && paren == 0 => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or(""));
    out
}

/// Splits a comma-separated header value into its non-empty elements.
pub fn split_list(s: &str) -> Vec<&str> {
    split_top(s, b',')
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// `name-addr / addr-spec` followed by header params (From, To, Contact, Route, P-Asserted-
/// Identity, Refer-To, ...). The URI is kept as text so that values rsip's URI grammar
/// refuses (RFC 4475 §3.1.1) still parse; convert with `message::parse_uri` when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without quotes (None when absent).
    pub display_name: Option<String>,
    pub uri: String,
    /// Whether the URI was (and will be printed) in angle brackets.
    pub angle: bool,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            display_name: None,
            uri: uri.into(),
            angle: true,
            params: Params::default(),
        }
    }

    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Self {
        self.params.set(name, value);
        self
    }

    pub fn tag(&self) -> Option<String> {
        self.params.get_unquoted("tag")
    }

    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(HeaderError::invalid("name-addr", s));
        }
        let (display_name, rest) = if s.starts_with('"') {
            let end = closing_quote(s).ok_or_else(|| HeaderError::invalid("name-addr", s))?;
            let name = unquote(s.get(..=end).unwrap_or(""));
            (Some(name), s.get(end + 1..).unwrap_or("").trim_start())
        } else if let Some(lt) = s.find('<') {
            let name = s.get(..lt).unwrap_or("").trim();
            let name = (!name.is_empty()).then(|| name.to_owned());
            (name, s.get(lt..).unwrap_or(""))
        } else {
            (None, s)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let gt = inner
                .find('>')
                .ok_or_else(|| HeaderError::invalid("name-addr", s))?;
            let uri = inner.get(..gt).unwrap_or("").trim();
            check_uri(uri, s)?;
            let params = Params::parse(inner.get(gt + 1..).unwrap_or(""))?;
            Ok(Self {
                display_name,
                uri: uri.to_owned(),
                angle: true,
                params,
            })
        } else if display_name.is_some() {
            Err(HeaderError::invalid("name-addr", s))
        } else {
            // addr-spec: params after the first ';' belong to the header (RFC 3261 §20.10)
            let (uri, params) = match rest.split_once(';') {
                Some((u, p)) => (u.trim(), Params::parse(p)?),
                None => (rest.trim(), Params::default()),
            };
            check_uri(uri, s)?;
            Ok(Self {
                display_name: None,
                uri: uri.to_owned(),
                angle: false,
                params,
            })
        }
    }
}

fn check_uri(uri: &str, whole: &str) -> Result<(), HeaderError> {
    let ok = uri
        .split_once(':')
        .is_some_and(|(scheme, rest)| is_scheme(scheme) && !rest.is_empty())
        && !uri
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'<' || b == b'>');
    if ok {
        Ok(())
    } else {
        Err(HeaderError::invalid("uri", whole))
    }
}

fn is_scheme(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate().skip(1) {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return Some(i);
        }
    }
    None
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write!(f, "{} ", quote(name))?;
        }
        // RFC 3261 §20.10: a URI holding ';', ',' or '?' must be in angle brackets.
        if self.angle || self.display_name.is_some() || self.uri.contains([';', ',', '?']) {
            write!(f, "<{}>", self.uri)?;
        } else {
            f.write_str(&self.uri)?;
        }
        write!(f, "{}", self.params)
    }
}

/// A comma list of name-addrs (Route, Record-Route, Path, P-Asserted-Identity, ...).
pub fn parse_name_addr_list(s: &str) -> Result<Vec<NameAddr>, HeaderError> {
    let items = split_list(s);
    if items.is_empty() {
        return Err(HeaderError::invalid("name-addr list", s));
    }
    items.into_iter().map(NameAddr::parse).collect()
}

pub fn print_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_round_trip() {
        for s in [
            "\"Bob \\\"B\\\"\" <sip:bob@biloxi.com>;tag=a6c85cf",
            "<sip:alice@atlanta.com>",
            "sip:user@example.com;tag=11141343",
            "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
        ] {
            let n = NameAddr::parse(s).unwrap();
            assert_eq!(NameAddr::parse(&n.to_string()).unwrap(), n, "{s}");
        }
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        assert_eq!(n.tag().as_deref(), Some("323"));
        let n = NameAddr::parse("sip:user@example.com;tag=1").unwrap();
        assert_eq!(
            (n.uri.as_str(), n.tag()),
            ("sip:user@example.com", Some("1".into()))
        );
    }

    #[test]
    fn rejects() {
        for s in ["", "<sip:a", "\"x <sip:a>", "Bob", "<nocolon>"] {
            assert!(NameAddr::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn lists_respect_quotes_and_angles() {
        assert_eq!(
            split_list("\"a,b\" <sip:x;a=1,2>, <sip:y>"),
            vec!["\"a,b\" <sip:x;a=1,2>", "<sip:y>"]
        );
    }
}
