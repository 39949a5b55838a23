"""Hub sequences on the Kafka log: how a reader refuses a genuine record copied again into its
partition (a replay), which the record MAC alone cannot (it cannot bind the broker's offset).

Writing: every record the hub seals carries the header ``__hub.seq`` (``SEQ_HEADER``) under its
record MAC, right before the tenant MAC (data topics) or the MAC itself: 16 bytes naming the
*writer* (one per Kafka producer object of one process, random) and the writer's sequence
number (8 bytes, big-endian), one counter per writer across its topics and partitions. A
producer appends a partition's records in the order it was handed them (librdkafka's
idempotent and transactional producers keep that order), so within one partition one writer's
numbers only go up; they skip where the writer wrote to other partitions, where a transaction
was aborted (its records are not read) and where a batch failed (the producer is then dropped,
and its successor is a new writer: a late delivery of the failed batch cannot fall behind a
later number of its own writer).

Reading (``PartitionSequence``): per partition and writer the highest number read so far; a
record whose MAC verifies and whose number is not above its writer's highest is a copy of a
record already read (a replay) and is skipped: not returned to views, the ledger's sync, or
anything else that reads through the adapter, and counted (``KafkaEventLog.replays_skipped``).
``hub ledger verify`` names it (``replays``). No window of reordering is allowed: there is
none to allow for (see above), and a window would let a copy through.

Two hub processes (HA), fenced producers, retried transactions: each producer is its own
writer, so none of them orders against another. Retention cutting the head: what a reader
learned from the cut records stays in its state for as long as the process runs; a process
started after the cut learns from what is left, so a copy of a cut record whose writer wrote
nothing that is left reads as new there (verify's scan does not see the original either).

Records written before sequences carry no ``__hub.seq``: they keep the old rule (read as they
are; ``hub ledger verify`` names a copy by its repeated MAC, ``replays.first_copy``).
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Sequence
from itertools import count
from typing import Final

from adapters.kafka_log.auth import MAC_HEADER, SEQ_BYTES, record_macs_rows
from adapters.kafka_log.auth import SEQ_HEADER as SEQ_HEADER
from core.ports.eventlog import StoredRecord
from core.tenant_mac import TMAC_HEADER

WRITER_BYTES: Final = 16
_SEQ_BYTES: Final = SEQ_BYTES  # WRITER_BYTES + 8
_KEPT_WRITERS: Final = 64


class Sequencer:
    """Hands out ``__hub.seq`` values: a writer per producer object, known by its ``id`` (no
    reference kept: a dropped producer must be freed, its librdkafka threads with it). An
    object that reuses a freed producer's id goes on with that writer's numbers, which is
    sound: the freed producer's records were all delivered or dropped when it was destroyed.
    Only the last ``_KEPT_WRITERS`` producers are listed; one seen again after that is a new
    writer (one more entry in the readers' state)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writers: dict[int, tuple[bytes, count[int]]] = {}  # id(producer) -> writer

    def values(self, producer: object, n: int) -> list[bytes]:
        """The next ``n`` sequence header values of ``producer``'s writer, in order."""
        with self._lock:
            w = self._writers.get(id(producer))
            if w is None:
                if len(self._writers) >= _KEPT_WRITERS:
                    del self._writers[next(iter(self._writers))]
                w = self._writers[id(producer)] = (os.urandom(WRITER_BYTES), count(1))
            writer, numbers = w
            return [writer + next(numbers).to_bytes(8, "big") for _ in range(n)]


def sequence_of(r: StoredRecord) -> bytes | None:
    """A record's ``__hub.seq`` value as stored (under its MAC, before the tenant MAC if
    any), or None: no MAC header, no sequence there, or a malformed one."""
    h = r.headers
    if len(h) < 2 or h[-1][0] != MAC_HEADER:
        return None
    i = -3 if h[-2][0] == TMAC_HEADER and len(h) >= 3 else -2
    name, value = h[i]
    if name != SEQ_HEADER or len(value) != _SEQ_BYTES:
        return None
    return value


def genuine_sequences(key: bytes, records: Sequence[StoredRecord]) -> list[bytes | None]:
    """Per record as stored: its sequence value when its MAC verifies under ``key`` (one
    ``record_macs_rows`` call for the batch), else None."""
    out: list[bytes | None] = [sequence_of(r) for r in records]
    at = [i for i, s in enumerate(out) if s is not None]
    macs = record_macs_rows(
        key,
        [
            (r.topic, r.partition, r.key, r.value, r.headers[:-1], r.timestamp_ms)
            for r in (records[i] for i in at)
        ],
    )
    for i, mac in zip(at, macs, strict=True):
        if not hmac.compare_digest(records[i].headers[-1][1], mac):
            out[i] = None
    return out


class PartitionSequence:
    """What a reader has learned of one partition below an offset: per writer, the highest
    sequence number read. ``low``..``high``: the offsets a read may go on from with this
    state (records skipped as replays at the end of the last read change nothing)."""

    __slots__ = ("high", "last", "low")

    def __init__(self, at: int = 0, last: dict[bytes, int] | None = None) -> None:
        self.low = self.high = at
        self.last: dict[bytes, int] = {} if last is None else last

    def covers(self, offset: int) -> bool:
        return self.low <= offset <= self.high

    def admit(self, offset: int, seq: bytes | None) -> bool:
        """Take the record at ``offset`` (offset order, from ``high`` on) with its genuine
        sequence value (None: none, or its MAC fails: the old rule) and say whether it is
        new; False: a replay, which leaves the state as it was."""
        self.high = offset + 1
        if seq is None:
            return True
        writer, n = seq[:WRITER_BYTES], int.from_bytes(seq[WRITER_BYTES:], "big")
        if n <= self.last.get(writer, 0):
            return False
        self.last[writer] = n
        self.low = self.high
        return True

    def copy(self) -> PartitionSequence:
        c = PartitionSequence(self.high, dict(self.last))
        c.low = self.low
        return c


def replay_skipped_what(writer: bytes, n: int) -> str:
    """The log line for a record a reader skipped."""
    return (
        f"it repeats hub sequence {n} of writer {writer.hex()[:12]} (or one below its last): "
        "a genuine record copied again into its partition by someone with produce access to "
        "the broker; readers skip it, and `hub ledger verify` names it."
    )
