//! Every remote-capable request of a node, in one enum, dispatched in one place.
//!
//! Why one enum: a request that may travel to another node needs a wire form, and the node
//! that receives it needs one place that turns the wire form back into its typed handler
//! ([`Request::serve`]). Each variant wraps one [`Operation`] defined beside its handler; the
//! `requests!` list below generates the enum, its `From` conversions and the dispatch.

use super::accounts::{ChangeAccount, CreateUser, GetUser, UserByEmail};
use super::catalog::{
    AdmitFlight, CreateAircraft, CreateAirport, ListAircraft, ListAirports, PlanFlight,
};
use super::entity::EntityCall;
use super::flight::FlightActor;
use super::notification::{OutboxList, RetryDelivery};
use super::order::OrderActor;
use super::order::desk::{
    AllOrders, GetTicket, NotificationsOf, OrdersOf, PayOrder, PlaceOrder, TicketsOf,
};
use super::router::Operation;
use super::services::{Counts, Services};
use super::ticket::TicketActor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why a value did not cross the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes did not decode.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// A value did not encode.
    #[error("unencodable message: {0}")]
    Encode(String),
}

/// Encodes a value for the wire (postcard).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(value).map_err(|e| WireError::Encode(e.to_string()))
}

/// Decodes a value from the wire.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    postcard::from_bytes(bytes).map_err(|e| WireError::Decode(e.to_string()))
}

/// Generates [`Request`] from a list of `Variant(OperationType)`.
macro_rules! requests {
    ($($variant:ident($op:ty)),* $(,)?) => {
        /// A request for the node that serves its placement tag.
        #[derive(Clone, Serialize, Deserialize)]
        pub enum Request {
            $(
                #[doc = concat!("[`", stringify!($op), "`]")]
                $variant($op),
            )*
        }

        $(
            impl From<$op> for Request {
                fn from(op: $op) -> Self {
                    Request::$variant(op)
                }
            }
        )*

        impl Request {
            /// Serves the request with this node's handler and encodes the reply.
            pub async fn serve(self, services: &Services) -> Result<Vec<u8>, WireError> {
                match self {
                    $(
                        Request::$variant(op) => {
                            let handler = <$op as Operation>::handler(services);
                            encode(&Box::pin(op.handle(handler)).await)
                        }
                    )*
                }
            }

            /// The request's kind (for logs and metrics).
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Request::$variant(_) => stringify!($variant),)*
                }
            }
        }
    };
}

requests! {
    Flight(EntityCall<FlightActor>),
    Order(EntityCall<OrderActor>),
    Ticket(EntityCall<TicketActor>),
    PlaceOrder(PlaceOrder),
    PayOrder(PayOrder),
    OrdersOf(OrdersOf),
    AllOrders(AllOrders),
    GetTicket(GetTicket),
    TicketsOf(TicketsOf),
    NotificationsOf(NotificationsOf),
    CreateUser(CreateUser),
    UserByEmail(UserByEmail),
    GetUser(GetUser),
    ChangeAccount(ChangeAccount),
    CreateAirport(CreateAirport),
    ListAirports(ListAirports),
    ListAircraft(ListAircraft),
    CreateAircraft(CreateAircraft),
    PlanFlight(PlanFlight),
    AdmitFlight(AdmitFlight),
    Counts(Counts),
    OutboxList(OutboxList),
    RetryDelivery(RetryDelivery),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request::{}", self.kind())
    }
}
