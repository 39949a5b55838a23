"""A prediction MUST NOT be made for an erased data subject.

Session 22 finding (medium): after ``hub erase ACC-0042`` a late event naming the account is
refused at ingest (``key_destroyed``), but ``POST /v1/models/{m}/predict`` (and ``hub ml
predict``) for that account still read its attributes (KYC level, risk rating) and history from
the feature store, answered them and recorded a new ``PredictionRecorded`` naming the erased
account with its feature vector (seen on a served demo hub: ``kyc_level 3.0`` of ACC-0042 after
its erasure). A predict call for an entity whose key the caller's tenant destroyed is now
refused the same way (410 ``key_destroyed``), before any feature is read, and nothing is
recorded; the same account id of another tenant is another person and still scores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.ml_setup import ml_of
from ml.predictions import PREDICTIONS_TOPIC
from tests.adversarial._api import Api, basic, register_payment_model, serve_hub, start_api
from tests.adversarial.test_ml_ab_tenants import _payment

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """payment_risk v1 the champion; A-0 paid in acme and in globex, scored; acme erased it."""
    hub, client = start_api(tmp_path / "d")
    client.close()
    ml = ml_of(hub)
    v1 = register_payment_model(hub, 0)
    ml.changes.approve(BOB, ml.changes.propose_champion(ALICE, "payment_risk", v1, "x").change_id)
    for tenant in ("acme", "globex"):
        event = OutgoingEvent(_payment("A-0"), "hub.payments.PaymentInitiated")
        hub.publisher.publish("payments", [event], f"{tenant}-bank", tenant)
    assert ml.consumer("payment_risk").run_until_idle() == 2
    for api in serve_hub(hub):
        officer = hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token
        r = api.client.post(
            "/v1/erasures", json={"subject": "ACC-A-0", "reason": "DSR-1"}, headers=basic(officer)
        )
        assert r.status_code == 201, r.text
        yield api


def _recorded(api: Api) -> int:
    return len(api.hub.reader.read(PREDICTIONS_TOPIC, 0, 0, 1000))


def test_no_prediction_is_made_for_an_erased_subject(api: Api) -> None:
    analyst = api.hub.keys.create(["analyst"], principal="al", tenant="acme").token
    before = _recorded(api)
    event = {**_payment("A-1"), "account_id": "ACC-A-0", "initiated_at": "2026-11-25T10:00:00Z"}
    r = api.client.post(
        "/v1/models/payment_risk/predict", json={"event": event}, headers=basic(analyst)
    )
    assert r.status_code == 410, r.text  # before the fix: 200 with ACC-A-0's features
    assert r.json()["reason"] == "key_destroyed" and "ACC-A-0" in r.json()["message"]
    assert _recorded(api) == before  # nothing recorded about the erased subject


def test_the_same_account_id_of_another_tenant_still_scores(api: Api) -> None:
    analyst = api.hub.keys.create(["analyst"], principal="gus", tenant="globex").token
    before = _recorded(api)
    event = {**_payment("G-1"), "account_id": "ACC-A-0", "initiated_at": "2026-11-25T10:00:00Z"}
    r = api.client.post(
        "/v1/models/payment_risk/predict", json={"event": event}, headers=basic(analyst)
    )
    assert r.status_code == 200, r.text
    assert _recorded(api) == before + 1
