#!/usr/bin/env bash
# Prometheus on this machine without Docker (Debian's prometheus package): one server on
# 127.0.0.1 that scrapes the hub's /metrics and evaluates deploy/prometheus/rules.
#
#   infra/prometheus.sh install  apt-get install prometheus, only when no prometheus is on PATH
#   infra/prometheus.sh start    install if needed, write the configuration, start, wait (bounded)
#   infra/prometheus.sh reload   rewrite the configuration and ask the running server to reload it
#   infra/prometheus.sh stop     SIGTERM, wait, SIGKILL after a bound; a no-op when not running
#   infra/prometheus.sh status   exit 0 only when /-/ready answers
#   infra/prometheus.sh check    promtool check config (written, not started) and the rule files
#   infra/prometheus.sh url      print http://127.0.0.1:PORT
#   infra/prometheus.sh logs     the tail of the server's log (LINES=200 by default)
#
# State, logs: $HUB_INFRA_DIR/prometheus/{prometheus.yml,data,prometheus.pid,prometheus.log}
#
# Settings (environment):
#   HUB_PROMETHEUS_PORT (default: this checkout's block, infra/env.sh)
#   HUB_PROMETHEUS_TARGETS            comma-separated host:port of hubs to scrape
#                                     (default 127.0.0.1:$HUB_INFRA_HUB_PORT)
#   HUB_PROMETHEUS_SCRAPE_TOKEN_FILE  a file holding the hub's scrape token (HUB_METRICS_TOKEN_FILE
#                                     on the hub); sent as `Authorization: Bearer`. Unset: no
#                                     credentials (the hub then answers 401)
#   HUB_PROMETHEUS_SCRAPE_INTERVAL=5s, HUB_PROMETHEUS_RULES (default deploy/prometheus/rules)
#   HUB_PROMETHEUS_START_TIMEOUT=30 (s), HUB_PROMETHEUS_STOP_TIMEOUT=10 (s)
#
# The Debian package's own service (0.0.0.0:9090) is neither used nor started: this script runs
# its own process, bound to 127.0.0.1, with its own configuration and storage.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" # HUB_INFRA_DIR and ports of this checkout
STATE_DIR="$HUB_INFRA_DIR/prometheus"
PID_FILE="$STATE_DIR/prometheus.pid"
LOG_FILE="$STATE_DIR/prometheus.log"
CONFIG="$STATE_DIR/prometheus.yml"

HOST="127.0.0.1"
PORT="$HUB_PROMETHEUS_PORT"
PROC_MATCH="$STATE_DIR/prometheus.yml" # in the server's command line (pids are reused)
TARGETS="${HUB_PROMETHEUS_TARGETS:-127.0.0.1:$HUB_INFRA_HUB_PORT}"
TOKEN_FILE="${HUB_PROMETHEUS_SCRAPE_TOKEN_FILE:-}"
INTERVAL="${HUB_PROMETHEUS_SCRAPE_INTERVAL:-5s}"
RULES="${HUB_PROMETHEUS_RULES:-$REPO_ROOT/deploy/prometheus/rules}"
START_TIMEOUT="${HUB_PROMETHEUS_START_TIMEOUT:-30}"
STOP_TIMEOUT="${HUB_PROMETHEUS_STOP_TIMEOUT:-10}"

SCRIPT="prometheus.sh"
COMPONENT="Prometheus"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd_install() {
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        log "prometheus already installed: $(prometheus --version 2>&1 | head -n 1)"
        return 0
    fi
    apt_get_install prometheus
}

write_config() {
    mkdir -p "$STATE_DIR/data"
    local targets="" target auth=""
    IFS=',' read -ra list <<<"$TARGETS"
    for target in "${list[@]}"; do
        [[ "$target" =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] ||
            die "HUB_PROMETHEUS_TARGETS holds '$target', which is not host:port; give e.g. 127.0.0.1:8080."
        targets+="'$target', "
    done
    if [[ -n "$TOKEN_FILE" ]]; then
        [[ -r "$TOKEN_FILE" ]] || die "HUB_PROMETHEUS_SCRAPE_TOKEN_FILE=$TOKEN_FILE cannot be read; point it at the hub's scrape token file."
        auth="    authorization:
      type: Bearer
      credentials_file: '$TOKEN_FILE'"
    fi
    cat >"$CONFIG" <<EOC
# Written by infra/prometheus.sh; edits are overwritten on the next start or reload.
global:
  scrape_interval: $INTERVAL
  evaluation_interval: $INTERVAL
  external_labels:
    checkout_slot: '$HUB_INFRA_SLOT'
rule_files:
  - '$RULES/*.yml'
scrape_configs:
  - job_name: hub
    metrics_path: /metrics
$auth
    static_configs:
      - targets: [${targets%, }]
  - job_name: prometheus
    static_configs:
      - targets: ['$HOST:$PORT']
EOC
}

healthy() {
    curl -fsS --max-time "${1:-2}" "http://$HOST:$PORT/-/ready" >/dev/null 2>&1
}

cmd_start() {
    command -v curl >/dev/null || die "curl is needed (apt-get install curl)."
    already_running HUB_PROMETHEUS_PORT && return 0
    command -v prometheus >/dev/null || cmd_install
    write_config
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    log "starting $(prometheus --version 2>&1 | head -n 1 | cut -d' ' -f1-3) on $HOST:$PORT, scraping $TARGETS"
    local started=$SECONDS
    launch "$LOG_FILE" prometheus --config.file="$CONFIG" --storage.tsdb.path="$STATE_DIR/data" \
        --web.listen-address="$HOST:$PORT" --web.enable-lifecycle --log.level=warn
    await_healthy "$started"
}

cmd_reload() {
    running_pid >/dev/null || die "Prometheus is not running; 'infra/prometheus.sh start' first."
    write_config
    curl -fsS --max-time 10 -X POST "http://$HOST:$PORT/-/reload" >/dev/null ||
        die "Prometheus refused to reload $CONFIG; see 'infra/prometheus.sh logs'."
    log "Prometheus reloaded $CONFIG (scraping $TARGETS)"
}

cmd_check() {
    command -v promtool >/dev/null || cmd_install
    write_config
    promtool check config "$CONFIG"
}

cmd_stop() { stop_process; }

cmd_status() { process_status 5; }

cmd_url() { printf 'http://%s:%s\n' "$HOST" "$PORT"; }

cmd_logs() { tail_logs "$LOG_FILE"; }

case "${1:-}" in
install) cmd_install ;;
start)
    one_start_at_a_time
    cmd_start
    ;;
reload) cmd_reload ;;
stop)
    one_start_at_a_time
    cmd_stop
    ;;
status) cmd_status ;;
check) cmd_check ;;
url) cmd_url ;;
logs) cmd_logs ;;
*)
    printf 'usage: %s install|start|reload|stop|status|check|url|logs\n' "$0" >&2
    exit 2
    ;;
esac
