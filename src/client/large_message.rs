//! Large Message mode (seed 003 9.1.1.2, 9.2.2, 9.4.2): a message too big
//! for a pager MESSAGE, or a file, sent in an MSRP session of its own. The
//! session machinery is [`super::chat::ChatSession`]'s; this module holds
//! what is particular to Large Message: the message and its MIME headers,
//! telling a Large Message offer from a file transfer (RFC 5547) and a
//! chat, the receiver's settings, and where a received attachment is saved.
//!
//! Where the seed and the RFCs meet: the seed puts Content-Disposition and
//! Content-Description on the MSRP SEND (9.4.2 steps 1–2, RFC 4975 §9
//! `Other-Mime-header`), and so do we. The INVITE's body is the SDP, whose
//! own disposition is `session` (RFC 3261 §20.11): the INVITE carries the
//! disposition as RFC 5547 §6 `a=file-disposition` next to `a=sendonly` and
//! `a=file-size`, never as a SIP Content-Disposition of the SDP.

use std::io;
use std::path::{Path, PathBuf};

use crate::proto::sdp::{AcceptTypes, MsrpMedia};

/// Largest text sent as a pager MESSAGE: RFC 3428 §4 keeps MESSAGE requests
/// under 1300 bytes unless the path is known to be congestion controlled;
/// anything larger goes in Large Message mode (seed 003 9.1.1.2).
pub const PAGER_LIMIT: usize = 1300;

/// Body bytes per MSRP chunk of a Large Message (RFC 4975 §5.1 leaves the
/// size to the sender; 64 KiB keeps a 20 MiB file at 320 chunks).
pub const LARGE_CHUNK_SIZE: usize = 64 * 1024;

/// Largest Large Message a client takes by default (`a=file-size` above is
/// refused with 488).
pub const DEFAULT_MAX_SIZE: u64 = 256 * 1024 * 1024;

/// How the receiver should present the content (RFC 2183 via seed 003 9.4.2
/// step 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Shown at once (a long text in the conversation).
    Render,
    /// Only on an express action of the receiver: saved to the downloads dir.
    Attachment,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Render => "render",
            Disposition::Attachment => "attachment",
        }
    }

    /// `render`, `inline` (RFC 2183) or `attachment`, case-insensitive.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "render" | "inline" => Some(Disposition::Render),
            "attachment" => Some(Disposition::Attachment),
            _ => None,
        }
    }
}

/// A `Content-Disposition` value (RFC 2183 §2): the type and its
/// `filename` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDisposition {
    pub disposition: Disposition,
    pub filename: Option<String>,
}

impl ContentDisposition {
    /// Reads `attachment; filename="a b.png"` (quoted or token filename;
    /// other parameters ignored). None for an unknown disposition type.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let disposition = Disposition::parse(parts.next()?)?;
        let mut filename = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("filename")
            {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .unwrap_or(v);
                filename = Some(v.replace("\\\"", "\""));
            }
        }
        Some(ContentDisposition {
            disposition,
            filename,
        })
    }
}

impl std::fmt::Display for ContentDisposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.disposition.as_str())?;
        if let Some(n) = &self.filename {
            // RFC 2183 §2: a quoted-string; CR/LF never reach the wire
            let clean: String = n
                .chars()
                .filter(|c| !c.is_control())
                .map(|c| if c == '"' { '\'' } else { c })
                .collect();
            write!(f, "; filename=\"{clean}\"")?;
        }
        Ok(())
    }
}

/// One Large Message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeMessage {
    /// Its media type (the offer's `a=accept-types`, the SEND's Content-Type).
    pub content_type: String,
    pub body: Vec<u8>,
    pub disposition: Disposition,
    /// Content-Description (seed 003 9.4.2 step 2).
    pub description: Option<String>,
    /// The file name, for the receiver to save under.
    pub filename: Option<String>,
}

impl LargeMessage {
    /// A long text, rendered in the conversation.
    pub fn text(text: &str) -> Self {
        LargeMessage {
            content_type: "text/plain;charset=UTF-8".into(),
            body: text.as_bytes().to_vec(),
            disposition: Disposition::Render,
            description: None,
            filename: None,
        }
    }

    /// A file, saved by the receiver (`attachment`); its type from the
    /// file name's extension.
    pub fn file(filename: &str, body: Vec<u8>) -> Self {
        LargeMessage {
            content_type: content_type_for(filename).into(),
            body,
            disposition: Disposition::Attachment,
            description: Some(filename.to_owned()),
            filename: Some(filename.to_owned()),
        }
    }

    /// The media type without parameters (for `a=accept-types`).
    pub fn media_type(&self) -> &str {
        self.content_type.split(';').next().unwrap_or("").trim()
    }

    /// The MIME headers every SEND chunk carries besides Content-Type
    /// (seed 003 9.4.2 steps 1.a/1.b and 2).
    pub fn mime_headers(&self) -> Vec<(String, String)> {
        let mut h = vec![(
            "Content-Disposition".to_string(),
            ContentDisposition {
                disposition: self.disposition,
                filename: self.filename.clone(),
            }
            .to_string(),
        )];
        if let Some(d) = &self.description {
            let clean: String = d.chars().filter(|c| !c.is_control()).collect();
            h.push(("Content-Description".to_string(), clean));
        }
        h
    }
}

/// A media type from a file name's extension (`application/octet-stream`
/// when unknown).
pub fn content_type_for(filename: &str) -> &'static str {
    let ext = Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "text" | "log" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// What an incoming MSRP offer asks for (seed 003 9.2.2 step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A chat session (seed 003 7.1.2.1).
    Chat,
    /// `a=sendonly` and `a=file-size`: a Large Message.
    LargeMessage,
    /// `a=file-selector` (RFC 5547 §5): a file transfer (seed 003 10).
    FileTransfer,
}

/// Tells the three apart; a file-selector wins (RFC 5547 is the more
/// specific description).
pub fn session_kind(offer: &MsrpMedia) -> SessionKind {
    if offer.is_file_transfer() {
        SessionKind::FileTransfer
    } else if offer.is_large_message() {
        SessionKind::LargeMessage
    } else {
        SessionKind::Chat
    }
}

/// What a receiver takes in Large Message mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeSettings {
    /// Media types taken (patterns like `image/*`; `*` for all).
    pub accept_types: Vec<String>,
    /// Largest `a=file-size` taken.
    pub max_size: u64,
}

impl Default for LargeSettings {
    fn default() -> Self {
        LargeSettings {
            accept_types: vec!["*".into()],
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// Why an incoming Large Message is refused with 488 (seed 003 9.2.2 step 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LargeRefusal {
    #[error("content type {0} not accepted")]
    TypeNotAccepted(String),
    #[error("message of {size} bytes is larger than {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("file transfer (RFC 5547) not supported")]
    FileTransfer,
}

impl LargeSettings {
    /// Seed 003 9.2.2 step 1: every offered type must be one we take, and
    /// the size within our limit.
    pub fn check(&self, offer: &MsrpMedia) -> Result<(), LargeRefusal> {
        if offer.is_file_transfer() {
            return Err(LargeRefusal::FileTransfer);
        }
        if let Some(t) = offer
            .accept_types
            .iter()
            .find(|t| !AcceptTypes::accepts(&self.accept_types, t))
        {
            return Err(LargeRefusal::TypeNotAccepted(t.clone()));
        }
        match offer.file_size {
            Some(size) if size > self.max_size => Err(LargeRefusal::TooLarge {
                size,
                limit: self.max_size,
            }),
            _ => Ok(()),
        }
    }
}

/// A file name safe to create in the downloads dir: the last path
/// component, without control characters, never `.`/`..`/empty.
pub fn safe_file_name(name: Option<&str>) -> String {
    let last = name
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let last = last.trim();
    if last.is_empty() || last == "." || last == ".." {
        "large-message.bin".into()
    } else {
        last.to_string()
    }
}

/// The n-th candidate for `name`: `name` itself, then `stem (n).ext`.
pub fn candidate_name(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
        _ => format!("{name} ({n})"),
    }
}

/// Writes `body` as a new file in `dir` (created if missing) under `name`
/// made safe, never overwriting: `a.png`, `a (1).png`, ... (each tried with
/// `create_new`, so a file appearing meanwhile is not overwritten either).
pub fn save_attachment(dir: &Path, name: Option<&str>, body: &[u8]) -> io::Result<PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let base = safe_file_name(name);
    for n in 0..10_000 {
        let path = dir.join(candidate_name(&base, n));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(body)?;
                f.sync_all()?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for {base} in {}", dir.display()),
    ))
}

/// Reads a file into a Large Message (IO: for the runner). The error
/// names the file.
pub fn read_file(
    path: &Path,
    disposition: Disposition,
    description: Option<String>,
) -> Result<LargeMessage, String> {
    let body = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut m = LargeMessage::file(&name, body);
    m.disposition = disposition;
    if description.is_some() {
        m.description = description;
    }
    Ok(m)
}

/// The platform's downloads dir (`directories`), else `isc/downloads`
/// under the data dir, else `./downloads`.
pub fn default_downloads_dir() -> PathBuf {
    if let Some(d) =
        directories::UserDirs::new().and_then(|u| u.download_dir().map(Path::to_path_buf))
    {
        return d;
    }
    directories::ProjectDirs::from("", "", "isc")
        .map(|p| p.data_dir().join("downloads"))
        .unwrap_or_else(|| PathBuf::from("downloads"))
}

/// How long a receiver keeps reading a Large Message after the BYE (the
/// BYE may overtake the last chunks: SIP and MSRP take different paths).
pub const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The Large Message part of a [`super::chat::ChatSession`].
#[derive(Debug)]
pub(crate) enum LargeLeg {
    Out(LargeOut),
    In(LargeIn),
}

/// Sending side.
#[derive(Debug)]
pub(crate) struct LargeOut {
    /// Taken when queued on the MSRP session.
    pub message: Option<LargeMessage>,
    pub message_id: Option<String>,
    pub total: u64,
    pub progress: Progress,
    /// When to BYE (seed 003 9.4.2: after the last chunk's 200 or success REPORT).
    pub close_at: Option<std::time::Instant>,
    /// An MSRP failure code ending the session.
    pub failed: Option<u16>,
    pub done: bool,
}

impl LargeOut {
    pub fn new(message: LargeMessage) -> Self {
        LargeOut {
            total: message.body.len() as u64,
            message: Some(message),
            message_id: None,
            progress: Progress::default(),
            close_at: None,
            failed: None,
            done: false,
        }
    }
}

/// Receiving side.
#[derive(Debug)]
pub(crate) struct LargeIn {
    pub total: u64,
    pub disposition: Option<Disposition>,
    pub filename: Option<String>,
    pub description: Option<String>,
    pub progress: Progress,
    /// Bytes received so far.
    pub received: u64,
    pub complete: bool,
    /// The BYE came before the last chunk: read on until this deadline.
    pub drain_until: Option<std::time::Instant>,
}

impl LargeIn {
    pub fn new(offer: &MsrpMedia) -> Self {
        LargeIn {
            total: offer.file_size.unwrap_or(0),
            disposition: offer
                .file_disposition
                .as_deref()
                .and_then(Disposition::parse),
            filename: None,
            description: None,
            progress: Progress::default(),
            received: 0,
            complete: false,
            drain_until: None,
        }
    }

    pub fn progress_bytes(&self) -> u64 {
        self.received
    }

    /// Reads the MIME headers of a SEND chunk (seed 003 9.4.2).
    pub fn read_headers(&mut self, frame: &crate::proto::msrp::MsrpMessage) {
        if let Some(cd) = frame
            .header("Content-Disposition")
            .and_then(ContentDisposition::parse)
        {
            self.disposition = Some(cd.disposition);
            if cd.filename.is_some() {
                self.filename = cd.filename;
            }
        }
        if let Some(d) = frame.header("Content-Description") {
            self.description = Some(d.to_string());
        }
    }
}

/// Progress reported at each whole percent, so a 20 MiB message makes at
/// most 101 events whatever the chunk size.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    last: Option<u64>,
}

impl Progress {
    /// Whether `bytes` of `total` is worth reporting.
    pub fn step(&mut self, bytes: u64, total: u64) -> bool {
        let pct = (bytes.saturating_mul(100))
            .checked_div(total)
            .unwrap_or(100)
            .min(100);
        if self.last.is_some_and(|l| pct <= l) {
            return false;
        }
        self.last = Some(pct);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sdp::{ConnectionAddress, Direction, FileSelector};

    fn offer(types: &[&str], size: Option<u64>, dir: Direction) -> MsrpMedia {
        let mut m = MsrpMedia::offer(
            7000,
            ConnectionAddress::Ip([127, 0, 0, 1].into()),
            vec!["msrp://127.0.0.1:7000/s1;tcp".into()],
            types,
        );
        m.file_size = size;
        m.direction = dir;
        m
    }

    #[test]
    fn kinds_are_told_apart() {
        assert_eq!(
            session_kind(&offer(&["text/plain"], Some(5), Direction::SendOnly)),
            SessionKind::LargeMessage
        );
        assert_eq!(
            session_kind(&offer(&["text/plain"], None, Direction::SendOnly)),
            SessionKind::Chat
        );
        assert_eq!(
            session_kind(&offer(&["text/plain"], Some(5), Direction::SendRecv)),
            SessionKind::Chat
        );
        let mut ft = offer(&["image/png"], Some(5), Direction::SendOnly);
        ft.file_selector = Some(FileSelector {
            name: Some("a.png".into()),
            ..FileSelector::default()
        });
        assert_eq!(session_kind(&ft), SessionKind::FileTransfer);
        assert_eq!(
            LargeSettings::default().check(&ft),
            Err(LargeRefusal::FileTransfer)
        );
    }

    #[test]
    fn settings_check_types_and_size() {
        let s = LargeSettings {
            accept_types: vec!["text/*".into(), "image/png".into()],
            max_size: 100,
        };
        assert_eq!(
            s.check(&offer(&["image/png"], Some(100), Direction::SendOnly)),
            Ok(())
        );
        assert_eq!(
            s.check(&offer(&["text/plain"], Some(1), Direction::SendOnly)),
            Ok(())
        );
        assert_eq!(
            s.check(&offer(&["application/zip"], Some(1), Direction::SendOnly)),
            Err(LargeRefusal::TypeNotAccepted("application/zip".into()))
        );
        assert_eq!(
            s.check(&offer(&["text/plain"], Some(101), Direction::SendOnly)),
            Err(LargeRefusal::TooLarge {
                size: 101,
                limit: 100
            })
        );
        assert_eq!(
            LargeSettings::default().check(&offer(
                &["application/zip"],
                Some(1),
                Direction::SendOnly
            )),
            Ok(())
        );
    }

    #[test]
    fn content_disposition_round_trips() {
        for cd in [
            ContentDisposition {
                disposition: Disposition::Attachment,
                filename: Some("a b.png".into()),
            },
            ContentDisposition {
                disposition: Disposition::Render,
                filename: None,
            },
        ] {
            assert_eq!(ContentDisposition::parse(&cd.to_string()), Some(cd));
        }
        assert_eq!(
            ContentDisposition::parse("INLINE;filename=x.txt"),
            Some(ContentDisposition {
                disposition: Disposition::Render,
                filename: Some("x.txt".into())
            })
        );
        assert_eq!(ContentDisposition::parse("session"), None);
        assert_eq!(ContentDisposition::parse(""), None);
    }

    proptest::proptest! {
        /// The Content-Disposition reader takes any header value without
        /// panicking; what we print reads back the same.
        #[test]
        fn content_disposition_never_panics_and_round_trips(
            v in "\\PC{0,80}",
            name in proptest::option::of("[^\"\\\\\\p{Cc}]{1,30}"),
            attach in proptest::bool::ANY,
        ) {
            let _ = ContentDisposition::parse(&v);
            let _ = safe_file_name(Some(&v));
            let cd = ContentDisposition {
                disposition: if attach { Disposition::Attachment } else { Disposition::Render },
                filename: name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty() && !n.contains(';') && !n.contains('=')),
            };
            proptest::prop_assert_eq!(ContentDisposition::parse(&cd.to_string()), Some(cd));
        }
    }

    #[test]
    fn mime_headers_of_a_file_and_a_text() {
        let f = LargeMessage::file("report.pdf", vec![1, 2, 3]);
        assert_eq!(f.content_type, "application/pdf");
        assert_eq!(
            f.mime_headers(),
            vec![
                (
                    "Content-Disposition".to_string(),
                    "attachment; filename=\"report.pdf\"".to_string()
                ),
                ("Content-Description".to_string(), "report.pdf".to_string()),
            ]
        );
        let t = LargeMessage::text("hello");
        assert_eq!(t.media_type(), "text/plain");
        assert_eq!(
            t.mime_headers(),
            vec![("Content-Disposition".to_string(), "render".to_string())]
        );
    }

    #[test]
    fn file_names_are_made_safe_and_unique() {
        assert_eq!(safe_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(safe_file_name(Some("C:\\x\\y.txt")), "y.txt");
        assert_eq!(safe_file_name(Some("..")), "large-message.bin");
        assert_eq!(safe_file_name(None), "large-message.bin");
        assert_eq!(candidate_name("a.png", 0), "a.png");
        assert_eq!(candidate_name("a.png", 2), "a (2).png");
        assert_eq!(candidate_name("README", 1), "README (1)");
        assert_eq!(candidate_name(".profile", 1), ".profile (1)");
    }

    #[test]
    fn progress_is_reported_per_percent() {
        let mut p = Progress::default();
        let total = 20 * 1024 * 1024;
        let steps = (0..=320u64)
            .filter(|i| p.step((i * 65_536).min(total), total))
            .count();
        assert_eq!(steps, 101);
        let mut p = Progress::default();
        assert!(p.step(0, 0));
        assert!(!p.step(0, 0));
    }

    #[test]
    fn saving_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("dl");
        let a = save_attachment(&sub, Some("x.bin"), b"one").unwrap();
        let b = save_attachment(&sub, Some("x.bin"), b"two").unwrap();
        assert_eq!(a, sub.join("x.bin"));
        assert_eq!(b, sub.join("x (1).bin"));
        assert_eq!(std::fs::read(&a).unwrap(), b"one");
        assert_eq!(std::fs::read(&b).unwrap(), b"two");
    }
}
