"""The follower's own CPU per projection step, by stage, with nothing else running (issue 13):
``python -m benchmarks.visible_step_cpu --steps 80``.

Each round publishes ``--publishes`` batches of 100 trades (embedded hub, SQLite log, chDB
views), then runs ONE ``market_bars`` step: a live-sized step (500 records by default, as at 10k
events/s). The stages are timed with ``time.thread_time`` (CPU of the calling thread only, so the
figure barely moves with the machine's load, unlike wall time): ``ProjectionRunner._read``,
``_fold_columnar`` (decode and fold) and ``ViewStore.write`` (rows and positions into the view
store; chDB's own threads are not in it). As in ``follow``, a step does not mirror its
positions into the log's consumer group (the follow loop does that between steps). The first
``--warmup`` rounds are not counted. It reads only what ``ProjectionRunner`` exposes, so the
same script runs against an older checkout (copy it there) for a same-run comparison.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa  # noqa: F401 - before chDB (STACK-NOTES)

from benchmarks.e2e_common import ACCOUNTS, trade


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--publishes", type=int, default=5, help="batches of 100 trades per step")
    args = ap.parse_args(argv)

    from core.events import OutgoingEvent
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    cpu: dict[str, list[float]] = {"read": [], "fold": [], "write": [], "step": []}

    def timed(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*a: Any, **k: Any) -> Any:
            c0 = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                cpu[name].append(time.thread_time() - c0)

        return wrapped

    with tempfile.TemporaryDirectory(prefix="visible-step-cpu-") as tmp:
        h = bootstrap(load_settings(environ={}, data_dir=Path(tmp), projection_autostart=False))
        try:
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            runner: Any = h.projections.runner("market_bars")  # its stages are wrapped
            runner.catch_up()
            # as ``follow`` runs it: the advisory group mirror (a log write per batch) is left to
            # the follow loop's housekeeping, off the step
            runner.mirror_every_s = math.inf
            runner._read = timed("read", runner._read)
            runner._fold_columnar = timed("fold", runner._fold_columnar)
            runner.store.write = timed("write", runner.store.write)
            i = 10**7
            want = 100 * args.publishes
            for n in range(args.warmup + args.steps):
                for _ in range(args.publishes):
                    events = [OutgoingEvent(value=trade(i + k)) for k in range(100)]
                    h.publisher.publish("trades", events, "bench")
                    i += 100
                c0 = time.thread_time()
                got = runner.step()
                cpu["step"].append(time.thread_time() - c0)
                if got.events != want:
                    raise SystemExit(f"a step folded {got.events} records, not {want}")
                if n + 1 == args.warmup:
                    for v in cpu.values():
                        v.clear()
        finally:
            h.close()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.getcwd()} (load {load}), {args.steps} steps of {want} records, CPU ms per step:")
    for name, v in cpu.items():
        p50, mean = 1000 * statistics.median(v), 1000 * statistics.mean(v)
        print(f"  {name:6s} p50 {p50:.2f}  mean {mean:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
