"""Builds the machine-learning service of a hub with its adapters (the embedded footprint: a
SQLite feature store and a local model registry under the data folder). Built on first use, so
commands that do not need it never import scikit-learn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from core.metrics import Metrics
    from core.ports.eventlog import EventLog
    from core.ports.ml import FeatureStore, FeatureVectors, ModelRegistry
    from governance.apikeys import ApiKeys
    from hub.settings import Settings
    from ingest.publish import EventReader, Publisher
    from ledger.service import Ledger
    from ml.service import MachineLearning
    from registry.service import SchemaRegistry


class Hub(Protocol):
    """What the ML service is built from: the parts of ``hub.bootstrap.Hub`` it uses (named
    here, not imported: the composition root imports this module for an erasure's ML step)."""

    settings: Settings
    log: EventLog
    registry: SchemaRegistry
    publisher: Publisher
    reader: EventReader
    keys: ApiKeys
    metrics: Metrics
    ledger: Ledger
    ml: Any


def ml_of(hub: Hub) -> MachineLearning:
    """The hub's ML service, built once."""
    if hub.ml is None:
        hub.ml = build_ml(hub)
    service: MachineLearning = hub.ml
    return service


def build_ml(hub: Hub) -> MachineLearning:
    from adapters.sqlite_features import SqliteFeatureStore
    from ml.service import MachineLearning
    from ml.spark_family import NAME as SPARK_LR
    from ml.spark_family import SparkLogisticFamily
    from projections.spark_launch import SparkLauncher

    ledger = hub.ledger
    folder = hub.settings.data_dir / "ml"
    spark = SparkLauncher(hub.settings.spark_python, folder / "spark", hub.settings.spark_master)

    def checkpoint() -> tuple[int, str]:
        ledger.sync(force_checkpoint=True)
        cp = ledger.store.latest_checkpoint()
        return (0, "") if cp is None else (cp.size, cp.root.hex())

    return MachineLearning(
        hub.log,
        hub.reader,
        hub.publisher,
        hub.registry,
        feature_store(hub),
        model_registry(hub),
        checkpoint,
        lambda: SqliteFeatureStore(":memory:"),
        ledger=ledger,
        identities=hub.keys,
        metrics=hub.metrics,
        families={SPARK_LR: SparkLogisticFamily(spark)},
        vectors=feature_vectors(hub) if hub.settings.feature_engine == "flink" else None,
    )


def feature_store(hub: Hub) -> FeatureStore:
    """The FeatureStore adapter the settings name (Feast is imported only when chosen: seconds)."""
    folder = hub.settings.data_dir / "ml"
    if hub.settings.feature_store == "feast":
        from adapters.feast_features import ROW_KEY_LABEL, FeastFeatureStore
        from adapters.sqlite_features import MAC_LABEL
        from hub.derived_secrets import derived_secret

        url = hub.settings.feature_redis_url
        refused = hub.metrics.feature_rows_refused
        return FeastFeatureStore(
            folder / "feast",
            row_key=derived_secret(hub.settings, ROW_KEY_LABEL),
            table_key=derived_secret(hub.settings, MAC_LABEL),
            online="redis" if url else "sqlite",
            redis_url=url,
            on_refused=lambda view, reason: refused.labels(view, reason).inc(),
        )
    from adapters.sqlite_features import MAC_LABEL, SqliteFeatureStore
    from hub.derived_secrets import derived_secret
    from ml.series_cache import CachedFeatureStore

    refused = hub.metrics.feature_rows_refused
    store = SqliteFeatureStore(
        folder / "features.sqlite",
        mac_key=derived_secret(hub.settings, MAC_LABEL),
        on_refused=lambda view, reason: refused.labels(view, reason).inc(),
    )
    points = hub.settings.feature_cache_points
    return CachedFeatureStore(store, max_points=points) if points else store


def feature_vectors(hub: Hub) -> FeatureVectors:
    """The offline vectors of the feature views computed on Flink (``hub.flink_feature_views``),
    beside the feature store: ``ml/vectors.sqlite``."""
    from adapters.sqlite_vectors import MAC_LABEL, SqliteFeatureVectors
    from hub.derived_secrets import derived_secret

    path = hub.settings.data_dir / "ml" / "vectors.sqlite"
    return SqliteFeatureVectors(path, mac_key=derived_secret(hub.settings, MAC_LABEL))


def model_registry(hub: Hub) -> ModelRegistry:
    """The ModelRegistry adapter the settings name (MLflow is imported only when chosen)."""
    folder = hub.settings.data_dir / "ml"
    if hub.settings.model_registry == "mlflow":
        from adapters.mlflow_models import MlflowModelRegistry, embedded_uri

        uri = hub.settings.mlflow_tracking_uri
        if not uri:
            (folder / "mlflow").mkdir(parents=True, exist_ok=True)
            uri = embedded_uri(folder / "mlflow")
        return MlflowModelRegistry(uri, folder / "mlflow" / "artifacts")
    from adapters.local_models import LocalModelRegistry

    return LocalModelRegistry(folder / "models")
