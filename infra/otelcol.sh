#!/usr/bin/env bash
# An OpenTelemetry Collector on this machine without Docker: a distribution of core components
# (OTLP receiver, batch processor, debug exporter) built with the collector's builder (ocb) from the
# Go module proxy, receiving the hub's traces over OTLP/HTTP on 127.0.0.1.
#
#   infra/otelcol.sh build    build ocb, then the collector (once; cached)
#   infra/otelcol.sh start    build if needed, start, wait until it answers (bounded); idempotent
#   infra/otelcol.sh stop     SIGTERM, wait, SIGKILL after a bound; a no-op when not running
#   infra/otelcol.sh status   exit 0 only when the OTLP/HTTP receiver answers
#   infra/otelcol.sh env      print the hub's settings that send traces here (eval-able)
#   infra/otelcol.sh path     print the binary's path (exit 1 when it is not built yet)
#   infra/otelcol.sh logs     the tail of the collector's log: every span received, in detail
#
# Binaries:    $HOME/.cache/hub/bin/{ocb,otelcol-hub}-v<version>   (never in the repository)
# Config:      infra/otelcol/builder.yaml (what is built), infra/otelcol/config.yaml (how it runs)
# State, logs: $HUB_INFRA_DIR/otelcol/{otelcol.pid,otelcol.log}
#
# Settings (environment):
#   HUB_OTEL_PORT (default: this checkout's block, infra/env.sh; OTLP/HTTP), HUB_OTEL_START_TIMEOUT=30 (s),
#   HUB_OTEL_STOP_TIMEOUT=10 (s), GO (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

OTELCOL_VERSION="v0.165.0"

INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/env.sh
source "$INFRA/env.sh" # HUB_INFRA_DIR and ports of this checkout
BIN_DIR="$HOME/.cache/hub/bin"
OCB="$BIN_DIR/ocb-$OTELCOL_VERSION"
BIN="$BIN_DIR/otelcol-hub-$OTELCOL_VERSION"
STATE_DIR="$HUB_INFRA_DIR/otelcol"
PID_FILE="$STATE_DIR/otelcol.pid"
LOG_FILE="$STATE_DIR/otelcol.log"
PROC_MATCH="otelcol-hub-$OTELCOL_VERSION"

HOST="127.0.0.1"
PORT="$HUB_OTEL_PORT"
START_TIMEOUT="${HUB_OTEL_START_TIMEOUT:-30}"
STOP_TIMEOUT="${HUB_OTEL_STOP_TIMEOUT:-10}"

SCRIPT="otelcol.sh"
COMPONENT="OpenTelemetry Collector"
# shellcheck source=infra/lib.sh
source "$INFRA/lib.sh"

cmd_build() {
    if [[ -x "$BIN" ]]; then
        log "collector $OTELCOL_VERSION already built: $BIN"
        return 0
    fi
    local go tmp started=$SECONDS
    go="$(go_bin 1.26)"
    tmp="$(mktemp -d)"
    mkdir -p "$BIN_DIR"
    if [[ ! -x "$OCB" ]]; then
        log "building the collector builder (ocb) $OTELCOL_VERSION from the Go module proxy"
        if ! GOBIN="$tmp/bin" CGO_ENABLED=0 "$go" install \
            "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION" >"$tmp/ocb.log" 2>&1; then
            tail -n 30 "$tmp/ocb.log" >&2
            rm -rf "$tmp"
            die "building ocb $OTELCOL_VERSION failed (log above)."
        fi
        mv -f "$tmp/bin/builder" "$OCB"
    fi
    log "building the collector (infra/otelcol/builder.yaml) with ocb (minutes on a cold cache)"
    sed "s|^dist:|dist:\n  output_path: $tmp/dist|" "$INFRA/otelcol/builder.yaml" >"$tmp/builder.yaml"
    if ! (cd "$tmp" && PATH="$(dirname "$go"):$PATH" CGO_ENABLED=0 "$OCB" --config "$tmp/builder.yaml" \
        >"$tmp/build.log" 2>&1); then
        tail -n 30 "$tmp/build.log" >&2
        rm -rf "$tmp"
        die "building the collector failed (log above)."
    fi
    mv -f "$tmp/dist/otelcol-hub" "$BIN.partial"
    mv -f "$BIN.partial" "$BIN"
    rm -rf "$tmp"
    log "built $BIN in $((SECONDS - started)) s"
}

# The OTLP/HTTP receiver answers a POST of an empty JSON request with 200.
healthy() {
    curl -fsS -m "${1:-2}" -o /dev/null -H 'Content-Type: application/json' -d '{}' \
        "http://$HOST:$PORT/v1/traces" 2>/dev/null
}

cmd_start() {
    local pid
    if pid="$(running_pid)"; then
        if healthy 5; then
            log "collector already running (pid $pid) on $HOST:$PORT"
            return 0
        fi
        die "the collector (pid $pid) runs but does not answer on $HOST:$PORT; see 'infra/otelcol.sh logs' or run 'infra/otelcol.sh stop' first."
    fi
    if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
        die "Port $HOST:$PORT is taken by another process; set HUB_OTEL_PORT to a free port."
    fi
    [[ -x "$BIN" ]] || cmd_build
    mkdir -p "$STATE_DIR"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    log "starting the collector $OTELCOL_VERSION, OTLP/HTTP on $HOST:$PORT"
    local started=$SECONDS
    HUB_OTEL_PORT="$PORT" launch "$LOG_FILE" "$BIN" --config "$INFRA/otelcol/config.yaml"
    pid=$LAUNCHED_PID
    while ((SECONDS - started < START_TIMEOUT)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cmd_logs >&2 || true
            die "the collector exited during start-up (log tail above)."
        fi
        if healthy 1; then
            launch_succeeded
            log "the collector is up (pid $pid) after $((SECONDS - started)) s"
            return 0
        fi
        sleep 0.2
    done
    cmd_logs >&2 || true
    die "the collector did not answer on $HOST:$PORT within $START_TIMEOUT s (log tail above); stopping it."
}

cmd_env() {
    printf 'HUB_OTEL_EXPORTER=otlp\n'
    printf 'HUB_OTEL_ENDPOINT=http://%s:%s/v1/traces\n' "$HOST" "$PORT"
}

cmd_path() {
    [[ -x "$BIN" ]] || return 1
    printf '%s\n' "$BIN"
}

case "${1:-}" in
build) cmd_build ;;
start)
    one_start_at_a_time
    cmd_start
    ;;
stop)
    one_start_at_a_time
    stop_process
    ;;
status) process_status 5 ;;
env) cmd_env ;;
path) cmd_path ;;
logs) tail_logs "$LOG_FILE" ;;
*)
    printf 'usage: %s build|start|stop|status|env|path|logs\n' "$0" >&2
    exit 2
    ;;
esac
