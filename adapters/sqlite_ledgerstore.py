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

The rows' MAC. The query columns are what filtered reads select by (a tenant's ``entries``,
evidence selections, the access review): whoever can write this file rewrites a row's tenant,
action or time and the entry drops out of those reads, while the leaf hashes, the tree and the
checkpoints stay as they were. So each appended batch of rows carries, in ``leaf_macs``,
``HMAC-SHA256(side_key, label | first | n | SHA-256(rows))`` (every column of every row),
``side_key`` coming from ``keys/`` as the tile store's; ``integrity_problems`` (the default
verify) checks every batch and that they cover every leaf. Rows written before the MAC are
keyed as found when a keyed handle first opens the file, once: ``keyed_marker`` (a file in
``keys/``, which whoever edits this file cannot write) records that it was done, so a file whose
MACs were all removed is not keyed again but fails.

Reads: the file is memory-mapped (``PRAGMA mmap_size``), so a page read is no ``read()`` call.
Every chunk a proof or root needs that the port's chunk cache lacks is read in ONE query (the
keys packed in a JSON array): one SQLite round trip per proof instead of one per tree level.

Writes: :meth:`SqliteLedgerStore.write` is ``BEGIN IMMEDIATE``, so leaves, nodes, positions and
checkpoints of a sync batch commit together or not at all, and two processes syncing the same
file serialize (the second re-reads the state inside its transaction). Readers see committed
state only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from adapters.sqlite_ledgerfile import (
    INTENTS_TABLE,
    SHARED_TABLES,
    CheckpointWrites,
    SqliteLedgerFile,
    create_schema,
    immediate,
    positions_of,
)
from adapters.sqlite_open import MMAP_BYTES
from core.errors import HubError
from core.ports.ledgerstore import (
    Chunk,
    LeafQuery,
    LeafRow,
    LedgerWrite,
    Positions,
)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4855424C  # "HUBL"

_SCHEMA = (
    """
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
"""
    + SHARED_TABLES
)

_MACS_TABLE = (
    "CREATE TABLE IF NOT EXISTS leaf_macs "
    "(first INTEGER PRIMARY KEY, n INTEGER NOT NULL, mac BLOB NOT NULL)"
)
_MAC_LABEL = b"hub ledger leaf rows v1\x00"
_ROW_INTS = struct.Struct("<qqqq")  # idx, part, off, ts_ms
_NULL = struct.pack("<i", -1)
_INSERT_LEAF = "INSERT INTO leaves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_COLUMNS = "idx, topic, part, off, ts_ms, actor, action, resource, tenant, leaf_hash"


_INDEX_BITS = 40
# One statement for any set of chunks: keys packed as level << 40 | chunk in a JSON array.
_SQL_CHUNKS = (
    "SELECT n.level, n.chunk, n.data FROM json_each(?1) AS j JOIN nodes AS n"
    " ON n.level = (j.value >> 40) AND n.chunk = (j.value & 1099511627775)"
)


def rows_mac(key: bytes, first: int, rows: Sequence[Sequence[Any]]) -> bytes:
    """The MAC of the leaf rows ``[first, first + len(rows))``: every column of every row."""
    digest = hashlib.sha256()
    for idx, topic, part, off, ts, actor, action, resource, tenant, leaf_hash in rows:
        digest.update(_ROW_INTS.pack(idx, part, off, ts))
        for text in (topic, actor, action, resource, tenant):
            if text is None:
                digest.update(_NULL)
            else:
                raw = str(text).encode()
                digest.update(struct.pack("<i", len(raw)) + raw)
        digest.update(bytes(leaf_hash))
    msg = _MAC_LABEL + struct.pack("<QQ", first, len(rows)) + digest.digest()
    return hmac.new(key, msg, hashlib.sha256).digest()


def row_mac_problems(
    key: bytes,
    macs: Iterable[Sequence[Any]],
    rows_of: Callable[[int, int], Sequence[Sequence[Any]]],
    size: int,
    where: str,
    restore: str,
) -> list[str]:
    """Every batch of leaf rows against its MAC (``macs``: ``(first, n, mac)`` in order of
    ``first``; ``rows_of(first, n)`` reads that batch's rows), and the batches covering the
    leaves ``[0, size)`` once. ``where`` names the store, ``restore`` what to restore from."""
    problems: list[str] = []
    expected = 0
    for first, n, mac in macs:
        first, n = int(first), int(n)
        if first != expected:
            problems.append(
                f"the leaf rows {min(first, expected)}..{max(first, expected) - 1} of "
                f"{where} are covered by no MAC, or by two: batches of MACs were removed or "
                "added."
            )
        rows = rows_of(first, n)
        if len(rows) != n or not hmac.compare_digest(bytes(mac), rows_mac(key, first, rows)):
            problems.append(
                f"the leaf rows {first}..{first + n - 1} of {where} do not match their MAC: a "
                "position, time, actor, action, resource or tenant was rewritten (entries could "
                "be hidden from or misattributed in filtered reads); run `hub ledger verify "
                f"--full` and restore {restore} from a backup."
            )
        expected = max(expected, first + n)
    if expected < size:
        problems.append(
            f"the leaf rows {expected}..{size - 1} of {where} are covered by no MAC: their MACs "
            "were removed."
        )
    return problems


def _rows(conn: sqlite3.Connection, first: int, n: int) -> list[Any]:
    return conn.execute(
        f"SELECT {_COLUMNS} FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (first, first + n)
    ).fetchall()


def _size(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(idx) FROM leaves").fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


class _Write(CheckpointWrites, LedgerWrite):
    """A write transaction on the store's connection (``BEGIN IMMEDIATE`` already run)."""

    def __init__(self, conn: sqlite3.Connection, key: bytes | None = None) -> None:
        self._conn = conn
        self._key = key

    def size(self) -> int:
        return _size(self._conn)

    def positions(self) -> Positions:
        return positions_of(self._conn)

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
        if rows and self._key is not None:
            first = int(rows[0][0])
            self._conn.execute(
                "INSERT INTO leaf_macs VALUES (?, ?, ?)",
                (first, len(rows), rows_mac(self._key, first, rows)),
            )
        self._conn.executemany(
            "INSERT INTO nodes VALUES (?, ?, ?) ON CONFLICT (level, chunk) "
            "DO UPDATE SET data = excluded.data",
            chunks,
        )


class SqliteLedgerStore(SqliteLedgerFile):
    """The ledger's SQLite file. Thread-safe: one connection guarded by a lock."""

    kind = "sqlite"

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 30.0,
        side_key: bytes | None = None,
        keyed_marker: Path | None = None,
    ) -> None:
        """``side_key``: the rows' MAC key (module docstring); without it rows are written
        without a MAC and nothing is checked. ``keyed_marker``: the file (in ``keys/``) that
        says this ledger's rows were keyed once; absent, the rows found are keyed as they are
        and the file is written."""
        self._side_key = side_key
        self._keyed_marker = keyed_marker
        pragmas = ("journal_mode=WAL", "synchronous=NORMAL", f"mmap_size={MMAP_BYTES}")
        super().__init__(str(path), busy_timeout_s, pragmas)

    def _setup(self) -> None:
        conn = self._conn
        (app,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == 0:
            create_schema(conn, _SCHEMA, APPLICATION_ID, SCHEMA_VERSION)
        elif app != APPLICATION_ID or version != SCHEMA_VERSION:
            raise HubError(
                f"{self.path} is not a version-{SCHEMA_VERSION} hub ledger (application id "
                f"{app:#x}, version {version}); move it away or point HUB_DATA_DIR elsewhere.",
                code="ledger_store",
            )
        conn.execute(INTENTS_TABLE)
        conn.execute(_MACS_TABLE)
        key, marker = self._side_key, self._keyed_marker
        if key is not None and not (marker is not None and marker.exists()):
            # first keyed open: the rows no batch covers are keyed as found (trust on first
            # use), then never again (the marker is outside this file)
            with immediate(conn):
                covered = conn.execute("SELECT coalesce(max(first + n), 0) FROM leaf_macs")
                start, size = int(covered.fetchone()[0]), _size(conn)
                if size > start:
                    rows = _rows(conn, start, size - start)
                    conn.execute(
                        "INSERT INTO leaf_macs VALUES (?, ?, ?)",
                        (start, len(rows), rows_mac(key, start, rows)),
                    )
            if marker is not None:
                marker.write_text(f"ledger rows keyed: {self.path}\n")

    def _writer(self, conn: sqlite3.Connection) -> LedgerWrite:
        return _Write(conn, self._side_key)

    def integrity_problems(self, decoded: Iterable[int] = (), verified: int = 0) -> list[str]:
        """Every batch of rows against its MAC, and the batches covering every leaf once (the
        module docstring): a rewritten column lies below any incremental start, so every
        batch is checked on every run (one read of the rows and a SHA-256 over them)."""
        key = self._side_key
        if key is None:
            return []
        with self._read() as conn:
            size = _size(conn)
            macs = conn.execute("SELECT first, n, mac FROM leaf_macs ORDER BY first").fetchall()

        def rows_of(first: int, n: int) -> Sequence[Sequence[Any]]:
            with self._read() as conn:
                return _rows(conn, first, n)

        return row_mac_problems(key, macs, rows_of, size, str(self.path), "the ledger file")

    # -- state -------------------------------------------------------------------------------
    def tree_size(self) -> int:
        with self._read() as conn:
            return _size(conn)

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
        if where.tenant_scope is not None:
            clauses.append("(tenant = ? OR tenant IS NULL)")
            args.append(where.tenant_scope)
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
