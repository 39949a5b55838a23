"""Where a small append's fixed cost goes: ``SqliteEventLog.append`` phase by phase, beside raw
SQLite committing the same bytes, at batch sizes 1, 24, 50 and 1,000 (issue 13).

Phases of one append (one thread, no contention), each timed with ``perf_counter``:
``prepare`` (validate, route, encode the stored batch), ``begin`` (lock + ``BEGIN IMMEDIATE``),
``store`` (next offset, MAC chain, insert, advance + re-seal), ``commit`` (``COMMIT``: the WAL
fsync). Then one and ``--threads`` threads each appending batches of the size back to back
(what concurrent publishers or decision flushers do): appends/s, records/s (per CPU-s),
p50/p99 per append and appends per commit; raw and hub alternate ``--rounds`` times per row
(the disk's fsync time drifts minute by minute here). The raw baseline is SQLite as its
authors recommend for throughput (WAL, ``synchronous=FULL``, one transaction per batch,
``executemany``) inserting each record's value, key and headers as one row; ``--skip-hub``
leaves out the hub's layers (``Publisher.prepare``, the decision sink).

Run: ``.venv/bin/python -m benchmarks.small_append [--seconds 3] [--threads 8] [--sizes 1,24]``
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import Record

VALUE = bytes(range(200)) * 1  # a 200-byte value, like an encoded trade
HEADERS = (("ce_id", b"0" * 36), ("ce_type", b"Trade"), ("ce_time", b"2026-12-03T06:00:00Z"))


def records(n: int, start: int) -> list[Record]:
    return [Record(VALUE, f"ACC-{(start + k) % 500}".encode(), HEADERS) for k in range(n)]


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def phases(log: SqliteEventLog, size: int, seconds: float) -> dict[str, float]:
    """Median ms per phase of one append, single thread."""
    out: dict[str, list[float]] = {k: [] for k in ("prepare", "begin", "store", "commit", "all")}
    began, i = time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        batch = records(size, i)
        i += size
        t0 = time.perf_counter()
        prepared = log._prepare("t", batch)
        t1 = time.perf_counter()
        log._acquire("profiling")
        try:
            conn = log._writer
            conn.execute("BEGIN IMMEDIATE")
            t2 = time.perf_counter()
            log._store(conn, prepared, marker=False)
            t3 = time.perf_counter()
            conn.execute("COMMIT")
            t4 = time.perf_counter()
        finally:
            log._lock.release()
        for k, a, b in (("prepare", t0, t1), ("begin", t1, t2), ("store", t2, t3)):
            out[k].append((b - a) * 1000)
        out["commit"].append((t4 - t3) * 1000)
        out["all"].append((t4 - t0) * 1000)
    return {k: statistics.median(v) for k, v in out.items()}


Part = tuple[int, float, float, list[float]]  # appends, wall s, CPU s, latencies (ms)


def hub_append(log: SqliteEventLog, size: int, seconds: float, threads: int) -> Part:
    """``threads`` threads appending batches of ``size`` through the public ``append``."""
    lat: list[float] = []
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(k: int) -> None:
        i = k * 10**9
        mine: list[float] = []
        while time.perf_counter() < stop:
            batch = records(size, i)
            i += size
            t0 = time.perf_counter()
            log.append("t", batch)
            mine.append((time.perf_counter() - t0) * 1000)
            counts[k] += 1
        lat.extend(mine)

    return _threads(work, threads, counts, size, lat)


def raw_append(path: Path, size: int, seconds: float, threads: int) -> Part:
    """The same bytes, raw SQLite: one connection per thread, one transaction per batch."""
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE IF NOT EXISTS d (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    setup.close()
    lat: list[float] = []
    counts = [0] * threads
    stop = time.perf_counter() + seconds
    row = VALUE + b"ACC-1" + b"".join(k.encode() + v for k, v in HEADERS)

    def work(k: int) -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous=FULL")
        mine: list[float] = []
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO d (data) VALUES (?)", [(row,)] * size)
            conn.execute("COMMIT")
            mine.append((time.perf_counter() - t0) * 1000)
            counts[k] += 1
        conn.close()
        lat.extend(mine)

    return _threads(work, threads, counts, size, lat)


def _threads(
    work: Callable[[int], None], threads: int, counts: list[int], size: int, lat: list[float]
) -> Part:
    cpu0, t0 = time.process_time(), time.perf_counter()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts), time.perf_counter() - t0, time.process_time() - cpu0, lat


def summary(parts: Sequence[Part], size: int) -> dict[str, float]:
    """Rates and latency over the rounds of one side."""
    n = sum(p[0] for p in parts)
    wall = sum(p[1] for p in parts)
    cpu = sum(p[2] for p in parts)
    lat = [x for p in parts for x in p[3]]
    return {
        "appends/s": n / wall,
        "records/s": n * size / wall,
        "records/CPU-s": n * size / cpu if cpu else 0.0,
        "p50 ms": pct(lat, 0.5),
        "p99 ms": pct(lat, 0.99),
    }


def hub_phases(data: Path, sizes: Sequence[int], seconds: float) -> None:
    """Median ms of the hub's own layers at each size, one thread: ``Publisher.publish`` of
    trades split into ``prepare`` and the log append, and the decision sink's ``prepare``
    (encode) and ``store`` (one append)."""
    from benchmarks.e2e_common import trade
    from core.events import OutgoingEvent
    from governance.decisions import DecisionRecord, LogDecisionSink, new_decision_id
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    h = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
    try:
        sink = LogDecisionSink(h.log, h.registry, h.publisher)
        for size in sizes:
            t: dict[str, list[float]] = {k: [] for k in ("publish.prepare", "publish.append")}
            t.update({"decision.prepare": [], "decision.store": []})
            began, i = time.perf_counter(), 0
            while time.perf_counter() - began < seconds:
                events = [OutgoingEvent(value=trade(i + k)) for k in range(size)]
                decisions = [
                    DecisionRecord(
                        new_decision_id(),
                        f"user-{k % 50}",
                        "acme",
                        ("analyst",),
                        "event.read",
                        f"topics/payments/{k % 16}",
                        True,
                        "Allowed.",
                        "9" * 64,
                        "a" * 64,
                        time.time_ns() // 1000,
                    )
                    for k in range(size)
                ]
                i += size
                t0 = time.perf_counter()
                recs = h.publisher.prepare("trades", events, "bench")
                t1 = time.perf_counter()
                h.log.append("trades", recs)
                t2 = time.perf_counter()
                prepared = sink.prepare(decisions)
                t3 = time.perf_counter()
                sink.store(prepared)
                t4 = time.perf_counter()
                for k, a, b in (
                    ("publish.prepare", t0, t1),
                    ("publish.append", t1, t2),
                    ("decision.prepare", t2, t3),
                    ("decision.store", t3, t4),
                ):
                    t[k].append((b - a) * 1000)
            cells = ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in t.items())
            print(f"size {size:>5} hub layers (median ms, 1 thread): {cells}", flush=True)
    finally:
        h.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--sizes", default="1,24,50,1000")
    ap.add_argument("--rounds", type=int, default=4, help="raw/hub alternations per row")
    ap.add_argument("--skip-phases", action="store_true")
    ap.add_argument("--skip-hub", action="store_true", help="no hub-layer phases")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="small-append-") as tmp:
        folder = Path(tmp)
        if not args.skip_hub:
            hub_phases(folder / "hub", sizes, args.seconds)
        for size in sizes:
            log = SqliteEventLog(folder / f"hub-{size}.db", mac_key=os.urandom(32))
            log.create_topic("t", 4)
            if not args.skip_phases:
                ph = phases(log, size, args.seconds)
                cells = ", ".join(f"{k} {v:.3f}" for k, v in ph.items())
                print(f"size {size:>5} phases (median ms, 1 thread): {cells}", flush=True)
            for threads in sorted({1, args.threads}):
                group = getattr(log, "_group", None)  # absent before group commit
                before = (group.commits, group.appends) if group is not None else (0, 0)
                raws: list[Part] = []
                hubs: list[Part] = []
                slice_s = args.seconds / args.rounds
                for _ in range(args.rounds):  # alternate: the disk's speed drifts by the minute
                    raw_db = folder / f"raw-{size}-{threads}.db"
                    raws.append(raw_append(raw_db, size, slice_s, threads))
                    hubs.append(hub_append(log, size, slice_s, threads))
                raw, hub = summary(raws, size), summary(hubs, size)
                if group is not None:
                    commits, appends = group.commits - before[0], group.appends - before[1]
                    hub["appends per commit"] = appends / max(commits, 1)
                for name, r in (("raw SQLite", raw), ("hub append", hub)):
                    cells = ", ".join(f"{k} {v:,.2f}" for k, v in r.items())
                    print(f"size {size:>5} {threads:>2} threads {name:>10}: {cells}", flush=True)
                print(
                    f"size {size:>5} {threads:>2} threads hub/raw records/s "
                    f"{hub['records/s'] / raw['records/s']:.2f}x, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
