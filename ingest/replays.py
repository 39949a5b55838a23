"""The replay marks of quarantined records: a fold of ``hub.quarantine-replays`` (the latest
``hub.QuarantineReplayed`` event per quarantine offset), followed from where it stopped."""

from __future__ import annotations

import threading
from typing import Any

from core.avro import serde
from core.fold import TopicFold
from core.ports.eventlog import EventLog, StoredRecord
from domain.envelope import H_ID
from registry.service import SchemaRegistry

REPLAYS_TOPIC = "hub.quarantine-replays"


class ReplayMarks:
    """The latest replay event per quarantine offset. Thread-safe."""

    def __init__(self, log: EventLog, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._marks: dict[int, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._fold = TopicFold(log, REPLAYS_TOPIC, self._apply, lock=self._lock, once_by=H_ID)

    def _apply(self, rec: StoredRecord) -> None:
        if rec.value is None:
            return
        schema_id, _ = serde.split_wire(rec.value)
        v = serde.decode(rec.value, self._registry.parsed(schema_id))
        self._marks[v["quarantine_offset"]] = v

    def all(self) -> dict[int, dict[str, Any]]:
        """Per quarantine offset, its latest replay event (a copy)."""
        with self._lock:
            self._fold.catch_up()
            return dict(self._marks)
