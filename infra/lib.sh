# shellcheck shell=bash
# Shared by the infra/*.sh scripts (sourced, never run): logging, pid files, stop, status, logs.
#
# A script sets, before it sources this file:
#   SCRIPT      its file name, the prefix of every log line (e.g. kafka.sh)
#   COMPONENT   the name users read (e.g. Kafka)
# and, before it calls the process helpers:
#   PID_FILE    where the pid of the process it started is kept
#   PROC_MATCH  a string of that process's command line (pids are reused: a stale pid file must
#               not make another process look like ours)
#   HOST, PORT, STOP_TIMEOUT (s), and a function `healthy TIMEOUT_S` (exit 0 when it answers).
# A script sources infra/env.sh first: HUB_INFRA_DIR and the ports of this checkout.

log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
die() {
    log "$*"
    exit 1
}

# Run "$@" holding an exclusive flock on the file $1 (waiting at most $2 s), for a cache under
# ~/.cache/hub that is shared beyond this checkout's state folder: the two test lanes of one
# checkout (each with its own HUB_INFRA_DIR) and every other checkout of this user install into
# the same virtualenv or jar folder, and two cold installs at once removed each other's half-built
# folder (`rm -rf` before building). The second waits, then finds the cache complete. A subshell
# holds the lock, so it is released when "$@" returns and no daemon started afterwards inherits it.
one_install_at_a_time() {
    local lock=$1 wait=$2
    shift 2
    mkdir -p "$(dirname "$lock")"
    (
        flock -w "$wait" 9 || die "another install into the cache that $lock guards did not finish within ${wait} s."
        "$@"
    ) 9>"$lock"
}

# One start or stop of this component at a time in this state folder: two starts at once (two
# test sessions of one checkout) both saw it stopped and both launched; the second server could
# not bind, and its failed start removed the pid file, so the first server ran on unseen by
# `status` and `stop` (found by hand with OPA, session 18). The second start now waits and
# finds it running. Held until the script exits; `launch` closes it.
one_start_at_a_time() {
    mkdir -p "$HUB_INFRA_DIR"
    exec 8>"$HUB_INFRA_DIR/${SCRIPT%.sh}.lock"
    flock -w "${1:-600}" 8 || die "another infra/$SCRIPT start or stop in $HUB_INFRA_DIR did not finish in time."
}

# The pid of our running process, or exit 1.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    grep -q -- "$PROC_MATCH" "/proc/$pid/cmdline" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

# SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL and wait until it is gone; a no-op when stopped.
stop_process() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "$COMPONENT is not running"
        return 0
    fi
    log "stopping $COMPONENT (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local started=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS - started >= STOP_TIMEOUT)); then
            log "$COMPONENT did not stop within $STOP_TIMEOUT s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$PID_FILE"
    log "$COMPONENT stopped"
}

# launch LOG_FILE COMMAND...: start COMMAND detached (setsid: it outlives this shell and a test
# session), output to LOG_FILE, and write its pid to PID_FILE at once. From then until
# `launch_succeeded`, any way the start ends (a `die`, an error, INT or TERM) stops the process and
# removes the pid file: a failed start never leaves a server running, with or without a pid file.
# (SIGKILL of this shell cannot be trapped; the pid file is already written by then.)
launch() {
    local out="$1"
    shift
    mkdir -p "$(dirname "$PID_FILE")"
    # 8>&-: the server must not inherit one_start_at_a_time's lock (it would hold it while it runs).
    setsid nohup "$@" >"$out" 2>&1 </dev/null 8>&- &
    LAUNCHED_PID=$!
    printf '%s\n' "$LAUNCHED_PID" >"$PID_FILE.tmp"
    mv -f "$PID_FILE.tmp" "$PID_FILE"
    trap _launch_failed EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

_launch_failed() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "${LAUNCHED_PID:-}" ]] && kill -0 "$LAUNCHED_PID" 2>/dev/null; then
        log "the start failed; stopping $COMPONENT (pid $LAUNCHED_PID), its log is kept"
        STOP_TIMEOUT="${STOP_TIMEOUT:-10}" stop_process >/dev/null 2>&1 || kill -KILL "$LAUNCHED_PID" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    exit "$rc"
}

launch_succeeded() {
    LAUNCHED_PID=""
    trap - EXIT INT TERM
}

# Exit 0 only when our process runs and answers within TIMEOUT_S (default 5).
process_status() {
    local pid
    if ! pid="$(running_pid)"; then
        log "$COMPONENT is not running"
        return 1
    fi
    if healthy "${1:-5}"; then
        log "$COMPONENT is running (pid $pid) and healthy on $HOST:$PORT"
        return 0
    fi
    log "$COMPONENT runs (pid $pid) but does not answer on $HOST:$PORT"
    return 1
}

# The last LINES (default 200) lines of each existing file given.
tail_logs() {
    local file
    for file in "$@"; do
        [[ -f "$file" ]] || continue
        printf '==> %s <==\n' "$file"
        tail -n "${LINES:-200}" "$file"
    done
}

# apt_get_install PACKAGE...: Debian packages, non-interactively; needs root. Services that a package
# would start are not started where a policy-rc.d forbids it (containers); the scripts never use
# them anyway: they start their own process on their own port.
apt_get_install() {
    [[ "$(id -u)" == "0" ]] || die "installing $* needs root (apt-get); run 'sudo bash $0 install'."
    command -v apt-get >/dev/null || die "no apt-get here; install $* yourself."
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# go_bin MIN_VERSION: the Go toolchain ($GO, `go` on PATH, or /usr/local/go), or die naming it.
go_bin() {
    if [[ -n "${GO:-}" ]]; then
        printf '%s\n' "$GO"
    elif command -v go >/dev/null; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        printf '%s\n' /usr/local/go/bin/go
    else
        die "Go is not installed; install Go $1+ (https://go.dev/dl) or set GO=/path/to/go."
    fi
}

# already_running PORT_SETTING: exit 0 when our process runs and answers (the caller's start is
# done); die when it runs without answering, or when another process holds HOST:PORT (naming
# PORT_SETTING, e.g. HUB_OPA_PORT, to change); exit 1 when a start is due.
already_running() {
    local pid
    if pid="$(running_pid)"; then
        if healthy 5; then
            log "$COMPONENT already running (pid $pid) on $HOST:$PORT"
            return 0
        fi
        die "$COMPONENT (pid $pid) runs but does not answer on $HOST:$PORT; see 'infra/$SCRIPT logs' or run 'infra/$SCRIPT stop' first."
    fi
    if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
        die "Port $HOST:$PORT is taken by another process; set $1 to a free port."
    fi
    return 1
}

# await_healthy STARTED [POLL_S]: after `launch`, wait until the process answers (`healthy 1`),
# then `launch_succeeded`. Dies, with the log tail, when the process exits or START_TIMEOUT (s)
# passes since STARTED ($SECONDS at launch); the trap set by `launch` then stops it and removes
# the pid file.
await_healthy() {
    local started="$1" poll="${2:-0.2}" pid="$LAUNCHED_PID"
    while ((SECONDS - started < START_TIMEOUT)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cmd_logs >&2 || true
            die "$COMPONENT exited during start-up (log tail above)."
        fi
        if healthy 1; then
            launch_succeeded
            log "$COMPONENT is up (pid $pid) after $((SECONDS - started)) s"
            return 0
        fi
        sleep "$poll"
    done
    cmd_logs >&2 || true
    die "$COMPONENT did not answer on $HOST:$PORT within $START_TIMEOUT s (log tail above); stopping it."
}

# A new Kafka cluster id: 16 random bytes in URL-safe base64 without padding (22 characters),
# never starting with '-' (the storage tool would read it as an option; Kafka's own Uuid avoids
# such ids too).
kafka_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ $id != -* ]] && break
    done
    printf '%s\n' "$id"
}

# -- JVM servers (kafka.sh, kafka-cluster.sh, connect.sh) ----------------------------------------

# jvm_cmd HEAP TMP_DIR LOG4J_CONF [ARG...]: the java command of a JVM server, one word per line
# (for mapfile): a fixed heap, G1 with short pauses, headless, its own temp folder and log4j2
# configuration, then ARGs (options, -cp ...).
jvm_cmd() {
    command -v java >/dev/null || die "java is not on PATH; install OpenJDK 17+ (apt-get install openjdk-17-jre-headless)."
    local heap="$1" tmp="$2" conf="$3"
    shift 3
    printf '%s\n' java "-Xmx$heap" "-Xms$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Djava.io.tmpdir="$tmp" -Dlog4j2.configurationFile="$conf" "$@"
}

# write_log4j FILE LOG_FILE KEEP [LOGGER=LEVEL...]: a log4j2 configuration sending INFO and above
# to LOG_FILE, rolled at 20 MB keeping KEEP old files; each LOGGER=LEVEL sets one logger's level.
write_log4j() {
    local file="$1" out="$2" keep="$3" spec i=0
    shift 3
    {
        printf '# Written by infra/%s; edits are overwritten on the next start.\n' "$SCRIPT"
        printf '%s\n' "status = warn" \
            "appender.file.type = RollingFile" \
            "appender.file.name = file" \
            "appender.file.fileName = $out" \
            "appender.file.filePattern = $out.%i" \
            "appender.file.layout.type = PatternLayout" \
            "appender.file.layout.pattern = [%d] %p %m (%c)%n" \
            "appender.file.policies.type = Policies" \
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy" \
            "appender.file.policies.size.size = 20MB" \
            "appender.file.strategy.type = DefaultRolloverStrategy" \
            "appender.file.strategy.max = $keep" \
            "rootLogger.level = info" \
            "rootLogger.appenderRef.file.ref = file"
        for spec in "$@"; do
            i=$((i + 1))
            printf 'logger.l%d.name = %s\nlogger.l%d.level = %s\n' "$i" "${spec%=*}" "$i" "${spec#*=}"
        done
    } >"$file"
}

# The loggers a Kafka node's log keeps at WARN (one line per partition state change otherwise).
KAFKA_QUIET_LOGGERS=(state.change.logger=warn kafka.request.logger=warn)

# kafka_format_storage DATA_DIR CLUSTER_ID PROPS OUT_LOG JAVA...: format a KRaft node's storage
# once (a no-op when DATA_DIR holds meta.properties); JAVA... is the node's java command.
kafka_format_storage() {
    local data="$1" id="$2" props="$3" out="$4"
    shift 4
    [[ -f "$data/meta.properties" ]] && return 0
    if ! "$@" kafka.tools.StorageTool format -t "$id" -c "$props" --ignore-formatted >"$out" 2>&1; then
        cat "$out" >&2
        die "formatting Kafka storage in $data failed (output above)."
    fi
}

# kafka_answers HOST:PORT TIMEOUT_S [BROKERS]: exit 0 when the broker answers a metadata request
# listing at least BROKERS brokers (default 1), asked with confluent-kafka from $PYTHON; without
# it, when the port accepts a connection (the best check then).
kafka_answers() {
    local address="$1" timeout="$2" want="${3:-1}"
    if [[ -x "${PYTHON:-}" ]] && "$PYTHON" -c 'import confluent_kafka' 2>/dev/null; then
        "$PYTHON" -c '
import sys
from confluent_kafka.admin import AdminClient

admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})
md = admin.list_topics(timeout=float(sys.argv[2]))
sys.exit(0 if len(md.brokers) >= int(sys.argv[3]) else 1)
' "$address" "$timeout" "$want" 2>/dev/null
    else
        (exec 3<>"/dev/tcp/${address%:*}/${address##*:}") 2>/dev/null
    fi
}
