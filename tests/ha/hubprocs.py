"""Several ``hub serve`` processes on one distributed footprint (Kafka + PostgreSQL) for the HA
tests: their environment, start, logs, and the waits the tests share."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

HUB = str(Path(sys.executable).parent / "hub")

# What makes several hub processes one HA footprint: the settings every process of tests/ha
# runs with, and deploy/compose/compose.ha.yaml too (tests/ha/test_compose_ha.py compares them).
HA_SETTINGS = {
    "HUB_EVENT_LOG": "kafka",
    "HUB_LEDGER_STORE": "postgres",
    "HUB_VIEWS_ANALYTICS": "chdb",  # each process's own copy (a ClickHouse server cannot fence)
    "HUB_LEADER_ELECTION": "postgres",
}
# ... and on the three-broker cluster (test_failover.py; compose.ha.yaml's three brokers)
CLUSTER_SETTINGS = {"HUB_KAFKA_REPLICATION_FACTOR": "3"}


def serve_command(port: int) -> list[str]:
    """The arguments of a served hub process (after ``hub``), as compose.ha.yaml runs them."""
    return ["serve", "--port", str(port)]


def ports(n: int = 2) -> list[int]:
    """Ports for the hub processes: HUB_TEST_HA_PORTS ("p1,p2") or free ones."""
    given = os.environ.get("HUB_TEST_HA_PORTS")
    if given:
        return [int(p) for p in given.split(",")][:n]
    out = []
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            out.append(s.getsockname()[1])
    return out


@dataclass
class Proc:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 15) -> str:
        text = [line[:300] for line in self.log.read_text(errors="replace").splitlines()]
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text[-lines:])


def until(what: str, check: Callable[[], Any], timeout: float, procs: Iterable[Proc]) -> Any:
    """Poll ``check`` every 50 ms until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s\n" + "\n".join(p.tail() for p in procs))


def get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(key.encode()).decode()}


def environment(
    tmp: Path, bootstrap_servers: str, pg: str, run: str, **extra: str
) -> tuple[dict[str, str], str, str]:
    """The env of this run's processes (the machine's HUB_* left out, infra ones kept), and its
    views and ledger schemas in PostgreSQL (the views schema is created here)."""
    views_schema, ledger_schema = f"ha_{run}", f"ha_{run}_ledger"
    engine = sa.create_engine(pg)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{views_schema}"'))
    engine.dispose()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HUB_") or k.startswith("HUB_INFRA")
    }
    env.update(
        {
            **HA_SETTINGS,
            "HUB_DATA_DIR": str(tmp / "data"),  # the keys both processes share (a secret mount)
            "HUB_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "HUB_KAFKA_TOPIC_PREFIX": f"ha{run}.",
            "HUB_LEDGER_POSTGRES_URL": pg,
            "HUB_LEDGER_POSTGRES_SCHEMA": ledger_schema,
            "HUB_VIEWS_SQL_URL": f"{pg}?options=-csearch_path%3D{views_schema}",
            "HUB_LEADER_NAME": f"ha-{run}",
            "HUB_LOG_LEVEL": "INFO",
            **extra,
        }
    )
    return env, views_schema, ledger_schema


def new_run() -> str:
    return uuid.uuid4().hex[:10]


def init(env: dict[str, str], key_file: Path) -> str:
    """``hub init``: topics, schemas, the admin key (returned)."""
    done = subprocess.run(
        [HUB, "init", "--key-file", str(key_file)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return key_file.read_text().strip()


# Every hub process log of this session (hub name -> file), copied when a test fails.
STARTED_LOGS: dict[str, Path] = {}
FAILED_RUNS = Path.home() / ".cache" / "hub" / "failed-runs"
KEEP_FAILED_RUNS = 20


def keep_failed_run(test: str) -> Path | None:
    """Copy the FULL logs of every hub process this session started and of every Kafka broker
    (the three-node cluster's and the single broker's, under HUB_INFRA_DIR) to
    ``~/.cache/hub/failed-runs/<test>-<UTC time>/``, so that a failure under load in CI can be
    read afterwards (a tail in the assertion message rarely says why). Returns the folder, or
    None when there was nothing to keep."""
    import shutil

    infra_dir = Path(os.environ.get("HUB_INFRA_DIR", ""))
    sources: list[tuple[str, Path]] = [(f"hub/{n}", p) for n, p in STARTED_LOGS.items()]
    if os.environ.get("HUB_INFRA_DIR"):
        for logs in sorted(infra_dir.glob("kafka-cluster/node-*/logs")):
            sources.append((f"kafka-cluster/{logs.parent.name}", logs))
        if (infra_dir / "kafka" / "logs").is_dir():
            sources.append(("kafka", infra_dir / "kafka" / "logs"))
    sources = [(n, p) for n, p in sources if p.exists()]
    if not sources:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in test)[:120]
    folder = FAILED_RUNS / f"{safe}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    for name, path in sources:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target.with_suffix(".log"))
    for old in sorted(FAILED_RUNS.iterdir(), key=lambda p: p.stat().st_mtime)[:-KEEP_FAILED_RUNS]:
        shutil.rmtree(old, ignore_errors=True)  # the newest ones are kept; the cache stays small
    return folder


def start(env: dict[str, str], name: str, port: int, tmp: Path) -> Proc:
    log = tmp / f"{name}.log"
    STARTED_LOGS[f"{tmp.name}-{name}"] = log
    popen = subprocess.Popen(
        [HUB, *serve_command(port)],
        env={**env, "HUB_LEADER_ID": name},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # SIGSTOP/SIGKILL reach the hub alone
    )
    return Proc(name, port, popen, log)


def holder(pg: str, lease: str) -> tuple[str, int] | None:
    """The live lease's (holder, epoch) as PostgreSQL sees it."""
    engine = sa.create_engine(pg)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT holder, epoch FROM hub_leadership.leases WHERE name = :n "
                    "AND expires_at >= clock_timestamp()"
                ),
                {"n": lease},
            ).first()
    finally:
        engine.dispose()
    return None if row is None else (str(row[0]), int(row[1]))


def loop_fences(pg: str, lease: str) -> dict[str, int]:
    """The leader-only loops' fences of ``lease`` (writer -> epoch), as PostgreSQL holds them."""
    engine = sa.create_engine(pg)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT writer, epoch FROM hub_leadership.writer_epochs WHERE lease = :n"),
                {"n": lease},
            ).all()
    finally:
        engine.dispose()
    return {str(w): int(e) for w, e in rows}


def delete_topics(bootstrap_servers: str, prefix: str) -> None:
    """This run's topics go (a cluster that keeps every run's partitions starts ever slower)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    names = [n for n in admin.list_topics(timeout=30).topics if n.startswith(prefix)]
    for future in admin.delete_topics(names, operation_timeout=30).values() if names else []:
        future.result(timeout=60)


def drop_schemas(pg: str, *schemas: str) -> None:
    engine = sa.create_engine(pg)
    with engine.begin() as conn:
        for schema in schemas:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


_prestart: subprocess.Popen[bytes] | None = None


def prestart_cluster() -> None:
    """Start the three-broker cluster in the background (its first start formats three nodes:
    ~50 s), so that it overlaps the tests that run before the failover test. Its output is not
    kept: the failover fixture runs ``start`` again after ``wait_prestarted`` and reports."""
    global _prestart
    if _prestart is None:
        from tests import infra

        _prestart = subprocess.Popen(
            ["bash", str(infra.script("kafka-cluster")), "start"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def wait_prestarted() -> None:
    global _prestart
    if _prestart is not None:
        try:
            _prestart.wait(timeout=600)
        finally:
            _prestart = None


def cluster_bootstrap(what: str) -> str:
    """The three-broker cluster's bootstrap servers, once its background start has finished
    (skips without the cluster, fails under CI=true)."""
    from tests import infra

    wait_prestarted()
    infra.require("kafka-cluster", what)
    done = subprocess.run(
        ["bash", str(infra.script("kafka-cluster")), "bootstrap"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()
