"""Per-file cost of Parquet decoding in a child process: one child per file (the old tree,
``--against``: a ``git archive`` of the base commit) against the reused decoders of
``ingest.parquet_pool`` (this tree).

Three workloads, each in its own subprocess of the tree measured, alternating old/new,
new/old: ``small`` (``--files`` files of 200 rows, read whole through ``parquet_batches``),
``big`` (one file of ``--rows`` rows) and ``big, child running`` (the same after one file read
untimed: the new tree's child is up, as in a running hub; the old tree starts one per file
anyway). Each subprocess reports its wall seconds and its CPU seconds with its children's
(exited children from ``RUSAGE_CHILDREN``, the pool's live child from ``/proc``), measured
after the imports.

    python benchmarks/parquet_decoder_ab.py --against /tmp/parquet20-old [--pairs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.ab_common import print_ratios

_RUN = r"""
import json, os, resource, sys, time
from pathlib import Path
from ingest.files import parquet_batches
try:
    from ingest import parquet_pool
except ImportError:  # the old tree: a child per file
    parquet_pool = None
warm, paths = sys.argv[1] == "warm", [Path(p) for p in sys.argv[2:]]

def cpu():  # this process, its exited children, and the pool's live child
    t = time.process_time()
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    t += u.ru_utime + u.ru_stime
    for pid in parquet_pool.shared().pids() if parquet_pool else ():
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        t += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return t

if warm:  # a file before the timing: the pool's child is running, as in a hub
    list(parquet_batches(paths[0], 10_000, 1 << 20))
c0, t0 = cpu(), time.monotonic()
rows = 0
for p in paths:
    rows += sum(rb.num_rows for rb in parquet_batches(p, 10_000, 1 << 20))
c1, wall = cpu(), time.monotonic() - t0
if parquet_pool:
    parquet_pool.shared().close()
print(json.dumps({"rows": rows, "wall": wall, "cpu": c1 - c0}))
"""


def _files(folder: Path, files: int, rows: int) -> tuple[list[str], str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    small = []
    for i in range(files):
        table = pa.table({"n": range(200), "s": [f"{i}-{j}" for j in range(200)]})
        path = folder / f"small{i}.parquet"
        pq.write_table(table, path)
        small.append(str(path))
    big = folder / "big.parquet"
    pq.write_table(
        pa.table({"n": range(rows), "s": [f"row-{j:020d}" for j in range(rows)]}),
        big,
        row_group_size=100_000,
    )
    return small, str(big)


def _run(tree: str, warm: bool, paths: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree}
    cmd = [sys.executable, "-c", _RUN, "warm" if warm else "cold", *paths]
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, check=True)
    got: dict[str, float] = json.loads(out.stdout)
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", required=True, help="the old tree (git archive of the base)")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--files", type=int, default=50)
    ap.add_argument("--rows", type=int, default=2_000_000)
    a = ap.parse_args()
    new = str(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = _files(Path(tmp), a.files, a.rows)
        ratios: dict[str, list[float]] = {}
        for i in range(a.pairs):
            order = [("old", a.against), ("new", new)]
            if i % 2:
                order.reverse()
            for load, warm, paths in (
                ("small", False, small),
                ("big", False, [big]),
                ("big, child running", True, [big]),
            ):
                got = {name: _run(tree, warm, paths) for name, tree in order}
                assert got["old"]["rows"] == got["new"]["rows"]
                for k in ("wall", "cpu"):
                    ratios.setdefault(f"{load} {k}", []).append(got["new"][k] / got["old"][k])
                print(
                    f"pair {i} {load}: old wall {got['old']['wall']:.2f} s cpu "
                    f"{got['old']['cpu']:.2f} s | new wall {got['new']['wall']:.2f} s cpu "
                    f"{got['new']['cpu']:.2f} s | load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        print_ratios(ratios)


if __name__ == "__main__":
    main()
