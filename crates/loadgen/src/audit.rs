//! The audit after a run: what the API says must be consistent. Pure over what was collected,
//! so a planted inconsistency can be tested without a server.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One order as the API returned it.
#[derive(Debug, Clone)]
pub struct AuditOrder {
    /// Order id.
    pub id: String,
    /// `held`, `confirmed`, ...
    pub status: String,
    /// (flight id, seat) pairs.
    pub seats: Vec<(String, String)>,
    /// (flight id, seat) of tickets with status `issued`.
    pub issued: Vec<(String, String)>,
}

/// What was collected after the run.
#[derive(Debug, Clone, Default)]
pub struct AuditInput {
    /// Every order the run created.
    pub orders: Vec<AuditOrder>,
    /// Per flight: seat name to status (`available`, `held`, `sold`).
    pub seat_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Answers with status >= 500 and requests without an answer during the run.
    pub failures: u64,
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// Evidence when it did not.
    pub detail: String,
}

/// The audit's verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// Every check.
    pub checks: Vec<Check>,
}

impl Audit {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

fn check(name: &'static str, problems: Vec<String>) -> Check {
    Check {
        name,
        passed: problems.is_empty(),
        detail: problems.into_iter().take(5).collect::<Vec<_>>().join("; "),
    }
}

/// Runs every check.
pub fn audit(input: &AuditInput) -> Audit {
    let live: Vec<&AuditOrder> = input
        .orders
        .iter()
        .filter(|o| o.status == "held" || o.status == "confirmed")
        .collect();

    let mut owner: BTreeMap<&(String, String), &str> = BTreeMap::new();
    let mut doubled = Vec::new();
    for o in &live {
        for seat in &o.seats {
            if let Some(first) = owner.insert(seat, &o.id) {
                doubled.push(format!("{seat:?} in {first} and {}", o.id));
            }
        }
    }

    let mut sold_vs_tickets = Vec::new();
    let mut phantom = Vec::new();
    for (flight, seats) in &input.seat_maps {
        let sold: BTreeSet<&String> = seats
            .iter()
            .filter(|(_, s)| *s == "sold")
            .map(|(n, _)| n)
            .collect();
        let tickets: BTreeSet<&String> = live
            .iter()
            .flat_map(|o| o.issued.iter())
            .filter(|(f, _)| f == flight)
            .map(|(_, s)| s)
            .collect();
        if sold != tickets {
            sold_vs_tickets.push(format!(
                "flight {flight}: {} sold, {} tickets issued",
                sold.len(),
                tickets.len()
            ));
        }
        let taken: BTreeSet<&String> = seats
            .iter()
            .filter(|(_, s)| *s != "available")
            .map(|(n, _)| n)
            .collect();
        let claimed: BTreeSet<&String> = live
            .iter()
            .flat_map(|o| o.seats.iter())
            .filter(|(f, _)| f == flight)
            .map(|(_, s)| s)
            .collect();
        if taken != claimed {
            phantom.push(format!(
                "flight {flight}: {} seats taken, {} claimed by live orders",
                taken.len(),
                claimed.len()
            ));
        }
    }

    let failures = if input.failures == 0 {
        vec![]
    } else {
        vec![format!(
            "{} 5xx answers or transport errors",
            input.failures
        )]
    };
    Audit {
        checks: vec![
            check("no seat in two orders", doubled),
            check("seats sold = tickets issued", sold_vs_tickets),
            check("every held or sold seat belongs to a live order", phantom),
            check("no 5xx", failures),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(f: &str, s: &str) -> (String, String) {
        (f.to_owned(), s.to_owned())
    }

    fn consistent() -> AuditInput {
        let mut maps = BTreeMap::new();
        maps.insert(
            "f1".to_owned(),
            [("1A", "sold"), ("1B", "held"), ("1C", "available")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        );
        AuditInput {
            orders: vec![
                AuditOrder {
                    id: "o1".into(),
                    status: "confirmed".into(),
                    seats: vec![seat("f1", "1A")],
                    issued: vec![seat("f1", "1A")],
                },
                AuditOrder {
                    id: "o2".into(),
                    status: "held".into(),
                    seats: vec![seat("f1", "1B")],
                    issued: vec![],
                },
                AuditOrder {
                    id: "o3".into(),
                    status: "expired".into(),
                    seats: vec![seat("f1", "1C")],
                    issued: vec![],
                },
            ],
            seat_maps: maps,
            failures: 0,
        }
    }

    #[test]
    fn a_consistent_run_passes() {
        assert!(audit(&consistent()).passed(), "{:?}", audit(&consistent()));
    }

    #[test]
    fn planted_inconsistencies_are_caught() {
        let mut twice = consistent();
        twice.orders[1].seats.push(seat("f1", "1A"));
        assert!(!audit(&twice).checks[0].passed);

        let mut no_ticket = consistent();
        no_ticket.orders[0].issued.clear();
        assert!(!audit(&no_ticket).checks[1].passed);

        let mut phantom = consistent();
        phantom
            .seat_maps
            .get_mut("f1")
            .map(|m| m.insert("1C".into(), "held".into()));
        assert!(!audit(&phantom).checks[2].passed);

        let mut errors = consistent();
        errors.failures = 3;
        assert!(!audit(&errors).checks[3].passed);
    }
}
