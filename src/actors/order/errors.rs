//! Why an order operation failed, and how a flight's refusal becomes one.

use crate::actors::CallError;
use crate::actors::flight::FlightError;
use crate::domain::ids::OrderId;
use crate::domain::order::HoldFailure;
use crate::domain::seat_map::HoldError;
use crate::persistence::StoreError;
use serde::{Deserialize, Serialize};

/// Why an order request did not succeed. The order is in a consistent state either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OrderError {
    /// Not all seats could be held; nothing is held.
    #[error("{0}")]
    SeatsUnavailable(String),
    /// The customer already holds as many seats on a flight as allowed.
    #[error("{0}")]
    HoldLimit(String),
    /// The request does not fit the flights.
    #[error("{0}")]
    Invalid(String),
    /// The order cannot be paid in its state.
    #[error("{0}")]
    NotPayable(String),
    /// The order cannot be cancelled in its state.
    #[error("{0}")]
    NotCancellable(String),
    /// The card was declined; the order stays held.
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    /// The gateway timed out; nothing was charged, the order stays held.
    #[error("the payment gateway timed out; nothing was charged")]
    PaymentTimeout,
    /// A participant could not be reached; retrying is safe.
    #[error("{0}")]
    Unavailable(String),
    /// Storage refused a write; the order is unchanged (its actor reloads from disk).
    #[error("storage is unavailable: {0}")]
    Storage(String),
    /// No such order.
    #[error("not found")]
    NotFound,
    /// The Idempotency-Key was used before with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
    /// Between [`Orders`](super::desk::Orders) and a new order's actor only: a concurrent
    /// request with the same Idempotency-Key placed this order first, so the new one was never
    /// written; `Orders` answers with the first order instead.
    #[error("placed first as order {0}")]
    PlacedAs(OrderId),
}

impl From<HoldFailure> for OrderError {
    fn from(f: HoldFailure) -> Self {
        match f {
            HoldFailure::SeatsUnavailable(m) => OrderError::SeatsUnavailable(m),
            HoldFailure::HoldLimit(m) => OrderError::HoldLimit(m),
            HoldFailure::Invalid(m) => OrderError::Invalid(m),
            HoldFailure::Unavailable(m) => OrderError::Unavailable(m),
        }
    }
}

impl From<StoreError> for OrderError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Fenced { .. } = e {
            // Not a storage fault: this node may not write the order now (see `Fence`).
            tracing::warn!(error = %e, "order write refused");
            return OrderError::Unavailable(e.to_string());
        }
        tracing::error!(error = %e, "order storage failed");
        OrderError::Storage(e.to_string())
    }
}

impl From<CallError> for OrderError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotFound => OrderError::NotFound,
            other => OrderError::Unavailable(other.to_string()),
        }
    }
}

/// A flight's refusal of segment `index`, as the order reports it.
pub(super) fn hold_failure(index: usize, flight: &str, e: FlightError) -> HoldFailure {
    match e {
        FlightError::Hold(HoldError::CapExceeded { cap }) => {
            HoldFailure::HoldLimit(format!("flight {flight}: at most {cap} seats per customer"))
        }
        FlightError::Hold(
            e @ (HoldError::UnknownSeat(_)
            | HoldError::DuplicateSeat(_)
            | HoldError::NoSuchCabin(_)
            | HoldError::Empty),
        ) => HoldFailure::Invalid(format!("segments[{index}]: {e}")),
        FlightError::Hold(e) => HoldFailure::SeatsUnavailable(format!("flight {flight}: {e}")),
        FlightError::NotScheduled(_) => {
            HoldFailure::SeatsUnavailable(format!("flight {flight} is cancelled"))
        }
        other => HoldFailure::Unavailable(format!("flight {flight}: {other}")),
    }
}
