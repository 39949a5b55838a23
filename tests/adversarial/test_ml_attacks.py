"""The model lifecycle under attack by one person holding ``model.promote`` (an ml_engineer).

The design makes the champion, the model whose decisions the hub acts on, a two-person change.
One person MUST NOT get the same effect another way:
- retiring the champion (scoring then stops: no model decides at all);
- a challenger given most of the traffic (it then decides for most accounts, unapproved).
And an artifact changed on disk after registration is never unpickled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.errors import Conflict, InvalidInput
from core.ports.policy import Principal
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.ml_setup import ml_of
from hub.settings import load_settings
from ml.models import MAX_CHALLENGER_SHARE
from tests.adversarial._api import basic, register_payment_model

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """payment_risk v1 (champion, approved by two people) and v2 (registered)."""
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        ml = ml_of(h)
        v1 = register_payment_model(h, 0)
        change = ml.changes.propose_champion(ALICE, "payment_risk", v1, "first")
        ml.changes.approve(BOB, change.change_id, "reviewed")
        register_payment_model(h, 1)
        yield h
    finally:
        h.close()


def test_one_person_cannot_retire_the_champion(hub: Hub) -> None:
    models = ml_of(hub).models
    with pytest.raises(Conflict, match="champion") as refused:
        models.retire(ALICE, "payment_risk", 1, "I want it gone")
    assert "hub ml promote payment_risk" in refused.value.message
    assert models.champion_of("payment_risk") == 1
    assert models.version("payment_risk", 1).stage == "CHAMPION"
    # a version that is not the champion can be retired by one person
    assert models.retire(ALICE, "payment_risk", 2, "superseded").stage == "RETIRED"


def test_the_cli_cannot_retire_the_champion(hub: Hub) -> None:
    token = hub.keys.create(["ml_engineer"], principal="mel").token
    data = str(hub.settings.data_dir)
    hub.close()
    hub.close = lambda: None  # type: ignore[method-assign]
    args = ["ml", "retire", "payment_risk", "1", "--reason", "x"]
    r = CliRunner().invoke(main, ["--data-dir", data, "--key", token, *args])
    assert r.exit_code == 1 and "champion" in str(r.stderr), r.output


def test_a_challenger_cannot_take_most_of_the_traffic(hub: Hub) -> None:
    models = ml_of(hub).models
    for share in (0.51, 0.9, 0.99):
        with pytest.raises(InvalidInput, match="two-person") as refused:
            models.promote_challenger(ALICE, "payment_risk", 2, share, "take over")
        assert str(share) in refused.value.message
        assert models.state("payment_risk").challenger is None
    mv = models.promote_challenger(ALICE, "payment_risk", 2, MAX_CHALLENGER_SHARE, "a/b")
    assert mv.stage == "CHALLENGER" and mv.share == MAX_CHALLENGER_SHARE


def test_retrain_over_http_cannot_ask_for_most_of_the_traffic(hub: Hub) -> None:
    token = hub.keys.create(["ml_engineer"], principal="mel").token
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    r: Any = client.post(
        "/v1/models/payment_risk/retrain",
        json={"share": 0.95, "reason": "take over"},
        headers=basic(token),
    )
    client.close()
    assert r.status_code == 422, r.text
    assert ml_of(hub).models.state("payment_risk").challenger is None
    assert max(ml_of(hub).models.state("payment_risk").versions) == 2  # nothing trained


def test_an_artifact_swapped_after_registration_is_not_unpickled(hub: Hub, tmp_path: Path) -> None:
    """The stored bytes are replaced by a pickle that would leave a file behind when loaded:
    the load refuses on the hash, before joblib sees the bytes."""
    import io

    import joblib

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    buf = io.BytesIO()
    joblib.dump({"estimator": Evil(), "reference": {}}, buf)
    models = ml_of(hub).models
    sha = models.version("payment_risk", 2).artifact_sha256
    (hub.settings.data_dir / "ml" / "models" / "artifacts" / sha).write_bytes(buf.getvalue())
    version = 2
    with pytest.raises(Conflict, match="was changed"):
        models.load("payment_risk", version)
    assert not marker.exists()


def test_an_analyst_cannot_score_with_another_tenants_account_history(hub: Hub) -> None:
    """acme's account ACC-A made payments; globex's analyst names ACC-A in a predict call and
    must not get acme's history (the features) or a score computed from it."""
    from core.events import OutgoingEvent

    for i in range(3):
        payment = {
            "payment_id": f"P-{i}",
            "account_id": "ACC-A",
            "amount": "9800.00",
            "currency": "USD",
            "counterparty_name": "Someone",
            "counterparty_iban": "GB29NWBK60161331926819",
            "counterparty_country": "GB",
            "initiated_at": f"2026-11-24T1{i}:00:00Z",
        }
        event = OutgoingEvent(payment, "hub.payments.PaymentInitiated")
        hub.publisher.publish("payments", [event], "acme-bank", "acme")
    gail = hub.keys.create(["analyst"], principal="gail", tenant="globex").token
    ann = hub.keys.create(["analyst"], principal="ann", tenant="acme").token
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    probe = {
        "payment_id": "REQ-1",
        "account_id": "ACC-A",
        "amount": "1.00",
        "counterparty_country": "GB",
        "initiated_at": "2026-11-24T16:00:00Z",
    }
    history = ("payments_1h", "amount_1h", "payments_24h", "amount_24h", "near_threshold_24h")
    got = {}
    for who, token in (("globex", gail), ("acme", ann)):
        r = client.post(
            "/v1/models/payment_risk/predict", json={"event": probe}, headers=basic(token)
        )
        assert r.status_code == 200, r.text
        got[who] = {k: r.json()["features"][k] for k in history}
    # naming acme as the tenant needs model.predict allowed for acme: not for globex's analyst
    asked = {"event": probe, "tenant": "acme"}
    r = client.post("/v1/models/payment_risk/predict", json=asked, headers=basic(gail))
    assert r.status_code == 403, r.text
    root = hub.keys.create(["admin"], principal="root", tenant="globex").token  # tenant.all
    r = client.post("/v1/models/payment_risk/predict", json=asked, headers=basic(root))
    assert r.status_code == 200, r.text
    got["root"] = {k: r.json()["features"][k] for k in history}
    client.close()
    assert not any(got["globex"].values()), got  # globex's ACC-A has no history
    assert (got["acme"]["payments_24h"], got["acme"]["amount_24h"]) == (3.0, 29_400.0), got
    assert got["root"] == got["acme"], got
