"""A point-in-time query escaped the query limits by its SQL (session 19 red team, finding 6).

``query_limits`` does not count ``SHOW TABLES`` / ``DESCRIBE`` (they answer from the catalog).
``POST /v1/projections/{name}/at/query`` used the same rule, but it replays the projection's log
into a copy of the views *before* it reads the SQL: ``SHOW TABLES`` there was a full replay
(then a 422), uncounted, as often and as many at once as the caller liked. Admin keys only
(``projection.rebuild``), so low; now every point-in-time query counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings

from ._api import basic

PATH = "/v1/projections/payments/at/query"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_QUERY_BURST_PER_PRINCIPAL": "1",
        "HUB_QUERY_RATE_PER_PRINCIPAL": "1",  # a minute: no refill while the test runs
    }
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    try:
        yield client, basic(hub.keys.create(["admin"], owner="adm").token)
    finally:
        client.close()
        hub.close()


def test_a_point_in_time_show_tables_counts_as_a_query(
    served: tuple[TestClient, dict[str, str]],
) -> None:
    client, admin = served
    first = client.post(PATH, json={"sql": "SHOW TABLES", "offset": 0}, headers=admin)
    assert first.status_code == 422, first.text  # replayed, then refused: not a SELECT here
    second = client.post(
        PATH, json={"sql": "SELECT count(*) AS n FROM payment_status", "offset": 0}, headers=admin
    )
    assert second.status_code == 429, "the replay of SHOW TABLES was not counted"
    assert second.json()["reason"] == "query_rate"


def test_show_tables_on_the_live_views_is_still_not_counted(
    served: tuple[TestClient, dict[str, str]],
) -> None:
    client, admin = served
    for _ in range(3):
        r = client.post(
            "/v1/query", json={"sql": "SHOW TABLES", "store": "transactional"}, headers=admin
        )
        assert r.status_code == 200, r.text
