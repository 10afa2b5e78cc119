//! A flight's seat map and the rules for holding, confirming and releasing seats.
//!
//! Every operation is all-or-nothing: on error the map is unchanged. Operations return the seats
//! they changed, so the caller can persist exactly those.

use super::aircraft::{Cabin, Layout, SeatName};
use super::ids::{OrderId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// The state of one seat.
///
/// Held and sold seats are boxed: most seats of most active flights are free, and a free seat
/// then takes 16 bytes instead of 64 (two id strings and a time inline). The stored encoding is
/// the same as with inline fields (postcard writes a struct as its fields in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatStatus {
    /// Free to hold.
    Available,
    /// Held for an order until its deadline; after that anyone may take it.
    Held(Box<Hold>),
    /// Paid for by an order.
    Sold(Box<Sale>),
}

/// A seat held for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The order holding it.
    pub order: OrderId,
    /// The customer who placed the order (for the per-user hold cap).
    pub user: UserId,
    /// When the hold lapses.
    pub expires_at: DateTime<Utc>,
}

/// A seat sold to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    /// The order that bought it.
    pub order: OrderId,
    /// The customer who placed the order.
    pub user: UserId,
}

impl SeatStatus {
    /// The name used in the API: `available`, `held` or `sold`.
    pub fn label(&self) -> &'static str {
        match self {
            SeatStatus::Available => "available",
            SeatStatus::Held(_) => "held",
            SeatStatus::Sold(_) => "sold",
        }
    }

    fn order(&self) -> Option<&OrderId> {
        match self {
            SeatStatus::Available => None,
            SeatStatus::Held(h) => Some(&h.order),
            SeatStatus::Sold(s) => Some(&s.order),
        }
    }
}

/// What the seat map's scans need of a seat's state, kept inline beside it so that a scan
/// decides almost every seat without following its box (and the ids' heap strings behind it):
/// with a flight half held, those pointer chases and id comparisons were a seventh of a busy
/// node's CPU. Each field only ever rules a seat *out* on its own; a match is confirmed on the
/// boxed state, so the answers are exactly those of comparing the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Hint {
    /// [`fingerprint`] of the holding or owning order (free seats: 0).
    order: u32,
    /// [`fingerprint`] of its customer.
    user: u32,
    /// A hold's deadline in whole seconds since the epoch, rounded down (see [`secs`]).
    until: u32,
}

impl Hint {
    fn of(status: &SeatStatus) -> Self {
        match status {
            SeatStatus::Available => Self::default(),
            SeatStatus::Held(h) => Self::held(&h.order, &h.user, h.expires_at),
            SeatStatus::Sold(s) => Self::sold(&s.order, &s.user),
        }
    }

    fn held(order: &OrderId, user: &UserId, expires_at: DateTime<Utc>) -> Self {
        Self {
            until: secs(expires_at),
            ..Self::sold(order, user)
        }
    }

    fn sold(order: &OrderId, user: &UserId) -> Self {
        Self {
            order: fingerprint(order.as_str()),
            user: fingerprint(user.as_str()),
            until: 0,
        }
    }
}

/// 32 bits of an id's hash: equal ids have equal fingerprints, so unequal fingerprints prove
/// unequal ids.
fn fingerprint(id: &str) -> u32 {
    // Truncation is the point: the low half of a 64-bit hash.
    xxhash_rust::xxh3::xxh3_64(id.as_bytes()) as u32
}

/// `at` in whole seconds since the epoch, rounded down and clamped to `u32`. Monotone, and
/// `secs(a) > secs(b)` implies `a > b`: a hold whose `until` is past `secs(now)` has not
/// lapsed, and only one whose `until` is not may have.
fn secs(at: DateTime<Utc>) -> u32 {
    u32::try_from(at.timestamp().max(0)).unwrap_or(u32::MAX)
}

/// An id with its fingerprint, as a scan compares it.
struct Probe<'a, T> {
    id: &'a T,
    print: u32,
}

impl<'a> Probe<'a, OrderId> {
    fn order(id: &'a OrderId) -> Self {
        Self {
            id,
            print: fingerprint(id.as_str()),
        }
    }
}

impl<'a> Probe<'a, UserId> {
    fn user(id: &'a UserId) -> Self {
        Self {
            id,
            print: fingerprint(id.as_str()),
        }
    }
}

/// "Now" as the scans compare it: the instant, and its whole seconds.
#[derive(Clone, Copy)]
struct Now {
    at: DateTime<Utc>,
    secs: u32,
}

impl Now {
    fn new(at: DateTime<Utc>) -> Self {
        Self { at, secs: secs(at) }
    }
}

impl Seat {
    fn new(name: SeatName, cabin: Cabin, status: SeatStatus) -> Self {
        Self {
            name,
            cabin,
            hint: Hint::of(&status),
            status,
        }
    }

    fn set(&mut self, status: SeatStatus, hint: Hint) {
        debug_assert_eq!(hint, Hint::of(&status));
        self.status = status;
        self.hint = hint;
    }

    fn free(&mut self) {
        self.set(SeatStatus::Available, Hint::default());
    }

    /// Whether `order` holds or owns this seat.
    fn belongs_to(&self, order: &Probe<'_, OrderId>) -> bool {
        self.hint.order == order.print && self.status.order() == Some(order.id)
    }

    /// Whether `order` holds this seat (lapsed or not).
    fn held_by(&self, order: &Probe<'_, OrderId>) -> bool {
        matches!(self.status, SeatStatus::Held(_)) && self.belongs_to(order)
    }

    /// Whether this seat's hold lapsed at or before `now`.
    fn lapsed(&self, now: Now) -> bool {
        self.hint.until <= now.secs
            && matches!(&self.status, SeatStatus::Held(h) if h.expires_at <= now.at)
    }

    /// Whether this seat is held (unlapsed) or owned by `user`.
    fn is_live_for(&self, user: &Probe<'_, UserId>, now: Now) -> bool {
        if self.hint.user != user.print {
            return false;
        }
        match &self.status {
            SeatStatus::Available => false,
            SeatStatus::Held(h) => {
                h.user == *user.id && (self.hint.until > now.secs || h.expires_at > now.at)
            }
            SeatStatus::Sold(s) => s.user == *user.id,
        }
    }

    /// Whether `order` may take this seat at `now`: it is free, its hold lapsed, or it is already
    /// held by the same order (a retried hold).
    fn can_hold(&self, order: &Probe<'_, OrderId>, now: Now) -> bool {
        match &self.status {
            SeatStatus::Available => true,
            SeatStatus::Held(_) => self.belongs_to(order) || self.lapsed(now),
            SeatStatus::Sold(_) => false,
        }
    }
}

/// Who asks for seats: the order, and the customer behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The order that will hold the seats.
    pub order: OrderId,
    /// Its customer.
    pub user: UserId,
}

/// What an order asks a flight for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatRequest {
    /// These exact seats.
    Seats(Vec<SeatName>),
    /// Any `count` seats in `cabin`.
    Cabin {
        /// The class wanted.
        cabin: Cabin,
        /// How many seats.
        count: u16,
    },
}

/// Why a hold was refused. Nothing was held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HoldError {
    /// The request named no seat.
    #[error("no seats requested")]
    Empty,
    /// The seat does not exist on this aircraft.
    #[error("seat {0} does not exist on this flight")]
    UnknownSeat(SeatName),
    /// The same seat was named twice.
    #[error("seat {0} is requested twice")]
    DuplicateSeat(SeatName),
    /// Someone else holds or bought the seat.
    #[error("seat {0} is not available")]
    Unavailable(SeatName),
    /// The aircraft has no such cabin.
    #[error("this flight has no {} cabin", .0.as_str())]
    NoSuchCabin(Cabin),
    /// The customer would hold or own more than `cap` seats on this flight.
    #[error("at most {cap} seats per customer on one flight")]
    CapExceeded {
        /// The limit.
        cap: u16,
    },
    /// Too few free seats in the cabin.
    #[error("only {available} {} seats available, {requested} requested", .cabin.as_str())]
    NotEnoughSeats {
        /// Cabin asked for.
        cabin: Cabin,
        /// Seats asked for.
        requested: u16,
        /// Seats free.
        available: usize,
    },
}

/// Why a confirmation was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ConfirmError {
    /// The order does not hold this seat (never did, released, or taken after its hold lapsed).
    #[error("seat {0} is not held by this order")]
    NotHeld(SeatName),
    /// The order's hold on the seat has lapsed.
    #[error("the hold on seat {0} has expired")]
    Expired(SeatName),
}

/// A stored seat record did not fit the layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored seat {0} does not exist in the flight's layout")]
pub struct RestoreError(pub SeatName);

/// Seats in a cabin: how many exist and how many can be held now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CabinAvailability {
    /// Seats in the cabin.
    pub total: u32,
    /// Seats neither held nor sold.
    pub available: u32,
}

/// One seat as the map reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// Row and letter.
    pub name: SeatName,
    /// Its cabin.
    pub cabin: Cabin,
    /// Its state.
    pub status: SeatStatus,
    hint: Hint,
}

/// All seats of one flight, in layout order. (Seats are found by a scan: with at most a few
/// hundred seats it is as fast as a hash index, which would cost more than the seats themselves.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatMap {
    seats: Vec<Seat>,
}

impl SeatMap {
    /// Every seat of `layout`, available.
    pub fn new(layout: &Layout) -> Self {
        let seats: Vec<Seat> = layout
            .cabins()
            .iter()
            .flat_map(|c| {
                c.seats()
                    .map(|name| Seat::new(name, c.cabin, SeatStatus::Available))
            })
            .collect();
        Self { seats }
    }

    /// The map of `layout` with the stored non-available seats applied.
    pub fn restore(
        layout: &Layout,
        stored: impl IntoIterator<Item = (SeatName, SeatStatus)>,
    ) -> Result<Self, RestoreError> {
        let mut map = Self::new(layout);
        for (name, status) in stored {
            let i = map.position(name).ok_or(RestoreError(name))?;
            let hint = Hint::of(&status);
            map.seats[i].set(status, hint);
        }
        Ok(map)
    }

    fn position(&self, name: SeatName) -> Option<usize> {
        self.seats.iter().position(|s| s.name == name)
    }

    /// All seats in layout order.
    pub fn seats(&self) -> &[Seat] {
        &self.seats
    }

    /// One seat's state.
    pub fn status(&self, name: SeatName) -> Option<&SeatStatus> {
        self.position(name).map(|i| &self.seats[i].status)
    }

    /// Per-cabin totals; a held seat counts as taken until it is released or swept.
    pub fn availability(&self) -> BTreeMap<Cabin, CabinAvailability> {
        let mut out: BTreeMap<Cabin, CabinAvailability> = BTreeMap::new();
        for seat in &self.seats {
            let entry = out.entry(seat.cabin).or_default();
            entry.total += 1;
            if seat.status == SeatStatus::Available {
                entry.available += 1;
            }
        }
        out
    }

    /// Holds seats for `holder` until `expires_at`: all of them, or none.
    ///
    /// Seats whose hold lapsed before `now` count as free. Re-holding seats the order already
    /// holds succeeds (a retried request) and moves their deadline. With a `cap`, the customer
    /// may not end up holding or owning more than `cap` live seats on this flight.
    pub fn hold(
        &mut self,
        request: &SeatRequest,
        holder: &Holder,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        cap: Option<u16>,
    ) -> Result<Vec<SeatName>, HoldError> {
        let order = Probe::order(&holder.order);
        let user = Probe::user(&holder.user);
        let now = Now::new(now);
        let picked = match request {
            SeatRequest::Seats(names) => self.pick_named(names, &order, now)?,
            SeatRequest::Cabin { cabin, count } => {
                self.pick_in_cabin(*cabin, *count, &order, now)?
            }
        };
        if let Some(cap) = cap {
            // What the customer would have afterwards: every live seat they hold or own
            // (through any order), plus the ones picked now.
            let elsewhere = self
                .seats
                .iter()
                .enumerate()
                .filter(|(i, s)| !picked.contains(i) && s.is_live_for(&user, now))
                .count();
            if elsewhere + picked.len() > usize::from(cap) {
                return Err(HoldError::CapExceeded { cap });
            }
        }
        let hint = Hint {
            order: order.print,
            user: user.print,
            until: secs(expires_at),
        };
        let held = SeatStatus::Held(Box::new(Hold {
            order: holder.order.clone(),
            user: holder.user.clone(),
            expires_at,
        }));
        Ok(picked
            .into_iter()
            .map(|i| {
                self.seats[i].set(held.clone(), hint);
                self.seats[i].name
            })
            .collect())
    }

    fn pick_named(
        &self,
        names: &[SeatName],
        order: &Probe<'_, OrderId>,
        now: Now,
    ) -> Result<Vec<usize>, HoldError> {
        if names.is_empty() {
            return Err(HoldError::Empty);
        }
        let mut seen = HashSet::with_capacity(names.len());
        names
            .iter()
            .map(|&name| {
                let i = self.position(name).ok_or(HoldError::UnknownSeat(name))?;
                if !seen.insert(name) {
                    return Err(HoldError::DuplicateSeat(name));
                }
                if !self.seats[i].can_hold(order, now) {
                    return Err(HoldError::Unavailable(name));
                }
                Ok(i)
            })
            .collect()
    }

    /// Seats for `count` passengers in `cabin`. Seats the order already has there count first,
    /// so a retried request returns the same seats instead of taking more.
    fn pick_in_cabin(
        &self,
        cabin: Cabin,
        count: u16,
        order: &Probe<'_, OrderId>,
        now: Now,
    ) -> Result<Vec<usize>, HoldError> {
        if count == 0 {
            return Err(HoldError::Empty);
        }
        if !self.seats.iter().any(|s| s.cabin == cabin) {
            return Err(HoldError::NoSuchCabin(cabin));
        }
        let wanted = usize::from(count);
        let in_cabin = || {
            self.seats
                .iter()
                .enumerate()
                .filter(|(_, s)| s.cabin == cabin)
        };
        let mut picked: Vec<usize> = in_cabin()
            .filter(|(_, s)| s.held_by(order))
            .map(|(i, _)| i)
            .take(wanted)
            .collect();
        let free: Vec<usize> = in_cabin()
            .filter(|(_, s)| !s.belongs_to(order) && s.can_hold(order, now))
            .map(|(i, _)| i)
            .take(wanted - picked.len())
            .collect();
        if picked.len() + free.len() < wanted {
            return Err(HoldError::NotEnoughSeats {
                cabin,
                requested: count,
                available: picked.len() + free.len(),
            });
        }
        picked.extend(free);
        picked.sort_unstable();
        Ok(picked)
    }

    /// Marks seats held by `order` as sold: all of them, or none.
    pub fn confirm(
        &mut self,
        order: &OrderId,
        names: &[SeatName],
        now: DateTime<Utc>,
    ) -> Result<Vec<SeatName>, ConfirmError> {
        let mut picked = Vec::with_capacity(names.len());
        for &name in names {
            let i = self.position(name).ok_or(ConfirmError::NotHeld(name))?;
            match &self.seats[i].status {
                SeatStatus::Held(h) if h.order == *order => {
                    if h.expires_at <= now {
                        return Err(ConfirmError::Expired(name));
                    }
                    picked.push((i, h.user.clone()));
                }
                SeatStatus::Sold(s) if s.order == *order => {}
                _ => return Err(ConfirmError::NotHeld(name)),
            }
        }
        for (i, user) in &picked {
            let hint = Hint::sold(order, user);
            let sold = SeatStatus::Sold(Box::new(Sale {
                order: order.clone(),
                user: user.clone(),
            }));
            self.seats[*i].set(sold, hint);
        }
        Ok(picked
            .into_iter()
            .map(|(i, _)| self.seats[i].name)
            .collect())
    }

    /// Frees every seat `order` holds or bought; seats of other orders are untouched.
    pub fn release(&mut self, order: &OrderId) -> Vec<SeatName> {
        let order = Probe::order(order);
        let mut freed = Vec::new();
        for seat in &mut self.seats {
            if seat.belongs_to(&order) {
                seat.free();
                freed.push(seat.name);
            }
        }
        freed
    }

    /// Every order that holds or owns a seat, each once, in seat order.
    pub fn orders(&self) -> Vec<OrderId> {
        let mut seen = HashSet::new();
        self.seats
            .iter()
            .filter_map(|s| s.status.order())
            .filter(|o| seen.insert((*o).clone()))
            .cloned()
            .collect()
    }

    /// When the first hold lapses, if any seat is held.
    pub fn earliest_hold(&self) -> Option<DateTime<Utc>> {
        earliest(self.seats.iter())
    }

    /// Cabins where a new order can hold no seat, each with the moment that may change by
    /// itself: the earliest deadline of a hold in it (`None` when every seat is sold).
    /// Releases and cancellations change it too, but only through this map.
    pub fn full_cabins(&self) -> Vec<(Cabin, Option<DateTime<Utc>>)> {
        let mut cabins: Vec<(Cabin, bool)> = Vec::new();
        for seat in &self.seats {
            let free = seat.status == SeatStatus::Available;
            match cabins.iter_mut().find(|(c, _)| *c == seat.cabin) {
                Some((_, full)) => *full &= !free,
                None => cabins.push((seat.cabin, !free)),
            }
        }
        cabins
            .into_iter()
            .filter(|(_, full)| *full)
            .map(|(cabin, _)| {
                (
                    cabin,
                    earliest(self.seats.iter().filter(|s| s.cabin == cabin)),
                )
            })
            .collect()
    }

    /// Whether any seat is held (lapsed or not): such a flight must stay active to release it.
    pub fn has_holds(&self) -> bool {
        self.seats
            .iter()
            .any(|s| matches!(s.status, SeatStatus::Held(_)))
    }

    /// Frees every hold that lapsed at or before `now`.
    pub fn sweep_expired(&mut self, now: DateTime<Utc>) -> Vec<SeatName> {
        let now = Now::new(now);
        let mut freed = Vec::new();
        for seat in &mut self.seats {
            if seat.lapsed(now) {
                seat.free();
                freed.push(seat.name);
            }
        }
        freed
    }
}

/// The earliest deadline of a hold among `seats`: found by their inline deadlines (in whole
/// seconds), then read exactly from the few seats whose second it is.
fn earliest<'a>(seats: impl Iterator<Item = &'a Seat> + Clone) -> Option<DateTime<Utc>> {
    let held = seats.filter(|s| matches!(s.status, SeatStatus::Held(_)));
    let second = held.clone().map(|s| s.hint.until).min()?;
    held.filter(|s| s.hint.until == second)
        .filter_map(|s| match &s.status {
            SeatStatus::Held(h) => Some(h.expires_at),
            _ => None,
        })
        .min()
}

#[cfg(test)]
#[path = "seat_map_tests.rs"]
mod tests;
