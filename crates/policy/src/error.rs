//! What can go wrong in a limiter.

/// A limiter back end failed (the call is then admitted or refused by the fail policy).
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis answered something unexpected: {0}")]
    Protocol(String),
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
}
