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
  would fail ``hub ledger verify``. The offsets that hold no record are recreated too, through
  the port (``_Partition``):
  - a retention cut (the partition started at S > 0, recorded in the export's ``starts``): S
    filler records are appended and deleted again (``delete_records_before(S)``), so the new
    log starts at S like the old one, and the ledger's ``retention.delete`` entry still matches;
  - a gap of one offset after a run of records is a transaction's commit marker (Kafka's, and
    the embedded log's, which reproduces it): that run is appended inside a transaction;
  - a gap of g >= 2 offsets (an aborted Kafka transaction: its records and its abort marker) is
    recreated by aborting a transaction of g - 1 filler records (their offsets and the marker's),
    which no committed read returns. The embedded log gives an aborted transaction no offsets,
    so such a backup replays only into Kafka: anything the target log cannot recreate is
    refused naming the topic, partition and offset, before the restore reports success.
- ``copy_ledger``: leaves, tree chunks, positions and checkpoints from one LedgerStore to
  another (PostgreSQL to a SQLite file for the backup; back into a fresh PostgreSQL schema or a
  SQLite file at restore): the tree is copied, not recomputed, and the restore then checks its
  root against the manifest and verifies it against the replayed log.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import HubError
from core.ports.eventlog import EventLog, Record, StoredRecord
from core.ports.ledgerstore import LedgerStore

LOG_EXPORT = "log.export.sqlite"
MARKER_WAIT_S = 30.0  # how long a transaction marker may take to land (Kafka writes it after)
Progress = Callable[[str], None]

_SCHEMA = """
CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, config TEXT NOT NULL);
CREATE TABLE records (
    topic TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL, ts INTEGER NOT NULL,
    key BLOB, value BLOB, headers TEXT NOT NULL,
    PRIMARY KEY (topic, part, off)
) WITHOUT ROWID;
CREATE TABLE starts (topic TEXT NOT NULL, part INTEGER NOT NULL, start INTEGER NOT NULL,
    PRIMARY KEY (topic, part)) WITHOUT ROWID;
"""
FILLER = (("hub_restore_filler", b"1"),)  # the header of the records that only take an offset
FILLER_BATCH = 50_000  # plain appends of one partition: never a Kafka transaction


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
            begins = log.beginning_offsets(info.name)
            ends[info.name] = {}
            for part in range(info.partitions):
                end = stop.get(part, 0)
                if begins.get(part, 0):  # a retention cut: the replay starts the partition here
                    conn.execute(
                        "INSERT INTO starts VALUES (?, ?, ?)",
                        (info.name, part, min(begins[part], end)),
                    )
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
        starts = _starts(conn)
        for name, parts, _config in topics:
            for part in range(int(parts)):
                start = starts.get((str(name), part), 0)
                total += _replay_partition(conn, log, str(name), part, start, say)
    finally:
        conn.close()
    return total


def _starts(conn: sqlite3.Connection) -> dict[tuple[str, int], int]:
    """Per partition the start offset after a retention cut (an export made before the table
    existed has none: every partition started at 0)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'starts'").fetchone():
        return {}
    return {(str(t), int(p)): int(s) for t, p, s in conn.execute("SELECT * FROM starts")}


class _Partition:
    """One partition being replayed: appends that must land at given offsets, and the offsets
    that hold no record (cut, commit markers, aborted transactions), recreated through the port
    and checked against the target log's end offset."""

    def __init__(self, log: EventLog, topic: str, part: int) -> None:
        self.log, self.topic, self.part = log, topic, part
        self.end = 0  # the offset the next record lands at

    def _where(self, offset: int) -> str:
        return f"Topic {self.topic!r} partition {self.part}, offset {offset}"

    def _fillers(self, n: int) -> list[Record]:
        return [Record(value=b"", headers=FILLER, partition=self.part)] * n

    def _settled(self, want: int, what: str) -> None:
        """Wait (bounded) until the target's end offset is ``want``: a Kafka transaction's
        marker is written after the commit or abort returns, and the next append must follow
        it. Refuses when the log gives another end (the embedded log gives an aborted
        transaction no offsets: its end has not moved, and no wait would help)."""
        before = self.end  # the end before the operation
        deadline = time.monotonic() + MARKER_WAIT_S
        while True:
            got = self.log.end_offsets(self.topic).get(self.part, 0)
            if got >= want or got == before or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if got != want:
            raise ReplayRefused(
                f"{self._where(self.end)}: recreating {what} left the target log's end offset at "
                f"{got}, not {want}; this log cannot hold the backup's offsets (an embedded log "
                "gives an aborted transaction no offsets): restore this backup into Kafka "
                "(HUB_EVENT_LOG=kafka with a fresh topic prefix)."
            )
        self.end = want

    def cut(self, start: int, first: int | None) -> None:
        """Recreate a retention cut at ``start`` (``first``: the first offset that holds a
        record, or None when none does): fillers up to it, deleted again. A cut that left a
        commit marker first (``first == start + 1``) gets the last filler in a transaction."""
        marker = first == start + 1
        plain = start - 1 if marker else start
        for i in range(0, plain, FILLER_BATCH):
            self.log.append(self.topic, self._fillers(min(FILLER_BATCH, plain - i)))
        self._settled(plain, f"the {start} offsets below a retention cut")
        if marker:
            with self.log.transaction(f"hub-restore-{self.topic}-{self.part}-cut") as txn:
                txn.append(self.topic, self._fillers(1))
            self._settled(start + 1, "the commit marker after a retention cut")
        got = self.log.delete_records_before(self.topic, self.part, start)
        if got != start:
            raise ReplayRefused(
                f"{self._where(start)}: the retention cut moved the target's start to {got}."
            )

    def skip(self, gap: int) -> None:
        """Recreate ``gap`` >= 2 offsets of an aborted transaction: abort one of gap - 1
        fillers (they and the abort marker take the offsets; committed reads skip them)."""
        with self.log.transaction(f"hub-restore-{self.topic}-{self.part}-{self.end}") as txn:
            txn.append(self.topic, self._fillers(gap - 1))
            txn.abort()
        self._settled(self.end + gap, f"an aborted transaction of {gap} offsets")

    def append(self, first: int, records: list[Record], *, in_transaction: bool) -> None:
        """Append a run that must land at ``first``; a committed transaction (one marker after
        it) with ``in_transaction``."""
        last = first + len(records) - 1
        if in_transaction:
            with self.log.transaction(f"hub-restore-{self.topic}-{self.part}-{first}") as txn:
                got = txn.append(self.topic, records)
        else:
            got = self.log.append(self.topic, records)
        if got and (got[0].offset != first or got[-1].offset != last):
            raise ReplayRefused(
                f"Topic {self.topic!r} partition {self.part}: replayed records landed at offsets "
                f"{got[0].offset}..{got[-1].offset}, not {first}..{last}; the target log is "
                "not empty or reorders appends."
            )
        if in_transaction:
            self._settled(last + 2, "a commit marker")
        else:
            self.end = last + 1


def _replay_partition(
    conn: sqlite3.Connection, log: EventLog, topic: str, part: int, start: int, say: Progress
) -> int:
    rows = conn.execute(
        "SELECT off, ts, key, value, headers FROM records WHERE topic = ? AND part = ? "
        "ORDER BY off",
        (topic, part),
    )
    runs = list(_runs(iter(rows)))
    target = _Partition(log, topic, part)
    first_held = runs[0][0] if runs else None
    if first_held is not None and first_held < start:
        raise ReplayRefused(
            f"Topic {topic!r} partition {part}: the backup holds offset {first_held} below the "
            f"partition's recorded start {start}; the export is inconsistent."
        )
    if start:
        target.cut(start, first_held)
    count = 0
    for i, (first, run) in enumerate(runs):
        gap = first - target.end
        if gap == 1:
            raise ReplayRefused(
                f"Topic {topic!r} partition {part}: the backup's records resume at offset "
                f"{first} after {target.end - 1} with one empty offset that follows no "
                "transaction's records; the log's API cannot recreate it, so this backup "
                "cannot be replayed into a new log with its ledger intact."
            )
        if gap >= 2:
            target.skip(gap)
        last = run[-1][0]
        nxt = runs[i + 1][0] if i + 1 < len(runs) else None
        records = [
            Record(value=v, key=k, headers=_headers_in(h), timestamp_ms=ts, partition=part)
            for _off, ts, k, v, h in run
        ]
        # a commit marker follows: the run in a transaction
        target.append(first, records, in_transaction=nxt == last + 2)
        count += len(records)
    if count:
        say(f"replayed {topic}[{part}]: {count} records")
    return count


def copy_ledger(src: LedgerStore, dst: LedgerStore, *, batch: int = 50_000) -> int:
    """Copy every leaf, tree chunk, position, checkpoint and witness intent of ``src`` into the
    empty ``dst`` (any two stores: rows, tiles, PostgreSQL); the tree size copied."""
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
        w.add_witness_intents(src.witness_intents())  # copies a crash left to make
    dst.clear_caches()
    return dst.tree_size()
