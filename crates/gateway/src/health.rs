//! Passive health of each target (provider + upstream model): a circuit breaker fed by the calls
//! themselves.
//!
//! Consecutive failures (connection errors, timeouts, 5xx) eject a target for a time that doubles
//! with each ejection in a row (10 s, 20 s, … up to 5 min). When the time is up the circuit is
//! half-open: one call may try it; success closes the circuit and resets the count, failure ejects
//! it again for longer. A 429 cools the target down for its `retry-after` (default 1 s) without
//! counting as a failure. Routing skips ejected and cooling targets while others are available —
//! and tries them anyway when none is, rather than failing without trying.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Failures in a row that eject a target.
pub const FAILURES_TO_EJECT: u32 = 5;
const BASE_EJECTION: Duration = Duration::from_secs(10);
const MAX_EJECTION: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
struct State {
    failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
    probing: bool,
    cool_until: Option<Instant>,
    successes: u64,
    total_failures: u64,
}

/// One target's health, and the load figures routing strategies read.
#[derive(Debug, Default)]
pub struct TargetHealth {
    state: Mutex<State>,
    in_flight: AtomicUsize,
    /// EWMA of the time to response headers, in microseconds (as `f64` bits; 0: no data yet).
    latency_us: AtomicU64,
}

/// A call in flight to a target; dropping it ends the call.
#[derive(Debug)]
pub struct InFlight(Arc<TargetHealth>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a call to the target went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// 429: slow down for this long.
    RateLimited(Duration),
}

/// What the admin API and metrics show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `healthy`, `ejected`, `half_open` or `cooling_down`.
    pub state: &'static str,
    pub consecutive_failures: u32,
    pub ejections_in_a_row: u32,
    /// Milliseconds until the target is tried again (ejected or cooling down).
    pub back_in_ms: Option<u64>,
    pub successes: u64,
    pub failures: u64,
}

impl TargetHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A few assignments per update: a panic cannot leave the state half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a call in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency average in microseconds (0 before the first call).
    pub fn latency_us(&self) -> f64 {
        f64::from_bits(self.latency_us.load(Ordering::Relaxed))
    }

    /// Folds a time to response headers into the average (weight 0.2 for the new sample).
    pub fn observe_latency(&self, d: Duration) {
        let sample = d.as_secs_f64() * 1e6;
        let _ = self
            .latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if old == 0.0 {
                    sample
                } else {
                    old * 0.8 + sample * 0.2
                };
                Some(new.to_bits())
            });
    }

    /// Whether the target would take a call now (without claiming a half-open probe).
    pub fn available(&self) -> bool {
        let now = Instant::now();
        let s = self.lock();
        s.cool_until.is_none_or(|t| t <= now)
            && match s.ejected_until {
                None => true,
                Some(t) => t <= now && !s.probing,
            }
    }

    /// Whether a call may go to the target now; a half-open target admits one probe at a time.
    pub fn admit(&self) -> bool {
        let now = Instant::now();
        let mut s = self.lock();
        if s.cool_until.is_some_and(|t| t > now) {
            return false;
        }
        match s.ejected_until {
            None => true,
            Some(t) if t > now => false,
            Some(_) if s.probing => false,
            Some(_) => {
                s.probing = true;
                true
            }
        }
    }

    pub fn record(&self, outcome: Outcome) {
        let now = Instant::now();
        let mut s = self.lock();
        s.probing = false;
        match outcome {
            Outcome::Success => {
                s.successes += 1;
                s.failures = 0;
                s.ejections = 0;
                s.ejected_until = None;
            }
            Outcome::RateLimited(d) => {
                s.cool_until = Some(now + d.clamp(Duration::from_millis(100), MAX_EJECTION));
            }
            Outcome::Failure => {
                s.total_failures += 1;
                s.failures += 1;
                let half_open = s.ejected_until.is_some_and(|t| t <= now);
                if s.failures >= FAILURES_TO_EJECT || half_open {
                    let factor = 1u32 << s.ejections.min(5);
                    s.ejected_until = Some(now + (BASE_EJECTION * factor).min(MAX_EJECTION));
                    s.ejections += 1;
                    s.failures = 0;
                }
            }
        }
    }

    pub fn report(&self) -> Report {
        let now = Instant::now();
        let s = self.lock();
        let ejected = s.ejected_until.filter(|t| *t > now);
        let cooling = s.cool_until.filter(|t| *t > now);
        let state = match (ejected, s.ejected_until, cooling) {
            (Some(_), _, _) => "ejected",
            (None, Some(_), _) => "half_open",
            (None, None, Some(_)) => "cooling_down",
            (None, None, None) => "healthy",
        };
        Report {
            state,
            consecutive_failures: s.failures,
            ejections_in_a_row: s.ejections,
            back_in_ms: ejected
                .or(cooling)
                .map(|t| u64::try_from(t.duration_since(now).as_millis()).unwrap_or(u64::MAX)),
            successes: s.successes,
            failures: s.total_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_eject_for_longer_each_time_and_a_probe_closes_the_circuit() {
        let h = TargetHealth::default();
        for _ in 0..FAILURES_TO_EJECT - 1 {
            h.record(Outcome::Failure);
        }
        assert!(h.admit(), "not yet");
        h.record(Outcome::Failure);
        assert!(!h.admit());
        assert_eq!(h.report().state, "ejected");
        tokio::time::advance(BASE_EJECTION).await;
        assert!(h.admit(), "half-open: one probe");
        assert!(!h.admit(), "only one at a time");
        h.record(Outcome::Failure);
        assert_eq!(
            h.report().back_in_ms,
            Some(20_000),
            "the second ejection is twice as long"
        );
        tokio::time::advance(BASE_EJECTION * 2).await;
        assert!(h.admit());
        h.record(Outcome::Success);
        assert_eq!(h.report().state, "healthy");
        assert!(h.admit() && h.admit());
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cools_the_target_down_without_ejecting_it() {
        let h = TargetHealth::default();
        h.record(Outcome::RateLimited(Duration::from_secs(7)));
        assert!(!h.admit());
        assert_eq!(h.report().state, "cooling_down");
        tokio::time::advance(Duration::from_secs(7)).await;
        assert!(h.admit());
        assert_eq!(h.report().consecutive_failures, 0);
    }
}
