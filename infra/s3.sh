#!/usr/bin/env bash
# An S3-compatible object store on this machine without Docker: the Versity S3 Gateway
# (versitygw, Apache-2.0) serving a folder on 127.0.0.1 (its posix backend: a bucket is a
# folder, an object a file). MinIO's server is AGPL-licensed and is not used.
#
#   infra/s3.sh build    build versitygw from the Go module proxy (once; cached)
#   infra/s3.sh start    build if needed, start, wait until it answers (bounded); idempotent
#   infra/s3.sh stop     SIGTERM, wait, SIGKILL after a bound; a no-op when not running
#   infra/s3.sh status   exit 0 only when the server answers an S3 request
#   infra/s3.sh env      print the HUB_S3_* settings that reach this server (eval-able)
#   infra/s3.sh path     print the binary's path (exit 1 when it is not built yet)
#   infra/s3.sh logs     the tail of the server's log (LINES=200 by default)
#   infra/s3.sh wipe     delete every bucket and object (refused while the server runs)
#
# Binary:      $HOME/.cache/hub/bin/versitygw-<version>   (never in the repository)
# State, logs: ${HUB_INFRA_DIR:-$HOME/.cache/hub/infra}/s3/{data,versitygw.pid,versitygw.log}
#
# Settings (environment):
#   HUB_S3_PORT=19333, HUB_S3_ACCESS_KEY=hub-dev, HUB_S3_SECRET_KEY=hub-dev-secret
#   HUB_S3_START_TIMEOUT=30 (s), HUB_S3_STOP_TIMEOUT=10 (s)
#   GO (default: go on PATH, else /usr/local/go/bin/go)
#
# Chosen by measurement on the 2-core machines (2026-12-02, other builds running beside it):
# versitygw v1.8.0 builds in 296 s cold (61 MB binary) and starts in 0.19 s; `rclone serve s3`
# (rclone v1.76.0, MIT) in 496 s (122 MB: every rclone backend) and 0.24 s; the `minio` Python
# client works against both, conditional writes (If-None-Match: *, which keeps objects
# write-once) included. SeaweedFS needs a wrapper module and ~12 min / ~6 GB of caches.
set -euo pipefail

VGW_VERSION="v1.8.0"

BIN_DIR="$HOME/.cache/hub/bin"
BIN="$BIN_DIR/versitygw-$VGW_VERSION"
STATE_DIR="${HUB_INFRA_DIR:-$HOME/.cache/hub/infra}/s3"
DATA_DIR="$STATE_DIR/data"
PID_FILE="$STATE_DIR/versitygw.pid"
PROC_MATCH="versitygw-$VGW_VERSION"  # in the server's command line (pids are reused)
LOG_FILE="$STATE_DIR/versitygw.log"

HOST="127.0.0.1"
PORT="${HUB_S3_PORT:-19333}"
ACCESS_KEY="${HUB_S3_ACCESS_KEY:-hub-dev}"
SECRET_KEY="${HUB_S3_SECRET_KEY:-hub-dev-secret}"
START_TIMEOUT="${HUB_S3_START_TIMEOUT:-30}"
STOP_TIMEOUT="${HUB_S3_STOP_TIMEOUT:-10}"

SCRIPT="s3.sh"
COMPONENT="S3 (versitygw)"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# -- build ----------------------------------------------------------------------------------------
cmd_build() {
    if [[ -x "$BIN" ]]; then
        log "versitygw $VGW_VERSION already built: $BIN"
        return 0
    fi
    local go tmp started=$SECONDS
    go="$(go_bin 1.25)"
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $tmp is local
    trap "rm -rf '$tmp'" RETURN
    mkdir -p "$BIN_DIR"
    log "building versitygw $VGW_VERSION with $("$go" version | cut -d' ' -f3) from the Go module proxy (~5 min on a cold cache)"
    if ! GOBIN="$tmp/bin" CGO_ENABLED=0 GOFLAGS=-trimpath "$go" install \
        "github.com/versity/versitygw/cmd/versitygw@$VGW_VERSION" >"$tmp/build.log" 2>&1; then
        tail -n 40 "$tmp/build.log" >&2
        die "building versitygw $VGW_VERSION failed (log above)."
    fi
    mv -f "$tmp/bin/versitygw" "$BIN.partial"
    chmod 0755 "$BIN.partial"
    mv -f "$BIN.partial" "$BIN"  # atomic: a concurrent start never runs half a binary
    log "built $BIN in $((SECONDS - started)) s"
}

# -- process --------------------------------------------------------------------------------------

# Any HTTP answer counts (an unsigned request gets 403 AccessDenied from a healthy server).
healthy() {
    local timeout="${1:-2}" code
    if command -v curl >/dev/null; then
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time "$timeout" "http://$HOST:$PORT/" 2>/dev/null)" || true
        [[ "$code" =~ ^[2-4][0-9][0-9]$ ]]
    else
        (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
    fi
}

cmd_start() {
    already_running HUB_S3_PORT && return 0
    cmd_build
    mkdir -p "$DATA_DIR"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    log "starting versitygw $VGW_VERSION on $HOST:$PORT, objects under $DATA_DIR"
    local started=$SECONDS
    # setsid: the server survives the shell (and a test session) that started it. Credentials go
    # through the environment, not the command line (other users can read /proc/<pid>/cmdline).
    ROOT_ACCESS_KEY_ID="$ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$SECRET_KEY" \
        launch "$LOG_FILE" "$BIN" --port "$HOST:$PORT" --quiet posix "$DATA_DIR"
    await_healthy "$started" 0.1
    log "S3 endpoint: $(cmd_env | tr '\n' ' ')"
}

cmd_stop() { stop_process; }

cmd_status() { process_status 5; }

cmd_env() {
    printf 'HUB_S3_ENDPOINT=%s\n' "$HOST:$PORT"
    printf 'HUB_S3_ACCESS_KEY=%s\n' "$ACCESS_KEY"
    printf 'HUB_S3_SECRET_KEY=%s\n' "$SECRET_KEY"
}

cmd_path() {
    [[ -x "$BIN" ]] || return 1
    printf '%s\n' "$BIN"
}

cmd_logs() { tail_logs "$LOG_FILE"; }

cmd_wipe() {
    if running_pid >/dev/null; then
        die "S3 is running; 'infra/s3.sh stop' first, then wipe."
    fi
    rm -rf "$DATA_DIR"
    log "deleted every bucket under $DATA_DIR"
}

case "${1:-}" in
build) cmd_build ;;
start)
    one_start_at_a_time
    cmd_start
    ;;
stop)
    one_start_at_a_time
    cmd_stop
    ;;
status) cmd_status ;;
env) cmd_env ;;
path) cmd_path ;;
logs) cmd_logs ;;
wipe) cmd_wipe ;;
*)
    printf 'usage: %s build|start|stop|status|env|path|logs|wipe\n' "$0" >&2
    exit 2
    ;;
esac
