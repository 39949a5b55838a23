"""What traces cost at publish: ``Publisher.publish`` with tracing off and on, beside a baseline.

Baseline (same hub, same records, same run): ``prepare`` + ``EventLog.append`` called directly,
which is what ``publish`` did before it was instrumented. Measured:
- tracing off (``HUB_OTEL_EXPORTER=none``, the default): ``publish`` as shipped;
- tracing on: the real SDK, a ``BatchSpanProcessor`` to the in-memory exporter (spans are made,
  processed and exported; no network), trace links filed in SQLite.
Rounds alternate (baseline, off, on) so machine noise falls on all three; the best round of
each is reported. Batches of ``TRACE_BENCH_BATCH`` events (default 100), ``TRACE_BENCH_N``
events per round (default 10,000). Run: ``.venv/bin/pytest benchmarks/test_bench_tracing.py -q -s``.
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
from core import tracing
from core.events import OutgoingEvent
from hub.bootstrap import bootstrap
from hub.settings import load_settings

pytestmark = pytest.mark.slow
N = int(os.environ.get("TRACE_BENCH_N", "10000"))
BATCH = int(os.environ.get("TRACE_BENCH_BATCH", "100"))
ROUNDS = int(os.environ.get("TRACE_BENCH_ROUNDS", "3"))
GROUP = "tracing"
BASE = "baseline: prepare + append"


def _events(n: int, start: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            event_type="hub.payments.PaymentInitiated",
            value={
                "payment_id": f"P{i}",
                "account_id": f"A{i % 100}",
                "amount": "100.50",
                "currency": "EUR",
                "counterparty_name": "x",
                "counterparty_iban": "y",
                "counterparty_country": "DE",
                "initiated_at": "2026-11-24T10:00:00Z",
            },
        )
        for i in range(start, start + n)
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
    batches = [_events(BATCH, i) for i in range(0, N, BATCH)]
    pub = hub.publisher
    best: dict[str, float] = {}

    def run(name: str) -> None:
        started = time.perf_counter()
        for batch in batches:
            if name == BASE:
                hub.log.append("payments", pub.prepare("payments", batch, "bench", "acme"))
            else:
                pub.publish("payments", batch, "bench", "acme")
        rate = N / (time.perf_counter() - started)
        best[name] = max(best.get(name, 0.0), rate)

    try:
        for _ in range(ROUNDS):
            run(BASE)
            run("publish, tracing off")
            tracing.install(provider.get_tracer(tracing.TRACER_NAME), links)
            try:
                run("publish, tracing on (SDK, batch export)")
            finally:
                tracing.install(None)
        provider.force_flush()
        assert len(exporter.get_finished_spans()) >= 2 * ROUNDS * len(batches)
    finally:
        provider.shutdown()
        links.close()
        hub.close()
    report.add(GROUP, BASE, best[BASE], "events/s")
    for name in ("publish, tracing off", "publish, tracing on (SDK, batch export)"):
        report.add(GROUP, name, best[name], "events/s", baseline=BASE)
