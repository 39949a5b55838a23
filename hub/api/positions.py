"""Positions a tenant-limited reader of a shared topic is given: opaque numbers, not offsets.

Tenants share topics, so a partition's offsets count every tenant's records: a reader whose
``event.read`` decision filters rows to its tenant read its own records with their offsets
(the gaps between two of them: how many records other tenants wrote meanwhile) and a
``next_offset`` that was the end of the scanned range (paging to the end: the partition's
whole volume). Such a reader now gets, for each record and for ``next_offset``, a pseudorandom
permutation of the offset (``PositionCodec``): a 6-round Feistel network over 62 bits whose
round function is HMAC-SHA256 under a hub secret, tweaked by the reader's tenant, the topic and
the partition. The numbers keep working as positions (``offset=`` takes them back: a client
that pages with ``next_offset`` is unchanged, and 0 still means the start) but carry no order
and no distance, and another tenant's (or a guessed) number decodes to a random position
(almost surely past the end: nothing). The page is also filled (``read_filled``): records are
scanned until ``limit`` of the reader's own are found (or the end, or a scan budget), so its
size no longer tells how many other records the scanned range held.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Any

_HALF = 31
_MASK = (1 << _HALF) - 1
_ROUNDS = 6
_DOMAIN = 1 << (2 * _HALF)  # offsets 0 .. 2^62 - 2 (stored as offset + 1: 0 is "the start")


class PositionCodec:
    """The permutation of ``[1, 2^62)`` that hides a tenant reader's offsets (module doc)."""

    def __init__(self, secret: bytes) -> None:
        self._mac = hmac.new(secret, b"hub reader positions v1\x00", hashlib.sha256)

    def _rounds(self, tweak: bytes) -> list[Callable[[int], int]]:
        out: list[Callable[[int], int]] = []
        for i in range(_ROUNDS):
            mac = self._mac.copy()
            mac.update(tweak + bytes([i]))

            def f(half: int, mac: Any = mac) -> int:
                m = mac.copy()
                m.update(struct.pack(">I", half))
                return int.from_bytes(m.digest()[:4], "big") & _MASK

            out.append(f)
        return out

    @staticmethod
    def _tweak(tenant: str, topic: str, partition: int) -> bytes:
        return b"\x00".join((tenant.encode(), topic.encode(), str(partition).encode())) + b"\x00"

    def _permute(self, fs: list[Callable[[int], int]], x: int) -> int:
        left, right = x >> _HALF, x & _MASK
        for f in fs:
            left, right = right, left ^ f(right)
        return (left << _HALF) | right

    def _invert(self, fs: list[Callable[[int], int]], y: int) -> int:
        left, right = y >> _HALF, y & _MASK
        for f in reversed(fs):
            left, right = right ^ f(left), left
        return (left << _HALF) | right

    def encoder(self, tenant: str, topic: str, partition: int) -> Callable[[int], int]:
        """offset -> its position for ``tenant`` on ``topic``/``partition`` (never 0)."""
        fs = self._rounds(self._tweak(tenant, topic, partition))

        def encode(offset: int) -> int:
            y = self._permute(fs, offset + 1)
            while y == 0:  # cycle-walk: 0 is kept for "the start"
                y = self._permute(fs, y)
            return y

        return encode

    def decode(self, tenant: str, topic: str, partition: int, position: int) -> int:
        """The offset ``position`` stands for (0: the start); a number this codec did not
        give for this tenant, topic and partition decodes to some random offset."""
        if position == 0:
            return 0
        fs = self._rounds(self._tweak(tenant, topic, partition))
        x = self._invert(fs, position % _DOMAIN)
        while x == 0:
            x = self._invert(fs, x)
        return x - 1


def read_filled(
    read: Callable[[int, int], list[Any]],
    keep: Callable[[Any], dict[str, Any] | None],
    offset: int,
    limit: int,
    budget: int,
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Up to ``limit`` records ``keep`` lets through, read from ``offset`` in chunks
    (``read(offset, n)``: stored records with ``.offset``) until ``limit`` are found, the end,
    or ``budget`` stored records scanned; (offset, record) pairs and the offset to go on from
    (after the last record returned when the page is full, else after the last one scanned)."""
    found: list[tuple[int, dict[str, Any]]] = []
    scanned = 0
    at = offset
    while len(found) < limit and scanned < budget:
        stored = read(at, min(max(limit, 100), budget - scanned))
        if not stored:
            break
        for rec in stored:
            scanned += 1
            at = rec.offset + 1
            shown = keep(rec)
            if shown is not None:
                found.append((rec.offset, shown))
                if len(found) == limit:
                    return found, at
    return found, at


_CODECS: dict[str, PositionCodec] = {}  # the hub's local MAC key file -> its PositionCodec


def codec_of(hub: Any) -> PositionCodec:
    """The hub's ``PositionCodec``: its secret derived from the hub's local MAC key, so every
    process of one hub gives a reader the same positions; made once per key file."""
    key = str(hub.settings.log_key_path)
    codec = _CODECS.get(key)
    if codec is None:
        from hub.derived_secrets import derived_secret

        codec = PositionCodec(derived_secret(hub.settings, b"hub reader positions"))
        _CODECS[key] = codec
    return codec
