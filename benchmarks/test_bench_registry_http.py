"""Schema by id over HTTP (issue 13: p50 < 1 ms), beside the same run's floors.

Rows: ``GET /health`` (the HTTP stack alone: no key, no policy decision), ``GET
/schemas/ids/{id}`` (API key, a recorded ``schema.read`` decision that waits for its
group-committed fsync, the schema from memory), the same with
``policy_unsynced_reads=schema.read`` (the decision answered once queued;
docs/decisions-unsynced-reads.md), ``policy.decide`` alone in-process (both settings), and,
in-process without HTTP, a known id from memory against the same lookup refreshing from the
log first (what every read did before).
In-process ASGI client (``TestClient``): no sockets, so the figures are the hub's own cost.

Run: ``.venv/bin/pytest benchmarks/test_bench_registry_http.py -q -s -p no:randomly``
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from benchmarks.conftest import Report
from core.ports.policy import Principal
from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings

N = int(os.environ.get("REGISTRY_HTTP_BENCH_N", "500"))
GROUP = "registry schema by id"


def timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(50, n)):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _over_http(data_dir: Path, **settings: Any) -> tuple[list[float], list[float], Any]:
    h = bootstrap(
        load_settings(environ={}, data_dir=data_dir, projection_autostart=False, **settings)
    )
    try:
        token = h.keys.create(["admin"], principal="bench").token
        sid = h.registry.get_version("trades-value", "latest").id
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(h)) as c:
            assert c.get(f"/schemas/ids/{sid}", headers=headers).status_code == 200
            health = timed(lambda: c.get("/health"), N)
            by_id = timed(lambda: c.get(f"/schemas/ids/{sid}", headers=headers), N)
        who = Principal("bench", frozenset({"admin"}), "default")
        path = f"/schemas/ids/{sid}"
        decide = timed(lambda: h.policy.decide(who, "schema.read", path, {"method": "GET"}), N)
        return health, by_id, (h, sid, decide)
    except BaseException:
        h.close()
        raise


def test_schema_by_id_over_http(tmp_path: Path, report: Report) -> None:
    health, by_id, (h, sid, decide) = _over_http(tmp_path / "d")
    try:
        memory = timed(lambda: h.registry.get_by_id(sid), N * 20)
        refreshed = timed(lambda: h.registry._get_by_id_refreshed(sid), N * 20)
    finally:
        h.close()
    # The same reads with their decisions answered once queued (policy_unsynced_reads).
    _, unsynced, (h2, _, decide_unsynced) = _over_http(
        tmp_path / "u", policy_unsynced_reads="schema.read"
    )
    h2.close()
    med = statistics.median
    report.add(GROUP, "GET /health p50 (HTTP floor)", med(health), "ms", higher_is_better=False)
    report.add(
        GROUP, "GET /schemas/ids/{id} p50", med(by_id), "ms",
        baseline="GET /health p50 (HTTP floor)", higher_is_better=False,
    )  # fmt: skip
    report.add(GROUP, "GET /schemas/ids/{id} p99", statistics.quantiles(by_id, n=100)[98], "ms")
    report.add(
        GROUP, "GET /schemas/ids/{id} p50, unsynced schema.read", med(unsynced), "ms",
        baseline="GET /health p50 (HTTP floor)", higher_is_better=False,
    )  # fmt: skip
    report.add(
        GROUP, "GET /schemas/ids/{id} p99, unsynced schema.read",
        statistics.quantiles(unsynced, n=100)[98], "ms",
    )  # fmt: skip
    report.add(GROUP, "policy.decide schema.read p50 (waits for fsync)", med(decide), "ms")
    report.add(
        GROUP, "policy.decide schema.read p50, unsynced", med(decide_unsynced), "ms",
        baseline="policy.decide schema.read p50 (waits for fsync)", higher_is_better=False,
    )  # fmt: skip
    report.add(GROUP, "get_by_id, refresh first (before)", med(refreshed) * 1000, "µs")
    report.add(
        GROUP, "get_by_id from memory", med(memory) * 1000, "µs",
        baseline="get_by_id, refresh first (before)", higher_is_better=False,
    )  # fmt: skip
