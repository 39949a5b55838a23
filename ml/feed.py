"""The feature feed: folds the topics a feature view reads into its FeatureStore, like a
projection (``core.projection``): each batch's points, versions and next offsets are stored in
ONE FeatureStore transaction, so a feed that crashes resumes exactly where its data ends.

Steps of ``catch_up`` per batch: 1. read decoded records of every source partition from the
stored position (PII masked: no feature reads it); 2. turn the records of the view's series and
attribute event types into points and versions (others are skipped), each under its record's
tenant and entity (``ml.features.entity_key``: the ``ce_tenant`` header, ``default`` without
one), so an entity id present in two tenants keeps two separate histories; an entity whose
data subject its tenant erased is left out (``ml.erased``: the erasure deleted its rows, and a
table folded again from the log start does not bring them back); 3. ``FeatureStore.apply``
with the partitions' next offsets.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from core.errors import Conflict, TopicNotFound
from core.ports.eventlog import EventLog, TopicPartition
from core.ports.ml import AttributeVersion, FeatureStore, SeriesPoint
from domain.features import FeatureView
from ml.erased import Erased, none_erased
from ml.features import DEFAULT_TENANT, entity_key, to_us


class Reader(Protocol):
    """Decodes stored records (``ingest.publish.EventReader``)."""

    def read(
        self, topic: str, partition: int, offset: int, limit: int = ..., *, mask_pii: bool = ...
    ) -> list[dict[str, Any]]: ...


def _number(value: Any) -> float | None:
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


class FeatureFeed:
    # the default for a feed made without ``__init__`` (``ml.flink_features`` calls ``extract``)
    _erased: Erased = staticmethod(none_erased)

    def __init__(
        self,
        view: FeatureView,
        log: EventLog,
        reader: Reader,
        store: FeatureStore,
        *,
        batch: int = 2000,
        erased: Erased = none_erased,
    ) -> None:
        self.view = view
        self._erased = erased
        self._log = log
        self._reader = reader
        self.store = store
        self._batch = batch
        self._lock = threading.Lock()
        self.topics = sorted({s.topic for s in view.series} | {a.topic for a in view.attributes})

    def catch_up(self, until: Mapping[TopicPartition, int] | None = None) -> int:
        """Fold every source record (below ``until``'s offsets when given); returns how many
        records were read. Another feed on the same store (a thread, a process) may fold the
        same partitions: each batch is stored only if its start is still the stored position
        (``FeatureStore.apply(expected=...)``); on a ``Conflict`` the positions are read again."""
        with self._lock:
            for _ in range(10):
                try:
                    return self._catch_up(until)
                except Conflict:
                    continue
            return self._catch_up(until)

    def _catch_up(self, until: Mapping[TopicPartition, int] | None) -> int:
        done = 0
        positions = self.store.positions()
        for topic in self.topics:
            try:
                ends = self._log.end_offsets(topic)
            except TopicNotFound:
                continue
            for partition, end in sorted(ends.items()):
                tp = TopicPartition(topic, partition)
                stop = end if until is None else min(end, until.get(tp, 0))
                offset = positions.get(tp, 0)
                while offset < stop:
                    records = self._reader.read(  # 1.
                        topic, partition, offset, min(self._batch, stop - offset), mask_pii=True
                    )
                    records = [r for r in records if r["offset"] < stop]
                    if not records:
                        break
                    points, versions = self.extract(records)  # 2.
                    offset = records[-1]["offset"] + 1
                    start, positions[tp] = positions.get(tp, 0), offset
                    self.store.apply(points, versions, {tp: offset}, {tp: start})  # 3.
                    done += len(records)
        return done

    def extract(
        self, records: list[dict[str, Any]]
    ) -> tuple[list[SeriesPoint], list[AttributeVersion]]:
        points: list[SeriesPoint] = []
        versions: list[AttributeVersion] = []
        named_by = {s.entity_field for s in self.view.series}
        named_by |= {a.entity_field for a in self.view.attributes}
        named = [
            (rec["headers"].get("ce_tenant", DEFAULT_TENANT), rec["value"].get(f))
            for rec in records
            if isinstance(rec.get("value"), dict)
            for f in named_by
        ]
        erased = self._erased((t, e) for t, e in named if isinstance(e, str))
        for rec in records:
            value = rec.get("value")
            if not isinstance(value, dict):
                continue
            event_type = rec["headers"].get("ce_type", "")
            tenant = rec["headers"].get("ce_tenant", DEFAULT_TENANT)
            for s in self.view.series:
                if rec["topic"] != s.topic or event_type != s.event_type:
                    continue
                number = _number(value.get(s.value_field))
                entity = value.get(s.entity_field)
                if number is None or not isinstance(entity, str) or not value.get(s.time_field):
                    continue
                if (tenant, entity) in erased:
                    continue
                key = entity_key(tenant, entity)
                points.append(SeriesPoint(s.name, key, to_us(value[s.time_field]), number))
            for a in self.view.attributes:
                if rec["topic"] != a.topic or event_type not in a.event_types:
                    continue
                entity = value.get(a.entity_field)
                at = next((value[f] for f in a.time_fields if value.get(f)), None)
                if not isinstance(entity, str) or at is None or (tenant, entity) in erased:
                    continue
                fields = {f: (None if value.get(f) is None else str(value[f])) for f in a.fields}
                key = entity_key(tenant, entity)
                versions.append(AttributeVersion(a.name, key, to_us(at), fields))
        return points, versions
