"""The ledger's leaf input encoding, version 1: what one Merkle leaf commits to. Stdlib only.

Every record of the event log gets one leaf. Its *leaf input* (the bytes hashed as
``SHA-256(0x00 || input)`` by :func:`audit.merkle.leaf_hash`) is this unambiguous, versioned,
length-prefixed encoding (all integers big-endian)::

    u8      version                      0x01
    u16     len(topic)  || topic         UTF-8
    u32     partition
    u64     offset
    i64     timestamp_ms                 the log's timestamp of the record
    u8      key flag                     0x00: no key (None); 0x01: followed by SHA-256(key)
    [32]    SHA-256(key)
    u32     header count, then per header, in stored order:
              u16 len(name) || name (UTF-8)   u32 len(value) || value
    u8      value flag                   0x00: tombstone (None); 0x01: followed by SHA-256(value)
    [32]    SHA-256(value)

Why digests: a record's key and value may be personal data. The leaf commits to their SHA-256
only, so crypto-shredding (destroying a payload's key) or publishing a leaf in an evidence pack
reveals nothing, and the tree stays valid. ``None`` and ``b""`` differ (flag 0 vs flag 1 with
the digest of the empty string). Headers are committed verbatim: they are envelope metadata
(event id, type, time, producer, tenant), which is what an auditor needs to read.

Contract: :func:`encode` MUST be a pure function of its arguments; any change of layout MUST
bump the version byte (old leaves keep verifying under their version).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

__all__ = ["VERSION", "LeafError", "decode", "encode", "encode_digests"]

VERSION = 1
_HEAD = struct.Struct(">BH")
_POS = struct.Struct(">IQq")
_U32 = struct.Struct(">I")
_PAIR = struct.Struct(">H")
_sha256 = hashlib.sha256
_ABSENT = b"\x00"
_PRESENT = b"\x01"


class LeafError(ValueError):
    """The fields cannot be encoded, or bytes are not a valid version-1 leaf input."""


def _pair(name: str, value: bytes) -> bytes:
    n = name.encode()
    if len(n) > 0xFFFF or len(value) > 0xFFFFFFFF:
        raise LeafError(f"header {name[:40]!r} is too long to encode.")
    return _PAIR.pack(len(n)) + n + _U32.pack(len(value)) + value


def encode_digests(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key_sha256: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    value_sha256: bytes | None,
) -> bytes:
    """The leaf input from digests (what an evidence pack carries instead of key and value)."""
    t = topic.encode()
    if len(t) > 0xFFFF:
        raise LeafError(f"topic name is {len(t)} bytes; at most 65535 can be encoded.")
    for what, d in (("key", key_sha256), ("value", value_sha256)):
        if d is not None and len(d) != 32:
            raise LeafError(f"{what} digest must be 32 bytes, got {len(d)}.")
    try:
        pos = _POS.pack(partition, offset, timestamp_ms)
    except struct.error as exc:
        raise LeafError(
            f"partition {partition}, offset {offset} or timestamp {timestamp_ms} is out of range."
        ) from exc
    return b"".join(
        (
            _HEAD.pack(VERSION, len(t)),
            t,
            pos,
            _ABSENT if key_sha256 is None else _PRESENT + key_sha256,
            _U32.pack(len(headers)),
            *[_pair(k, v) for k, v in headers],
            _ABSENT if value_sha256 is None else _PRESENT + value_sha256,
        )
    )


def encode(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    value: bytes | None,
) -> bytes:
    """The leaf input of a stored record (key and value are hashed here)."""
    return encode_digests(
        topic,
        partition,
        offset,
        timestamp_ms,
        None if key is None else _sha256(key).digest(),
        headers,
        None if value is None else _sha256(value).digest(),
    )


def decode(
    data: bytes,
) -> tuple[str, int, int, int, bytes | None, tuple[tuple[str, bytes], ...], bytes | None]:
    """Parse a leaf input back into its fields (digests for key and value); strict.

    Raises ``LeafError`` on any trailing byte, truncation or unknown version.
    """
    try:
        version, tlen = _HEAD.unpack_from(data, 0)
        if version != VERSION:
            raise LeafError(f"leaf input version {version} is unknown (this verifier reads 1).")
        pos = _HEAD.size
        topic = data[pos : pos + tlen].decode()
        pos += tlen
        partition, offset, ts = _POS.unpack_from(data, pos)
        pos += _POS.size

        def digest() -> bytes | None:
            nonlocal pos
            flag = data[pos]
            pos += 1
            if flag == 0:
                return None
            if flag != 1 or pos + 32 > len(data):
                raise LeafError(f"bad digest flag {flag} or truncated digest at byte {pos - 1}.")
            pos += 32
            return bytes(data[pos - 32 : pos])

        key = digest()
        (count,) = _U32.unpack_from(data, pos)
        pos += 4
        headers = []
        for _ in range(count):
            (nlen,) = _PAIR.unpack_from(data, pos)
            name = data[pos + 2 : pos + 2 + nlen].decode()
            pos += 2 + nlen
            (vlen,) = _U32.unpack_from(data, pos)
            value = bytes(data[pos + 4 : pos + 4 + vlen])
            if len(value) != vlen:
                raise LeafError("header value is truncated.")
            pos += 4 + vlen
            headers.append((name, value))
        val = digest()
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise LeafError(f"leaf input is truncated or malformed: {exc}.") from exc
    if pos != len(data):
        raise LeafError(f"leaf input has {len(data) - pos} trailing bytes.")
    return topic, partition, offset, ts, key, tuple(headers), val
