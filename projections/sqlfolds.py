"""The aggregate folds again, column-wise: numpy for windows and watermarks, ClickHouse SQL for
the partial rows. ``projections.folds`` stays the reference; these must produce the SAME partial
rows (same keys, values, counts and source ranges per partition chunk), which the differential
test ``tests/unit/test_folds_columnar.py`` checks through the view digests.

A columnar fold receives the batch's partition chunks as Arrow tables (``src_offset``,
``tenant``, ``event_type`` and the Avro fields, in offset order), the ``WindowState`` (updated
exactly as the Python fold updates it) and ``sql``: a function running a SELECT over one Arrow
table named ``__batch__`` in the analytics engine (chDB). It returns per table either an Arrow
table (aggregate partials, with ``src_topic``/``src_partition``/``src_first``/``src_last``) or
Python rows (the rare late side-output rows).

Watermarks and lateness: the watermark before each event is computed per partition chunk with a
running maximum over offset order (``np.maximum.accumulate`` shifted by one, seeded with the
partition's stored maximum), so late decisions are the Python fold's, batch for batch. Late
events in ``side`` mode are excluded per (event, window) exactly like the Python fold and their
side rows are produced in the Python fold's order (so the ReplacingMergeTree survivor of
duplicate late keys is the same).

A fold raises ``Unsupported`` (from ``projections.columnar``) when a batch is outside what it
handles (a missing field, a null, a decimal scale other than the view's); the runner then folds
that batch with the Python fold.

Per-event partials in Arrow (``ARROW_PARTIALS``, on by default): the first level of each fold (one
row per event in, one per group out) runs as Arrow hash aggregates instead of a ClickHouse query
over the ``Python()`` table function, which converted every event's columns into ClickHouse's
and cost ~0.85 CPU µs per event (session 13's profile). Exact: decimal sums of decimal(38, s) in
Arrow keep the scale ClickHouse's ``sum`` keeps, counts and min/max of integers are integers, and
first/last by (time, position) are taken from a rank (a unique order), as ``argMin``/``argMax``
take them. A batch whose values could reach decimal(38)'s 38 digits in a sum (checked from its
largest magnitude and row count) keeps the ClickHouse query, whose behaviour there is the old one.
The bars' second level (minute buckets to windows) runs in Arrow too: over a few rows, a query's
fixed cost (~15 ms) was most of its price. The late path (``BARS_SQL``) stays in ClickHouse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from core.projection import FoldContext, Row, WindowState
from projections.columnar import Unsupported
from projections.folds import BAR_WINDOWS
from projections.windows import DAY_US

I64 = npt.NDArray[np.int64]
SqlRunner = Callable[[str, pa.Table], pa.Table]
Chunk = tuple[tuple[str, int], pa.Table]
ColumnarOut = dict[str, "pa.Table | list[Row]"]
ColumnarFold = Callable[[Sequence[Chunk], WindowState, FoldContext, SqlRunner], ColumnarOut]

_TS = pa.timestamp("us", tz="UTC")
# the first level of the folds in Arrow (see the module doc); False: every level in ClickHouse,
# as before session 14 (kept as the path the differential test compares against)
ARROW_PARTIALS = True
# a sum of decimal(38, s) values stays below this many unscaled units (one digit of head room
# under 10**38) or the batch keeps the ClickHouse query
_SUM_LIMIT = 10**37


def _ints(t: pa.Table, name: str) -> I64:
    if name not in t.column_names:
        raise Unsupported(f"no field {name}")
    col = t.column(name)
    if col.null_count or not pa.types.is_int64(col.type):
        raise Unsupported(f"{name} has nulls or is not a long")
    out: I64 = col.to_numpy()
    return out


def _decimal(t: pa.Table, name: str, scale: int) -> pa.ChunkedArray:
    if name not in t.column_names:
        raise Unsupported(f"no field {name}")
    col = t.column(name)
    if col.null_count or col.type != pa.decimal128(38, scale):
        raise Unsupported(f"{name} is not a non-null decimal of scale {scale}")
    return col


def _strings(t: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in t.column_names:
        raise Unsupported(f"no field {name}")
    col = t.column(name)
    if col.null_count or not pa.types.is_string(col.type):
        raise Unsupported(f"{name} is not a non-null string")
    return col


def watermarks(
    ws: WindowState, tp: tuple[str, int], ts: I64, lateness_us: int
) -> tuple[I64, npt.NDArray[np.bool_]]:
    """(watermark before each event, whether it has one) for one chunk in offset order; observes
    every event into ``ws`` like ``WindowState.observe`` one by one would."""
    n = len(ts)
    prior = ws.max_seen.get(tp)
    seen = np.empty(n, np.int64)
    has = np.ones(n, bool)
    if n:
        running = np.maximum.accumulate(ts)
        seen[1:] = running[:-1]
        if prior is None:
            seen[0] = 0
            has[0] = False
        else:
            seen[0] = prior
            np.maximum(seen, prior, out=seen)
        top = int(running[-1])
        if prior is None or top > prior:
            ws.max_seen[tp] = top
    return seen - lateness_us, has


def _late_row(tenant: str, tp: tuple[str, int], offset: int, view: str, start: int, ts: int) -> Row:
    return {
        "tenant": tenant,
        "src_topic": tp[0],
        "src_partition": tp[1],
        "src_offset": offset,
        "view": view,
        "window_start": start,
        "event_at": ts,
    }


def _finish(got: pa.Table, names: Sequence[str], ts_cols: Sequence[str]) -> pa.Table:
    cols = []
    for n in names:
        col = got.column(n)
        if n in ts_cols:
            col = col.cast(pa.int64()).cast(_TS)
        cols.append(col)
    return pa.table(dict(zip(names, cols, strict=True)))


# -- market bars ------------------------------------------------------------------------------
BARS_SQL = """
SELECT view, src_topic, src_partition, tenant, instrument, currency, window_start,
       window_start + max(window_size) AS window_end,
       argMin(price, (ts, pos)) AS open, max(price) AS high, min(price) AS low,
       argMax(price, (ts, pos)) AS close,
       sum(quantity) AS volume, sum(price * quantity) AS notional,
       toInt64(count()) AS events,
       min(ts) AS first_at, argMin(pos, (ts, pos)) AS first_pos,
       max(ts) AS last_at, argMax(pos, (ts, pos)) AS last_pos,
       min(src_offset) AS src_first, max(src_offset) AS src_last
FROM Python(__batch__)
GROUP BY view, src_topic, src_partition, tenant, instrument, currency, window_start
"""

_BAR_COLS = (
    "tenant",
    "instrument",
    "window_start",
    "window_end",
    "currency",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "notional",
    "events",
    "first_at",
    "first_pos",
    "last_at",
    "last_pos",
    "src_topic",
    "src_partition",
    "src_first",
    "src_last",
)


def _bucket_sql() -> str:
    """The bars in two levels: every event once into buckets of the windows' common divisor
    (one minute), then each window's bars from those few bucket partials. Exact: decimal sums
    and counts add up, first/last are argMin/argMax by (time, position), which is unique.
    ``k`` is that pair as one 128-bit number (``_order_key``): ClickHouse compares a Decimal128
    four times faster than a tuple. The outer level passes ``first``/``last`` on as keys; they
    are split into ``first_at``/``first_pos`` and ``last_at``/``last_pos`` afterwards."""
    g = _BUCKET_US
    inner = (
        "SELECT src_topic, src_partition, tenant, instrument, currency, bucket, "
        "argMin(price, k) AS b_open, max(price) AS b_high, min(price) AS b_low, "
        "argMax(price, k) AS b_close, sum(quantity) AS b_volume, "
        "sum(price * quantity) AS b_notional, toInt64(count()) AS b_events, "
        "min(k) AS b_first, max(k) AS b_last, "
        "min(src_offset) AS b_src_first, max(src_offset) AS b_src_last "
        "FROM Python(__batch__) "
        "GROUP BY src_topic, src_partition, tenant, instrument, currency, bucket"
    )
    windows = []
    for vi, (_, size, hop) in enumerate(BAR_WINDOWS):
        newest = f"bucket - positiveModulo(bucket, {hop})" if hop != g else "bucket"
        for i in range(size // hop):
            start = f"{newest} - {i * hop}" if i else newest
            windows.append(f"(toInt64({vi}), toInt64({start}), toInt64({size}))")
    # one pass over the bucket rows, each fanned out to its windows: a CTE referenced once per
    # window would run the inner group-by once per reference
    return (
        "SELECT w.1 AS view, src_topic, src_partition, tenant, instrument, currency, "
        "w.2 AS window_start, w.2 + w.3 AS window_end, "
        "argMin(b_open, b_first) AS open, max(b_high) AS high, min(b_low) AS low, "
        "argMax(b_close, b_last) AS close, sum(b_volume) AS volume, "
        "sum(b_notional) AS notional, toInt64(sum(b_events)) AS events, "
        "min(b_first) AS first, max(b_last) AS last, "
        "min(b_src_first) AS src_first, max(b_src_last) AS src_last "
        f"FROM ({inner}) ARRAY JOIN [{', '.join(windows)}] AS w "
        "GROUP BY view, src_topic, src_partition, tenant, instrument, currency, window_start, "
        "window_end"
    )


_BUCKET_US = math.gcd(*(hop for _, _, hop in BAR_WINDOWS))
BARS_BUCKET_SQL = _bucket_sql()


def columnar_bars(
    chunks: Sequence[Chunk], ws: WindowState, ctx: FoldContext, sql: SqlRunner
) -> ColumnarOut:
    """``folds.fold_bars`` over column batches (see the module doc).

    When no event of the batch is dropped from a window as late (``late_mode="update"``, or none
    late), every event feeds each of its windows, and the bars are folded in two levels
    (``BARS_BUCKET_SQL``: one row per event instead of one per event and window). Otherwise each
    (event, window) pair is a row of one ``BARS_SQL`` group-by, the late pairs left out."""
    lateness = ctx.windowing.allowed_lateness_us
    side = ctx.windowing.late_mode == "side"
    cols: list[tuple[tuple[str, int], pa.Table, I64, I64, I64, npt.NDArray[np.bool_]]] = []
    any_late = False
    for tp, t in chunks:
        if not t.num_rows:
            continue
        ts = _ints(t, "executed_at")
        offsets = _ints(t, "src_offset")
        wm, has = watermarks(ws, tp, ts, lateness)
        if side and not any_late:
            # the earliest end among an event's windows: late anywhere means late there
            first_end = np.min(
                [ts - ts % hop - (size // hop - 1) * hop + size for _, size, hop in BAR_WINDOWS],
                axis=0,
            )
            any_late = bool((has & (first_end <= wm)).any())
        cols.append((tp, t, ts, offsets, wm, has))
    if not any_late:
        return _bars_by_bucket(cols, sql)
    pieces: list[pa.Table] = []
    late: list[tuple[int, int, int, Row]] = []  # (event order, window, start order, row)
    order = 0
    for tp, t, ts, offsets, wm, has in cols:
        n = t.num_rows
        price, qty = _decimal(t, "price", 8), _decimal(t, "quantity", 4)
        instrument, currency = _strings(t, "instrument"), _strings(t, "currency")
        take: list[I64] = []
        views: list[I64] = []
        starts: list[I64] = []
        sizes: list[I64] = []
        for vi, (name, size, hop) in enumerate(BAR_WINDOWS):
            if size == hop:
                window_starts = [ts - ts % size]
            else:
                last = ts - ts % hop
                window_starts = [last - i * hop for i in range(size // hop - 1, -1, -1)]
            for si, st in enumerate(window_starts):
                is_late = has & (st + size <= wm)
                if side and bool(is_late.any()):
                    tenants = t.column("tenant")
                    for i in np.flatnonzero(is_late).tolist():
                        row = _late_row(
                            tenants[i].as_py(), tp, int(offsets[i]), name, int(st[i]), int(ts[i])
                        )
                        late.append((order + i, vi, si, row))
                    keep = np.flatnonzero(~is_late)
                else:
                    keep = np.arange(n, dtype=np.int64)
                take.append(keep)
                views.append(np.full(len(keep), vi, np.int64))
                starts.append(st[keep])
                sizes.append(np.full(len(keep), size, np.int64))
        order += n
        idx = np.concatenate(take)
        pos = (np.int64(tp[1]) << np.int64(40)) | offsets
        base = pa.table(
            {
                "tenant": t.column("tenant"),
                "instrument": instrument,
                "currency": currency,
                "price": price,
                "quantity": qty,
                "ts": pa.array(ts),
                "pos": pa.array(pos),
                "src_offset": pa.array(offsets),
            }
        ).take(pa.array(idx))
        pieces.append(
            base.append_column("view", pa.array(np.concatenate(views)))
            .append_column("window_start", pa.array(np.concatenate(starts)))
            .append_column("window_size", pa.array(np.concatenate(sizes)))
            .append_column("src_topic", pa.array([tp[0]] * len(idx), pa.string()))
            .append_column("src_partition", pa.array(np.full(len(idx), tp[1], np.int64)))
        )
    out = _bars_out(sql(BARS_SQL, pa.concat_tables(pieces)) if pieces else None)
    late.sort(key=lambda x: (x[0], x[1], x[2]))
    out["late_events"] = [r for *_, r in late]
    return out


def _bars_by_bucket(
    cols: Sequence[tuple[tuple[str, int], pa.Table, I64, I64, I64, npt.NDArray[np.bool_]]],
    sql: SqlRunner,
) -> ColumnarOut:
    if cols and ARROW_PARTIALS and (got := _bar_partials(cols)) is not None:
        out = _bars_out(got)
        out["late_events"] = []
        return out
    got = None
    if cols:
        pieces = []
        for tp, t, ts, offsets, _, _ in cols:
            n = t.num_rows
            pieces.append(
                pa.table(
                    {
                        "tenant": t.column("tenant"),
                        "instrument": _strings(t, "instrument"),
                        "currency": _strings(t, "currency"),
                        "price": _decimal(t, "price", 8),
                        "quantity": _decimal(t, "quantity", 4),
                        "k": _order_key(ts, (np.int64(tp[1]) << np.int64(40)) | offsets),
                        "src_offset": pa.array(offsets),
                        "bucket": pa.array(ts - ts % _BUCKET_US),
                        "src_topic": pa.array([tp[0]] * n, pa.string()),
                        "src_partition": pa.array(np.full(n, tp[1], np.int64)),
                    }
                )
            )
        got = sql(BARS_BUCKET_SQL, pa.concat_tables(pieces))
    if got is not None:
        for end in ("first", "last"):
            at, pos = _split_key(got.column(end))
            got = got.append_column(f"{end}_at", pa.array(at)).append_column(
                f"{end}_pos", pa.array(pos)
            )
    out = _bars_out(got)
    out["late_events"] = []
    return out


def _unscaled_max(col: pa.Array | pa.ChunkedArray) -> int:
    """The largest magnitude of a decimal column, in units of its scale."""
    lo, hi = (v.as_py() for v in pc.min_max(col).values())
    if lo is None:
        return 0
    return int(max(abs(lo), abs(hi)).scaleb(col.type.scale))


def _chunk_ids(cols: Sequence[tuple[tuple[str, int], pa.Table]]) -> tuple[I64, pa.Table]:
    """Each row's chunk index (a cheap group key standing for its topic and partition) and the
    chunks' (src_topic, src_partition), to be taken by that index from the grouped rows."""
    ids = np.repeat(np.arange(len(cols), dtype=np.int64), [t.num_rows for _, t in cols])
    src = pa.table(
        {
            "src_topic": pa.array([tp[0] for tp, _ in cols], pa.string()),
            "src_partition": pa.array([tp[1] for tp, _ in cols], pa.int64()),
        }
    )
    return ids, src


def _bar_partials(
    cols: Sequence[tuple[tuple[str, int], pa.Table, I64, I64, I64, npt.NDArray[np.bool_]]],
) -> pa.Table | None:
    """``BARS_BUCKET_SQL`` in Arrow: its inner level (one row per chunk, tenant, instrument,
    currency and minute bucket) here, its outer level in ``_bar_windows``. None when a sum could
    come near decimal(38)'s range (the caller then runs the SQL, as before)."""
    batch = pa.concat_tables(
        [
            pa.table(
                {
                    "tenant": t.column("tenant"),
                    "instrument": _strings(t, "instrument"),
                    "currency": _strings(t, "currency"),
                    "price": _decimal(t, "price", 8),
                    "quantity": _decimal(t, "quantity", 4),
                    "src_offset": pa.array(offsets),
                }
            )
            for _, t, _, offsets, _, _ in cols
        ]
    )
    n = batch.num_rows
    ts = np.concatenate([c[2] for c in cols])
    pos = np.concatenate(
        [(np.int64(tp[1]) << np.int64(40)) | offsets for tp, _, _, offsets, *_ in cols]
    )
    chunk, src = _chunk_ids([(c[0], c[1]) for c in cols])
    price, qty = batch.column("price"), batch.column("quantity")
    try:
        # price * quantity as ClickHouse types it (scale 12 in a Decimal128): Arrow multiplies
        # decimals only when the product's precision fits 38 digits, so price must fit 18
        # (quantity always fits 19: the column decoder takes 64-bit unscaled values only)
        notional = pc.multiply(
            price.cast(pa.decimal128(18, 8)), qty.cast(pa.decimal128(19, 4))
        ).cast(pa.decimal128(38, 12))
    except pa.ArrowInvalid:
        return None
    if max(_unscaled_max(qty), _unscaled_max(notional)) * n >= _SUM_LIMIT:
        return None
    # argMin/argMax by (time, position): each row's rank in that order, the group's smallest and
    # largest rank name its rows. A chunk's rows are in offset order, so a stable sort by time
    # alone orders each chunk by (time, position); across chunks the order is of no account (the
    # chunk is a group key). Timsort: a replay's times are runs already in order.
    order = np.argsort(ts, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    keys = ["_c", "tenant", "instrument", "currency", "bucket"]
    grouped = (
        batch.append_column("notional", notional)
        .append_column("_c", pa.array(chunk))
        .append_column("bucket", pa.array(ts - ts % _BUCKET_US))
        .append_column("_r", pa.array(rank))
        .group_by(keys, use_threads=False)
        .aggregate(
            [
                ("price", "max"),
                ("price", "min"),
                ("quantity", "sum"),
                ("notional", "sum"),
                ("src_offset", "min"),
                ("src_offset", "max"),
                ("_r", "min"),
                ("_r", "max"),
                ("_r", "count"),
            ]
        )
    )
    first = order[grouped.column("_r_min").to_numpy()]
    last = order[grouped.column("_r_max").to_numpy()]
    buckets = grouped.select(["_c", "tenant", "instrument", "currency", "bucket"])
    buckets = buckets.append_column("b_open", price.take(pa.array(first)))
    buckets = buckets.append_column("b_close", price.take(pa.array(last)))
    for name, col in (
        ("b_high", "price_max"),
        ("b_low", "price_min"),
        ("b_volume", "quantity_sum"),
        ("b_notional", "notional_sum"),
        ("b_events", "_r_count"),
        ("b_src_first", "src_offset_min"),
        ("b_src_last", "src_offset_max"),
    ):
        buckets = buckets.append_column(name, grouped.column(col))
    return _bar_windows(buckets, (ts[first], pos[first]), (ts[last], pos[last]), src)


def _bar_windows(
    buckets: pa.Table, first: tuple[I64, I64], last: tuple[I64, I64], src: pa.Table
) -> pa.Table:
    """``BARS_BUCKET_SQL``'s outer level in Arrow: each bucket partial fanned out to the windows
    holding its minute, then one bar per (view, chunk, tenant, instrument, currency, window),
    with the columns ``_bars_out`` takes. ``first``/``last``: (time, position) of each bucket's
    first and last event, which order its open and close as ``argMin``/``argMax`` by ``k`` do."""
    n = buckets.num_rows
    bucket = buckets.column("bucket").to_numpy()
    rows, views, starts, sizes = [], [], [], []
    every = np.arange(n, dtype=np.int64)
    for vi, (_, size, hop) in enumerate(BAR_WINDOWS):
        newest = bucket - bucket % hop  # hop > 0: numpy's % is ClickHouse's positiveModulo
        for i in range(size // hop):
            rows.append(every)
            views.append(np.full(n, vi, np.int64))
            starts.append(newest - i * hop)
            sizes.append(np.full(n, size, np.int64))
    idx = np.concatenate(rows)
    start = np.concatenate(starts)
    # ranks of the buckets by their first and by their last event: unique within a chunk
    by_first, by_last = np.lexsort((first[1], first[0])), np.lexsort((last[1], last[0]))
    rank_first, rank_last = np.empty(n, np.int64), np.empty(n, np.int64)
    rank_first[by_first] = every
    rank_last[by_last] = every
    fanned = buckets.select(
        [
            "_c",
            "tenant",
            "instrument",
            "currency",
            "b_high",
            "b_low",
            "b_volume",
            "b_notional",
            "b_events",
            "b_src_first",
            "b_src_last",
        ]
    ).take(pa.array(idx))
    grouped = (
        fanned.append_column("view", pa.array(np.concatenate(views)))
        .append_column("window_start", pa.array(start))
        .append_column("window_end", pa.array(start + np.concatenate(sizes)))
        .append_column("_rf", pa.array(rank_first[idx]))
        .append_column("_rl", pa.array(rank_last[idx]))
        .group_by(
            ["view", "_c", "tenant", "instrument", "currency", "window_start", "window_end"],
            use_threads=False,
        )
        .aggregate(
            [
                ("b_high", "max"),
                ("b_low", "min"),
                ("b_volume", "sum"),
                ("b_notional", "sum"),
                ("b_events", "sum"),
                ("b_src_first", "min"),
                ("b_src_last", "max"),
                ("_rf", "min"),
                ("_rl", "max"),
            ]
        )
    )
    f = by_first[grouped.column("_rf_min").to_numpy()]
    la = by_last[grouped.column("_rl_max").to_numpy()]
    at = src.take(grouped.column("_c"))
    return pa.table(
        {
            "view": grouped.column("view"),
            "tenant": grouped.column("tenant"),
            "instrument": grouped.column("instrument"),
            "window_start": grouped.column("window_start"),
            "window_end": grouped.column("window_end"),
            "currency": grouped.column("currency"),
            "open": buckets.column("b_open").take(pa.array(f)),
            "high": grouped.column("b_high_max"),
            "low": grouped.column("b_low_min"),
            "close": buckets.column("b_close").take(pa.array(la)),
            "volume": grouped.column("b_volume_sum"),
            "notional": grouped.column("b_notional_sum"),
            "events": grouped.column("b_events_sum"),
            "first_at": pa.array(first[0][f]),
            "first_pos": pa.array(first[1][f]),
            "last_at": pa.array(last[0][la]),
            "last_pos": pa.array(last[1][la]),
            "src_topic": at.column("src_topic"),
            "src_partition": at.column("src_partition"),
            "src_first": grouped.column("b_src_first_min"),
            "src_last": grouped.column("b_src_last_max"),
        }
    )


def _order_key(ts: I64, pos: I64) -> pa.Array:
    """(ts, pos) as one Decimal128 ``ts * 2**64 + pos`` (pos >= 0): it orders as the pair does.
    Decimal128 is two little-endian 64-bit words, low first: the words are pos and ts."""
    words = np.empty((len(ts), 2), np.int64)
    words[:, 0] = pos
    words[:, 1] = ts
    return pa.Array.from_buffers(pa.decimal128(38, 0), len(ts), [None, pa.py_buffer(words)])


def _split_key(col: pa.ChunkedArray) -> tuple[I64, I64]:
    """(ts, pos) of ``_order_key`` values."""
    arr = col.combine_chunks()
    if arr.null_count or not pa.types.is_decimal128(arr.type):
        raise Unsupported("an order key came back null or not as a Decimal128")
    words = np.frombuffer(arr.buffers()[1], np.int64)[2 * arr.offset : 2 * (arr.offset + len(arr))]
    return words[1::2].copy(), words[0::2].copy()


def _bars_out(got: pa.Table | None) -> ColumnarOut:
    out: ColumnarOut = {}
    for vi, (name, _, _) in enumerate(BAR_WINDOWS):
        if got is None:
            out[name] = []
            continue
        part = got.filter(pc.equal(got.column("view"), vi))
        out[name] = _finish(part, _BAR_COLS, ("window_start", "window_end", "first_at", "last_at"))
    return out


# -- payment aggregates ---------------------------------------------------------------------------
def _literal(d: Decimal) -> str:
    text = f"{d:f}"
    scale = len(text.split(".")[1]) if "." in text else 0
    return f"toDecimal128('{text}', {scale})"


def columnar_payment_aggregates(
    chunks: Sequence[Chunk], ws: WindowState, ctx: FoldContext, sql: SqlRunner
) -> ColumnarOut:
    """``folds.fold_payment_aggregates`` over column batches (see the module doc)."""
    lateness = ctx.windowing.allowed_lateness_us
    side = ctx.windowing.late_mode == "side"
    threshold = Decimal(str(ctx.params.get("aml_threshold", "10000")))
    floor = threshold * (1 - Decimal(str(ctx.params.get("aml_band", "0.1"))))
    pieces: list[Chunk] = []
    late: list[Row] = []
    for tp, t in chunks:
        t = t.filter(pc.equal(t.column("event_type"), "hub.payments.PaymentInitiated"))
        n = t.num_rows
        if not n:
            continue
        ts = _ints(t, "initiated_at")
        offsets = _ints(t, "src_offset")
        amount = _decimal(t, "amount", 2)
        cur, country = _strings(t, "currency"), _strings(t, "counterparty_country")
        account = _strings(t, "account_id")
        wm, has = watermarks(ws, tp, ts, lateness)
        day = ts - ts % DAY_US
        is_late = has & (day + DAY_US <= wm)
        keep = np.arange(n, dtype=np.int64)
        if side and bool(is_late.any()):
            tenants = t.column("tenant")
            for i in np.flatnonzero(is_late).tolist():
                for view in ("payment_volumes_1d", "aml_daily"):
                    late.append(
                        _late_row(
                            tenants[i].as_py(), tp, int(offsets[i]), view, int(day[i]), int(ts[i])
                        )
                    )
            keep = np.flatnonzero(~is_late)
        base = pa.table(
            {
                "tenant": t.column("tenant"),
                "account_id": account,
                "currency": cur,
                "country": country,
                "amt": amount,
                "day": pa.array(day),
                "src_offset": pa.array(offsets),
            }
        )
        pieces.append((tp, base.take(pa.array(keep)) if len(keep) != n else base))
    out: ColumnarOut = {"payment_volumes_1d": [], "aml_daily": [], "late_events": late}
    if not pieces:
        return out
    lo, hi = _literal(floor), _literal(threshold)
    got = _payment_partials(pieces, floor, threshold) if ARROW_PARTIALS else None
    if got is not None:
        vol, aml = got
    else:
        batch = pa.concat_tables(
            [
                t.append_column(
                    "src_topic", pa.array([tp[0]] * t.num_rows, pa.string())
                ).append_column("src_partition", pa.array(np.full(t.num_rows, tp[1], np.int64)))
                for tp, t in pieces
            ]
        )
        common = (
            "toInt64(count()) AS events, sum(amt) AS amount, "
            "min(src_offset) AS src_first, max(src_offset) AS src_last"
        )
        vol = sql(
            f"SELECT tenant, day, currency, country, {common}, src_topic, src_partition "
            "FROM Python(__batch__) "
            "GROUP BY src_topic, src_partition, tenant, day, currency, country",
            batch,
        )
        near = f"amt >= {lo} AND amt < {hi}"
        aml = sql(
            f"SELECT tenant, account_id, day, currency, {common}, "
            f"toInt64(countIf({near})) AS near_threshold, "
            f"sumIf(amt, {near}) AS near_threshold_amount, src_topic, src_partition "
            "FROM Python(__batch__) "
            "GROUP BY src_topic, src_partition, tenant, account_id, day, currency",
            batch,
        )
    src = ("src_topic", "src_partition", "src_first", "src_last")
    out["payment_volumes_1d"] = _finish(
        vol, ("tenant", "day", "currency", "country", "events", "amount", *src), ("day",)
    )
    out["aml_daily"] = _finish(
        aml,
        (
            "tenant",
            "account_id",
            "day",
            "currency",
            "events",
            "amount",
            "near_threshold",
            "near_threshold_amount",
            *src,
        ),
        ("day",),
    )
    return out


_PAYMENT_NAMES = {
    "amt_count_sum": "events",
    "amt_sum_sum": "amount",
    "src_offset_min_min": "src_first",
    "src_offset_max_max": "src_last",
    "near_sum_sum": "near_threshold",
    "near_amt_sum_sum": "near_threshold_amount",
}


def _payment_partials(
    pieces: Sequence[Chunk], floor: Decimal, threshold: Decimal
) -> tuple[pa.Table, pa.Table] | None:
    """The two payment group-bys in Arrow, with the columns and types the SQL gives (``events``
    and ``near_threshold`` Int64, sums decimal(38, 2), offsets Int64). None when a sum could come
    near decimal(38)'s range or a band limit has more than the amount's two decimals (the
    caller then runs the SQL, as before)."""
    batch = pa.concat_tables([t for _, t in pieces])
    amt = batch.column("amt")
    if _unscaled_max(amt) * batch.num_rows >= _SUM_LIMIT:
        return None
    dec = amt.type
    try:
        lo, hi = pa.scalar(floor, dec), pa.scalar(threshold, dec)
    except (pa.ArrowInvalid, ValueError):
        return None  # a limit with more decimals than the amount: the SQL compares it exactly
    if lo.as_py() != floor or hi.as_py() != threshold:
        return None
    near = pc.and_(pc.greater_equal(amt, lo), pc.less(amt, hi))
    chunk, src = _chunk_ids(pieces)
    batch = (
        batch.append_column("_c", pa.array(chunk))
        .append_column("near", near.cast(pa.int64()))
        .append_column("near_amt", pc.if_else(near, amt, pa.scalar(Decimal(0), dec)))
    )
    common = [("amt", "count"), ("amt", "sum"), ("src_offset", "min"), ("src_offset", "max")]

    def tagged(g: pa.Table) -> pa.Table:
        at = src.take(g.column("_c"))
        return (
            g.rename_columns([_PAYMENT_NAMES.get(c, c) for c in g.column_names])
            .append_column("src_topic", at.column("src_topic"))
            .append_column("src_partition", at.column("src_partition"))
        )

    # one pass over the events into the finest groups (both views' keys), then each view from
    # those few rows: sums and counts add up, offsets' min and max of mins and maxes
    fine = batch.group_by(
        ["_c", "tenant", "account_id", "day", "currency", "country"], use_threads=False
    ).aggregate([*common, ("near", "sum"), ("near_amt", "sum")])
    again = [
        ("amt_count", "sum"),
        ("amt_sum", "sum"),
        ("src_offset_min", "min"),
        ("src_offset_max", "max"),
    ]
    vol = fine.group_by(["_c", "tenant", "day", "currency", "country"], use_threads=False)
    aml = fine.group_by(["_c", "tenant", "account_id", "day", "currency"], use_threads=False)
    return (
        tagged(vol.aggregate(again)),
        tagged(aml.aggregate([*again, ("near_sum", "sum"), ("near_amt_sum", "sum")])),
    )
