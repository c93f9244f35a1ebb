//! The message-summary body (RFC 3842 §5.2) as the client reads it: how
//! many deferred messages wait (seed 003 12.4.2.6). Parse and print live
//! together; the round trip is tested below.

/// `application/simple-message-summary`.
pub const CONTENT_TYPE: &str = "application/simple-message-summary";

/// One `<class>: new/old [(urgent-new/urgent-old)]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryLine {
    /// The message-context-class (RFC 3458), e.g. `Text-Message`.
    pub class: String,
    pub new: u32,
    pub old: u32,
    pub urgent: Option<(u32, u32)>,
}

/// A message-summary document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    pub waiting: bool,
    pub account: Option<String>,
    pub lines: Vec<SummaryLine>,
}

/// Why a summary could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    #[error("message-summary is not UTF-8")]
    NotUtf8,
    #[error("message-summary lacks Messages-Waiting")]
    MissingWaiting,
    #[error("bad Messages-Waiting value {0:?}")]
    BadWaiting(String),
    #[error("bad message count line {0:?}")]
    BadCounts(String),
}

impl MessageSummary {
    /// New messages over every class.
    pub fn new_messages(&self) -> u32 {
        self.lines.iter().fold(0u32, |a, l| a.saturating_add(l.new))
    }

    /// RFC 3842 §5.2. Unknown header lines (RFC 2822 style, after the
    /// counts) are skipped.
    pub fn parse(bytes: &[u8]) -> Result<Self, SummaryError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SummaryError::NotUtf8)?;
        let mut waiting = None;
        let mut account = None;
        let mut lines = Vec::new();
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("Messages-Waiting") {
                waiting = Some(match value.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(SummaryError::BadWaiting(value.into())),
                });
            } else if name.eq_ignore_ascii_case("Message-Account") {
                account = Some(value.to_string());
            } else if name.to_ascii_lowercase().ends_with("-message")
                || name.eq_ignore_ascii_case("none")
            {
                lines
                    .push(counts(name, value).ok_or_else(|| SummaryError::BadCounts(line.into()))?);
            }
        }
        Ok(MessageSummary {
            waiting: waiting.ok_or(SummaryError::MissingWaiting)?,
            account,
            lines,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!(
            "Messages-Waiting: {}\r\n",
            if self.waiting { "yes" } else { "no" }
        );
        if let Some(a) = &self.account {
            s.push_str(&format!("Message-Account: {a}\r\n"));
        }
        for l in &self.lines {
            s.push_str(&format!("{}: {}/{}", l.class, l.new, l.old));
            if let Some((un, uo)) = l.urgent {
                s.push_str(&format!(" ({un}/{uo})"));
            }
            s.push_str("\r\n");
        }
        s.into_bytes()
    }
}

fn counts(class: &str, value: &str) -> Option<SummaryLine> {
    let (main, urgent) = match value.split_once('(') {
        Some((m, u)) => (m.trim(), Some(u.trim().trim_end_matches(')').trim())),
        None => (value, None),
    };
    let pair = |s: &str| -> Option<(u32, u32)> {
        let (a, b) = s.split_once('/')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    };
    let (new, old) = pair(main)?;
    let urgent = match urgent {
        Some(u) => Some(pair(u)?),
        None => None,
    };
    Some(SummaryLine {
        class: class.to_string(),
        new,
        old,
        urgent,
    })
}

/// Fuzz entry point.
pub fn parse(bytes: &[u8]) -> Result<MessageSummary, SummaryError> {
    MessageSummary::parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_the_server_sends_and_the_rfc_example() {
        let server = crate::server::deferred_message_store::function::summary_body(
            "sip:Deferred@isc.local",
            3,
        );
        let s = MessageSummary::parse(server.as_bytes()).unwrap();
        assert!(s.waiting);
        assert_eq!(s.account.as_deref(), Some("sip:Deferred@isc.local"));
        assert_eq!(s.new_messages(), 3);
        // RFC 3842 §5.2's example body.
        let rfc = "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\nVoice-Message: 4/8 (1/2)\r\n";
        let s = MessageSummary::parse(rfc.as_bytes()).unwrap();
        assert_eq!(s.lines[0].urgent, Some((1, 2)));
        assert_eq!(s.new_messages(), 4);
        assert_eq!(
            MessageSummary::parse(b"Voice-Message: 1/0\r\n"),
            Err(SummaryError::MissingWaiting)
        );
        assert!(matches!(
            MessageSummary::parse(b"Messages-Waiting: yes\r\nText-Message: x/0\r\n"),
            Err(SummaryError::BadCounts(_))
        ));
    }

    fn line() -> impl Strategy<Value = SummaryLine> {
        (
            "(Voice|Text|Fax|Pager)-Message",
            any::<u32>(),
            any::<u32>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
        )
            .prop_map(|(class, new, old, urgent)| SummaryLine {
                class,
                new,
                old,
                urgent,
            })
    }

    proptest! {
        #[test]
        fn round_trips(waiting: bool, account in proptest::option::of("sip:[a-z]{1,8}@[a-z]{1,8}"), lines in proptest::collection::vec(line(), 0..4)) {
            let s = MessageSummary { waiting, account, lines };
            prop_assert_eq!(MessageSummary::parse(&s.to_bytes()).unwrap(), s);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
