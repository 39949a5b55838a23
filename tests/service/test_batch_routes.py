"""The HTTP routes the Airflow DAGs call (issue 18 item 5): a signed report run and fetched over
HTTP verifies offline with the ledger's key; the cold-tier offload archives closed segments once
and keeps the ledger verifying; retraining makes a challenger and never a champion."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from audit.note import parse_verifier_key
from core.ports.policy import Principal
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.demo import load
from hub.reports import verify_pack
from hub.settings import load_settings
from projections.catalog import PROJECTIONS


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, TestClient]]:
    tmp = tmp_path_factory.mktemp("batch-routes")
    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_TIER_SEGMENT_RECORDS": "50",
        "HUB_OBJECT_STORE_DIR": str(tmp / "objects"),
    }
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp / "data"))
    load(hub.ingest, 7)
    hub.projections.run([p.name for p in PROJECTIONS])
    client = TestClient(create_app(hub), base_url="http://127.0.0.1", raise_server_exceptions=False)
    try:
        yield hub, client
    finally:
        client.close()
        hub.close()


def auth(hub: Hub, role: str) -> dict[str, str]:
    token = hub.keys.create([role], principal=f"batch-{role}").token
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def test_a_report_run_over_http_downloads_and_verifies(served: tuple[Hub, TestClient]) -> None:
    hub, client = served
    officer = auth(hub, "compliance_officer")
    made = client.post(
        "/v1/reports", json={"kind": "compliance-daily", "day": "2026-11-24"}, headers=officer
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["kind"] == "compliance-daily" and body["day"] == "2026-11-24"
    assert body["summary"]["aml_hits"] > 0 and body["checkpoint"]["size"] > 0
    pack = client.get(f"/v1/reports/{body['report_id']}", headers=officer)
    assert pack.status_code == 200 and pack.headers["content-type"] == "application/zip"
    trusted = parse_verifier_key(hub.ledger.public_key())
    assert "OK" in verify_pack(pack.content, trusted)
    quality = client.post("/v1/reports", json={"kind": "data-quality"}, headers=officer)
    assert quality.status_code == 201 and quality.json()["day"] is None


def test_report_routes_refuse_bad_input_and_other_roles(served: tuple[Hub, TestClient]) -> None:
    hub, client = served
    officer = auth(hub, "compliance_officer")
    bad = client.post("/v1/reports", json={"kind": "weekly"}, headers=officer)
    assert bad.status_code == 422 and "kind" in bad.text
    bad = client.post(
        "/v1/reports", json={"kind": "compliance-daily", "day": "24/11/2026"}, headers=officer
    )
    assert bad.status_code == 422 and "day" in bad.text
    for days in (0, 367):
        bad = client.post(
            "/v1/reports", json={"kind": "access-review", "days": days}, headers=officer
        )
        assert bad.status_code == 422 and "days" in bad.text
    bad = client.post("/v1/reports", json={"kind": "data-quality", "days": 7}, headers=officer)
    assert bad.status_code == 422 and "access-review report only" in bad.json()["message"]
    review = client.post("/v1/reports", json={"kind": "access-review", "days": 7}, headers=officer)
    assert review.status_code == 201, review.text
    assert review.json()["summary"]["period_days"] == 7
    missing = client.get("/v1/reports/00000000-0000-7000-8000-000000000000", headers=officer)
    assert missing.status_code == 404 and "hub report list" in missing.json()["message"]
    denied = client.post(
        "/v1/reports", json={"kind": "data-quality"}, headers=auth(hub, "publisher")
    )
    assert denied.status_code == 403


def test_offload_archives_closed_segments_once(served: tuple[Hub, TestClient]) -> None:
    hub, client = served
    officer = auth(hub, "compliance_officer")
    first = client.post("/v1/tier/offload", params={"topic": "payments"}, headers=officer)
    assert first.status_code == 200, first.text
    rows = first.json()
    assert rows and all(r["topic"] == "payments" for r in rows)
    assert sum(r["records_offloaded"] for r in rows) >= 50
    again = client.post("/v1/tier/offload", params={"topic": "payments"}, headers=officer)
    assert sum(r["records_offloaded"] for r in again.json()) == 0
    verified = client.post("/v1/ledger/verify", headers=officer)
    assert verified.status_code == 200 and verified.json()["ok"], verified.text
    unknown = client.post("/v1/tier/offload", params={"topic": "nosuch"}, headers=officer)
    assert unknown.status_code == 404 and "nosuch" in unknown.text
    denied = client.post("/v1/tier/offload", headers=auth(hub, "analyst"))
    assert denied.status_code == 403


def test_retrain_route_makes_a_challenger_never_a_champion(
    served: tuple[Hub, TestClient],
) -> None:
    from hub.ml_setup import ml_of

    hub, client = served
    engineer = auth(hub, "ml_engineer")
    first = client.post("/v1/models/payment_risk/retrain", json={}, headers=engineer)
    assert first.status_code == 200, first.text
    assert first.json()["stage"] == "NONE"  # no champion yet: only registered
    ml = ml_of(hub)
    change = ml.changes.propose_champion(_p("alice"), "payment_risk", 1, "test")
    ml.changes.approve(_p("bob"), change.change_id)
    second = client.post(
        "/v1/models/payment_risk/retrain", json={"share": 0.2, "reason": "weekly"}, headers=engineer
    )
    assert second.status_code == 200, second.text
    mv = second.json()
    assert mv["stage"] == "CHALLENGER" and mv["share"] == 0.2
    assert mv["metrics"]["champion"]["version"] == 1
    assert ml.models.champion_of("payment_risk") == 1
    bad = client.post("/v1/models/payment_risk/retrain", json={"share": 2}, headers=engineer)
    assert bad.status_code == 422 and "share" in bad.text
    denied = client.post(
        "/v1/models/payment_risk/retrain", json={}, headers=auth(hub, "compliance_officer")
    )
    assert denied.status_code == 403


def _p(name: str) -> Principal:
    return Principal(name, frozenset({"ml_engineer"}))
