//! The store's fence, as the cluster sets it: who may write what, under which epoch.

use super::*;
use crate::domain::ids::FlightId;
use crate::persistence::keys;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TIMING: Timing = Timing {
    heartbeat: Duration::from_millis(300),
    down_after: Duration::from_secs(60),
    call_timeout: Duration::from_secs(1),
};

/// Node "a" of the 3-node view {a, b, c} at epoch 3, on a temporary store.
async fn node_a() -> Result<(Cluster, View), Box<dyn std::error::Error>> {
    let store = Store::temporary()?;
    let view = View::founding("a", "127.0.0.1:1")
        .with("b", "127.0.0.1:2")
        .with("c", "127.0.0.1:3");
    let mut batch = WriteBatch::new();
    batch.put(VIEW_KEY, &view)?;
    store.commit(batch)?.await?;
    let cluster = Cluster::open("a", "127.0.0.1:1", store, TIMING, false, true)?;
    Ok((cluster, view))
}

/// A flight record key whose tag `view` gives to `owner` (and, if given, `next` to `then`).
fn flight_owned_by(view: &View, owner: &str, next: Option<(&View, &str)>) -> String {
    (0u64..)
        .map(|i| format!("{i:016x}"))
        .find(|tag| {
            view.owner(tag) == Some(owner)
                && next.is_none_or(|(next, then)| next.owner(tag) == Some(then))
        })
        .map(|tag| keys::flight(&FlightId::generate_in(&tag)))
        .unwrap_or_default()
}

/// Writes `key` as the node would, and waits until it is durable.
async fn write(cluster: &Cluster, key: &str, value: u32) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    batch.put(key, &value)?;
    cluster.store().commit(batch)?.await
}

fn refused(result: Result<(), StoreError>, why: &str) -> bool {
    matches!(result, Err(StoreError::Fenced { why: ref w, .. }) if w.contains(why))
}

#[tokio::test]
async fn only_the_owner_writes_and_only_while_it_reaches_a_majority_at_its_epoch() -> TestResult {
    let (cluster, view) = node_a().await?;
    let mine = flight_owned_by(&view, "a", None);
    let theirs = flight_owned_by(&view, "b", None);

    // Alone (nobody heard yet): not even its own records.
    assert!(refused(write(&cluster, &mine, 1).await, "majority"));
    // Node-local records are not placed, so not fenced.
    write(&cluster, "local/anything", 1).await?;

    // b heard, but at an older or a newer epoch: still no majority at epoch 3.
    cluster.heard("b", "127.0.0.1:2", 2);
    assert!(refused(write(&cluster, &mine, 1).await, "majority"));
    cluster.heard("b", "127.0.0.1:2", 4);
    assert!(refused(write(&cluster, &mine, 1).await, "majority"));

    // b at epoch 3: a and b are a majority; a writes its own records, stamped with epoch 3.
    cluster.heard("b", "127.0.0.1:2", 3);
    write(&cluster, &mine, 1).await?;
    assert_eq!(cluster.store().epoch_of(&mine)?, 3);
    assert!(refused(write(&cluster, &theirs, 1).await, "node b owns it"));

    // Cut off from b (the partition test's fault): refused again.
    cluster.set_blocked(["b".to_owned()].into(), Duration::from_secs(60));
    assert!(refused(write(&cluster, &mine, 2).await, "majority"));
    assert_eq!(cluster.store().get::<u32>(&mine)?, Some(1));
    Ok(())
}

#[tokio::test]
async fn a_sealed_handoff_refuses_writes_to_the_moving_records_only() -> TestResult {
    let (cluster, view) = node_a().await?;
    cluster.heard("b", "127.0.0.1:2", 3);
    let next = view.with("d", "127.0.0.1:4");
    let moving = flight_owned_by(&view, "a", Some((&next, "d")));
    let staying = flight_owned_by(&view, "a", Some((&next, "a")));

    assert!(cluster.begin_move(next.clone()));
    // Requests already in progress may finish their writes until the prepare seals.
    write(&cluster, &moving, 1).await?;
    assert!(cluster.seal_move(&next));
    assert!(refused(write(&cluster, &moving, 2).await, "handed over"));
    write(&cluster, &staying, 2).await?;
    // Given up: the records are this node's again.
    assert!(cluster.end_move(&next));
    write(&cluster, &moving, 3).await?;
    Ok(())
}

#[tokio::test]
async fn a_node_without_the_epoch_of_a_received_record_cannot_write_it() -> TestResult {
    let (cluster, view) = node_a().await?;
    cluster.heard("b", "127.0.0.1:2", 3);
    let next = view.with("d", "127.0.0.1:4");
    // A record this node owns under both views, received under epoch 4 (as a handoff that
    // committed elsewhere would leave it) while this node is still at epoch 3.
    let key = flight_owned_by(&view, "a", Some((&next, "a")));
    let mut received = WriteBatch::handed_over(next.epoch);
    received.put(&key, &1u32)?;
    cluster.store().commit(received)?.await?;

    assert!(refused(
        write(&cluster, &key, 2).await,
        "written under cluster epoch 4"
    ));
    assert_eq!(cluster.store().get::<u32>(&key)?, Some(1));

    // With the new view (and a majority at it), the owner writes again, under epoch 4.
    assert!(cluster.adopt(next));
    cluster.heard("b", "127.0.0.1:2", 4);
    cluster.heard("c", "127.0.0.1:3", 4);
    write(&cluster, &key, 2).await?;
    assert_eq!(cluster.store().epoch_of(&key)?, 4);
    Ok(())
}

#[tokio::test]
async fn a_cluster_of_one_owns_every_record_at_its_epoch() -> TestResult {
    let cluster = Cluster::alone(Store::temporary()?, Duration::from_secs(1))?;
    let key = keys::flight(&FlightId::generate_in("0123456789abcdef"));
    write(&cluster, &key, 1).await?;
    assert_eq!(cluster.store().epoch_of(&key)?, 1);
    Ok(())
}
