"""A chDB analyst query stopped at its time bound broke the session's next Arrow answer: the
next ``ArrowTable`` query in the process failed with "Invalid flatbuffers message" (chDB 4.4
leaves the stopped query's partial stream behind). That next query is usually the projection
runner's (a checkpoint, a fold over ``select_over``): one analyst's slow query failed another
tenant's projection step. Found while moving queries to readers (the inline attempt is stopped
at ``inline_seconds`` by design, so every slow query would have done it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.ports.views import Position, Target
from tests.adversarial._accounts import accounts, fill, grant

pytest.importorskip("chdb")

ACCOUNTS = accounts("tn_accounts")
GRANT = grant("tn_accounts")
LIVE = Target("tn")
SLOW = (
    "SELECT count() AS n FROM tn_accounts a, tn_accounts b, tn_accounts c, tn_accounts d "
    "WHERE concat(a.account_id, b.account_id, c.account_id, d.account_id) = 'x'"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    from adapters.chdb_views import ChdbViewStore

    s = ChdbViewStore(str(tmp_path / "chdb"))
    fill(s, LIVE, ACCOUNTS, 300)
    try:
        yield s
    finally:
        s.close()


def test_a_query_stopped_at_its_bound_leaves_the_next_arrow_read_whole(store: object) -> None:
    from adapters.chdb_views import ChdbViewStore

    assert isinstance(store, ChdbViewStore)
    store.query_seconds = 0.3
    store.inline_seconds = 30.0  # stopped in the writers' session itself (not in a reader)
    with pytest.raises(InvalidInput) as slow:
        store.query(SLOW, GRANT)
    assert slow.value.code == "query_timeout"
    # the next reads in the same session: an analyst's, the runner's
    small = store.query("SELECT count() AS n FROM tn_accounts", GRANT)
    assert small.to_pylist() == [{"n": 300}]
    assert store.checkpoint(LIVE).positions == {("a", 0): Position(300)}
