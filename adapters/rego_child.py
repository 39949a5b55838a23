"""The child process of the killable evaluator (``adapters.rego_runtime.ChildEvaluator``): one
bundle compiled, one decision at a time over a pipe, killed by the parent past the bound.

rego-cpp cannot stop an evaluation, so an evaluator thread past ``HUB_POLICY_DECISION_BOUND_MS``
runs on until its work ends (``adapters.rego_runtime``). ``RegoPolicyEngine`` uses this child
instead for a bundle version that has timed out once, for every version once
``HUB_POLICY_STUCK_MAX`` set-aside evaluations run, and always with ``HUB_POLICY_STUCK_MAX=0``:
an evaluation past the bound then costs the bound, not its whole work, and other decisions are
answered meanwhile. The child runs with none of the hub's secrets (``core.childenv``) and under
the resident-memory cap of the proposal-time timing child (``HUB_POLICY_EVAL_MEMORY_MB``, read
from ``/proc`` while waiting: ``adapters.rego_deadline``). A killed child is replaced on the
next decision (starting one: Python, rego-cpp and the bundle's compilation; measured in
``docs/benchmarks/s22-trustleft22.md``).

Run as ``python -m adapters.rego_child``: reads the bundle's files as one JSON line on stdin,
writes ``ready`` once compiled, then for each input document (one JSON line) one JSON line
``{"ok": true, "value": ...}`` or ``{"ok": false, "error": "..."}``; what the bundle prints
goes to its stderr, never among the answers.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from core.policybundle import PolicyBundle


def _child() -> None:
    """Compile the bundle from stdin's first line; answer each input document line."""
    # Rego's print() writes to descriptor 1: the answers go to a copy of it, and descriptor 1
    # (the bundle's prints) to stderr, so a bundle cannot forge an answer line.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from adapters.rego_policy import RegoPolicyEngine

    engine = RegoPolicyEngine(PolicyBundle.from_files(json.loads(sys.stdin.readline())))
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            answer: dict[str, Any] = {"ok": True, "value": engine.evaluate(json.loads(line))}
        except Exception as exc:  # handed to the parent, which fails closed
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    _child()
