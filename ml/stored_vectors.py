"""Streaming scoring's feature vectors read from the ``FeatureVectors`` table instead of computed
(``HUB_FEATURE_ENGINE=flink``).

Flink's feature job (``ml.flink_features``) computes one vector per scored event of a view, as
of the event's own time, with the embedded engine's own code; `hub projection run --engine
flink` loads them into the table with the source positions they are complete through
(``FeatureVectors.covers``). The scoring consumer (``ml.scoring.ScoringConsumer``) then scores a
record only once its partition of the view's event topic is covered past it, and takes the
record's vector by its (partition, offset): the score is the one the embedded features give on
the same events (``tests/differential/test_flink_features.py``), without a feature store in the
scoring process. Records past the coverage wait for the next load (the consumer's lag).

A covered scored event without a stored vector, or with one of another entity or time (vectors
of another log, or a forged result topic), is refused with ``Conflict`` naming the event;
nothing of its batch is committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import Conflict
from core.ports.eventlog import TopicPartition
from core.ports.ml import FeatureVectors
from domain.features import FeatureView
from ml.features import to_us


class StoredVectors:
    """One view's vectors in a ``FeatureVectors`` table, as the scoring consumer reads them."""

    def __init__(self, view: FeatureView, store: FeatureVectors) -> None:
        self.view = view
        self.store = store

    def covered(self, partition: int) -> int:
        """The offset of the view's event topic ``partition`` below which every scored event's
        vector is stored (0 before any load)."""
        covers = self.store.covers(self.view.name)
        return covers.get(TopicPartition(self.view.event_topic, partition), 0)

    def matrix(
        self, partition: int, offsets: Sequence[int], events: Sequence[Mapping[str, Any]]
    ) -> NDArray[Any]:
        """The stored vectors of ``events`` (at ``offsets`` of ``partition``) as a float64 matrix,
        columns in ``view.names`` order (what ``FeatureEngine.matrix`` gives)."""
        view = self.view
        found = self.store.at(view.name, [(partition, o) for o in offsets])
        rows = [found.get((partition, o)) for o in offsets]
        for offset, event, row in zip(offsets, events, rows, strict=True):
            self._check(partition, offset, event, row)
        if not rows:
            return np.empty((0, len(view.names)), dtype=np.float64)
        pick = itemgetter(*view.names)
        return np.array([pick(r["features"]) for r in rows if r], dtype=np.float64).reshape(
            len(rows), len(view.names)
        )

    def _check(
        self, partition: int, offset: int, event: Mapping[str, Any], row: Mapping[str, Any] | None
    ) -> None:
        """``Conflict`` unless ``row`` is the stored vector of ``event`` (module docstring)."""
        view = self.view
        entity, at = event.get(view.entity_field), event.get(view.time_field)
        if (
            row is not None
            and row["entity"] == entity
            and at is not None
            and row["time_us"] == to_us(at)
        ):
            return
        where = f"{view.event_topic}/{partition} offset {offset}"
        if row is None:
            raise Conflict(
                f"The scored event at {where} has no stored vector of view {view.name!r}, "
                f"though the vectors cover that partition to offset "
                f"{self.covered(partition)}: Flink's feature job skips an event without "
                f"{view.entity_field!r} or {view.time_field!r} (the embedded engine refuses "
                "it too), or its vector was deleted. Load the vectors again (`hub projection "
                "run --engine flink`) or score with HUB_FEATURE_ENGINE=embedded."
            )
        raise Conflict(
            f"The stored vector at {where} is for {row['entity']!r} at {row['time_us']} "
            f"us, but the event there is for {entity!r} at {at!r}: the vectors table "
            "holds another log's vectors. Delete the view's rows and load them again "
            "(`hub projection run --engine flink`)."
        )
