#!/usr/bin/env bash
# Apache Spark for batch work beside the hub (PySpark local[2], no Docker, no daemon).
#
#   infra/spark.sh install   create the PySpark virtualenv (once; cached; a few minutes cold)
#   infra/spark.sh start     the same (jobs run Spark local[N] in their own process: no daemon)
#   infra/spark.sh stop      nothing to stop (a job stops with its process); says so
#   infra/spark.sh status    exit 0 when the virtualenv is in place and matches the lock
#   infra/spark.sh python    print the virtualenv's interpreter (the hub runs job scripts with it)
#
# The hub never imports pyspark: it writes input files (Parquet), runs a job script
# (ml/spark_job.py, projections/spark_job.py) with this interpreter and reads the files the job
# wrote. The hub's own lock holds no pyspark: pyspark pins py4j differently from apache-flink.
#
# Virtualenv:  $HOME/.cache/hub/spark-venv   (requirements/spark-lock.txt, installed with uv)
#
# Settings (environment):
#   HUB_SPARK_VENV   another folder for the virtualenv
#   HUB_PYTHON       the interpreter that creates it (default python3.11, else python3)
set -euo pipefail

SPARK_VERSION="4.3.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HUB_SPARK_VENV:-$HOME/.cache/hub/spark-venv}"
REQUIREMENTS="$REPO_ROOT/requirements/spark-lock.txt" # pinned from requirements/spark.txt

SCRIPT="spark.sh"
COMPONENT="Spark"
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

venv_ready() {
    [[ -x "$VENV/bin/python" && -f "$VENV/.installed" ]] &&
        cmp -s "$REQUIREMENTS" "$VENV/.installed"
}

cmd_install() {
    command -v java >/dev/null ||
        die "java is not on PATH; Spark $SPARK_VERSION needs a JDK 17 or 21 (apt-get install openjdk-17-jdk-headless)."
    if venv_ready; then
        log "ready: $VENV/bin/python (pyspark $SPARK_VERSION)"
        return 0
    fi
    local python="${HUB_PYTHON:-}"
    if [[ -z "$python" ]]; then
        python="$(command -v python3.11 || command -v python3)" || die "no python3 on PATH."
    fi
    log "creating $VENV with pyspark $SPARK_VERSION (a few minutes the first time)"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check uv==0.13.9
    "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -r "$REQUIREMENTS" ||
        die "installing $REQUIREMENTS into $VENV failed (output above)."
    "$VENV/bin/python" -c "import pyspark, numpy" ||
        die "pyspark does not import in $VENV (output above)."
    cp "$REQUIREMENTS" "$VENV/.installed"
    log "ready: $VENV/bin/python (pyspark $SPARK_VERSION)"
}

cmd_status() {
    if venv_ready; then
        log "Spark $SPARK_VERSION ready ($VENV)"
        return 0
    fi
    log "the PySpark virtualenv $VENV is missing or stale: run 'infra/spark.sh install'"
    return 1
}

case "${1:-}" in
install | setup | start) one_install_at_a_time "$VENV.lock" 1800 cmd_install ;;
stop) log "no Spark daemon to stop: each job runs Spark local[N] in its own process" ;;
status) cmd_status ;;
python) printf '%s\n' "$VENV/bin/python" ;;
*)
    printf 'usage: %s install|start|stop|status|python\n' "$0" >&2
    exit 2
    ;;
esac
