"""The console's data pages ran analyst queries past every query limit (session 21 red team,
analyst read surface).

``/v1/query`` and the console's Explore (``/ui/api/query``) admit a query only within the
principal's and the tenant's rate, concurrency and query-seconds limits (session 18,
``core.sqlguard_limits``), which is what keeps one tenant's keys from holding the views' engine
(chDB's writers' session and its reader processes, PostgreSQL's query connections) from every
other tenant. The console's market and payment pages run their own queries over the same views
on the same key's session: ``/ui/api/markets/positions`` (two queries, one of them the
mark-to-market join), ``/markets/instruments``, ``/markets/bars``, ``/markets/stream`` and
``/payments/summary`` (three). None of them was counted. Measured on a running hub, one analyst
session, 8 at a time: 180 requests (about 360 queries) in 6 s, every one 200, while the same key
was refused 429 on ``/v1/query`` after 1 running / 30 a burst. Their cost grows with the
tenant's own data, which the tenant's publisher keys add at will.

Now each of these queries is admitted as ``/v1/query``'s are (429 past a limit).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.bootstrap import Hub

from .test_s18_api_query_limits import _query, _refused, _session, served  # noqa: F401

PAGES = [
    "/ui/api/markets/positions",
    "/ui/api/markets/instruments",
    "/ui/api/markets/bars?instrument=XS1&currency=USD",
    "/ui/api/payments/summary",
]


@pytest.mark.parametrize("page", PAGES)
def test_a_console_data_page_is_refused_past_the_principals_rate(
    served: tuple[Hub, TestClient, dict[str, dict[str, str]]],  # noqa: F811
    page: str,
) -> None:
    _hub, client, who = served
    # under the limits a page answers (it takes one token per query it runs)
    assert client.get(page, headers=_session(client, who["gus"])).status_code == 200
    for _ in range(3):
        assert _query(client, who["ann"]).status_code == 200
    # ann's three queries a minute are spent: her console pages wait like her /v1/query
    session = _session(client, who["ann"])
    _refused(client.get(page, headers=session), "query_rate", "HUB_QUERY_RATE_PER_PRINCIPAL")


def test_the_live_bars_stream_is_admitted_as_a_query(
    served: tuple[Hub, TestClient, dict[str, dict[str, str]]],  # noqa: F811
) -> None:
    _hub, client, who = served
    for _ in range(3):
        assert _query(client, who["ann"]).status_code == 200
    session = _session(client, who["ann"])
    got: Any = client.get("/ui/api/markets/stream?instrument=XS1&currency=USD", headers=session)
    _refused(got, "query_rate", "HUB_QUERY_RATE_PER_PRINCIPAL")
