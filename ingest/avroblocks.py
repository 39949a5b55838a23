"""Avro container blocks decompressed with a bound (``MAX_BLOCK_BYTES``), not whole.

fastavro inflates each block of an object container file in one call, so a crafted file is a
decompression bomb: a 195 KB deflate block held a 200 MB string (about 1 GB of memory to read
it), and a few MB of file takes the process down. ``install`` puts bounded readers for the
codecs whose library can stop early (deflate, bzip2, xz, zstandard) into fastavro's codec table
(``fastavro.read.BLOCK_READERS``, its extension point for codecs); a block that inflates past
the bound raises ``BlockTooLarge``, which the file reader reports as a refusal of the file.
snappy and lz4 stay fastavro's: their formats cannot expand more than about 255 times.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from typing import Any

MAX_BLOCK_BYTES = 64 * 1_048_576  # Avro writers close a block at 16 KB-1 MB (sync interval)


class BlockTooLarge(ValueError):
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
    "deflate": _bounded("deflate", lambda d, n: zlib.decompressobj(-15).decompress(d, n)),
    "bzip2": _bounded("bzip2", lambda d, n: bz2.BZ2Decompressor().decompress(d, n)),
    "xz": _bounded("xz", lambda d, n: lzma.LZMADecompressor().decompress(d, n)),
    "zstandard": _bounded("zstandard", _zstd),
}


def install() -> None:
    """Put the bounded readers into fastavro's codec table (idempotent; zstandard only when
    its library is installed, else fastavro's own "missing library" error stays)."""
    from fastavro.read import BLOCK_READERS

    try:
        import zstandard  # noqa: F401
    except ImportError:
        BLOCK_READERS.update({k: v for k, v in READERS.items() if k != "zstandard"})
    else:
        BLOCK_READERS.update(READERS)
