//! Rate limiting with token buckets (governor): per authenticated user, per client address for
//! anonymous requests, and, more strictly, failed signins per (client address, account) and per
//! client address (password guessing and spraying).
//!
//! Failures are never counted per account alone: that would let anyone lock anyone out (the
//! admin included) by failing on purpose. A guesser is stopped at their own address; the
//! account's owner, signing in from elsewhere, is not affected.

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
    /// Failed signins per (client address, account).
    signin_failures: DefaultKeyedRateLimiter<SigninKey>,
    /// Failed signins per client address, whatever the account.
    address_failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Keys whose failure bucket ran dry, and until when signins under them are refused
    /// (checked before the password, so a locked-out guesser learns nothing more).
    locked: Mutex<HashMap<SigninKey, Instant>>,
    clock: DefaultClock,
}

/// What signin failures are counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SigninKey {
    /// One client address guessing one account's password.
    Pair(IpAddr, String),
    /// One client address, whatever account it tries (password spraying).
    Address(IpAddr),
}

impl SigninKey {
    fn both(address: IpAddr, email: &str) -> [SigninKey; 2] {
        [
            SigninKey::Pair(address, email.trim().to_lowercase()),
            SigninKey::Address(address),
        ]
    }
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
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            users: RateLimiter::keyed(quota(s.user_rps, s.user_burst)),
            addresses: RateLimiter::keyed(quota(s.anonymous_rps, s.anonymous_burst)),
            signin_failures: RateLimiter::keyed(per_minute(s.signin_failures_per_minute)),
            address_failures: RateLimiter::keyed(per_minute(
                s.signin_failures_per_address_per_minute,
            )),
            locked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    pub(super) fn check_request(
        &self,
        user: Option<String>,
        address: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let verdict = match (user, address) {
            (Some(user), _) => self.users.check_key(&user),
            (None, Some(ip)) => self.addresses.check_key(&ip),
            (None, None) => Ok(()),
        };
        verdict.map_err(|not_until| retry_after(not_until.wait_time_from(self.clock.now())))
    }

    /// Refuses a signin attempt from `address` for `email` if that address failed too often
    /// recently, for this account or for all of them.
    pub fn check_signin(&self, address: IpAddr, email: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        for key in SigninKey::both(address, email) {
            match locked.get(&key) {
                Some(until) if *until > now => return Err(retry_after(*until - now)),
                Some(_) => {
                    locked.remove(&key);
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Records a failed signin from `address` for `email`; a key whose failure bucket is empty
    /// is locked until the bucket refills.
    pub fn signin_failed(&self, address: IpAddr, email: &str) {
        let [pair, whole] = SigninKey::both(address, email);
        let verdicts = [
            (self.signin_failures.check_key(&pair), pair),
            (self.address_failures.check_key(&address), whole),
        ];
        for (verdict, key) in verdicts {
            if let Err(not_until) = verdict {
                let wait = not_until.wait_time_from(self.clock.now());
                let scope = match &key {
                    SigninKey::Pair(..) => "one account",
                    SigninKey::Address(_) => "every account",
                };
                tracing::info!(%address, scope, "signin failures over the limit; refused for {wait:?}");
                self.locked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, Instant::now() + wait);
            }
        }
    }

    /// Drops state of keys that are idle, so memory does not grow with every client ever seen.
    pub fn forget_idle(&self) {
        self.users.retain_recent();
        self.addresses.retain_recent();
        self.signin_failures.retain_recent();
        self.address_failures.retain_recent();
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
                    .map(|v| v.user.to_string());
                ctx.limits
                    .check_request(user, addr.map(|a| a.ip()))
                    .map_err(Rejection::from)
            }
        })
        .untuple_one()
}
