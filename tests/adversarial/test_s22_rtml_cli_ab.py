"""``hub ml ab`` MUST cut the A/B report to the key's tenant, as ``GET /v1/models/{name}/ab``.

Session 22 finding: the HTTP route cut the report to the caller's tenant (``reader_scope``) but
the CLI asked ``model.read`` and then reported every tenant's predictions and labels, so
globex's analyst read how many of acme's payments the model scored and alerted on, their mean
score, latencies, precision and recall: the figures the HTTP route hides from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.ml_setup import ml_of
from hub.settings import load_settings
from tests.adversarial._api import register_payment_model
from tests.adversarial.test_ml_ab_tenants import _payment

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """payment_risk v1 the champion (two people); three acme payments and one globex payment
    scored by the consumer."""
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        ml = ml_of(h)
        v1 = register_payment_model(h, 0)
        change = ml.changes.propose_champion(ALICE, "payment_risk", v1, "x")
        ml.changes.approve(BOB, change.change_id)
        for tenant, ids in (("acme", ["A-0", "A-1", "A-2"]), ("globex", ["G-0"])):
            events = [OutgoingEvent(_payment(p), "hub.payments.PaymentInitiated") for p in ids]
            h.publisher.publish("payments", events, f"{tenant}-bank", tenant)
        assert ml.consumer("payment_risk").run_until_idle() == 4
        yield h
    finally:
        h.close()


def _cli_ab(hub: Hub, token: str) -> int:
    r = CliRunner().invoke(
        main, ["--data-dir", str(hub.settings.data_dir), "--key", token, "ml", "ab", "payment_risk"]
    )
    assert r.exit_code == 0, r.output
    return sum(v["predictions"] for v in json.loads(r.stdout)["variants"].values())


def test_the_cli_ab_report_shows_a_tenants_analyst_its_own_predictions_only(hub: Hub) -> None:
    acme = hub.keys.create(["analyst"], principal="ann", tenant="acme").token
    globex = hub.keys.create(["analyst"], principal="gus", tenant="globex").token
    admin = hub.keys.create(["admin"], principal="root").token
    assert _cli_ab(hub, globex) == 1  # before the fix: 4, acme's three included
    assert _cli_ab(hub, acme) == 3
    assert _cli_ab(hub, admin) == 4  # tenant.all: every tenant, as over HTTP


def test_a_key_without_model_read_is_refused(hub: Hub) -> None:
    token = hub.keys.create(["publisher"], principal="pat", tenant="acme").token
    r = CliRunner().invoke(
        main, ["--data-dir", str(hub.settings.data_dir), "--key", token, "ml", "ab", "payment_risk"]
    )
    assert r.exit_code != 0 and "model.read" in str(r.stderr), r.output
