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

.PHONY: setup run test bench lint fmt clean

setup: $(STAMP)

$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --python $(PY) -r requirements/lock.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

# Start the hub on the embedded default (no other service needed), with the demo trading day
# loaded first (once per data folder: a second `make run` finds it loaded and adds nothing).
# `hub init` creates the first admin key (0600) of a fresh folder; every command then uses it.
run: setup
	$(VENV)/bin/hub --data-dir $(DATA) init --key-file $(DATA)/admin.key
	$(VENV)/bin/hub --data-dir $(DATA) --key-file $(DATA)/admin.key demo load
	$(VENV)/bin/hub --data-dir $(DATA) serve --port $(PORT) --admin-key-file $(DATA)/admin.key

# The whole test suite. pytest's exit code 5 (no tests collected) fails the target, loudly.
# Two pytest processes: chDB (the ClickHouse engine in-process) aborted a single process that
# opened and closed a few thousand sessions; the adversarial suite runs in its own.
# The console's browser tests (real Chromium) run in a third one; `make browser-deps` installs it.
TEST_GROUPS := "tests/unit tests/contract tests/integration" "tests/adversarial" "tests/browser"

test: setup
	@rc=0; for group in $(TEST_GROUPS); do \
		$(PY) -m pytest -q $$group; r=$$?; \
		if [ $$r -eq 5 ]; then echo "make test: pytest collected no tests in $$group; that is a failure" >&2; fi; \
		if [ $$r -ne 0 ]; then rc=$$r; fi; \
	done; exit $$rc

# Debian's chromium + chromium-driver for tests/browser (Selenium drives them; no download of a
# browser by any other tool). Needs root or sudo; does nothing when both are installed.
.PHONY: browser-deps
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver are installed"; \
	else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

bench: setup
	$(PY) -m pytest -q -s benchmarks -p no:randomly --benchmark-disable-gc \
		--benchmark-columns=min,median,mean,ops,rounds

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks

# ---- infra: real components on this machine, no Docker (infra/*.sh) ------------------------------
# Each service has <name>-up / <name>-down targets; infra-up / infra-down run them all.
# Kafka: one KRaft broker+controller on 127.0.0.1:19092 (HUB_KAFKA_PORT), jars cached in
# ~/.cache/hub, data under $${HUB_INFRA_DIR:-~/.cache/hub/infra}/kafka.
.PHONY: infra-up infra-down infra-kafka-up infra-kafka-down

infra-kafka-up:
	bash infra/kafka.sh start

infra-kafka-down:
	bash infra/kafka.sh stop

infra-up: infra-kafka-up

infra-down: infra-kafka-down
# ---- end infra ------------------------------------------------------------------------------------

# ---- infra: OpenBao (Vault API) for the Vault KeyStore (infra/openbao.sh) -------------------------
# Dev mode (in memory) on 127.0.0.1:18200 (HUB_BAO_PORT), root token HUB_BAO_TOKEN (default
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
# Server on 127.0.0.1:18181 (HUB_OPA_PORT) with governance/policies (--watch); the binary is built
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
# install` when missing) on 127.0.0.1:15432 (HUB_PG_PORT), role and database `hub`, data under
# $${HUB_INFRA_DIR:-~/.cache/hub/infra}/postgres. URL: `bash infra/postgres.sh url`.
.PHONY: infra-postgres-up infra-postgres-down

infra-postgres-up:
	bash infra/postgres.sh start

infra-postgres-down:
	bash infra/postgres.sh stop

infra-up: infra-postgres-up

infra-down: infra-postgres-down
# ---- end infra: PostgreSQL -------------------------------------------------------------------------
