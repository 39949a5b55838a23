"""Opening the hub's own SQLite files: every adapter that keeps a SQLite file (the event log, the
ledger stores, the keyring, trace links, feature values and vectors) opens it here."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal

from core.errors import HubError, is_storage_full, storage_full

# ``PRAGMA mmap_size`` for files read in bulk (the event log's readers, the ledger stores):
# a page read is a copy from the mapping, not a ``pread`` per page (a 556 KB log batch spans
# ~136 4-KiB pages, a 50k-leaf level-0 tile range ~1,600 1-KiB ones). Address space only;
# SQLite caps it (SQLITE_MAX_MMAP_SIZE) and remaps when another process grows or shrinks the
# file. Writes still go through ``write()`` (SQLite's default build).
MMAP_BYTES = 1 << 31


def connect(
    path: Path | str,
    pragmas: Sequence[str] = (),
    *,
    timeout: float = 30.0,
    isolation_level: Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"] | None = None,
) -> sqlite3.Connection:
    """A connection to ``path`` usable from any thread (callers hold their own lock), with
    ``pragmas`` run in order (``"journal_mode=WAL"``, ...). Autocommit by default (the caller
    issues ``BEGIN``/``COMMIT``); pass ``isolation_level="DEFERRED"`` for Python's implicit
    transactions (``with conn:``). Raises ``sqlite3.Error``: the caller translates it, naming
    its store."""
    conn = sqlite3.connect(
        str(path), timeout=timeout, isolation_level=isolation_level, check_same_thread=False
    )
    try:
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
    except BaseException:
        conn.close()
        raise
    return conn


def open_store(path: Path | str, schema: str, *pragmas: str) -> sqlite3.Connection:
    """``connect`` in autocommit mode, write-ahead logged, then ``pragmas``, then ``schema``
    applied (``CREATE ... IF NOT EXISTS``); the folder is made first. ``":memory:"`` opens an
    in-memory store."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = connect(path, ("journal_mode=WAL", *pragmas))
    try:
        db.executescript(schema)
    except BaseException:
        db.close()
        raise
    return db


def shred_freed(db: sqlite3.Connection) -> None:
    """Make rows just deleted unreadable from the file's bytes too (an erasure): SQLite leaves
    a deleted row's bytes in free pages (and a key copy in an interior page) until they are
    reused. ``VACUUM`` writes the file again from its live rows, and a truncating checkpoint
    empties the write-ahead log of the old pages. Outside a transaction (autocommit); its cost
    is a copy of the file (erasures are rare)."""
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextmanager
def write_transaction(
    conn: sqlite3.Connection,
    lock: AbstractContextManager[Any],
    busy: Callable[[sqlite3.OperationalError], Exception],
    failed: Callable[[sqlite3.Error], Exception],
) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction on ``conn`` under ``lock`` (the write lock taken up
    front, so processes serialise cleanly): committed on normal exit, rolled back otherwise.
    ``busy(exc)`` is raised when another writer still holds the file after the connection's
    busy timeout (SQLite's own retry); ``failed(exc)`` when the commit fails, after a rollback.
    The callers name their store in those errors."""
    with lock:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise busy(exc) from exc
        # SQLite rolls a transaction back by itself on some errors (SQLITE_FULL among them): a
        # second ROLLBACK would fail ("no transaction is active") and hide the real error.
        try:
            yield conn
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and is_storage_full(exc):
                raise _failure(failed, exc) from exc
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _failure(failed, exc) from exc


def _failure(failed: Callable[[sqlite3.Error], Exception], exc: sqlite3.Error) -> Exception:
    """``failed(exc)``, or a ``StorageFull`` saying the same when the disk had no room."""
    err = failed(exc)
    if is_storage_full(exc) and isinstance(err, HubError):
        return storage_full(err.message if err.message.endswith(".") else err.message + ".")
    return err
