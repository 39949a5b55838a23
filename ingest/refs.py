"""The record keys seen on a topic, for ``ref`` quality rules (``domain.quality``).

A ``ref`` rule (``{kind: ref, field: account_id, topic: accounts}``) passes when the value is
the key of some record on the topic. ``KeyIndex`` keeps each referenced topic's keys in memory
and catches up incrementally: each ``keys(topic)`` reads only the records appended since the
previous call (per partition, from the last offset read; keys only, values are not decoded).
The pipeline takes one snapshot per topic per batch, so a batch costs one catch-up, not one per
record. Records deleted by retention keep their keys here: an account opened long ago is still
known.
"""

from __future__ import annotations

import threading

from core.errors import TopicNotFound
from core.ports.eventlog import EventLog


class KeyIndex:
    """Per topic, the set of record keys appended so far (see the module docstring)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._keys: dict[str, set[str]] = {}
        self._next: dict[tuple[str, int], int] = {}

    def keys(self, topic: str) -> set[str]:
        """The keys of every record on ``topic`` (empty when it does not exist); the live set,
        read it before the next call."""
        with self._lock:
            found = self._keys.setdefault(topic, set())
            try:
                ends = self._log.end_offsets(topic)
                starts = self._log.beginning_offsets(topic)
            except TopicNotFound:
                return found
            for p, end in ends.items():
                pos = max(self._next.get((topic, p), 0), starts.get(p, 0))
                while pos < end:
                    page = self._log.read(topic, p, pos, 10_000)
                    if not page:
                        break
                    found.update(r.key.decode("utf-8", "replace") for r in page if r.key)
                    pos = page[-1].offset + 1
                self._next[(topic, p)] = pos
            return found
