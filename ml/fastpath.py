"""A fitted linear model as plain numpy: ``StandardScaler`` + binary ``LogisticRegression`` (a
scikit-learn ``Pipeline`` of the two, or the classifier alone) is ``sigmoid(((x - mean) / scale)
@ coef + intercept)``. scikit-learn's ``predict_proba`` validates its input on every call (about
as long as the arithmetic for a batch, and most of the time for one row); serving the same
coefficients directly is what makes one event score in well under a millisecond.

``compile_predict`` returns None for any other estimator (scored through ``predict_proba``), and
a compiled form is used only after it agreed with ``predict_proba`` on probe rows to 1e-9.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

Predict = Callable[[NDArray[Any]], NDArray[Any]]


def _linear(estimator: Any) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], float] | None:
    """(mean, scale, coef, intercept) of a supported estimator, else None."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [s for _, s in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]
    if not steps or not isinstance(steps[-1], LogisticRegression):
        return None
    clf = steps[-1]
    if clf.coef_.shape[0] != 1 or len(clf.classes_) != 2:
        return None
    n = clf.coef_.shape[1]
    mean, scale = np.zeros(n), np.ones(n)
    for step in steps[:-1]:
        if not isinstance(step, StandardScaler) or len(steps) > 2:
            return None
        if step.mean_ is not None:
            mean = np.asarray(step.mean_, dtype=np.float64)
        if step.scale_ is not None:
            scale = np.asarray(step.scale_, dtype=np.float64)
    return mean, scale, np.asarray(clf.coef_[0], np.float64), float(clf.intercept_[0])


def compile_predict(estimator: Any, probe: NDArray[Any]) -> Predict | None:
    """The probability of class 1 as numpy, or None (unsupported, or it disagreed on ``probe``)."""
    got = _linear(estimator)
    if got is None:
        return None
    mean, scale, coef, intercept = got
    weights = coef / scale  # ((x - mean) / scale) @ coef == x @ weights - mean @ weights
    bias = intercept - float(mean @ weights)

    def predict(x: NDArray[Any]) -> NDArray[Any]:
        z = np.clip(x @ weights + bias, -700.0, 700.0)
        out: NDArray[Any] = 1.0 / (1.0 + np.exp(-z))
        return out

    spread = np.random.default_rng(0).normal(size=(64, len(coef))) * scale * 3 + mean
    rows = np.vstack([spread, probe]) if probe.size else spread
    want = estimator.predict_proba(rows)[:, 1]
    if not np.allclose(predict(rows), want, rtol=0, atol=1e-9):
        return None
    return predict
