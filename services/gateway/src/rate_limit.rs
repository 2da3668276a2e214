//! Rate limits, per gateway instance, through `governor` (GCRA: one atomic compare-and-swap
//! per request, keyed buckets in a sharded map): anonymous callers by client address (IPv6
//! by /64), authenticated ones by subject, and the Stripe webhook by address in a budget of
//! its own, so that visitors cannot starve Stripe's deliveries nor the other way round. A
//! calendar feed counts against its reader's address and against a budget of its own, so a
//! leaked feed URL cannot be read in a tight loop from many addresses either.
//!
//! Memory stays bounded: a task forgets every bucket that has refilled (one that would
//! answer like a fresh one) every [`PRUNE_EVERY`], so the map holds only the callers of
//! the last minute or so.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use polyclinic_auth::Principal;
use polyclinic_http::client_address::limit_key;

/// How often refilled buckets are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Buckets that hold `per_minute` requests and refill continuously.
pub struct Limiter<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Limiter<K> {
    /// A limiter, with a task (for as long as it lives) that forgets refilled buckets.
    /// Must be called inside a Tokio runtime.
    pub fn new(per_minute: u32) -> Arc<Self> {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let limiter = Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        });
        tokio::spawn(prune(Arc::downgrade(&limiter)));
        limiter
    }

    /// Takes one request from `key`'s bucket; `Err(seconds)` says when to retry.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// How many buckets are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
    }
}

async fn prune<K: Hash + Eq + Clone + Send + Sync + 'static>(limiter: Weak<Limiter<K>>) {
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        limiter.limiter.retain_recent();
        limiter.limiter.shrink_to_fit();
    }
}

/// The budgets the gateway keeps.
pub struct Limits {
    pub anonymous: Arc<Limiter<IpAddr>>,
    pub users: Arc<Limiter<Arc<str>>>,
    pub webhooks: Arc<Limiter<IpAddr>>,
    /// Per calendar feed, keyed by its path (whose secret is the feed's credential).
    pub feeds: Arc<Limiter<Arc<str>>>,
}

impl Limits {
    /// Takes one request from the caller's bucket: the subject's with a valid token, the
    /// client address's (its /64 for IPv6) without one.
    pub fn check(&self, caller: Option<&Principal>, client: IpAddr) -> Result<(), u64> {
        match caller {
            Some(principal) => self.users.check(&principal.subject.as_str().into()),
            None => self.anonymous.check(&limit_key(client)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_allows_its_size_then_refuses_with_a_retry_time() {
        let limiter = Limiter::new(3);
        assert!(limiter.check(&"a").is_ok());
        assert!(limiter.check(&"a").is_ok());
        assert!(limiter.check(&"a").is_ok());
        let retry = limiter.check(&"a").unwrap_err();
        assert!((1..=20).contains(&retry), "{retry}");
        assert!(limiter.check(&"b").is_ok(), "keys have their own buckets");
        assert_eq!(limiter.len(), 2);
    }
}
