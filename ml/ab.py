"""A/B split and its report: a deterministic split by entity key hash, per-variant metrics and a
two-proportion z-test on the alert rates.

``variant(key, share)``: the first 8 bytes of SHA-256(key) as a fraction of 2**64; below
``share`` is the challenger. The same key always lands in the same variant (an account is never
scored by both), and a share of keys close to ``share`` lands in the challenger.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from core.errors import InvalidInput

CHAMPION = "champion"
CHALLENGER = "challenger"

# A challenger is set by one person; above half the keys it would decide for most accounts,
# a champion in all but name, which needs the two-person change ``model.champion:<name>``.
MAX_CHALLENGER_SHARE = 0.5


def check_share(share: float) -> float:
    """``share`` if it is a challenger's share of the keys one person may set, else
    ``InvalidInput`` naming it."""
    if not 0.0 < share <= MAX_CHALLENGER_SHARE:
        raise InvalidInput(
            f"A challenger's share of the keys is above 0 and at most {MAX_CHALLENGER_SHARE}, "
            f"not {share}: a version that should decide for more of the keys is made the "
            "champion, a two-person change (`hub ml promote NAME VERSION --reason WHY`).",
            code="invalid_challenger_share",
        )
    return share


def bucket(key: str) -> float:
    """The key's place in [0, 1), stable across processes and machines."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


def variant(key: str, challenger_share: float) -> str:
    return CHALLENGER if challenger_share > 0 and bucket(key) < challenger_share else CHAMPION


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value that two rates x1/n1 and x2/n2 are equal (pooled z-test)."""
    if not n1 or not n2:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def report(predictions: Iterable[Mapping[str, Any]], labels: Mapping[str, int]) -> dict[str, Any]:
    """Per variant: count, alert rate, mean score, latency p50/p99, precision and recall against
    the labels known so far; the p-value of the alert-rate difference."""
    by: dict[str, list[Mapping[str, Any]]] = {}
    for p in predictions:
        by.setdefault(str(p["variant"]), []).append(p)
    out: dict[str, Any] = {"variants": {}}
    for name, preds in sorted(by.items()):
        alerts = [p for p in preds if p["decision"] == "alert"]
        latencies = sorted(int(p["latency_us"]) for p in preds)
        known = [p for p in preds if p["subject"] in labels]
        tp = sum(1 for p in known if p["decision"] == "alert" and labels[p["subject"]] == 1)
        fp = sum(1 for p in known if p["decision"] == "alert" and labels[p["subject"]] == 0)
        fn = sum(1 for p in known if p["decision"] != "alert" and labels[p["subject"]] == 1)
        out["variants"][name] = {
            "versions": sorted({int(p["version"]) for p in preds}),
            "predictions": len(preds),
            "alerts": len(alerts),
            "alert_rate": len(alerts) / len(preds),
            "mean_score": sum(float(p["score"]) for p in preds) / len(preds),
            "latency_us_p50": latencies[len(latencies) // 2],
            "latency_us_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "labelled": len(known),
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
        }
    a, b = out["variants"].get(CHAMPION), out["variants"].get(CHALLENGER)
    out["alert_rate_p_value"] = (
        None
        if a is None or b is None
        else two_proportion_p(a["alerts"], a["predictions"], b["alerts"], b["predictions"])
    )
    return out
