"""SqliteTraceLinks: the trace links of ``core.tracing`` in one SQLite file beside the log.

A row says which publish span (its W3C ``traceparent``) appended the offsets ``first..last`` of a
partition. Only written when tracing is on. The file is shared by the processes of one host (the
API and a projection worker); it keeps the newest ``max_rows`` rows (a trace link older than that
is of no use to a live trace view).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from adapters.sqlite_open import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trace_links (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, first_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL, traceparent TEXT NOT NULL,
    PRIMARY KEY (topic, partition, first_offset)
);
"""


class SqliteTraceLinks:
    def __init__(self, path: Path | str, max_rows: int = 100_000) -> None:
        self.path = str(path)
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._db = connect(
            self.path,
            ("journal_mode=WAL", "synchronous=OFF"),
            timeout=5.0,
            isolation_level="DEFERRED",
        )
        self._db.executescript(_SCHEMA)
        self._puts = 0

    def put(self, entries: Sequence[tuple[str, int, int, int, str]]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO trace_links VALUES (?, ?, ?, ?, ?)", entries
            )
            self._puts += 1
            if self._puts % 1000 == 0:
                self._trim()

    def _trim(self) -> None:
        (count,) = self._db.execute("SELECT count(*) FROM trace_links").fetchone()
        if count > self.max_rows:
            self._db.execute(
                "DELETE FROM trace_links WHERE rowid IN (SELECT rowid FROM trace_links "
                "ORDER BY rowid LIMIT ?)",
                (count - self.max_rows,),
            )

    def find(self, topic: str, partition: int, first: int, last: int) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT traceparent FROM trace_links WHERE topic = ? AND partition = ? "
                "AND first_offset <= ? AND last_offset >= ? ORDER BY first_offset",
                (topic, partition, last, first),
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
