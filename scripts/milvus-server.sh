#!/usr/bin/env bash
# Run the real Milvus standalone server (PyPI `milvus`, installed by the dev extra) for tests and benchmarks.
#
#   scripts/milvus-server.sh start DIR [PORT]   prints MEMBOT_MILVUS_URI=http://127.0.0.1:PORT once it answers
#   scripts/milvus-server.sh stop DIR
#
# Milvus binds every interface whatever its config says, so it runs inside a private network namespace that has
# only loopback; a socat bridge over a Unix socket in DIR makes it reachable from the host on 127.0.0.1 only.
# Needs root (ip netns). DIR keeps the data, the log (DIR/milvus.log) and the bridge's pids.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

usage() { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }
[ $# -ge 2 ] || usage
ACTION=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)
NS="membot-milvus-$(printf '%s' "$DIR" | sha1sum | cut -c1-10)"

need_socat() {
    command -v socat >/dev/null && return
    echo "installing socat (apt-get)..." >&2
    (apt-get install -y -qq socat >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq socat >/dev/null; })
}

milvus_binary() {
    for c in "${MILVUS_SERVER:-}" "$ROOT/.venv/bin/milvus-server" "$(command -v milvus-server || true)"; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return; }
    done
    echo "milvus-server not found: install the dev extra (pip install -e '.[dev]'), or set MILVUS_SERVER" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

kill_pidfile() {
    local file=$1
    [ -f "$file" ] || return 0
    local pid
    pid=$(cat "$file")
    # Each process was started with setsid: its pid is its process group, which holds its children too.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$file"
}

stop() {
    kill_pidfile "$DIR/bridge.pid"
    kill_pidfile "$DIR/inner-bridge.pid"
    kill_pidfile "$DIR/milvus.pid"
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns delete "$NS" 2>/dev/null || true
    rm -f "$DIR/milvus.sock" "$DIR/uri"
}

wait_ready() {
    local uri=$1
    for _ in $(seq 1 180); do
        if ! kill -0 "$(cat "$DIR/milvus.pid")" 2>/dev/null; then
            echo "Milvus exited; see $DIR/milvus.log" >&2; tail -20 "$DIR/milvus.log" >&2; return 1
        fi
        if "$PY" - "$uri" >/dev/null 2>&1 <<'EOF'
import sys
from pymilvus import MilvusClient
MilvusClient(uri=sys.argv[1], timeout=2).list_collections()
EOF
        then return 0; fi
        sleep 1
    done
    echo "Milvus did not answer within 180 s; see $DIR/milvus.log" >&2
    return 1
}

start() {
    local port=${1:-$(free_port)}
    [ -f "$DIR/milvus.pid" ] && kill -0 "$(cat "$DIR/milvus.pid")" 2>/dev/null && {
        echo "Milvus already runs for $DIR: MEMBOT_MILVUS_URI=$(cat "$DIR/uri")"; return; }
    stop
    need_socat
    local binary
    binary=$(milvus_binary)
    PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
    ip netns add "$NS"
    ip netns exec "$NS" ip link set lo up
    mkdir -p "$DIR/data"
    setsid ip netns exec "$NS" "$binary" --data "$DIR/data" >"$DIR/milvus.log" 2>&1 &
    echo $! >"$DIR/milvus.pid"
    # Inside the namespace: the Unix socket (a file, so the host sees it) forwards to Milvus's own port.
    setsid ip netns exec "$NS" socat "UNIX-LISTEN:$DIR/milvus.sock,fork,unlink-early" TCP:127.0.0.1:19530,nodelay \
        >>"$DIR/bridge.log" 2>&1 &
    echo $! >"$DIR/inner-bridge.pid"
    # On the host: 127.0.0.1 only, never another interface.
    setsid socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,nodelay" "UNIX-CONNECT:$DIR/milvus.sock" \
        >>"$DIR/bridge.log" 2>&1 &
    echo $! >"$DIR/bridge.pid"
    local uri="http://127.0.0.1:$port"
    if ! wait_ready "$uri"; then stop; exit 1; fi
    echo "$uri" >"$DIR/uri"
    echo "MEMBOT_MILVUS_URI=$uri"
}

case "$ACTION" in
    start) start "${3:-}" ;;
    stop) stop ;;
    *) usage ;;
esac
