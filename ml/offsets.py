"""A consumer group's offsets checked against the consumer's own positions on the MAC'd log.

A consumer group's committed offsets are not the hub's to vouch for: the embedded log keeps
them in a plain table of its file (``group_offsets``), Kafka in ``__consumer_offsets``, where
anyone with group access moves them (``kafka-consumer-groups --reset-offsets``, or any client
that commits to the group). A consumer that starts from them skips input records (moved
forward: never scored) or handles them twice (moved back). So the consumer writes its own
position too, as a ``hub.SourcePositionRecorded`` on ``hub.source-positions`` (producer
``ml.scoring``, source ``group:<group>:<topic>/<partition>``, position
``{"next_offset": N, "from": M}``) in the SAME transaction as its output and its offset commit:
a record the log authenticates (the embedded log's MAC chain, Kafka's per-record MAC) and the
ledger covers. ``from`` is the position the record follows (None for a partition's first): a
record is folded only when it follows the current one (``follows``), so a genuine old position
copied onto the topic again (a Kafka record MAC cannot bind the offset) moves nothing. Then,
for each partition, before a step (``GroupPositions.starts``):

1. no position of the hub's yet (a group that predates this check): the group's offset is
   taken once (logged as ``adopted``); the step's transaction records it;
2. the group equals the hub's position: go on;
3. the group is behind it, or has none (rewound, or its offsets deleted): start at the hub's
   position, put the group back there, log a structured warning and count it
   (``hub_consumer_offsets_moved_total{direction="rewind"}``): nothing is handled twice;
4. the group is ahead of it (moved forward): look again for up to ``settle_s`` (on Kafka the
   position record becomes readable only when its transaction's marker is written, which
   can lag the offsets of the same transaction), then raise ``OffsetsMoved`` naming group,
   partition, expected and found offsets, counted as ``forward``. The worker stops on it
   (``hub.workers.follow_scoring``); ``hub ml accept-offsets NAME --reason WHY`` takes the
   group's offsets as the hub's positions, recorded on the ledger first
   (``ml.service.MachineLearning.accept_offsets``).

Left open: an accepted rewind to X, then a copy of the genuine record that once followed X,
moves the position on again (the records were scored once already: they are not re-scored).

A process trusts the positions it committed itself (kept in memory after each transaction),
so a running consumer reads the topic only when it starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from core.errors import OffsetsMoved
from core.metrics import Metrics
from core.ports.eventlog import EventLog, Record, TopicPartition
from ingest.positions import PositionStore, SourcePosition

log = logging.getLogger(__name__)

__all__ = ["PRODUCER", "GroupPositions", "Move", "OffsetsMoved", "follows", "source_of"]

PRODUCER: Final = "ml.scoring"  # the producer of the scorer's positions (ml.predictions too)
SETTLE_S: Final = 5.0


def follows(current: SourcePosition | None, new: SourcePosition) -> bool:
    """Whether ``new`` follows ``current`` (the store's ``follows`` for group positions)."""
    at = None if current is None else current.position.get("next_offset")
    return bool(new.position.get("from") == at)


def source_of(group: str, topic: str, partition: int) -> str:
    """The source name of a group's position on one partition (``hub.source-positions``)."""
    return f"group:{group}:{topic}/{partition}"


@dataclass(frozen=True, slots=True)
class Move:
    """A partition whose group offset (``found``; None: none committed) is not the hub's
    position (``expected``)."""

    topic: str
    partition: int
    expected: int
    found: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "expected": self.expected,
            "found": self.found,
        }


class GroupPositions:
    """The hub's positions of one consumer group on one topic, and the check of the group's
    committed offsets against them (the module docstring's steps)."""

    def __init__(
        self,
        store: PositionStore,
        event_log: EventLog,
        group: str,
        topic: str,
        *,
        accept_command: str,
        metrics: Metrics | None = None,
        settle_s: float = SETTLE_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._log = event_log
        self.group = group
        self.topic = topic
        self._accept_command = accept_command  # named in the error: how to take a move
        self._metrics = metrics
        self._settle_s = settle_s
        self._sleep = sleep
        # positions read from the log or committed by this process (trusted), per partition
        self._known: dict[int, int | None] = {}

    def expected(self, partition: int, *, fresh: bool = False) -> int | None:
        """The hub's position of ``partition`` (None: the hub has recorded none); looked up on
        the log once per partition (again with ``fresh``), then kept."""
        if fresh or partition not in self._known:
            found = self._store.get(source_of(self.group, self.topic, partition))
            self._known[partition] = None if found is None else int(found.position["next_offset"])
        return self._known[partition]

    def moves(self) -> list[Move]:
        """Every partition whose group offset differs from the hub's position (read afresh)."""
        self._known.clear()
        committed = self._log.committed(self.group, self.topic)
        out = []
        for p in sorted(self._log.stable_offsets(self.topic)):
            expected = self.expected(p)
            if expected is not None and committed.get(p) != expected:
                out.append(Move(self.topic, p, expected, committed.get(p)))
        return out

    def starts(self) -> dict[int, int]:
        """Per partition the offset to read from: the hub's position, after the check."""
        committed = self._log.committed(self.group, self.topic)
        partitions = sorted(self._log.stable_offsets(self.topic))
        ahead = self._ahead(committed, partitions)
        if ahead:
            self._refuse(ahead)
        out: dict[int, int] = {}
        rewound: dict[TopicPartition, int] = {}
        for p in partitions:
            found = committed.get(p)
            expected = self.expected(p)
            if expected is None:  # 1.
                out[p] = found or 0
                if found:
                    self._say("adopted", p, found, found, logging.INFO)
                continue
            out[p] = expected
            if found != expected:  # 3. (2. when equal; 4. refused above)
                self._say("rewind", p, expected, found, logging.WARNING)
                rewound[TopicPartition(self.topic, p)] = expected
        if rewound:
            self._log.commit_offsets(self.group, rewound)  # the group back where the hub is
        return out

    def _ahead(self, committed: Mapping[int, int], partitions: list[int]) -> list[Move]:
        """Partitions whose group offset is ahead of the hub's position, looked at again for
        up to ``settle_s`` (4.: a position record can become readable after its offsets)."""
        waited = 0.0
        fresh = False
        while True:
            ahead = []
            for p in partitions:
                expected = self.expected(p, fresh=fresh)
                found = committed.get(p)
                if expected is not None and found is not None and found > expected:
                    ahead.append(Move(self.topic, p, expected, found))
            if not ahead or waited >= self._settle_s:
                return ahead
            self._sleep(0.25)
            waited += 0.25
            fresh = True

    def _refuse(self, ahead: list[Move]) -> None:
        for m in ahead:
            self._say("forward", m.partition, m.expected, m.found, logging.ERROR)
        listed = "; ".join(
            f"{m.topic}/{m.partition}: expected {m.expected}, found {m.found}" for m in ahead
        )
        raise OffsetsMoved(
            f"The offsets of consumer group {self.group!r} were moved forward past the hub's "
            f"own positions ({listed}): starting there would skip the records in between, so "
            "nothing was consumed. Put the group back (kafka-consumer-groups --reset-offsets "
            "--to-offset EXPECTED), or, if the move was deliberate, take it with "
            f"`{self._accept_command} --reason WHY` (recorded on the ledger)."
        )

    def _say(
        self, direction: str, partition: int, expected: int, found: int | None, level: int
    ) -> None:
        log.log(
            level,
            "consumer group %s offset of %s/%d: %s (hub position %d, group %s)",
            self.group,
            self.topic,
            partition,
            direction,
            expected,
            found,
            extra={
                "group": self.group,
                "topic": self.topic,
                "partition": partition,
                "direction": direction,
                "expected": expected,
                "found": found,
            },
        )
        if self._metrics is not None and direction != "adopted":
            self._metrics.consumer_offsets_moved.labels(self.group, direction).inc()

    def record(self, partition: int, next_offset: int) -> Record:
        """The position record to append in the transaction that commits ``next_offset``
        (it follows the partition's current position)."""
        return self._store.record(
            source_of(self.group, self.topic, partition),
            self.topic,
            {"next_offset": next_offset, "from": self.expected(partition)},
            next_offset,
        )

    def committed(self, partition: int, next_offset: int) -> None:
        """Tell that the transaction holding ``record(partition, next_offset)`` committed."""
        self._known[partition] = next_offset

    def accepted(self, moves: list[Move]) -> list[Record]:
        """The position records that take ``moves``' group offsets as the hub's (the caller
        appends them after recording the acceptance on the ledger)."""
        out = []
        for m in moves:
            at = m.found or 0
            out.append(self.record(m.partition, at))
            self._known[m.partition] = at
            if self._metrics is not None:
                self._metrics.consumer_offsets_moved.labels(self.group, "accepted").inc()
        return out
