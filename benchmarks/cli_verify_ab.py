"""``hub ledger verify`` as a command, old tree vs new tree alternating (issue 13, session 22,
``verify-sync22``): the CPU seconds of the whole process (user + system of the child, from
``RUSAGE_CHILDREN``) and its wall, over a data folder each tree initialised (``hub init``) and then
verifies again each round (``--full``: the same work every round; each run adds its own
record, one leaf). Imports dominate a small ledger's run: this measures what a command pays
before and after the verification proper (bootstrap, recording the run, the closing sync).

    git archive <base> | tar -x -C /tmp/cli-old
    .venv/bin/python -m benchmarks.cli_verify_ab /tmp/cli-old --rounds 6

Both trees run on this venv (its ``hub_native``); the child prints which of pandas and the web
framework it imported.

``--events N`` (session 23, ``verify23``): after ``hub init`` each folder's log gets N records
(``e2e_common.ledger_records``, 10,000 per append, topic ``bench.trades``) and its ledger one
sync, so the rounds measure the command on a large ledger (1M: the issue-13 goal's size):

    .venv/bin/python -m benchmarks.cli_verify_ab /tmp/cli-old --rounds 6 --events 1000000

``--command`` (session 23, ``clistart23``): another one-shot command than ``ledger verify
--full``, as one string (``--command "ledger entry 1"``, ``--command status``), to measure what
each command pays to start:

    .venv/bin/python -m benchmarks.cli_verify_ab /tmp/cli-old --rounds 6 --command "ledger entry 1"
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.ab_common import print_ratios

_CHILD = (
    "import sys\n"
    "from hub.cli import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    print('imported:', sorted(m for m in ('pandas', 'fastapi') if m in sys.modules),"
    " file=sys.stderr)\n"
)


_FILL = (
    "import sys\n"
    "from pathlib import Path\n"
    "from benchmarks.e2e_common import ledger_records\n"
    "from hub.bootstrap import bootstrap\n"
    "from hub.settings import load_settings\n"
    "n = int(sys.argv[2])\n"
    "h = bootstrap(load_settings(None, data_dir=Path(sys.argv[1])))\n"
    "h.log.create_topic('bench.trades', 1)\n"
    "for s in range(0, n, 10_000):\n"
    "    h.log.append('bench.trades', ledger_records(min(10_000, n - s), s))\n"
    "h.ledger.sync(force_checkpoint=True)\n"
    "h.close()\n"
)


def _fill(tree: Path, data: Path, events: int) -> None:
    """``events`` records appended to the folder's log and synced to its ledger, by ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", _FILL, str(data), str(events)]
    subprocess.run(argv, cwd=tree, env=env, check=True, capture_output=True)


def _run(tree: Path, data: Path, key: Path, *args: str) -> tuple[float, float, str]:
    """(CPU s, wall s, stderr's last line) of one ``hub`` command run from ``tree``: the CPU
    is the difference of ``RUSAGE_CHILDREN`` around it (one child at a time: that child's)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", _CHILD, "--data-dir", str(data), "--key-file", str(key)]
    t0 = time.perf_counter()
    done = subprocess.run([*argv, *args], cwd=tree, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: {' '.join(args)} failed: {done.stdout!r} {done.stderr!r}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.stderr.decode().strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old_tree", type=Path)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--events", type=int, default=0, help="records appended after hub init")
    ap.add_argument("--command", default="ledger verify --full", help="the command measured")
    a = ap.parse_args()
    new_tree = Path(__file__).resolve().parents[1]
    trees = {"old": a.old_tree.resolve(), "new": new_tree}
    tmp = Path(tempfile.mkdtemp(prefix="cli-verify-ab-"))
    folders = {}
    for name, tree in trees.items():
        data, key = tmp / name / "hub", tmp / name / "admin.key"
        _run(tree, data, key, "init", "--key-file", str(key))
        if a.events:
            _fill(tree, data, a.events)
        folders[name] = (data, key)
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    wall: dict[str, list[float]] = {"old": [], "new": []}
    print(f"load average at start: {os.getloadavg()}")
    for r in range(a.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        line = []
        for name in order:
            c, w, imported = _run(trees[name], *folders[name], *a.command.split())
            cpu[name].append(c)
            wall[name].append(w)
            line.append(f"{name} {c:.3f} CPU s {w:.2f} s wall ({imported})")
        print(f"round {r}: " + "; ".join(line), flush=True)
    print(f"load average at end: {os.getloadavg()}")
    for name in ("old", "new"):
        print(
            f"{name}: CPU s median {statistics.median(cpu[name]):.3f} "
            f"(min {min(cpu[name]):.3f} max {max(cpu[name]):.3f}); "
            f"wall median {statistics.median(wall[name]):.2f}"
        )
    print_ratios(
        {
            "CPU s": [n / o for n, o in zip(cpu["new"], cpu["old"], strict=True)],
            "wall": [n / o for n, o in zip(wall["new"], wall["old"], strict=True)],
        }
    )


if __name__ == "__main__":
    main()
