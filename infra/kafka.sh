#!/usr/bin/env bash
# Apache Kafka on this machine without Docker: one KRaft node (broker + controller) on 127.0.0.1.
#
#   infra/kafka.sh fetch    download the broker's jars from Maven Central (once; cached)
#   infra/kafka.sh start    fetch if needed, format storage once, start, wait until healthy
#   infra/kafka.sh stop     SIGTERM, wait, SIGKILL after a bound; a no-op when not running
#   infra/kafka.sh status   exit 0 only when the broker answers a metadata request
#   infra/kafka.sh logs     the tail of the broker's log (LINES=200 by default)
#   infra/kafka.sh wipe     delete the stored topics (refused while the broker runs); the next
#                           start formats fresh storage. CI sessions wipe before they start Kafka,
#                           so topics left by earlier runs in a persistent cache never slow start-up.
#
# Jars:        $HOME/.cache/hub/kafka-<version>/libs   (never in the repository)
# Data, logs:  $HUB_INFRA_DIR/kafka/{data,logs,server.properties,kafka.pid}
#
# Settings (environment):
#   HUB_KAFKA_PORT, HUB_KAFKA_CONTROLLER_PORT   default: this checkout's block (infra/env.sh,
#                                               offsets 92/93), never a developer's 9092/9093
#   HUB_KAFKA_HEAP=512m, HUB_KAFKA_START_TIMEOUT=180 (s), HUB_KAFKA_STOP_TIMEOUT=30 (s)
#   HUB_PYTHON (the interpreter with confluent-kafka for the health check; default: the repo's .venv)
#
# The version is pinned here; the logging binding is fetched beside it so that the broker logs to
# a file and starts quietly: Kafka 4.1 still uses the slf4j 1.7 API, so the binding is log4j2 core
# with log4j-slf4j-impl (the slf4j 1.x binding; log4j-slf4j2-impl would leave it on the NOP logger).
set -euo pipefail

KAFKA_VERSION="4.1.1"
SCALA_VERSION="2.13"
LOG4J_VERSION="2.25.3"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="$HOME/.cache/hub/kafka-$KAFKA_VERSION"
LIBS_DIR="$CACHE_DIR/libs"
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"  # HUB_INFRA_DIR and ports of this checkout
STATE_DIR="$HUB_INFRA_DIR/kafka"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
PROPS="$STATE_DIR/server.properties"
LOG4J_CONF="$STATE_DIR/log4j2.properties"
PID_FILE="$STATE_DIR/kafka.pid"
PROC_MATCH="kafka.Kafka"  # in the broker's command line (pids are reused)
CONSOLE_LOG="$LOG_DIR/console.log"

HOST="127.0.0.1"
PORT="$HUB_KAFKA_PORT"
CONTROLLER_PORT="$HUB_KAFKA_CONTROLLER_PORT"
HEAP="${HUB_KAFKA_HEAP:-512m}"
START_TIMEOUT="${HUB_KAFKA_START_TIMEOUT:-180}"
STOP_TIMEOUT="${HUB_KAFKA_STOP_TIMEOUT:-30}"
PYTHON="${HUB_PYTHON:-$REPO_ROOT/.venv/bin/python}"

SCRIPT="kafka.sh"
COMPONENT="Kafka"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# -- fetch ----------------------------------------------------------------------------------------
# The marker holds the dependency list it was fetched for, so changing a version here refetches.
FETCH_ID="kafka_${SCALA_VERSION}:$KAFKA_VERSION log4j:$LOG4J_VERSION binding:log4j-slf4j-impl"
fetched() { [[ -f "$CACHE_DIR/.complete" && "$(cat "$CACHE_DIR/.complete")" == "$FETCH_ID" ]]; }

cmd_fetch() { one_install_at_a_time "$CACHE_DIR.lock" 1200 fetch_once; }

fetch_once() {
    if fetched; then
        log "Kafka $KAFKA_VERSION jars already in $LIBS_DIR"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn is not on PATH; install Maven 3.8+ (apt-get install maven)."
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $tmp is local
    trap "rm -rf '$tmp'" RETURN
    cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>hub.infra</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_VERSION}</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
    log "fetching org.apache.kafka:kafka_${SCALA_VERSION}:$KAFKA_VERSION and its runtime dependencies"
    rm -rf "$LIBS_DIR.partial"
    mkdir -p "$CACHE_DIR"
    if ! mvn -q -B -f "$tmp/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS_DIR.partial" >"$tmp/mvn.log" 2>&1; then
        tail -n 40 "$tmp/mvn.log" >&2
        die "fetching Kafka $KAFKA_VERSION from Maven Central failed (log above)."
    fi
    rm -rf "$LIBS_DIR"
    mv "$LIBS_DIR.partial" "$LIBS_DIR"
    printf '%s\n' "$FETCH_ID" >"$CACHE_DIR/.complete"
    log "$(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $LIBS_DIR ($(du -sh "$LIBS_DIR" | cut -f1))"
}

# -- configuration --------------------------------------------------------------------------------
write_config() {
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    cat >"$PROPS" <<EOF
# Written by infra/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
# One broker: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
# A transaction left open by a crashed producer hides every later record of its partitions from
# read_committed readers until the coordinator aborts it: its timeout (the hub's atomic appends:
# 10 s) plus up to this check interval (Kafka's default: 10 s).
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# Records up to 16 MiB (the contract appends a 1 MiB value; Kafka's default limit is 1 MiB).
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
# A test machine: few threads, small log segments.
num.network.threads=2
num.io.threads=4
background.threads=4
log.segment.bytes=67108864
# Log recovery after a kill -9 waits on the disk more than the CPU: 1,381 partitions loaded in
# 59 s with one thread, 41 s with eight (load 14); the broker-kill tests restart it mid-stream.
num.recovery.threads.per.data.dir=8
EOF
    write_log4j "$LOG4J_CONF" "$LOG_DIR/server.log" 3 "${KAFKA_QUIET_LOGGERS[@]}"
}

java_cmd() {
    jvm_cmd "$HEAP" "$STATE_DIR/tmp" "$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" -cp "$LIBS_DIR/*"
}

format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$(kafka_cluster_id)"
    log "formatting $DATA_DIR (cluster id $cluster_id)"
    mapfile -t cmd < <(java_cmd)
    kafka_format_storage "$DATA_DIR" "$cluster_id" "$PROPS" "$LOG_DIR/format.log" "${cmd[@]}"
}

# -- process --------------------------------------------------------------------------------------

healthy() { kafka_answers "$HOST:$PORT" "${1:-5}"; }

cmd_start() {
    if already_running HUB_KAFKA_PORT; then return 0; fi
    fetched || cmd_fetch
    write_config
    mkdir -p "$STATE_DIR/tmp"
    format_storage
    mapfile -t cmd < <(java_cmd)
    log "starting Kafka $KAFKA_VERSION on $HOST:$PORT (controller $CONTROLLER_PORT, heap $HEAP)"
    local started=$SECONDS
    [[ -f "$CONSOLE_LOG" ]] && mv -f "$CONSOLE_LOG" "$CONSOLE_LOG.1"
    launch "$CONSOLE_LOG" "${cmd[@]}" kafka.Kafka "$PROPS"
    await_healthy "$started" 0.5
}

cmd_stop() { stop_process; }

cmd_status() { process_status 5; }

cmd_wipe() {
    local pid
    if pid="$(running_pid)"; then
        die "Kafka runs (pid $pid); 'infra/kafka.sh stop' first, then wipe."
    fi
    rm -rf "$DATA_DIR" "$STATE_DIR/tmp"
    log "wiped $DATA_DIR (the next start formats fresh storage)"
}

cmd_logs() { tail_logs "$CONSOLE_LOG" "$LOG_DIR/server.log"; }

case "${1:-}" in
fetch) cmd_fetch ;;
start)
    one_start_at_a_time
    cmd_start
    ;;
stop)
    one_start_at_a_time
    cmd_stop
    ;;
status) cmd_status ;;
logs) cmd_logs ;;
wipe) cmd_wipe ;;
*)
    printf 'usage: %s fetch|start|stop|status|logs|wipe\n' "$0" >&2
    exit 2
    ;;
esac
