//! Per-source rate limits (IO-free: `now` is passed in). One token bucket
//! per source IP for every SIP message and one for out-of-dialog
//! SUBSCRIBEs, so a flood or a subscription storm from one device is cut
//! while every other source keeps its service. A source that starts being
//! limited is logged once, with the count when it recovers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;

/// Buckets of sources quiet for this long are forgotten (memory stays
/// bounded by the sources active in the last minute).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A token bucket: `rate` tokens a second, at most `burst`.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Messages refused since the source was last admitted.
    refused: u64,
}

impl Bucket {
    fn new(now: Instant, burst: f64) -> Self {
        Bucket {
            tokens: burst,
            last: now,
            refused: 0,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
    }
}

/// One family of buckets (messages, or SUBSCRIBEs).
#[derive(Debug)]
struct Limiter {
    what: &'static str,
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

impl Limiter {
    fn new(what: &'static str, rate: u32, burst: u32) -> Self {
        Limiter {
            what,
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        let b = self
            .buckets
            .entry(ip)
            .or_insert_with(|| Bucket::new(now, burst));
        b.refill(now, rate, burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            if b.refused > 0 {
                tracing::info!(%ip, refused = b.refused, limit = self.what, "source back under its rate limit");
                b.refused = 0;
            }
            return true;
        }
        if b.refused == 0 {
            tracing::warn!(%ip, limit = self.what, rate, burst, "source over its rate limit");
        }
        b.refused += 1;
        false
    }

    fn sweep(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            b.refill(now, rate, burst);
            b.tokens < burst || b.refused > 0
        });
    }
}

/// The server's per-source limits (see the module docs).
#[derive(Debug)]
pub struct SourceLimits {
    messages: Limiter,
    subscribes: Limiter,
    retry_after: u32,
    next_sweep: Instant,
    limit_loopback: bool,
}

impl SourceLimits {
    pub fn new(config: &LimitsConfig, now: Instant) -> Self {
        SourceLimits {
            messages: Limiter::new(
                "messages",
                config.source_messages_per_sec,
                config.source_burst,
            ),
            subscribes: Limiter::new(
                "subscribes",
                config.subscribes_per_sec,
                config.subscribe_burst,
            ),
            retry_after: config.retry_after_secs,
            next_sweep: now + SWEEP_EVERY,
            limit_loopback: config.limit_loopback_sources,
        }
    }

    /// Whether a SIP message from `ip` is processed (else dropped unread).
    pub fn admit_message(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.exempt(ip) {
            return true;
        }
        self.sweep(now);
        self.messages.admit(now, ip)
    }

    /// Whether an out-of-dialog SUBSCRIBE from `ip` is processed (else 503).
    pub fn admit_subscribe(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.exempt(ip) || self.subscribes.admit(now, ip)
    }

    /// The Retry-After of a rate-limit 503 (RFC 3261 §20.33), in seconds.
    pub fn retry_after(&self) -> u32 {
        self.retry_after
    }

    /// Sources currently tracked (for tests and metrics).
    pub fn tracked_sources(&self) -> usize {
        self.messages.buckets.len() + self.subscribes.buckets.len()
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        !self.limit_loopback && crate::config::is_loopback(ip)
    }

    fn sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY;
        self.messages.sweep(now);
        self.subscribes.sweep(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: u32, burst: u32) -> LimitsConfig {
        LimitsConfig {
            source_messages_per_sec: rate,
            source_burst: burst,
            subscribes_per_sec: 1,
            subscribe_burst: 2,
            limit_loopback_sources: true,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn burst_then_rate_per_source() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(&config(10, 5), t0);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert_eq!((0..8).filter(|_| l.admit_message(t0, a)).count(), 5);
        // another source is untouched
        assert!(l.admit_message(t0, b));
        // 10/s: one more token after 100 ms
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.admit_message(t1, a));
        assert!(!l.admit_message(t1, a));
        assert_eq!((0..3).filter(|_| l.admit_subscribe(t0, a)).count(), 2);
        // Loopback is exempt unless asked for.
        let mut open = SourceLimits::new(
            &LimitsConfig {
                source_burst: 1,
                ..config(1, 1)
            },
            t0,
        );
        open.limit_loopback = false;
        assert!((0..10).all(|_| open.admit_message(t0, a)));
        assert!(open.admit_message(t0, [192, 0, 2, 1].into()));
        assert!(!open.admit_message(t0, [192, 0, 2, 1].into()));
    }

    #[test]
    fn quiet_sources_are_forgotten() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(&config(10, 5), t0);
        for i in 0..100u8 {
            l.admit_message(t0, [10, 0, 0, i].into());
        }
        assert_eq!(l.tracked_sources(), 100);
        l.admit_message(t0 + SWEEP_EVERY, [10, 0, 1, 1].into());
        assert_eq!(l.tracked_sources(), 1);
    }
}
