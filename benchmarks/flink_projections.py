"""Flink projections beside the embedded runner on the Kafka footprint, same events, same run.

    .venv/bin/python -m benchmarks.flink_projections [--events 20000] [--rate 500] [--seconds 20]

Needs Kafka, PostgreSQL (``infra/kafka.sh``, ``infra/postgres.sh``, this checkout's ports) and the
PyFlink virtualenv and jars (``infra/flink.sh setup``). Two figures, each engine on the same
events (trades; projections ``market_bars`` and ``positions``):
1. **Throughput** (events/s) of a bounded catch-up over ``--events`` trades already on the topic:
   the embedded runner (``hub.projections.run``, into chDB) and ONE bounded Flink job (the same
   projections as a statement set, into PostgreSQL). Flink's figure is given twice: over the
   whole job (start-up included: JVM, plan, Python workers) and from the job's submission to its
   end (``job.py`` prints both times).
2. **Publish -> visible p50/p99** at ``--rate`` trades/s for ``--seconds``: batches every 100 ms
   published through the hub's publisher (Kafka, acknowledged); visible = the embedded runner's
   checkpoint covering the batch (rows and positions commit together), or, for an unbounded
   Flink job (checkpoints every second), the batch's events counted in the PostgreSQL partial
   rows (polled every 20 ms; the JDBC sink flushes every second).
The report prints the ratios Flink / embedded. Figures on a shared two-core machine vary with
its load: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from core.events import OutgoingEvent
from projections.catalog import MARKET_BARS, POSITIONS
from projections.flink.launch import FlinkLauncher
from projections.flink.service import FlinkProjections

NAMES = ["market_bars", "positions"]


def trades(n: int, start: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            event_type="hub.trading.TradeExecuted",
            value={
                "trade_id": f"B-{i}",
                "account_id": f"ACC-{i % 50}",
                "instrument": f"I{i % 7}",
                "venue": "XOFF",
                "side": "BUY" if i % 3 else "SELL",
                "quantity": "100",
                "price": f"{12 + i % 5}.5",
                "currency": "USD",
                "executed_at": f"2026-11-25T14:{(i // 60) % 60:02d}:{i % 60:02d}.000000Z",
            },
        )
        for i in range(start, start + n)
    ]


def publish(hub: Any, n: int, batch: int = 1000) -> None:
    for start in range(0, n, batch):
        hub.publisher.publish("trades", trades(min(batch, n - start), start), "bench", "acme")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


def throughput(fi: Any, root: Path, n: int) -> dict[str, float]:
    from tests.differential.conftest import open_world, placement

    world = open_world(fi, root / "throughput")
    try:
        publish(world.hub, n)
        t0 = time.perf_counter()
        world.hub.projections.run(NAMES)
        embedded_s = time.perf_counter() - t0
        flink = FlinkProjections(
            [MARKET_BARS, POSITIONS],
            placement(fi, world),
            FlinkLauncher(fi.python, root / "jobs", world.admin),
            world.views,
            world.hub.log,
            root / "checkpoints",
        )
        t0 = time.perf_counter()
        flink.run(NAMES, timeout_s=1800)
        flink_s = time.perf_counter() - t0
        marks = [json.loads(x) for x in (root / "jobs" / "bounded" / "stdout.log").open()]
        at = {m["event"]: m.get("at", 0.0) for m in marks}
        running_s = at.get("finished", 0.0) - at.get("submitted", 0.0)
        return {
            "embedded_s": embedded_s,
            "flink_s": flink_s,
            "flink_running_s": running_s,
            "embedded_eps": n / embedded_s,
            "flink_eps": n / flink_s,
            "flink_running_eps": n / running_s if running_s > 0 else float("nan"),
        }
    finally:
        world.close()


def _paced(hub: Any, rate: int, seconds: float, on_sent: Any) -> None:
    per_tick = max(1, rate // 10)
    began, tick = time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        due = began + tick * 0.1
        if (now := time.perf_counter()) < due:
            time.sleep(due - now)
        t0 = time.perf_counter()
        hub.publisher.publish("trades", trades(per_tick, 1_000_000 + tick * per_tick), "b", "acme")
        on_sent(t0, per_tick)
        tick += 1


def visible_embedded(fi: Any, root: Path, rate: int, seconds: float) -> list[float]:
    from tests.differential.conftest import open_world

    world = open_world(fi, root / "visible-embedded")
    try:
        hub = world.hub
        runner = hub.projections.runner("market_bars")
        publish(hub, 100)
        runner.catch_up()
        commits: list[tuple[float, int]] = []

        def hook(step: str) -> None:
            if step == "mirrored" and runner._cp is not None:
                done = sum(p.next_offset for p in runner._cp.positions.values())
                commits.append((time.perf_counter(), done))

        runner.hook = hook
        stop = threading.Event()
        follower = threading.Thread(target=runner.follow, args=(stop, 0.005), daemon=True)
        follower.start()
        sent: list[tuple[float, int]] = []

        def on_sent(t0: float, _: int) -> None:
            sent.append((t0, sum(hub.log.end_offsets("trades").values())))

        _paced(hub, rate, seconds, on_sent)
        deadline = time.perf_counter() + 120
        while runner.lag() and time.perf_counter() < deadline:
            time.sleep(0.01)
        stop.set()
        publish(hub, 1)
        follower.join(30)
        # end offsets count transaction markers too: a batch is visible once the committed
        # positions reach the end offsets seen right after its publish
        return [
            (next((c for c, done in commits if done >= need), float("nan")) - t0) * 1000
            for t0, need in sent
        ]
    finally:
        world.close()


def visible_flink(fi: Any, root: Path, rate: int, seconds: float) -> list[float]:
    from tests.differential.conftest import open_world, placement

    world = open_world(fi, root / "visible-flink")
    flink = FlinkProjections(
        [MARKET_BARS],
        placement(fi, world, bounded=False, checkpoint_interval_ms=1000),
        FlinkLauncher(fi.python, root / "jobs-visible", world.admin),
        world.views,
        world.hub.log,
        root / "checkpoints-visible",
    )
    counted: list[tuple[float, int]] = []
    stop = threading.Event()
    table = f"{world.views.schema}.ohlcv_1m__flink_p"

    def poll() -> None:
        while not stop.is_set():
            try:
                with world.views._engine.connect() as conn:
                    n = conn.exec_driver_sql(f"SELECT coalesce(sum(events), 0) FROM {table}")
                    counted.append((time.perf_counter(), int(n.scalar() or 0)))
            except Exception:  # the table appears when the job starts
                pass
            time.sleep(0.02)

    try:
        publish(world.hub, 100)
        flink.start(["market_bars"])
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        deadline = time.perf_counter() + 1200
        while not any(n >= 100 for _, n in counted):  # the job runs and caught up
            if time.perf_counter() > deadline or not flink.jobs["market_bars"].running():
                raise RuntimeError(f"the Flink job did not catch up: {flink.jobs}")
            time.sleep(0.2)
        sent: list[tuple[float, int]] = []
        total = 100

        def on_sent(t0: float, k: int) -> None:
            nonlocal total
            total += k
            sent.append((t0, total))

        _paced(world.hub, rate, seconds, on_sent)
        deadline = time.perf_counter() + 120
        while not any(n >= total for _, n in counted) and time.perf_counter() < deadline:
            time.sleep(0.05)
        stop.set()
        return [
            (next((c for c, n in counted if n >= need), float("nan")) - t0) * 1000
            for t0, need in sent
        ]
    finally:
        stop.set()
        flink.stop()
        world.close()


def main() -> None:
    from tests.differential.conftest import flink_infra

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--only", choices=["throughput", "visible"], help="run one of the two")
    args = ap.parse_args()
    fi = flink_infra("the Flink benchmark")
    root = Path(tempfile.mkdtemp(prefix="flink-bench-", dir=os.environ.get("HUB_BENCH_DIR")))
    print(f"load average at start: {os.getloadavg()}")
    if args.only != "visible":
        report_throughput(throughput(fi, root, args.events), args.events)
    if args.only != "throughput":
        report_visible(fi, root, args.rate, args.seconds)
    print(f"load average at end: {os.getloadavg()}")


def report_throughput(t: dict[str, float], events: int) -> None:
    print(
        f"throughput over {events} trades ({', '.join(NAMES)}): embedded "
        f"{t['embedded_eps']:.0f} ev/s ({t['embedded_s']:.1f} s); Flink whole job "
        f"{t['flink_eps']:.0f} ev/s ({t['flink_s']:.1f} s), submitted->finished "
        f"{t['flink_running_eps']:.0f} ev/s ({t['flink_running_s']:.1f} s); ratio Flink/embedded "
        f"{t['flink_eps'] / t['embedded_eps']:.2f} (whole job), "
        f"{t['flink_running_eps'] / t['embedded_eps']:.2f} (running)"
    )


def report_visible(fi: Any, root: Path, rate: int, seconds: float) -> None:
    e = visible_embedded(fi, root, rate, seconds)
    f = visible_flink(fi, root, rate, seconds)
    print(
        f"publish->visible at {rate}/s for {seconds:.0f} s (market_bars): embedded p50 "
        f"{pct(e, 0.5):.0f} ms p99 {pct(e, 0.99):.0f} ms ({len(e)} batches); Flink p50 "
        f"{pct(f, 0.5):.0f} ms p99 {pct(f, 0.99):.0f} ms ({len(f)} batches); ratio of p99 "
        f"Flink/embedded {pct(f, 0.99) / pct(e, 0.99):.1f}"
    )


if __name__ == "__main__":
    main()
