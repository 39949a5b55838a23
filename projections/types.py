"""One representation per logical type, whatever the store or the output format.

Stores hold the same view differently: chDB returns ``DateTime64``/``Decimal`` columns, SQLite
integer microseconds and decimal *strings* (exact), PostgreSQL ``numeric``; an all-NULL column
comes back untyped. A query result is brought to the catalog's types by column name (every
column name has one logical type across the views: ``projections.catalog.table_columns``):

- timestamp: aware UTC ``datetime``; Arrow/Parquet ``timestamp[us, tz=UTC]``; JSON and CSV
  ISO-8601 text ``2026-11-24T10:00:00.000000Z``.
- decimal: ``Decimal`` at the column's scale; Arrow/Parquet ``decimal128(38, scale)``; JSON a
  string (``"101.25000000"``, exact: a JSON number would go through a float); CSV the digits.
- int: ``int``, ``int64``, a JSON number. string: ``str``, ``string``.

A result column named like a view column but computed into another kind of value (a float
average called ``amount``) keeps its own type: only lossless conversions are made.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Context, Decimal
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from audit.csvcell import FORMULA_FIRST, PLAIN_NUMBER, formula_safe
from core.errors import InvalidInput
from core.projection import Column, Table

_EXACT = Context(prec=80)  # decimals of up to 38 digits, never rounded (the default has 28)

TIMESTAMP = pa.timestamp("us", tz="UTC")
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # Arrow prints the µs fraction with %S for a µs timestamp


def arrow_type(c: Column) -> pa.DataType:
    return {
        "string": pa.string(),
        "int": pa.int64(),
        "timestamp": TIMESTAMP,
        "decimal": pa.decimal128(38, c.scale),
    }[c.type]


@cache
def _columns() -> dict[str, Column]:
    from projections.catalog import PROJECTIONS

    seen: dict[str, Column] = {}
    clash: set[str] = set()
    for p in PROJECTIONS:
        for t in p.tables:
            for c in t.columns:
                old = seen.setdefault(c.name, c)
                if arrow_type(old) != arrow_type(c):
                    clash.add(c.name)
    return {n: c for n, c in seen.items() if n not in clash}


def _decimal(col: pa.ChunkedArray, scale: int) -> pa.ChunkedArray | None:
    target = pa.decimal128(38, scale)
    t = col.type
    if pa.types.is_decimal(t) or pa.types.is_integer(t):
        try:
            return col.cast(target)
        except pa.ArrowInvalid:
            return None  # would lose digits: keep as is
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        q = Decimal(1).scaleb(-scale)
        try:
            values = [
                None if v is None else Decimal(v).quantize(q, context=_EXACT)
                for v in col.to_pylist()
            ]
            return pa.chunked_array([pa.array(values, target)], target)
        except (ArithmeticError, ValueError, pa.ArrowInvalid):
            return None
    return None


def _timestamp(col: pa.ChunkedArray) -> pa.ChunkedArray | None:
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            return col.cast(pa.timestamp(t.unit)).cast(pa.timestamp("us")).cast(TIMESTAMP)
        return col.cast(TIMESTAMP)
    if pa.types.is_integer(t):  # integer microseconds (SQLite, PostgreSQL)
        return col.cast(pa.int64()).cast(TIMESTAMP)
    return None


def canonical(table: pa.Table) -> pa.Table:
    """``table`` with every column named like a view column in that column's canonical Arrow
    type (see the module doc); other columns unchanged. (A column name means one logical type
    across all views; a name that did not would be left as the store returned it.)"""
    known = _columns()
    cols: list[pa.ChunkedArray] = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        c = known.get(name)
        got: pa.ChunkedArray | None = None
        if c is not None:
            want = arrow_type(c)
            if col.type == want:
                got = col
            elif pa.types.is_null(col.type):
                got = pa.chunked_array([pa.nulls(len(col), want)], want)
            elif c.type == "timestamp":
                got = _timestamp(col)
            elif c.type == "decimal":
                got = _decimal(col, c.scale)
            elif c.type == "int" and pa.types.is_integer(col.type):
                got = col.cast(pa.int64())
            elif c.type == "string" and pa.types.is_large_string(col.type):
                got = col.cast(pa.string())
        cols.append(col if got is None else got)
    return pa.table(dict(zip(table.column_names, cols, strict=True)))


def _text(table: pa.Table, formula_safe_cells: bool = True) -> pa.Table:
    """Timestamps as ISO-8601 text and decimals as plain digits (for CSV: Arrow would write a
    zero of scale 12 as ``0.E-12``); nested cells as JSON text; text cells neutralised as
    formulas (``spreadsheet_safe``) and the column names too, unless not
    ``formula_safe_cells``; the rest unchanged."""
    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col.cast(TIMESTAMP), format=ISO_FORMAT)
        elif pa.types.is_decimal(col.type):
            col = pa.array(
                [None if v is None else format(v, "f") for v in col.to_pylist()], pa.string()
            )
        elif pa.types.is_nested(col.type):  # lists, tuples (``src_offsets``): Arrow's CSV
            # writer has none; each cell as its JSON answer's text (``json_value``)
            text = [
                None if v is None else json.dumps(v, default=json_value) for v in col.to_pylist()
            ]
            col = pa.array(text, pa.string())
            if formula_safe_cells:
                col = spreadsheet_safe(col)
        elif not formula_safe_cells:
            pass
        elif pa.types.is_dictionary(col.type) and _is_text(col.type.value_type):
            col = spreadsheet_safe(col.cast(col.type.value_type))  # LowCardinality(String)
        elif _is_text(col.type):
            col = spreadsheet_safe(col)
        cols.append(col)
    # the header too: a column's name is the SQL's alias, and a saved query is another's SQL
    names = [formula_safe(n) if formula_safe_cells else n for n in table.column_names]
    return pa.table(dict(zip(names, cols, strict=True)))


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


@cache
def _formula_first() -> pa.Array:
    # built on first use: ``pa.array`` of a list imports pandas (0.25-0.3 CPU s), which a
    # process that never exports (``hub ledger verify``) should not pay at import
    return pa.array(FORMULA_FIRST, pa.string())


def spreadsheet_safe(col: Any) -> Any:
    """Text cells a spreadsheet would run as a formula, prefixed with ``'`` (OWASP's advice).

    A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
    to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``@SUM(...)``, DDE
    ``=cmd|...``): a publisher's value would run on the compliance officer's machine when they
    open an export. A plain number (``-12.50``) is left as it is. The prefix shows in the cell;
    the value as stored is unchanged (JSON and Parquet exports carry it as sent)."""
    first = pc.utf8_slice_codeunits(col, 0, 1)
    starts = pc.is_in(first, value_set=_formula_first()).fill_null(False)
    if not pc.any(starts).as_py():  # the common case: one cheap pass
        return col
    danger = pc.and_not(starts, pc.match_substring_regex(col, PLAIN_NUMBER).fill_null(False))
    quote, empty = pa.scalar("'", col.type), pa.scalar("", col.type)  # large_string too
    return pc.if_else(danger, pc.binary_join_element_wise(quote, col, empty), col)


def json_value(v: Any) -> Any:
    """A JSON default for query values: Decimal -> exact string, datetime -> ISO-8601 UTC."""
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(v)


CSV_CELLS = ("formula-safe", "raw")
"""How text cells are written in a CSV export: ``formula-safe`` (the default: a cell a
spreadsheet would run as a formula is prefixed with ``'``, ``spreadsheet_safe``) or ``raw`` (as
stored, for a program that reads the CSV; never open it in a spreadsheet)."""


def render(table: pa.Table, fmt: str, csv_cells: str = "formula-safe") -> tuple[bytes, str]:
    """A (canonical) query result as Parquet, CSV or JSON: bytes and media type. ``csv_cells``
    (one of ``CSV_CELLS``) applies to CSV only; Parquet and JSON carry values as stored."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue(), "application/vnd.apache.parquet"
    if fmt == "csv":
        import pyarrow.csv as pcsv

        if csv_cells not in CSV_CELLS:
            raise InvalidInput(f"csv_cells={csv_cells!r} is invalid: use formula-safe or raw.")
        buf = io.BytesIO()
        pcsv.write_csv(_text(table, formula_safe_cells=csv_cells == "formula-safe"), buf)
        return buf.getvalue(), "text/csv"
    if fmt == "json":
        body = {"columns": table.column_names, "rows": table.to_pylist()}
        return json.dumps(body, default=json_value).encode(), "application/json"
    raise InvalidInput(f"format={fmt!r} is invalid: use csv, parquet or json.")


def iso_micros(us: int) -> str:
    """Integer µs since the epoch as ISO-8601 UTC text (``2026-11-24T10:00:00.000000Z``)."""
    seconds, micros = divmod(us, 1_000_000)
    dt = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_json(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """A view row (as ``ViewStore.rows`` returns it) in the JSON representations above:
    timestamp columns as ISO-8601 UTC text, decimals as exact strings; other values unchanged."""
    out: dict[str, Any] = {}
    for name, v in row.items():
        try:
            kind: str = table.column(name).type
        except KeyError:
            kind = ""
        if v is None:
            out[name] = None
        elif kind == "timestamp" and isinstance(v, int):
            out[name] = iso_micros(v)
        elif isinstance(v, Decimal | datetime):
            out[name] = json_value(v)
        else:
            out[name] = v
    return out
