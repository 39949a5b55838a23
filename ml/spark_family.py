"""The Spark MLlib model family (``spark-lr``): logistic regression trained by Spark ``local[N]``
on the same training set as the other families, scored by the hub in-process without Spark.

``SparkLogisticFamily(launcher).fit(ts, names)``:
  1. split the training set exactly as ``ml.training.split`` does (the champion's holdout);
  2. write it as Parquet in manifest order (row index, holdout flag, ``f_0..f_n``);
  3. run ``ml/spark_job.py`` in the Spark virtualenv: it recomputes the manifest's digest from
     the file before training (a different file is refused), fits, predicts the holdout with
     Spark's own model and saves that model;
  4. build ``SparkLogistic`` from the coefficients: P(1) = 1 / (1 + exp(-(x . w + b))), Spark's
     own formula, so the hub scores without a JVM; compare it with Spark's predictions on the
     holdout (``metrics["spark"]``: largest absolute difference, differing decisions) and refuse
     the model when they disagree beyond ``AGREEMENT``;
  5. evaluate on the holdout with ``ml.training.evaluate``, the code that evaluates the champion.
The artifact (registered through the ModelRegistry port like every family) holds the
coefficients and Spark's saved model as a zip, so Spark can load the same model back.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import Conflict, InvalidInput
from ml import training
from ml.trainingset import TrainingSet
from projections.spark_launch import SparkLauncher

NAME = "spark-lr"
FAMILY = "spark.LogisticRegression"
JOB = Path(__file__).with_name("spark_job.py")
AGREEMENT = 1e-9  # largest |P_spark - P_hub| accepted on the holdout


@dataclass(frozen=True)
class SparkLogistic:
    """A Spark ``LogisticRegressionModel`` as the hub scores it (``predict_proba`` like
    scikit-learn's estimators, so scoring, evaluation and drift treat every family alike)."""

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    spark_version: str
    native: bytes = b""  # Spark's own saved model (zip of ``model.save`` output)

    def predict_proba(self, x: NDArray[Any]) -> NDArray[Any]:
        margin = np.asarray(x, dtype=np.float64) @ np.asarray(self.coefficients) + self.intercept
        p = 1.0 / (1.0 + np.exp(-margin))
        return np.column_stack([1.0 - p, p])


def zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):  # no .crc side files
                z.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


class SparkLogisticFamily:
    label = FAMILY

    def __init__(
        self,
        launcher: SparkLauncher,
        *,
        reg_param: float = 0.01,
        max_iter: int = 100,
        tol: float = 1e-8,
        timeout_s: float = 1800.0,
    ) -> None:
        self.launcher = launcher
        self.params = {"reg_param": reg_param, "max_iter": max_iter, "tol": tol}
        self.timeout_s = timeout_s

    def fit(
        self, ts: TrainingSet, names: Sequence[str], threshold: float = 0.5
    ) -> tuple[SparkLogistic, dict[str, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.launcher.check()
        train, test = training.split(ts.rows)  # 1.
        if {r["label"] for r in train} != {0, 1}:
            raise InvalidInput(
                f"The training set (digest {ts.digest[:12]}..., {len(ts.rows)} rows) needs both "
                "positive and negative labels in its training part: publish FraudConfirmed "
                "events to payment-labels (and let payments settle), then train again."
            )
        held = {id(r) for r in test}
        folder = self.launcher.folder(f"train-{ts.digest[:16]}")
        columns: dict[str, Any] = {  # 2.
            "row": pa.array(range(len(ts.rows)), pa.int64()),
            "subject": pa.array([r["subject"] for r in ts.rows], pa.string()),
            "entity": pa.array([r["entity"] for r in ts.rows], pa.string()),
            "time_us": pa.array([r["time_us"] for r in ts.rows], pa.int64()),
            "label": pa.array([r["label"] for r in ts.rows], pa.int64()),
            "holdout": pa.array([id(r) in held for r in ts.rows], pa.bool_()),
        }
        for i, name in enumerate(names):
            columns[f"f_{i}"] = pa.array([r["features"][name] for r in ts.rows], pa.float64())
        pq.write_table(pa.table(columns), folder / "trainingset.parquet")
        result = self.launcher.run(  # 3.
            JOB,
            folder,
            {
                "input": str(folder / "trainingset.parquet"),
                "features": list(names),
                "digest": ts.digest,
                "params": {**self.params, "threshold": threshold},
                "model_dir": str(folder / "model"),
            },
            self.timeout_s,
        )
        if result["digest"] != ts.digest:
            raise Conflict(
                f"The Spark job trained on digest {result['digest']}, not {ts.digest}; refused."
            )
        model = SparkLogistic(  # 4.
            tuple(names),
            tuple(float(c) for c in result["coefficients"]),
            float(result["intercept"]),
            str(result["spark_version"]),
            zip_folder(folder / "model"),
        )
        agreement = compare(model, test, names, result["holdout"], threshold)
        if agreement["holdout_max_abs_diff"] > AGREEMENT:
            raise Conflict(
                f"Spark's holdout probabilities and the hub's scoring of the exported "
                f"coefficients differ by up to {agreement['holdout_max_abs_diff']:.3g} (limit "
                f"{AGREEMENT:g}); the model is not registered."
            )
        metrics = {  # 5.
            "train_rows": len(train),
            "holdout": training.evaluate(model, test, names, threshold),
            "spark": {
                "version": result["spark_version"],
                "master": self.launcher.master,
                "params": self.params,
                "iterations": result["iterations"],
                "holdout_auc_spark": result["holdout_auc"],
                "seconds": {**result["seconds"], "process": result["process_seconds"]},
                **agreement,
            },
        }
        return model, metrics


def compare(
    model: SparkLogistic,
    test: Sequence[dict[str, Any]],
    names: Sequence[str],
    spark_holdout: Sequence[Sequence[float]],
    threshold: float,
) -> dict[str, Any]:
    """Spark's holdout predictions beside the hub's: the largest absolute probability difference
    and the rows whose decision differs (Spark: P > threshold; the hub: P >= threshold, the same
    except at a probability of exactly the threshold)."""
    if len(spark_holdout) != len(test):
        raise Conflict(
            f"Spark predicted {len(spark_holdout)} holdout rows, the hub's holdout has "
            f"{len(test)}: they are not the same holdout."
        )
    if not test:
        return {"holdout_rows": 0, "holdout_max_abs_diff": 0.0, "holdout_decisions_differ": 0}
    ours = model.predict_proba(training.matrix(test, names))[:, 1]
    theirs = np.array([p for _, p, _ in spark_holdout], dtype=np.float64)
    decided = np.array([d for _, _, d in spark_holdout]) == 1.0
    return {
        "holdout_rows": len(test),
        "holdout_max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "holdout_decisions_differ": int(np.sum(decided != (ours >= threshold))),
    }
