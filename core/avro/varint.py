"""Avro's variable-length integers: zig-zag, then seven bits a byte, low bits first."""

from __future__ import annotations

_TWO = [bytes([(z & 0x7F) | 0x80, z >> 7]) for z in range(128, 16384)]  # two-byte varints


def zigzag(v: int) -> int:
    """``v`` (a signed 64-bit integer) zig-zag encoded: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ..."""
    return (v << 1) ^ (v >> 63)


def varint(z: int) -> bytes:
    """The Avro varint of ``z``, a zig-zag encoded (non-negative) integer."""
    if z < 0x80:
        return bytes((z,))
    if z < 16384:
        return _TWO[z - 128]
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)
