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

from core.fold import TopicFold
from core.ports.eventlog import EventLog, StoredRecord


class KeyIndex:
    """Per topic, the set of record keys appended so far (see the module docstring)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._lock = threading.RLock()
        self._keys: dict[str, set[str]] = {}
        self._folds: dict[str, TopicFold] = {}

    def keys(self, topic: str) -> set[str]:
        """The keys of every record on ``topic`` (empty when it does not exist); the live set,
        read it before the next call."""
        with self._lock:
            found = self._keys.setdefault(topic, set())
            fold = self._folds.get(topic)
            if fold is None:

                def add(rec: StoredRecord) -> None:
                    if rec.key:
                        found.add(rec.key.decode("utf-8", "replace"))

                fold = self._folds[topic] = TopicFold(
                    self._log, topic, add, batch=10_000, lock=self._lock
                )
            fold.catch_up()
            return found
