//! Splitting a message into chunks and putting chunks back together
//! (RFC 4975 §5.1, §7.1.1, §7.3.1).

use std::collections::HashMap;

use super::IdGenerator;
use super::message::{
    ByteRange, ContinuationFlag, FailureReport, MessageError, MsrpHeader, MsrpMessage, MsrpMethod,
};
use super::uri::MsrpPath;

/// What is wrong with a chunk on reassembly.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk has no {0}")]
    MissingHeader(&'static str),
    #[error("Byte-Range {range} does not match a body of {len} bytes")]
    RangeMismatch { range: ByteRange, len: usize },
    #[error("message {message_id} of {size} bytes exceeds {limit}")]
    TooLarge {
        message_id: String,
        size: u64,
        limit: u64,
    },
    #[error("total of message {0} changed between chunks")]
    InconsistentTotal(String),
    #[error("more than {0} messages in reassembly at once")]
    TooManyMessages(usize),
}

impl ChunkError {
    /// The transaction response code a receiver answers this error with
    /// (RFC 4975 §7.3.1: 413 stops the sender, 400 for a bad request).
    pub fn response_code(&self) -> u16 {
        match self {
            ChunkError::TooLarge { .. } | ChunkError::TooManyMessages(_) => 413,
            _ => 400,
        }
    }
}

/// Produces the SEND chunks of one message, `chunk_size` body bytes each,
/// `+` on all but the last which has `$` (RFC 4975 §5.1). Transaction ids are
/// left empty: [`Chunker::next_frame`] assigns them.
#[derive(Debug, Clone)]
pub struct Chunker {
    to_path: MsrpPath,
    from_path: MsrpPath,
    message_id: String,
    content_type: Option<String>,
    body: Vec<u8>,
    chunk_size: usize,
    offset: usize,
    success_report: Option<bool>,
    failure_report: Option<FailureReport>,
    /// MIME headers of the content (RFC 4975 §9 `Other-Mime-header`).
    mime_headers: Vec<(String, String)>,
    done: bool,
}

impl Chunker {
    /// `content_type: None` makes an empty SEND (no body; RFC 4975 §5.4/§7.1.1).
    pub fn new(
        to_path: MsrpPath,
        from_path: MsrpPath,
        message_id: impl Into<String>,
        content_type: Option<String>,
        body: Vec<u8>,
        chunk_size: usize,
    ) -> Self {
        Chunker {
            to_path,
            from_path,
            message_id: message_id.into(),
            content_type,
            body,
            chunk_size: chunk_size.max(1),
            offset: 0,
            success_report: None,
            failure_report: None,
            mime_headers: Vec::new(),
            done: false,
        }
    }

    /// Adds MIME headers of the content (`Content-Disposition`,
    /// `Content-Description`, `Content-ID`: RFC 4975 §9 `Other-Mime-header`)
    /// to every chunk that carries a body, before its Content-Type (seed 003
    /// 9.4.2 puts Content-Disposition on the MSRP SEND).
    pub fn with_mime_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.mime_headers = headers;
        self
    }

    /// Adds `Success-Report` / `Failure-Report` headers to every chunk
    /// (they must be the same on all chunks; RFC 4975 §7.1.1).
    pub fn with_reports(mut self, success: Option<bool>, failure: Option<FailureReport>) -> Self {
        self.success_report = success;
        self.failure_report = failure;
        self
    }

    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    pub fn total(&self) -> u64 {
        self.body.len() as u64
    }

    /// Body bytes already handed out.
    pub fn sent(&self) -> u64 {
        self.offset as u64
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    fn base(&self, range: ByteRange) -> MsrpMessage {
        let mut m = MsrpMessage::request(
            MsrpMethod::Send,
            String::new(),
            self.to_path.clone(),
            self.from_path.clone(),
        )
        .with_header(MsrpHeader::MessageId(self.message_id.clone()))
        .with_header(MsrpHeader::ByteRange(range));
        if let Some(s) = self.success_report {
            m.headers.push(MsrpHeader::SuccessReport(s));
        }
        if let Some(f) = self.failure_report {
            m.headers.push(MsrpHeader::FailureReport(f));
        }
        m
    }

    /// The next chunk (transaction id empty), or `None` when all were given.
    pub fn next_chunk(&mut self) -> Option<MsrpMessage> {
        if self.done {
            return None;
        }
        let total = self.body.len();
        let Some(ct) = self.content_type.clone() else {
            self.done = true;
            return Some(self.base(ByteRange {
                start: 1,
                end: Some(0),
                total: Some(0),
            }));
        };
        let end = total.min(self.offset + self.chunk_size);
        let data = self.body.get(self.offset..end).unwrap_or_default().to_vec();
        let range = ByteRange {
            start: self.offset as u64 + 1,
            end: Some(end as u64),
            total: Some(total as u64),
        };
        self.offset = end;
        self.done = end >= total;
        let flag = if self.done {
            ContinuationFlag::Complete
        } else {
            ContinuationFlag::Continuation
        };
        let mut m = self.base(range);
        for (name, value) in &self.mime_headers {
            m.headers.push(MsrpHeader::Other {
                name: name.clone(),
                value: value.clone(),
            });
        }
        Some(m.with_body(ct, data).with_flag(flag))
    }

    /// The next chunk with a transaction id from `ids`, serialized.
    pub fn next_frame(
        &mut self,
        ids: &mut dyn IdGenerator,
    ) -> Option<Result<(MsrpMessage, Vec<u8>), MessageError>> {
        let mut m = self.next_chunk()?;
        Some(m.assign_transaction_id_and_serialize(ids).map(|b| (m, b)))
    }

    /// An empty chunk with `#` that aborts the rest (RFC 4975 §7.1.1); `None`
    /// when the message was already sent whole.
    pub fn abort(&mut self) -> Option<MsrpMessage> {
        if self.done {
            return None;
        }
        self.done = true;
        let range = ByteRange {
            start: self.offset as u64 + 1,
            end: Some(self.offset as u64),
            total: Some(self.body.len() as u64),
        };
        let ct = self
            .content_type
            .clone()
            .unwrap_or_else(|| "text/plain".into());
        Some(
            self.base(range)
                .with_body(ct, Vec::new())
                .with_flag(ContinuationFlag::Aborted),
        )
    }
}

/// What a chunk did to its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassemblyOutcome {
    /// More chunks are awaited; `bytes` received so far.
    Progress {
        message_id: String,
        bytes: u64,
        total: Option<u64>,
    },
    Complete {
        message_id: String,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// The sender aborted with `#`; what was received is dropped.
    Aborted { message_id: String, bytes: u64 },
}

#[derive(Debug, Default)]
struct Partial {
    content_type: Option<String>,
    data: Vec<u8>,
    /// Received ranges, 0-based half-open, sorted and merged.
    ranges: Vec<(u64, u64)>,
    total: Option<u64>,
}

impl Partial {
    fn received(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    fn insert(&mut self, s: u64, e: u64) {
        if s == e {
            return;
        }
        self.ranges.push((s, e));
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for (s, e) in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.ranges = merged;
    }

    fn is_complete(&self) -> bool {
        match self.total {
            Some(0) => true,
            Some(t) => self.ranges.as_slice() == [(0, t)],
            None => false,
        }
    }
}

/// Reassembles chunks per Message-ID: any order (placed by Byte-Range),
/// interleaved messages, `*` totals, abort; memory bounded by
/// `max_message_size` per message and `max_messages` in flight.
#[derive(Debug)]
pub struct Reassembler {
    max_message_size: u64,
    max_messages: usize,
    pending: HashMap<String, Partial>,
}

impl Reassembler {
    pub fn new(max_message_size: u64, max_messages: usize) -> Self {
        Reassembler {
            max_message_size,
            max_messages,
            pending: HashMap::new(),
        }
    }

    /// Messages partly received.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Drops a partly received message.
    pub fn discard(&mut self, message_id: &str) {
        self.pending.remove(message_id);
    }

    /// Takes one SEND chunk.
    pub fn feed(&mut self, chunk: &MsrpMessage) -> Result<ReassemblyOutcome, ChunkError> {
        let message_id = chunk
            .message_id()
            .ok_or(ChunkError::MissingHeader("Message-ID"))?
            .to_string();
        let body = chunk.body.as_deref().unwrap_or_default();
        let len = body.len() as u64;
        // RFC 4975 §7.3.1: no Byte-Range means the whole message in one chunk.
        let range = chunk.byte_range().unwrap_or(ByteRange {
            start: 1,
            end: Some(len),
            total: (chunk.flag == ContinuationFlag::Complete).then_some(len),
        });
        // A hand-built frame may say 0; the wire parser never does.
        let Some(start0) = range.start.checked_sub(1) else {
            return Err(ChunkError::RangeMismatch {
                range,
                len: body.len(),
            });
        };
        let Some(end0) = start0.checked_add(len) else {
            return Err(ChunkError::RangeMismatch {
                range,
                len: body.len(),
            });
        };
        if chunk.flag != ContinuationFlag::Aborted && range.end.is_some_and(|e| e != end0) {
            return Err(ChunkError::RangeMismatch {
                range,
                len: body.len(),
            });
        }
        let too_large = |size| ChunkError::TooLarge {
            message_id: message_id.clone(),
            size,
            limit: self.max_message_size,
        };
        if let Some(t) = range.total {
            if t > self.max_message_size {
                self.pending.remove(&message_id);
                return Err(too_large(t));
            }
            if end0 > t {
                return Err(ChunkError::RangeMismatch {
                    range,
                    len: body.len(),
                });
            }
        }
        if end0 > self.max_message_size {
            self.pending.remove(&message_id);
            return Err(too_large(end0));
        }
        if chunk.flag == ContinuationFlag::Aborted {
            let bytes = self.pending.remove(&message_id).map_or(0, |p| p.received())
                + if range.end.is_some_and(|e| e == end0) {
                    len
                } else {
                    0
                };
            return Ok(ReassemblyOutcome::Aborted { message_id, bytes });
        }
        if !self.pending.contains_key(&message_id) && self.pending.len() >= self.max_messages {
            return Err(ChunkError::TooManyMessages(self.max_messages));
        }
        let p = self.pending.entry(message_id.clone()).or_default();
        if chunk.content_type().is_some() {
            p.content_type = chunk.content_type().map(str::to_string);
        }
        match (p.total, range.total) {
            (Some(a), Some(b)) if a != b => {
                self.pending.remove(&message_id);
                return Err(ChunkError::InconsistentTotal(message_id));
            }
            (None, Some(b)) => p.total = Some(b),
            _ => {}
        }
        // The `$` chunk is the last one sent: its end is the size when the
        // total was `*` (RFC 4975 §7.1.1).
        if chunk.flag == ContinuationFlag::Complete && p.total.is_none() {
            p.total = Some(end0);
        }
        let (s, e) = (start0 as usize, end0 as usize);
        if p.data.len() < e {
            p.data.resize(e, 0);
        }
        if let Some(dst) = p.data.get_mut(s..e) {
            dst.copy_from_slice(body);
        }
        p.insert(start0, end0);
        if let Some(t) = p.total
            && p.ranges.last().is_some_and(|r| r.1 > t)
        {
            self.pending.remove(&message_id);
            return Err(ChunkError::InconsistentTotal(message_id));
        }
        if p.is_complete() {
            let mut p = self.pending.remove(&message_id).unwrap_or_default();
            p.data.truncate(p.total.unwrap_or(0) as usize);
            return Ok(ReassemblyOutcome::Complete {
                message_id,
                content_type: p.content_type,
                body: p.data,
            });
        }
        Ok(ReassemblyOutcome::Progress {
            message_id,
            bytes: p.received(),
            total: p.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msrp::SequentialIds;
    use crate::proto::msrp::parser::parse_message;
    use crate::proto::msrp::uri::MsrpUri;
    use proptest::prelude::*;

    fn paths() -> (MsrpPath, MsrpPath) {
        (
            MsrpPath::single(MsrpUri::new("bob.example.com", 8888, "9di4eae923wzd")),
            MsrpPath::single(MsrpUri::new("alicepc.example.com", 7777, "iau39soe2843z")),
        )
    }

    fn chunks(body: &[u8], size: usize) -> Vec<MsrpMessage> {
        let (to, from) = paths();
        let mut c = Chunker::new(
            to,
            from,
            "m1",
            Some("text/plain".into()),
            body.to_vec(),
            size,
        );
        let mut ids = SequentialIds::new("tx");
        let mut out = Vec::new();
        while let Some(f) = c.next_frame(&mut ids) {
            out.push(f.unwrap().0);
        }
        out
    }

    /// RFC 4975 §9: Other-Mime-headers precede Content-Type; every chunk
    /// carries them, and they survive the wire parser.
    #[test]
    fn mime_headers_go_before_content_type_on_every_chunk() {
        let (to, from) = paths();
        let mut c = Chunker::new(to, from, "m1", Some("image/png".into()), vec![7u8; 10], 4)
            .with_mime_headers(vec![
                (
                    "Content-Disposition".into(),
                    "attachment; filename=\"a.png\"".into(),
                ),
                ("Content-Description".into(), "holiday".into()),
            ]);
        let mut ids = SequentialIds::new("tx");
        let mut n = 0;
        while let Some(f) = c.next_frame(&mut ids) {
            let (_, bytes) = f.unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let disp = text.find("Content-Disposition: attachment").unwrap();
            let desc = text.find("Content-Description: holiday").unwrap();
            let ct = text.find("Content-Type: image/png").unwrap();
            assert!(disp < ct && desc < ct, "{text}");
            let parsed = parse_message(&bytes).unwrap();
            assert_eq!(parsed.header("Content-Description"), Some("holiday"));
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn chunk_flags_and_ranges() {
        let cs = chunks(b"0123456789", 4);
        let ranges: Vec<_> = cs
            .iter()
            .map(|c| c.byte_range().unwrap().to_string())
            .collect();
        assert_eq!(ranges, ["1-4/10", "5-8/10", "9-10/10"]);
        let flags: Vec<_> = cs.iter().map(|c| c.flag).collect();
        use ContinuationFlag::*;
        assert_eq!(flags, [Continuation, Continuation, Complete]);
        assert_eq!(cs[0].transaction_id, "tx0001");
    }

    #[test]
    fn out_of_order_and_interleaved() {
        let a = chunks(b"aaaabbbbcc", 4);
        let mut b = chunks(b"xyz", 2);
        for c in &mut b {
            c.headers.retain(|h| !matches!(h, MsrpHeader::MessageId(_)));
            c.headers.push(MsrpHeader::MessageId("m2".into()));
        }
        let mut r = Reassembler::new(100, 4);
        assert!(matches!(
            r.feed(&a[2]).unwrap(),
            ReassemblyOutcome::Progress { bytes: 2, .. }
        ));
        assert!(matches!(
            r.feed(&b[0]).unwrap(),
            ReassemblyOutcome::Progress { .. }
        ));
        assert!(matches!(
            r.feed(&a[0]).unwrap(),
            ReassemblyOutcome::Progress { bytes: 6, .. }
        ));
        match r.feed(&b[1]).unwrap() {
            ReassemblyOutcome::Complete {
                message_id, body, ..
            } => {
                assert_eq!(message_id, "m2");
                assert_eq!(body, b"xyz");
            }
            o => panic!("{o:?}"),
        }
        match r.feed(&a[1]).unwrap() {
            ReassemblyOutcome::Complete {
                body, content_type, ..
            } => {
                assert_eq!(body, b"aaaabbbbcc");
                assert_eq!(content_type.as_deref(), Some("text/plain"));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn star_total_and_abort() {
        let mut cs = chunks(b"hello world", 5);
        for c in &mut cs {
            for h in &mut c.headers {
                if let MsrpHeader::ByteRange(br) = h {
                    br.total = None;
                    br.end = None;
                }
            }
        }
        let mut r = Reassembler::new(100, 4);
        r.feed(&cs[0]).unwrap();
        r.feed(&cs[1]).unwrap();
        match r.feed(&cs[2]).unwrap() {
            ReassemblyOutcome::Complete { body, .. } => assert_eq!(body, b"hello world"),
            o => panic!("{o:?}"),
        }
        let (to, from) = paths();
        let mut c = Chunker::new(to, from, "m9", Some("text/plain".into()), vec![1; 10], 4);
        let first = c.next_chunk().unwrap();
        let abort = c.abort().unwrap();
        assert_eq!(abort.flag, ContinuationFlag::Aborted);
        r.feed(&first).unwrap();
        assert_eq!(
            r.feed(&abort).unwrap(),
            ReassemblyOutcome::Aborted {
                message_id: "m9".into(),
                bytes: 4
            }
        );
        assert_eq!(r.pending(), 0);
        assert!(c.next_chunk().is_none());
    }

    #[test]
    fn bounds() {
        let cs = chunks(&[7; 50], 10);
        let mut r = Reassembler::new(20, 1);
        let e = r.feed(&cs[0]).unwrap_err();
        assert_eq!(e.response_code(), 413);
        let mut r = Reassembler::new(100, 1);
        r.feed(&cs[0]).unwrap();
        let other = chunks(&[1; 30], 10);
        let mut o = other[0].clone();
        o.headers.retain(|h| !matches!(h, MsrpHeader::MessageId(_)));
        o.headers.push(MsrpHeader::MessageId("zz".into()));
        assert_eq!(r.feed(&o).unwrap_err(), ChunkError::TooManyMessages(1));
        let mut bad = cs[1].clone();
        bad.body = Some(vec![1; 3]);
        assert!(matches!(
            r.feed(&bad).unwrap_err(),
            ChunkError::RangeMismatch { .. }
        ));
    }

    #[test]
    fn empty_send() {
        let (to, from) = paths();
        let mut c = Chunker::new(to, from, "e1", None, Vec::new(), 10);
        let mut ids = SequentialIds::new("t");
        let (m, bytes) = c.next_frame(&mut ids).unwrap().unwrap();
        assert!(m.body.is_none());
        assert_eq!(parse_message(&bytes).unwrap(), m);
        assert!(c.next_chunk().is_none());
    }

    proptest! {
        #[test]
        fn chunk_reassemble_round_trip(
            body in proptest::collection::vec(any::<u8>(), 0..3000),
            size in 1usize..700,
            seed in any::<u64>(),
        ) {
            let mut cs = chunks(&body, size);
            // shuffle deterministically, keeping any order valid
            let n = cs.len();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                cs.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut r = Reassembler::new(10_000, 4);
            let mut done = None;
            for c in &cs {
                let bytes = c.to_bytes().unwrap();
                let back = parse_message(&bytes).unwrap();
                prop_assert_eq!(&back, c);
                if let ReassemblyOutcome::Complete { body, .. } = r.feed(&back).unwrap() {
                    done = Some(body);
                }
            }
            prop_assert_eq!(done, Some(body));
        }
    }
}
