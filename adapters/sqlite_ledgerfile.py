"""What the two SQLite ledger stores share: ``adapters.sqlite_ledgerstore`` (a row per leaf) and
``adapters.tile_ledgerstore`` (tlog-tiles). Each keeps its tree in its own tables; both open
the file alike (one connection, one lock, a schema made once under an application id and a
version), write in one ``BEGIN IMMEDIATE`` transaction, and lay out the checkpoints, the log
positions and the witness intents in the same tables, read and written here.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from adapters.sqlite_open import connect, write_transaction
from core.errors import HubError, StorageBusy
from core.ports.ledgerstore import LedgerStore, LedgerWrite, Positions, StoredCheckpoint

# The tables both stores lay out alike, made last in a new file (after each store's own).
SHARED_TABLES = """
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
CHECKPOINT_COLUMNS = "size, root, time_us, note, hash"
# Added after version 1 shipped: created on open when missing (no version change needed).
INTENTS_TABLE = "CREATE TABLE IF NOT EXISTS witness_intents (size INTEGER PRIMARY KEY)"


def checkpoint_of(row: Sequence[Any]) -> StoredCheckpoint:
    s, r, t, n, h = row
    return StoredCheckpoint(int(s), bytes(r), int(t), bytes(n), bytes(h))


def positions_of(conn: sqlite3.Connection) -> Positions:
    rows = conn.execute("SELECT topic, part, next_offset FROM positions")
    return {(t, p): o for t, p, o in rows}


def latest_of(conn: sqlite3.Connection) -> StoredCheckpoint | None:
    row = conn.execute(
        f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1"
    ).fetchone()
    return None if row is None else checkpoint_of(row)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction: committed on normal exit, rolled back otherwise."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite already rolled back on some errors (SQLITE_FULL)
            conn.execute("ROLLBACK")
        raise


def _commit_failed(exc: sqlite3.Error) -> HubError:
    return HubError(f"Committing to the ledger failed: {exc}.", code="ledger_store")


def create_schema(conn: sqlite3.Connection, schema: str, application_id: int, version: int) -> None:
    """Make ``schema`` in a new file and stamp it with ``application_id`` and ``version``, unless
    another handle did so first (its ``user_version`` is read again inside the transaction)."""
    with immediate(conn):
        (found,) = conn.execute("PRAGMA user_version").fetchone()
        if found == 0:
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id={application_id}")
            conn.execute(f"PRAGMA user_version={version}")


class CheckpointWrites:
    """A write transaction's checkpoint, position and witness-intent writes (``LedgerWrite``)."""

    _conn: sqlite3.Connection

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
        return latest_of(self._conn)

    def add_witness_intents(self, sizes: Sequence[int]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO witness_intents VALUES (?)", [(s,) for s in sizes]
        )

    def clear_witness_intents(self, sizes: Sequence[int]) -> None:
        self._conn.executemany("DELETE FROM witness_intents WHERE size = ?", [(s,) for s in sizes])


class SqliteLedgerFile(LedgerStore):
    """A ledger store in one SQLite file: one connection guarded by a lock (thread-safe). The
    subclass makes or checks its schema (``_setup``) and names its write transaction
    (``_writer``); ``described`` names the store in messages."""

    described = "ledger store"

    def __init__(
        self,
        path: str,
        busy_timeout_s: float,
        pragmas: Sequence[str],
        *,
        chunk_cache: int = 4096,
    ) -> None:
        """Open ``path`` with ``pragmas`` (in order), then ``_setup``; SQLite's errors are
        translated."""
        super().__init__(chunk_cache=chunk_cache)
        self.path = path
        self._lock = threading.RLock()
        try:
            self._conn = connect(self.path, pragmas, timeout=busy_timeout_s)
            self._setup()
        except sqlite3.Error as exc:
            raise HubError(
                f"Cannot open the {self.described} {self.path}: {exc}.", code="ledger_store"
            ) from exc

    @abstractmethod
    def _setup(self) -> None:
        """Make the schema in a new file, or check (and upgrade) the one found."""

    @abstractmethod
    def _writer(self, conn: sqlite3.Connection) -> LedgerWrite:
        """The write transaction's view of ``conn`` (``BEGIN IMMEDIATE`` already run)."""

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[LedgerWrite]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on normal exit, rolled back otherwise."""
        with write_transaction(self._conn, self._lock, self._busy, _commit_failed) as conn:
            yield self._writer(conn)

    def _busy(self, exc: sqlite3.OperationalError) -> StorageBusy:
        return StorageBusy(
            f"The {self.described} {self.path} is locked by another writer ({exc}); retry."
        )

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def positions(self) -> Positions:
        with self._read() as conn:
            return positions_of(conn)

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoints(
        self, *, min_size: int = 0, max_size: int | None = None
    ) -> list[StoredCheckpoint]:
        sql = f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size >= ?"
        args: list[int] = [min_size]
        if max_size is not None:
            sql += " AND size <= ?"
            args.append(max_size)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY size", args).fetchall()
        return [checkpoint_of(r) for r in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self._read() as conn:
            return latest_of(conn)

    def witness_intents(self) -> list[int]:
        with self._read() as conn:
            rows = conn.execute("SELECT size FROM witness_intents ORDER BY size").fetchall()
        return [int(r[0]) for r in rows]

    def first_checkpoint_covering(self, index: int) -> StoredCheckpoint | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size > ? "
                "ORDER BY size LIMIT 1",
                (index,),
            ).fetchone()
        return None if row is None else checkpoint_of(row)
