"""Avro container blocks decompressed with a bound (``MAX_BLOCK_BYTES``), not whole.

fastavro inflates each block of an object container file in one call, so a crafted file is a
decompression bomb: a 195 KB deflate block held a 200 MB string (about 1 GB of memory to read
it), and a few MB of file takes the process down. ``install`` puts bounded readers for the
codecs whose library can stop early (deflate, bzip2, xz, zstandard) into fastavro's codec
table (``fastavro.read.BLOCK_READERS``, its extension point for codecs); a block that declares
more bytes than the bound is refused before they are read (the null codec's too), and one that
inflates past it raises ``BlockTooLarge``, which the file reader reports as a refusal of the
file.
snappy and lz4 stay fastavro's: their formats cannot expand more than about 255 times.

Every reader in the table (fastavro's own ones too) is wrapped to tally, per thread, the
blocks read and the bytes they inflate to (``tally``): the file readers cut a batch by those
bytes, not only by its record count (ten 30 MB deflate blocks of 30 KB each, one record each,
were held as one batch: 292 KB of file, 5.7 GB peak RSS), and check each block's record count
against its bytes (a count no block can hold kept a 146-byte file of null records publishing
for ever).
"""

from __future__ import annotations

import bz2
import io
import lzma
import threading
import zlib
from collections.abc import Callable
from typing import Any

MAX_BLOCK_BYTES = 64 * 1_048_576  # Avro writers close a block at 16 KB-1 MB (sync interval)
BATCH_BYTES = 16 * 1_048_576  # a batch of a file closes once its blocks inflated this much


class CorruptBlock(ValueError):
    """An Avro block's framing lies (its record count, its size)."""


class BlockTooLarge(CorruptBlock):
    """An Avro block inflates past ``MAX_BLOCK_BYTES``."""


def _read_long(fo: Any) -> int:
    """Avro's zig-zag varint from a file object."""
    shift = result = 0
    while True:
        byte: bytes = fo.read(1)
        if not byte:
            raise EOFError("the Avro block ends inside its length")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7


def _compressed(source: Any) -> bytes:
    """The block's bytes: fastavro's C reader passes the file, its Python reader a decoder."""
    if hasattr(source, "read_bytes"):
        return bytes(source.read_bytes())
    size = _read_long(source)
    if size > MAX_BLOCK_BYTES:  # read(size) allocates it first: 40 GB raised a bare MemoryError
        raise BlockTooLarge(
            f"a block declares {size} bytes, more than {MAX_BLOCK_BYTES} (its size lies, or it "
            "is far larger than Avro writers make): write it with smaller blocks"
        )
    data = source.read(size) if size >= 0 else b""
    if size < 0 or len(data) != size:
        raise EOFError(f"the Avro block declares {size} bytes and {len(data)} follow")
    return bytes(data)


def _bounded(codec: str, inflate: Callable[[bytes, int], bytes]) -> Callable[[Any], io.BytesIO]:
    def read_block(source: Any) -> io.BytesIO:
        out = inflate(_compressed(source), MAX_BLOCK_BYTES + 1)
        if len(out) > MAX_BLOCK_BYTES:
            raise BlockTooLarge(
                f"a {codec} block inflates to more than {MAX_BLOCK_BYTES} bytes (a decompression "
                "bomb, or blocks far larger than Avro writers make): write it with smaller blocks"
            )
        return io.BytesIO(out)

    return read_block


def _zstd(data: bytes, limit: int) -> bytes:
    import zstandard

    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
        return bytes(reader.read(limit))


READERS: dict[str, Callable[[Any], io.BytesIO]] = {
    "null": lambda source: io.BytesIO(_compressed(source)),
    "deflate": _bounded("deflate", lambda d, n: zlib.decompressobj(-15).decompress(d, n)),
    "bzip2": _bounded("bzip2", lambda d, n: bz2.BZ2Decompressor().decompress(d, n)),
    "xz": _bounded("xz", lambda d, n: lzma.LZMADecompressor().decompress(d, n)),
    "zstandard": _bounded("zstandard", _zstd),
}


class Tally(threading.local):
    """The blocks this thread read (``blocks``), the bytes the last one inflated to (``last``)
    and the bytes of all of them (``total``)."""

    def __init__(self) -> None:
        self.blocks = self.last = self.total = 0


tally = Tally()


def _counted(read_block: Callable[[Any], io.BytesIO]) -> Callable[[Any], io.BytesIO]:
    def read_counted(source: Any) -> io.BytesIO:
        out = read_block(source)
        size = out.getbuffer().nbytes
        tally.blocks += 1
        tally.last = size
        tally.total += size
        return out

    read_counted.hub_counted = True  # type: ignore[attr-defined]
    return read_counted


def install() -> None:
    """Put the bounded readers into fastavro's codec table (zstandard only when its library is
    installed, else fastavro's own "missing library" error stays), every reader counted by
    ``tally`` (idempotent)."""
    from fastavro.read import BLOCK_READERS

    try:
        import zstandard  # noqa: F401
    except ImportError:
        readers = {k: v for k, v in READERS.items() if k != "zstandard"}
    else:
        readers = dict(READERS)
    for codec, read_block in list(BLOCK_READERS.items()):
        if not getattr(read_block, "hub_counted", False):
            BLOCK_READERS[codec] = _counted(readers.get(codec, read_block))


class BlockChecker:
    """Checks, datum by datum as a reader yields them, that each block of a file held as many
    records as it can: at most one per inflated byte (an Avro record of a schema that holds
    data takes at least one byte) and at least one (writers never write an empty block; a count
    of 0 or below was read as none, silently dropping the block's bytes)."""

    def __init__(self) -> None:
        self.start = self.current = tally.blocks
        self.in_block = 0

    def datum(self) -> None:
        """One datum was read (after its block, counted by ``tally``)."""
        if tally.blocks != self.current:
            self._none_between(tally.blocks - 1)
            self.current, self.in_block = tally.blocks, 0
        self.in_block += 1
        if self.in_block > tally.last:
            raise CorruptBlock(
                f"block {self.current - self.start} declares more records than its "
                f"{tally.last} bytes can hold (a record takes at least one byte; a schema whose "
                "records hold no data cannot be published from a file)"
            )

    def finish(self) -> None:
        """The reader ended: no block after the last datum's was empty."""
        self._none_between(tally.blocks)

    def _none_between(self, upto: int) -> None:
        if upto > self.current:
            raise CorruptBlock(
                f"block {self.current + 1 - self.start} declares no records (a count of 0 or "
                "below): its bytes would be dropped unread"
            )
