"""The cold tier: closed log segments offloaded to the object store, read back transparently.

As Kafka's tiered storage does, the hot log keeps recent records and the object store keeps
closed segments: runs of ``segment_records`` consecutive offsets of one partition, as stored
(key, value, headers and timestamp bytes unchanged, so their ledger leaves still match), with
the ledger leaf range that covers them. ``TieredEventLog`` wraps any EventLog: a read below the
hot log's beginning offset is served from the cold segments, so a consumer, ``hub tail`` and a
projection rebuild read past the hot retention without knowing it.

Objects (write-once; the index entry is written after its segment, so a segment without an
entry is never read, and a crash between the two is redone by the next offload):
    tier/<topic>/<partition>/<base offset, 20 digits>.seg    the records (format below)
    tier/<topic>/<partition>/<base offset, 20 digits>.json   base, end, count, bytes, SHA-256,
                                                             first and last ledger leaf

Who vouches for a segment: the ledger, not the store. The index entry and its SHA-256 sit in the
same object store as the segment, so whoever can write one can write both; the SHA-256 check only
catches damage. With the ledger's store given (``leaves``, as the composition root does), every
fetched segment is also checked record by record against the ledger before any record of it is
served (``ColdTier._authenticate``): each record's leaf hash MUST equal the stored leaf of its
(topic, partition, offset), and every offset of the segment's range that has a leaf MUST be in
it, once and in order. A record changed, added, dropped or repeated in the store fails naming the
object, as a damaged byte does.

Segment format: ``HUBSEG1\\n``, then per record: offset, timestamp (8-byte signed big-endian
each), key and value (4-byte length, -1 for None, then bytes), header count (2 bytes), and per
header its name and value (2- and 4-byte lengths). A segment's SHA-256 is checked on every
fetch: a changed byte fails naming the object.

Steps of ``offload`` per partition:
1. start at the end of the last offloaded segment (or the hot beginning offset);
2. only closed segments go: ``segment_records`` offsets that are all below the end offset and
   whose records all carry ledger leaves (the ledger synced first), so the active tail stays hot;
3. write the segment, then its index entry.
Retention then removes hot records (``delete_records_before``) as before; reads below the hot
beginning are served from the cold segments. Removing cold segments is ``trim_cold`` (by the
same retention policy's cut, recorded on the ledger by the caller), never an overwrite.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import chain, pairwise

from audit.leaf import encode as leaf_input
from audit.merkle import leaf_hash
from core.errors import HubError
from core.ports.eventlog import (
    ColumnBatch,
    EncodedColumns,
    EventLog,
    IdempotenceKey,
    LogProblem,
    Record,
    RecordColumns,
    RecordMetadata,
    StoredRecord,
    TopicInfo,
    TopicPartition,
    Transaction,
)
from core.ports.ledgerstore import LedgerStore
from core.ports.objectstore import ObjectNotFound, ObjectStore, ObjectTooLarge

MAGIC = b"HUBSEG1\n"
PREFIX = "tier/"
_Q = struct.Struct(">qq")
_I = struct.Struct(">i")
_H = struct.Struct(">H")
HASH_BYTES = 32  # a leaf hash (SHA-256)
MAX_ENTRY_BYTES = 64 << 10  # an index entry: nine short fields
LeafHasher = Callable[[Sequence[StoredRecord]], list[bytes]]


class ColdTierCorrupt(HubError):
    code = "cold_tier_corrupt"


@dataclass(frozen=True)
class SegmentInfo:
    topic: str
    partition: int
    base: int  # first offset the segment spans
    end: int  # one past the last offset it spans
    count: int  # records in it (marker offsets are not records)
    bytes: int
    sha256: str
    leaf_first: int | None
    leaf_last: int | None

    @property
    def key(self) -> str:
        return segment_key(self.topic, self.partition, self.base)

    def as_dict(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "base": self.base,
            "end": self.end,
            "count": self.count,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "leaf_first": self.leaf_first,
            "leaf_last": self.leaf_last,
        }


def segment_key(topic: str, partition: int, base: int, ext: str = "seg") -> str:
    return f"{PREFIX}{topic}/{partition}/{base:020d}.{ext}"


def encode_segment(records: Sequence[StoredRecord]) -> bytes:
    out = [MAGIC]
    for r in records:
        out.append(_Q.pack(r.offset, r.timestamp_ms))
        for part in (r.key, r.value):
            if part is None:
                out.append(_I.pack(-1))
            else:
                out.append(_I.pack(len(part)))
                out.append(part)
        out.append(_H.pack(len(r.headers)))
        for name, value in r.headers:
            raw = name.encode()
            out.append(_H.pack(len(raw)) + raw + _I.pack(len(value)) + value)
    return b"".join(out)


def decode_segment(data: bytes, topic: str, partition: int) -> list[StoredRecord]:
    if not data.startswith(MAGIC):
        raise ValueError("not a hub log segment")
    pos, out = len(MAGIC), []
    while pos < len(data):
        offset, ts = _Q.unpack_from(data, pos)
        pos += _Q.size
        parts: list[bytes | None] = []
        for _ in range(2):
            (n,) = _I.unpack_from(data, pos)
            pos += _I.size
            if n < 0:
                parts.append(None)
            else:
                parts.append(data[pos : pos + n])
                pos += n
        (hn,) = _H.unpack_from(data, pos)
        pos += _H.size
        headers = []
        for _ in range(hn):
            (ln,) = _H.unpack_from(data, pos)
            pos += _H.size
            name = data[pos : pos + ln].decode()
            pos += ln
            (vn,) = _I.unpack_from(data, pos)
            pos += _I.size
            headers.append((name, data[pos : pos + vn]))
            pos += vn
        out.append(StoredRecord(topic, partition, offset, ts, parts[0], parts[1], tuple(headers)))
    return out


class ColdTier:
    """Segments of the cold tier in one ObjectStore; thread-safe reads with a small cache."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        cache_segments: int = 4,
        leaves: LedgerStore | None = None,
        leaf_hashes: LeafHasher | None = None,
    ) -> None:
        """``leaves``: the ledger's store, which every fetched segment is checked against (see
        the module docstring); None only where nothing is read back (offload and trim).
        ``leaf_hashes``: the leaf hashes of a run of records, exactly ``audit.leaf``'s (the
        ledger's batch encoder, as the composition root gives); default the reference."""
        self.store = store
        self._leaves = leaves
        self._leaf_hashes = leaf_hashes or _reference_leaf_hashes
        self._lock = threading.Lock()
        self._index: dict[tuple[str, int], list[SegmentInfo]] = {}
        self._cache: OrderedDict[str, list[StoredRecord]] = OrderedDict()
        self._cache_limit = cache_segments
        self._cuts: Callable[[str, int], int] | None = None
        self._trimmed: dict[tuple[str, int], int] = {}

    def vouch_starts(self, cuts: Callable[[str, int], int]) -> None:
        """Where the ledger says each partition's cold records begin (``cuts(topic, partition)``:
        the last retention cut of both tiers it records), set by the composition root once the
        ledger is built. Until then (and in any tier without it) a tier that checks against
        the ledger starts at 0: it serves, or fails on, more, never less."""
        self._cuts = cuts

    # -- index ------------------------------------------------------------------------------
    def segments(self, topic: str, partition: int, *, refresh: bool = False) -> list[SegmentInfo]:
        """The partition's offloaded segments by base offset (an entry means complete)."""
        with self._lock:
            got = self._index.get((topic, partition))
        if got is not None and not refresh:
            return got
        infos = []
        for key in self.store.list(f"{PREFIX}{topic}/{partition}/"):
            if key.endswith(".json"):
                try:
                    d = json.loads(b"".join(self.store.stream(key, max_bytes=MAX_ENTRY_BYTES)))
                    info = SegmentInfo(
                        topic,
                        partition,
                        int(d["base"]),
                        int(d["end"]),
                        int(d["count"]),
                        int(d["bytes"]),
                        str(d["sha256"]),
                        d.get("leaf_first"),
                        d.get("leaf_last"),
                    )
                except ObjectNotFound:
                    continue  # trimmed meanwhile
                except (ObjectTooLarge, ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise ColdTierCorrupt(
                        f"The cold tier index entry {key} is not readable ({exc}): it was "
                        "changed in the object store. Restore it from a copy of the store."
                    ) from None
                if key != segment_key(topic, partition, info.base, "json"):
                    raise ColdTierCorrupt(
                        f"The cold tier index entry {key} names base offset {info.base}, not "
                        "its own: it was changed in the object store."
                    )
                infos.append(info)
        infos.sort(key=lambda s: s.base)
        with self._lock:
            self._index[(topic, partition)] = infos
        return infos

    def cold_start(self, topic: str, partition: int) -> int:
        """The store's start marker: retention's last cut of the cold tier (0 if none). Anyone
        who writes the store can write one, so reads checked against the ledger start at
        ``_start`` instead; the marker serves ``trim`` and the unchecked tier."""
        marks = self.store.list(f"{PREFIX}{topic}/{partition}/start-")
        return max((int(k.rsplit("-", 1)[1]) for k in marks), default=0)

    def _start(self, topic: str, partition: int) -> int:
        """Where reads of the partition begin: the store's marker without the ledger; with it,
        the ledger's last both-tier cut (``vouch_starts``) or this process's own later trim
        (its entry is not on the ledger until the next sync), never the store's say-so."""
        if self._leaves is None:
            return self.cold_start(topic, partition)
        cut = self._cuts(topic, partition) if self._cuts is not None else 0
        with self._lock:
            return max(cut, self._trimmed.get((topic, partition), 0))

    def cold_range(self, topic: str, partition: int) -> tuple[int, int] | None:
        """(first offset, end offset) the cold tier holds for the partition, or None. Checked
        against the ledger, the first offset is ``_start`` even when the store's first segment
        begins later (segments dropped from the store): readers start there and the read
        fails naming the missing records, rather than skipping them."""
        segs = self.segments(topic, partition)
        if not segs:
            return None
        start = self._start(topic, partition)
        if self._leaves is None:
            start = max(segs[0].base, start)
        return (start, segs[-1].end) if start < segs[-1].end else None

    def trim(self, topic: str, partition: int, offset: int) -> int:
        """Retention on the cold tier: nothing below ``offset`` is read again; segments wholly
        below it are deleted (their index entry first). Returns the segments deleted. The
        segments are looked at even when the store's marker is already past ``offset``: a
        marker planted there MUST NOT keep retention from deleting what it cuts."""
        if offset > self.cold_start(topic, partition):
            self.store.put_if_absent(f"{PREFIX}{topic}/{partition}/start-{offset:020d}", b"")
        with self._lock:
            tp = (topic, partition)
            self._trimmed[tp] = max(self._trimmed.get(tp, 0), offset)
        gone = 0
        for seg in self.segments(topic, partition, refresh=True):
            if seg.end <= offset:
                self.store.delete(segment_key(topic, partition, seg.base, "json"))
                self.store.delete(seg.key)
                gone += 1
        with self._lock:
            self._index.pop((topic, partition), None)
        return gone

    # -- reading ----------------------------------------------------------------------------
    def _records(self, seg: SegmentInfo) -> list[StoredRecord]:
        with self._lock:
            cached = self._cache.get(seg.key)
            if cached is not None:
                self._cache.move_to_end(seg.key)
                return cached
        try:
            # at most the size its entry names: a bigger object is refused before it is whole
            data = b"".join(self.store.stream(seg.key, max_bytes=max(seg.bytes, 0)))
        except ObjectNotFound:
            raise ColdTierCorrupt(
                f"The cold segment {seg.key} is missing from the object store though its index "
                "entry exists."
            ) from None
        except ObjectTooLarge:
            raise ColdTierCorrupt(
                f"The cold segment {seg.key} is larger than the {seg.bytes} bytes its index "
                "entry names: it was changed in the object store."
            ) from None
        if hashlib.sha256(data).hexdigest() != seg.sha256:
            raise ColdTierCorrupt(
                f"The cold segment {seg.key} fails its SHA-256 check: it was changed or damaged "
                "in the object store."
            )
        try:
            records = decode_segment(data, seg.topic, seg.partition)
        except (ValueError, struct.error, IndexError) as exc:  # UnicodeDecodeError: ValueError
            raise ColdTierCorrupt(
                f"The cold segment {seg.key} is not a readable segment ({exc}): it was written "
                "to the object store by something other than the hub."
            ) from None
        self._authenticate(seg, records)
        with self._lock:
            self._cache[seg.key] = records
            while len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)
        return records

    def _authenticate(self, seg: SegmentInfo, records: Sequence[StoredRecord]) -> None:
        """Raise ``ColdTierCorrupt`` unless ``records`` are exactly the ledger's records of the
        segment's range, in order: the leaves of (topic, partition) from the first record's
        entry to the last one's, read as stored batches (no lookup per record), MUST name the
        records' offsets and carry their leaf hashes; an offset of the range before the first
        record or after the last MUST have no entry (a transaction marker)."""
        ledger = self._leaves
        if ledger is None:
            return
        offsets = [r.offset for r in records]
        if any(b <= a for a, b in pairwise(offsets)) or (
            offsets and not seg.base <= offsets[0] <= offsets[-1] < seg.end
        ):
            raise ColdTierCorrupt(
                f"The cold segment {seg.key} holds offsets out of order, repeated or outside its "
                f"range {seg.base}..{seg.end - 1}: it was changed in the object store."
            )
        edges: Iterable[int] = range(seg.base, seg.end)
        if records:
            edges = chain(range(seg.base, offsets[0]), range(offsets[-1] + 1, seg.end))
        for offset in edges:
            index = ledger.index_of(seg.topic, seg.partition, offset)
            if index is not None:
                raise ColdTierCorrupt(
                    f"The cold segment {seg.key} lacks {seg.topic}[{seg.partition}] offset "
                    f"{offset}, which is ledger entry {index}: a record was dropped from it in "
                    "the object store."
                )
        if not records:
            return
        first = ledger.index_of(seg.topic, seg.partition, offsets[0])
        last = ledger.index_of(seg.topic, seg.partition, offsets[-1])
        if first is None or last is None:
            raise self._differs(seg, offsets[0] if first is None else offsets[-1], None)
        want = self._leaves_of(ledger, seg, first, last)
        got = list(zip(offsets, self._leaf_hashes(records), strict=True))
        if got != want:
            pairs = zip(got, want, strict=False)
            first_bad = next((min(g[0], w[0]) for g, w in pairs if g != w), None)
            if first_bad is None:  # one list is the other's prefix
                first_bad = (got if len(got) > len(want) else want)[min(len(got), len(want))][0]
            raise self._differs(seg, first_bad, "its leaf hash or the records around it differ")

    @staticmethod
    def _leaves_of(
        ledger: LedgerStore, seg: SegmentInfo, first: int, last: int
    ) -> list[tuple[int, bytes]]:
        """(offset, leaf hash) of the (topic, partition) leaves with indexes first..last."""
        import pyarrow.compute as pc

        out: list[tuple[int, bytes]] = []
        for batch in ledger.iter_leaf_batches(first):
            n = min(len(batch), last + 1 - batch.first)
            cols = batch.columns.slice(0, n)
            mask = pc.and_(
                pc.equal(cols.column("topic"), seg.topic),
                pc.equal(cols.column("part"), seg.partition),
            )
            rows = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
            offs = pc.take(cols.column("off"), rows).to_pylist()
            hashes = batch.hashes
            out += [
                (o, hashes[i * HASH_BYTES : (i + 1) * HASH_BYTES])
                for o, i in zip(offs, rows, strict=True)
            ]
            if batch.first + n > last:
                break
        return out

    @staticmethod
    def _differs(seg: SegmentInfo, offset: int, why: str | None) -> ColdTierCorrupt:
        return ColdTierCorrupt(
            f"The cold segment {seg.key} holds {seg.topic}[{seg.partition}] offset {offset}, "
            + ("which the ledger has no entry for" if why is None else f"but {why}")
            + ": it was changed in the object store (the ledger is what vouches for the cold "
            "tier). Restore the segment from a copy of the object store."
        )

    def read(
        self, topic: str, partition: int, offset: int, max_records: int, below: int
    ) -> list[StoredRecord]:
        """Up to ``max_records`` cold records from ``offset`` on, all with offsets < ``below``.

        Checked against the ledger, the offsets from ``max(offset, _start)`` up to ``below``
        that no segment spans (a segment or its index entry gone from the store, a gap before
        the first one or after the last) MUST have no leaf: else ``ColdTierCorrupt`` names the
        first such record, rather than the read skipping it."""
        out: list[StoredRecord] = []
        offset = max(offset, self._start(topic, partition))
        for seg in self.segments(topic, partition):
            if seg.end <= offset:
                continue
            if seg.base >= below or len(out) >= max_records:
                break
            if seg.base > offset:
                self._no_leaves(topic, partition, offset, min(seg.base, below))
            for r in self._records(seg):
                if r.offset >= offset and r.offset < below:
                    out.append(r)
                    offset = r.offset + 1  # two index entries over one range: served once
                    if len(out) >= max_records:
                        break
            if len(out) < max_records:
                offset = max(offset, seg.end)  # its offsets past the last record: markers
        if len(out) < max_records and offset < below:
            self._no_leaves(topic, partition, offset, below)
        return out

    def _no_leaves(self, topic: str, partition: int, start: int, end: int) -> None:
        """Raise ``ColdTierCorrupt`` if the ledger has a leaf for an offset in [start, end),
        which no cold segment holds (legitimately only transaction markers, or nothing)."""
        ledger = self._leaves
        if ledger is None:
            return
        for offset in range(start, end):
            index = ledger.index_of(topic, partition, offset)
            if index is not None:
                raise ColdTierCorrupt(
                    f"The cold tier holds no segment with {topic}[{partition}] offset {offset}, "
                    f"which is ledger entry {index}, and no retention cut on the ledger removed "
                    f"it: a segment (or its index entry under {PREFIX}{topic}/{partition}/) was "
                    "removed from the object store, or a start marker there hides it. Restore "
                    "the segment from a copy of the object store (a retention cut made by "
                    "another process counts once the ledger has synced it)."
                )

    # -- writing ----------------------------------------------------------------------------
    def offload(
        self,
        log: EventLog,
        topic: str,
        partition: int,
        *,
        segment_records: int,
        leaf_of: Callable[[str, int, int], int | None],
    ) -> list[SegmentInfo]:
        """Offload the partition's closed segments (steps in the module docstring)."""
        segs = self.segments(topic, partition, refresh=True)
        hot_start = log.beginning_offsets(topic).get(partition, 0)
        end = log.end_offsets(topic)[partition]
        base = segs[-1].end if segs else hot_start  # 1
        if base < hot_start:
            raise HubError(
                f"{topic}[{partition}]: records {base}..{hot_start - 1} left the hot log before "
                "they were offloaded; the cold tier cannot hold them.",
                code="cold_tier_gap",
            )
        made = []
        while base + segment_records <= end:  # 2: only closed segments
            seg_end = base + segment_records
            records = _read_range(log, topic, partition, base, seg_end)
            leaf_first = leaf_of(topic, partition, records[0].offset) if records else None
            leaf_last = leaf_of(topic, partition, records[-1].offset) if records else None
            if records and (leaf_first is None or leaf_last is None):
                break  # not yet on the ledger: stays hot until the next offload
            data = encode_segment(records)
            info = SegmentInfo(
                topic,
                partition,
                base,
                seg_end,
                len(records),
                len(data),
                hashlib.sha256(data).hexdigest(),
                leaf_first,
                leaf_last,
            )
            self.store.put_if_absent(info.key, data)  # 3
            entry = json.dumps(info.as_dict(), sort_keys=True).encode()
            self.store.put_if_absent(segment_key(topic, partition, base, "json"), entry)
            made.append(info)
            base = seg_end
        with self._lock:
            self._index.pop((topic, partition), None)
        return made


def _reference_leaf_hashes(records: Sequence[StoredRecord]) -> list[bytes]:
    """The leaf hashes of ``records`` by the reference encoding (``audit.leaf.encode``)."""
    return [
        leaf_hash(
            leaf_input(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.headers, r.value)
        )
        for r in records
    ]


def _read_range(
    log: EventLog, topic: str, partition: int, start: int, end: int
) -> list[StoredRecord]:
    """The stored records with offsets in [start, end) (marker offsets have none)."""
    out: list[StoredRecord] = []
    pos = start
    while pos < end:
        chunk = log.read(topic, partition, pos, min(10_000, end - pos))
        if not chunk:
            chunk = log.read(topic, partition, pos, min(10_000, end - pos))  # see EventLog.scan
            if not chunk:
                break
        out.extend(r for r in chunk if r.offset < end)
        pos = chunk[-1].offset + 1
    return out


def _plain_read(offset: object, max_records: object) -> bool:
    """Whether a read's offset and size are valid (else the hot log raises its error)."""
    return type(offset) is int and offset >= 0 and type(max_records) is int and max_records >= 1


class TieredEventLog(EventLog):
    """An EventLog whose reads below the hot beginning offset come from the cold tier."""

    def __init__(self, hot: EventLog, cold: ColdTier) -> None:
        self.hot = hot
        self.cold = cold
        self.remote = hot.remote  # its ends are the hot log's
        self.commits_locally = hot.commits_locally  # its transactions are the hot log's

    # -- the tiered part ------------------------------------------------------------------------
    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[StoredRecord]:
        hot_start = self.hot.beginning_offsets(topic).get(partition, 0)
        if offset >= hot_start or not _plain_read(offset, max_records):
            return self.hot.read(topic, partition, offset, max_records)  # it names bad input
        records = self.cold.read(topic, partition, offset, max_records, hot_start)
        if len(records) < max_records:
            rest = self.hot.read(topic, partition, hot_start, max_records - len(records))
            records.extend(rest)
        return records

    def read_columns(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> RecordColumns:
        """The hot log's columns at or above its beginning; below it ``read``'s records."""
        hot_start = self.hot.beginning_offsets(topic).get(partition, 0)
        if offset >= hot_start or not _plain_read(offset, max_records):
            return self.hot.read_columns(topic, partition, offset, max_records)
        return super().read_columns(topic, partition, offset, max_records)

    def read_encoded(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> EncodedColumns | None:
        """The hot log's stored batches at or above its beginning; None below it (the cold
        tier's records come through ``read_columns``)."""
        hot_start = self.hot.beginning_offsets(topic).get(partition, 0)
        if offset >= hot_start or not _plain_read(offset, max_records):
            return self.hot.read_encoded(topic, partition, offset, max_records)
        return None

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        hot = self.hot.beginning_offsets(topic)
        out = {}
        for p, start in hot.items():
            cold = self.cold.cold_range(topic, p)
            out[p] = cold[0] if cold is not None and cold[1] >= start else start
        return out

    # -- everything else is the hot log's -------------------------------------------------------
    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        return self.hot.create_topic(name, partitions, config)

    def topics(self) -> list[TopicInfo]:
        return self.hot.topics()

    def topic(self, name: str) -> TopicInfo:
        return self.hot.topic(name)

    def append(
        self,
        topic: str,
        records: Sequence[Record],
        *,
        idempotence: IdempotenceKey | None = None,
    ) -> list[RecordMetadata]:
        return self.hot.append(topic, records, idempotence=idempotence)

    def append_columns(self, topic: str, batch: ColumnBatch) -> Sequence[RecordMetadata]:
        return self.hot.append_columns(topic, batch)

    def transaction(self, transactional_id: str) -> AbstractContextManager[Transaction]:
        return self.hot.transaction(transactional_id)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.hot.end_offsets(topic)

    def all_end_offsets(self) -> dict[str, dict[int, int]]:
        return self.hot.all_end_offsets()

    def stable_offsets(self, topic: str) -> dict[int, int]:
        return self.hot.stable_offsets(topic)

    def tail_quiet(self, topic: str, positions: Mapping[int, int]) -> bool:
        return self.hot.tail_quiet(topic, positions)

    def append_generation(self, topics: Sequence[str] | None = None) -> int:
        return self.hot.append_generation(topics)

    def wait_for_append(
        self, generation: int, timeout_s: float, topics: Sequence[str] | None = None
    ) -> int:
        # Appends go to the hot log, so its waiters are the ones an append wakes.
        return self.hot.wait_for_append(generation, timeout_s, topics)

    def delete_records_before(self, topic: str, partition: int, offset: int) -> int:
        """Retention on both tiers: the hot log's cut, and the cold tier's below ``offset``."""
        self.cold.trim(topic, partition, offset)
        self.hot.delete_records_before(topic, partition, offset)
        return self.beginning_offsets(topic)[partition]

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self.hot.commit_offsets(group, offsets)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        return self.hot.committed(group, topic)

    def check_records(
        self,
        topic: str,
        partition: int,
        start: int,
        end: int,
        read: Sequence[EncodedColumns] = (),
    ) -> None:
        self.hot.check_records(topic, partition, start, end, read)

    def integrity_problems(
        self, checked: Mapping[tuple[str, int], tuple[int, int]] | None = None
    ) -> list[LogProblem]:
        return self.hot.integrity_problems(checked)

    def close(self) -> None:
        self.hot.close()


def iter_cold(tier: ColdTier, topic: str, partition: int) -> Iterator[StoredRecord]:
    for seg in tier.segments(topic, partition):
        yield from tier._records(seg)
