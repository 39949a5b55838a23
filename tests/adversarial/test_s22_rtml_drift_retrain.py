"""A tenant's drift check MUST NOT trigger the hub-wide retrain a schedule makes on drift.

Session 22 finding (high): ``hub ml drift`` (``model.train``, which a tenant's ml engineer holds)
checks the key's tenant's predictions only, but a drift it found was appended to ``hub.models``
as ``ModelDriftDetected`` without the tenant, and the retrain scheduler (``ml.retrain:<model>``
with ``on_drift``) answered any drift event: it trained a new version and made it the challenger
for a share of every tenant's accounts. Retraining needs ``model.promote`` hub-wide; a globex
analyst (``POST /v1/models/{m}/predict`` with odd amounts, recorded in globex) and a globex ml
engineer got it done anyway (seen on a served hub: ``retrained payment_risk: v2 (drift in
amount, ...)`` a minute after globex's check). The drift event now names the tenant whose
predictions it compared (null: every tenant's) and the scheduler retrains on a hub-wide one only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from core.events import OutgoingEvent
from core.ports.policy import Principal
from domain.features import PAYMENT_RISK
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.ml_setup import ml_of
from hub.settings import load_settings
from ml.schedule import RETRAIN_PREFIX, RetrainScheduler
from tests.adversarial.test_ml_ab_tenants import _payment

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))


def _register(hub: Hub) -> int:
    """payment_risk v1 with a training reference of small values (so large ones drift)."""
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(200, len(PAYMENT_RISK.names)))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    reference = {n: x[:, j].tolist() for j, n in enumerate(PAYMENT_RISK.names)}
    return (
        ml_of(hub)
        .models.register(
            ALICE,
            "payment_risk",
            model,
            family="sklearn.LogisticRegression",
            features=list(PAYMENT_RISK.names),
            threshold=0.5,
            manifest={"view": "payment_risk"},
            metrics={},
            reference=reference,
        )
        .version
    )


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """v1 the champion (two people), a retrain schedule on drift, 60 globex payments scored."""
    data = tmp_path / "d"
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    try:
        ml = ml_of(hub)
        change = ml.changes.propose_champion(ALICE, "payment_risk", _register(hub), "x")
        ml.changes.approve(BOB, change.change_id)
        ml.changes.propose(ALICE, RETRAIN_PREFIX + "payment_risk", {"on_drift": True}, "drift")
        events = [
            OutgoingEvent(_payment(f"G-{i}"), "hub.payments.PaymentInitiated") for i in range(60)
        ]
        hub.publisher.publish("payments", events, "globex-bank", "globex")
        assert ml.consumer("payment_risk").run_until_idle() == 60
    finally:
        hub.close()
    yield data


def _drift(data: Path, role: str, tenant: str, *more: str) -> dict[str, object]:
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    try:
        key = hub.keys.create([role], principal=f"{role}-{tenant}", tenant=tenant).token
    finally:
        hub.close()
    args = ["--data-dir", str(data), "--key", key, "ml", "drift", "payment_risk", *more]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 3, r.output  # a drift was found
    out: dict[str, object] = json.loads(r.stdout)
    return out


def _due(data: Path) -> list[str]:
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    try:
        scheduler = RetrainScheduler(hub.config_changes.store, lambda: ml_of(hub))
        drifts = ml_of(hub).models.state("payment_risk").drift
        assert drifts, "the drift is recorded on hub.models"
        return [reason for _, reason in scheduler.due(datetime.now(UTC))]
    finally:
        hub.close()


def test_a_tenants_drift_check_is_recorded_but_retrains_nothing(data: Path) -> None:
    out = _drift(data, "ml_engineer", "globex")
    assert out["tenant"] == "globex" and out["window"] == 60
    assert _due(data) == []  # before the fix: ['drift in amount, ...']
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    try:
        (recorded,) = ml_of(hub).models.state("payment_risk").drift
        assert recorded["tenant"] == "globex"  # whose predictions were compared
    finally:
        hub.close()


def test_a_hub_wide_drift_check_still_retrains(data: Path) -> None:
    out = _drift(data, "admin", "default", "--all-tenants")
    assert out["tenant"] is None
    (reason,) = _due(data)
    assert reason.startswith("drift in amount")
