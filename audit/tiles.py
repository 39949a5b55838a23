"""C2SP tlog-tiles (c2sp.org/tlog-tiles): tile paths and entry bundles. Stdlib only.

A log of ``size`` leaves is published as:

- ``checkpoint``: the signed checkpoint note (``audit.note``).
- ``tile/<L>/<N>[.p/<W>]``: hash tile N of tile level L, the hashes of tree level ``8 * L``,
  nodes ``[N * 256, N * 256 + W)``, 32 bytes each back to back; a full tile (W = 256) has no
  ``.p/<W>`` suffix and never changes, a partial tile (1 <= W < 256) is the right edge.
- ``tile/entries/<N>[.p/<W>]``: entry bundle N, the entries (leaf inputs) of leaves
  ``[N * 256, N * 256 + W)``, each as a big-endian uint16 length then the bytes.

``N`` is written in groups of three decimal digits, every group but the last prefixed ``x``:
1234067 -> ``x001/x234/067``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePath",
    "decode_bundle",
    "encode_bundle",
    "encode_tile_index",
    "parse_tile_index",
    "parse_tile_path",
    "tile_path",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
_U16 = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class TilePath:
    """A parsed tile path: ``level`` None for an entry bundle; ``width`` 256 when full."""

    level: int | None
    index: int
    width: int

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH


def encode_tile_index(n: int) -> str:
    """``1234067`` -> ``x001/x234/067``."""
    if n < 0:
        raise ValueError(f"a tile index is not negative (got {n}).")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def parse_tile_index(parts: Sequence[str]) -> int:
    """``["x001", "x234", "067"]`` -> ``1234067``; ValueError when not in canonical form."""
    if not parts:
        raise ValueError("a tile index needs at least one path element.")
    n = 0
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if not last and not part.startswith("x"):
            raise ValueError(f"tile index element {part!r} is not of the form xNNN.")
        digits = part if last else part[1:]
        if len(digits) != 3 or not (digits.isascii() and digits.isdigit()):
            raise ValueError(f"tile index element {part!r} is not three decimal digits.")
        n = n * 1000 + int(digits)
    if len(parts) > 1 and parts[0] == "x000":
        raise ValueError("a tile index has no leading x000 element.")
    return n


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """The path of hash tile ``(level, index)`` (entry bundle when ``level`` is None)."""
    head = "tile/entries" if level is None else f"tile/{level}"
    tail = "" if width == TILE_WIDTH else f".p/{width}"
    return f"{head}/{encode_tile_index(index)}{tail}"


def parse_tile_path(path: str) -> TilePath:
    """Parse ``<L>/<N>[.p/<W>]`` or ``entries/<N>[.p/<W>]`` (the part after ``tile/``)."""
    parts = path.split("/")
    if len(parts) < 2:
        raise ValueError(f"tile path {path!r} needs a level (or 'entries') and an index.")
    width = TILE_WIDTH
    if len(parts) >= 3 and parts[-2].endswith(".p"):
        w = parts[-1]
        if not (w.isascii() and w.isdigit()) or w.startswith("0") or not 1 <= int(w) < 256:
            raise ValueError(f"partial width {w!r} in {path!r} is not a number from 1 to 255.")
        width = int(w)
        parts = [*parts[:-2], parts[-2][:-2]]
    head = parts[0]
    level: int | None
    if head == "entries":
        level = None
    elif head.isascii() and head.isdigit() and (head == "0" or not head.startswith("0")):
        level = int(head)
        if level > 63:
            raise ValueError(f"tile level {level} in {path!r} is above 63.")
    else:
        raise ValueError(f"tile level {head!r} in {path!r} is neither a number nor 'entries'.")
    return TilePath(level, parse_tile_index(parts[1:]), width)


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length then its bytes."""
    out: list[bytes] = []
    for e in entries:
        if len(e) > 0xFFFF:
            raise ValueError(f"an entry of {len(e)} bytes does not fit an entry bundle (65535).")
        out += (_U16.pack(len(e)), e)
    return b"".join(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; ValueError when it is truncated."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("an entry bundle ends inside a length prefix.")
        (n,) = _U16.unpack_from(data, pos)
        if pos + 2 + n > len(data):
            raise ValueError("an entry bundle ends inside an entry.")
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return out
