//! Spreading the partitions' leaders over the members. A group keeps the leader it elected
//! until that leader fails, so without this the founder of a cluster (which forms every group
//! alone, then adds the others) would lead every partition for good and serve all the traffic
//! while the others only replicate. Each partition has a preferred leader among its replicas
//! ([`preferred_leaders`]: each member leads its share of the partitions) and a leader
//! that is not the preferred one hands the group over once the preferred replica is a caught-up
//! voter:
//!
//! 1. it takes no new requests for the partition (they get 503 + Retry-After) and stops the
//!    partition's entity actors once they have finished the message in hand (at most
//!    [`DRAIN`]: a saga step is not cut off between its flight's hold and its own record;
//!    requests queued behind it fail and are retried);
//! 2. it seals the partition (writes are refused at the store's fence) and stops its
//!    heartbeats for that group;
//! 3. once the followers' leader lease has lapsed (they refuse to vote while it runs), it asks
//!    the preferred replica to stand for election ([`Message::TakeLead`]), which wins it with
//!    its log as complete as any (no writes were accepted meanwhile);
//! 4. it turns its heartbeats back on, whatever happened: if the handover failed, the group
//!    goes on under whichever replica wins, and the next round tries again; if this node
//!    still leads, its entities are activated again (see `leadership`).
//!
//! The engine decides who leads (terms fence the old leader); this only chooses when to ask.
//! A partition answers 503 for about one election timeout while it moves, so a leader hands
//! over only after leading for [`STEADY`], and at most [`AT_ONCE`] groups at a time.

use super::super::leadership::{stop_partition_actors, within};
use super::network::{Answer, Message};
use super::{
    Member, PartitionId, Replication, ServerState, caught_up, locked, node_id, replicas_of,
};
use std::time::{Duration, Instant};

/// How long a node leads a group before it hands it to the preferred replica.
const STEADY: Duration = Duration::from_secs(3);
/// How many groups one leader hands over at the same time.
const AT_ONCE: usize = 8;
/// How long a handover waits for the partition's entity actors to finish what they are doing.
const DRAIN: Duration = Duration::from_secs(2);

/// How far a handover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handover {
    /// No new requests; the partition's actors finish what they are doing.
    Draining,
    /// No writes either.
    Sealed,
}

/// The replica that should lead each of `partitions` partitions among `members`: one of its
/// replicas ([`replicas_of`]), the one that so far leads the fewest of the partitions before
/// it (ties in turn by partition number), so every member leads its share even where the
/// replica sets are uneven. A pure function of its arguments: every node computes the same.
fn preferred_leaders(partitions: u16, members: &[Member], replicas: usize) -> Vec<Option<Member>> {
    let mut led = std::collections::HashMap::<&str, usize>::new();
    (0..partitions)
        .map(|partition| {
            let mut wanted = replicas_of(partition, members, replicas);
            wanted.sort_by(|a, b| a.name.cmp(&b.name));
            let count = wanted.len();
            let start = usize::from(partition) % count.max(1);
            let chosen = (0..count)
                .map(|turn| (start + turn) % count)
                .min_by_key(|&at| led.get(wanted[at].name.as_str()).copied().unwrap_or(0))?;
            let chosen = wanted.swap_remove(chosen);
            if let Some(member) = members.iter().find(|m| m.name == chosen.name) {
                *led.entry(member.name.as_str()).or_default() += 1;
            }
            Some(chosen)
        })
        .collect()
}

impl Replication {
    /// The member of the view's `members` (name → address) that should lead each partition.
    pub fn preferred_leaders(
        &self,
        members: &std::collections::BTreeMap<String, String>,
    ) -> Vec<Option<String>> {
        let members: Vec<Member> = members
            .iter()
            .map(|(name, addr)| Member {
                name: name.clone(),
                addr: addr.clone(),
            })
            .collect();
        preferred_leaders(self.partition_count(), &members, self.inner.replicas)
            .into_iter()
            .map(|m| m.map(|m| m.name))
            .collect()
    }

    /// Hands the partitions this node leads that are due to their preferred leaders among
    /// `members` (those `up` says are reachable); returns at once, the handovers run on their
    /// own.
    pub fn balance(&self, members: &[Member], up: impl Fn(&str) -> bool) {
        let due = self.due(members, &up);
        let mut moving = self.moving();
        let room = AT_ONCE.saturating_sub(moving.len());
        let fresh: Vec<_> = due
            .into_iter()
            .filter(|(partition, _)| !moving.contains_key(partition))
            .take(room)
            .collect();
        for (partition, to) in fresh {
            moving.insert(partition, Handover::Draining);
            let this = self.clone();
            tokio::spawn(async move {
                let kept = this.hand_over(partition, &to).await;
                this.moving().remove(&partition);
                if let Some(term) = kept {
                    // Not again before another steady spell (a preferred replica that keeps
                    // losing its election would otherwise cost a 503 spell every second).
                    this.leading_since()
                        .insert(partition, (term, Instant::now()));
                    if let Some(resumed) = this.inner.resumed.get(usize::from(partition)) {
                        resumed.notify_one();
                    }
                }
            });
        }
    }

    /// Whether this node is handing `partition` over (it takes no new requests for it).
    pub(super) fn handing_over(&self, partition: PartitionId) -> bool {
        self.moving().contains_key(&partition)
    }

    /// Whether this node has sealed `partition` to hand it over (it writes nothing to it).
    pub(super) fn sealed(&self, partition: PartitionId) -> bool {
        self.moving().get(&partition) == Some(&Handover::Sealed)
    }

    fn leading_since(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<PartitionId, (u64, Instant)>> {
        locked(&self.inner.leading_since)
    }

    fn moving(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<PartitionId, Handover>> {
        locked(&self.inner.moving)
    }

    /// The partitions this node has led steadily whose preferred leader is another member, up,
    /// a voter and caught up with the leader's log.
    fn due(&self, members: &[Member], up: &impl Fn(&str) -> bool) -> Vec<(PartitionId, Member)> {
        let now = Instant::now();
        let mut since = self.leading_since();
        let preferred = preferred_leaders(self.partition_count(), members, self.inner.replicas);
        let mut found = Vec::new();
        for (partition, raft) in self.partitions() {
            let wanted = replicas_of(partition, members, self.inner.replicas);
            let (term, leading, settled) = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                let membership = metrics.membership_config.membership();
                let voters: Vec<u64> = membership.voter_ids().collect();
                let settled = voters.len() == wanted.len()
                    && wanted.iter().all(|m| voters.contains(&node_id(&m.name)))
                    && membership.learner_ids().next().is_none();
                (
                    metrics.current_term,
                    metrics.state == ServerState::Leader,
                    settled,
                )
            };
            if !leading {
                since.remove(&partition);
                continue;
            }
            let (since_term, from) = *since.entry(partition).or_insert((term, now));
            if since_term != term {
                since.insert(partition, (term, now));
                continue;
            }
            if now.duration_since(from) < STEADY {
                continue;
            }
            let Some(Some(preferred)) = preferred.get(usize::from(partition)) else {
                continue;
            };
            // (The metrics are not borrowed any more: `caught_up` borrows them again.)
            if preferred.name != self.inner.me.name
                && settled
                && up(&preferred.name)
                && caught_up(raft, node_id(&preferred.name))
            {
                found.push((partition, preferred.clone()));
            }
        }
        found
    }

    /// Hands `partition` to `to` (see the module's documentation); the term this node still
    /// leads it in afterwards, if it still does in the term it started in.
    async fn hand_over(&self, partition: PartitionId, to: &Member) -> Option<u64> {
        let Ok(raft) = self.group(partition) else {
            return None;
        };
        let term = raft.metrics().borrow().current_term;
        let still_leading = || {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            metrics.state == ServerState::Leader && metrics.current_term == term
        };
        tracing::info!(partition, to = %to.name, "handing the partition's leadership over");
        self.drain(partition).await;
        if !still_leading() {
            // The group moved on by itself meanwhile: nothing to hand over.
            return None;
        }
        self.moving().insert(partition, Handover::Sealed);
        raft.runtime_config().heartbeat(false);
        // The followers' lease (the engine's is the longest election timeout) runs from the
        // last message of this leader; writes already on their way may still extend it.
        let lease = self.inner.timing.election.1 + 2 * self.inner.timing.heartbeat;
        tokio::time::sleep(lease).await;
        if still_leading() {
            self.ask_to_stand(partition, to).await;
        }
        // Until a leader of a newer term is heard from, or the group would elect one anyway.
        let deadline = tokio::time::Instant::now() + 2 * self.inner.timing.election.1;
        let mut changes = raft.metrics();
        while changes.borrow().state == ServerState::Leader {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        raft.runtime_config().heartbeat(true);
        let leader = raft.metrics().borrow().current_leader;
        metrics::counter!("contrail_partition_handovers_total",
            "result" => if leader == Some(node_id(&to.name)) { "moved" } else { "not_moved" })
        .increment(1);
        still_leading().then_some(term)
    }

    /// Asks `to` to stand for election in `partition`'s group (logged if it does not).
    async fn ask_to_stand(&self, partition: PartitionId, to: &Member) {
        let asked = match postcard::to_allocvec(&Message::TakeLead) {
            Ok(message) => self
                .inner
                .transport
                .call(to, partition, message, self.inner.timing.election.1)
                .await
                .map_err(|e| format!("{e:?}"))
                .and_then(|reply| match postcard::from_bytes::<Answer>(&reply) {
                    Ok(Answer::Standing) => Ok(()),
                    Ok(Answer::Refused(why)) => Err(why),
                    Ok(_) => Err("an answer to another message".into()),
                    Err(e) => Err(e.to_string()),
                }),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = asked {
            tracing::info!(partition, to = %to.name, %why, "handover not taken; the group elects a leader as usual");
        }
    }

    /// Stops `partition`'s entity actors on this node and waits (at most [`DRAIN`]) until they
    /// have finished the message in hand (messages queued behind it fail, and their callers
    /// retry); no new request reaches them meanwhile, but a recovery or a timer may start one
    /// again, so each look stops what runs.
    async fn drain(&self, partition: PartitionId) {
        let partitions = self.partition_count();
        if stop_partition_actors(partition, partitions) == 0 {
            return;
        }
        if !within(DRAIN, || stop_partition_actors(partition, partitions) == 0).await {
            tracing::warn!(
                partition,
                "entities still busy; sealing the partition anyway"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<Member> {
        names
            .iter()
            .map(|name| Member {
                name: (*name).to_owned(),
                addr: format!("{name}:1"),
            })
            .collect()
    }

    #[test]
    fn every_member_leads_its_share_of_the_partitions() {
        let all = ["node-c", "node-a", "node-e", "node-b", "node-d"];
        for count in 1..=all.len() {
            let members = members(&all[..count]);
            for partitions in [8u16, 16, 64] {
                let preferred = preferred_leaders(partitions, &members, 3);
                let mut led = std::collections::BTreeMap::<String, usize>::new();
                for (partition, leader) in (0..partitions).zip(&preferred) {
                    let Some(leader) = leader else {
                        panic!("no preferred leader of {partition}");
                    };
                    assert!(replicas_of(partition, &members, 3).contains(leader));
                    *led.entry(leader.name.clone()).or_default() += 1;
                }
                let fair = usize::from(partitions) / count;
                assert!(
                    led.len() == count && led.values().all(|&n| n == fair || n == fair + 1),
                    "{count} members, {partitions} partitions: {led:?}"
                );
            }
        }
        assert_eq!(preferred_leaders(2, &[], 3), vec![None, None]);
    }
}
