#!/usr/bin/env bash
# PostgreSQL on this machine without Docker: one cluster owned by this script, on 127.0.0.1.
#
#   infra/postgres.sh install  apt-get install postgresql (Debian 12: PostgreSQL 15), only when no
#                              /usr/lib/postgresql/*/bin/initdb exists (needs root; non-interactive)
#   infra/postgres.sh start    install if needed, initdb once, start, wait until healthy (bounded),
#                              make sure the role `hub` and the database `hub` exist, and the
#                              role `hub_cdc` (LOGIN REPLICATION, for Debezium: infra/connect.sh)
#   infra/postgres.sh stop     pg_ctl stop (fast, then immediate after a bound); a no-op when down
#   infra/postgres.sh status   exit 0 only when the server accepts connections
#   infra/postgres.sh psql     psql connected as `hub` to the database `hub` (arguments passed on)
#   infra/postgres.sh url      print the SQLAlchemy URL (postgresql+psycopg://hub:...@127.0.0.1:PORT/hub)
#   infra/postgres.sh logs     the tail of the server's log (LINES=200 by default)
#
# State:  $HUB_INFRA_DIR/postgres/{data,socket,postgres.log}
#         (the Debian package's own cluster, if any, is neither used nor touched)
#
# Settings (environment):
#   HUB_PG_PORT                        default: this checkout's block (infra/env.sh), never 5432
#   HUB_PG_PASSWORD=hub                password of the role `hub` (scram-sha-256 on 127.0.0.1)
#   HUB_PG_CDC_PASSWORD=hub_cdc        password of the replication role `hub_cdc`
#   HUB_PG_START_TIMEOUT=60 (s), HUB_PG_STOP_TIMEOUT=30 (s)
#
# Authentication: TCP only on 127.0.0.1 with a password (scram-sha-256); the Unix socket lives in
# the state folder with mode 0700 (only the cluster's OS owner can use it) and trusts that owner.
# Run as root, the cluster belongs to the `postgres` OS user (initdb refuses root): the state folder
# is chowned to it, and when a parent folder (e.g. /root, mode 0700) blocks it, the `postgres` user
# alone is granted search (x, not read) permission there with an ACL (setfacl; package `acl`).
set -euo pipefail

# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"  # HUB_INFRA_DIR and ports of this checkout
STATE_DIR="$HUB_INFRA_DIR/postgres"
DATA_DIR="$STATE_DIR/data"
SOCKET_DIR="$STATE_DIR/socket"
LOG_FILE="$STATE_DIR/postgres.log"

HOST="127.0.0.1"
PORT="$HUB_PG_PORT"
PASSWORD="${HUB_PG_PASSWORD:-hub}"
START_TIMEOUT="${HUB_PG_START_TIMEOUT:-60}"
STOP_TIMEOUT="${HUB_PG_STOP_TIMEOUT:-30}"
DB="hub"
ROLE="hub"
CDC_ROLE="hub_cdc" # the replication role Debezium logs in as (infra/connect.sh); owns nothing
CDC_PASSWORD="${HUB_PG_CDC_PASSWORD:-hub_cdc}"
SUPERUSER="postgres" # the bootstrap superuser's name (initdb -U), whoever owns the cluster

SCRIPT="postgres.sh"
COMPONENT="PostgreSQL"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

is_root() { [[ "$(id -u)" == "0" ]]; }

# The newest installed server version's binaries (Debian keeps them out of PATH).
pg_bin() {
    local initdb
    initdb="$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$initdb" ]] || return 1
    dirname "$initdb"
}

# Run a command as the cluster's OS owner: `postgres` when this script runs as root, else oneself.
as_owner() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# -- install --------------------------------------------------------------------------------------
apt_install() {
    is_root || die "installing $* needs root (apt-get); run 'sudo infra/postgres.sh install'."
    command -v apt-get >/dev/null || die "no apt-get here; install PostgreSQL 15+ server binaries yourself."
    log "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

cmd_install() {
    if bin="$(pg_bin)"; then
        log "PostgreSQL binaries already installed: $("$bin/postgres" --version)"
        return 0
    fi
    local started=$SECONDS
    apt_install postgresql
    bin="$(pg_bin)" || die "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb exists."
    log "installed $("$bin/postgres" --version) in $((SECONDS - started)) s"
}

# As root: let the `postgres` user reach (search, not list) the state folder's parents.
grant_traverse() {
    is_root || return 0
    id postgres >/dev/null 2>&1 || die "there is no 'postgres' OS user; reinstall the postgresql package."
    # From / downwards, so that a folder is only judged once its parents are reachable.
    local dir="$STATE_DIR" parents=()
    while [[ "$dir" != "/" ]]; do
        dir="$(dirname "$dir")"
        parents=("$dir" "${parents[@]}")
    done
    for dir in "${parents[@]}"; do
        runuser -u postgres -- test -x "$dir" && continue
        command -v setfacl >/dev/null || apt_install acl
        log "granting the postgres OS user search permission (ACL u:postgres:x) on $dir"
        setfacl -m u:postgres:x "$dir"
    done
}

# -- cluster --------------------------------------------------------------------------------------
init_cluster() {
    local bin="$1"
    mkdir -p "$STATE_DIR"
    if is_root; then
        grant_traverse
        chown postgres:postgres "$STATE_DIR"
    fi
    as_owner mkdir -p "$SOCKET_DIR"
    as_owner chmod 0700 "$SOCKET_DIR"
    [[ -f "$DATA_DIR/PG_VERSION" ]] && return 0
    log "initdb $DATA_DIR"
    rm -rf "$DATA_DIR"
    local pwfile
    pwfile="$(as_owner mktemp "$STATE_DIR/.pw.XXXXXX")"
    # The superuser never logs in over TCP (only the socket, as its OS owner); a random password.
    head -c 24 /dev/urandom | base64 | as_owner tee "$pwfile" >/dev/null
    if ! as_owner "$bin/initdb" -D "$DATA_DIR" -U "$SUPERUSER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >"$STATE_DIR/initdb.log" 2>&1; then
        rm -f "$pwfile"
        cat "$STATE_DIR/initdb.log" >&2
        die "initdb into $DATA_DIR failed (output above)."
    fi
    rm -f "$pwfile"
    # Only 127.0.0.1 over TCP (scram), and the owner's own socket.
    as_owner tee "$DATA_DIR/pg_hba.conf" >/dev/null <<EOF
# Written by infra/postgres.sh.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  scram-sha-256
EOF
    printf "\ninclude_if_exists = 'hub.conf'\n" | as_owner tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

write_config() {
    as_owner tee "$DATA_DIR/hub.conf" >/dev/null <<EOF
# Written by infra/postgres.sh at every start; edits are overwritten.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
unix_socket_permissions = 0700
max_connections = 100
shared_buffers = 128MB
password_encryption = 'scram-sha-256'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
# Change data capture (infra/connect.sh, Debezium over pgoutput): logical decoding needs
# wal_level=logical (a restart applies it; 'replica' is the default). A few slots and senders.
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
EOF
}

running() {
    local bin
    bin="$(pg_bin)" || return 1
    [[ -f "$DATA_DIR/PG_VERSION" ]] || return 1
    as_owner "$bin/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1
}

healthy() {
    local bin
    bin="$(pg_bin)" || return 1
    "$bin/pg_isready" -q -h "$HOST" -p "$PORT" -d "$DB" -t "${1:-5}" 2>/dev/null
}

# SQL as the superuser over the owner's socket.
su_psql() {
    local bin
    bin="$(pg_bin)"
    as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -U "$SUPERUSER" "$@"
}

ensure_role_and_db() {
    local quoted="${PASSWORD//\'/\'\'}" cdc_quoted="${CDC_PASSWORD//\'/\'\'}"
    su_psql -d postgres <<EOF
SELECT format('CREATE ROLE %I LOGIN', '$ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \gexec
ALTER ROLE $ROLE LOGIN PASSWORD '$quoted';
SELECT format('CREATE DATABASE %I OWNER %I', '$DB', '$ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
SELECT format('CREATE ROLE %I LOGIN REPLICATION', '$CDC_ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$CDC_ROLE') \gexec
ALTER ROLE $CDC_ROLE LOGIN REPLICATION PASSWORD '$cdc_quoted';
EOF
}

port_taken() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

cmd_start() {
    local bin
    bin="$(pg_bin)" || {
        cmd_install
        bin="$(pg_bin)"
    }
    if running; then
        if healthy 10; then
            ensure_role_and_db
            log "PostgreSQL already running on $HOST:$PORT ($DATA_DIR)"
            return 0
        fi
        die "PostgreSQL runs on $DATA_DIR but does not answer on $HOST:$PORT; see 'infra/postgres.sh logs' or run 'infra/postgres.sh stop' first."
    fi
    if port_taken; then
        die "Port $HOST:$PORT is taken by another process; set HUB_PG_PORT to a free port."
    fi
    local started=$SECONDS
    init_cluster "$bin"
    write_config
    if is_root; then
        touch "$LOG_FILE"
        chown postgres:postgres "$LOG_FILE"
    fi
    log "starting $("$bin/postgres" --version) on $HOST:$PORT ($DATA_DIR)"
    # -W: do not wait here; the bounded health loop below does. setsid: the server survives the
    # shell (and the test session) that started it.
    # 8>&-: the server must not inherit one_start_at_a_time's lock (it would hold it while it runs).
    if ! as_owner setsid "$bin/pg_ctl" start -W -D "$DATA_DIR" -l "$LOG_FILE" >/dev/null 2>&1 8>&-; then
        cmd_logs >&2 || true
        die "pg_ctl start failed (log tail above)."
    fi
    # The grace before "it exited" counts from the server's start, not from before initdb: on a
    # fresh folder under load initdb alone took more than the old 3 s, so the first check
    # already ran before the server had written its pid file, and a healthy start was declared
    # dead (the CI trial's 'exited during start-up' with an empty log).
    local launched=$SECONDS
    while ((SECONDS - started < START_TIMEOUT)); do
        if healthy 2; then
            ensure_role_and_db
            log "PostgreSQL is up on $HOST:$PORT after $((SECONDS - started)) s"
            return 0
        fi
        if ((SECONDS - launched > 10)) && ! running; then
            cmd_logs >&2 || true
            die "PostgreSQL exited during start-up (log tail above)."
        fi
        sleep 0.3
    done
    cmd_logs >&2 || true
    die "PostgreSQL did not answer on $HOST:$PORT within $START_TIMEOUT s (log tail above); 'infra/postgres.sh stop' ends it."
}

cmd_stop() {
    local bin
    if ! running; then
        log "PostgreSQL is not running"
        return 0
    fi
    bin="$(pg_bin)"
    log "stopping PostgreSQL ($DATA_DIR)"
    if ! as_owner "$bin/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t "$STOP_TIMEOUT" >/dev/null 2>&1; then
        log "PostgreSQL did not stop within $STOP_TIMEOUT s; stopping it immediately"
        as_owner "$bin/pg_ctl" stop -D "$DATA_DIR" -m immediate -w -t "$STOP_TIMEOUT" >/dev/null 2>&1 || true
    fi
    running && die "PostgreSQL ($DATA_DIR) is still running."
    log "PostgreSQL stopped"
}

cmd_status() {
    if ! running; then
        log "PostgreSQL is not running"
        return 1
    fi
    if healthy 5; then
        log "PostgreSQL is running and healthy on $HOST:$PORT ($DATA_DIR)"
        return 0
    fi
    log "PostgreSQL runs ($DATA_DIR) but does not answer on $HOST:$PORT"
    return 1
}

cmd_psql() {
    local bin
    bin="$(pg_bin)" || die "PostgreSQL is not installed; run 'infra/postgres.sh install'."
    PGPASSWORD="$PASSWORD" exec "$bin/psql" -X -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DB" "$@"
}

cmd_url() {
    printf 'postgresql+psycopg://%s:%s@%s:%s/%s\n' "$ROLE" "$PASSWORD" "$HOST" "$PORT" "$DB"
}

cmd_logs() { tail_logs "$LOG_FILE"; }

case "${1:-}" in
install) cmd_install ;;
start)
    one_start_at_a_time "$((START_TIMEOUT + 60))"
    cmd_start
    ;;
stop)
    one_start_at_a_time "$((START_TIMEOUT + 60))"
    cmd_stop
    ;;
status) cmd_status ;;
psql)
    shift
    cmd_psql "$@"
    ;;
url) cmd_url ;;
logs) cmd_logs ;;
*)
    printf 'usage: %s install|start|stop|status|psql [args]|url|logs\n' "$0" >&2
    exit 2
    ;;
esac
