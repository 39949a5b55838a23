"""EventLog: the port every log adapter implements (SQLite embedded, Apache Kafka distributed).

The log is Kafka-shaped. A topic has a fixed number of partitions; each partition is an ordered
sequence of records numbered by offset from 0. A record has a key, a value, headers and a
timestamp. The contract below is written so that a Kafka adapter can honour it; the contract test
suite (``tests/contract/eventlog_contract.py``) runs against every adapter.

Contract
- ``create_topic`` MUST be idempotent for the same partition count and MUST raise ``TopicExists``
  when asked for a different count.
- ``append`` MUST be atomic: either every record of the batch is stored, or none is. Records
  without an explicit partition MUST be placed by ``core.partitioner.default_partition``: Kafka's
  murmur2 partitioner for keyed records (the same partition number a Kafka producer picks), and
  partition 0 for keyless ones, so that both footprints place every record identically. Offsets
  within a partition MUST increase in batch order and be dense within each partition's records
  of one append. An append that ``is_transactional_append`` names (it touches several partitions,
  or is too big for one Kafka record batch) is a transaction in Kafka, whose commit marker takes
  one offset in every partition it wrote: every adapter MUST then leave exactly one unused offset
  after the batch's records in each partition it wrote, and MUST leave none otherwise, so that
  both footprints number every record identically. A committed ``Transaction`` likewise leaves
  one unused offset in each partition it appended to. (What an aborted transaction consumes is
  adapter-specific.) An explicit partition outside the topic's range MUST raise ``InvalidInput``.
- A batch acknowledged by ``append`` MUST survive a process crash.
- With an ``IdempotenceKey``, a batch whose (producer id, sequence) was already stored MUST NOT be
  stored again; the call returns the metadata of the stored copy. A sequence lower than the
  last stored one that is not a retry of it, or higher than last + 1, MUST raise
  ``OutOfOrderSequence``.
- ``append_columns`` (also on a ``Transaction``) MUST store exactly what ``append`` of
  ``ColumnBatch.records()`` stores, and answer the same metadata: a list, or an
  ``AppendedMetadata`` (the same records as columns, built only when a caller asks for one).
- ``read`` MUST return records in offset order starting at the first offset >= the one asked for.
  ``read_columns`` MUST return the same records as ``read`` with the same arguments, as one
  ``RecordColumns`` (the default builds it from ``read``; an adapter that stores columns hands
  them over without building a ``StoredRecord`` per record). ``read_encoded``, when an adapter
  offers it (else None), MUST hold exactly the records ``read_columns`` returns.
- ``stable_offsets`` is the offset below which every record is committed and readable (Kafka's
  last stable offset). ``read`` MAY return fewer records than are there (a Kafka fetch can come
  back early), so a reader moves its position to the stable offset only after two reads in a
  row returned nothing: then only marker offsets lie between.
- ``delete_records_before`` raises a partition's beginning offset (retention); reads MUST then
  start at the beginning offset, and offsets are never reused.
- ``commit_offsets`` stores, per consumer group, the next offset to read for each partition.
- A ``Transaction`` MUST make its appends and its offset commits visible together, or not at all.
"""

from __future__ import annotations

import abc
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

from core.errors import DuplicateEnvelopeHeader, InvalidInput
from domain.envelope import duplicated_envelope_header, is_envelope_header

Headers = tuple[tuple[str, bytes], ...]


# Kafka makes an append atomic by itself only when it is one record batch of one partition; any
# other append is a Kafka transaction. The rule is shared so both footprints leave the same gaps.
# Size counts keys and values only (cheap to compute per batch); the Kafka broker is configured
# for 16 MiB record batches, which leaves 1 MiB for headers.
TRANSACTIONAL_APPEND_BYTES = 15 << 20
TRANSACTIONAL_APPEND_RECORDS = 1_000_000
RECORD_OVERHEAD_BYTES = 64  # per record beyond key and value


def payload_size(keys: Sequence[bytes | None], values: Sequence[bytes | None]) -> int:
    """A batch's size as the transactional-append rule counts it."""
    return (
        sum(map(len, filter(None, keys)))
        + sum(map(len, filter(None, values)))
        + RECORD_OVERHEAD_BYTES * len(keys)
    )


def is_transactional_append(partitions_written: int, size: int, count: int) -> bool:
    """Whether an append must be a transaction (and so leaves a marker offset per partition)."""
    return (
        partitions_written > 1
        or size > TRANSACTIONAL_APPEND_BYTES
        or count > TRANSACTIONAL_APPEND_RECORDS
    )


def envelope_header(headers: Headers, name: str, where: str = "A record") -> bytes | None:
    """The one reader of a header by name: its value, or None.

    An envelope header (``ce_*``, ``hub_*``, ``content-type``) carried more than once raises
    ``DuplicateEnvelopeHeader`` naming it (``where`` says which record): no copy is picked. A
    repeated non-envelope header gives its first value, as Kafka clients do.
    """
    found: bytes | None = None
    seen = False
    for k, v in headers:
        if k == name:
            if not seen:
                found, seen = v, True
            elif is_envelope_header(name):
                raise duplicate_envelope_error(name, where)
            else:
                return found
    return found


def duplicate_envelope_error(name: str, where: str) -> DuplicateEnvelopeHeader:
    """The one message for a record carrying envelope header ``name`` twice."""
    return DuplicateEnvelopeHeader(
        f"{where} carries the envelope header {name!r} more than once; the hub reads no copy "
        "of a repeated envelope header (ce_*, hub_*, content-type). Send each once.",
    )


def duplicated_envelope_rows(headers: Sequence[Headers]) -> list[tuple[int, str]]:
    """(index, header name) of each record of a batch that carries an envelope header twice
    (the first such name per record); empty in the usual case, found by one C-level pass."""
    if list(map(len, map(dict, headers))) == list(map(len, headers)):  # nothing repeats
        return []
    out = []
    for i, h in enumerate(headers):
        twice = duplicated_envelope_header(h)
        if twice is not None:
            out.append((i, twice))
    return out


def check_envelope_headers(headers: Sequence[Headers], topic: str) -> None:
    """Raise ``DuplicateEnvelopeHeader`` naming the first record of a batch for ``topic`` that
    carries an envelope header twice. Every adapter's append MUST refuse such a batch: the Kafka
    adapter calls this; the embedded log checks while it encodes (once per batch whose records
    share one header layout) and names the record with ``eventlog_checks.record_problem``."""
    found = duplicated_envelope_rows(headers)
    if found:
        i, name = found[0]
        raise duplicate_envelope_error(name, f"Record {i} of the batch for topic {topic!r}")


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """A record to append. ``partition=None`` lets the partitioner choose from the key."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp_ms: int | None = None
    partition: int | None = None

    def header(self, name: str) -> bytes | None:
        """The header called ``name``, or None (see :func:`envelope_header`)."""
        return envelope_header(self.headers, name)


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """Records to append, as columns (``EventLog.append_columns``): record ``i`` is
    ``keys[i]``, ``values[i]`` and one header per name, in ``header_names`` order, whose value
    is ``header_columns[j]`` when that is one ``bytes`` (a value the whole batch shares, such as
    the envelope's event type) or ``header_columns[j][i]`` otherwise. Every record carries
    ``timestamp_ms`` (None: the log stamps the append, as for a ``Record`` without one) and no
    partition (the partitioner places each by its key). The sequences are read-only by
    contract."""

    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    header_names: tuple[str, ...] = ()
    header_columns: tuple[bytes | Sequence[bytes], ...] = ()
    timestamp_ms: int | None = None

    def __len__(self) -> int:
        return len(self.values)

    def check(self, topic: str) -> None:
        """Raise ``InvalidInput`` when the columns do not line up (every adapter checks this
        before anything else, so both footprints refuse the same batches)."""
        n = len(self.values)
        lengths = [len(c) for c in self.header_columns if not isinstance(c, bytes)]
        if len(self.keys) != n or set(lengths) - {n}:
            raise InvalidInput(
                f"A column batch for {topic!r} holds {n} values, {len(self.keys)} keys and "
                f"header columns of {sorted(set(lengths))} values; every per-record column "
                "must hold one item per value."
            )
        if len(self.header_names) != len(self.header_columns):
            raise InvalidInput(
                f"A column batch for {topic!r} names {len(self.header_names)} headers but holds "
                f"{len(self.header_columns)} header columns; give one column per name."
            )

    def header_rows(self) -> list[Headers]:
        """Every record's headers as (name, value) pairs, in ``header_names`` order."""
        n = len(self.values)
        if not self.header_names:
            return [()] * n
        cols = [
            repeat((name, c), n) if isinstance(c, bytes) else zip(repeat(name), c, strict=False)
            for name, c in zip(self.header_names, self.header_columns, strict=True)
        ]
        return list(zip(*cols, strict=False))

    def records(self) -> list[Record]:
        """The same records as ``Record`` objects (what ``append`` takes)."""
        n = len(self.values)
        stamps = repeat(self.timestamp_ms, n)
        return list(map(Record, self.values, self.keys, self.header_rows(), stamps))


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as the log holds it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    def header(self, name: str) -> bytes | None:
        """The header called ``name``, or None; an envelope header stored twice raises
        ``DuplicateEnvelopeHeader`` naming the record (see :func:`envelope_header`)."""
        try:
            return envelope_header(self.headers, name)
        except DuplicateEnvelopeHeader:
            where = f"The record {self.topic}/{self.partition}@{self.offset}"
            raise duplicate_envelope_error(name, where) from None


@dataclass(frozen=True, slots=True)
class RecordColumns:
    """Records of one partition as columns, in offset order (what ``EventLog.read_columns``
    returns): record ``i`` is ``offsets[i]``, ``timestamps[i]``, ``keys[i]``, ``values[i]`` and
    its headers.

    The headers come in one of two forms:
    - ``header_names`` is not None: every record carries exactly these headers, in this order
      (the hub's envelope); ``header_values[j][i]`` is the value of header ``j`` of record
      ``i``, and ``headers`` is None. A value shared by the whole batch MAY be one bytes object
      repeated (readers can key on identity as a shortcut, never on it for correctness).
    - otherwise ``headers[i]`` is record ``i``'s headers and ``header_values`` is empty.
    The sequences are read-only by contract (lists, tuples or ranges; nothing is copied).
    """

    topic: str
    partition: int
    offsets: Sequence[int]
    timestamps: Sequence[int]
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    header_names: tuple[str, ...] | None = None
    header_values: tuple[Sequence[bytes], ...] = ()
    headers: Sequence[Headers] | None = None
    built_from: Sequence[StoredRecord] | None = None
    """The records these columns were built from (``from_records``), handed back by
    ``records`` instead of new ones; None when the log stored columns."""

    def __len__(self) -> int:
        return len(self.offsets)

    def first(self, k: int) -> RecordColumns:
        """The first ``k`` records (all of them when there are no more)."""
        if k >= len(self.offsets):
            return self
        return RecordColumns(
            self.topic,
            self.partition,
            self.offsets[:k],
            self.timestamps[:k],
            self.keys[:k],
            self.values[:k],
            self.header_names,
            tuple(col[:k] for col in self.header_values),
            None if self.headers is None else self.headers[:k],
            None if self.built_from is None else self.built_from[:k],
        )

    def below(self, end: int) -> RecordColumns:
        """The records whose offset is below ``end``."""
        return self.first(bisect_left(self.offsets, end))

    def header_rows(self) -> list[Headers]:
        """Every record's headers as (name, value) pairs, whichever form is stored."""
        if self.header_names is None:
            return list(self.headers or [()] * len(self.offsets))
        if not self.header_names:
            return [()] * len(self.offsets)
        cols = [zip(repeat(name), col, strict=False) for name, col in self._named_columns()]
        return list(zip(*cols, strict=True))

    def _named_columns(self) -> list[tuple[str, Sequence[bytes]]]:
        assert self.header_names is not None
        if len(self.header_values) != len(self.header_names):
            raise ValueError(
                f"RecordColumns of {self.topic!r} partition {self.partition} name "
                f"{len(self.header_names)} headers but hold {len(self.header_values)} columns."
            )
        return list(zip(self.header_names, self.header_values, strict=True))

    def records(self) -> list[StoredRecord]:
        """The same records as ``StoredRecord`` objects (what ``read`` returns)."""
        if self.built_from is not None:
            return list(self.built_from)
        n = len(self.offsets)
        return list(
            map(
                StoredRecord,
                repeat(self.topic, n),
                repeat(self.partition, n),
                self.offsets,
                self.timestamps,
                self.keys,
                self.values,
                self.header_rows(),
            )
        )

    @classmethod
    def from_records(
        cls, topic: str, partition: int, records: Sequence[StoredRecord]
    ) -> RecordColumns:
        """Columns of records read one by one (headers kept per record)."""
        return cls(
            topic,
            partition,
            [r.offset for r in records],
            [r.timestamp_ms for r in records],
            [r.key for r in records],
            [r.value for r in records],
            headers=[r.headers for r in records],
            built_from=records,
        )


def appended_columns(
    topic: str,
    metas: Sequence[RecordMetadata],
    keys: list[bytes | None],
    values: list[bytes | None],
    header_names: tuple[str, ...],
    header_columns: Sequence[list[bytes]],
) -> list[RecordColumns]:
    """What one append to ``topic`` stored, as ``read_columns`` would return it (one
    ``RecordColumns`` per partition, ascending), built from the appended record ``i``'s key,
    value and headers (header ``j`` of record ``i`` is ``header_columns[j][i]``, or
    ``header_columns[j][0]`` for every record when that column holds one item) and ``metas``,
    the append's answer, instead of read back. The caller vouches for both; a reader that must
    prove what is in the log reads it instead."""
    n = len(metas)
    if not n:
        return []

    def part(p: int, idx: list[int] | None, offsets: Any, stamps: list[int]) -> RecordColumns:
        """Partition ``p``'s records: those at ``idx`` of the append (None: all of them);
        ``offsets`` given as a range, or as the append's list to pick from."""
        size, pick = (n, _same_list) if idx is None else (len(idx), _picker(idx))
        offs = offsets if isinstance(offsets, range) else pick(offsets)
        if (
            not isinstance(offs, range)
            and offs[-1] - offs[0] == size - 1
            and offs == list(range(offs[0], offs[-1] + 1))
        ):
            offs = range(offs[0], offs[-1] + 1)
        return RecordColumns(
            topic,
            p,
            offs,
            pick(stamps),
            pick(keys),
            pick(values),
            header_names,
            tuple([c[0]] * size if len(c) == 1 else pick(c) for c in header_columns),
        )

    if isinstance(metas, AppendedMetadata):  # the answer's columns: no record to walk
        return [
            part(p, idx, range(base, base + (n if idx is None else len(idx))), metas.timestamps)
            for p, base, idx in metas.parts
        ]
    parts = [m.partition for m in metas]
    offsets = [m.offset for m in metas]
    stamps = [m.timestamp_ms for m in metas]
    groups: dict[int, list[int] | None]
    if parts.count(parts[0]) == n:
        groups = {parts[0]: None}
    else:  # a stable sort keeps append order within a partition (C-level, not a Python loop)
        order = sorted(range(n), key=parts.__getitem__)
        groups = {}
        start = 0
        for p in sorted(set(parts)):
            stop = start + parts.count(p)
            groups[p] = order[start:stop]
            start = stop
    return [part(p, groups[p], offsets, stamps) for p in sorted(groups)]


def _same_list(seq: list[Any]) -> list[Any]:
    return seq


def _picker(idx: list[int]) -> Callable[[list[Any]], list[Any]]:
    """The items of a list at ``idx``, as a list (``itemgetter``: one C-level call)."""
    if len(idx) == 1:
        i = idx[0]
        return lambda seq: [seq[i]]
    get = itemgetter(*idx)
    return lambda seq: list(get(seq))


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Records ``start`` to ``stop`` (exclusive) of one stored batch of the embedded log, still
    in its stored sections (``adapters/sqlite_log/batch.py`` describes the format): the body
    already checked (CRC, the batch's record count) and inflated. Record ``i`` of the batch
    has offset ``base_offset + i``. Readers that understand the format (the native ledger
    hash, ``native/src/stored_leaves.rs``) read it in place; others use
    ``EncodedColumns.columns``. The SQLite log's reader (``open_batch``) returns this type and
    decodes from it, records ``start`` to ``stop`` only."""

    base_offset: int
    start: int
    stop: int
    count: int
    flags: int
    layout: int
    base_timestamp: int
    body: bytes
    pos: int
    """where the body's sections start"""


@dataclass(frozen=True, slots=True)
class EncodedColumns:
    """What ``EventLog.read_encoded`` returns: the records ``read_columns`` returns with the
    same arguments, as the stored batches that hold them, in offset order, plus the adapter's
    own decoder of those batches (``decode(batches)`` MUST return what ``read_columns``
    returns for exactly those records, and raise what it raises for a batch that does not
    parse)."""

    topic: str
    partition: int
    batches: tuple[EncodedBatch, ...]
    decode: Callable[[str, int, Sequence[EncodedBatch]], RecordColumns]
    auth: object = None
    """The adapter's own, opaque to callers: what an authenticating log read in the same
    snapshot as the batches (embedded: their stored bytes, MACs and the partition's seal), so
    that ``EventLog.check_records(..., read=...)`` checks the very bytes read. Kept whole by
    :meth:`below` and :meth:`slice`."""

    def __len__(self) -> int:
        return sum(b.stop - b.start for b in self.batches)

    def next_offset(self) -> int:
        """The offset after the last record (raises ``IndexError`` when empty)."""
        last = self.batches[-1]
        return last.base_offset + last.stop

    def below(self, end: int) -> EncodedColumns:
        """The records whose offset is below ``end``."""
        kept: list[EncodedBatch] = []
        for b in self.batches:
            stop = min(b.stop, end - b.base_offset)
            if stop <= b.start:
                break
            kept.append(b if stop == b.stop else replace(b, stop=stop))
        if len(kept) == len(self.batches) and (not kept or kept[-1] is self.batches[-1]):
            return self
        return EncodedColumns(self.topic, self.partition, tuple(kept), self.decode, self.auth)

    @property
    def offsets(self) -> list[int]:
        """Every record's offset, in order."""
        return list(
            chain.from_iterable(
                range(b.base_offset + b.start, b.base_offset + b.stop) for b in self.batches
            )
        )

    def slice(self, a: int, b: int) -> EncodedColumns:
        """Records ``a`` to ``b`` (exclusive; ``0 <= a <= b <= len(self)``) of these."""
        kept: list[EncodedBatch] = []
        at = 0  # records before the current batch
        for x in self.batches:
            n = x.stop - x.start
            lo, hi = max(a - at, 0), min(b - at, n)
            if lo < hi:
                whole = lo == 0 and hi == n
                kept.append(x if whole else replace(x, start=x.start + lo, stop=x.start + hi))
            at += n
            if at >= b:
                break
        return EncodedColumns(self.topic, self.partition, tuple(kept), self.decode, self.auth)

    def columns(self) -> RecordColumns:
        """The same records decoded by the adapter (``read_columns``'s result)."""
        return self.decode(self.topic, self.partition, self.batches)


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where an appended record landed."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


class AppendedMetadata(Sequence[RecordMetadata]):
    """An append's answer as columns: where each partition's records start and the records'
    timestamps, instead of a ``RecordMetadata`` per record (about 0.4 us each, the largest
    per-record cost of a columnar append). It is the sequence of the ``RecordMetadata`` the
    append answers, in append order, built the first time a record is asked for; callers that
    only need columns (``appended_columns``, counts) never build them.

    ``parts``: ``(partition, base offset, positions)`` per partition written, ascending;
    positions are the indexes in the append of that partition's records, in offset order, or
    None for all of them in order. Offsets are dense from the base (the port's contract)."""

    __slots__ = ("_built", "parts", "timestamps", "topic")

    def __init__(
        self,
        topic: str,
        timestamps: list[int],
        parts: Sequence[tuple[int, int, list[int] | None]],
    ) -> None:
        self.topic, self.timestamps, self.parts = topic, timestamps, tuple(parts)
        self._built: list[RecordMetadata] | None = None

    def _new(self, n: int, partitions: Iterable[int], offsets: Iterable[int]) -> list[Any]:
        """``n`` records' ``RecordMetadata``; adapters override it with a faster builder."""
        topics = repeat(self.topic, n)
        return list(map(RecordMetadata, topics, partitions, offsets, self.timestamps))

    def as_list(self) -> list[RecordMetadata]:
        """The records' metadata as a list (built once; the same list on every call)."""
        built = self._built
        if built is None:
            n = len(self.timestamps)
            if len(self.parts) == 1 and self.parts[0][2] is None:
                p, base, _ = self.parts[0]
                built = self._new(n, repeat(p, n), range(base, base + n))
            else:
                partitions = [0] * n
                offsets = [0] * n
                for p, base, idx in self.parts:
                    pick = range(n) if idx is None else idx
                    for o, i in enumerate(pick, base):
                        partitions[i], offsets[i] = p, o
                built = self._new(n, partitions, offsets)
            self._built = built
        return built

    def __len__(self) -> int:
        return len(self.timestamps)

    def __getitem__(self, i: Any) -> Any:
        return self.as_list()[i]

    def __iter__(self) -> Iterator[RecordMetadata]:
        return iter(self.as_list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (AppendedMetadata, list, tuple)):
            return self.as_list() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a sequence compared by value, like a list

    def __repr__(self) -> str:
        return f"AppendedMetadata({self.topic!r}, {len(self)} records, parts={self.parts!r})"


def metadata_list(metas: Sequence[RecordMetadata]) -> list[RecordMetadata]:
    """``metas`` as a list (an ``AppendedMetadata`` builds its records once)."""
    if isinstance(metas, AppendedMetadata):
        return metas.as_list()
    return metas if isinstance(metas, list) else list(metas)


@dataclass(frozen=True, slots=True)
class IdempotenceKey:
    """Identifies a batch for idempotent appends: a producer's id and its batch sequence number.

    Sequences are per (producer id, topic) and start at 0.
    """

    producer_id: str
    sequence: int


class Transaction(abc.ABC):
    """Appends and offset commits that become visible together on ``commit``."""

    @abc.abstractmethod
    def append(self, topic: str, records: Sequence[Record]) -> list[RecordMetadata]:
        """Stage records; metadata (offsets) is final once the transaction commits."""

    def append_columns(self, topic: str, batch: ColumnBatch) -> Sequence[RecordMetadata]:
        """Stage the records of ``batch`` exactly as ``append(topic, batch.records())`` would
        (same stored records, offsets and metadata); this default does just that. Adapters
        that store columns override it to skip the per-record objects."""
        batch.check(topic)
        return self.append(topic, batch.records())

    @abc.abstractmethod
    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Stage the consumer group's next offsets."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make everything staged visible atomically."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard everything staged."""


@dataclass(frozen=True, slots=True)
class LogProblem:
    """A stored object of the log that fails its authentication (see ``check_records``)."""

    topic: str
    partition: int | None
    offset: int | None
    what: str

    def describe(self) -> str:
        where = self.topic if self.partition is None else f"{self.topic}[{self.partition}]"
        at = "" if self.offset is None else f" at offset {self.offset}"
        return f"event log {where}{at}: {self.what}"


class AppendSignal:
    """A counter of committed writes that waiters can block on (an adapter's ``wait_for_append``).

    ``bump(topics)`` after every committed write, naming the topics it appended records to (none
    for a write that appended no record: a group's offsets, a new topic); ``wait(seen,
    timeout_s)`` returns as soon as the counter differs from ``seen`` (at once if it already
    does), else after ``timeout_s``. With ``topics``, the counter (``generation_of``) counts only
    appends to those topics, so a follower of one topic sleeps through the others' appends and
    offset commits. A waiter reads the counter *before* checking the log, so an append landing
    between its check and its wait is never missed.
    """

    __slots__ = ("_by_topic", "_cv", "_generation")

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._generation = 0
        self._by_topic: dict[str, int] = {}

    @property
    def generation(self) -> int:
        return self._generation

    def generation_of(self, topics: Iterable[str] | None = None) -> int:
        """Every write (``topics`` None), or the appends to ``topics``."""
        if topics is None:
            return self._generation
        by_topic = self._by_topic
        return sum(by_topic.get(t, 0) for t in topics)

    def bump(self, topics: Iterable[str] = ()) -> None:
        with self._cv:
            self._generation += 1
            for t in topics:
                self._by_topic[t] = self._by_topic.get(t, 0) + 1
            self._cv.notify_all()

    def wait(self, seen: int, timeout_s: float, topics: Iterable[str] | None = None) -> int:
        if topics is not None:
            topics = tuple(topics)
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while (now := self.generation_of(topics)) == seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)  # woken by every bump: re-check the topics' counter
            return now


class EventLog(abc.ABC):
    """A Kafka-shaped, append-only, partitioned log."""

    # Whether the log lives in a server, so that every ``end_offsets`` (a fold's catch-up) is a
    # network round trip: an event loop then asks it from the thread pool, shared by the
    # requests waiting (``hub.api.auth.KeyChecks``); a local log is asked in place (a hop to
    # the pool would cost more than the read).
    remote: bool = False
    # Whether a committed ``transaction`` is durable by the log's own local commit (one write
    # and fsync of one file, as ``synchronous`` is set), so that a caller may store the policy
    # decision that allowed its records in the same transaction instead of a commit of its own
    # (the ingest routes). A log whose commit is a broker protocol says False: its decisions
    # keep the decision flusher's own append.
    commits_locally: bool = False

    # -- topics -------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        """Create a topic, or return it if it already exists with the same partition count."""

    @abc.abstractmethod
    def topics(self) -> list[TopicInfo]:
        """All topics, sorted by name."""

    @abc.abstractmethod
    def topic(self, name: str) -> TopicInfo:
        """One topic; raises ``TopicNotFound``."""

    # -- writing ------------------------------------------------------------------------------
    @abc.abstractmethod
    def append(
        self,
        topic: str,
        records: Sequence[Record],
        *,
        idempotence: IdempotenceKey | None = None,
    ) -> list[RecordMetadata]:
        """Append a batch atomically and durably; metadata is in the order of ``records``."""

    def append_columns(self, topic: str, batch: ColumnBatch) -> Sequence[RecordMetadata]:
        """Append ``batch`` (see ``ColumnBatch``) exactly as ``append(topic, batch.records())``
        would: atomically and durably, the same stored records, offsets and metadata. This
        default does just that; adapters that store columns override it to skip the
        per-record objects."""
        batch.check(topic)
        return self.append(topic, batch.records())

    @abc.abstractmethod
    def transaction(self, transactional_id: str) -> AbstractContextManager[Transaction]:
        """A transaction; committed when the ``with`` block exits normally, aborted otherwise."""

    # -- reading ------------------------------------------------------------------------------
    @abc.abstractmethod
    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[StoredRecord]:
        """Up to ``max_records`` committed records from ``offset`` on, in offset order."""

    def read_columns(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> RecordColumns:
        """What ``read`` returns, as columns (see ``RecordColumns``). This default calls
        ``read``; adapters that store batches as columns override it to skip the per-record
        objects."""
        return RecordColumns.from_records(
            topic, partition, self.read(topic, partition, offset, max_records)
        )

    def read_encoded(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> EncodedColumns | None:
        """The records ``read_columns`` returns, as the stored batches that hold them (see
        ``EncodedColumns``), or None when this log does not store the embedded log's batch
        format (the default: Kafka, a tiered log's cold tier). An adapter that offers it
        MUST check and raise as ``read_columns`` does for bad arguments and for stored batches
        that fail their checks (CRC, record count, inflation)."""
        return None

    def on_stored(
        self, receiver: Callable[[str, int, int, int, int, Callable[[], EncodedColumns]], None]
    ) -> Callable[[], None]:
        """After each append committed through this object, call ``receiver(topic, partition,
        first, end, reach, open)`` per partition written: the records ``first`` to ``end``
        (exclusive), ``reach`` the offset after them and after the transaction marker that
        follows, if any, and ``open()`` what ``read_encoded`` would return for them (its
        ``auth`` the adapter's proof of the append, which ``check_records(..., read=...)``
        checks against the log as it is then; ``open`` raises as a read of a corrupt batch
        does). Called in the appending thread after the commit: MUST return at once. Returns
        the unsubscribe. The default never calls (a log without stored batches: Kafka, a cold
        tier)."""
        return _nothing

    def holds_records(self, topic: str, partition: int, start: int, end: int) -> bool:
        """Whether a record (not a transaction marker, not below the beginning offset) lies in
        ``[start, end)``. This default reads; adapters that know their batches' extents
        override it to answer without decoding one."""
        return any(r.offset < end for r in self.read(topic, partition, start, 1))

    @abc.abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next appended record will get (the high watermark)."""

    def all_end_offsets(self) -> dict[str, dict[int, int]]:
        """``end_offsets`` of every topic ``topics()`` lists, by name (what a ledger sync
        covers). This default asks topic by topic; an adapter whose ``topics()`` also fetches
        configs, or that can ask for many partitions at once, overrides it (one answer for all,
        nothing a caller does not use)."""
        return {t.name: self.end_offsets(t.name) for t in self.topics()}

    def stable_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset below which everything is committed (Kafka's LSO)."""
        return self.end_offsets(topic)

    def tail_quiet(self, topic: str, positions: Mapping[int, int]) -> bool:
        """Whether this object can tell WITHOUT a round trip that no record was committed to
        ``topic`` at or past ``positions`` (per partition, the caller's next offset to read)
        as far as it has learnt: True only then. False: it cannot tell, or something is
        there; the caller asks ``end_offsets``. An adapter that answers True keeps a watcher
        of the topic that learns of other writers' commits on its own (Kafka: a consumer
        whose waiting fetch the broker answers when a record commits), started by the first
        call (which answers False); writes through this object are the caller's to see
        (``append_generation``). What it learnt may lag the broker (the watcher's last fetch),
        so a caller bounds in time how long it trusts this instead of asking
        (``core.fold.TopicFold``'s ``watch_s``). This default: always False."""
        return False

    # -- waiting for appends (the latency path of followers) ---------------------------------
    def append_generation(self, topics: Sequence[str] | None = None) -> int:
        """A counter that changes after every write committed through this object (pass it to
        ``wait_for_append``); with ``topics``, after every append of records to one of them.
        Adapters that cannot see appends return 0."""
        return 0

    def wait_for_append(
        self, generation: int, timeout_s: float, topics: Sequence[str] | None = None
    ) -> int:
        """Block until a write committed through this object after ``generation`` was read, or
        until ``timeout_s`` passed; return the current ``append_generation(topics)`` (with
        ``topics``: only an append to one of them wakes the waiter).

        A follower reads the generation, checks the log, then waits: an in-process append wakes
        it at once. Appends this object cannot see (another process on the same file, another
        producer on a broker) are found when the timeout runs out, so ``timeout_s`` stays the
        polling period for those. The default sees nothing and just waits.
        """
        time.sleep(timeout_s)
        return generation

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the first offset still stored (0 until retention removes records)."""
        return {p: 0 for p in range(self.topic(topic).partitions)}

    @abc.abstractmethod
    def delete_records_before(self, topic: str, partition: int, offset: int) -> int:
        """Delete a partition's records below ``offset`` (Kafka's DeleteRecords); the new start.

        Raises the partition's beginning offset to ``offset`` (never lowers it: a smaller offset
        is a no-op) and returns the beginning offset afterwards. Reads MUST NOT return records
        below it; offsets are never reused (the end offset does not move). ``offset`` above the
        end offset MUST raise ``InvalidInput``.
        """

    def scan(
        self, topic: str, partition: int, start: int = 0, batch: int = 10_000
    ) -> Iterator[StoredRecord]:
        """Every record of a partition from ``start`` to the end offset seen at the first read."""
        end = self.end_offsets(topic)[partition]
        offset = start
        while offset < end:
            chunk = self.read(topic, partition, offset, min(batch, end - offset))
            if not chunk:
                # Only marker offsets may be left, or the read came back early (a Kafka
                # consumer right after a broker restart): read once more before stopping.
                chunk = self.read(topic, partition, offset, min(batch, end - offset))
                if not chunk:
                    return
            yield from chunk
            offset = chunk[-1].offset + 1

    # -- integrity ----------------------------------------------------------------------------
    def check_records(  # noqa: B027 - optional hook
        self,
        topic: str,
        partition: int,
        start: int,
        end: int,
        read: Sequence[EncodedColumns] = (),
    ) -> None:
        """Raise ``LogTampered`` if the stored records in ``[start, end)`` fail the log's own
        authentication, naming the first bad offset.

        An adapter that authenticates its storage (the embedded log: a MAC chain per partition
        under a key kept outside the log file) MUST check every stored batch overlapping the
        range and its link to the batch before it. ``read``: what the caller read of this
        partition with ``read_encoded`` for the range; when those reads cover the range, the
        adapter MAY check the bytes they carry (``EncodedColumns.auth``) instead of reading the
        range again, and then checks what the caller used; else it reads. Adapters whose
        storage is protected by the server they talk to (Kafka: broker ACLs, replication)
        check nothing: the default.
        """

    def integrity_problems(
        self, checked: Mapping[tuple[str, int], tuple[int, int]] | None = None
    ) -> list[LogProblem]:
        """Every stored object that fails the log's own authentication (topics, partition
        bounds, batches), first problem per partition; empty when sound or not authenticated.
        ``checked``: per (topic, partition), an offset range ``[lo, hi)`` whose stored batches
        the caller had ``check_records(..., read=...)`` authenticate on the bytes it read, in
        this process, without a problem (``hub ledger verify``: step 1's reads); an adapter MAY
        skip re-reading those batches and check the rest of the partition (its seal, the
        batches outside the range and their links to the range) as usual."""
        return []

    # -- consumer groups ----------------------------------------------------------------------
    @abc.abstractmethod
    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the next offset to read, per partition, for a consumer group."""

    @abc.abstractmethod
    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed next offsets for a topic (partitions never committed absent)."""

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. The log MUST NOT be used afterwards."""
