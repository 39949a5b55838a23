"""Avro object container blocks decoded to Arrow columns natively, one call per block.

The reference is fastavro: each row's datum (``Block`` iteration, the writer schema, no
resolution) made into a record batch by ``arrowread.datum_batch``. ``hub_native.
avro_block_columns`` (native/src/avro_blocks.rs) reads a block's records back to back, field by
field, into column buffers; ``block_batch`` turns them into a record batch of the layout's
types. It gives exactly the batch the reference gives for that block, or None, and then the
reference reads it: the decoder declines anything it does not read exactly as fastavro does
(a malformed varint, a read past the block, a union branch other than 0/1, an enum index out of
range, a decimal wider than 64 bits, a timestamp outside Python's datetime range, invalid UTF-8,
bytes left after the last record), and ``block_batch`` declines values ``datum_batch`` would
refuse (an ``int`` out of 32 bits, a decimal past its precision, a date outside Python's range).
Without the extension every block is read by the reference.

Only files written with the target's own schema come here (no resolution), and only schemas
with an Arrow layout of the kinds below (the ``arrowread`` layout kinds).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.arrowread import Layout
from ingest.avroblocks import BATCH_BYTES, CorruptBlock, _read_long

Plan = list[tuple[int, int, int]]

native_decoder: Callable[[bytes, int, Plan], list[tuple[bytes, Any, Any]] | None] | None
try:
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        avro_block_columns as _decoder,
    )
except ImportError:  # not built (no cargo): every block is read by fastavro
    _decoder = None
native_decoder = _decoder  # None also reads every block with fastavro (benchmarks)
native_batch_decoder: (
    Callable[[list[tuple[bytes, int, int, int]], Plan], list[tuple[bytes, Any, Any]] | None] | None
)
try:
    from hub_native import (  # type: ignore[import-not-found,unused-ignore]
        avro_batch_columns as _batch_decoder,
    )
except ImportError:  # an older build: each block is decoded alone (``block_batch``)
    _batch_decoder = None
# A batch's blocks in one call, made into one record batch (``Batch.record_batch``); None: one
# call and one record batch per block, concatenated (the reference this is held to).
native_batch_decoder = _batch_decoder

# Kind codes of native/src/avro_blocks.rs, by ``arrowread.Column.kind``.
_KINDS = {
    "long": 0,
    "int": 0,
    "date": 0,
    "timestamp": 1,
    "string": 2,
    "boolean": 4,
    "double": 5,
    "float": 6,
    "enum": 7,
    "decimal": 8,
}
_I32 = (-(2**31), 2**31 - 1)
_DAYS = (date.min.toordinal() - 719_163, date.max.toordinal() - 719_163)  # days since 1970


def block_plan(parsed: Any, lay: Layout) -> Plan | None:
    """The native decoder's field plan ((kind, null branch or -1, enum symbols) per field) for
    the record schema ``parsed`` whose layout is ``lay``; None without the extension."""
    if native_decoder is None or not isinstance(parsed, dict):
        return None
    plan: Plan = []
    for f, c in zip(parsed["fields"], lay.columns, strict=True):
        t = f["type"]
        null_index = t.index("null") if isinstance(t, list) else -1
        plan.append((_KINDS[c.kind], null_index, len(c.symbols)))
    return plan


def block_batch(data: bytes, count: int, plan: Plan, lay: Layout) -> pa.RecordBatch | None:
    """The ``count`` records of one decompressed block as a record batch of ``lay.schema``, or
    None (the reference reads the block; see the module docstring)."""
    if native_decoder is None or count <= 0:
        return None
    return _columns_batch(native_decoder(data, count, plan), count, lay)


def _columns_batch(
    got: list[tuple[bytes, Any, Any]] | None, n: int, lay: Layout
) -> pa.RecordBatch | None:
    """The native decoder's columns of ``n`` rows as a record batch of ``lay.schema``, or None
    (declined by the decoder, or holding a value ``datum_batch`` refuses)."""
    if got is None:
        return None
    arrays = []
    for c, (words, valid, strings) in zip(lay.columns, got, strict=True):
        arr = _array(c.kind, c.final, c.symbols, n, words, valid, strings)
        if arr is None:
            return None
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=lay.schema)


def _array(
    kind: str,
    final: pa.DataType,
    symbols: Sequence[str],
    n: int,
    words: bytes,
    valid: bytes | None,
    strings: bytes | None,
) -> pa.Array | None:
    present = None if valid is None else np.frombuffer(valid, np.uint8).astype(np.bool_)
    mask = None if present is None else ~present
    if kind == "string":
        bitmap, nulls = None, 0
        if present is not None and mask is not None and mask.any():
            bitmap = pa.py_buffer(np.packbits(present, bitorder="little"))
            nulls = int(mask.sum())
        buffers = [bitmap, pa.py_buffer(words), pa.py_buffer(strings or b"")]
        return pa.Array.from_buffers(pa.string(), n, buffers, nulls)
    if kind == "boolean":
        return pa.array(np.frombuffer(words, np.uint8).astype(np.bool_), mask=mask)
    if kind in ("double", "float"):
        f = pa.array(np.frombuffer(words, np.float64), mask=mask)
        return f if kind == "double" else f.cast(pa.float32())  # widened from float32: exact
    ints = np.frombuffer(words, np.int64)
    if kind == "enum":
        return pa.array(list(symbols), pa.string()).take(pa.array(ints, mask=mask))
    if kind == "timestamp":
        return pa.array(ints, mask=mask).view(pa.timestamp("us", tz="UTC"))
    if kind in ("int", "date"):
        lo, hi = _I32 if kind == "int" else _DAYS
        if bool(((ints < lo) | (ints > hi)).any()):
            return None  # the reference refuses (or fails) these values
        i32 = pa.array(ints.astype(np.int32), mask=mask)
        return i32 if kind == "int" else i32.view(pa.date32())
    if kind == "decimal":
        assert isinstance(final, pa.Decimal128Type)
        if final.precision <= 18 and bool((np.abs(ints) >= 10**final.precision).any()):
            return None  # more digits than the precision: ``datum_batch`` refuses the batch
        pairs = np.empty((n, 2), np.int64)
        pairs[:, 0] = ints
        pairs[:, 1] = ints >> 63
        bitmap, nulls = None, 0
        if present is not None and mask is not None and mask.any():
            bitmap = pa.py_buffer(np.packbits(present, bitorder="little"))
            nulls = int(mask.sum())
        return pa.Array.from_buffers(final, n, [bitmap, pa.py_buffer(pairs.tobytes())], nulls)
    return pa.array(ints, mask=mask)  # long


@dataclass(slots=True)
class Block:
    """One block of a container file: its decompressed ``data`` holding ``count`` records, and
    the writer schema fastavro reads them with (``datums``)."""

    data: bytes
    count: int
    writer: Any

    def datums(self, hi: int) -> list[Any]:
        """fastavro's datums of the first ``hi`` records (as ``fastavro.reader`` gives them)."""
        import fastavro

        fo = io.BytesIO(self.data)
        return [fastavro.schemaless_reader(fo, self.writer, None) for _ in range(hi)]


def read_blocks(f: Any, writer: Any) -> Iterator[Block]:
    """The blocks of the container file ``f`` (its header read by ``fastavro.reader``), each
    decompressed by fastavro's codec table (``avroblocks.install`` bounds it).

    As fastavro's record reader: the file ends where a block count cannot be read; a block's
    sync marker is checked after its records are used (the error comes where the reference
    raises it, after the batches that block's rows complete)."""
    import fastavro
    from fastavro.read import BLOCK_READERS

    reader = fastavro.reader(f)
    sync = reader._header["sync"]
    read_block = BLOCK_READERS.get(reader.codec)
    if read_block is None:
        raise ValueError(f"Unrecognized codec: {reader.codec}")
    blocks = 0
    while True:
        try:
            count = _read_long(f)
        except EOFError:
            return
        data = read_block(f).getvalue()
        if count <= 0 or count > len(data):  # as ``avroblocks.BlockChecker`` checks fastavro's
            raise CorruptBlock(
                f"block {blocks + 1} declares {count} records in {len(data)} bytes (a record "
                "takes at least one byte, and a block holds at least one)"
            )
        blocks += 1
        yield Block(data, count, writer)
        if f.read(len(sync)) != sync:
            raise ValueError("expected sync marker not found")


@dataclass(slots=True)
class Segment:
    """Rows ``lo:hi`` of one block and the block's native record batch (None: the reference
    reads it; unused when the batch is decoded whole, ``Batch.plan``)."""

    block: Block
    rb: pa.RecordBatch | None
    lo: int
    hi: int
    _datums: list[Any] | None = None

    def datums(self) -> list[Any]:
        """fastavro's datums of rows ``lo:hi`` (the block is read from its start)."""
        if self._datums is None:
            self._datums = self.block.datums(self.hi)[self.lo :]
        return self._datums


@dataclass(slots=True)
class Batch:
    """A batch of an Avro file: consecutive rows of one or more blocks. With ``plan`` and
    ``lay`` its blocks are decoded together when the record batch is asked for (one native call
    and one Arrow conversion per batch, not per block: files written with small blocks paid
    the conversion's fixed cost per few hundred rows); without, from the segments' own
    record batches."""

    segments: list[Segment] = field(default_factory=list)
    plan: Plan | None = None
    lay: Layout | None = None

    def __len__(self) -> int:
        return sum(s.hi - s.lo for s in self.segments)

    def __getitem__(self, cut: slice) -> Batch:
        """The rows from ``cut.start`` on (the one cut ``_Resume.past`` makes)."""
        assert cut.stop is None and cut.step is None
        skip, out = cut.start or 0, []
        for s in self.segments:
            size = s.hi - s.lo
            if skip >= size:
                skip -= size
                continue
            out.append(Segment(s.block, s.rb, s.lo + skip, s.hi))
            skip = 0
        return Batch(out, self.plan, self.lay)

    def record_batch(self) -> pa.RecordBatch | None:
        """The rows as one native record batch, or None when a block needs the reference."""
        if self.plan is not None and self.lay is not None and native_batch_decoder is not None:
            if not self.segments:
                return None
            cuts = [(s.block.data, s.block.count, s.lo, s.hi) for s in self.segments]
            return _columns_batch(native_batch_decoder(cuts, self.plan), len(self), self.lay)
        if any(s.rb is None for s in self.segments):
            return None
        parts = [s.rb.slice(s.lo, s.hi - s.lo) for s in self.segments if s.rb is not None]
        if len(parts) == 1:
            return parts[0]
        table = pa.Table.from_batches(parts).combine_chunks()
        return table.to_batches(max_chunksize=len(self))[0]

    def datums(self) -> list[Any]:
        """fastavro's datums of every row (the reference)."""
        out: list[Any] = []
        for s in self.segments:
            out += s.datums()
        return out

    def datums_at(self, at: Sequence[int]) -> list[Any]:
        """fastavro's datums of rows ``at`` (only their blocks are read)."""
        starts, total = [], 0
        for s in self.segments:
            starts.append(total)
            total += s.hi - s.lo
        out = []
        k = 0
        for i in at:
            while k + 1 < len(starts) and starts[k + 1] <= i:
                k += 1
            if i < starts[k]:
                k = 0
                while k + 1 < len(starts) and starts[k + 1] <= i:
                    k += 1
            out.append(self.segments[k].datums()[i - starts[k]])
        return out


def batches(blocks: Iterator[Block], plan: Plan, lay: Layout, batch_size: int) -> Iterator[Batch]:
    """The rows of ``blocks`` in batches of ``batch_size`` (the last may be smaller; a batch
    also closes at a block's end once its blocks hold ``BATCH_BYTES``), decoded natively per
    batch (``Batch.record_batch``; a block cut by a batch's end is read whole by both batches),
    or each block once (``block_batch``) without the batch decoder."""
    whole = native_batch_decoder is not None and native_decoder is not None

    def fresh() -> Batch:
        return Batch([], plan, lay) if whole else Batch()

    pending = fresh()
    room, held = batch_size, 0
    for block in blocks:
        n = block.count
        if n <= 0:
            continue
        rb = None if whole else block_batch(block.data, n, plan, lay)
        held += len(block.data)
        lo = 0
        while lo < n:
            hi = min(n, lo + room)
            pending.segments.append(Segment(block, rb, lo, hi))
            room -= hi - lo
            lo = hi
            # Cut by inflated bytes too: a few KB of deflate per record filled a batch of GBs.
            if room == 0 or (lo == n and held >= BATCH_BYTES):
                yield pending
                pending, room, held = fresh(), batch_size, 0
    if pending.segments:
        yield pending
