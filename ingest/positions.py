"""Source positions, stored as ``hub.SourcePositionRecorded`` events on ``hub.source-positions``.

A position is written by the ingest pipeline in the same log transaction as the batch it follows
(its records and its quarantined records), so a restart resumes exactly after the last committed
batch: never a skipped record, never a repeated one. The latest event per source wins. The store
folds the topic once and then follows its tail; positions are JSON objects whose shape belongs to
the source kind (a file's record count, a database cursor, an HTTP API's next cursor or page).

A store folds only the records of its own producer (the envelope's ``ce_source``): ingest's
positions (``ingest``) and a consumer group's (``ml.offsets``, producer ``ml.scoring``) share the
topic, and a record one of them wrote under a source name the other uses moves nothing there.
With ``follows``, a record is folded only when ``follows(current, new)`` holds (the consumer
groups' positions name the one they follow, so a genuine old record copied again onto the
topic, which a Kafka record MAC does not tell from the first, moves nothing).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.avro import serde
from core.events import OutgoingEvent
from core.fold import TopicFold
from core.ports.eventlog import EventLog, Record, StoredRecord
from domain.envelope import H_SOURCE
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

    def __init__(
        self,
        log: EventLog,
        registry: SchemaRegistry,
        publisher: Publisher,
        producer: str = "ingest",
        follows: Callable[[SourcePosition | None, SourcePosition], bool] | None = None,
    ) -> None:
        self._log = log
        self._follows = follows
        self._producer = producer
        self._producer_bytes = producer.encode()
        self._registry = registry
        self._publisher = publisher
        self._latest: dict[str, SourcePosition] = {}
        self._lock = threading.RLock()
        self._fold = TopicFold(log, TOPIC, self._apply, lock=self._lock)

    def refresh(self) -> None:
        """Fold events appended since the last call (by this or another process)."""
        self._fold.catch_up()

    def _apply(self, rec: StoredRecord) -> None:
        if rec.value is None or rec.header(H_SOURCE) != self._producer_bytes:
            return  # another producer's position, even under one of our source names
        schema_id, _ = serde.split_wire(rec.value)
        v = serde.decode(rec.value, self._registry.parsed(schema_id))
        new = SourcePosition(
            v["source"], v["topic"], json.loads(v["position"]), v["records"], v["done"]
        )
        if self._follows is None or self._follows(self._latest.get(new.source), new):
            self._latest[new.source] = new

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
        (rec,) = self._publisher.prepare(
            TOPIC, [OutgoingEvent(value=value, key=source)], self._producer
        )
        return rec
