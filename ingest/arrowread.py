"""JSON lines and Avro datums into Arrow record batches for the columnar path (``columnar``).

The per-record path stays the reference: a JSON line becomes ``json.loads`` then
``serde.from_json``; an Avro container row becomes fastavro's resolved datum. This module gives
the columnar path Arrow columns holding exactly the datums the reference would build, and marks
every row it cannot vouch for (``force``); those rows go through the per-record path with their
original ``RawRecord`` (the JSON line's own bytes), so their outcome, reason and quarantined
original are the reference's by construction.

JSON lines (``json_batch``): the batch's lines are parsed by Arrow's JSON reader
(``pyarrow.json``) against the schema's own column types, with unknown fields an error. Arrow
refuses a value of another JSON type (a number for a string, ``"5"`` for a long, ``1.0`` for a
long), duplicate keys, lone surrogates, raw control characters and non-objects; a batch it
refuses is split in halves until the lines it refuses are found, and those go row by row. Lines
are also sent row by row, before Arrow sees them, when Arrow and Python's ``json`` could read
them differently: not UTF-8, a byte-order mark, a control byte, more than one JSON document on
the line (Arrow reads both), or longer than the record limit. After the read, rows are sent row
by row when a column cannot say what the reference would do (see below). With ``hub_native``
built, the lines are parsed first by ``hub_native.json_rows`` (native/src/json_rows.rs, ~4x
Arrow's reader): it takes only flat objects of a strict form that Arrow reads, giving the same
column values (tests/unit/test_native_json_rows.py compares them bit for bit), and leaves every
other line to Arrow, which then decides it as before; the checks below run on both alike.
Sent row by row after the read:
- a null where the reference tells a missing field from an explicit null (any field but a
  nullable one whose default is null);
- an ``int`` out of 32 bits, a ``float`` out of float32 range, a non-finite double, a decimal
  with more integer digits than its precision leaves (Arrow checks the digits as written, before
  it rescales them to the scale);
- a timestamp or date string not in the strict RFC 3339 form (Python's ``fromisoformat`` reads
  more forms; Arrow reads them differently), an enum symbol the schema does not have.

A schema with a field type outside these (records, arrays, maps, bytes, fixed, unions of two
non-null types, ``timestamp-millis``) has no layout: the per-record path reads the whole file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from core.avro.serde import _from_default
from ingest.lines import Lines

Bools = npt.NDArray[np.bool_]

_TS = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_DATE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_SUSPECT = re.compile(rb"[\x00-\x09\x0b-\x1f]|\xef\xbb\xbf")  # control bytes, a BOM
_BOM = b"\xef\xbb\xbf"
_NOT_CONTROL = bytes(range(0x20, 0x100)) + b"\n"  # deleted, what is left is control bytes
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, slots=True)
class Column:
    """One field: its Avro kind, the Arrow type JSON is read as, the type it ends as."""

    name: str
    kind: str  # string enum long int boolean double float decimal timestamp date
    read: pa.DataType
    final: pa.DataType
    null_ok: bool  # a null here means what the reference makes of it (nullable, default null)
    symbols: tuple[str, ...] = ()
    default: pa.Scalar | None = None  # a missing field's value (the schema default), if any


@dataclass(frozen=True, slots=True)
class Layout:
    columns: tuple[Column, ...]

    @property
    def read_schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.read) for c in self.columns])

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.final) for c in self.columns])


def layout(parsed: Any) -> Layout | None:
    """The Arrow layout of a parsed Avro record schema, or None if a field has no plain column."""
    if not isinstance(parsed, dict) or parsed.get("type") not in ("record", "error"):
        return None
    named = parsed.get("__named_schemas", {})
    out = []
    for f in parsed["fields"]:
        t = f["type"]
        nullable = False
        if isinstance(t, list):
            if len(t) != 2 or "null" not in t:
                return None
            t = t[1 - t.index("null")]
            nullable = True
        if isinstance(t, str) and t in named:
            t = named[t]
        found = _column_types(t)
        if found is None:
            return None
        kind, read, final, symbols = found
        null_ok = nullable and "default" in f and f["default"] is None
        default = None
        if "default" in f and not null_ok:
            try:
                default = pa.scalar(_from_default(f["default"], f["type"], named), final)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                default = None
        out.append(Column(f["name"], kind, read, final, null_ok, symbols, default))
    return Layout(tuple(out))


def _column_types(t: Any) -> tuple[str, pa.DataType, pa.DataType, tuple[str, ...]] | None:
    plain = {
        "string": ("string", pa.string(), pa.string()),
        "long": ("long", pa.int64(), pa.int64()),
        "int": ("int", pa.int64(), pa.int32()),
        "boolean": ("boolean", pa.bool_(), pa.bool_()),
        "double": ("double", pa.float64(), pa.float64()),
        "float": ("float", pa.float64(), pa.float32()),
    }
    if isinstance(t, str):
        found = plain.get(t)
        return None if found is None else (*found, ())
    if not isinstance(t, dict):
        return None
    logical, base = t.get("logicalType"), t.get("type")
    if logical == "decimal" and base == "bytes":
        precision, scale = int(t["precision"]), int(t.get("scale", 0))
        if not 0 < precision <= 38 or not 0 <= scale <= precision:
            return None
        dec = pa.decimal128(precision, scale)
        return "decimal", dec, dec, ()
    if logical == "timestamp-micros" and base == "long":
        return "timestamp", pa.string(), pa.timestamp("us", tz="UTC"), ()
    if logical == "date" and base == "int":
        return "date", pa.string(), pa.date32(), ()
    if logical is None and base == "enum":
        return "enum", pa.string(), pa.string(), tuple(t["symbols"])
    if logical is None and isinstance(base, str) and base in plain:
        return (*plain[base], ())
    return None


# -- JSON lines -------------------------------------------------------------------------------
def json_batch(
    lines: Sequence[bytes] | Lines, lay: Layout, max_bytes: int
) -> tuple[pa.RecordBatch, Bools]:
    """The lines (non-blank, without their line ends; texts or ``Lines``) as one record batch
    of ``lay.schema``, row i from line i, and the rows the per-record path must decide (their
    batch row is null)."""
    if not isinstance(lines, Lines):
        lines = Lines.texts(lines)
    n = len(lines)
    force = np.zeros(n, dtype=np.bool_)
    data = lines.data
    octets = np.frombuffer(data, dtype=np.uint8)
    native = _native_json_rows is not None and type(data) is bytes
    lens = lines.lengths()
    long = bool(n and int(lens.max()) > max_bytes)
    # ASCII data holds neither a byte-order mark nor invalid UTF-8 (one C-level pass). Its
    # control bytes are looked for after the native parse, in the lines it left: it takes no
    # line holding one (json_rows.rs), so a batch it takes whole skips that pass (~0.5 ms per
    # 10,000 lines); ``_suspect_lines`` then forces the left lines exactly as done here before.
    late = native and not long and data.isascii()
    if not late and (long or _suspect(data)):
        for i in range(n):
            force[i] = _suspect_line(lines.line(i), max_bytes)
    # Only lines that open an object go to Arrow (its reader crashes on a lone ``null``).
    if len(octets):
        opens = octets[np.minimum(lines.starts, len(octets) - 1)] == 0x7B
        for i in np.flatnonzero(~opens | (lens == 0)).tolist():
            if lines.line(i).lstrip(b" ")[:1] != b"{":
                force[i] = True
    parsed: list[tuple[list[int], pa.Table]] = []
    read_schema = lay.read_schema
    todo = np.flatnonzero(~force)
    if native and len(todo):
        todo = _native_read(lines, todo, lay, parsed)
        if late and len(todo) and _suspect(lines.joined(todo)):
            for i in todo.tolist():
                force[i] = _suspect_line(lines.line(i), max_bytes)
            todo = todo[~force[todo]]
    _read(lines, todo.tolist(), read_schema, parsed, force)
    if parsed:
        table = pa.concat_tables([tb for _, tb in parsed]).combine_chunks()
        at = np.concatenate([np.asarray(idx, dtype=np.int64) for idx, _ in parsed])
    else:
        table = read_schema.empty_table()
        at = np.zeros(0, dtype=np.int64)
    cols = [
        pa.concat_arrays(table.column(c.name).chunks or [pa.nulls(0, c.read)]) for c in lay.columns
    ]
    if len(at) != n or not np.array_equal(at, np.arange(n)):
        # Row i of the batch: its parsed row, or null for the rows left to the per-record path.
        where = np.full(n, -1, dtype=np.int64)
        where[at] = np.arange(len(at), dtype=np.int64)
        take = pa.array(where, mask=where < 0)
        cols = [col.take(take) for col in cols]
    out = []
    texts: list[pa.Array] = []  # the lines as one Arrow array, built once if a default is needed
    tiny = _has_floats(lay) and may_underflow(data)
    for c, col in zip(lay.columns, cols, strict=True):
        arr, unsure = _finish(c, col, tiny)
        force |= unsure
        if not c.null_ok and col.null_count:
            arr = _missing(c, col, arr, lines, texts, force)
        out.append(arr)
    return pa.RecordBatch.from_arrays(out, schema=lay.schema), force


def _missing(
    c: Column,
    col: pa.Array,
    arr: pa.Array,
    lines: Lines,
    texts: list[pa.Array],
    force: Bools,
) -> pa.Array:
    """Nulls of a column where the reference tells a missing field (its default) from an
    explicit null (refused, or null): a line that does not name the field at all (and has no
    ``\\u00XX`` escape, which could spell its name) gets the default; other null rows are forced."""
    nulls = np.flatnonzero(~_np(col.is_valid()) & ~force)
    if not len(nulls):
        return arr
    if c.default is None:
        force[nulls] = True
        return arr
    data = lines.data
    if not _has_text(data, f'"{c.name}"') and (b"\\" not in data or b"\\u00" not in data):
        # No line names the field, nor could spell it (the usual case: a field every line
        # leaves out): every null row gets the default, without a pass over each line. The
        # backslash test is one memchr pass; the name's search is native (``_has_text``).
        named = np.zeros(len(col), dtype=np.bool_)
    else:
        if not texts:
            # The lines as one binary array over their bytes (each with its joining newline).
            offsets = np.concatenate([lines.starts, [len(data)]]).astype(np.int64)
            texts.append(
                pa.Array.from_buffers(
                    pa.large_binary(),
                    len(lines),
                    [None, pa.py_buffer(offsets), pa.py_buffer(data)],
                )
            )
            # Field names are ASCII letters, digits and ``_``: only a ``\\u00XX`` escape of an
            # ASCII character could spell one without the plain name showing.
            escaped = b"\\u00" in data
            texts.append(
                pc.match_substring_regex(texts[0], r"\\u00[0-7]")
                if escaped
                else pa.array(np.zeros(len(lines), dtype=np.bool_))
            )
        named = _np(pc.or_(pc.match_substring(texts[0], f'"{c.name}"'), texts[1]))
    null = np.zeros(len(col), dtype=np.bool_)
    null[nulls] = True
    force |= null & named
    fill = null & ~named
    if not fill.any():
        return arr
    return pc.if_else(pa.array(fill), c.default, arr)


def _load_contains_text() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: ``bytes.__contains__`` answers
        return None
    return getattr(hub_native, "contains_text", None)


_native_contains_text = _load_contains_text()


def _has_text(data: bytes, needle: str) -> bool:
    """Whether ``needle`` (ASCII) occurs in ``data``. The native search (SSE2) is ~6x faster than
    ``in`` on JSON, whose commonest byte ``"`` ends every quoted name and so defeats CPython's
    skip table; it answers None for bytes that are not UTF-8, and ``in`` (the reference) decides."""
    if _native_contains_text is not None and type(data) is bytes:
        found = _native_contains_text(data, needle)
        if found is not None:
            return bool(found)
    return needle.encode() in data


def _load_json_rows() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: Arrow's reader parses every line
        return None
    return getattr(hub_native, "json_rows", None)


_native_json_rows = _load_json_rows()
# Kind codes of native/src/json_rows.rs, by the Arrow type a column is read as.
_JSON_KIND = {"string": 0, "int64": 1, "bool": 2, "double": 3}


def _native_read(
    lines: Lines, idx: npt.NDArray[np.int64], lay: Layout, parsed: list[tuple[list[int], pa.Table]]
) -> npt.NDArray[np.int64]:
    """Lines ``idx`` parsed natively (``hub_native.json_rows``) where the line is of the flat,
    strict form it takes (a subset of what Arrow reads, with the same values); the lines it
    leaves, returned, go to Arrow (``_read``), which decides them as it did before."""
    kinds, precisions, scales = [], [], []
    for c in lay.columns:
        if pa.types.is_decimal(c.read):
            kinds.append(4)
            precisions.append(c.read.precision)
            scales.append(c.read.scale)
        else:
            kinds.append(_JSON_KIND[str(c.read)])
            precisions.append(0)
            scales.append(0)
    ok_bytes, taken, bufs = _native_json_rows(
        lines.data,
        lines.starts[idx].astype(np.int64).tobytes(),
        lines.ends[idx].astype(np.int64).tobytes(),
        [c.name.encode() for c in lay.columns],
        kinds,
        precisions,
        scales,
    )
    if not taken:
        return idx
    arrays = []
    for c, (valid, values, offsets) in zip(lay.columns, bufs, strict=True):
        validity = None if valid is None else pa.py_buffer(valid)
        if offsets is None:
            arrays.append(pa.Array.from_buffers(c.read, taken, [validity, pa.py_buffer(values)]))
        else:
            arrays.append(
                pa.Array.from_buffers(
                    c.read, taken, [validity, pa.py_buffer(offsets), pa.py_buffer(values)]
                )
            )
    ok = np.frombuffer(ok_bytes, dtype=np.bool_)
    parsed.append((idx[ok].tolist(), pa.Table.from_arrays(arrays, schema=lay.read_schema)))
    return idx[~ok]


def _suspect(data: bytes) -> bool:
    """Whether some line of ``data`` may hold a control byte, a byte-order mark or invalid
    UTF-8 (then each line is looked at: ``_suspect_line``); C-level passes."""
    if data.translate(None, _NOT_CONTROL):
        return True
    if data.isascii():
        return False
    if _BOM in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _suspect_line(line: bytes, max_bytes: int) -> bool:
    if len(line) > max_bytes or _SUSPECT.search(line) is not None:
        return True
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _read(
    lines: Lines,
    idx: list[int],
    schema: pa.Schema,
    parsed: list[tuple[list[int], pa.Table]],
    force: Bools,
) -> None:
    """Parse lines ``idx`` with Arrow; halves on refusal, down to single lines (then forced)."""
    if not idx:
        return
    data = lines.joined(idx)
    try:
        table = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowException, UnicodeDecodeError):
        table = None
    if table is not None and table.num_rows == len(idx):
        parsed.append((idx, table))
        return
    if len(idx) == 1:  # refused, or more than one document on the line
        force[idx[0]] = True
        return
    half = len(idx) // 2
    _read(lines, idx[:half], schema, parsed, force)
    _read(lines, idx[half:], schema, parsed, force)


def _has_floats(lay: Layout) -> bool:
    return any(c.kind in ("double", "float") for c in lay.columns)


def may_underflow(data: bytes) -> bool:
    """Whether number text in ``data`` may be a non-zero value a double reads as 0.0 (the
    reference refuses it): that needs a negative exponent, or a run of over 300 zeros.
    One vector pass over the bytes. Pessimistic: a batch it flags only sends its zero floats
    to the reference."""
    if b"0" * 300 in data:  # a long needle: the search skips along the data
        return True
    o = np.frombuffer(data, dtype=np.uint8)
    dash = np.flatnonzero(o[1:-1] == 0x2D) + 1  # "e-" then a digit ("one-time" is not one)
    nxt = o[dash + 1]
    return bool(np.any(((o[dash - 1] | 0x20) == 0x65) & (nxt >= 0x30) & (nxt <= 0x39)))


def _finish(c: Column, col: pa.Array, tiny: bool = True) -> tuple[pa.Array, Bools]:
    """Column ``c`` as its final Arrow type; rows whose reference outcome it cannot vouch for.

    ``tiny``: whether the source text may hold a non-zero number read as 0.0 (``may_underflow``);
    then every 0.0 of a float column is left to the reference, which tells the two apart."""
    n = len(col)
    valid = np.ones(n, dtype=np.bool_) if col.null_count == 0 else _np(col.is_valid())
    unsure = np.zeros(n, dtype=np.bool_)  # nulls: ``_missing`` decides them
    if c.kind in ("timestamp", "date"):
        native = _native_times(col, c)
        if native is not None:
            arr, ok = native
            return _in_range(arr, unsure | (valid & ~ok))
        ok = _np(pc.match_substring_regex(col, pattern=_TS if c.kind == "timestamp" else _DATE))
        unsure |= valid & ~ok
        keep = pa.array(valid & ok)
        strings = pc.if_else(keep, col, pa.scalar(None, pa.string()))
        try:
            arr = strings.cast(c.final)
        except pa.ArrowInvalid:  # e.g. a 30th of February: Python's parser decides each value
            arr, bad = _dates_one_by_one(strings, c)
            unsure |= bad
        return _in_range(arr, unsure)
    if c.kind == "int":
        v = np.asarray(col.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        out32 = (v < -(2**31)) | (v >= 2**31)
        unsure |= out32
        return pc.if_else(pa.array(out32), pa.scalar(None, pa.int64()), col).cast(c.final), unsure
    if c.kind in ("double", "float"):
        v = np.asarray(col.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = ~np.isfinite(v)
        if c.kind == "float":
            with np.errstate(all="ignore"):
                bad |= np.abs(v) > _F32_MAX
                bad |= (v != 0) & (v.astype(np.float32) == 0)  # non-zero, 0.0 as a float32
        if tiny:
            bad |= valid & (v == 0)
        unsure |= bad
        if bad.any():
            col = pc.if_else(pa.array(bad), pa.scalar(None, pa.float64()), col)
        return col.cast(c.final), unsure
    if c.kind == "enum":
        member = _np(pc.is_in(col, value_set=pa.array(list(c.symbols), pa.string())))
        unsure |= valid & ~member
        return col, unsure
    if c.kind == "decimal":
        over = _over_precision(col, c.final)
        unsure |= over
        if over.any():
            col = pc.if_else(pa.array(over), pa.scalar(None, col.type), col)
        return col, unsure
    return col, unsure


def _over_precision(col: pa.Array, t: pa.Decimal128Type) -> Bools:
    """Rows of a decimal column with more integer digits than ``t`` holds. Arrow's JSON reader
    checks the precision of the digits as written, before it rescales them to the scale:
    ``"123456789.5"`` is taken by decimal(10, 2) as 123456789.50, 11 digits. The reference
    refuses such a value; it is left to it."""
    if not len(col):
        return np.zeros(0, dtype=np.bool_)
    if t.precision <= 18 and col.type == t:
        return _over_precision_18(col, t.precision)
    return _over_precision_wide(col, t)


def _over_precision_wide(col: pa.Array, t: pa.Decimal128Type) -> Bools:
    """``_over_precision`` by decimal256 comparisons (any precision; the reference)."""
    wide = pa.decimal256(76, t.scale)
    bound = Decimal(10) ** (t.precision - t.scale)
    w = col.cast(wide)
    high = pc.greater_equal(w, pa.scalar(bound, wide))
    low = pc.less_equal(w, pa.scalar(-bound, wide))
    return _np(pc.or_(high, low))


def _over_precision_18(col: pa.Array, precision: int) -> Bools:
    """``_over_precision`` for a decimal128 of precision <= 18, on its values' two 64-bit
    words: a value within ``10**precision`` (<= 10**18 < 2**63) has a high word that is the
    sign of its low word. Nulls are never over (the reference's ``fill_null(False)``)."""
    words = np.frombuffer(col.buffers()[1], dtype="<i8")[
        2 * col.offset : 2 * (col.offset + len(col))
    ]
    lo, hi = words[0::2], words[1::2]
    bound = 10**precision
    over: Bools = (hi != (lo >> 63)) | (lo >= bound) | (lo <= -bound)
    if col.null_count:
        over &= _np(col.is_valid())
    return over


def _load_times() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: the regex and the cast decide
        return None
    return getattr(hub_native, "rfc3339_values", None)


_native_rfc3339 = _load_times()


def _native_times(col: pa.Array, c: Column) -> tuple[pa.Array, Bools] | None:
    """A timestamp or date column's strings as ``c.final`` values where they have the strict
    form (``_TS`` / ``_DATE``), null elsewhere, and where they have it, by one native pass
    (``hub_native.rfc3339_values``): what the regex, ``if_else`` and cast give (the reference,
    ~4x the CPU). None when the extension is not built or a value of the form is not a
    calendar date: the reference decides, as before."""
    if _native_rfc3339 is None or col.type != pa.string():
        return None
    bufs = col.buffers()
    got = _native_rfc3339(
        bufs[1],
        bufs[2],
        bufs[0] if col.null_count else None,
        col.offset,
        len(col),
        c.kind == "date",
    )
    if got is None:
        return None
    ok = np.frombuffer(got[0], dtype=np.bool_)
    values = pa.py_buffer(got[1])
    validity = pa.py_buffer(np.packbits(ok, bitorder="little").tobytes())
    storage = pa.int32() if c.kind == "date" else pa.int64()
    arr = pa.Array.from_buffers(storage, len(col), [validity, values]).view(c.final)
    return arr, ok


_US_RANGE = (-62_135_596_800_000_000, 253_402_300_799_999_999)  # years 1-9999 in UTC


def _in_range(arr: pa.Array, unsure: Bools) -> tuple[pa.Array, Bools]:
    """Timestamps outside Python's datetime range (an offset can push year 1 or 9999 over)
    are left to the per-record path."""
    if not pa.types.is_timestamp(arr.type) or not len(arr):
        return arr, unsure
    us = np.asarray(arr.view(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False))
    out = (us < _US_RANGE[0]) | (us > _US_RANGE[1])
    if not out.any():
        return arr, unsure
    return pc.if_else(pa.array(out), pa.scalar(None, arr.type), arr), unsure | out


def _dates_one_by_one(strings: pa.Array, c: Column) -> tuple[pa.Array, Bools]:
    from datetime import date, datetime

    values: list[Any] = []
    bad = np.zeros(len(strings), dtype=np.bool_)
    for i, s in enumerate(strings.to_pylist()):
        if s is None:
            values.append(None)
            continue
        try:
            if c.kind == "date":
                values.append(date.fromisoformat(s))
            else:
                values.append(datetime.fromisoformat(s.replace("Z", "+00:00")))
        except ValueError:
            values.append(None)
            bad[i] = True
    return pa.array(values, c.final), bad


def _np(arr: pa.Array) -> Bools:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)


# -- Avro datums -----------------------------------------------------------------------------
def datum_batch(datums: Sequence[Any], lay: Layout) -> pa.RecordBatch | None:
    """Resolved Avro datums (fastavro's, for the layout's schema) as one record batch, or None
    if a value does not fit its column (the per-record path then takes the batch)."""
    try:
        return pa.RecordBatch.from_pylist(list(datums), schema=lay.schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


# -- CSV rows ---------------------------------------------------------------------------------
_INT_TEXT = r"^-?[0-9]{1,18}$"
_FLOAT_TEXT = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,2})?$"


def csv_layout(lay: Layout, header: Sequence[str], fields: Any) -> Layout | None:
    """The columns of ``lay`` a CSV file with ``header`` holds, in header order; None when the
    per-record path must read the file (a repeated header name, a schema field that is neither
    in the header nor has a default)."""
    if len(set(header)) != len(header):
        return None
    by_name = {c.name: c for c in lay.columns}
    defaults = {f["name"] for f in fields if "default" in f}
    if any(c.name not in header and c.name not in defaults for c in lay.columns):
        return None
    return Layout(tuple(by_name[h] for h in header))


def csv_batch(
    rows: Sequence[bytes] | Lines,
    header: Sequence[str],
    lay: Layout,
    nullable: set[str],
    max_bytes: int,
) -> tuple[pa.RecordBatch, Bools]:
    """CSV rows (non-blank, without their line ends; texts or ``Lines``) as one record batch of
    the header's columns (``csv_layout``), each converted as ``files._csv_value`` converts its
    text, and the rows the per-record path must decide. Arrow reads only rows without quotes or
    control bytes and with the header's number of commas, so that a row is the plain comma split
    ``csv.reader`` makes of it; values are converted only when their text has the strict form
    both readers agree on (digits, decimals, RFC 3339 times, ``true``/``false``/``1``/``0``)."""
    import pyarrow.csv as pcsv

    if not isinstance(rows, Lines):
        rows = Lines.texts(rows)
    n = len(rows)
    force = np.zeros(n, dtype=np.bool_)
    data = rows.data
    octets = np.frombuffer(data, dtype=np.uint8)
    lens = rows.lengths()
    starts = rows.starts
    # Quotes and control bytes (but tabs and the newlines joining rows): their rows are forced.
    marked = ((octets < 0x20) & (octets != 0x09)) | (octets == 0x22)
    joins = rows.ends[:-1]
    # Unmarked in place (not ``np.isin`` on the marked positions: a sort, 5x the cost).
    marked[joins[joins < len(marked)]] = False
    odd = np.flatnonzero(marked)
    if len(odd):
        force[np.searchsorted(starts, odd, side="right") - 1] = True
    commas = np.flatnonzero(octets == 0x2C)
    per_row = np.searchsorted(commas, rows.ends) - np.searchsorted(commas, starts)
    force |= per_row != len(header) - 1
    force |= lens > max_bytes
    # A row opening with a byte-order mark: Arrow's reader drops one at the start of its input
    # (the batch's first row), ``csv.reader`` keeps it; the per-record path decides such rows.
    if len(octets) >= 3:
        at = np.minimum(starts, len(octets) - 3)
        force |= (
            (lens >= 3) & (octets[at] == 0xEF) & (octets[at + 1] == 0xBB) & (octets[at + 2] == 0xBF)
        )
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            for i in range(n):
                try:
                    rows.line(i).decode("utf-8")
                except UnicodeDecodeError:
                    force[i] = True
    good = np.flatnonzero(~force)
    strings = [pa.array([], pa.string()) for _ in header]
    split = None
    if len(good) and _native_csv_split is not None and type(data) is bytes:
        split = _native_csv_split(
            data,
            starts[good].astype(np.int64).tobytes(),
            rows.ends[good].astype(np.int64).tobytes(),
            len(header),
        )
    if split is not None:
        # The good rows' fields, split natively (csv_rows.rs): what ``read_csv`` gives them.
        strings = [
            pa.Array.from_buffers(pa.string(), len(good), [None, pa.py_buffer(o), pa.py_buffer(t)])
            for o, t in split
        ]
    elif len(good):
        block = rows.joined(good)
        try:
            table = pcsv.read_csv(
                io.BytesIO(block),
                read_options=pcsv.ReadOptions(
                    column_names=list(header), use_threads=False, block_size=len(block) + 1
                ),
                parse_options=pcsv.ParseOptions(
                    quote_char=False,
                    double_quote=False,
                    escape_char=False,
                    ignore_empty_lines=False,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={h: pa.string() for h in header},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            ).combine_chunks()
        except pa.ArrowException:
            table = None
        if table is None or table.num_rows != len(good):
            force[:] = True
            good = good[:0]
        else:
            strings = [
                pa.concat_arrays(table.column(i).chunks or [pa.array([], pa.string())])
                for i in range(len(header))
            ]
    if len(good) != n:
        where = np.full(n, -1, dtype=np.int64)
        where[good] = np.arange(len(good), dtype=np.int64)
        take = pa.array(where, mask=where < 0)
        strings = [col.take(take) for col in strings]
    out = []
    tiny = _has_floats(lay) and may_underflow(data)
    for c, col in zip(lay.columns, strings, strict=True):
        arr, unsure = _csv_column(c, col, c.name in nullable, tiny)
        force |= unsure
        out.append(arr)
    return pa.RecordBatch.from_arrays(out, schema=lay.schema), force


def _load_decimal_text() -> Any:
    import hub_native

    return getattr(hub_native, "decimal_text", None)


def _load_csv_split() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: Arrow's ``read_csv`` splits the rows
        return None
    return getattr(hub_native, "csv_split", None)


_native_csv_split = _load_csv_split()
_native_decimal_text = None if _native_csv_split is None else _load_decimal_text()


def _csv_column(
    c: Column, col: pa.Array, nullable: bool, tiny: bool = True
) -> tuple[pa.Array, Bools]:
    """One CSV column's text as ``c.final``; the rows whose text is not of a strict form."""
    n = len(col)
    present = np.ones(n, dtype=np.bool_) if col.null_count == 0 else _np(col.is_valid())
    empty = _np(pc.equal(col, "")) & present
    null = empty if nullable else np.zeros(n, dtype=np.bool_)  # "" in a nullable column: None
    if c.kind == "string":
        return _nulled(col, null), np.zeros(n, dtype=np.bool_)
    check = present & ~null
    if c.kind == "enum":
        ok = _np(pc.is_in(col, value_set=pa.array(list(c.symbols), pa.string())))
        return _nulled(col, null), check & ~ok
    if c.kind == "boolean":
        low = pc.ascii_lower(col)
        ok = _np(pc.is_in(low, value_set=pa.array(["true", "false", "1", "0"])))
        value = pc.is_in(low, value_set=pa.array(["true", "1"]))
        return _nulled(value, null | ~ok), check & ~ok
    if c.kind in ("timestamp", "date"):
        native = _native_times(col, c)
        if native is not None:
            # Its ``ok`` is the regex's (nulls false); "" never matches, so its nulls are the
            # ``null | ~ok`` rows the reference casts as null.
            arr, ok = native
            return _in_range(arr, check & ~ok)
    if c.kind == "decimal" and _native_decimal_text is not None and col.type == pa.string():
        p, s = c.final.precision, c.final.scale
        if s < p or s == 0:  # (s == p > 0: the reference's regex does not compile; it says so)
            bufs = col.buffers()
            got = _native_decimal_text(
                bufs[1], bufs[2], bufs[0] if col.null_count else None, col.offset, n, p, s
            )
            # As for times: its ``ok`` is the regex's, and "" never matches.
            ok = np.frombuffer(got[0], dtype=np.bool_)
            validity = pa.py_buffer(np.packbits(ok, bitorder="little").tobytes())
            arr = pa.Array.from_buffers(c.final, n, [validity, pa.py_buffer(got[1])])
            return arr, check & ~ok
    pattern = {
        "long": _INT_TEXT,
        "int": _INT_TEXT,
        "double": _FLOAT_TEXT,
        "float": _FLOAT_TEXT,
        "timestamp": _TS,
        "date": _DATE,
    }.get(c.kind)
    if c.kind == "decimal":
        p, s = c.final.precision, c.final.scale
        pattern = f"^-?[0-9]{{1,{p - s}}}(\\.[0-9]{{1,{s}}})?$" if s else f"^-?[0-9]{{1,{p}}}$"
    assert pattern is not None
    ok = _np(pc.match_substring_regex(col, pattern=pattern))
    unsure = check & ~ok
    text = _nulled(col, null | ~ok)
    if c.kind in ("timestamp", "date"):
        try:
            return _in_range(text.cast(c.final), unsure)
        except pa.ArrowInvalid:
            arr, bad = _dates_one_by_one(text, c)
            return _in_range(arr, unsure | bad)
    if c.kind in ("long", "int", "decimal"):
        arr = text.cast(pa.int64() if c.kind != "decimal" else c.final)
        if c.kind == "int":
            v = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
            wide = (v < -(2**31)) | (v >= 2**31)
            return _nulled(arr, wide).cast(c.final), unsure | wide
        return arr, unsure
    # non-finite, out of float32 range, too small (its text has at most two exponent digits)
    arr, bad = _finish(c, text.cast(pa.float64()), tiny)
    return arr, unsure | bad


def _nulled(arr: pa.Array, null: Bools) -> pa.Array:
    if not null.any():
        return arr
    return pc.if_else(pa.array(null), pa.scalar(None, arr.type), arr)


# Python's datetime range (years 1..9999) in seconds since the epoch
_TIME_SECONDS = (-62_135_596_800, 253_402_300_799)
_TIME_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def check_time_range(rb: Any, bad: Any, first_row: int = 0) -> None:
    """Raise ``bad(why)`` when a timestamp or date column of ``rb`` holds a value outside years
    1..9999: Python (the per-record path, ``to_pylist``) cannot hold it and raises
    ``OverflowError``. ``first_row`` is the row number of ``rb``'s first row in its source."""
    import pyarrow.types as t

    for f, col in zip(rb.schema, rb.columns, strict=True):
        if t.is_timestamp(f.type):
            per = _TIME_PER_SECOND[f.type.unit]
            lo, hi = _TIME_SECONDS[0] * per, _TIME_SECONDS[1] * per + per - 1
        elif t.is_date32(f.type):
            lo, hi = _TIME_SECONDS[0] // 86_400, _TIME_SECONDS[1] // 86_400
        elif t.is_date64(f.type):
            lo, hi = _TIME_SECONDS[0] * 1_000, _TIME_SECONDS[1] * 1_000 + 999
        else:
            continue
        ints = col.view(pa.int32() if t.is_date32(f.type) else pa.int64())
        lo, hi = max(lo, -(2**63)), min(hi, 2**63 - 1)  # nanoseconds: int64 spans 1677..2262
        outside = pc.or_(pc.less(ints, lo), pc.greater(ints, hi))
        if pc.any(outside).as_py():
            row = pc.index(outside, True).as_py()
            raise bad(
                f"has column {f.name!r} with a value outside years 1..9999 at row "
                f"{first_row + row} ({ints[row].as_py()} {f.type}): send times within that range."
            )
