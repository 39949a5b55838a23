"""Analyst queries have rate and concurrency limits, per principal and per tenant (session 18).

A query over the views ran under the view store's lock, which every tenant's projection writes
wait for (on SQLite it now reads through its own connection, but still takes a core up to its
time bound). There was no limit at all: one analyst looping long queries on ``/v1/query`` (or
many keys of one tenant in parallel) kept that lock and stalled every tenant's views. Now a
query past a limit is answered 429 before it runs, with ``Retry-After`` and the limit named, and
counted in ``hub_query_refusals_total``; another tenant's queries are still admitted.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

from ._api import basic

SQL = "SELECT count(*) AS n FROM payment_status"
# A query that runs until its time bound: 400 rows of a slow instr (about 20 s unbounded here).
_ROWS = " UNION ALL ".join(f"SELECT '{i}' AS x" for i in range(400))
SLOW = (
    "SELECT count(instr(printf('%.*c', 60000, x), printf('%.*c', 30000, x) || 'b')) AS n "
    f"FROM ({_ROWS}) AS r"
)
HOLD = 5.0  # seconds: the store's time bound while slow queries hold their slots


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Hub, TestClient, dict[str, dict[str, str]]]]:
    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_QUERY_BURST_PER_PRINCIPAL": "3",
        "HUB_QUERY_RATE_PER_PRINCIPAL": "1",  # a minute: no refill while the test runs
        "HUB_QUERY_BURST_PER_TENANT": "5",
        "HUB_QUERY_RATE_PER_TENANT": "1",
    }
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    who = {
        name: basic(hub.keys.create(["analyst"], owner=name, tenant=tenant).token)
        for name, tenant in [("ann", "acme"), ("bob", "acme"), ("cat", "acme"), ("gus", "globex")]
    }
    try:
        yield hub, client, who
    finally:
        client.close()
        hub.close()


def _query(
    client: TestClient, headers: dict[str, str], path: str = "/v1/query", sql: str = SQL
) -> Any:
    body = {"sql": sql, "store": "transactional", "format": "json"}
    return client.post(path, json=body, headers=headers)


def _session(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    """A console session of the key whose Basic header is ``headers``: cookie and CSRF token."""
    token = base64.b64decode(headers["Authorization"].split()[1]).decode()
    client.cookies.clear()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
    assert csrf
    form = {"key": token, "csrf": csrf.group(1), "next": "/ui"}
    assert client.post("/ui/login", data=form, follow_redirects=False).status_code == 303
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    found = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/ui/explore").text)
    client.cookies.clear()
    assert found
    return {"cookie": cookie, "x-csrf-token": found.group(1)}


def _refusals(hub: Hub, limit: str) -> float:
    value = hub.metrics.registry.get_sample_value("hub_query_refusals_total", {"limit": limit})
    return value or 0.0


def _refused(r: Any, reason: str, setting: str) -> None:
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.json()["reason"] == reason, r.text
    assert setting in r.json()["message"], r.text
    assert int(r.headers["retry-after"]) >= 1, r.headers


def test_a_principal_past_its_bucket_gets_429_and_others_do_not(
    served: tuple[Hub, TestClient, dict[str, dict[str, str]]],
) -> None:
    hub, client, who = served
    for _ in range(3):
        assert _query(client, who["ann"]).status_code == 200
    r = _query(client, who["ann"])
    _refused(r, "query_rate", "HUB_QUERY_RATE_PER_PRINCIPAL")
    assert 50 <= int(r.headers["retry-after"]) <= 60  # one token at 1 a minute
    assert _refusals(hub, "query_rate") == 1
    # the console's Explore runs the same limits, on ann's session
    _refused(_query(client, _session(client, who["ann"]), "/ui/api/query"), "query_rate", "RATE")
    # a colleague and another tenant are still served
    assert _query(client, who["bob"]).status_code == 200
    assert _query(client, who["gus"]).status_code == 200


def test_many_keys_of_one_tenant_share_its_bucket(
    served: tuple[Hub, TestClient, dict[str, dict[str, str]]],
) -> None:
    hub, client, who = served
    for name in ("ann", "ann", "ann", "bob", "bob"):
        assert _query(client, who[name]).status_code == 200
    _refused(_query(client, who["cat"]), "query_tenant_rate", "HUB_QUERY_RATE_PER_TENANT")
    assert _refusals(hub, "query_tenant_rate") == 1
    assert _query(client, who["gus"]).status_code == 200  # globex has its own bucket


def _in_thread(
    client: TestClient, headers: dict[str, str], sql: str = SQL
) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(_query(client, headers, sql=sql)), daemon=True)
    t.start()
    return t, out


def _wait_running(hub: Hub, key: tuple[str, str], n: int = 1) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        limiter = hub.query_limiter
        if limiter is not None and limiter._running.get(key, 0) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{key} never had {n} running queries")


def test_a_running_query_holds_its_principals_and_tenants_slots(
    served: tuple[Hub, TestClient, dict[str, dict[str, str]]],
) -> None:
    """While ann's query runs (here: a slow one, until the store's time bound), her next query
    and a third acme key's are refused at once; globex's is admitted. (It used to hold the
    views' lock here; queries on the SQLite views no longer take it.)"""
    hub, client, who = served
    assert _query(client, who["gus"]).status_code == 200  # the views exist
    hub.projections.store("transactional").query_seconds = HOLD  # type: ignore[attr-defined]
    waiting: list[tuple[threading.Thread, list[Any]]] = []
    waiting.append(_in_thread(client, who["ann"], SLOW))
    _wait_running(hub, ("tenant", "acme"))
    second, out = _in_thread(client, who["ann"])
    second.join(10)
    assert not second.is_alive(), "ann's second query waited instead of being refused"
    _refused(out[0], "query_concurrency", "HUB_QUERY_MAX_RUNNING_PER_PRINCIPAL")
    waiting.append(_in_thread(client, who["bob"], SLOW))
    _wait_running(hub, ("tenant", "acme"), 2)
    third, out = _in_thread(client, who["cat"])
    third.join(10)
    assert not third.is_alive(), "a third acme key's query waited instead of being refused"
    _refused(out[0], "query_tenant_concurrency", "HUB_QUERY_MAX_RUNNING_PER_TENANT")
    waiting.append(_in_thread(client, who["gus"], SLOW))
    _wait_running(hub, ("tenant", "globex"))
    for t, got in waiting:  # each stopped at the time bound, then its slots given back
        t.join(60)
        assert got and got[0].status_code == 422, got and got[0].text
        assert got[0].json()["reason"] == "query_timeout", got[0].text
    # slots are given back: ann runs again
    assert _query(client, who["ann"]).status_code == 200
    assert _refusals(hub, "query_concurrency") == 1
    assert _refusals(hub, "query_tenant_concurrency") == 1
