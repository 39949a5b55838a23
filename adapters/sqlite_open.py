"""Opening the hub's own SQLite files: every adapter that keeps a SQLite file (the event log, the
ledger stores, the keyring, trace links, feature values and vectors) opens it here."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Literal


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
