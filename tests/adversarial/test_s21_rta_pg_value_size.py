"""One huge value of an analyst's query over the PostgreSQL views took GBs of the hub and ran
past the time bound (session 21 red team, analyst read surface).

Session 18 fetched PostgreSQL results through a server-side cursor in chunks counted against
``HUB_QUERY_MAX_MEMORY_BYTES``, but a chunk is counted only once it has arrived: one row of one
value of up to 1 GB (``repeat('x', 1000000000)``, ``lpad``) came whole into the hub first.
Measured over HTTP on a running hub (PostgreSQL views, one analyst key of a tenant): the hub's
RSS went from ~0.6 GB to 3.9 GB, and the request answered after 85 s (the bound is 30 s: the
statement timeout stops the server's work, not the transfer), with a driver error. Two such
queries of a tenant run at once; several tenants' analysts, or one tenant's keys over time,
are the OOM kill of the hub and every tenant's ingest with it.

Now PostgreSQL refuses a result row longer than ``QUERY_VALUE_BYTES`` (the longest value a
SQLite query may build) before it is sent, and the chunks are sized so that rows at that bound
fit what is left of the memory bound: ``query_memory_limit``, at once.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from adapters.sqlalchemy_views import QUERY_VALUE_BYTES, SqlAlchemyViewStore
from core.errors import InvalidInput
from core.ports.views import Checkpoint, Position, Target, ViewGrant
from core.projection import Column, Table

pytestmark = pytest.mark.integration

ACCOUNTS = Table(
    "vs_accounts",
    "entity",
    (
        Column("tenant", "string", agg="key"),
        Column("account_id", "string", agg="key"),
        Column("balance", "decimal", scale=2),
    ),
)
COLS = ("tenant", "account_id", "balance")
GRANT = [ViewGrant("vs_accounts", COLS, "t1")]
LIMIT = 16 * 1_048_576


@pytest.fixture
def store() -> Iterator[SqlAlchemyViewStore]:
    from tests.contract.test_views_sqlalchemy import fresh_schema
    from tests.infra import postgres_url

    url = postgres_url("the PostgreSQL query value size test")
    for kwargs in fresh_schema(url):
        s = SqlAlchemyViewStore(url, **kwargs)
        s.query_memory_bytes = LIMIT
        live = Target("vs")
        s.ensure(live, [ACCOUNTS])
        rows = [
            {"tenant": t, "account_id": str(i), "balance": Decimal(i), "src_offsets": {}}
            for i in range(4)
            for t in ("t1", "t2")
        ]
        s.write(live, [ACCOUNTS], {"vs_accounts": rows}, Checkpoint(1, {("a", 0): Position(8)}))
        try:
            yield s
        finally:
            s.close()


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_one_huge_value_is_refused_before_it_reaches_the_hub(store: SqlAlchemyViewStore) -> None:
    before = _peak_mib()
    started = time.monotonic()
    with pytest.raises(InvalidInput) as info:
        store.query("SELECT repeat('x', 100000000) AS r", GRANT)
    took = time.monotonic() - started
    grew = _peak_mib() - before
    # the 100 MB value stayed in PostgreSQL: the hub's peak grew by far less than the value
    assert grew < 4 * LIMIT / 1_048_576, f"the hub's peak memory grew {grew:.0f} MiB"
    assert took < 10, f"refused after {took:.1f} s"
    assert info.value.code == "query_memory_limit", info.value
    assert "longer than" in info.value.message, info.value.message


def test_a_huge_value_of_a_view_row_is_refused_alike(store: SqlAlchemyViewStore) -> None:
    sql = "SELECT account_id, lpad(account_id, 150000000, 'y') AS pad FROM vs_accounts"
    before = _peak_mib()
    with pytest.raises(InvalidInput) as info:
        store.query(sql, GRANT)
    grew = _peak_mib() - before
    assert grew < 4 * LIMIT / 1_048_576, f"the hub's peak memory grew {grew:.0f} MiB"
    assert info.value.code == "query_memory_limit", info.value


def test_rows_under_the_bound_answer_in_order_with_their_names(store: SqlAlchemyViewStore) -> None:
    # near the bound, duplicate and unnamed columns, an ORDER BY: the wrapped query keeps them
    n = QUERY_VALUE_BYTES // 2
    sql = (
        f"SELECT a.account_id, b.account_id, lpad('', {n}, 'z') AS pad, 1 + 1 "
        "FROM vs_accounts AS a JOIN vs_accounts AS b ON a.account_id = b.account_id "
        "ORDER BY a.account_id DESC"
    )
    got = store.query(sql, GRANT)
    assert got.num_rows == 4
    assert got.column(0).to_pylist() == ["3", "2", "1", "0"]
    assert {len(v) for v in got.column("pad").to_pylist()} == {n}
    assert len(got.column_names) == 4
    # a set operation and a CTE run wrapped as well
    union = "SELECT account_id FROM vs_accounts UNION ALL SELECT account_id FROM vs_accounts"
    assert store.query(union, GRANT).num_rows == 8
    cte = "WITH x AS (SELECT account_id FROM vs_accounts) SELECT count(*) AS n FROM x"
    assert store.query(cte, GRANT).to_pylist() == [{"n": 4}]
