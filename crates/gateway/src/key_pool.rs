//! A provider's API keys: chosen round-robin, a key the provider refuses (401/403) taken out,
//! a rate-limited key (429) cooling down for its `retry-after`.
//!
//! The state lives with the provider's `Upstream`, so a config change (which rebuilds it) gives
//! every key another chance: the moment someone has fixed or replaced a key.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One key and what the provider last said of it.
#[derive(Debug)]
struct Slot {
    key: String,
    /// The provider refused the key (401/403).
    revoked: AtomicBool,
    /// Milliseconds since the pool began until which the key is rate-limited.
    cool_until_ms: AtomicU64,
}

/// The keys of one provider.
#[derive(Debug)]
pub struct KeyPool {
    slots: Vec<Slot>,
    next: AtomicUsize,
    began: Instant,
}

/// How a key stands, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyReport {
    /// The key with all but its last four characters hidden.
    pub key: String,
    /// `active`, `cooling_down` (answered 429) or `revoked` (answered 401/403).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back_in_ms: Option<u64>,
}

impl KeyPool {
    pub fn new(keys: &[String]) -> Self {
        Self {
            slots: keys
                .iter()
                .map(|k| Slot {
                    key: k.clone(),
                    revoked: AtomicBool::new(false),
                    cool_until_ms: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            began: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How many keys the pool holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The next usable key, round-robin, as `(index, key)`; `None` for a keyless provider. When
    /// no key is usable, the one back soonest (or, all being revoked, the next in turn) is
    /// returned anyway: the provider's own answer is better than a guess.
    pub fn pick(&self) -> Option<(usize, &str)> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let usable = |s: &Slot| {
            !s.revoked.load(Ordering::Relaxed) && s.cool_until_ms.load(Ordering::Relaxed) <= now
        };
        // The usable keys take turns among themselves, so a key set aside does not hand its
        // share to the one after it.
        let usable_count = self.slots.iter().filter(|s| usable(s)).count();
        let found = (usable_count > 0)
            .then(|| {
                let turn = start % usable_count;
                (0..n).filter(|&i| usable(&self.slots[i])).nth(turn)
            })
            .flatten()
            .or_else(|| {
                (0..n)
                    .filter(|&i| !self.slots[i].revoked.load(Ordering::Relaxed))
                    .min_by_key(|&i| self.slots[i].cool_until_ms.load(Ordering::Relaxed))
            })
            .unwrap_or(start % n);
        Some((found, &self.slots[found].key))
    }

    /// Whether a key other than `index` is usable now (a refused call may try it).
    pub fn another_usable(&self, index: usize) -> bool {
        let now = self.now_ms();
        self.slots.iter().enumerate().any(|(i, s)| {
            i != index
                && !s.revoked.load(Ordering::Relaxed)
                && s.cool_until_ms.load(Ordering::Relaxed) <= now
        })
    }

    /// Notes the provider's answer to a call made with key `index`; returns true when the answer
    /// was about the key (401/403: revoked; 429: cooling down for `retry_after`).
    pub fn report(&self, provider: &str, index: usize, status: u16, retry_after: Duration) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        match status {
            401 | 403 => {
                if !slot.revoked.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        provider,
                        key = %mask(&slot.key),
                        status,
                        "the provider refused this key: it is taken out of the pool until the config changes"
                    );
                }
                true
            }
            429 => {
                let until = self
                    .now_ms()
                    .saturating_add(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX));
                slot.cool_until_ms.fetch_max(until, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Every key's state, masked.
    pub fn report_all(&self) -> Vec<KeyReport> {
        let now = self.now_ms();
        self.slots
            .iter()
            .map(|s| {
                let until = s.cool_until_ms.load(Ordering::Relaxed);
                let (state, back_in_ms) = if s.revoked.load(Ordering::Relaxed) {
                    ("revoked", None)
                } else if until > now {
                    ("cooling_down", Some(until - now))
                } else {
                    ("active", None)
                };
                KeyReport {
                    key: mask(&s.key),
                    state,
                    back_in_ms,
                }
            })
            .collect()
    }
}

/// A key as it may be shown: its last four characters.
pub fn mask(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if key.chars().count() <= 8 {
        "…".to_owned()
    } else {
        format!("…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> KeyPool {
        KeyPool::new(
            &(0..n)
                .map(|i| format!("key-number-{i}"))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn keys_take_turns() {
        let p = pool(3);
        let picked: Vec<usize> = (0..6).map(|_| p.pick().unwrap().0).collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2]);
        assert!(KeyPool::new(&[]).pick().is_none());
    }

    #[test]
    fn a_refused_key_is_taken_out_and_shown_as_such() {
        let p = pool(3);
        assert!(p.report("p", 1, 401, Duration::ZERO));
        let picked: Vec<usize> = (0..4).map(|_| p.pick().unwrap().0).collect();
        assert!(!picked.contains(&1), "{picked:?}");
        let states: Vec<&str> = p.report_all().iter().map(|r| r.state).collect();
        assert_eq!(states, ["active", "revoked", "active"]);
        assert_eq!(p.report_all()[1].key, "…er-1");
    }

    #[test]
    fn a_rate_limited_key_cools_down_for_its_retry_after() {
        let p = pool(2);
        p.report("p", 0, 429, Duration::from_secs(30));
        assert!((0..4).all(|_| p.pick().unwrap().0 == 1));
        let r = &p.report_all()[0];
        assert_eq!(r.state, "cooling_down");
        assert!(r.back_in_ms.unwrap() > 29_000);
        assert!(!p.another_usable(1));
        p.report("p", 1, 429, Duration::from_secs(5));
        // Both cooling: the one back soonest.
        assert_eq!(p.pick().unwrap().0, 1);
        assert!(
            !p.report("p", 0, 500, Duration::ZERO),
            "a 500 says nothing of the key"
        );
    }

    #[test]
    fn with_every_key_revoked_calls_still_go_out() {
        let p = pool(2);
        p.report("p", 0, 403, Duration::ZERO);
        p.report("p", 1, 401, Duration::ZERO);
        assert!(p.pick().is_some());
    }

    #[test]
    fn short_keys_are_not_shown_at_all() {
        assert_eq!(mask("abc"), "…");
        assert_eq!(mask("sk-proj-1234567890"), "…7890");
    }
}
