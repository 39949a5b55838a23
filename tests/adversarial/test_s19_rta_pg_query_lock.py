"""An analyst's query over the PostgreSQL views held the projection writers' lock for its whole
run (session 19 red team, finding 2).

Session 18 took SQLite queries off the store's lock (their own read-only WAL connection,
``test_s18_query_lock_hold.py``); on PostgreSQL ``_query_postgres`` still ran under
``SqlAlchemyViewStore._lock``, the lock every ``write`` (each projection batch of every tenant)
takes. So one analyst looping queries of up to ``QUERY_SECONDS`` (30 s; the rate limits allow 60
a minute, one at a time) stalled every tenant's transactional views, and all tenants' queries ran
one at a time behind each other. PostgreSQL needs no such lock: a READ ONLY transaction reads
its own snapshot and never blocks a writer (MVCC).

Now the query runs on its own pooled connection, outside the lock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from core.ports.views import Checkpoint, Position, Target
from tests.adversarial._accounts import account_rows, accounts, fill, grant, write_during_query

pytestmark = pytest.mark.integration

ACCOUNTS = accounts("ql_accounts")
GRANT = grant("ql_accounts")
N = 160
# N^3 = 4.1M md5 calls: a few seconds, well inside the 30 s any analyst query may take
SLOW = (
    "SELECT count(*) AS n FROM ql_accounts AS a, ql_accounts AS b, ql_accounts AS c "
    "WHERE md5(a.account_id || b.account_id || c.account_id) < '8'"
)


@pytest.fixture
def store() -> Iterator[SqlAlchemyViewStore]:
    from tests.contract.test_views_sqlalchemy import fresh_schema
    from tests.infra import postgres_url

    url = postgres_url("the PostgreSQL query lock test")
    for kwargs in fresh_schema(url):
        s = SqlAlchemyViewStore(url, **kwargs)
        fill(s, Target("ql"), ACCOUNTS, N)
        try:
            yield s
        finally:
            s.close()


def test_a_query_does_not_hold_another_tenants_projection_write(
    store: SqlAlchemyViewStore,
) -> None:
    # another tenant's projection batch
    batch = {"ql_accounts": account_rows(N, 1, "t2")}
    took, wrote = write_during_query(
        lambda: store.query(SLOW, GRANT),
        lambda: store.write(
            Target("ql"), [ACCOUNTS], batch, Checkpoint(2, {("a", 0): Position(N + 1)})
        ),
    )
    assert took > 1.5, f"the premise: a query of seconds (took {took:.2f} s)"
    assert wrote < 0.5 * took, (
        f"the projection write waited {wrote:.2f} s for a {took:.2f} s analyst query"
    )
