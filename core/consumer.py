"""Consumer: a small poll loop over any EventLog, resuming from a consumer group's offsets.

It assigns itself every partition of the subscribed topics (no group rebalancing: run one
consumer per group, or give each consumer its own topics). A partition starts at the group's
committed offset, else at its beginning (``auto_offset_reset="earliest"``) or its end
(``"latest"``). ``poll`` advances the in-memory positions; ``commit`` stores them, on its own or
inside a ``Transaction`` so that a consume-transform-produce step commits its input offsets
together with its output. Not thread-safe: use one Consumer per thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

from core.errors import InvalidInput
from core.ports.eventlog import EventLog, StoredRecord, TopicPartition, Transaction

OffsetReset = Literal["earliest", "latest"]


class Consumer:
    """Reads the subscribed topics' partitions round-robin from the group's positions."""

    def __init__(
        self,
        log: EventLog,
        group: str,
        topics: Sequence[str],
        *,
        auto_offset_reset: OffsetReset = "earliest",
    ) -> None:
        if auto_offset_reset not in ("earliest", "latest"):
            raise InvalidInput(
                f"auto_offset_reset={auto_offset_reset!r} is invalid; use 'earliest' or 'latest'."
            )
        if not isinstance(group, str) or not group:
            raise InvalidInput(f"The consumer group {group!r} is invalid: pass a non-empty string.")
        if isinstance(topics, str) or not topics:
            raise InvalidInput(f"topics={topics!r} is invalid: pass a non-empty list of names.")
        self._log = log
        self._group = group
        self._positions: dict[TopicPartition, int] = {}
        for topic in dict.fromkeys(topics):
            committed = log.committed(group, topic)
            start = (
                log.beginning_offsets(topic)
                if auto_offset_reset == "earliest"
                else log.end_offsets(topic)
            )
            for partition, offset in sorted(start.items()):
                self._positions[TopicPartition(topic, partition)] = committed.get(partition, offset)
        self._next = 0  # round-robin start, so that one busy partition cannot starve the others

    @property
    def group(self) -> str:
        return self._group

    def positions(self) -> dict[TopicPartition, int]:
        """The next offset to read per partition (what ``commit`` would store)."""
        return dict(self._positions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Move one assigned partition's position (e.g. to replay)."""
        if tp not in self._positions:
            raise InvalidInput(f"{tp} is not assigned to this consumer; subscribe to its topic.")
        if type(offset) is not int or offset < 0:
            raise InvalidInput(f"Offset {offset!r} is invalid: pass an int >= 0.")
        self._positions[tp] = offset

    def poll(self, max_records: int = 500, timeout_s: float = 0.0) -> list[StoredRecord]:
        """Up to ``max_records`` records, waiting up to ``timeout_s`` for the first one.

        Partitions are visited round-robin, each in offset order; positions advance past what
        is returned.
        """
        if type(max_records) is not int or max_records < 1:
            raise InvalidInput(f"max_records={max_records!r} is invalid: pass an int >= 1.")
        deadline = time.monotonic() + timeout_s
        while True:
            out = self._poll_once(max_records)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _poll_once(self, max_records: int) -> list[StoredRecord]:
        tps = list(self._positions)
        out: list[StoredRecord] = []
        # Taken BEFORE reading: everything below it was committed when the reads began, so when
        # two reads in a row find nothing, only offsets without records (Kafka's transaction
        # markers, which the SQLite log mirrors) lie below it and the position may skip them.
        stable: dict[str, dict[int, int]] = {}
        for i in range(len(tps)):
            tp = tps[(self._next + i) % len(tps)]
            if tp.topic not in stable:
                stable[tp.topic] = self._log.stable_offsets(tp.topic)
            wanted = max_records - len(out)
            chunk = self._log.read(tp.topic, tp.partition, self._positions[tp], wanted)
            if chunk:
                out += chunk
                self._positions[tp] = chunk[-1].offset + 1
            target = stable[tp.topic][tp.partition]
            if not chunk and self._positions[tp] < target:
                # Nothing at the position though the stable offset is higher: marker offsets,
                # or a read that came back early. A second empty read tells them apart.
                again = self._log.read(tp.topic, tp.partition, self._positions[tp], wanted)
                if again:
                    out += again
                    self._positions[tp] = again[-1].offset + 1
                else:
                    self._positions[tp] = target
            if len(out) >= max_records:
                break
        self._next = (self._next + 1) % len(tps)
        return out

    def commit(self, transaction: Transaction | None = None) -> None:
        """Store every position for the group, directly or as part of ``transaction``."""
        if transaction is None:
            self._log.commit_offsets(self._group, self._positions)
        else:
            transaction.commit_offsets(self._group, self._positions)
