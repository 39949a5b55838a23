"""One tenant must not starve the others: per-tenant ingest rate and quarantine quota (s22).

Session 22's exhaustion red team (docs/benchmarks/s22-redteam-exhaust22.md, "open"): nothing
limited how fast one tenant's keys ingest, and the quarantine grew without bound per tenant, so
tenant B (globex) could fill the data disk and every tenant got 507 ``storage_full``. Now
(``core.tenant_quota``, settings off by default):

1. ``HUB_INGEST_RECORDS_PER_S_PER_TENANT`` / ``HUB_INGEST_BYTES_PER_S_PER_TENANT`` (and their
   bursts): a batch past the tenant's bucket is refused whole, 429 ``tenant_rate_limited`` with
   ``Retry-After``, nothing of it stored, over every ingest path (JSON, NDJSON read column-wise,
   wire-format Avro, files); another tenant is served at once.
2. ``HUB_QUARANTINE_MAX_BYTES_PER_TENANT``: a batch whose rejects would pass the tenant's
   quarantine quota is refused whole, 507 ``tenant_quarantine_full`` (its rejects are not
   dropped, its accepted records not kept without them); the count is folded from the log at
   start, so the quota holds across a restart.
Each refusal is counted in ``hub_tenant_refusals_total{tenant,limit}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.tenant_quota import TenantRateLimited
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.files import publish_file
from tests.adversarial._api import QUOTE, basic, issue_key


@contextmanager
def limited_api(data_dir: Path, **env: str) -> Iterator[tuple[Hub, TestClient]]:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", **env}
    hub = bootstrap(load_settings(environ=environ, data_dir=data_dir))
    try:
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            yield hub, c
    finally:
        hub.close()


def _quotes(n: int, tag: str, **over: str) -> dict[str, list[dict[str, str]]]:
    return {"events": [{**QUOTE, "instrument": f"{tag}{i}", **over} for i in range(n)]}


def _stored(hub: Hub, topic: str = "quotes") -> int:
    """Records ``topic`` holds (its end offsets also count transaction markers)."""
    return sum(
        sum(1 for _ in hub.log.scan(topic, p, start))
        for p, start in hub.log.beginning_offsets(topic).items()
    )


def _refusals(hub: Hub, tenant: str, limit: str) -> float:
    return hub.metrics.tenant_refusals.labels(tenant, limit)._value.get()  # type: ignore[no-any-return]


# A bucket of 50 records refilled at 0.01 a second: the test runs long before it refills.
RATE = {
    "HUB_INGEST_RECORDS_PER_S_PER_TENANT": "0.01",
    "HUB_INGEST_RECORDS_BURST_PER_TENANT": "50",
}


def test_a_tenant_over_its_record_rate_gets_429_and_another_tenant_is_served(
    tmp_path: Path,
) -> None:
    with limited_api(tmp_path / "d", **RATE) as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        assert c.post("/v1/ingest/quotes", json=_quotes(50, "G"), headers=globex).status_code == 200
        before = _stored(hub)
        r = c.post("/v1/ingest/quotes", json=_quotes(10, "H"), headers=globex)
        assert r.status_code == 429, r.text
        assert r.json()["reason"] == "tenant_rate_limited"
        assert "HUB_INGEST_RECORDS_PER_S_PER_TENANT" in r.json()["message"]
        assert "globex" in r.json()["message"]
        assert int(r.headers["Retry-After"]) >= 1
        assert _stored(hub) == before  # nothing of the refused batch
        # NDJSON (read column-wise) and wire-format Avro are refused the same way
        nd = "\n".join(json.dumps({**QUOTE, "instrument": f"N{i}"}) for i in range(3))
        r = c.post(
            "/v1/ingest/quotes",
            content=nd.encode(),
            headers={**globex, "Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 429 and r.json()["reason"] == "tenant_rate_limited", r.text
        assert _stored(hub) == before
        # tenant A is served at once, its own bucket full
        r = c.post("/v1/ingest/quotes", json=_quotes(50, "A"), headers=acme)
        assert r.status_code == 200 and r.json()["accepted"] == 50, r.text
        assert _refusals(hub, "globex", "ingest_records") == 2
        metrics = c.get("/metrics", headers=basic(issue_key(hub, "admin", "root"))).text
        assert 'hub_tenant_refusals_total{limit="ingest_records",tenant="globex"} 2.0' in metrics


def test_a_batch_larger_than_the_bucket_is_admitted_when_full_and_leaves_it_in_debt(
    tmp_path: Path,
) -> None:
    with limited_api(tmp_path / "d", **RATE) as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        r = c.post("/v1/ingest/quotes", json=_quotes(80, "G"), headers=globex)
        assert r.status_code == 200 and r.json()["accepted"] == 80, r.text
        r = c.post("/v1/ingest/quotes", json=_quotes(1, "H"), headers=globex)
        assert r.status_code == 429, r.text


def test_the_byte_rate_counts_stored_bytes_and_refuses_with_its_setting(tmp_path: Path) -> None:
    env = {
        "HUB_INGEST_BYTES_PER_S_PER_TENANT": "1",
        "HUB_INGEST_BYTES_BURST_PER_TENANT": "4000",
    }
    with limited_api(tmp_path / "d", **env) as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        codes = [
            c.post("/v1/ingest/quotes", json=_quotes(20, f"G{k}-"), headers=globex)
            for k in range(20)
        ]
        refused = [r for r in codes if r.status_code != 200]
        assert refused, "the byte bucket never ran dry"
        assert refused[0].status_code == 429
        assert "HUB_INGEST_BYTES_PER_S_PER_TENANT" in refused[0].json()["message"]
        assert c.post("/v1/ingest/quotes", json=_quotes(20, "A"), headers=acme).status_code == 200
        assert _refusals(hub, "globex", "ingest_bytes") == len(refused)


def test_file_ingest_shares_the_tenants_bucket(tmp_path: Path) -> None:
    with limited_api(tmp_path / "d", **RATE) as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        assert c.post("/v1/ingest/quotes", json=_quotes(50, "G"), headers=globex).status_code == 200
        path = tmp_path / "quotes.jsonl"
        path.write_text("\n".join(json.dumps({**QUOTE, "instrument": f"F{i}"}) for i in range(5)))
        before = _stored(hub)
        with pytest.raises(TenantRateLimited):
            publish_file(hub.ingest, path, "quotes", producer="gus", tenant="globex")
        assert _stored(hub) == before
        # the hub's own tenant (another bucket) publishes the same file at once
        publish_file(hub.ingest, path, "quotes", producer="hal", tenant="default")
        assert _stored(hub) == before + 5


QUARANTINE = {"HUB_QUARANTINE_MAX_BYTES_PER_TENANT": "20000"}


def _flood(c: TestClient, who: dict[str, str], tag: str) -> Any:
    """One batch of 1 good quote and 20 refused ones (``bid`` not a number)."""
    body = _quotes(20, tag, bid="not a number")
    body["events"].append({**QUOTE, "instrument": f"{tag}-good"})
    return c.post("/v1/ingest/quotes", json=body, headers=who)


def test_a_tenant_at_its_quarantine_quota_is_refused_whole_and_the_quota_survives_a_restart(
    tmp_path: Path,
) -> None:
    with limited_api(tmp_path / "d", **QUARANTINE) as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        globex_token = globex
        answers = [_flood(c, globex, f"G{k}") for k in range(40)]
        ok = [r for r in answers if r.status_code == 200]
        refused = [r for r in answers if r.status_code != 200]
        assert ok and refused, [r.status_code for r in answers]
        assert all(r.json()["rejected"] == 20 for r in ok)
        r = refused[0]
        assert r.status_code == 507, r.text
        assert r.json()["reason"] == "tenant_quarantine_full"
        assert "HUB_QUARANTINE_MAX_BYTES_PER_TENANT" in r.json()["message"]
        held = hub.ingest.quarantine_quota.held("globex")
        assert 0 < held <= 20000
        stored, quarantined = _stored(hub), _stored(hub, "hub.quarantine")
        assert _flood(c, globex, "X").status_code == 507
        # nothing of the refused batch: neither its good record nor its rejects
        assert (_stored(hub), _stored(hub, "hub.quarantine")) == (stored, quarantined)
        # a batch without rejects is still taken from the tenant at its quota
        r = c.post("/v1/ingest/quotes", json=_quotes(3, "Gok"), headers=globex)
        assert r.status_code == 200, r.text
        # tenant A's rejects are still quarantined at once
        r = _flood(c, acme, "A")
        assert r.status_code == 200 and r.json()["rejected"] == 20, r.text
        assert _refusals(hub, "globex", "quarantine_bytes") == len(refused) + 1
    # a restart folds the quarantine again: globex is still at its quota
    with limited_api(tmp_path / "d", **QUARANTINE) as (hub, c):
        assert hub.ingest.quarantine_quota.held("globex") == held
        r = _flood(c, globex_token, "R")
        assert r.status_code == 507 and r.json()["reason"] == "tenant_quarantine_full", r.text


def test_limits_off_by_default_take_nothing(tmp_path: Path) -> None:
    with limited_api(tmp_path / "d") as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        assert not hub.ingest.rates.on and not hub.ingest.quarantine_quota.on
        for k in range(3):
            assert _flood(c, globex, f"G{k}").status_code == 200
        # the quarantine was never folded for a quota that is off
        assert hub.ingest.quarantine_quota._held is None


def test_a_file_refused_midway_says_which_records_are_stored(tmp_path: Path) -> None:
    env = {
        "HUB_INGEST_RECORDS_PER_S_PER_TENANT": "0.01",
        "HUB_INGEST_RECORDS_BURST_PER_TENANT": "3",
    }
    with limited_api(tmp_path / "d", **env) as (hub, _):
        path = tmp_path / "quotes.jsonl"
        path.write_text("\n".join(json.dumps({**QUOTE, "instrument": f"F{i}"}) for i in range(5)))
        before = _stored(hub)
        with pytest.raises(TenantRateLimited, match="first 2 records are committed"):
            publish_file(hub.ingest, path, "quotes", batch_size=2, producer="gus", tenant="globex")
        assert _stored(hub) == before + 2


def test_the_strict_publish_route_shares_the_tenants_bucket(tmp_path: Path) -> None:
    """``POST /v1/topics/{topic}/events`` (all-or-nothing, through the publisher, not the
    ingest pipeline) was a way around the limit."""
    with limited_api(tmp_path / "d", **RATE) as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        assert c.post("/v1/ingest/quotes", json=_quotes(50, "G"), headers=globex).status_code == 200
        events = {"events": [{"value": {**QUOTE, "instrument": f"S{i}"}} for i in range(5)]}
        before = _stored(hub)
        r = c.post("/v1/topics/quotes/events", json=events, headers=globex)
        assert r.status_code == 429 and r.json()["reason"] == "tenant_rate_limited", r.text
        assert "Retry-After" in r.headers
        assert _stored(hub) == before
        r = c.post("/v1/topics/quotes/events", json=events, headers=acme)
        assert r.status_code == 201, r.text
        # and what it publishes is taken from the bucket
        for _ in range(9):
            assert c.post("/v1/topics/quotes/events", json=events, headers=acme).status_code == 201
        r = c.post("/v1/topics/quotes/events", json=events, headers=acme)
        assert r.status_code == 429, r.text
