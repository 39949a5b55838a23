"""The stored batches an append just wrote, handed to whoever follows the log in this process
(``EventLog.on_stored``: the ledger), so that it hashes them without reading them back.

Why: the ledger's cover of a batch this process just appended read the batch back from SQLite
(select, CRC, inflate) and recomputed its MAC chain link to authenticate it
(docs/benchmarks/s16-ledger.md). The append already holds those bytes and MACs.

1. ``note`` (in ``SqliteEventLog._store``, inside the write transaction): the rows stored for an
   append, when someone listens and the append holds at least ``MIN_HANDED`` records, kept by
   the append (``PreparedAppend``) until its commit, with the uncompressed body of each
   compressed batch when the append kept them (``wants``: someone listens and the append is
   large enough to be handed; ``batch.Kept``).
2. ``commit`` (a group commit) and ``SqliteTransaction``'s COMMIT: only once the transaction
   committed, each partition's rows go to the receivers with their offsets (and the offset
   after the transaction marker that follows, if any) and a function that opens them
   (``open_batch``: inflate, as a read does; no CRC over bytes that never left memory) into
   an ``EncodedColumns`` whose ``auth`` is a ``HandedChain``: called by the sync that hashes
   them, so that a batch the receiver drops unopened (its bound) costs the appender nothing.
   A batch whose uncompressed body the append kept is opened with it instead of inflating
   its stored bytes (~7% of a sync's CPU, docs/benchmarks/s20-ledger20.md): zstd is lossless,
   so inflating would give exactly those bytes; the declared size is still checked.
   A failed commit (or a rolled-back SAVEPOINT, or an idempotent replay, which stores nothing
   through ``_store``) hands nothing.
3. ``check`` (``check_records`` given a handed batch): in one snapshot, the batch rows stored in
   the range, without their bytes. Each handed batch MUST be stored at its base offset with the
   same extent, and (with the MAC key) the same MAC: the MAC this process computed, under the
   key, over exactly the handed bytes in the committed transaction. Batches of the range read
   from the log (``ReadChain``) are checked as ``check_records`` always did (their MAC
   recomputed, chained from the stored one before); then the partition seal and chain head.
   A handed batch no longer stored as handed (retention removed it meanwhile) raises
   ``HubError`` ``log_handoff_stale``: the caller reads the range back instead.

Trust: a handed batch reaches the ledger only when the log now holds, at its offsets, a row
whose MAC is the key's MAC of those very bytes; the leaf is of bytes the key authenticated in
the log. What this does not re-read is the stored copy of the bytes: one rewritten in the file
after the append (without the key) fails its own MAC in ``integrity_problems`` (``hub ledger
verify`` step 5), while the ledger has the leaf of what was appended.
"""

from __future__ import annotations

import hmac
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from adapters.sqlite_log.auth import (
    ReadChain,
    StoredRow,
    bad_batch,
    bad_head,
    bad_seal,
    batch_mac,
    partition_seal,
    unsealed,
)
from adapters.sqlite_log.batch import PreparedAppend, open_batch
from core.errors import HubError
from core.ports.eventlog import EncodedBatch, EncodedColumns, LogProblem, RecordColumns

# Appends of fewer records are not handed (the follower reads them back, as before): at ~17
# records per partition the per-sync check of a handed batch (a log snapshot per partition)
# and the append's bookkeeping cost more than the read they save (docs/benchmarks/
# s16-ledger.md, "Settled": 0.93-0.99x CPU at 50-record appends; 1.03x at 10k-record appends).
MIN_HANDED = 256

Receiver = Callable[[str, int, int, int, int, Callable[[], EncodedColumns]], None]
Decode = Callable[[str, int, Sequence[EncodedBatch]], RecordColumns]
Row = tuple[int, int, int, int, int, int, bytes | None, bytes]
"""A row ``_store`` inserts: (topic id, partition, base, last, count, max ts, MAC, bytes)."""
Noted = tuple[str, list[Row], list[bytes | None]]
"""What ``note`` keeps for an append: its topic, its rows and each row's uncompressed body
(None: not kept, or stored uncompressed)."""

# The batches overlapping [?3, ?4): the index on base offsets bounds both ends (a bare
# ``base_offset + record_count > ?3`` would scan the partition from its first batch).
_SQL_ROWS = (
    "SELECT base_offset, last_offset, record_count, max_timestamp, mac FROM batches"
    " WHERE topic_id = ?1 AND part = ?2 AND base_offset >= coalesce((SELECT base_offset"
    " FROM batches WHERE topic_id = ?1 AND part = ?2 AND base_offset <= ?3"
    " ORDER BY base_offset DESC LIMIT 1), 0) AND base_offset + record_count > ?3"
    " AND base_offset < ?4 ORDER BY base_offset"
)


@dataclass(frozen=True, slots=True)
class HandedChain:
    """``EncodedColumns.auth`` of a handed batch: its rows as stored (``StoredRow``)."""

    rows: tuple[StoredRow, ...]


class StoredHandoff:
    """Steps 1 and 2 of the module docstring, for one ``SqliteEventLog``."""

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._receivers: tuple[Receiver, ...] = ()
        self._noted: dict[int, Noted] = {}  # id(prepared) -> its rows
        self._lock = threading.Lock()
        self.min_records = MIN_HANDED  # smaller appends are not handed (tests set 1)

    def on_stored(self, receiver: Receiver) -> Callable[[], None]:
        with self._lock:
            self._receivers = (*self._receivers, receiver)

        def unsubscribe() -> None:
            with self._lock:
                self._receivers = tuple(r for r in self._receivers if r is not receiver)

        return unsubscribe

    def wants(self, count: int) -> bool:
        """Whether an append of ``count`` records would be handed on (its encoder then keeps
        the uncompressed bodies: ``batch.Kept``)."""
        return bool(self._receivers) and count >= self.min_records

    def note(self, prepared: PreparedAppend, rows: list[Row]) -> None:
        """1. (Under the write lock, so no two notes of one append race.) ``rows`` in the
        order of ``prepared.groups`` and their chunks, as ``_store`` inserts them."""
        if self.wants(prepared.count):
            bodies: list[bytes | None] = []
            for g in prepared.groups:
                bodies += g.bodies if g.bodies is not None else [None] * len(g.chunks)
            self._noted[id(prepared)] = (prepared.topic.info.name, rows, bodies)

    def take(self, prepared: PreparedAppend) -> Noted | None:
        """What ``note`` kept for ``prepared`` (forgotten here either way)."""
        return self._noted.pop(id(prepared), None)

    def commit(
        self,
        prepared: PreparedAppend,
        run: Callable[[PreparedAppend, None], Sequence[object]],
    ) -> Sequence[object]:
        """2. ``run(prepared, None)`` (the group commit); its rows handed once it returned."""
        try:
            metas = run(prepared, None)
        finally:
            noted = self.take(prepared)
        if noted is not None:
            self.hand([noted], marker=prepared.transactional)
        return metas

    def hand(self, noted: Sequence[Noted | None], *, marker: bool) -> None:
        """2. The committed rows of ``noted`` (in append order) to the receivers, per partition;
        ``marker``: a transaction marker follows each partition's last rows."""
        receivers = self._receivers
        if not receivers:
            return
        by: dict[tuple[str, int], list[tuple[Row, bytes | None]]] = {}
        for item in noted:
            if item is not None:
                for row, body in zip(item[1], item[2], strict=True):
                    by.setdefault((item[0], row[1]), []).append((row, body))
        for (name, part), kept in by.items():  # (offsets ascend: stored in this order)
            rows = [row for row, _ in kept]
            first, end = rows[0][2], rows[-1][2] + rows[-1][4]
            opener = partial(self._open, name, part, rows, [body for _, body in kept])
            for receiver in receivers:
                receiver(name, part, first, end, end + marker, opener)

    def _open(
        self, name: str, part: int, rows: list[Row], bodies: list[bytes | None]
    ) -> EncodedColumns:
        # Inflated and checked as a read would, but no CRC: these are the very ``bytes`` the
        # append sealed (CRC computed over them) and stored, never read back from storage,
        # which is what the CRC guards; the stored row's MAC of them is compared in ``check``
        # (~0.04 us/leaf of a sync, docs/benchmarks/s19-ledger.md).
        batches = tuple(
            open_batch(r[7], r[4], r[2], crc_check=False, inflated=body)
            for r, body in zip(rows, bodies, strict=True)
        )
        stored = tuple((r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows)
        return EncodedColumns(name, part, batches, self._decode, HandedChain(stored))


def check(
    conn: sqlite3.Connection,
    key: bytes | None,
    ids: tuple[int, str, int],
    span: tuple[int, int],
    read: Sequence[EncodedColumns],
    mac_before: Callable[[int], bytes],
    bounds: tuple[int, int, bytes | None, bytes | None, bytes | None],
) -> LogProblem | None:
    """3. of the module docstring over ``span`` = ``[start, end)`` of partition ``ids`` (topic
    id, name, partition), inside one snapshot ``conn``; ``mac_before(base)``: the stored MAC
    before the batch at ``base`` (the anchor when none); ``bounds``: the partition row (start,
    next offset, anchor, head, seal). Raises ``HubError`` ``log_handoff_stale``."""
    tid, name, part = ids
    start, end = span
    handed: list[StoredRow] = []  # every handed row (a base twice: each is checked)
    were_read: dict[int, StoredRow] = {}
    for c in read:
        if isinstance(c.auth, HandedChain):
            handed += c.auth.rows
        elif isinstance(c.auth, ReadChain):
            for row in c.auth.rows:
                were_read.setdefault(row[0], row)
    stored = conn.execute(_SQL_ROWS, (tid, part, start, end)).fetchall()
    at = {s[0]: s for s in stored}
    for row in handed:
        base = row[0]
        if not (base < end and base + row[2] > start):
            continue
        s = at.get(base)
        if s is None or tuple(s[:4]) != row[:4]:
            raise HubError(
                f"The batch this process appended at offset {base} of {name!r} partition "
                f"{part} is no longer stored as appended (retention removed it?); the "
                "range is read back from the log instead.",
                code="log_handoff_stale",
            )
        # the key's MAC of exactly these bytes, computed by the append, is the stored one
        if key is not None and (s[4] is None or row[4] is None or s[4] != row[4]):
            return bad_batch(name, part, base, row[2])
    if key is None:
        return None
    were_handed = {row[0] for row in handed}
    prev: bytes | None = None
    for base, last, count, max_ts, mac in stored:
        if base not in were_handed:  # read from the log: its MAC recomputed, as before
            got = were_read.get(base)
            if got is None:  # neither read nor handed: ``check_records`` reads the range
                raise HubError(
                    f"The batch at offset {base} of {name!r} partition {part} was neither "
                    "read nor handed; the range is read back from the log instead.",
                    code="log_handoff_stale",
                )
            if prev is None:
                prev = mac_before(base)
            want = batch_mac(key, name, (part, base, last, count, max_ts), prev, got[5])
            if mac is None or got[4] != mac or not hmac.compare_digest(mac, want):
                return bad_batch(name, part, base, count)
        prev = bytes(mac)
    first, stop, anchor, head, seal = bounds
    if seal is None or anchor is None or head is None:
        return unsealed(name, part)
    if not hmac.compare_digest(seal, partition_seal(key, name, part, first, stop, anchor, head)):
        return bad_seal(name, part, first, stop)
    if end >= stop:
        last_mac = prev if prev is not None else mac_before(stop)
        if not hmac.compare_digest(last_mac, head):
            return bad_head(name, part, stop)
    return None
