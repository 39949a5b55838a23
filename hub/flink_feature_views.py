"""The ML feature views as companions of the Flink projection engine (``projections.flink.
service.Companion``): ``projections`` may not import ``ml``, so the application layer hands the
engine these, and ``hub projection run --engine flink`` runs the views' jobs with the
projections (named ``features.<view>``; ``--all`` takes them all).

Per view: the job is ``ml.flink_features.compile_features`` reading with the consumer group
``features.flink.<view>``; ``load`` folds the vectors the job wrote to ``flink.features.<view>``
into the hub's ``FeatureVectors`` table (``hub.ml_setup.feature_vectors``), where a training set
takes them (``hub ml train NAME --vectors flink``), in these steps:
1. read the group's committed offsets (Flink commits them on each completed checkpoint, after
   flushing the vectors of the records below them; after a bounded run the hub commits the end
   offsets it saw before the job): what the vectors loaded in 2 are complete through;
2. read the result topic from the stored position to its end and store the newest vector per
   scored event, the new position and the offsets of 1 in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import TopicNotFound
from core.ports.eventlog import EventLog, TopicPartition
from core.ports.ml import FeatureVectors
from domain.features import VIEWS, FeatureView
from ml.flink_features import (
    FeatureVectorLoader,
    compile_features,
    result_topic,
    vectors_digest,
    view_topics,
)
from projections.flink.compile import FlinkPlacement, JobSpec

PREFIX = "features."


class FlinkFeatureView:
    """One feature view's Flink job, its loader and its place in the status."""

    def __init__(
        self, view: FeatureView, log: EventLog, vectors: FeatureVectors, row_key: bytes | None
    ) -> None:
        self.view = view
        self.name = PREFIX + view.name
        self.group = f"features.flink.{view.name}"
        self.topics: Sequence[str] = view_topics(view)
        self.log = log
        self.vectors = vectors
        self._loader = FeatureVectorLoader(log, row_key=row_key)  # refuses unMACed vectors

    def compile(self, at: FlinkPlacement, group: str) -> JobSpec:
        spec: JobSpec = compile_features(self.view, at, group)
        return spec

    def prepare(self) -> None:
        self._loader.ensure_topic(self.view)

    def load(self) -> dict[str, Any]:
        covers: dict[TopicPartition, int] = {}
        for topic in self.topics:  # 1.
            committed = self.log.committed(self.group, topic)
            covers |= {TopicPartition(topic, p): o for p, o in committed.items()}
        loader = self._loader
        before = (loader.refused, loader.stale, loader.repeated, loader.ignored_tombstones)
        read = loader.load_into(self.view, self.vectors, covers)  # 2.
        rows = self.vectors.rows(self.view.name)
        # vectors that failed authentication (none from the hub's own job), genuine ones older
        # than the stored (a replay, or a re-run catching up), the same again (a restart), and
        # unsigned tombstones: the first of each logged by the loader
        return {
            "read": read,
            "vectors": len(rows),
            "digest": vectors_digest(rows),
            "refused_vectors": loader.refused - before[0],
            "stale_vectors": loader.stale - before[1],
            "repeated_vectors": loader.repeated - before[2],
            "ignored_tombstones": loader.ignored_tombstones - before[3],
        }

    def loader(self) -> dict[str, Any]:
        topic = result_topic(self.view)
        at = self.vectors.position(self.view.name)
        try:
            ends = self.log.end_offsets(topic)
        except TopicNotFound:
            return {"positions": {}, "lag": 0}
        lag = sum(max(0, end - at) for end in ends.values())
        return {"positions": {f"{topic}/{p}": at for p in ends}, "lag": lag}


def feature_views(
    log: EventLog, vectors: FeatureVectors, row_key: bytes | None
) -> list[FlinkFeatureView]:
    """Every ML feature view as a companion job; ``row_key`` the key of its vectors' MACs (the
    one the hub's Flink launcher gives the jobs; None: every vector is refused)."""
    return [FlinkFeatureView(v, log, vectors, row_key) for v in VIEWS.values()]
