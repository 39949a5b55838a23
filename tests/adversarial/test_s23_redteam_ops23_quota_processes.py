"""A tenant's quarantine quota holds across the processes that share one log (session 23).

``HUB_QUARANTINE_MAX_BYTES_PER_TENANT`` (session 22) folded the quarantine topic once, when the
process started, and then counted only this process's own appends. Every other process that
writes the same log (a second ``hub serve`` behind the same load balancer, an HA instance on
the shared Kafka footprint, a ``hub ingest file`` run by the operator) was invisible to it: a
tenant whose requests reach N processes could hold N times its quota, and a process started
before the flood went on accepting the tenant's rejects after the quota was reached through
another. The count now catches up with the quarantine topic at every check (a fold that reads
only what the log gained since), so entries appended by any process count.

Two ``Hub`` objects on one data folder stand for two processes: each has its own pipeline and
quota, as two processes would, and they share nothing but the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from core.events import tenant_of
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._api import QUOTE, basic, issue_key

QUOTA = 20_000
ENV = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_QUARANTINE_MAX_BYTES_PER_TENANT": str(QUOTA)}


@contextmanager
def process(data_dir: Path) -> Iterator[tuple[Hub, TestClient]]:
    hub = bootstrap(load_settings(environ=ENV, data_dir=data_dir))
    try:
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            yield hub, c
    finally:
        hub.close()


def flood(c: TestClient, who: dict[str, str], tag: str) -> Any:
    """One batch of 1 good quote and 20 refused ones (``bid`` not a number)."""
    events = [{**QUOTE, "instrument": f"{tag}{i}", "bid": "not a number"} for i in range(20)]
    events.append({**QUOTE, "instrument": f"{tag}-good"})
    return c.post("/v1/ingest/quotes", json={"events": events}, headers=who)


def quarantined_bytes(hub: Hub, tenant: str) -> int:
    """What the log holds of ``tenant``'s quarantine entries, read afresh."""
    log = hub.log
    return sum(
        len(rec.value or b"")
        for p, start in log.beginning_offsets("hub.quarantine").items()
        for rec in log.scan("hub.quarantine", p, start)
        if (tenant_of(rec) or "default") == tenant
    )


def test_a_tenant_cannot_pass_its_quarantine_quota_through_a_second_process(
    tmp_path: Path,
) -> None:
    data = tmp_path / "hub"
    with process(data) as (first, c1):
        globex = basic(issue_key(first, "publisher", "gus", "globex"))
        acme = basic(issue_key(first, "publisher", "ann", "acme"))
        assert flood(c1, globex, "P").status_code == 200  # the first process has counted
        with ExitStack() as stack:
            second, c2 = stack.enter_context(process(data))
            answers = [flood(c2, globex, f"S{k}") for k in range(40)]
            assert any(r.status_code == 507 for r in answers), [r.status_code for r in answers]
            held = quarantined_bytes(second, "globex")
            assert held <= QUOTA
            # the tenant now turns to the first process, started before the flood
            for k in range(5):
                r = flood(c1, globex, f"F{k}")
                assert r.status_code == 507, (k, r.status_code, r.text)
                assert r.json()["reason"] == "tenant_quarantine_full"
                assert "HUB_QUARANTINE_MAX_BYTES_PER_TENANT" in r.json()["message"]
            # nothing of the refused batches was kept, in either process's view
            assert quarantined_bytes(first, "globex") == held <= QUOTA
            assert first.ingest.quarantine_quota.held("globex") == held
            # another tenant is still served by both
            assert flood(c1, acme, "A1").status_code == 200
            assert flood(c2, acme, "A2").status_code == 200
