//! Bearer tokens (HS256 JWT, algorithm pinned) and the filters that turn them into a caller.
//!
//! A token names its subject; the caller's roles are read from the stored user on every
//! request, so a role change (or a deleted account) takes effect at once, not at token expiry.

use super::Ctx;
use super::error::ApiError;
use crate::domain::ids::UserId;
use crate::domain::user::{Role, User};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use warp::{Filter, Rejection};

/// Who issues the node's tokens (`iss`).
pub const ISSUER: &str = "contrail";
/// Whom they are for (`aud`): this API, not another service sharing the secret.
pub const AUDIENCE: &str = "contrail-api";
/// How far in the future a token's `iat` may lie (clock skew between nodes).
const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// Token claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The issuer, [`ISSUER`].
    pub iss: String,
    /// The audience, [`AUDIENCE`].
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Issued at, in milliseconds (ours; `iat` is whole seconds): a token made in the same
    /// second as a password change, but before it, is still refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Roles when issued (informational: authorization uses the stored roles).
    pub roles: Vec<Role>,
}

/// Tokens verified lately, kept so that a client's next request skips the signature check.
const VERIFIED_CACHE: usize = 16_384;

/// Signing and verification keys; the secret itself is not kept.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    /// Tokens that passed [`TokenKeys::verify`], with what they proved and until when. Only a
    /// token byte-for-byte equal to a verified one hits, so nothing unverified is ever
    /// accepted; expiry is still checked on every use. Verifying (base64, HMAC, two JSON
    /// documents) was 6 % of a booking's CPU time in `perf`.
    verified: Mutex<HashMap<String, (Verified, i64)>>,
}

/// What a valid token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its subject.
    pub user: UserId,
    /// When it was issued (milliseconds since the epoch): tokens issued before the account's
    /// password changed are refused.
    pub issued_at_ms: i64,
}

impl TokenKeys {
    /// Keys for an HS256 secret.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Token lifetime in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A token for `user`.
    pub fn issue(&self, user: &User) -> Result<String, ApiError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let claims = Claims {
            sub: user.id.to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            iat_ms: Some(now_ms),
            exp: now + i64::try_from(self.ttl_secs).unwrap_or(i64::MAX / 2),
            roles: user.roles.iter().copied().collect(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("token signing failed: {e}")))
    }

    /// What a valid token proves: right algorithm, right key, untampered, ours (`iss`, `aud`),
    /// not expired, and not older than the token lifetime whatever its `exp` says (a token
    /// minted with a leaked key and a far expiry still dies within one lifetime).
    pub fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let known = self.cache().get(token).cloned();
        if let Some((verified, until)) = known {
            // The same bound as the full check (leeway 0: expired once `until` has passed).
            if now < until {
                return Ok(verified);
            }
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(refusal(e.kind()).into()))?
            .claims;
        let user = UserId::parse(&claims.sub)
            .ok_or_else(|| ApiError::Unauthorized("invalid token subject".into()))?;
        let lifetime = i64::try_from(self.ttl_secs).unwrap_or(i64::MAX / 2);
        let until = claims.exp.min(claims.iat.saturating_add(lifetime));
        if claims.iat > now + MAX_CLOCK_SKEW_SECS || now >= until {
            return Err(ApiError::Unauthorized("the token has expired".into()));
        }
        let verified = Verified {
            user,
            // Milliseconds only when they agree with the signed `iat`.
            issued_at_ms: claims
                .iat_ms
                .filter(|ms| ms.div_euclid(1000) == claims.iat)
                .unwrap_or(claims.iat.saturating_mul(1000)),
        };
        let mut cache = self.cache();
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(token.to_owned(), (verified.clone(), until));
        Ok(verified)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Verified, i64)>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a token was refused, in words that do not expose the JWT library.
fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
            "the token was not issued for this API"
        }
        _ => "the token is invalid",
    }
}

/// The `Authorization` header. A value that is not visible ASCII cannot be a token; it reads as
/// an invalid one (401), not as a malformed request.
pub fn authorization()
-> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::value(warp::http::header::AUTHORIZATION.as_str())
        .map(|v: warp::http::HeaderValue| {
            Some(
                v.to_str()
                    .map_or_else(|_| "invalid".to_owned(), str::to_owned),
            )
        })
        .or(warp::any().map(|| None))
        .unify()
}

/// The bearer token of an `Authorization` header, if it has one.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The authenticated caller, with their current roles; 401 otherwise.
pub fn caller(ctx: Ctx) -> impl Filter<Extract = (User,), Error = Rejection> + Clone {
    authorization().and_then(move |header: Option<String>| {
        let ctx = ctx.clone();
        async move {
            let token = bearer(header.as_deref())
                .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
            Ok::<User, Rejection>(user_of(&ctx, token).await?)
        }
    })
}

/// The account a token (a bearer token, or a browser session's) speaks for, with its current
/// roles; refused when the token is invalid or expired, the account is gone or disabled, or its
/// password changed after the token was issued.
pub async fn user_of(ctx: &Ctx, token: &str) -> Result<User, ApiError> {
    let token = ctx.tokens.verify(token)?;
    let user = ctx
        .services
        .accounts
        .get(&token.user)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::Unauthorized("the token's account no longer exists".into()))?;
    if user.disabled {
        return Err(ApiError::Unauthorized(
            "this account has been disabled".into(),
        ));
    }
    if token.issued_at_ms < user.tokens_not_before_ms() {
        return Err(ApiError::Unauthorized(
            "the password changed after this token was issued; sign in again".into(),
        ));
    }
    Ok(user)
}

/// The caller, if they have `role` (admins have every role); 401 or 403 otherwise.
pub fn with_role(
    ctx: Ctx,
    role: Role,
) -> impl Filter<Extract = (User,), Error = Rejection> + Clone {
    caller(ctx).and_then(move |user: User| async move {
        if user.may(role) {
            Ok(user)
        } else {
            Err(Rejection::from(ApiError::Forbidden(
                "your role does not allow this".into(),
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_is_parsed_case_insensitively() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn a_verified_token_is_remembered_but_never_a_different_or_expired_one() {
        let keys = TokenKeys::new(b"unit-test-secret-0123456789abcdef0123", 60);
        let user = UserId::generate();
        let sign = |exp: i64| {
            let claims = Claims {
                sub: user.to_string(),
                iss: ISSUER.into(),
                aud: AUDIENCE.into(),
                iat: chrono::Utc::now().timestamp(),
                iat_ms: None,
                exp,
                roles: vec![],
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
                .unwrap_or_default()
        };
        let now = chrono::Utc::now().timestamp();
        let token = sign(now + 60);
        assert_eq!(keys.verify(&token).ok().map(|v| v.user), Some(user.clone()));
        assert_eq!(
            keys.verify(&token).ok().map(|v| v.user),
            Some(user.clone()),
            "from the cache"
        );
        // One byte changed is another token: verified in full, and refused.
        let signature_starts = token.rfind('.').map_or(0, |dot| dot + 1);
        let mut tampered = token.clone().into_bytes();
        if let Some(first) = tampered.get_mut(signature_starts) {
            *first = if *first == b'A' { b'B' } else { b'A' };
        }
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert!(keys.verify(&tampered).is_err());
        // A remembered token is refused once its expiry passes, like any expired token.
        let short = sign(now + 1);
        assert_eq!(keys.verify(&short).ok().map(|v| v.user), Some(user.clone()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while chrono::Utc::now().timestamp() <= now + 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(keys.verify(&short).is_err());
        assert!(keys.verify(&sign(now - 10)).is_err());
    }
}
