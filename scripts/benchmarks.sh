#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: builds in release, measures in one run the two yardsticks — the bare
# warp route (examples/bare_warp.rs) and a PostgreSQL booking transaction (scripts/pg/bench.sh,
# skipped if PostgreSQL is not installed) — then starts a node on loopback with its own data
# directory, runs every loadgen scenario against it, then `hold` against three replicated nodes,
# runs the storage engine comparison, the criterion benches and the failover test (20 kills of a
# partition leader), and writes the figures, their ratios and the machine they came from.
# Takes about 30 minutes on 2 cores.
#   scripts/benchmarks.sh            # everything
#   QUICK=1 scripts/benchmarks.sh    # shorter runs, no cargo benches: a smoke test of the script
# USERS (64): connections of the bare route, baseline, browse, book and hold runs and of pgbench
# (the targets are defined at 64 connections); RUSH_BUYERS (10000).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${QUICK:+3}; secs=${secs:-15}
users=${USERS:-64}
work=$(mktemp -d)
# Every process started here that may still run, by PID: stopped on exit, whatever happens.
bare= node= current= members=
cleanup() {
  set +e
  for p in $current $bare $node $members; do kill "$p" 2> /dev/null || true; done
  for p in $current $bare $node $members; do wait "$p" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# Runs a command in the background (so that the EXIT trap can stop it) and waits for it.
tracked() { "$@" & current=$!; local rc=0; wait "$current" || rc=$?; current=; return "$rc"; }
ready() { for _ in $(seq 1 100); do curl -sf "$1" > /dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

cargo build --release --locked -p contrail -p contrail-loadgen
cargo build --release --locked --example bare_warp

# Yardstick 1: the bare warp route, same load generator, same connections.
bare_port=${BARE_PORT:-18390}
./target/release/examples/bare_warp "$bare_port" > "$work/bare.log" 2>&1 &
bare=$!
ready "http://127.0.0.1:$bare_port/healthz"
tracked ./target/release/contrail-loadgen --quiet --scenario baseline --no-audit --target "http://127.0.0.1:$bare_port" \
  --users "$users" --duration-secs "$secs" --out "$work/bare.json" --plot "$work/bare.svg" > "$work/bare.txt"
kill "$bare"; wait "$bare" 2> /dev/null || true; bare=

# Yardstick 2: PostgreSQL committing one booking per transaction (its own throw-away cluster).
export PG_CLIENTS=${PG_CLIENTS:-$users}
tracked scripts/pg/bench.sh "$secs" > "$work/pg.json" ||
  echo "scripts/pg/bench.sh failed; see above" >&2

port=18380
# Enough seats that no run sells out before its end (a sold-out flight answers 409 at once, which
# would flatter requests/s and cap the 201s), and no per-user rate limit: 64 virtual users each
# booking hundreds of times a second stand for thousands of real customers (the shipped limit,
# 200 requests/s per user, would cap the run at 12 800 requests/s).
hold_flights=${HOLD_FLIGHTS:-3000}
book_flights=${BOOK_FLIGHTS:-1000}
CONTRAIL__HTTP__USER_RPS=1000000 CONTRAIL__HTTP__USER_BURST=1000000 \
CONTRAIL__STORAGE__PATH="$work/data" CONTRAIL__HTTP__BIND="127.0.0.1:$port" CONTRAIL__LOG__FILTER=warn \
  ./target/release/contrail serve --config config.toml > "$work/node.log" 2>&1 &
node=$!
ready "http://127.0.0.1:$port/readyz"

lg() { tracked ./target/release/contrail-loadgen --quiet --target "http://127.0.0.1:$port" --out "$work/$1.json" --plot "$work/$1.svg" --scenario "$@"; }
lg baseline --users "$users" --duration-secs "$secs" > "$work/baseline.txt"
lg browse --users "$users" --duration-secs "$secs" > "$work/browse.txt"
lg book --users "$users" --duration-secs "$secs" --flights "$book_flights" --decline-rate 0.1 --abandon-rate 0.1 > "$work/book.txt"
# `hold` (POST /api/v1/orders only: one seat each, many flights), where this loadgen has it.
loadgen_help=$(./target/release/contrail-loadgen --help 2>&1 || true)
if grep -Eq '^[[:space:]]*- hold:|possible values:.*\bhold\b' <<< "$loadgen_help"; then
  lg hold --users "$users" --duration-secs "$secs" --flights "$hold_flights" > "$work/hold.txt"
else
  echo "this loadgen has no 'hold' scenario: bookings/s are taken from the book mix" >&2
fi
lg rush --users "${RUSH_BUYERS:-10000}" --seats 150 --rush-accounts 200 > "$work/rush.txt"
# The web pages, one request at a time, on the data the runs above left (the shipped admin).
tracked python3 scripts/pages.py "http://127.0.0.1:$port" admin@contrail.local change-me-admin > "$work/pages.json"
kill "$node"; wait "$node" 2> /dev/null || true; node= # the benches get the machine to themselves

# The same `hold` run against a cluster of three nodes on this machine (replicated: every
# booking decided by a majority of its partitions' replicas, each fsync'd), users spread over the
# three HTTP ports (requests for a partition another node leads are forwarded to its leader).
partitions=${PARTITIONS:-64}
member() { # name http-port cluster-port [seed-port]
  local seeds=()
  [ -n "${4:-}" ] && seeds=("CONTRAIL__CLUSTER__SEEDS=127.0.0.1:$4")
  env CONTRAIL__HTTP__USER_RPS=1000000 CONTRAIL__HTTP__USER_BURST=1000000 CONTRAIL__LOG__FILTER=warn \
    CONTRAIL__STORAGE__PATH="$work/$1" CONTRAIL__HTTP__BIND="127.0.0.1:$2" \
    CONTRAIL__CLUSTER__NODE_ID="$1" CONTRAIL__CLUSTER__LISTEN="127.0.0.1:$3" \
    CONTRAIL__CLUSTER__COOKIE=bench-cookie "${seeds[@]}" \
    CONTRAIL__CLUSTER__PARTITIONS="$partitions" \
    ./target/release/contrail serve --config config.toml > "$work/$1.log" 2>&1 &
  members="$members $!"
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$2/readyz" > /dev/null && return 0; sleep 0.1; done
  echo "$1 did not become ready; see $work/$1.log" >&2; return 1
}
led() { # partitions led and serving, over the three nodes
  for p in 18381 18382 18383; do curl -sf "http://127.0.0.1:$p/metrics" || true; done |
    grep -c '^contrail_partition_leader{[^}]*} 1' || true
}
handovers() { # leaderships handed to preferred replicas so far, over the three nodes
  for p in 18381 18382 18383; do curl -sf "http://127.0.0.1:$p/metrics" || true; done |
    awk '/^contrail_partition_handovers_total/ { n += $NF } END { print n + 0 }'
}
settled() { # the leaders have spread over the members: no handover for 5 s (at most 90 s)
  local last=-1 still=0
  for _ in $(seq 1 90); do
    local now; now=$(handovers)
    if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0; last=$now; fi
    [ "$still" -ge 5 ] && return 0
    sleep 1
  done
}
if member node-a 18381 17101 && member node-b 18382 17102 17101 && member node-c 18383 17103 17101; then
  for _ in $(seq 1 300); do [ "$(led)" -ge "$partitions" ] && break; sleep 0.2; done
  settled
  echo "replicated cluster: $(led) of $partitions partitions led, $(handovers) handed over" >&2
  tracked ./target/release/contrail-loadgen --quiet --scenario hold --no-audit \
    --target http://127.0.0.1:18381 --target http://127.0.0.1:18382 --target http://127.0.0.1:18383 \
    --users "$users" --duration-secs "$secs" --flights "$hold_flights" \
    --out "$work/hold-replicated.json" --plot "$work/hold-replicated.svg" > "$work/hold-replicated.txt" ||
    echo "the replicated run failed; see $work/node-*.log" >&2
fi
for p in $members; do kill "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true; done; members=

cp "$work"/*.svg docs/benchmarks/ 2>/dev/null || { mkdir -p docs/benchmarks && cp "$work"/*.svg docs/benchmarks/; }

if [ -z "${QUICK:-}" ]; then
  # Storage engines: the last stdout line is a JSON array (the table goes to stderr).
  cargo bench --locked --bench storage > "$work/storage.json"
  cargo bench --locked --bench flight -- --warm-up-time 1 --measurement-time 4 > "$work/criterion-flight.txt"
  cargo bench --locked --bench http -- --warm-up-time 1 > "$work/criterion-http.txt"
  cargo bench --locked --bench cluster -- --warm-up-time 1 > "$work/criterion-cluster.txt"
  cargo bench --locked --bench memory > "$work/memory.txt"
  # Failover: kill -9 of a partition leader under load, 20 rounds (the test prints the figures).
  FAILOVER_ROUNDS=20 cargo test --release --locked --test replication a_killed_leader -- --nocapture \
    > "$work/failover.txt" 2>&1 || echo "the failover test failed; its output is in BENCHMARKS.md's figures" >&2
fi

python3 scripts/benchmarks_md.py "$work" "$users" "$secs" > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
