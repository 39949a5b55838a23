"""Recorded policy decisions, group-committed: decisions/s and latency beside raw SQLite.

Workload: ``CALLERS`` threads each submit allowed decision records and wait for their durable
commit (``DecisionCommitter.submit(wait=True)``, what ``RecordingPolicyEngine`` does for every
allow), through the real sink (``LogDecisionSink``: encode, one event-log append, one fsync per
batch) on a real hub data folder (SQLite, ``synchronous=FULL``).

Same-run baseline: raw SQLite (WAL, ``synchronous=FULL``) inserting the very bytes the hub stores
per decision (value + headers), as SQLite recommends for throughput: many rows per transaction,
one commit per batch. Two rows: batches of the size the hub's committer formed in this run, and
batches of 1,000. The callers: threads (one decision each per call), event-loop tasks, and
threads calling the batch API (``enqueue_many``, ``PER_CALL`` decisions per call). Goal (issue
13): >= 50,000 recorded decisions/s, p99 < 2 ms; the figures that
matter are the ratios, since the disk's fsync time bounds both sides.

Run: ``.venv/bin/pytest benchmarks/test_bench_decisions.py -q -s -p no:randomly``
"""

from __future__ import annotations

import asyncio
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
PER_CALL = int(os.environ.get("DECISION_BENCH_PER_CALL", "100"))  # the batch API's requests
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


def raw_sqlite(
    path: Path, rows: list[bytes], batch: int, seconds: float, commits: list[float] | None = None
) -> float:
    """Rows/s of raw SQLite insert + commit of ``rows`` in transactions of ``batch`` rows; each
    transaction's time (ms, insert to durable commit) is appended to ``commits`` when given."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS d (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    done, i = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        chunk = [(rows[(i + k) % len(rows)],) for k in range(batch)]
        i += batch
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO d (data) VALUES (?)", chunk)
        conn.execute("COMMIT")
        if commits is not None:
            commits.append((time.perf_counter() - t0) * 1000)
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


def _threads(committer: DecisionCommitter) -> tuple[list[float], float]:
    """CALLERS threads, each submitting and waiting (what ``RecordingPolicyEngine.decide`` does
    in a thread); the latencies (ms) and the elapsed time (s)."""
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
    return [x for part in lats for x in part], time.perf_counter() - started


def _batch_calls(committer: DecisionCommitter) -> tuple[list[float], float]:
    """CALLERS threads, each queueing PER_CALL records at once and waiting for them (what
    ``RecordingPolicyEngine.decide_many`` does); one latency per decision (its call's)."""
    lats: list[list[float]] = [[] for _ in range(CALLERS)]
    stop = time.perf_counter() + SECONDS

    def caller(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            rs = [record(i + j * CALLERS) for j in range(PER_CALL)]
            t0 = time.perf_counter()
            committer.enqueue_many(rs, prompt=True).wait()
            lats[k] += [(time.perf_counter() - t0) * 1000] * PER_CALL
            i += CALLERS * PER_CALL

    started = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for part in lats for x in part], time.perf_counter() - started


def _event_loop(committer: DecisionCommitter) -> tuple[list[float], float]:
    """CALLERS tasks in one event loop, each queueing and awaiting its receipt (what
    ``RecordingPolicyEngine.decide_async`` does for the registry's lean routes)."""
    lats: list[float] = []

    async def caller(k: int, stop: float) -> None:
        i = k
        while time.perf_counter() < stop:
            r = record(i)
            t0 = time.perf_counter()
            await committer.enqueue(r, prompt=True).wait_async()
            lats.append((time.perf_counter() - t0) * 1000)
            i += CALLERS

    async def main() -> None:
        stop = time.perf_counter() + SECONDS
        await asyncio.gather(*(caller(k, stop) for k in range(CALLERS)))

    started = time.perf_counter()
    asyncio.run(main())
    return lats, time.perf_counter() - started


RUNS = {"threads": _threads, "event loop": _event_loop, "threads, batch API": _batch_calls}


@pytest.mark.parametrize("callers", list(RUNS))
def test_group_committed_decisions(report: Report, hub: Hub, tmp_path: Path, callers: str) -> None:
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append([record(0)])  # topic and schema exist before timing
    committer = DecisionCommitter(sink, linger_ms=LINGER_MS, flushers=FLUSHERS)
    cpu = time.process_time()
    all_lat, elapsed = RUNS[callers](committer)
    cpu = time.process_time() - cpu
    committer.close()
    stats = committer.stats
    assert stats.failed_batches == 0 and stats.records >= len(all_lat)
    per_fsync = stats.records / max(stats.batches, 1)

    stored = stored_bytes(hub)
    cpu_raw = time.process_time()
    commits: list[float] = []
    raw_same = raw_sqlite(tmp_path / "raw1.db", stored, max(1, round(per_fsync)), SECONDS, commits)
    cpu_raw = time.process_time() - cpu_raw
    raw_1000 = raw_sqlite(tmp_path / "raw2.db", stored, 1000, SECONDS)

    group = f"{GROUP} ({callers})"
    name = f"hub, {CALLERS} callers ({callers}), {FLUSHERS} flushers, linger {LINGER_MS:g} ms"
    if callers == "threads, batch API":
        name += f", {PER_CALL} per call"
    report.add(group, BASE, raw_same, "dec/s")
    report.add(group, f"{BASE}, per CPU-s", raw_same * SECONDS / max(cpu_raw, 1e-9), "dec/CPU-s")
    report.add(group, "raw SQLite, batches of 1,000", raw_1000, "dec/s", baseline=BASE)
    report.add(group, name, len(all_lat) / elapsed, "dec/s", baseline=BASE)
    report.add(
        group, f"{name}, per CPU-s", len(all_lat) / max(cpu, 1e-9), "dec/CPU-s",
        baseline=f"{BASE}, per CPU-s",
    )  # fmt: skip
    # The floor under the p99 goal: no recorded allow is answered before its batch's fsync, so a
    # decision's latency cannot beat the durable commit of a raw batch of the same size.
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        report.add(
            group, f"{BASE}: one transaction (insert + fsync'd commit) {label}", pct(commits, q),
            "ms", higher_is_better=False,
        )  # fmt: skip
    report.add(group, f"{name}: p50", pct(all_lat, 0.5), "ms", higher_is_better=False)
    report.add(group, f"{name}: p99", pct(all_lat, 0.99), "ms", higher_is_better=False)
    report.add(group, f"{name}: decisions per fsync", per_fsync, "dec")
    # Which side limits: the store (busy near 100%: the disk) or the callers coming back.
    report.add(group, f"{name}: store busy", 100 * stats.storing_s / elapsed, "%")
    report.add(group, f"{name}: ms per store", 1000 * stats.storing_s / stats.batches, "ms")
    report.add(
        group, f"{name}: ms preparing per batch", 1000 * stats.preparing_s / stats.batches, "ms"
    )
    report.add(group, "load average (1 min)", os.getloadavg()[0], "")
