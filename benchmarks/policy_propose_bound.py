"""What the CPU-time bound on a proposed bundle's decisions adds to a policy proposal.

``validate_bundle`` on the shipped bundle, without the bound (old) and with it (new:
``adapters.rego_deadline.BoundedEvaluation``, a child process timing every case), alternated in
the same run. Reports wall seconds and CPU seconds (this process plus its waited-for children:
the child's start, rego-cpp import and compile are most of the added cost).

    .venv/bin/python -m benchmarks.policy_propose_bound [pairs]
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable

from adapters.rego_deadline import BoundedEvaluation
from adapters.rego_policy import RegoPolicyEngine
from core.policybundle import PolicyBundle
from governance.changes import validate_bundle


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _measure(fn: Callable[[], object]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - w0, _cpu() - c0


def main(pairs: int) -> None:
    bundle = PolicyBundle.from_dir()
    bound = BoundedEvaluation(250)
    cases = validate_bundle(bundle, RegoPolicyEngine)  # warm both paths once
    validate_bundle(bundle, RegoPolicyEngine, bound)
    print(f"{cases} policy cases; {pairs} pairs (old, new alternated)")
    for i in range(pairs):
        old = _measure(lambda: validate_bundle(bundle, RegoPolicyEngine))
        new = _measure(lambda: validate_bundle(bundle, RegoPolicyEngine, bound))
        print(
            f"pair {i}: old {old[0]:.3f} s wall {old[1]:.3f} s CPU | "
            f"new {new[0]:.3f} s wall {new[1]:.3f} s CPU | "
            f"added {new[0] - old[0]:.3f} s wall {new[1] - old[1]:.3f} s CPU"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
