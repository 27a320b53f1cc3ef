//! Rules, checks and demands, and the limiter that admits or refuses them all at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jiff::tz::TimeZone;

use crate::period::{self, Period};
use crate::{memory, redis, LimitError};

/// What a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    Requests,
    /// Tokens: prompt, completion, or both.
    Tokens(TokenCount),
    /// Calls in flight at once.
    Concurrent,
    /// Spend in nano-USD.
    Spend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenCount {
    Input,
    Output,
    Total,
}

/// Over what time a rule counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// A rolling window (GCRA), in microseconds.
    Rolling(f64),
    /// A calendar period in a time zone; the counter resets at its end.
    Calendar(Period, TimeZone),
    /// Never resets.
    Lifetime,
    /// For concurrency: no window, calls hold a lease while in flight.
    InFlight,
}

/// One limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub measure: Measure,
    pub limit: u64,
    pub window: Window,
}

/// One rule on one counter, as it applies to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The counter's name; the same name on every node means a shared counter.
    pub counter: String,
    pub rule: Arc<Rule>,
    /// How a refusal names it: which limit of which policy for which scope.
    pub label: String,
}

/// What a call asks for up front.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    pub input_tokens: u64,
    /// Reserved for the answer (`max_tokens` or an estimate).
    pub output_tokens: u64,
    /// Estimated cost in nano-USD of the prompt plus the reserved answer.
    pub cost_nano: u64,
    /// Names the call's concurrency lease.
    pub lease: String,
    /// How long a lease lives if it is never released (a node died mid-call).
    pub lease_ttl_us: i64,
}

/// What a call really used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nano: u64,
}

/// How a rule stands for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub measure: Measure,
    pub limit: u64,
    pub remaining: u64,
    /// Microseconds until the counter is back to its full allowance (rolling), or until the
    /// period ends (calendar).
    pub reset_us: i64,
}

/// The limiter's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Admitted(Vec<Status>),
    Refused {
        /// Which check refused.
        index: usize,
        retry_after_us: i64,
        statuses: Vec<Status>,
    },
}

/// A check made concrete for a back end at one moment: the counter key (with the calendar
/// period's id), the kind of arithmetic, and the amount.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub key: String,
    pub kind: Arith,
    pub limit: u64,
    /// Rolling: the window; calendar: the period's end (absolute); lifetime: 0.
    pub span_us: f64,
    pub amount: u64,
    pub measure: Measure,
}

/// The arithmetic of a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Gcra,
    Sum,
    Leases,
}

impl Rule {
    fn amount(&self, d: &Demand) -> u64 {
        match self.measure {
            Measure::Requests | Measure::Concurrent => 1,
            Measure::Tokens(TokenCount::Input) => d.input_tokens,
            Measure::Tokens(TokenCount::Output) => d.output_tokens,
            Measure::Tokens(TokenCount::Total) => d.input_tokens + d.output_tokens,
            Measure::Spend => d.cost_nano,
        }
    }

    fn used(&self, u: &Used) -> u64 {
        match self.measure {
            Measure::Requests | Measure::Concurrent => 1,
            Measure::Tokens(TokenCount::Input) => u.input_tokens,
            Measure::Tokens(TokenCount::Output) => u.output_tokens,
            Measure::Tokens(TokenCount::Total) => u.input_tokens + u.output_tokens,
            Measure::Spend => u.cost_nano,
        }
    }
}

/// Resolves checks at `now_us` for `demand`.
pub fn resolve(
    checks: &[Check],
    demand: &Demand,
    now_us: i64,
) -> Result<Vec<Resolved>, LimitError> {
    checks
        .iter()
        .map(|c| {
            let (key, kind, span_us) = match &c.rule.window {
                Window::Rolling(w) => (c.counter.clone(), Arith::Gcra, *w),
                Window::Calendar(p, tz) => {
                    let (id, end) = period::current(*p, tz, now_us)?;
                    (format!("{}@{id}", c.counter), Arith::Sum, end as f64)
                }
                Window::Lifetime => (c.counter.clone(), Arith::Sum, 0.0),
                Window::InFlight => (c.counter.clone(), Arith::Leases, demand.lease_ttl_us as f64),
            };
            Ok(Resolved {
                key,
                kind,
                limit: c.rule.limit,
                span_us,
                amount: c.rule.amount(demand),
                measure: c.rule.measure,
            })
        })
        .collect()
}

/// The signed corrections that settle a call: used minus reserved, per resolved check.
pub fn corrections(checks: &[Check], resolved: &[Resolved], used: &Used) -> Vec<i64> {
    checks
        .iter()
        .zip(resolved)
        .map(|(c, r)| match r.kind {
            Arith::Leases => 0,
            _ if c.rule.measure == Measure::Requests => 0,
            _ => {
                i64::try_from(c.rule.used(used)).unwrap_or(i64::MAX)
                    - i64::try_from(r.amount).unwrap_or(i64::MAX)
            }
        })
        .collect()
}

/// What to do when the shared back end cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Refuse calls that have limits.
    Closed,
    /// Count on this node alone until the back end is back.
    Open,
}

/// The limiter a node uses: in process, or Redis with a fail policy.
#[derive(Debug)]
pub struct Limiter {
    backend: Backend,
    fallback: memory::Memory,
    on_error: OnError,
    /// Back-end failures seen (each one logged, and served by the fail policy).
    pub failures: AtomicU64,
}

#[derive(Debug)]
enum Backend {
    Memory(memory::Memory),
    Redis(redis::Redis),
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why a call could not be checked at all (fail-closed with the back end down).
#[derive(Debug, thiserror::Error)]
#[error("the limits back end is unavailable: {0}")]
pub struct Unavailable(pub LimitError);

impl Limiter {
    pub fn memory() -> Self {
        Self {
            backend: Backend::Memory(memory::Memory::default()),
            fallback: memory::Memory::default(),
            on_error: OnError::Closed,
            failures: AtomicU64::new(0),
        }
    }

    pub async fn redis(url: &str, on_error: OnError) -> Result<Self, LimitError> {
        Ok(Self {
            backend: Backend::Redis(redis::Redis::connect(url).await?),
            fallback: memory::Memory::default(),
            on_error,
            failures: AtomicU64::new(0),
        })
    }

    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    fn failed(&self, e: &LimitError, what: &str) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(error = %e, failures = n, on_error = ?self.on_error, "limits back end failed to {what}");
    }

    /// Admits all of `resolved` or none.
    pub async fn admit(
        &self,
        resolved: &[Resolved],
        lease: &str,
        now_us: i64,
    ) -> Result<Verdict, Unavailable> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.admit(resolved, lease, now_us)),
            Backend::Redis(r) => match r.admit(resolved, lease, now_us).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    self.failed(&e, "admit");
                    match self.on_error {
                        OnError::Open => Ok(self.fallback.admit(resolved, lease, now_us)),
                        OnError::Closed => Err(Unavailable(e)),
                    }
                }
            },
        }
    }

    /// Corrects the reservations of an admitted call and releases its lease.
    pub async fn settle(&self, resolved: &[Resolved], deltas: &[i64], lease: &str, now_us: i64) {
        match &self.backend {
            Backend::Memory(m) => m.settle(resolved, deltas, lease, now_us),
            Backend::Redis(r) => {
                if let Err(e) = r.settle(resolved, deltas, lease, now_us).await {
                    self.failed(&e, "settle");
                    self.fallback.settle(resolved, deltas, lease, now_us);
                }
            }
        }
    }

    /// Settles at once when the back end is in process (no I/O); `false` when the caller must
    /// run `settle` (Redis).
    pub fn settle_now(
        &self,
        resolved: &[Resolved],
        deltas: &[i64],
        lease: &str,
        now_us: i64,
    ) -> bool {
        match &self.backend {
            Backend::Memory(m) => {
                m.settle(resolved, deltas, lease, now_us);
                true
            }
            Backend::Redis(_) => false,
        }
    }

    /// True the first time `key` is marked within `ttl_us` (across the cluster with Redis): how
    /// an alert fires once per period and threshold.
    pub async fn mark_once(&self, key: &str, ttl_us: i64) -> Result<bool, LimitError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.mark_once(key, ttl_us, now_us())),
            Backend::Redis(r) => r.mark_once(key, ttl_us).await,
        }
    }

    /// How the counters stand, without changing them.
    pub async fn peek(
        &self,
        resolved: &[Resolved],
        now_us: i64,
    ) -> Result<Vec<Status>, LimitError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.peek(resolved, now_us)),
            Backend::Redis(r) => r.peek(resolved, now_us).await,
        }
    }
}

/// A status from a counter's state: shared by both back ends.
pub(crate) fn status(r: &Resolved, state: f64, now_us: f64) -> Status {
    match r.kind {
        Arith::Gcra => {
            let reset = (state - now_us).max(0.0);
            Status {
                measure: r.measure,
                limit: r.limit,
                remaining: crate::gcra::remaining(state, now_us, r.limit, r.span_us),
                reset_us: reset as i64,
            }
        }
        Arith::Sum => Status {
            measure: r.measure,
            limit: r.limit,
            remaining: r.limit.saturating_sub(state.max(0.0) as u64),
            reset_us: if r.span_us > 0.0 {
                (r.span_us - now_us).max(0.0) as i64
            } else {
                0
            },
        },
        Arith::Leases => Status {
            measure: r.measure,
            limit: r.limit,
            remaining: r.limit.saturating_sub(state.max(0.0) as u64),
            reset_us: 0,
        },
    }
}
