"""A recorded decision's own cost on the caller's thread: the prepared path against the general
path, same run (issue 13, session 19).

``RecordingPolicyEngine._decide`` of a request seen before (the prepared path: the input's
serialization and the record's fixed fields kept, the decision cache answering without an
input document) against ``_decide_input`` of the same request (the general path, what every
decision took before: ``with_now``, ``decision_input``, ``input_digests``, ``decide_input``,
the record). Real embedded Rego engine and decision cache (TTL long enough that every call is
a hit, as on a busy route); nothing stored (the committer is not involved). Rounds alternate
which path runs first; CPU time (``time.process_time``), the machine being shared.

Run: ``.venv/bin/pytest benchmarks/test_bench_decide_prepared.py -q -s -p no:randomly``
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from adapters.rego_policy import RegoPolicyEngine
from benchmarks.conftest import Report
from core.decisioncache import DecisionCache
from core.policybundle import PolicyBundle
from core.ports.policy import Principal
from governance.decisions import DecisionCommitter, DecisionRecord, RecordingPolicyEngine

CALLS = int(os.environ.get("DECIDE_BENCH_CALLS", "20000"))
ROUNDS = int(os.environ.get("DECIDE_BENCH_ROUNDS", "4"))
GROUP = "decide (caller's CPU)"
BASE = "general path (_decide_input)"


class _NoSink:
    def prepare(self, records: Sequence[DecisionRecord]) -> list[DecisionRecord]:
        return list(records)

    def store(self, prepared: list[DecisionRecord]) -> None:
        pass


def test_prepared_against_general_path(report: Report) -> None:
    inner = RegoPolicyEngine(PolicyBundle.from_dir(), cache=DecisionCache(ttl_ms=600_000))
    committer = DecisionCommitter(_NoSink())
    engine = RecordingPolicyEngine(inner, committer)
    users = [
        Principal(f"user-{k}", frozenset({"analyst"}), "acme", {"key_id": f"k-{k}"})
        for k in range(50)
    ]
    ctx = {"method": "GET"}
    paths = {"prepared path (_decide)": engine._decide, BASE: engine._decide_input}
    for decide in paths.values():  # warm: every request prepared and cached
        for u in users:
            assert decide(u, "topic.read", "/v1/topics", ctx)[0].allow
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for r in range(ROUNDS):
            order = list(paths.items()) if r % 2 == 0 else list(paths.items())[::-1]
            for name, decide in order:
                c0 = time.process_time()
                for i in range(CALLS):
                    decide(users[i % 50], "topic.read", "/v1/topics", ctx)
                cpu[name].append((time.process_time() - c0) / CALLS)
    finally:
        committer.close()
    for name, per_call in cpu.items():
        best = min(per_call)  # the least disturbed round of a shared machine
        report.add(GROUP, name, 1 / best, "dec/CPU-s", baseline=BASE)
        report.add(GROUP, f"{name} per call", 1e6 * best, "µs", higher_is_better=False)
    assert min(cpu["prepared path (_decide)"]) < min(cpu[BASE])
