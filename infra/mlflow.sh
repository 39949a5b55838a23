#!/usr/bin/env bash
# The MLflow tracking server of the distributed footprint (issue 14): model registry and tracking
# in PostgreSQL (infra/postgres.sh's cluster, schema "mlflow" of its database), artifacts served
# by the server itself from a folder, bound to 127.0.0.1. The hub reaches it with
# HUB_MODEL_REGISTRY=mlflow HUB_MLFLOW_TRACKING_URI="$(bash infra/mlflow.sh url)".
#
#   infra/mlflow.sh start    start PostgreSQL if needed, then the server; wait for /health (bounded)
#   infra/mlflow.sh stop     SIGTERM to the server's process group, SIGKILL after a bound
#   infra/mlflow.sh status   exit 0 only when /health answers OK
#   infra/mlflow.sh url      print http://127.0.0.1:PORT
#   infra/mlflow.sh logs     the tail of the server's log (LINES=200 by default)
#
# State, logs: $HUB_INFRA_DIR/mlflow/{mlflow.pid,mlflow.log,artifacts/}
#
# Settings (environment):
#   HUB_MLFLOW_PORT (default: this checkout's block, infra/env.sh), HUB_MLFLOW_BIN (default: the
#   checkout's .venv/bin/mlflow, installed by `make setup` from the lock file),
#   HUB_MLFLOW_START_TIMEOUT=600 (s; measured 4.5 min on two cores at load ~30),
#   HUB_MLFLOW_STOP_TIMEOUT=15
set -euo pipefail

# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" # HUB_INFRA_DIR and ports of this checkout
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
STATE_DIR="$HUB_INFRA_DIR/mlflow"
PID_FILE="$STATE_DIR/mlflow.pid"
LOG_FILE="$STATE_DIR/mlflow.log"

HOST="127.0.0.1"
PORT="$HUB_MLFLOW_PORT"
PROC_MATCH="mlflow" # the launched process is `mlflow server ...` (pids are reused)
START_TIMEOUT="${HUB_MLFLOW_START_TIMEOUT:-600}"
STOP_TIMEOUT="${HUB_MLFLOW_STOP_TIMEOUT:-15}"
MLFLOW_BIN="${HUB_MLFLOW_BIN:-$ROOT/.venv/bin/mlflow}"

SCRIPT="mlflow.sh"
COMPONENT="MLflow"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

healthy() {
    [[ "$(curl -s -m "${1:-2}" "http://$HOST:$PORT/health" 2>/dev/null)" == "OK" ]]
}

backend_url() {
    # MLflow's tables in their own schema of the hub's database (search_path set per connection).
    local url
    url="$(bash "$ROOT/infra/postgres.sh" url | tail -n 1)"
    printf '%s?options=-csearch_path%%3Dmlflow\n' "$url"
}

cmd_start() {
    local pid
    if pid="$(running_pid)"; then
        if healthy 5; then
            log "MLflow already running (pid $pid) on $HOST:$PORT"
            return 0
        fi
        die "MLflow (pid $pid) runs but does not answer on $HOST:$PORT; see 'infra/mlflow.sh logs' or run 'infra/mlflow.sh stop' first."
    fi
    if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
        die "Port $HOST:$PORT is taken by another process; set HUB_MLFLOW_PORT to a free port."
    fi
    [[ -x "$MLFLOW_BIN" ]] || die "No MLflow at $MLFLOW_BIN: run 'make setup' (the lock file installs it) or set HUB_MLFLOW_BIN."
    bash "$ROOT/infra/postgres.sh" start
    bash "$ROOT/infra/postgres.sh" psql -q -c "CREATE SCHEMA IF NOT EXISTS mlflow" >/dev/null
    mkdir -p "$STATE_DIR/artifacts"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    log "starting MLflow $("$MLFLOW_BIN" --version 2>/dev/null | awk '{print $NF}') on $HOST:$PORT"
    local started=$SECONDS
    # No MLflow job runner: it starts a second process (huey, periodic scorers) that imports
    # MLflow and opens the store beside the server, doubling the start-up CPU; the hub uses the
    # registry only.
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
    launch "$LOG_FILE" "$MLFLOW_BIN" server --host "$HOST" --port "$PORT" --workers 1 \
        --backend-store-uri "$(backend_url)" --serve-artifacts \
        --artifacts-destination "$STATE_DIR/artifacts"
    pid=$LAUNCHED_PID
    while ((SECONDS - started < START_TIMEOUT)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cmd_logs >&2 || true
            die "MLflow exited during start-up (log tail above)."
        fi
        if healthy 2; then
            launch_succeeded
            log "MLflow is up (pid $pid) after $((SECONDS - started)) s"
            return 0
        fi
        sleep 1
    done
    cmd_logs >&2 || true
    die "MLflow did not answer on $HOST:$PORT within $START_TIMEOUT s (log tail above); stopping it."
}

cmd_stop() {
    local pid
    # `mlflow server` runs its web server as a child: the group (setsid at launch) goes first.
    if pid="$(running_pid)"; then
        kill -TERM -- "-$pid" 2>/dev/null || true
    fi
    stop_process
}

cmd_status() { process_status 5; }

cmd_url() { printf 'http://%s:%s\n' "$HOST" "$PORT"; }

cmd_logs() { tail_logs "$LOG_FILE"; }

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) cmd_url ;;
logs) cmd_logs ;;
*)
    printf 'usage: %s start|stop|status|url|logs\n' "$0" >&2
    exit 2
    ;;
esac
