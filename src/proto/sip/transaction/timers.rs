//! RFC 3261 §17 timer values (Table 4) and RFC 6026 Timers L and M.

use std::time::{Duration, Instant};

/// RTT estimate (RFC 3261 §17.1.1.1).
pub const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum duration a message remains in the network.
pub const T4: Duration = Duration::from_secs(5);

/// INVITE request retransmit interval, initially (UDP only).
pub const TIMER_A: Duration = T1;
/// INVITE transaction timeout.
pub const TIMER_B: Duration = Duration::from_millis(64 * 500);
/// Wait time for response retransmits (UDP; zero on reliable transports).
pub const TIMER_D: Duration = Duration::from_secs(32);
/// Non-INVITE request retransmit interval, initially (UDP only).
pub const TIMER_E: Duration = T1;
/// Non-INVITE transaction timeout.
pub const TIMER_F: Duration = Duration::from_millis(64 * 500);
/// INVITE response retransmit interval, initially (UDP only).
pub const TIMER_G: Duration = T1;
/// Wait time for ACK receipt.
pub const TIMER_H: Duration = Duration::from_millis(64 * 500);
/// Wait time for ACK retransmits (UDP; zero on reliable transports).
pub const TIMER_I: Duration = T4;
/// Wait time for non-INVITE request retransmits (UDP; zero on reliable).
pub const TIMER_J: Duration = Duration::from_millis(64 * 500);
/// Wait time for response retransmits (UDP; zero on reliable transports).
pub const TIMER_K: Duration = T4;
/// RFC 6026 §8.7: wait time for accepted INVITE request retransmits.
pub const TIMER_L: Duration = Duration::from_millis(64 * 500);
/// RFC 6026 §8.4: wait time for retransmissions of 2xx responses.
pub const TIMER_M: Duration = Duration::from_millis(64 * 500);
/// RFC 3261 §17.2.1: the INVITE server transaction sends 100 Trying itself if
/// the TU has not sent a provisional response within this delay.
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

/// A retransmission timer whose interval doubles after each firing, capped
/// at `cap` when given (Timers A, E, G and the §13.3.1.4 2xx timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub at: Instant,
    pub interval: Duration,
    pub cap: Option<Duration>,
}

impl Backoff {
    pub fn new(now: Instant, initial: Duration, cap: Option<Duration>) -> Self {
        Self {
            at: now + initial,
            interval: initial,
            cap,
        }
    }

    /// Re-arm after a firing at `now`: double the interval, capped.
    pub fn fire(&mut self, now: Instant) {
        let doubled = self.interval.saturating_mul(2);
        self.interval = match self.cap {
            Some(cap) => doubled.min(cap),
            None => doubled,
        };
        self.at = now + self.interval;
    }

    /// Re-arm with a fixed interval (Timer E in Proceeding fires every T2).
    pub fn fire_fixed(&mut self, now: Instant, interval: Duration) {
        self.interval = interval;
        self.at = now + interval;
    }
}

/// Whether a deadline is due at `now`.
pub(crate) fn due(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| at <= now)
}

/// The earliest of some deadlines.
pub(crate) fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}
