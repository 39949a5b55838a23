"""Drift of live model inputs and scores against the training reference: the Population
Stability Index over the reference's decile bins, and the two-sample Kolmogorov-Smirnov test.

A feature drifts when PSI >= ``psi_threshold`` (0.25: the customary "significant shift"), or
when KS rejects equality at ``ks_alpha`` with a statistic of at least ``ks_min_statistic`` (large
windows make tiny shifts significant; the statistic keeps the alarm to shifts that matter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    psi: float = 0.25
    ks_alpha: float = 0.001
    ks_min_statistic: float = 0.15
    min_window: int = 50


DEFAULT = DriftThresholds()


def psi(reference: Sequence[float], live: Sequence[float], bins: int = 10) -> float:
    """Population Stability Index of ``live`` against ``reference``: sum over the reference's
    quantile bins of (live% - ref%) * ln(live% / ref%), empty bins floored at 1e-4."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(live, dtype=float)
    if ref.size == 0 or cur.size == 0:
        return 0.0
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:  # a constant reference: one bin for it, one for anything else
        same_ref = np.mean(ref == edges[0])
        same_cur = np.mean(cur == edges[0])
        pr = np.array([same_ref, 1 - same_ref])
        pc = np.array([same_cur, 1 - same_cur])
    else:
        inner = edges[1:-1]
        pr = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=edges.size - 1)
        pc = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=edges.size - 1)
        pr = pr / ref.size
        pc = pc / cur.size
    pr = np.clip(pr, 1e-4, None)
    pc = np.clip(pc, 1e-4, None)
    return float(np.sum((pc - pr) * np.log(pc / pr)))


def ks(reference: Sequence[float], live: Sequence[float]) -> tuple[float, float]:
    """The two-sample KS statistic and its p-value."""
    from scipy.stats import ks_2samp

    if len(reference) == 0 or len(live) == 0:
        return 0.0, 1.0
    result = ks_2samp(np.asarray(reference, float), np.asarray(live, float))
    return float(result.statistic), float(result.pvalue)


def compare(
    reference: Mapping[str, Sequence[float]],
    live: Mapping[str, Sequence[float]],
    thresholds: DriftThresholds = DEFAULT,
) -> tuple[list[str], dict[str, Any]]:
    """Drifted names and the per-name report (psi, ks, ks_pvalue, n)."""
    drifted: list[str] = []
    out: dict[str, Any] = {}
    for name in sorted(reference):
        cur = live.get(name, [])
        p = psi(reference[name], cur)
        stat, pvalue = ks(reference[name], cur)
        out[name] = {
            "psi": round(p, 6),
            "ks": round(stat, 6),
            "ks_pvalue": float(f"{pvalue:.6g}"),
            "n": len(cur),
        }
        if p >= thresholds.psi or (
            pvalue < thresholds.ks_alpha and stat >= thresholds.ks_min_statistic
        ):
            drifted.append(name)
    return drifted, out
