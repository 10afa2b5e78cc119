//! The order desk, [`Orders`]: what the HTTP layer uses to place, pay, find and list orders.
//! Not an actor: it starts order actors and asks them, and serves the order-side reads. Placing an order
//! starts its actor with the new order, which writes it and runs the saga.

use super::{KeyRecord, OrderCommand, OrderDirectory, OrderError, OrderStart};
use crate::actors::CallError;
use crate::actors::deadlines::Deadlines;
use crate::actors::notification::{self, Notification};
use crate::actors::router::{RouterRef, Share, operation};
use crate::actors::sold_out::SoldOut;
use crate::domain::ids::TicketId;
use crate::domain::ids::{FlightId, OrderId, UserId};
use crate::domain::order::{Order, OrderStatus, Passenger, Segment, TicketRecord, Viewer};
use crate::domain::seat_map::SeatRequest;
use crate::persistence::{Store, StoreError, WriteBatch, keys};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Placing and reading orders.
#[derive(Clone)]
pub struct Orders {
    store: Store,
    directory: OrderDirectory,
    hold_ttl: Duration,
    router: RouterRef,
    deadlines: Deadlines,
    sold_out: SoldOut,
    /// One permit per booking or payment being worked on (`booking.max_in_flight`).
    admission: Arc<Semaphore>,
}

/// A placed order, and whether it was placed by an earlier request with the same key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Placed {
    /// The order.
    pub order: Order,
    /// True when an earlier request with the same Idempotency-Key placed it.
    pub replayed: bool,
}

impl Orders {
    /// Orders over `directory`; new holds last `hold_ttl`.
    pub fn new(
        store: Store,
        directory: OrderDirectory,
        hold_ttl: Duration,
        router: RouterRef,
        deadlines: Deadlines,
        sold_out: SoldOut,
        max_in_flight: usize,
    ) -> Self {
        Self {
            store,
            directory,
            hold_ttl,
            router,
            deadlines,
            sold_out,
            admission: Arc::new(Semaphore::new(max_in_flight)),
        }
    }

    /// A permit to work on one booking or payment, if this node has room for it now. Without
    /// room, the request is refused at once (503 + Retry-After): queued, it would wait past its
    /// caller's deadline, and the work done for it then would be wasted.
    fn admit(&self) -> Result<OwnedSemaphorePermit, OrderError> {
        self.admission.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("contrail_requests_shed_total").increment(1);
            OrderError::Unavailable("this node is at capacity for bookings; retry".into())
        })
    }

    /// The hold deadlines of this node's orders.
    pub fn deadlines(&self) -> &Deadlines {
        &self.deadlines
    }

    /// The order actors.
    pub fn directory(&self) -> &OrderDirectory {
        &self.directory
    }

    /// Places an order on the customer's node: all segments held, or none (and an error).
    pub async fn place(&self, request: PlaceOrder) -> Result<Placed, OrderError> {
        self.router.call(request, self).await
    }

    /// Pays an order on the customer's node (see [`PayOrder`]).
    pub async fn pay(&self, request: PayOrder) -> Result<Order, OrderError> {
        self.router.call(request, self).await
    }

    /// Places an order on this node: all segments held, or none (and an error).
    ///
    /// The order's own actor writes it (see [`OrderStart::New`]). With an Idempotency-Key, the
    /// first request wins atomically; a retry with the same request gets that order's outcome,
    /// with a different request [`OrderError::KeyReused`].
    async fn place_here(&self, request: PlaceOrder) -> Result<Placed, OrderError> {
        let PlaceOrder {
            user,
            segments,
            passengers,
            fingerprint,
            key: idempotency_key,
        } = request;
        let user = &user;
        let id = OrderId::generate_in(user.tag());
        let key = match idempotency_key {
            None => None,
            Some(key) => {
                let store_key = keys::idempotency(user, "order", &key);
                if let Some(first) = self.store.get::<KeyRecord>(&store_key)? {
                    return self.replay(first, &fingerprint).await;
                }
                let record = KeyRecord {
                    fingerprint: fingerprint.clone(),
                    order: id.clone(),
                    outcome: None,
                };
                Some((store_key, record))
            }
        };
        let now = Utc::now();
        // A full cabin on a flight this node owns: refused before anything is created or
        // written (nothing to replay either, so a retry with the same key is asked again).
        if let Some((flight, _)) = segments.iter().find(|(flight, request)| {
            self.sold_out.refuses(flight, request, now) && self.router.owns(flight.tag())
        }) {
            metrics::counter!("contrail_bookings_refused_full_total").increment(1);
            return Err(OrderError::SeatsUnavailable(format!(
                "no seats left in that cabin of flight {flight}"
            )));
        }
        let _permit = self.admit()?;
        let ttl = chrono::Duration::from_std(self.hold_ttl).unwrap_or(chrono::Duration::MAX);
        let order = Order {
            id: id.clone(),
            user: user.clone(),
            status: OrderStatus::Pending,
            segments: segments
                .into_iter()
                .map(|(flight_id, request)| Segment {
                    flight_id,
                    request,
                    seats: vec![],
                    price_cents: 0,
                    departs_at: None,
                })
                .collect(),
            passengers,
            created_at: now,
            expires_at: now.checked_add_signed(ttl).unwrap_or(now),
            total_cents: 0,
            currency: None,
            charge_id: None,
            tickets: vec![],
            request_hash: fingerprint,
            failure: None,
        };
        let start = OrderStart::New(Box::new(order), key);
        match self.directory.create(&id, start, OrderCommand::Place).await {
            // A concurrent request with the same key placed its order first.
            Ok(Err(OrderError::PlacedAs(first))) => {
                let order = self.call(&first, OrderCommand::Place).await?;
                Ok(Placed {
                    order,
                    replayed: true,
                })
            }
            Ok(result) => Ok(Placed {
                order: result?,
                replayed: false,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Answers a retried placement with the first request's order (its saga's outcome, which
    /// its actor reports only once it is durable).
    async fn replay(&self, first: KeyRecord, fingerprint: &str) -> Result<Placed, OrderError> {
        if !first.same_request(fingerprint) {
            return Err(OrderError::KeyReused);
        }
        let order = self.call(&first.order, OrderCommand::Place).await?;
        Ok(Placed {
            order,
            replayed: true,
        })
    }

    /// Pays an order. With an Idempotency-Key, a retry gets the first final outcome (approved,
    /// declined, not payable) instead of paying again; the same key with another order or token
    /// is [`OrderError::KeyReused`].
    ///
    /// The key's records are committed without waiting for the disk: the order's actor makes
    /// the payment durable before it answers, and that covers everything committed before.
    /// Should a crash lose a recorded outcome, the retry pays again, which the order answers
    /// as it stands (paid orders are not charged twice).
    async fn pay_here(&self, request: PayOrder) -> Result<Order, OrderError> {
        let PayOrder {
            by,
            order,
            token,
            key: idempotency_key,
        } = request;
        let order = &order;
        let _permit = self.admit()?;
        let Some(key) = idempotency_key else {
            return self.call(order, OrderCommand::Pay { token, by }).await;
        };
        // Someone else's order (or none) is not found before the key is recorded: the key is
        // not used up by a request that named the wrong order. Who may see an order never
        // changes once it is placed, so the answer holds for the payment below.
        if !self.call(order, OrderCommand::Get).await?.visible_to(&by) {
            return Err(OrderError::NotFound);
        }
        let guard_key = keys::idempotency(&by.user, "pay", &key);
        let mut record = KeyRecord {
            fingerprint: super::fingerprint(&format!("{order}:{token}")),
            order: order.clone(),
            outcome: None,
        };
        match self
            .store
            .record_if_absent(&guard_key, &record, WriteBatch::new())
            .await?
        {
            Ok(()) => {}
            Err(first) if !first.same_request(&record.fingerprint) => {
                return Err(OrderError::KeyReused);
            }
            Err(first) => {
                if let Some(Err(e)) = first.outcome {
                    return Err(e);
                }
            }
        }
        let result = self.call(order, OrderCommand::Pay { token, by }).await;
        let settled = matches!(
            result,
            Ok(_) | Err(OrderError::PaymentDeclined(_) | OrderError::NotPayable(_))
        );
        if settled {
            record.outcome = Some(result.as_ref().map(|_| ()).map_err(Clone::clone));
            let mut batch = WriteBatch::new();
            batch.put(&guard_key, &record)?;
            self.store.record(batch)?;
        }
        result
    }

    /// Sends a command to an order's actor.
    pub async fn call(&self, id: &OrderId, cmd: OrderCommand) -> Result<Order, OrderError> {
        match self.directory.call(id, cmd).await {
            Ok(result) => result,
            Err(CallError::NotFound) => Err(OrderError::NotFound),
            Err(e) => Err(OrderError::Unavailable(e.to_string())),
        }
    }

    /// A user's orders, newest first (failed attempts left out).
    pub async fn list(&self, user: &UserId) -> Result<Vec<Order>, OrderError> {
        self.router.call(OrdersOf(user.clone()), self).await
    }

    /// Every order of every user on every node, newest first (for admins), at most `limit`.
    pub async fn list_all(&self, limit: usize) -> Result<Vec<Order>, OrderError> {
        let shares = self.router.gather(AllOrders { limit }, self).await?;
        let shares = shares.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut orders = self.router.join(shares, |o: &Order| o.id.tag())?;
        orders.sort_by_key(|o| std::cmp::Reverse(o.created_at));
        orders.truncate(limit);
        Ok(orders)
    }

    /// Orders with an unfinished saga step, seats still to be released or a live hold, with
    /// their hold deadline: at start-up held orders' deadlines are registered, and the others
    /// activated so interrupted holds are released and paid orders confirmed.
    pub fn unsettled(&self) -> Result<Vec<(OrderId, OrderStatus, DateTime<Utc>)>, StoreError> {
        let unreleased = self
            .store
            .scan::<()>(keys::RELEASES)
            .map(|r| r.map(|(key, ())| key))
            .collect::<Result<std::collections::HashSet<String>, _>>()?;
        self.store
            .scan::<Order>(keys::ORDERS)
            .filter_map(|r| match r {
                Ok((_, o))
                    if matches!(
                        o.status,
                        OrderStatus::Pending
                            | OrderStatus::Held
                            | OrderStatus::Paying
                            | OrderStatus::Refunding
                    ) || unreleased.contains(o.id.as_str()) =>
                {
                    Some(Ok((o.id, o.status, o.expires_at)))
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect()
    }

    /// A ticket as last written (on its owner node).
    pub async fn ticket(&self, id: &TicketId) -> Result<Option<TicketRecord>, OrderError> {
        self.router.call(GetTicket(id.clone()), self).await
    }

    /// A user's tickets (on the user's node).
    pub async fn tickets_of(&self, user: &UserId) -> Result<Vec<TicketRecord>, OrderError> {
        self.router.call(TicketsOf(user.clone()), self).await
    }

    /// A user's notifications, oldest first (on the user's node).
    pub async fn notifications_of(&self, user: &UserId) -> Result<Vec<Notification>, OrderError> {
        self.router.call(NotificationsOf(user.clone()), self).await
    }
}

/// Place an order: its segments held, or none (and an error).
///
/// The order's own actor writes it (see [`OrderStart::New`]). With an Idempotency-Key, the
/// first request wins atomically; a retry with the same request gets that order's outcome,
/// with a different request [`OrderError::KeyReused`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// The customer (the order lives on the customer's node).
    pub user: UserId,
    /// Flights and the seats asked on each.
    pub segments: Vec<(FlightId, SeatRequest)>,
    /// Travellers.
    pub passengers: Vec<Passenger>,
    /// The request's [`fingerprint`](super::fingerprint) (for Idempotency-Key reuse checks).
    pub fingerprint: String,
    /// The Idempotency-Key.
    pub key: Option<String>,
}
operation!(PlaceOrder => Result<Placed, OrderError>, by orders: Orders, tag |r| r.user.tag(), |r| orders.place_here(r).await);

/// Pay an order. With an Idempotency-Key, a retry gets the first final outcome (approved,
/// declined, not payable) instead of paying again; the same key with another order or token
/// is [`OrderError::KeyReused`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayOrder {
    /// Who pays (the order's customer, or an admin).
    pub by: Viewer,
    /// The order.
    pub order: OrderId,
    /// The card token.
    pub token: String,
    /// The Idempotency-Key.
    pub key: Option<String>,
}
operation!(PayOrder => Result<Order, OrderError>, by orders: Orders, tag |r| r.by.user.tag(), |r| orders.pay_here(r).await);

/// A customer's records of one kind (orders or tickets): those under the customer's placement
/// tag (`tagged`, kept if `mine`: the tags of two customers could collide), and those the index
/// of earlier builds lists (`indexed`: its prefix, a record's id, and a record's key by id),
/// each once.
fn customers_own<T, Id>(
    store: &Store,
    tagged: &str,
    mine: impl Fn(&T) -> bool,
    indexed: (&str, impl Fn(&T) -> Id, impl Fn(&Id) -> String),
) -> Result<Vec<T>, OrderError>
where
    T: serde::de::DeserializeOwned,
    Id: serde::de::DeserializeOwned + Eq + std::hash::Hash,
{
    let mut out = Vec::new();
    for entry in store.scan::<T>(tagged) {
        let (_, record) = entry?;
        if mine(&record) {
            out.push(record);
        }
    }
    let (index, id_of, key_of) = indexed;
    let found: HashSet<Id> = out.iter().map(&id_of).collect();
    for entry in store.scan::<Id>(index) {
        let (_, id) = entry?;
        if !found.contains(&id) {
            out.extend(store.get::<T>(&key_of(&id))?);
        }
    }
    Ok(out)
}

/// A user's orders, newest first (failed and unfinished attempts left out).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrdersOf(pub UserId);
operation!(OrdersOf => Result<Vec<Order>, OrderError>, by orders: Orders, tag |r| r.0.tag(), |r| {
    let user = &r.0;
    let mut list = customers_own(
        &orders.store,
        &keys::orders_tagged(user.tag()),
        |o: &Order| o.user == *user,
        (&keys::orders_of(user), |o: &Order| o.id.clone(), keys::order),
    )?;
    list.retain(|o| !matches!(o.status, OrderStatus::Failed | OrderStatus::Pending));
    list.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    Ok(list)
});

/// The newest orders of the partitions a node serves, at most `limit` (each node's share of an
/// admin's list).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllOrders {
    /// At most this many.
    pub limit: usize,
}
operation!(AllOrders => Result<Share<Order>, OrderError>, by orders: Orders, tag |_r| "", |r| {
    let stored = || {
        orders
            .store
            .scan::<Order>(keys::ORDERS)
            .map(|r| r.map(|(_, o)| o))
            .filter(|r| {
                r.as_ref().map_or(true, |o| {
                    !matches!(o.status, OrderStatus::Failed | OrderStatus::Pending)
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    // Replicas of partitions other nodes lead are theirs to list.
    let mut share = orders.router.share(stored, |o: &Order| o.id.tag())?;
    share.items.sort_by_key(|o| std::cmp::Reverse(o.created_at));
    share.items.truncate(r.limit);
    Ok(share)
});

/// One ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetTicket(pub TicketId);
operation!(GetTicket => Result<Option<TicketRecord>, OrderError>, by orders: Orders, tag |r| r.0.tag(), |r| {
    Ok(orders.store.get(&keys::ticket(&r.0))?)
});

/// A user's tickets, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketsOf(pub UserId);
operation!(TicketsOf => Result<Vec<TicketRecord>, OrderError>, by orders: Orders, tag |r| r.0.tag(), |r| {
    let user = &r.0;
    // A ticket carries its order's tag, which is its customer's (but for orders of earlier builds).
    let mut out = customers_own(
        &orders.store,
        &keys::tickets_tagged(user.tag()),
        |t: &TicketRecord| t.user == *user,
        (&keys::tickets_of(user), |t: &TicketRecord| t.id.clone(), keys::ticket),
    )?;
    // Newest first; one order's tickets (issued together) in the order of their ids.
    out.sort_by(|a, b| b.issued_at.cmp(&a.issued_at).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
});

/// A user's notifications, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationsOf(pub UserId);
operation!(NotificationsOf => Result<Vec<Notification>, OrderError>, by orders: Orders, tag |r| r.0.tag(), |r| {
    notification::list(&orders.store, &r.0).map_err(|e| OrderError::Storage(e.to_string()))
});
