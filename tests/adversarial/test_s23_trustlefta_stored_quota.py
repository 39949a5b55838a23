"""One tenant must not fill the data disk for every tenant (session 23, trust leftovers).

Session 22's exhaustion red team (docs/benchmarks/s22-redteam-exhaust22.md, "Open", medium):
nothing bounded the bytes one tenant stores. Tenant B (globex) could ingest accepted records (or
quarantined ones) at its ingest rate until the data disk was full, and then every tenant got 507
``storage_full``. Now ``HUB_STORED_MAX_BYTES_PER_TENANT`` (off by default) bounds the bytes of
values a tenant holds in the log, accepted and quarantined together: a batch that would pass it
is refused whole, 507 ``tenant_storage_full`` naming the tenant and the setting, nothing of it
stored, counted in ``hub_tenant_refusals_total{limit="stored_bytes"}``; another tenant is served
at once; the count is folded from the log at start, so it holds across a restart, on the
embedded log and on Kafka alike.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.tenant_quota import TenantQuotaExceeded
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.files import publish_file
from tests.adversarial._api import QUOTE, basic, issue_key

LIMIT = "20000"
ENV = {"HUB_STORED_MAX_BYTES_PER_TENANT": LIMIT}


@contextmanager
def limited_api(data_dir: Path, **over: Any) -> Iterator[tuple[Hub, TestClient]]:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", **ENV}
    hub = bootstrap(load_settings(environ=environ, data_dir=data_dir, **over))
    try:
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            yield hub, c
    finally:
        hub.close()


def _quotes(n: int, tag: str, **over: str) -> dict[str, list[dict[str, str]]]:
    return {"events": [{**QUOTE, "instrument": f"{tag}{i}", **over} for i in range(n)]}


def _stored(hub: Hub, topic: str = "quotes") -> int:
    return sum(
        sum(1 for _ in hub.log.scan(topic, p, start))
        for p, start in hub.log.beginning_offsets(topic).items()
    )


def _refusals(hub: Hub, tenant: str) -> float:
    return hub.metrics.tenant_refusals.labels(tenant, "stored_bytes")._value.get()  # type: ignore[no-any-return]


def _fill(c: TestClient, who: dict[str, str], tag: str) -> list[Any]:
    """Batches of 20 good quotes until one is refused (at most 60)."""
    answers = []
    for k in range(60):
        r = c.post("/v1/ingest/quotes", json=_quotes(20, f"{tag}{k}-"), headers=who)
        answers.append(r)
        if r.status_code != 200:
            break
    return answers


def _check_refused(r: Any) -> None:
    assert r.status_code == 507, r.text
    assert r.json()["reason"] == "tenant_storage_full", r.text
    assert "HUB_STORED_MAX_BYTES_PER_TENANT" in r.json()["message"]
    assert "globex" in r.json()["message"] and LIMIT in r.json()["message"]


def test_accepted_records_past_a_tenants_storage_quota_are_refused_and_others_are_served(
    tmp_path: Path,
) -> None:
    with limited_api(tmp_path / "d") as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        answers = _fill(c, globex, "G")
        ok = [r for r in answers if r.status_code == 200]
        assert ok and answers[-1].status_code != 200, [r.status_code for r in answers]
        _check_refused(answers[-1])
        stored = _stored(hub)
        assert stored == 20 * len(ok)
        # nothing of a refused batch, on any route: JSON, NDJSON, the strict publish route, files
        # (each probe is 20 quotes with longer names than the refused batch's: no fewer bytes)
        probe = _quotes(20, "XYZW-")
        _check_refused(c.post("/v1/ingest/quotes", json=probe, headers=globex))
        nd = "\n".join(json.dumps(q) for q in probe["events"]).encode()
        r = c.post(
            "/v1/ingest/quotes",
            content=nd,
            headers={**globex, "Content-Type": "application/x-ndjson"},
        )
        _check_refused(r)
        events = {"events": [{"value": q} for q in probe["events"]]}
        r = c.post("/v1/topics/quotes/events", json=events, headers=globex)
        _check_refused(r)
        path = tmp_path / "quotes.jsonl"
        path.write_bytes(nd + b"\n")
        with pytest.raises(TenantQuotaExceeded, match="HUB_STORED_MAX_BYTES_PER_TENANT"):
            publish_file(hub.ingest, path, "quotes", producer="gus", tenant="globex")
        assert _stored(hub) == stored
        # tenant A is served at once, its own quota untouched
        r = c.post("/v1/ingest/quotes", json=_quotes(20, "A"), headers=acme)
        assert r.status_code == 200 and r.json()["accepted"] == 20, r.text
        r = c.post("/v1/topics/quotes/events", json=events, headers=acme)
        assert r.status_code == 201, r.text
        assert _refusals(hub, "globex") == 5
        metrics = c.get("/metrics", headers=basic(issue_key(hub, "admin", "root"))).text
        assert 'hub_tenant_refusals_total{limit="stored_bytes",tenant="globex"} 5.0' in metrics
        held = hub.ingest.stored_quota.held("globex")
        assert 0 < held <= int(LIMIT)
        token = globex
    # a restart folds the log again: globex is still at its quota, acme still served
    with limited_api(tmp_path / "d") as (hub, c):
        assert hub.ingest.stored_quota.held("globex") == held
        _check_refused(c.post("/v1/ingest/quotes", json=_quotes(20, "R"), headers=token))


def test_quarantined_bytes_count_toward_the_storage_quota(tmp_path: Path) -> None:
    """A flood of bad records (every one quarantined with its original bytes) fills the same
    quota: the quarantine is no way around it."""
    with limited_api(tmp_path / "d") as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        answers = []
        for k in range(60):
            r = c.post("/v1/ingest/quotes", json=_quotes(20, f"B{k}-", bid="bad"), headers=globex)
            answers.append(r)
            if r.status_code != 200:
                break
        assert answers[-1].status_code == 507, [r.status_code for r in answers]
        assert all(r.json()["rejected"] == 20 for r in answers[:-1])
        _check_refused(answers[-1])
        assert _stored(hub) == 0
        quarantined = _stored(hub, "hub.quarantine")
        # good records share what is left: they are refused once it is spent, and the tenant
        # never holds more than its quota, its quarantine entries included
        good = _fill(c, globex, "G")
        _check_refused(good[-1])
        assert _stored(hub, "hub.quarantine") == quarantined
        assert _stored(hub) == 20 * (len(good) - 1)
        assert hub.ingest.stored_quota.held("globex") <= int(LIMIT)


def test_the_storage_quota_is_off_by_default_and_never_folds(tmp_path: Path) -> None:
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path))
    try:
        assert not hub.ingest.stored_quota.on
        assert hub.ingest.stored_quota._held is None
    finally:
        hub.close()


@pytest.mark.integration
def test_the_storage_quota_holds_on_kafka_across_a_restart(kafka: str, tmp_path: Path) -> None:
    """The Kafka footprint: the same refusal, and the fold at start reads the broker's topics."""
    over = {
        "event_log": "kafka",
        "kafka_bootstrap_servers": kafka,
        "kafka_topic_prefix": f"t{uuid.uuid4().hex[:10]}.",
    }
    with limited_api(tmp_path / "d", **over) as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        answers = _fill(c, globex, "G")
        assert answers[-1].status_code != 200, [r.status_code for r in answers]
        _check_refused(answers[-1])
        r = c.post("/v1/ingest/quotes", json=_quotes(20, "A"), headers=acme)
        assert r.status_code == 200, r.text
        held = hub.ingest.stored_quota.held("globex")
        assert 0 < held <= int(LIMIT)
    with limited_api(tmp_path / "d", **over) as (hub, c):
        assert hub.ingest.stored_quota.held("globex") == held
        _check_refused(c.post("/v1/ingest/quotes", json=_quotes(20, "R"), headers=globex))
