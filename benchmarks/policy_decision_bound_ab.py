"""Embedded Rego decisions per second, old tree against new (the serving-path bound, s21).

Each round runs one child process per tree (``--trees old new``), in turn, the order swapped
every round. A child builds the engine as ``hub.bootstrap.build_policy`` does (the new tree:
``decision_bound_ms=1000``, so each evaluation runs on the evaluator thread; the old tree: on
the caller's thread) and times, in process CPU (every thread: the evaluator's counts) and wall
time, best of ``--repeat``:

1. ``miss``: decisions without a decision cache (every one evaluated by rego-cpp);
2. ``hit``: decisions answered by the decision cache (no evaluation; the common case);
3. ``pipe`` (new tree only): the cheapest process-pool alternative, one JSON decision input
   written to a child process and an answer read back per decision (no evaluation), to compare
   with the thread hand-off.

Microseconds per decision, and new/old per round with their median and range.
Run: ``.venv/bin/python -m benchmarks.policy_decision_bound_ab --trees /tmp/old . [--rounds 4]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from benchmarks.ab_common import print_ratios
from benchmarks.small_append_ab import run_child

CHILD = r"""
import json, os, subprocess, sys, time
from adapters.rego_policy import RegoPolicyEngine
from core.decisioncache import DecisionCache
from core.policybundle import PolicyBundle
from core.ports.policy import Principal

n, repeat, out = int(sys.argv[2]), int(sys.argv[1]), {}
bundle = PolicyBundle.from_dir()

def engine(cache):
    try:
        return RegoPolicyEngine(bundle, cache=cache, decision_bound_ms=1000), True
    except TypeError:  # the old tree: no bound
        return RegoPolicyEngine(bundle, cache=cache), False

def timed(fn):
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return 1e6 * best_cpu / n, 1e6 * best_wall / n

users = [Principal(f"user-{k}", frozenset({"analyst"}), "acme") for k in range(50)]
miss, bounded = engine(None)
out["bounded"] = bounded
def decide_miss():
    for k in range(n):
        miss.decide(users[k % 50], "event.read", f"topics/t{k % 7}")
out["miss_cpu_us"], out["miss_wall_us"] = timed(decide_miss)
hit, _ = engine(DecisionCache(ttl_ms=600_000))
def decide_hit():
    for k in range(n):
        hit.decide(users[k % 50], "event.read", "topics/t1", {"now": 1})
decide_hit()
out["hit_cpu_us"], out["hit_wall_us"] = timed(decide_hit)
if bounded:
    echo = subprocess.Popen([sys.executable, "-c",
        "import sys\nfor line in sys.stdin: sys.stdout.write('1\\n'); sys.stdout.flush()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    doc = json.dumps({"principal": {"id": "user-1", "roles": ["analyst"]},
                      "action": "event.read", "resource": "topics/t1"}) + "\n"
    def pipe():
        for _ in range(n):
            echo.stdin.write(doc); echo.stdin.flush(); echo.stdout.readline()
    out["pipe_cpu_us"], out["pipe_wall_us"] = timed(pipe)
    echo.stdin.close(); echo.wait()
out["load"] = os.getloadavg()[0]
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", nargs=2, required=True, metavar=("OLD", "NEW"))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--decisions", type=int, default=2_000)
    args = ap.parse_args()
    trees = [Path(t).resolve() for t in args.trees]
    ratios: dict[str, list[float]] = {"miss_cpu": [], "hit_cpu": [], "miss_wall": []}
    for r in range(args.rounds):
        got = {}
        pairs = list(zip(("old", "new"), trees, strict=True))
        for label, tree in pairs if r % 2 == 0 else pairs[::-1]:
            got[label] = res = run_child(CHILD, tree, str(args.repeat), str(args.decisions))
            pipe = (
                f", pipe round trip {res['pipe_cpu_us']:.1f} us CPU {res['pipe_wall_us']:.1f} wall"
                if "pipe_cpu_us" in res
                else ""
            )
            print(
                f"round {r + 1} {label}: miss {res['miss_cpu_us']:.1f} us CPU "
                f"{res['miss_wall_us']:.1f} wall, hit {res['hit_cpu_us']:.1f} us CPU "
                f"{res['hit_wall_us']:.1f} wall{pipe} (load {res['load']:.1f})",
                flush=True,
            )
        for k in ratios:
            new, old = got["new"][f"{k}_us"], got["old"][f"{k}_us"]
            ratios[k].append(float(new) / float(old))  # type: ignore[arg-type]
    print(f"new/old over {args.rounds} rounds (load {os.getloadavg()[0]:.1f} at the end):")
    print_ratios(ratios)
    print(json.dumps({k: [round(v, 3) for v in vs] for k, vs in ratios.items()}))


if __name__ == "__main__":
    main()
