"""Opening a small SQLite store of the hub's own (feature values, feature vectors)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_store(
    path: Path | str, schema: str, *, synchronous: str | None = None
) -> sqlite3.Connection:
    """A connection in autocommit mode usable from any thread (callers hold their own lock),
    write-ahead logged, with ``schema`` applied; the folder is made first."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    if synchronous is not None:
        db.execute(f"PRAGMA synchronous={synchronous}")
    db.executescript(schema)
    return db
