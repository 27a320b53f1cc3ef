//! Adaptive concurrency per upstream: how many calls a provider gets at once, learned from how it
//! answers.
//!
//! AIMD: every call that succeeds without its latency inflating past `tolerance` × the provider's
//! baseline raises the limit by 1/limit (about +1 per limit's worth of calls); a 429, a 5xx
//! overload answer, a timeout or an inflated latency cuts it by 30 % (at most once per 100 ms, so
//! one burst of failures is one cut). Calls over the limit wait in a bounded queue, highest key
//! priority first and in arrival order within a priority; when the queue is full, or a call has
//! waited `queue_timeout`, it is shed with a 503 instead of adding to the provider's trouble.
//! The state is a few numbers behind a mutex held for microseconds, never across an await.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

/// Settings of one provider's adaptive limit (validated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveCfg {
    pub initial: f64,
    pub min: f64,
    pub max: f64,
    pub max_queue: usize,
    pub queue_timeout: Duration,
    /// Latency above this many times the baseline counts as overload.
    pub tolerance: f64,
}

/// How a call went, for the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Answered, after this long (to the response headers).
    Ok(Duration),
    /// 429, 503/529, or a timeout.
    Overloaded,
}

/// Why a call was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    QueueFull,
    Waited(Duration),
}

#[derive(Debug)]
struct Waiter {
    priority: i64,
    seq: u64,
    tx: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, o: &Self) -> bool {
        self.priority == o.priority && self.seq == o.seq
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiter {
    /// The heap pops the greatest: higher priority, then the earlier arrival.
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    queue: BinaryHeap<Waiter>,
    seq: u64,
    baseline: Option<f64>,
    last_cut: Option<Instant>,
}

/// One provider's adaptive limit.
#[derive(Debug)]
pub struct Adaptive {
    cfg: AdaptiveCfg,
    state: Mutex<State>,
}

/// A slot: released when dropped; `report` first to teach the limit.
#[derive(Debug)]
pub struct Permit {
    owner: Arc<Adaptive>,
    start: Instant,
    outcome: Option<Outcome>,
}

impl Permit {
    /// Records how the call went (the latency is measured from when the slot was granted).
    pub fn report_ok(&mut self) {
        self.outcome = Some(Outcome::Ok(self.start.elapsed()));
    }

    pub fn report_overloaded(&mut self) {
        self.outcome = Some(Outcome::Overloaded);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.owner.release(self.outcome);
    }
}

impl Adaptive {
    pub fn new(cfg: AdaptiveCfg) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                limit: cfg.initial.clamp(cfg.min, cfg.max),
                in_flight: 0,
                queue: BinaryHeap::new(),
                seq: 0,
                baseline: None,
                last_cut: None,
            }),
            cfg,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a handful of assignments: a panic cannot leave the state half-made.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current limit and calls in flight (for logs and tests).
    pub fn snapshot(&self) -> (f64, usize, usize) {
        let s = self.lock();
        (s.limit, s.in_flight, s.queue.len())
    }

    fn permit(self: &Arc<Self>) -> Permit {
        Permit {
            owner: Arc::clone(self),
            start: Instant::now(),
            outcome: None,
        }
    }

    /// Waits for a slot, or sheds the call.
    pub async fn acquire(self: &Arc<Self>, priority: i64) -> Result<Permit, Shed> {
        let mut rx = {
            let mut s = self.lock();
            let cap = s.limit.floor().max(1.0) as usize;
            if s.in_flight < cap && s.queue.is_empty() {
                s.in_flight += 1;
                return Ok(self.permit());
            }
            if s.queue.len() >= self.cfg.max_queue {
                return Err(Shed::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            s.seq += 1;
            let seq = s.seq;
            s.queue.push(Waiter { priority, seq, tx });
            rx
        };
        match tokio::time::timeout(self.cfg.queue_timeout, &mut rx).await {
            Ok(Ok(())) => Ok(self.permit()),
            _ => {
                // The slot may have been handed over just as the wait ended: take it then.
                rx.close();
                if rx.try_recv().is_ok() {
                    return Ok(self.permit());
                }
                Err(Shed::Waited(self.cfg.queue_timeout))
            }
        }
    }

    fn release(&self, outcome: Option<Outcome>) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        let now = Instant::now();
        let cut = |s: &mut State| {
            if s.last_cut
                .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100))
            {
                s.limit = (s.limit * 0.7).max(self.cfg.min);
                s.last_cut = Some(now);
            }
        };
        match outcome {
            None => {}
            Some(Outcome::Overloaded) => cut(&mut s),
            Some(Outcome::Ok(latency)) => {
                let ms = latency.as_secs_f64() * 1000.0;
                let base = *s.baseline.get_or_insert(ms);
                if ms > base * self.cfg.tolerance && ms > base + 5.0 {
                    cut(&mut s);
                } else {
                    s.limit = (s.limit + 1.0 / s.limit.max(1.0)).min(self.cfg.max);
                }
                // The baseline follows the fast end of latency: quickly down, slowly up.
                s.baseline = Some(if ms < base {
                    ms
                } else {
                    base * 0.99 + ms * 0.01
                });
            }
        }
        let cap = s.limit.floor().max(1.0) as usize;
        while s.in_flight < cap {
            let Some(w) = s.queue.pop() else { break };
            if w.tx.send(()).is_ok() {
                s.in_flight += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(initial: f64, max_queue: usize) -> AdaptiveCfg {
        AdaptiveCfg {
            initial,
            min: 1.0,
            max: 100.0,
            max_queue,
            queue_timeout: Duration::from_secs(5),
            tolerance: 2.0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn overload_cuts_the_limit_and_success_grows_it_back() {
        let a = Adaptive::new(cfg(10.0, 10));
        let mut p = a.acquire(0).await.unwrap();
        p.report_overloaded();
        drop(p);
        assert!((a.snapshot().0 - 7.0).abs() < 1e-9);
        // A second failure in the same 100 ms is the same burst.
        let mut p = a.acquire(0).await.unwrap();
        p.report_overloaded();
        drop(p);
        assert!((a.snapshot().0 - 7.0).abs() < 1e-9);
        tokio::time::advance(Duration::from_millis(150)).await;
        for _ in 0..50 {
            let mut p = a.acquire(0).await.unwrap();
            tokio::time::advance(Duration::from_millis(10)).await;
            p.report_ok();
        }
        assert!(a.snapshot().0 > 10.0, "grew back: {:?}", a.snapshot());
    }

    #[tokio::test(start_paused = true)]
    async fn inflated_latency_counts_as_overload() {
        let a = Adaptive::new(cfg(10.0, 10));
        for _ in 0..5 {
            let mut p = a.acquire(0).await.unwrap();
            tokio::time::advance(Duration::from_millis(20)).await;
            p.report_ok();
        }
        let before = a.snapshot().0;
        let mut p = a.acquire(0).await.unwrap();
        tokio::time::advance(Duration::from_millis(200)).await;
        p.report_ok();
        drop(p);
        assert!(a.snapshot().0 < before);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_leave_by_priority_then_arrival_and_the_rest_are_shed() {
        let a = Adaptive::new(cfg(1.0, 3));
        let held = a.acquire(0).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, prio) in [("low-1", 0), ("high", 5), ("low-2", 0)] {
            let (a, order) = (Arc::clone(&a), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let p = a.acquire(prio).await.unwrap();
                order.lock().unwrap().push(name);
                drop(p);
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(a.snapshot().2, 3, "three waiting");
        assert_eq!(a.acquire(9).await.unwrap_err(), Shed::QueueFull);
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["high", "low-1", "low-2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_waits_too_long_is_shed_and_frees_nothing() {
        let a = Adaptive::new(cfg(1.0, 3));
        let held = a.acquire(0).await.unwrap();
        let shed = a.acquire(0).await.unwrap_err();
        assert_eq!(shed, Shed::Waited(Duration::from_secs(5)));
        drop(held);
        assert_eq!(a.snapshot().1, 0, "nothing in flight");
        assert!(a.acquire(0).await.is_ok());
    }
}
