"""Avro binary values of flat records, a whole batch at once, as fastavro writes them.

For a record schema whose fields are all ``string``, ``int``, ``long``, ``double`` or ``long`` +
``timestamp-micros`` (no unions, no defaults needed), row ``r``'s value is the concatenation of
its fields' encodings: a string is the zig-zag varint of its UTF-8 length then its bytes, an
integer its zig-zag varint, a double its 8 little-endian bytes. Each field becomes one or two
Arrow binary columns (or one constant when every row has the same value); Arrow's
``binary_join_element_wise`` concatenates them row by row in C++, and the result's data buffer is
cut into one ``bytes`` per row. ``core.avro.vector`` covers more types with a numpy scatter; for
the dozen string-heavy fields of a prediction this is about three times faster.

``FlatAvro.of`` returns None for any other schema; callers then encode another way.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from core.avro.varint import varint, zigzag

_INT_BITS = {"int": 32, "long": 64}
Column: TypeAlias = pa.Array | NDArray[Any] | str | int | float


def _varints(v: NDArray[Any]) -> pa.Array:
    """A binary column of each int64's zig-zag varint."""
    n = len(v)
    z = ((v << 1) ^ (v >> 63)).view(np.uint64)
    if not n or int(z.max()) < 0x80:
        offsets = np.arange(n + 1, dtype=np.int32)
        return _binary(n, offsets, z.astype(np.uint8))
    width = np.ones(n, dtype=np.int64)
    for k in range(1, 10):
        width += z >= np.uint64(1 << (7 * k))
    mat = np.empty((n, 10), dtype=np.uint8)
    for k in range(10):
        more = (width > k + 1).astype(np.uint64) << np.uint64(7)
        mat[:, k] = ((z >> np.uint64(7 * k)) & np.uint64(0x7F)) | more
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(width, out=offsets[1:])
    return _binary(n, offsets, mat[np.arange(10) < width[:, None]])


def _binary(n: int, offsets: NDArray[Any], data: NDArray[Any]) -> pa.Array:
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    )


class FlatAvro:
    """Encodes batches of one flat record schema (see the module docstring)."""

    def __init__(self, fields: tuple[tuple[str, str], ...]) -> None:
        self.fields = fields  # (name, kind): kind one of string, int, long, double

    @classmethod
    def of(cls, parsed: Any) -> FlatAvro | None:
        if not isinstance(parsed, Mapping) or parsed.get("type") != "record":
            return None
        fields = []
        for f in parsed["fields"]:
            t = f["type"]
            if isinstance(t, Mapping):
                if t.get("type") != "long" or t.get("logicalType") != "timestamp-micros":
                    return None
                t = "long"
            if t not in ("string", "int", "long", "double"):
                return None
            fields.append((str(f["name"]), str(t)))
        return cls(tuple(fields))

    def encode(self, n: int, header: bytes, columns: Mapping[str, Column]) -> list[bytes] | None:
        """Every row's value, prefixed with ``header``. A column is an Arrow string array or a
        numpy array of ``n`` rows, or one value for every row. None when a field has no column
        or a value out of its type's range."""
        parts: list[Any] = []
        const = bytearray(header)
        for name, kind in self.fields:
            if name not in columns:
                return None
            col = columns[name]
            if isinstance(col, str | int | float):
                piece = self._constant(kind, col)
                if piece is None:
                    return None
                const += piece
                continue
            pieces = self._column(kind, col)
            if pieces is None:
                return None
            if const:
                parts.append(pa.scalar(bytes(const), pa.binary()))
                const = bytearray()
            parts.extend(pieces)
        if const:
            parts.append(pa.scalar(bytes(const), pa.binary()))
        if not any(isinstance(p, pa.Array) for p in parts):
            return [bytes(const)] * n
        try:
            joined = pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.binary()))
        except pa.ArrowInvalid:  # over 2 GiB of values: int32 offsets
            return None
        _, offsets_buf, data_buf = joined.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int32)[joined.offset : joined.offset + n + 1]
        data = data_buf.to_pybytes()
        bounds = offsets.tolist()
        return [data[a:b] for a, b in pairwise(bounds)]

    @staticmethod
    def _constant(kind: str, value: Any) -> bytes | None:
        if kind == "string" and isinstance(value, str):
            raw = value.encode()
            return varint(zigzag(len(raw))) + raw
        if kind in _INT_BITS and type(value) is int:
            bits = _INT_BITS[kind]
            if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                return None
            return varint(zigzag(value))
        if kind == "double" and type(value) is float:
            return bytes(np.float64(value).astype("<f8").tobytes())
        return None

    @staticmethod
    def _column(kind: str, col: Any) -> list[pa.Array] | None:
        if kind == "string":
            if not isinstance(col, pa.Array) or col.type != pa.string() or col.null_count:
                return None
            raw = col.cast(pa.binary())
            lengths = np.asarray(pc.binary_length(raw), dtype=np.int64)
            return [_varints(lengths), raw]
        if not isinstance(col, np.ndarray):
            return None
        if kind in _INT_BITS:
            if col.dtype.kind != "i":
                return None
            v = col.astype(np.int64)
            bits = _INT_BITS[kind]
            if bits < 64 and len(v) and not (v.min() >= -(2**31) and v.max() < 2**31):
                return None
            return [_varints(v)]
        if kind == "double" and col.dtype == np.float64:
            n = len(col)
            offsets = np.arange(0, 8 * n + 1, 8, dtype=np.int32)
            return [_binary(n, offsets, col.astype("<f8").view(np.uint8))]
        return None
