//! What the pages keep up to date without a reload: the seat map (server-sent events) and the
//! console's traffic and cluster figures (JSON the console polls).

use super::super::cluster::cluster_view;
use super::super::error::ApiError;
use super::super::flights::{search_page, seat_list};
use super::super::{Ctx, Response, json};
use super::session::Visitor;
use super::{finish, page};
use crate::domain::user::Role;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

/// How often a watched seat map is read from its flight.
const SEAT_POLL: Duration = Duration::from_secs(1);
/// A seat-map stream ends after this long; the browser's EventSource reconnects by itself.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);
/// Open seat-map streams a node serves at most (each a connection and a small task).
const MAX_STREAMS: usize = 10_000;
/// Open seat-map streams one client address may hold at once.
const MAX_STREAMS_PER_ADDRESS: usize = 32;

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let seats = warp::path!("flights" / String / "seats" / "live")
        .and(page(ctx.clone()))
        .then(|id: String, v: Visitor, ctx: Ctx| async move {
            let outcome = seat_stream(id, &v, ctx).await;
            finish(&v, outcome)
        });
    let traffic_now = warp::path!("admin" / "traffic.json")
        .and(page(ctx.clone()))
        .then(|v: Visitor, ctx: Ctx| async move {
            let outcome = if v.may(Role::Admin) {
                Ok(json(StatusCode::OK, &traffic(&ctx)))
            } else {
                Err(ApiError::Forbidden("admins only".into()))
            };
            finish(&v, outcome)
        });
    let cluster_now = warp::path!("admin" / "cluster.json").and(page(ctx)).then(
        |v: Visitor, ctx: Ctx| async move {
            let outcome = if v.may(Role::Admin) {
                Ok(json(StatusCode::OK, &cluster_view(&ctx).await))
            } else {
                Err(ApiError::Forbidden("admins only".into()))
            };
            finish(&v, outcome)
        },
    );
    seats.or(traffic_now).unify().or(cluster_now).unify()
}

/// The seat maps pages are watching: one reader per flight on this node however many pages
/// watch it, so a crowd on an on-sale flight's page costs its actor one read a second, not one
/// per browser.
pub struct LiveSeats {
    readers: Mutex<HashMap<String, watch::Sender<Arc<str>>>>,
    streams: Arc<tokio::sync::Semaphore>,
    per_address: Mutex<HashMap<std::net::IpAddr, usize>>,
}

impl Default for LiveSeats {
    fn default() -> Self {
        Self {
            readers: Mutex::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            per_address: Mutex::default(),
        }
    }
}

/// One open stream, counted against the node's and its address's limits until dropped.
struct StreamSlot {
    ctx: Ctx,
    address: std::net::IpAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.ctx.live.per_address);
        if let Some(n) = counts.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Removes a flight's reader from the map when its task ends, however it ends.
struct ReaderEntry {
    ctx: Ctx,
    id: String,
    sender: watch::Sender<Arc<str>>,
}

impl Drop for ReaderEntry {
    fn drop(&mut self) {
        let mut readers = self.ctx.live.map();
        if readers
            .get(&self.id)
            .is_some_and(|s| s.same_channel(&self.sender))
        {
            readers.remove(&self.id);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LiveSeats {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Arc<str>>>> {
        lock(&self.readers)
    }

    /// A slot for one more stream from `address`, if the limits allow it.
    fn slot(ctx: &Ctx, address: std::net::IpAddr) -> Option<StreamSlot> {
        let permit = ctx.live.streams.clone().try_acquire_owned().ok()?;
        let mut counts = lock(&ctx.live.per_address);
        let n = counts.entry(address).or_default();
        if *n >= MAX_STREAMS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            ctx: ctx.clone(),
            address,
            _permit: permit,
        })
    }

    /// The seats of flight `id` as JSON text, each time they change ("" until first read).
    fn watch(&self, ctx: &Ctx, id: &str) -> watch::Receiver<Arc<str>> {
        let mut map = self.map();
        if let Some(sender) = map.get(id) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(Arc::<str>::from(""));
        map.insert(id.to_owned(), sender.clone());
        tokio::spawn(read_seats(ctx.clone(), id.to_owned(), sender));
        receiver
    }
}

/// Reads flight `id`'s seats every [`SEAT_POLL`] while anyone watches, publishing changes.
async fn read_seats(ctx: Ctx, id: String, sender: watch::Sender<Arc<str>>) {
    let _entry = ReaderEntry {
        ctx: ctx.clone(),
        id: id.clone(),
        sender: sender.clone(),
    };
    loop {
        match seat_list(&ctx, &id).await {
            Ok(list) => {
                let states: BTreeMap<&str, &str> = list
                    .seats
                    .iter()
                    .map(|s| (s.seat.as_str(), s.status.as_str()))
                    .collect();
                let text = serde_json::to_string(&states).unwrap_or_default();
                sender.send_if_modified(|current| {
                    let changed = **current != *text;
                    if changed {
                        *current = Arc::from(text);
                    }
                    changed
                });
            }
            // No such flight: its watchers' streams end (the entry goes with this task).
            Err(ApiError::NotFound) => return,
            // The owner is unreachable for now: say nothing, try again.
            Err(_) => {}
        }
        tokio::time::sleep(SEAT_POLL).await;
        // Under the lock, so that nobody subscribes between the check and the end (the
        // entry's removal, once the lock is released).
        let map = ctx.live.map();
        if sender.receiver_count() == 0 {
            drop(map);
            return;
        }
    }
}

/// Server-sent events: the seat map's states each time they change. Each page's stream ends
/// when the page goes away or after [`STREAM_LIFETIME`] (the browser's EventSource reconnects).
async fn seat_stream(id: String, v: &Visitor, ctx: Ctx) -> Result<Response, ApiError> {
    // A flight that does not exist is a 404, which ends the browser's EventSource for good.
    super::super::flights::flight_view(&ctx, &id).await?;
    let Some(slot) = LiveSeats::slot(&ctx, v.address) else {
        // Also final for EventSource: the page works on, without live updates.
        return Err(ApiError::Unavailable(
            "too many live seat maps are open".into(),
        ));
    };
    let mut seats = ctx.live.watch(&ctx, &id);
    seats.mark_changed();
    let (tx, rx) = tokio::sync::mpsc::channel::<warp::sse::Event>(4);
    tokio::spawn(async move {
        let _slot = slot;
        let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
        loop {
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, seats.changed()) => {
                    if !matches!(changed, Ok(Ok(()))) {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
            let text = seats.borrow_and_update().clone();
            if text.is_empty() {
                continue;
            }
            let event = warp::sse::Event::default().event("seats").data(&*text);
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(event), rx))
    });
    Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response())
}

/// A flight's share of sold and held seats.
#[derive(Serialize)]
pub(super) struct Load {
    id: String,
    flight_number: String,
    route: String,
    seats: u32,
    taken: u32,
    /// Per cent of the seats taken.
    load_factor: u32,
}

/// This node's booking figures since it started, and the fullest of the next flights.
#[derive(Serialize)]
pub(super) struct Traffic {
    bookings: u64,
    failed: BTreeMap<String, u64>,
    refused_full: u64,
    holds_expired: u64,
    orders_expired: u64,
    payments: BTreeMap<String, u64>,
    fullest: Vec<Load>,
}

/// The figures of the metrics this node exports.
pub(super) fn traffic(ctx: &Ctx) -> Traffic {
    let text = ctx.metrics.render();
    let samples = samples(&text);
    let total = |name: &str| -> u64 {
        samples
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|(_, _, v)| *v as u64)
            .sum()
    };
    let by_label = |name: &str, label: &str| -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (n, labels, value) in &samples {
            if *n == name {
                let key = label_value(labels, label).unwrap_or("other").to_owned();
                *out.entry(key).or_default() += *value as u64;
            }
        }
        out
    };
    let mut params = HashMap::new();
    params.insert("sort".to_owned(), "departure".to_owned());
    params.insert("limit".to_owned(), "100".to_owned());
    let mut fullest: Vec<Load> = search_page(ctx, &params)
        .map(|page| page.flights)
        .unwrap_or_default()
        .iter()
        .map(|f| {
            let seats: u32 = f.availability.values().map(|a| a.total).sum();
            let free: u32 = f.availability.values().map(|a| a.available).sum();
            let taken = seats.saturating_sub(free);
            Load {
                id: f.id.clone(),
                flight_number: f.flight_number.clone(),
                route: format!("{} → {}", f.origin, f.destination),
                seats,
                taken,
                load_factor: (u64::from(taken) * 100)
                    .checked_div(u64::from(seats))
                    .map_or(0, |p| u32::try_from(p).unwrap_or(100)),
            }
        })
        .collect();
    fullest.sort_by(|a, b| {
        b.load_factor
            .cmp(&a.load_factor)
            .then(b.taken.cmp(&a.taken))
    });
    fullest.truncate(20);
    Traffic {
        bookings: total("contrail_bookings_succeeded_total"),
        failed: by_label("contrail_bookings_failed_total", "reason"),
        refused_full: total("contrail_bookings_refused_full_total"),
        holds_expired: total("contrail_holds_expired_total"),
        orders_expired: total("contrail_orders_expired_total"),
        payments: by_label("contrail_payments_total", "result"),
        fullest,
    }
}

/// `(name, labels, value)` of each sample in Prometheus text.
fn samples(text: &str) -> Vec<(&str, &str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            Some((name, labels.trim_end_matches('}'), value))
        })
        .collect()
}

/// The value of `label` in `a="x",b="y"`.
fn label_value<'a>(labels: &'a str, label: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == label).then(|| value.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_labels_are_read_from_prometheus_text() {
        let text =
            "# HELP x y\nx_total 3\nfailed_total{reason=\"seats_unavailable\",node=\"a\"} 2\n";
        let s = samples(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], ("x_total", "", 3.0));
        assert_eq!(label_value(s[1].1, "reason"), Some("seats_unavailable"));
        assert_eq!(label_value(s[1].1, "missing"), None);
    }
}
