"""Batch UUIDv7 event ids: one ``os.urandom`` call and one native pass (or a few numpy passes)
per batch.

Ids are the canonical 36-character text (lowercase hex, dashes) as ASCII bytes, the form the
``ce_id`` header carries. The (millisecond, counter) slots come from
``domain.envelope.reserve_uuid7``, so batch ids and ``uuid7()`` ids share one monotonic sequence.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from domain.envelope import reserve_uuid7

_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))  # hex digits of each 8-4-4-4-12 group
_AT = (0, 9, 14, 19, 24)  # where each group starts in the 36-character text


def _load_native() -> Callable[[int, bytes], list[bytes]] | None:
    """The ids' text in one native pass (native/src/uuid_text.rs); None when not built."""
    try:
        import hub_native
    except ImportError:  # not built: the numpy reference runs
        return None
    return getattr(hub_native, "uuid7_text", None)


native_uuid7_text = _load_native()


def uuid7_bytes(n: int, now_ns: int | None = None) -> list[bytes]:
    """``n`` UUIDv7 ids in increasing order, each as its 36-byte canonical text."""
    if n <= 0:
        return []
    ms0, counter0 = reserve_uuid7(n, now_ns)
    rand = os.urandom(8 * n)
    if native_uuid7_text is not None:
        return native_uuid7_text(ms0 * 4096 + counter0, rand)
    return _uuid7_text_py(ms0 * 4096 + counter0, rand)


def _uuid7_text_py(first: int, rand: bytes) -> list[bytes]:
    """The numpy reference: the ids of slots ``first`` onwards, one per 8 bytes of ``rand``
    (their little-endian u64's low 62 bits are the id's random bits)."""
    n = len(rand) // 8
    slots = np.arange(n, dtype=np.uint64) + np.uint64(first)
    hi = (
        ((slots >> np.uint64(12)) << np.uint64(16)) | np.uint64(0x7000) | (slots & np.uint64(0xFFF))
    )
    lo = (np.frombuffer(rand, dtype="<u8") & np.uint64((1 << 62) - 1)) | np.uint64(0x2 << 62)
    raw = np.empty((n, 2), dtype=">u8")
    raw[:, 0] = hi
    raw[:, 1] = lo
    hexed = np.frombuffer(raw.tobytes().hex().encode(), dtype=np.uint8).reshape(n, 32)
    out = np.full((n, 37), ord("-"), dtype=np.uint8)
    out[:, 36] = ord("\n")  # a separator: bytes.split cuts the ids apart in C
    for (a, b), at in zip(_GROUPS, _AT, strict=True):
        out[:, at : at + b - a] = hexed[:, a:b]
    ids = out.tobytes().split(b"\n")
    ids.pop()  # the empty tail after the last separator
    return ids
