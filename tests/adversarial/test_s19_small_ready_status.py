"""``GET /ready`` without a key answers only whether the hub is ready (s19).

It listed every component with its adapter (``event_log: kafka``, ``policy: opa``,
``keystore: vault``, ``views_transactional: postgresql``...): an anonymous caller learnt which
storage and policy products to attack, and which one was down. The component list is behind
``GET /ready/details`` (``metrics.read`` as the hub's own tenant's); a probe keeps its
200 / 503.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial._api import Api


def test_ready_without_a_key_names_no_backend(api: Api) -> None:
    r = api.client.get("/ready")
    assert r.status_code == 200 and r.json() == {"ready": True}, r.text
    for word in ("sqlite", "rego", "adapter", "component", "keystore"):
        assert word not in r.text
    assert api.client.get("/ready/details").status_code == 401
    detailed = api.client.get("/ready/details", headers=api.admin)
    assert detailed.status_code == 200 and detailed.json()["components"], detailed.text


def test_a_failing_backend_is_not_named_either(tmp_path: Path) -> None:
    h = bootstrap(
        load_settings(
            environ={}, data_dir=tmp_path / "d", policy_engine="opa", opa_url="http://10.9.8.7:9"
        )
    )
    try:
        h.projections = None
        r = TestClient(create_app(h)).get("/ready")
        assert r.status_code == 503 and r.json() == {"ready": False}, r.text
        assert "opa" not in r.text and "policy" not in r.text
    finally:
        h.close()
