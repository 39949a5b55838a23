"""The hub on MLflow's model registry (``HUB_MODEL_REGISTRY=mlflow``, embedded SQLite store): the
ledger's ``hub.models`` events govern; MLflow's aliases follow them; an alias moved in MLflow
behind the hub's back is reported, never followed, and can be put back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from tests.service.test_ml import _register_small_model

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(
            environ={"HUB_PROJECTION_AUTOSTART": "false", "HUB_MODEL_REGISTRY": "mlflow"},
            data_dir=tmp_path / "data",
        )
    )
    yield h
    h.close()


def test_mlflow_aliases_follow_the_ledger_and_a_move_behind_its_back_is_reported(
    hub: Hub, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from adapters.mlflow_models import MlflowModelRegistry, embedded_uri

    ml = ml_of(hub)
    assert isinstance(ml.models.store, MlflowModelRegistry)
    v1 = _register_small_model(hub)
    v2 = _register_small_model(hub)
    change = ml.changes.propose_champion(ALICE, "payment_risk", v1, "first model")
    ml.changes.approve(BOB, change.change_id, "reviewed")
    ml.models.promote_challenger(ALICE, "payment_risk", v2, 0.2, "try v2")

    client = MlflowClient(tracking_uri=embedded_uri(tmp_path / "data" / "ml" / "mlflow"))
    model = client.get_registered_model("payment_risk")
    tagged = {
        a: client.get_model_version("payment_risk", str(n)).tags["hub.version"]
        for a, n in model.aliases.items()
    }
    assert tagged == {"champion": str(v1), "challenger": str(v2)}
    assert ml.models.alias_mismatches("payment_risk") == []

    # Someone with MLflow access makes v2 the champion without the hub's two-person rule.
    number = next(
        mv.version
        for mv in client.search_model_versions("name = 'payment_risk'")
        if mv.tags["hub.version"] == str(v2)
    )
    client.set_registered_model_alias("payment_risk", "champion", number)
    client.set_registered_model_alias("payment_risk", "prod", number)

    found = ml.models.alias_mismatches("payment_risk")
    assert len(found) == 2, found
    assert f"alias 'champion' names v{v2} but the ledger's champion is v{v1}" in found[0]
    assert "alias 'prod'" in found[1]
    # The hub keeps scoring with the ledger's champion, and loads its ledgered bytes from MLflow.
    assert ml.models.champion_of("payment_risk") == v1
    assert ml.models.load("payment_risk", v1).info.version == v1

    mended = ml.models.sync_aliases("payment_risk")
    assert len(mended) == 2
    assert ml.models.alias_mismatches("payment_risk") == []
    assert ml.models.store.aliases("payment_risk") == {"champion": v1, "challenger": v2}
