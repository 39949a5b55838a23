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
   scored event and the new position in one transaction (the covers as they were);
3. check the offsets of 1 against the stored vectors (``_verified``): anyone with group access
   moves the group (``kafka-consumer-groups --reset-offsets``), and the group is not the hub's
   to vouch for. On the view's event topic the covers grow only as far as every scored event
   below them has a stored vector (the first one without caps them: the move is named in the
   result's ``covers_refused`` and logged); no cover ever moves back. Then store the covers.
   A scored event whose vector 2 left out as its erased subject's (``ml.erased``: the loader
   asks it with the event's tenant) needs none: it does not cap the covers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import TopicNotFound
from core.ports.eventlog import EventLog, TopicPartition
from core.ports.ml import FeatureVectors
from domain.envelope import H_TYPE
from domain.features import VIEWS, FeatureView
from ml.erased import NONE_ERASED, ErasedIn
from ml.flink_features import (
    FeatureVectorLoader,
    compile_features,
    result_topic,
    vectors_digest,
    view_topics,
)
from ml.offsets import Move
from projections.flink.compile import FlinkPlacement, JobSpec

log = logging.getLogger(__name__)

PREFIX = "features."


class FlinkFeatureView:
    """One feature view's Flink job, its loader and its place in the status."""

    def __init__(
        self,
        view: FeatureView,
        log: EventLog,
        vectors: FeatureVectors,
        row_key: bytes | None,
        erased: ErasedIn = NONE_ERASED,
    ) -> None:
        self.view = view
        self.name = PREFIX + view.name
        self.group = f"features.flink.{view.name}"
        self.topics: Sequence[str] = view_topics(view)
        self.log = log
        self.vectors = vectors
        # refuses unMACed vectors, and leaves an erased subject's out (the topic keeps them)
        self._loader = FeatureVectorLoader(log, row_key=row_key, erased=erased)

    def compile(self, at: FlinkPlacement, group: str) -> JobSpec:
        spec: JobSpec = compile_features(self.view, at, group)
        return spec

    def prepare(self) -> None:
        self._loader.ensure_topic(self.view)

    def load(self) -> dict[str, Any]:
        claimed: dict[TopicPartition, int] = {}
        for topic in self.topics:  # 1.
            committed = self.log.committed(self.group, topic)
            claimed |= {TopicPartition(topic, p): o for p, o in committed.items()}
        loader = self._loader
        before = (
            loader.refused,
            loader.stale,
            loader.repeated,
            loader.ignored_tombstones,
            loader.erased_vectors,
            loader.gone_vectors,
        )
        stored = self.vectors.covers(self.view.name)
        read = loader.load_into(self.view, self.vectors, stored)  # 2.
        covers, refused = self._verified(stored, claimed)  # 3.
        if covers != stored:
            self.vectors.apply(
                self.view.name, [], [], self.vectors.position(self.view.name), covers
            )
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
            # an erased subject's vectors the topic still holds, and vectors of events no longer
            # on the log (their tenant unknown) once anything was erased: not loaded
            "erased_vectors": loader.erased_vectors - before[4],
            "gone_vectors": loader.gone_vectors - before[5],
            "covers_refused": [m.as_dict() for m in refused],
        }

    def _verified(
        self, stored: Mapping[TopicPartition, int], claimed: Mapping[TopicPartition, int]
    ) -> tuple[dict[TopicPartition, int], list[Move]]:
        """The covers the stored vectors back (step 3), and the group moves refused."""
        out = dict(stored)
        refused = []
        for tp, found in sorted(claimed.items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
            have = stored.get(tp)
            if have is not None and found < have:
                self._say("rewind", tp, have, found)
                continue
            if have == found:
                continue
            if tp.topic != self.view.event_topic:  # facts topics: nothing here to check
                out[tp] = found
                continue
            gap = self._first_without_vector(tp.partition, have or 0, found)
            out[tp] = found if gap is None else gap
            if gap is not None:
                refused.append(Move(tp.topic, tp.partition, gap, found))
                self._say("forward", tp, gap, found)
        return out, refused

    def _first_without_vector(self, partition: int, start: int, end: int) -> int | None:
        """The offset of the first scored event in [start, end) without a stored vector."""
        topic, event_type = self.view.event_topic, self.view.event_type.encode()
        offset = start
        while offset < end:
            records = [r for r in self.log.read(topic, partition, offset, 1000) if r.offset < end]
            if not records:
                return None
            wanted = [
                r.offset for r in records if r.value is not None and r.header(H_TYPE) == event_type
            ]
            found = self.vectors.at(self.view.name, [(partition, o) for o in wanted])
            left_out = self._loader.erased_keys  # an erased subject's: no vector is due
            for o in wanted:
                if (partition, o) not in found and (partition, o) not in left_out:
                    return o
            offset = records[-1].offset + 1
        return None

    def _say(self, direction: str, tp: TopicPartition, expected: int, found: int) -> None:
        log.warning(
            "consumer group %s offset of %s/%d: %s (vectors cover %d, group %d); %s",
            self.group,
            tp.topic,
            tp.partition,
            direction,
            expected,
            found,
            "kept the covers"
            if direction == "rewind"
            else "reset the group to the covered offset and run the job again",
            extra={
                "group": self.group,
                "topic": tp.topic,
                "partition": tp.partition,
                "direction": direction,
                "expected": expected,
                "found": found,
            },
        )

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
    log: EventLog,
    vectors: FeatureVectors,
    row_key: bytes | None,
    erased: ErasedIn = NONE_ERASED,
) -> list[FlinkFeatureView]:
    """Every ML feature view as a companion job; ``row_key`` the key of its vectors' MACs (the
    one the hub's Flink launcher gives the jobs; None: every vector is refused); ``erased``
    the hub's erasures (``ml.erased``: the loaders leave an erased subject's vectors out)."""
    return [FlinkFeatureView(v, log, vectors, row_key, erased) for v in VIEWS.values()]
