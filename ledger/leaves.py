"""Turning log records into ledger leaves, fast: leaf inputs, leaf hashes and query columns.

Every function here MUST produce exactly what ``audit.leaf.encode`` produces (the evidence
verifier recomputes leaves with that one); ``tests/unit/test_leaf.py`` and
``tests/unit/test_ledger_fastpath.py`` check both agree on generated records.

With the native extension built, :meth:`LeafEncoder.encode` hashes a batch of records in ONE
call (``native/src/leaves.rs``: each record's leaf input built and hashed in Rust); a record it
cannot take (an unusual type, an out-of-range field) sends the batch down the Python path below,
which raises the reference's errors. ``tests/unit/test_native_leaves.py`` compares the two.

The batch path (:meth:`LeafEncoder.leaf_hashes`, :meth:`LeafEncoder.leaf_inputs`,
:func:`query_column_batch`) does no per-record Python bytecode in the usual case: every step is
a C-level ``map``/``zip`` over a whole column of the batch:
    1. columns: topic, partition, offset, timestamp, key, value, headers (``attrgetter``);
    2. each *distinct* (name, value) header pair of the batch is encoded once (event type,
       producer, tenant, spec version and content type repeat across a batch; ids and times do
       not, but are encoded column-wise too), then each record's header section is one
       ``b"".join`` of its pairs' encodings looked up in that table;
    3. key and value digests: ``map(sha256)`` then ``map(digest)``; ``None`` takes a slower
       comprehension only if the column holds one;
    4. per record one ``b"".join`` of (0x00 prefix + version + topic, position, key, header
       count, headers, value) and one SHA-256: the leaf hash.
Anything the fast path cannot take (a header pair that is not a hashable ``(str, bytes)``
tuple, an out-of-range field) falls back to the per-record reference transcription, which
raises the same ``LeafError``/``TypeError`` as ``audit.leaf.encode``.

Query columns (not evidence, recomputed by ``verify``):
- ``actor``: the ``ce_source`` header (the producer or principal);
- ``action``: the ``hub_action`` header (audit actions) else ``ce_type`` (event type);
- ``resource``: the ``ce_subject`` header else the key as UTF-8 text (``0x<hex>`` if binary);
- ``tenant``: ``ce_tenant``.
A column read from an envelope header the record carries more than once is null (no copy is
picked, see ``domain.envelope``), except ``tenant``: it is ``AMBIGUOUS_TENANT``, which no
tenant's scope matches (a null tenant is a hub-wide record, seen by every tenant). ``hub ledger
verify`` reports the record. The gate refuses these records, so only one planted in the store
or written to Kafka by another producer can have one. The native passes decline a batch
where a query header repeats, and the Python path below gives the nulls.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any

from audit import leaf as leaf_format
from core.hashing import NATIVE, leaf_hashes, split
from core.ports.eventlog import (
    EncodedColumns,
    Headers,
    RecordColumns,
    StoredRecord,
    duplicated_envelope_rows,
)
from core.ports.ledgerstore import AMBIGUOUS_TENANT, LeafBatch, int_array, leaf_schema
from domain.envelope import (
    H_ACTION,
    H_SOURCE,
    H_SUBJECT,
    H_TENANT,
    H_TYPE,
    duplicated_envelope_name,
    is_envelope_header,
)

try:  # native/src/leaves.rs: leaf input and hash per record in one call per batch
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        record_leaf_hashes as _native_record_hashes,
    )
except ImportError:  # not built (no cargo), or built before it existed: the Python paths
    _native_record_hashes = None
try:  # native/src/ledger_batch.rs: leaf hashes AND side-index columns in one call per batch
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        record_leaf_batch as _native_leaf_batch,
    )
except ImportError:
    _native_leaf_batch = None
try:  # native/src/ledger_batch.rs: the same, read from the log's columns (RecordColumns)
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        column_leaf_batch as _native_column_batch,
    )
except ImportError:
    _native_column_batch = None
try:  # native/src/stored_leaves.rs: the same, read from the embedded log's stored batch bodies
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        stored_leaf_batch as _native_stored_batch,
    )
except ImportError:
    _native_stored_batch = None


QueryColumns = tuple[str | None, str | None, str | None, str | None]
"""(actor, action, resource, tenant) of one record."""
QueryColumnBatch = tuple[list[str | None], list[str | None], list[str | None], list[str | None]]
"""(actors, actions, resources, tenants) of a batch, one list per column."""

_sha256 = hashlib.sha256
_digest = type(_sha256()).digest  # unbound: map(_digest, map(_sha256, data)) stays in C
_POS = struct.Struct(">IQq")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_LEAF = b"\x00"
_ABSENT = b"\x00"
_PRESENT = b"\x01"

_topic_of = attrgetter("topic")
_part_of = attrgetter("partition")
_offset_of = attrgetter("offset")
_ts_of = attrgetter("timestamp_ms")
_key_of = attrgetter("key")
_value_of = attrgetter("value")
_headers_of = attrgetter("headers")
_first = itemgetter(0)
_second = itemgetter(1)


def _digest_column(col: list[bytes | None], dedup: bool) -> list[bytes]:
    """``0x00`` for None, else ``0x01 || SHA-256(v)``, for a whole column.

    ``dedup``: hash each distinct value once (keys repeat: accounts, instruments).
    """
    if dedup:
        uniq = set(col)
        if len(uniq) * 3 <= len(col):
            sha = _sha256
            table = {v: _ABSENT if v is None else _PRESENT + sha(v).digest() for v in uniq}
            return list(map(table.__getitem__, col))
    if col.count(None):
        sha = _sha256
        return [_ABSENT if v is None else _PRESENT + sha(v).digest() for v in col]
    return list(map(_PRESENT.__add__, map(_digest, map(_sha256, col))))  # type: ignore[arg-type]


class _Slow(Exception):
    """The batch needs the per-record path."""


@dataclass(slots=True)
class _Shape:
    """A batch whose records all carry ``len(cols)`` headers: its header columns.

    ``cols[j]`` holds the j-th header pair of every record; ``names[j]`` is that column's
    header name when every record has the same name there (else None).
    """

    n: int
    cols: list[Sequence[tuple[str, bytes]]]
    names: list[str | None]


def _same(col: Sequence[object], n: int) -> bool:
    """Whether every item of ``col`` equals the first (cheap rejection of varying columns)."""
    p0 = col[0]
    return (col[-1] is p0 or col[-1] == p0) and col.count(p0) == n


def _shape(headers: list[Headers]) -> _Shape | None:
    n = len(headers)
    counts = set(map(len, headers))
    if len(counts) != 1:
        return None
    c = counts.pop()
    flat = list(chain.from_iterable(headers))
    cols: list[Sequence[tuple[str, bytes]]] = [flat[j::c] for j in range(c)]
    names: list[str | None] = []
    for col in cols:
        p0 = col[0]
        if len(p0) != 2:
            raise _Slow
        if _same(col, n):
            names.append(p0[0])
            continue
        if set(map(len, col)) != {2}:
            raise _Slow
        col_names = list(map(_first, col))
        names.append(col_names[0] if _same(col_names, n) else None)
    return _Shape(n, cols, names)


class LeafEncoder:
    """Encodes records into leaf inputs and leaf hashes; keeps small caches between batches."""

    def __init__(self, *, threads: int = 1) -> None:
        if not 1 <= threads <= 8:
            raise ValueError(f"threads must be 1 to 8 (hashing threads per batch); got {threads}.")
        # the native stored-batch pass hashes on up to this many threads (same bytes)
        self.threads = threads
        self._heads: dict[str, bytes] = {}  # topic -> version || u16 len || topic
        self._names: dict[str, bytes] = {}  # header name -> u16 len || name
        self._counts: dict[int, bytes] = {}  # header count -> u32
        # of the last leaf_batch/column_batch: (index in the batch, header name) of each record
        # carrying an envelope header twice (read as absent; ``hub ledger verify`` names them)
        self.duplicates: list[tuple[int, str]] = []

    # -- one record (reference-shaped; used for single lookups and as the fallback) ----------
    def leaf_input(self, r: StoredRecord) -> bytes:
        return leaf_format.encode(
            r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.headers, r.value
        )

    # -- batches -----------------------------------------------------------------------------
    def leaf_inputs(self, records: Sequence[StoredRecord]) -> list[bytes]:
        """The leaf inputs of a batch (``audit.leaf.encode`` of each record)."""
        headers: list[Headers] = list(map(_headers_of, records))
        try:
            shape = _shape(headers) if records else None
        except (_Slow, TypeError, ValueError):
            shape = None
        inputs = self._inputs(records, b"", shape, headers)
        if inputs is None:
            return [self.leaf_input(r) for r in records]
        return inputs

    def _inputs(
        self,
        records: Sequence[StoredRecord],
        prefix: bytes,
        shape: _Shape | None,
        headers: list[Headers],
    ) -> list[bytes] | None:
        """``prefix || leaf input`` per record: templated, column-wise, or None (per record)."""
        if shape is not None:
            try:
                got = self._templated(records, prefix, shape)
            except (TypeError, ValueError, struct.error, AttributeError, KeyError):
                got = None
            if got is not None:
                return got
        parts = self._parts(records, prefix, shape, headers)
        return None if parts is None else list(map(b"".join, parts))

    def leaf_hashes(self, records: Sequence[StoredRecord]) -> list[bytes]:
        """RFC 9162 leaf hashes ``SHA-256(0x00 || leaf input)`` of a batch."""
        return self.encode(records, query=False)[0]

    def encode(
        self, records: Sequence[StoredRecord], *, query: bool = True
    ) -> tuple[list[bytes], QueryColumnBatch]:
        """Leaf hashes and (if ``query``) the query columns of a batch, sharing one pass."""
        packed = None
        if _native_record_hashes is not None and records:
            # records -> leaf hashes in one native call; None: a record the reference must take
            packed = _native_record_hashes(records if type(records) is list else list(records))
            if packed is not None and not query:
                return split(packed), ([], [], [], [])
        headers: list[Headers] = list(map(_headers_of, records))
        try:
            shape = _shape(headers) if records else None
        except (_Slow, TypeError, ValueError):
            shape = None
        if packed is not None:
            hashes = split(packed)
        elif NATIVE:  # one native call hashes the batch (core.hashing; same bytes)
            inputs = self._inputs(records, b"", shape, headers)
            if inputs is None:
                inputs = list(map(self.leaf_input, records))
            hashes = split(leaf_hashes(inputs))
        else:
            inputs = self._inputs(records, _LEAF, shape, headers)
            if inputs is None:
                sha, li = _sha256, self.leaf_input
                hashes = [sha(_LEAF + li(r)).digest() for r in records]
            else:
                hashes = list(map(_digest, map(_sha256, inputs)))
        cols: QueryColumnBatch = ([], [], [], [])
        if query:
            cols = _query_column_batch(records, shape)
        return hashes, cols

    def leaf_batch(self, records: Sequence[StoredRecord], first: int) -> LeafBatch:
        """The leaves of ``records`` from index ``first`` as one :class:`LeafBatch`: leaf hashes
        and side-index columns. Native (``record_leaf_batch``: one call, no per-record Python
        object) when built and every record is plain; else :meth:`encode` (the Python path,
        which raises the reference's errors). ``tests/unit/test_native_ledger_batch.py``
        checks both against :func:`leaf_batch_reference`."""
        recs = records if type(records) is list else list(records)
        self.duplicates = []
        got = _native_leaf_batch(recs) if _native_leaf_batch is not None and recs else None
        if got is None:
            return self._leaf_batch_py(recs, first)
        return self._from_native(got, first)

    def column_batch(
        self,
        chunks: Sequence[RecordColumns | EncodedColumns],
        first: int,
        *,
        strings: bool = True,
    ) -> LeafBatch:
        """What :meth:`leaf_batch` returns for the records of ``chunks`` in order, read from
        the log's columns (``EventLog.read_columns``) without a ``StoredRecord`` per record:
        one native call (``column_leaf_batch``) when built and every chunk holds its headers
        as columns; else the chunks' records through :meth:`leaf_batch` (the reference).
        ``tests/unit/test_ledger_columns.py`` checks both give the same bytes.

        Chunks the log handed as stored batches (``EventLog.read_encoded``): when every chunk
        is one, one native call over the stored bodies (``stored_leaf_batch``, no Python object
        per record); else, or when it declines (an unusual batch), each is decoded by its log
        (``EncodedColumns.columns``) and takes the column path above, which is its reference
        (``tests/unit/test_ledger_stored_leaves.py``).

        ``strings=False`` (``hub ledger verify``, for a store comparing through the
        dictionaries): the stored-batch call builds no Arrow string buffers and each string
        column of ``columns`` is built from its dictionary only when read (:class:`_Columns`);
        the same values either way."""
        self.duplicates = []
        encoded = [c for c in chunks if isinstance(c, EncodedColumns)]
        if chunks and len(encoded) == len(chunks):
            got = None
            if _native_stored_batch is not None:
                got = _native_stored_batch(
                    [
                        (
                            c.topic,
                            c.partition,
                            b.base_offset,
                            b.start,
                            b.stop,
                            b.count,
                            b.flags,
                            b.layout,
                            b.base_timestamp,
                            b.body,
                            b.pos,
                        )
                        for c in encoded
                        for b in c.batches
                    ],
                    self.threads,
                    strings,
                )
            if got is not None:
                return self._from_native(got, first, strings)
        cols = [c.columns() if isinstance(c, EncodedColumns) else c for c in chunks]
        return self._column_batch(cols, first)

    def _column_batch(self, chunks: Sequence[RecordColumns], first: int) -> LeafBatch:
        if _native_column_batch is not None and chunks:
            args = [_native_args(c) for c in chunks]
            got = None if None in args else _native_column_batch(args)
            if got is not None:
                return self._from_native(got, first)
        return self.leaf_batch(list(chain.from_iterable(c.records() for c in chunks)), first)

    @staticmethod
    def _from_native(got: tuple[Any, ...], first: int, strings: bool = True) -> LeafBatch:
        hashes, topics, parts, offs, times, actors, actions, resources, tenants = got
        texts = {"topic": topics, "actor": actors, "action": actions}
        texts |= {"resource": resources, "tenant": tenants}
        ints = {
            "part": _int_column(parts, "<i4"),
            "off": _int_column(offs, "<i8"),
            "ts_ms": _int_column(times, "<i8"),
        }
        columns = _Columns(len(hashes) // 32, texts, ints)
        return LeafBatch(
            first,
            hashes,
            columns.table() if strings else columns,
            # handed on only where each string is there once (two byte strings may decode to
            # one text: a key and a subject, or U+FFFD replacements)
            {k: (t[0], t[1]) for k, t in texts.items() if len(set(t[0])) == len(t[0])},
        )

    def _leaf_batch_py(self, records: list[StoredRecord], first: int) -> LeafBatch:
        # the native passes decline a batch with a repeated envelope header: it lands here
        self.duplicates = duplicated_envelope_rows(list(map(_headers_of, records)))
        hashes, cols = self.encode(records)
        return LeafBatch(
            first,
            b"".join(hashes),
            _table(
                list(map(_topic_of, records)),
                list(map(_part_of, records)),
                list(map(_offset_of, records)),
                list(map(_ts_of, records)),
                *cols,
            ),
        )

    def _head(self, topic: str) -> bytes:
        head = self._heads.get(topic)
        if head is None:
            t = topic.encode()
            if len(t) > 0xFFFF:
                raise leaf_format.LeafError(
                    f"topic name is {len(t)} bytes; at most 65535 can be encoded."
                )
            head = struct.pack(">BH", leaf_format.VERSION, len(t)) + t
            if len(self._heads) < 10_000:
                self._heads[topic] = head
        return head

    def _name(self, name: str) -> bytes:
        enc = self._names.get(name)
        if enc is None:
            n = name.encode()
            if len(n) > 0xFFFF:
                raise leaf_format.LeafError(f"header {name[:40]!r} is too long to encode.")
            enc = _U16.pack(len(n)) + n
            if len(self._names) < 10_000:
                self._names[name] = enc
        return enc

    def _templated(
        self, records: Sequence[StoredRecord], prefix: bytes, shape: _Shape
    ) -> list[bytes] | None:
        """``prefix || leaf input`` of each record of a one-shape, one-topic batch, or None.

        Everything that is the same for the whole batch (topic, header count, header pairs
        that repeat, names and value lengths of the others, the digest flags) goes into one
        bytes template; each record is then one ``template % (position, key digest, varying
        header values..., value digest)`` in C.
        """
        n = shape.n
        topics = list(map(_topic_of, records))
        if topics.count(topics[0]) != n:
            return None
        fixed: list[bytes | None] = [prefix + self._head(topics[0])]  # None: a placeholder
        args: list[Iterable[bytes]] = []

        def var(column: Iterable[bytes]) -> None:
            fixed.append(None)
            args.append(column)

        var(map(_POS.pack, map(_part_of, records), map(_offset_of, records), map(_ts_of, records)))
        keys: list[bytes | None] = list(map(_key_of, records))
        if keys.count(None) == n:
            fixed.append(_ABSENT)
        else:
            var(_digest_column(keys, True))
        fixed.append(_U32.pack(len(shape.cols)))
        for col, name in zip(shape.cols, shape.names, strict=True):
            p0 = col[0]
            if _same(col, n):  # one pair for the whole batch
                nm, value = p0
                if type(value) is not bytes:
                    return None
                fixed.append(self._name(nm) + _U32.pack(len(value)) + value)
                continue
            if name is None:
                return None
            vals = list(map(_second, col))
            if set(map(type, vals)) != {bytes}:
                return None
            fixed.append(self._name(name))
            lens = list(map(len, vals))
            if _same(lens, n):
                fixed.append(_U32.pack(lens[0]))
            else:
                var(map(_U32.pack, lens))
            var(vals)
        values: list[bytes | None] = list(map(_value_of, records))
        if values.count(None) == n:
            fixed.append(_ABSENT)
        elif values.count(None) == 0:
            fixed.append(_PRESENT)
            var(map(_digest, map(_sha256, values)))  # type: ignore[arg-type]
        else:
            var(_digest_column(values, False))
        template = b"".join(b"%b" if p is None else p.replace(b"%", b"%%") for p in fixed)
        return list(map(template.__mod__, zip(*args, strict=True)))

    def _sections(self, headers: list[Headers], shape: _Shape | None) -> Iterable[bytes]:
        """Each record's encoded header pairs, concatenated."""
        if shape is not None:
            n = shape.n
            if not shape.cols:
                return repeat(b"", n)
            encoded: list[Iterable[bytes]] = []
            for col in shape.cols:
                p0 = col[0]
                if _same(col, n):  # one pair for the whole batch: encoded once
                    name, value = p0
                    encoded.append(repeat(self._name(name) + _U32.pack(len(value)) + value, n))
                    continue
                names = list(map(_first, col))
                vals = list(map(_second, col))
                table = {nm: self._name(nm) for nm in set(names)}
                encoded.append(
                    list(
                        map(
                            b"".join,
                            zip(
                                map(table.__getitem__, names),
                                map(_U32.pack, map(len, vals)),
                                vals,
                                strict=True,
                            ),
                        )
                    )
                )
            return map(b"".join, zip(*encoded, strict=True))
        # Varying header counts: each distinct (name, value) pair of the batch encoded once.
        distinct = list(set(chain.from_iterable(headers)))
        if distinct and set(map(len, distinct)) != {2}:
            raise _Slow
        names = list(map(_first, distinct))
        vals = list(map(_second, distinct))
        table = {nm: self._name(nm) for nm in set(names)}
        pairs = dict(
            zip(
                distinct,
                map(
                    b"".join,
                    zip(
                        map(table.__getitem__, names),
                        map(_U32.pack, map(len, vals)),
                        vals,
                        strict=True,
                    ),
                ),
                strict=True,
            )
        )
        return map(b"".join, map(map, repeat(pairs.__getitem__), headers))

    def _parts(
        self,
        records: Sequence[StoredRecord],
        prefix: bytes,
        shape: _Shape | None,
        headers: list[Headers] | None = None,
    ) -> Iterable[tuple[bytes, ...]] | None:
        """Per record the tuple of byte strings whose join is ``prefix || leaf input``.

        None when the batch needs the per-record path (malformed or unusual fields).
        """
        n = len(records)
        if not n:
            return []
        try:
            if headers is None:
                headers = list(map(_headers_of, records))
            topics = list(map(_topic_of, records))
            heads_by_topic = {t: prefix + self._head(t) for t in set(topics)}
            heads = (
                repeat(heads_by_topic[topics[0]], n)
                if len(heads_by_topic) == 1
                else map(heads_by_topic.__getitem__, topics)
            )
            pos = list(
                map(
                    _POS.pack,
                    map(_part_of, records),
                    map(_offset_of, records),
                    map(_ts_of, records),
                )
            )
            keys = _digest_column(list(map(_key_of, records)), True)
            values = _digest_column(list(map(_value_of, records)), False)
            counts = list(map(len, headers))
            count_enc = self._counts
            for c in set(counts).difference(count_enc):
                count_enc[c] = _U32.pack(c)
            sections = list(self._sections(headers, shape))
        except (_Slow, TypeError, ValueError, struct.error, AttributeError, KeyError):
            return None  # the reference path raises the same error (LeafError is a ValueError)
        return zip(
            heads, pos, keys, map(count_enc.__getitem__, counts), sections, values, strict=True
        )


def query_columns(r: StoredRecord) -> QueryColumns:
    """(actor, action, resource, tenant) of a record, from its headers and key."""
    h = _once(r.headers)
    src = h.get(H_SOURCE)
    act = h.get(H_ACTION) or h.get(H_TYPE)
    subj = h.get(H_SUBJECT)
    ten = h.get(H_TENANT)
    if ten is None and _repeats_tenant(r.headers):
        ten = AMBIGUOUS_TENANT.encode()
    if subj is not None:
        resource: str | None = subj.decode("utf-8", "replace")
    else:
        resource = _key_text(r.key)
    return (
        None if src is None else src.decode("utf-8", "replace"),
        None if act is None else act.decode("utf-8", "replace"),
        resource,
        None if ten is None else ten.decode("utf-8", "replace"),
    )


def _once(headers: Headers) -> dict[str, bytes]:
    """``dict(headers)`` without the envelope headers carried more than once (read as absent:
    no copy is picked)."""
    h = dict(headers)
    if len(h) != len(headers):
        seen: set[str] = set()
        for name, _ in headers:
            if name in seen and is_envelope_header(name):
                h.pop(name, None)
            seen.add(name)
    return h


def _repeats_tenant(headers: Headers) -> bool:
    """Whether ``headers`` carry ``ce_tenant`` more than once."""
    return list(map(_first, headers)).count(H_TENANT) > 1


def _ambiguous(tenants: list[str | None], headers: list[Headers]) -> list[str | None]:
    """``tenants`` with :data:`AMBIGUOUS_TENANT` where a record's null tenant comes from a
    repeated ``ce_tenant`` (only null rows are looked at)."""
    if None not in tenants:
        return tenants
    return [
        AMBIGUOUS_TENANT if t is None and _repeats_tenant(h) else t
        for t, h in zip(tenants, headers, strict=True)
    ]


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + key.hex()


def _texts(col: list[bytes | None]) -> list[str | None]:
    """Decode a column of low-cardinality header values (each distinct value once)."""
    table: dict[bytes | None, str | None] = {
        v: v.decode("utf-8", "replace") for v in set(col) if v is not None
    }
    table[None] = None
    return list(map(table.__getitem__, col))


def query_column_batch(records: Sequence[StoredRecord]) -> QueryColumnBatch:
    """:func:`query_columns` of a batch, column-wise: (actors, actions, resources, tenants)."""
    headers: list[Headers] = list(map(_headers_of, records))
    try:
        shape = _shape(headers) if records else None
    except (_Slow, TypeError, ValueError):
        shape = None
    return _query_column_batch(records, shape)


def _query_column_batch(records: Sequence[StoredRecord], shape: _Shape | None) -> QueryColumnBatch:
    try:
        n = len(records)
        keys: list[bytes | None] = list(map(_key_of, records))
        if shape is not None and None not in shape.names:
            # Every record has the same header names in the same order: read the columns.
            # an envelope header in two columns is read as absent (no copy is picked)
            where = {name: j for j, name in enumerate(shape.names)}
            if duplicated_envelope_name(shape.names) is not None:  # type: ignore[arg-type]
                seen: set[str | None] = set()
                for name in shape.names:
                    if name in seen:
                        where.pop(name, None)
                    seen.add(name)

            def column(name: str) -> list[bytes | None]:
                j = where.get(name)
                return [None] * n if j is None else list(map(_second, shape.cols[j]))

            src, act, typ, subj, ten = map(
                column, (H_SOURCE, H_ACTION, H_TYPE, H_SUBJECT, H_TENANT)
            )
        else:
            dicts = list(map(_once, map(_headers_of, records)))
            get = dict.get
            src, act, typ, subj, ten = (
                list(map(get, dicts, repeat(name, n)))
                for name in (H_SOURCE, H_ACTION, H_TYPE, H_SUBJECT, H_TENANT)
            )
        act = [a or t for a, t in zip(act, typ, strict=True)] if act.count(None) != n else typ
        key_text = {k: _key_text(k) for k in set(keys)}
        if subj.count(None) == n:
            resources = list(map(key_text.__getitem__, keys))
        else:
            resources = [
                key_text[k] if s is None else s.decode("utf-8", "replace")
                for s, k in zip(subj, keys, strict=True)
            ]
        tenants = _ambiguous(_texts(ten), list(map(_headers_of, records)))
        return _texts(src), _texts(act), resources, tenants
    except (TypeError, ValueError, AttributeError):
        cols = [query_columns(r) for r in records]
        return (
            [c[0] for c in cols],
            [c[1] for c in cols],
            [c[2] for c in cols],
            [c[3] for c in cols],
        )


def _native_args(c: RecordColumns) -> tuple[object, ...] | None:
    """A chunk as ``column_leaf_batch`` takes it, or None when its headers are per record."""
    if c.header_names is None:
        return None
    o = c.offsets
    offsets: object = o.start if type(o) is range and o.step == 1 else list(o)
    return (
        c.topic,
        c.partition,
        offsets,
        c.timestamps,
        c.keys,
        c.values,
        c.header_names,
        c.header_values,
    )


def _int_column(packed: bytes, dtype: str) -> Any:
    import numpy as np

    return np.frombuffer(packed, dtype=dtype)


def _dict_column(values: list[str], index: bytes, arrow: Any = None) -> Any:
    """A string column from its distinct values and int32 indexes (-1: null), in Arrow; from
    ``arrow`` (its int32 offsets, UTF-8 data and validity bitmap or None, as the native pass
    built them) when given."""
    import numpy as np
    import pyarrow as pa

    if arrow is not None:
        offsets, data, validity = arrow
        valid = None if validity is None else pa.py_buffer(validity)
        buffers = [valid, pa.py_buffer(offsets), pa.py_buffer(data)]
        return pa.Array.from_buffers(pa.string(), len(index) // 4, buffers)
    idx = np.frombuffer(index, dtype="<i4")
    indices = int_array(idx, pa.int32(), mask=idx < 0)
    return pa.DictionaryArray.from_arrays(
        indices, pa.array(values, pa.string())
    ).dictionary_decode()


class _Columns:
    """The side-index table of a native batch (``_from_native``), each column built on its
    first ``column(name)``: an integer column over its packed bytes, a string column from the
    native pass's Arrow buffers or, without them (``column_batch(strings=False)``), from its
    dictionary (:func:`_dict_column`). ``schema`` is the side index's (:func:`leaf_schema`,
    what the table has). Any other use builds the whole table (:meth:`table`, what ``_table``
    returns) and is answered by it, so a reader sees an Arrow table; one that reads only the
    integer columns and the dictionaries (the tile store's encoded comparison and its append)
    builds no string column."""

    def __init__(self, rows: int, texts: dict[str, tuple[Any, ...]], ints: dict[str, Any]) -> None:
        self.num_rows = rows
        self._texts, self._ints = texts, ints
        self._built: dict[str, Any] = {}
        self._whole: Any = None

    def _array(self, name: str) -> Any:
        got = self._built.get(name)
        if got is None:
            if name in self._ints:
                got = int_array(self._ints[name], leaf_schema().field(name).type)
            else:
                got = _dict_column(*self._texts[name])
            self._built[name] = got
        return got

    @property
    def schema(self) -> Any:
        return leaf_schema()

    def column(self, name: str) -> Any:
        import pyarrow as pa

        if self._whole is not None:
            return self._whole.column(name)
        return pa.chunked_array([self._array(name)])

    def table(self) -> Any:
        if self._whole is None:
            self._whole = _table(*map(self._array, leaf_schema().names))
        return self._whole

    def __getattr__(self, name: str) -> Any:  # only for names not set above
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.table(), name)


def _table(*columns: Any) -> Any:
    """The side-index columns (``core.ports.ledgerstore.LEAF_COLUMNS``) as an Arrow table."""
    import numpy as np
    import pyarrow as pa

    schema = leaf_schema()
    arrays = [
        c
        if isinstance(c, pa.Array)
        else int_array(c, f.type)
        if isinstance(c, np.ndarray) and pa.from_numpy_dtype(c.dtype) == f.type
        else pa.array(c, type=f.type)
        for c, f in zip(columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def leaf_batch_reference(records: Sequence[StoredRecord], first: int) -> LeafBatch:
    """The reference of :meth:`LeafEncoder.leaf_batch`, record by record: ``audit.leaf.encode``
    and :func:`query_columns` of each record (slow; for tests)."""
    hashes = b"".join(
        hashlib.sha256(
            _LEAF
            + leaf_format.encode(
                r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.headers, r.value
            )
        ).digest()
        for r in records
    )
    q = [query_columns(r) for r in records]
    return LeafBatch(
        first,
        hashes,
        _table(
            [r.topic for r in records],
            [r.partition for r in records],
            [r.offset for r in records],
            [r.timestamp_ms for r in records],
            *([c[i] for c in q] for i in range(4)),
        ),
    )
