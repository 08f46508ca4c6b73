//! Per-token rate limits: each token may make `http.token_requests_per_minute` requests a
//! minute on average, and `http.token_burst` at once; past that the hub answers 429
//! `rate_limited` with `Retry-After` (see [`super::caller`], which checks every authenticated
//! request here before its handler runs).
//!
//! The limiter is governor's keyed GCRA: one timestamp per token, no background task. Only
//! tokens that authenticated are keys, so the table is bounded by the tokens the hub has
//! issued, whatever anonymous clients send.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::HttpConfig;

/// The rate limits of every token, in process.
pub struct TokenLimits {
    limiter: DefaultKeyedRateLimiter<uuid::Uuid>,
    clock: DefaultClock,
}

impl fmt::Debug for TokenLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLimits")
            .field("tokens", &self.limiter.len())
            .finish()
    }
}

impl TokenLimits {
    /// Limits of `per_minute` requests a minute on average and `burst` at once (each at
    /// least 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let one = NonZeroU32::MIN;
        let period = Duration::from_secs(60) / per_minute.max(1);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(one))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(one));
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// The limits `config` sets.
    pub fn from_config(config: &HttpConfig) -> Self {
        Self::new(config.token_requests_per_minute, config.token_burst)
    }

    /// Counts a request of `token`: `Ok` if it may be made now, else how long until one may.
    pub fn check(&self, token: uuid::Uuid) -> Result<(), Duration> {
        self.limiter
            .check_key(&token)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

impl Default for TokenLimits {
    fn default() -> Self {
        Self::from_config(&HttpConfig::default())
    }
}

/// How many HTTP pushes each department may have read at once by this instance
/// (`http.department_pushes`).
#[derive(Debug)]
pub struct PushSlots {
    per_department: u32,
    slots:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>,
}

impl PushSlots {
    /// At most `per_department` pushes per department at once (at least 1).
    pub fn new(per_department: u32) -> Self {
        Self {
            per_department: per_department.max(1),
            slots: std::sync::Mutex::default(),
        }
    }

    /// A slot for a push of `department`, held until dropped; `None` when all are taken.
    pub fn take(&self, department: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::sync::Arc::clone(slots.entry(department.to_owned()).or_insert_with(|| {
                std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_department as usize))
            }))
        };
        semaphore.try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_department_has_its_own_push_slots() {
        let slots = PushSlots::new(2);
        let (a1, a2) = (slots.take("a"), slots.take("a"));
        assert!(a1.is_some() && a2.is_some());
        assert!(slots.take("a").is_none());
        assert!(slots.take("b").is_some());
        drop(a1);
        assert!(slots.take("a").is_some());
    }

    #[test]
    fn a_token_is_limited_after_its_burst_and_others_are_not() {
        let limits = TokenLimits::new(1, 3);
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        for _ in 0..3 {
            assert_eq!(limits.check(a), Ok(()));
        }
        let wait = limits.check(a).unwrap_err();
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert_eq!(limits.check(b), Ok(()));
    }
}
