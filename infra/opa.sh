#!/usr/bin/env bash
# Open Policy Agent on this machine without Docker: one server on 127.0.0.1 serving the hub's
# policies (governance/policies, the same .rego files the embedded engine evaluates).
#
#   infra/opa.sh build    build the opa binary from the Go module proxy (once; cached)
#   infra/opa.sh start    build if needed, start, wait until /health answers (bounded)
#   infra/opa.sh stop     SIGTERM, wait, SIGKILL after a bound; a no-op when not running
#   infra/opa.sh status   exit 0 only when the server answers /health
#   infra/opa.sh test     `opa test -v governance/policies` (the policies' own Rego tests)
#   infra/opa.sh path     print the binary's path (exit 1 when it is not built yet)
#   infra/opa.sh logs     the tail of the server's log (LINES=200 by default)
#
# Binary:      $HOME/.cache/hub/bin/opa-<version>   (never in the repository)
# State, logs: $HUB_INFRA_DIR/opa/{opa.pid,opa.log}
#
# Settings (environment):
#   HUB_OPA_PORT (default: this checkout's block, infra/env.sh), HUB_OPA_START_TIMEOUT=30 (s), HUB_OPA_STOP_TIMEOUT=10 (s)
#   HUB_OPA_POLICIES (default: the repository's governance/policies)
#   GO (default: go on PATH, else /usr/local/go/bin/go)
#
# OPA has no release on any registry reachable here, so the binary is built from source through
# the Go module proxy: `go install github.com/open-policy-agent/opa@<version>`; if `go install`
# refuses the module (replace directives), a two-line main package that calls OPA's cmd package is
# built instead.
set -euo pipefail

OPA_VERSION="v1.22.3"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$HOME/.cache/hub/bin"
BIN="$BIN_DIR/opa-$OPA_VERSION"
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"  # HUB_INFRA_DIR and ports of this checkout
STATE_DIR="$HUB_INFRA_DIR/opa"
PID_FILE="$STATE_DIR/opa.pid"
PROC_MATCH="opa-$OPA_VERSION"  # in the server's command line (pids are reused)
LOG_FILE="$STATE_DIR/opa.log"
POLICIES="${HUB_OPA_POLICIES:-$REPO_ROOT/governance/policies}"

HOST="127.0.0.1"
PORT="$HUB_OPA_PORT"
START_TIMEOUT="${HUB_OPA_START_TIMEOUT:-30}"
STOP_TIMEOUT="${HUB_OPA_STOP_TIMEOUT:-10}"

SCRIPT="opa.sh"
COMPONENT="OPA"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# -- build ----------------------------------------------------------------------------------------
cmd_build() {
    if [[ -x "$BIN" ]]; then
        log "opa $OPA_VERSION already built: $BIN"
        return 0
    fi
    local go tmp started=$SECONDS
    go="$(go_bin 1.23)"
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $tmp is local
    trap "rm -rf '$tmp'" RETURN
    mkdir -p "$BIN_DIR"
    log "building opa $OPA_VERSION with $("$go" version | cut -d' ' -f3) from the Go module proxy (minutes on a cold cache)"
    if GOBIN="$tmp/bin" CGO_ENABLED=0 GOFLAGS=-trimpath "$go" install \
        "github.com/open-policy-agent/opa@$OPA_VERSION" >"$tmp/build.log" 2>&1; then
        :
    else
        log "go install refused ($(tail -n 1 "$tmp/build.log")); building a wrapper main package"
        mkdir -p "$tmp/wrap"
        cat >"$tmp/wrap/main.go" <<'EOF'
package main

import (
	"os"

	"github.com/open-policy-agent/opa/cmd"
)

func main() {
	if err := cmd.RootCommand.Execute(); err != nil {
		os.Exit(1)
	}
}
EOF
        (
            cd "$tmp/wrap"
            "$go" mod init hub.local/opa >/dev/null 2>&1
            "$go" get "github.com/open-policy-agent/opa@$OPA_VERSION" >>"$tmp/build.log" 2>&1
            CGO_ENABLED=0 "$go" build -trimpath -o "$tmp/bin/opa" . >>"$tmp/build.log" 2>&1
        ) || {
            tail -n 40 "$tmp/build.log" >&2
            die "building opa $OPA_VERSION failed (log above)."
        }
    fi
    mv -f "$tmp/bin/opa" "$BIN"
    chmod 0755 "$BIN"
    log "built $BIN in $((SECONDS - started)) s ($("$BIN" version | head -n 1))"
}

# -- process --------------------------------------------------------------------------------------

healthy() {
    local timeout="${1:-2}"
    if command -v curl >/dev/null; then
        curl -fsS --max-time "$timeout" "http://$HOST:$PORT/health" >/dev/null 2>&1
    else
        (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
    fi
}

cmd_start() {
    already_running HUB_OPA_PORT && return 0
    [[ -d "$POLICIES" ]] || die "The policy folder $POLICIES does not exist."
    cmd_build
    mkdir -p "$STATE_DIR"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    log "starting OPA $OPA_VERSION on $HOST:$PORT with $POLICIES"
    local started=$SECONDS
    # setsid: the server survives the shell (and a test session) that started it. The *_test.rego
    # modules are loaded too (harmless: nothing queries them); --watch reloads edited files.
    launch "$LOG_FILE" "$BIN" run --server --addr "$HOST:$PORT" --watch \
        --log-level error --disable-telemetry "$POLICIES"
    await_healthy "$started"
}

cmd_stop() { stop_process; }

cmd_status() { process_status 5; }

cmd_test() {
    cmd_build
    "$BIN" test -v "$POLICIES"
}

cmd_path() {
    [[ -x "$BIN" ]] || return 1
    printf '%s\n' "$BIN"
}

cmd_logs() { tail_logs "$LOG_FILE"; }

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
test) cmd_test ;;
path) cmd_path ;;
logs) cmd_logs ;;
*)
    printf 'usage: %s build|start|stop|status|test|path|logs\n' "$0" >&2
    exit 2
    ;;
esac
