"""What the killable evaluation child (``adapters.rego_child``, s22) costs against the evaluator
thread, in the same process and run, alternated round by round:

1. ``thread``: decisions of the shipped bundle on the evaluator thread (``stuck_max=2``, the
   path of a version that never timed out), no decision cache;
2. ``child``: the same decisions in the child (``stuck_max=0``: every decision there);
3. ``start``: starting a child (Python, rego-cpp, compiling the shipped bundle) up to its first
   answer, the price of a decision after a kill;
4. ``slow``: a decision that reaches a slow branch: the wall time to the deny and the CPU time it
   left running (thread: the set-aside evaluation runs on; child: killed at the bound).

Parent CPU is ``time.process_time`` (all threads); the child's is read from ``/proc/<pid>/stat``.
Run: ``.venv/bin/python -m benchmarks.policy_child_cost [--rounds 3] [--decisions 300]``
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from adapters.rego_policy import RegoPolicyEngine
from core.policybundle import PolicyBundle
from core.ports.policy import Principal

WHO = Principal("ann", frozenset({"analyst"}))
TICKS = os.sysconf("SC_CLK_TCK")


def _child_cpu_s(engine: RegoPolicyEngine) -> float:
    child = getattr(engine._child, "_child", None)
    if child is None:
        return 0.0
    try:
        with open(f"/proc/{child.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _decisions(engine: RegoPolicyEngine, n: int) -> tuple[float, float]:
    """(wall µs, CPU µs parent + child) per decision, each input distinct."""
    cpu0, child0, wall0 = time.process_time(), _child_cpu_s(engine), time.perf_counter()
    for i in range(n):
        assert engine.decide(WHO, "event.read", f"topics/t{i}").allow
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0 + _child_cpu_s(engine) - child0
    return wall / n * 1e6, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=300)
    args = parser.parse_args()
    bundle = PolicyBundle.from_dir()
    results: dict[str, list[Any]] = {"thread": [], "child": [], "start": []}
    for r in range(args.rounds):
        order = ["thread", "child"] if r % 2 == 0 else ["child", "thread"]
        for kind in order:
            engine = RegoPolicyEngine(
                bundle, decision_bound_ms=5_000, stuck_max=2 if kind == "thread" else 0
            )
            try:
                started = time.perf_counter()
                engine.decide(WHO, "event.read", "warm")  # child: its start
                if kind == "child":
                    results["start"].append((time.perf_counter() - started) * 1e3)
                results[kind].append(_decisions(engine, args.decisions))
            finally:
                engine.close()
    load = os.getloadavg()[0]
    for kind in ("thread", "child"):
        walls = [w for w, _ in results[kind]]
        cpus = [c for _, c in results[kind]]
        print(
            f"{kind}: wall {min(walls):.0f}-{max(walls):.0f} µs/decision, "
            f"CPU {min(cpus):.0f}-{max(cpus):.0f} µs/decision"
        )
    s = results["start"]
    print(f"child start to first answer: {min(s):.0f}-{max(s):.0f} ms (wall)")
    print(f"load average at the end: {load:.1f}")


if __name__ == "__main__":
    main()
