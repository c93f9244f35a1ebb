//! The smaller typed headers: token lists, identities, services, product tokens,
//! Reason, Warning, Content-Disposition, route lists, ISCConvergenceID.

use super::params::{
    NameAddr, Params, is_token, parse_name_addr_list, print_list, quote, split_list, unquote,
};
use super::{HeaderError, TypedHeader};
use std::fmt;

macro_rules! token_list {
    ($(#[$m:meta])* $ty:ident, $name:literal, $compact:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(pub Vec<String>);

        impl $ty {
            /// Case-insensitive membership test.
            pub fn contains(&self, token: &str) -> bool {
                self.0.iter().any(|t| t.eq_ignore_ascii_case(token))
            }
        }

        impl TypedHeader for $ty {
            const NAME: &'static str = $name;
            const COMPACT: Option<char> = $compact;

            fn parse(value: &str) -> Result<Self, HeaderError> {
                let items = split_list(value);
                if !items.iter().all(|i| is_token(i)) {
                    return Err(HeaderError::invalid($name, value));
                }
                Ok(Self(items.into_iter().map(str::to_owned).collect()))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                print_list(f, &self.0)
            }
        }
    };
}

token_list!(
    /// `Allow: INVITE, ACK, ...` (methods as written, including extension methods).
    Allow, "Allow", None
);
token_list!(
    /// `Supported: timer, replaces, gruu`.
    Supported, "Supported", Some('k')
);
token_list!(
    /// `Require: 100rel`.
    Require, "Require", None
);
token_list!(
    /// `Request-Disposition: proxy, parallel` (RFC 3841 §10).
    RequestDisposition, "Request-Disposition", Some('d')
);

/// `Privacy: id;header` (RFC 3323 §4.2, RFC 3325).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privacy(pub Vec<String>);

impl Privacy {
    pub fn contains(&self, v: &str) -> bool {
        self.0.iter().any(|t| t.eq_ignore_ascii_case(v))
    }
}

impl TypedHeader for Privacy {
    const NAME: &'static str = "Privacy";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let items: Vec<&str> = value
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() || !items.iter().all(|i| is_token(i)) {
            return Err(HeaderError::invalid("Privacy", value));
        }
        Ok(Self(items.into_iter().map(str::to_owned).collect()))
    }
}

impl fmt::Display for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(";"))
    }
}

macro_rules! name_addr_list {
    ($(#[$m:meta])* $ty:ident, $name:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(pub Vec<NameAddr>);

        impl TypedHeader for $ty {
            const NAME: &'static str = $name;

            fn parse(value: &str) -> Result<Self, HeaderError> {
                parse_name_addr_list(value).map(Self)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                print_list(f, &self.0)
            }
        }
    };
}

name_addr_list!(
    /// `P-Asserted-Identity` (RFC 3325 §9.1): one or two identities.
    PAssertedIdentity, "P-Asserted-Identity"
);
name_addr_list!(
    /// `P-Preferred-Identity` (RFC 3325 §9.2).
    PPreferredIdentity, "P-Preferred-Identity"
);
name_addr_list!(
    /// `Path` (RFC 3327).
    Path, "Path"
);
name_addr_list!(
    /// `Route` list; each entry keeps its URI text (rsip's typed Route refuses some URIs).
    Route, "Route"
);
name_addr_list!(
    /// `Record-Route` list.
    RecordRoute, "Record-Route"
);

macro_rules! service_list {
    ($(#[$m:meta])* $ty:ident, $name:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(pub Vec<String>);

        impl $ty {
            pub fn contains(&self, service: &str) -> bool {
                self.0.iter().any(|s| s.eq_ignore_ascii_case(service))
            }
        }

        impl TypedHeader for $ty {
            const NAME: &'static str = $name;

            fn parse(value: &str) -> Result<Self, HeaderError> {
                let items = split_list(value);
                let ok = !items.is_empty()
                    && items.iter().all(|i| {
                        i.split_once(':').is_some_and(|(s, r)| {
                            s.eq_ignore_ascii_case("urn") && !r.is_empty()
                        }) && !i.contains(char::is_whitespace)
                    });
                if !ok {
                    return Err(HeaderError::invalid($name, value));
                }
                Ok(Self(items.into_iter().map(str::to_owned).collect()))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                print_list(f, &self.0)
            }
        }
    };
}

service_list!(
    /// `P-Preferred-Service: urn:urn-7:3gpp-service...` (RFC 6050), bare URNs.
    PPreferredService, "P-Preferred-Service"
);
service_list!(
    /// `P-Asserted-Service` (RFC 6050).
    PAssertedService, "P-Asserted-Service"
);

/// A product token `name[/version]` of User-Agent / Server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub name: String,
    pub version: Option<String>,
}

fn parse_products(
    value: &str,
    what: &'static str,
) -> Result<(Vec<Product>, Vec<String>), HeaderError> {
    let (mut products, mut comments) = (Vec::new(), Vec::new());
    let mut rest = value.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('(') {
            // comment, possibly nested
            let mut depth = 1u32;
            let mut end = None;
            for (i, c) in r.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| HeaderError::invalid(what, value))?;
            comments.push(r.get(..end).unwrap_or("").to_owned());
            rest = r.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '(')
                .unwrap_or(rest.len());
            let tok = rest.get(..end).unwrap_or("");
            let (name, version) = match tok.split_once('/') {
                Some((n, v)) => (n, Some(v)),
                None => (tok, None),
            };
            if !is_token(name) || version.is_some_and(|v| !is_token(v)) {
                return Err(HeaderError::invalid(what, value));
            }
            products.push(Product {
                name: name.into(),
                version: version.map(str::to_owned),
            });
            rest = rest.get(end..).unwrap_or("").trim_start();
        }
    }
    if products.is_empty() && comments.is_empty() {
        return Err(HeaderError::invalid(what, value));
    }
    Ok((products, comments))
}

fn print_products(f: &mut fmt::Formatter<'_>, p: &[Product], c: &[String]) -> fmt::Result {
    let mut first = true;
    for prod in p {
        if !first {
            f.write_str(" ")?;
        }
        first = false;
        f.write_str(&prod.name)?;
        if let Some(v) = &prod.version {
            write!(f, "/{v}")?;
        }
    }
    for com in c {
        if !first {
            f.write_str(" ")?;
        }
        first = false;
        write!(f, "({com})")?;
    }
    Ok(())
}

macro_rules! product_header {
    ($(#[$m:meta])* $ty:ident, $name:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty {
            pub products: Vec<Product>,
            /// Comments without parentheses (printed after the products).
            pub comments: Vec<String>,
        }

        impl $ty {
            pub fn new(name: &str, version: Option<&str>) -> Self {
                Self {
                    products: vec![Product { name: name.into(), version: version.map(str::to_owned) }],
                    comments: Vec::new(),
                }
            }

            /// The version of product `name` (case-insensitive), e.g. `version_of("isc")`.
            pub fn version_of(&self, name: &str) -> Option<&str> {
                self.products
                    .iter()
                    .find(|p| p.name.eq_ignore_ascii_case(name))
                    .and_then(|p| p.version.as_deref())
            }
        }

        impl TypedHeader for $ty {
            const NAME: &'static str = $name;

            fn parse(value: &str) -> Result<Self, HeaderError> {
                let (products, comments) = parse_products(value, $name)?;
                Ok(Self { products, comments })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                print_products(f, &self.products, &self.comments)
            }
        }
    };
}

product_header!(
    /// `User-Agent: isc/0.1 (terminal)` (RFC 3261 §20.41).
    UserAgent, "User-Agent"
);
product_header!(
    /// `Server: isc-server/0.1` (RFC 3261 §20.35).
    Server, "Server"
);

/// One `protocol ;cause=N ;text="..."` of a Reason header (RFC 3326 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonValue {
    /// `SIP`, `Q.850`, or an extension token.
    pub protocol: String,
    pub cause: Option<u16>,
    pub text: Option<String>,
    pub params: Params,
}

impl ReasonValue {
    pub fn sip(cause: u16, text: &str) -> Self {
        Self {
            protocol: "SIP".into(),
            cause: Some(cause),
            text: Some(text.into()),
            params: Params::default(),
        }
    }
}

impl fmt::Display for ReasonValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.protocol)?;
        if let Some(c) = self.cause {
            write!(f, ";cause={c}")?;
        }
        if let Some(t) = &self.text {
            write!(f, ";text={}", quote(t))?;
        }
        write!(f, "{}", self.params)
    }
}

/// `Reason: SIP;cause=200;text="Call completed elsewhere"` (RFC 3326).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(pub Vec<ReasonValue>);

impl TypedHeader for Reason {
    const NAME: &'static str = "Reason";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let items = split_list(value);
        if items.is_empty() {
            return Err(HeaderError::invalid("Reason", value));
        }
        let mut out = Vec::new();
        for item in items {
            let (proto, p) = item.split_once(';').unwrap_or((item, ""));
            let protocol = proto.trim();
            if !is_token(protocol) {
                return Err(HeaderError::invalid("Reason protocol", value));
            }
            let mut params = Params::parse(p)?;
            let cause = params
                .get_unquoted("cause")
                .map(|c| {
                    c.parse()
                        .map_err(|_| HeaderError::invalid("Reason cause", value))
                })
                .transpose()?;
            let text = params.get_unquoted("text");
            params.remove("cause");
            params.remove("text");
            out.push(ReasonValue {
                protocol: protocol.into(),
                cause,
                text,
                params,
            });
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print_list(f, &self.0)
    }
}

/// One `code agent "text"` of a Warning header (RFC 3261 §20.43).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningValue {
    pub code: u16,
    pub agent: String,
    pub text: String,
}

impl fmt::Display for WarningValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {} {}", self.code, self.agent, quote(&self.text))
    }
}

/// `Warning: 399 isc.local "Unknown body element"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub Vec<WarningValue>);

impl Warning {
    pub fn new(code: u16, agent: &str, text: &str) -> Self {
        Self(vec![WarningValue {
            code,
            agent: agent.into(),
            text: text.into(),
        }])
    }
}

impl TypedHeader for Warning {
    const NAME: &'static str = "Warning";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let items = split_list(value);
        if items.is_empty() {
            return Err(HeaderError::invalid("Warning", value));
        }
        let mut out = Vec::new();
        for item in items {
            let bad = || HeaderError::invalid("Warning", value);
            let (code, rest) = item.trim().split_once(' ').ok_or_else(bad)?;
            let (agent, text) = rest.trim().split_once(' ').ok_or_else(bad)?;
            let text = text.trim();
            if code.len() != 3 || !text.starts_with('"') || !text.ends_with('"') || text.len() < 2 {
                return Err(bad());
            }
            out.push(WarningValue {
                code: code.parse().map_err(|_| bad())?,
                agent: agent.into(),
                text: unquote(text),
            });
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print_list(f, &self.0)
    }
}

/// `Content-Disposition: recipient-list` / `attachment;filename=..` / `render;handling=optional`
/// (RFC 3261 §20.11, RFC 5366).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDisposition {
    /// `render`, `session`, `icon`, `alert`, `attachment`, `recipient-list`, ... lowercased.
    pub disposition: String,
    /// `handling=optional|required`.
    pub handling: Option<String>,
    pub params: Params,
}

impl ContentDisposition {
    pub fn new(disposition: &str) -> Self {
        Self {
            disposition: disposition.to_ascii_lowercase(),
            handling: None,
            params: Params::default(),
        }
    }

    pub fn is(&self, disposition: &str) -> bool {
        self.disposition.eq_ignore_ascii_case(disposition)
    }
}

impl TypedHeader for ContentDisposition {
    const NAME: &'static str = "Content-Disposition";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let (d, p) = value.split_once(';').unwrap_or((value, ""));
        let d = d.trim();
        if !is_token(d) {
            return Err(HeaderError::invalid("Content-Disposition", value));
        }
        let mut params = Params::parse(p)?;
        let handling = params.get_unquoted("handling");
        params.remove("handling");
        Ok(Self {
            disposition: d.to_ascii_lowercase(),
            handling,
            params,
        })
    }
}

impl fmt::Display for ContentDisposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.disposition)?;
        if let Some(h) = &self.handling {
            write!(f, ";handling={h}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `ISCConvergenceID: <opaque>` (seed 000): copied from the CV INVITE to every outgoing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscConvergenceId(pub String);

impl TypedHeader for IscConvergenceId {
    const NAME: &'static str = "ISCConvergenceID";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let v = value.trim();
        if v.is_empty() || v.contains(|c: char| c.is_control()) {
            return Err(HeaderError::invalid("ISCConvergenceID", value));
        }
        Ok(Self(v.into()))
    }
}

impl fmt::Display for IscConvergenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt<T: TypedHeader + PartialEq + fmt::Debug>(s: &str) -> T {
        let v = T::parse(s).unwrap();
        assert_eq!(T::parse(&v.to_string()).unwrap(), v, "{s}");
        v
    }

    #[test]
    fn token_lists() {
        let a: Allow = rt("INVITE, ACK,CANCEL , NEWMETHOD");
        assert!(a.contains("newmethod"));
        let s: Supported = rt("timer, replaces, gruu");
        assert!(s.contains("gruu"));
        let _: Require = rt("100rel");
        let d: RequestDisposition = rt("proxy, parallel");
        assert_eq!(d.0.len(), 2);
        assert!(Allow::parse("INVITE, <x>").is_err());
        let p: Privacy = rt("id;header");
        assert!(p.contains("id"));
    }

    #[test]
    fn identities_and_services() {
        let p: PAssertedIdentity = rt("\"Alice\" <sip:alice@isc.local>, <tel:+1234>");
        assert_eq!(p.0.len(), 2);
        let _: PPreferredIdentity = rt("<sip:alice@isc.local>");
        let s: PPreferredService = rt("urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session");
        assert!(s.contains(super::super::service::CPM_SESSION));
        let _: PAssertedService = rt("urn:urn-7:3gpp-service.ims.icsi.oma.isc.cv-cm");
        assert!(PPreferredService::parse("not a urn").is_err());
        let r: Route = rt("<sip:p1.isc.local;lr>, <sip:p2.isc.local;lr>");
        assert_eq!(r.0[1].uri, "sip:p2.isc.local;lr");
        let _: RecordRoute = rt("<sip:p1.isc.local;lr>");
        let _: Path = rt("<sip:edge.isc.local;lr;ob>");
    }

    #[test]
    fn products() {
        let ua: UserAgent = rt("isc/0.1.0 (terminal; linux) rsip/0.4");
        assert_eq!(ua.version_of("ISC"), Some("0.1.0"));
        assert_eq!(ua.comments, vec!["terminal; linux"]);
        let s: Server = rt("isc-server");
        assert_eq!(s.version_of("isc-server"), None);
        assert!(UserAgent::parse("a/ (").is_err());
    }

    #[test]
    fn reason_warning_disposition() {
        let r: Reason = rt("SIP ;cause=200 ;text=\"Call completed elsewhere\"");
        assert_eq!(r.0[0], ReasonValue::sip(200, "Call completed elsewhere"));
        let r: Reason = rt("Q.850;cause=16, SIP;cause=487");
        assert_eq!(r.0.len(), 2);
        let w: Warning = rt("399 isc.local \"Unknown \\\"body\\\" element\", 307 isc.local \"x\"");
        assert_eq!(w.0[0].text, "Unknown \"body\" element");
        assert!(Warning::parse("39 a \"x\"").is_err());
        let c: ContentDisposition = rt("recipient-list");
        assert!(c.is("recipient-list"));
        let c: ContentDisposition = rt("render;handling=optional");
        assert_eq!(c.handling.as_deref(), Some("optional"));
        let _: ContentDisposition = rt("attachment;filename=\"a.txt\"");
        let i: IscConvergenceId = rt("cv-1234@isc.local");
        assert_eq!(i.0, "cv-1234@isc.local");
    }
}
