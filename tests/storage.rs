//! The storage promise, checked on the real binary: an acknowledged booking or payment was
//! synced to the disk (`fdatasync` of the journal that holds it) before its answer left the
//! node, and each waited for exactly one sync; and a data directory written by sled is refused, then converted by
//! the converter in `tools/migrate-sled` (tested there) with nothing lost.
//!
//! The sync test runs the node under `strace` (`.ci/run` installs it), which also makes every
//! sync 100 ms slower, so an answer that did not wait for its sync cannot pass by luck.

mod helpers;

use helpers::binary::Server;
use helpers::{book, client_of};
use std::collections::HashMap;
use std::process::Command;

/// One traced system call: when it started and ended, its name, and its text.
#[derive(Debug)]
struct Call {
    entered: f64,
    exited: f64,
    name: String,
    text: String,
}

impl Call {
    /// The first argument, when it is a file descriptor.
    fn fd(&self) -> Option<u32> {
        let args = self.text.split_once('(')?.1;
        args.split([',', ')', ' '])
            .next()
            .and_then(|fd| fd.parse().ok())
    }

    /// The value returned.
    fn result(&self) -> Option<i64> {
        let tail = self.text.rsplit_once(" = ")?.1;
        tail.split_whitespace().next()?.parse().ok()
    }
}

/// The delay `strace` adds to the end of every sync (`-e inject=…:delay_exit=`, microseconds).
const SYNC_DELAY_US: u32 = 100_000;

/// Parses `strace -f -ttt -T` output, joining calls that other threads interrupted.
fn parse_trace(trace: &str) -> Vec<Call> {
    // `-T` leaves out an injected delay; strace marks the calls it delayed.
    let duration = |line: &str| -> f64 {
        let injected = if line.contains("(DELAYED)") {
            f64::from(SYNC_DELAY_US) / 1e6
        } else {
            0.0
        };
        line.rsplit_once('<')
            .and_then(|(_, d)| d.trim_end_matches('>').parse::<f64>().ok())
            .unwrap_or(0.0)
            + injected
    };
    let mut unfinished: HashMap<String, (f64, String)> = HashMap::new();
    let mut calls = Vec::new();
    for line in trace.lines() {
        // `PID  SECONDS.MICROS call(...) = result <duration>` (the PID is padded).
        let Some((pid, line)) = line.split_once(' ') else {
            continue;
        };
        let Some((ts, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(ts) = ts.parse::<f64>() else { continue };
        if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            unfinished.insert(pid.to_owned(), (ts, head.to_owned()));
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            if let Some((entered, head)) = unfinished.remove(pid) {
                let tail = tail.split_once(" resumed>").map_or(tail, |(_, t)| t);
                calls.push(Call {
                    entered,
                    // It ended when its line was printed, at the latest.
                    exited: ts.max(entered + duration(line)),
                    name: head.split('(').next().unwrap_or_default().to_owned(),
                    text: format!("{head}{tail}"),
                });
            }
        } else if rest.contains('(') {
            calls.push(Call {
                entered: ts,
                exited: ts + duration(line),
                name: rest.split('(').next().unwrap_or_default().to_owned(),
                text: rest.to_owned(),
            });
        }
    }
    calls
}

/// Asserts that the first write of `marker` to the journal was followed by an `fdatasync` of
/// the journal that finished before any other write carrying `marker` (the HTTP answer) began.
fn assert_synced_before_answered(calls: &[Call], marker: &str) {
    // Journal files by descriptor, as opened (and closed) over the trace.
    let mut journals: HashMap<u32, bool> = HashMap::new();
    let mut journal_write: Option<&Call> = None;
    let mut sync: Option<&Call> = None;
    for call in calls {
        match call.name.as_str() {
            "openat" | "open" => {
                if let Some(fd) = call.result().and_then(|fd| u32::try_from(fd).ok()) {
                    journals.insert(fd, call.text.contains(".jnl\""));
                }
            }
            "close" => {
                if let Some(fd) = call.fd() {
                    journals.remove(&fd);
                }
            }
            _ => {}
        }
        let to_journal = call.fd().is_some_and(|fd| journals.get(&fd) == Some(&true));
        let is_write = matches!(
            call.name.as_str(),
            "write" | "writev" | "pwrite64" | "pwritev" | "sendto" | "sendmsg"
        );
        if is_write && call.text.contains(marker) {
            if to_journal {
                journal_write.get_or_insert(call);
            } else if !matches!(call.fd(), Some(1 | 2)) {
                let written = journal_write
                    .unwrap_or_else(|| panic!("{marker} left the node before it was journaled"));
                let synced = sync.unwrap_or_else(|| {
                    panic!(
                        "{marker} left the node (at {:.6}) with no fdatasync of the journal \
                         after it was written (at {:.6}): {}",
                        call.entered, written.exited, call.text
                    )
                });
                assert!(
                    synced.exited <= call.entered,
                    "the answer carrying {marker} began at {:.6}, before the sync ended at {:.6}",
                    call.entered,
                    synced.exited
                );
                return;
            }
        }
        if matches!(call.name.as_str(), "fdatasync" | "fsync")
            && to_journal
            && call.result() == Some(0)
            && journal_write.is_some_and(|w| w.exited <= call.entered)
        {
            sync.get_or_insert(call);
        }
    }
    panic!("no answer carrying {marker} was traced");
}

/// How many syncs the node made between receiving `request` and starting to answer with
/// `marker` (with no other traffic, the durable waits the request cost).
fn syncs_while_answering(calls: &[Call], request: &str, marker: &str) -> usize {
    let received = calls
        .iter()
        .find(|c| {
            matches!(c.name.as_str(), "read" | "recvfrom" | "readv") && c.text.contains(request)
        })
        .unwrap_or_else(|| panic!("{request} was never received"))
        .entered;
    let answered = calls
        .iter()
        .filter(|c| {
            c.entered >= received && c.name.starts_with("write") && c.text.contains("HTTP/1.1 ")
        })
        .find(|c| c.text.contains(marker))
        .unwrap_or_else(|| panic!("no answer carrying {marker}"))
        .entered;
    calls
        .iter()
        .filter(|c| c.name == "fdatasync" && c.entered >= received && c.exited <= answered)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_and_a_payment_are_answered_only_after_an_fdatasync_covers_them() {
    let strace = Command::new("strace").arg("-V").output();
    assert!(
        strace.is_ok_and(|o| o.status.success()),
        "strace is needed for this test (`apt-get install -y strace`; .ci/run installs it)"
    );
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let trace = dir.path().join("trace");
    let trace_arg = trace.to_string_lossy().into_owned();
    let inject = format!("inject=fdatasync,fsync:delay_exit={SYNC_DELAY_US}");
    // Tracing slows every step down; writes nobody waits for must not be synced by the timer
    // in the middle of a saga (what is counted is how many syncs the saga itself waits for).
    let server = Server::start_traced(
        &data,
        &[("CONTRAIL__STORAGE__MAX_UNSYNCED_MS", "10000")],
        &[
            "-f",
            "-ttt",
            "-T",
            "-s",
            "65536",
            "-e",
            "trace=openat,open,close,read,readv,recvfrom,write,writev,pwrite64,pwritev,sendto,sendmsg,fdatasync,fsync",
            // Every sync takes 100 ms longer: an answer that did not wait for it would be
            // seen leaving long before it ended, whatever the machine's speed.
            "-e",
            &inject,
            "-o",
            &trace_arg,
        ],
    );
    let app = client_of(&server.base);
    let (_, flight) = app.one_flight(5, "ABCD").await;
    let (_, customer) = app.customer().await;
    let order = book(&customer, &[&flight], 1).await.id;
    let paid = customer.pay(&order, "tok_visa", None).await.expect("paid");
    let ticket = paid.tickets[0].id.clone();
    drop(server);

    let calls = parse_trace(&std::fs::read_to_string(&trace).expect("trace"));
    assert!(
        calls.iter().any(|c| c.name == "fdatasync"),
        "the node never called fdatasync"
    );
    // The booking: its order record is journaled, synced, then answered.
    assert_synced_before_answered(&calls, &order);
    // The payment: the first record carrying the ticket id is the confirmation's.
    assert_synced_before_answered(&calls, &ticket);
    // Each waited for the disk once: every step of its saga shares the last one's sync.
    assert_eq!(
        syncs_while_answering(&calls, "POST /api/v1/orders HTTP/1.1", &order),
        1,
        "a booking should wait for one sync"
    );
    assert_eq!(
        syncs_while_answering(
            &calls,
            &format!("POST /api/v1/orders/{order}/pay HTTP"),
            &ticket
        ),
        1,
        "a payment should wait for one sync"
    );
}

/// A node refuses a data directory written by the sled-era Contrail (sled keeps a `conf` and a
/// `db` file) rather than starting empty beside it, and names the converter; the directory is
/// left as it was. The conversion itself is tested with the converter, `tools/migrate-sled`.
#[test]
fn a_sled_directory_is_refused_with_the_way_forward() {
    let dir = tempfile::tempdir().expect("dir");
    let old = dir.path().join("data");
    std::fs::create_dir(&old).expect("mkdir");
    std::fs::write(old.join("conf"), "segment_size: 524288\n").expect("conf");
    std::fs::write(old.join("db"), [0u8; 64]).expect("db");
    let before: Vec<_> = std::fs::read_dir(&old)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let refused = Command::new(env!("CARGO_BIN_EXE_contrail"))
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        ])
        .env("CONTRAIL__STORAGE__PATH", &old)
        .env("CONTRAIL__HTTP__BIND", "127.0.0.1:0")
        .output()
        .expect("contrail runs");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "started on a sled directory");
    assert!(
        said.contains("tools/migrate-sled/Cargo.toml"),
        "no way forward named: {said}"
    );
    let after: Vec<_> = std::fs::read_dir(&old)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "the sled directory was changed");
}
