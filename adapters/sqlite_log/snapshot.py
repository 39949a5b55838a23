"""Reading a copy of the embedded log's file without opening it as a log (backups)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def end_offsets(path: Path) -> dict[str, dict[str, int]]:
    """Per topic and partition the end offset in a log file (a snapshot), read-only.

    A backup takes these from the snapshot it copies, not from the live log, so the manifest
    names exactly the records the copy holds; opening the copy as an ``SqliteEventLog`` would
    need its MAC key and could migrate the file.
    """
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT t.name, p.part, p.next_offset FROM partitions p "
            "JOIN topics t ON t.id = p.topic_id ORDER BY t.name, p.part"
        ).fetchall()
    finally:
        conn.close()
    out: dict[str, dict[str, int]] = {}
    for name, part, end in rows:
        out.setdefault(str(name), {})[str(part)] = int(end)
    return out
