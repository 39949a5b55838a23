"""The Kafka log's batches: a validated append (records, partitions, timestamps, size), an
idempotent producer's last state, delivery reports collected in record order, and stored records
built from consumed messages (with the hub's idempotence header stripped for callers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, Final, cast

from confluent_kafka import (
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    Message,
)

from core.errors import HubError, InvalidInput
from core.ports.eventlog import (
    AppendedMetadata,
    ColumnBatch,
    Headers,
    Record,
    RecordMetadata,
    StoredRecord,
    is_transactional_append,
)
from core.ports.eventlog_checks import MAX_TIMESTAMP_MS, record_problem
from domain.envelope import duplicated_envelope_name

try:  # n metadata objects in one call (native/src/metadata.rs); absent: _metadata_py runs
    from hub_native import batch_metadata as _batch_metadata
except ImportError:  # pragma: no cover - built by `make setup`
    _batch_metadata = None
try:  # the column append's produce loop in one call (native/src/kafka_produce.rs)
    from hub_native import produce_columns as _produce_columns
except ImportError:  # pragma: no cover - built by `make setup`
    _produce_columns = None
try:  # a run of consumed messages as stored records in one call (native/src/kafka_stored.rs)
    from hub_native import stored_run as _stored_run
except ImportError:  # pragma: no cover - a library built before it: stored_run_py runs
    _stored_run = None
try:  # the same loop with one reused header dict (native/src/kafka_produce_dict.rs)
    from hub_native import produce_columns_dict as _produce_columns_dict
except ImportError:  # pragma: no cover - a library built before it: the list loop runs
    _produce_columns_dict = None

IDEM_HEADER: Final = "__hub.idem"  # reserved: the idempotence header (stripped by reads)


# -- input validation (shared with every adapter: hub.ports.eventlog_checks) -----------------------
def check_record(r: object, i: int, partitions: int, topic: str) -> Record:
    problem = record_problem(r, i, partitions, topic)
    if problem is not None:
        raise problem
    record = cast(Record, r)  # record_problem checked it
    for _name, _ in record.headers:
        if _name == IDEM_HEADER:
            raise InvalidInput(
                f"Record {i} of the batch for topic {topic!r} uses the header name "
                f"{IDEM_HEADER!r}, which is reserved."
            )
    return record


_BYTES_OR_NONE = frozenset((bytes, type(None)))
_COLUMN_TYPES = (list, tuple)


def columns_valid(batch: ColumnBatch, reserved: str) -> bool:
    """True when every record of ``batch.records()`` passes ``check_record`` (``records_valid``
    and ``check_envelope_headers`` with ``reserved`` refused): checked once per column, and the
    header names once per batch, instead of once per record. Call ``batch.check`` first.

    Like ``records_valid``, False does NOT mean a record is bad: anything unusual (a bytes
    subclass, a column of another sequence type, a timestamp of 0, which librdkafka reads as
    "now") answers False, and the caller appends ``batch.records()``, which stores or refuses
    it with the exact error. It never answers True for a batch that ``append`` would refuse."""
    ts = batch.timestamp_ms
    if ts is not None and (type(ts) is not int or not 0 < ts <= MAX_TIMESTAMP_MS):
        return False
    if not set(map(type, batch.keys)) <= _BYTES_OR_NONE:
        return False
    if not set(map(type, batch.values)) <= _BYTES_OR_NONE:
        return False
    names = batch.header_names
    if type(names) is not tuple or not set(map(type, names)) <= {str} or reserved in names:
        return False
    for col in batch.header_columns:
        if type(col) is bytes:
            continue  # one value every record shares
        if type(col) not in _COLUMN_TYPES or not set(map(type, col)) <= {bytes}:
            return False
    return duplicated_envelope_name(names) is None


def header_lists(batch: ColumnBatch) -> Iterator[Any]:  # list[tuple[str, bytes]] | None
    """Every record's headers as the list ``Producer.produce`` takes (None: no headers), made
    one at a time as the produce loop asks: each list and its pairs are freed once produced,
    so a batch leaves no tracked objects per record behind for the garbage collector (it
    cost as much as the list building itself when every row was kept until the append
    ended)."""
    n = len(batch.values)
    if not batch.header_names:
        return repeat(None, n)
    cols = [
        repeat((name, c), n) if type(c) is bytes else zip(repeat(name), c)
        for name, c in zip(batch.header_names, batch.header_columns, strict=True)
    ]
    return map(list, zip(*cols, strict=True))


def produce_columns_py(
    produce: Callable[..., Any],
    topic: str,
    batch: ColumnBatch,
    ts: int,
    on_first: Callable[..., Any] | None,
    on_last: Callable[..., Any] | None,
) -> None:
    """The reference of ``hub_native.produce_columns``: ``produce`` (``Producer.produce``) of
    every record of a checked column batch, stamped ``ts``, its headers from ``header_lists``;
    the first record reports to ``on_first`` (pass ``on_first or on_last`` for a batch of one),
    the last to ``on_last``, the others to none. Positional arguments in confluent-kafka's
    order (topic, value, key, partition, callback, on_delivery, timestamp, headers): no keyword
    matching per record (2.9 -> 2.4 us a call, 13 headers). The report goes in ``callback``:
    an explicit ``callback=None`` makes confluent-kafka ignore ``on_delivery``."""
    n = len(batch.values)
    rows = zip(batch.keys, batch.values, header_lists(batch), strict=True)
    for i, (key, value, headers) in enumerate(rows):
        cb = on_first if i == 0 else on_last if i == n - 1 else None
        produce(topic, value, key, 0, cb, None, ts, headers)


def produce_columns(
    produce: Callable[..., Any],
    topic: str,
    batch: ColumnBatch,
    ts: int,
    on_first: Callable[..., Any] | None,
    on_last: Callable[..., Any] | None,
) -> None:
    """``produce_columns_py``, in one native call where the columns are lists or tuples: the
    Python loop, its row tuples and ``header_lists``' ``zip``/``map`` frames cost ~0.3 us a
    record of the ~2.5 that ``produce`` itself takes (``docs/benchmarks/s17-kafka.md``).
    Distinct header names (every hub batch): each record's headers are one dict the loop
    reuses (``produce_columns_dict``: no list and tuples per record, and confluent-kafka's
    dict path skips its per-pair tuple check; the same pairs in the same order on the wire)."""
    args = (
        produce,
        topic,
        batch.keys,
        batch.values,
        batch.header_names,
        batch.header_columns,
        ts,
        on_first,
        on_last,
    )
    if _produce_columns_dict is not None and _produce_columns_dict(*args):
        return
    if _produce_columns is not None and _produce_columns(*args):
        return
    produce_columns_py(produce, topic, batch, ts, on_first, on_last)


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A validated batch: the records, each one's partition and timestamp, and its size."""

    topic: str
    records: Sequence[Record]
    partitions: list[int]
    timestamps: list[int]
    size: int

    @property
    def single_record_batch(self) -> bool:
        """Whether the whole batch fits one Kafka record batch of one partition."""
        return not is_transactional_append(len(set(self.partitions)), self.size, len(self.records))


@dataclass(slots=True)
class ProducerState:
    """The last sequence of an idempotent producer on a topic and where that batch landed."""

    seq: int
    meta: list[RecordMetadata]
    intent: dict[str, Any] | None = None  # an unverified intent (step 1 without step 3)


class Delivery:
    """Collects delivery reports of one batch, in record order."""

    def __init__(self, topic: str, n: int) -> None:
        self.topic = topic
        self.meta: list[RecordMetadata | None] = [None] * n
        self.errors: list[KafkaError] = []
        self.pending = n

    def callback(self, i: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self.pending -= 1
            if err is not None:
                self.errors.append(err)
                return
            offset = msg.offset()
            partition = msg.partition()
            assert offset is not None and partition is not None
            self.meta[i] = RecordMetadata(self.topic, partition, offset, msg.timestamp()[1])

        return on_delivery

    def metadata(self) -> list[RecordMetadata]:
        return [m for m in self.meta if m is not None]


class BatchDelivery:
    """Delivery reports of a batch that is ONE Kafka record batch of one partition, collected
    without a Python call, and without a report, per record: only the FIRST and the LAST record
    carry a callback (``on_first``, ``on_last``); the others are produced without one, so
    confluent-kafka allocates no per-message state and builds no ``Message`` for them (that
    cost about as much as librdkafka's own produce).

    Why two reports are enough (no record between them can fail alone, unnoticed):
    - every error a ProduceRequest answers (and every retry decision, fatal idempotence error or
      purge) applies to a whole record batch, and the batch is ONE record batch (long linger,
      ``batch.num.messages``/``batch.size`` above what ``is_transactional_append`` lets through,
      one ``flush``), so the first and last record share its fate;
    - the one error librdkafka raises per message, ``message.timeout.ms`` in its local queue,
      times messages out in the order they were produced (each one's deadline is its enqueue
      time plus the same timeout), so the failed records are a prefix and include the first;
    - errors at ``produce()`` time raise there, and the caller purges the producer.
    The assumption "one record batch" is also checked, not trusted: ``metadata`` raises unless
    the last record's offset is exactly the first one's plus ``n - 1`` (a split batch, a
    missing record or another producer's record in between would break that).

    Each report goes to a dict's ``__setitem__`` (a C call, no Python frame) keyed by its error:
    ``None`` for a delivered record, any other key is a failure. The producer MUST carry no
    other records meanwhile: ``pending`` is its queue length.
    """

    def __init__(
        self, topic: str, partition: int, timestamps: Sequence[int] | int, n: int, producer: Any
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.timestamps = timestamps  # one per record, or the one they all carry
        self.n = n
        self.first_reports: dict[KafkaError | None, Message] = {}
        self.reports: dict[KafkaError | None, Message] = {}  # the last record's
        # a batch of one record: its one report is the first's and the last's
        self.on_first = self.first_reports.__setitem__ if n > 1 else None
        self.on_last = self.reports.__setitem__
        self._producer = producer

    @property
    def pending(self) -> int:
        return len(self._producer)

    @property
    def errors(self) -> list[KafkaError]:
        return [e for e in (*self.first_reports, *self.reports) if e is not None]

    def metadata(self) -> list[RecordMetadata]:
        """The batch's ``RecordMetadata``, one per record (``answer`` as a list)."""
        return self.answer().as_list()

    def answer(self) -> KafkaAppended:
        """Where the batch landed, as columns (``KafkaAppended``: no ``RecordMetadata`` is
        built until one is asked for), once the first and last reports prove it is ONE run
        of ``n`` consecutive offsets."""
        last = self.reports[None]
        end = last.offset()
        n = self.n
        assert end is not None and last.partition() == self.partition
        first = end - n + 1
        if n > 1:
            start = self.first_reports[None].offset()
            if start != first:
                raise HubError(
                    f"Kafka stored the batch of {n} records for {self.topic!r} partition "
                    f"{self.partition} at offsets {start}..{end}, not as one record batch of "
                    f"{n} consecutive offsets; the append is refused and its outcome unknown: "
                    "read the partition from that offset before retrying.",
                    code="kafka_error",
                )
        kind, stamp = last.timestamp()
        # the broker stamped the whole batch (log append time), or each record keeps its own
        stamps = self.timestamps
        if kind == TIMESTAMP_LOG_APPEND_TIME:
            stamps = stamp
        # one int repeated: a list of n pointers to it (one allocation, nothing per record)
        listed = [stamps] * n if isinstance(stamps, int) else list(stamps)
        return KafkaAppended(self.topic, listed, ((self.partition, first, None),))


class KafkaAppended(AppendedMetadata):
    """The Kafka log's columnar append answer: ``AppendedMetadata`` whose records, when asked
    for, are made in one native call (``hub_native.batch_metadata``) for the one-partition
    run a column append always is; anything else (or no native module) takes the port's
    builder, the reference."""

    __slots__ = ()

    def as_list(self) -> list[RecordMetadata]:
        if self._built is None and _batch_metadata is not None and len(self.parts) == 1:
            p, base, idx = self.parts[0]
            if idx is None:
                n = len(self.timestamps)
                made = _batch_metadata(RecordMetadata, self.topic, p, base, n, self.timestamps)
                if made is not None:
                    self._built = made
        return super().as_list()


def _metadata_py(
    topic: str, partition: int, first: int, n: int, stamps: int | Sequence[int]
) -> list[RecordMetadata]:
    """The reference of ``hub_native.batch_metadata``: n records at offsets ``first``.., each
    with its own timestamp (a sequence) or all with the one given."""
    if isinstance(stamps, int):
        return [RecordMetadata(topic, partition, first + i, stamps) for i in range(n)]
    return [RecordMetadata(topic, partition, first + i, ts) for i, ts in enumerate(stamps)]


_HEADER_VALUE: Final = itemgetter(1)
_BYTES_ONLY: Final = frozenset({bytes})


def stored_record(topic: str, partition: int, offset: int, msg: Message) -> StoredRecord:
    raw: list[tuple[str, bytes | str | None]] = msg.headers() or []  # type: ignore[assignment]
    headers: Headers
    if _BYTES_ONLY.issuperset(map(type, map(_HEADER_VALUE, raw))):
        # every value is bytes already (what a consumer gets, unless a header has no value):
        # the pairs are checked and taken as they are, in C, not converted one by one in
        # Python (that conversion was about a third of a live projection step's Kafka read)
        headers = tuple(raw)  # type: ignore[arg-type]
    else:
        headers = tuple(
            (k, b"" if v is None else v if isinstance(v, bytes) else v.encode()) for k, v in raw
        )
    key = msg.key()
    value = msg.value()
    return StoredRecord(
        topic,
        partition,
        offset,
        msg.timestamp()[1],
        key if key is None or isinstance(key, bytes) else key.encode(),
        value if value is None or isinstance(value, bytes) else value.encode(),
        headers,
    )


def stored_run_py(
    cls: type[StoredRecord],
    topic: str,
    partition: int,
    msgs: Sequence[Message],
    start: int,
    position: int,
    end: int,
    most: int,
) -> tuple[list[StoredRecord], int]:
    """The reference of ``hub_native.stored_run``: ``stored_record`` of ``msgs[start:]``, in
    order, while each message is a plain record (no error, an offset at least ``position``
    and above the previous one, every header value, the key and the value ``bytes`` or None)
    and until ``most`` records are made or one's offset + 1 reaches ``end``; with the index
    of the first message not taken. A message that is not plain ends the run untouched: the
    caller's per-message loop handles it (an end-of-partition event, a skipped offset, a
    header without a value) exactly as before."""
    out: list[StoredRecord] = []
    i, n = start, len(msgs)
    while i < n and len(out) < most:
        msg = msgs[i]
        if msg.error() is not None:
            break
        o = msg.offset()
        if o is None or o < position:
            break
        raw: list[Any] = msg.headers() or []  # type: ignore[assignment]
        if not _BYTES_ONLY.issuperset(map(type, map(_HEADER_VALUE, raw))):
            break
        key = msg.key()
        value = msg.value()
        if not _BYTES_OR_NONE.issuperset((type(key), type(value))):
            break
        out.append(cls(topic, partition, o, msg.timestamp()[1], key, value, tuple(raw)))
        position = o + 1
        i += 1
        if position >= end:
            break
    return out, i


def stored_run(
    topic: str,
    partition: int,
    msgs: Sequence[Message],
    start: int,
    position: int,
    end: int,
    most: int,
) -> tuple[list[StoredRecord], int]:
    """``stored_run_py`` in one native call (no Python frame, no dataclass ``__init__`` per
    record: the consume loop's per-record Python was a quarter of a follower's CPU); the
    reference where the library lacks it."""
    if _stored_run is not None:
        made = _stored_run(StoredRecord, topic, partition, msgs, start, position, end, most)
        if made is not None:
            return made  # type: ignore[no-any-return]
    return stored_run_py(StoredRecord, topic, partition, msgs, start, position, end, most)


def strip_idem(r: StoredRecord) -> StoredRecord:
    """The record without the hub's idempotence header."""
    if r.headers and r.headers[-1][0] == IDEM_HEADER:
        return StoredRecord(
            r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, r.headers[:-1]
        )
    return r
