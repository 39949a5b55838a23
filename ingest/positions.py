"""Source positions, stored as ``hub.SourcePositionRecorded`` events on ``hub.source-positions``.

A position is written by the ingest pipeline in the same log transaction as the batch it follows
(its records and its quarantined records), so a restart resumes exactly after the last committed
batch: never a skipped record, never a repeated one. The latest event per source wins. The store
folds the topic once and then follows its tail; positions are JSON objects whose shape belongs to
the source kind (a file's record count, a database cursor, an HTTP API's next cursor or page).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.avro import serde
from core.events import OutgoingEvent
from core.ports.eventlog import EventLog, Record
from ingest.publish import Publisher
from registry.service import SchemaRegistry

TOPIC = "hub.source-positions"


@dataclass(frozen=True, slots=True)
class SourcePosition:
    source: str
    topic: str
    position: dict[str, Any]
    records: int
    done: bool


class PositionStore:
    """The latest position of every source (a fold of ``hub.source-positions``)."""

    def __init__(self, log: EventLog, registry: SchemaRegistry, publisher: Publisher) -> None:
        self._log = log
        self._registry = registry
        self._publisher = publisher
        self._latest: dict[str, SourcePosition] = {}
        self._next = 0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Fold events appended since the last call (by this or another process)."""
        with self._lock:
            for rec in self._log.scan(TOPIC, 0, self._next):
                self._next = rec.offset + 1
                if rec.value is None:
                    continue
                schema_id, _ = serde.split_wire(rec.value)
                v = serde.decode(rec.value, self._registry.parsed(schema_id))
                self._latest[v["source"]] = SourcePosition(
                    v["source"], v["topic"], json.loads(v["position"]), v["records"], v["done"]
                )

    def get(self, source: str) -> SourcePosition | None:
        self.refresh()
        return self._latest.get(source)

    def all(self) -> list[SourcePosition]:
        self.refresh()
        return sorted(self._latest.values(), key=lambda p: p.source)

    def record(
        self,
        source: str,
        topic: str,
        position: dict[str, Any],
        records: int,
        done: bool = False,
    ) -> Record:
        """The record to append (in the caller's transaction) for a new position."""
        value = {
            "source": source,
            "topic": topic,
            "position": json.dumps(position, sort_keys=True, default=str),
            "records": records,
            "done": done,
            "recorded_at": datetime.now(UTC).isoformat(),
        }
        (rec,) = self._publisher.prepare(TOPIC, [OutgoingEvent(value=value, key=source)], "ingest")
        return rec
