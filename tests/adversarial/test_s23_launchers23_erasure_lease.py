"""Only the leader completes an interrupted erasure (session 23).

Every open completes the erasures a killed process left half done (their intents in
``<data>/erasures-pending``: keys destroyed, views not scrubbed, nothing on the ledger). HA
replicas share the data folder, so every replica that opened, or restarted, at the same time
found the same intent and completed it: the same erasure recorded on the ledger once per
replica, and several processes scrubbing and rebuilding the same views at once.

Now, under leader election, only the lease's holder completes intents, inside the lease's fence;
a follower leaves them, and the leader completes them when it is elected
(``hub.ha.single_writers``). Here a replica opens while another process holds the lease: it
must leave the intent alone (nothing recorded, the intent kept); once the lease is free it is
elected and completes the erasure exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests import infra

psycopg = pytest.importorskip("psycopg")

from adapters.postgres_conn import libpq_url  # noqa: E402
from adapters.postgres_leadership import PostgresLeadership  # noqa: E402
from hub.ha import single_writers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SUBJECT, OTHER = "ACC-L1", "ACC-L2"
NAME, KEPT = "Lea Leased", "Olaf Other"
LEASE_S = 3.0
CHILD = [sys.executable, "-m", "tests.adversarial._erasure_child"]


@pytest.fixture
def ha_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The settings of an HA replica: the ledger and the lease in PostgreSQL (a schema and a
    lease name of this test's own)."""
    pg = infra.postgres_url("the erasure lease test")
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    env = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_LEDGER_STORE": "postgres",
        "HUB_LEDGER_POSTGRES_URL": pg,
        "HUB_LEDGER_POSTGRES_SCHEMA": schema,
        "HUB_LEADER_ELECTION": "postgres",
        "HUB_LEADER_NAME": f"lease-{schema}",
        "HUB_LEADER_LEASE_S": str(LEASE_S),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    with psycopg.connect(libpq_url(pg), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def erasures(h: Hub, subject: str) -> list[str]:
    """The actors of the ledger's ``subject.erase`` entries of ``subject``."""
    return [
        str(e["actor"])
        for e in h.ledger.entries(action="subject.erase", resource=f"subject:{subject}")
    ]


def views_text(h: Hub) -> str:
    from core.ports.policy import Principal

    table = h.projections.query(
        h.policy,
        Principal("ops", frozenset({"admin"})),
        "SELECT * FROM accounts_current",
        store="transactional",
    )
    return json.dumps(table.to_pylist(), default=str)


def test_a_follower_leaves_an_interrupted_erasure_to_the_leader(
    tmp_path: Path, ha_env: dict[str, str]
) -> None:
    data = tmp_path / "hub"
    out = subprocess.run(
        [
            *CHILD,
            str(data),
            "kill",
            "DSR-88",
            "officer-1",
            SUBJECT,
            NAME,
            OTHER,
            KEPT,
            "--inherit-env",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "erasing" in out.stdout and out.returncode == 137, out.stderr[-3000:]
    intents = data / "erasures-pending"
    assert len(list(intents.glob("*.json"))) == 1
    time.sleep(LEASE_S + 0.5)  # the killed process's lease runs out
    other = PostgresLeadership(
        ha_env["HUB_LEDGER_POSTGRES_URL"], ha_env["HUB_LEADER_NAME"], "other-replica",
        lease_s=120,
    )  # fmt: skip
    epoch = other.try_acquire()
    assert epoch is not None
    h = bootstrap(load_settings(data_dir=data))
    try:
        # a follower: the intent is the leader's to complete
        assert erasures(h, SUBJECT) == [], "a follower recorded the erasure"
        assert len(list(intents.glob("*.json"))) == 1, "a follower took the intent"
        other.release(epoch)  # the other replica goes away: this one is elected
        with single_writers(h, projections=False):
            deadline = time.monotonic() + 120
            while list(intents.glob("*.json")) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not list(intents.glob("*.json")), "the leader did not complete the intent"
            assert erasures(h, SUBJECT) == ["officer-1"]
        h.projections.run(["accounts"])
        assert NAME not in views_text(h) and KEPT in views_text(h)
    finally:
        h.close()
        other.close()
    # the next open (leading now) finds nothing left: still one entry
    h = bootstrap(load_settings(data_dir=data))
    try:
        assert erasures(h, SUBJECT) == ["officer-1"]
    finally:
        h.close()
