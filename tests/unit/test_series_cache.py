"""The in-memory series cache answers exactly as the store it caches (``ml.series_cache``):
random histories (late points, equal times, several writers, one of them behind the cache's
back), random half-open windows whose edges fall on point times, evictions under a small bound."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.sqlite_features import SqliteFeatureStore
from core.ports.eventlog import TopicPartition
from core.ports.ml import AttributeVersion, SeriesPoint
from domain.features import PAYMENT_RISK
from ml.features import FeatureEngine, entity_key
from ml.series_cache import CachedFeatureStore

TABLE_KEY = b"t" * 32  # the feature table rows' MAC key (the hub derives its own)

ENTITIES = [f"E{i}" for i in range(12)]


def _batch(
    rng: random.Random, times: list[int]
) -> tuple[list[SeriesPoint], list[AttributeVersion]]:
    points = []
    for _ in range(rng.randint(0, 40)):
        t = rng.choice(times) if times and rng.random() < 0.3 else rng.randint(0, 10_000)
        times.append(t)  # equal times on purpose: ties keep the order applied
        series = rng.choice(["payments", "payments", "other"])
        points.append(SeriesPoint(series, rng.choice(ENTITIES), t, float(rng.randint(1, 999))))
    versions = [
        AttributeVersion(
            "accounts",
            rng.choice(ENTITIES),
            rng.choice(times) if times else rng.randint(0, 10_000),
            {
                "kyc_level": rng.choice(["BASIC", "STANDARD", "ENHANCED", None]),
                "risk_rating": rng.choice(["LOW", "HIGH", None]),
            },
        )
        for _ in range(rng.randint(0, 4))
    ]
    return points, versions


def _columns(got: tuple[object, object, object]) -> list[list[float]]:
    return [np.asarray(a).tolist() for a in got]


@pytest.mark.parametrize("seed", range(4))
def test_the_cache_answers_as_the_store_on_random_histories(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "f.sqlite"
    store = SqliteFeatureStore(path, mac_key=TABLE_KEY)
    # another process's feed, unseen by the cache
    other_writer = SqliteFeatureStore(path, mac_key=TABLE_KEY)
    cache = CachedFeatureStore(
        SqliteFeatureStore(path, mac_key=TABLE_KEY), max_points=rng.choice([25, 80, 10_000])
    )
    times: list[int] = []
    offset = 0
    try:
        for _ in range(15):
            points, versions = _batch(rng, times)
            writer = cache if rng.random() < 0.5 else other_writer
            tp = TopicPartition("t", 0)
            writer.apply(points, versions, {tp: offset + 1}, {tp: offset})
            offset += 1
            for _ in range(6):
                asked = rng.sample(ENTITIES, rng.randint(1, len(ENTITIES)))
                edges = [*rng.sample(times, 2), rng.randint(0, 10_001)] if times else [0, 1]
                start, end = sorted(rng.sample(edges, 2))
                name = rng.choice(["payments", "other", "absent"])
                want = store.series_columns(name, asked, start, end)
                assert _columns(cache.series_columns(name, asked, start, end)) == _columns(want)
                assert cache.series(name, asked, start, end) == store.series(
                    name, asked, start, end
                )
                assert cache.attribute_versions("accounts", asked, end) == (
                    store.attribute_versions("accounts", asked, end)
                )
                assert cache.attribute_state("accounts", asked, start, end) == (
                    store.attribute_state("accounts", asked, start, end)
                )
                assert cache.attributes("accounts", asked, end) == (
                    store.attributes("accounts", asked, end)
                )
        assert cache.hits > 0 and cache.misses > 0
        assert cache.size <= cache.max_points
    finally:
        for s in (store, other_writer, cache):
            s.close()


def test_feature_vectors_through_the_cache_equal_the_stores(tmp_path: Path) -> None:
    """What scoring reads: the payment-risk matrix, events at a point's exact time included
    (the point itself is not in its own window: strictly before)."""
    rng = random.Random(7)
    path = tmp_path / "f.sqlite"
    LOW_BASIC: dict[str, str | None] = {"kyc_level": "BASIC", "risk_rating": "LOW"}

    def key(account: str) -> str:
        return entity_key("default", account)

    ids = [f"ACC-{rng.randrange(30)}" for _ in range(600)]
    points = [SeriesPoint("payments", key(a), rng.randint(0, 3 * 3600 * 10**6), 1.0) for a in ids]
    versions = [AttributeVersion("accounts", key(f"ACC-{a}"), 0, LOW_BASIC) for a in range(30)]
    plain = SqliteFeatureStore(path, mac_key=TABLE_KEY)
    plain.apply(points, versions, {})
    cache = CachedFeatureStore(SqliteFeatureStore(path, mac_key=TABLE_KEY), max_points=300)
    events: list[dict[str, Any]] = [
        {
            "payment_id": f"P{i}",
            "account_id": ids[i],
            "amount": "12.50",
            "counterparty_country": "GB",
            "initiated_at": p.time_us + rng.choice([0, 0, 1, -1]),
        }
        for i, p in enumerate(points[:200])
    ]
    try:
        want = FeatureEngine(PAYMENT_RISK, plain).matrix(events)
        for _ in range(2):  # cold (misses), then warm (hits)
            assert FeatureEngine(PAYMENT_RISK, cache).matrix(events).tolist() == want.tolist()
        later = [
            SeriesPoint("payments", key(e["account_id"]), e["initiated_at"] - 5, 3.0)
            for e in events
        ]
        plain.apply(later[:50], [], {})  # written behind the cache's back: seen on the next read
        want = FeatureEngine(PAYMENT_RISK, plain).matrix(events)
        assert FeatureEngine(PAYMENT_RISK, cache).matrix(events).tolist() == want.tolist()
    finally:
        plain.close()
        cache.close()


def test_a_write_between_catch_up_and_a_miss_is_not_counted_twice(tmp_path: Path) -> None:
    """Another writer applies between the cache's catch-up and its read of a missing entity:
    that read already holds the new point, so the next catch-up must not add it again."""
    path = tmp_path / "f.sqlite"
    other = SqliteFeatureStore(path, mac_key=TABLE_KEY)
    other.apply([SeriesPoint("payments", "A", 10, 1.0)], [], {})

    class Racing(SqliteFeatureStore):
        raced = False

        def series_history(self, name: str, entities: list[str]):  # type: ignore[no-untyped-def, override]
            if not self.raced:
                self.raced = True
                other.apply([SeriesPoint("payments", "A", 20, 2.0)], [], {})
            return super().series_history(name, entities)

    cache = CachedFeatureStore(Racing(path, mac_key=TABLE_KEY))
    try:
        other.apply([SeriesPoint("payments", "B", 5, 1.0)], [], {})  # moves the token
        assert cache.series("payments", ["A"], 0, 100) == {"A": [(10, 1.0), (20, 2.0)]}
        other.apply([SeriesPoint("payments", "A", 30, 3.0)], [], {})
        assert cache.series("payments", ["A"], 0, 100) == {"A": [(10, 1.0), (20, 2.0), (30, 3.0)]}
    finally:
        other.close()
        cache.close()
