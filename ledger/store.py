"""LedgerStore: the audit ledger in one SQLite file (``<data_dir>/ledger.sqlite``).

Schema (version 1)
- ``leaves``: one row per leaf: ``idx`` (the leaf index, dense from 0), the record's (topic,
  part, off), its log timestamp ``ts_ms``, the query columns ``actor`` (``ce_source``),
  ``action`` (``hub_action`` header, else ``ce_type``), ``resource`` (``ce_subject`` header,
  else the key as text), ``tenant`` (``ce_tenant``), and the 32-byte ``leaf_hash``. The query
  columns are conveniences, not evidence: ``hub ledger verify`` recomputes them too.
- ``nodes``: the tree's perfect nodes in chunks of 256 per level (``ledger.tree``).
- ``positions``: per (topic, partition) the next log offset the ledger will read.
- ``checkpoints``: per tree size the root, time, signed note bytes and ``checkpoint_hash``.
- ``meta``: schema version, origin, leaf format, tree size.

Reads: the file is memory-mapped (``PRAGMA mmap_size``), so a page read is no ``read()`` call.
Nodes come through a chunk cache (LRU, 4096 chunks): a stored node never changes, so a chunk,
or the prefix of a partial right-edge chunk, read once stays valid. Proofs and roots
(:meth:`LedgerStore.inclusion_proof`, :meth:`consistency_proof`, :meth:`root`) first run the
proof over a recording reader to learn which nodes they need (a proof's shape depends on the
sizes only), then read every chunk not cached in ONE query, then run the proof over those nodes:
one SQLite round trip per proof instead of one per tree level.

Contract: every write happens in :meth:`LedgerStore.write` (``BEGIN IMMEDIATE``), so leaves,
nodes, positions and checkpoints of a sync batch commit together or not at all, and two
processes syncing the same file serialize (the second re-reads the state inside its
transaction). Readers see committed state only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from audit.merkle import HASH_SIZE, NodeReader, consistency_proof, inclusion_proof, range_root
from core.errors import HubError, StorageBusy
from ledger.tree import CHUNK, Chunk

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4855424C  # "HUBL"
MMAP_BYTES = 1 << 31  # reads map the file: no read() syscall per page (SQLite caps it)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE leaves (
    idx INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    part INTEGER NOT NULL,
    off INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    actor TEXT,
    action TEXT,
    resource TEXT,
    tenant TEXT,
    leaf_hash BLOB NOT NULL
);
CREATE UNIQUE INDEX leaves_by_position ON leaves (topic, part, off);
CREATE INDEX leaves_by_actor ON leaves (actor);
CREATE INDEX leaves_by_action ON leaves (action);
CREATE INDEX leaves_by_resource ON leaves (resource);
CREATE INDEX leaves_by_time ON leaves (ts_ms);
CREATE TABLE nodes (
    level INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (level, chunk)
) WITHOUT ROWID;
CREATE TABLE positions (
    topic TEXT NOT NULL,
    part INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, part)
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    time_us INTEGER NOT NULL,
    note BLOB NOT NULL,
    hash BLOB NOT NULL
);
"""

LeafRow = tuple[int, str, int, int, int, str | None, str | None, str | None, str | None, bytes]
"""(idx, topic, part, off, ts_ms, actor, action, resource, tenant, leaf_hash)."""

_INSERT_LEAF = "INSERT INTO leaves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_COLUMNS = "idx, topic, part, off, ts_ms, actor, action, resource, tenant, leaf_hash"


_INDEX_BITS = 40
# One statement for any set of chunks: keys packed as level << 40 | chunk in a JSON array.
_SQL_CHUNKS = (
    "SELECT n.level, n.chunk, n.data FROM json_each(?1) AS j JOIN nodes AS n"
    " ON n.level = (j.value >> 40) AND n.chunk = (j.value & 1099511627775)"
)
_R = TypeVar("_R")


class _Recorder:
    """A NodeReader that records what is asked (and answers zeros): a proof's dry run."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def node(self, level: int, index: int) -> bytes:
        self.keys.append((level, index))
        return bytes(HASH_SIZE)


class _Nodes:
    """A NodeReader over prefetched nodes."""

    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self._nodes = nodes

    def node(self, level: int, index: int) -> bytes:
        got = self._nodes.get((level, index))
        if got is None:
            raise IndexError(f"node ({level}, {index}) is not stored yet.")
        return got


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    time_us: int
    note: bytes
    hash: bytes


class LedgerStore:
    """The ledger's SQLite file. Thread-safe: one connection guarded by a lock."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._setup()
        except sqlite3.Error as exc:
            raise HubError(
                f"Cannot open the ledger store {self.path}: {exc}.", code="ledger_store"
            ) from exc
        self._chunks: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._chunk_limit = 4096  # chunks cached (32 MiB at most)

    def _setup(self) -> None:
        conn = self._conn
        (app,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == 0:
            conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif app != APPLICATION_ID or version != SCHEMA_VERSION:
            raise HubError(
                f"{self.path} is not a version-{SCHEMA_VERSION} hub ledger (application id "
                f"{app:#x}, version {version}); move it away or point HUB_DATA_DIR elsewhere.",
                code="ledger_store",
            )

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on normal exit, rolled back otherwise."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageBusy(
                    f"The ledger store {self.path} is locked by another writer ({exc}); retry."
                ) from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise HubError(
                    f"Committing to the ledger failed: {exc}.", code="ledger_store"
                ) from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- state -------------------------------------------------------------------------------
    @staticmethod
    def size(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT max(idx) FROM leaves").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def tree_size(self) -> int:
        with self.read() as conn:
            return self.size(conn)

    @staticmethod
    def positions(conn: sqlite3.Connection) -> dict[tuple[str, int], int]:
        rows = conn.execute("SELECT topic, part, next_offset FROM positions")
        return {(t, p): o for t, p, o in rows}

    @staticmethod
    def set_positions(conn: sqlite3.Connection, positions: dict[tuple[str, int], int]) -> None:
        conn.executemany(
            "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (topic, part) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            [(t, p, o) for (t, p), o in positions.items()],
        )

    @staticmethod
    def chunk(conn: sqlite3.Connection, level: int, chunk: int) -> bytes:
        row = conn.execute(
            "SELECT data FROM nodes WHERE level = ? AND chunk = ?", (level, chunk)
        ).fetchone()
        if row is None:
            raise IndexError(f"no node chunk ({level}, {chunk}) in the ledger store.")
        return bytes(row[0])

    @staticmethod
    def insert(conn: sqlite3.Connection, rows: Sequence[LeafRow], chunks: Iterable[Chunk]) -> None:
        conn.executemany(_INSERT_LEAF, rows)
        conn.executemany(
            "INSERT INTO nodes VALUES (?, ?, ?) ON CONFLICT (level, chunk) "
            "DO UPDATE SET data = excluded.data",
            chunks,
        )

    @staticmethod
    def add_checkpoint(conn: sqlite3.Connection, cp: StoredCheckpoint) -> None:
        conn.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)",
            (cp.size, cp.root, cp.time_us, cp.note, cp.hash),
        )

    # -- nodes -------------------------------------------------------------------------------
    # Chunk cache: a stored node never changes, so any prefix of a chunk read once stays valid;
    # a partial (right-edge) chunk is cached too and read again only when a node past its
    # cached length is asked for. LRU, at most ``_chunk_limit`` chunks (8 KiB each).
    def _cached(self, level: int, index: int) -> bytes | None:
        key = (level, index >> 8)
        data = self._chunks.get(key)
        off = (index & 255) * HASH_SIZE
        if data is None or off + HASH_SIZE > len(data):
            return None
        with self._lock:
            if key in self._chunks:
                self._chunks.move_to_end(key)
        return data[off : off + HASH_SIZE]

    def _cache(self, key: tuple[int, int], data: bytes) -> None:
        with self._lock:
            self._chunks[key] = data
            self._chunks.move_to_end(key)
            while len(self._chunks) > self._chunk_limit:
                self._chunks.popitem(last=False)

    def node(self, level: int, index: int) -> bytes:
        """``NodeReader``: the perfect node ``(level, index)``; IndexError if not stored."""
        got = self._cached(level, index)
        if got is not None:
            return got
        key = (level, index // CHUNK)
        with self.read() as conn:
            data = self.chunk(conn, *key)
        self._cache(key, data)
        off = (index % CHUNK) * HASH_SIZE
        if off + HASH_SIZE > len(data):
            raise IndexError(f"node ({level}, {index}) is not stored yet.")
        return data[off : off + HASH_SIZE]

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored perfect nodes among ``keys`` ((level, index) pairs).

        Served from the chunk cache; every chunk missing is read in ONE SQL query. Keys not
        stored are absent from the answer.
        """
        out: dict[tuple[int, int], bytes] = {}
        missing: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for key in keys:
            got = self._cached(*key)
            if got is None:
                missing.setdefault((key[0], key[1] >> 8), []).append(key)
            else:
                out[key] = got
        if not missing:
            return out
        packed = json.dumps([lv << _INDEX_BITS | ch for lv, ch in missing])
        with self.read() as conn:
            rows = conn.execute(_SQL_CHUNKS, (packed,)).fetchall()
        for level, chunk, blob in rows:
            data = bytes(blob)
            self._cache((level, chunk), data)
            for key in missing[(level, chunk)]:
                off = (key[1] & 255) * HASH_SIZE
                if off + HASH_SIZE <= len(data):
                    out[key] = data[off : off + HASH_SIZE]
        return out

    def clear_caches(self) -> None:
        """Forget cached chunks and nodes (benchmarks: the uncached path)."""
        with self._lock:
            self._chunks.clear()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """``audit.merkle.inclusion_proof`` over this store, fetching its nodes in one query."""
        return self._prefetched(inclusion_proof, index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """``audit.merkle.consistency_proof`` over this store, fetching its nodes in one query."""
        return self._prefetched(consistency_proof, size1, size2)

    def root(self, size: int) -> bytes:
        """The root of the tree of ``size`` leaves (MTH), its nodes fetched in one query."""
        return self._prefetched(range_root, 0, size)

    def _prefetched(self, fn: Callable[[NodeReader, int, int], _R], a: int, b: int) -> _R:
        # A dry run names the nodes the answer needs (proof shapes depend on sizes only).
        wanted = _Recorder()
        fn(wanted, a, b)
        return fn(_Nodes(self.nodes(wanted.keys)), a, b)

    def iter_chunks(self) -> Iterator[Chunk]:
        """Every stored chunk, by level then chunk index (a snapshot read)."""
        with self.read() as conn:
            rows = conn.execute("SELECT level, chunk, data FROM nodes ORDER BY level, chunk")
            yield from ((int(a), int(b), bytes(c)) for a, b, c in rows.fetchall())

    # -- leaves ------------------------------------------------------------------------------
    def leaf(self, index: int) -> LeafRow | None:
        with self.read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM leaves WHERE idx = ?", (index,)).fetchone()
        return None if row is None else tuple(row)

    def index_of(self, topic: str, partition: int, offset: int) -> int | None:
        """The leaf index of a log record, or None if the ledger has not synced it yet."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT idx FROM leaves WHERE topic = ? AND part = ? AND off = ?",
                (topic, partition, offset),
            ).fetchone()
        return None if row is None else int(row[0])

    def iter_leaves(self, start: int = 0, batch: int = 50_000) -> Iterator[list[LeafRow]]:
        """All leaf rows in index order, in batches (each batch its own short read)."""
        last = start - 1
        while True:
            with self.read() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM leaves WHERE idx > ? ORDER BY idx LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        topic: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        topics: Sequence[str] | None = None,
        after: int = -1,
        limit: int = 100,
    ) -> list[LeafRow]:
        """Leaves matching every filter given, in index order, from index ``after + 1``."""
        where = ["idx > ?"]
        args: list[Any] = [after]
        for column, value in (
            ("actor", actor),
            ("action", action),
            ("resource", resource),
            ("topic", topic),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if topics is not None:
            where.append(f"topic IN ({','.join('?' * len(topics))})")
            args.extend(topics)
        if since_ms is not None:
            where.append("ts_ms >= ?")
            args.append(since_ms)
        if until_ms is not None:
            where.append("ts_ms < ?")
            args.append(until_ms)
        sql = f"SELECT {_COLUMNS} FROM leaves WHERE {' AND '.join(where)} ORDER BY idx LIMIT ?"
        with self.read() as conn:
            return conn.execute(sql, (*args, limit)).fetchall()

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoints(
        self, *, min_size: int = 0, max_size: int | None = None
    ) -> list[StoredCheckpoint]:
        sql = "SELECT size, root, time_us, note, hash FROM checkpoints WHERE size >= ?"
        args: list[int] = [min_size]
        if max_size is not None:
            sql += " AND size <= ?"
            args.append(max_size)
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY size", args).fetchall()
        return [StoredCheckpoint(s, bytes(r), t, bytes(n), bytes(h)) for s, r, t, n, h in rows]

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        got = self.checkpoints(min_size=size, max_size=size)
        return got[0] if got else None

    @staticmethod
    def latest_checkpoint_in(conn: sqlite3.Connection) -> StoredCheckpoint | None:
        row = conn.execute(
            "SELECT size, root, time_us, note, hash FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        s, r, t, n, h = row
        return StoredCheckpoint(s, bytes(r), t, bytes(n), bytes(h))

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self.read() as conn:
            return self.latest_checkpoint_in(conn)

    def first_checkpoint_covering(self, index: int) -> StoredCheckpoint | None:
        """The smallest checkpoint whose tree includes leaf ``index`` (size > index)."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT size, root, time_us, note, hash FROM checkpoints WHERE size > ? "
                "ORDER BY size LIMIT 1",
                (index,),
            ).fetchone()
        if row is None:
            return None
        s, r, t, n, h = row
        return StoredCheckpoint(s, bytes(r), t, bytes(n), bytes(h))
