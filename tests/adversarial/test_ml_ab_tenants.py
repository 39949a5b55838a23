"""One tenant's analyst MUST NOT read another tenant's predictions through the A/B report.

``GET /v1/models/{name}/ab`` (``model.read``, which every analyst holds) added up the predictions
of every tenant, and every prediction was recorded in tenant ``default``, so globex's analyst
saw how many of acme's payments the model alerted on, their scores and latencies. A prediction
now carries the tenant of the event it scored (``ce_tenant``), and the report is cut to the
caller's tenant unless the policy allows it ``tenant.all`` (admin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.ml_setup import ml_of
from ml.predictions import PREDICTIONS_TOPIC
from tests.adversarial._api import Api, basic, register_payment_model, serve_hub, start_api

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """payment_risk v1 the champion (two people); three acme payments and one globex payment
    scored by the consumer."""
    hub, client = start_api(tmp_path / "d")
    client.close()
    ml = ml_of(hub)
    v1 = register_payment_model(hub, 0)
    ml.changes.approve(BOB, ml.changes.propose_champion(ALICE, "payment_risk", v1, "x").change_id)
    for tenant, ids in (("acme", ["A-0", "A-1", "A-2"]), ("globex", ["G-0"])):
        events = [OutgoingEvent(_payment(pid), "hub.payments.PaymentInitiated") for pid in ids]
        hub.publisher.publish("payments", events, f"{tenant}-bank", tenant)
    assert ml.consumer("payment_risk").run_until_idle() == 4
    yield from serve_hub(hub)


def _payment(pid: str) -> dict[str, str]:
    return {
        "payment_id": pid,
        "account_id": "ACC-" + pid,
        "amount": "9800.00",
        "currency": "USD",
        "counterparty_name": "Someone",
        "counterparty_iban": "GB29NWBK60161331926819",
        "counterparty_country": "GB",
        "initiated_at": "2026-11-24T10:00:00Z",
    }


def _ab(api: Api, headers: dict[str, str]) -> int:
    r = api.client.get("/v1/models/payment_risk/ab", headers=headers)
    assert r.status_code == 200, r.text
    return sum(v["predictions"] for v in r.json()["variants"].values())


def test_a_prediction_carries_the_tenant_of_the_event_it_scored(api: Api) -> None:
    got = api.hub.reader.read(PREDICTIONS_TOPIC, 0, 0, 100)
    by_subject = {r["value"]["subject"]: r["headers"]["ce_tenant"] for r in got}
    assert by_subject == {"A-0": "acme", "A-1": "acme", "A-2": "acme", "G-0": "globex"}


def test_the_ab_report_shows_a_tenants_analyst_its_own_predictions_only(api: Api) -> None:
    hub = api.hub
    acme = hub.keys.create(["analyst"], principal="ann", tenant="acme").token
    globex = hub.keys.create(["analyst"], principal="gus", tenant="globex").token
    assert _ab(api, basic(globex)) == 1  # before the fix: 4, acme's three included
    assert _ab(api, basic(acme)) == 3
    assert _ab(api, api.admin) == 4  # tenant.all: every tenant


def test_a_predict_call_is_recorded_and_reported_in_the_tenant_it_scored_for(api: Api) -> None:
    hub = api.hub
    globex = hub.keys.create(["analyst"], principal="gus", tenant="globex").token
    r = api.client.post(
        "/v1/models/payment_risk/predict",
        json={"event": _payment("G-1")},
        headers=basic(globex),
    )
    assert r.status_code == 200, r.text
    last = hub.reader.read(PREDICTIONS_TOPIC, 0, 0, 100)[-1]
    assert (last["value"]["subject"], last["headers"]["ce_tenant"]) == ("G-1", "globex")
    assert _ab(api, basic(globex)) == 2
