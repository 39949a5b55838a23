"""PostgreSQL views with PII sealed (session 20) vs in plaintext (before), same run, same log.

One hub with an embedded log and its transactional views on PostgreSQL holds ``accounts``
opened events of ``n`` accounts (each its own data subject, so each value opens under its own
key). Each pair times, in CPU seconds of this process (``time.process_time``; PostgreSQL's own
CPU is not counted) and wall seconds, alternating the two modes:
- ``rebuild``: ``hub projections rebuild accounts`` (decode, fold, write, swap);
- ``rows``: ``store.rows`` of the whole table (the digest's and the row read's path);
- ``query``: ``SELECT * FROM accounts_current`` through the guard.
"plain" is the code path before the change on the same store (``seals_pii`` off, no opener:
the runner decrypts and writes plaintext, reads return it as stored); "sealed" is the new one.

``python -m benchmarks.pg_sealed_views [n] [pairs]`` with ``HUB_INFRA_SLOT``/``HUB_INFRA_DIR``
set (the cluster ``infra/postgres.sh`` runs; started if needed) or ``HUB_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.events import OutgoingEvent
from core.ports.policy import Principal
from core.ports.views import Target
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from projections.catalog import ACCOUNTS
from tests.infra import postgres_url
from tests.service.accounts import account_opened

OPERATOR = Principal("ops", frozenset({"admin"}))


def opened(i: int) -> OutgoingEvent:
    return account_opened(
        f"ACC-{i:06d}",
        name=f"Customer Number {i}",
        email=f"customer.{i}@example.org",
        date_of_birth="1980-02-03",
        opened_at="2026-11-25T10:00:00Z",
    )


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def mode(h: Hub, sealed: bool, unseal: Any) -> None:
    store: Any = h.projections.store("transactional")
    store._unseal = unseal if sealed else None
    store.seals_pii = sealed


def main(n: int = 2000, pairs: int = 5) -> None:
    pg = postgres_url("the sealed views benchmark")
    schema = f"b_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    data = Path(tempfile.mkdtemp(prefix="pgsealed-bench-"))
    url = f"{pg}?options=-csearch_path%3D{schema}"
    h = bootstrap(load_settings(environ={}, data_dir=data, views_sql_url=url))
    try:
        for start in range(0, n, 500):
            events = [opened(i) for i in range(start, min(n, start + 500))]
            h.publisher.publish("accounts", events, "bench")
        h.projections.run(["accounts"])
        store: Any = h.projections.store("transactional")
        unseal = store._unseal
        table = ACCOUNTS.tables[0]
        steps: dict[str, Callable[[], Any]] = {
            "rebuild": lambda: h.projections.rebuild("accounts"),
            "rows": lambda: store.rows(Target("accounts"), table),
            "query": lambda: h.projections.query(
                h.policy, OPERATOR, "SELECT * FROM accounts_current", store="transactional"
            ),
        }
        got: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for pair in range(pairs):
            for sealed in (pair % 2 == 0, pair % 2 == 1):  # alternate which runs first
                mode(h, sealed, unseal)
                label = "sealed" if sealed else "plain"
                for name, fn in steps.items():
                    got.setdefault((name, label), []).append(timed(fn))
        print(f"n={n} accounts, {pairs} pairs, CPU s (wall s) of the hub process: min-max, median")
        for name in steps:
            line = [f"{name:8}"]
            for label in ("plain", "sealed"):
                cpu = [c for c, _ in got[(name, label)]]
                wall = [w for _, w in got[(name, label)]]
                line.append(
                    f"{label} {min(cpu):.3f}-{max(cpu):.3f} med {statistics.median(cpu):.3f} "
                    f"({statistics.median(wall):.3f})"
                )
            pairs_of = zip(got[(name, "sealed")], got[(name, "plain")], strict=True)
            ratios = [s[0] / p[0] for s, p in pairs_of]
            line.append(f"sealed/plain CPU {min(ratios):.2f}-{max(ratios):.2f}")
            print("  ".join(line))
    finally:
        h.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
