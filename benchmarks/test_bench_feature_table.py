"""The scoring read of the embedded feature table (``FeatureEngine.matrix`` on a file
SqliteFeatureStore: 2,000 accounts x 40 payments and a KYC version each) with every row's MAC
checked, beside the same store and data with the checks switched off (the read as it was before
the MACs, plus fetching the ``mac`` column), same run, interleaved rounds, median. Also through
``CachedFeatureStore`` (the default, ``HUB_FEATURE_CACHE_POINTS``): warm, the rows were checked
once when the cache was filled.

Run: ``.venv/bin/pytest benchmarks/test_bench_feature_table.py -q -s``
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from adapters.sqlite_features import SqliteFeatureStore
from benchmarks.conftest import Report
from core.ports.ml import AttributeVersion, FeatureStore, SeriesPoint
from domain.features import HOUR_US, PAYMENT_RISK
from ml.features import FeatureEngine, entity_key, to_us
from ml.series_cache import CachedFeatureStore

ROUNDS = int(os.environ.get("FEATURE_TABLE_BENCH_ROUNDS", "7"))
ACCOUNTS = 2000
T0 = to_us("2026-11-24T00:00:00Z")
GROUP = "feature table read"
KEY = b"k" * 32


class _Unchecked(SqliteFeatureStore):
    """The baseline: the same reads, no MAC checked."""

    def _check_point(self, *args: Any) -> None:
        pass

    def _check_version(self, *args: Any) -> None:
        pass


def account_facts() -> tuple[list[SeriesPoint], list[AttributeVersion]]:
    """Payments (40 an account over two days) and one KYC version for each of ``ACCOUNTS``
    accounts, the same every run (the scoring benchmarks fold them too)."""
    rng = random.Random(1)
    points = [
        SeriesPoint(
            "payments",
            entity_key("default", f"ACC-{a:05d}"),
            T0 + rng.randint(0, 48 * HOUR_US),
            float(rng.randint(100, 1_200_000)) / 100,
        )
        for a in range(ACCOUNTS)
        for _ in range(40)
    ]
    versions = [
        AttributeVersion(
            "accounts",
            entity_key("default", f"ACC-{a:05d}"),
            T0 - 100 * HOUR_US,
            {"kyc_level": rng.choice(["BASIC", "STANDARD"]), "risk_rating": "LOW"},
        )
        for a in range(ACCOUNTS)
    ]
    return points, versions


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "payment_id": f"B-{i}",
            "account_id": f"ACC-{rng.randrange(ACCOUNTS):05d}",
            "amount": "10.00",
            "counterparty_country": "GB",
            "initiated_at": T0 + 24 * HOUR_US + rng.randint(0, 24 * HOUR_US),
        }
        for i in range(n)
    ]


def _report_pair(report: Report, times: dict[str, list[float]], base: str, new: str) -> None:
    """The median read time of the old way (the baseline) and of the new one beside it, in ms."""
    report.add(GROUP, base, float(np.median(times["old"])) * 1000, "ms", higher_is_better=False)
    report.add(
        GROUP,
        new,
        float(np.median(times["new"])) * 1000,
        "ms",
        baseline=base,
        higher_is_better=False,
    )


def test_checked_read_vs_unchecked(tmp_path: Path, report: Report) -> None:
    path = tmp_path / "features.sqlite"
    points, versions = account_facts()
    checked = SqliteFeatureStore(path, mac_key=KEY)
    checked.apply(points, versions, {})
    unchecked = _Unchecked(path, mac_key=KEY)
    stores: list[tuple[str, FeatureStore, FeatureStore]] = [
        ("", unchecked, checked),
        (", cached (warm)", CachedFeatureStore(unchecked), CachedFeatureStore(checked)),
    ]
    for label, old_store, new_store in stores:
        old, new = FeatureEngine(PAYMENT_RISK, old_store), FeatureEngine(PAYMENT_RISK, new_store)
        for size, reps in ((1, 200), (100, 10), (2000, 2)):
            events = _events(size, size)
            assert np.array_equal(old.matrix(events), new.matrix(events))  # also warms a cache
            times: dict[str, list[float]] = {"old": [], "new": []}
            for r in range(ROUNDS):
                order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
                for which, engine in order:
                    t = time.perf_counter()
                    for _ in range(reps):
                        engine.matrix(events)
                    times[which].append((time.perf_counter() - t) / reps)
            _report_pair(
                report,
                times,
                f"unchecked, {size} events{label}",
                f"MAC checked, {size} events{label}",
            )
    assert checked.refused == 0
    checked.close()
    unchecked.close()


class _Uncounted(SqliteFeatureStore):
    """The baseline of the deletion checks (s19): the same reads and MACs, no entity's rows
    counted against its head, no table totals."""

    def _match(self, *args: Any) -> None:
        pass

    def _check_totals(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_counted_read_vs_uncounted(tmp_path: Path, report: Report) -> None:
    """The per-read cost of the deletion checks: each read entity's rows (all times) counted
    and its head's MAC checked, beside the same store without them; uncached (each read goes to
    SQLite: ``HUB_FEATURE_CACHE_POINTS=0``) and the cache's miss path (``series_history`` and
    ``versions_history`` of every entity a batch reads, a fresh cache each time)."""
    path = tmp_path / "features.sqlite"
    points, versions = account_facts()
    counted = SqliteFeatureStore(path, mac_key=KEY)
    for i in range(0, len(points), 2000):  # as the feed applies: batch by batch
        counted.apply(points[i : i + 2000], versions[i // 40 : (i + 2000) // 40], {})
    uncounted = _Uncounted(path, mac_key=KEY)
    for label, cold in (("", False), (", cache misses", True)):
        for size, reps in ((1, 200), (100, 10), (2000, 2)):
            events = _events(size, size)

            times: dict[str, list[float]] = {"old": [], "new": []}
            for r in range(ROUNDS):
                order = [("old", uncounted), ("new", counted)]
                for which, store in order if r % 2 == 0 else order[::-1]:
                    t = time.perf_counter()
                    for _ in range(reps):
                        read = CachedFeatureStore(store) if cold else store
                        FeatureEngine(PAYMENT_RISK, read).matrix(events)
                    times[which].append((time.perf_counter() - t) / reps)
            _report_pair(
                report,
                times,
                f"uncounted, {size} events{label}",
                f"rows counted against heads, {size} events{label}",
            )
    assert counted.resets == 0
    counted.close()
    uncounted.close()
