//! Rate limits for sign-in and account creation: per client IP and per account, GCRA through
//! governor. Limits are kept in memory, so with several nodes each node counts on its own.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// `None` when rate limits are switched off.
#[derive(Clone)]
pub struct Limiter(Option<Arc<DefaultKeyedRateLimiter<String>>>);

impl Limiter {
    pub fn per_minute(n: u32, enabled: bool) -> Limiter {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Limiter(enabled.then(|| Arc::new(RateLimiter::keyed(Quota::per_minute(n)))))
    }

    /// Count one attempt for each key; `Err(seconds)` when any key is over its limit.
    pub fn check(&self, keys: &[String]) -> Result<(), u64> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        let mut wait = 0;
        for key in keys {
            if let Err(not_until) = limiter.check_key(key) {
                let secs = not_until
                    .wait_time_from(DefaultClock::default().now())
                    .as_secs()
                    + 1;
                wait = wait.max(secs);
            }
        }
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    /// Forget keys whose limits have fully recovered (run now and then).
    pub fn purge(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Limiter;

    #[test]
    fn the_eleventh_attempt_in_a_minute_waits() {
        let l = Limiter::per_minute(10, true);
        let keys = vec!["ip:1".to_owned()];
        for _ in 0..10 {
            assert!(l.check(&keys).is_ok());
        }
        let wait = l.check(&keys).unwrap_err();
        assert!((1..=7).contains(&wait), "{wait}");
        assert!(l.check(&["ip:2".to_owned()]).is_ok());
        assert!(Limiter::per_minute(1, false).check(&keys).is_ok());
    }
}
