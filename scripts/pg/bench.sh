#!/usr/bin/env bash
# The PostgreSQL yardstick for BENCHMARKS.md: how many bookings per second PostgreSQL commits on
# this machine, one booking (take a seat, record the order) per durable transaction.
#
#   scripts/pg/bench.sh [SECS]     # default 15; prints ONE JSON line on stdout, the rest on stderr
#
# Creates a throw-away cluster in a temporary directory (initdb -A trust; fsync and
# synchronous_commit on, as shipped), listening only on a unix socket in that directory and on
# 127.0.0.1 at a free port; creates a booking schema (PG_FLIGHTS flights, seats sized so the run
# cannot run out of them), runs `pgbench -M prepared -c PG_CLIENTS -j 2 -T SECS -f booking.sql`,
# checks that no seat was sold twice, and stops and deletes the cluster on exit, whatever happens.
#
# Environment: PG_CLIENTS (64), PG_FLIGHTS (1000), PG_MAX_TPS (15000: the rate the seats are sized
# for), PG_CONNECT (socket: pgbench connects over the unix socket, PostgreSQL's fastest path — here
# ~20 % above TCP — so Contrail's ratios to it are not flattered; tcp: over 127.0.0.1),
# PG_BIN (a directory holding initdb and pg_ctl; default the newest /usr/lib/postgresql/*/bin).
# Without PostgreSQL it prints {"installed": false} and exits 0. As root, the server runs as the
# `postgres` user if there is one, else as `nobody` (PostgreSQL refuses to run as root).
set -euo pipefail

secs=${1:-${PG_SECS:-15}}
clients=${PG_CLIENTS:-64}
flights=${PG_FLIGHTS:-1000}
connect=${PG_CONNECT:-socket}
max_tps=${PG_MAX_TPS:-15000}
script="$(cd "$(dirname "$0")" && pwd)/booking.sql"

log() { echo "pg/bench.sh: $*" >&2; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# --- the binaries ---------------------------------------------------------------------------
bin=${PG_BIN:-}
if [ -z "$bin" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin /usr/pgsql-*/bin 2>/dev/null | sort -V); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && bin=$d
  done
fi
if [ -z "$bin" ] && command -v initdb > /dev/null && command -v pg_ctl > /dev/null; then
  bin=$(dirname "$(command -v initdb)")
fi
pick() { if [ -n "$bin" ] && [ -x "$bin/$1" ]; then echo "$bin/$1"; else command -v "$1" || true; fi; }
pgbench=$(pick pgbench)
psql=$(pick psql)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ] || [ -z "$pgbench" ] || [ -z "$psql" ]; then
  log "PostgreSQL (initdb, pg_ctl, pgbench, psql) not found"
  echo '{"installed": false}'
  exit 0
fi

# --- who runs the server ------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
  if id postgres > /dev/null 2>&1; then owner=postgres; else owner=nobody; fi
  as_owner() { runuser -u "$owner" -- "$@"; }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

fail() {
  log "$1"
  [ -f "${tmp:-/nonexistent}/server.log" ] && tail -n 20 "$tmp/server.log" >&2
  echo "{\"installed\": true, \"error\": $(json_str "$1")}"
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/contrail-pg.XXXXXX")
started=
bench_pid=
cleanup() {
  set +e # every step runs, whatever the one before returned
  if [ -n "$bench_pid" ]; then kill "$bench_pid" 2> /dev/null; wait "$bench_pid" 2> /dev/null; fi
  if [ -n "$started" ]; then as_owner "$bin/pg_ctl" stop -D "$tmp/data" -m fast -w > /dev/null 2>&1; fi
  cd /
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
chown "$owner" "$tmp"
chmod 700 "$tmp"
cd "$tmp" # the server's user must be able to read its working directory

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2> /dev/null ||
  echo $((20000 + RANDOM % 20000)))
if [ "$clients" -gt 90 ]; then max_conn=$((clients + 10)); else max_conn=100; fi

# --- the cluster ----------------------------------------------------------------------------
# --no-sync skips only initdb's final flush of the fresh, throw-away files; the server below runs
# with fsync = on and synchronous_commit = on: every COMMIT waits for its WAL on disk.
as_owner "$bin/initdb" -D "$tmp/data" -A trust -U postgres -E UTF8 --locale=C --no-sync > "$tmp/initdb.log" 2>&1 ||
  { cat "$tmp/initdb.log" >&2; fail "initdb failed (as $owner)"; }
started=1 # from here on the EXIT trap stops the server (harmless if it never started)
as_owner "$bin/pg_ctl" start -w -t 60 -D "$tmp/data" -l "$tmp/server.log" \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$tmp -c max_connections=$max_conn -c fsync=on -c synchronous_commit=on" \
  > /dev/null 2>&1 || fail "the server did not start (as $owner)"
case "$connect" in
  tcp) host=127.0.0.1 ;;
  *) connect=socket host=$tmp ;;
esac
sql() { "$psql" -X -q -At -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U postgres -d postgres "$@"; }

# --- the schema ---------------------------------------------------------------------------
# Seats per flight: enough for PG_MAX_TPS bookings/s for the whole run with half as many again to
# spare for unevenly drawn flights (at least 180, a multiple of 6); seats are labelled 001A, 001B…
per_flight=$(((max_tps * secs * 3 / 2 + flights - 1) / flights))
[ "$per_flight" -lt 180 ] && per_flight=180
per_flight=$(((per_flight + 5) / 6 * 6))
log "PostgreSQL in $tmp (port $port, server user $owner): $flights flights x $per_flight seats"
sql -v flights="$flights" -v seats="$per_flight" > /dev/null <<'SQL' || fail "creating the schema failed"
CREATE TABLE seats (
  flight_id int,
  seat text,
  status text NOT NULL,
  order_id bigint,
  PRIMARY KEY (flight_id, seat)
);
-- What a booking app indexes for "the first free seat of this flight".
CREATE INDEX seats_available ON seats (flight_id, seat) WHERE status = 'available';
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  user_id int,
  flight_id int,
  seat text,
  status text,
  created_at timestamptz DEFAULT now()
);
INSERT INTO seats (flight_id, seat, status)
  SELECT f, lpad(((s - 1) / 6 + 1)::text, 3, '0') || chr(65 + (s - 1) % 6), 'available'
  FROM generate_series(1, :flights) AS f, generate_series(1, :seats) AS s;
VACUUM ANALYZE seats;
CHECKPOINT;
SQL
version=$(sql -c 'SHOW server_version')
fsync=$(sql -c 'SHOW fsync')
sync_commit=$(sql -c 'SHOW synchronous_commit')

# --- the run --------------------------------------------------------------------------------
log "pgbench: $clients clients, 2 threads, $secs s, over $connect"
"$pgbench" -n -M prepared -c "$clients" -j 2 -T "$secs" -D flights="$flights" -f "$script" \
  -l --log-prefix="$tmp/tx" -h "$host" -p "$port" -U postgres postgres > "$tmp/pgbench.out" 2> "$tmp/pgbench.err" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=
cat "$tmp/pgbench.out" >&2
grep -v '^pgbench: client [0-9]* ' "$tmp/pgbench.err" | tail -n 5 >&2 || true
[ "$status" -eq 0 ] || fail "pgbench exited with $status: $(grep -m1 -i 'error\|abort' "$tmp/pgbench.err" || true)"

field() { sed -n "s/^$1 *[=:] *\([0-9.]*\).*/\1/p" "$tmp/pgbench.out" | head -n 1; }
tps=$(field 'tps')
latency=$(field 'latency average')
processed=$(field 'number of transactions actually processed')
failed=$(field 'number of failed transactions')
[ -n "$tps" ] && [ -n "$latency" ] || fail "could not read tps and latency from pgbench's output"
# p50/p99 from the per-transaction log (third field: the transaction's latency in µs).
read -r p50 p99 < <(cat "$tmp"/tx.* | awk '$3 ~ /^[0-9]+$/ {print $3}' | sort -n |
  awk '{ v[NR] = $1 }
    function at(q,  i) { i = int(NR * q) + 1; if (i > NR) i = NR; return v[i] / 1000 }
    END { if (NR == 0) print "null null"; else printf "%.3f %.3f\n", at(0.50), at(0.99) }')

# No seat in two orders, one held seat per order.
read -r orders held distinct < <(sql -F ' ' -c "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM seats WHERE status = 'held'), (SELECT count(DISTINCT (flight_id, seat)) FROM orders)")
if [ "$orders" = "$held" ] && [ "$orders" = "$distinct" ]; then consistent=true; else consistent=false; fi
log "orders $orders, held seats $held, distinct seats in orders $distinct"

printf '{"installed": true, "version": %s, "clients": %s, "threads": 2, "secs": %s, "connect": %s, "tps": %s, "latency_ms": %s, "p50_ms": %s, "p99_ms": %s, "transactions": %s, "failed": %s, "orders": %s, "consistent": %s, "flights": %s, "seats_per_flight": %s, "fsync": %s, "synchronous_commit": %s}\n' \
  "$(json_str "$version")" "$clients" "$secs" "$(json_str "$connect")" "$tps" "$latency" "$p50" "$p99" \
  "${processed:-null}" "${failed:-0}" "$orders" "$consistent" "$flights" "$per_flight" \
  "$(json_str "$fsync")" "$(json_str "$sync_commit")"
