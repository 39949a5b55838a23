"""The Spark pieces that need no Spark: the job script's digest of a training-set file equals the
hub's manifest digest, the exported logistic formula, and the refusals that name the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, InvalidInput
from core.projection import Windowing
from ml import spark_job
from ml.spark_family import SparkLogistic, compare
from ml.trainingset import rows_digest
from projections.catalog import MARKET_BARS, PAYMENT_AGGREGATES
from projections.spark_backfill import SparkBackfill, SparkUnsupported
from projections.spark_launch import SparkLauncher

ROWS = [
    {
        "subject": f"P{i}",
        "entity": "A\u00e9" if i % 2 else "B",
        "time_us": 1_700_000_000_000_000 + i,
        "features": {"amount": 9500.5 + i, "count_1h": float(i % 3), "kyc": 0.1 * i},
        "label": i % 2,
    }
    for i in range(7)
]
NAMES = ["amount", "count_1h", "kyc"]


def _file_rows(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows as the job reads them from Parquet: features as f_0..f_n columns."""
    out = []
    for r in rows:
        flat = {k: v for k, v in r.items() if k != "features"}
        feats = r["features"]
        assert isinstance(feats, dict)
        flat.update({f"f_{i}": feats[n] for i, n in enumerate(NAMES)})
        out.append(flat)
    return out


def test_the_jobs_digest_of_the_file_equals_the_manifest_digest() -> None:
    assert spark_job.rows_digest(_file_rows(ROWS), NAMES) == rows_digest(ROWS)
    changed = _file_rows(ROWS)
    changed[3]["f_0"] = 9503.500000001
    assert spark_job.rows_digest(changed, NAMES) != rows_digest(ROWS)
    # feature order in the file does not matter to the digest, names do
    assert spark_job.rows_digest(_file_rows(ROWS), ["x", *NAMES[1:]]) != rows_digest(ROWS)


def test_spark_logistic_scores_with_sparks_formula() -> None:
    model = SparkLogistic(tuple(NAMES), (0.5, -1.25, 2.0), -3.0, "4.3.0")
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [10.0, -4.0, 0.5]])
    got = model.predict_proba(x)
    for row, (p0, p1) in zip(x, got, strict=True):
        margin = 0.5 * row[0] - 1.25 * row[1] + 2.0 * row[2] - 3.0
        assert p1 == pytest.approx(1.0 / (1.0 + np.exp(-margin)), abs=1e-15)
        assert p0 + p1 == pytest.approx(1.0)
    # the agreement figures: exact agreement, and one decision across the threshold
    test = [{"features": dict(zip(NAMES, row, strict=True))} for row in x.tolist()]
    spark = [[i, float(p), float(p > 0.5)] for i, p in enumerate(got[:, 1])]
    same = compare(model, test, NAMES, spark, 0.5)
    assert same["holdout_max_abs_diff"] == 0.0 and same["holdout_decisions_differ"] == 0
    spark[0] = [0, 0.2, 0.0]
    worse = compare(model, test, NAMES, spark, 0.5)
    assert worse["holdout_max_abs_diff"] > 0.5 and worse["holdout_decisions_differ"] == 1


def test_a_missing_spark_virtualenv_names_the_install_command(tmp_path: Path) -> None:
    launcher = SparkLauncher(tmp_path / "no" / "python", tmp_path)
    with pytest.raises(ConfigError, match=r"infra/spark\.sh install"):
        launcher.check()


def test_the_backfill_refuses_what_it_cannot_recompute(tmp_path: Path) -> None:
    launcher = SparkLauncher(tmp_path / "python", tmp_path)
    with pytest.raises(SparkUnsupported, match="payment_aggregates"):
        SparkBackfill(launcher).check(MARKET_BARS)
    side = dataclasses.replace(Windowing(), late_mode="side")
    with pytest.raises(SparkUnsupported, match="late_mode"):
        SparkBackfill(launcher, side).check(PAYMENT_AGGREGATES)
    with pytest.raises(InvalidInput, match="hub lake export --topic payments"):
        SparkBackfill(launcher).recompute(PAYMENT_AGGREGATES, {})
