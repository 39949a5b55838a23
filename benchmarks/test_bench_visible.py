"""Publish -> visible with the projection runner woken by the append, beside the same runner
polling every 5 ms (what it did before), in the same run (issue 13: p99 < 100 ms at 10k/s).

The load: pre-encoded trades appended straight to the embedded log (SQLite, ``synchronous=FULL``)
in a batch every 5 ms at ``VISIBLE_BENCH_RATE`` events/s, so the producer's own cost does not
throttle the rate; ``market_bars`` (chDB) follows, or ``payments`` (SQLite view store) with
``VISIBLE_BENCH_PROJECTION=payments``. Latency per batch: from the start of its
append to the projection checkpoint that covers it. The polling baseline hides the wake-up
behind a log proxy whose ``wait_for_append`` is the port's default (sleep ``poll_s``).

Run: ``.venv/bin/pytest benchmarks/test_bench_visible.py -q -s -p no:randomly``
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.conftest import Report
from core.events import OutgoingEvent
from core.ports.eventlog import EventLog
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

RATE = int(os.environ.get("VISIBLE_BENCH_RATE", "10000"))
# market_bars (chDB, the figure) or payments (SQLite view store)
PROJECTION = os.environ.get("VISIBLE_BENCH_PROJECTION", "market_bars")
SECONDS = float(os.environ.get("VISIBLE_BENCH_SECONDS", "6"))
GROUP = "publish->visible"
BASE = f"{PROJECTION}, {RATE // 1000}k/s, polling every 5 ms: p99"


class PollingOnly:
    """The log as a follower saw it before: no wake-up, only the polling period."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def append_generation(self) -> int:
        return 0

    def wait_for_append(self, generation: int, timeout_s: float) -> int:
        return EventLog.wait_for_append(self._log, generation, timeout_s)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d", projection_autostart=False))
    yield h
    h.close()


def trades(n: int, start: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            value={
                "trade_id": f"V-{i}",
                "account_id": f"ACC-{i % 50}",
                "instrument": "AAPL",
                "side": "BUY",
                "quantity": "100",
                "price": "12.5",
                "currency": "USD",
                "executed_at": f"2026-11-25T14:{(i // 60) % 60:02d}:{i % 60:02d}.000000Z",
            }
        )
        for i in range(start, start + n)
    ]


def payments(n: int, start: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            event_type="hub.payments.PaymentInitiated",
            value={
                "payment_id": f"P-{i}",
                "account_id": f"ACC-{i % 50}",
                "amount": f"{100 + i % 900}.50",
                "currency": "EUR",
                "counterparty_name": "x",
                "counterparty_iban": "y",
                "counterparty_country": "DE",
                "initiated_at": f"2026-11-25T14:{(i // 60) % 60:02d}:{i % 60:02d}.250000Z",
            },
        )
        for i in range(start, start + n)
    ]


def visible_ms(hub: Hub, *, woken: bool) -> list[float]:
    runner = hub.projections.runner(PROJECTION)
    runner.catch_up()
    real = runner.log
    if not woken:
        runner.log = PollingOnly(real)  # duck-typed: the runner calls a few log methods
    topic = "payments" if PROJECTION == "payments" else "trades"
    make = payments if topic == "payments" else trades
    records = hub.publisher.prepare(topic, make(2_000, 0), "bench", "acme")
    commits: list[tuple[float, dict[tuple[str, int], int]]] = []

    def hook(step: str) -> None:
        if step == "mirrored" and runner._cp is not None:
            at = {k: p.next_offset for k, p in runner._cp.positions.items()}
            commits.append((time.perf_counter(), at))

    runner.hook = hook
    stop = threading.Event()
    follower = threading.Thread(target=runner.follow, args=(stop, 0.005), daemon=True)
    follower.start()
    per_tick = max(1, RATE // 200)
    sent: list[tuple[float, dict[tuple[str, int], int]]] = []
    began, tick = time.perf_counter(), 0
    while time.perf_counter() - began < SECONDS:
        due = began + tick * 0.005
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        batch = [records[(tick * per_tick + j) % len(records)] for j in range(per_tick)]
        t0 = time.perf_counter()
        meta = hub.log.append(topic, batch)
        need: dict[tuple[str, int], int] = {}
        for m in meta:
            need[(m.topic, m.partition)] = max(need.get((m.topic, m.partition), -1), m.offset)
        sent.append((t0, need))
        tick += 1
    deadline = time.perf_counter() + 60
    while runner.lag() and time.perf_counter() < deadline:
        time.sleep(0.01)
    stop.set()
    hub.log.append(topic, records[:1])  # wakes a waiting follower to see the stop
    follower.join(30)
    runner.hook = lambda step: None
    runner.log = real
    out, ci = [], 0
    for t0, need in sent:
        while ci < len(commits) and not all(commits[ci][1].get(k, 0) > v for k, v in need.items()):
            ci += 1
        assert ci < len(commits), "the view never caught up with the load"
        out.append((commits[ci][0] - t0) * 1000)
    return sorted(out)


def p(lat: list[float], q: float) -> float:
    return lat[min(len(lat) - 1, int(q * len(lat)))]


def test_publish_to_visible_woken_vs_polling(hub: Hub, report: Report) -> None:
    label = f"{PROJECTION}, {RATE // 1000}k/s"
    polled = visible_ms(hub, woken=False)
    woken = visible_ms(hub, woken=True)
    report.add(
        GROUP, f"{label}, polling every 5 ms: p50", p(polled, 0.5), "ms", higher_is_better=False
    )
    report.add(GROUP, BASE, p(polled, 0.99), "ms", higher_is_better=False)
    report.add(
        GROUP, f"{label}, woken by the append: p50", p(woken, 0.5), "ms", higher_is_better=False
    )
    report.add(
        GROUP, f"{label}, woken by the append: p99", p(woken, 0.99), "ms", baseline=BASE,
        higher_is_better=False,
    )  # fmt: skip
