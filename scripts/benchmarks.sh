#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: builds in release, starts a node on loopback with its own data
# directory, runs every loadgen scenario against it, runs the criterion benches, and writes the
# figures with the machine they came from. Takes about 15 minutes on 2 cores.
#   scripts/benchmarks.sh            # everything
#   QUICK=1 scripts/benchmarks.sh    # shorter runs, for a smoke test of the script itself
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${QUICK:+3}; secs=${secs:-15}
users=${USERS:-256}
work=$(mktemp -d)
trap 'kill "$node" 2>/dev/null || true; wait "$node" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --locked
port=18380
CONTRAIL__STORAGE__PATH="$work/data" CONTRAIL__HTTP__BIND="127.0.0.1:$port" CONTRAIL__LOG__FILTER=warn \
  ./target/release/contrail serve --config config.toml > "$work/node.log" 2>&1 &
node=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break; sleep 0.1; done

lg() { ./target/release/contrail loadgen --quiet --target "http://127.0.0.1:$port" --out "$work/$1.json" --plot "$work/$1.svg" --scenario "$@"; }
lg baseline --users "$users" --duration-secs "$secs" > "$work/baseline.txt"
lg browse --users "$users" --duration-secs "$secs" > "$work/browse.txt"
lg book --users "$users" --duration-secs "$secs" --flights 200 --decline-rate 0.1 --abandon-rate 0.1 > "$work/book.txt"
lg rush --users "${RUSH_BUYERS:-10000}" --seats 150 --rush-accounts 200 > "$work/rush.txt"
cp "$work"/*.svg docs/benchmarks/ 2>/dev/null || { mkdir -p docs/benchmarks && cp "$work"/*.svg docs/benchmarks/; }

if [ -z "${QUICK:-}" ]; then
  cargo bench --locked --bench flight -- --warm-up-time 1 --measurement-time 4 > "$work/criterion-flight.txt"
  cargo bench --locked --bench http -- --warm-up-time 1 > "$work/criterion-http.txt"
  cargo bench --locked --bench cluster -- --warm-up-time 1 > "$work/criterion-cluster.txt"
  cargo bench --locked --bench memory > "$work/memory.txt"
fi

python3 scripts/benchmarks_md.py "$work" "$users" "$secs" > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
