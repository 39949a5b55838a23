"""The embedded log's authentication: HMAC-SHA256 chain links per stored batch, a seal per partition
and a MAC per topic (see ``adapters.sqlite_log`` for what they prove)."""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from typing import Final

from core.ports.eventlog import LogProblem

# -- authentication (see the module docstring) ----------------------------------------------------
ZERO_MAC: Final = bytes(32)
_MAC_BATCH = struct.Struct(">IqqIq")  # partition, base, last, count, max timestamp
_MAC_PART = struct.Struct(">Iqq")  # partition, start, next
MIN_MAC_KEY_BYTES: Final = 16


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.digest(key, b"".join(parts), "sha256")


def batch_mac(
    key: bytes,
    topic: str,
    row: tuple[int, int, int, int, int],
    prev: bytes,
    blob: bytes,
) -> bytes:
    """The chain link of a stored batch: ``row`` = (partition, base, last, count, max ts)."""
    mac = hmac.new(key, b"hub.log.batch.v1\n" + topic.encode() + b"\n", "sha256")
    mac.update(_MAC_BATCH.pack(*row) + prev)
    mac.update(blob)  # not joined: no copy of up to 8 MiB
    return mac.digest()


def partition_seal(
    key: bytes, topic: str, part: int, start: int, end: int, anchor: bytes, head: bytes
) -> bytes:
    """The seal of a partition's bounds and chain ends."""
    return _mac(
        key,
        b"hub.log.partition.v1\n",
        topic.encode(),
        b"\n",
        _MAC_PART.pack(part, start, end),
        anchor,
        head,
    )


def topic_mac(key: bytes, name: str, partitions: int, config: str) -> bytes:
    return _mac(
        key,
        b"hub.log.topic.v1\n",
        name.encode(),
        b"\n",
        str(partitions).encode(),
        b"\n",
        config.encode(),
    )


StoredRow = tuple[int, int, int, int, bytes | None, bytes]
"""A stored batch as its MAC covers it: (base, last offset, count, max timestamp, MAC, bytes)."""


@dataclass(frozen=True, slots=True)
class ReadChain:
    """What an authenticated ``read_encoded`` took in the same snapshot as its batches
    (``EncodedColumns.auth``), so that ``check_records`` authenticates the bytes read without
    reading them again: the offset asked, each batch read as stored, the MAC before the first
    one (the partition's anchor when none), and the partition's bounds row (start offset,
    next offset, anchor, head, seal)."""

    asked: int
    rows: tuple[StoredRow, ...]
    prev: bytes
    bounds: tuple[int, int, bytes | None, bytes | None, bytes | None]

    @property
    def reached(self) -> int:
        """One past the last record of the last batch read (``asked`` when none was)."""
        if not self.rows:
            return self.asked
        base, _last, count = self.rows[-1][:3]
        return base + count


def unsealed(name: str, part: int) -> LogProblem:
    return LogProblem(
        name,
        part,
        None,
        "the partition carries no seal: it was written without the log key, or its seal was "
        "removed.",
    )


def bad_batch(name: str, part: int, base: int, count: int) -> LogProblem:
    return LogProblem(
        name,
        part,
        base,
        f"the stored batch of {count} records fails its MAC: its bytes, offsets or timestamps "
        "were changed, it was forged, duplicated or moved, or the batch before it was removed.",
    )


def bad_seal(name: str, part: int, start: int, end: int) -> LogProblem:
    return LogProblem(
        name,
        part,
        start,
        f"the partition's bounds (start offset {start}, end offset {end}) or chain ends fail "
        "their seal: they were changed without the log key (a start offset raised or records "
        "removed outside retention, an end offset moved).",
    )


def bad_head(name: str, part: int, end: int) -> LogProblem:
    return LogProblem(
        name,
        part,
        end,
        "the partition's last stored batch is not the chain head its seal names: batches were "
        "removed from its end.",
    )
