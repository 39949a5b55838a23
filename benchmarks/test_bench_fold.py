"""Reading a folded topic per request: ``core.fold.TopicFold`` follows it from where it stopped,
against the two costs it lies between, measured in the same run.

Group ``governance fold`` (``hub.governance`` holding 2,000 legal holds):
- ``end-offset query (baseline)``: the one query a followed fold pays when nothing is new;
- ``Governance.holds (followed fold)``: what every route and command does now (``hub.governance``,
  built once by the composition root);
- ``fresh Governance per request``: what routes did before issue 12 (``Governance(hub)`` per
  request: the topic re-read and decoded from offset 0 each time).

Run: ``.venv/bin/pytest benchmarks/test_bench_fold.py -q -s -p no:randomly``
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.conftest import Report
from governance.retention import GOVERNANCE_TOPIC, Governance
from hub.bootstrap import bootstrap
from hub.settings import load_settings

HOLDS = int(os.environ.get("FOLD_BENCH_HOLDS", "2000"))
OPS = int(os.environ.get("FOLD_BENCH_OPS", "2000"))


def per_second(n: int, fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def test_followed_fold_against_end_offset_query_and_refold(tmp_path: Path, report: Report) -> None:
    hub = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data"))
    try:
        for i in range(HOLDS):
            hub.governance.place_hold(f"subject:ACC-{i}", actor="legal")
        assert len(hub.governance.holds()) == HOLDS
        group = "governance fold"
        base = "end-offset query (baseline)"
        report.add(
            group, base, per_second(OPS, lambda: hub.log.end_offsets(GOVERNANCE_TOPIC)), "ops/s"
        )
        report.add(
            group,
            "Governance.holds (followed fold)",
            per_second(OPS, hub.governance.holds),
            "ops/s",
            baseline=base,
        )

        def refold() -> object:
            return Governance(hub.log, hub.reader, hub.publisher).holds()

        report.add(
            group,
            "fresh Governance per request",
            per_second(max(1, OPS // 100), refold),
            "ops/s",
            baseline="Governance.holds (followed fold)",
        )
    finally:
        hub.close()
