"""The ML feature views' functions as Flink's Python workers load them (``WORKER_MODULE`` of
``ml.flink_features``, named in the job spec; ``projections.flink.job.register_features``):
``ml.flink_features``' own, with each scored event's vector folded in an in-memory SQLite feature
store (an adapter: built here, in the application layer)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from adapters.sqlite_features import SqliteFeatureStore
from domain.features import FeatureView
from ml import flink_features
from ml.flink_features import Fact, extract_rows, view_named

__all__ = ["extract_rows", "vector_of", "view_named"]


def vector_of(view: FeatureView, event: Mapping[str, Any], facts: Iterable[Fact]) -> dict[str, Any]:
    """``ml.flink_features.vector_of`` over a new in-memory store per scored event."""
    return flink_features.vector_of(view, event, facts, lambda: SqliteFeatureStore(":memory:"))
