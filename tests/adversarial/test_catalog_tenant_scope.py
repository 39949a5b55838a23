"""The catalog shows a tenant-limited reader its own tenant's legal holds and exports only
(session 16 review, attacker view).

``GET /v1/catalog`` (``catalog.read``: every analyst) flagged ``legal_hold: true`` on a topic
held by any tenant, and listed every tenant's exported files (evidence packs, query exports),
while ``GET /v1/legal-holds`` and ``GET /v1/lineage/graph`` had been cut to the reader's tenant:
globex's analyst learnt that acme had put ``trades`` under an investigation hold and which
evidence packs acme had exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core import lineage
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic, quiet_hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


def _topic(datasets: list[dict], name: str) -> dict:
    return next(d for d in datasets if d["kind"] == "topic" and d["name"] == name)


def test_another_tenants_hold_and_exports_are_not_in_the_catalog(hub: Hub) -> None:
    ann = basic(hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token)
    gia = basic(hub.keys.create(["analyst"], principal="gia", tenant="globex").token)
    aya = basic(hub.keys.create(["analyst"], principal="aya", tenant="acme").token)
    admin = basic(hub.keys.create(["admin"], principal="root").token)
    with lineage.run(
        hub.publisher,
        "evidence.export",
        outputs=[lineage.export_dataset("acme-sar-17.zip")],
        producer="ann",
        tenant="acme",
    ):
        pass
    with TestClient(create_app(hub), raise_server_exceptions=False) as client:
        r = client.post(
            "/v1/legal-holds", json={"scope": "topic:trades", "matter": "SAR 17"}, headers=ann
        )
        assert r.status_code == 201, r.text
        seen = {}
        for who, headers in (("globex", gia), ("acme", aya), ("admin", admin)):
            r = client.get("/v1/catalog", headers=headers)
            assert r.status_code == 200, r.text
            seen[who] = r.json()["datasets"]
    assert _topic(seen["globex"], "trades")["legal_hold"] is False
    assert not [d for d in seen["globex"] if d["kind"] == "export"]
    for who in ("acme", "admin"):  # the holder's own tenant and the hub's operators see both
        assert _topic(seen[who], "trades")["legal_hold"] is True
        assert [d["name"] for d in seen[who] if d["kind"] == "export"] == ["acme-sar-17.zip"]
