"""An analyst's chDB query cannot take the hub's memory (follow-up of the session 14 review).

chDB runs inside the hub's process. Before the fix a query had a time bound but no memory bound:
collecting a few million strings (``groupArray`` over an ``arrayJoin``) grew the hub's memory
as far as the query wanted, next to the ingest and the ledger. Queries now run with ClickHouse's
``max_memory_usage`` (``HUB_QUERY_MAX_MEMORY_BYTES``) and answer 422 ``query_memory_limit``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ConfigError, InvalidInput
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

from .test_sql_guard import ACME, _trades

LIMIT = 32 * 1_048_576  # bytes: the bound for this test (1 GiB by default)
# A million strings collected into one array: about 70 MiB at its peak (measured), well over
# 32 MiB and well under 1 GiB. (repeat() itself stops at a million copies.)
GREEDY = (
    "SELECT length(groupArray(x)) AS n FROM "
    "(SELECT arrayJoin(splitByChar(',', repeat('abcdefgh,', 1000000))) AS x) AS t"
)


def _hub(data: Path, limit: int | None) -> Hub:
    environ = {} if limit is None else {"HUB_QUERY_MAX_MEMORY_BYTES": str(limit)}
    h = bootstrap(load_settings(environ=environ, data_dir=data, projection_autostart=False))
    h.publisher.publish("trades", _trades(), producer="t", tenant="acme")
    h.projections.run(["positions"])
    return h


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[Hub]:
    h = _hub(tmp_path / "data", LIMIT)
    try:
        yield h
    finally:
        h.close()


def test_a_query_over_the_memory_bound_is_stopped_with_an_error_naming_it(bounded: Hub) -> None:
    with pytest.raises(InvalidInput) as stopped:
        bounded.projections.query(bounded.policy, ACME, GREEDY, "analytics")
    assert stopped.value.code == "query_memory_limit", stopped.value.message
    assert stopped.value.http_status == 422
    message = stopped.value.message
    assert f"{LIMIT:,} bytes" in message and "max_memory_usage" in message
    assert "HUB_QUERY_MAX_MEMORY_BYTES" in message
    # the store answers the next query at once
    n = bounded.projections.query(bounded.policy, ACME, "SELECT count() AS n FROM positions")
    assert n.to_pylist()[0]["n"] == 4


def test_the_same_query_runs_under_the_default_bound(tmp_path: Path) -> None:
    h = _hub(tmp_path / "data", None)
    try:
        got = h.projections.query(h.policy, ACME, GREEDY, "analytics").to_pylist()
        assert got == [{"n": 1_000_001}]
    finally:
        h.close()


def test_a_bound_too_small_to_run_anything_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="query_max_memory_bytes"):
        load_settings(environ={"HUB_QUERY_MAX_MEMORY_BYTES": "1000"}, data_dir=tmp_path)
