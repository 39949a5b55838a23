"""Projection definitions as data: tables, columns, windows, and the pure fold they run.

A definition names the topics it reads, the tables it writes and one pure ``fold`` function. The
same definition is meant to run later on Flink, so nothing here does I/O: a fold receives decoded
events (``Event``) and returns rows; state, offsets and storage belong to the runner and the
``ViewStore``.

Table kinds
- ``aggregate``: the fold emits *partial* rows (one per key per batch); the store merges them at
  read time with each column's ``agg`` (sum, min, max, first, last). Partials are associative, so
  the merged view does not depend on how the log was cut into batches.
- ``entity``: one current row per key; the fold receives the stored state and returns the new one.
- ``append``: one row per fact, unique by its key (histories, late side output).

Every row the runner writes carries ``tenant`` (from the ``ce_tenant`` header) and
``src_offsets``: the per-partition ranges of source offsets it reflects, ``[[topic, partition,
first, last, count], ...]`` — bounded by the number of partitions, and exact through ``count``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

ColumnType = Literal["string", "int", "timestamp", "decimal"]
Agg = Literal["key", "sum", "min", "max", "first", "last", "value", "derived"]
TableKind = Literal["aggregate", "entity", "append"]
StoreKind = Literal["analytics", "transactional"]
LateMode = Literal["update", "side"]

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    """A view column. ``scale`` applies to decimals (precision is always 38); ``doc`` says what
    the value means (served by the catalog, ``DESCRIBE`` and ``projections.catalog``)."""

    name: str
    type: ColumnType
    agg: Agg = "value"
    scale: int = 0
    nullable: bool = False
    pii: bool = False  # derived from an Avro field classified ``pii``: masked without pii.read
    expr: str = ""  # agg "derived": "a/b" = a divided by b at read time (e.g. VWAP)
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    kind: TableKind
    columns: tuple[Column, ...]
    doc: str = ""

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.agg == "key")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded event as folds see it: position, envelope and the Avro datum (Decimal money)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    event_type: str
    tenant: str
    value: Mapping[str, Any]

    @property
    def pos(self) -> int:
        """A total order within a topic: partition in the high bits, offset in the low 40."""
        return (self.partition << 40) | self.offset


@dataclass(frozen=True, slots=True)
class Windowing:
    """Event-time windows and watermark of a windowed projection (see ``projections.windows``)."""

    allowed_lateness_us: int = 0
    late_mode: LateMode = "update"


@dataclass(frozen=True, slots=True)
class FoldContext:
    """What a fold may know besides its events: per-partition watermarks and lateness rules."""

    windowing: Windowing = field(default_factory=Windowing)
    params: Mapping[str, Any] = field(default_factory=dict)


# A fold for aggregate/append tables: events of ONE partition chunk -> rows per table.
BatchFold = Callable[[Sequence[Event], "WindowState", FoldContext], dict[str, list[Row]]]
# A fold for entity tables: (current row or None, event) -> new row.
EntityFold = Callable[[Row | None, Event, FoldContext], Row]


@dataclass(frozen=True, slots=True)
class EntityRule:
    """How one event type updates one entity table: its key and its pure fold."""

    table: str
    event_types: tuple[str, ...]
    key: Callable[[Event], tuple[Any, ...]]
    fold: EntityFold


@dataclass(frozen=True, slots=True)
class Projection:
    """One projection: a name, its source topics, its tables, and its pure logic.

    ``fold`` handles aggregate and append tables; ``entities`` entity tables (applied in log
    order per key); a projection may have both.
    """

    name: str
    store: StoreKind
    topics: tuple[str, ...]
    tables: tuple[Table, ...]
    fold: BatchFold | None = None
    entities: tuple[EntityRule, ...] = ()
    # The same aggregate fold over column batches (``projections.sqlfolds``); None = Python only.
    columnar: Callable[..., Any] | None = None
    windowed: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""
    # event type -> the Avro field holding its event time (time travel by ``event_time``)
    event_time: Mapping[str, str] = field(default_factory=dict)

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


class WindowState:
    """Per-partition watermarks: max event time seen in each (topic, partition), in µs.

    A partition's watermark depends only on the log's contents up to an offset, never on how
    records were batched or how partitions interleaved, so a rebuild reproduces every late
    decision exactly. (Flink combines partitions with a min; that makes lateness depend on
    arrival timing, which a replayable view must not.)
    """

    def __init__(self, max_seen: Mapping[tuple[str, int], int] | None = None) -> None:
        self.max_seen: dict[tuple[str, int], int] = dict(max_seen or {})

    def watermark(self, topic: str, partition: int, lateness_us: int) -> int | None:
        seen = self.max_seen.get((topic, partition))
        return None if seen is None else seen - lateness_us

    def observe(self, topic: str, partition: int, event_us: int) -> None:
        k = (topic, partition)
        if event_us > self.max_seen.get(k, -(1 << 62)):
            self.max_seen[k] = event_us


def event_time_us(p: Projection, e: Event) -> int:
    """When ``e`` happened, in µs: its ``p.event_time`` field (e.g. ``executed_at``), else the
    log time of the record (an event type without a time field, or a null one)."""
    name = p.event_time.get(e.event_type)
    value = e.value.get(name) if name else None
    return to_micros(value) if value is not None else e.timestamp_ms * 1000


def to_micros(value: datetime | int) -> int:
    """fastavro returns timestamp-micros as aware datetimes; views keep integer micros (exact)."""
    if isinstance(value, int):
        return value
    epoch = _EPOCH if value.tzinfo is not None else _NAIVE_EPOCH
    return (value - epoch) // _MICRO


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))
