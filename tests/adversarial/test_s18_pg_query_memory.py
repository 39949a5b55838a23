"""An analyst's query over the PostgreSQL views cannot take the hub's memory (session 18).

The SQLite store got its bound in 5aabfad; on PostgreSQL the driver's default (client-side)
cursor buffered the whole result in the hub at execute, so ``lpad('x', 500000000, 'x')`` over a
few rows needed GBs of the hub's memory. Now the rows come through a server-side cursor in
chunks, counted against ``HUB_QUERY_MAX_MEMORY_BYTES``: 422 ``query_memory_limit`` past it.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from core.errors import InvalidInput
from core.ports.views import Checkpoint, Position, Target, ViewGrant
from core.projection import Column, Table

pytestmark = pytest.mark.integration

ACCOUNTS = Table(
    "qm_accounts",
    "entity",
    (
        Column("tenant", "string", agg="key"),
        Column("account_id", "string", agg="key"),
        Column("balance", "decimal", scale=2),
    ),
)
COLS = ("tenant", "account_id", "balance")
GRANT = [ViewGrant("qm_accounts", COLS, "t1")]
LIMIT = 16 * 1_048_576


@pytest.fixture
def store() -> Iterator[SqlAlchemyViewStore]:
    from tests.contract.test_views_sqlalchemy import fresh_schema
    from tests.infra import postgres_url

    url = postgres_url("the PostgreSQL query memory test")
    for kwargs in fresh_schema(url):
        s = SqlAlchemyViewStore(url, **kwargs)
        s.query_memory_bytes = LIMIT
        live = Target("qm")
        s.ensure(live, [ACCOUNTS])
        rows = [
            {"tenant": "t1", "account_id": str(i), "balance": Decimal(i), "src_offsets": {}}
            for i in range(4)
        ]
        s.write(live, [ACCOUNTS], {"qm_accounts": rows}, Checkpoint(1, {("a", 0): Position(4)}))
        try:
            yield s
        finally:
            s.close()


# 4 x 4 x 4 = 64 rows of one 1,000,000-byte value each: 64 MB, four times the bound
SIXTY_FOUR = (
    "SELECT lpad('x', {n}, 'x') AS z FROM qm_accounts AS a, qm_accounts AS b, qm_accounts AS c"
)


def test_a_result_past_the_memory_bound_is_refused(store: SqlAlchemyViewStore) -> None:
    with pytest.raises(InvalidInput) as info:
        store.query(SIXTY_FOUR.format(n=1_000_000), GRANT)
    assert info.value.code == "query_memory_limit", info.value
    # under the bound the same query answers, every row
    got = store.query(SIXTY_FOUR.format(n=100_000), GRANT)
    assert got.num_rows == 64
    assert {len(v) for v in got.column("z").to_pylist()} == {100_000}


def test_a_percent_sign_stays_literal_through_the_named_cursor(
    store: SqlAlchemyViewStore,
) -> None:
    got = store.query("SELECT '100%' AS p, count(*) AS n FROM qm_accounts", GRANT).to_pylist()
    assert got == [{"p": "100%", "n": 4}]
