"""``hub.predictions`` folded into the ``model_predictions`` view: an analyst queries it through
the SQL guard (``POST /v1/query``), sees their tenant's rows, and the catalog describes it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from core.ports.policy import Principal
from hub.bootstrap import Hub
from hub.ml_setup import ml_of
from tests.service.test_ml import _payment, _register_small_model, crafted  # noqa: F401

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))


def test_predictions_are_a_view_analysts_query(crafted: Hub) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    from hub.api.app import create_app

    ml = ml_of(crafted)
    version = _register_small_model(crafted)
    change = ml.changes.propose_champion(ALICE, "payment_risk", version, "first model")
    ml.changes.approve(BOB, change.change_id, "reviewed")
    at = datetime(2026, 11, 24, 16, tzinfo=UTC)
    for pid in ("REQ-1", "REQ-2"):
        ml.predict(ALICE, "payment_risk", _payment(pid, "A", "9800.00", at))
    again = ml.predict(ALICE, "payment_risk", _payment("REQ-1", "A", "9800.00", at))
    crafted.projections.run(["model_predictions"])

    client = TestClient(create_app(crafted), raise_server_exceptions=False)
    token = crafted.keys.create(["analyst"], principal="ann").token
    headers = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    sql = (
        "SELECT model, version, subject, variant, decision, score, scorings, source "
        "FROM model_predictions ORDER BY subject"
    )
    r = client.post("/v1/query", json={"sql": sql, "store": "transactional"}, headers=headers)
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [(x["model"], x["version"], x["subject"]) for x in rows] == [
        ("payment_risk", version, "REQ-1"),
        ("payment_risk", version, "REQ-2"),
    ]
    assert rows[0]["scorings"] == 2 and rows[1]["scorings"] == 1
    assert rows[0]["variant"] == "champion" and rows[0]["source"] == "request:alice"
    assert rows[0]["decision"] == again.decision
    assert abs(float(rows[0]["score"]) - again.score) < 1e-8
    # The guard still refuses what is not a read.
    r = client.post(
        "/v1/query",
        json={"sql": "DELETE FROM model_predictions", "store": "transactional"},
        headers=headers,
    )
    assert r.status_code in (400, 403, 422), r.text
    r = client.get("/v1/catalog", headers=headers)
    assert r.status_code == 200 and "model_predictions" in r.text
    client.close()
