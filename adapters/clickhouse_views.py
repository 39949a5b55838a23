"""ClickHouse SQL for analytics views, shared by chDB (embedded) and a ClickHouse server.

``ClickHouseSqlViews`` holds every DDL and query; a subclass supplies three primitives:
``_run(sql, params)`` (a statement), ``_arrow(sql, params)`` (a result as a ``pyarrow.Table``) and
``_insert(table, columns, arrow_table)``. ``ClickHouseViewStore`` (clickhouse-connect) is the
server adapter: it can be contract-tested only where a ClickHouse server runs (none here).

Physical layout, in database ``hub_views``:
- aggregate table ``T``: partial rows tagged with their source range
  (``src_topic, src_partition, src_first, src_last``) and ``batch_seq``; the VIEW ``T`` merges
  them per key (two levels: per source partition, then per key) and exposes
  ``src_offsets = [(topic, partition, first, last, count)]``. The partial rows of a target's
  aggregate tables with the same columns share ONE MergeTree table (``shared_table``: the
  market bars' three window sizes), each row tagged with its table's name in ``view_table``;
  the VIEW ``T__p`` is table ``T``'s rows of it. Why: a live batch then writes its bars in one
  INSERT instead of one per window size, and a chDB call beside a running Python thread costs
  13-28 ms however few rows it carries (docs/benchmarks/s15-bars.md). Before this layout each
  aggregate table had a MergeTree ``T__p`` of its own: ``ensure`` moves such a table's rows into
  the shared table (``_migrate``, safe to rerun after a crash).
- entity / append table ``T``: ``T__p`` ReplacingMergeTree(batch_seq) by key, VIEW ``T`` reads
  it ``FINAL``. Entity rows carry ``src_offsets`` (JSON text).
- ``_projection_offsets``: ReplacingMergeTree(batch_seq) by (projection, topic, partition): the
  committed positions of targets without an aggregate table (and those ``swap`` writes).
  ``_view_states``: digests.
- the positions of a target with aggregate tables: rows of its commit table (``commit_table``,
  the shared table of its last aggregate table) tagged ``view_table = '#positions'``, one per
  partition and batch (older ones pruned every ``PRUNE_EVERY`` batches). ``checkpoint`` takes
  the newest row per partition of both places, so a store written before positions moved keeps
  its checkpoint.

Write protocol (no multi-statement transactions in ClickHouse), per batch ``n``:
  1. insert the rows of every table but the commit table's, each tagged ``batch_seq = n`` (one
     INSERT per physical table, so one for all the tables sharing one);
  2. insert the commit table's rows and every position, all with ``batch_seq = n``, in ONE
     INSERT of one block (atomic: one part): the commit point. A live market-bars batch is then
     ONE chDB call, which beside running Python threads costs 13-28 ms however few rows it
     carries (docs/benchmarks/s16-visible.md). Without an aggregate table: every position in
     one INSERT into ``_projection_offsets``.
Recovery (before a runner starts): delete rows with ``batch_seq`` above the committed one: a
crash between 1 and 2 leaves rows that the replay would otherwise count twice.

Retention (``delete_rows_before``), under the store lock:
  1. count the expired view rows (the read view, so the count is in view rows);
  2. entity tables cut by a non-key column: ``OPTIMIZE TABLE ... FINAL`` first, so that each key
     has only its newest write left (else deleting an expired newest write would bring an older,
     younger-looking write of the same key back);
  3. ONE lightweight ``DELETE FROM T__p WHERE column < cutoff`` that waits until it is done: a
     mutation that the server finishes after a restart; a rerun removes what an interrupted one
     left. Aggregate tables are cut by a key column only (``check_time_column``), so partial
     rows go with their view row; append rows of one key are the same fact.

Erasure (``erase_values``), under the store lock: count the matching view rows (the read view),
then ONE ``ALTER TABLE T__p UPDATE c = if(isNull(c), c, marker) ... WHERE column = value`` that
waits until it is done (a mutation the server finishes after a restart; a rerun sets the marker
again). It updates every stored write that matches, so an entity key's newest write, the one a
``FINAL`` read returns, is among them (``batch_seq``, the version, is unchanged), and so is every
partial row of an aggregate view row (``check_erasable`` makes ``column`` a key there).
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from sqlglot import expressions as sg_exp

from core.errors import ConfigError, HubError, InvalidInput
from core.leadership import WriterFence
from core.ports.views import (
    Checkpoint,
    Hook,
    Keep,
    Position,
    Target,
    ViewGrant,
    ViewState,
    ViewStore,
    check_erasable,
    check_keep,
    check_time_column,
    no_hook,
)
from core.projection import Column, Row, Table
from core.sqlguard import (
    MAX_ROWS,
    QUERY_MEMORY_BYTES,
    QUERY_SECONDS,
    guard,
    query_failed,
    too_many_rows,
    too_much_memory,
    too_slow,
)

log = logging.getLogger("hub.views")
_T = TypeVar("_T")

DB = "hub_views"
OFFSETS = f"{DB}._projection_offsets"
STATES = f"{DB}._view_states"
_SRC = ("src_topic", "src_partition", "src_first", "src_last")


def ch_type(c: Column) -> str:
    base = {
        "string": "String",
        "int": "Int64",
        "timestamp": "DateTime64(6, 'UTC')",
        "decimal": f"Decimal(38, {c.scale})",
    }[c.type]
    return f"Nullable({base})" if c.nullable else base


def arrow_type(c: Column) -> pa.DataType:
    return {
        "string": pa.string(),
        "int": pa.int64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "decimal": pa.decimal128(38, c.scale),
    }[c.type]


def physical_columns(t: Table) -> tuple[tuple[str, str, pa.DataType], ...]:
    """(name, ClickHouse type, Arrow type) of the stored table, derived columns left out.
    Made once per table object (``_once``): every batch's ``write`` asks for it several times."""
    return _once(("physical", id(t)), t, lambda: _physical_columns(t))


def _physical_columns(t: Table) -> tuple[tuple[str, str, pa.DataType], ...]:
    cols = [(c.name, ch_type(c), arrow_type(c)) for c in t.columns if c.agg != "derived"]
    if t.kind == "aggregate":
        cols += [
            ("src_topic", "String", pa.string()),
            ("src_partition", "Int64", pa.int64()),
            ("src_first", "Int64", pa.int64()),
            ("src_last", "Int64", pa.int64()),
        ]
    elif t.kind == "entity":
        cols.append(("src_offsets", "String", pa.string()))
    cols.append(("batch_seq", "UInt64", pa.uint64()))
    return tuple(cols)


# What is derived from a table object alone (its physical columns, its shared table's name, the
# neutral columns of position rows), made once: a live batch's ``write`` recomputed them on every
# call (the column lists, a SHA-256 of the column spec, a dozen Arrow arrays), 30 % of its CPU
# (docs/benchmarks/s19-visible.md). Keyed by the object's id and kept with the object, so that an
# id is never reused while its entry lives; the catalog's tables live as long as the process.
_ONCE: dict[tuple[Any, ...], tuple[object, Any]] = {}
_ONCE_MAX = 4096  # tables built on the fly (tests, ``swap``) must not grow it without bound


def _once(key: tuple[Any, ...], owner: object, make: Callable[[], _T]) -> _T:
    hit = _ONCE.get(key)
    if hit is not None and hit[0] is owner:
        got: _T = hit[1]
        return got
    value = make()
    if len(_ONCE) >= _ONCE_MAX:
        _ONCE.clear()
    _ONCE[key] = (owner, value)
    return value


TAG = "view_table"  # the column of a shared aggregate table naming the row's table
# The commit point inside a shared table: rows tagged POSITIONS hold a batch's positions
# (``src_topic``, ``src_partition``, ``src_first`` = next offset, ``POS_WATERMARK``), written in
# the same INSERT as the batch's rows. No table can be called this (``#`` is not allowed in a
# table name), so no view reads them.
POSITIONS = "#positions"
POS_WATERMARK = "pos_watermark_us"  # Nullable: a position's watermark (NULL on view rows)
# Position rows pile up one per partition per batch; every PRUNE_EVERY batches the older ones
# of the commit table are deleted (an asynchronous lightweight DELETE: one call in that many)
PRUNE_EVERY = 256


def shared_table(target: Target, t: Table) -> str:
    """The physical table of aggregate table ``t`` of ``target``: one per target and column
    set, so tables with the same columns (the bars' window sizes) share it and a batch writes
    them in one INSERT. Derived from the target and the columns alone, so that every method
    given one table finds it; scoped to the target because ``recover`` deletes by the target's
    own batch numbers."""
    return _once(("shared", target, id(t)), t, lambda: _shared_name(target, t))


def _shared_name(target: Target, t: Table) -> str:
    spec = ";".join(f"{n} {ty}" for n, ty, _ in physical_columns(t)) + f";key {t.key}"
    sig = hashlib.sha256(spec.encode()).hexdigest()[:12]
    return f"{DB}.{target.id}__agg_{sig}"


def commit_table(target: Target, tables: Sequence[Table]) -> str | None:
    """The shared table whose INSERT of a batch's rows also carries its positions (the last
    aggregate table's), or None when ``target`` has no aggregate table (positions then go to
    ``_projection_offsets`` in an INSERT of their own)."""
    aggs = [t for t in tables if t.kind == "aggregate"]
    return shared_table(target, aggs[-1]) if aggs else None


def _physical(target: Target, t: Table) -> tuple[str, str | None]:
    """(where ``t``'s rows are stored, the ``view_table`` tag selecting them or None)."""
    if t.kind == "aggregate":
        return shared_table(target, t), t.name
    return f"{DB}.{target.table(t.name)}__p", None


def _order(cols: Sequence[str]) -> str:
    return f"({', '.join(cols)})" if cols else "tuple()"


def _agg(c: Column, src: str, level: str) -> str:
    """One merge expression; ``level`` prefixes the inputs ("" inner, "i_" outer)."""
    x = f"{level}{c.name}"
    if c.agg == "sum":
        return f"sum({x})"
    if c.agg in ("min", "max"):
        return f"{c.agg}({x})"
    if c.agg == "first":
        return f"argMin({x}, ({level}first_at, {level}first_pos))"
    if c.agg == "last":
        return f"argMax({x}, ({level}last_at, {level}last_pos))"
    raise ValueError(f"column {c.name} has no merge for agg {c.agg!r} in {src}")


def view_sql(t: Table, physical: str) -> str:
    """The SELECT of the read view of table ``t`` stored in ``physical``."""
    names = [c.name for c in t.columns if c.agg != "derived"]
    if t.kind != "aggregate":
        extra = ", src_offsets" if t.kind == "entity" else ""
        return f"SELECT {', '.join(names)}{extra} FROM {physical} FINAL"
    keys = list(t.key)
    vals = [c for c in t.columns if c.agg not in ("key", "derived")]
    inner = ", ".join(
        [*keys, "src_topic", "src_partition"]
        + [f"{_agg(c, t.name, '')} AS i_{c.name}" for c in vals]
        + ["min(src_first) AS i_src_first", "max(src_last) AS i_src_last"]
    )
    outer_vals = [f"{_agg(c, t.name, 'i_')} AS {c.name}" for c in vals]
    derived = []
    for c in t.columns:
        if c.agg == "derived":
            a, b = c.expr.split("/")
            derived.append(
                f"if({b} = 0, NULL, CAST({a} / {b}, 'Nullable(Decimal(38, {c.scale}))')) "
                f"AS {c.name}"
            )
    src = (
        "arraySort(groupArray((src_topic, src_partition, i_src_first, i_src_last, "
        "toInt64(i_events)))) AS src_offsets"
    )
    cols = ", ".join([*keys, *outer_vals, *derived, src])
    return (
        f"SELECT {cols} FROM (SELECT {inner} FROM {physical} "
        f"GROUP BY {', '.join([*keys, 'src_topic', 'src_partition'])}) GROUP BY {', '.join(keys)}"
    )


def _equals(c: Column, param: str, value: Any) -> tuple[str, Any]:
    """A condition ``column = {param}`` and the parameter's value, typed for the column."""
    if c.type == "timestamp":
        return f"toUnixTimestamp64Micro({c.name}) = {{{param}:Int64}}", value
    if c.type == "int":
        return f"{c.name} = {{{param}:Int64}}", value
    if c.type == "decimal":
        return f"{c.name} = toDecimal128({{{param}:String}}, {c.scale})", str(value)
    return f"{c.name} = {{{param}:String}}", value


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rows_to_arrow(t: Table, rows: Sequence[Row], batch_seq: int) -> pa.Table:
    cols = physical_columns(t)
    data: dict[str, pa.Array] = {}
    for name, _, atype in cols:
        if name == "batch_seq":
            data[name] = pa.array([batch_seq] * len(rows), pa.uint64())
        elif name == "src_offsets":
            data[name] = pa.array(
                [json.dumps(r["src_offsets"], separators=(",", ":")) for r in rows], pa.string()
            )
        elif pa.types.is_timestamp(atype):
            data[name] = pa.array([r[name] for r in rows], pa.int64()).cast(atype)
        else:
            data[name] = pa.array([r[name] for r in rows], atype)
    return pa.table(data)


def arrow_with_seq(t: Table, data: pa.Table, batch_seq: int) -> pa.Table:
    """Partial rows already in Arrow (SQL folds): the physical columns, typed, plus batch_seq."""
    cols = physical_columns(t)
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name, _, atype in cols:
        if name == "batch_seq":
            out[name] = pa.array(np.full(data.num_rows, batch_seq, np.uint64))
        else:
            col = data.column(name)
            # most SQL-fold columns come typed already: a cast of each still cost a live step
            # ~6 % of the follower's samples (s16 profile)
            out[name] = col if col.type == atype else col.cast(atype)
    return pa.table(out)


def _position_rows(t: Table, checkpoint: Checkpoint) -> pa.Table:
    """``checkpoint``'s positions as rows of aggregate table ``t``'s shared table: tagged
    ``POSITIONS``, the position in ``src_topic``, ``src_partition``, ``src_first`` (and again in
    ``src_last``) and ``POS_WATERMARK``; the view columns hold a neutral value (NULL where they
    may)."""
    items = sorted(checkpoint.positions.items())
    n = len(items)
    given = {
        "src_topic": pa.array([k[0] for k, _ in items], pa.string()),
        "src_partition": pa.array([k[1] for k, _ in items], pa.int64()),
        "src_first": pa.array([p.next_offset for _, p in items], pa.int64()),
        "src_last": pa.array([p.next_offset for _, p in items], pa.int64()),
        "batch_seq": pa.array(np.full(n, checkpoint.batch_seq, np.uint64)),
    }
    neutral = _once(("neutral", id(t), n), t, lambda: _neutral(t, n))
    data: dict[str, pa.Array] = {}
    for name, _, _ in ((TAG, "", None), *physical_columns(t)):
        data[name] = given[name] if name in given else neutral[name]
    data[POS_WATERMARK] = pa.array([p.watermark_us for _, p in items], pa.int64())
    return pa.table(data)


def _neutral(t: Table, n: int) -> dict[str, pa.Array]:
    """The columns of ``n`` position rows of ``t``'s shared table that do not depend on the
    positions: the tag, and a neutral value in every view column (NULL where it may be)."""
    data: dict[str, pa.Array] = {TAG: pa.array([POSITIONS] * n, pa.string())}
    for name, ch, atype in physical_columns(t):
        if ch.startswith("Nullable("):
            data[name] = pa.nulls(n, atype)
        elif pa.types.is_string(atype):
            data[name] = pa.array([""] * n, atype)
        else:  # int, timestamp, decimal: zero
            data[name] = pa.array(np.zeros(n, np.int64)).cast(atype)
    return data


def arrow_to_rows(tbl: pa.Table) -> list[Row]:
    """Rows with timestamps as integer micros and ``src_offsets`` as lists."""
    cols = {}
    for name in tbl.column_names:
        col = tbl.column(name)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        cols[name] = col.to_pylist()
    if "src_offsets" in cols:
        cols["src_offsets"] = [
            json.loads(v)
            if isinstance(v, str)
            else [list(x.values()) if isinstance(x, dict) else list(x) for x in v]
            for v in cols["src_offsets"]
        ]
    n = tbl.num_rows
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


class ClickHouseSqlViews(ViewStore):
    """Every statement of the ClickHouse-family view stores; subclasses run them."""

    kind = "analytics"
    shared = True  # a server other processes also write; chDB: this process's own files

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ready = False
        self.query_seconds = QUERY_SECONDS  # time bound of ``query`` (core.sqlguard)
        self.query_memory_bytes = QUERY_MEMORY_BYTES  # memory bound of ``query`` (the same)

    # -- primitives ------------------------------------------------------------------------------
    @abc.abstractmethod
    def _run(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    @abc.abstractmethod
    def _arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table: ...

    @abc.abstractmethod
    def _insert(self, table: str, columns: Sequence[str], data: pa.Table) -> None: ...

    # -- schema ----------------------------------------------------------------------------------
    def _base(self) -> None:
        if self._ready:
            return
        self._run(f"CREATE DATABASE IF NOT EXISTS {DB}")
        self._run(
            f"CREATE TABLE IF NOT EXISTS {OFFSETS} (projection_id String, topic String, "
            "part Int64, next_offset Int64, watermark_us Nullable(Int64), batch_seq UInt64) "
            "ENGINE = ReplacingMergeTree(batch_seq) ORDER BY (projection_id, topic, part)"
        )
        self._run(
            f"CREATE TABLE IF NOT EXISTS {STATES} (projection_id String, table_name String, "
            "digest String, rows Int64, positions String, ledger_size Nullable(Int64), "
            "computed_at_ms Int64) ENGINE = ReplacingMergeTree(computed_at_ms) "
            "ORDER BY (projection_id, table_name)"
        )
        self._ready = True

    def ensure(self, target: Target, tables: Sequence[Table]) -> None:
        with self._lock:
            self._base()
            for t in tables:
                phys = f"{DB}.{target.table(t.name)}__p"
                cols = ", ".join(f"{n} {ty}" for n, ty, _ in physical_columns(t))
                if t.kind != "aggregate":
                    self._run(
                        f"CREATE TABLE IF NOT EXISTS {phys} ({cols}) ENGINE = "
                        f"ReplacingMergeTree(batch_seq) ORDER BY {_order(t.key)}"
                    )
                else:
                    shared = shared_table(target, t)
                    self._run(
                        f"CREATE TABLE IF NOT EXISTS {shared} ({TAG} LowCardinality(String), "
                        f"{cols}, {POS_WATERMARK} Nullable(Int64)) ENGINE = MergeTree "
                        f"ORDER BY {_order([TAG, *t.key])}"
                    )
                    # a shared table made before positions rode in it (metadata only); asked
                    # first, because the ALTER rewrites the table's metadata file even when the
                    # column is there, at every start: on a full disk chDB left that file empty
                    # and the views (so `hub serve`) could no longer open
                    if not self._has_column(shared, POS_WATERMARK):
                        self._run(
                            f"ALTER TABLE {shared} ADD COLUMN IF NOT EXISTS "
                            f"{POS_WATERMARK} Nullable(Int64)"
                        )
                    self._migrate(target, t, shared)
                    # replaced, not kept if it exists: it reads this target's shared table
                    # (tables of two targets without a suffix have the same names). Only when
                    # it differs: a replace rewrites the view's metadata file, and one a start
                    # on a full disk left empty kept chDB (so `hub serve`) from opening
                    select = (
                        f"SELECT * EXCEPT ({TAG}, {POS_WATERMARK}) "
                        f"FROM {shared} WHERE {TAG} = {_quote(t.name)}"
                    )
                    if not self._view_is(phys, select, shared):
                        self._run(f"CREATE OR REPLACE VIEW {phys} AS {select}")
                # the read view: made again when its stored query is not this code's (a
                # definition edited in the folder, or an older layout), else left unwritten
                read, select = f"{DB}.{target.table(t.name)}", view_sql(t, phys)
                if not self._view_is(read, select):
                    self._run(f"CREATE OR REPLACE VIEW {read} AS {select}")

    def _has_column(self, table: str, column: str) -> bool:
        """Whether ``table`` (``hub_views.<name>``) has ``column``."""
        got = self._arrow(
            "SELECT count() AS n FROM system.columns WHERE database = {d:String} "
            "AND table = {t:String} AND name = {c:String}",
            {"d": DB, "t": table.split(".", 1)[1], "c": column},
        ).column("n")
        return bool(got[0].as_py())

    def _view_is(self, view: str, select: str, source: str | None = None) -> bool:
        """Whether ``view`` exists as ``CREATE OR REPLACE VIEW view AS select`` would make it
        now: the same query (as the server formats it) and, with ``source``, the columns
        ``select`` gives from ``source`` today (``SELECT *`` is expanded when a view is made)."""
        d, v = view.split(".", 1)
        try:
            got = self._arrow(
                "SELECT as_select = formatQuerySingleLine({q:String}) AS same FROM system.tables "
                "WHERE database = {d:String} AND name = {v:String} AND engine = 'View'",
                {"d": d, "v": v, "q": select},
            ).column("same")
        except HubError as exc:  # a ClickHouse server older than 23.10: replaced, as before
            if "UNKNOWN_FUNCTION" in str(exc):
                return False
            raise
        if not (len(got) and got[0].as_py()):
            return False
        if source is None:
            return True
        cols = (
            "SELECT name, type FROM system.columns WHERE database = {d:String} "
            "AND table = {t:String} AND name NOT IN ({a:String}, {b:String}) ORDER BY position"
        )
        a, b = TAG, POS_WATERMARK
        has = self._arrow(cols, {"d": d, "t": v, "a": a, "b": b}).to_pylist()
        src = self._arrow(cols, {"d": d, "t": source.split(".", 1)[1], "a": a, "b": b})
        return bool(has == src.to_pylist())

    def _engine(self, name: str) -> str | None:
        """The engine of table ``name`` of ``hub_views`` (``View`` for a view), None if absent."""
        got = self._arrow(
            "SELECT engine FROM system.tables WHERE database = {d:String} AND name = {t:String}",
            {"d": DB, "t": name},
        ).column("engine")
        return str(got[0].as_py()) if len(got) else None

    def _migrate(self, target: Target, t: Table, shared: str) -> None:
        """Move the rows of an aggregate table stored the old way (a MergeTree ``T__p`` of its
        own) into the shared table. Each step may be cut by a crash; a rerun repeats it from
        the start: the tag's rows are deleted before the copy (no row twice), and the old table
        goes only after its rows are in (none lost); its view ``T`` is dropped before it,
        because a view cannot be repointed, and created again by ``ensure``."""
        name = f"{target.table(t.name)}__p"
        engine = self._engine(name)
        if engine is None or engine == "View":
            return
        cols = ", ".join(n for n, _, _ in physical_columns(t))
        self._run(
            f"DELETE FROM {shared} WHERE {TAG} = {_quote(t.name)} "
            "SETTINGS lightweight_deletes_sync = 2, mutations_sync = 2"
        )
        self._run(
            f"INSERT INTO {shared} ({TAG}, {cols}) SELECT {_quote(t.name)}, {cols} FROM {DB}.{name}"
        )
        self._run(f"DROP VIEW IF EXISTS {DB}.{target.table(t.name)}")
        self._run(f"DROP TABLE {DB}.{name}")

    # -- positions -------------------------------------------------------------------------------
    def _shared_of(self, target: Target) -> list[str]:
        """The shared tables of ``target`` that can hold position rows (``shared_table`` names
        with the ``POS_WATERMARK`` column: one made before has none, until ``ensure`` adds it,
        and a checkpoint read before that must still work)."""
        got = self._arrow(
            "SELECT DISTINCT table FROM system.columns WHERE database = {d:String} "
            "AND name = {c:String} AND match(table, {r:String}) ORDER BY table",
            {"d": DB, "c": POS_WATERMARK, "r": f"^{re.escape(target.id)}__agg_[0-9a-f]{{12}}$"},
        )
        return [f"{DB}.{n}" for n in got.column("table").to_pylist()]

    def checkpoint(self, target: Target) -> Checkpoint:
        """The newest position per partition, of ``_projection_offsets`` (targets without an
        aggregate table, ``swap``) and of the position rows in the target's shared tables."""
        with self._lock:
            self._base()
            parts = [
                f"SELECT topic, part, next_offset, watermark_us, batch_seq FROM {OFFSETS} "
                "FINAL WHERE projection_id = {p:String}"
            ]
            parts += [
                f"SELECT src_topic AS topic, src_partition AS part, src_first AS next_offset, "
                f"{POS_WATERMARK} AS watermark_us, batch_seq FROM {shared} "
                f"WHERE {TAG} = {_quote(POSITIONS)} "
                "ORDER BY batch_seq DESC LIMIT 1 BY src_topic, src_partition"
                for shared in self._shared_of(target)
            ]
            tbl = self._arrow(" UNION ALL ".join(f"({q})" for q in parts), {"p": target.id})
        rows = sorted(tbl.to_pylist(), key=lambda r: r["batch_seq"])
        if not rows:
            return Checkpoint()
        return Checkpoint(
            rows[-1]["batch_seq"],  # the newest row of each partition wins (sorted ascending)
            {(r["topic"], r["part"]): Position(r["next_offset"], r["watermark_us"]) for r in rows},
        )

    def recover(self, target: Target, tables: Sequence[Table]) -> int:
        with self._lock:
            seq = self.checkpoint(target).batch_seq
            removed = 0
            for phys in dict.fromkeys(_physical(target, t)[0] for t in tables):
                n = self._arrow(f"SELECT count() AS n FROM {phys} WHERE batch_seq > {seq}")
                count = int(n.column("n")[0].as_py())
                if count:
                    self._run(f"DELETE FROM {phys} WHERE batch_seq > {seq}")
                    removed += count
            return removed

    def write(
        self,
        target: Target,
        tables: Sequence[Table],
        rows: Mapping[str, Sequence[Row] | pa.Table],
        checkpoint: Checkpoint,
        hook: Hook = no_hook,
        fence: WriterFence | None = None,
    ) -> None:
        self._unfenceable(fence)
        seq = checkpoint.batch_seq
        # the tables in the order given, grouped by where they are stored: a shared table's
        # rows go in together, in one INSERT, at its first table's turn; the commit table's
        # last, with the positions
        groups: dict[str, list[Table]] = {}
        for t in tables:
            groups.setdefault(_physical(target, t)[0], []).append(t)
        commit = commit_table(target, tables)
        if commit is not None:
            groups[commit] = groups.pop(commit)
        with self._lock:
            # 1. rows of every table, tagged with the batch number (one INSERT per physical
            #    table); partials of SQL folds arrive as Arrow tables
            for phys, members in groups.items():
                pieces = []
                for t in members:
                    batch = rows.get(t.name)
                    if batch is not None and len(batch):
                        data = (
                            arrow_with_seq(t, batch, seq)
                            if isinstance(batch, pa.Table)
                            else rows_to_arrow(t, batch, seq)
                        )
                        if t.kind == "aggregate":
                            tag = pa.array([t.name] * data.num_rows, pa.string())
                            data = data.add_column(0, TAG, tag).append_column(
                                POS_WATERMARK, pa.nulls(data.num_rows, pa.int64())
                            )
                        pieces.append(data)
                if phys == commit:
                    # 2. every position in the same INSERT as these rows: the commit point
                    pieces.append(_position_rows(members[0], checkpoint))
                if pieces:
                    data = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
                    self._insert(phys, data.column_names, data)
                for t in members:
                    hook(f"rows:{t.name}")
            if commit is None:
                # 2. every position in ONE insert of their own: the commit point
                self._write_positions(target, checkpoint)
            hook("offsets")
            if commit is not None and seq % PRUNE_EVERY == 0:
                self._prune_positions(commit, seq)

    def _prune_positions(self, shared: str, seq: int) -> None:
        """Delete the position rows before batch ``seq`` (committed: its own are newer). Not
        waited for; one that fails or is cut by a crash leaves old rows, which the checkpoint
        ignores and the next prune deletes."""
        try:
            self._run(
                f"DELETE FROM {shared} WHERE {TAG} = {_quote(POSITIONS)} AND batch_seq < {seq} "
                "SETTINGS lightweight_deletes_sync = 0"
            )
        except HubError as exc:
            log.warning("could not prune old position rows", extra={"error": exc.message})

    def _write_positions(self, target: Target, checkpoint: Checkpoint) -> None:
        items = sorted(checkpoint.positions.items())
        data = pa.table(
            {
                "projection_id": pa.array([target.id] * len(items), pa.string()),
                "topic": pa.array([k[0] for k, _ in items], pa.string()),
                "part": pa.array([k[1] for k, _ in items], pa.int64()),
                "next_offset": pa.array([p.next_offset for _, p in items], pa.int64()),
                "watermark_us": pa.array([p.watermark_us for _, p in items], pa.int64()),
                "batch_seq": pa.array([checkpoint.batch_seq] * len(items), pa.uint64()),
            }
        )
        self._insert(OFFSETS, data.column_names, data)

    # -- reading ---------------------------------------------------------------------------------
    def load(
        self, target: Target, table: Table, keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], Row]:
        if not keys:
            return {}
        key_cols = [table.column(k) for k in table.key]
        probe = pa.table(
            {
                c.name: (
                    pa.array([k[i] for k in keys], pa.int64()).cast(arrow_type(c))
                    if c.type == "timestamp"
                    else pa.array([k[i] for k in keys], arrow_type(c))
                )
                for i, c in enumerate(key_cols)
            }
        )
        names = ", ".join(table.key)
        final = "" if table.kind == "aggregate" else " FINAL"  # an aggregate's T__p is a view
        with self._lock:
            got = self._arrow_with(
                f"SELECT * EXCEPT batch_seq FROM {DB}.{target.table(table.name)}__p{final} "
                f"WHERE ({names}) IN (SELECT {names} FROM Python(__probe__))",
                probe,
            )
        return {tuple(r[k] for k in table.key): r for r in arrow_to_rows(got)}

    def _arrow_with(self, sql: str, probe: pa.Table) -> pa.Table:
        """Run ``sql`` reading ``probe`` where it says ``Python(__probe__)``."""
        raise HubError(
            f"{type(self).__name__} cannot read a probe table; override _arrow_with.",
            code="views_unsupported",
        )

    def rows(
        self, target: Target, table: Table, where: Mapping[str, Any] | None = None
    ) -> list[Row]:
        conds, params = [], {}
        for i, (name, value) in enumerate(sorted((where or {}).items())):
            cond, params[f"w{i}"] = _equals(table.column(name), f"w{i}", value)
            conds.append(cond)
        sql = f"SELECT * FROM {DB}.{target.table(table.name)}"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += f" ORDER BY {', '.join(table.key)}"
        with self._lock:
            return arrow_to_rows(self._arrow(sql, params))

    # -- rebuild ---------------------------------------------------------------------------------
    def _unfenceable(self, fence: WriterFence | None) -> None:
        if fence is not None and self.shared:
            raise ConfigError(
                "A ClickHouse server has no transactions, so its views cannot fence a paused "
                "leader's writes; with HUB_LEADER_ELECTION run the analytics views in chDB "
                "(each process its own) or on Flink."
            )

    def swap(
        self,
        live: Target,
        other: Target,
        tables: Sequence[Table],
        fence: WriterFence | None = None,
    ) -> None:
        self._unfenceable(fence)
        with self._lock:
            new = self.checkpoint(other)
            old = self.checkpoint(live)
            # 1. live positions := the rebuilt ones, with a batch number above both, so that
            #    recovery never deletes the swapped-in rows (the caller made both positions equal)
            self._write_positions(
                live, Checkpoint(max(new.batch_seq, old.batch_seq) + 1, new.positions)
            )
            # 2. exchange data (atomic per table; each table reflects the same positions)
            #    (a shared table once: it holds every table of it, at the same positions)
            pairs = {(_physical(live, t)[0], _physical(other, t)[0]): None for t in tables}
            for a, b in pairs:
                self._run(f"EXCHANGE TABLES {a} AND {b}")
            # 3. drop the old data, now under the other name
            self.drop(other, tables)

    def drop(self, target: Target, tables: Sequence[Table]) -> None:
        with self._lock:
            self._base()
            for t in tables:
                self._run(f"DROP VIEW IF EXISTS {DB}.{target.table(t.name)}")
                part = f"{target.table(t.name)}__p"  # an aggregate's is a view (or an old table)
                kind = "VIEW" if self._engine(part) == "View" else "TABLE"
                self._run(f"DROP {kind} IF EXISTS {DB}.{part}")
            # a shared table goes when none of its tables has a view left (``tables`` may be
            # some of them only)
            for shared in dict.fromkeys(
                shared_table(target, t) for t in tables if t.kind == "aggregate"
            ):
                left = self._arrow(
                    "SELECT count() AS n FROM system.tables WHERE database = {d:String} "
                    "AND engine = 'View' AND create_table_query LIKE {q:String}",
                    {"d": DB, "q": f"%FROM {shared} WHERE%"},
                )
                if not int(left.column("n")[0].as_py()):
                    self._run(f"DROP TABLE IF EXISTS {shared}")
            self._run(f"DELETE FROM {OFFSETS} WHERE projection_id = {{p:String}}", {"p": target.id})
            for shared in self._shared_of(target):  # a shared table kept for other tables
                self._run(
                    f"DELETE FROM {shared} WHERE {TAG} = {_quote(POSITIONS)} "
                    "SETTINGS lightweight_deletes_sync = 2, mutations_sync = 2"
                )

    # -- retention -----------------------------------------------------------------------------
    @staticmethod
    def _cut(column: str, before_us: int, keep: Keep) -> tuple[str, dict[str, Any]]:
        """The WHERE of a retention cut and its parameters: expired, and not a kept row (a
        NULL subject is kept by nothing)."""
        cond = f"toUnixTimestamp64Micro({column}) < {{b:Int64}}"
        params: dict[str, Any] = {"b": before_us}
        for i, (name, values) in enumerate(sorted((keep or {}).items())):
            if values:  # one String parameter per value: every client binds those the same
                names = [f"k{i}_{j}" for j in range(len(values))]
                held = ", ".join(f"{{{n}:String}}" for n in names)
                cond += f" AND (isNull({name}) OR {name} NOT IN ({held}))"
                params.update(zip(names, map(str, values), strict=True))
        return cond, params

    def _count_expired(
        self, target: Target, table: Table, column: str, before_us: int, keep: Keep = None
    ) -> int:
        check_time_column(table, column)
        check_keep(table, keep)
        self._check_table(target, table)
        cond, params = self._cut(column, before_us, keep)
        n = self._arrow(
            f"SELECT count() AS n FROM {DB}.{target.table(table.name)} WHERE {cond}", params
        )
        return int(n.column("n")[0].as_py())

    def _check_table(self, target: Target, table: Table) -> None:
        self._base()
        found = self._arrow(
            "SELECT count() AS n FROM system.tables WHERE database = {d:String} "
            "AND name = {t:String}",
            {"d": DB, "t": f"{target.table(table.name)}__p"},
        )
        if not int(found.column("n")[0].as_py()):
            raise InvalidInput(
                f"Projection target {target.id!r} has no table {target.table(table.name)!r}; "
                "create it first (ensure) or check the projection name.",
                code="view_table_not_found",
            )

    def count_rows_before(
        self, target: Target, table: Table, column: str, before_us: int, keep: Keep = None
    ) -> int:
        with self._lock:
            return self._count_expired(target, table, column, before_us, keep)

    def delete_rows_before(
        self, target: Target, table: Table, column: str, before_us: int, keep: Keep = None
    ) -> int:
        phys, tag = _physical(target, table)
        with self._lock:
            count = self._count_expired(target, table, column, before_us, keep)  # 1.
            if not count:
                return 0
            if table.kind == "entity" and column not in table.key:  # 2.
                self._run(f"OPTIMIZE TABLE {phys} FINAL")
            cond, params = self._cut(column, before_us, keep)
            if tag is not None:  # this table's rows of a shared table only
                cond = f"{TAG} = {_quote(tag)} AND {cond}"
            self._run(  # 3.
                f"DELETE FROM {phys} WHERE {cond} "
                "SETTINGS lightweight_deletes_sync = 2, mutations_sync = 2",  # wait until done
                params,
            )
            return count

    # -- erasure -------------------------------------------------------------------------------
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
        check_erasable(table, column, columns)
        cond, v = _equals(table.column(column), "v", value)
        params = {"v": v, "m": marker}
        if tenant is not None:  # that tenant's rows only (subject keys are per tenant)
            cond = f"{cond} AND tenant = {{t:String}}"
            params["t"] = tenant
        sets = ", ".join(
            f"{c} = if(isNull({c}), {c}, {{m:String}})"
            if table.column(c).nullable
            else f"{c} = {{m:String}}"
            for c in columns
        )
        with self._lock:
            self._check_table(target, table)
            n = self._arrow(
                f"SELECT count() AS n FROM {DB}.{target.table(table.name)} WHERE {cond}", params
            )
            count = int(n.column("n")[0].as_py())
            phys, tag = _physical(target, table)
            if tag is not None:  # this table's rows of a shared table only
                cond = f"{TAG} = {_quote(tag)} AND {cond}"
            if count:  # one mutation that waits until it is done
                self._run(
                    f"ALTER TABLE {phys} UPDATE {sets} WHERE {cond} SETTINGS mutations_sync = 2",
                    params,
                )
            return count

    # -- queries ---------------------------------------------------------------------------------
    def query(self, sql: str, grants: Sequence[ViewGrant]) -> pa.Table:
        """Run ``sql`` as ``core.sqlguard`` rewrites it: each granted view becomes a
        filtered/masked subquery over ``hub_views.<view>``; read-only, at most ``MAX_ROWS``."""
        seconds, memory = self.query_seconds, int(self.query_memory_bytes)
        with self._lock:
            rewritten = self._rewrite(sql, grants)
            try:
                return self._arrow(bounded(rewritten, seconds, memory))
            except HubError as exc:
                raise query_error(exc, seconds, memory) from exc

    def _rewrite(self, sql: str, grants: Sequence[ViewGrant]) -> str:
        """``sql`` rewritten by ``core.sqlguard`` over the names of this store's catalog (the
        caller holds the store lock)."""
        self._base()
        names = (
            self._arrow(
                "SELECT name FROM system.tables WHERE database IN ({d:String}, "
                "currentDatabase()) UNION ALL SELECT name FROM system.databases",
                {"d": DB},
            )
            .column("name")
            .to_pylist()
        )
        rel = {g.name: g.relation for g in grants}  # a time-travel grant reads its copy
        return guard(
            sql, "clickhouse", grants, lambda v: sg_exp.table_(rel.get(v, v), db=DB), names
        )

    # -- digests ---------------------------------------------------------------------------------
    def save_state(self, state: ViewState) -> None:
        data = pa.table(
            {
                "projection_id": [state.projection],
                "table_name": [state.table],
                "digest": [state.digest],
                "rows": pa.array([state.rows], pa.int64()),
                "positions": [state.positions],
                "ledger_size": pa.array([state.ledger_size], pa.int64()),
                "computed_at_ms": pa.array([state.computed_at_ms], pa.int64()),
            }
        )
        with self._lock:
            self._base()
            self._insert(STATES, data.column_names, data)

    def states(self, projection: str) -> list[ViewState]:
        with self._lock:
            self._base()
            tbl = self._arrow(
                f"SELECT * FROM {STATES} FINAL WHERE projection_id = {{p:String}} "
                "ORDER BY table_name",
                {"p": projection},
            )
        return [
            ViewState(
                r["projection_id"],
                r["table_name"],
                r["digest"],
                r["rows"],
                r["positions"],
                r["ledger_size"],
                r["computed_at_ms"],
            )
            for r in tbl.to_pylist()
        ]


def bounded(rewritten: str, seconds: float, memory: int) -> str:
    """A guarded query with the bounds every analyst query runs under, wherever it runs."""
    return (
        f"{rewritten}\nSETTINGS max_result_rows = {MAX_ROWS}, "
        f"result_overflow_mode = 'throw', max_execution_time = {seconds:g}, "
        f"timeout_overflow_mode = 'throw', max_memory_usage = {memory}, "
        "readonly = 1"
    )


def timed_out(exc: HubError) -> bool:
    return "TIMEOUT_EXCEEDED" in exc.message


def query_error(exc: HubError, seconds: float, memory: int) -> InvalidInput:
    """An analyst query's failure, as the caller's error naming the bound it crossed."""
    if "TOO_MANY_ROWS" in exc.message or "Limit for result exceeded" in exc.message:
        return too_many_rows()
    if timed_out(exc):
        return too_slow(seconds)
    if "MEMORY_LIMIT_EXCEEDED" in exc.message:
        return too_much_memory(memory)
    return query_failed(exc.message)


class ClickHouseViewStore(ClickHouseSqlViews):
    """Analytics views on a ClickHouse server through clickhouse-connect (same SQL as chDB).

    Not exercised here: no ClickHouse server runs on these machines; its contract test subclass
    skips unless ``HUB_TEST_CLICKHOUSE_URL`` names one.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import clickhouse_connect
        except ImportError as exc:  # optional integration
            raise HubError(
                "The ClickHouse view store needs clickhouse-connect: "
                "pip install clickhouse-connect",
                code="config_invalid",
            ) from exc
        self._client = clickhouse_connect.get_client(dsn=url)

    def _run(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._client.command(sql, parameters=dict(params or {}))

    def _arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._client.query_arrow(sql, parameters=dict(params or {}))

    def _insert(self, table: str, columns: Sequence[str], data: pa.Table) -> None:
        self._client.insert_arrow(table, data.select(list(columns)))

    def _arrow_with(self, sql: str, probe: pa.Table) -> pa.Table:
        keys = ", ".join(
            "(" + ", ".join(_literal(v) for v in row.values()) + ")" for row in probe.to_pylist()
        )
        inner = sql.split("(SELECT", 1)[0]
        return self._arrow(f"{inner}({keys})")

    def close(self) -> None:
        self._client.close()


def _literal(v: Any) -> str:
    if isinstance(v, str):
        return _quote(v)
    return str(v if not hasattr(v, "timestamp") else int(v.timestamp() * 1_000_000))
