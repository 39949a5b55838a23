"""Projection benchmarks: replay throughput into chDB and SQLite beside the raw sink insert of
the same rows in the same run, the decode-only ceilings (fastavro per record; column-wise into
Arrow), each aggregate projection on the Python-fold path and the SQL path, publish-to-visible
latency at a steady rate, and the peak RSS of a long replay (in a subprocess, so only the replay
is measured).

Sizes: ``HUB_BENCH_PROJ_EVENTS`` (default 200 000) for throughput; ``HUB_BENCH_PROJ_RSS_EVENTS``
(default 2 000 000; filling the log dominates the time of larger runs).
"""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from core.events import OutgoingEvent
from core.ports.eventlog import Record
from core.ports.views import Target
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from projections.catalog import by_name
from projections.columnar import decode_values, envelope

N = int(os.environ.get("HUB_BENCH_PROJ_EVENTS", "200000"))
RSS_N = int(os.environ.get("HUB_BENCH_PROJ_RSS_EVENTS", "2000000"))
ROOT = Path(__file__).resolve().parents[1]


def trade_events(n: int, offset: int = 0) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            value={
                "trade_id": f"t{offset + i}",
                "account_id": f"A{i % 500}",
                "instrument": f"XS{i % 50}",
                "side": "BUY" if i % 3 else "SELL",
                "quantity": f"{1 + i % 9}.5",
                "price": f"{100 + i % 17}.125",
                "currency": "USD",
                "executed_at": 1_767_225_600_000_000 + (offset + i) * 1000,
            }
        )
        for i in range(n)
    ]


def fill(h, topic: str, n: int, make) -> list[Record]:
    """Append n records: 10 000 distinct encoded events, repeated (decode cost is the same)."""
    distinct = h.publisher.prepare(topic, make(min(n, 10_000)), "bench", "acme")
    done = 0
    while done < n:
        chunk = distinct[: min(len(distinct), n - done)]
        for i in range(0, len(chunk), 5000):
            h.log.append(topic, chunk[i : i + 5000])
        done += len(chunk)
    return distinct


def payment_events(n: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            event_type="hub.payments.PaymentInitiated",
            value={
                "payment_id": f"P{i}",
                "account_id": f"A{i % 500}",
                "amount": f"{100 + i % 9000}.00",
                "currency": "EUR",
                "counterparty_name": "x",
                "counterparty_iban": "y",
                "counterparty_country": "DE",
                "initiated_at": 1_767_225_600_000_000 + i * 1000,
            },
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    data = tmp_path_factory.mktemp("proj-bench")
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=data,
            sqlite_synchronous="NORMAL",
            projection_batch_records=50_000,
            projection_autostart=False,
        )
    )
    fill(h, "trades", N, trade_events)
    fill(h, "payments", N, payment_events)
    yield h
    h.close()


def replay(ps, name: str, columnar: bool) -> tuple[float, int]:
    """(events/s, SQL-path batches) of a full replay into a scratch target, then dropped."""
    proj = by_name(name)
    store = ps.store(proj.store)
    target = Target(name, f"bench_{'sql' if columnar else 'py'}")
    store.drop(target, proj.tables)
    runner = ps._new_runner(proj, target)
    runner.columnar = columnar
    started = time.perf_counter()
    runner.open()
    n = runner.catch_up()
    rate = n / (time.perf_counter() - started)
    store.drop(target, proj.tables)
    return rate, runner.columnar_batches


def test_replay_throughput(hub, report):
    ps = hub.projections
    recs = hub.log.read("trades", 0, 0, 50_000)
    started = time.perf_counter()
    for r in recs:
        ps.decoder.decode(r)
    decode_rate = len(recs) / (time.perf_counter() - started)
    base = "decode only (Avro -> Event)"
    report.add("projection replay", base, decode_rate, "events/s")
    decode_values([r.value for r in recs[:100]], lambda i: ps.decoder.schema(i)[0])  # warm up
    started = time.perf_counter()
    _, ids = decode_values([r.value for r in recs], lambda i: ps.decoder.schema(i)[0])
    envelope(recs, ids, lambda i: ps.decoder.schema(i)[1])
    report.add(
        "projection replay",
        "decode only, column-wise (Avro -> Arrow)",
        len(recs) / (time.perf_counter() - started),
        "events/s",
        baseline=base,
    )
    started = time.perf_counter()
    for p in range(hub.log.topic("trades").partitions):
        off = 0
        while got := hub.log.read("trades", p, off, 50_000):
            off = got[-1].offset + 1
    report.add(
        "projection replay",
        "log read only (StoredRecords)",
        N / (time.perf_counter() - started),
        "events/s",
        baseline=base,
    )

    for name, kind in (("market_bars", "chDB"), ("payment_aggregates", "chDB")):
        for columnar in (False, True):
            rate, sql_batches = replay(ps, name, columnar)
            assert (sql_batches > 0) == columnar
            report.add(
                "projection replay",
                f"{name} -> {kind} ({'SQL' if columnar else 'Python'} fold)",
                rate,
                "events/s",
                baseline=base,
            )
    for name, kind in (("positions", "chDB"), ("payments", "SQLite")):
        rate, _ = replay(ps, name, False)
        report.add("projection replay", f"{name} -> {kind}", rate, "events/s", baseline=base)

    # raw sink speed of the same number of rows: one flattened row per event
    rows = pa.table(
        {
            "instrument": pa.array([f"XS{i % 50}" for i in range(N)]),
            "ts": pa.array(range(N), pa.int64()),
            "price": pa.array(range(N), pa.int64()).cast(pa.decimal128(38, 8)),
            "qty": pa.array(range(N), pa.int64()).cast(pa.decimal128(38, 4)),
        }
    )
    store = ps.store("analytics")
    store._run(
        "CREATE TABLE IF NOT EXISTS hub_views.bench_raw (instrument String, ts Int64, "
        "price Decimal(38, 8), qty Decimal(38, 4)) ENGINE = MergeTree ORDER BY instrument"
    )
    started = time.perf_counter()
    for i in range(0, N, 50_000):
        store._insert("hub_views.bench_raw", rows.column_names, rows.slice(i, 50_000))
    report.add(
        "projection sinks", "raw chDB insert (Arrow)", N / (time.perf_counter() - started), "rows/s"
    )
    conn = sqlite3.connect(hub.settings.data_dir / "bench_raw.sqlite")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, n INTEGER)")
    data = [(f"P{i}", f"{i}.00", i) for i in range(N)]
    started = time.perf_counter()
    with conn:
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", data)
    report.add(
        "projection sinks", "raw SQLite executemany", N / (time.perf_counter() - started), "rows/s"
    )
    conn.close()


@pytest.mark.parametrize("rate", [10_000, 100_000])
def test_publish_to_visible_latency(hub, report, rate):
    ps = hub.projections
    runner = ps.runner("market_bars")
    runner.catch_up()
    distinct = hub.publisher.prepare("trades", trade_events(2000, offset=N), "bench", "acme")
    commits: list[tuple[float, dict]] = []
    runner.hook = lambda step: (
        commits.append((time.perf_counter(), dict(runner._cp.positions)))  # type: ignore[union-attr]
        if step == "mirrored"
        else None
    )
    runner.batch_records = 5_000
    stop = threading.Event()
    thread = threading.Thread(target=runner.follow, args=(stop,), daemon=True)
    thread.start()
    per_tick = max(1, rate // 200)  # a batch every 5 ms
    sent: list[tuple[float, list]] = []
    seconds = 4.0
    began = time.perf_counter()
    tick = 0
    while time.perf_counter() - began < seconds:
        due = began + tick * 0.005
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        batch = [distinct[(tick * per_tick + j) % len(distinct)] for j in range(per_tick)]
        meta = hub.log.append("trades", batch)
        sent.append((time.perf_counter(), meta))
        tick += 1
    achieved = sum(len(m) for _, m in sent) / (time.perf_counter() - began)
    deadline = time.perf_counter() + 30
    while runner.lag() and time.perf_counter() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join()
    runner.hook = lambda step: None
    latencies = []
    for t_pub, meta in sent:
        need = {}
        for m in meta:
            need[(m.topic, m.partition)] = max(need.get((m.topic, m.partition), -1), m.offset)
        for t_commit, pos in commits:
            if t_commit >= t_pub and all(pos[k].next_offset > v for k, v in need.items()):
                latencies.append((t_commit - t_pub) * 1000)
                break
    latencies.sort()
    assert latencies
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    label = f"{rate // 1000}k/s target"
    report.add("publish->visible", f"{label}: achieved rate", achieved, "events/s")
    report.add("publish->visible", f"{label}: p50", p50, "ms", higher_is_better=False)
    report.add("publish->visible", f"{label}: p99", p99, "ms", higher_is_better=False)


RSS_SCRIPT = r"""
import resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from benchmarks.test_bench_projections import fill, trade_events
from hub.bootstrap import bootstrap
from hub.settings import load_settings
h = bootstrap(load_settings(environ={}, data_dir=Path(sys.argv[1]), sqlite_synchronous="OFF",
                            projection_batch_records=50_000, projection_autostart=False))
n = int(sys.argv[2])
fill(h, "trades", n, trade_events)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
done = h.projections.run(["market_bars"])["market_bars"]
el = time.perf_counter() - t
print(h.projections.runner("market_bars").columnar_batches, file=sys.stderr)
print(done, el, before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
h.close()
"""


def test_replay_peak_rss(tmp_path, report):
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(tmp_path / "d"), str(RSS_N), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    done, el, before, peak = out.stdout.split()[-4:]
    report.add(
        "replay memory",
        f"market_bars replay of {int(done):,} events",
        int(done) / float(el),
        "events/s",
    )
    report.add(
        "replay memory",
        "peak RSS before replay (after filling the log)",
        int(before) / 1024,
        "MiB",
        higher_is_better=False,
    )
    report.add(
        "replay memory", "peak RSS after replay", int(peak) / 1024, "MiB", higher_is_better=False
    )
    _ = resource
