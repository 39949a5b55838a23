"""Recorded policy decisions, group-committed: decisions/s and latency beside raw SQLite.

Workload: ``CALLERS`` threads each submit allowed decision records and wait for their durable
commit (``DecisionCommitter.submit(wait=True)``, what ``RecordingPolicyEngine`` does for every
allow), through the real sink (``LogDecisionSink``: encode, one event-log append, one fsync per
batch) on a real hub data folder (SQLite, ``synchronous=FULL``).

Same-run baseline: raw SQLite (WAL, ``synchronous=FULL``) inserting the very bytes the hub stores
per decision (value + headers), as SQLite recommends for throughput: many rows per transaction,
one commit per batch. Two rows: batches of the size the hub's committer formed in this run, and
batches of 1,000. Goal (issue 13): >= 50,000 recorded decisions/s, p99 < 2 ms; the figures that
matter are the ratios, since the disk's fsync time bounds both sides.

Run: ``.venv/bin/pytest benchmarks/test_bench_decisions.py -q -s -p no:randomly``
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.conftest import Report
from governance.decisions import (
    DecisionCommitter,
    DecisionEncoder,
    DecisionRecord,
    LogDecisionSink,
    new_decision_id,
)
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

SECONDS = float(os.environ.get("DECISION_BENCH_SECONDS", "5"))
CALLERS = int(os.environ.get("DECISION_BENCH_CALLERS", "64"))
LINGER_MS = float(os.environ.get("DECISION_BENCH_LINGER_MS", "0"))  # the hub's default: 0
FLUSHERS = int(os.environ.get("DECISION_BENCH_FLUSHERS", "2"))  # the hub's default: 2
GROUP = "decisions recorded"
BASE = "raw SQLite, hub's batch size"


def record(i: int) -> DecisionRecord:
    return DecisionRecord(
        new_decision_id(), f"user-{i % 50}", "acme", ("analyst",), "event.read",
        f"topics/payments/{i % 16}", True, "Allowed: analyst may read topic payments.",
        "9" * 64, "a" * 64, time.time_ns() // 1000,
    )  # fmt: skip


def pct(lat: list[float], q: float) -> float:
    return statistics.quantiles(lat, n=1000)[int(q * 1000) - 1] if len(lat) > 10 else 0.0


def raw_sqlite(path: Path, rows: list[bytes], batch: int, seconds: float) -> float:
    """Rows/s of raw SQLite insert + commit of ``rows`` in transactions of ``batch`` rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS d (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    done, i = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        chunk = [(rows[(i + k) % len(rows)],) for k in range(batch)]
        i += batch
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO d (data) VALUES (?)", chunk)
        conn.execute("COMMIT")
        done += batch
    elapsed = time.perf_counter() - started
    conn.close()
    return done / elapsed


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data"))
    yield h
    h.close()


def stored_bytes(hub: Hub) -> list[bytes]:
    """The bytes the hub stores per decision (value and headers), for the raw baseline."""
    records = DecisionEncoder(hub.publisher).encode([record(i) for i in range(256)])
    return [(r.value or b"") + b"".join(k.encode() + v for k, v in r.headers) for r in records]


def test_group_committed_decisions(report: Report, hub: Hub, tmp_path: Path) -> None:
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append([record(0)])  # topic and schema exist before timing
    committer = DecisionCommitter(sink, linger_ms=LINGER_MS, flushers=FLUSHERS)
    lats: list[list[float]] = [[] for _ in range(CALLERS)]
    stop = time.perf_counter() + SECONDS

    def caller(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            r = record(i)
            t0 = time.perf_counter()
            committer.submit(r, wait=True)
            lats[k].append((time.perf_counter() - t0) * 1000)
            i += CALLERS

    started = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    committer.close()
    all_lat = [x for part in lats for x in part]
    stats = committer.stats
    assert stats.failed_batches == 0 and stats.records >= len(all_lat)
    per_fsync = stats.records / max(stats.batches, 1)

    stored = stored_bytes(hub)
    raw_same = raw_sqlite(tmp_path / "raw1.db", stored, max(1, round(per_fsync)), SECONDS)
    raw_1000 = raw_sqlite(tmp_path / "raw2.db", stored, 1000, SECONDS)

    name = f"hub, {CALLERS} callers, {FLUSHERS} flushers, linger {LINGER_MS:g} ms"
    report.add(GROUP, BASE, raw_same, "dec/s")
    report.add(GROUP, "raw SQLite, batches of 1,000", raw_1000, "dec/s", baseline=BASE)
    report.add(GROUP, name, len(all_lat) / elapsed, "dec/s", baseline=BASE)
    report.add(GROUP, f"{name}: p50", pct(all_lat, 0.5), "ms", higher_is_better=False)
    report.add(GROUP, f"{name}: p99", pct(all_lat, 0.99), "ms", higher_is_better=False)
    report.add(GROUP, f"{name}: decisions per fsync", per_fsync, "dec")
    # Which side limits: the flusher storing (busy near 100%) or the callers coming back.
    # Summed over the flushers: up to FLUSHERS x 100%.
    report.add(GROUP, f"{name}: flushers busy", 100 * stats.storing_s / elapsed, "%")
    report.add(GROUP, f"{name}: ms per stored batch", 1000 * stats.storing_s / stats.batches, "ms")
