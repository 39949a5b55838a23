"""ViewStore: where projections keep their view rows *and* their committed log positions.

Two footprints: analytics views (chDB embedded, ClickHouse server) and transactional views
(SQLAlchemy: SQLite embedded, PostgreSQL distributed). Table shapes come from the projection
definitions (``core.projection.Table``: aggregate / entity / append).

A *target* is where one run of a projection writes: the live tables (``suffix=""``) or a rebuild
or time-travel copy (``suffix="rebuild_3"``); its offsets are kept under ``target.id``.

Contract
- ``write`` MUST make a batch's rows and its ``Checkpoint`` durable such that, after a crash at
  any point, ``recover`` followed by ``checkpoint`` yields a state where every batch is either
  entirely present (rows and positions) or entirely absent. Transactional stores do this in one
  SQL transaction; stores without transactions write rows (tagged with the batch sequence) before
  the checkpoint row and ``recover`` deletes rows of batches newer than the checkpoint.
- ``write`` MUST call ``hook(step)`` at each numbered step it documents (crash tests kill there).
- Aggregate tables are read merged (``rows``, ``query``): partial rows of one key are combined
  with each column's ``agg``. Entity tables read one row per key, the newest write winning.
- ``rows`` MUST return view rows ordered by the table key (the digest depends on it).
- ``swap`` MUST replace the live tables by the target's and move the target's positions to the
  live id so that no event is lost or counted twice, even after a crash during the swap.
- ``query`` MUST run read-only and only over the granted views, each filtered and masked as its
  ``ViewGrant`` says.
- ``delete_rows_before(target, table, column, before_us)`` (retention) MUST remove exactly the
  view rows of ``target``'s ``table`` (as ``rows`` reads them: an entity row by its newest write,
  an aggregate row with all its partial rows) whose ``column`` is below ``before_us`` (integer
  microseconds; a NULL is never below) and MUST return how many it removed. It MUST be atomic:
  transactional stores delete in one SQL transaction; stores without transactions (ClickHouse)
  in one DELETE statement, which the server completes after a restart, and a rerun with the same
  arguments removes whatever an interrupted one left. It MUST NOT touch any other table, any
  other target's tables, or the positions. It MUST raise ``InvalidInput``, deleting nothing,
  when ``check_time_column`` refuses ``column`` or the target has no such table (``ensure``
  first). With ``keep`` (``{column: values}``, string columns) it MUST leave every row whose
  named column equals one of its values (the data subjects under a legal hold; a NULL matches
  none). ``count_rows_before`` MUST return the count that ``delete_rows_before`` would return
  now, deleting nothing.
- ``erase_values(target, table, column, value, columns, marker)`` (erasure) MUST set each of
  ``columns`` to ``marker`` in exactly the view rows of ``target``'s ``table`` whose ``column``
  equals ``value`` (as ``rows`` reads them: an entity row by its newest write, an aggregate row in
  all its partial rows); a named column that is NULL in such a row stays NULL. It MUST return
  how many view rows matched. It MUST be atomic: transactional stores update in one SQL transaction;
  stores without transactions in one UPDATE mutation that the server completes after a restart
  (a rerun with the same arguments is harmless: the marker is set again). It MUST NOT touch any
  other column, row, table, target, or the positions. It MUST raise ``InvalidInput``, changing
  nothing, when ``check_erasable`` refuses the columns or the target has no such table.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInput
from core.leadership import WriterFence
from core.projection import Column, Row, Table

Hook = Callable[[str], None]


# Rows a retention cut leaves: {string column: values}, e.g. {"account_id": held subjects}.
Keep = Mapping[str, Sequence[str]] | None


def check_keep(table: Table, keep: Keep) -> None:
    """Raise ``InvalidInput`` unless every column ``keep`` names is a string column of
    ``table`` (the values are compared as strings)."""
    for name in keep or {}:
        col = next((c for c in table.columns if c.name == name), None)
        if col is None or col.type != "string":
            raise InvalidInput(
                f"Column {name!r} of table {table.name!r} cannot keep rows: a string column "
                "of the table is needed.",
                code="invalid_keep_column",
            )


def no_hook(step: str) -> None:
    """The default step hook: does nothing."""


def check_time_column(table: Table, column: str) -> Column:
    """The column of ``table`` that retention may cut it by, or ``InvalidInput``: a timestamp
    column, and in an aggregate table a key column (partial rows of one view row share their key,
    while a merged column such as ``min(first_at)`` would cut a view row in half)."""
    usable = sorted(
        c.name
        for c in table.columns
        if c.type == "timestamp" and (table.kind != "aggregate" or c.agg == "key")
    )
    if column not in usable:
        raise InvalidInput(
            f"Column {column!r} of table {table.name!r} cannot be a retention time column: pick "
            f"one of {', '.join(usable) or 'none (the table has no usable timestamp column)'}.",
            code="invalid_time_column",
        )
    return table.column(column)


def check_erasable(table: Table, column: str, columns: Sequence[str]) -> None:
    """Refuse with ``InvalidInput`` what ``erase_values`` may not do: ``columns`` must be named,
    known, string, non-key columns of ``table``; ``column`` a known column not among them, and in
    an aggregate table a key column (so that every partial row of a view row matches)."""
    names = {c.name for c in table.columns}
    if column not in names or (table.kind == "aggregate" and column not in table.key):
        raise InvalidInput(
            f"Column {column!r} of table {table.name!r} cannot select the rows to erase: pick one "
            f"of {', '.join(sorted(table.key if table.kind == 'aggregate' else names))}.",
            code="invalid_erase_column",
        )
    usable = sorted(
        c.name
        for c in table.columns
        if c.type == "string" and c.agg not in ("key", "derived") and c.name != column
    )
    bad = [c for c in columns if c not in usable]
    if not columns or bad:
        raise InvalidInput(
            f"Columns {', '.join(map(repr, bad)) or '(none)'} of table {table.name!r} cannot be "
            f"erased: name one or more of {', '.join(usable) or 'none (no string value columns)'}"
            " (string columns that are neither keys nor the selecting column).",
            code="invalid_erase_columns",
        )


@dataclass(frozen=True, slots=True)
class Target:
    projection: str
    suffix: str = ""

    @property
    def id(self) -> str:
        return f"{self.projection}__{self.suffix}" if self.suffix else self.projection

    def table(self, name: str) -> str:
        return f"{name}__{self.suffix}" if self.suffix else name


@dataclass(frozen=True, slots=True)
class Position:
    next_offset: int
    watermark_us: int | None = None  # max event time seen in the partition (windowed folds)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A projection's committed state: the last batch number and the next offset per partition."""

    batch_seq: int = 0
    positions: Mapping[tuple[str, int], Position] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ViewGrant:
    """One view a query may read: ``tenant`` filters rows (None = all), ``masked`` columns.

    The query names it ``name``; its rows come from the store's view ``source`` (a target's copy,
    ``Target.table(name)``, e.g. a time-travel replay), or from the live view ``name`` when empty.
    """

    name: str
    columns: tuple[str, ...]
    tenant: str | None
    masked: frozenset[str] = frozenset()
    source: str = ""
    pii: frozenset[str] = frozenset()  # its PII columns (a sealing store opens them on read)

    @property
    def relation(self) -> str:
        """The store's view the rows come from."""
        return self.source or self.name


@dataclass(frozen=True, slots=True)
class ViewState:
    """A view's digest, stored with the positions (and ledger size, when known) it reflects."""

    projection: str
    table: str
    digest: str
    rows: int
    positions: str  # canonical JSON [[topic, partition, next_offset], ...]
    ledger_size: int | None
    computed_at_ms: int


@dataclass(frozen=True, slots=True)
class SetAside:
    """A view store found unreadable when it opened and moved aside, never deleted: views are
    derived state, so the store opened empty in its place and the projections fold it again
    from the log. ``files`` are the ones found broken; ``folder`` holds everything moved."""

    folder: str
    files: tuple[str, ...]
    reason: str
    at: str  # UTC, ISO 8601


class ViewStore(abc.ABC):
    """Projection view rows plus their committed positions, in one store."""

    kind: str = ""
    # True when other hub processes write this store too (PostgreSQL, a ClickHouse server): under
    # leader election only the leader writes it, fenced. False for a process's own files (chDB):
    # every process folds its own copy from the log, one writer by construction.
    shared: bool = True
    # True when the store keeps PII columns sealed (``pii:v2:...`` text, the subject's key opens
    # it; ``projections.flink.sealed``): the runner then writes each PII value as its record's
    # ciphertext, never the plaintext, ``load`` returns it sealed, and ``rows``/``query`` open it.
    # Destroying the subject's key erases every copy (the store's WAL, dead rows, backups).
    seals_pii: bool = False
    # Set when the store's files could not be opened at start and were moved aside: the store
    # opened empty and is folded again from the log (the composition root logs and counts it)
    set_aside: SetAside | None = None

    @abc.abstractmethod
    def ensure(self, target: Target, tables: Sequence[Table]) -> None:
        """Create the target's tables (and read views) if missing; idempotent."""

    @abc.abstractmethod
    def checkpoint(self, target: Target) -> Checkpoint:
        """The committed checkpoint (batch 0 and no positions before the first write)."""

    @abc.abstractmethod
    def recover(self, target: Target, tables: Sequence[Table]) -> int:
        """Remove what a crashed ``write`` left uncommitted; returns the number of rows removed."""

    @abc.abstractmethod
    def load(
        self, target: Target, table: Table, keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], Row]:
        """Current rows of an entity table by key (absent keys are left out)."""

    @abc.abstractmethod
    def write(
        self,
        target: Target,
        tables: Sequence[Table],
        rows: Mapping[str, Any],
        checkpoint: Checkpoint,
        hook: Hook = no_hook,
        fence: WriterFence | None = None,
    ) -> None:
        """Store one batch's rows and its checkpoint (see the contract). Values are lists of
        rows, or (analytics stores, aggregate tables from SQL folds) ``pyarrow.Table``s of
        partial rows with their source-range columns.

        ``fence`` (several hub processes, ``core.leadership``): a store that several processes
        share MUST refuse the batch (``Fenced``, nothing written) when it already took a write of
        ``fence.writer`` under a newer epoch, checked in the batch's own transaction, and record
        the epoch otherwise. A store only its own process writes (chDB) has one writer by
        construction and ignores it."""

    @abc.abstractmethod
    def rows(
        self, target: Target, table: Table, where: Mapping[str, Any] | None = None
    ) -> list[Row]:
        """View rows (merged), ordered by key; ``where`` filters by column equality."""

    @abc.abstractmethod
    def swap(
        self,
        live: Target,
        other: Target,
        tables: Sequence[Table],
        fence: WriterFence | None = None,
    ) -> None:
        """Make ``other``'s tables and positions the live ones; the old ones are dropped.
        ``fence``: as for ``write`` (a rebuild swapped in by a replaced leader is refused)."""

    @abc.abstractmethod
    def drop(self, target: Target, tables: Sequence[Table]) -> None:
        """Drop the target's tables and positions."""

    @abc.abstractmethod
    def query(self, sql: str, grants: Sequence[ViewGrant]) -> Any:
        """Run a checked SELECT over the granted views; returns a ``pyarrow.Table``."""

    @abc.abstractmethod
    def save_state(self, state: ViewState) -> None:
        """Store a view digest (latest per projection and table wins)."""

    @abc.abstractmethod
    def states(self, projection: str) -> list[ViewState]:
        """The stored digests of a projection's tables."""

    @abc.abstractmethod
    def count_rows_before(
        self, target: Target, table: Table, column: str, before_us: int, keep: Keep = None
    ) -> int:
        """How many view rows ``delete_rows_before`` would remove now; deletes nothing."""

    @abc.abstractmethod
    def delete_rows_before(
        self, target: Target, table: Table, column: str, before_us: int, keep: Keep = None
    ) -> int:
        """Remove the view rows whose ``column`` is below ``before_us`` µs (retention), except
        those ``keep`` names; returns how many (see the contract)."""

    @abc.abstractmethod
    def erase_values(
        self,
        target: Target,
        table: Table,
        column: str,
        value: Any,
        columns: Sequence[str],
        marker: str,
        tenant: str | None = None,
    ) -> int:
        """Set ``columns`` to ``marker`` (NULL stays NULL) in the view rows whose ``column``
        equals ``value`` (erasure), of ``tenant``'s rows only when given (subject keys are per
        tenant: acme's "alice" is not globex's); returns how many rows matched (see the
        contract)."""

    #: True when ``select_over`` works (the runner then folds aggregate tables in SQL).
    can_select_over: bool = False

    def select_over(self, sql: str, data: Any) -> Any:
        """Run a read-only SELECT over one ``pyarrow.Table`` called ``Python(__batch__)`` in
        ``sql`` in the store's engine; returns a ``pyarrow.Table``. Optional (see
        ``can_select_over``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot select over a batch")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
