#!/usr/bin/env bash
# Kafka Connect (standalone worker) with Debezium's PostgreSQL connector, on 127.0.0.1.
#
#   infra/connect.sh fetch     the worker's and the connector's jars from Maven Central (once;
#                              cached; Maven checks every jar against Central's SHA-1 (-C), and a
#                              SHA-256 list written then is re-checked at every start)
#   infra/connect.sh start     fetch if needed, start the worker against this checkout's Kafka
#                              (infra/kafka.sh start first) with every connector configured under
#                              the state folder, wait until its REST API answers
#   infra/connect.sh stop      SIGTERM, wait, SIGKILL after a bound; a no-op when not running
#   infra/connect.sh status    exit 0 only when the REST API answers
#   infra/connect.sh logs      the tail of the worker's log (LINES=200 by default)
#   infra/connect.sh url       print http://127.0.0.1:PORT (the REST API)
#   infra/connect.sh capture NAME TABLE...
#                              capture PostgreSQL tables (schema.table, e.g. public.accounts) of
#                              this checkout's infra/postgres.sh cluster, database hub: grants the
#                              replication role SELECT, creates the publication hub_NAME, writes
#                              the Debezium connector NAME (topics NAME.<schema>.<table>, one
#                              partition, JSON without schemas) and (re)configures it when the
#                              worker runs. Idempotent: the same call again changes nothing.
#   infra/connect.sh release NAME
#                              stop and delete connector NAME, its stored offsets, its replication
#                              slot (a slot left behind keeps PostgreSQL's WAL forever) and its
#                              publication
#
# Jars:    $HOME/.cache/hub/connect-<version>/{libs,plugins/debezium-connector-postgres}
# State:   $HUB_INFRA_DIR/connect/{worker.properties,connectors/*.json,offsets,logs,connect.pid}
#
# Settings (environment):
#   HUB_CONNECT_PORT           the REST API, default this checkout's block (infra/env.sh, offset 83)
#   HUB_KAFKA_PORT, HUB_PG_PORT (infra/env.sh); HUB_PG_CDC_PASSWORD=hub_cdc (the role hub_cdc,
#   created by infra/postgres.sh with REPLICATION); HUB_PG_PASSWORD=hub (the table owner `hub`)
#   HUB_CONNECT_HEAP=384m, HUB_CONNECT_START_TIMEOUT=120 (s), HUB_CONNECT_STOP_TIMEOUT=30 (s)
#
# Converters: JSON without embedded schemas (org.apache.kafka.connect.json.JsonConverter,
# schemas.enable=false). Debezium's Avro path needs Confluent's serializer jars, which are not on
# Maven Central; the hub validates each change against its own registered schema anyway.
# Decimals as strings (decimal.handling.mode=string: exact, no base64 of unscaled bytes).
# The worker's log shows an ERROR "Failed to discover Converter ... CloudEventsConverter" at start:
# that optional Debezium converter needs a JsonConverter method Kafka 4 removed; it is not used.
set -euo pipefail

CONNECT_VERSION="4.1.1" # org.apache.kafka:connect-runtime, the broker's version (infra/kafka.sh)
DEBEZIUM_VERSION="3.6.1.Final"
LOG4J_VERSION="2.25.3"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="$HOME/.cache/hub/connect-$CONNECT_VERSION"
LIBS_DIR="$CACHE_DIR/libs"
PLUGIN_ROOT="$CACHE_DIR/plugins"
PLUGIN_DIR="$PLUGIN_ROOT/debezium-connector-postgres"
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" # HUB_INFRA_DIR and ports of this checkout
STATE_DIR="$HUB_INFRA_DIR/connect"
LOG_DIR="$STATE_DIR/logs"
CONNECTORS_DIR="$STATE_DIR/connectors"
PROPS="$STATE_DIR/worker.properties"
LOG4J_CONF="$STATE_DIR/log4j2.properties"
OFFSETS="$STATE_DIR/offsets"
PID_FILE="$STATE_DIR/connect.pid"
PROC_MATCH="ConnectStandalone"
CONSOLE_LOG="$LOG_DIR/console.log"

HOST="127.0.0.1"
PORT="$HUB_CONNECT_PORT"
HEAP="${HUB_CONNECT_HEAP:-384m}"
START_TIMEOUT="${HUB_CONNECT_START_TIMEOUT:-120}"
STOP_TIMEOUT="${HUB_CONNECT_STOP_TIMEOUT:-30}"
CDC_ROLE="hub_cdc"
CDC_PASSWORD="${HUB_PG_CDC_PASSWORD:-hub_cdc}"

SCRIPT="connect.sh"
COMPONENT="Kafka Connect"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# -- fetch ----------------------------------------------------------------------------------------
FETCH_ID="connect-runtime:$CONNECT_VERSION debezium-postgres:$DEBEZIUM_VERSION log4j:$LOG4J_VERSION"
fetched() { [[ -f "$CACHE_DIR/.complete" && "$(cat "$CACHE_DIR/.complete")" == "$FETCH_ID" ]]; }

# mvn_copy POM OUT [EXCLUDES]: the runtime dependencies of POM into OUT, checksums enforced.
mvn_copy() {
    local pom="$1" out="$2" excludes="${3:-}"
    if ! mvn -q -B -C -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
        -DexcludeArtifactIds="$excludes" -DoutputDirectory="$out" >"$pom.log" 2>&1; then
        tail -n 40 "$pom.log" >&2
        die "fetching from Maven Central failed (log above)."
    fi
}

pom() { # pom ARTIFACT-ID DEPENDENCY-XML...
    local id="$1"
    shift
    printf '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
    printf '<groupId>hub.infra</groupId><artifactId>%s</artifactId><version>1</version>' "$id"
    printf '<packaging>pom</packaging><dependencies>%s</dependencies></project>\n' "$*"
}

dep() { printf '<dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>' "$1" "$2" "$3"; }

cmd_fetch() { one_install_at_a_time "$CACHE_DIR.lock" 1200 fetch_once; }

fetch_once() {
    if fetched; then
        log "Kafka Connect $CONNECT_VERSION and Debezium $DEBEZIUM_VERSION already in $CACHE_DIR"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn is not on PATH; install Maven 3.8+ (apt-get install maven)."
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $tmp is local
    trap "rm -rf '$tmp'" RETURN
    pom connect-runtime \
        "$(dep org.apache.kafka connect-runtime "$CONNECT_VERSION")" \
        "$(dep org.apache.kafka connect-json "$CONNECT_VERSION")" \
        "$(dep org.apache.logging.log4j log4j-core "$LOG4J_VERSION")" \
        "$(dep org.apache.logging.log4j log4j-slf4j-impl "$LOG4J_VERSION")" >"$tmp/runtime.xml"
    pom debezium-postgres "$(dep io.debezium debezium-connector-postgres "$DEBEZIUM_VERSION")" \
        >"$tmp/plugin.xml"
    log "fetching org.apache.kafka:connect-runtime:$CONNECT_VERSION and io.debezium:debezium-connector-postgres:$DEBEZIUM_VERSION"
    rm -rf "$CACHE_DIR.partial"
    mkdir -p "$CACHE_DIR.partial"
    mvn_copy "$tmp/runtime.xml" "$CACHE_DIR.partial/libs"
    # The worker provides the Connect API, the Kafka client and slf4j: a second copy inside the
    # plugin's isolated class loader breaks the connector's casts to the worker's types.
    mvn_copy "$tmp/plugin.xml" "$CACHE_DIR.partial/plugins/debezium-connector-postgres" \
        "connect-api,kafka-clients,slf4j-api"
    (cd "$CACHE_DIR.partial" && find . -name '*.jar' -print0 | sort -z | xargs -0 sha256sum >SHA256SUMS)
    rm -rf "$CACHE_DIR"
    mv "$CACHE_DIR.partial" "$CACHE_DIR"
    printf '%s\n' "$FETCH_ID" >"$CACHE_DIR/.complete"
    log "$(find "$CACHE_DIR" -name '*.jar' | wc -l) jars in $CACHE_DIR ($(du -sh "$CACHE_DIR" | cut -f1))"
}

verify_jars() {
    (cd "$CACHE_DIR" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1) ||
        die "a jar in $CACHE_DIR no longer matches the SHA-256 recorded when it was fetched; delete $CACHE_DIR and run 'infra/connect.sh fetch'."
}

# -- configuration --------------------------------------------------------------------------------
write_config() {
    mkdir -p "$LOG_DIR" "$CONNECTORS_DIR" "$STATE_DIR/tmp"
    cat >"$PROPS" <<EOF
# Written by infra/connect.sh; edits are overwritten on the next start.
bootstrap.servers=$HOST:$HUB_KAFKA_PORT
listeners=http://$HOST:$PORT
rest.advertised.host.name=$HOST
rest.advertised.port=$PORT
plugin.path=$PLUGIN_ROOT
# Every plugin here ships ServiceLoader manifests: no reflective scan of each jar (~28 s here).
plugin.discovery=service_load
offset.storage.file.filename=$OFFSETS
offset.flush.interval.ms=1000
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
# Source topics are created by the worker (KIP-158): the broker does not create topics itself.
topic.creation.enable=true
# Debezium's records are produced idempotently, every change acknowledged by the broker.
producer.enable.idempotence=true
producer.acks=all
producer.linger.ms=5
EOF
    write_log4j "$LOG4J_CONF" "$LOG_DIR/connect.log" 3 org.reflections=error
}

java_cmd() {
    jvm_cmd "$HEAP" "$STATE_DIR/tmp" "$LOG4J_CONF" -XX:TieredStopAtLevel=1 -cp "$LIBS_DIR/*"
}

url() { printf 'http://%s:%s\n' "$HOST" "$PORT"; }

healthy() { curl -sf -m "${1:-5}" "$(url)/connectors" >/dev/null 2>&1; }

kafka_up() { (exec 3<>"/dev/tcp/$HOST/$HUB_KAFKA_PORT") 2>/dev/null; }

cmd_start() {
    if already_running HUB_CONNECT_PORT; then return 0; fi
    kafka_up || die "Kafka does not answer on $HOST:$HUB_KAFKA_PORT; run 'infra/kafka.sh start' first."
    fetched || cmd_fetch
    verify_jars
    write_config
    local configs=()
    mapfile -t configs < <(find "$CONNECTORS_DIR" -name '*.json' | sort)
    mapfile -t cmd < <(java_cmd)
    log "starting Kafka Connect $CONNECT_VERSION (standalone) on $(url) with ${#configs[@]} connector(s)"
    local started=$SECONDS
    [[ -f "$CONSOLE_LOG" ]] && mv -f "$CONSOLE_LOG" "$CONSOLE_LOG.1"
    launch "$CONSOLE_LOG" "${cmd[@]}" org.apache.kafka.connect.cli.ConnectStandalone "$PROPS" \
        "${configs[@]}"
    await_healthy "$started" 0.3
}

cmd_stop() { stop_process; }

cmd_status() { process_status 5; }

cmd_logs() { tail_logs "$CONSOLE_LOG" "$LOG_DIR/connect.log"; }

# -- connectors -----------------------------------------------------------------------------------
# pg_psql_as ROLE PASSWORD ARGS...: psql over TCP to the database hub; pg_psql: as the table
# owner `hub`.
pg_psql_as() {
    local role="$1" password="$2" bin
    shift 2
    bin="$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/psql' 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$bin" ]] || die "psql is not installed; run 'infra/postgres.sh install'."
    PGPASSWORD="$password" "$bin" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$HUB_PG_PORT" \
        -U "$role" -d hub "$@"
}

pg_psql() { pg_psql_as hub "${HUB_PG_PASSWORD:-hub}" "$@"; }

valid_name() {
    [[ "$1" =~ ^[a-z][a-z0-9_]{0,40}$ ]] ||
        die "connector name '$1' must be lower-case letters, digits and _ (at most 41), starting with a letter."
}

cmd_capture() {
    local name="${1:-}"
    shift || true
    [[ -n "$name" && $# -gt 0 ]] || die "usage: infra/connect.sh capture NAME SCHEMA.TABLE..."
    valid_name "$name"
    local table tables=""
    for table in "$@"; do
        [[ "$table" =~ ^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$ ]] ||
            die "table '$table' must be written schema.table in lower case (e.g. public.accounts)."
        tables="${tables:+$tables,}$table"
    done
    local wal
    wal="$(pg_psql -tA -c 'SHOW wal_level')" ||
        die "PostgreSQL does not answer on $HOST:$HUB_PG_PORT; run 'infra/postgres.sh start'."
    [[ "$wal" == "logical" ]] ||
        die "PostgreSQL runs with wal_level=$wal; Debezium needs logical: 'infra/postgres.sh stop && infra/postgres.sh start' (the script's server configuration sets it)."
    # The table owner grants the replication role what a snapshot reads, and publishes the tables.
    pg_psql <<EOF
GRANT USAGE ON SCHEMA public TO $CDC_ROLE;
$(for table in "$@"; do printf 'GRANT SELECT ON %s TO %s;\n' "$table" "$CDC_ROLE"; done)
SELECT format('CREATE PUBLICATION %I FOR TABLE $tables', 'hub_$name')
WHERE NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'hub_$name') \gexec
ALTER PUBLICATION hub_$name SET TABLE $tables;
EOF
    mkdir -p "$CONNECTORS_DIR"
    cat >"$CONNECTORS_DIR/$name.json.tmp" <<EOF
{
  "name": "$name",
  "config": {
    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "tasks.max": "1",
    "database.hostname": "$HOST",
    "database.port": "$HUB_PG_PORT",
    "database.user": "$CDC_ROLE",
    "database.password": "$CDC_PASSWORD",
    "database.dbname": "hub",
    "topic.prefix": "$name",
    "table.include.list": "$tables",
    "plugin.name": "pgoutput",
    "publication.name": "hub_$name",
    "publication.autocreate.mode": "disabled",
    "slot.name": "hub_$name",
    "snapshot.mode": "initial",
    "decimal.handling.mode": "string",
    "poll.interval.ms": "100",
    "tombstones.on.delete": "false",
    "topic.creation.default.replication.factor": "1",
    "topic.creation.default.partitions": "1",
    "topic.creation.default.cleanup.policy": "delete",
    "topic.creation.default.retention.ms": "-1"
  }
}
EOF
    mv -f "$CONNECTORS_DIR/$name.json.tmp" "$CONNECTORS_DIR/$name.json"
    log "connector $name captures $tables into topics $name.<schema>.<table>"
    if healthy 5; then
        # Standalone workers accept connector changes over REST (not persisted: the file above is
        # what the next start reads).
        python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["config"]))' \
            "$CONNECTORS_DIR/$name.json" |
            curl -sf -m 30 -X PUT -H 'Content-Type: application/json' --data @- \
                "$(url)/connectors/$name/config" >/dev/null ||
            die "the worker refused connector $name; see 'infra/connect.sh logs'."
        log "connector $name is configured on the running worker"
    fi
}

cmd_release() {
    local name="${1:-}" i
    [[ -n "$name" ]] || die "usage: infra/connect.sh release NAME"
    valid_name "$name"
    if healthy 5 && curl -sf -m 5 "$(url)/connectors/$name" >/dev/null 2>&1; then
        # Stop (the task lets go of the slot), forget its offsets (KIP-875), then delete it.
        curl -sf -m 30 -X PUT "$(url)/connectors/$name/stop" >/dev/null || true
        for i in $(seq 1 100); do
            curl -sf -m 5 "$(url)/connectors/$name/status" | grep -q '"state":"STOPPED"' && break
            sleep 0.1
        done
        curl -sf -m 30 -X DELETE "$(url)/connectors/$name/offsets" >/dev/null ||
            log "the worker kept connector $name's offsets; they go when the worker stops"
        curl -sf -m 30 -X DELETE "$(url)/connectors/$name" >/dev/null || true
    fi
    rm -f "$CONNECTORS_DIR/$name.json"
    if pg_psql -tA -c 'SELECT 1' >/dev/null 2>&1; then
        # Only a replication role (or a superuser) may drop a slot: as hub_cdc. A slot still held
        # by a stopping task is retried for a few seconds.
        for i in $(seq 1 50); do
            pg_psql_as "$CDC_ROLE" "$CDC_PASSWORD" -tA -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'hub_$name' AND NOT active" >/dev/null 2>&1 || true
            [[ -z "$(pg_psql -tA -c "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'hub_$name'")" ]] && break
            sleep 0.2
        done
        [[ -z "$(pg_psql -tA -c "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'hub_$name'")" ]] ||
            die "replication slot hub_$name is still held; stop the worker ('infra/connect.sh stop') and release again."
        pg_psql -c "DROP PUBLICATION IF EXISTS hub_$name" >/dev/null
    fi
    log "connector $name released (connector, offsets, slot hub_$name, publication hub_$name)"
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
logs) cmd_logs ;;
url) url ;;
capture)
    shift
    cmd_capture "$@"
    ;;
release)
    shift
    cmd_release "$@"
    ;;
*)
    printf 'usage: %s fetch|start|stop|status|logs|url|capture NAME SCHEMA.TABLE...|release NAME\n' "$0" >&2
    exit 2
    ;;
esac
