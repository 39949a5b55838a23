"""The tile store's side index: one batch's query columns (``leaf_schema``) as one blob.

Two encodings, told apart by their first bytes, both read:

- version 1 (store version 1): a zstd-compressed Arrow IPC stream. Its schema, per-buffer
  framing and 64-byte alignment cost ~1.4 KB per batch before any row, and its columns are
  stored as they are (every topic and actor string repeated, offsets and times in full).
- version 2 (``MAGIC``): ``MAGIC``, the row count and the inflated body length (u32 each), then
  the body, zstd-compressed. The body holds the columns in schema order:

  * a string column as a dictionary (count u32, data length u32, u32 end offsets, UTF-8
    bytes) and one index per row (0 = null, ``k`` = the ``k``-th string), stored at the
    smallest width (u8, u16 or u32) after a width byte;
  * an integer column as its first value (i64) and the differences to the row before,
    zigzag-coded and stored at the smallest fixed width (1, 2, 4 or 8 bytes) after a width
    byte: consecutive offsets and close times become runs of one small value that zstd folds
    to almost nothing. Arithmetic is modulo 2**64, so every int64 sequence round-trips.

A batch with a null integer (the schema allows it; the hub never writes one) is stored as
version 1. Every decoding error is a HubError that names the batch's first leaf; a declared
body larger than ``MAX_BODY`` is refused before anything is allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from core.errors import HubError
from core.ports.ledgerstore import LEAF_COLUMNS, int_array, int_values, leaf_schema

MAGIC = b"HSI\x02"
MAX_BODY = 256 << 20  # a side-index batch of 50,000 rows is ~1-3 MiB inflated
# zstd level of the side index. Measured on a 50k-leaf batch of the ledger benchmark's records
# (session 14): level 9 wrote 32,063 bytes in 0.133 us per leaf, level 3 34,801 bytes in 0.087:
# 0.05 byte more per leaf (the tiles alone are 32+) for 2.5% of a sync's CPU. Readers do not
# depend on the level.
LEVEL = 3
_HEAD = struct.Struct("<4sII")
_SCHEMA = leaf_schema()
_FIELDS = list(_SCHEMA)
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="zstd")
_ZSTD = pa.Codec("zstd", compression_level=LEVEL)
_INT_TYPES = {pa.int32(): np.int32, pa.int64(): np.int64}
_WIDTHS = ((0xFF, np.uint8), (0xFFFF, np.uint16), (0xFFFFFFFF, np.uint32))
Dicts = Mapping[str, tuple[list[str], bytes]]
_TEXTS = frozenset(f.name for f in _FIELDS if f.type == pa.string())

try:  # native/src/side_body.rs: the whole body from the dictionaries in one call
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        side_index_body as _native_body,
    )
except ImportError:  # not built, or built before it existed: body_of_reference
    _native_body = None


def damaged(first: int, why: str) -> HubError:
    return HubError(
        f"The side-index batch starting at leaf {first} cannot be decoded ({why}); the tile "
        "store is damaged: run `hub ledger verify --full`.",
        code="ledger_store",
    )


def encode_v1(table: pa.Table) -> bytes:
    """Version 1: the columns as one zstd-compressed Arrow IPC stream."""
    if not isinstance(table, pa.Table):  # columns built on read (``LeafBatch.columns``)
        table = pa.Table.from_arrays([table.column(n) for n in LEAF_COLUMNS], schema=_SCHEMA)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, _SCHEMA, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _unsigned(values: Any) -> tuple[int, bytes]:
    """``values`` (a non-negative integer array: uint64, or int32 from ``_strings_of``) at the
    smallest width: (width in bytes, data)."""
    top = int(values.max()) if len(values) else 0
    for limit, kind in _WIDTHS:
        if top <= limit:
            return np.dtype(kind).itemsize, values.astype(kind).tobytes()
    return 8, values.astype(np.uint64).tobytes()


def _strings(column: pa.ChunkedArray) -> list[bytes]:
    encoded = pc.dictionary_encode(column.combine_chunks())
    words = encoded.dictionary
    idx = encoded.indices.fill_null(-1).to_numpy().astype(np.int64) + 1
    count = words.offset + len(words) + 1
    offsets = np.frombuffer(words.buffers()[1], dtype=np.int32, count=count)[words.offset :]
    start = int(offsets[0])
    data = words.buffers()[2]
    body = b"" if data is None else data.to_pybytes()[start : int(offsets[-1])]
    width, packed = _unsigned(idx.astype(np.uint64))
    ends = (offsets[1:] - start).astype("<u4").tobytes()
    return [struct.pack("<II", len(words), len(body)), ends, body, bytes([width]), packed]


def _strings_of(values: list[str], index: bytes) -> list[bytes]:
    """:func:`_strings` from the encoder's own dictionary (``LeafBatch.dictionaries``: distinct
    strings in order of first appearance, int32 indexes, -1 null): the dictionary
    ``dictionary_encode`` finds again, so the same bytes without hashing every row's string.
    The texts are encoded as one (their byte lengths are their lengths when every one is
    ASCII: the encoding is as long as the texts only then)."""
    body = "".join(values).encode()
    sizes = np.fromiter(map(len, values), np.int64, len(values))
    if len(body) != int(sizes.sum()):  # a non-ASCII text (2-4 bytes a code point): by word
        sizes = np.fromiter((len(v.encode()) for v in values), np.int64, len(values))
    ends = np.cumsum(sizes, dtype=np.int64).astype("<u4").tobytes()
    # -1 (null) .. len(words) - 1 -> 0 .. len(words): int32 still, no widening copies
    idx = np.frombuffer(index, dtype="<i4") + np.int32(1)
    width, packed = _unsigned(idx)
    return [struct.pack("<II", len(values), len(body)), ends, body, bytes([width]), packed]


def _integers(column: pa.ChunkedArray) -> list[bytes]:
    values = int_values(column.combine_chunks()).astype(np.int64)
    first = int(values[0]) if len(values) else 0
    with np.errstate(over="ignore"):
        deltas = np.diff(values).astype(np.uint64)  # modulo 2**64
        zigzag = (deltas << np.uint64(1)) ^ (
            (deltas.view(np.int64) >> np.int64(63)).view(np.uint64)
        )
    width, packed = _unsigned(zigzag)
    return [struct.pack("<q", first), bytes([width]), packed]


def body_of(table: pa.Table, dictionaries: Dicts | None = None) -> bytes | None:
    """The inflated version-2 body of ``table`` (module docstring); None when an integer column
    holds a null. A string column named in ``dictionaries`` (``LeafBatch.dictionaries``) is
    written from its dictionary (its column is not read). Deterministic: the same columns give
    the same bytes.

    When every string column comes as a dictionary (a native leaf batch's, as a rule: verify's
    re-encoding of each recomputed batch, the sync's write), one native call writes the body
    (``hub_native.side_index_body``); :func:`body_of_reference` is the reference, and writes
    whatever the native call declines (the same bytes:
    ``tests/adversarial/test_s23_verify23_native_body.py``)."""
    if _native_body is not None and dictionaries and all(n in dictionaries for n in _TEXTS):
        given: list[Any] = []
        for name in LEAF_COLUMNS:
            if name in _TEXTS:
                given.append(dictionaries[name])
                continue
            column = table.column(name)
            if column.null_count:
                return None
            given.append(_int64_bytes(column))
        got = _native_body(given)
        if got is not None:
            return bytes(got)
    return body_of_reference(table, dictionaries)


def _int64_bytes(column: pa.ChunkedArray) -> bytes:
    """An integer column without nulls as little-endian int64 bytes (``_integers``' values)."""
    return bytes(int_values(column.combine_chunks()).astype("<i8").tobytes())


def body_of_reference(table: pa.Table, dictionaries: Dicts | None = None) -> bytes | None:
    """:func:`body_of` column by column in NumPy (the reference of the native call)."""
    parts: list[bytes] = []
    for name, field in zip(LEAF_COLUMNS, _SCHEMA, strict=True):
        if field.type == pa.string():
            given = dictionaries.get(name) if dictionaries else None
            parts += _strings(table.column(name)) if given is None else _strings_of(*given)
            continue
        column = table.column(name)
        if column.null_count:
            return None
        parts += _integers(column)
    return b"".join(parts)


def encode_v2(table: pa.Table, dictionaries: Dicts | None = None) -> bytes | None:
    """Version 2 (module docstring); None when an integer column holds a null."""
    body = body_of(table, dictionaries)
    if body is None:
        return None
    packed = bytes(_ZSTD.compress(body, asbytes=True))
    return _HEAD.pack(MAGIC, table.num_rows, len(body)) + packed


def encode(table: pa.Table, dictionaries: Dicts | None = None) -> bytes:
    """The batch as version 2, or version 1 when version 2 cannot hold it."""
    return encode_v2(table, dictionaries) or encode_v1(table)


class _Reader:
    """Bounds-checked reads from the inflated body."""

    def __init__(self, body: bytes, first: int) -> None:
        self.body, self.at, self.first = body, 0, first

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.body):
            raise damaged(self.first, f"a column runs past the end of the body at byte {self.at}")
        out = self.body[self.at : self.at + n]
        self.at += n
        return out

    def unsigned(self, rows: int) -> Any:
        width = self.take(1)[0]
        kinds = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}
        if width not in kinds:
            raise damaged(self.first, f"width byte {width} at byte {self.at - 1}")
        return np.frombuffer(self.take(rows * width), dtype=kinds[width]).astype(np.uint64)


def _read_strings(r: _Reader, rows: int) -> pa.Array:
    count, size = struct.unpack("<II", r.take(8))
    ends = np.frombuffer(r.take(4 * count), dtype="<u4").astype(np.int64)
    data = r.take(size)
    if count and (np.any(np.diff(ends) < 0) or int(ends[-1]) != size):
        raise damaged(r.first, "a string dictionary's offsets are not ascending to its size")
    offsets = np.concatenate(([0], ends)).astype(np.int32)
    try:
        words = pa.Array.from_buffers(
            pa.string(), count, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
        )
        words.validate(full=True)  # UTF-8 and offsets
    except (pa.ArrowException, ValueError) as exc:
        raise damaged(r.first, f"a string dictionary is invalid: {exc}") from exc
    idx = r.unsigned(rows)
    if len(idx) and int(idx.max()) > count:
        raise damaged(r.first, "a string index points past its dictionary")
    return _expand(words, idx, data)


def _expand(words: pa.Array, idx: Any, data: bytes) -> pa.Array:
    """The column of ``words`` (their UTF-8 bytes back to back: ``data``) the indexes ``idx``
    name (uint64, 0 = null, ``k`` = the ``k``-th word, each checked <= ``len(words)``).
    ``_take`` is the reference; a column of one word without nulls (a batch's topic, actor,
    action, tenant, as a rule) is built whole, ~4x faster on 50k rows: the same values
    (``tests/adversarial/test_s21_verify_paths.py`` compares)."""
    rows, size = len(idx), len(data)
    if len(words) == 1 and rows and int(idx.min()) == 1 and rows * size < 2**31:
        ends = np.arange(rows + 1, dtype=np.int32) * np.int32(size)
        return pa.Array.from_buffers(
            pa.string(), rows, [None, pa.py_buffer(ends.tobytes()), pa.py_buffer(data * rows)]
        )
    return _take(words, idx)


def _take(words: pa.Array, idx: Any) -> pa.Array:
    """:func:`_expand` by Arrow's ``take`` (no null mask built when no index is 0)."""
    signed = idx.astype(np.int64) - 1
    if not len(idx) or int(idx.min()) >= 1:
        return pc.take(words, int_array(signed, pa.int64()))
    return pc.take(words, int_array(signed, pa.int64(), mask=signed < 0))


def _read_integers(r: _Reader, rows: int, kind: Any) -> pa.Array:
    (first,) = struct.unpack("<q", r.take(8))
    zigzag = r.unsigned(max(rows - 1, 0))
    deltas = (zigzag >> np.uint64(1)) ^ (np.uint64(0) - (zigzag & np.uint64(1)))
    with np.errstate(over="ignore"):
        values = np.cumsum(
            np.concatenate(([np.uint64(first & 0xFFFFFFFFFFFFFFFF)], deltas)), dtype=np.uint64
        ).view(np.int64)[:rows]
    if kind is np.int32 and len(values) and (values.min() < -(2**31) or values.max() >= 2**31):
        raise damaged(r.first, "an int32 column holds a value out of its range")
    return int_array(values.astype(kind), pa.from_numpy_dtype(kind))


def _inflate(blob: bytes, first: int) -> tuple[int, bytes]:
    """A version-2 batch's row count and inflated body."""
    if len(blob) < _HEAD.size:
        raise damaged(first, "shorter than its header")
    _magic, rows, size = _HEAD.unpack_from(blob)
    if size > MAX_BODY:
        raise damaged(first, f"it declares {size:,} inflated bytes, over {MAX_BODY:,}")
    try:
        body = _ZSTD.decompress(blob[_HEAD.size :], decompressed_size=size, asbytes=True)
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise damaged(first, f"zstd: {exc}") from exc
    if len(body) != size:
        raise damaged(first, f"it inflates to {len(body)} bytes, not the {size} declared")
    return rows, body


def _width(r: _Reader) -> int:
    width = r.take(1)[0]
    if width not in (1, 2, 4, 8):
        raise damaged(r.first, f"width byte {width} at byte {r.at - 1}")
    return width


def may_hold(blob: bytes, column: str, value: str, first: int = 0) -> bool:
    """Whether a row of the batch may hold ``value`` in the string ``column``: False only when
    the batch is version 2 and the column's dictionary lacks the string (then no row holds it,
    and nothing past that dictionary is decoded); True for version 1. HubError as
    :func:`decode` when what it reads is damaged."""
    if blob[: len(MAGIC)] != MAGIC:
        return True
    rows, body = _inflate(blob, first)
    r = _Reader(body, first)
    for field in _SCHEMA:
        if field.type != pa.string():
            r.take(8)
            r.take(_width(r) * max(rows - 1, 0))
            continue
        count, size = struct.unpack("<II", r.take(8))
        ends = r.take(4 * count)
        data = r.take(size)
        if field.name == column:
            want = value.encode()
            if want not in data:
                return False
            at = 0
            for end in struct.unpack(f"<{count}I", ends):
                if data[at:end] == want:
                    return True
                at = end
            return False
        r.take(_width(r) * rows)
    raise ValueError(f"{column!r} is not a string column of the side index")


def _read_columns(r: _Reader, rows: int, count: int) -> list[pa.Array]:
    """The first ``count`` columns of the schema from ``r``."""
    arrays = []
    for field in _FIELDS[:count]:
        if field.type == pa.string():
            arrays.append(_read_strings(r, rows))
        else:
            arrays.append(_read_integers(r, rows, _INT_TYPES[field.type]))
    return arrays


def inflated(blob: bytes, first: int) -> tuple[int, bytes] | None:
    """A version-2 batch's row count and inflated body (HubError as :func:`decode` when
    damaged); None for a version-1 batch."""
    return _inflate(blob, first) if blob[: len(MAGIC)] == MAGIC else None


#: the leading columns that name each leaf's record (topic, partition, offset): what
#: :func:`keys_of` decodes
KEYS = LEAF_COLUMNS[:3]


def keys_of(rows: int, body: bytes, first: int) -> pa.Table:
    """The ``KEYS`` columns of an inflated version-2 body (the schema's first three), nothing
    past them decoded; HubError as :func:`decode` when what it reads is damaged."""
    arrays = _read_columns(_Reader(body, first), rows, len(KEYS))
    return pa.Table.from_arrays(arrays, schema=pa.schema(_FIELDS[: len(KEYS)]))


def decode_body(rows: int, body: bytes, first: int) -> pa.Table:
    """The columns of an inflated version-2 body of ``rows`` rows."""
    r = _Reader(body, first)
    arrays = _read_columns(r, rows, len(_SCHEMA))
    if r.at != len(body):
        raise damaged(first, f"{len(body) - r.at} bytes follow the last column")
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


def decode_v2(blob: bytes, first: int) -> pa.Table:
    rows, body = _inflate(blob, first)
    return decode_body(rows, body, first)


def decode(blob: bytes, first: int = 0) -> pa.Table:
    """The columns of one batch from either version; HubError naming the batch when damaged."""
    if blob[: len(MAGIC)] == MAGIC:
        return decode_v2(blob, first)
    try:
        table = ipc.open_stream(pa.py_buffer(blob)).read_all()
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise damaged(first, str(exc)) from exc
    if not table.schema.equals(_SCHEMA):
        raise damaged(first, "unexpected columns")
    return table
