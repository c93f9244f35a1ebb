//! Event, Allow-Events, Subscription-State (RFC 6665 §8.2).

use super::params::{Params, is_token, print_list, split_list};
use super::{HeaderError, TypedHeader};
use std::fmt;

/// `Event: package[.template] *(;param)`, with the `id` param broken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub package: String,
    pub id: Option<String>,
    /// Other params.
    pub params: Params,
}

impl Event {
    pub fn new(package: &str) -> Self {
        Self {
            package: package.into(),
            id: None,
            params: Params::default(),
        }
    }

    pub fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.into());
        self
    }
}

impl TypedHeader for Event {
    const NAME: &'static str = "Event";
    const COMPACT: Option<char> = Some('o');

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let (pkg, p) = value.split_once(';').unwrap_or((value, ""));
        let package = pkg.trim();
        if !is_token(package) {
            return Err(HeaderError::invalid("Event package", value));
        }
        let mut params = Params::parse(p)?;
        let id = params.get_unquoted("id");
        params.remove("id");
        Ok(Self {
            package: package.into(),
            id,
            params,
        })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.package)?;
        if let Some(id) = &self.id {
            write!(f, ";id={id}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `Allow-Events: package, package`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEvents(pub Vec<String>);

impl TypedHeader for AllowEvents {
    const NAME: &'static str = "Allow-Events";
    const COMPACT: Option<char> = Some('u');

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let items = split_list(value);
        if items.is_empty() || !items.iter().all(|i| is_token(i)) {
            return Err(HeaderError::invalid("Allow-Events", value));
        }
        Ok(Self(items.into_iter().map(str::to_owned).collect()))
    }
}

impl fmt::Display for AllowEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print_list(f, &self.0)
    }
}

/// The substate value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    Active,
    Pending,
    Terminated,
    /// An extension value, kept as written.
    Other(String),
}

/// `Subscription-State: active;expires=600` / `terminated;reason=timeout;retry-after=30`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub state: SubState,
    pub expires: Option<u32>,
    pub reason: Option<String>,
    pub retry_after: Option<u32>,
    /// Other params.
    pub params: Params,
}

impl SubscriptionState {
    pub fn new(state: SubState) -> Self {
        Self {
            state,
            expires: None,
            reason: None,
            retry_after: None,
            params: Params::default(),
        }
    }

    pub fn active(expires: u32) -> Self {
        Self {
            expires: Some(expires),
            ..Self::new(SubState::Active)
        }
    }

    pub fn terminated(reason: &str) -> Self {
        Self {
            reason: Some(reason.into()),
            ..Self::new(SubState::Terminated)
        }
    }
}

impl TypedHeader for SubscriptionState {
    const NAME: &'static str = "Subscription-State";

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let (s, p) = value.split_once(';').unwrap_or((value, ""));
        let s = s.trim();
        let state = match s.to_ascii_lowercase().as_str() {
            "active" => SubState::Active,
            "pending" => SubState::Pending,
            "terminated" => SubState::Terminated,
            _ if is_token(s) => SubState::Other(s.into()),
            _ => return Err(HeaderError::invalid("Subscription-State", value)),
        };
        let mut params = Params::parse(p)?;
        let num = |name: &str| -> Result<Option<u32>, HeaderError> {
            params
                .get_unquoted(name)
                .map(|v| {
                    v.parse()
                        .map_err(|_| HeaderError::invalid("Subscription-State", value))
                })
                .transpose()
        };
        let expires = num("expires")?;
        let retry_after = num("retry-after")?;
        let reason = params.get_unquoted("reason");
        for n in ["expires", "retry-after", "reason"] {
            params.remove(n);
        }
        Ok(Self {
            state,
            expires,
            reason,
            retry_after,
            params,
        })
    }
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            SubState::Active => f.write_str("active")?,
            SubState::Pending => f.write_str("pending")?,
            SubState::Terminated => f.write_str("terminated")?,
            SubState::Other(s) => f.write_str(s)?,
        }
        if let Some(r) = &self.reason {
            write!(f, ";reason={r}")?;
        }
        if let Some(e) = self.expires {
            write!(f, ";expires={e}")?;
        }
        if let Some(r) = self.retry_after {
            write!(f, ";retry-after={r}")?;
        }
        write!(f, "{}", self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e = Event::parse("conference ;id=42;x").unwrap();
        assert_eq!(
            (e.package.as_str(), e.id.as_deref()),
            ("conference", Some("42"))
        );
        assert_eq!(Event::parse(&e.to_string()).unwrap(), e);
        let a = AllowEvents::parse("reg, conference,refer").unwrap();
        assert_eq!(AllowEvents::parse(&a.to_string()).unwrap(), a);
        let s = SubscriptionState::parse("terminated;reason=timeout;retry-after=30").unwrap();
        assert_eq!(s.state, SubState::Terminated);
        assert_eq!(
            (s.reason.as_deref(), s.retry_after),
            (Some("timeout"), Some(30))
        );
        assert_eq!(SubscriptionState::parse(&s.to_string()).unwrap(), s);
        let s = SubscriptionState::active(600);
        assert_eq!(s.to_string(), "active;expires=600");
        assert_eq!(
            SubscriptionState::parse("pending").unwrap().state,
            SubState::Pending
        );
        assert!(SubscriptionState::parse("active;expires=x").is_err());
        assert!(Event::parse("").is_err());
    }
}
