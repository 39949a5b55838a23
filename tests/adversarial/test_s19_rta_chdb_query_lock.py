"""An analyst's query over the embedded analytics views (chDB, the default) held every tenant's
analytics projection writes for its whole run (session 19 red team, finding 3; mended: a query
leaves the writers' session after ``inline_seconds`` and finishes in a reader process on a
snapshot, ``adapters.chdb_views``, and each key and tenant has a budget of query-seconds,
``core.sqlguard_limits``). What the red team found:

chDB deadlocks on concurrent queries of one session (``adapters.chdb_views._QUERY_LOCK``), so
``ClickHouseSqlViews.query`` runs under the store's lock, which every write takes. A query may
run ``QUERY_SECONDS`` (30 s; chDB's ``max_execution_time`` does stop it there, tried with 4-way
self-joins and nested ``replace`` over an aggregated string), and the limits admit 60 queries a
minute, one at a time, per principal: one analyst looping 30 s queries keeps the market bars,
payment volumes and AML aggregates of every tenant from advancing for as long as it loops, and
other tenants' queries wait behind it (their wait counts against no bound). The PostgreSQL and
SQLite stores read on their own connections now; chDB needs another process (or a server) for
its reads, or a budget of query-seconds per principal and tenant rather than a count.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.ports.views import Checkpoint, Position, Target
from tests.adversarial._accounts import account_rows, accounts, fill, grant, write_during_query

pytest.importorskip("chdb")

ACCOUNTS = accounts("cl_accounts")
GRANT = grant("cl_accounts")
LIVE = Target("cl")
N = 300
SLOW = (
    "SELECT count() AS n FROM cl_accounts a, cl_accounts b, cl_accounts c, cl_accounts d "
    "WHERE concat(a.account_id, b.account_id, c.account_id, d.account_id) = 'x'"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    from adapters.chdb_views import ChdbViewStore

    s = ChdbViewStore(str(tmp_path / "chdb"))
    s.query_seconds = 3.0  # the bound, 30 s by default; the query runs up to it
    fill(s, LIVE, ACCOUNTS, N, offsets=False)
    try:
        yield s
    finally:
        s.close()


def test_an_analytics_query_does_not_hold_another_tenants_projection_write(store: object) -> None:
    from adapters.chdb_views import ChdbViewStore
    from core.errors import InvalidInput

    assert isinstance(store, ChdbViewStore)

    def query() -> None:
        with pytest.raises(InvalidInput):  # stopped at its bound (query_timeout)
            store.query(SLOW, GRANT)

    batch = {"cl_accounts": account_rows(N, 1, "t2")}  # another tenant's projection batch
    took, wrote = write_during_query(
        query,
        lambda: store.write(LIVE, [ACCOUNTS], batch, Checkpoint(2, {("a", 0): Position(N + 1)})),
    )
    assert took > 2.0, f"the premise: a query of seconds (took {took:.2f} s)"
    assert wrote < 0.5 * took, (
        f"the projection write waited {wrote:.2f} s for a {took:.2f} s analyst query"
    )
