"""The API's JSON guard (``hub.api.deps.parse_json``) against plain ``json.loads``.

Same-run baseline: ``json.loads(body, parse_float=Decimal)`` of the same 20,000-event publish
batch (what the routes did before). Figures: the depth scan alone, the guarded parse of the
bulk data routes (no duplicate check), and the guarded parse of control-plane bodies (with the
duplicate-member check), each in MB/s with its ratio to the baseline.

Run: ``.venv/bin/pytest benchmarks/test_bench_json_guard.py -q -s``
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from benchmarks.conftest import Report
from hub.api.deps import json_depth_exceeds, parse_json

pytestmark = pytest.mark.slow
GROUP = "json guard"
ROUNDS = 5


def _batch() -> bytes:
    value = {
        "trade_id": "T1",
        "account_id": "A1",
        "instrument": "XS0001",
        "side": "BUY",
        "quantity": "100",
        "price": 101.25,
        "currency": "EUR",
        "executed_at": "2026-11-25T10:00:00Z",
    }
    events = [{"value": {**value, "trade_id": f"T{i}"}, "key": "A1"} for i in range(20_000)]
    return json.dumps({"events": events}).encode()


def _best(fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_json_guard(report: Report) -> None:
    body = _batch()
    mb = len(body) / 1e6
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("json.loads (baseline)", lambda: json.loads(body, parse_float=Decimal)),
        ("depth scan only", lambda: json_depth_exceeds(body)),
        ("parse_json, data routes", lambda: parse_json(body, unique_members=False)),
        ("parse_json, control plane", lambda: parse_json(body)),
    ]
    for name, fn in cases:
        report.add(GROUP, name, mb / _best(fn), "MB/s", baseline="json.loads (baseline)")
