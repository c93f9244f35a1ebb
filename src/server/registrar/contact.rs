//! Contact (and To) header values as the registrar needs them (RFC 3261
//! §20.10, §25.1): `*`, several comma-separated entries, name-addr or
//! addr-spec, header parameters with quoted-string values such as
//! `+sip.instance="<urn:uuid:...>"`. rsip 0.4 cannot type these (quoted
//! params, several addresses per header), so they are read here; this is
//! to give way to the shared typed headers later.

use crate::server::location_service::{ContactParam, quote};

/// The value of one or more Contact headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactList {
    /// `Contact: *`
    Star,
    Entries(Vec<ContactEntry>),
}

/// One contact: `[display-name] <uri>;params` or `uri;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    pub display_name: Option<String>,
    pub uri: String,
    pub params: Vec<ContactParam>,
}

impl ContactEntry {
    /// The value of the first parameter `name` (case-insensitive); `Some("")`
    /// for a parameter without value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref().unwrap_or(""))
    }
}

impl std::fmt::Display for ContactEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = &self.display_name {
            write!(f, "{} ", quote(d))?;
        }
        write!(f, "<{}>", self.uri)?;
        for p in &self.params {
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for ContactList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Star => f.write_str("*"),
            Self::Entries(e) => {
                let all: Vec<String> = e.iter().map(ToString::to_string).collect();
                f.write_str(&all.join(", "))
            }
        }
    }
}

/// Why a Contact value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    #[error("header value is not UTF-8")]
    NotUtf8,
    #[error("empty contact")]
    Empty,
    #[error("unterminated {0}")]
    Unterminated(&'static str),
    #[error("bad contact parameter {0:?}")]
    BadParam(String),
    #[error("`*` mixed with other contacts")]
    StarWithOthers,
}

/// Parse one header value (possibly several contacts).
pub fn parse_contacts(s: &str) -> Result<ContactList, ContactError> {
    let parts = split_outside(s, ',')?;
    if parts.len() == 1 && parts.first().is_some_and(|p| p.trim() == "*") {
        return Ok(ContactList::Star);
    }
    let mut out = Vec::new();
    for p in parts {
        if p.trim() == "*" {
            return Err(ContactError::StarWithOthers);
        }
        out.push(parse_entry(p)?);
    }
    Ok(ContactList::Entries(out))
}

/// [`parse_contacts`] over bytes, for fuzzing.
pub fn parse_contacts_bytes(b: &[u8]) -> Result<ContactList, ContactError> {
    parse_contacts(std::str::from_utf8(b).map_err(|_| ContactError::NotUtf8)?)
}

/// One name-addr / addr-spec with its parameters (also a To or From value).
pub fn parse_entry(s: &str) -> Result<ContactEntry, ContactError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(ContactError::Empty);
    }
    let (display_name, uri, rest) = match find_outside_quotes(s, '<')? {
        Some(lt) => {
            let display = s.get(..lt).unwrap_or("").trim();
            let after = s.get(lt + 1..).unwrap_or("");
            let gt = after.find('>').ok_or(ContactError::Unterminated("<"))?;
            let uri = after.get(..gt).unwrap_or("").trim();
            let rest = after.get(gt + 1..).unwrap_or("");
            let display = if display.is_empty() {
                None
            } else if display.starts_with('"') {
                Some(unquote(display)?)
            } else {
                Some(display.to_owned())
            };
            (display, uri, rest)
        }
        // RFC 3261 §20.10: without <>, every `;` param is a header param
        None => match s.find(';') {
            Some(i) => (None, s.get(..i).unwrap_or(""), s.get(i..).unwrap_or("")),
            None => (None, s, ""),
        },
    };
    if uri.is_empty() {
        return Err(ContactError::Empty);
    }
    let mut params = Vec::new();
    let rest = rest.trim();
    if !rest.is_empty() {
        let Some(rest) = rest.strip_prefix(';') else {
            return Err(ContactError::BadParam(rest.to_owned()));
        };
        for p in split_outside(rest, ';')? {
            params.push(parse_param(p)?);
        }
    }
    Ok(ContactEntry {
        display_name,
        uri: uri.to_owned(),
        params,
    })
}

fn parse_param(p: &str) -> Result<ContactParam, ContactError> {
    let p = p.trim();
    let (name, value) = match p.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v.trim())),
        None => (p, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!%'*+-._`~".contains(&b));
    if !name_ok {
        return Err(ContactError::BadParam(p.to_owned()));
    }
    let (value, quoted) = match value {
        None => (None, false),
        Some(v) if v.starts_with('"') => (Some(unquote(v)?), true),
        Some(v) if v.is_empty() || v.contains(['"', ' ', '\t', ',', ';']) => {
            return Err(ContactError::BadParam(p.to_owned()));
        }
        Some(v) => (Some(v.to_owned()), false),
    };
    Ok(ContactParam {
        name: name.to_owned(),
        value,
        quoted,
    })
}

/// The content of a whole quoted-string.
fn unquote(s: &str) -> Result<String, ContactError> {
    let inner = s
        .strip_prefix('"')
        .ok_or(ContactError::Unterminated("\""))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => out.push(chars.next().ok_or(ContactError::Unterminated("\""))?),
            '"' => {
                return if chars.as_str().trim().is_empty() {
                    Ok(out)
                } else {
                    Err(ContactError::BadParam(s.to_owned()))
                };
            }
            c => out.push(c),
        }
    }
    Err(ContactError::Unterminated("\""))
}

/// Byte index of `target` outside quoted strings.
fn find_outside_quotes(s: &str, target: char) -> Result<Option<usize>, ContactError> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, ch) in s.char_indices() {
        if quoted {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
        } else if ch == '"' {
            quoted = true;
        } else if ch == target {
            return Ok(Some(i));
        }
    }
    if quoted {
        return Err(ContactError::Unterminated("\""));
    }
    Ok(None)
}

/// Split at `sep` outside quoted strings and `<...>`.
fn split_outside(s: &str, sep: char) -> Result<Vec<&str>, ContactError> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        if quoted {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => quoted = true,
            '<' => angle = true,
            '>' => angle = false,
            c if c == sep && !angle => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return Err(ContactError::Unterminated("\""));
    }
    if angle {
        return Err(ContactError::Unterminated("<"));
    }
    out.push(s.get(start..).unwrap_or(""));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_gruu_contact() {
        // RFC 5627 §4.1 style REGISTER Contact
        let v = r#"<sip:callee@192.0.2.1;transport=tcp>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";reg-id=1;expires=3600"#;
        let ContactList::Entries(e) = parse_contacts(v).unwrap() else {
            panic!("not entries")
        };
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].uri, "sip:callee@192.0.2.1;transport=tcp");
        assert_eq!(
            e[0].param("+sip.instance"),
            Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>")
        );
        assert_eq!(e[0].param("reg-id"), Some("1"));
        assert_eq!(e[0].param("EXPIRES"), Some("3600"));
    }

    #[test]
    fn parses_several_and_star() {
        let v = r#""Alice, TV" <sip:a@1.2.3.4>;q=0.5, sip:a@5.6.7.8;expires=0"#;
        let ContactList::Entries(e) = parse_contacts(v).unwrap() else {
            panic!("not entries")
        };
        assert_eq!(e[0].display_name.as_deref(), Some("Alice, TV"));
        assert_eq!(e[1].uri, "sip:a@5.6.7.8");
        assert_eq!(e[1].param("expires"), Some("0"));
        assert_eq!(parse_contacts(" * ").unwrap(), ContactList::Star);
        assert_eq!(
            parse_contacts("*, <sip:a@b>"),
            Err(ContactError::StarWithOthers)
        );
        assert!(parse_contacts("<sip:a@b").is_err());
    }

    fn param() -> impl Strategy<Value = ContactParam> {
        (
            "[+a-z][a-z0-9.-]{0,8}",
            prop::option::of("[ -~]{0,10}"),
            "[a-z0-9:%.-]{1,8}",
            any::<bool>(),
        )
            .prop_map(|(name, q, t, quoted)| match (quoted, q) {
                (true, Some(v)) => ContactParam {
                    name,
                    value: Some(v),
                    quoted: true,
                },
                (_, None) => ContactParam {
                    name,
                    value: None,
                    quoted: false,
                },
                (false, Some(_)) => ContactParam {
                    name,
                    value: Some(t),
                    quoted: false,
                },
            })
    }

    proptest! {
        #[test]
        fn contact_list_round_trips(entries in prop::collection::vec(
            (prop::option::of("[ -~]{0,10}"), "sip:[a-z]{1,5}@[a-z0-9.]{1,8}(;[a-z]{1,4}=[a-z0-9]{1,4})?",
             prop::collection::vec(param(), 0..4))
                .prop_map(|(display_name, uri, params)| ContactEntry { display_name, uri, params }),
            1..4)) {
            let list = ContactList::Entries(entries);
            prop_assert_eq!(parse_contacts(&list.to_string()).unwrap(), list);
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse_contacts_bytes(&bytes);
        }

        #[test]
        fn never_panics_near_valid(s in r#"("[^"]{0,4}"?)? ?<?(sip:[a-z@.]{0,6})?>?(;[a-z+.]{0,4}(=("[^"]{0,4}"?|[a-z<>]{0,4}))?){0,3}(, ?\*)?"#) {
            let _ = parse_contacts(&s);
        }
    }
}
