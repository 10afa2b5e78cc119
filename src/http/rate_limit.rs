//! Rate limiting with token buckets (governor): per authenticated user, per client address for
//! anonymous requests, and, more strictly, failed signins per account (password guessing).

use super::Ctx;
use super::auth::bearer;
use super::error::ApiError;
use crate::settings::HttpSettings;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use warp::{Filter, Rejection};

/// The node's limiters.
pub struct RateLimits {
    users: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    signin_failures: DefaultKeyedRateLimiter<String>,
    /// Accounts whose failure bucket ran dry, and until when every signin for them is refused
    /// (checked before the password, so a locked account gives a guesser no signal).
    locked: Mutex<HashMap<String, Instant>>,
    clock: DefaultClock,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate))
}

fn retry_after(wait: Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    }
}

impl RateLimits {
    /// Limiters from `[http]` settings (validated to be positive).
    pub fn new(s: &HttpSettings) -> Self {
        let failures = NonZeroU32::new(s.signin_failures_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            users: RateLimiter::keyed(quota(s.user_rps, s.user_burst)),
            addresses: RateLimiter::keyed(quota(s.anonymous_rps, s.anonymous_burst)),
            signin_failures: RateLimiter::keyed(Quota::per_minute(failures)),
            locked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    fn check_request(&self, user: Option<String>, address: Option<IpAddr>) -> Result<(), ApiError> {
        let verdict = match (user, address) {
            (Some(user), _) => self.users.check_key(&user),
            (None, Some(ip)) => self.addresses.check_key(&ip),
            (None, None) => Ok(()),
        };
        verdict.map_err(|not_until| retry_after(not_until.wait_time_from(self.clock.now())))
    }

    /// Refuses a signin attempt for an account that failed too often recently.
    pub fn check_signin(&self, email: &str) -> Result<(), ApiError> {
        let key = email.trim().to_lowercase();
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        match locked.get(&key) {
            Some(until) if *until > Instant::now() => Err(retry_after(*until - Instant::now())),
            Some(_) => {
                locked.remove(&key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a failed signin; the account is locked once its failure bucket is empty.
    pub fn signin_failed(&self, email: &str) {
        let key = email.trim().to_lowercase();
        if let Err(not_until) = self.signin_failures.check_key(&key) {
            let wait = not_until.wait_time_from(self.clock.now());
            tracing::warn!(account = %key, "signin failures over the limit; account locked for {wait:?}");
            self.locked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, Instant::now() + wait);
        }
    }

    /// Drops state of keys that are idle, so memory does not grow with every client ever seen.
    pub fn forget_idle(&self) {
        self.users.retain_recent();
        self.addresses.retain_recent();
        self.signin_failures.retain_recent();
        let now = Instant::now();
        self.locked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
    }
}

/// Passes a request within its bucket; 429 with `Retry-After` otherwise. A request with a valid
/// token is counted against its user, any other against its client address.
pub fn limit(ctx: Ctx) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::addr::remote()
        .and(super::auth::authorization())
        .and_then(move |addr: Option<SocketAddr>, header: Option<String>| {
            let ctx = ctx.clone();
            async move {
                let user = bearer(header.as_deref())
                    .and_then(|t| ctx.tokens.verify(t).ok())
                    .map(|id| id.to_string());
                ctx.limits
                    .check_request(user, addr.map(|a| a.ip()))
                    .map_err(Rejection::from)
            }
        })
        .untuple_one()
}
