"""Online attribute fetch for one entity: Feast's online store (after ``materialize``) beside the
embedded SqliteFeatureStore's indexed read of the same attribute versions, same run, same data
(500 accounts, 3 KYC versions each). Reported as p99 in ms and the ratio to the SQLite read.

Run: ``.venv/bin/pytest benchmarks/test_bench_feast.py -q -s`` (``make bench`` runs it too).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np

from adapters.sqlite_features import SqliteFeatureStore
from benchmarks.conftest import Report
from core.ports.ml import AttributeVersion

CALLS = int(os.environ.get("FEAST_BENCH_CALLS", "500"))
ACCOUNTS = 500
GROUP = "feast online fetch"
KEY = b"k" * 32  # the rows' MAC key


def _versions() -> list[AttributeVersion]:
    rng = random.Random(3)
    out = []
    for a in range(ACCOUNTS):
        for i, kyc in enumerate(("BASIC", "STANDARD", "ENHANCED")):
            risk = rng.choice(("LOW", "MEDIUM", "HIGH"))
            out.append(
                AttributeVersion(
                    "account", f"ACC-{a:05d}", 1_000 + i * 1_000, {"kyc": kyc, "risk": risk}
                )
            )
    return out


def _p99_ms(samples: list[float]) -> float:
    return float(np.percentile(np.array(samples) * 1000, 99))


def test_feast_online_fetch_vs_sqlite(tmp_path: Path, report: Report) -> None:
    from adapters.feast_features import FeastFeatureStore

    versions = _versions()
    sqlite = SqliteFeatureStore(tmp_path / "f.sqlite")
    sqlite.apply([], versions, {})
    feast = FeastFeatureStore(tmp_path / "feast", row_key=KEY)
    feast.apply([], versions, {})
    feast.materialize()
    rng = random.Random(5)
    keys = [f"ACC-{rng.randrange(ACCOUNTS):05d}" for _ in range(CALLS)]
    now = 10**9
    assert feast.online_attributes("account", keys[:1]) == sqlite.attributes(
        "account", keys[:1], now
    )

    def timed(fetch: object) -> list[float]:
        out = []
        for key in keys:
            t = time.perf_counter()
            fetch(key)  # type: ignore[operator]
            out.append(time.perf_counter() - t)
        return out

    base = timed(lambda k: sqlite.attributes("account", [k], now))
    online = timed(lambda k: feast.online_attributes("account", [k]))
    report.add(
        GROUP,
        "SqliteFeatureStore.attributes, 1 entity",
        _p99_ms(base),
        "ms p99",
        higher_is_better=False,
    )
    report.add(
        GROUP,
        "Feast online store (SQLite), 1 entity",
        _p99_ms(online),
        "ms p99",
        baseline="SqliteFeatureStore.attributes, 1 entity",
        higher_is_better=False,
    )
    sqlite.close()
    feast.close()
