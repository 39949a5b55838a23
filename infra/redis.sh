#!/usr/bin/env bash
# Redis on this machine without Docker (Debian's redis-server): one server on 127.0.0.1, no
# persistence, for the feature store's online store and the console's sessions.
#
#   infra/redis.sh install  apt-get install redis-server, only when no redis-server is on PATH
#   infra/redis.sh start    install if needed, start, wait until PING answers PONG (bounded)
#   infra/redis.sh stop     SIGTERM, wait, SIGKILL after a bound; a no-op when not running
#   infra/redis.sh status   exit 0 only when the server answers PING
#   infra/redis.sh url      print redis://127.0.0.1:PORT/0
#   infra/redis.sh logs     the tail of the server's log (LINES=200 by default)
#
# State, logs: $HUB_INFRA_DIR/redis/{redis.pid,redis.log}
#
# Settings (environment):
#   HUB_REDIS_PORT (default: this checkout's block, infra/env.sh), HUB_REDIS_START_TIMEOUT=20 (s),
#   HUB_REDIS_STOP_TIMEOUT=10 (s)
#
# The Debian package's own service (port 6379) is neither used nor started here: this script runs
# its own process with a command-line configuration (no save, no append-only file, protected mode).
set -euo pipefail

# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" # HUB_INFRA_DIR and ports of this checkout
STATE_DIR="$HUB_INFRA_DIR/redis"
PID_FILE="$STATE_DIR/redis.pid"
LOG_FILE="$STATE_DIR/redis.log"

HOST="127.0.0.1"
PORT="$HUB_REDIS_PORT"
PROC_MATCH="redis-server $HOST:$PORT" # redis sets its process title to this (pids are reused)
START_TIMEOUT="${HUB_REDIS_START_TIMEOUT:-20}"
STOP_TIMEOUT="${HUB_REDIS_STOP_TIMEOUT:-10}"

SCRIPT="redis.sh"
COMPONENT="Redis"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd_install() {
    if command -v redis-server >/dev/null; then
        log "redis-server already installed: $(redis-server --version | cut -d' ' -f1-3)"
        return 0
    fi
    apt_get_install redis-server
}

healthy() {
    [[ "$(timeout "${1:-2}" redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null)" == "PONG" ]]
}

cmd_start() {
    already_running HUB_REDIS_PORT && return 0
    command -v redis-server >/dev/null || cmd_install
    mkdir -p "$STATE_DIR"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    log "starting $(redis-server --version | cut -d' ' -f1-3) on $HOST:$PORT"
    local started=$SECONDS
    launch "$LOG_FILE" redis-server --bind "$HOST" --port "$PORT" --protected-mode yes \
        --daemonize no --save "" --appendonly no --dir "$STATE_DIR" --logfile ""
    await_healthy "$started"
}

cmd_stop() { stop_process; }

cmd_status() { process_status 5; }

cmd_url() { printf 'redis://%s:%s/0\n' "$HOST" "$PORT"; }

cmd_logs() { tail_logs "$LOG_FILE"; }

case "${1:-}" in
install) cmd_install ;;
start)
    one_start_at_a_time
    cmd_start
    ;;
stop)
    one_start_at_a_time
    cmd_stop
    ;;
status) cmd_status ;;
url) cmd_url ;;
logs) cmd_logs ;;
*)
    printf 'usage: %s install|start|stop|status|url|logs\n' "$0" >&2
    exit 2
    ;;
esac
