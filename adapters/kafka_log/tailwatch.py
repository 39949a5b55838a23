"""The Kafka log's tail watchers (``KafkaEventLog.tail_quiet``): a kept consumer per watched
one-partition topic, which learns of records other writers commit without a ListOffsets.

A watcher is a ``read_committed`` consumer assigned at the caller's position (an explicit
offset, so no record committed at or past it can fall between the caller's last read and the
watcher's first fetch). librdkafka keeps a fetch waiting at the broker (``fetch.wait.max.ms``),
which the broker answers as soon as a record at or past the fetch offset commits, so the
watcher holds a newly committed record about one round trip after its commit, without anyone
asking. ``quiet(pos)`` drains what it holds (no wait) and answers True only when it delivered
nothing new and the offset after the last record it delivered (or where it was assigned) is
``pos``: no committed record at or past ``pos`` was learnt of. Transaction markers and aborted
records are never delivered (a fold stops before them too). Any error it reports (the topic
deleted, the offset gone) drops it: the next call starts a new one and answers False.

What it learnt may lag the broker (a broker restart, a fetch in backoff): callers bound in time
how long they trust it (``core.fold.TopicFold``'s ``watch_s``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

_LOG = logging.getLogger(__name__)
# the most records one ``quiet`` call takes from a watcher's queue (more: False, and the next
# call goes on draining)
_DRAIN = 1000


@dataclass
class _Watch:
    consumer: Consumer
    next: int  # the offset after the last record delivered, or where it was assigned


class TailWatches:
    """One watcher per wire topic (partition 0), made by ``make`` when first asked."""

    def __init__(self, make: Callable[[], Consumer]) -> None:
        self._make = make
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._closed = False

    def quiet(self, wire: str, pos: int) -> bool:
        """Whether the watcher of ``wire`` learnt of no record committed at or past ``pos``
        (see the module); the first call for a topic starts its watcher and answers False."""
        with self._lock:
            if self._closed:
                return False
            watch = self._watches.get(wire)
            if watch is None:
                consumer = self._make()
                try:
                    consumer.assign([KafkaTP(wire, 0, pos)])
                except BaseException:
                    consumer.close()
                    raise
                self._watches[wire] = _Watch(consumer, pos)
                return False
            try:
                got = watch.consumer.consume(_DRAIN, 0)
            except KafkaException as exc:
                self._drop(wire, f"{exc}")
                return False
            for msg in got:
                if msg.error() is not None:
                    self._drop(wire, f"{msg.error()}")
                    return False
                offset = msg.offset()
                if offset is not None:
                    watch.next = max(watch.next, offset + 1)
            return not got and watch.next == pos

    def _drop(self, wire: str, why: str) -> None:
        watch = self._watches.pop(wire, None)
        if watch is not None:
            _LOG.info("dropping the tail watcher of %r: %s", wire, why)
            watch.consumer.close()

    def drop(self, wires: set[str] | None = None) -> None:
        """Stop the watchers of ``wires`` (None: all), e.g. their topics were deleted."""
        with self._lock:
            for wire in list(self._watches) if wires is None else sorted(wires):
                self._drop(wire, "dropped")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for wire in list(self._watches):
                self._drop(wire, "the log closed")
