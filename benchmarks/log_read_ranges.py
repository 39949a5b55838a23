"""CPU per call of the embedded log's reads (``read``, ``read_columns``, ``read_encoded`` +
``columns()``) of 1, 10, 100 and 1,000 records from a topic of 20 stored batches of 1,000
records with the envelope's headers: what decoding only the records asked saves.

``--against DIR`` (an unpacked ``git archive`` of another commit, same virtualenv) alternates
that tree's figures with this checkout's, two rounds each, in fresh processes.

    .venv/bin/python -m benchmarks.log_read_ranges [--against /tmp/old-tree]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = (1, 10, 100, 1000)


def measure(folder: Path) -> dict[str, float]:
    """CPU microseconds per call (``time.process_time``), best of 3 runs of up to 200 calls."""
    from adapters.sqlite_log import SqliteEventLog
    from core.ports.eventlog import Record

    log = SqliteEventLog(folder / "log.db", synchronous="OFF")
    log.create_topic("t")
    envelope = (("event_type", b"hub.trades.TradeExecuted"), ("tenant", b"acme"))
    for b in range(20):
        log.append(
            "t",
            [
                Record(
                    value=os.urandom(150),
                    key=b"acct-%d" % (i % 97),
                    headers=(*envelope, ("event_id", b"%08d" % (b * 1000 + i))),
                )
                for i in range(1000)
            ],
        )
    calls: dict[str, Any] = {
        "read": lambda o, k: log.read("t", 0, o, k),
        "read_columns": lambda o, k: log.read_columns("t", 0, o, k),
        "read_encoded+columns": lambda o, k: log.read_encoded("t", 0, o, k).columns(),
    }
    out: dict[str, float] = {}
    for name, call in calls.items():
        for k in SIZES:
            offsets = [(i * 1009) % 19_000 + 500 for i in range(64)]  # mid-batch starts
            reps = max(8, 200 // k)
            best = float("inf")
            for _ in range(3):
                t0 = time.process_time()
                for i in range(reps):
                    call(offsets[i % 64], k)
                best = min(best, (time.process_time() - t0) / reps)
            out[f"{name} {k}"] = best * 1e6
    log.close()
    return out


def _run(tree: Path) -> dict[str, float]:
    code = (
        "import json, sys, tempfile, pathlib; from benchmarks.log_read_ranges import measure\n"
        "with tempfile.TemporaryDirectory() as d: print(json.dumps(measure(pathlib.Path(d))))"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, check=True
    )
    return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", type=Path, help="another commit's unpacked tree")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    here = Path(__file__).resolve().parent.parent
    if args.against is None:
        with tempfile.TemporaryDirectory() as d:
            for name, us in measure(Path(d)).items():
                print(f"{name}: {us:,.1f} us CPU")
        return
    trees = {"before": args.against.resolve(), "after": here}
    got: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for rnd in range(args.rounds):
        for label, tree in trees.items():
            got[label].append(_run(tree))
            print(f"round {rnd + 1} {label} (load {os.getloadavg()[0]:.1f}): {got[label][-1]}")
    print("| call | before (CPU us, each round) | after (CPU us, each round) |")
    print("|---|---|---|")
    for key in got["after"][0]:
        cells = [", ".join(f"{r[key]:,.1f}" for r in got[label]) for label in trees]
        print(f"| `{key}` | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
