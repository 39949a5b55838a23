"""What the scorer's own positions cost (docs/benchmarks/s21-offsets21.md): CPU seconds of
``ScoringConsumer.run_until_idle`` over the same seeded log, old tree against new, alternated.

The new step appends one more record per transaction (the position on ``hub.source-positions``)
and checks the group against the positions before each step; the old one did neither.

    python benchmarks/s21_offsets_step.py OLD_TREE [pairs] [payments] [batch]

runs ``pairs`` rounds, each a child process of the old tree (``OLD_TREE``, a ``git archive`` of
the base commit) and one of this tree, in alternating order, and prints each child's CPU
seconds and the new/old ratios. A child seeds its own embedded hub (not timed).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def child(payments: int, batch: int) -> dict[str, float]:
    from datetime import timedelta

    from core.events import OutgoingEvent
    from hub.ml_setup import ml_of
    from tests.service.test_ml import (
        ALICE,
        BOB,
        T,
        _hub,
        _open,
        _payment,
        _register_small_model,
    )

    with tempfile.TemporaryDirectory(prefix="offsets21-bench-") as tmp:
        hub = _hub(Path(tmp) / "data")
        try:
            for acc in ("A", "B", "C", "D"):
                _open(hub, acc, "BASIC", "LOW", T - timedelta(days=30))
            events = [
                OutgoingEvent(
                    _payment(
                        f"P-{i}", "ABCD"[i % 4], f"{100 + i % 900}.00", T + timedelta(seconds=i)
                    ),
                    "hub.payments.PaymentInitiated",
                )
                for i in range(payments)
            ]
            for i in range(0, payments, 500):
                hub.publisher.publish("payments", events[i : i + 500], "bench", "default")
            ml = ml_of(hub)
            version = _register_small_model(hub)
            change = ml.changes.propose_champion(ALICE, "payment_risk", version, "bench")
            ml.changes.approve(BOB, change.change_id)
            consumer = ml.consumer("payment_risk", batch=batch)
            ml.feed(consumer.scorer.engine.view).catch_up()  # not part of the step's cost
            c0, w0 = time.process_time(), time.perf_counter()
            consumed = consumer.run_until_idle()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            assert consumer.lag() == 0
        finally:
            hub.close()
    return {"cpu_s": cpu, "wall_s": wall, "consumed": consumed}


def run(tree: Path, payments: int, batch: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    args = [str(payments), str(batch)]
    out = subprocess.run(
        [sys.executable, str(HERE / "benchmarks" / "s21_offsets_step.py"), "--child", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    if sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]))))
        return
    old = Path(sys.argv[1])
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    payments = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    ratios = []
    for k in range(pairs):
        order = [("old", old), ("new", HERE)] if k % 2 == 0 else [("new", HERE), ("old", old)]
        got = {name: run(tree, payments, batch) for name, tree in order}
        ratios.append(got["new"]["cpu_s"] / got["old"]["cpu_s"])
        print(
            f"pair {k}: old {got['old']['cpu_s']:.3f} s CPU, new {got['new']['cpu_s']:.3f} s CPU "
            f"({got['new']['consumed']:.0f} records, batch {batch}); load "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(
        f"new/old CPU: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}) over {pairs} pairs"
    )


if __name__ == "__main__":
    main()
