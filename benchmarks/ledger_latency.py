"""The ledger's own latency (issue 13: add-to-signed-checkpoint p99 < 100 ms), apart from the
rest of the hub: ``python -m benchmarks.ledger_latency``.

Records prepared once by the publisher (validated, Avro-encoded trades with the hub's headers)
are appended straight to the embedded log (``EventLog.append``, one batch every 5 ms at a fixed
rate, or back to back) while the ledger follows the log; no projection runs and nothing is
encoded during the run, so the process's CPU goes to the log and the ledger. Per batch:
append -> acknowledged (durable in the log), append -> its leaves committed, append -> a signed
checkpoint including them committed (read back from the store, signature checked:
``benchmarks.e2e_common.LedgerWatch``). Each rate runs twice, alternating: the ledger polled
every second as before it was woken by appends (the same-run baseline), then ``Ledger.start``.
The machine's load average and the process's CPU seconds per second go with every figure: on a
shared machine a starved process's latency is mostly waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.e2e_common import FOLLOW_MS, LedgerWatch, Run, pct, self_cpu, trade


def run_one(
    h: Any,
    records: Sequence[Any],
    target: int | None,
    seconds: float,
    mode: str,
    follow_ms: int = FOLLOW_MS,
) -> Run:
    per_tick = max(1, (target or 200_000) // 200)
    label = "as fast as it goes" if target is None else f"{target:,}/s"
    every = "" if follow_ms == FOLLOW_MS else f", checkpoint_every_ms {follow_ms}"
    run = Run(f"ledger {mode}, {label}{every}", target=target)
    watch = LedgerWatch(h.ledger, polled=mode == "polled", checkpoint_ms=follow_ms)
    sent: list[tuple[float, float, dict[tuple[str, int], int]]] = []
    cpu0, began, tick, i = self_cpu(), time.perf_counter(), 0, 0
    while time.perf_counter() - began < seconds:
        if target is not None:
            due = began + tick * 0.005
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
        chunk = [records[(i + k) % len(records)] for k in range(per_tick)]
        i += per_tick
        t0 = time.perf_counter()
        meta = h.log.append("trades", chunk)
        t1 = time.perf_counter()
        need: dict[tuple[str, int], int] = {}
        for m in meta:
            need[(m.topic, m.partition)] = max(need.get((m.topic, m.partition), -1), m.offset)
        sent.append((t0, t1, need))
        tick += 1
    run.seconds = time.perf_counter() - began
    run.events = i
    run.note = watch.finish(sent[-1][2])
    run.cpu_per_s = (self_cpu() - cpu0) / run.seconds  # includes the ledger's drain
    run.ack_ms = [(t1 - t0) * 1000 for t0, t1, _ in sent]
    watch.latencies(run, sent)
    run.reported["load"] = os.getloadavg()[0]
    run.reported["syncs"] = len(watch.commits)
    run.reported["checkpoints"] = sum(1 for _, _, c in watch.commits if c)
    return run


def row(r: Run) -> str:
    def p(values: list[float], q: float) -> str:
        return f"{pct(values, q):.1f}" if values else ""

    return (
        f"| {r.name} | {r.rate:,.0f} | {p(r.ack_ms, 0.5)} | {p(r.ack_ms, 0.99)} "
        f"| {p(r.leaf_ms, 0.5)} | {p(r.leaf_ms, 0.99)} | {p(r.checkpoint_ms, 0.5)} "
        f"| {p(r.checkpoint_ms, 0.95)} | {p(r.checkpoint_ms, 0.99)} "
        f"| {r.reported['syncs'] / r.seconds:.1f} "
        f"| {r.reported.get('checkpoints', 0) / r.seconds:.1f} | {r.cpu_per_s:.2f} "
        f"| {r.rate / r.cpu_per_s if r.cpu_per_s else 0:,.0f} | {r.reported['load']:.1f} "
        f"| {r.note} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each run")
    ap.add_argument("--rates", default="1000,10000,50000,max", help="target events/s")
    ap.add_argument("--out", default="", help="write the runs as JSON here too")
    ap.add_argument(
        "--modes", default="polled,woken", help="the ledger's follow modes, each rate in turn"
    )
    ap.add_argument(
        "--follow-ms",
        type=int,
        default=FOLLOW_MS,
        help="checkpoint_every_ms of the woken follower (the polled one signs every second)",
    )
    args = ap.parse_args(argv)
    rates = [None if r == "max" else int(r) for r in args.rates.split(",") if r]

    from core.events import OutgoingEvent
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    data = Path(tempfile.mkdtemp(prefix="ledger-latency-")) / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
    runs: list[Run] = []
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(500)])
        records = h.publisher.prepare(
            "trades", [OutgoingEvent(value=trade(i)) for i in range(5_000)], "bench"
        )
        for target in rates:
            for mode in args.modes.split(","):  # alternating: the baseline just before
                runs.append(run_one(h, records, target, args.seconds, mode, args.follow_ms))
                print(row(runs[-1]), flush=True)
    finally:
        h.close()
    print(
        "\n| run | events/s | ack p50 ms | ack p99 ms | leaf p50 ms | leaf p99 ms "
        "| checkpoint p50 ms | checkpoint p95 ms | checkpoint p99 ms | syncs/s | checkpoints/s "
        "| CPU s/s "
        "| events per CPU s | load | note |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    print("\n".join(row(r) for r in runs))
    if args.out:
        Path(args.out).write_text(json.dumps([r.__dict__ for r in runs], default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
