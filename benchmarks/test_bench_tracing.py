"""What traces cost at publish: ``Publisher.publish`` with tracing off and on, beside a baseline.

Baseline (same hub, same records, same run): ``prepare`` + ``EventLog.append`` called directly,
which is what ``publish`` did before it was instrumented. Measured:
- tracing off (``HUB_OTEL_EXPORTER=none``, the default): ``publish`` as shipped;
- tracing on: the real SDK, a ``BatchSpanProcessor`` to the in-memory exporter (spans are made,
  processed and exported; no network), trace links filed in SQLite.
The three modes take turns batch by batch, in a rotating order, so that machine noise falls
on all three alike; each mode's total time gives its rate. Batches of ``TRACE_BENCH_BATCH``
trades (default 100), ``TRACE_BENCH_N`` per mode (default 10,000).
Run: ``.venv/bin/pytest benchmarks/test_bench_tracing.py -q -s``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.sqlite_tracelinks import SqliteTraceLinks
from benchmarks.conftest import Report
from benchmarks.e2e_common import trade_rows
from core import tracing
from core.events import OutgoingEvent
from hub.bootstrap import bootstrap
from hub.settings import load_settings

pytestmark = pytest.mark.slow
N = int(os.environ.get("TRACE_BENCH_N", "10000"))
BATCH = int(os.environ.get("TRACE_BENCH_BATCH", "100"))
GROUP = "tracing"
BASE = "baseline: prepare + append"
OFF = "publish, tracing off"
ON = "publish, tracing on (SDK, batch export)"


def _events(n: int, start: int) -> list[OutgoingEvent]:
    """Trades (no PII field: the cost measured is publishing, not field encryption)."""
    return [
        OutgoingEvent(event_type="hub.trading.TradeExecuted", value=row)
        for row in trade_rows(n, start, accounts=100)
    ]


def test_publish_throughput_with_tracing_off_and_on(tmp_path: Path, report: Report) -> None:
    hub = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "data",
            projection_autostart=False,
            sqlite_synchronous="OFF",  # the CPU cost of publishing, not the disk's fsync
        )
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    links = SqliteTraceLinks(tmp_path / "links.sqlite")
    modes = (BASE, OFF, ON)
    batches = {
        m: [_events(BATCH, k * N + i) for i in range(0, N, BATCH)] for k, m in enumerate(modes)
    }
    pub = hub.publisher
    spent = dict.fromkeys(modes, 0.0)

    def one(mode: str, batch: list[OutgoingEvent]) -> None:
        if mode == ON:
            tracing.install(provider.get_tracer(tracing.TRACER_NAME), links)
        started = time.perf_counter()
        if mode == BASE:
            hub.log.append("trades", pub.prepare("trades", batch, "bench", "acme"))
        else:
            pub.publish("trades", batch, "bench", "acme")
        spent[mode] += time.perf_counter() - started
        tracing.install(None)

    try:
        # Batch by batch, the three modes in a rotating order: load on the machine falls on all.
        for i in range(len(batches[BASE])):
            for j in range(len(modes)):
                mode = modes[(i + j) % len(modes)]
                one(mode, batches[mode][i])
        provider.force_flush()
        assert len(exporter.get_finished_spans()) >= 2 * len(batches[ON])
    finally:
        tracing.install(None)
        provider.shutdown()
        links.close()
        hub.close()
    best = {m: N / spent[m] for m in modes}
    report.add(GROUP, BASE, best[BASE], "events/s")
    for name in (OFF, ON):
        report.add(GROUP, name, best[name], "events/s", baseline=BASE)
