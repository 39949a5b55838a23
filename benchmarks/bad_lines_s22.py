"""A body of JSON lines that are all refused: CPU seconds of ``ingest_body`` (session 22).

``python -m benchmarks.bad_lines_s22 OLD_TREE [--lines 2000 4000] [--rounds 3]`` runs each
(tree, size) in a fresh child process, old and new alternated in one run: a hub on a temp
folder, topic ``quotes`` (the shipped schema), one NDJSON body whose every line has a string for
a decimal field, so the columnar reader halves it down to single lines and every line is
quarantined. The child reports the CPU seconds (user + system, ``resource``) of the one
``ingest_body`` call and the lines quarantined.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, tempfile
from pathlib import Path
from hub.api.ingest_batch import ingest_body
from hub.bootstrap import bootstrap
from hub.settings import load_settings
n = int(sys.argv[1])
line = {"instrument": "A", "venue": "X", "bid": "not a number", "ask": "1", "bid_size": "1",
        "ask_size": "1", "currency": "USD", "quoted_at": "2026-12-05T21:00:00Z", "pad": None}
body = "\n".join(json.dumps({**line, "instrument": f"A{i}", "pad": "y" * 800}) for i in range(n))
with tempfile.TemporaryDirectory() as d:
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=Path(d)))
    try:
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        res = ingest_body(hub.ingest, "quotes", body.encode(), ndjson=True, source="bench",
                          producer="bench", tenant="default")
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        hub.close()
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"cpu_s": round(cpu, 3), "rejected": res.rejected, "bytes": len(body)}))
"""


def run(tree: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path)
    ap.add_argument("--lines", type=int, nargs="+", default=[2000, 4000])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    new = Path(__file__).resolve().parents[1]
    print(f"load {os.getloadavg()[0]:.1f}")
    for n in a.lines:
        for k in range(a.rounds):
            old_r, new_r = run(a.old, n), run(new, n)
            print(f"lines={n} round={k} old={old_r} new={new_r}")
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
