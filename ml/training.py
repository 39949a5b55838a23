"""Training and evaluation of a model (payment risk, price anomaly) on a training set
(scikit-learn).

The holdout is chosen by the subject's hash (``ml.ab.bucket`` below ``HOLDOUT``), so a new model
and the champion are evaluated on the same rows of the same training set, and retraining on a
later cut keeps the earlier holdout subjects out of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import InvalidInput
from ml.ab import bucket
from ml.trainingset import TrainingSet

HOLDOUT = 0.3
FAMILY = "sklearn.LogisticRegression"
REFERENCE_ROWS = 5000


def matrix(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> NDArray[Any]:
    return np.array([[r["features"][f] for f in names] for r in rows], dtype=float)


def split(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train = [r for r in rows if bucket("holdout:" + r["subject"]) >= HOLDOUT]
    test = [r for r in rows if bucket("holdout:" + r["subject"]) < HOLDOUT]
    return train, test


def evaluate(
    estimator: Any, rows: Sequence[dict[str, Any]], names: Sequence[str], threshold: float
) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    if not rows:
        return {"rows": 0}
    y = np.array([r["label"] for r in rows])
    scores = estimator.predict_proba(matrix(rows, names))[:, 1]
    alert = scores >= threshold
    tp = int(np.sum(alert & (y == 1)))
    fp = int(np.sum(alert & (y == 0)))
    fn = int(np.sum(~alert & (y == 1)))
    return {
        "rows": len(rows),
        "positives": int(y.sum()),
        "auc": round(float(roc_auc_score(y, scores)), 6) if 0 < y.sum() < len(y) else None,
        "precision": round(tp / (tp + fp), 6) if tp + fp else None,
        "recall": round(tp / (tp + fn), 6) if tp + fn else None,
        "alert_rate": round(float(alert.mean()), 6),
    }


def fit(
    ts: TrainingSet, names: Sequence[str], threshold: float = 0.5
) -> tuple[Any, dict[str, Any]]:
    """A fitted estimator and its holdout metrics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = split(ts.rows)
    labels = {r["label"] for r in train}
    if labels != {0, 1}:
        raise InvalidInput(
            f"The training set (digest {ts.digest[:12]}..., {len(ts.rows)} rows) needs both "
            "positive and negative labels in its training part (labels: "
            f"{ts.manifest['query']['label']}): publish labels, then train again."
        )
    estimator = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000)
    )
    estimator.fit(matrix(train, names), np.array([r["label"] for r in train]))
    metrics = {"train_rows": len(train), "holdout": evaluate(estimator, test, names, threshold)}
    return estimator, metrics


def reference(estimator: Any, ts: TrainingSet, names: Sequence[str]) -> dict[str, list[float]]:
    """The training distribution drift is measured against: every feature and the score."""
    rows = ts.rows[:REFERENCE_ROWS]
    if not rows:
        return {}
    x = matrix(rows, names)
    out = {name: [float(v) for v in x[:, i]] for i, name in enumerate(names)}
    out["score"] = [float(v) for v in estimator.predict_proba(x)[:, 1]]
    return out
