"""The embedded log's stored batch: the column-wise record format (CRC-checked on every read) and
an append prepared as per-partition groups of encoded batches."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate, chain, repeat
from operator import itemgetter, sub
from typing import Any, Final, TypeVar, cast

import pyarrow as pa

from core.errors import InvalidInput
from core.ports.eventlog import (
    AppendedMetadata,
    ColumnBatch,
    EncodedBatch,
    Headers,
    RecordMetadata,
    StoredRecord,
    TopicInfo,
    duplicated_envelope_rows,
    is_transactional_append,
)
from domain.envelope import duplicated_envelope_header, duplicated_envelope_name

# -- batch format -----------------------------------------------------------------------------
# Little-endian. Header: crc32 of everything after the crc, format version, flags, record count,
# base timestamp. Version 2 (written since session 7) then has a codec byte (0 none, 1 zstd),
# the header section's layout (0 pairs, 1 columns) and the u32 length of the body before
# compression, then the body; version 1 (still read) has the body right after the header, never
# compressed, with headers as pairs. The CRC (and the log's MAC chain) covers the
# stored bytes, so a read checks them before it decompresses anything. The body holds the
# sections flagged present, each column-wise so that encoding and decoding are a few C-level
# calls per batch instead of Python work per record:
#   timestamps  n x u32 delta from the base, or n x i64 absolute (_TS_WIDE); absent if uniform
#   keys        n x u32 lengths, [n x u8 null flags if _KEYS_MIXED], the bytes concatenated
#   values      the same, with _VALUES_*
#   headers     n x u16 header counts; u16 name count, the names' u16 lengths, the names
#               (UTF-8); u32 count of distinct (name, value) pairs, each pair's u16 name index,
#               the pairs' u32 value lengths, the values; per header its pair index, u16 (u32
#               if _WIDE_PAIRS)
#   headers, as columns (version 2, when every record carries the same header names in the
#               same order, the envelope's case): u16 m headers per record, their names' u16
#               lengths, the names; m kind bytes (0 one value for every record, 1 one per
#               record); per header, a constant's u32 length and value, or n x u32 lengths and
#               the values concatenated
# So what repeats inside a batch (header names, the envelope's shared values) is stored once
# per batch and each record carries only its own values and small indexes; zstd over the whole
# body (as Kafka's record batch v2 compresses per batch) then removes the rest of the
# redundancy: the fixed-width lengths and indexes, ids and times that share prefixes.
_HEAD = struct.Struct("<IBBIq")
_BODY = struct.Struct("<BBI")  # version 2: codec, header layout, body length before compression
_VERSION_PLAIN: Final = 1  # read only
_VERSION: Final = 2
_CODEC_NONE, _CODEC_ZSTD = 0, 1
_HEADER_PAIRS, _HEADER_COLUMNS = 0, 1
_CONSTANT, _VARYING = 0, 1
_ZSTD_LEVEL: Final = 1  # measured: level 3 is 1.9x the CPU and no smaller on the hub's batches
# A decompression bomb is refused before anything is inflated: a compressed body may declare at
# most _INFLATED_PER_RECORD bytes per record and _INFLATED_MAX in all (the encoder stores larger
# bodies uncompressed), and it inflates into a buffer of exactly the declared size.
_INFLATED_PER_RECORD: Final = 1 << 20
_INFLATED_MAX: Final = 32 << 20
_TS_UNIFORM, _TS_WIDE = 0x01, 0x02
_KEYS_NULL, _KEYS_MIXED = 0x04, 0x08
_VALUES_NULL, _VALUES_MIXED = 0x10, 0x20
_HAS_HEADERS, _WIDE_PAIRS = 0x40, 0x80
_U16 = 0xFFFF
_ZSTD = pa.Codec("zstd", compression_level=_ZSTD_LEVEL)


def inflated_cap(n: int) -> int:
    """The most bytes a compressed body of ``n`` records may declare (see above)."""
    return min(max(n, 0) * _INFLATED_PER_RECORD, _INFLATED_MAX)


class CorruptBatch(Exception):
    """A stored batch failed its CRC or format check."""


class InvalidBatch(Exception):
    """A fast validation check failed; ``_explain_invalid`` finds out which record and why."""


_PAIR_TYPES = frozenset((tuple, list))
_T = TypeVar("_T")


def _builder(cls: type[_T]) -> Callable[..., list[_T]]:
    """A constructor of ``n`` frozen-dataclass instances from one iterable per field.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``: about
    0.9 us per RecordMetadata, the largest per-record cost of append when profiled. Setting the
    slots through their descriptors in C-level maps is about 2.4x faster. If the class ever stops
    being a plain slots dataclass (new field, ``__post_init__``), its constructor is used.
    """
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    if getattr(cls, "__slots__", None) != names or hasattr(cls, "__post_init__"):
        return lambda n, *columns: list(map(cls, *columns))
    setters = [getattr(cls, name).__set__ for name in names]
    new = object.__new__

    def build(n: int, *columns: Iterable[object]) -> list[_T]:
        made: list[_T] = list(map(new, repeat(cls, n)))
        for set_slot, column in zip(setters, columns, strict=True):
            deque(map(set_slot, made, column), maxlen=0)
        return made

    return build


new_metadata = _builder(RecordMetadata)
new_stored = _builder(StoredRecord)


class SqliteAppended(AppendedMetadata):
    """The embedded log's append answer: ``AppendedMetadata`` whose records, when asked for,
    are built by ``new_metadata`` (slots set in C-level maps)."""

    __slots__ = ()

    def _new(self, n: int, partitions: Iterable[int], offsets: Iterable[int]) -> list[Any]:
        return new_metadata(n, repeat(self.topic, n), partitions, offsets, self.timestamps)


def _encode_bytes(col: Sequence[bytes | None], parts: list[bytes], null: int, mixed: int) -> int:
    n = len(col)
    nulls = col.count(None)
    if nulls == n:
        return null
    if nulls:
        parts.append(struct.pack(f"<{n}I", *[0 if v is None else len(v) for v in col]))
        parts.append(bytes([v is None for v in col]))
        parts.append(b"".join(filter(None, col)))
        return mixed
    parts.append(struct.pack(f"<{n}I", *map(len, col)))  # type: ignore[arg-type]
    parts.append(b"".join(col))  # type: ignore[arg-type]
    return 0


def _load_native() -> Callable[[list[Headers]], tuple[bytes, bool] | None] | None:
    """The same section in one native pass (native/src/headers.rs); None when not built."""
    try:
        import hub_native
    except ImportError:  # not built: the reference below runs
        return None
    return hub_native.encode_headers  # type: ignore[no-any-return]


native_headers = _load_native()


def _encode_headers(headers: Sequence[Headers], parts: list[bytes]) -> int:
    """Append the header section; return its flags. Raises ``InvalidBatch`` on malformed pairs.

    The native encoder gives the reference's bytes (``tests/unit/test_native_headers.py``); for
    anything but well-formed pairs within the limits it returns None and the reference decides.
    """
    if native_headers is not None and type(headers) is list:
        done = native_headers(headers)
        if done is not None:
            section, wide = done
            parts.append(section)
            return _HAS_HEADERS | (_WIDE_PAIRS if wide else 0)
    return _encode_headers_py(headers, parts)


def _encode_headers_py(headers: Sequence[Headers], parts: list[bytes]) -> int:
    """The pure-Python reference of the header section (see ``_encode_headers``)."""
    n = len(headers)
    counts = list(map(len, headers))
    flat = list(chain.from_iterable(headers))
    if set(map(type, flat)) != {tuple}:
        if not set(map(type, flat)) <= _PAIR_TYPES:
            raise InvalidBatch
        flat = list(map(tuple, flat))  # type: ignore[arg-type]  # the pair table hashes them
    if set(map(len, flat)) != {2}:
        raise InvalidBatch
    # Distinct (name, value) pairs are stored once per batch: most headers repeat (event type,
    # producer, tenant), and decoding then shares one tuple per pair instead of making one each.
    pair_index = dict.fromkeys(flat)
    pairs = list(pair_index)
    names = [name for name, _ in pairs]
    values = [value for _, value in pairs]
    if set(map(type, names)) != {str} or set(map(type, values)) != {bytes}:
        raise InvalidBatch
    table = list(dict.fromkeys(names))
    try:
        encoded = [name.encode() for name in table]
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"A header name is not valid Unicode ({exc}); fix the name.") from exc
    if max(counts) > _U16 or len(table) > _U16 or max(map(len, encoded)) > _U16:
        raise InvalidInput(
            f"A batch may carry at most {_U16} headers per record and {_U16} distinct header "
            f"names of at most {_U16} bytes; this one has up to {max(counts)} headers and "
            f"{len(table)} names. Split the batch or use fewer header names."
        )
    name_index = dict(zip(table, range(len(table)), strict=True))
    pair_index.update(zip(pairs, range(len(pairs)), strict=True))
    wide = len(pairs) > _U16
    parts += (
        struct.pack(f"<{n}H", *counts),
        struct.pack("<H", len(table)),
        struct.pack(f"<{len(table)}H", *map(len, encoded)),
        b"".join(encoded),
        struct.pack("<I", len(pairs)),
        struct.pack(f"<{len(pairs)}H", *map(name_index.__getitem__, names)),
        struct.pack(f"<{len(pairs)}I", *map(len, values)),
        b"".join(values),
        struct.pack(f"<{len(flat)}{'I' if wide else 'H'}", *map(pair_index.__getitem__, flat)),
    )
    return _HAS_HEADERS | (_WIDE_PAIRS if wide else 0)


_first, _second = itemgetter(0), itemgetter(1)


def _load_native_columns() -> Callable[[list[Headers]], bytes | None] | None:
    """The column layout in one native pass (native/src/headers.rs); None when not built."""
    try:
        import hub_native
    except ImportError:  # not built: the reference below runs
        return None
    return getattr(hub_native, "encode_header_columns", None)


native_header_columns = _load_native_columns()


def _encode_header_columns(headers: Sequence[Headers], n: int, parts: list[bytes]) -> bool:
    """Append the header section as columns (see the format) and return True, or return False
    and append nothing when the records do not all carry the same well-formed header names in
    the same order (the pair layout then stores them, or refuses them).

    The native encoder gives the reference's bytes (``tests/unit/test_native_headers.py``); for
    anything but the plain case (exact tuples of ``str`` and ``bytes`` pairs, the same names
    down every column, within the limits) it returns None and the reference below decides.
    """
    if native_header_columns is not None and type(headers) is list:
        section = native_header_columns(headers)
        if section is not None:
            parts.append(section)
            return True
    return _encode_header_columns_py(headers, n, parts)


def _encode_header_columns_py(headers: Sequence[Headers], n: int, parts: list[bytes]) -> bool:
    """The pure-Python reference of the column layout (see ``_encode_header_columns``)."""
    widths = set(map(len, headers))
    if len(widths) != 1 or set(map(type, headers)) != {tuple}:
        return False
    (m,) = widths
    if not 0 < m <= _U16:
        return False
    names: list[bytes] = []
    kinds = bytearray()
    data: list[bytes] = []
    for column in zip(*headers, strict=True):
        if set(map(type, column)) != {tuple} or set(map(len, column)) != {2}:
            return False
        name = set(map(_first, column))
        if len(name) != 1:
            return False
        (text,) = name
        values = list(map(_second, column))
        if type(text) is not str or set(map(type, values)) != {bytes}:
            return False
        try:
            names.append(text.encode())
        except UnicodeEncodeError:
            return False
        if len(names[-1]) > _U16:
            return False
        kind, *section = _column_section(values, n)
        kinds.append(kind)
        data += section
    _append_columns(parts, names, kinds, data)
    return True


def _column_section(values: Sequence[bytes], n: int) -> tuple[int, bytes, bytes]:
    """One header column of the column layout: its kind and its two sections (a column whose
    ``n`` values are all equal is stored once, as a constant)."""
    if values.count(values[0]) == n:
        return _CONSTANT, struct.pack("<I", len(values[0])), values[0]
    return _VARYING, struct.pack(f"<{n}I", *map(len, values)), b"".join(values)


def _append_columns(
    parts: list[bytes], names: Sequence[bytes], kinds: bytearray, data: list[bytes]
) -> None:
    """Append the column layout's header block: the names, their kinds and their sections."""
    m = len(names)
    parts += (struct.pack(f"<H{m}H", m, *map(len, names)), b"".join(names), bytes(kinds), *data)


def repeats_envelope(headers: Sequence[Headers], same_names: bool) -> bool:
    """Whether a record of the batch carries an envelope header twice (refused: see
    ``domain.envelope``). ``same_names``: every record carries the first one's names in the
    same order (the column layout), so the first alone is checked."""
    if same_names:
        return duplicated_envelope_header(tuple(headers[0])) is not None
    return bool(duplicated_envelope_rows(headers))


Kept = tuple[bytes, bytes | None]
"""A stored batch and, when its body was compressed, the uncompressed body (else None): what
the log hands the ledger (``handoff``) so that it does not inflate what was just written."""


def encode_batch(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[Headers],
    timestamps: Sequence[int],
    *,
    version: int = _VERSION,
) -> bytes:
    """Encode one stored batch (inputs already validated); see the format above.

    ``version=1`` writes the previous, uncompressed format (tests of old logs use it)."""
    return encode_batch_kept(keys, values, headers, timestamps, version=version)[0]


def encode_batch_kept(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[Headers],
    timestamps: Sequence[int],
    *,
    version: int = _VERSION,
) -> Kept:
    """``encode_batch`` and the uncompressed body (``Kept``)."""
    n = len(keys)
    parts: list[bytes] = []
    flags, lo = _encode_front(keys, values, timestamps, parts)
    layout = _HEADER_PAIRS
    if any(headers):
        if version == _VERSION and _encode_header_columns(headers, n, parts):
            flags |= _HAS_HEADERS
            layout = _HEADER_COLUMNS
        else:
            flags |= _encode_headers(headers, parts)
        if repeats_envelope(headers, layout == _HEADER_COLUMNS):
            raise InvalidBatch  # the caller names the record and header (record_problem)
    return _seal_kept(parts, flags, layout, n, lo, version)


def _encode_front(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    timestamps: Sequence[int],
    parts: list[bytes],
) -> tuple[int, int]:
    """Append the sections before the headers (timestamps, keys, values); return their flags
    and the base timestamp."""
    n = len(keys)
    lo, hi = min(timestamps), max(timestamps)
    flags = 0
    if lo == hi:
        flags |= _TS_UNIFORM
    elif hi - lo <= 0xFFFFFFFF:
        parts.append(struct.pack(f"<{n}I", *map(sub, timestamps, repeat(lo, n))))
    else:
        flags |= _TS_WIDE
        parts.append(struct.pack(f"<{n}q", *timestamps))
    flags |= _encode_bytes(keys, parts, _KEYS_NULL, _KEYS_MIXED)
    flags |= _encode_bytes(values, parts, _VALUES_NULL, _VALUES_MIXED)
    return flags, lo


def encode_batch_columns(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    names: Sequence[bytes],
    columns: Sequence[bytes | Sequence[bytes]],
    timestamps: Sequence[int],
) -> bytes:
    """The bytes ``encode_batch`` writes for the records whose header ``j`` is named
    ``names[j]`` (UTF-8) with value ``columns[j]`` (one ``bytes`` for every record) or
    ``columns[j][i]``, without building a pair per header. The caller has checked what
    ``encode_batch``'s column layout requires: at least one and at most 65,535 names of at most
    65,535 bytes, ``bytes`` values, no envelope header named twice. A varying column whose
    values are all equal is stored as a constant, as ``encode_batch`` stores it
    (``tests/unit/test_column_append.py`` compares the bytes).

    One native call when ``hub_native`` is built (native/src/stored_batch.rs): the same header
    and uncompressed body, the body's zstd frame from the zstd crate's libzstd; for anything
    but plain lists or tuples of ``bytes`` it answers None and the reference below runs."""
    if native_stored_columns is not None:
        blob = native_stored_columns(keys, values, names, columns, timestamps)
        if blob is not None:
            return blob
    return encode_batch_columns_py(keys, values, names, columns, timestamps)


def encode_batch_columns_kept(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    names: Sequence[bytes],
    columns: Sequence[bytes | Sequence[bytes]],
    timestamps: Sequence[int],
) -> Kept:
    """``encode_batch_columns`` and the uncompressed body (``Kept``): native when built (its
    ``keep``), else the reference."""
    if native_stored_columns is not None:
        got = native_stored_columns(keys, values, names, columns, timestamps, keep=True)
        if got is not None:
            return got  # type: ignore[return-value]
    return encode_batch_columns_kept_py(keys, values, names, columns, timestamps)


def encode_batch_columns_py(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    names: Sequence[bytes],
    columns: Sequence[bytes | Sequence[bytes]],
    timestamps: Sequence[int],
) -> bytes:
    """The pure-Python reference of ``encode_batch_columns``."""
    return encode_batch_columns_kept_py(keys, values, names, columns, timestamps)[0]


def encode_batch_columns_kept_py(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    names: Sequence[bytes],
    columns: Sequence[bytes | Sequence[bytes]],
    timestamps: Sequence[int],
) -> Kept:
    """The pure-Python reference of ``encode_batch_columns_kept``."""
    n = len(keys)
    parts: list[bytes] = []
    flags, lo = _encode_front(keys, values, timestamps, parts)
    if not names:
        return _seal_kept(parts, flags, _HEADER_PAIRS, n, lo, _VERSION)
    kinds = bytearray()
    data: list[bytes] = []
    done: dict[int, tuple[int, bytes, bytes]] = {}  # a column given twice is encoded once
    for col in columns:
        if isinstance(col, bytes):
            kinds.append(_CONSTANT)
            data += (struct.pack("<I", len(col)), col)
            continue
        section = done.get(id(col))
        if section is None:
            section = done[id(col)] = _column_section(col, n)
        kinds.append(section[0])
        data += section[1:]
    _append_columns(parts, names, kinds, data)
    return _seal_kept(parts, flags | _HAS_HEADERS, _HEADER_COLUMNS, n, lo, _VERSION)


def _load_native_stored() -> Callable[..., bytes | None] | None:
    """The whole stored batch in one native call (native/src/stored_batch.rs); None when not
    built (or built from sources without it)."""
    try:
        import hub_native
    except ImportError:  # not built: the reference runs
        return None
    return getattr(hub_native, "encode_stored_columns", None)


native_stored_columns = _load_native_stored()


def plain_header_names(batch: ColumnBatch) -> list[bytes] | None:
    """The UTF-8 header names of a column batch whose records ``encode_batch_columns`` can
    store as ``encode_batch`` would store them (see its checks; no names: no headers), or
    None when the records must go through ``encode_batch`` (which stores or refuses them)."""
    names, columns = batch.header_names, batch.header_columns
    if not names:
        return []
    checked: set[int] = set()  # a list given twice (event id = correlation id) is read once
    for col in columns:
        if type(col) is bytes or id(col) in checked:  # a subclass: refused, as append does
            continue
        if type(col) not in _PAIR_TYPES or set(map(type, col)) != {bytes}:
            return None
        checked.add(id(col))  # ``columns`` holds ``col``: its id is not reused meanwhile
    return stored_header_names(names)


def stored_header_names(names: Sequence[str]) -> list[bytes] | None:
    """``plain_header_names``' answer for the names alone, whatever the columns hold: their
    UTF-8 bytes, or None when no column batch with these names can be stored as columns."""
    if not names:
        return []
    if len(names) > _U16 or set(map(type, names)) != {str}:
        return None
    # The answer depends on the names alone, and a producer (the decision sink, a Publisher)
    # sends the same names batch after batch: 12 encodes and the envelope check were ~4 us of
    # a 1-record append. Keyed by the tuple of exact ``str`` (checked above: no subclass can
    # hash or compare on its own terms); bounded, as names come from callers.
    key = names if type(names) is tuple else tuple(names)
    try:
        known = _NAMES_SEEN[key]
    except KeyError:  # (also when another thread cleared it meanwhile)
        known = _encoded_names(key)
        if len(_NAMES_SEEN) >= _NAMES_SEEN_MAX:
            _NAMES_SEEN.clear()
        _NAMES_SEEN[key] = known
    return None if known is None else list(known)  # a copy: the caller may keep or change it


_NAMES_SEEN_MAX: Final = 256
_NAMES_SEEN: dict[tuple[str, ...], tuple[bytes, ...] | None] = {}


def _encoded_names(names: tuple[str, ...]) -> tuple[bytes, ...] | None:
    """``plain_header_names``' answer for the names alone (None: not storable as columns)."""
    try:
        encoded = tuple(name.encode() for name in names)
    except UnicodeEncodeError:
        return None
    if max(map(len, encoded)) > _U16 or duplicated_envelope_name(names) is not None:
        return None
    return encoded


def _seal_kept(parts: list[bytes], flags: int, layout: int, n: int, lo: int, version: int) -> Kept:
    """The stored batch: header, CRC and the body (zstd when that is smaller); and the
    uncompressed body when it was compressed (``Kept``)."""
    kept = None
    if version == _VERSION_PLAIN:
        head = _HEAD.pack(0, _VERSION_PLAIN, flags, n, lo)[4:]
    elif version == _VERSION:
        body = b"".join(parts)
        codec = _CODEC_NONE
        if len(body) <= inflated_cap(n):
            packed = _ZSTD.compress(body, asbytes=True)
            if len(packed) < len(body):
                codec, parts, kept = _CODEC_ZSTD, [packed], body
        head = _HEAD.pack(0, _VERSION, flags, n, lo)[4:] + _BODY.pack(codec, layout, len(body))
    else:
        raise ValueError(f"unknown batch format version {version}")
    crc = zlib.crc32(head)
    for part in parts:
        crc = zlib.crc32(part, crc)
    return b"".join((struct.pack("<I", crc), head, *parts)), kept


def _slices(blob: bytes, ends: list[int]) -> list[bytes]:
    return list(map(blob.__getitem__, map(slice, ends, ends[1:])))


def _range_slices(blob: bytes, lens: Sequence[int], at: int, start: int, stop: int) -> list[bytes]:
    """Items ``start`` to ``stop`` of ``len(lens)`` byte strings stored back to back from
    ``at``, item ``i`` ``lens[i]`` bytes long; only those are sliced out."""
    if start == 0 and stop == len(lens):
        return _slices(blob, list(accumulate(lens, initial=at)))
    return _slices(blob, list(accumulate(lens[start:stop], initial=at + sum(lens[:start]))))


def _decode_bytes(
    blob: bytes, pos: int, n: int, flags: int, null: int, mixed: int, start: int, stop: int
) -> tuple[list[bytes | None], int]:
    """Items ``start`` to ``stop`` of a key or value section of ``n`` items at ``pos``, and
    where the section ends."""
    if flags & null:
        return [None] * (stop - start), pos
    lens = struct.unpack_from(f"<{n}I", blob, pos)
    pos += 4 * n
    nulls = b""
    if flags & mixed:
        nulls = blob[pos + start : pos + stop]
        pos += n
    col: list[bytes | None] = list(_range_slices(blob, lens, pos, start, stop))
    if nulls:
        col = [None if null_flag else v for v, null_flag in zip(col, nulls, strict=True)]
    return col, pos + sum(lens)


def _decode_headers_py(body: bytes, pos: int, n: int, wide: bool) -> list[Headers]:
    """The pure-Python reference of the header section's decoder (see ``decode_headers``)."""
    counts = struct.unpack_from(f"<{n}H", body, pos)
    pos += 2 * n
    (t,) = struct.unpack_from("<H", body, pos)
    name_ends = list(
        accumulate(struct.unpack_from(f"<{t}H", body, pos + 2), initial=pos + 2 + 2 * t)
    )
    if name_ends[-1] > len(body):
        raise CorruptBatch("the header names run past the end of the batch")
    table = [name.decode() for name in _slices(body, name_ends)]
    pos = name_ends[-1]
    (p,) = struct.unpack_from("<I", body, pos)
    pair_names = struct.unpack_from(f"<{p}H", body, pos + 4)
    pos += 4 + 2 * p
    value_ends = list(accumulate(struct.unpack_from(f"<{p}I", body, pos), initial=pos + 4 * p))
    if value_ends[-1] > len(body):
        raise CorruptBatch("the header values run past the end of the batch")
    pairs = list(zip(map(table.__getitem__, pair_names), _slices(body, value_ends), strict=True))
    h = sum(counts)
    index = struct.unpack_from(f"<{h}{'I' if wide else 'H'}", body, value_ends[-1])
    flat = list(map(pairs.__getitem__, index))
    if len(set(counts)) == 1 and counts[0]:  # the usual case: zip groups the pairs in C
        it = iter(flat)
        return list(zip(*[it] * counts[0], strict=True))
    starts = list(accumulate(counts, initial=0))
    return list(map(tuple, map(flat.__getitem__, map(slice, starts, starts[1:]))))


def _header_columns(
    body: bytes, pos: int, n: int, start: int = 0, stop: int | None = None
) -> tuple[list[str], list[bytes | list[bytes]]]:
    """The column layout's header section parsed: the header names, and per name either its
    one value (a constant header) or the value of records ``start`` to ``stop`` (default: all)
    of a varying one."""
    stop = n if stop is None else stop
    (m,) = struct.unpack_from("<H", body, pos)
    if not m:
        raise CorruptBatch("the header columns declare no header")
    ends = list(accumulate(struct.unpack_from(f"<{m}H", body, pos + 2), initial=pos + 2 + 2 * m))
    kinds = body[ends[-1] : ends[-1] + m]
    if len(kinds) != m:
        raise CorruptBatch("the header names run past the end of the batch")
    names = [name.decode() for name in _slices(body, ends)]
    pos = ends[-1] + m
    columns: list[bytes | list[bytes]] = []
    for kind in kinds:
        if kind == _CONSTANT:
            (size,) = struct.unpack_from("<I", body, pos)
            ends = [pos + 4, pos + 4 + size]
            columns.append(body[ends[0] : ends[1]])
        elif kind == _VARYING:
            lens = struct.unpack_from(f"<{n}I", body, pos)
            columns.append(_range_slices(body, lens, pos + 4 * n, start, stop))
            ends = [pos + 4 * n + sum(lens)]
        else:
            raise CorruptBatch(f"unknown header column kind {kind}")
        if ends[-1] > len(body):
            raise CorruptBatch("the header values run past the end of the batch")
        pos = ends[-1]
    return names, columns


def _decode_header_columns_py(body: bytes, pos: int, n: int) -> list[Headers]:
    """The pure-Python reference of the column layout's decoder: a few C-level calls per header
    name, whatever the record count (a constant header is one pair tuple shared by every
    record). ``decode_header_columns`` runs the native twin when built."""
    names, values = _header_columns(body, pos, n)
    columns = [
        zip(repeat(name), v) if isinstance(v, list) else repeat((name, v), n)
        for name, v in zip(names, values, strict=True)
    ]
    return list(zip(*columns, strict=True))  # each column has n pairs


def decode_header_column_lists(
    body: bytes, pos: int, n: int, start: int = 0, stop: int | None = None
) -> tuple[tuple[str, ...], tuple[list[bytes], ...]]:
    """The column layout's header section as columns: the header names, and per name the
    value of records ``start`` to ``stop`` (default: all; a constant header is one bytes object
    repeated). A few C-level calls per header name; the pairs ``_decode_header_columns_py``
    returns are ``zip(*[zip(repeat(name), col) ...])`` of these (``RecordColumns.header_rows``)."""
    stop = n if stop is None else stop
    names, values = _header_columns(body, pos, n, start, stop)
    k = stop - start
    return tuple(names), tuple(v if isinstance(v, list) else [v] * k for v in values)


def _load_native_decoder(name: str) -> Callable[..., list[Headers]] | None:
    try:
        import hub_native
    except ImportError:  # not built: the references above run
        return None
    return getattr(hub_native, name, None)


native_decode_headers = _load_native_decoder("decode_headers")
native_decode_header_columns = _load_native_decoder("decode_header_columns")
native_crc32_from = cast(
    "Callable[[bytes, int], int | None] | None", _load_native_decoder("crc32_from")
)


def stored_crc(blob: bytes | bytearray) -> int:
    """The CRC-32 a stored batch's header holds: of everything after the CRC field. One native
    call when ``hub_native`` is built (native/src/crc32.rs, several times zlib's speed; every
    read of the log checks it); ``zlib.crc32`` is the reference, and the one for anything but
    ``bytes`` (``tests/unit/test_native_crc32.py`` compares them)."""
    if native_crc32_from is not None and type(blob) is bytes:
        got = native_crc32_from(blob, 4)
        if got is not None:
            return got
    return zlib.crc32(memoryview(blob)[4:])


def decode_header_columns(body: bytes, pos: int, n: int) -> list[Headers]:
    """The column layout's header section, in one native call per batch when ``hub_native`` is
    built; ``tests/unit/test_native_headers.py`` compares it with the reference."""
    if native_decode_header_columns is not None:
        return native_decode_header_columns(body, pos, n)
    return _decode_header_columns_py(body, pos, n)


def decode_headers(body: bytes, pos: int, n: int, wide: bool) -> list[Headers]:
    """The header section at ``pos`` of ``body`` as one tuple of (name, value) pairs per record,
    each distinct pair one shared tuple. One native call per batch when ``hub_native`` is built
    (native/src/headers.rs); ``tests/unit/test_native_headers.py`` checks it returns what the
    reference returns, and raises where the reference raises, on valid and corrupted sections."""
    if native_decode_headers is not None:
        return native_decode_headers(body, pos, n, wide)
    return _decode_headers_py(body, pos, n, wide)


def _body(blob: bytes, version: int, n: int, inflated: bytes | None = None) -> tuple[bytes, int]:
    """The uncompressed body of a batch whose CRC matched, and where its sections start.
    ``inflated``: see ``open_batch``."""
    if version == _VERSION_PLAIN:
        return blob, _HEAD.size
    if version != _VERSION:
        raise CorruptBatch(f"unknown batch format version {version}")
    codec, _layout, size = _BODY.unpack_from(blob, _HEAD.size)
    start = _HEAD.size + _BODY.size
    if codec == _CODEC_NONE:
        if size != len(blob) - start:
            raise CorruptBatch(f"the body is {len(blob) - start} bytes but declares {size}")
        return blob, start
    if codec != _CODEC_ZSTD:
        raise CorruptBatch(f"unknown compression codec {codec}")
    if size > inflated_cap(n):
        raise CorruptBatch(
            f"the compressed body of {n} records declares {size:,} bytes inflated, more than "
            f"the {inflated_cap(n):,} allowed (a decompression bomb?)"
        )
    if inflated is not None:
        if len(inflated) != size:
            raise CorruptBatch(
                f"the body handed with the batch is {len(inflated):,} bytes; the batch "
                f"declares {size:,} inflated"
            )
        return inflated, 0
    try:
        body = _ZSTD.decompress(memoryview(blob)[start:], decompressed_size=size, asbytes=True)
    except (OSError, ValueError) as exc:
        raise CorruptBatch(
            f"the compressed body does not inflate to the {size:,} bytes it declares ({exc})"
        ) from exc
    return body, 0


@dataclass(frozen=True, slots=True)
class BatchColumns:
    """A stored batch decoded into columns. Headers: ``names`` and ``columns`` (one value per
    record per name) when the batch stores them as columns, else ``rows`` (one tuple of pairs
    per record)."""

    count: int
    timestamps: Sequence[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    names: tuple[str, ...] | None
    columns: tuple[list[bytes], ...]
    rows: Sequence[Headers] | None


def open_batch(
    blob: bytes,
    count: int | None = None,
    base_offset: int = 0,
    start: int = 0,
    stop: int | None = None,
    *,
    crc_check: bool = True,
    inflated: bytes | None = None,
) -> EncodedBatch:
    """Check a stored batch (CRC, ``count``) and inflate its body: its records ``start`` to
    ``stop`` (default: all), the first of them at offset ``base_offset + start``. Raises as
    ``decode_batch``. ``crc_check=False`` only for bytes that never left this process's memory
    (the handoff's: the append sealed them with that CRC; it guards storage, not memory): every
    other check still runs. ``inflated``, for the handoff only: the body the append compressed
    into ``blob`` (``Kept``), taken instead of inflating ``blob`` (zstd is lossless: inflating
    gives these bytes) once the header's declared size and cap are checked against it;
    ignored for a body stored uncompressed."""
    crc, version, flags, n, base = _HEAD.unpack_from(blob)
    if crc_check and stored_crc(blob) != crc:
        raise CorruptBatch("CRC mismatch")
    if count is not None and n != count:
        raise CorruptBatch(f"the batch holds {n} records but its row declares {count}")
    body, pos = _body(blob, version, n, inflated)
    layout = _BODY.unpack_from(blob, _HEAD.size)[1] if version == _VERSION else _HEADER_PAIRS
    return EncodedBatch(
        base_offset, start, n if stop is None else stop, n, flags, layout, base, body, pos
    )


def _front(ob: EncodedBatch) -> tuple[Sequence[int], list[bytes | None], list[bytes | None], int]:
    """The sections before the headers, of records ``ob.start`` to ``ob.stop`` only:
    (timestamps, keys, values, where the headers start)."""
    n, flags, body, pos, base = ob.count, ob.flags, ob.body, ob.pos, ob.base_timestamp
    start, stop = ob.start, ob.stop
    timestamps: Sequence[int]
    if flags & _TS_UNIFORM:
        timestamps = [base] * (stop - start)
    elif flags & _TS_WIDE:
        timestamps = struct.unpack_from(f"<{stop - start}q", body, pos + 8 * start)
        pos += 8 * n
    else:
        stamps = struct.unpack_from(f"<{stop - start}I", body, pos + 4 * start)
        timestamps = list(map(base.__add__, stamps))
        pos += 4 * n
    keys, pos = _decode_bytes(body, pos, n, flags, _KEYS_NULL, _KEYS_MIXED, start, stop)
    values, pos = _decode_bytes(body, pos, n, flags, _VALUES_NULL, _VALUES_MIXED, start, stop)
    if pos > len(body):  # a forged body: a section's declared lengths run past its end
        raise CorruptBatch("the record sections run past the end of the batch")
    return timestamps, keys, values, pos


def decode_columns(ob: EncodedBatch) -> BatchColumns:
    """Records ``ob.start`` to ``ob.stop`` of an opened batch (``open_batch``) decoded into
    columns, its headers kept as columns when stored so; only those records' bytes are sliced
    out of the body (a batch stored with header pairs decodes every record's headers first).
    Raises ``CorruptBatch`` (or ``struct.error``, ``ValueError``, ``IndexError`` for a body
    whose CRC matched but whose sections do not parse: a forged blob)."""
    timestamps, keys, values, pos = _front(ob)
    flags, layout, body, n, start, stop = ob.flags, ob.layout, ob.body, ob.count, ob.start, ob.stop
    k = stop - start
    if not flags & _HAS_HEADERS:
        return BatchColumns(k, timestamps, keys, values, (), (), None)
    if layout == _HEADER_COLUMNS:
        names, columns = decode_header_column_lists(body, pos, n, start, stop)
        return BatchColumns(k, timestamps, keys, values, names, columns, None)
    if layout == _HEADER_PAIRS:
        rows = decode_headers(body, pos, n, bool(flags & _WIDE_PAIRS))
        rows = rows if k == n else rows[start:stop]
        return BatchColumns(k, timestamps, keys, values, None, (), rows)
    raise CorruptBatch(f"unknown header layout {layout}")


def decode_records(
    ob: EncodedBatch,
) -> tuple[int, Sequence[int], list[bytes | None], list[bytes | None], Sequence[Headers]]:
    """Every record of an opened batch (``open_batch``, whatever ``ob.start`` and ``ob.stop``)
    decoded: count, timestamps, keys, values, headers (one tuple of pairs per record). Raises
    as ``decode_columns``."""
    if ob.start != 0 or ob.stop != ob.count:
        ob = replace(ob, start=0, stop=ob.count)
    timestamps, keys, values, pos = _front(ob)
    n, flags, layout, body = ob.count, ob.flags, ob.layout, ob.body
    headers: Sequence[Headers]
    if not flags & _HAS_HEADERS:
        headers = [()] * n
    elif layout == _HEADER_COLUMNS:
        headers = decode_header_columns(body, pos, n)
    elif layout == _HEADER_PAIRS:
        headers = decode_headers(body, pos, n, bool(flags & _WIDE_PAIRS))
    else:
        raise CorruptBatch(f"unknown header layout {layout}")
    return n, timestamps, keys, values, headers


def decode_batch(
    blob: bytes, count: int | None = None
) -> tuple[int, Sequence[int], list[bytes | None], list[bytes | None], Sequence[Headers]]:
    """Decode a stored batch into columns: count, timestamps, keys, values, headers (one tuple
    of pairs per record).

    ``count``: the record count the batch's row declares; a blob declaring another is refused
    before anything is allocated for its records. Raises as ``decode_columns``."""
    return decode_records(open_batch(blob, count))


@dataclass(frozen=True, slots=True)
class StoredTopic:
    id: int
    info: TopicInfo


@dataclass(slots=True)
class PartitionGroup:
    """The records of one append bound for one partition, encoded as stored batches."""

    partition: int
    indexes: list[int] | None  # positions in the append; None = all of them, in order
    count: int
    chunks: list[tuple[bytes, int, int]]  # (blob, record count, max timestamp)
    bodies: list[bytes | None] | None = None
    """Per chunk, its uncompressed body (``Kept``) when the log's handoff wants them, else None."""


@dataclass(slots=True)
class PreparedAppend:
    topic: StoredTopic
    count: int
    timestamps: list[int]
    groups: list[PartitionGroup]
    size: int = 0  # keys + values + overhead, as ``is_transactional_append`` counts it

    @property
    def transactional(self) -> bool:
        """Whether Kafka would store this append as a transaction (one marker per partition)."""
        return is_transactional_append(len(self.groups), self.size, self.count)
