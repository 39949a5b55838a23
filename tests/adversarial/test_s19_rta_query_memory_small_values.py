"""A query of many short values took 30 times its memory bound (session 19 red team, finding 4).

Session 18 bounded what a SQLite or PostgreSQL query may collect in the hub
(``HUB_QUERY_MAX_MEMORY_BYTES``), counting a text value by its length and a number or NULL at 8
bytes. The hub holds each value as a Python object (a 2-character ``str`` is 51 bytes, a
``float`` 24, plus its slot in the row tuple), so a result of many short values was admitted at
its counted size and took ~30x of it: 10,000 rows x 150 two-character columns, counted 2.9 MiB
under a 4 MiB bound, took 121 MiB of the hub's memory. With the default 1 GiB bound and a faster
machine than the 30 s time bound allows here, that is the hub's memory (the s18 finding, again).

Now each value counts what the hub holds for it (``sys.getsizeof`` plus its slot).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from core.errors import InvalidInput
from core.ports.views import Target
from tests.adversarial._accounts import accounts, fill, grant

ACCOUNTS = accounts("sv_accounts")
GRANT = grant("sv_accounts")
BOUND = 2 * 1_048_576


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlAlchemyViewStore]:
    s = SqlAlchemyViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}")
    s.query_memory_bytes = BOUND
    fill(s, Target("sv"), ACCOUNTS, 100, width=3)
    try:
        yield s
    finally:
        s.close()


def _short_values(columns: int) -> str:
    """10,000 rows of ``columns`` distinct two-character values."""
    picked = ", ".join(
        f"substr(a.account_id || b.account_id, {1 + k % 5}, 2) AS c{k}" for k in range(columns)
    )
    return f"SELECT {picked} FROM sv_accounts AS a, sv_accounts AS b"


def test_a_result_of_short_values_stays_near_its_memory_bound(
    store: SqlAlchemyViewStore,
) -> None:
    # 10,000 x 60 values of 2 bytes: 1.2 MB counted by length, under the 2 MiB bound
    tracemalloc.start()
    try:
        try:
            store.query(_short_values(60), GRANT)
            refused = None
        except InvalidInput as exc:
            refused = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * BOUND, f"the query took {peak / BOUND:.1f}x its memory bound ({peak:,} B)"
    assert refused is not None and refused.code == "query_memory_limit", refused


def test_a_result_within_the_bound_is_still_answered(store: SqlAlchemyViewStore) -> None:
    got = store.query(_short_values(2), GRANT)  # 10,000 x 2 values: well under the bound
    assert got.num_rows == 10_000 and got.num_columns == 2
