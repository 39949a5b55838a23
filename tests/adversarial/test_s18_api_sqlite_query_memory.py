"""An analyst's query over the SQLite views cannot take the hub's memory (session 18).

chDB queries have run under ``max_memory_usage`` since session 14; the transactional store
(SQLite, the default) had no bound: SQLite runs in the hub's process, one value may be up to a
GB (``zeroblob``, ``printf`` padding), and the rows are collected in memory before the answer.
Four rows of ``zeroblob(200000000)`` took the hub from 196 MiB to 2.5 GiB peak (measured);
``zeroblob(999999999)`` over a few rows is the OOM kill of the hub, by one analyst's request.
Now one value is at most ``QUERY_VALUE_BYTES`` and the result at most
``HUB_QUERY_MAX_MEMORY_BYTES``: 422 ``query_memory_limit`` past either.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings

from ._api import basic

LIMIT = 32 * 1_048_576
FOUR = "(SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4)"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_QUERY_MAX_MEMORY_BYTES": str(LIMIT)}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    try:
        yield client, basic(hub.keys.create(["analyst"], owner="ann", tenant="acme").token)
    finally:
        client.close()
        hub.close()


def _query(client: TestClient, headers: dict[str, str], sql: str) -> Any:
    body = {"sql": sql, "store": "transactional", "format": "csv"}
    return client.post("/v1/query", json=body, headers=headers)


def test_one_huge_value_is_refused_before_it_is_built(
    served: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = served
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = _query(client, headers, f"SELECT zeroblob(200000000) AS z FROM {FOUR} AS t")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
    assert r.status_code == 422, r.status_code
    assert r.json()["reason"] == "query_memory_limit", r.text
    assert grown < 150 * 1024, f"peak RSS grew {grown // 1024} MiB"  # before: ~2,300 MiB


def test_many_values_are_refused_past_the_memory_bound(
    served: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = served
    # 64 rows of 1,000,000 bytes: each under the value bound, together over 32 MiB
    sql = f"SELECT zeroblob(1000000) AS z FROM {FOUR} AS a, {FOUR} AS b, {FOUR} AS c"
    r = _query(client, headers, sql)
    assert r.status_code == 422, r.status_code
    assert r.json()["reason"] == "query_memory_limit", r.text
    # under the bound the same query answers
    r = _query(client, headers, sql.replace("1000000", "100000"))
    assert r.status_code == 200, r.text
    assert len(r.content) > 64 * 100_000
