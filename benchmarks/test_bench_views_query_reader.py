"""SQLite views: a query on its own read-only WAL connection vs the writers' shared one.

Two numbers, each against a same-run baseline: the store's query path before session 18's
fix (``_read_uri = None``: the writers' pooled connection, under their lock), same file, same
SQL. 1) small-query throughput (the new path opens a connection per query: its cost); 2) how
long one projection batch waits while a slow analyst query runs (the point of the change).
"""

from __future__ import annotations

import contextlib
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from benchmarks.conftest import Report
from core.errors import InvalidInput
from core.ports.views import Checkpoint, Position, Target, ViewGrant
from core.projection import Column, Table

ACCOUNTS = Table(
    "bq_accounts",
    "entity",
    (
        Column("tenant", "string", agg="key"),
        Column("account_id", "string", agg="key"),
        Column("balance", "decimal", scale=2),
    ),
)
GRANT = [ViewGrant("bq_accounts", ("tenant", "account_id", "balance"), "t1")]
LIVE = Target("bq")
SMALL = "SELECT count(*) AS n, max(balance) AS m FROM bq_accounts WHERE account_id < 'a5'"
ONE = "instr(printf('%.*c', 200000, account_id), printf('%.*c', 100000, account_id) || 'b')"
SLOW = f"SELECT {', '.join(f'{ONE} AS c{i}' for i in range(4))} FROM bq_accounts LIMIT 1"


def _store(path: Path, shared: bool) -> SqlAlchemyViewStore:
    s = SqlAlchemyViewStore(f"sqlite:///{path}")
    if shared:
        s._read_uri = None  # the path before the fix: the writers' connection and lock
    s.ensure(LIVE, [ACCOUNTS])
    rows = [
        {"tenant": "t1", "account_id": f"a{i}", "balance": Decimal(i), "src_offsets": {}}
        for i in range(1000)
    ]
    s.write(LIVE, [ACCOUNTS], {"bq_accounts": rows}, Checkpoint(1, {("a", 0): Position(1)}))
    return s


def _write_wait(s: SqlAlchemyViewStore) -> float:
    s.query_seconds = 0.5
    waited: list[float] = []

    def write() -> None:
        time.sleep(0.1)
        t = time.perf_counter()
        row = {"tenant": "t1", "account_id": "a0", "balance": Decimal(7), "src_offsets": {}}
        s.write(LIVE, [ACCOUNTS], {"bq_accounts": [row]}, Checkpoint(2, {("a", 0): Position(2)}))
        waited.append(time.perf_counter() - t)

    w = threading.Thread(target=write)
    w.start()
    with contextlib.suppress(InvalidInput):  # refused at its bound: the wait is measured
        s.query(SLOW, GRANT)
    w.join()
    return waited[0]


@pytest.mark.benchmark(group="views-query")
def test_views_query_reader_vs_shared_connection(tmp_path: Path, report: Report) -> None:
    shared = _store(tmp_path / "shared.sqlite", shared=True)
    own = _store(tmp_path / "own.sqlite", shared=False)
    try:
        for name, s in (("shared connection (before)", shared), ("own WAL reader", own)):
            best = 0.0
            for _ in range(3):
                t = time.perf_counter()
                for _ in range(200):
                    s.query(SMALL, GRANT)
                best = max(best, 200 / (time.perf_counter() - t))
            report.add(
                "views query",
                f"small query, {name}",
                best,
                "queries/s",
                baseline="small query, shared connection (before)",
            )
        for name, s in (("shared connection (before)", shared), ("own WAL reader", own)):
            report.add(
                "views query",
                f"batch wait behind slow query, {name}",
                _write_wait(s),
                "s",
                baseline="batch wait behind slow query, shared connection (before)",
                higher_is_better=False,
            )
    finally:
        shared.close()
        own.close()
