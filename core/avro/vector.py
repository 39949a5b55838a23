"""Vectorised Avro binary encoding of Arrow record batches, byte for byte what fastavro writes.

``plan(schema, arrow_schema)`` maps each field of an Avro record schema (``ParsedSchema.parsed``)
onto an Arrow column, or onto the field's default when the column is absent. It returns None when
any field is outside what is vectorised here; callers then encode row by row with fastavro.

Vectorised (Avro type <- Arrow type):
- ``string`` <- string / large_string; ``bytes`` <- binary / large_binary
- ``long`` <- int8..int64, uint8..uint32; ``int`` <- int8..int32, uint8, uint16
- ``boolean`` <- bool; ``double`` <- float64, float32; ``float`` <- float32
- ``enum`` <- string / large_string (the symbol's index)
- ``bytes`` + ``decimal`` <- decimal128 (unscaled big-endian two's complement, fastavro's length)
- ``long`` + ``timestamp-micros`` <- timestamp[s|ms|us] (any or no time zone)
- ``int`` + ``date`` <- date32
- ``["null", T]`` / ``[T, "null"]`` of those.

Each column becomes a few "pieces" (a constant, a fixed-width byte matrix, or ragged bytes with
per-row lengths: zig-zag varints, the UTF-8 of an Arrow string array straight from its data
buffer, decimal bytes). Row ``r`` of the output is the concatenation of every piece's row ``r``;
pieces are scattered into one buffer at per-row offsets from prefix sums (``np.cumsum``) with
fancy indexing, and the buffer is sliced into one ``bytes`` per row. That numpy path is the
reference; ``hub_native.avro_encode_rows`` (native/src/avro_encode.rs) writes the same bytes from
the columns' Arrow buffers row by row in one call, and ``encode`` uses it when built
(``tests/unit/test_native_avro_encode.py`` holds the two to identical output).

Rows the encoder cannot write exactly as fastavro would (a null in a non-null field, a string
that is not an enum symbol, a decimal fastavro would refuse or that does not fit 64 bits, a
timestamp outside Python's datetime range) are flagged by ``VectorEncoder.bad_rows``; callers
send those rows through the per-record path, which produces fastavro's own result or error.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# Python's datetime range in microseconds (and days) since the epoch, a day inside each end.
_MIN_US = -62_135_596_800_000_000 + 86_400_000_000
_MAX_US = 253_402_300_799_999_999 - 86_400_000_000
_MIN_DAY, _MAX_DAY = -719_162 + 1, 2_932_896 - 1
_TS_SCALE = {"s": 1_000_000, "ms": 1_000, "us": 1}
_INT_TYPES = {
    "long": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"),
    "int": ("int8", "int16", "int32", "uint8", "uint16"),
}
_POW10 = [10**k for k in range(19)]

try:
    from hub_native import avro_encode_rows as _native_encode
except ImportError:  # pragma: no cover - the extension is optional
    _native_encode = None

# avro_encode.rs's kinds and integer element codes
_N_CONST, _N_BINARY, _N_INT, _N_TS, _N_BOOL, _N_DOUBLE, _N_FLOAT, _N_DECIMAL = range(8)
_INT_CODE = {"int8": 1, "int16": 2, "int32": 3, "int64": 4, "uint8": 5, "uint16": 6, "uint32": 7}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: str  # string bytes long int boolean double float enum decimal timestamp date const
    column: int = -1  # index in the Arrow batch; -1 for a default-only field
    nullable: bool = False
    null_index: int = 0  # the union branch of null (when nullable)
    symbols: tuple[str, ...] = ()
    scale: int = 0  # Avro decimal scale
    precision: int = 0
    shift: int = 0  # Avro scale minus Arrow scale (decimals), or the timestamp unit factor
    constant: bytes = b""  # kind "const": the encoded default


def _resolve(t: Any, named: Mapping[str, Any]) -> Any:
    return named[t] if isinstance(t, str) and t in named else t


def _kind(t: Any, arrow: pa.DataType) -> tuple[str, dict[str, Any]] | None:
    """The vectorised kind for Avro type ``t`` (not a union) fed by Arrow type ``arrow``."""
    if isinstance(t, dict):
        logical, base = t.get("logicalType"), t.get("type")
        if logical == "decimal" and base == "bytes":
            if not pa.types.is_decimal128(arrow):
                return None
            return "decimal", {
                "scale": int(t.get("scale", 0)),
                "precision": int(t["precision"]),
                "shift": int(t.get("scale", 0)) - arrow.scale,
            }
        if logical == "timestamp-micros" and base == "long":
            if not pa.types.is_timestamp(arrow) or arrow.unit not in _TS_SCALE:
                return None
            return "timestamp", {"shift": _TS_SCALE[arrow.unit]}
        if logical == "date" and base == "int":
            return ("date", {}) if pa.types.is_date32(arrow) else None
        if logical is not None:
            return None
        if base == "enum":
            ok = pa.types.is_string(arrow) or pa.types.is_large_string(arrow)
            return ("enum", {"symbols": tuple(t["symbols"])}) if ok else None
        if isinstance(base, str) and base not in ("record", "error", "array", "map", "fixed"):
            return _kind(base, arrow)
        return None
    if t == "string":
        ok = pa.types.is_string(arrow) or pa.types.is_large_string(arrow)
        return ("string", {}) if ok else None
    if t == "bytes":
        ok = pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow)
        return ("bytes", {}) if ok else None
    if t in _INT_TYPES:
        return (t, {}) if str(arrow) in _INT_TYPES[t] else None
    if t == "boolean":
        return ("boolean", {}) if pa.types.is_boolean(arrow) else None
    if t == "double":
        return ("double", {}) if pa.types.is_float64(arrow) or pa.types.is_float32(arrow) else None
    if t == "float":
        return ("float", {}) if pa.types.is_float32(arrow) else None
    return None


def _encode_default(t: Any, named: Mapping[str, Any], default: Any) -> bytes | None:
    """A field default, Avro-encoded once (what fastavro writes for it in every record)."""
    from core.avro.serde import _from_default

    full = _inline(t, named, set())
    if full is None:
        return None
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(
            buf, fastavro.parse_schema(full), _from_default(default, t, named)
        )
    except Exception:
        return None
    return buf.getvalue()


def _inline(t: Any, named: Mapping[str, Any], seen: set[str]) -> Any:
    """``t`` with named references replaced by their definitions (for a standalone parse)."""
    if isinstance(t, str):
        if t in named:
            if t in seen:
                return None
            return _inline(named[t], named, seen | {t})
        return t
    if isinstance(t, list):
        out = [_inline(b, named, seen) for b in t]
        return None if any(b is None for b in out) else out
    if isinstance(t, dict):
        d = {k: v for k, v in t.items() if not k.startswith("__")}
        for key in ("items", "values"):
            if key in d:
                d[key] = _inline(d[key], named, seen)
                if d[key] is None:
                    return None
        if "fields" in d:
            fields = []
            for f in d["fields"]:
                ft = _inline(f["type"], named, seen)
                if ft is None:
                    return None
                fields.append(
                    {**{k: v for k, v in f.items() if not k.startswith("__")}, "type": ft}
                )
            d["fields"] = fields
        return d
    return t


def plan(schema: Mapping[str, Any], arrow_schema: pa.Schema) -> VectorEncoder | None:
    """A vector encoder of ``schema`` (parsed Avro record) for batches of ``arrow_schema``."""
    if not isinstance(schema, Mapping) or schema.get("type") not in ("record", "error"):
        return None
    named = schema.get("__named_schemas", {})
    fields: list[_Field] = []
    names = arrow_schema.names
    if len(set(names)) != len(names):
        return None
    for f in schema["fields"]:
        name = f["name"]
        t = _resolve(f["type"], named)
        if name not in names:
            if "default" not in f:
                return None
            constant = _encode_default(f["type"], named, f["default"])
            if constant is None:
                return None
            fields.append(_Field(name, "const", constant=constant))
            continue
        col = names.index(name)
        arrow = arrow_schema.field(col).type
        if pa.types.is_dictionary(arrow):
            return None
        nullable, null_index = False, 0
        if isinstance(t, list):
            if len(t) != 2 or "null" not in t:
                return None
            null_index = t.index("null")
            t = _resolve(t[1 - null_index], named)
            nullable = True
        found = _kind(t, arrow)
        if found is None:
            return None
        kind, extra = found
        fields.append(_Field(name, kind, col, nullable, null_index, **extra))
    return VectorEncoder(tuple(fields))


# -- pieces ---------------------------------------------------------------------------------
# A piece is ("const", bytes) | ("fixed", (n, w) uint8 matrix) | ("ragged", lengths, data).
Piece = tuple[Any, ...]


def _zigzag(v: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    v = v.astype(np.int64, copy=False)
    return ((v << np.int64(1)) ^ (v >> np.int64(63))).view(np.uint64)


def _varint(z: npt.NDArray[np.uint64], present: Bools | None = None) -> Piece:
    """Avro varints of zig-zagged values; rows with ``present`` False get no bytes."""
    n = z.shape[0]
    if n == 0:
        return ("const", b"")
    width = np.ones(n, dtype=np.int64)
    for k in range(1, 10):
        more = z >= np.uint64(1 << (7 * k))
        if not more.any():
            break
        width += more
    if present is not None:
        width[~present] = 0
    top = int(width.max())
    if top == 1 and (present is None or bool(present.all())):
        return ("fixed", z.astype(np.uint8).reshape(n, 1))
    mat = np.empty((n, top), dtype=np.uint8)
    for k in range(top):
        byte = (z >> np.uint64(7 * k)) & np.uint64(0x7F)
        cont = (width > k + 1).astype(np.uint64) << np.uint64(7)
        mat[:, k] = (byte | cont).astype(np.uint8)
    keep = np.arange(top) < width[:, None]
    return ("ragged", width, mat[keep])


def _valid(arr: pa.Array) -> Bools:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=np.bool_)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def _ints(arr: pa.Array) -> npt.NDArray[np.int64]:
    """An integer-like column as int64 (nulls as 0)."""
    if arr.null_count:
        arr = arr.fill_null(0)
    np_arr = arr.to_numpy(zero_copy_only=False)
    return np.asarray(np_arr).astype(np.int64, copy=False)


def _storage_ints(arr: pa.Array) -> npt.NDArray[np.int64]:
    """A timestamp or date column's storage integers as int64 (nulls as 0)."""
    bits = pa.int64() if pa.types.is_timestamp(arr.type) else pa.int32()
    return _ints(arr.view(bits))


def _decimal_words(arr: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Low and high 64-bit words of a decimal128 column (nulls hold whatever Arrow stored)."""
    buf = arr.buffers()[1]
    words = np.frombuffer(buf, dtype="<i8")[2 * arr.offset : 2 * (arr.offset + len(arr))]
    return words[0::2], words[1::2]


def _binary(arr: pa.Array, valid: Bools) -> tuple[I64, U8]:
    """Per-row byte lengths and the concatenated bytes of a string/binary column."""
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    bufs = arr.buffers()
    n = len(arr)
    offs = np.frombuffer(bufs[1], dtype=np.int64 if large else np.int32)[
        arr.offset : arr.offset + n + 1
    ].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    lens = np.diff(offs)
    body = data[offs[0] : offs[-1]]
    if not valid.all() and lens[~valid].any():
        body = body[np.repeat(valid, lens)]
        lens = np.where(valid, lens, 0)
    return lens, body


class VectorEncoder:
    """Encodes Arrow record batches of one layout to Avro values (see the module docstring)."""

    def __init__(self, fields: tuple[_Field, ...]) -> None:
        self.fields = fields

    def bad_rows(self, rb: pa.RecordBatch) -> Bools:
        """Rows whose encoding fastavro would refuse or that are not vectorised exactly."""
        n = rb.num_rows
        bad = np.zeros(n, dtype=np.bool_)
        for f in self.fields:
            if f.kind == "const":
                continue
            arr = rb.column(f.column)
            valid = _valid(arr)
            if not f.nullable:
                bad |= ~valid
            if f.kind == "enum":
                idx = pc.index_in(arr, value_set=pa.array(f.symbols, arr.type))
                bad |= valid & ~_valid(idx)
            elif f.kind == "decimal":
                bad |= valid & self._decimal_bad(f, arr)
            elif f.kind == "timestamp":
                us = _storage_ints(arr)
                lim_lo, lim_hi = _MIN_US // f.shift, _MAX_US // f.shift
                bad |= valid & ((us < lim_lo) | (us > lim_hi))
            elif f.kind == "date":
                days = _storage_ints(arr)
                bad |= valid & ((days < _MIN_DAY) | (days > _MAX_DAY))
        return bad

    @staticmethod
    def _decimal_bad(f: _Field, arr: pa.Array) -> Bools:
        lo, hi = _decimal_words(arr)
        bad: Bools = hi != (lo >> np.int64(63))  # does not fit 64 bits
        bad |= lo == np.iinfo(np.int64).min
        if f.shift < 0:  # fastavro refuses a Decimal with more places than the schema's scale
            return np.ones(len(arr), dtype=np.bool_)
        mag = np.abs(np.where(bad, 0, lo))
        # fastavro checks the Decimal's digit count (as Arrow gives it) against the precision
        if f.precision < 19:
            bad |= mag >= np.int64(_POW10[f.precision])
        if f.shift:
            if f.shift > 18:
                wide: Bools = bad | (mag != 0)
                return wide
            bad |= mag > np.int64((2**63 - 1) // _POW10[f.shift])
        return bad

    def encode(self, rb: pa.RecordBatch, header: bytes = b"") -> list[bytes]:
        """Every row's Avro value (prefixed with ``header``); rows must pass ``bad_rows``."""
        if _native_encode is not None and rb.num_rows:
            out: list[bytes] | None = _native_encode(
                rb.num_rows, header, [self._native_field(f, rb) for f in self.fields]
            )
            if out is not None:
                return out
        return self.encode_py(rb, header)

    @staticmethod
    def _native_field(f: _Field, rb: pa.RecordBatch) -> tuple[Any, ...]:
        """``f`` as ``avro_encode_rows`` takes it: its column's Arrow buffers, no conversion."""
        null_index = f.null_index if f.nullable else -1
        if f.kind == "const":
            return (_N_CONST, -1, 0, None, 0, None, None, 0, f.constant)
        arr = rb.column(f.column)
        bufs = arr.buffers()
        valid = bufs[0] if arr.null_count else None
        kind = f.kind
        if kind in ("string", "bytes"):
            large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
            return (
                _N_BINARY,
                null_index,
                int(large),
                valid,
                arr.offset,
                *bufs[1:3],
                arr.offset,
                b"",
            )
        if kind == "enum":
            idx = pc.index_in(arr, value_set=pa.array(f.symbols, arr.type))
            idx = idx.fill_null(0) if idx.null_count else idx  # as the reference's _ints
            vals = idx.buffers()[1]
            return (_N_INT, null_index, 3, valid, arr.offset, vals, None, idx.offset, b"")
        if kind in ("long", "int", "date"):
            code = 3 if kind == "date" else _INT_CODE[str(arr.type)]
            return (_N_INT, null_index, code, valid, arr.offset, bufs[1], None, arr.offset, b"")
        if kind == "timestamp":
            return (_N_TS, null_index, f.shift, valid, arr.offset, bufs[1], None, arr.offset, b"")
        if kind == "boolean":
            return (_N_BOOL, null_index, 0, valid, arr.offset, bufs[1], None, arr.offset, b"")
        if kind in ("double", "float"):
            n_kind = _N_DOUBLE if kind == "double" else _N_FLOAT
            aux = int(pa.types.is_float32(arr.type))
            return (n_kind, null_index, aux, valid, arr.offset, bufs[1], None, arr.offset, b"")
        if kind == "decimal":
            return (
                _N_DECIMAL,
                null_index,
                f.shift,
                valid,
                arr.offset,
                bufs[1],
                None,
                arr.offset,
                b"",
            )
        raise AssertionError(kind)  # pragma: no cover - plan admits only these kinds

    def encode_py(self, rb: pa.RecordBatch, header: bytes = b"") -> list[bytes]:
        """``encode`` in numpy: the reference the native encoder is held to."""
        n = rb.num_rows
        if n == 0:
            return []
        pieces: list[Piece] = [("const", header)] if header else []
        for f in self.fields:
            if f.kind == "const":
                pieces.append(("const", f.constant))
                continue
            arr = rb.column(f.column)
            valid = _valid(arr)
            all_valid = bool(valid.all())
            if f.nullable:
                branch = np.where(valid, 2 * (1 - f.null_index), 2 * f.null_index)
                pieces.append(("fixed", branch.astype(np.uint8).reshape(n, 1)))
            present = None if all_valid else valid
            pieces.extend(self._pieces(f, arr, valid, present))
        return _assemble(n, pieces)

    @staticmethod
    def _pieces(f: _Field, arr: pa.Array, valid: Bools, present: Bools | None) -> list[Piece]:
        n = len(arr)
        kind = f.kind
        if kind in ("string", "bytes"):
            lens, body = _binary(arr, valid)
            return [_varint(_zigzag(lens), present), ("ragged", lens, body)]
        if kind in ("long", "int", "date"):
            v = _storage_ints(arr) if kind == "date" else _ints(arr)
            return [_varint(_zigzag(v), present)]
        if kind == "timestamp":
            return [_varint(_zigzag(_storage_ints(arr) * np.int64(f.shift)), present)]
        if kind == "enum":
            idx = pc.index_in(arr, value_set=pa.array(f.symbols, arr.type))
            return [_varint(_zigzag(_ints(idx)), present)]
        if kind == "boolean":
            b = np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)
            return [_masked_fixed(b.reshape(n, 1), present)]
        if kind in ("double", "float"):
            dtype = "<f8" if kind == "double" else "<f4"
            filled = arr.fill_null(0) if arr.null_count else arr
            vals = np.asarray(filled.to_numpy(zero_copy_only=False)).astype(dtype)
            return [_masked_fixed(vals.view(np.uint8).reshape(n, -1), present)]
        if kind == "decimal":
            lo, _ = _decimal_words(arr)
            u = np.where(valid, lo, 0)
            if f.shift:
                u = u * np.int64(_POW10[f.shift])
            mag = np.abs(u)
            width = np.ones(n, dtype=np.int64)
            for k in range(1, 8):  # fastavro: (bit_length(|u|) + 8) // 8 bytes
                width += mag >= np.int64(1 << (8 * k - 1))
            if present is not None:
                width[~present] = 0
            be = u.astype(">i8").view(np.uint8).reshape(n, 8)
            body = be[np.arange(8) >= (8 - width)[:, None]]
            return [_varint(_zigzag(width), present), ("ragged", width, body)]
        raise AssertionError(kind)  # pragma: no cover - plan admits only these kinds


def _masked_fixed(mat: U8, present: Bools | None) -> Piece:
    if present is None:
        return ("fixed", mat)
    width = np.where(present, mat.shape[1], 0)
    return ("ragged", width, mat[present].reshape(-1))


def _assemble(n: int, pieces: list[Piece]) -> list[bytes]:
    """Interleave the pieces row by row into one buffer; slice it into per-row values."""
    merged: list[Piece] = []
    for p in pieces:  # adjacent constants become one
        if p[0] == "const" and merged and merged[-1][0] == "const":
            merged[-1] = ("const", merged[-1][1] + p[1])
        elif p[0] != "const" or p[1]:
            merged.append(p)
    row_len = np.zeros(n, dtype=np.int64)
    fixed_len = 0
    for p in merged:
        if p[0] == "const":
            fixed_len += len(p[1])
        elif p[0] == "fixed":
            fixed_len += p[1].shape[1]
        else:
            row_len += p[1]
    row_len += fixed_len
    ends = np.cumsum(row_len)
    starts = ends - row_len
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    pos = starts.copy()
    for p in merged:
        if p[0] == "const":
            k = len(p[1])
            const = np.frombuffer(p[1], dtype=np.uint8)
            if k == 1:
                out[pos] = const[0]
            else:
                out[pos[:, None] + np.arange(k)] = const
            pos += k
        elif p[0] == "fixed":
            mat = p[1]
            w = mat.shape[1]
            if w == 1:
                out[pos] = mat[:, 0]
            else:
                out[pos[:, None] + np.arange(w)] = mat
            pos += w
        else:
            lens, data = p[1], p[2]
            total = data.shape[0]
            if total:
                src = np.cumsum(lens) - lens
                out[np.repeat(pos - src, lens) + np.arange(total)] = data
            pos += lens
    buf = out.tobytes()
    return list(map(buf.__getitem__, map(slice, starts.tolist(), ends.tolist())))
