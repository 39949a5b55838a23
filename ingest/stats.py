"""Quality statistics read from the log, so they hold across restarts and for every source.

- accepted per topic: the records appended to each data topic (every source: HTTP, files,
  watched folders, connectors, the strict publish route, the demo); records a retention cut
  removed before the first count are not seen, those removed later stay counted;
- rejected per topic and rule: the entries of ``hub.quarantine`` (rule id, else reason code);
- replayed per topic: the entries of ``hub.quarantine-replays`` by outcome.

Counts are folded incrementally: each call reads only the records appended since the previous
one (per partition, from the last offset read), so a call costs the new records, not the log.
Duplicates are never stored, so their count comes from the process's metrics (since start).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from core.avro import serde
from core.ports.eventlog import EventLog
from registry.service import SchemaRegistry

QUARANTINE = "hub.quarantine"
REPLAYS = "hub.quarantine-replays"


def is_data_topic(name: str) -> bool:
    """Topics publishers write; ``hub.*`` and ``_schemas`` are the hub's own."""
    return not name.startswith(("hub.", "_"))


class QualityStats:
    """Counts of accepted, rejected and replayed records folded from the log (see module)."""

    def __init__(self, log: EventLog, registry: SchemaRegistry) -> None:
        self._log = log
        self._registry = registry
        self._lock = threading.Lock()
        self._next: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to read
        self._accepted: Counter[str] = Counter()
        self._rejected: Counter[tuple[str, str]] = Counter()  # (topic, rule or reason code)
        self._replayed: Counter[tuple[str, str]] = Counter()  # (topic, outcome)

    def snapshot(self) -> dict[str, Any]:
        """Fold what was appended since the last call and return the counts."""
        with self._lock:
            for t in self._log.topics():
                if is_data_topic(t.name):
                    self._fold(t.name, self._count_accepted)
            names = {t.name for t in self._log.topics()}
            if QUARANTINE in names:
                self._fold(QUARANTINE, self._count_rejected)
            if REPLAYS in names:
                self._fold(REPLAYS, self._count_replayed)
            topics = sorted(set(self._accepted) | {t for t, _ in self._rejected})
            return {
                "by_topic": [
                    {
                        "topic": t,
                        "accepted": self._accepted[t],
                        "rejected": sum(n for (tt, _), n in self._rejected.items() if tt == t),
                        "replayed": sum(n for (tt, _), n in self._replayed.items() if tt == t),
                    }
                    for t in topics
                ],
                "by_rule": [
                    {"topic": t, "rule": rule, "count": n}
                    for (t, rule), n in sorted(self._rejected.items())
                ],
                "replays": [
                    {"topic": t, "outcome": outcome, "count": n}
                    for (t, outcome), n in sorted(self._replayed.items())
                ],
                "accepted": sum(self._accepted.values()),
                "rejected": sum(self._rejected.values()),
            }

    def _fold(self, topic: str, count: Any) -> None:
        starts = self._log.beginning_offsets(topic)
        for p, end in self._log.end_offsets(topic).items():
            pos = max(self._next.get((topic, p), 0), starts.get(p, 0))
            while pos < end:
                page = self._log.read(topic, p, pos, 5000)
                if not page:
                    break
                for rec in page:
                    count(topic, rec)
                pos = page[-1].offset + 1
            self._next[(topic, p)] = max(pos, self._next.get((topic, p), 0))

    def _count_accepted(self, topic: str, rec: Any) -> None:
        self._accepted[topic] += 1

    def _decode(self, value: bytes) -> dict[str, Any]:
        schema_id, _ = serde.split_wire(value)
        out: dict[str, Any] = serde.decode(value, self._registry.parsed(schema_id))
        return out

    def _count_rejected(self, topic: str, rec: Any) -> None:
        if rec.value is None:
            return
        v = self._decode(rec.value)
        self._rejected[(v["topic"], v["rule_id"] or v["reason_code"])] += 1

    def _count_replayed(self, topic: str, rec: Any) -> None:
        if rec.value is None:
            return
        v = self._decode(rec.value)
        self._replayed[(v["topic"], v["outcome"])] += 1
