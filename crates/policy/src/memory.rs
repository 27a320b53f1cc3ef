//! The in-process back end: exact for one node.
//!
//! Counters live in 64 shards, each behind its own mutex; a call locks the shards of its counters
//! in ascending order (so two calls cannot deadlock), checks every rule, and writes only if all
//! pass. No lock is held across an await: every operation is synchronous.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use crate::gcra;
use crate::limiter::{status, Arith, Resolved, Status, Verdict};

const SHARDS: usize = 64;

#[derive(Debug, Clone)]
enum State {
    Tat(f64),
    Sum(f64),
    Leases(HashMap<String, f64>),
}

#[derive(Debug)]
pub struct Memory {
    shards: Vec<Mutex<HashMap<String, State>>>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

fn shard_of(key: &str) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

type Guards<'a> = Vec<(usize, MutexGuard<'a, HashMap<String, State>>)>;

impl Memory {
    fn lock(&self, resolved: &[Resolved]) -> Guards<'_> {
        let mut idx: Vec<usize> = resolved.iter().map(|r| shard_of(&r.key)).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| {
                // A panic while holding a shard cannot leave a counter half-written (each write
                // is one assignment), so a poisoned shard is still consistent.
                let g = self.shards[i]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (i, g)
            })
            .collect()
    }

    fn map<'g>(guards: &'g mut Guards<'_>, key: &str) -> &'g mut HashMap<String, State> {
        let i = shard_of(key);
        let pos = guards.iter().position(|(s, _)| *s == i).unwrap_or(0);
        &mut guards[pos].1
    }

    fn value(map: &mut HashMap<String, State>, r: &Resolved, now: f64) -> f64 {
        match (map.get_mut(&r.key), r.kind) {
            (Some(State::Tat(t)), Arith::Gcra) => *t,
            (Some(State::Sum(s)), Arith::Sum) => *s,
            (Some(State::Leases(l)), Arith::Leases) => {
                l.retain(|_, exp| *exp > now);
                l.len() as f64
            }
            _ => 0.0,
        }
    }

    pub fn admit(&self, resolved: &[Resolved], lease: &str, now_us: i64) -> Verdict {
        let now = now_us as f64;
        let mut guards = self.lock(resolved);
        let mut statuses = Vec::with_capacity(resolved.len());
        let mut next = Vec::with_capacity(resolved.len());
        let mut refused = None;
        for (i, r) in resolved.iter().enumerate() {
            let map = Self::map(&mut guards, &r.key);
            let cur = Self::value(map, r, now);
            match r.kind {
                Arith::Gcra => {
                    let t = gcra::take(cur, now, r.amount, r.limit, r.span_us);
                    statuses.push(Status {
                        measure: r.measure,
                        limit: r.limit,
                        remaining: t.remaining,
                        reset_us: t.reset_us as i64,
                    });
                    if !t.allowed && refused.is_none() {
                        refused = Some((i, t.retry_after_us as i64));
                    }
                    next.push(t.tat);
                }
                Arith::Sum | Arith::Leases => {
                    let after = cur + r.amount as f64;
                    let fits = after <= r.limit as f64;
                    let shown = if fits { after } else { cur };
                    statuses.push(status(r, shown, now));
                    if !fits && refused.is_none() {
                        let retry = match r.kind {
                            Arith::Sum if r.span_us > 0.0 => (r.span_us - now).max(0.0) as i64,
                            Arith::Sum => i64::MAX,
                            _ => 1_000_000,
                        };
                        refused = Some((i, retry));
                    }
                    next.push(after);
                }
            }
        }
        if let Some((index, retry_after_us)) = refused {
            return Verdict::Refused {
                index,
                retry_after_us,
                statuses,
            };
        }
        for (r, v) in resolved.iter().zip(next) {
            let map = Self::map(&mut guards, &r.key);
            match r.kind {
                Arith::Gcra => {
                    map.insert(r.key.clone(), State::Tat(v));
                }
                Arith::Sum => {
                    map.insert(r.key.clone(), State::Sum(v));
                }
                Arith::Leases => {
                    let entry = map
                        .entry(r.key.clone())
                        .or_insert_with(|| State::Leases(HashMap::new()));
                    if let State::Leases(l) = entry {
                        l.insert(lease.to_owned(), now + r.span_us);
                    }
                }
            }
        }
        Verdict::Admitted(statuses)
    }

    pub fn settle(&self, resolved: &[Resolved], deltas: &[i64], lease: &str, now_us: i64) {
        let now = now_us as f64;
        let mut guards = self.lock(resolved);
        for (r, d) in resolved.iter().zip(deltas) {
            let map = Self::map(&mut guards, &r.key);
            let cur = Self::value(map, r, now);
            match r.kind {
                Arith::Gcra if *d < 0 => {
                    let v = gcra::refund(cur, now, d.unsigned_abs(), r.limit, r.span_us);
                    map.insert(r.key.clone(), State::Tat(v));
                }
                Arith::Gcra if *d > 0 => {
                    let v = gcra::charge(cur, now, d.unsigned_abs(), r.limit, r.span_us);
                    map.insert(r.key.clone(), State::Tat(v));
                }
                Arith::Gcra => {}
                Arith::Sum => {
                    map.insert(r.key.clone(), State::Sum((cur + *d as f64).max(0.0)));
                }
                Arith::Leases => {
                    if let Some(State::Leases(l)) = map.get_mut(&r.key) {
                        l.remove(lease);
                    }
                }
            }
        }
    }

    pub fn mark_once(&self, key: &str, ttl_us: i64, now_us: i64) -> bool {
        let now = now_us as f64;
        let mut shard = self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = match shard.get(key) {
            Some(State::Sum(exp)) => *exp <= now,
            _ => true,
        };
        if fresh {
            shard.insert(key.to_owned(), State::Sum(now + ttl_us as f64));
        }
        fresh
    }

    pub fn peek(&self, resolved: &[Resolved], now_us: i64) -> Vec<Status> {
        let now = now_us as f64;
        let mut guards = self.lock(resolved);
        resolved
            .iter()
            .map(|r| {
                let map = Self::map(&mut guards, &r.key);
                let v = Self::value(map, r, now);
                status(r, v, now)
            })
            .collect()
    }
}
