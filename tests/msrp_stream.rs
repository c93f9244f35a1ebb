//! A 1 MiB message chunked into 2 KiB SENDs, serialized into one byte stream
//! and fed to the streaming parser split in many ways; reassembly must give
//! the identical message back every time.

use isc::proto::msrp::{
    Chunker, MsrpFrame, MsrpParser, MsrpPath, MsrpUri, ParserConfig, Reassembler,
    ReassemblyOutcome, SequentialIds,
};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const SIZE: usize = 1024 * 1024;
const CHUNK: usize = 2048;

struct Fixture {
    body: Vec<u8>,
    frames: Vec<Vec<u8>>,
    stream: Vec<u8>,
}

fn fixture() -> Fixture {
    let mut rng = StdRng::seed_from_u64(4975);
    let mut body = vec![0u8; SIZE];
    rng.fill_bytes(&mut body);
    // Plant end-line look-alikes in the body: they must not cut frames. The
    // first sits in the third chunk and names `tx0003`, the id that chunk would
    // get: the serializer must pick another (RFC 4975 §7.1).
    for (i, fake) in [
        &b"\r\n-------tx0003$\r\n"[..],
        b"\r\n-------",
        b"-------tx99+\r\n",
    ]
    .iter()
    .enumerate()
    {
        let at = 5000 + i * 70_000;
        body[at..at + fake.len()].copy_from_slice(fake);
    }
    let to = MsrpPath::single(MsrpUri::new("bob.example.com", 8888, "9di4eae923wzd"));
    let from = MsrpPath::single(MsrpUri::new("alicepc.example.com", 7777, "iau39soe2843z"));
    let mut chunker = Chunker::new(
        to,
        from,
        "big1",
        Some("application/octet-stream".into()),
        body.clone(),
        CHUNK,
    );
    let mut ids = SequentialIds::new("tx");
    let mut frames = Vec::new();
    while let Some(f) = chunker.next_frame(&mut ids) {
        frames.push(f.unwrap().1);
    }
    assert_eq!(frames.len(), SIZE / CHUNK);
    assert!(
        frames[2].starts_with(b"MSRP tx0004 SEND"),
        "tx0003 was skipped"
    );
    let stream = frames.concat();
    Fixture {
        body,
        frames,
        stream,
    }
}

fn config() -> ParserConfig {
    ParserConfig {
        max_header_size: 4096,
        max_chunk_size: 4096,
    }
}

/// Feeds `pieces` and returns the reassembled body.
fn run<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut p = MsrpParser::new(config());
    let mut r = Reassembler::new(2 * SIZE as u64, 4);
    let mut out = None;
    for piece in pieces {
        p.push(piece);
        while let Some(f) = p.next() {
            let f: MsrpFrame = f.unwrap();
            if let ReassemblyOutcome::Complete { body, .. } = r.feed(&f).unwrap() {
                assert!(out.is_none(), "completed twice");
                out = Some(body);
            }
        }
        assert!(p.buffered() <= 2 * CHUNK + 4096, "parser memory is bounded");
    }
    assert_eq!(p.buffered(), 0);
    out.expect("message completed")
}

#[test]
fn fixed_split_sizes() {
    let fx = fixture();
    for size in [1usize, 2, 3, 7, 64, 1000, 2047, 2048, 2049, 65536, SIZE * 2] {
        let got = run(fx.stream.chunks(size));
        assert!(got == fx.body, "split size {size}");
    }
}

#[test]
fn seeded_random_splits() {
    let fx = fixture();
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut cuts = Vec::new();
        let mut at = 0;
        while at < fx.stream.len() {
            let n = rng.random_range(1..5000).min(fx.stream.len() - at);
            cuts.push(&fx.stream[at..at + n]);
            at += n;
        }
        assert!(run(cuts.into_iter()) == fx.body, "seed {seed}");
    }
}

/// Every offset around the first chunk's boundary: the first two frames are
/// cut at each position, the rest follows in one piece.
#[test]
fn every_offset_in_first_boundary_region() {
    let fx = fixture();
    let region = fx.frames[0].len() + fx.frames[1].len();
    let head = &fx.stream[..region];
    let tail = &fx.stream[region..];
    let mut p_ref = MsrpParser::new(config());
    p_ref.push(head);
    let expected: Vec<_> = std::iter::from_fn(|| p_ref.next())
        .map(Result::unwrap)
        .collect();
    assert_eq!(expected.len(), 2);
    for cut in 0..=region {
        let mut p = MsrpParser::new(config());
        let mut got = Vec::new();
        for piece in [&head[..cut], &head[cut..]] {
            p.push(piece);
            while let Some(f) = p.next() {
                got.push(f.unwrap());
            }
        }
        assert_eq!(got, expected, "cut at {cut}");
    }
    // And the whole message still comes back with such a cut.
    let got = run([
        &fx.stream[..fx.frames[0].len() - 5],
        &head[fx.frames[0].len() - 5..],
        tail,
    ]
    .into_iter());
    assert!(got == fx.body);
}

/// Each end-line split across pushes at every position inside it.
#[test]
fn end_line_split_across_pushes() {
    let fx = fixture();
    let mut offset = 0;
    let mut cuts = Vec::new();
    for (i, f) in fx.frames.iter().enumerate() {
        let dashes = f.windows(7).rposition(|w| w == b"-------").unwrap();
        let end_line_len = f.len() - dashes;
        let k = i % end_line_len;
        cuts.push(offset + f.len() - end_line_len + k);
        offset += f.len();
    }
    let mut pieces = Vec::new();
    let mut last = 0;
    for c in cuts {
        pieces.push(&fx.stream[last..c]);
        last = c;
    }
    pieces.push(&fx.stream[last..]);
    assert!(run(pieces.into_iter()) == fx.body);
}
