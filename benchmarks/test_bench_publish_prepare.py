"""``Publisher.prepare`` per batch beside ``prepare_reference`` (record at a time), same run.

Workload: batches of 2,000 ``payments`` events (JSON form, two PII fields encrypted under the
account's key, a decimal, an enum, a timestamp) on the embedded footprint; events/s per CPU
second of this process, best of alternating rounds (the machine is shared, so CPU time is the
steadier measure). Both paths give the same bytes (``tests/unit/test_publish_batch.py``).

Run: ``.venv/bin/pytest benchmarks/test_bench_publish_prepare.py -q -s -p no:randomly``
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.conftest import Report
from benchmarks.test_bench_kafka import payment
from core.events import OutgoingEvent
from core.ports.eventlog import Record
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

BATCH = int(os.environ.get("PREPARE_BENCH_BATCH", "2000"))
ROUNDS = 5
GROUP = "publisher prepare"
BASE = "prepare_reference (record at a time)"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(environ={}, data_dir=tmp_path / "data", policy_record_decisions=False)
    )
    yield h
    h.close()


def test_prepare_per_batch_vs_the_reference(hub: Hub, report: Report) -> None:
    events = [payment(i, "bench") for i in range(BATCH)]
    p = hub.publisher
    paths: dict[str, Callable[..., list[Record]]] = {
        BASE: p.prepare_reference,
        "prepare (per batch)": p.prepare,
    }
    for fn in paths.values():  # keys exist, caches are warm
        fn("payments", events, producer="bench")
    best: dict[str, float] = {}

    def rate(fn: Callable[..., list[Record]], batch: list[OutgoingEvent]) -> float:
        started = time.process_time()
        fn("payments", batch, producer="bench")
        return len(batch) / max(time.process_time() - started, 1e-9)

    for _ in range(ROUNDS):
        for name, fn in paths.items():
            best[name] = max(best.get(name, 0.0), rate(fn, events))
    for name, value in best.items():
        report.add(GROUP, name, value, "events/CPU-s", baseline=None if name == BASE else BASE)
    assert best["prepare (per batch)"] > 0
