"""Real components for tests: start them through ``infra/<name>.sh``, stop what a session started.

``require(name)`` runs ``infra/<name>.sh start`` (idempotent: a running component is reused) and
returns; when the component cannot start, the test is skipped with a loud reason, or, under
``CI=true``, fails. ``postgres_url()`` is the SQLAlchemy URL of the script's cluster.

Stopping: ``tests/conftest.py`` calls ``session_started`` and ``session_finished``. Under
``CI=true`` (or ``HUB_TEST_STOP_INFRA=1``) every component that was not running when the session
began and runs at its end is stopped, whatever the tests' outcome (pytest's exit code is kept);
Kafka's stored topics are wiped before such a session starts it, so that a persistent cache does
not slow start-up.
Locally components stay up for the next run (start-up costs seconds), as the Kafka fixture
documents; ``make infra-down`` stops them.

Ports and state: ``use_checkout_env()`` (called once by ``tests/conftest.py``) puts this
checkout's ``HUB_INFRA_DIR`` and ``HUB_*_PORT`` (``infra/env.sh``: a port block per checkout) into
``os.environ`` unless already set, so fixtures and scripts agree on them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# started on demand; stopped in this order (Kafka Connect before the Kafka it writes to)
COMPONENTS = (
    "connect",
    "kafka",
    "kafka-cluster",
    "postgres",
    "opa",
    "openbao",
    "s3",
    "prometheus",
    "redis",
    "mlflow",
    "hdfs",
    "otelcol",
)
_running_at_start: dict[str, bool] = {}


def script(name: str) -> Path:
    return ROOT / "infra" / f"{name}.sh"


def _run(name: str, command: str, timeout: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            ["bash", str(script(name)), command], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0, done.stdout + done.stderr


def checkout_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The ``HUB_INFRA_DIR``, ``HUB_INFRA_SLOT`` and ``HUB_*_PORT`` that ``infra/env.sh`` gives."""
    done = subprocess.run(
        ["bash", str(ROOT / "infra" / "env.sh")],
        capture_output=True,
        text=True,
        timeout=30,
        env=os.environ.copy() if environ is None else environ,
        check=True,
    )
    values: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, _, value = shlex.split(line)[-1].partition("=")
        if name.startswith("HUB_INFRA_") or name.endswith("_PORT"):
            values[name] = value
    return values


def use_checkout_env() -> None:
    for name, value in checkout_env().items():
        os.environ.setdefault(name, value)


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require(name: str, what: str) -> None:
    """Start the component if needed; skip (or fail under CI) with the script's output if not."""
    ok, output = _run(name, "start", 600)
    if not ok:
        reason = (
            f"{name.upper()} NOT AVAILABLE: 'infra/{name}.sh start' failed, so {what} did not "
            f"run.\n{output[-3000:]}"
        )
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def postgres_url(what: str = "the PostgreSQL tests") -> str:
    """The URL of the cluster infra/postgres.sh runs (started if needed); skips or fails."""
    explicit = os.environ.get("HUB_TEST_POSTGRES_URL")
    if explicit:
        return explicit
    require("postgres", what)
    ok, output = _run("postgres", "url", 30)
    assert ok, output
    return output.strip().splitlines()[-1]


def mlflow_url(what: str = "the MLflow server tests") -> str:
    """The tracking URI of the server infra/mlflow.sh runs (started if needed, with PostgreSQL);
    ``HUB_TEST_MLFLOW_URL`` names another. Skips loudly, or fails under CI."""
    explicit = os.environ.get("HUB_TEST_MLFLOW_URL")
    if explicit:
        return explicit
    require("mlflow", what)
    ok, output = _run("mlflow", "url", 30)
    assert ok, output
    return output.strip().splitlines()[-1]


def _stop_wanted() -> bool:
    return in_ci() or os.environ.get("HUB_TEST_STOP_INFRA") == "1"


def session_started() -> None:
    if not _stop_wanted():
        return
    for name in COMPONENTS:
        _running_at_start[name] = _run(name, "status", 60)[0]
    for kafka in ("kafka", "kafka-cluster"):
        if not _running_at_start.get(kafka):
            # A persistent cache keeps every earlier run's topics; loading thousands of
            # partitions made a restart exceed its start-up bound. A session that starts Kafka
            # starts it empty.
            ok, output = _run(kafka, "wipe", 60)
            assert ok, output


def session_finished() -> list[str]:
    """Stop the components this session started; the lines to report."""
    lines = []
    for name, was_running in _running_at_start.items():
        if was_running:
            continue
        ok, output = _run(name, "stop", 120)
        last = output.strip().splitlines()[-1] if output.strip() else ""
        lines.append(f"infra/{name}.sh stop: {'ok' if ok else 'FAILED'} {last}")
    _running_at_start.clear()
    return lines
