#!/usr/bin/env bash
# Starts a local Contrail cluster on loopback, or stops it.
#
#   cluster/start.sh              build (release) and start node-a, node-b, node-c
#   cluster/start.sh add node-d   start one more node; it joins through node-a
#   cluster/start.sh kill node-b  kill -9 one node started here (to watch a failover)
#   cluster/start.sh remove node-b
#                                 take a dead node out for good: its
#                                 replicas are rebuilt on the others; its data dir is deleted
#   cluster/start.sh stop         stop every node started here (SIGTERM, by PID)
#
# Logs go to cluster/logs/<node>.log, PIDs to cluster/pids/<node>.pid, data to cluster/data/.
set -euo pipefail
cd "$(dirname "$0")/.."

start_node() {
    local node=$1
    if [[ -f cluster/pids/$node.pid ]] && kill -0 "$(cat "cluster/pids/$node.pid")" 2>/dev/null; then
        echo "$node is already running (pid $(cat "cluster/pids/$node.pid"))"
        return
    fi
    mkdir -p cluster/logs cluster/pids cluster/data
    target/release/contrail serve --config "cluster/$node.toml" >"cluster/logs/$node.log" 2>&1 &
    echo $! >"cluster/pids/$node.pid"
    # Wait until it serves HTTP (its address is in its config).
    local port
    port=$(sed -n 's/^bind = "127.0.0.1:\([0-9]*\)"/\1/p' "cluster/$node.toml")
    for _ in $(seq 1 100); do
        if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
            echo "$node started (pid $(cat "cluster/pids/$node.pid"), http://127.0.0.1:$port)"
            return
        fi
        sleep 0.1
    done
    echo "$node did not come up; see cluster/logs/$node.log" >&2
    exit 1
}

case "${1:-start}" in
start)
    cargo build --release --locked
    start_node node-a
    # Joins go one at a time through node-a; each waits for the previous to be a member.
    for node in node-b node-c; do
        start_node "$node"
        sleep 2
    done
    ;;
add)
    start_node "${2:?usage: cluster/start.sh add node-d}"
    ;;
kill)
    node=${2:?usage: cluster/start.sh kill node-b}
    kill -KILL "$(cat "cluster/pids/$node.pid")"
    rm -f "cluster/pids/$node.pid"
    echo "$node killed"
    ;;
remove)
    node=${2:?usage: cluster/start.sh remove node-b}
    if [[ -f cluster/pids/$node.pid ]] && kill -0 "$(cat "cluster/pids/$node.pid")" 2>/dev/null; then
        echo "$node is running: drain it instead (POST /api/v1/cluster/drain)" >&2
        exit 1
    fi
    # Any member that answers coordinates the removal (the dev admin of the shipped configs).
    for config in cluster/node-*.toml; do
        port=$(sed -n 's/^bind = "127.0.0.1:\([0-9]*\)"/\1/p' "$config")
        token=$(curl -fs -H 'content-type: application/json' \
            -d '{"email":"admin@contrail.local","password":"change-me-admin"}' \
            "http://127.0.0.1:$port/api/v1/auth/signin" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p') || continue
        [[ -n $token ]] || continue
        curl -sS --fail-with-body -H "authorization: Bearer $token" -H 'content-type: application/json' \
            -d "{\"node_id\":\"$node\"}" "http://127.0.0.1:$port/api/v1/cluster/remove" >/dev/null
        rm -rf "cluster/data/$node"
        echo "$node removed; its replicas are rebuilt on the others (GET /api/v1/cluster shows them)"
        exit 0
    done
    echo "no member answered" >&2
    exit 1
    ;;
stop)
    for pidfile in cluster/pids/*.pid; do
        [[ -e $pidfile ]] || continue
        kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    echo "stopped"
    ;;
*)
    echo "usage: cluster/start.sh [start | add <node> | kill <node> | remove <node> | stop]" >&2
    exit 2
    ;;
esac
