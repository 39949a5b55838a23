#!/usr/bin/env bash
# Kafka's own load tools (kafka-producer-perf-test = org.apache.kafka.tools.ProducerPerformance)
# for the same-run baselines of `make bench-e2e`. The broker's jars (infra/kafka.sh fetch) do not
# carry them; this fetches org.apache.kafka:kafka-tools of the broker's version from Maven Central
# with its runtime dependencies, into the cache, never into the repository.
#
#   benchmarks/kafka_tools.sh fetch                   once; cached in ~/.cache/hub/kafka-tools-<v>
#   benchmarks/kafka_tools.sh classpath               print the classpath (tools + broker jars)
#   benchmarks/kafka_tools.sh producer-perf-test ARGS run ProducerPerformance with ARGS
set -euo pipefail

KAFKA_VERSION="$(sed -n 's/^KAFKA_VERSION="\(.*\)"$/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../infra/kafka.sh")"
[[ -n "$KAFKA_VERSION" ]] || { echo "kafka_tools.sh: no KAFKA_VERSION in infra/kafka.sh" >&2; exit 2; }
CACHE_DIR="$HOME/.cache/hub/kafka-tools-$KAFKA_VERSION"
LIBS_DIR="$CACHE_DIR/libs"
BROKER_LIBS="$HOME/.cache/hub/kafka-$KAFKA_VERSION/libs"

die() { echo "kafka_tools.sh: $*" >&2; exit 1; }

cmd_fetch() {
    if [[ -f "$CACHE_DIR/.complete" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn is not on PATH; install Maven 3.8+ (apt-get install maven)."
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $tmp is local
    trap "rm -rf '$tmp'" RETURN
    cat >"$tmp/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>hub.bench</groupId>
  <artifactId>kafka-tools-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
  </dependencies>
</project>
POM
    echo "kafka_tools.sh: fetching org.apache.kafka:kafka-tools:$KAFKA_VERSION" >&2
    rm -rf "$LIBS_DIR.partial"
    mkdir -p "$CACHE_DIR"
    if ! mvn -q -B -f "$tmp/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS_DIR.partial" >"$tmp/mvn.log" 2>&1; then
        tail -n 40 "$tmp/mvn.log" >&2
        die "fetching kafka-tools $KAFKA_VERSION from Maven Central failed (log above)."
    fi
    rm -rf "$LIBS_DIR"
    mv "$LIBS_DIR.partial" "$LIBS_DIR"
    echo "$KAFKA_VERSION" >"$CACHE_DIR/.complete"
}

classpath() {
    cmd_fetch
    # The tools' own jars first (kafka-clients of the same version on both sides).
    printf "%s/*" "$LIBS_DIR"
}

case "${1:-}" in
fetch) cmd_fetch ;;
classpath) classpath ;;
producer-perf-test)
    shift
    command -v java >/dev/null || die "java is not on PATH; install OpenJDK 17+."
    cp="$(classpath)"
    exec java -Xmx512m -cp "$cp" org.apache.kafka.tools.ProducerPerformance "$@"
    ;;
*)
    echo "usage: $0 fetch|classpath|producer-perf-test ARGS" >&2
    exit 2
    ;;
esac
