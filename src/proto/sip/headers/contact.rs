//! Contact (RFC 3261 §20.10, RFC 3840 feature tags, RFC 5626/5627 params) and
//! Accept-Contact / Reject-Contact (RFC 3841 §9), plus the ISC service identifiers.

use super::params::{NameAddr, Params, print_list, split_list};
use super::{HeaderError, TypedHeader};
use std::fmt;

/// Service identifiers used by `isc` (SPEC.md "Names used on the wire").
pub mod service {
    pub const ISC_1_1_CV_CM: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.isc.1-1-cv-cm";
    pub const ISC_GROUP_CV_CM: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.isc.group-cv-cm";
    pub const ISC_CV_CM: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.isc.cv-cm";
    /// IARIs live under `3gpp-application`; send this one.
    pub const ISC_CM_RECOMMENDATION: &str =
        "urn:urn-7:3gpp-application.ims.iari.oma.isc.cm.recommendation";
    /// The seed's spelling; accept it too (see [`is_cm_recommendation`]).
    pub const ISC_CM_RECOMMENDATION_SEED: &str =
        "urn:urn-7:3gpp-service.ims.iari.oma.isc.cm.recommendation";
    pub const ISC_CV_CANCELLATION: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.isc.cv.cancellation";
    pub const CPM_SESSION: &str = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session";
    /// OMA IM feature tag (a flag, no value).
    pub const IM_FEATURE_TAG: &str = "+g.oma.sip-im";
    pub const ICSI_REF: &str = "+g.3gpp.icsi-ref";
    pub const IARI_REF: &str = "+g.3gpp.iari-ref";

    /// Whether `s` names the CM recommendation IARI in either spelling.
    pub fn is_cm_recommendation(s: &str) -> bool {
        s.eq_ignore_ascii_case(ISC_CM_RECOMMENDATION)
            || s.eq_ignore_ascii_case(ISC_CM_RECOMMENDATION_SEED)
    }
}

const SERVICE_REF_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The quoted value of a `+g.3gpp.icsi-ref` / `+g.3gpp.iari-ref` tag for these services,
/// percent-encoded (3GPP TS 24.229 7.2A.8.2): `"urn%3Aurn-7%3A...,urn%3A..."`.
pub fn encode_service_ref(services: &[&str]) -> String {
    let parts: Vec<String> = services
        .iter()
        .map(|s| percent_encoding::utf8_percent_encode(s, SERVICE_REF_SET).to_string())
        .collect();
    format!("\"{}\"", parts.join(","))
}

/// The services named by a `+g.3gpp.icsi-ref` value (quoted or not, encoded or not).
pub fn decode_service_ref(value: &str) -> Vec<String> {
    let inner = super::unquote(value);
    inner
        .split(',')
        .map(|p| {
            percent_encoding::percent_decode_str(p.trim())
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// One contact address with its params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactValue(pub NameAddr);

impl ContactValue {
    pub fn new(uri: impl Into<String>) -> Self {
        Self(NameAddr::new(uri))
    }

    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Self {
        self.0.params.set(name, value);
        self
    }

    pub fn uri(&self) -> &str {
        &self.0.uri
    }

    pub fn params(&self) -> &Params {
        &self.0.params
    }

    /// `+sip.instance` without quotes (RFC 5626 §4.1), e.g. `<urn:uuid:...>`.
    pub fn instance(&self) -> Option<String> {
        self.0.params.get_unquoted("+sip.instance")
    }

    pub fn expires(&self) -> Option<u32> {
        self.0.params.get_unquoted("expires")?.parse().ok()
    }

    /// `q` as thousandths (`q=0.7` → 700).
    pub fn q(&self) -> Option<u16> {
        parse_qvalue(&self.0.params.get_unquoted("q")?)
    }

    pub fn pub_gruu(&self) -> Option<String> {
        self.0.params.get_unquoted("pub-gruu")
    }

    pub fn temp_gruu(&self) -> Option<String> {
        self.0.params.get_unquoted("temp-gruu")
    }

    /// Whether a feature tag (`+g.oma.sip-im`, `isfocus`, `automata`, ...) is present.
    pub fn has_feature(&self, tag: &str) -> bool {
        self.0.params.has(tag)
    }

    /// Decoded services of `+g.3gpp.icsi-ref` and `+g.3gpp.iari-ref`.
    pub fn service_refs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for tag in [service::ICSI_REF, service::IARI_REF] {
            if let Some(Some(v)) = self.0.params.get(tag) {
                out.extend(decode_service_ref(v));
            }
        }
        out
    }
}

fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

impl fmt::Display for ContactValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One Contact header line: `*` or one or more addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// `Contact: *` (REGISTER removing all bindings, RFC 3261 §10.2.2).
    Star,
    Addresses(Vec<ContactValue>),
}

impl TypedHeader for Contact {
    const NAME: &'static str = "Contact";
    const COMPACT: Option<char> = Some('m');

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let v = value.trim();
        if v == "*" || v == "<*>" {
            return Ok(Self::Star);
        }
        let items = split_list(v);
        if items.is_empty() {
            return Err(HeaderError::invalid("Contact", v));
        }
        Ok(Self::Addresses(
            items
                .into_iter()
                .map(|i| NameAddr::parse(i).map(ContactValue))
                .collect::<Result<_, _>>()?,
        ))
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Star => f.write_str("*"),
            Self::Addresses(a) => print_list(f, a),
        }
    }
}

/// `"*" *(SEMI ac-params)` of Accept-Contact / Reject-Contact (RFC 3841 §9).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeatureSet {
    pub params: Params,
}

impl FeatureSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a feature param (`value` raw, e.g. a quoted string, or None for a flag).
    pub fn with(mut self, tag: &str, value: Option<&str>) -> Self {
        self.params.set(tag, value);
        self
    }

    /// Adds `+g.3gpp.icsi-ref="..."` for these services.
    pub fn with_icsi(self, services: &[&str]) -> Self {
        let v = encode_service_ref(services);
        self.with(service::ICSI_REF, Some(&v))
    }

    /// Adds `+g.3gpp.iari-ref="..."` for these applications.
    pub fn with_iari(self, apps: &[&str]) -> Self {
        let v = encode_service_ref(apps);
        self.with(service::IARI_REF, Some(&v))
    }

    pub fn explicit(&self) -> bool {
        self.params.has("explicit")
    }

    pub fn require(&self) -> bool {
        self.params.has("require")
    }

    /// Decoded services of `+g.3gpp.icsi-ref` and `+g.3gpp.iari-ref`.
    pub fn service_refs(&self) -> Vec<String> {
        ContactValue(NameAddr {
            display_name: None,
            uri: String::new(),
            angle: true,
            params: self.params.clone(),
        })
        .service_refs()
    }

    fn parse_one(s: &str) -> Result<Self, HeaderError> {
        let rest = s
            .trim()
            .strip_prefix('*')
            .ok_or_else(|| HeaderError::invalid("Accept-Contact", s))?;
        Ok(Self {
            params: Params::parse(rest)?,
        })
    }
}

impl fmt::Display for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "*{}", self.params)
    }
}

macro_rules! feature_set_header {
    ($ty:ident, $name:literal, $compact:literal) => {
        #[doc = concat!("`", $name, "` (RFC 3841 §9): one or more feature sets.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(pub Vec<FeatureSet>);

        impl TypedHeader for $ty {
            const NAME: &'static str = $name;
            const COMPACT: Option<char> = Some($compact);

            fn parse(value: &str) -> Result<Self, HeaderError> {
                let items = split_list(value);
                if items.is_empty() {
                    return Err(HeaderError::invalid($name, value));
                }
                Ok(Self(
                    items
                        .into_iter()
                        .map(FeatureSet::parse_one)
                        .collect::<Result<_, _>>()?,
                ))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                print_list(f, &self.0)
            }
        }
    };
}

feature_set_header!(AcceptContact, "Accept-Contact", 'a');
feature_set_header!(RejectContact, "Reject-Contact", 'j');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_several_addresses_and_features() {
        let s = "<sip:alice@192.0.2.1:5060;transport=tcp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";expires=3600;q=0.7;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\";+g.oma.sip-im;pub-gruu=\"sip:alice@isc.local;gr=urn:uuid:1\", \"Focus\" <sip:conf1@isc.local>;isfocus;automata";
        let c = Contact::parse(s).unwrap();
        let Contact::Addresses(a) = &c else {
            panic!("not addresses")
        };
        assert_eq!(a.len(), 2);
        let first = &a[0];
        assert_eq!(
            first.instance().as_deref(),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
        assert_eq!((first.expires(), first.q()), (Some(3600), Some(700)));
        assert_eq!(first.service_refs(), vec![service::ISC_1_1_CV_CM]);
        assert!(first.has_feature(service::IM_FEATURE_TAG));
        assert_eq!(
            first.pub_gruu().as_deref(),
            Some("sip:alice@isc.local;gr=urn:uuid:1")
        );
        assert!(a[1].has_feature("isfocus") && a[1].has_feature("automata"));
        assert_eq!(Contact::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn contact_star() {
        assert_eq!(Contact::parse(" * ").unwrap(), Contact::Star);
        assert_eq!(Contact::Star.to_string(), "*");
        assert!(Contact::parse("").is_err());
    }

    #[test]
    fn accept_contact_round_trip() {
        let ac = AcceptContact(vec![
            FeatureSet::new()
                .with_icsi(&[service::ISC_1_1_CV_CM])
                .with("require", None)
                .with("explicit", None),
            FeatureSet::new().with(service::IM_FEATURE_TAG, None),
        ]);
        let s = ac.to_string();
        assert_eq!(
            s,
            "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.isc.1-1-cv-cm\";require;explicit, *;+g.oma.sip-im"
        );
        let back = AcceptContact::parse(&s).unwrap();
        assert_eq!(back, ac);
        assert!(back.0[0].require() && back.0[0].explicit());
        assert_eq!(back.0[0].service_refs(), vec![service::ISC_1_1_CV_CM]);
        assert!(RejectContact::parse("*;actor=\"msg-taker\";video").is_ok());
        assert!(AcceptContact::parse("sip:x").is_err());
    }

    #[test]
    fn service_ref_codec() {
        let v = encode_service_ref(&[service::CPM_SESSION, service::ISC_CM_RECOMMENDATION]);
        assert_eq!(
            decode_service_ref(&v),
            vec![service::CPM_SESSION, service::ISC_CM_RECOMMENDATION]
        );
        assert!(service::is_cm_recommendation(
            service::ISC_CM_RECOMMENDATION_SEED
        ));
    }
}
