"""A key's analyst queries are limited by the seconds they run, not only by their count (session
19, with the chDB readers): one analyst looping queries that run to their time bound was
admitted 60 a minute, each holding a reader (or a core) for its whole bound. Now the run time
of each query is charged to its principal's and its tenant's budget of query-seconds
(``core.sqlguard_limits``), and a spent budget answers 429 ``query_seconds`` with Retry-After;
a colleague and another tenant are still served.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

from ._api import basic
from .test_s18_api_query_limits import SLOW, _query

SQL = "SELECT count(*) AS n FROM payment_status"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Hub, TestClient, dict[str, dict[str, str]]]]:
    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_QUERY_SECONDS_PER_PRINCIPAL": "1",  # a minute: no refill worth counting here
        "HUB_QUERY_SECONDS_BURST_PER_PRINCIPAL": "1",
    }
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    who = {
        name: basic(hub.keys.create(["analyst"], owner=name, tenant=tenant).token)
        for name, tenant in [("ann", "acme"), ("bob", "acme"), ("gus", "globex")]
    }
    try:
        yield hub, client, who
    finally:
        client.close()
        hub.close()


def test_a_principal_whose_queries_used_its_seconds_gets_429(
    served: tuple[Hub, TestClient, dict[str, dict[str, str]]],
) -> None:
    hub, client, who = served
    hub.projections.store("transactional").query_seconds = 1.5  # type: ignore[attr-defined]
    slow: Any = _query(client, who["ann"], sql=SLOW)
    assert slow.status_code == 422 and slow.json()["reason"] == "query_timeout", slow.text
    r = _query(client, who["ann"])  # a small one: ann's 1 s is spent
    assert r.status_code == 429, r.text
    assert r.json()["reason"] == "query_seconds", r.text
    assert "HUB_QUERY_SECONDS_PER_PRINCIPAL" in r.json()["message"]
    assert int(r.headers["retry-after"]) >= 25  # ~0.5 s owed at 1 s a minute
    assert _query(client, who["bob"]).status_code == 200  # a colleague: the tenant has 120 s
    assert _query(client, who["gus"]).status_code == 200
