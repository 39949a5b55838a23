"""SqliteEventLog: the embedded EventLog, one SQLite file (the stored batch format is in
``batch``, the authentication MACs in ``auth``, transactions in ``transactions``).

Storage (schema version 1)
- ``batches``: one row per appended batch per partition, as Kafka stores record batches: topic
  id, partition, base and last offset, record count, max timestamp, and one BLOB holding the
  records in the columnar format of ``encode_batch`` (CRC-checked on every read; format 2
  compresses each batch with zstd and refuses a body that declares more than a bounded
  inflated size, format 1 batches of older logs stay readable as they are). A read finds
  the batch holding its offset through the unique index on (topic, partition, base offset).
- ``partitions``: each partition's next offset (the end offset), read and advanced inside the
  append's write transaction, so writers in several threads or processes never leave gaps or
  duplicates.
- ``producers``: per (producer id, topic) the last idempotent sequence and where that batch
  landed, written in the same transaction as the batch.
- ``group_offsets``: per (group, topic, partition) the next offset to read.

Authentication (schema version 2; on when the log is opened with ``mac_key``)
    The log file alone cannot prove its contents: anyone who can write it can re-encode a batch
    with a fresh CRC. So each append also stores, in the same transaction, per stored batch a
    MAC (HMAC-SHA256 under ``mac_key``, which the hub keeps outside the log file) over the
    topic name, partition, base and last offset, record count, max timestamp, the batch bytes
    and the previous batch's MAC (a chain per partition, rooted at the partition's ``anchor``);
    and per partition a seal: a MAC over its start and next offsets, anchor and chain head (the
    last batch's MAC). Topics carry a MAC over name, partition count and config. Hence:
    - a changed, forged, moved, duplicated or reordered batch fails its MAC;
    - a removed batch breaks the chain at the next one (or the head, at the end);
    - a changed start or end offset, anchor or head fails the partition's seal; retention
      (``delete_records_before``) re-seals the partition with the MAC of the last removed batch
      as the new anchor, so only a cut made with the key verifies;
    - a changed partition count or config fails the topic's MAC.
    ``check_records`` (the ledger calls it before adopting records) and ``integrity_problems``
    (``hub ledger verify``) check them; plain reads do not (they stay as fast as before). Not
    authenticated: consumer group offsets and idempotent producer state (positions, not
    records: tampering them re-reads or refuses records, it cannot change one). A v1 file
    opened with a key is refused unless the caller asks to seal it as found (``seal_v1``, the
    hub's ``HUB_LOG_SEAL_V1``: trust on first use, once, for a log from before the MAC): a
    downgrade to v1 needs no key.

Concurrency and durability
- WAL mode. Every write is one ``BEGIN IMMEDIATE`` transaction on one writer connection guarded
  by a lock; reads use their own connections and see committed data only. With
  ``synchronous="FULL"`` (the default) a batch is on disk when ``append`` returns; ``"NORMAL"``
  survives process crashes but may lose the last commits on power loss.
- Group commit (``groupcommit``): appends of concurrent threads that queue while one commits
  share the next transaction and its fsync, each batch under its own SAVEPOINT (a failing batch
  fails only its own caller); every caller returns only once that transaction committed.
- Waiting longer than ``busy_timeout_s`` for the write lock (held by another thread or process)
  raises ``StorageBusy``.
- A transaction holds the write lock from its start to commit or abort: offsets returned by its
  ``append`` are final, and two transactions never interleave, which also fences zombies (a
  second transaction with the same id waits until the first ended; a ``Transaction`` refuses use
  once ended). Other writers wait meanwhile, so keep transactions short.
- ``":memory:"`` (unit tests) uses the writer connection for reads too, so a read on the thread
  that holds an open transaction sees its staged records.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from itertools import pairwise, repeat
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import numpy as np

from adapters.sqlite_log.auth import (
    MIN_MAC_KEY_BYTES,
    ZERO_MAC,
    ReadChain,
    StoredRow,
    batch_mac,
    partition_seal,
    topic_mac,
)
from adapters.sqlite_log.auth import bad_batch as _bad_batch
from adapters.sqlite_log.auth import bad_head as _bad_head
from adapters.sqlite_log.auth import bad_seal as _bad_seal
from adapters.sqlite_log.auth import unsealed as _unsealed
from adapters.sqlite_log.batch import (
    CorruptBatch,
    InvalidBatch,
    Kept,
    PartitionGroup,
    PreparedAppend,
    SqliteAppended,
    StoredTopic,
    decode_columns,
    decode_records,
    encode_batch_columns,
    encode_batch_columns_kept,
    encode_batch_kept,
    new_stored,
    open_batch,
    plain_header_names,
    stored_header_names,
)
from adapters.sqlite_log.columns import Piece, join
from adapters.sqlite_log.groupcommit import GroupCommit
from adapters.sqlite_log.handoff import HandedChain, Receiver, StoredHandoff
from adapters.sqlite_log.handoff import check as check_handed
from adapters.sqlite_log.transactions import SqliteTransaction
from adapters.sqlite_open import MMAP_BYTES, connect
from core.errors import (
    ConfigError,
    HubError,
    InvalidInput,
    LogTampered,
    OutOfOrderSequence,
    StorageBusy,
    TopicExists,
    TopicNotFound,
    is_storage_full,
    storage_full,
)
from core.partitioner import default_partition
from core.ports.eventlog import (
    RECORD_OVERHEAD_BYTES,
    AppendedMetadata,
    AppendSignal,
    ColumnBatch,
    EncodedBatch,
    EncodedColumns,
    EventLog,
    Headers,
    IdempotenceKey,
    LogProblem,
    Record,
    RecordColumns,
    RecordMetadata,
    StoredRecord,
    TopicInfo,
    TopicPartition,
    Transaction,
    metadata_list,
    payload_size,
)
from core.ports.eventlog_checks import MAX_TIMESTAMP_MS, record_problem
from core.ports.eventlog_checks import check_id as _check_id
from core.ports.eventlog_checks import check_offset as _check_offset
from core.ports.eventlog_checks import check_topic_name as _check_topic_name

SCHEMA_VERSION: Final = 2
APPLICATION_ID: Final = 0x48554231  # "HUB1": marks the file as a hub event log
MAX_BATCH_RECORDS: Final = 4096  # records per stored batch: bounds a read's decode and memory
MAX_BATCH_BYTES: Final = 8 << 20  # key and value bytes per stored batch, far below SQLite's 1 GB
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_NONE = type(None)
_BYTES_OR_NONE = frozenset((bytes, _NONE))
_INT_OR_NONE = frozenset((int, _NONE))
_PAIR_TYPES = frozenset((tuple, list))
_MAX_TS = MAX_TIMESTAMP_MS

_SCHEMA = """
CREATE TABLE topics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so cached batches stay valid
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL CHECK (partitions >= 1),
    config TEXT NOT NULL,
    mac BLOB  -- HMAC of (name, partitions, config), NULL when the log has no MAC key
);
CREATE TABLE partitions (
    topic_id INTEGER NOT NULL,
    part INTEGER NOT NULL,
    start_offset INTEGER NOT NULL DEFAULT 0,
    next_offset INTEGER NOT NULL DEFAULT 0,
    anchor BLOB,  -- the MAC chain's value before the first stored batch (zeros at first)
    head BLOB,  -- the last batch's MAC (the anchor while there is none)
    mac BLOB,  -- the seal: HMAC of (topic, part, start, next, anchor, head)
    PRIMARY KEY (topic_id, part)
) WITHOUT ROWID;
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    topic_id INTEGER NOT NULL,
    part INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    record_count INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    mac BLOB,  -- HMAC chain link (see the module docstring), NULL without a MAC key
    data BLOB NOT NULL  -- last: offset lookups then never touch its overflow pages
);
CREATE UNIQUE INDEX batches_by_offset ON batches (topic_id, part, base_offset);
CREATE TABLE producers (
    producer_id TEXT NOT NULL,
    topic_id INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    record_count INTEGER NOT NULL,
    placement TEXT NOT NULL,  -- JSON [[partition, base_offset, count], ...] of that batch
    PRIMARY KEY (producer_id, topic_id)
) WITHOUT ROWID;
CREATE TABLE group_offsets (
    group_id TEXT NOT NULL,
    topic_id INTEGER NOT NULL,
    part INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic_id, part)
) WITHOUT ROWID;
"""

# SQL used on hot paths, kept verbatim so sqlite3's statement cache reuses the prepared form.
_SQL_NEXT = "SELECT next_offset FROM partitions WHERE topic_id = ? AND part = ?"
_SQL_NEXT_SEALED = (
    "SELECT next_offset, start_offset, anchor, head FROM partitions WHERE topic_id = ? AND part = ?"
)
_SQL_ADVANCE = "UPDATE partitions SET next_offset = ? WHERE topic_id = ? AND part = ?"
_SQL_ADVANCE_SEALED = (
    "UPDATE partitions SET next_offset = ?, head = ?, mac = ? WHERE topic_id = ? AND part = ?"
)
_SQL_INSERT = (
    "INSERT INTO batches (topic_id, part, base_offset, last_offset, record_count,"
    " max_timestamp, mac, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_START = "SELECT start_offset FROM partitions WHERE topic_id = ? AND part = ?"
_SQL_LAST_BATCH_BELOW = (
    "SELECT base_offset, record_count FROM batches WHERE topic_id = ? AND part = ?"
    " AND base_offset < ? ORDER BY base_offset DESC LIMIT 1"
)
_T = TypeVar("_T")
_SQL_BATCHES_FROM = (
    "SELECT id, base_offset, record_count FROM batches WHERE topic_id = ?1 AND part = ?2"
    " AND base_offset >= coalesce((SELECT base_offset FROM batches WHERE topic_id = ?1"
    " AND part = ?2 AND base_offset <= ?3 ORDER BY base_offset DESC LIMIT 1), 0)"
    " ORDER BY base_offset"
)


def _first_offset(conn: sqlite3.Connection, topic: StoredTopic, partition: int, offset: int) -> int:
    """Where a read from ``offset`` starts: there, or at the partition's start above it."""
    (start,) = conn.execute(_SQL_START, (topic.id, partition)).fetchone()
    return max(offset, int(start))


# ``_check_partition``'s batches overlapping [?3, ?4), with their bytes: the base-offset index
# bounds both ends (the batch holding ?3 is the last one based at or below it); a bare
# ``base_offset + record_count > ?3`` scanned the partition from its first batch on every check.
_SQL_CHECK_ROWS = (
    "SELECT base_offset, last_offset, record_count, max_timestamp, mac, data FROM batches"
    " WHERE topic_id = ?1 AND part = ?2 AND base_offset >= coalesce((SELECT base_offset"
    " FROM batches WHERE topic_id = ?1 AND part = ?2 AND base_offset <= ?3"
    " ORDER BY base_offset DESC LIMIT 1), 0) AND base_offset + record_count > ?3"
    " AND base_offset < ?4 ORDER BY base_offset"
)

_SQL_BOUNDS = (
    "SELECT start_offset, next_offset, anchor, head, mac FROM partitions"
    " WHERE topic_id = ? AND part = ?"
)


def _mac_before(
    conn: sqlite3.Connection, tid: int, part: int, offset: int, anchor: bytes | None
) -> bytes:
    """The MAC the chain link of a batch at ``offset`` follows: the batch before it, or the
    partition's anchor when none is stored."""
    got = conn.execute(
        "SELECT mac FROM batches WHERE topic_id = ? AND part = ? AND base_offset < ?"
        " ORDER BY base_offset DESC LIMIT 1",
        (tid, part, offset),
    ).fetchone()
    return bytes(anchor or b"") if got is None else bytes(got[0] or b"")


def _covering(
    read: Sequence[EncodedColumns], name: str, part: int, start: int, end: int
) -> list[ReadChain] | None:
    """The authenticated reads of ``read`` in offset order when together they cover
    ``[start, end)`` of the partition with no gap (each read begins at or before where the one
    before it stopped, the first at or before ``start``, the last reaching ``end``); None
    otherwise (``check_records`` then reads the range)."""
    chains: dict[int, ReadChain] = {}
    for c in read:
        if c.topic != name or c.partition != part or not isinstance(c.auth, ReadChain):
            return None
        chains.setdefault(id(c.auth), c.auth)
    ordered = sorted((ch for ch in chains.values() if ch.rows), key=lambda ch: ch.asked)
    if not ordered or ordered[0].asked > start or ordered[-1].reached < end:
        return None
    for a, b in pairwise(ordered):
        if b.asked > a.reached:
            return None
    return ordered


def _check_chains(
    key: bytes, name: str, part: int, end: int, chains: Sequence[ReadChain]
) -> LogProblem | None:
    """``_check_partition`` over the batches the reads carry (from the first read's first batch
    to the last batch below ``end``), their chain starting at the MAC the first read found
    before it; the seal and chain head as the last read found them."""
    rows: dict[int, StoredRow] = {}
    for ch in chains:
        for row in ch.rows:
            seen = rows.setdefault(row[0], row)
            if seen != row:  # two reads found a batch different: say so as a failing batch
                return _bad_batch(name, part, row[0], row[2])
    prev = chains[0].prev
    for base, last, count, max_ts, mac, blob in sorted(rows.values()):
        if base >= end:
            break
        want = batch_mac(key, name, (part, base, last, count, max_ts), prev, blob)
        if mac is None or not hmac.compare_digest(mac, want):
            return _bad_batch(name, part, base, count)
        prev = mac
    start, stop, anchor, head, seal = chains[-1].bounds
    if seal is None or anchor is None or head is None:
        return _unsealed(name, part)
    if not hmac.compare_digest(seal, partition_seal(key, name, part, start, stop, anchor, head)):
        return _bad_seal(name, part, start, stop)
    if end >= stop and not hmac.compare_digest(prev, head):
        return _bad_head(name, part, stop)
    return None


_Extent = tuple[int, int, int, int, int]
"""A stored batch a read takes records of: (batch id, base offset, record count, first record
taken, end of those taken)."""


def _extents(
    conn: sqlite3.Connection, topic: StoredTopic, partition: int, offset: int, limit: int
) -> list[_Extent]:
    """The stored batches holding up to ``limit`` records from ``offset`` on (a partition's
    start already applied)."""
    out: list[_Extent] = []
    got = 0
    cur = conn.execute(_SQL_BATCHES_FROM, (topic.id, partition, offset))
    try:
        for batch_id, base, count in cur:
            if base + count <= offset:
                continue
            first = max(offset - base, 0)
            stop = min(count, first + limit - got)
            out.append((batch_id, base, count, first, stop))
            got += stop - first
            if got >= limit:
                break
    finally:
        cur.close()  # an unfinished statement would pin the WAL snapshot
    return out


# -- input validation (shared with every adapter: hub.ports.eventlog_checks) -----------------------
def _explain_invalid(records: Sequence[object], partitions: int, topic: str) -> InvalidInput:
    """The slow path: name the first invalid record and field once the fast checks failed."""
    for i, r in enumerate(records):
        problem = record_problem(r, i, partitions, topic)
        if problem is not None:
            return problem
    return InvalidInput(f"The batch for topic {topic!r} is invalid.")


def _sliced(
    columns: Sequence[bytes | Sequence[bytes]],
    cut: Callable[[Sequence[bytes]], Sequence[bytes]],
) -> tuple[bytes | Sequence[bytes], ...]:
    """``cut`` of every per-record column (shared values kept); a column given twice (the
    envelope's event id is also its correlation id) is cut once and stays one object, so
    ``encode_batch_columns`` encodes it once."""
    done: dict[int, Sequence[bytes]] = {}
    out: list[bytes | Sequence[bytes]] = []
    for c in columns:
        if isinstance(c, bytes):
            out.append(c)
        else:
            got = done.get(id(c))
            if got is None:
                got = done[id(c)] = cut(c)
            out.append(got)
    return tuple(out)


def _unkept(encode: Callable[..., bytes]) -> Callable[..., Kept]:
    """A stored-batch encoder as ``Kept`` without the body (no receiver wants it)."""
    return lambda *args: (encode(*args), None)


def _picker(idx: list[int]) -> Callable[[Sequence[_T]], Sequence[_T]]:
    """The items at ``idx`` of a sequence, as a tuple: one ``itemgetter`` built per partition
    and called per column (C-level; 6x faster per column than ``list(map(seq.__getitem__,
    idx))`` on 1,250 of 10,000 items). ``itemgetter`` of one index answers the item itself."""
    if len(idx) == 1:
        i = idx[0]
        return lambda seq: (seq[i],)
    return itemgetter(*idx)


def _chunk_bounds(
    count: int, keys: Sequence[bytes | None], values: Sequence[bytes | None]
) -> list[tuple[int, int]]:
    """Where a partition's ``count`` records are cut into stored batches, in order: at most
    ``MAX_BATCH_RECORDS`` each, halved while a batch holds more than ``MAX_BATCH_BYTES`` of
    keys and values (a batch of one record is never cut)."""
    out: list[tuple[int, int]] = []
    todo = [(0, count)]
    while todo:
        start, stop = todo.pop()
        if stop - start > MAX_BATCH_RECORDS:
            mid = start + MAX_BATCH_RECORDS
            todo += ((mid, stop), (start, mid))
            continue
        k, v = keys[start:stop], values[start:stop]
        size = sum(map(len, filter(None, k))) + sum(map(len, filter(None, v)))
        if size > MAX_BATCH_BYTES and stop - start > 1:
            mid = (start + stop) // 2
            todo += ((mid, stop), (start, mid))
            continue
        out.append((start, stop))
    return out


def _load_native_prepare() -> Callable[..., tuple[int, list[Any]] | None] | None:
    """Route, cut and write a column append in one native call (native/src/prepare_columns.rs);
    None when not built (or built from sources without it): ``_prepare_columns``' Python runs."""
    try:
        import hub_native
    except ImportError:
        return None
    return getattr(hub_native, "prepare_stored_columns", None)


native_prepare = _load_native_prepare()


# -- the adapter ----------------------------------------------------------------------------------
class SqliteEventLog(EventLog):
    """The embedded EventLog over one SQLite file (see the module docstring for the contract)."""

    commits_locally = True  # a transaction is one SQLite COMMIT of the log file

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_s: float = 5.0,
        cache_records: int = 65_536,
        mac_key: bytes | None = None,
        seal_v1: bool = False,
    ) -> None:
        """``mac_key``: authenticate every append (see the module docstring); the caller keeps
        it outside the log file. Without it nothing is authenticated (unit tests, tools).
        ``seal_v1``: with a key, a schema v1 file (no MAC columns) is sealed as found; without
        it, such a file is refused (``LogTampered``): dropping the MAC columns and setting
        ``user_version`` back to 1 needs no key, and sealing what is then found would
        authenticate whatever was edited meanwhile."""
        if mac_key is not None and (type(mac_key) is not bytes or len(mac_key) < MIN_MAC_KEY_BYTES):
            raise ConfigError(
                f"The event log MAC key must be at least {MIN_MAC_KEY_BYTES} random bytes; "
                "pass the contents of the log key file (created by the hub on first use)."
            )
        if not isinstance(synchronous, str) or synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigError(
                f"synchronous={synchronous!r} is not a SQLite synchronous level; use one of "
                f"{', '.join(_SYNCHRONOUS)} (FULL is durable when an append returns)."
            )
        if busy_timeout_s < 0:
            raise ConfigError(f"busy_timeout_s={busy_timeout_s!r} must be >= 0 seconds.")
        self._path = str(path)
        self._key = mac_key
        self._seal_v1 = bool(seal_v1)
        self._memory = self._path == ":memory:"
        self._synchronous = synchronous.upper()
        self._busy_timeout = float(busy_timeout_s)
        self._lock = threading.Lock()  # guards the writer connection
        self._appended = AppendSignal()  # bumped after every committed write (followers wait)
        self._txn_thread: int | None = None  # thread whose open transaction holds the lock
        self._closed = False
        self._topics: dict[str, StoredTopic] = {}  # topics are never deleted or changed: cache them
        self._route_cache: dict[int, dict[bytes | None, int]] = {}
        self._cache: OrderedDict[tuple[int, int, int], list[StoredRecord]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_limit = cache_records
        self._cached = 0
        self._readers: list[sqlite3.Connection] = []  # idle read connections
        self._group = GroupCommit(self)  # appends of concurrent threads share one commit
        self._handoff = StoredHandoff(self._decode_encoded)  # on_stored
        self._writer = self._connect()
        try:
            self._setup()
        except BaseException:
            self._writer.close()
            raise

    # -- connections -----------------------------------------------------------------------------
    def _connect(self, *, reader: bool = False) -> sqlite3.Connection:
        """Autocommit (we issue ``BEGIN IMMEDIATE``/``COMMIT`` ourselves), shared across threads
        (guarded by our locks)."""
        if reader:
            pragmas: tuple[str, ...] = ("query_only = ON", f"mmap_size = {MMAP_BYTES}")
        else:
            wal = () if self._memory else ("journal_mode = WAL",)
            pragmas = (*wal, f"synchronous = {self._synchronous}")
        try:
            return connect(self._path, pragmas, timeout=self._busy_timeout)
        except sqlite3.Error as exc:
            raise self._translate(exc, "opening the database") from exc

    def _setup(self) -> None:
        with self._write("creating the schema") as conn:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                if conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]:
                    raise ConfigError(
                        f"{self._path} is a SQLite database but not a hub event log; "
                        "point the event log at a new file or an existing log."
                    )
                # One by one: executescript would commit the open transaction first.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif app_id != APPLICATION_ID:
                raise ConfigError(
                    f"{self._path} is not a hub event log (application id {app_id:#x}); "
                    "point the event log at a new file or an existing log."
                )
            elif version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self._path} has event log schema version {version}, newer than this "
                    f"hub's {SCHEMA_VERSION}; upgrade the hub to open it."
                )
            elif version == SCHEMA_VERSION and self._key is not None and self._seal_v1:
                # left on after the one upgrade it is for, the next downgrade would be sealed
                raise ConfigError(
                    f"HUB_LOG_SEAL_V1 is set, but the event log {self._path} is already sealed "
                    "(schema version 2): unset it. Left on, a log whose MAC columns someone "
                    "removed would be sealed as found, edits included."
                )
            elif version == 1:  # v1 -> v2: MAC columns, sealed as found (trust on first use)
                if self._key is not None and not self._seal_v1:
                    # A downgrade costs no key (drop five columns, set user_version = 1): an
                    # automatic seal let whoever can write the file edit records, remove the
                    # ledger, and have the hub authenticate and re-sign the edited history.
                    raise LogTampered(
                        f"The event log {self._path} has schema version 1: its batches carry no "
                        "MACs, so the hub cannot tell a log written before authentication from "
                        "one whose MAC columns were removed (a downgrade hides any edit). It is "
                        "not sealed as found. Restore the log file from a backup; if this really "
                        "is a log written by a hub version before the log MAC, check it and "
                        "start once with HUB_LOG_SEAL_V1=true to seal it as it is."
                    )
                for statement in (
                    "ALTER TABLE topics ADD COLUMN mac BLOB",
                    "ALTER TABLE partitions ADD COLUMN anchor BLOB",
                    "ALTER TABLE partitions ADD COLUMN head BLOB",
                    "ALTER TABLE partitions ADD COLUMN mac BLOB",
                    "ALTER TABLE batches ADD COLUMN mac BLOB",
                ):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                if self._key is not None:
                    self._seal_all(conn, self._key)
            if self._key is not None:
                self._check_key(conn, self._key)
                self._check_orphans(conn)

    def _check_orphans(self, conn: sqlite3.Connection) -> None:
        """Refuse partitions or batches whose topic row is gone: a deleted topic row made the
        hub create the topic anew, empty (an audit or state topic read as never written,
        e.g. revocations folded away), appending over offsets the ledger already holds."""
        row = conn.execute(
            "SELECT topic_id, count(*) FROM partitions WHERE topic_id NOT IN "
            "(SELECT id FROM topics) GROUP BY topic_id LIMIT 1"
        ).fetchone()
        if row is None:  # the batches' topic ids, one index probe each (no full scan)
            ids = {int(r[0]) for r in conn.execute("SELECT id FROM topics")}
            probe = conn.execute("SELECT min(topic_id) FROM batches").fetchone()
            while probe is not None and probe[0] is not None:
                if int(probe[0]) not in ids:
                    row = (int(probe[0]), None)
                    break
                probe = conn.execute(
                    "SELECT min(topic_id) FROM batches WHERE topic_id > ?", (int(probe[0]),)
                ).fetchone()
        if row is not None:
            raise LogTampered(
                f"The event log {self._path} holds partitions or batches of topic id {row[0]} "
                "whose topic row is gone: a topic was deleted without the log key. The hub "
                "does not open it (it would recreate the topic empty); restore the log file "
                "from a backup."
            )

    def _check_key(self, conn: sqlite3.Connection, key: bytes) -> None:
        """Refuse a key that authenticates none of the log's MACs (topics and partition
        seals): the key file was deleted (and made anew) or replaced. Appending under it
        would re-key the log silently, the old batches failing verification from then on and
        whoever chose the key able to forge what follows. One changed topic or seal is not
        this: ``integrity_problems`` names it, and the log still opens."""
        topics = {
            int(tid): (str(name), int(nparts), str(config), mac)
            for tid, name, nparts, config, mac in conn.execute(
                "SELECT id, name, partitions, config, mac FROM topics"
            )
        }
        macs = 0
        for name, nparts, config, mac in topics.values():
            if mac is not None:
                macs += 1
                if hmac.compare_digest(bytes(mac), topic_mac(key, name, nparts, config)):
                    return
        for tid, part, start, end, anchor, head, seal in conn.execute(
            "SELECT topic_id, part, start_offset, next_offset, anchor, head, mac FROM partitions"
        ):
            if seal is None or anchor is None or head is None or int(tid) not in topics:
                continue
            macs += 1
            name = topics[int(tid)][0]
            want = partition_seal(key, name, int(part), int(start), int(end), anchor, head)
            if hmac.compare_digest(bytes(seal), want):
                return
        if macs:
            raise ConfigError(
                f"The event log MAC key does not authenticate the log {self._path}: none of "
                f"its {macs} topic and partition MACs matches. The key file was deleted (and "
                "made anew) or replaced; restore it from a backup of the keys folder. The hub "
                "does not re-key an existing log."
            )

    def _seal_all(self, conn: sqlite3.Connection, key: bytes) -> None:
        """Compute every MAC of a log that has none (the v1 upgrade)."""
        topics = conn.execute("SELECT id, name, partitions, config FROM topics").fetchall()
        for tid, name, nparts, config in topics:
            conn.execute(
                "UPDATE topics SET mac = ? WHERE id = ?",
                (topic_mac(key, name, nparts, config), tid),
            )
            parts = conn.execute(
                "SELECT part, start_offset, next_offset FROM partitions WHERE topic_id = ?",
                (tid,),
            ).fetchall()
            for part, start, end in parts:
                head = ZERO_MAC
                rows = conn.execute(
                    "SELECT id, base_offset, last_offset, record_count, max_timestamp, data"
                    " FROM batches WHERE topic_id = ? AND part = ? ORDER BY base_offset",
                    (tid, part),
                ).fetchall()
                for bid, base, last, count, max_ts, blob in rows:
                    head = batch_mac(key, name, (part, base, last, count, max_ts), head, blob)
                    conn.execute("UPDATE batches SET mac = ? WHERE id = ?", (head, bid))
                seal = partition_seal(key, name, part, start, end, ZERO_MAC, head)
                conn.execute(
                    "UPDATE partitions SET anchor = ?, head = ?, mac = ?"
                    " WHERE topic_id = ? AND part = ?",
                    (ZERO_MAC, head, seal, tid, part),
                )

    def _translate(self, exc: sqlite3.Error, doing: str) -> HubError:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc):
            return StorageBusy(
                f"The event log {self._path} stayed locked by another writer for "
                f"{self._busy_timeout} s while {doing}; retry, or raise busy_timeout_s."
            )
        if is_storage_full(exc):
            return storage_full(f"SQLite failed while {doing} on the event log {self._path}.")
        return HubError(
            f"SQLite failed while {doing} on the event log {self._path}: {exc}.",
            code="storage_error",
        )

    def _check_usable(self) -> None:
        if self._closed:
            raise HubError(f"The event log {self._path} is closed; open a new SqliteEventLog.")
        if self._txn_thread == threading.get_ident():
            raise HubError(
                "This thread has a transaction open on this event log, which holds its write "
                "lock; write through that Transaction (txn.append, txn.commit_offsets) instead.",
                code="transaction_open",
            )

    def _acquire(self, doing: str) -> None:
        if not self._lock.acquire(timeout=self._busy_timeout):
            raise StorageBusy(
                f"Another thread held the event log {self._path} write lock for "
                f"{self._busy_timeout} s (an open transaction?) while {doing}; retry later."
            )

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``) on the writer connection, under the lock,
        that appends no record (appends commit through ``groupcommit``)."""
        self._check_usable()
        self._acquire(doing)
        try:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._translate(exc, doing) from exc
            try:
                yield conn
                conn.execute("COMMIT")
                self._appended.bump()
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc, doing) from exc
                raise
        finally:
            self._lock.release()

    @contextmanager
    def _read(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A connection that sees committed data only (the writer's for ``:memory:``)."""
        if self._closed:
            raise HubError(f"The event log {self._path} is closed; open a new SqliteEventLog.")
        try:
            if self._memory:
                if self._txn_thread == threading.get_ident():
                    yield self._writer
                    return
                self._acquire(doing)
                try:
                    yield self._writer
                finally:
                    self._lock.release()
                return
            try:
                conn = self._readers.pop()
            except IndexError:
                conn = self._connect(reader=True)
            try:
                yield conn
            finally:
                if self._closed:
                    conn.close()
                else:
                    self._readers.append(conn)
        except sqlite3.Error as exc:
            raise self._translate(exc, doing) from exc

    # -- topics ------------------------------------------------------------------------------------
    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        """Create a topic, or return it if it exists with the same partition count.

        An existing topic keeps its stored config (the ``config`` passed is then ignored).
        """
        _check_topic_name(name)
        if type(partitions) is not int or partitions < 1:
            raise InvalidInput(
                f"partitions={partitions!r} is invalid for topic {name!r}: pass an int >= 1."
            )
        cfg = dict(config or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in cfg.items()):
            raise InvalidInput(
                f"The config of topic {name!r} must map str to str (as Kafka's does), got {cfg!r}."
            )
        with self._write(f"creating topic {name!r}") as conn:
            row = conn.execute(
                "SELECT id, partitions, config, mac FROM topics WHERE name = ?", (name,)
            ).fetchone()
            if row is not None:
                self._check_topic_row(name, row[1], row[2], row[3])
            if row is None:
                text = json.dumps(cfg, sort_keys=True)
                key = self._key
                cur = conn.execute(
                    "INSERT INTO topics (name, partitions, config, mac) VALUES (?, ?, ?, ?)",
                    (name, partitions, text, key and topic_mac(key, name, partitions, text)),
                )
                topic_id = cur.lastrowid
                conn.executemany(
                    "INSERT INTO partitions (topic_id, part, anchor, head, mac)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            topic_id,
                            p,
                            key and ZERO_MAC,
                            key and ZERO_MAC,
                            key and partition_seal(key, name, p, 0, 0, ZERO_MAC, ZERO_MAC),
                        )
                        for p in range(partitions)
                    ],
                )
                row = (topic_id, partitions, json.dumps(cfg), None)
        topic = StoredTopic(row[0], TopicInfo(name, row[1], json.loads(row[2])))
        if topic.info.partitions != partitions:
            raise TopicExists(
                f"Topic {name!r} already exists with {topic.info.partitions} partitions, not "
                f"{partitions}; use the existing count or another topic name."
            )
        self._topics[name] = topic
        return topic.info

    def topics(self) -> list[TopicInfo]:
        with self._read("listing topics") as conn:
            rows = conn.execute(
                "SELECT name, partitions, config, mac FROM topics ORDER BY name"
            ).fetchall()
        for n, p, c, mac in rows:
            self._check_topic_row(n, p, c, mac)
        return [TopicInfo(n, p, json.loads(c)) for n, p, c, _mac in rows]

    def _check_topic_row(self, name: str, partitions: int, config: str, mac: bytes | None) -> None:
        """Refuse a topic row that fails its MAC: its partition count and config (retention,
        compaction, key field, subject-name strategy, owner) steer every read and write of
        the topic, and whoever can write the log file but not ``keys/`` could change them
        (a shorter retention, compaction of an audit topic, records routed to a partition
        nobody reads)."""
        key = self._key
        if key is None:
            return
        if mac is None or not hmac.compare_digest(
            bytes(mac), topic_mac(key, name, int(partitions), str(config))
        ):
            raise LogTampered(
                f"The topic {name!r} of the event log {self._path} fails its MAC: its partition "
                f"count ({partitions}) or config ({config}) was changed without the log key. "
                "The hub does not use a topic it cannot authenticate; restore the log file from "
                "a backup (with the keys folder it was written under)."
            )

    def topic(self, name: str) -> TopicInfo:
        return self._topic(name).info

    def _topic(self, name: str) -> StoredTopic:
        topic = self._topics.get(name)
        if topic is not None:
            return topic
        with self._read(f"looking up topic {name!r}") as conn:
            row = conn.execute(
                "SELECT id, partitions, config, mac FROM topics WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise TopicNotFound(
                f"Topic {name!r} does not exist in the event log {self._path}; create it first "
                "(create_topic)."
            )
        self._check_topic_row(name, row[1], row[2], row[3])
        topic = StoredTopic(row[0], TopicInfo(name, row[1], json.loads(row[2])))
        self._topics[name] = topic
        return topic

    def _partition(self, topic: StoredTopic, partition: object) -> int:
        n = topic.info.partitions
        if type(partition) is not int or not 0 <= partition < n:
            raise InvalidInput(
                f"Partition {partition!r} is out of range for topic {topic.info.name!r}, which "
                f"has partitions 0..{n - 1}.",
                code="partition_out_of_range",
            )
        return partition

    # -- writing -----------------------------------------------------------------------------------
    def append(
        self,
        topic: str,
        records: Sequence[Record],
        *,
        idempotence: IdempotenceKey | None = None,
    ) -> list[RecordMetadata]:
        """Append a batch atomically and durably; metadata is in the order of ``records``.

        A retry of the last idempotent batch MUST carry the same number of records bound for the
        same partitions, else it raises ``OutOfOrderSequence``. An idempotent append of no
        records raises ``InvalidInput`` (it would spend a sequence number on nothing).
        """
        self._check_usable()
        if idempotence is not None:
            if not isinstance(idempotence, IdempotenceKey):
                raise InvalidInput(f"idempotence={idempotence!r} must be an IdempotenceKey.")
            _check_id(idempotence.producer_id, "idempotent producer id")
            _check_offset(idempotence.sequence, "idempotent sequence number")
            if not records:
                raise InvalidInput(
                    f"An idempotent append to {topic!r} needs at least one record; do not "
                    "spend sequence numbers on empty batches."
                )
        prepared = self._prepare(topic, records)  # validates and encodes outside the lock
        if not prepared.count:
            return []
        # shares a commit with concurrent appends
        if idempotence is not None:  # (a retry stores nothing: nothing to hand on)
            return metadata_list(self._group.append(prepared, idempotence))
        return metadata_list(self._handoff.commit(prepared, self._group.append))  # type: ignore[arg-type]

    def append_columns(self, topic: str, batch: ColumnBatch) -> Sequence[RecordMetadata]:
        """``append(topic, batch.records())`` without the per-record objects: the columns are
        checked and encoded as they are (``_prepare_columns``); the stored bytes are the same.
        The answer is an ``AppendedMetadata`` (columns; records built when asked for)."""
        self._check_usable()
        prepared = self._prepare_columns(topic, batch)
        if not prepared.count:
            return []
        return self._handoff.commit(prepared, self._group.append)  # type: ignore[return-value]

    def _prepare_columns(self, name: str, batch: ColumnBatch) -> PreparedAppend:
        """``_prepare`` of ``batch.records()``, column by column: the same checks, routing and
        stored bytes (``encode_batch_columns``). A batch the plain checks do not pass (a value
        of another type, header names the column layout cannot hold) goes through ``_prepare``
        as records, which stores or refuses it exactly as ``append`` does."""
        topic = self._topic(name)
        batch.check(name)
        n = len(batch)
        if not n:
            return PreparedAppend(topic, 0, [], [])
        keys, values = list(batch.keys), list(batch.values)
        names = stored_header_names(batch.header_names)
        ts = batch.timestamp_ms
        if names is None or (ts is not None and (type(ts) is not int or not 0 <= ts <= _MAX_TS)):
            return self._prepare(name, batch.records())
        timestamps = self._timestamps([ts] * n)
        columns = batch.header_columns
        keep = self._handoff.wants(n)  # the uncompressed bodies too, for the ledger
        if native_prepare is not None:
            # Route, pick, cut and write in one pass (native/src/prepare_columns.rs): the Python
            # below is the reference, and decides whatever the native call answers None for.
            # It checks the keys', values' and columns' types itself (None unless each is the
            # plain kind the checks below pass), so those passes run only when it says None.
            got = native_prepare(
                keys,
                values,
                names,
                columns,
                timestamps[0],
                topic.info.partitions,
                MAX_BATCH_RECORDS,
                MAX_BATCH_BYTES,
                keep=keep,
            )
            if got is not None:
                t0 = timestamps[0]
                prepared = [
                    PartitionGroup(
                        p,
                        idx,
                        count,
                        [(c[0], c[1], t0) for c in chunks],
                        [c[2] for c in chunks] if keep else None,
                    )
                    for p, idx, count, chunks in got[1]
                ]
                size = got[0] + RECORD_OVERHEAD_BYTES * n
                return PreparedAppend(topic, n, timestamps, prepared, size)
        if (
            plain_header_names(batch) is None
            or not set(map(type, keys)) <= _BYTES_OR_NONE
            or not set(map(type, values)) <= _BYTES_OR_NONE
        ):
            return self._prepare(name, batch.records())
        groups = self._route(keys, [None] * n, topic.info.partitions, [])
        for g in groups:
            ks: Sequence[bytes | None] = keys
            vs: Sequence[bytes | None] = values
            stamps: Sequence[int] = timestamps
            cs: Sequence[bytes | Sequence[bytes]] = columns
            if g.indexes is not None:
                pick = _picker(g.indexes)
                ks, vs, stamps, cs = pick(keys), pick(values), pick(timestamps), _sliced(cs, pick)
            encode = encode_batch_columns_kept if keep else _unkept(encode_batch_columns)
            kept = [
                (
                    encode(
                        ks[a:b],
                        vs[a:b],
                        names,
                        _sliced(cs, lambda c: c[a:b]),  # noqa: B023 - called at once
                        stamps[a:b],
                    ),
                    b - a,
                    max(stamps[a:b]),
                )
                for a, b in _chunk_bounds(g.count, ks, vs)
            ]
            g.chunks = [(blob, c, t) for (blob, _), c, t in kept]
            g.bodies = [body for (_, body), _, _ in kept] if keep else None
        return PreparedAppend(topic, n, timestamps, groups, payload_size(keys, values))

    def _prepare(self, name: str, records: Sequence[Record]) -> PreparedAppend:
        """Validate, route and encode a batch; raise before anything is stored.

        Checks run column-wise (a few C-level passes per batch); only when one fails does
        ``_explain_invalid`` walk the records to name the culprit.
        """
        topic = self._topic(name)
        if not isinstance(records, (list, tuple)):
            records = list(records)
        n = len(records)
        if not n:
            return PreparedAppend(topic, 0, [], [])
        nparts = topic.info.partitions
        try:
            if set(map(type, records)) != {Record} and not all(
                isinstance(r, Record) for r in records
            ):
                raise InvalidBatch
            # Attribute loads in comprehensions beat attrgetter/zip here (profiled on 3.11).
            keys = [r.key for r in records]
            values = [r.value for r in records]
            headers = [r.headers for r in records]
            stamps = [r.timestamp_ms for r in records]
            parts = [r.partition for r in records]
            if not (
                set(map(type, keys)) <= _BYTES_OR_NONE
                and set(map(type, values)) <= _BYTES_OR_NONE
                and set(map(type, stamps)) <= _INT_OR_NONE
                and set(map(type, parts)) <= _INT_OR_NONE
                and set(map(type, headers)) <= _PAIR_TYPES
            ):
                raise InvalidBatch
            timestamps = self._timestamps(stamps)
            explicit = [p for p in parts if p is not None] if parts.count(None) != n else []
            if explicit and not (min(explicit) >= 0 and max(explicit) < nparts):
                raise InvalidBatch
            groups = self._route(keys, parts, nparts, explicit)
            keep = self._handoff.wants(n)  # the uncompressed bodies too, for the ledger
            for g in groups:
                self._encode_group(g, keys, values, headers, timestamps, keep)
        except InvalidBatch:
            raise _explain_invalid(records, nparts, name) from None
        return PreparedAppend(topic, n, timestamps, groups, payload_size(keys, values))

    @staticmethod
    def _timestamps(stamps: Sequence[int | None]) -> list[int]:
        missing = stamps.count(None)
        if missing == len(stamps):
            return [time.time_ns() // 1_000_000] * len(stamps)
        if missing:
            now = time.time_ns() // 1_000_000
            ts = [now if t is None else t for t in stamps]
        else:
            ts = list(stamps)  # type: ignore[arg-type]
        if min(ts) < 0 or max(ts) > _MAX_TS:
            raise InvalidBatch
        return ts

    def _route(
        self,
        keys: list[bytes | None],
        parts: list[int | None],
        nparts: int,
        explicit: list[int],
    ) -> list[PartitionGroup]:
        """Group record positions by partition (ascending), keeping batch order within each."""
        n = len(keys)
        if len(explicit) == n and min(explicit) == max(explicit):
            return [PartitionGroup(explicit[0], None, n, [])]
        if not explicit and (nparts == 1 or keys.count(None) == n):
            return [PartitionGroup(0, None, n, [])]
        # Memoise murmur2 per key: it is pure Python, and keys (entity ids) repeat.
        cache = self._route_cache.setdefault(nparts, {})
        routed: list[int | None] = list(map(cache.get, keys))
        if None in routed:
            if len(cache) > 1 << 16:  # bound memory
                cache.clear()
            for i, key in enumerate(keys):
                if routed[i] is None and key is not None:
                    routed[i] = cache[key] = default_partition(key, nparts)
        if explicit or None in keys:
            routed = [
                (0 if k is None else r) if p is None else p
                for k, r, p in zip(keys, routed, parts, strict=True)
            ]
        rs: list[int] = routed  # type: ignore[assignment]
        if min(rs) == max(rs):
            return [PartitionGroup(rs[0], None, n, [])]
        # One stable argsort (batch order within a partition) and one count of every partition
        # in numpy: ``sorted(range(n), key=rs.__getitem__)`` and a ``count`` per partition were
        # 7.5% of a Parquet file's ingest (py-spy, 1M rows); this is about 0.55x of their time.
        at = np.fromiter(rs, np.int64, n)  # partitions are >= 0 here (checked or routed)
        order: list[int] = np.argsort(at, kind="stable").tolist()
        counts = np.bincount(at)
        groups: list[PartitionGroup] = []
        start = 0
        for p in np.flatnonzero(counts).tolist():
            stop = start + int(counts[p])
            groups.append(PartitionGroup(p, order[start:stop], stop - start, []))
            start = stop
        return groups

    @staticmethod
    def _encode_group(
        g: PartitionGroup,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        headers: Sequence[Headers],
        timestamps: Sequence[int],
        keep: bool = False,
    ) -> None:
        """Set ``g.chunks`` (and with ``keep``, ``g.bodies``)."""
        if g.indexes is not None:
            pick = g.indexes
            keys = list(map(keys.__getitem__, pick))
            values = list(map(values.__getitem__, pick))
            headers = list(map(headers.__getitem__, pick))
            timestamps = list(map(timestamps.__getitem__, pick))
        chunks: list[tuple[bytes, int, int]] = []
        bodies: list[bytes | None] = []
        for start, stop in _chunk_bounds(g.count, keys, values):
            k, v, ts = keys[start:stop], values[start:stop], timestamps[start:stop]
            blob, body = encode_batch_kept(k, v, headers[start:stop], ts)
            chunks.append((blob, stop - start, max(ts)))
            bodies.append(body)
        g.chunks = chunks
        g.bodies = bodies if keep else None

    def _store(
        self, conn: sqlite3.Connection, prepared: PreparedAppend, *, marker: bool
    ) -> AppendedMetadata:
        """Store a prepared batch inside the caller's write transaction.

        1. Allocate offsets: read each partition's next offset; the write lock held by this
           transaction keeps other writers out until commit, so offsets are dense and unique.
        2. Insert one row per stored batch.
        3. Advance each partition's next offset past the records, and with ``marker`` one more:
           the offset Kafka's transaction marker takes (see the port's contract).
        """
        topic = prepared.topic
        tid = topic.id
        rows: list[tuple[int, int, int, int, int, int, bytes | None, bytes]] = []
        bases: list[int] = []
        key = self._key
        if key is None:
            for g in prepared.groups:
                (base,) = conn.execute(_SQL_NEXT, (tid, g.partition)).fetchone()  # 1.
                bases.append(base)
                offset = base
                for blob, count, max_ts in g.chunks:
                    last = offset + count - 1
                    rows.append((tid, g.partition, offset, last, count, max_ts, None, blob))
                    offset += count
            conn.executemany(_SQL_INSERT, rows)  # 2.
            conn.executemany(  # 3.
                _SQL_ADVANCE,
                [
                    (b + g.count + marker, tid, g.partition)
                    for g, b in zip(prepared.groups, bases, strict=True)
                ],
            )
            self._handoff.note(prepared, rows)  # handed on after the commit (on_stored)
            return self._metadata(prepared, bases)
        # Authenticated: 2. also chains a MAC per batch, 3. also re-seals the partition.
        name = topic.info.name
        seals: list[tuple[int, bytes, bytes, int, int]] = []
        for g in prepared.groups:
            part = g.partition
            base, start, anchor, head = conn.execute(_SQL_NEXT_SEALED, (tid, part)).fetchone()
            bases.append(base)
            anchor, head = anchor or ZERO_MAC, head or ZERO_MAC
            offset = base
            for blob, count, max_ts in g.chunks:
                last = offset + count - 1
                head = batch_mac(key, name, (part, offset, last, count, max_ts), head, blob)
                rows.append((tid, part, offset, last, count, max_ts, head, blob))
                offset += count
            end = base + g.count + marker
            seal = partition_seal(key, name, part, start, end, anchor, head)
            seals.append((end, head, seal, tid, part))
        if len(rows) == 1:  # a small append: ``execute`` skips executemany's iteration set-up
            conn.execute(_SQL_INSERT, rows[0])
            conn.execute(_SQL_ADVANCE_SEALED, seals[0])
        else:
            conn.executemany(_SQL_INSERT, rows)
            conn.executemany(_SQL_ADVANCE_SEALED, seals)
        self._handoff.note(prepared, rows)  # handed on after the commit (on_stored)
        return self._metadata(prepared, bases)

    def _reseal(self, conn: sqlite3.Connection, tid: int, part: int) -> None:
        """Recompute a partition's seal after its bounds changed (inside the write)."""
        key = self._key
        if key is None:
            return
        name, start, end, anchor, head = conn.execute(
            "SELECT t.name, p.start_offset, p.next_offset, p.anchor, p.head FROM partitions p"
            " JOIN topics t ON t.id = p.topic_id WHERE p.topic_id = ? AND p.part = ?",
            (tid, part),
        ).fetchone()
        anchor, head = anchor or ZERO_MAC, head or ZERO_MAC
        conn.execute(
            "UPDATE partitions SET mac = ? WHERE topic_id = ? AND part = ?",
            (partition_seal(key, name, part, start, end, anchor, head), tid, part),
        )

    @staticmethod
    def _metadata(prepared: PreparedAppend, bases: Sequence[int]) -> AppendedMetadata:
        """The append's answer as columns (each partition's base offset and positions, the
        timestamps): ``append_columns`` hands it on, ``append`` lists it."""
        return SqliteAppended(
            prepared.topic.info.name,
            prepared.timestamps,
            [(g.partition, b, g.indexes) for g, b in zip(prepared.groups, bases, strict=True)],
        )

    def _store_idempotent(
        self, conn: sqlite3.Connection, prepared: PreparedAppend, key: IdempotenceKey
    ) -> Sequence[RecordMetadata]:
        """Store a batch unless it retries the producer's last one (then return its metadata).

        1. Read the producer's last sequence for this topic (inside the write transaction).
        2. Retry of the last batch: rebuild its metadata from the stored batches.
        3. Next sequence: store the batch and, in the same transaction, the producer's state.
        """
        topic = prepared.topic
        name = topic.info.name
        row = conn.execute(  # 1.
            "SELECT last_sequence, record_count, placement FROM producers"
            " WHERE producer_id = ? AND topic_id = ?",
            (key.producer_id, topic.id),
        ).fetchone()
        last = -1 if row is None else row[0]
        if key.sequence == last:  # 2.
            return self._replay(conn, prepared, key, row[1], json.loads(row[2]))
        if key.sequence != last + 1:
            expected = "0 (a new producer starts at 0)" if row is None else f"{last + 1}"
            raise OutOfOrderSequence(
                f"Producer {key.producer_id!r} sent sequence {key.sequence} to topic {name!r}, "
                f"but the next expected is {expected} (a retry may repeat {last}); resend from "
                "the expected sequence or use a new producer id."
            )
        metadata = self._store(conn, prepared, marker=prepared.transactional)  # 3.
        placement = [
            [p, base, g.count]
            for (p, base, _), g in zip(metadata.parts, prepared.groups, strict=True)
        ]
        conn.execute(
            "INSERT INTO producers (producer_id, topic_id, last_sequence, record_count, placement)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (producer_id, topic_id) DO UPDATE SET"
            " last_sequence = excluded.last_sequence, record_count = excluded.record_count,"
            " placement = excluded.placement",
            (key.producer_id, topic.id, key.sequence, prepared.count, json.dumps(placement)),
        )
        return metadata

    def _replay(
        self,
        conn: sqlite3.Connection,
        prepared: PreparedAppend,
        key: IdempotenceKey,
        stored_count: int,
        placement: list[list[int]],
    ) -> list[RecordMetadata]:
        shape = [[g.partition, g.count] for g in prepared.groups]
        if prepared.count != stored_count or shape != [[p, c] for p, _, c in placement]:
            raise OutOfOrderSequence(
                f"Producer {key.producer_id!r} reused sequence {key.sequence} on topic "
                f"{prepared.topic.info.name!r} for a different batch ({prepared.count} records, "
                f"partitions {shape}) than the stored one ({stored_count} records, "
                f"{placement}); a retry must resend the same batch."
            )
        out: list[RecordMetadata | None] = [None] * prepared.count
        for g, (p, base, count) in zip(prepared.groups, placement, strict=True):
            stored = self._read_from(conn, prepared.topic, p, base, count)
            for r, i in zip(stored, g.indexes or range(prepared.count), strict=True):
                out[i] = RecordMetadata(r.topic, r.partition, r.offset, r.timestamp_ms)
        return out  # type: ignore[return-value]

    def transaction(self, transactional_id: str) -> AbstractContextManager[Transaction]:
        """A transaction holding the write lock until it ends (see the module docstring)."""
        _check_id(transactional_id, "transactional id")
        return self._transaction(transactional_id)

    @contextmanager
    def _transaction(self, transactional_id: str) -> Iterator[Transaction]:
        txn = SqliteTransaction(self, transactional_id)
        try:
            yield txn
        except BaseException:
            txn.abort()
            raise
        if txn.state == "open":  # the block may have committed or aborted explicitly
            txn.commit()

    # -- reading -----------------------------------------------------------------------------------
    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[StoredRecord]:
        t = self._read_checked(topic, partition, offset, max_records)
        with self._read(f"reading topic {topic!r}") as conn:
            offset = _first_offset(conn, t, partition, offset)
            return self._read_from(conn, t, partition, offset, max_records)

    def _read_checked(
        self, topic: str, partition: int, offset: int, max_records: int
    ) -> StoredTopic:
        """The topic ``read`` and ``read_columns`` read, their arguments checked."""
        t = self._topic(topic)
        self._partition(t, partition)
        _check_offset(offset, f"offset to read in {topic!r}")
        if type(max_records) is not int or max_records < 1:
            raise InvalidInput(f"max_records={max_records!r} is invalid: pass an int >= 1.")
        return t

    def _read_from(
        self, conn: sqlite3.Connection, topic: StoredTopic, partition: int, offset: int, limit: int
    ) -> list[StoredRecord]:
        out: list[StoredRecord] = []
        for extent in _extents(conn, topic, partition, offset, limit):
            out += self._batch(conn, topic, partition, extent)[extent[3] : extent[4]]
        return out

    def read_columns(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> RecordColumns:
        """``read`` as columns: of each stored batch only the records asked are decoded, straight
        into columns (its header columns kept as columns), no ``StoredRecord`` built
        (``adapters/sqlite_log/columns``)."""
        t, batches = self._open_batches(topic, partition, offset, max_records)
        return join(t.info.name, partition, self._pieces(t, partition, batches))

    def read_encoded(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> EncodedColumns:
        """``read_columns``'s records as the stored batches that hold them, each checked (CRC,
        record count) and inflated but not decoded; ``EncodedColumns.columns`` decodes them
        (what ``read_columns`` does)."""
        if self._key is not None:
            return self._read_authenticated(topic, partition, offset, max_records)
        t, batches = self._open_batches(topic, partition, offset, max_records)
        return EncodedColumns(t.info.name, partition, tuple(batches), self._decode_encoded)

    def _read_authenticated(
        self, topic: str, partition: int, offset: int, max_records: int
    ) -> EncodedColumns:
        """``read_encoded`` with a MAC key: in ONE snapshot, the batches and what
        ``check_records`` needs to authenticate exactly those bytes (``ReadChain``)."""
        t = self._read_checked(topic, partition, offset, max_records)
        with self._snapshot(f"reading topic {topic!r}") as conn:
            first = _first_offset(conn, t, partition, offset)
            batches: list[EncodedBatch] = []
            rows: list[StoredRow] = []
            for extent in _extents(conn, t, partition, first, max_records):
                batch_id, base, count, start, stop = extent
                blob, last, max_ts, mac = conn.execute(
                    "SELECT data, last_offset, max_timestamp, mac FROM batches WHERE id = ?",
                    (batch_id,),
                ).fetchone()
                try:
                    batches.append(open_batch(blob, count, base, start, stop))
                except (CorruptBatch, struct.error, ValueError, IndexError) as exc:
                    raise self._corrupt(t, partition, base, exc) from exc
                rows.append((base, last, count, max_ts, None if mac is None else bytes(mac), blob))
            bounds = conn.execute(_SQL_BOUNDS, (t.id, partition)).fetchone()
            prev = _mac_before(conn, t.id, partition, rows[0][0] if rows else first, bounds[2])
        chain = ReadChain(offset, tuple(rows), prev, tuple(bounds))
        return EncodedColumns(t.info.name, partition, tuple(batches), self._decode_encoded, chain)

    def _decode_encoded(
        self, topic: str, partition: int, batches: Sequence[EncodedBatch]
    ) -> RecordColumns:
        """``EncodedColumns.decode`` of this log: ``read_columns``'s decode and join."""
        return join(topic, partition, self._pieces(self._topic(topic), partition, batches))

    def _pieces(
        self, topic: StoredTopic, partition: int, batches: Sequence[EncodedBatch]
    ) -> list[Piece]:
        return [
            (b.base_offset + b.start, self._checked(decode_columns, topic, partition, b))
            for b in batches
        ]

    def _open_batches(
        self, topic: str, partition: int, offset: int, max_records: int
    ) -> tuple[StoredTopic, list[EncodedBatch]]:
        """The stored batches holding up to ``max_records`` records from ``offset`` on, each
        checked and inflated, its ``start`` and ``stop`` the records taken."""
        t = self._read_checked(topic, partition, offset, max_records)
        with self._read(f"reading topic {topic!r}") as conn:
            offset = _first_offset(conn, t, partition, offset)
            extents = _extents(conn, t, partition, offset, max_records)
            return t, [self._open(conn, t, partition, extent) for extent in extents]

    def on_stored(self, receiver: Receiver) -> Callable[[], None]:
        """The port's hook (``handoff``): each committed append's stored batches, per
        partition, as ``read_encoded`` would return them (opened, not decoded)."""
        return self._handoff.on_stored(receiver)

    def holds_records(self, topic: str, partition: int, start: int, end: int) -> bool:
        """From the batch rows' extents (markers have none), without decoding a batch."""
        t = self._topic(topic)
        self._partition(t, partition)
        with self._read(f"reading topic {topic!r}") as conn:
            (first,) = conn.execute(_SQL_START, (t.id, partition)).fetchone()
            row = conn.execute(_SQL_LAST_BATCH_BELOW, (t.id, partition, end)).fetchone()
        start = max(start, first)
        return start < end and row is not None and row[0] + row[1] > start

    def _open(
        self, conn: sqlite3.Connection, topic: StoredTopic, partition: int, extent: _Extent
    ) -> EncodedBatch:
        """One stored batch checked and inflated, the records ``extent`` takes marked. Column
        reads do not use the read cache (``read``'s records): turning its records back into
        columns costs more than decoding the records asked."""
        batch_id, base, count, start, stop = extent
        (blob,) = conn.execute("SELECT data FROM batches WHERE id = ?", (batch_id,)).fetchone()
        try:
            return open_batch(blob, count, base, start, stop)
        except (CorruptBatch, struct.error, ValueError, IndexError) as exc:
            raise self._corrupt(topic, partition, base, exc) from exc

    def _checked(
        self,
        decode: Callable[[EncodedBatch], _T],
        topic: StoredTopic,
        partition: int,
        ob: EncodedBatch,
    ) -> _T:
        """``decode(ob)``, a batch that does not parse named as corrupt."""
        try:
            return decode(ob)
        except (CorruptBatch, struct.error, ValueError, IndexError) as exc:
            raise self._corrupt(topic, partition, ob.base_offset, exc) from exc

    def _corrupt(self, topic: StoredTopic, partition: int, base: int, exc: Exception) -> HubError:
        return HubError(
            f"The batch at offset {base} of {topic.info.name!r} partition {partition} in "
            f"{self._path} is corrupt ({exc}); restore the file from a backup or verify it.",
            code="storage_corrupt",
        )

    def _batch(
        self, conn: sqlite3.Connection, topic: StoredTopic, partition: int, extent: _Extent
    ) -> list[StoredRecord]:
        """Every record of the stored batch of ``extent``, decoded once and kept in a small LRU
        cache."""
        base = extent[1]
        key = (topic.id, partition, base)
        with self._cache_lock:
            records = self._cache.get(key)
            if records is not None:
                self._cache.move_to_end(key)
                return records
        ob = self._open(conn, topic, partition, extent)
        n, ts, keys, values, headers = self._checked(decode_records, topic, partition, ob)
        name = topic.info.name
        records = new_stored(
            n,
            repeat(name, n),
            repeat(partition, n),
            range(base, base + n),
            ts,
            keys,
            values,
            headers,
        )
        with self._cache_lock:
            if key not in self._cache:
                self._cache[key] = records
                self._cached += n
                while self._cached > self._cache_limit and len(self._cache) > 1:
                    self._cached -= len(self._cache.popitem(last=False)[1])
        return records

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets(topic, "next_offset")

    def all_end_offsets(self) -> dict[str, dict[int, int]]:
        """Every topic's ends in one statement (one snapshot), each topic row authenticated as
        ``topics`` does. The port's default asks topic by topic: a statement per topic (~25
        in a hub) on every ledger sync, i.e. on every ingest request's cover."""
        with self._read("reading the end offsets of every topic") as conn:
            rows = conn.execute(
                "SELECT t.name, t.partitions, t.config, t.mac, p.part, p.next_offset "
                "FROM topics t LEFT JOIN partitions p ON p.topic_id = t.id "
                "ORDER BY t.name, p.part"
            ).fetchall()
        out: dict[str, dict[int, int]] = {}
        for name, partitions, config, mac, part, end in rows:
            ends = out.get(name)
            if ends is None:
                self._check_topic_row(name, partitions, config, mac)
                ends = out[name] = {}
            if part is not None:
                ends[part] = end
        return out

    def append_generation(self, topics: Sequence[str] | None = None) -> int:
        return self._appended.generation_of(topics)

    def wait_for_append(
        self, generation: int, timeout_s: float, topics: Sequence[str] | None = None
    ) -> int:
        return self._appended.wait(generation, timeout_s, topics)

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets(topic, "start_offset")

    def _offsets(self, topic: str, column: str) -> dict[int, int]:
        t = self._topic(topic)
        with self._read(f"reading offsets of {topic!r}") as conn:
            rows = conn.execute(
                f"SELECT part, {column} FROM partitions WHERE topic_id = ? ORDER BY part", (t.id,)
            )
            return dict(rows)

    def delete_records_before(self, topic: str, partition: int, offset: int) -> int:
        """Raise the partition's start offset; the new start (see the port).

        1. In one write transaction, read the partition's start and end offsets.
        2. Delete the stored batches wholly below the new start (a batch straddling it stays
           whole: reads skip its records below the start) and store the new start.
        3. After commit, drop the deleted batches from the read cache.
        """
        t = self._topic(topic)
        self._partition(t, partition)
        _check_offset(offset, f"offset to delete records before in {topic!r}")
        with self._write(f"deleting records of {topic!r} partition {partition}") as conn:
            start, end = conn.execute(  # 1.
                "SELECT start_offset, next_offset FROM partitions WHERE topic_id = ? AND part = ?",
                (t.id, partition),
            ).fetchone()
            if offset > end:
                raise InvalidInput(
                    f"Cannot delete records of {topic!r} partition {partition} before offset "
                    f"{offset}: the end offset is {end}; pass an offset <= {end}.",
                    code="offset_out_of_range",
                )
            new_start = max(start, offset)
            if new_start > start:  # 2.
                # The chain's new anchor: the MAC of the last batch removed (if any was).
                gone = conn.execute(
                    "SELECT mac FROM batches WHERE topic_id = ? AND part = ?"
                    " AND base_offset + record_count <= ? ORDER BY base_offset DESC LIMIT 1",
                    (t.id, partition, new_start),
                ).fetchone()
                if gone is not None and self._key is not None:
                    conn.execute(
                        "UPDATE partitions SET anchor = ? WHERE topic_id = ? AND part = ?",
                        (gone[0], t.id, partition),
                    )
                conn.execute(
                    "DELETE FROM batches WHERE topic_id = ? AND part = ?"
                    " AND base_offset + record_count <= ?",
                    (t.id, partition, new_start),
                )
                conn.execute(
                    "UPDATE partitions SET start_offset = ? WHERE topic_id = ? AND part = ?",
                    (new_start, t.id, partition),
                )
                self._reseal(conn, t.id, partition)
        with self._cache_lock:  # 3.
            for key in [k for k in self._cache if k[:2] == (t.id, partition)]:
                records = self._cache[key]
                if key[2] + len(records) <= new_start:
                    self._cached -= len(self._cache.pop(key))
        return int(new_start)

    # -- integrity ---------------------------------------------------------------------------------
    def check_records(
        self,
        topic: str,
        partition: int,
        start: int,
        end: int,
        read: Sequence[EncodedColumns] = (),
    ) -> None:
        """Raise ``LogTampered`` naming the first stored batch in ``[start, end)`` whose MAC
        chain fails, or the partition whose seal fails (see the module docstring). When the
        authenticated reads ``read`` cover the range (``_covering``), the batches they carry
        are checked (the bytes the caller hashed, no second read); else the range is read.
        Batches this process's appends handed on (``on_stored``) are checked against the
        stored rows' MACs without reading their bytes (``handoff``, step 3)."""
        key = self._key
        handed = any(isinstance(c.auth, HandedChain) for c in read)
        if key is None and not handed:
            return
        t = self._topic(topic)
        self._partition(t, partition)
        chains = None if handed else _covering(read, topic, partition, start, end)
        if handed:  # what this process appended (``handoff``, step 3)
            with self._snapshot(f"checking records of {topic!r}") as conn:
                bounds = conn.execute(_SQL_BOUNDS, (t.id, partition)).fetchone()

                def before(base: int) -> bytes:
                    return _mac_before(conn, t.id, partition, base, bounds[2])

                ids = (t.id, topic, partition)
                problem = check_handed(conn, key, ids, (start, end), read, before, bounds)
        elif key is None:
            return
        elif chains is not None:
            problem = _check_chains(key, topic, partition, end, chains)
        else:
            with self._snapshot(f"checking records of {topic!r}") as conn:
                problem = self._check_partition(conn, key, t.id, topic, partition, start, end)
        if problem is not None:
            raise LogTampered(
                f"{problem.describe()} The ledger does not adopt records that fail the log's "
                "authentication; run `hub ledger verify` and restore the log from a backup."
            )

    def integrity_problems(
        self, checked: Mapping[tuple[str, int], tuple[int, int]] | None = None
    ) -> list[LogProblem]:
        """Check every topic, partition seal and stored batch; the first problem per partition.
        A partition's ``checked`` range (the port's) is not read again: the batches below and
        above it are, each part from the MAC stored before it (a link into the range that
        fails shows as the next batch's MAC failing), and the seal and chain head as usual."""
        key = self._key
        if key is None:
            return []
        problems: list[LogProblem] = []
        with self._snapshot("checking the whole log") as conn:
            topics = conn.execute(
                "SELECT id, name, partitions, config, mac FROM topics ORDER BY name"
            ).fetchall()
            for tid, name, nparts, config, mac in topics:
                if mac is None or not hmac.compare_digest(
                    mac, topic_mac(key, name, nparts, config)
                ):
                    problems.append(
                        LogProblem(
                            name,
                            None,
                            None,
                            f"the topic's partition count ({nparts}) or config fails its MAC: "
                            "the topic row was changed without the log key.",
                        )
                    )
                    continue
                parts = [
                    p
                    for (p,) in conn.execute(
                        "SELECT part FROM partitions WHERE topic_id = ? ORDER BY part", (tid,)
                    )
                ]
                if parts != list(range(nparts)):
                    problems.append(
                        LogProblem(
                            name,
                            None,
                            None,
                            f"the topic has partition rows {parts} but {nparts} partitions: "
                            "partitions were added or removed without the log key.",
                        )
                    )
                for part in parts:
                    lo, hi = (checked or {}).get((name, part), (0, 0))
                    if hi > lo:  # [lo, hi) authenticated on the bytes read (verify's step 1)
                        problem = self._check_partition(
                            conn, key, tid, name, part, 0, lo
                        ) or self._check_partition(conn, key, tid, name, part, hi, None)
                    else:
                        problem = self._check_partition(conn, key, tid, name, part, 0, None)
                    if problem is not None:
                        problems.append(problem)
            known = set(conn.execute("SELECT topic_id, part FROM partitions").fetchall())
            stray = conn.execute("SELECT DISTINCT topic_id, part FROM batches").fetchall()
            for tid, part in stray:
                if (tid, part) not in known:
                    problems.append(
                        LogProblem(
                            f"topic id {tid}",
                            part,
                            None,
                            "stored batches name a partition the log does not have (forged "
                            "or moved rows).",
                        )
                    )
        return problems

    @contextmanager
    def _snapshot(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A read connection inside one read transaction: every query sees the same state."""
        with self._read(doing) as conn:
            if conn.in_transaction:
                yield conn
                return
            try:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._translate(exc, doing) from exc

    @staticmethod
    def _check_partition(
        conn: sqlite3.Connection,
        key: bytes,
        tid: int,
        name: str,
        part: int,
        lo: int,
        hi: int | None,
    ) -> LogProblem | None:
        """The first problem of one partition's seal and chain over batches overlapping
        ``[lo, hi)`` (``hi`` None: every stored batch, and the chain must end at the head)."""
        row = conn.execute(_SQL_BOUNDS, (tid, part)).fetchone()
        if row is None:
            return LogProblem(name, part, None, "the partition row is missing.")
        start, end, anchor, head, seal = row
        if seal is None or anchor is None or head is None:
            return _unsealed(name, part)
        upper = (1 << 62) if hi is None else min(hi, end)
        rows = conn.execute(_SQL_CHECK_ROWS, (tid, part, lo, upper))
        prev: bytes | None = None
        try:
            for base, last, count, max_ts, mac, blob in rows:
                if prev is None:
                    prev = _mac_before(conn, tid, part, base, anchor)
                want = batch_mac(key, name, (part, base, last, count, max_ts), prev, blob)
                if mac is None or not hmac.compare_digest(mac, want):
                    return _bad_batch(name, part, base, count)
                prev = bytes(mac)
        finally:
            rows.close()
        if not hmac.compare_digest(seal, partition_seal(key, name, part, start, end, anchor, head)):
            return _bad_seal(name, part, start, end)
        if hi is None or hi >= end:
            if prev is None:
                prev = _mac_before(conn, tid, part, upper, anchor)
            if not hmac.compare_digest(prev, head):
                return _bad_head(name, part, end)
        return None

    # -- consumer groups ---------------------------------------------------------------------------
    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        rows = self._offset_rows(group, offsets)
        if rows:
            with self._write(f"committing offsets of group {group!r}") as conn:
                self._store_offsets(conn, rows)

    def _offset_rows(
        self, group: str, offsets: Mapping[TopicPartition, int]
    ) -> list[tuple[str, int, int, int]]:
        _check_id(group, "consumer group")
        rows = []
        for tp, offset in offsets.items():
            if not isinstance(tp, TopicPartition):
                raise InvalidInput(f"Offsets must be keyed by TopicPartition, got {tp!r}.")
            t = self._topic(tp.topic)
            self._partition(t, tp.partition)
            _check_offset(offset, f"offset to commit for {tp.topic!r}/{tp.partition}")
            rows.append((group, t.id, tp.partition, offset))
        return rows

    @staticmethod
    def _store_offsets(conn: sqlite3.Connection, rows: list[tuple[str, int, int, int]]) -> None:
        conn.executemany(
            "INSERT INTO group_offsets (group_id, topic_id, part, next_offset) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (group_id, topic_id, part) DO UPDATE SET"
            " next_offset = excluded.next_offset",
            rows,
        )

    def committed(self, group: str, topic: str) -> dict[int, int]:
        _check_id(group, "consumer group")
        t = self._topic(topic)
        with self._read(f"reading offsets of group {group!r}") as conn:
            rows = conn.execute(
                "SELECT part, next_offset FROM group_offsets WHERE group_id = ? AND topic_id = ?"
                " ORDER BY part",
                (group, t.id),
            )
            return dict(rows)

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every connection; idempotent. Waits for a running write to finish."""
        if self._closed:
            return
        self._acquire("closing")
        try:
            self._closed = True
            self._writer.close()
            while self._readers:
                self._readers.pop().close()
        finally:
            self._lock.release()
        with self._cache_lock:
            self._cache.clear()

    def __enter__(self) -> SqliteEventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteEventLog({self._path!r}, synchronous={self._synchronous!r})"


__all__ = ["SqliteEventLog"]
