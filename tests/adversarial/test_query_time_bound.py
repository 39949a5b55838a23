"""An analyst's query cannot hold the view stores (session 14 review).

Each store runs a query under its own lock, which the projection runner's writes also take.
Before the fix only PostgreSQL had a time bound (its statement timeout): on SQLite and chDB an
analyst's cross join of a view with itself (40 rows to the 6th power, or two arrayJoins of
500,000 elements) ran for hours, and the views of every tenant stopped being updated meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InvalidInput
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

from .test_sql_guard import ACME, N, _accounts, _trades

BOUND = 0.5  # seconds: the stores' bound for this test (30 s in production)

# Both run for tens of seconds unbounded here (measured: ~30 s and ~26 s on two busy cores).
SLOW = {
    "transactional": "SELECT count(*) AS n FROM accounts_current AS a, accounts_current AS b, "
    "accounts_current AS c, accounts_current AS d, accounts_current AS e",
    "analytics": "SELECT count() AS n FROM "
    "(SELECT arrayJoin(splitByChar(',', repeat('a,', 40000))) AS x) AS t, "
    "(SELECT arrayJoin(splitByChar(',', repeat('a,', 40000))) AS y) AS u",
}
FAST = {
    "transactional": "SELECT count(*) AS n FROM accounts_current",
    "analytics": "SELECT count() AS n FROM positions",
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data: Path = tmp_path_factory.mktemp("timebound") / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
    try:
        h.publisher.publish("accounts", _accounts(), producer="t", tenant="acme")
        h.publisher.publish("trades", _trades(), producer="t", tenant="acme")
        h.projections.run(["accounts", "positions"])
        for store in SLOW:
            h.projections.store(store).query_seconds = BOUND
        yield h
    finally:
        h.close()


@pytest.mark.parametrize("store", sorted(SLOW))
def test_a_query_is_stopped_at_the_stores_time_bound(hub: Hub, store: str) -> None:
    start = time.monotonic()
    with pytest.raises(InvalidInput) as stopped:
        hub.projections.query(hub.policy, ACME, SLOW[store], store)
    took = time.monotonic() - start
    assert stopped.value.code == "query_timeout", stopped.value.message
    assert f"longer than {BOUND:g} s" in stopped.value.message
    assert took < 15, took  # stopped, not run to its end
    # the store is usable again at once
    n = hub.projections.query(hub.policy, ACME, FAST[store], store).to_pylist()[0]["n"]
    assert n == (N if store == "transactional" else 4)


def test_the_production_bound_is_the_postgres_one() -> None:
    from adapters.sqlalchemy_views import SqlAlchemyViewStore
    from core.sqlguard import QUERY_SECONDS

    assert QUERY_SECONDS == 30
    assert SqlAlchemyViewStore("sqlite://").query_seconds == QUERY_SECONDS
