//! Jitter buffer on a virtual clock with a lossy, reordering, duplicating network.

use std::time::{Duration, Instant};

use isc::proto::rtp::{JitterBuffer, JitterConfig, Playout, RtpPacket};

const PTIME: Duration = Duration::from_millis(20);

fn audio(seq: u16, ts: u32) -> RtpPacket {
    RtpPacket::new(0, seq, ts, 7, vec![0xff; 160])
}

/// Deterministic pseudo-random numbers (LCG) so the scenario replays exactly.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Sends `count` packets every 20 ms starting at `first_seq`, with network delay
/// 30 ms + 0..jitter_ms, dropping every seq in `drop`, duplicating every 17th.
/// Returns (arrival, packet) sorted by arrival.
fn network(
    count: u16,
    first_seq: u16,
    jitter_ms: u64,
    drop: &[u16],
    t0: Instant,
) -> Vec<(Instant, RtpPacket)> {
    let mut rng = Lcg(42);
    let mut out = Vec::new();
    for i in 0..count {
        let seq = first_seq.wrapping_add(i);
        let sent = t0 + PTIME * u32::from(i);
        let delay = Duration::from_millis(30 + rng.next(jitter_ms + 1));
        if drop.contains(&seq) {
            continue;
        }
        let p = audio(seq, 1000u32.wrapping_add(160 * u32::from(i)));
        if i % 17 == 5 {
            out.push((sent + delay + Duration::from_millis(3), p.clone()));
        }
        out.push((sent + delay, p));
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// Runs the buffer on a 5 ms tick until `end`, returning what was played.
fn run(
    jb: &mut JitterBuffer,
    arrivals: Vec<(Instant, RtpPacket)>,
    t0: Instant,
    end: Duration,
) -> Vec<(Instant, Playout)> {
    let mut arrivals = arrivals.into_iter().peekable();
    let mut played = Vec::new();
    let mut now = t0;
    while now < t0 + end {
        while let Some((at, _)) = arrivals.peek() {
            if *at > now {
                break;
            }
            let (at, p) = arrivals.next().unwrap();
            jb.push(at, p);
        }
        while let Some(out) = jb.pop(now) {
            played.push((now, out));
        }
        now += Duration::from_millis(5);
    }
    played
}

fn seq_of(p: &Playout) -> u16 {
    match p {
        Playout::Packet(p) => p.sequence_number,
        Playout::Lost {
            sequence_number, ..
        } => *sequence_number,
    }
}

#[test]
fn lossy_reordering_stream_plays_in_order_with_gaps_concealed() {
    let t0 = Instant::now();
    // wraps the sequence number on the way; 40 ms of jitter reorders 20 ms packets
    let drop = [65534u16, 3, 4, 40];
    let arrivals = network(100, 65500, 40, &drop, t0);
    let mut jb = JitterBuffer::new(JitterConfig::audio());
    let played = run(&mut jb, arrivals, t0, Duration::from_secs(4));

    let seqs: Vec<u16> = played.iter().map(|(_, p)| seq_of(p)).collect();
    let expected: Vec<u16> = (0..100u16).map(|i| 65500u16.wrapping_add(i)).collect();
    assert_eq!(
        seqs, expected,
        "every slot played once, in order, across the wrap"
    );
    let lost: Vec<u16> = played
        .iter()
        .filter(|(_, p)| matches!(p, Playout::Lost { .. }))
        .map(|(_, p)| seq_of(p))
        .collect();
    assert_eq!(lost, drop);

    let s = jb.stats();
    assert_eq!(s.lost, 4);
    assert_eq!(s.played, 96);
    assert_eq!(s.late, 0);
    assert!(s.duplicates >= 5, "{s:?}");
    assert!(s.reordered > 0, "{s:?}");
    assert_eq!(s.depth, 0);
    // the target adapts to the ~40 ms spread, above the 40 ms floor
    assert!(s.target_delay > Duration::from_millis(40), "{s:?}");
    assert!(s.jitter > Duration::ZERO);

    // playout is paced: consecutive slots come out ~20 ms apart, never in bursts
    // much bigger than the 5 ms tick once started
    let times: Vec<Instant> = played.iter().map(|(at, _)| *at).collect();
    let span = *times.last().unwrap() - times[0];
    assert!(span >= Duration::from_millis(99 * 20 - 150), "{span:?}");
}

#[test]
fn target_delay_grows_with_jitter() {
    let t0 = Instant::now();
    let mut calm = JitterBuffer::new(JitterConfig::audio());
    for (at, p) in network(100, 0, 2, &[], t0) {
        calm.push(at, p);
    }
    let mut rough = JitterBuffer::new(JitterConfig::audio());
    for (at, p) in network(100, 0, 80, &[], t0) {
        rough.push(at, p);
    }
    assert_eq!(calm.stats().target_delay, Duration::from_millis(40));
    assert!(
        rough.stats().target_delay > Duration::from_millis(80),
        "{:?}",
        rough.stats()
    );
    assert!(rough.stats().target_delay <= Duration::from_millis(400));
}

#[test]
fn late_packet_after_its_slot_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::audio());
    let mut now = t0;
    for seq in 0..5u16 {
        if seq != 2 {
            jb.push(now, audio(seq, u32::from(seq) * 160));
        }
        now += PTIME;
    }
    let mut out = Vec::new();
    for _ in 0..40 {
        while let Some(p) = jb.pop(now) {
            out.push(seq_of(&p));
        }
        now += Duration::from_millis(5);
    }
    assert_eq!(out, [0, 1, 2, 3, 4]);
    jb.push(now, audio(2, 320));
    jb.push(now, audio(3, 480));
    let s = jb.stats();
    assert_eq!((s.lost, s.late, s.duplicates), (1, 1, 1));
    assert_eq!(jb.pop(now), None);
}

#[test]
fn timeout_tells_when_the_next_packet_is_due() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::audio());
    assert_eq!(jb.poll_timeout(), None);
    jb.push(t0, audio(10, 0));
    let due = jb.poll_timeout().unwrap();
    assert_eq!(due, t0 + Duration::from_millis(40));
    assert_eq!(jb.pop(due - Duration::from_millis(1)), None);
    assert!(matches!(jb.pop(due), Some(Playout::Packet(_))));
}

#[test]
fn capacity_bounds_the_buffer() {
    let t0 = Instant::now();
    let config = JitterConfig {
        capacity: 8,
        ..JitterConfig::audio()
    };
    let mut jb = JitterBuffer::new(config);
    for seq in 0..20u16 {
        jb.push(t0, audio(seq, u32::from(seq) * 160));
    }
    let s = jb.stats();
    assert_eq!((s.depth, s.overflow), (8, 12));
    let first = jb.pop(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(seq_of(&first), 12);
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Arbitrary sequence numbers, timestamps and arrival gaps never panic,
        /// and what comes out is in strictly increasing extended order.
        #[test]
        fn never_panics_and_stays_ordered(
            input in prop::collection::vec((any::<u16>(), any::<u32>(), 0u64..200, any::<bool>()), 0..200),
            capacity in 1usize..50,
        ) {
            let t0 = Instant::now();
            let mut jb = JitterBuffer::new(JitterConfig { capacity, ..JitterConfig::audio() });
            let mut now = t0;
            let mut last = None;
            for (seq, ts, gap_ms, pop) in input {
                now += Duration::from_millis(gap_ms);
                jb.push(now, audio(seq, ts));
                if pop {
                    while let Some(out) = jb.pop(now) {
                        let ext = match out {
                            Playout::Packet(_) => None,
                            Playout::Lost { extended_seq, .. } => Some(extended_seq),
                        };
                        if let (Some(e), Some(l)) = (ext, last) {
                            prop_assert!(e > l);
                        }
                        last = ext.or(last);
                    }
                }
                let _ = jb.poll_timeout();
                prop_assert!(jb.stats().depth <= capacity);
            }
        }
    }
}

#[test]
fn a_long_gap_is_one_lost_and_a_jump() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::audio());
    jb.push(t0, audio(0, 0));
    jb.push(t0, audio(1000, 160 * 1000));
    let late = t0 + Duration::from_secs(30);
    let out: Vec<u16> = std::iter::from_fn(|| jb.pop(late))
        .map(|p| seq_of(&p))
        .collect();
    assert_eq!(out, [0, 1, 1000]);
    assert_eq!(jb.stats().lost, 999);
}
