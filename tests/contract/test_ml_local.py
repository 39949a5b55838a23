"""The ML port contracts against the embedded adapters: SQLite feature store, local registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.local_models import LocalModelRegistry
from adapters.sqlite_features import SqliteFeatureStore
from core.ports.ml import FeatureStore, ModelRegistry
from tests.contract.ml_contract import FeatureStoreContract, ModelRegistryContract, Reopen

KEY = b"k" * 32  # the Feast rows' MAC key (the hub derives its own: hub.ml_setup)


class TestSqliteFeatureStore(FeatureStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FeatureStore]:
        self._opened: list[FeatureStore] = [SqliteFeatureStore(tmp_path / "f.sqlite", mac_key=KEY)]
        yield self._opened[0]
        for s in self._opened:
            s.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(store: FeatureStore) -> FeatureStore:
            store.close()
            fresh = SqliteFeatureStore(tmp_path / "f.sqlite", mac_key=KEY)
            self._opened.append(fresh)
            return fresh

        return reopen


class TestCachedFeatureStore(FeatureStoreContract):
    """The same contract through the in-memory series cache (``ml.series_cache``), with a bound
    small enough that entries are evicted and read from the store again."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FeatureStore]:
        from ml.series_cache import CachedFeatureStore

        first = CachedFeatureStore(
            SqliteFeatureStore(tmp_path / "f.sqlite", mac_key=KEY), max_points=16
        )
        self._opened: list[FeatureStore] = [first]
        yield first
        for s in self._opened:
            s.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        from ml.series_cache import CachedFeatureStore

        def reopen(store: FeatureStore) -> FeatureStore:
            store.close()
            fresh = CachedFeatureStore(
                SqliteFeatureStore(tmp_path / "f.sqlite", mac_key=KEY), max_points=16
            )
            self._opened.append(fresh)
            return fresh

        return reopen


class TestLocalModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self, tmp_path: Path) -> Iterator[ModelRegistry]:
        r = LocalModelRegistry(tmp_path / "models")
        yield r
        r.close()


class TestMlflowModelRegistry(ModelRegistryContract):
    """The same contract on MLflow's embedded SQLite store (no server)."""

    @pytest.fixture
    def registry(self, tmp_path: Path) -> Iterator[ModelRegistry]:
        from adapters.mlflow_models import MlflowModelRegistry, embedded_uri

        r = MlflowModelRegistry(embedded_uri(tmp_path), tmp_path / "mlflow-artifacts")
        yield r
        r.close()


class TestFeastFeatureStore(FeatureStoreContract):
    """The same contract with Feast serving the attributes (point-in-time join over Parquet)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FeatureStore]:
        from adapters.feast_features import FeastFeatureStore

        self._opened: list[FeatureStore] = [FeastFeatureStore(tmp_path / "feast", row_key=KEY)]
        yield self._opened[0]
        for s in self._opened:
            s.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        from adapters.feast_features import FeastFeatureStore

        def reopen(store: FeatureStore) -> FeatureStore:
            store.close()
            fresh = FeastFeatureStore(tmp_path / "feast", row_key=KEY)
            self._opened.append(fresh)
            return fresh

        return reopen


def test_feast_online_store_serves_the_latest_values_after_materialize(tmp_path: Path) -> None:
    from adapters.feast_features import FeastFeatureStore
    from core.ports.ml import AttributeVersion

    store = FeastFeatureStore(tmp_path / "feast", row_key=KEY)
    store.apply(
        [],
        [
            AttributeVersion("acc", "A", 100, {"kyc": "BASIC", "risk": "LOW"}),
            AttributeVersion("acc", "A", 200, {"kyc": None, "risk": "HIGH"}),
            AttributeVersion("acc", "B", 150, {"kyc": "ENHANCED", "risk": "LOW"}),
        ],
        {},
    )
    store.materialize()
    assert store.online_attributes("acc", ["A", "B", "Z"]) == {
        "A": {"kyc": "BASIC", "risk": "HIGH"},
        "B": {"kyc": "ENHANCED", "risk": "LOW"},
    }
    store.close()


def test_feast_redis_online_store(tmp_path: Path) -> None:
    """The distributed online store: Feast on the Redis server ``infra/redis.sh`` runs (started
    if needed; skipped loudly locally when it cannot start, required under CI)."""
    import subprocess

    from adapters.feast_features import FeastFeatureStore
    from core.ports.ml import AttributeVersion
    from tests import infra

    infra.require("redis", "the Feast Redis online-store test")
    url = subprocess.run(
        ["bash", str(infra.script("redis")), "url"], capture_output=True, text=True, check=True
    ).stdout.strip()
    store = FeastFeatureStore(tmp_path / "feast", row_key=KEY, online="redis", redis_url=url)
    entity = f"R-{tmp_path.name}"
    store.apply([], [AttributeVersion("acc", entity, 100, {"kyc": "BASIC", "risk": "LOW"})], {})
    store.materialize()
    assert store.online_attributes("acc", [entity]) == {entity: {"kyc": "BASIC", "risk": "LOW"}}
    store.close()
