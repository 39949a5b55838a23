#!/usr/bin/env bash
# Apache Flink for the projections on the distributed footprint (PyFlink, no Docker).
#
#   infra/flink.sh setup    create the PyFlink virtualenv, fetch the connector jars and build the hub's
#                           own functions' jar (once; cached)
#   infra/flink.sh start    the same (jobs run on a mini-cluster in their own process: no daemon)
#   infra/flink.sh stop     nothing to stop (a job stops with its process); says so
#   infra/flink.sh functions  build only the hub's functions' jar, when the virtualenv is there
#                           (`make setup` runs it; without the virtualenv it says so and exits 0)
#   infra/flink.sh status   exit 0 when the virtualenv and every jar are in place
#   infra/flink.sh python   print the virtualenv's interpreter (runs the jobs and the Python UDFs)
#   infra/flink.sh jars     print the jars as Flink's `pipeline.jars` wants them (`;`-separated URLs)
#
# Jobs run on a Flink mini-cluster inside the job process that `hub projection run --engine
# flink` launches with this virtualenv's interpreter (projections/flink/job.py): the hub's own lock
# file never holds apache-flink (it pins numpy, pandas, pyarrow and protobuf below what the hub's
# other dependencies want), so PyFlink lives apart.
#
# Virtualenv:  $HOME/.cache/hub/flink-venv   (requirements/flink-lock.txt, installed with uv)
# Jars:        $HOME/.cache/hub/flink-jars   (Maven Central, each checked against its .sha1; and
#              hub-flink-functions-<digest>.jar, javac of projections/flink/java/*.java against the
#              virtualenv's Flink API jar: projections/flink/jvm.py names it by the same digest)
#
# Settings (environment):
#   HUB_FLINK_VENV, HUB_FLINK_JARS   other folders for the two caches
#   HUB_PYTHON   the interpreter that creates the virtualenv (default python3.11, else python3)
set -euo pipefail

FLINK_VERSION="2.2.1"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HUB_FLINK_VENV:-$HOME/.cache/hub/flink-venv}"
JARS="${HUB_FLINK_JARS:-$HOME/.cache/hub/flink-jars}"
REQUIREMENTS="$REPO_ROOT/requirements/flink-lock.txt"  # pinned from requirements/flink.txt
MAVEN="https://repo1.maven.org/maven2"

# group:artifact:version of every jar the jobs put on `pipeline.jars` (versions measured to work
# with Flink 2.2: the Kafka SQL connector is a fat jar; JDBC core + its PostgreSQL dialect + pgJDBC)
ARTIFACTS=(
    "org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2"
    "org.apache.flink:flink-connector-jdbc-core:4.0.0-2.0"
    "org.apache.flink:flink-connector-jdbc-postgres:4.0.0-2.0"
    "org.postgresql:postgresql:42.7.4"
)

# the hub's own JVM functions (projections/flink/jvm.py): sources, and the Flink jar they need
JAVA_SOURCES="$REPO_ROOT/projections/flink/java"
FLINK_API_JAR="flink-table-api-java-uber-$FLINK_VERSION.jar"

SCRIPT="flink.sh"
COMPONENT="Flink"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

jar_path() {
    local group artifact version
    IFS=: read -r group artifact version <<<"$1"
    printf '%s/%s-%s.jar\n' "$JARS" "$artifact" "$version"
}

jar_url() {
    local group artifact version
    IFS=: read -r group artifact version <<<"$1"
    printf '%s/%s/%s/%s/%s-%s.jar\n' "$MAVEN" "${group//.//}" "$artifact" "$version" "$artifact" \
        "$version"
}

# the Java sources in the byte order of their names, into the array SOURCES
java_sources() {
    mapfile -t SOURCES < <(find "$JAVA_SOURCES" -maxdepth 1 -name '*.java' -print | LC_ALL=C sort)
    ((${#SOURCES[@]})) || die "no Java sources in $JAVA_SOURCES (a partial checkout?)."
}

# hub-flink-functions-<first 16 hex of the SHA-256 of the sources concatenated in name order>.jar
functions_jar() {
    local digest
    java_sources
    digest="$(cat "${SOURCES[@]}" | sha256sum | cut -c1-16)"
    printf '%s/hub-flink-functions-%s.jar\n' "$JARS" "$digest"
}

build_functions() {
    local jar api out
    jar="$(functions_jar)"
    [[ -f "$jar" ]] && return 0
    command -v javac >/dev/null || die "javac is not on PATH; the hub's Flink functions need a JDK 17 (apt-get install openjdk-17-jdk-headless)."
    api="$(find "$VENV/lib" -path "*/pyflink/lib/$FLINK_API_JAR" -print -quit)"
    [[ -n "$api" ]] || die "$FLINK_API_JAR is not in $VENV (run 'infra/flink.sh setup' again)."
    log "building $(basename "$jar") from $JAVA_SOURCES"
    java_sources
    out="$(mktemp -d "$JARS/.build.XXXXXX")"
    javac --release 17 -Xlint:all -Werror -cp "$api" -d "$out/classes" "${SOURCES[@]}" ||
        { rm -rf "$out"; die "javac of $JAVA_SOURCES failed (output above)."; }
    jar --create --file "$out/functions.jar" -C "$out/classes" . ||
        { rm -rf "$out"; die "packing $jar failed (output above)."; }
    mv "$out/functions.jar" "$jar"  # whole or absent: another checkout may read the cache
    rm -rf "$out"
}

venv_ready() {
    [[ -x "$VENV/bin/python" && -f "$VENV/.installed" ]] &&
        cmp -s "$REQUIREMENTS" "$VENV/.installed"
}

fetch_jars() {
    mkdir -p "$JARS"
    local a path url want got
    for a in "${ARTIFACTS[@]}"; do
        path="$(jar_path "$a")"
        [[ -f "$path" ]] && continue
        url="$(jar_url "$a")"
        log "fetching $a"
        curl -fsSL --retry 3 -o "$path.partial" "$url" || die "downloading $url failed."
        want="$(curl -fsSL --retry 3 "$url.sha1" | cut -c1-40)" || die "downloading $url.sha1 failed."
        got="$(sha1sum "$path.partial" | cut -c1-40)"
        if [[ "$want" != "$got" ]]; then
            rm -f "$path.partial"
            die "$url has SHA-1 $got, Maven Central says $want; refusing it (retry, or check the proxy)."
        fi
        mv "$path.partial" "$path"
    done
}

make_venv() {
    venv_ready && return 0
    local python="${HUB_PYTHON:-}"
    if [[ -z "$python" ]]; then
        python="$(command -v python3.11 || command -v python3)" || die "no python3 on PATH."
    fi
    log "creating $VENV with apache-flink $FLINK_VERSION (a few minutes the first time)"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check uv==0.13.9
    "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -r "$REQUIREMENTS" ||
        die "installing $REQUIREMENTS into $VENV failed (output above)."
    cp "$REQUIREMENTS" "$VENV/.installed"
}

cmd_setup() {
    command -v java >/dev/null || die "java is not on PATH; Flink needs a JDK 17 (apt-get install openjdk-17-jdk-headless)."
    fetch_jars
    make_venv
    build_functions
    log "ready: $VENV/bin/python, $(ls "$JARS"/*.jar | wc -l) jars in $JARS"
}

cmd_status() {
    local a missing=0
    venv_ready || { log "the PyFlink virtualenv $VENV is missing or stale: run 'infra/flink.sh setup'"; missing=1; }
    for a in "${ARTIFACTS[@]}"; do
        [[ -f "$(jar_path "$a")" ]] || { log "jar $a is missing: run 'infra/flink.sh setup'"; missing=1; }
    done
    [[ -f "$(functions_jar)" ]] || { log "the hub's functions jar $(functions_jar) is missing: run 'infra/flink.sh setup'"; missing=1; }
    ((missing == 0)) && log "Flink $FLINK_VERSION ready ($VENV, $JARS)"
    return "$missing"
}

cmd_jars() {
    local a out=""
    for a in "${ARTIFACTS[@]}"; do
        out+="${out:+;}file://$(jar_path "$a")"
    done
    out+=";file://$(functions_jar)"
    printf '%s\n' "$out"
}

cmd_functions() {
    if ! venv_ready; then
        log "no PyFlink virtualenv at $VENV: the hub's Flink functions are built by 'make flink-setup'"
        return 0
    fi
    mkdir -p "$JARS"
    build_functions
}

case "${1:-}" in
setup | start) one_install_at_a_time "$VENV.lock" 1800 cmd_setup ;;
functions) cmd_functions ;;
stop) log "no Flink daemon to stop: each projection job runs (and stops) in its own process" ;;
status) cmd_status ;;
python) printf '%s\n' "$VENV/bin/python" ;;
jars) cmd_jars ;;
*)
    printf 'usage: %s setup|start|stop|status|python|jars|functions\n' "$0" >&2
    exit 2
    ;;
esac
