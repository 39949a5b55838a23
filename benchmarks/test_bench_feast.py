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
    sqlite = SqliteFeatureStore(tmp_path / "f.sqlite", mac_key=KEY)
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


def test_feast_scoring_read_verified_vs_unverified(tmp_path: Path, report: Report) -> None:
    """The scoring read (``attribute_state``: Feast's online rows, each MAC checked against the
    process's index) beside the read it replaced (the same Feast online fetch of the value
    fields alone, unverified), same store and data; a batch of 100 accounts and one account,
    the median of interleaved rounds (CPU noise here is one-sided)."""
    from adapters.feast_features import FeastFeatureStore

    feast = FeastFeatureStore(tmp_path / "feast", row_key=KEY)
    feast.apply([], _versions(), {})
    rng = random.Random(7)
    names = [f"ACC-{a:05d}" for a in range(ACCOUNTS)]
    later = 10**9
    assert feast.attribute_state("account", names[:1], later, later)  # registers, writes online

    def unverified(batch: list[str]) -> None:
        feast.feast.get_online_features(
            features=["account:kyc", "account:risk"], entity_rows=[{"entity": e} for e in batch]
        ).to_dict()

    def verified(batch: list[str]) -> None:
        got = feast.attribute_state("account", batch, later, later)
        assert len(got) == len(batch)

    for size in (100, 1):
        old: list[float] = []
        new: list[float] = []
        for _ in range(max(CALLS // size, 40)):
            batch = rng.sample(names, size)
            for fn, out in ((unverified, old), (verified, new)):
                t = time.perf_counter()
                fn(batch)
                out.append(time.perf_counter() - t)
        base = f"Feast online fetch, unverified, {size} entities"
        report.add(GROUP, base, float(np.median(old)) * 1000, "ms p50", higher_is_better=False)
        report.add(
            GROUP,
            f"attribute_state, MAC verified, {size} entities",
            float(np.median(new)) * 1000,
            "ms p50",
            baseline=base,
            higher_is_better=False,
        )
    assert feast.refused == 0
    feast.close()
