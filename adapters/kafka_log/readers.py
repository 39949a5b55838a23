"""The Kafka log's kept reader consumers: a few, each kept assigned where its last read ended.

Why more than one: the views' follower and the ledger's follower read the same partitions
from different offsets. With one kept reader each read of one re-pointed the reader the other
had left warm (a new assignment: a fresh fetch from the broker, the records fetched ahead
dropped), so neither follower's next read found its records waiting. A read takes the reader
kept at the offset it asks for (``ReaderPool.take``), else one left unassigned, else a new
one while there are fewer than ``KEPT_READERS``, else the least recently used; a read nested
in another (the seals read by a record's check, a partition's sequences learned) takes one
the outer read does not hold, so the outer read's assignment is not moved under it.

Every use is under the log's lock (``KafkaEventLog._lock``): the pool has no lock of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Final

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

# the views' follower, the ledger's follower, and one for the rest (an API read, a nested
# read); a read finding all of them held by reads it is nested in gets one of its own, closed
# after it
KEPT_READERS: Final = 3


class KeptReader:
    """One reader consumer and where it stands: ``at`` = (wire topic, partition, offset the
    next read goes on from, offset the consumer reached) when kept, else None; ``assigns``
    counts its assignments (a read whose assignment moved under it keeps nothing)."""

    __slots__ = ("assigns", "at", "busy", "consumer", "used")

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.at: tuple[str, int, int, int] | None = None
        self.assigns = 0
        self.used = 0.0
        self.busy = False

    def assign(self, wire: str, partition: int, offset: int) -> None:
        self.assigns += 1
        self.consumer.assign([KafkaTP(wire, partition, offset)])

    def unassign(self) -> None:
        with suppress(KafkaException):
            self.consumer.unassign()

    def drop(self) -> None:
        """The next read assigns this reader anew (the records it fetched ahead are dropped)."""
        if self.at is not None:
            self.at = None
            self.unassign()


class ReaderPool:
    """Up to ``size`` kept readers, made by ``make`` when first needed."""

    def __init__(self, make: Callable[[], Consumer], size: int = KEPT_READERS) -> None:
        self._make = make
        self._size = size
        self.readers: list[KeptReader] = []

    def take(self, wire: str, partition: int, offset: int) -> KeptReader:
        """The reader for a read of ``wire``/``partition`` from ``offset``, held (``busy``)
        until ``give_back``: the one kept there, else an unassigned one, else a new one while
        there are fewer than ``size``, else the least recently used one."""
        free = [r for r in self.readers if not r.busy]
        reader = next(
            (r for r in free if r.at is not None and r.at[:3] == (wire, partition, offset)),
            None,
        )
        if reader is None:
            reader = next((r for r in free if r.at is None), None)
        if reader is None and (len(self.readers) < self._size or not free):
            reader = KeptReader(self._make())
            self.readers.append(reader)
        if reader is None:
            reader = min(free, key=lambda r: r.used)
        reader.busy = True
        return reader

    def give_back(self, reader: KeptReader) -> None:
        """The read on ``reader`` is over; one beyond ``size`` (taken while every other was
        held) is closed."""
        reader.busy = False
        if len(self.readers) > self._size:
            self.readers.remove(reader)
            reader.consumer.close()

    def drop_all(self) -> None:
        """No reader keeps its assignment (a delete, a topic made again)."""
        for r in self.readers:
            r.drop()

    def drop_idle(self, now: float, idle_s: float) -> None:
        """Drop the assignments unused for ``idle_s`` (they poll the broker while idle)."""
        for r in self.readers:
            if not r.busy and r.at is not None and now - r.used > idle_s:
                r.drop()

    def close(self) -> None:
        for r in self.readers:
            r.consumer.close()
        self.readers.clear()
