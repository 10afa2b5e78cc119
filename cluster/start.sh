#!/usr/bin/env bash
# Starts a local Contrail cluster on loopback, or stops it.
#
#   cluster/start.sh              build (release) and start node-a, node-b, node-c
#   cluster/start.sh add node-d   start one more node; it joins through node-a
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
stop)
    for pidfile in cluster/pids/*.pid; do
        [[ -e $pidfile ]] || continue
        kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    echo "stopped"
    ;;
*)
    echo "usage: cluster/start.sh [start | add <node> | stop]" >&2
    exit 2
    ;;
esac
