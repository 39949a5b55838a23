"""Ledger: follows the event log, appends a leaf per record, signs checkpoints, answers proofs.

Ordering rule (the tree order is the sync order)
    Each :meth:`Ledger.sync` first snapshots the end offset of every partition of every topic.
    It then appends, topic by topic (sorted by name), partition by partition (ascending), every
    record from the ledger's stored position up to the snapshot, in offset order. A single full
    sync over the same log contents therefore yields the same leaves and roots on any footprint
    (SQLite or Kafka); incremental syncs interleave topics by when they ran, which is recorded
    in the tree itself (each leaf names its topic, partition and offset).

Sync commits in steps, per batch of at most ``sync_batch`` leaves, in ONE ledger transaction:
    1. re-read the tree size, positions and right edge inside ``BEGIN IMMEDIATE`` (another
       process may have synced meanwhile);
    2. read the records; have the log authenticate the range read (``EventLog.check_records``,
       handed the stored batches read so that it checks those very bytes: a batch that fails
       raises ``LogTampered`` and nothing of the sync batch is adopted);
       encode and hash their leaves and compute their query columns as one
       batch (``LeafEncoder.encode``: C-level column operations, no per-record Python in the
       usual case; byte-identical to ``audit.leaf.encode``);
    3. insert the leaf rows and the changed node chunks (``executemany``);
    4. advance the positions of the partitions read;
    5. sign a checkpoint at every multiple of ``checkpoint_every_leaves`` the batch crosses, and
       at the end of the sync one for the current size if ``checkpoint_every_ms`` elapsed since
       the last (or ``force_checkpoint``); with a witness, record a *witness intent* for each.
       No timed checkpoint is signed while this process's earlier ones await their witness
       copy (the witness is failing): an outage then leaves no more intents than before;
    6. commit; then copy the new checkpoints to the witness store (write-once) and clear their
       intents. A process killed between the commit and the copy leaves the intents: the next
       open or sync makes the copies (``copy_to_witness``), under the rules of
       ``ledger.witness`` that keep an intent from laundering a rewritten checkpoint.

Following the log (:meth:`Ledger.start`)
    A daemon thread syncs as soon as a write committed through this process's log object wakes
    it (``EventLog.wait_for_append``), with no polling interval. An append starts a deadline:
    a signed checkpoint including it ``checkpoint_every_ms`` after it. The follower syncs once
    for it, early enough to finish by then (the recent syncs' longest duration before, at most
    half the interval; at once when an interval has passed since the last checkpoint, as after
    a quiet spell), and that sync signs a checkpoint for everything appended meanwhile
    (plus one per ``checkpoint_every_leaves`` multiple): a leaf waits about
    ``checkpoint_every_ms`` for its signed checkpoint, and its leaf is committed in the same
    transaction. Under load syncs and checkpoints coalesce, about one per interval (a sync
    begins at least half an interval after the append that set its deadline, or an interval
    after the last checkpoint). Writes it cannot
    see (another process's) are found every ``poll_ms`` and checkpointed by the timed rule
    above (an interval after the last checkpoint).

Checkpoints (C2SP tlog-checkpoint, signed note by the ``Signer``) carry the hub's ``prev``
(``checkpoint_hash`` of the previous checkpoint, zeros for the first) and ``time`` lines.
Audit actions (:meth:`Ledger.record_action`) are events on ``hub.audit`` and get their leaf on
the next sync like any other record.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from audit.merkle import range_root
from audit.note import GENESIS_PREV, checkpoint_hash, format_checkpoint
from core.errors import Forbidden, HubError
from core.hubactions import hub_topics, means_hub
from core.leadership import NotLeader, WriterFence
from core.ports.eventlog import (
    EncodedColumns,
    EventLog,
    RecordColumns,
    RecordMetadata,
    StoredRecord,
)
from core.ports.ledgerstore import (
    AMBIGUOUS_TENANT,
    LeafRow,
    LedgerStore,
    LedgerWrite,
    StoredCheckpoint,
)
from core.ports.objectstore import ObjectStore
from core.ports.signer import Signer
from domain.envelope import H_ACTION, H_SUBJECT
from ledger.errors import CheckpointNotFound, EntryNotFound, InvalidRange, LedgerIntegrityError
from ledger.leaves import LeafEncoder, query_columns
from ledger.stored import StoredBatches
from ledger.tree import TreeBuilder
from ledger.witness import check_intents, witness_key

if TYPE_CHECKING:
    from ingest.publish import Publisher
    from registry.service import SchemaRegistry

log = logging.getLogger("hub.ledger")

_topic_of = attrgetter("topic")
_part_of = attrgetter("partition")
_offset_of = attrgetter("offset")
_ts_of = attrgetter("timestamp_ms")

_RUN_GAP = 64  # records_of: offsets this close share one log read

# Handed stored batches kept for the next sync, in records (the larger of this and four sync
# batches; ~0.5 KB inflated each): past it the oldest are read back instead.
_STORED_MIN = 100_000

_STOP_CHECK_S = 0.2  # the follower's longest single wait: how soon it sees ``stop``
_SYNC_TIMES = 8  # the follower's deadline syncs whose longest duration leads the next one

AUDIT_TOPIC = "hub.audit"
AUDIT_EVENT_TYPE = "hub.AuditActionRecorded"
AUDIT_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "AuditActionRecorded",
        "namespace": "hub",
        "doc": "An action the hub took that is not itself an event elsewhere (exports, "
        "policy decisions, erasures, model promotions).",
        "fields": [
            {"name": "action", "type": "string", "doc": "Dotted action, e.g. evidence.export."},
            {"name": "actor", "type": "string"},
            {"name": "resource", "type": "string"},
            {"name": "outcome", "type": "string", "default": "ok"},
            {"name": "details", "type": "string", "default": "{}", "doc": "JSON text."},
            {"name": "recorded_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        ],
    }
)


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    origin: str = "hub.local/ledger"
    checkpoint_every_leaves: int = 10_000
    checkpoint_every_ms: int = 1_000
    sync_batch: int = 50_000
    max_pending_ms: int = 60_000  # verify fails on a record older than this not on the ledger
    # Threads hashing one sync's (or verify's) leaves natively, GIL released; a call splits
    # only at 4,096+ leaves per thread, so small syncs stay on one. Same bytes for any value.
    hash_threads: int = 2
    # Threads of a verification's per-batch work (``ledger.verify``): 1 checks each batch of
    # leaves in turn; 2 or more read and authenticate the log for the next batch while a worker
    # thread recomputes and compares this one (the natives release the GIL). Same verdict.
    # Default 1: the split gave no wall gain on the 2-core host (docs/benchmarks/s25-verify25.md).
    verify_threads: int = 1

    @property
    def witness_pending_max(self) -> int:
        """The most checkpoints one sync transaction signs (one per ``checkpoint_every_leaves``
        multiple its batch crosses, one timed): what a crash can leave awaiting its witness copy
        (``ledger.witness``, rule 3)."""
        return self.sync_batch // max(1, self.checkpoint_every_leaves) + 2


@dataclass(slots=True)
class SyncResult:
    appended: int = 0
    size: int = 0
    checkpoints: list[int] = field(default_factory=list)


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def tenant_scope_of(row_filter: Mapping[str, str]) -> str | None:
    """The tenant a ``ledger.read`` decision's ``row_filter`` limits its reader to (None: every
    tenant, as for a role granting ``tenant.all``). The ledger filters on ``tenant`` only; a
    filter on any other column is refused (``Forbidden``) rather than ignored, and so is a
    filter naming ``AMBIGUOUS_TENANT`` (no reader is limited to the leaves of no tenant)."""
    others = sorted(c for c in row_filter if c != "tenant")
    if others:
        raise Forbidden(
            f"Access denied: the decision filters rows on {', '.join(others)}, which ledger "
            "entries do not have (they filter on tenant only)."
        )
    tenant = row_filter.get("tenant")
    if tenant == AMBIGUOUS_TENANT:
        raise Forbidden(
            f"Access denied: the decision limits the reader to tenant {tenant!r}, the mark of "
            "records carrying ce_tenant twice, which is no tenant: fix the key's tenant."
        )
    return tenant


def in_scope(row: LeafRow, tenant_scope: str | None) -> bool:
    """Whether a reader limited to ``tenant_scope`` sees a leaf: its own tenant's leaves and
    those with no tenant (hub-wide records without ``ce_tenant``); every leaf when None."""
    return tenant_scope is None or row[8] is None or row[8] == tenant_scope


def check_row(row: LeafRow, record: StoredRecord) -> None:
    """``LedgerIntegrityError`` unless ``row``'s columns are the ones its log record gives.

    The side index (actor, action, resource, tenant, log time) is what readers filter, show and
    scope by; only the leaf hash is committed to by the tree, and the incremental ``hub ledger
    verify`` leaves rows below its last verified size to the periodic full run. Whoever can
    write the store file could otherwise rewrite an actor (its batch digest recomputed) and have
    entries, lookups, entry bundles and a signed evidence pack serve it: every reader that has
    the record recomputes the columns from it (as the sync did) and refuses a difference."""
    want = (
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms,
        *query_columns(record),
    )
    have = tuple(row[1:9])
    if have != want:
        names = ("topic", "partition", "offset", "log time", "actor", "action", "resource")
        # The stored values only: the record's own may be another tenant's (a forged tenant
        # column is how a reader of one tenant got this far), and the full verify names them.
        diff = [
            f"{n} {h!r}" for n, h, w in zip((*names, "tenant"), have, want, strict=True) if h != w
        ]
        raise LedgerIntegrityError(
            f"Ledger entry {row[0]} ({row[1]}, {row[2]}, {row[3]}): the stored "
            f"{', '.join(diff)} differ from its log record: the ledger store was altered; run "
            "`hub ledger verify --full`.",
            code="ledger_mismatch",
        )


def entry_fields(row: LeafRow, record: StoredRecord | None) -> dict[str, Any]:
    """An entry as the API and evidence packs show it (digests only, never key or value);
    with ``record``, its columns checked against it first (:func:`check_row`)."""
    import hashlib

    if record is not None:
        check_row(row, record)
    idx, topic, part, off, ts, actor, action, resource, tenant, leaf_hash = row
    out: dict[str, Any] = {
        "index": idx,
        "topic": topic,
        "partition": part,
        "offset": off,
        "timestamp_ms": ts,
        "time": datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat(),
        "actor": actor,
        "action": action,
        "resource": resource,
        "tenant": tenant,
        "leaf_hash": bytes(leaf_hash).hex(),
    }
    if record is not None:
        out["key_sha256"] = _hex(
            None if record.key is None else hashlib.sha256(record.key).digest()
        )
        out["value_sha256"] = _hex(
            None if record.value is None else hashlib.sha256(record.value).digest()
        )
        out["headers"] = [[k, base64.b64encode(v).decode("ascii")] for k, v in record.headers]
    return out


Handed = Sequence[RecordColumns] | Callable[[], Sequence[RecordColumns]]
"""What ``Ledger.sync``/``cover`` take as ``handed``: the columns, or a function building them."""


class _Given:
    """The handed chunks with contiguous offsets by partition, in offset order; built at the
    first ``get`` (the embedded log never asks: its stored batches are read instead, so the
    columns are not built at all when handed as a function)."""

    def __init__(self, handed: Handed) -> None:
        self._handed = handed
        self._by: dict[tuple[str, int], list[RecordColumns]] | None = None

    def get(self, key: tuple[str, int]) -> Sequence[RecordColumns]:
        if self._by is None:
            handed = self._handed() if callable(self._handed) else self._handed
            self._by = {}
            for c in sorted(handed, key=lambda c: c.offsets[0] if len(c) else -1):
                if len(c) and c.offsets[-1] - c.offsets[0] == len(c) - 1:
                    self._by.setdefault((c.topic, c.partition), []).append(c)
        return self._by.get(key, ())


def _tail(c: RecordColumns, k: int) -> RecordColumns:
    """The records of ``c`` from its ``k``-th on (``RecordColumns.first``'s other half)."""
    return RecordColumns(
        c.topic,
        c.partition,
        c.offsets[k:],
        c.timestamps[k:],
        c.keys[k:],
        c.values[k:],
        c.header_names,
        tuple(col[k:] for col in c.header_values),
        None if c.headers is None else c.headers[k:],
        None if c.built_from is None else c.built_from[k:],
    )


class _TxnReader:
    """NodeReader over one write transaction, uncached (``LedgerWrite.node``)."""

    def __init__(self, txn: LedgerWrite) -> None:
        self.node = txn.node


class Ledger:
    """The audit ledger of one hub. Thread-safe; one sync runs at a time per process."""

    def __init__(
        self,
        log: EventLog,
        store: LedgerStore,
        signer: Signer,
        config: LedgerConfig,
        *,
        witness: ObjectStore | None = None,
        publisher: Publisher | None = None,
        registry: SchemaRegistry | None = None,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        fence: Callable[[], WriterFence | None] | None = None,
        cover_wait_s: float = 10.0,
    ) -> None:
        if signer.name != config.origin:
            raise HubError(
                f"The ledger signer is named {signer.name!r} but the origin is "
                f"{config.origin!r}; they must match.",
                code="config_invalid",
            )
        self.log = log
        self.store = store
        self.signer = signer
        self.config = config
        self.witness = witness
        self._publisher = publisher
        self._registry = registry
        self._clock_us = clock_us
        # High availability (core.leadership): only the leader syncs, each batch fenced.
        self._fence = fence
        self.cover_wait_s = cover_wait_s
        self._encoder = LeafEncoder(threads=config.hash_threads)
        self._sync_lock = threading.Lock()
        self._audit_ready = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Checkpoints this process signed whose witness copy is not made yet (copied as they are).
        self._unwitnessed: dict[int, StoredCheckpoint] = {}
        # When the leaves past the latest checkpoint fall due for a timed one (wall clock, us;
        # None: nothing waits), as the last sync found it: the follower wakes then.
        self._due_us: int | None = None
        # When this process last signed a checkpoint (wall clock, us; None: not yet).
        self._signed_us: int | None = None
        self._listeners: list[Callable[[int, list[int]], None]] = []
        # Syncs begun by this process (numbered under ``_sync_lock`` before each reads the
        # log's ends), and the number and tree size of the last one that completed: a cover
        # whose records a sync begun after they were appended took joins it (``cover``).
        self._syncs_begun = 0
        self._last_complete: tuple[int, int] = (0, 0)
        self.covers_joined = 0  # covers answered by such a sync, without one of their own
        # Per partition, a range [position, end) a sync found to hold no record (only the
        # transaction marker a transactional append leaves after its records): the position
        # stays below the marker, so without this every later sync read it again (a read
        # transaction per such partition per sync) until the next append moves the end.
        self._no_records: dict[tuple[str, int], tuple[int, int]] = {}
        # The stored batches this process's appends hand over (the embedded log): hashed by
        # the sync instead of read back (docs/benchmarks/s16-ledger.md).
        self._stored = StoredBatches(max(4 * config.sync_batch, _STORED_MIN))
        self._stored_used = False  # whether the running sync batch took handed batches
        self._take_stored = True  # False: the running sync reads back (a handed batch failed)
        self._unhook = log.on_stored(self._stored.add)
        if witness is not None and fence is None:
            self._copy_to_witness_logged()  # a crash between a commit and its copy: make it now

    @property
    def registry(self) -> SchemaRegistry | None:
        """The registry that decodes ``hub.audit`` records (None: built without a publisher)."""
        return self._registry

    # -- sync --------------------------------------------------------------------------------
    @contextmanager
    def syncs_paused(self) -> Iterator[None]:
        """No sync of this process runs inside (``verify_ledger``: one state, not a moving one)."""
        with self._sync_lock:
            yield

    @property
    def fenced(self) -> bool:
        """Whether this ledger is one of several processes' (only the leader syncs)."""
        return self._fence is not None

    def is_writer(self) -> bool:
        """Whether this process may sync now (always, unless fenced and not the leader)."""
        return self._fence is None or self._fence() is not None

    def sync(
        self, *, force_checkpoint: bool = False, handed: Handed = (), checkpoint_due: bool = False
    ) -> SyncResult:
        """Append a leaf for every record up to the log's current end; sign due checkpoints.

        ``checkpoint_due``: the caller's deadline for a timed checkpoint has come (the
        follower's, ``checkpoint_every_ms`` after the first append not yet in one): sign one for
        the current size, unless earlier ones still await their witness copy (unlike
        ``force_checkpoint``).

        Fenced (several hub processes): only the leader syncs, and every batch's transaction
        carries the leader's token (step 1): a leader that was paused and replaced meanwhile
        gets ``Fenced`` and adopts nothing. In another process ``sync`` waits (up to
        ``cover_wait_s``) until the leader's syncs cover every record up to the log's end as of
        the call (and, with ``force_checkpoint``, a checkpoint covers them); ``NotLeader`` when
        they do not in time.

        What this process's appends to the embedded log wrote is hashed as the append handed
        it over (``EventLog.on_stored``: the stored batches, ``ledger.stored``), not read
        back; the log authenticates those against what it holds (``check_records``, step 2);
        a handed batch that fails (retention removed it meanwhile) fails nothing: the batch
        is read back instead, where the log's own check decides.

        ``handed``: records this process just appended, as ``appended_columns`` built them
        from the append's answer (``cover``). Where the log hands its stored batches
        (``read_encoded``, the embedded log) they are read instead: hashing those natively is
        cheaper than hashing Python columns. Elsewhere a handed chunk with contiguous offsets
        stands in for the log read of its range when it starts at a partition's stored
        position, or only markers lie between (``EventLog.holds_records``), or the position
        falls inside it (the rest of it); the log still authenticates that
        range (step 2, ``check_records``), and
        ``hub ledger verify`` re-derives every leaf from the log, so a chunk that differs from
        what the log holds is found there (``tests/unit/test_ledger_handoff.py``)."""
        token: WriterFence | None = None
        if self._fence is not None:
            token = self._fence()
            if token is None:
                return self._await_leader(force_checkpoint)
        with self._sync_lock:
            return self._sync_held(token, force_checkpoint, handed, checkpoint_due)

    def _sync_held(
        self,
        token: WriterFence | None,
        force_checkpoint: bool,
        handed: Handed,
        checkpoint_due: bool,
    ) -> SyncResult:
        """``sync``'s work, ``_sync_lock`` held."""
        if self.witness is not None:
            self._copy_to_witness_logged()  # intents an earlier failure or crash left
        self._syncs_begun += 1  # before the ends are read: see ``cover``
        number = self._syncs_begun
        ends = self.log.all_end_offsets()
        given = _Given(handed)
        result = SyncResult()
        done = False
        self._take_stored = True
        while not done:
            made: list[StoredCheckpoint] = []
            self._stored_used = False
            try:
                with self.store.write() as conn:
                    if token is not None:
                        conn.fence(token)  # 1. (first) refused when a newer leader wrote
                    appended = self._sync_batch(conn, ends, made, given)
                    if appended < self.config.sync_batch:
                        cp = self._checkpoint_if_due(conn, force_checkpoint, checkpoint_due)
                        if cp is not None:
                            made.append(cp)
                        result.size = conn.size()
                        done = True
                    if made and self.witness is not None:  # 5. in the checkpoints' txn
                        conn.add_witness_intents([c.size for c in made])
                    size_now = conn.size() if self._listeners else 0
            except HubError as exc:
                if not self._stored_used:
                    raise
                self._take_stored = False  # this sync reads the log from here on
                # A handed batch the log no longer holds as handed (retention), or one
                # that fails its check: nothing was adopted; read this batch back, where
                # the log's own check decides (LogTampered when the log was altered).
                log.warning("handed stored batches not used: %s", exc.message)
                self._stored.clear()
                done = False
                continue
            result.appended += appended
            result.checkpoints += [c.size for c in made]
            if appended or made:  # committed: readers of the store see them now
                for listener in self._listeners:
                    listener(size_now, [c.size for c in made])
            if made and self.witness is not None:  # 6. after the commit
                self._unwitnessed.update((c.size, c) for c in made)
                self._copy_to_witness_logged()
        self._last_complete = (number, result.size)
        return result

    def on_commit(self, listener: Callable[[int, list[int]], None]) -> Callable[[], None]:
        """Call ``listener(tree_size, checkpoint_sizes)`` after every sync transaction that
        appended leaves or signed checkpoints, as soon as it committed (before its witness copies
        are made), from the syncing thread (so it must return at once); returns the
        unsubscribe."""
        self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            self._listeners = [f for f in self._listeners if f is not listener]

        return unsubscribe

    def _sync_batch(
        self,
        conn: LedgerWrite,
        ends: Mapping[str, Mapping[int, int]],
        new_cps: list[StoredCheckpoint],
        given: _Given,
    ) -> int:
        # 1. state inside the transaction
        size = conn.size()
        positions = conn.positions()
        # 2. records up to the snapshot, in the ordering rule's order
        # (the columns handed over when this process just appended them, see ``sync``; else
        # the stored batches when the log hands them, ``read_encoded``; else as columns,
        # ``read_columns``: no StoredRecord is built per record)
        budget = self.config.sync_batch
        chunks: list[RecordColumns | EncodedColumns] = []
        count = 0
        moved: dict[tuple[str, int], int] = {}
        for topic in sorted(ends):
            for part in sorted(ends[topic]):
                end = ends[topic][part]
                pos = positions.get((topic, part), 0)
                read: list[EncodedColumns] = []  # this partition's stored batches read
                while pos < end and count < budget:
                    if self._no_records.get((topic, part)) == (pos, end) or (
                        self._take_stored and self._stored.marker_only(topic, part, pos, end)
                    ):
                        break  # offsets are never reused: still no record in [pos, end)
                    want = min(budget - count, end - pos)
                    # The stored batches first, even for handed records: read and hashed
                    # natively they cost ~0.8 us/leaf against ~1.1 for the handed Python
                    # columns (docs/benchmarks/s15-cover.md). Handed columns stand in where
                    # the log has no stored batches to hand (Kafka, a cold tier).
                    chunk = None
                    encoded = self._stored.at(topic, part, pos) if self._take_stored else None
                    if encoded is not None:
                        self._stored_used = True
                        if len(encoded) > want:
                            encoded = encoded.slice(0, want)
                    else:
                        upto = self._stored.next_base(topic, part, pos)  # (None: not taking)
                        ask = want if upto is None else max(1, min(want, upto - pos))
                        encoded = self.log.read_encoded(topic, part, pos, ask)
                    if encoded is None:
                        chunk = self._handed_at(given.get((topic, part)), topic, part, pos)
                    if encoded is not None:
                        enc = encoded.below(end)
                        if not len(enc):
                            self._no_records[(topic, part)] = (pos, end)
                            break
                        read.append(enc)
                        count += len(enc)
                        pos = enc.next_offset()
                        last = chunks[-1] if chunks else None
                        if (  # one chunk per partition run: the leaf batch's cost is per chunk
                            isinstance(last, EncodedColumns)
                            and (last.topic, last.partition) == (topic, part)
                            and last.decode == enc.decode
                        ):
                            chunks[-1] = replace(last, batches=last.batches + enc.batches)
                        else:
                            chunks.append(enc)
                    else:
                        if chunk is None:
                            chunk = self.log.read_columns(topic, part, pos, want)
                        chunk = chunk.first(want).below(end)
                        if not len(chunk):
                            self._no_records[(topic, part)] = (pos, end)
                            break
                        chunks.append(chunk)
                        count += len(chunk)
                        pos = chunk.offsets[-1] + 1
                    moved[(topic, part)] = pos
                if (topic, part) in moved:
                    # Never adopt what fails the log's own authentication (embedded: the MAC
                    # chain, checked on the bytes read when they cover the range); raises
                    # LogTampered naming the first bad offset.
                    start = positions.get((topic, part), 0)
                    self.log.check_records(topic, part, start, pos, read)
                if count >= budget:
                    break
            if count >= budget:
                break
        if not count:
            return 0
        # hashes + side-index columns (string columns built only when read where the store
        # appends through the dictionaries)
        batch = self._encoder.column_batch(chunks, size, strings=not conn.appends_dictionaries)
        nodes = TreeBuilder(size, conn.chunk, threads=self.config.hash_threads).append(batch.hashes)
        # 3. leaves and nodes; 4. positions
        conn.append_batch(batch, nodes)
        conn.set_positions(moved)
        # 5. checkpoints at every multiple of N crossed by this batch
        n = self.config.checkpoint_every_leaves
        new_size = size + count
        for s in range((size // n + 1) * n, new_size + 1, n):
            cp = self._make_checkpoint(conn, s)
            if cp is not None:
                new_cps.append(cp)
        return count

    def _handed_at(
        self, chunks: Sequence[RecordColumns], topic: str, part: int, pos: int
    ) -> RecordColumns | None:
        """The handed chunk that is the next read from ``pos`` on: it starts there, or only
        markers (an earlier transaction's) lie between (``EventLog.holds_records``), or its
        records from ``pos`` on when ``pos`` falls inside it (a batch boundary of the sync,
        ``sync_batch``, cut it: without this every later batch of the partition was read
        back from the log, and mixed with handed chunks, decoded in Python)."""
        for c in chunks:
            first = c.offsets[0]
            if first == pos or (
                first > pos and not self.log.holds_records(topic, part, pos, first)
            ):
                return c
            if first > pos:
                return None
            if pos <= c.offsets[-1]:  # offsets are contiguous (``sync``): record pos - first
                return _tail(c, pos - first)
        return None

    def _checkpoint_if_due(
        self, conn: LedgerWrite, force: bool, due: bool = False
    ) -> StoredCheckpoint | None:
        self._due_us = None
        size = conn.size()
        last = conn.latest_checkpoint()
        if size == 0 or (last is not None and last.size >= size):
            return None
        if force or last is None:
            return self._make_checkpoint(conn, size)
        if self.witness is not None and self._unwitnessed:
            return None  # the witness is failing: its copies first (the next sync retries them)
        due_us = last.time_us + self.config.checkpoint_every_ms * 1000
        if due or self._clock_us() >= due_us:
            return self._make_checkpoint(conn, size)
        self._due_us = due_us
        return None

    def _make_checkpoint(self, conn: LedgerWrite, size: int) -> StoredCheckpoint | None:
        prev = conn.latest_checkpoint()
        if prev is not None and prev.size >= size:
            return None
        root = range_root(_TxnReader(conn), 0, size)
        now = max(self._clock_us(), prev.time_us if prev else 0)  # times never go back
        text = format_checkpoint(
            self.config.origin,
            size,
            root,
            prev=prev.hash if prev else GENESIS_PREV,
            time_micros=now,
        )
        note = self.signer.sign_note(text)
        cp = StoredCheckpoint(size, root, now, note, checkpoint_hash(note))
        conn.add_checkpoint(cp)
        self._signed_us = now
        return cp

    def _copy_to_witness_logged(self) -> None:
        try:
            self.copy_to_witness()
        except HubError as exc:  # the store could not be read or written: the next sync retries
            log.warning("copying checkpoints to the witness failed: %s", exc.message)

    def copy_to_witness(self) -> list[int]:
        """Make the witness copies that committed checkpoints await (the store's witness
        intents), in size order, and clear those intents; returns the sizes done.

        Checkpoints this process signed are copied as it signed them. Others (the intents of a
        process that crashed after its commit) are copied only when ``ledger.witness``
        ``check_intents`` accepts them all; else nothing is copied and the intents stay, so
        ``hub ledger verify`` names the reason. Copies stop at the first that fails: a copy never
        lands above a missing one. A failed copy is logged, never undoes the commit.
        """
        witness = self.witness
        if witness is None:
            return []
        intents = self.store.witness_intents()
        if not intents:
            return []
        if all(s in self._unwitnessed for s in intents):
            cps = [self._unwitnessed[s] for s in intents]
        else:
            found = check_intents(
                self.store,
                witness,
                [self.signer.verifier()],
                self.config.origin,
                self.config.witness_pending_max,
            )
            if found.problem is not None:
                log.error(
                    "witness intents not honoured: %s Run `hub ledger verify`.", found.problem
                )
                return []
            cps = found.checkpoints
        done: list[int] = []
        for cp in cps:
            key = witness_key(cp.size)
            try:
                if not witness.put_if_absent(key, cp.note) and witness.get(key) != cp.note:
                    log.error(
                        "witness holds a different checkpoint of size %d: the ledger was "
                        "rebuilt or tampered with; run `hub ledger verify`",
                        cp.size,
                    )
                    break
            except HubError as exc:
                log.warning("witnessing checkpoint %d failed: %s", cp.size, exc.message)
                break
            done.append(cp.size)
        if done:
            with self.store.write() as conn:
                conn.clear_witness_intents(done)
            for size in done:
                self._unwitnessed.pop(size, None)
        return done

    def cover(
        self, appended: Sequence[RecordMetadata] = (), *, handed: Handed = ()
    ) -> dict[str, Any]:
        """Sync now so that ``appended`` is on the ledger before it is acknowledged.

        ``handed``: the columns of what the caller just appended (``appended_columns``), or a
        function that builds them (called only when a log read needs them: never on the
        embedded log), used instead of reading that range back from the log (see ``sync``).

        Returns the acknowledgement's ``ledger`` member: ``{"covered": true, "tree_size": N}``
        when every record of ``appended`` has its leaf, else ``{"covered": false, "status":
        "pending", "reason": ...}`` (the append itself stands; ``hub ledger verify`` fails if
        records stay pending longer than ``max_pending_ms``). Never raises for a sync failure.
        """
        if not self.is_writer():
            return self._await_cover(appended)
        try:
            size = self._covering_sync(handed)
        except HubError as exc:
            log.error("ledger sync before an acknowledgement failed: %s", exc.message)
            return {"covered": False, "status": "pending", "reason": exc.message}
        if not appended:  # what the caller appended before the call: the sync covered it
            return {"covered": True, "tree_size": size}
        positions = self.store.positions()
        covered = all(positions.get((m.topic, m.partition), 0) > m.offset for m in appended)
        if covered:
            return {"covered": True, "tree_size": size}
        return {
            "covered": False,
            "status": "pending",
            "reason": "another sync holds the ledger; the records get their leaves on the next.",
        }

    def _covering_sync(self, handed: Handed) -> int:
        """The tree size of a completed sync that began after this call did: this process's
        own, unless one that began after the call completed while this one waited for the
        sync lock (concurrent requests' covers then share one sync instead of running one
        each, the later ones with nothing to append).

        A sync numbers itself under the lock before it reads the log's ends, so one numbered
        above ``_syncs_begun`` as read here read them after everything the caller appended
        before the call, and completing (no error) put a leaf on every record up to them.
        Fenced, every cover syncs (``sync`` waits for the leader in a follower)."""
        if self._fence is not None:
            return self.sync(handed=handed).size
        want = self._syncs_begun + 1
        with self._sync_lock:
            number, size = self._last_complete
            if number >= want:
                self.covers_joined += 1
                return size
            return self._sync_held(None, False, handed, False).size

    def _await_leader(self, force_checkpoint: bool) -> SyncResult:
        """A follower's ``sync``: wait for the leader to cover the log's end as of now."""
        ends = self.log.all_end_offsets()
        deadline = time.monotonic() + self.cover_wait_s
        while True:
            positions = self.store.positions()
            lagging = [
                (topic, part, positions.get((topic, part), 0), end)
                for topic, parts in ends.items()
                for part, end in parts.items()
                if positions.get((topic, part), 0) < end
            ]
            # a position below the end is covered when only markers (no record) lie between
            covered = all(
                not [r for r in self.log.read(t, p, pos, 1) if r.offset < end]
                for t, p, pos, end in lagging
            )
            size = self.store.tree_size()
            if covered:
                cp = self.store.latest_checkpoint()
                if not force_checkpoint or (cp is not None and cp.size >= size):
                    return SyncResult(0, size, [])
            if time.monotonic() >= deadline:
                raise NotLeader(
                    "This hub process is not the leader, and the leader's ledger sync did not "
                    f"cover the log within {self.cover_wait_s:g} s; retry, or check that a "
                    "leader runs (HUB_LEADER_ELECTION: the lease holder's log)."
                )
            time.sleep(0.1)

    def _await_cover(self, appended: Sequence[RecordMetadata]) -> dict[str, Any]:
        """A follower process: wait (up to ``cover_wait_s``) for the leader's sync to cover."""
        deadline = time.monotonic() + self.cover_wait_s
        while True:
            try:
                positions = self.store.positions()
            except HubError as exc:
                return {"covered": False, "status": "pending", "reason": exc.message}
            if all(positions.get((m.topic, m.partition), 0) > m.offset for m in appended):
                return {"covered": True, "tree_size": self.store.tree_size()}
            if time.monotonic() >= deadline:
                return {
                    "covered": False,
                    "status": "pending",
                    "reason": "the leader's ledger sync has not covered the records yet; they "
                    "get their leaves on its next sync.",
                }
            time.sleep(0.05)

    # -- background follower -----------------------------------------------------------------
    def start(self, poll_ms: int = 250) -> None:
        """Follow the log in a daemon thread (see "Following the log" above); idempotent.

        Each round reads the log's append counter, syncs (unless fenced and not the leader),
        then waits for an append after that read, for the timed checkpoint falling due, or
        ``poll_ms``, whichever comes first; so an append landing during a sync is never missed.
        An append sets a deadline: its signed checkpoint by ``checkpoint_every_ms`` after it.
        The follower sleeps until that deadline less the recent syncs' longest duration (at
        most half the interval), or only until an interval after the last checkpoint it signed
        when that comes first (an append after a quiet spell: at once), then syncs and signs
        (``checkpoint_due``): the appends meanwhile share that sync and its checkpoint, and no
        second sync is needed for the checkpoint. A failed sync is logged and retried after
        ``poll_ms``. ``stop`` is seen within ``_STOP_CHECK_S``."""
        if self._thread is not None:
            return
        poll_s = poll_ms / 1000
        self._stop.clear()

        every_s = self.config.checkpoint_every_ms / 1000
        took: deque[float] = deque(maxlen=_SYNC_TIMES)  # the recent deadline syncs' durations

        def loop() -> None:
            # When the first append not yet in a signed checkpoint may have landed (monotonic;
            # None: none is waiting). Before, a sync began at most once per interval but the
            # checkpoint fell due an interval after the previous one was *signed* (a sync's
            # duration later): about every other sync signed nothing and its leaves waited
            # for the next (s18: checkpoint p50 57 ms at a 50 ms interval).
            pending: float | None = None
            while not self._stop.is_set():
                seen = self.log.append_generation()
                began = time.monotonic()
                wait_s = poll_s
                if self.is_writer():  # a follower process: the leader syncs
                    try:
                        self.sync(checkpoint_due=pending is not None)
                        if pending is not None:
                            took.append(time.monotonic() - began)
                        pending = None
                        due = self._due_us
                        if due is not None:
                            wait_s = min(wait_s, max(0.0, (due - self._clock_us()) / 1e6))
                    except Exception:  # keep following; the next round retries
                        log.exception("ledger sync failed")
                        self._stop.wait(poll_s)
                        continue
                if self.log.append_generation() != seen:
                    pending = began  # it landed during the sync: since it began, at the latest
                else:
                    deadline = time.monotonic() + wait_s
                    while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                        if self.log.wait_for_append(seen, min(left, _STOP_CHECK_S)) != seen:
                            pending = time.monotonic()
                            break
                if pending is not None:
                    lead = min(max(took, default=0.0), every_s / 2)
                    wake = pending + every_s - lead
                    if (signed := self._signed_us) is not None:
                        # After a quiet spell the timed rule already holds (an interval since
                        # the last checkpoint): sign at once, as a sync would have before.
                        since_s = (self._clock_us() - signed) / 1e6
                        wake = min(wake, time.monotonic() + every_s - since_s)
                    self._stop.wait(wake - time.monotonic())

        self._thread = threading.Thread(target=loop, name="ledger-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._unhook()
        self.store.close()

    # -- audit actions -----------------------------------------------------------------------
    def record_action(
        self,
        actor: str,
        action: str,
        resource: str,
        *,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
        tenant: str = "default",
    ) -> RecordMetadata:
        """Append an audit event to ``hub.audit``; it gets its leaf on the next sync.

        Headers carry ``hub_action`` = ``action`` and ``ce_subject`` = ``resource`` (the
        ledger's query columns); ``ce_source`` is ``actor``.
        """
        if self._publisher is None or self._registry is None:
            raise HubError("This ledger was built without a publisher.", code="config_invalid")
        from core.events import OutgoingEvent

        self._ensure_audit_topic()
        event = OutgoingEvent(
            value={
                "action": action,
                "actor": actor,
                "resource": resource,
                "outcome": outcome,
                "details": json.dumps(dict(details or {}), sort_keys=True, default=str),
                "recorded_at": datetime.now(UTC).isoformat(),
            },
            key=resource,
            headers={H_ACTION: action, H_SUBJECT: resource},
        )
        return self._publisher.publish(AUDIT_TOPIC, [event], producer=actor, tenant=tenant)[0]

    def _ensure_audit_topic(self) -> None:
        if self._audit_ready:
            return
        from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG

        assert self._registry is not None
        self.log.create_topic(
            AUDIT_TOPIC, 1, {STRATEGY_CONFIG: "topic", KEY_FIELD_CONFIG: "resource"}
        )
        self._registry.register(f"{AUDIT_TOPIC}-value", AUDIT_SCHEMA)
        self._audit_ready = True

    # -- queries -----------------------------------------------------------------------------
    def index_of(self, topic: str, partition: int, offset: int) -> int | None:
        """The ledger entry of a log record (None until a sync has given it a leaf)."""
        return self.store.index_of(topic, partition, offset)

    def record_at(self, topic: str, partition: int, offset: int) -> StoredRecord | None:
        try:
            got = self.log.read(topic, partition, offset, 1)
        except HubError:
            return None
        return got[0] if got and got[0].offset == offset else None

    def entries(self, *, with_fields: bool = False, **filters: Any) -> list[dict[str, Any]]:
        """Entries matching filters (see ``LedgerStore.query``), in index order.

        A filter on one of the hub's own action names (``core.hubactions.means_hub``) without
        a topic matches entries of internal topics only: a data record's action is its event
        type, which a publisher names (a schema called ``subject.erase`` is not an erasure)."""
        if means_hub(filters.get("action")) and not (filters.get("topic") or filters.get("topics")):
            internal = hub_topics(t.name for t in self.log.topics())
            if not internal:
                return []
            filters = {**filters, "topics": internal}
        rows = self.store.query(**filters)
        records = self.records_of(rows)
        out = []
        for r in rows:
            record = records.get((r[1], r[2], r[3]))  # None: removed by retention
            if record is not None and not with_fields:
                check_row(r, record)  # the columns shown and filtered on are the log's
                record = None
            out.append(entry_fields(r, record))
        return out

    def records_of(self, rows: Sequence[LeafRow]) -> dict[tuple[str, int, int], StoredRecord]:
        """The log records of ``rows`` by (topic, partition, offset), read a run of near
        offsets at a time (one ``read`` per run, not per row); a record no longer in the log is
        absent. Runs are cut at gaps over ``_RUN_GAP`` so a sparse page reads little else."""
        wanted: dict[tuple[str, int], list[int]] = {}
        for r in rows:
            wanted.setdefault((r[1], r[2]), []).append(r[3])
        out: dict[tuple[str, int, int], StoredRecord] = {}
        for (topic, part), offsets in wanted.items():
            offsets.sort()
            first = 0
            for i in range(1, len(offsets) + 1):
                if i < len(offsets) and offsets[i] - offsets[i - 1] <= _RUN_GAP:
                    continue
                self._read_run(topic, part, offsets[first:i], out)
                first = i
        return out

    def _read_run(
        self,
        topic: str,
        part: int,
        offsets: Sequence[int],
        out: dict[tuple[str, int, int], StoredRecord],
    ) -> None:
        pos, hi = offsets[0], offsets[-1]
        while pos <= hi:
            try:
                got = self.log.read(topic, part, pos, min(2_000, hi + 1 - pos))
            except HubError:  # below the log's start (retention): what is left, row by row
                got = []
            if not got:
                break
            for rec in got:
                if rec.offset <= hi:
                    out[(topic, part, rec.offset)] = rec
            pos = got[-1].offset + 1
        if pos <= hi:  # the rest unread (a removed range): one record each, as record_at does
            for off in offsets:
                if off < pos:
                    continue
                one = self.record_at(topic, part, off)
                if one is not None:
                    out[(topic, part, off)] = one

    def checkpoint_for(self, index: int, size: int | None) -> StoredCheckpoint:
        """The checkpoint ``size`` (it MUST include ``index``), or the latest one."""
        if size is None:
            cp = self.store.latest_checkpoint()
            if cp is None or cp.size <= index:
                raise CheckpointNotFound(
                    f"No signed checkpoint includes entry {index} yet: run `hub ledger sync` "
                    "(which signs one) or wait for the next checkpoint."
                )
            return cp
        cp = self.store.checkpoint(size)
        if cp is None:
            raise CheckpointNotFound(
                f"There is no checkpoint of size {size}: list them with `hub ledger checkpoints`."
            )
        if cp.size <= index:
            raise InvalidRange(
                f"Checkpoint {size} does not include entry {index} (it holds entries 0 to "
                f"{size - 1}); pick a larger checkpoint."
            )
        return cp

    def entry(
        self, index: int, checkpoint: int | None = None, *, tenant_scope: str | None = None
    ) -> dict[str, Any]:
        """An entry with its fields and its inclusion proof against a checkpoint. With
        ``tenant_scope`` (a reader limited to that tenant, see :func:`tenant_scope_of`), another
        tenant's entry raises the same ``EntryNotFound`` as a missing one."""
        row = self.store.leaf(index)
        if row is None or not in_scope(row, tenant_scope):
            raise EntryNotFound(
                f"There is no ledger entry {index} (the tree has {self.store.tree_size()} entries)."
            )
        cp = self.checkpoint_for(index, checkpoint)
        out = entry_fields(row, self.record_at(row[1], row[2], row[3]))
        out["checkpoint"] = {
            "size": cp.size,
            "root": cp.root.hex(),
            "note": cp.note.decode(),
        }
        out["proof"] = [p.hex() for p in self.store.inclusion_proof(index, cp.size)]
        return out

    def proof(self, index: int, size: int) -> list[bytes]:
        return self.store.inclusion_proof(index, size)

    def checkpoints(
        self, *, min_size: int = 0, max_size: int | None = None
    ) -> list[StoredCheckpoint]:
        return self.store.checkpoints(min_size=min_size, max_size=max_size)

    def consistency(self, size1: int, size2: int) -> dict[str, Any]:
        """Consistency proof between two signed checkpoints."""
        if size1 > size2:
            raise InvalidRange(
                f"A consistency proof goes from a smaller to a larger tree: got from={size1} "
                f"to={size2}; swap them."
            )
        cps = []
        for s in (size1, size2):
            cp = self.store.checkpoint(s)
            if cp is None:
                raise CheckpointNotFound(
                    f"There is no checkpoint of size {s}: list them with `hub ledger checkpoints`."
                )
            cps.append(cp)
        return {
            "from": {"size": size1, "root": cps[0].root.hex(), "note": cps[0].note.decode()},
            "to": {"size": size2, "root": cps[1].root.hex(), "note": cps[1].note.decode()},
            "proof": [p.hex() for p in self.store.consistency_proof(size1, size2)],
        }

    def public_key(self) -> str:
        return self.signer.verifier_key()
