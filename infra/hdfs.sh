#!/usr/bin/env bash
# Hadoop HDFS for tests, without a Hadoop install: Hadoop's MiniDFSCluster (one NameNode, one
# DataNode, in one JVM) from the shaded jars on Maven Central, serving WebHDFS on 127.0.0.1.
#
#   infra/hdfs.sh install  download the jars (checked against Maven Central's .sha1) into
#                          ~/.cache/hub/hdfs-$HUB_HADOOP_VERSION (once)
#   infra/hdfs.sh start    install if needed, start, wait until WebHDFS answers (bounded)
#   infra/hdfs.sh stop     SIGTERM the JVM (a no-op when not running)
#   infra/hdfs.sh status   exit 0 only when WebHDFS answers LISTSTATUS /
#   infra/hdfs.sh url      print http://127.0.0.1:HTTP_PORT (the NameNode's WebHDFS)
#
# State, logs: $HUB_INFRA_DIR/hdfs/{hdfs.pid,hdfs.log,data}. Settings: HUB_HDFS_PORT (NameNode
# RPC, default from infra/env.sh), HUB_HDFS_HTTP_PORT (WebHDFS, default from infra/env.sh), HUB_HADOOP_VERSION (3.4.1),
# HUB_HDFS_START_TIMEOUT (180 s). Needs java (17 works). pyarrow's HadoopFileSystem is not used:
# it needs the native libhdfs.so, which none of these jars (nor pyarrow, nor Debian) ships.
set -euo pipefail

# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
STATE_DIR="$HUB_INFRA_DIR/hdfs"
PID_FILE="$STATE_DIR/hdfs.pid"
LOG_FILE="$STATE_DIR/hdfs.log"
VERSION="${HUB_HADOOP_VERSION:-3.4.1}"
JARS="${HUB_CACHE_DIR:-$HOME/.cache/hub}/hdfs-$VERSION"
RPC_PORT="${HUB_HDFS_PORT:-19020}"
HTTP_PORT="${HUB_HDFS_HTTP_PORT:-19070}"
START_TIMEOUT="${HUB_HDFS_START_TIMEOUT:-180}"
MAVEN="https://repo1.maven.org/maven2"
ARTIFACTS=(
    "org/apache/hadoop/hadoop-client-minicluster/$VERSION/hadoop-client-minicluster-$VERSION.jar"
    "org/apache/hadoop/hadoop-client-api/$VERSION/hadoop-client-api-$VERSION.jar"
    "org/apache/hadoop/hadoop-client-runtime/$VERSION/hadoop-client-runtime-$VERSION.jar"
    "org/slf4j/slf4j-api/1.7.36/slf4j-api-1.7.36.jar"
    "org/slf4j/slf4j-simple/1.7.36/slf4j-simple-1.7.36.jar"
    "commons-logging/commons-logging/1.2/commons-logging-1.2.jar"
    "junit/junit/4.13.2/junit-4.13.2.jar"
    "org/hamcrest/hamcrest-core/1.3/hamcrest-core-1.3.jar"
    # WebHDFS (Jersey 1) needs JAXB, which Java 11+ no longer carries
    "javax/xml/bind/jaxb-api/2.3.1/jaxb-api-2.3.1.jar"
    "javax/activation/javax.activation-api/1.2.0/javax.activation-api-1.2.0.jar"
    "org/glassfish/jaxb/jaxb-runtime/2.3.9/jaxb-runtime-2.3.9.jar"
    "org/glassfish/jaxb/txw2/2.3.9/txw2-2.3.9.jar"
    "com/sun/istack/istack-commons-runtime/3.0.12/istack-commons-runtime-3.0.12.jar"
)

log() { printf 'hdfs.sh: %s\n' "$*" >&2; }

cmd_install() {
    mkdir -p "$JARS"
    for path in "${ARTIFACTS[@]}"; do
        local jar="$JARS/${path##*/}"
        [[ -s "$jar" ]] && continue
        log "downloading ${path##*/}"
        curl -sSfL "$MAVEN/$path" -o "$jar.part"
        local want got
        want="$(curl -sSfL "$MAVEN/$path.sha1" | cut -c1-40)"
        got="$(sha1sum "$jar.part" | cut -c1-40)"
        if [[ "$want" != "$got" ]]; then
            rm -f "$jar.part"
            log "SHA-1 of ${path##*/} is $got, Maven Central says $want: refused"
            exit 1
        fi
        mv "$jar.part" "$jar"
    done
}

url() { printf 'http://127.0.0.1:%s' "$HTTP_PORT"; }

cmd_status() {
    curl -sf -m 5 "$(url)/webhdfs/v1/?op=LISTSTATUS&user.name=hub" >/dev/null
}

cmd_start() {
    if cmd_status; then
        log "HDFS already answers at $(url)"
        return 0
    fi
    command -v java >/dev/null || { log "java is not installed (apt-get install openjdk-17-jre-headless)"; exit 1; }
    cmd_install
    mkdir -p "$STATE_DIR"
    rm -rf "$STATE_DIR/data"
    mkdir -p "$STATE_DIR/data"
    (
        cd "$STATE_DIR/data"
        nohup java -Xmx512m -Dtest.build.data="$STATE_DIR/data" -cp "$JARS/*" \
            org.apache.hadoop.mapreduce.MiniHadoopClusterManager -nomr -format -datanodes 1 \
            -nnport "$RPC_PORT" -nnhttpport "$HTTP_PORT" >"$LOG_FILE" 2>&1 &
        echo $! >"$PID_FILE"
    )
    local waited=0
    until cmd_status; do
        if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
            log "the MiniDFSCluster JVM exited; the end of $LOG_FILE:"
            tail -20 "$LOG_FILE" >&2
            exit 1
        fi
        if ((waited >= START_TIMEOUT)); then
            log "WebHDFS did not answer within ${START_TIMEOUT}s; see $LOG_FILE"
            exit 1
        fi
        sleep 2
        waited=$((waited + 2))
    done
    log "HDFS (MiniDFSCluster $VERSION) is up at $(url) (RPC $RPC_PORT) after ${waited}s"
}

cmd_stop() {
    [[ -f "$PID_FILE" ]] || return 0
    local pid
    pid="$(cat "$PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) url; echo ;;
*) echo "usage: infra/hdfs.sh install|start|stop|status|url" >&2; exit 2 ;;
esac
