//! Three replicas with real stores on disk (every sync a real `fdatasync`), connected by an
//! in-process network that can cut a node off, so that failures are exact and repeatable.
//! Every wait is bounded.

use super::*;
use crate::domain::ids::FlightId;
use crate::persistence::keys;
use futures::future::BoxFuture;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use tokio::time::{Instant, sleep};

/// How long any wait for the cluster may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// The nodes that are up, and the ones cut off from every other.
#[derive(Default)]
struct Net {
    up: Mutex<HashMap<String, Replication>>,
    cut: Mutex<BTreeSet<String>>,
}

impl Net {
    fn node(&self, name: &str) -> Option<Replication> {
        self.up.lock().expect("net").get(name).cloned()
    }

    fn severed(&self, a: &str, b: &str) -> bool {
        let cut = self.cut.lock().expect("net");
        cut.contains(a) || cut.contains(b)
    }
}

/// One node's end of the network.
struct Link {
    net: Arc<Net>,
    from: String,
}

impl Transport for Link {
    fn call(
        &self,
        to: &Member,
        partition: PartitionId,
        message: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, Undelivered>> {
        let net = self.net.clone();
        let from = self.from.clone();
        let to = to.name.clone();
        Box::pin(async move {
            if net.severed(&from, &to) {
                return Err(Undelivered::Unreachable(format!(
                    "{from} is cut off from {to}"
                )));
            }
            let node = net
                .node(&to)
                .ok_or_else(|| Undelivered::Unreachable(format!("{to} is down")))?;
            tokio::time::timeout(timeout, node.serve(partition, &message))
                .await
                .map_err(|_| Undelivered::Timeout(format!("{to} did not answer in time")))
        })
    }
}

fn member(name: &str) -> Member {
    Member {
        name: name.to_owned(),
        addr: format!("{name}.test:4000"),
    }
}

fn timing() -> Timing {
    Timing {
        heartbeat: Duration::from_millis(50),
        election: (Duration::from_millis(200), Duration::from_millis(400)),
        propose_timeout: Duration::from_secs(2),
    }
}

/// Starts (or restarts) `name` on its store in `dir` and puts it on the network.
async fn start(net: &Arc<Net>, dir: &Path, name: &str, names: &[&str], partitions: u16) -> Store {
    let store = Store::open(&dir.join(name)).expect("store");
    let link = Arc::new(Link {
        net: net.clone(),
        from: name.to_owned(),
    });
    let node = Replication::start(&store, member(name), (partitions, REPLICAS), link, timing())
        .await
        .expect("start");
    let members: Vec<Member> = names.iter().map(|n| member(n)).collect();
    node.bootstrap(&members).await.expect("bootstrap");
    net.up.lock().expect("net").insert(name.to_owned(), node);
    store
}

/// Stops `name` as a crash would look to the others: it answers nothing from now on.
async fn stop(net: &Net, name: &str) {
    let node = net.up.lock().expect("net").remove(name);
    if let Some(node) = node {
        node.shutdown().await;
    }
}

/// The node leading `partition`, once one does (among the nodes not cut off).
async fn leader(net: &Net, partition: PartitionId) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let leader = {
            let up = net.up.lock().expect("net");
            let cut = net.cut.lock().expect("net");
            up.iter()
                .find(|(name, node)| !cut.contains(*name) && node.leads(partition))
                .map(|(name, _)| name.clone())
        };
        if let Some(name) = leader {
            return name;
        }
        assert!(
            Instant::now() < deadline,
            "no leader for partition {partition}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// A record key whose tag falls in `partition` (of `partitions`).
fn key_in(partition: PartitionId, partitions: u16) -> String {
    loop {
        let id = FlightId::generate();
        if partition_of(id.tag(), partitions) == partition {
            return keys::flight(&id);
        }
    }
}

fn write_of(key: &str) -> Records {
    Records(vec![Batch {
        ops: vec![(key.to_owned(), Some(key.as_bytes().to_vec()))],
        guard: None,
    }])
}

/// Proposes at the partition's leader until one acknowledges (leaders may change meanwhile).
async fn write(net: &Net, partition: PartitionId, key: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let name = leader(net, partition).await;
        let Some(node) = net.node(&name) else {
            continue;
        };
        match node.propose(partition, write_of(key)).await {
            Ok(_) => return,
            Err(e) => assert!(Instant::now() < deadline, "{key} never committed: {e}"),
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `store` holds every key of `keys`.
async fn holds_all(store: &Store, keys: &[String], who: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let missing: Vec<_> = keys
            .iter()
            .filter(|k| !store.contains(k).expect("read"))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} lacks {} acknowledged records, e.g. {}",
            missing.len(),
            missing[0]
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_reach_every_replica_and_survive_the_leaders_crash() {
    let dir = tempfile::tempdir().expect("dir");
    let names = ["a", "b", "c"];
    let partitions = 4;
    let net = Arc::new(Net::default());
    let mut stores = HashMap::new();
    for name in names {
        stores.insert(
            name,
            start(&net, dir.path(), name, &names, partitions).await,
        );
    }

    // Many concurrent writers over every partition.
    let mut acked = Vec::new();
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..80u16 {
        let net = net.clone();
        let partition = i % partitions;
        let key = key_in(partition, partitions);
        writers.spawn(async move {
            write(&net, partition, &key).await;
            key
        });
    }
    while let Some(key) = writers.join_next().await {
        acked.push(key.expect("writer"));
    }
    for name in names {
        holds_all(&stores[name], &acked, name).await;
    }

    // The leader of partition 0 crashes; the other two elect a new one and keep writing.
    let crashed = leader(&net, 0).await;
    stop(&net, &crashed).await;
    drop(stores.remove(crashed.as_str()));
    for i in 0..40u16 {
        let partition = i % partitions;
        let key = key_in(partition, partitions);
        write(&net, partition, &key).await;
        acked.push(key);
    }
    for (name, store) in &stores {
        holds_all(store, &acked, name).await;
    }

    // It comes back from its disk and catches up with what was written without it.
    let store = start(&net, dir.path(), &crashed, &names, partitions).await;
    holds_all(&store, &acked, &crashed).await;
    for name in names {
        stop(&net, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_others_commits_nothing_and_the_majority_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    let names = ["a", "b", "c"];
    let net = Arc::new(Net::default());
    let mut stores = HashMap::new();
    for name in names {
        stores.insert(name, start(&net, dir.path(), name, &names, 1).await);
    }
    let before = key_in(0, 1);
    write(&net, 0, &before).await;

    let isolated = leader(&net, 0).await;
    net.cut.lock().expect("net").insert(isolated.clone());
    let lost = key_in(0, 1);
    let node = net.node(&isolated).expect("isolated node");
    let refused = node.propose(0, write_of(&lost)).await;
    assert!(
        matches!(refused, Err(ReplicationError::Unconfirmed { .. })),
        "a leader without a majority must not confirm a write: {refused:?}"
    );
    // Its lease ran out long ago (no majority heard for the whole proposal timeout): it no
    // longer counts as the partition's leader for serving reads, whatever it believes.
    assert!(
        !node.leads(0),
        "a leader cut off from its majority still serves"
    );

    // The majority elects a leader of its own and commits.
    let after = key_in(0, 1);
    write(&net, 0, &after).await;
    assert_ne!(leader(&net, 0).await, isolated);

    // Healed, the old leader follows: it has what the majority decided, and the write it
    // could not commit is gone everywhere.
    net.cut.lock().expect("net").clear();
    let all = [before, after];
    for name in names {
        holds_all(&stores[name], &all, name).await;
    }
    // Wait until the cut-off node has applied the new leader's log (it holds `after`), then
    // the unconfirmed write must be nowhere.
    for name in names {
        assert!(
            !stores[name].contains(&lost).expect("read"),
            "{name} applied a write no majority confirmed"
        );
    }
    for name in names {
        stop(&net, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivors_elect_a_leader_once_they_learn_it_is_gone_without_waiting_for_timers() {
    let dir = tempfile::tempdir().expect("dir");
    let names = ["a", "b", "c"];
    let partitions = 2;
    let net = Arc::new(Net::default());
    for name in names {
        start(&net, dir.path(), name, &names, partitions).await;
    }
    let before = key_in(0, partitions);
    write(&net, 0, &before).await;
    let dead = leader(&net, 0).await;
    let survivors: Vec<&str> = names.into_iter().filter(|n| *n != dead).collect();
    // The engine's own election timers are off: only being told that the leader is gone can
    // make a survivor stand.
    for name in &survivors {
        let node = net.node(name).expect("survivor");
        for partition in 0..partitions {
            node.group(partition)
                .expect("group")
                .runtime_config()
                .elect(false);
        }
    }
    stop(&net, &dead).await;
    let lost_at = Instant::now();
    for name in &survivors {
        let node = net.node(name).expect("survivor");
        node.leader_lost(&dead, lost_at, || true);
    }
    let next = leader(&net, 0).await;
    assert_ne!(next, dead);
    let after = key_in(0, partitions);
    write(&net, 0, &after).await;
    for name in &survivors {
        stop(&net, name).await;
    }
}
