//! Which storage engine: durable writes/s under one group-commit workload, engine by engine.
//!
//! `cargo bench --bench storage` (`SECS=` per run, default 3; `WRITERS=1,64,256`). Every run
//! has N concurrent writers; each writes a booking-shaped batch (a seat, an order, an index
//! entry) and waits until it is durable, then writes the next. Engines:
//!
//! - `contrail (fjall)`: the node's own `Store` — one log writer thread applies each group to
//!   fjall and makes it durable with one `fdatasync` of the journal;
//! - `redb`: the same group commit (one thread; a group is one write transaction committed
//!   with `Durability::Immediate`);
//!
//! sled, the engine before fjall, was measured here too until it left the build (its figures
//! are in BENCHMARKS.md; the sled-era converter lives in `tools/migrate-sled`).
//! - `disk`: one thread appending 4 KiB and calling `fdatasync` (the floor a sync costs).
//!
//! Reported per run: durable writes/s, syncs per write, bytes written to storage per write
//! (`/proc/self/io`), and latency percentiles. The last line is JSON for `scripts/benchmarks.sh`.

use contrail::persistence::{Store, WriteBatch};
use futures::future::BoxFuture;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Ops = Vec<(String, Vec<u8>)>;

/// One booking's records: a seat, an order (~250 bytes), an index entry.
fn booking(writer: usize, n: u64) -> Ops {
    let order = format!("ord_{writer:04}_{n:012}");
    vec![
        (format!("seat/flt_{writer:04}/{}", n % 180), vec![1; 40]),
        (format!("order/{order}"), vec![7; 250]),
        (
            format!("user_order/usr_{writer:04}/{n:016}"),
            order.into_bytes(),
        ),
    ]
}

/// A durable write path under test.
trait Engine: Send + Sync + 'static {
    /// Writes `ops` atomically; the future resolves once they are durable.
    fn write(&self, ops: Ops) -> BoxFuture<'static, ()>;
    fn syncs(&self) -> u64;
}

struct Contrail(Store);

impl Engine for Contrail {
    fn write(&self, ops: Ops) -> BoxFuture<'static, ()> {
        let mut batch = WriteBatch::new();
        for (k, v) in ops {
            batch.put_raw(&k, v);
        }
        let durable = self.0.commit(batch).expect("commit");
        Box::pin(async move { durable.await.expect("durable") })
    }
    fn syncs(&self) -> u64 {
        self.0.sync_stats().0
    }
}

/// Group commit on one thread, for an engine given as "apply a group, then sync it".
struct GroupCommit {
    tx: std::sync::mpsc::Sender<(Ops, oneshot::Sender<()>)>,
    syncs: Arc<AtomicU64>,
}

impl GroupCommit {
    fn spawn(mut commit_group: impl FnMut(Vec<Ops>) + Send + 'static) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<(Ops, oneshot::Sender<()>)>();
        let syncs = Arc::new(AtomicU64::new(0));
        let counter = syncs.clone();
        std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                while let Ok(next) = rx.try_recv() {
                    group.push(next);
                }
                let (ops, acks): (Vec<Ops>, Vec<_>) = group.into_iter().unzip();
                commit_group(ops);
                counter.fetch_add(1, Ordering::Relaxed);
                for ack in acks {
                    let _ = ack.send(());
                }
            }
        });
        Self { tx, syncs }
    }
}

impl Engine for GroupCommit {
    fn write(&self, ops: Ops) -> BoxFuture<'static, ()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((ops, tx)).expect("group commit thread");
        Box::pin(async move { rx.await.expect("group commit thread") })
    }
    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

fn redb(dir: &Path) -> GroupCommit {
    const TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("records");
    let db = redb::Database::create(dir.join("redb")).expect("redb");
    GroupCommit::spawn(move |group| {
        let mut tx = db.begin_write().expect("begin");
        tx.set_durability(redb::Durability::Immediate)
            .expect("durability");
        {
            let mut table = tx.open_table(TABLE).expect("table");
            for ops in group {
                for (k, v) in ops {
                    table.insert(k.as_str(), v.as_slice()).expect("insert");
                }
            }
        }
        tx.commit().expect("commit");
    })
}

/// Bytes this process has caused to be written to storage so far.
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes: "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

struct Run {
    engine: &'static str,
    writers: usize,
    writes: u64,
    secs: f64,
    syncs: u64,
    bytes: u64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Run {
    /// The figures reported for a run, per second and per write.
    fn figures(&self) -> Figures {
        let writes = self.writes.max(1) as f64;
        Figures {
            engine: self.engine,
            writers: self.writers,
            writes_per_sec: self.writes as f64 / self.secs,
            syncs_per_write: self.syncs as f64 / writes,
            bytes_per_write: self.bytes as f64 / writes,
            p50_ms: self.p50_ms,
            p99_ms: self.p99_ms,
        }
    }
}

/// One line of the comparison, as printed and as written to the JSON file.
#[derive(serde::Serialize)]
struct Figures {
    engine: &'static str,
    writers: usize,
    writes_per_sec: f64,
    syncs_per_write: f64,
    bytes_per_write: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn measure(
    name: &'static str,
    engine: Arc<dyn Engine>,
    writers: usize,
    secs: Duration,
) -> Run {
    // Warm up (files created, caches filled) before counting.
    for n in 0..200 {
        engine.write(booking(9999, n)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (syncs0, bytes0) = (engine.syncs(), written_bytes());
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (engine, stop) = (engine.clone(), stop.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    engine.write(booking(w, n)).await;
                    latencies.push(t.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Run {
        engine: name,
        writers,
        writes: latencies.len() as u64,
        secs: elapsed,
        syncs: engine.syncs() - syncs0,
        bytes: written_bytes() - bytes0,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// The disk's floor: 4 KiB appended and `fdatasync`ed, one at a time.
fn raw_disk(dir: &Path, secs: Duration) -> Run {
    let mut file = std::fs::File::create(dir.join("raw")).expect("raw file");
    let block = vec![0u8; 4096];
    let (bytes0, started) = (written_bytes(), Instant::now());
    let mut syncs = 0;
    while started.elapsed() < secs {
        file.write_all(&block).expect("append");
        file.sync_data().expect("fdatasync");
        syncs += 1;
    }
    let elapsed = started.elapsed();
    Run {
        engine: "disk: 4 KiB append + fdatasync",
        writers: 1,
        writes: syncs,
        secs: elapsed.as_secs_f64(),
        syncs,
        bytes: written_bytes() - bytes0,
        p50_ms: elapsed.as_secs_f64() * 1e3 / syncs.max(1) as f64,
        p99_ms: 0.0,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing: run briefly.
    let secs = Duration::from_secs_f64(
        std::env::var("SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    let writers: Vec<usize> = std::env::var("WRITERS")
        .unwrap_or_else(|_| "1,64,256".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runs = vec![raw_disk(
        tempfile::tempdir_in(&base).expect("dir").path(),
        secs,
    )];
    for &n in &writers {
        for name in ["contrail (fjall)", "redb"] {
            let dir = tempfile::tempdir_in(&base).expect("dir");
            let run = rt.block_on(async {
                let engine: Arc<dyn Engine> = match name {
                    "contrail (fjall)" => {
                        Arc::new(Contrail(Store::open(dir.path()).expect("store")))
                    }
                    _ => Arc::new(redb(dir.path())),
                };
                measure(name, engine, n, secs).await
            });
            let f = run.figures();
            eprintln!(
                "{:>24} {:>4} writers: {:>8.0} durable writes/s, {:.3} syncs/write, {:>6.0} B/write, p50 {:.2} ms, p99 {:.2} ms",
                f.engine,
                f.writers,
                f.writes_per_sec,
                f.syncs_per_write,
                f.bytes_per_write,
                f.p50_ms,
                f.p99_ms
            );
            runs.push(run);
        }
    }
    let disk = &runs[0];
    eprintln!(
        "{:>24}: {:.0} syncs/s ({:.3} ms each)",
        disk.engine,
        disk.figures().writes_per_sec,
        disk.p50_ms
    );
    let figures: Vec<Figures> = runs.iter().map(Run::figures).collect();
    println!(
        "{}",
        serde_json::to_string(&figures).expect("figures are plain numbers")
    );
}
