"""SqliteLedgerStore: the LedgerStore port (``core.ports.ledgerstore``) in one SQLite file.

The embedded footprint's ledger, ``<data_dir>/ledger.sqlite``.

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
Every chunk a proof or root needs that the port's chunk cache lacks is read in ONE query (the
keys packed in a JSON array): one SQLite round trip per proof instead of one per tree level.

Writes: :meth:`SqliteLedgerStore.write` is ``BEGIN IMMEDIATE``, so leaves, nodes, positions and
checkpoints of a sync batch commit together or not at all, and two processes syncing the same
file serialize (the second re-reads the state inside its transaction). Readers see committed
state only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import HubError, StorageBusy
from core.ports.ledgerstore import (
    Chunk,
    LeafQuery,
    LeafRow,
    LedgerStore,
    LedgerWrite,
    Positions,
    StoredCheckpoint,
)

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
CREATE TABLE witness_intents (size INTEGER PRIMARY KEY);
"""

_INSERT_LEAF = "INSERT INTO leaves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_COLUMNS = "idx, topic, part, off, ts_ms, actor, action, resource, tenant, leaf_hash"


_INDEX_BITS = 40
# One statement for any set of chunks: keys packed as level << 40 | chunk in a JSON array.
_SQL_CHUNKS = (
    "SELECT n.level, n.chunk, n.data FROM json_each(?1) AS j JOIN nodes AS n"
    " ON n.level = (j.value >> 40) AND n.chunk = (j.value & 1099511627775)"
)
_CHECKPOINT_COLUMNS = "size, root, time_us, note, hash"
# Added after version 1 shipped: created on open when missing (no version change needed).
_INTENTS_TABLE = "CREATE TABLE IF NOT EXISTS witness_intents (size INTEGER PRIMARY KEY)"


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    s, r, t, n, h = row
    return StoredCheckpoint(int(s), bytes(r), int(t), bytes(n), bytes(h))


def _size(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(idx) FROM leaves").fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def _positions(conn: sqlite3.Connection) -> Positions:
    rows = conn.execute("SELECT topic, part, next_offset FROM positions")
    return {(t, p): o for t, p, o in rows}


def _latest(conn: sqlite3.Connection) -> StoredCheckpoint | None:
    row = conn.execute(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _checkpoint(row)


class _Write(LedgerWrite):
    """A write transaction on the store's connection (``BEGIN IMMEDIATE`` already run)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def size(self) -> int:
        return _size(self._conn)

    def positions(self) -> Positions:
        return _positions(self._conn)

    def chunk(self, level: int, chunk: int) -> bytes:
        row = self._conn.execute(
            "SELECT data FROM nodes WHERE level = ? AND chunk = ?", (level, chunk)
        ).fetchone()
        if row is None:
            raise IndexError(f"no node chunk ({level}, {chunk}) in the ledger store.")
        return bytes(row[0])

    def append(self, rows: Sequence[LeafRow], chunks: Iterable[Chunk]) -> None:
        try:
            self._conn.executemany(_INSERT_LEAF, rows)
        except sqlite3.IntegrityError as exc:
            raise HubError(
                f"A leaf index or log position is already on the ledger ({exc}); the ledger "
                "appends each record once.",
                code="ledger_store",
            ) from exc
        self._conn.executemany(
            "INSERT INTO nodes VALUES (?, ?, ?) ON CONFLICT (level, chunk) "
            "DO UPDATE SET data = excluded.data",
            chunks,
        )

    def set_positions(self, positions: Positions) -> None:
        self._conn.executemany(
            "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (topic, part) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            [(t, p, o) for (t, p), o in positions.items()],
        )

    def add_checkpoint(self, cp: StoredCheckpoint) -> None:
        try:
            self._conn.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                (cp.size, cp.root, cp.time_us, cp.note, cp.hash),
            )
        except sqlite3.IntegrityError as exc:
            raise HubError(
                f"The ledger already holds a checkpoint of size {cp.size}.", code="ledger_store"
            ) from exc

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return _latest(self._conn)

    def add_witness_intents(self, sizes: Sequence[int]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO witness_intents VALUES (?)", [(s,) for s in sizes]
        )

    def clear_witness_intents(self, sizes: Sequence[int]) -> None:
        self._conn.executemany("DELETE FROM witness_intents WHERE size = ?", [(s,) for s in sizes])


class SqliteLedgerStore(LedgerStore):
    """The ledger's SQLite file. Thread-safe: one connection guarded by a lock."""

    kind = "sqlite"

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        super().__init__()
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
        conn.execute(_INTENTS_TABLE)

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[LedgerWrite]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on normal exit, rolled back otherwise."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageBusy(
                    f"The ledger store {self.path} is locked by another writer ({exc}); retry."
                ) from exc
            try:
                yield _Write(self._conn)
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
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- state -------------------------------------------------------------------------------
    def tree_size(self) -> int:
        with self._read() as conn:
            return _size(conn)

    def positions(self) -> Positions:
        with self._read() as conn:
            return _positions(conn)

    # -- nodes -------------------------------------------------------------------------------
    def read_chunks(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        with self._read() as conn:
            if len(keys) == 1:  # one chunk (a per-level node read, verify): the plain lookup
                rows = conn.execute(
                    "SELECT level, chunk, data FROM nodes WHERE level = ? AND chunk = ?", keys[0]
                ).fetchall()
            else:
                packed = json.dumps([lv << _INDEX_BITS | ch for lv, ch in keys])
                rows = conn.execute(_SQL_CHUNKS, (packed,)).fetchall()
        return {(int(lv), int(ch)): bytes(blob) for lv, ch, blob in rows}

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._read() as conn:
            rows = conn.execute("SELECT level, chunk, data FROM nodes ORDER BY level, chunk")
            yield from ((int(a), int(b), bytes(c)) for a, b, c in rows.fetchall())

    def stored_chunk_keys(self) -> list[tuple[int, int]]:
        with self._read() as conn:
            rows = conn.execute("SELECT level, chunk FROM nodes ORDER BY level, chunk").fetchall()
        return [(int(a), int(b)) for a, b in rows]

    # -- leaves ------------------------------------------------------------------------------
    def leaf(self, index: int) -> LeafRow | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM leaves WHERE idx = ?", (index,)).fetchone()
        return None if row is None else tuple(row)

    def index_of(self, topic: str, partition: int, offset: int) -> int | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT idx FROM leaves WHERE topic = ? AND part = ? AND off = ?",
                (topic, partition, offset),
            ).fetchone()
        return None if row is None else int(row[0])

    def iter_leaves(self, start: int = 0, batch: int = 50_000) -> Iterator[list[LeafRow]]:
        """All leaf rows in index order, in batches (each batch its own short read)."""
        last = start - 1
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM leaves WHERE idx > ? ORDER BY idx LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def find(self, where: LeafQuery, *, after: int = -1, limit: int = 100) -> list[LeafRow]:
        clauses = ["idx > ?"]
        args: list[Any] = [after]
        for column, value in (
            ("actor", where.actor),
            ("action", where.action),
            ("resource", where.resource),
            ("topic", where.topic),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if where.topics is not None:
            clauses.append(f"topic IN ({','.join('?' * len(where.topics))})")
            args.extend(where.topics)
        if where.since_ms is not None:
            clauses.append("ts_ms >= ?")
            args.append(where.since_ms)
        if where.until_ms is not None:
            clauses.append("ts_ms < ?")
            args.append(where.until_ms)
        sql = f"SELECT {_COLUMNS} FROM leaves WHERE {' AND '.join(clauses)} ORDER BY idx LIMIT ?"
        with self._read() as conn:
            return conn.execute(sql, (*args, limit)).fetchall()

    def count_by_topic(self, since_ms: int, until_ms: int) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT topic, count(*) FROM leaves WHERE ts_ms >= ? AND ts_ms < ? "
                "GROUP BY topic ORDER BY topic",
                (since_ms, until_ms),
            ).fetchall()
        return {str(t): int(n) for t, n in rows}

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoints(
        self, *, min_size: int = 0, max_size: int | None = None
    ) -> list[StoredCheckpoint]:
        sql = f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE size >= ?"
        args: list[int] = [min_size]
        if max_size is not None:
            sql += " AND size <= ?"
            args.append(max_size)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY size", args).fetchall()
        return [_checkpoint(r) for r in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self._read() as conn:
            return _latest(conn)

    def witness_intents(self) -> list[int]:
        with self._read() as conn:
            rows = conn.execute("SELECT size FROM witness_intents ORDER BY size").fetchall()
        return [int(r[0]) for r in rows]

    def first_checkpoint_covering(self, index: int) -> StoredCheckpoint | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE size > ? "
                "ORDER BY size LIMIT 1",
                (index,),
            ).fetchone()
        return None if row is None else _checkpoint(row)
