"""Training a version of a model is decided hub-wide, as retraining and promoting are.

Session 22 finding (medium): ``hub ml train`` asked ``model.train`` in the caller's own tenant,
which a tenant's ml engineer holds. A training set is cut from every tenant's labelled events
(a model scores every tenant), so globex's engineer fitted on acme's payments and labels, was
shown their counts (rows, positives, the holdout's confusion matrix) and registered a version of
the model every tenant is scored with. A version registered after a drift also counts as the
answer to it, so that key silenced a retrain schedule's ``on_drift``. ``hub ml retrain`` already
took ``model.promote`` hub-wide; ``hub ml train`` now takes ``model.train`` hub-wide (another
tenant's key needs ``tenant.all``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.bootstrap import Hub
from hub.cli import main
from hub.ml_setup import ml_of
from tests.service.test_ml_schedule import _hub, _payments


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """60 labelled payments of the default tenant; no model yet."""
    hub = _hub(tmp_path / "d")
    try:
        _payments(hub)
    finally:
        hub.close()
    yield tmp_path / "d"


def _train(data: Path, roles: list[str], tenant: str) -> tuple[int, str]:
    hub: Hub = _hub(data)
    try:
        key = hub.keys.create(roles, principal=f"eng-{tenant}", tenant=tenant).token
    finally:
        hub.close()
    args = ["--data-dir", str(data), "--key", key, "ml", "train", "payment_risk"]
    r = CliRunner().invoke(main, args)
    return r.exit_code, r.output


def _versions(data: Path) -> list[int]:
    hub = _hub(data)
    try:
        models = ml_of(hub).models
        return sorted(models.state("payment_risk").versions) if models.names() else []
    finally:
        hub.close()


def test_another_tenants_engineer_cannot_train_on_every_tenants_data(data: Path) -> None:
    code, out = _train(data, ["ml_engineer"], "globex")
    assert code == 1 and "Access denied" in out, out  # before: registered v1, rows shown
    assert "train_rows" not in out
    assert _versions(data) == []


def test_the_hubs_own_engineer_still_trains(data: Path) -> None:
    code, out = _train(data, ["ml_engineer"], "default")
    assert code == 0, out
    assert _versions(data) == [1]
