"""An erasure MUST reach the feature vectors of the subject's predictions on ``hub.predictions``
(s23).

``hub.PredictionRecorded`` kept each prediction's feature vector (the account's amounts, counts,
KYC level) in clear on the append-only log: after ``hub erase ACC-A-0`` anyone with
``internal.read`` (``hub tail hub.predictions``, ``/v1/topics/hub.predictions/events``) still
read the erased account's vectors. The shipped schema's next version names the entity as the
record's data subject (``hub.data_subject``) and classes ``features`` as PII: a new
prediction's vector is sealed under the subject's key in its tenant, so the erasure shreds it
(it reads ``[erased]``), like the PII of the payment it scored. The hub's own A/B and drift
reads keep working (they read the other subjects' vectors, opened). Predictions written before
the new version keep their vector in clear: the log is append-only (docs/trust-model.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from ml.predictions import PREDICTIONS_TOPIC
from tests.adversarial._api import register_payment_model
from tests.adversarial.test_ml_ab_tenants import _payment

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))
OFFICER = Principal("ann", frozenset({"compliance_officer"}), tenant="acme")
SUBJECT = "hub.predictions-value"

# the schema every hub before session 23 registered for hub.predictions
OLD = {
    "type": "record",
    "name": "PredictionRecorded",
    "namespace": "hub",
    "fields": [
        {"name": "model", "type": "string"},
        {"name": "version", "type": "int"},
        {"name": "variant", "type": "string"},
        {"name": "entity", "type": "string"},
        {"name": "subject", "type": "string"},
        {"name": "source", "type": "string"},
        {"name": "feature_digest", "type": "string"},
        {"name": "features", "type": "string"},
        {"name": "score", "type": "double"},
        {"name": "decision", "type": "string"},
        {"name": "latency_us", "type": "long"},
        {"name": "scored_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


def _scored(hub: Hub, account: str) -> None:
    """``account`` paid once in acme and once in globex; the champion scored both."""
    ml = ml_of(hub)
    for tenant in ("acme", "globex"):
        event = OutgoingEvent(_payment(account), "hub.payments.PaymentInitiated")
        hub.publisher.publish("payments", [event], f"{tenant}-bank", tenant)
    assert ml.consumer("payment_risk").run_until_idle() == 2


def _predictions(hub: Hub) -> list[dict[str, Any]]:
    """What ``internal.read`` shows of ``hub.predictions`` (opened with the keys, as an
    auditor's `hub tail` does)."""
    return hub.reader.read(PREDICTIONS_TOPIC, 0, 0, 1000)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d", projection_autostart=False))
    try:
        ml = ml_of(h)
        v1 = register_payment_model(h, 0)
        change = ml.changes.propose_champion(ALICE, "payment_risk", v1, "x")
        ml.changes.approve(BOB, change.change_id)
        yield h
    finally:
        h.close()


def test_the_erasure_shreds_the_vectors_of_the_subjects_predictions(hub: Hub) -> None:
    _scored(hub, "A-0")
    hub.eraser.erase(OFFICER, "ACC-A-0", "DSR-1", tenant_scope="acme")
    by_tenant = {p["headers"]["ce_tenant"]: p["value"] for p in _predictions(hub)}
    # before: acme's prediction still showed ACC-A-0's vector, e.g. {"amount": 9800.0, ...}
    assert not str(by_tenant["acme"]["features"]).startswith("{")
    assert "9800" not in json.dumps(by_tenant["acme"])
    # the same account id in globex is another person: its vector is kept, and read
    assert json.loads(by_tenant["globex"]["features"])  # a vector, opened
    # the hub's own reads keep working: globex's prediction counts, its vector parses
    ml = ml_of(hub)
    kept = ml.predictions("payment_risk")
    assert [json.loads(p["features"]) != {} for p in kept] == [True]
    assert ml.ab_report("payment_risk")["model"] == "payment_risk"
    assert "drifted" in ml.check_drift("payment_risk")


def test_predictions_written_before_the_new_version_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgraded hub: the old version was live on the subject (BACKWARD, the default): the
    new one registers at start; an old prediction still decodes (in clear: the log is
    append-only), a new one is sealed."""
    import hub.domain_setup as setup

    shipped = setup.schema_text
    monkeypatch.setattr(  # the hub as it shipped before: the old PredictionRecorded
        setup,
        "schema_text",
        lambda t: json.dumps(OLD) if t == "hub.PredictionRecorded" else shipped(t),
    )
    data = tmp_path / "d"
    first = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
    monkeypatch.undo()
    try:
        level = first.registry.compatibility(SUBJECT)
        ml = ml_of(first)
        v1 = register_payment_model(first, 0)
        ml.changes.approve(
            BOB, ml.changes.propose_champion(ALICE, "payment_risk", v1, "x").change_id
        )
        _scored(first, "B-0")  # written with the old version (the latest)
    finally:
        first.close()
    again = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
    try:
        assert again.registry.compatibility(SUBJECT) == level == "BACKWARD"
        assert len(again.registry.versions(SUBJECT)) == 2  # the new version, registered
        _scored(again, "B-1")
        again.eraser.erase(OFFICER, "ACC-B-0", "DSR-2", tenant_scope="acme")
        again.eraser.erase(OFFICER, "ACC-B-1", "DSR-3", tenant_scope="acme")
        got = [(p["headers"]["ce_tenant"], p["value"]) for p in _predictions(again)]
        acme = [v for t, v in got if t == "acme"]
        assert [v["entity"] for v in acme] == ["ACC-B-0", "ACC-B-1"]
        old, new = acme
        assert json.loads(old["features"])  # before the new version: in clear, kept
        assert not str(new["features"]).startswith("{")  # after: shredded
        # the hub's reads leave both out (s22), and read globex's two
        assert len(ml_of(again).predictions("payment_risk")) == 2
    finally:
        again.close()
