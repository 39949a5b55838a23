"""Embedded event log: append and read throughput beside a raw SQLite baseline from the same run.

Records are about 200 bytes: a 16-byte key, a 150-byte value and 3 headers (event type, a
16-byte event id, producer). The baseline is what SQLite itself does with one row per record:
``executemany`` of pre-built rows (no Python encoding at all) in one ``BEGIN IMMEDIATE``
transaction per batch, WAL, the same ``synchronous`` level. The adapter stores one row per
batch, so at large batches it should beat the baseline; at batch size 1 both are bound by the
commit (fsync with FULL). Reads are compared with a raw SELECT of tuples and with the same
SELECT building one StoredRecord per row (the object-construction floor). Appends are measured
without and with the MAC key (the hub's default: a MAC chain per batch and a partition seal).
Raw and adapter rounds alternate and the best round counts, since the machine is shared. About
30 s in all.

Run: ``.venv/bin/pytest benchmarks/test_bench_eventlog.py -q -s``
Environment: ``EVENTLOG_BENCH_SYNC`` (default FULL), ``EVENTLOG_BENCH_SECONDS`` (per figure, 1.5).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from benchmarks.conftest import Report
from core.ports.eventlog import Record, StoredRecord

pytestmark = pytest.mark.slow

SYNC = os.environ.get("EVENTLOG_BENCH_SYNC", "FULL")
SECONDS = float(os.environ.get("EVENTLOG_BENCH_SECONDS", "1.5"))
ROUNDS = 3
GROUP_APPEND = f"eventlog append {SYNC}"
GROUP_READ = "eventlog read"


def make_records(n: int) -> list[Record]:
    return [
        Record(
            value=os.urandom(150),
            key=b"account-%08d" % (i % 5000),
            headers=(
                ("event_type", b"TradeExecuted"),
                ("event_id", uuid.uuid4().bytes),
                ("producer", b"ingest-api"),
            ),
        )
        for i in range(n)
    ]


def raw_rows(records: list[Record]) -> list[tuple[object, ...]]:
    """Rows for the baseline, with headers already encoded (the baseline does no encoding)."""
    return [
        ("bench", 0, i, 1_700_000_000_000, r.key, r.value, b"".join(v for _, v in r.headers))
        for i, r in enumerate(records)
    ]


def raw_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {SYNC}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, topic TEXT, part INTEGER,"
        " offset INTEGER, ts INTEGER, key BLOB, value BLOB, headers BLOB)"
    )
    return conn


def rate(step: Callable[[], int], seconds: float) -> float:
    """Events per second of ``step`` (which returns its event count), run for ``seconds``."""
    events, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or events == 0:
        events += step()
    return events / elapsed


@pytest.mark.parametrize("size", [1, 100, 10_000])
def test_append_throughput(tmp_path: Path, report: Report, size: int) -> None:
    records = make_records(size)
    rows = raw_rows(records)
    conn = raw_db(tmp_path / "raw.db")
    insert = (
        "INSERT INTO records (topic, part, offset, ts, key, value, headers) VALUES (?,?,?,?,?,?,?)"
    )

    def raw_step() -> int:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
        return size

    log = SqliteEventLog(tmp_path / "log.db", synchronous=SYNC)
    log.create_topic("bench", 1)
    log.create_topic("bench4", 4)
    # The hub's default: every append authenticated (a MAC chain per partition, a seal).
    macd = SqliteEventLog(tmp_path / "mac.db", synchronous=SYNC, mac_key=os.urandom(32))
    macd.create_topic("bench", 1)
    raw = one = four = mac = 0.0
    for _ in range(ROUNDS):
        raw = max(raw, rate(raw_step, SECONDS / ROUNDS))
        one = max(one, rate(lambda: len(log.append("bench", records)), SECONDS / ROUNDS))
        mac = max(mac, rate(lambda: len(macd.append("bench", records)), SECONDS / ROUNDS))
        if size > 1:  # keyed routing over 4 partitions: murmur2 (memoised) and 4 stored batches
            four = max(four, rate(lambda: len(log.append("bench4", records)), SECONDS / ROUNDS))
    base = f"raw sqlite executemany, batch {size:,}"
    report.add(GROUP_APPEND, base, raw, "events/s")
    report.add(
        GROUP_APPEND, f"SqliteEventLog.append, batch {size:,}", one, "events/s", baseline=base
    )
    report.add(GROUP_APPEND, "  same, authenticated (MAC)", mac, "events/s", baseline=base)
    if size > 1:
        report.add(GROUP_APPEND, "  same, keyed over 4 partitions", four, "events/s", baseline=base)
    macd.close()
    log.close()
    conn.close()
    assert one > 0 and raw > 0


def test_read_throughput(tmp_path: Path, report: Report) -> None:
    total = 200_000
    records = make_records(10_000)
    conn = raw_db(tmp_path / "raw.db")
    conn.execute("BEGIN IMMEDIATE")
    for start in range(0, total, len(records)):
        conn.executemany(
            "INSERT INTO records (topic, part, offset, ts, key, value, headers)"
            " VALUES (?,?,?,?,?,?,?)",
            [(t, p, o + start, ts, k, v, h) for t, p, o, ts, k, v, h in raw_rows(records)],
        )
    conn.execute("COMMIT")
    with SqliteEventLog(tmp_path / "log.db", synchronous=SYNC) as log:
        log.create_topic("bench", 1)
        for _ in range(total // len(records)):
            log.append("bench", records)
    raw = objects = scan = poll = 0.0
    select = "SELECT topic, part, offset, ts, key, value FROM records ORDER BY id"
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        n = sum(1 for _ in conn.execute(select))
        raw = max(raw, n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        n = sum(1 for _ in itertools.starmap(StoredRecord, conn.execute(select)))
        objects = max(objects, n / (time.perf_counter() - t0))
        with SqliteEventLog(tmp_path / "log.db") as log:  # a fresh instance: a cold batch cache
            t0 = time.perf_counter()
            n = sum(1 for _ in log.scan("bench", 0))
            scan = max(scan, n / (time.perf_counter() - t0))
        with SqliteEventLog(tmp_path / "log.db") as log:
            t0 = time.perf_counter()
            offset = n = 0
            while chunk := log.read("bench", 0, offset, max_records=500):
                n += len(chunk)
                offset = chunk[-1].offset + 1
            poll = max(poll, n / (time.perf_counter() - t0))
    assert n == total
    base = "raw sqlite SELECT, one row per record"
    report.add(GROUP_READ, base, raw, "events/s")
    report.add(
        GROUP_READ,
        "  same, one StoredRecord per row (no headers)",
        objects,
        "events/s",
        baseline=base,
    )
    report.add(GROUP_READ, "SqliteEventLog.scan (cold cache)", scan, "events/s", baseline=base)
    report.add(GROUP_READ, "SqliteEventLog.read, max_records=500", poll, "events/s", baseline=base)
    conn.close()
