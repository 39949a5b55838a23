"""A version an MLflow user tags ``hub.version`` beside the hub's own MUST NOT stop scoring.

Session 22 finding (low, availability): ``MlflowModelRegistry`` found a hub version as the first
MLflow version tagged ``hub.version`` = N in MLflow's search order. Anyone with MLflow access
added another version of the model with the champion's tag (even its ``hub.sha256`` tag copied)
and other bytes: the hub fetched those, the ledger's hash refused them (nothing forged), and the
champion could no longer be loaded, so scoring stopped. The registry is now given the ledgered
SHA-256 and returns the tagged version whose bytes hash to it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hub.bootstrap import Hub, bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from tests.service.test_ml import _register_small_model
from tests.service.test_ml_mlflow import ALICE, BOB
from tests.service.test_ml_mlflow import hub as hub  # a fixture, re-exported for pytest


def test_a_shadow_version_with_the_champions_tags_does_not_stop_scoring(
    hub: Hub, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from adapters.mlflow_models import ARTIFACT, EXPERIMENT, embedded_uri

    ml = ml_of(hub)
    v1 = _register_small_model(hub)
    change = ml.changes.propose_champion(ALICE, "payment_risk", v1, "first model")
    ml.changes.approve(BOB, change.change_id, "reviewed")
    genuine = ml.models.version("payment_risk", v1).artifact_sha256

    client = MlflowClient(tracking_uri=embedded_uri(tmp_path / "data" / "ml" / "mlflow"))
    (honest,) = client.search_model_versions("name = 'payment_risk'")
    tags = dict(honest.tags)  # hub.version, hub.sha256, ... copied as they are
    run = client.create_run(client.get_experiment_by_name(EXPERIMENT).experiment_id, tags=tags)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ARTIFACT
        path.write_bytes(b"not the ledgered model")
        client.log_artifact(run.info.run_id, str(path), "model")
    client.create_model_version(
        "payment_risk", f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
    )

    fresh = bootstrap(  # a new process: nothing loaded yet
        load_settings(
            environ={"HUB_PROJECTION_AUTOSTART": "false", "HUB_MODEL_REGISTRY": "mlflow"},
            data_dir=tmp_path / "data",
        )
    )
    try:
        loaded = ml_of(fresh).models.load("payment_risk", v1)  # before: Conflict, it was changed
        assert loaded.info.artifact_sha256 == genuine
    finally:
        fresh.close()
