"""Per-partition seals: how records written before record MACs stay readable, and nothing else.

A Kafka deployment written before session 15 holds records on the hub's own topics (``hub.*``,
``_*``) without the ``__hub.mac`` header (``auth``); the upgraded hub refuses them. ``hub migrate
kafka-seal`` checks each such record (against its ledger leaf where the ledger covers it), has a
second person approve the plan's digest, and then writes one *seal* per partition that held
unsealed records, to the internal compacted topic ``_hub_seals`` (through the log, so each seal
record carries the hub's MAC like any other record there):

    topic, partition, ``sealed_from`` N, the approved plan's digest, and for every record below
    N that had no valid MAC, its offset and ``seal_digest`` (SHA-256 over the topic, partition,
    OFFSET, timestamp, key, value and headers).

Reading (``KafkaEventLog``): a hub-topic record without a valid MAC is accepted only when its
partition's seal lists its offset, the offset is below N, and its ``seal_digest`` matches. So:

- a record produced after the migration lands at or above N (Kafka only appends) and needs a
  MAC, as on a deployment that never had unsealed records;
- a record put below N later (the topic deleted and re-created with other contents: the only way
  to get a record at an old offset) fails its digest, which binds the offset as well; a genuine
  old record copied again lands above N and is refused;
- the seal itself cannot be forged or moved without the MAC key (it is a MAC'd record of a ``_``
  topic; its key names its topic and partition and the value repeats them).

Why a seal and not copying the old records into new sealed topics: the ledger's leaves name
(topic, partition, offset); copies would get other offsets, so every proof, evidence pack and
cut recorded against the old ones would no longer find its record. A seal leaves every record
where it is. It costs 32 bytes of digest per old record, loaded once per log instance, and only
when an unsealed record is read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Final

from core.ports.eventlog import StoredRecord

SEALS_TOPIC: Final = "_hub_seals"
CHUNK: Final = 20_000  # digests per seal record: ~1 MB of JSON, far below the 16 MiB cap

_LABEL: Final = b"hub.kafka.seal.v1\n"
_LEN = struct.Struct(">q")
_POS = struct.Struct(">Iqq")  # partition, offset, timestamp


def _field(b: bytes | None) -> bytes:
    return _LEN.pack(-1) if b is None else _LEN.pack(len(b)) + b


def seal_digest(r: StoredRecord) -> bytes:
    """SHA-256 of a stored record with its offset (every header as stored, none stripped)."""
    parts = [
        _LABEL,
        _field(r.topic.encode()),
        _POS.pack(r.partition, r.offset, r.timestamp_ms),
        _field(r.key),
        _field(r.value),
    ]
    for name, v in r.headers:
        parts.append(_field(name.encode()))
        parts.append(_field(v))
    return hashlib.sha256(b"".join(parts)).digest()


class Digests(Mapping[int, bytes]):
    """A seal's digests as read: sorted offsets (``array('q')``) and one blob of 32-byte
    digests, ~40 bytes a record where a dict of ``bytes`` takes ~130 (a seal may cover every old
    record of a data topic)."""

    def __init__(self, offsets: array[int], blob: bytes) -> None:
        self._offsets = offsets
        self._blob = blob

    def __getitem__(self, offset: int) -> bytes:
        offsets = self._offsets
        i = offset - offsets[0] if offsets else -1  # dense offsets (the usual case): no search
        if not 0 <= i < len(offsets) or offsets[i] != offset:
            i = bisect_left(offsets, offset)  # gaps: transaction markers, compaction
            if i == len(offsets) or offsets[i] != offset:
                raise KeyError(offset)
        return self._blob[32 * i : 32 * (i + 1)]

    def __iter__(self) -> Iterator[int]:
        return iter(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets)


@dataclass
class PartitionSeal:
    """One partition's seal: the offsets below ``sealed_from`` that may lack a MAC, each with
    the ``seal_digest`` its record must have."""

    topic: str
    partition: int
    sealed_from: int
    plan: str  # the approved plan's SHA-256 (hex): which approval this seal carries out
    digests: Mapping[int, bytes] = field(default_factory=dict)

    def vouches(self, r: StoredRecord) -> bool:
        want = self.digests.get(r.offset)
        return (
            r.topic == self.topic
            and r.partition == self.partition
            and r.offset < self.sealed_from
            and want is not None
            and want == seal_digest(r)
        )

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        """The (key, value) of the seal records that store this seal, ``CHUNK`` offsets each."""
        offsets = sorted(self.digests)
        chunks = [offsets[i : i + CHUNK] for i in range(0, len(offsets), CHUNK)] or [[]]
        for i, chunk in enumerate(chunks):
            body = {
                "topic": self.topic,
                "partition": self.partition,
                "sealed_from": self.sealed_from,
                "plan": self.plan,
                "chunk": i,
                "chunks": len(chunks),
                "offsets": chunk,
                "digests": base64.b64encode(b"".join(self.digests[o] for o in chunk)).decode(),
            }
            key = json.dumps([self.topic, self.partition, i]).encode()
            yield key, json.dumps(body, sort_keys=True).encode()


class SealCorrupt(ValueError):
    """A seal record that does not parse or does not agree with its key or its other chunks."""


def fold_seals(records: Iterable[StoredRecord]) -> dict[tuple[str, int], PartitionSeal]:
    """The seals the records of ``_hub_seals`` (MAC-checked already) hold, by (topic, partition).

    The latest seal of a partition wins (a later migration re-seals with a higher N); its chunks
    must all carry the same ``sealed_from`` and plan, or ``SealCorrupt``."""
    latest: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for r in records:
        if r.key is None or r.value is None:
            continue
        try:
            topic, partition, chunk = json.loads(r.key)
            body = json.loads(r.value)
            if [body["topic"], body["partition"], body["chunk"]] != [topic, partition, chunk]:
                raise SealCorrupt(f"its key {r.key!r} names another partition or chunk")
        except (ValueError, KeyError, TypeError) as exc:
            raise SealCorrupt(
                f"The seal record at {SEALS_TOPIC!r} offset {r.offset} is malformed ({exc})."
            ) from exc
        chunks = latest.setdefault((topic, partition), {})
        first = next(iter(chunks.values()), None)
        if first is not None and (first["sealed_from"], first["plan"]) != (
            body["sealed_from"],
            body["plan"],
        ):
            chunks.clear()  # a newer seal of the partition: its chunks replace the older ones
        chunks[chunk] = body
    out: dict[tuple[str, int], PartitionSeal] = {}
    for (topic, partition), chunks in latest.items():
        bodies = [chunks[i] for i in sorted(chunks)]
        if [b["chunk"] for b in bodies] != list(range(int(bodies[0]["chunks"]))):
            raise SealCorrupt(
                f"The seal of {topic!r} partition {partition} lacks chunks (has "
                f"{sorted(chunks)} of {bodies[0]['chunks']}): run `hub migrate kafka-seal` again."
            )
        all_offsets: array[int] = array("q")
        blobs: list[bytes] = []
        for b in bodies:
            offsets: Sequence[int] = b["offsets"]
            raw = base64.b64decode(str(b["digests"]))
            if len(raw) != 32 * len(offsets):
                raise SealCorrupt(
                    f"The seal of {topic!r} partition {partition} chunk {b['chunk']} holds "
                    f"{len(raw)} digest bytes for {len(offsets)} offsets."
                )
            all_offsets.extend(int(o) for o in offsets)
            blobs.append(raw)
        if any(b <= a for a, b in pairwise(all_offsets)):
            raise SealCorrupt(
                f"The seal of {topic!r} partition {partition} lists offsets out of order."
            )
        out[(topic, partition)] = PartitionSeal(
            topic,
            partition,
            int(bodies[0]["sealed_from"]),
            str(bodies[0]["plan"]),
            Digests(all_offsets, b"".join(blobs)),
        )
    return out
