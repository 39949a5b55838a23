#!/usr/bin/env bash
# A three-node Apache Kafka cluster on this machine (high availability), without Docker.
#
#   infra/kafka-cluster.sh start            start the nodes that are not running, wait until all
#                                           three answer and see each other (idempotent)
#   infra/kafka-cluster.sh stop             stop every node (SIGTERM, SIGKILL after a bound)
#   infra/kafka-cluster.sh status           exit 0 only when all three nodes answer
#   infra/kafka-cluster.sh kill-broker N    SIGKILL node N (1..3): a crash, for fault tests
#   infra/kafka-cluster.sh start-broker N   start node N again and wait until it answers
#   infra/kafka-cluster.sh bootstrap        print the bootstrap servers (host:port,host:port,...)
#   infra/kafka-cluster.sh logs [N]         the tail of each node's log (LINES=200 by default)
#   infra/kafka-cluster.sh wipe             delete the stored topics (refused while a node runs)
#
# Each node is a KRaft node in combined mode (broker + controller, node ids 1..3, a static
# quorum of three voters: the cluster keeps a controller and every partition keeps a leader while
# one node is down). Durability settings: default replication factor 3 and min.insync.replicas=2
# for every topic, including the consumer offsets and the transaction state log; with acks=all
# (the hub's producers) an acknowledged record is on at least two nodes.
#
# Jars:        the cache of infra/kafka.sh ($HOME/.cache/hub/kafka-<version>/libs; fetched by it)
# Data, logs:  $HUB_INFRA_DIR/kafka-cluster/node-N/{data,logs,server.properties,kafka.pid}
#
# Settings (environment):
#   HUB_KAFKA_NODE{1,2,3}_PORT, HUB_KAFKA_NODE{1,2,3}_CONTROLLER_PORT   default: this checkout's
#       block (infra/env.sh, offsets 94..96 and 97..99)
#   HUB_KAFKA_CLUSTER_HEAP=384m, HUB_KAFKA_START_TIMEOUT=180 (s), HUB_KAFKA_STOP_TIMEOUT=30 (s)
#   HUB_PYTHON (the interpreter with confluent-kafka for the health check; default: the repo's .venv)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" # HUB_INFRA_DIR and ports of this checkout
LIBS_DIR="$HOME/.cache/hub/kafka-4.1.1/libs"   # the version infra/kafka.sh pins and fetches
CLUSTER_DIR="$HUB_INFRA_DIR/kafka-cluster"
HOST="127.0.0.1"
HEAP="${HUB_KAFKA_CLUSTER_HEAP:-384m}"
START_TIMEOUT="${HUB_KAFKA_START_TIMEOUT:-180}"
STOP_TIMEOUT="${HUB_KAFKA_STOP_TIMEOUT:-30}"
PYTHON="${HUB_PYTHON:-$REPO_ROOT/.venv/bin/python}"
NODES=(1 2 3)

SCRIPT="kafka-cluster.sh"
COMPONENT="Kafka cluster"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

broker_port() { local v="HUB_KAFKA_NODE${1}_PORT" && printf '%s\n' "${!v}"; }
controller_port() { local v="HUB_KAFKA_NODE${1}_CONTROLLER_PORT" && printf '%s\n' "${!v}"; }

# node N: point lib.sh's globals (PID_FILE, PROC_MATCH, PORT, COMPONENT) at node N.
node() {
    NODE="$1"
    [[ "$NODE" =~ ^[123]$ ]] || die "node '$NODE' is not 1, 2 or 3."
    NODE_DIR="$CLUSTER_DIR/node-$NODE"
    PROPS="$NODE_DIR/server.properties"
    PID_FILE="$NODE_DIR/kafka.pid"
    PROC_MATCH="$PROPS" # the node's own properties file is in its command line (pids are reused)
    PORT="$(broker_port "$NODE")"
    COMPONENT="Kafka node $NODE"
}

bootstrap() {
    local n out=""
    for n in "${NODES[@]}"; do out+="${out:+,}$HOST:$(broker_port "$n")"; done
    printf '%s\n' "$out"
}

voters() {
    local n out=""
    for n in "${NODES[@]}"; do out+="${out:+,}$n@$HOST:$(controller_port "$n")"; done
    printf '%s\n' "$out"
}

write_config() {
    mkdir -p "$NODE_DIR/data" "$NODE_DIR/logs" "$NODE_DIR/tmp"
    cat >"$PROPS" <<EOF
# Written by infra/kafka-cluster.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=$NODE
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$(controller_port "$NODE")
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$NODE_DIR/data
# Three replicas of everything; a write is acknowledged (acks=all) once two hold it.
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=8
# A transaction left open by a crashed producer hides every later record of its partitions from
# read_committed readers until the coordinator aborts it: its timeout (the hub's atomic appends:
# 10 s) plus up to this check interval (Kafka's default: 10 s).
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
# No unclean leader election: a replica that missed acknowledged writes never becomes leader.
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=1
# A node that stops answering leaves the ISR quickly (fault tests measure the handover).
replica.lag.time.max.ms=10000
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
log.segment.bytes=67108864
# Log recovery after a kill -9 waits on the disk more than the CPU: 1,381 partitions loaded in
# 59 s with one thread, 41 s with eight (load 14); the broker-kill tests restart it mid-stream.
num.recovery.threads.per.data.dir=8
EOF
    write_log4j "$NODE_DIR/log4j2.properties" "$NODE_DIR/logs/server.log" 2 "${KAFKA_QUIET_LOGGERS[@]}"
}

java_cmd() {
    jvm_cmd "$HEAP" "$NODE_DIR/tmp" "$NODE_DIR/log4j2.properties" -Dkafka.logs.dir="$NODE_DIR/logs" \
        -cp "$LIBS_DIR/*"
}

# One cluster id for the three nodes, kept beside them (a node formatted with another id would
# refuse to join).
cluster_id() {
    local file="$CLUSTER_DIR/cluster.id"
    if [[ ! -s "$file" ]]; then
        mkdir -p "$CLUSTER_DIR"
        kafka_cluster_id >"$file"
    fi
    cat "$file"
}

format_storage() {
    mapfile -t cmd < <(java_cmd)
    kafka_format_storage "$NODE_DIR/data" "$(cluster_id)" "$PROPS" "$NODE_DIR/logs/format.log" "${cmd[@]}"
}

# healthy TIMEOUT_S [BROKERS]: node $PORT answers a metadata request listing at least BROKERS
# brokers (default 1).
healthy() { kafka_answers "$HOST:$PORT" "${1:-5}" "${2:-1}"; }

# launch_node N: start node N unless it runs; returns at once (the caller waits).
launch_node() {
    node "$1"
    local pid
    if pid="$(running_pid)"; then
        log "node $NODE already running (pid $pid) on $HOST:$PORT"
        return 0
    fi
    local p
    for p in "$PORT" "$(controller_port "$NODE")"; do
        if (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
            die "Port $HOST:$p of node $NODE is taken by another process; set HUB_KAFKA_NODE${NODE}_PORT / HUB_KAFKA_NODE${NODE}_CONTROLLER_PORT to free ports."
        fi
    done
    write_config
    format_storage
    mapfile -t cmd < <(java_cmd)
    local console="$NODE_DIR/logs/console.log"
    [[ -f "$console" ]] && mv -f "$console" "$console.1"
    setsid nohup "${cmd[@]}" kafka.Kafka "$PROPS" >"$console" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$PID_FILE"
    STARTED_HERE+=("$NODE")
    log "starting node $NODE (pid $!) on $HOST:$PORT, controller $(controller_port "$NODE"), heap $HEAP"
}

# Stop the nodes this invocation started (a failed or interrupted start leaves none running).
_start_failed() {
    local rc=$? n
    trap - EXIT INT TERM
    for n in "${STARTED_HERE[@]}"; do
        node "$n"
        STOP_TIMEOUT=10 stop_process >/dev/null 2>&1 || true
    done
    exit "$rc"
}

# wait_nodes N...: until each node answers with all three brokers in its metadata.
wait_nodes() {
    local started=$SECONDS n pid
    for n in "$@"; do
        node "$n"
        while ! healthy 2 3; do
            if ! pid="$(running_pid)"; then
                tail_logs "$NODE_DIR/logs/console.log" "$NODE_DIR/logs/server.log" >&2
                die "node $n exited during start-up (log tail above)."
            fi
            if ((SECONDS - started >= START_TIMEOUT)); then
                tail_logs "$NODE_DIR/logs/server.log" >&2
                die "node $n did not answer with three brokers on $HOST:$PORT within $START_TIMEOUT s (log tail above)."
            fi
            sleep 0.5
        done
    done
    log "nodes $* up after $((SECONDS - started)) s; bootstrap $(bootstrap)"
}

fetch_jars() {
    [[ -d "$LIBS_DIR" ]] || bash "$REPO_ROOT/infra/kafka.sh" fetch
}

cmd_start() {
    fetch_jars
    STARTED_HERE=()
    trap _start_failed EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local n pids=()
    # The cluster id is made here, once: three formats side by side each making it when it is
    # missing would race, and nodes formatted with two ids never form a quorum.
    cluster_id >/dev/null
    # Format the new nodes' storage side by side (a JVM start each: the slow part of a first start).
    for n in "${NODES[@]}"; do
        node "$n"
        running_pid >/dev/null && continue
        write_config
        format_storage &
        pids+=("$!")
    done
    for n in "${pids[@]}"; do wait "$n" || die "formatting a node's storage failed (output above)."; done
    for n in "${NODES[@]}"; do launch_node "$n"; done
    wait_nodes "${NODES[@]}"
    trap - EXIT INT TERM
}

cmd_start_broker() {
    fetch_jars
    STARTED_HERE=()
    trap _start_failed EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    launch_node "$1"
    wait_nodes "$1"
    trap - EXIT INT TERM
}

cmd_kill_broker() {
    node "$1"
    local pid
    if ! pid="$(running_pid)"; then
        log "node $NODE is not running"
        return 0
    fi
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$PID_FILE"
    log "killed node $NODE (pid $pid)"
}

cmd_stop() {
    local n
    for n in "${NODES[@]}"; do
        node "$n"
        stop_process
    done
}

cmd_status() {
    local n rc=0
    for n in "${NODES[@]}"; do
        node "$n"
        process_status 5 || rc=1
    done
    return "$rc"
}

cmd_wipe() {
    local n pid
    for n in "${NODES[@]}"; do
        node "$n"
        if pid="$(running_pid)"; then
            die "node $n runs (pid $pid); 'infra/kafka-cluster.sh stop' first, then wipe."
        fi
    done
    rm -rf "$CLUSTER_DIR"
    log "wiped $CLUSTER_DIR (the next start formats fresh storage)"
}

cmd_logs() {
    local n
    for n in "${@:-${NODES[@]}}"; do
        node "$n"
        tail_logs "$NODE_DIR/logs/console.log" "$NODE_DIR/logs/server.log"
    done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
kill-broker) cmd_kill_broker "${2:-}" ;;
start-broker) cmd_start_broker "${2:-}" ;;
bootstrap) bootstrap ;;
logs) cmd_logs "${@:2}" ;;
wipe) cmd_wipe ;;
*)
    printf 'usage: %s start|stop|status|kill-broker N|start-broker N|bootstrap|logs [N]|wipe\n' "$0" >&2
    exit 2
    ;;
esac
