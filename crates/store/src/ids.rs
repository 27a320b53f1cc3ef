//! Identifiers and random tokens.
//!
//! Ids are time-ordered (milliseconds, then a per-process counter, then random bits, in Crockford
//! base32) so that `ORDER BY id` is creation order and a cursor is just the last id seen. Tokens
//! (API keys, admin tokens, session cookies, passwords) come from the operating system's CSPRNG.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static COUNTER: AtomicU16 = AtomicU16::new(0);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Fills `buf` from the OS CSPRNG.
///
/// # Errors
/// Only when the operating system has no randomness to give, which `ring` reports as an error.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), crate::StoreError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| crate::StoreError::MasterKey("the OS random source failed".into()))
}

/// A new time-ordered id: `prefix` + 26 base32 characters.
pub fn new_id(prefix: &str) -> String {
    let ms = u128::from(now_ms().max(0).unsigned_abs()) & ((1 << 48) - 1);
    let count = u128::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut rnd = [0u8; 8];
    // Randomness only makes ids from different nodes distinct; a failed fill leaves zeros, and
    // the time and counter still order them.
    let _ = random_bytes(&mut rnd);
    let v = (ms << 80) | (count << 64) | u128::from(u64::from_be_bytes(rnd));
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    for i in (0..26).rev() {
        out.push(CROCKFORD[((v >> (i * 5)) & 31) as usize] as char);
    }
    out
}

/// `n` random characters from `[0-9A-Za-z]` (5.95 bits each), without modulo bias.
pub fn random_base62(n: usize) -> Result<String, crate::StoreError> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        random_bytes(&mut buf)?;
        for &b in &buf {
            // 248 = 4 × 62: values above it would favour the first characters.
            if b < 248 && out.len() < n {
                out.push(BASE62[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(out)
}

/// `n` random lowercase base32 characters (5 bits each), for short visible ids.
pub fn random_base32(n: usize) -> Result<String, crate::StoreError> {
    let mut buf = vec![0u8; n];
    random_bytes(&mut buf)?;
    Ok(buf
        .iter()
        .map(|b| CROCKFORD[usize::from(b & 31)] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("x_")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(ids[0].len(), 28);
    }

    #[test]
    fn random_strings_have_the_asked_length_and_alphabet() {
        let s = random_base62(40).unwrap();
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, random_base62(40).unwrap());
        assert_eq!(random_base32(10).unwrap().len(), 10);
    }
}
