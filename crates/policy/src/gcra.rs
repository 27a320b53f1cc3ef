//! The generic cell rate algorithm: a rolling window as a token bucket with one number of state.
//!
//! A rule of `limit` units per `window` emits one unit every `T = window / limit`. The state is
//! the theoretical arrival time `tat`: when the bucket would be full again. Taking `n` units moves
//! it to `max(tat, now) + n·T`, allowed while that is at most `window` ahead of now (the bucket
//! holds `limit` units). Refunds move it back, never before now; extra charges move it forward
//! even past the window (a debt the next calls wait out). Times are microseconds as `f64`, the
//! same arithmetic the Redis script does in Lua.

/// The outcome of taking units from a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Take {
    pub allowed: bool,
    /// The state after the take (unchanged when refused).
    pub tat: f64,
    /// Units left after the take.
    pub remaining: u64,
    /// Microseconds until the bucket is full again.
    pub reset_us: f64,
    /// When refused, microseconds until the take would fit.
    pub retry_after_us: f64,
}

/// Takes `n` units at `now` from a bucket of `limit` per `window_us`.
pub fn take(tat: f64, now: f64, n: u64, limit: u64, window_us: f64) -> Take {
    let limit = limit.max(1);
    let t = window_us / limit as f64;
    let base = tat.max(now);
    let new_tat = base + n as f64 * t;
    let ahead = new_tat - now;
    if ahead <= window_us + 1e-6 {
        Take {
            allowed: true,
            tat: new_tat,
            remaining: remaining(new_tat, now, limit, window_us),
            reset_us: ahead.max(0.0),
            retry_after_us: 0.0,
        }
    } else {
        Take {
            allowed: false,
            tat,
            remaining: remaining(tat, now, limit, window_us),
            reset_us: (base - now).max(0.0),
            retry_after_us: ahead - window_us,
        }
    }
}

/// Units still available at `now`.
pub fn remaining(tat: f64, now: f64, limit: u64, window_us: f64) -> u64 {
    let t = window_us / limit.max(1) as f64;
    let free = window_us - (tat - now).max(0.0);
    if free <= 0.0 {
        0
    } else {
        ((free + 1e-6) / t).floor().min(limit as f64) as u64
    }
}

/// Gives back `n` units (a reservation larger than the use); never before `now`.
pub fn refund(tat: f64, now: f64, n: u64, limit: u64, window_us: f64) -> f64 {
    let t = window_us / limit.max(1) as f64;
    (tat - n as f64 * t).max(now)
}

/// Charges `n` more units (a use larger than the reservation), even past the window.
pub fn charge(tat: f64, now: f64, n: u64, limit: u64, window_us: f64) -> f64 {
    let t = window_us / limit.max(1) as f64;
    tat.max(now) + n as f64 * t
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIN: f64 = 60_000_000.0;

    #[test]
    fn a_full_bucket_gives_its_limit_then_refills_at_the_rate() {
        let mut tat = 0.0;
        let now = 1_000.0;
        for i in 0..5 {
            let t = take(tat, now, 1, 5, MIN);
            assert!(t.allowed, "request {i}");
            assert_eq!(t.remaining, 4 - i);
            tat = t.tat;
        }
        let refused = take(tat, now, 1, 5, MIN);
        assert!(!refused.allowed);
        assert!((refused.retry_after_us - 12_000_000.0).abs() < 1.0);
        assert!(take(tat, now + 12_000_000.0, 1, 5, MIN).allowed);
        assert!(!take(tat, now + 11_999_000.0, 1, 5, MIN).allowed);
    }

    proptest! {
        /// Over any sequence of takes, refunds and charges, what a bucket admits in a window
        /// never exceeds its limit plus what refilled, and the remaining count stays in range.
        #[test]
        fn never_more_than_the_limit_and_never_negative(
            limit in 1u64..500,
            ops in proptest::collection::vec((0u64..20, 0u8..3, 0u64..2_000_000), 1..200),
        ) {
            let window = MIN;
            let mut tat = 0.0;
            let mut now = 1.0;
            let mut admitted = 0u64;
            let start = now;
            for (n, op, dt) in ops {
                now += dt as f64;
                match op {
                    0 => {
                        let t = take(tat, now, n, limit, window);
                        prop_assert!(t.remaining <= limit);
                        if t.allowed {
                            admitted += n;
                            tat = t.tat;
                        } else {
                            prop_assert!(t.retry_after_us > 0.0);
                            prop_assert_eq!(t.tat, tat);
                        }
                    }
                    1 => {
                        let before = tat;
                        tat = refund(tat, now, n, limit, window);
                        prop_assert!(tat >= now || tat >= before.min(now));
                        admitted = admitted.saturating_sub(n);
                    }
                    _ => {
                        tat = charge(tat, now, n, limit, window);
                        admitted += n;
                    }
                }
                prop_assert!(remaining(tat, now, limit, window) <= limit);
                let refilled = ((now - start) / (window / limit as f64)).floor() as u64;
                prop_assert!(
                    admitted <= limit + refilled + charged_debt(tat, now, window, limit),
                    "admitted {} limit {} refilled {}", admitted, limit, refilled
                );
            }
        }
    }

    /// Units charged beyond the window by `charge` (allowed debt).
    fn charged_debt(tat: f64, now: f64, window: f64, limit: u64) -> u64 {
        let over = (tat - now - window).max(0.0);
        (over / (window / limit as f64)).ceil() as u64
    }
}
