//! Rate limits and quotas, counted in fixed one-minute windows per key (a client IP, an account,
//! an app, a user's API quota).
//!
//! A SQLite database is served by one process, which counts in memory. With PostgreSQL every
//! node counts in the database (`rate_counters`), so a limit holds across all nodes together.
//! To keep that off most requests, a node takes hits from the database in leases: it adds a
//! block of hits to the shared count at once and admits that many requests locally. A block is
//! a sixteenth of what is left of the limit (at most 1,000), so a small limit, or one nearly
//! spent, is counted a hit at a time and holds exactly across nodes; a lease a node does not
//! use up counts against the limit all the same (the safe side).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::config::Config;
use crate::http::api::ApiError;
use crate::store::{Backend, Store, now};

/// Length of a window, in seconds.
pub const WINDOW: i64 = 60;

type Key = [u8; 16];

/// Where hits are counted.
#[derive(Clone)]
enum Counter {
    Memory(Arc<Mutex<HashMap<Key, (i64, u32)>>>),
    Database(Store, Arc<Mutex<HashMap<Key, Lease>>>),
}

/// Hits taken from the shared count that this node has not yet admitted.
#[derive(Clone, Copy)]
struct Lease {
    window: i64,
    /// The shared count when the lease was taken (it includes the lease).
    total: u32,
    left: u32,
}

/// The most hits one lease takes.
const MAX_LEASE: u32 = 1000;

impl Counter {
    /// Count a hit on `key` in `window`, where at most `limit` are allowed; the hits so far in it.
    async fn hit(&self, key: Key, window: i64, limit: u32) -> u32 {
        match self {
            Counter::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                let entry = map.entry(key).or_insert((window, 0));
                if entry.0 != window {
                    *entry = (window, 0);
                }
                entry.1 = entry.1.saturating_add(1);
                entry.1
            }
            Counter::Database(store, leases) => {
                let known = {
                    let mut leases = leases.lock().unwrap_or_else(PoisonError::into_inner);
                    match leases.get_mut(&key).filter(|l| l.window == window) {
                        Some(lease) if lease.left > 0 => {
                            lease.left -= 1;
                            return lease.total - lease.left;
                        }
                        Some(lease) => lease.total,
                        None => 0,
                    }
                };
                if known >= limit {
                    // Spent for this window on every node: refused without asking again.
                    return known.saturating_add(1);
                }
                let block = (limit.saturating_sub(known) / 16).clamp(1, MAX_LEASE);
                let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
                let total = match store
                    .hit_rate_counter(&encoded, window, i64::from(block))
                    .await
                {
                    Ok(hits) => u32::try_from(hits).unwrap_or(u32::MAX),
                    Err(e) => {
                        // The request that follows needs the same database and will report
                        // the failure itself; a limiter that cannot count lets it through.
                        tracing::warn!(error = %e, "counting a rate limit failed");
                        return 0;
                    }
                };
                // This request takes the first hit of the block; requests that leased at the
                // same time pool what they got.
                let mut leases = leases.lock().unwrap_or_else(PoisonError::into_inner);
                let fresh = Lease {
                    window,
                    total: 0,
                    left: 0,
                };
                let lease = leases.entry(key).or_insert(fresh);
                if lease.window != window {
                    *lease = fresh;
                }
                lease.left += block - 1;
                lease.total = lease.total.max(total);
                total - (block - 1)
            }
        }
    }
}

/// The outcome of one hit: what `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset: u64,
    pub allowed: bool,
}

/// One family of limits: at most `per_minute` hits per key and window.
#[derive(Clone)]
pub struct Limiter {
    /// `None` when rate limits are switched off.
    counter: Option<Counter>,
    family: &'static str,
    per_minute: u32,
}

impl Limiter {
    /// Count one hit on `key`; `None` when rate limits are off.
    pub async fn hit(&self, key: &str) -> Option<Decision> {
        let counter = self.counter.as_ref()?;
        let t = now();
        let window = t - t.rem_euclid(WINDOW);
        let digest = Sha256::new()
            .chain_update(self.family)
            .chain_update([0])
            .chain_update(key)
            .finalize();
        let mut hashed = [0; 16];
        hashed.copy_from_slice(&digest[..16]);
        let hits = counter.hit(hashed, window, self.per_minute).await;
        Some(Decision {
            limit: self.per_minute,
            remaining: self.per_minute.saturating_sub(hits),
            reset: (window + WINDOW - t).max(1) as u64,
            allowed: hits <= self.per_minute,
        })
    }

    /// Count one hit on each key; `Err(seconds to wait)` when any of them is over the limit.
    pub async fn check(&self, keys: &[&str]) -> Result<(), u64> {
        let mut wait = None;
        for key in keys {
            if let Some(d) = self.hit(key).await
                && !d.allowed
            {
                wait = Some(wait.unwrap_or(0).max(d.reset));
            }
        }
        wait.map_or(Ok(()), Err)
    }
}

/// Every limit latchkey applies.
#[derive(Clone)]
pub struct Limits {
    counter: Option<Counter>,
    /// Sign-in, sign-up, setup and password changes: per client IP and per account.
    pub login: Limiter,
    /// The token, revocation, introspection and leak endpoints: per client IP and per
    /// authenticated confidential app.
    pub token: Limiter,
    /// The resource API, userinfo, the client API and heartbeat ingestion: per user, shared by
    /// all of the user's apps and tokens.
    pub api: Limiter,
    /// Dynamic client registration: per client IP.
    pub register: Limiter,
    /// The token endpoints for an app registered by software (no owner): per app, a tenth
    /// of `token`.
    pub software: Limiter,
}

impl Limits {
    pub fn new(config: &Config, store: &Store) -> Limits {
        let counter = config.rate_limits.then(|| match store.backend() {
            Backend::Sqlite => Counter::Memory(Arc::default()),
            Backend::Postgres => Counter::Database(store.clone(), Arc::default()),
        });
        let limiter = |family, per_minute| Limiter {
            counter: counter.clone(),
            family,
            per_minute,
        };
        Limits {
            login: limiter("login", config.login_rate_per_minute),
            token: limiter("token", config.token_rate_per_minute),
            api: limiter("api", config.api_rate_per_minute),
            register: limiter("register", crate::oauth::REGISTRATIONS_PER_MINUTE),
            software: limiter("software", (config.token_rate_per_minute / 10).max(1)),
            counter,
        }
    }

    /// Forget windows that have ended (run now and then).
    pub async fn purge(&self) {
        let t = now();
        let current = t - t.rem_euclid(WINDOW);
        match &self.counter {
            None => {}
            Some(Counter::Memory(map)) => map
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, (window, _)| *window >= current),
            Some(Counter::Database(store, leases)) => {
                leases
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|_, lease| lease.window >= current);
                if let Err(e) = store.purge_rate_counters(current).await {
                    tracing::warn!(error = %e, "purging rate-limit counters failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Counter, Limiter};

    fn memory(per_minute: u32) -> Limiter {
        Limiter {
            counter: Some(Counter::Memory(Default::default())),
            family: "test",
            per_minute,
        }
    }

    #[tokio::test]
    async fn the_eleventh_attempt_in_a_minute_waits() {
        let l = memory(10);
        for _ in 0..10 {
            assert!(l.check(&["ip:1"]).await.is_ok());
        }
        let wait = l.check(&["ip:1"]).await.unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.check(&["ip:2"]).await.is_ok());
        let off = Limiter {
            counter: None,
            ..memory(1)
        };
        assert!(off.check(&["ip:1", "ip:1"]).await.is_ok());
    }

    #[tokio::test]
    async fn a_decision_counts_down_what_remains() {
        let l = memory(3);
        let remaining: Vec<u32> = [
            l.hit("u").await.unwrap(),
            l.hit("u").await.unwrap(),
            l.hit("u").await.unwrap(),
            l.hit("u").await.unwrap(),
        ]
        .iter()
        .map(|d| d.remaining)
        .collect();
        assert_eq!(remaining, [2, 1, 0, 0]);
        assert!(!l.hit("u").await.unwrap().allowed);
        assert_eq!(l.hit("other").await.unwrap().remaining, 2);
    }
}

/// Where an API extractor leaves the caller's quota, for [`quota_headers`] to report.
#[derive(Clone, Default)]
pub struct QuotaSlot(Arc<Mutex<Option<Decision>>>);

/// Report the quota an extractor spent in `RateLimit-Limit`, `RateLimit-Remaining` and
/// `RateLimit-Reset` (seconds), on success and on 429 alike.
pub async fn quota_headers(mut req: Request, next: Next) -> Response {
    let slot = QuotaSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut response = next.run(req).await;
    let spent = *slot.0.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(d) = spent {
        let headers = response.headers_mut();
        headers.insert("ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(d.reset));
    }
    response
}

/// Spend one request of `key`'s API quota (e.g. `user:ID`); 429 when it is used up.
pub async fn spend_quota(state: &AppState, parts: &Parts, key: &str) -> Result<(), ApiError> {
    let Some(d) = state.limits.api.hit(key).await else {
        return Ok(());
    };
    if let Some(slot) = parts.extensions.get::<QuotaSlot>() {
        *slot.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(d);
    }
    if d.allowed {
        Ok(())
    } else {
        Err(ApiError::TooManyRequests {
            retry_after: d.reset,
        })
    }
}
