#!/usr/bin/env bash
# Where this checkout's real components keep their state and which ports they listen on.
#
#   source infra/env.sh           (every infra/*.sh does, before it reads its settings)
#   bash infra/env.sh             print `export HUB_...=...` lines: eval "$(bash infra/env.sh)"
#                                 also sets the hub's own settings (HUB_KAFKA_BOOTSTRAP_SERVERS,
#                                 HUB_OPA_URL, HUB_VAULT_URL, ...) to this checkout's servers
#   bash infra/env.sh --table     one line per component: name, variable, port
#
# Two checkouts on one machine must not share a Kafka (or stop each other's): each checkout gets
#   - its own state folder: HUB_INFRA_DIR, default <checkout>/.infra (gitignored);
#   - its own block of 100 ports: 10000 + 100 * slot, where slot (0..99) is the CRC-32 (cksum) of
#     the checkout's absolute path modulo 100, or HUB_INFRA_SLOT when set. Two checkouts share a
#     block only when their paths collide modulo 100 (1 in 100); the scripts then refuse to start
#     on a taken port and name the variable to set.
# A variable already set in the environment always wins (CI and developers who pick their own
# ports, e.g. HUB_KAFKA_PORT=21092, keep them). Offsets inside a block mirror the usual ports:
#   kafka 92 (controller 93), postgres 32, opa 81, openbao 20, s3 33, redis 79, prometheus 90,
#   flink 86 (REST), hub http 80 (used by tests that serve the hub for a scraper), mlflow 50,
#   otel 18 (the OpenTelemetry Collector's OTLP/HTTP, like 4318), hdfs 24 (NameNode RPC) and
#   74 (NameNode HTTP, WebHDFS), connect 83 (Kafka Connect's REST API), the three-node Kafka
#   cluster 94..96 (brokers) and 97..99 (its controllers). Taken implicitly: 21 (OpenBao's cluster
#   port, its port + 1).

_hub_env_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

if [[ -z "${HUB_INFRA_SLOT:-}" ]]; then
    HUB_INFRA_SLOT=$(($(printf '%s' "$_hub_env_root" | cksum | cut -d' ' -f1) % 100))
fi
if ! [[ "$HUB_INFRA_SLOT" =~ ^[0-9]+$ ]] || ((HUB_INFRA_SLOT > 99)); then
    printf 'env.sh: HUB_INFRA_SLOT=%s is not a whole number from 0 to 99; unset it or pick one.\n' \
        "$HUB_INFRA_SLOT" >&2
    exit 2
fi
_hub_env_base=$((10000 + 100 * HUB_INFRA_SLOT))

# name variable offset (the one table of components and ports)
_hub_env_ports="kafka HUB_KAFKA_PORT 92
kafka-controller HUB_KAFKA_CONTROLLER_PORT 93
postgres HUB_PG_PORT 32
opa HUB_OPA_PORT 81
openbao HUB_BAO_PORT 20
s3 HUB_S3_PORT 33
redis HUB_REDIS_PORT 79
prometheus HUB_PROMETHEUS_PORT 90
flink HUB_FLINK_PORT 86
hub HUB_INFRA_HUB_PORT 80
mlflow HUB_MLFLOW_PORT 50
otel HUB_OTEL_PORT 18
hdfs HUB_HDFS_PORT 24
hdfs-http HUB_HDFS_HTTP_PORT 74
connect HUB_CONNECT_PORT 83
kafka-cluster-1 HUB_KAFKA_NODE1_PORT 94
kafka-cluster-2 HUB_KAFKA_NODE2_PORT 95
kafka-cluster-3 HUB_KAFKA_NODE3_PORT 96
kafka-cluster-controller-1 HUB_KAFKA_NODE1_CONTROLLER_PORT 97
kafka-cluster-controller-2 HUB_KAFKA_NODE2_CONTROLLER_PORT 98
kafka-cluster-controller-3 HUB_KAFKA_NODE3_CONTROLLER_PORT 99"

: "${HUB_INFRA_DIR:=$_hub_env_root/.infra}"
export HUB_INFRA_DIR HUB_INFRA_SLOT
while read -r _hub_env_name _hub_env_var _hub_env_offset; do
    if [[ -z "${!_hub_env_var:-}" ]]; then
        printf -v "$_hub_env_var" '%s' "$((_hub_env_base + _hub_env_offset))"
    fi
    # shellcheck disable=SC2163  # exporting the variable named by the value is the point
    export "$_hub_env_var"
done <<<"$_hub_env_ports"
unset _hub_env_name _hub_env_var _hub_env_offset

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    case "${1:-}" in
    --table)
        printf '%-27s %-36s %s\n' component variable port
        while read -r name var _; do
            printf '%-27s %-36s %s\n' "$name" "$var" "${!var}"
        done <<<"$_hub_env_ports"
        ;;
    "")
        printf 'export HUB_INFRA_DIR=%q\n' "$HUB_INFRA_DIR"
        printf 'export HUB_INFRA_SLOT=%s\n' "$HUB_INFRA_SLOT"
        while read -r _ var _; do
            printf 'export %s=%s\n' "$var" "${!var}"
        done <<<"$_hub_env_ports"
        # The hub's settings pointing at this checkout's servers.
        printf 'export HUB_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$HUB_KAFKA_PORT"
        printf 'export HUB_OPA_URL=http://127.0.0.1:%s\n' "$HUB_OPA_PORT"
        printf 'export HUB_VAULT_URL=http://127.0.0.1:%s\n' "$HUB_BAO_PORT"
        printf 'export HUB_VIEWS_SQL_URL=postgresql+psycopg://hub:%s@127.0.0.1:%s/hub\n' \
            "${HUB_PG_PASSWORD:-hub}" "$HUB_PG_PORT"
        ;;
    *)
        printf 'usage: %s [--table]\n' "$0" >&2
        exit 2
        ;;
    esac
fi
unset _hub_env_root _hub_env_base
