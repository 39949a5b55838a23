"""A footprint-neutral copy of a hub's log and ledger, made and replayed through the ports.

The embedded footprint's backup copies SQLite files; a hub whose log is Kafka and whose ledger is
PostgreSQL has no files to copy. This module exports both through their ports, so the same
backup (chunks, manifest, signature: ``storage.backup``) covers every footprint, and a backup of
one footprint restores into another.

- ``export_log``: every record of every topic, as stored (partition, offset, timestamp, key,
  value, headers), read through ``EventLog.scan``, into one SQLite file (``LOG_EXPORT``): tables
  ``topics`` (name, partitions, config) and ``records``.
- ``replay_log``: recreates the topics in an empty EventLog (a fresh Kafka cluster or topic
  prefix, or a new embedded log) and appends the records so that each lands at its original
  offset with its original timestamp: the ledger's leaves hash the position, so anything else
  would fail ``hub ledger verify``. A gap of one offset after a run of records is a transaction's
  commit marker (Kafka's, and the embedded log's, which reproduces it); it is recreated by
  appending that run inside a transaction. Anything else (a partition that does not start at 0
  after a retention cut, a gap of several offsets from an aborted transaction) cannot be
  recreated through the port and is refused naming the topic, partition and offset.
- ``copy_ledger``: leaves, tree chunks, positions and checkpoints from one LedgerStore to
  another (PostgreSQL to a SQLite file for the backup; back into a fresh PostgreSQL schema or a
  SQLite file at restore): the tree is copied, not recomputed, and the restore then checks its
  root against the manifest and verifies it against the replayed log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import HubError
from core.ports.eventlog import EventLog, Record, StoredRecord
from core.ports.ledgerstore import LedgerStore

LOG_EXPORT = "log.export.sqlite"
Progress = Callable[[str], None]

_SCHEMA = """
CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, config TEXT NOT NULL);
CREATE TABLE records (
    topic TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL, ts INTEGER NOT NULL,
    key BLOB, value BLOB, headers TEXT NOT NULL,
    PRIMARY KEY (topic, part, off)
) WITHOUT ROWID;
"""


class ReplayRefused(HubError):
    code = "restore_refused"
    http_status = 409


def _headers_out(rec: StoredRecord) -> str:
    return json.dumps([[name, value.hex()] for name, value in rec.headers])


def _headers_in(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((str(n), bytes.fromhex(v)) for n, v in json.loads(text))


def export_log(
    log: EventLog,
    path: Path,
    *,
    until: dict[str, dict[int, int]] | None = None,
    progress: Progress | None = None,
) -> dict[str, dict[str, int]]:
    """Write every record of ``log`` (up to ``until``'s end offsets, default the ends seen at the
    start) into the SQLite file ``path``; the end offsets exported, per topic and partition."""
    say = progress or (lambda _msg: None)
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)
    ends: dict[str, dict[str, int]] = {}
    try:
        for info in sorted(log.topics(), key=lambda t: t.name):
            conn.execute(
                "INSERT INTO topics VALUES (?, ?, ?)",
                (info.name, info.partitions, json.dumps(dict(info.config), sort_keys=True)),
            )
            stop = (until or {}).get(info.name) or log.end_offsets(info.name)
            ends[info.name] = {}
            for part in range(info.partitions):
                end = stop.get(part, 0)
                n = 0
                batch: list[tuple[object, ...]] = []
                for rec in log.scan(info.name, part):
                    if rec.offset >= end:
                        break
                    batch.append(
                        (
                            info.name,
                            part,
                            rec.offset,
                            rec.timestamp_ms,
                            rec.key,
                            rec.value,
                            _headers_out(rec),
                        )
                    )
                    n += 1
                    if len(batch) >= 10_000:
                        conn.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?)", batch)
                        batch.clear()
                conn.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?)", batch)
                ends[info.name][str(part)] = end
                if n:
                    say(f"log {info.name}[{part}]: {n} records up to offset {end}")
        conn.commit()
    finally:
        conn.close()
    return ends


def export_end_offsets(path: Path) -> dict[str, dict[str, int]]:
    """Per topic and partition, one past the last exported offset (0 when none)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: dict[str, dict[str, int]] = {
            str(name): {str(p): 0 for p in range(int(parts))}
            for name, parts in conn.execute("SELECT name, partitions FROM topics")
        }
        for topic, part, last in conn.execute(
            "SELECT topic, part, MAX(off) FROM records GROUP BY topic, part"
        ):
            out[str(topic)][str(part)] = int(last) + 1
    finally:
        conn.close()
    return out


def _runs(
    rows: Iterator[tuple[int, int, bytes | None, bytes | None, str]],
) -> Iterator[tuple[int, list[tuple[int, int, bytes | None, bytes | None, str]]]]:
    """Maximal runs of consecutive offsets: (first offset, rows)."""
    run: list[tuple[int, int, bytes | None, bytes | None, str]] = []
    for row in rows:
        if run and row[0] != run[-1][0] + 1:
            yield run[0][0], run
            run = []
        run.append(row)
    if run:
        yield run[0][0], run


def replay_log(path: Path, log: EventLog, *, progress: Progress | None = None) -> int:
    """Recreate the exported topics and records in the empty ``log`` at their offsets; the number
    of records written. Refuses a log that already holds a record of an exported topic."""
    say = progress or (lambda _msg: None)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    total = 0
    try:
        topics = conn.execute(
            "SELECT name, partitions, config FROM topics ORDER BY name"
        ).fetchall()
        for name, parts, config in topics:
            log.create_topic(str(name), int(parts), json.loads(config))
            held = {p: o for p, o in log.end_offsets(str(name)).items() if o}
            if held:
                raise ReplayRefused(
                    f"The target log already holds records of topic {name!r} (end offsets "
                    f"{held}); a backup replays only into an empty log (a fresh cluster or "
                    "topic prefix)."
                )
        for name, parts, _config in topics:
            for part in range(int(parts)):
                total += _replay_partition(conn, log, str(name), part, say)
    finally:
        conn.close()
    return total


def _replay_partition(
    conn: sqlite3.Connection, log: EventLog, topic: str, part: int, say: Progress
) -> int:
    rows = conn.execute(
        "SELECT off, ts, key, value, headers FROM records WHERE topic = ? AND part = ? "
        "ORDER BY off",
        (topic, part),
    )
    runs = list(_runs(iter(rows)))
    expected = 0
    count = 0
    for i, (first, run) in enumerate(runs):
        if first != expected:
            raise ReplayRefused(
                f"Topic {topic!r} partition {part}: the backup's records resume at offset "
                f"{first} after {expected}; a gap other than one commit marker (a retention cut "
                "or an aborted transaction) cannot be recreated through the log's API, so this "
                "backup cannot be replayed into a new log with its ledger intact."
            )
        last = run[-1][0]
        nxt = runs[i + 1][0] if i + 1 < len(runs) else None
        records = [
            Record(value=v, key=k, headers=_headers_in(h), timestamp_ms=ts, partition=part)
            for _off, ts, k, v, h in run
        ]
        if nxt == last + 2:  # a commit marker follows: append the run in a transaction
            with log.transaction(f"hub-restore-{topic}-{part}-{first}") as txn:
                got = txn.append(topic, records)
            expected = last + 2
        else:
            got = log.append(topic, records)
            expected = last + 1
        if got and (got[0].offset != first or got[-1].offset != last):
            raise ReplayRefused(
                f"Topic {topic!r} partition {part}: replayed records landed at offsets "
                f"{got[0].offset}..{got[-1].offset}, not {first}..{last}; the target log is "
                "not empty or reorders appends."
            )
        count += len(records)
    if count:
        say(f"replayed {topic}[{part}]: {count} records")
    return count


def copy_ledger(src: LedgerStore, dst: LedgerStore, *, batch: int = 50_000) -> int:
    """Copy every leaf, tree chunk, position and checkpoint of ``src`` into the empty ``dst``;
    the tree size copied."""
    if dst.tree_size():
        raise ReplayRefused(
            f"The target ledger store already holds {dst.tree_size()} leaves; a ledger is "
            "restored only into an empty store (a fresh database or schema)."
        )
    chunks = list(src.iter_chunks())
    with dst.write() as w:
        for rows in src.iter_leaves(0, batch):
            w.append(rows, ())
        for i in range(0, len(chunks), 10_000):
            w.append((), chunks[i : i + 10_000])
        w.set_positions(src.positions())
        for cp in src.checkpoints():
            w.add_checkpoint(cp)
    dst.clear_caches()
    return dst.tree_size()
