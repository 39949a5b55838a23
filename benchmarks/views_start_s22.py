"""Opening the analytics views again: CPU seconds of ``ensure`` on an existing chDB folder
(session 22, views-start).

``python -m benchmarks.views_start_s22 OLD_TREE [--rounds 3]`` makes one chDB folder with every
analytics projection's tables (in this tree), then, old and new alternated in one run, each in
a fresh child process on a copy of that folder: opens the store and times (CPU, user + system,
``resource``) one ``ensure`` of every analytics projection (what a start does), and counts the
metadata files whose bytes or mtime changed. Old replaced each aggregate table's ``<t>__p`` view
(one metadata file rewritten per aggregate table); new compares first and rewrites none.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys
from pathlib import Path
from adapters.chdb_views import ChdbViewStore
from core.ports.views import Target
from projections.catalog import PROJECTIONS
folder = Path(sys.argv[1])
def files():
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.glob("**/*.sql")}
before = files()
store = ChdbViewStore(folder)
try:
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for p in PROJECTIONS:
        if p.store == "analytics":
            store.ensure(Target(p.name), p.tables)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
finally:
    store.close()
after = files()
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
changed = sum(1 for k in after if before.get(k) != after[k])
print(json.dumps({"cpu_s": round(cpu, 4), "rewritten": changed}))
"""


def _run(tree: Path, folder: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    got: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    new = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base"
        _run(new, base)  # made once, by this tree
        for i in range(args.rounds):
            for name, tree in (("old", args.old.resolve()), ("new", new)):
                copy = Path(d) / f"{name}{i}"
                shutil.copytree(base, copy, symlinks=True)
                print(name, json.dumps(_run(tree, copy)), f"load {os.getloadavg()[0]:.1f}")
                shutil.rmtree(copy)


if __name__ == "__main__":
    main()
