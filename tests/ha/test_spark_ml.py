"""The Spark MLlib family (issue 14 item 8): ``hub ml retrain --family spark-lr`` trains a
logistic regression with Spark ``local[2]`` on the same training set as the scikit-learn
champion, evaluates it on the same holdout, registers it through the ModelRegistry port as the
challenger, and the hub scores it in-process without Spark.

ONE Spark job for the module (the fixture's retrain through the CLI); Spark's start-up dominates
(~20 s on a quiet machine, minutes on a loaded one), so the tests only read what it left, and
the job runs in the Spark session the backfill module's job shares (``shared_spark``).
Needs the Spark virtualenv (``bash infra/spark.sh install``): skipped loudly without it, failed
under CI=true.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.ml_setup import ml_of
from hub.settings import load_settings
from ml import training
from ml.models import MODELS_TOPIC, REGISTERED
from ml.spark_family import FAMILY, SparkLogistic
from tests.cli_keys import admin_args
from tests.infra import require
from tests.service.test_ml import T, _open, _pay

# Spark start-up on a loaded 2-core machine took minutes (load 20-40): a wide bound.
ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1500),
    pytest.mark.usefixtures("shared_spark"),  # one Spark session for both Spark modules
]


def _hub(data: Path, **env: str) -> Hub:
    return bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false", **env}, data_dir=data)
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A sklearn champion (v1, two people) and a Spark challenger (v2) trained through the CLI."""
    require("spark", "the Spark MLlib family tests")
    data = tmp_path_factory.mktemp("spark-ml") / "data"
    args = admin_args(data)
    hub = _hub(data)
    try:
        _open(hub, "S", "BASIC", "HIGH", T - timedelta(days=30))
        _open(hub, "N", "ENHANCED", "LOW", T - timedelta(days=30))
        for i in range(30):  # structuring: just under the threshold, confirmed
            _pay(
                hub,
                f"S-{i}",
                "S",
                f"{9500 + 7 * i}.00",
                T + timedelta(minutes=20 * i),
                fraud=i % 5 != 0,
            )
        for i in range(60):
            _pay(hub, f"N-{i}", "N", f"{20 + 3 * i}.00", T + timedelta(minutes=11 * i))
        bob = hub.keys.create(["ml_engineer"], owner="bob").token
        carol = hub.keys.create(["compliance_officer"], owner="carol").token
    finally:
        hub.close()

    def hub_ml(*words: str) -> Any:
        r = CliRunner().invoke(main, [*args, "ml", *words])
        assert r.exit_code == 0, r.output
        return r

    hub_ml("train", "payment_risk")
    change = json.loads(
        hub_ml("promote", "payment_risk", "1", "--reason", "first", "--key", bob).stdout
    )
    hub_ml("approve", change["change_id"], "--key", carol)
    r = hub_ml("retrain", "payment_risk", "--family", "spark-lr", "--share", "0.5")
    assert "payment_risk v2: challenger (share 50%)" in r.stdout, r.output
    yield {"data": data, "args": args, "retrain_output": r.stdout}


def test_the_spark_version_is_trained_and_evaluated_like_the_champion(
    trained: dict[str, Any],
) -> None:
    hub = _hub(trained["data"])
    try:
        ml = ml_of(hub)
        v1, v2 = ml.models.version("payment_risk", 1), ml.models.version("payment_risk", 2)
        assert (v1.family, v2.family) == (training.FAMILY, FAMILY)
        assert v2.stage == "CHALLENGER" and v2.share == 0.5
        # the same training set (digest, checkpoint-cut manifest) and the same holdout
        assert v2.manifest["digest"] == v1.manifest["digest"]
        assert ml.training_sets.verify(v2.manifest).digest == v2.manifest["digest"]
        assert v2.metrics["holdout"]["rows"] == v1.metrics["holdout"]["rows"] > 10
        assert v2.metrics["champion"]["version"] == 1
        assert v2.metrics["champion"]["holdout"]["rows"] == v2.metrics["holdout"]["rows"]
        spark = v2.metrics["spark"]
        print(f"\nSpark figures: {json.dumps(spark, sort_keys=True)}")
        assert spark["master"] == "local[2]" and spark["version"] == "4.3.0"
        assert spark["holdout_max_abs_diff"] <= 1e-9 and spark["holdout_decisions_differ"] == 0
        assert v2.metrics["holdout"]["auc"] > 0.9  # it learned the planted structuring
        # the lifecycle event is on hub.models (and so on the ledger) with manifest and metrics
        registered = [
            r["value"]
            for r in hub.reader.read(MODELS_TOPIC, 0, 0, 100)
            if r["headers"].get("ce_type") == REGISTERED and r["value"]["version"] == 2
        ]
        assert registered and registered[0]["family"] == FAMILY
        assert json.loads(registered[0]["manifest"])["digest"] == v1.manifest["digest"]
        assert json.loads(registered[0]["metrics"])["spark"]["holdout_rows"] > 10
    finally:
        hub.close()


def test_spark_predictions_and_the_hubs_scoring_agree_on_the_holdout(
    trained: dict[str, Any],
) -> None:
    """Spark's own holdout probabilities (the job's output) against the registered artifact
    scored by the hub, loaded through the ModelRegistry port with its ledgered SHA-256."""
    hub = _hub(trained["data"])
    try:
        ml = ml_of(hub)
        v2 = ml.models.version("payment_risk", 2)
        loaded = ml.models.load("payment_risk", 2)
        model = loaded.estimator
        assert isinstance(model, SparkLogistic) and any(c != 0 for c in model.coefficients)
        result_file = (
            trained["data"] / "ml" / "spark" / f"train-{v2.manifest['digest'][:16]}" / "result.json"
        )
        spark = json.loads(result_file.read_text())
        _, holdout = training.split(ml.training_sets.rebuild(v2.manifest).rows)
        ours = model.predict_proba(training.matrix(holdout, v2.features))[:, 1]
        theirs = np.array([p for _, p, _ in spark["holdout"]])
        decisions = np.array([d for _, _, d in spark["holdout"]])
        assert len(theirs) == len(holdout) > 10
        diff = float(np.max(np.abs(ours - theirs)))
        print(f"\nholdout rows {len(holdout)}, max |P_spark - P_hub| = {diff:.3g}")
        assert diff <= 1e-9
        assert np.array_equal(decisions == 1.0, ours >= 0.5)
        assert 0 < int(np.sum(decisions)) < len(holdout)  # both decisions occur
        # Spark's own saved model travels in the artifact (Spark can load it back)
        names = zipfile.ZipFile(BytesIO(model.native)).namelist()
        assert any(n.startswith("metadata/") for n in names), names
    finally:
        hub.close()


def test_a_spark_champion_scores_in_process_without_spark(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    """Promoted to champion by two people (in a copy of the data folder: the other tests keep
    their challenger), the Spark version scores every event with no Spark interpreter at all."""
    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    hub = _hub(data, HUB_SPARK_PYTHON="/nonexistent/python")
    try:
        ml = ml_of(hub)
        change = ml.changes.propose_champion(ALICE, "payment_risk", 2, "spark family")
        ml.changes.approve(BOB, change.change_id)
        assert ml.models.state("payment_risk").champion == 2
        ml.consumer("payment_risk").run_until_idle()
        preds = ml.predictions("payment_risk", 2)
        assert len(preds) == 90  # every PaymentInitiated of the fixture, once
        model = ml.models.load("payment_risk", 2).estimator
        assert isinstance(model, SparkLogistic)
        for p in preds:
            vector = json.loads(p["features"])
            x = np.array([[vector[f] for f in model.features]])
            # the prediction event carries the score rounded to 9 decimals
            assert p["score"] == pytest.approx(float(model.predict_proba(x)[0, 1]), abs=1e-9)
        assert {p["decision"] for p in preds} == {"alert", "pass"}
    finally:
        hub.close()
