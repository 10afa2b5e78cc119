//! The one API error type and the one place it becomes an HTTP response.
//!
//! Every failure a client can see has the body `{"error":{"code","message"}}` with a stable
//! `code`. Internal faults are logged with their cause; the client gets a generic message.

use crate::actors::CallError;
use crate::actors::accounts::AccountError;
use crate::actors::catalog::CatalogError;
use crate::actors::flight::FlightError;
use crate::actors::order::OrderError;
use crate::domain::ValidationError;
use crate::persistence::StoreError;
use serde::Serialize;
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::http::header::{HeaderValue, RETRY_AFTER};
use warp::reject::Reject;
use warp::{Rejection, Reply};

/// Seconds a client should wait before retrying a 503.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// Everything the API answers with instead of a success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: malformed JSON, unknown field, failed validation.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `unauthorized`: missing, invalid or expired token, or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `forbidden`: authenticated, but the role (or an airline's carrier) does not allow
    /// it; the message says which.
    #[error("{0}")]
    Forbidden(String),
    /// 403 `account_disabled`: sign-in to an account an admin disabled.
    #[error("this account has been disabled")]
    AccountDisabled,
    /// 404 `not_found`: unknown id or route, or someone else's resource.
    #[error("not found")]
    NotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 409 with a specific code (`email_taken`, `airport_exists`, `seats_unavailable`, ...).
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// What conflicted.
        message: String,
    },
    /// 402 `payment_declined`: the card was declined; the order stays held.
    #[error("{0}")]
    PaymentDeclined(String),
    /// 422 `idempotency_key_reused`: same Idempotency-Key, different request.
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
    /// 503 `payment_timeout`, with `Retry-After`: the gateway timed out, nothing was charged.
    #[error("the payment gateway timed out; nothing was charged; retry")]
    PaymentTimeout,
    /// 413 `payload_too_large`: body over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415 `unsupported_media_type`: a body that is not `application/json`.
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    /// 429 `rate_limited`, with `Retry-After`.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 503 `unavailable`, with `Retry-After`: the entity's owner cannot answer right now.
    #[error("{0}")]
    Unavailable(String),
    /// 500 `internal`: a fault on our side (logged; the client sees a generic message).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Reject for ApiError {}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::InvalidRequest(e.to_string())
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotFound => ApiError::NotFound,
            CallError::Timeout => {
                ApiError::Unavailable("the service did not answer in time; retry".into())
            }
            CallError::Stopped => {
                ApiError::Unavailable("the request was interrupted by a restart; retry".into())
            }
            CallError::Unavailable(why) => ApiError::Unavailable(why),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::EmailTaken => ApiError::Conflict {
                code: "email_taken",
                message: e.to_string(),
            },
            AccountError::NotFound => ApiError::NotFound,
            AccountError::BadCredentials => ApiError::Unauthorized(e.to_string()),
            AccountError::Invalid(v) => v.into(),
            AccountError::Unavailable(c) => c.into(),
            AccountError::Storage(e) => storage_unavailable(e),
            AccountError::Busy => ApiError::Unavailable(e.to_string()),
            AccountError::Hashing(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid(v) => v.into(),
            CatalogError::AirportExists(_) => ApiError::Conflict {
                code: "airport_exists",
                message: e.to_string(),
            },
            CatalogError::Storage(e) => storage_unavailable(e),
            CatalogError::Unavailable(why) => ApiError::Unavailable(why),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        let conflict = |code: &'static str, message: String| ApiError::Conflict { code, message };
        match e {
            OrderError::SeatsUnavailable(m) => conflict("seats_unavailable", m),
            OrderError::HoldLimit(m) => conflict("hold_limit_exceeded", m),
            OrderError::NotPayable(m) => conflict("order_not_payable", m),
            OrderError::NotCancellable(m) => conflict("order_not_cancellable", m),
            OrderError::Invalid(m) => ApiError::InvalidRequest(m),
            OrderError::PaymentDeclined(m) => ApiError::PaymentDeclined(m),
            OrderError::PaymentTimeout => ApiError::PaymentTimeout,
            OrderError::Unavailable(m) => ApiError::Unavailable(m),
            OrderError::Storage(cause) => storage_failed(&cause),
            OrderError::NotFound => ApiError::NotFound,
            OrderError::KeyReused => ApiError::KeyReused,
            // Resolved inside `Orders`; reaching here would be a bug.
            e @ OrderError::PlacedAs(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<FlightError> for ApiError {
    fn from(e: FlightError) -> Self {
        match e {
            FlightError::Unavailable(why) => ApiError::Unavailable(why),
            FlightError::Storage(cause) => storage_failed(&cause),
            FlightError::Hold(_) | FlightError::Confirm(_) | FlightError::NotScheduled(_) => {
                ApiError::Conflict {
                    code: "seats_unavailable",
                    message: e.to_string(),
                }
            }
        }
    }
}

/// A storage failure reported as text by an actor: logged with its cause; the client gets
/// 503 and a generic message.
fn storage_failed(cause: &str) -> ApiError {
    tracing::error!(cause = %cause, "storage failure");
    ApiError::Unavailable("storage is unavailable; retry".into())
}

/// A storage failure: logged with its cause; the client gets 503 and a generic message. A write
/// refused by the cluster's fence is no fault: the client learns why (and may retry).
fn storage_unavailable(cause: StoreError) -> ApiError {
    if let StoreError::Fenced { .. } = cause {
        return ApiError::Unavailable(cause.to_string());
    }
    storage_failed(&cause.to_string())
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::AccountDisabled => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PaymentDeclined(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PaymentTimeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::AccountDisabled => "account_disabled",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::PaymentDeclined(_) => "payment_declined",
            ApiError::KeyReused => "idempotency_key_reused",
            ApiError::PaymentTimeout => "payment_timeout",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The response for this error.
    pub fn into_response(self) -> warp::reply::Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Detail<'a>,
        }
        #[derive(Serialize)]
        struct Detail<'a> {
            code: &'a str,
            message: String,
        }
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                "an internal error occurred".to_owned()
            }
            other => other.to_string(),
        };
        if self.status().is_client_error() {
            // The client's business, at DEBUG: what a developer of a client wants to see. The
            // message may quote what the client sent; the text log escapes it (telemetry.rs).
            tracing::debug!(code = self.code(), reason = %message, "request refused");
        }
        let body = Body {
            error: Detail {
                code: self.code(),
                message,
            },
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Unavailable(_) | ApiError::PaymentTimeout => {
                Some(UNAVAILABLE_RETRY_AFTER_SECS)
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// Turns every rejection, ours or warp's, into the API's error shape.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if let Some(e) = rejection.find::<warp::cors::CorsForbidden>() {
        ApiError::Forbidden(e.to_string())
    } else if rejection.is_not_found() {
        ApiError::NotFound
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::InvalidRequest("the query string is malformed".into())
    } else if let Some(h) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::InvalidRequest(format!("header {} is malformed", h.name()))
    } else if let Some(h) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::InvalidRequest(format!("header {} is required", h.name()))
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge(super::body::MAX_BODY_BYTES)
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        ApiError::UnsupportedMediaType
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        // Last of warp's: a header or body rejection comes from the route whose path and
        // method matched, and says more than the 405 of a sibling route with another method.
        ApiError::MethodNotAllowed
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}
