"""tests/ha: the three-broker cluster starts in the background once collection shows the
failover test will run, overlapping the tests before it (the session's infra teardown stops it);
the Spark tests share one Spark session (``shared_spark``, ``tests/ha/spark_server.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.ha import hubprocs


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed HA test keeps the full logs of every hub process and broker of its run
    (``hubprocs.keep_failed_run``) and names the folder in its report."""
    report = yield
    if report.failed:
        folder = hubprocs.keep_failed_run(f"{item.name}-{report.when}")
        if folder is not None:
            report.sections.append(("failed-run logs", f"full logs kept in {folder}"))
            print(f"\n{item.nodeid}: full logs of the failed run kept in {folder}", file=sys.stderr)
    return report


def pytest_collection_finish(session: pytest.Session) -> None:
    cluster_tests = {
        "test_failover.py",
        "test_txn_coordinator.py",
        "test_cluster_new_topic.py",
        "test_cluster_offsets_broker_gone.py",
    }
    if any(item.path.name in cluster_tests for item in session.items):
        hubprocs.prestart_cluster()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    hubprocs.wait_prestarted()  # before the session's teardown stops what it started


@pytest.fixture(scope="session")
def shared_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``HUB_SPARK_PYTHON`` for the session: a shim that runs each job in ONE long-lived Spark
    interpreter (tests/ha/spark_server.py), so the Spark modules pay one JVM and one session
    start-up between them instead of one per job. Skips (fails under CI=true) without the Spark
    virtualenv, like each Spark test."""
    from tests import infra
    from tests.ha import spark_server

    infra.require("spark", "the Spark tests")
    python = subprocess.run(
        ["bash", str(infra.script("spark")), "python"], capture_output=True, text=True, check=True
    ).stdout.strip()
    folder = tmp_path_factory.mktemp("spark-server")
    (folder / "tmp").mkdir()
    sock = folder / "jobs.sock"
    env = {
        **os.environ,
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "TMPDIR": str(folder / "tmp"),
        "JAVA_TOOL_OPTIONS": f"-Djava.io.tmpdir={folder / 'tmp'}",
    }
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [python, "-I", spark_server.__file__, str(sock)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the Spark job server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        shim = folder / "python"
        shim.write_text(spark_server.SHIM.format(python=sys.executable, socket_path=str(sock)))
        shim.chmod(0o755)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HUB_SPARK_PYTHON", str(shim))
            yield shim
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
