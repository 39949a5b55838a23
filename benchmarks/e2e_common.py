"""What the load harness's parts share (``benchmarks/e2e.py`` and ``benchmarks/e2e_kafka.py``,
``benchmarks/scale.py``): the measured ``Run``, the process's CPU and peak-RSS probes, the trade
workload and the embedded publishing run. Apart from ``benchmarks.e2e`` so that ``e2e`` (the
entry point, which runs ``e2e_kafka``) and ``e2e_kafka`` import it without an import cycle.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = 500


# -- measuring --------------------------------------------------------------------------------
@dataclass
class Run:
    """One measured run: what was sent when, and what the process spent."""

    name: str
    events: int = 0
    seconds: float = 0.0
    ack_ms: list[float] = field(default_factory=list)
    visible_ms: list[float] = field(default_factory=list)
    per_second: list[int] = field(default_factory=list)  # events acknowledged in each second
    cpu_per_s: float = 0.0  # CPU seconds (user + system) per wall second
    peak_rss_mb: float = 0.0
    target: int | None = None  # events/s, None: as fast as it goes
    note: str = ""
    reported: dict[str, float] = field(default_factory=dict)  # percentiles a tool printed

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def self_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_reset() -> None:
    """Reset this process's peak RSS (Linux ``clear_refs`` 5), so that each scenario reports
    its own high-water mark rather than the largest of the runs before it."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def self_peak_rss_mb() -> float:
    """Peak RSS since the last ``peak_rss_reset`` (VmHWM), in MiB."""
    return proc_peak_rss_mb(os.getpid()) or self_rss_mb()


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def buckets(acks: Sequence[tuple[float, int]], began: float, seconds: float) -> list[int]:
    out = [0] * max(1, int(seconds + 0.999))
    for t, n in acks:
        out[min(len(out) - 1, max(0, int(t - began)))] += n
    return out


# -- workload ---------------------------------------------------------------------------------
def trade(i: int) -> dict[str, Any]:
    return {
        "trade_id": f"E2E-{i}",
        "account_id": f"ACC-{i % ACCOUNTS}",
        "instrument": "AAPL",
        "side": "BUY" if i % 2 else "SELL",
        "quantity": "100",
        "price": f"{12 + i % 7}.5",
        "currency": "USD",
        "executed_at": f"2026-11-25T14:{(i // 60) % 60:02d}:{i % 60:02d}.000000Z",
    }


def embedded_run(
    h: Any, target: int | None, seconds: float, start: int, label: str = "embedded publish"
) -> Run:
    """Publish trades for ``seconds`` (a batch every 5 ms at ``target``, else back to back)
    while ``market_bars`` follows the log; ack and visible latency per batch."""
    from core.events import OutgoingEvent

    runner = h.projections.runner("market_bars")
    runner.catch_up()
    commits: list[tuple[float, dict[tuple[str, int], int]]] = []

    def hook(step: str) -> None:
        if step == "mirrored" and runner._cp is not None:
            positions = {k: p.next_offset for k, p in runner._cp.positions.items()}
            commits.append((time.perf_counter(), positions))

    runner.hook = hook
    runner.batch_records = 5_000
    stop = threading.Event()
    follower = threading.Thread(target=runner.follow, args=(stop,), daemon=True)
    follower.start()
    per_tick = max(1, (target or 200_000) // 200)
    run = Run(
        f"{label}, {'as fast as it goes' if target is None else f'{target:,}/s'}",
        target=target,
    )
    sent: list[tuple[float, float, dict[tuple[str, int], int]]] = []
    peak_rss_reset()
    cpu0, began, tick, i = self_cpu(), time.perf_counter(), 0, start
    while time.perf_counter() - began < seconds:
        if target is not None:
            due = began + tick * 0.005
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
        events = [OutgoingEvent(value=trade(i + k)) for k in range(per_tick)]
        i += per_tick
        t0 = time.perf_counter()
        meta = h.publisher.publish("trades", events, "e2e")
        t1 = time.perf_counter()
        need: dict[tuple[str, int], int] = {}
        for m in meta:
            need[(m.topic, m.partition)] = max(need.get((m.topic, m.partition), -1), m.offset)
        sent.append((t0, t1, need))
        tick += 1
    run.seconds = time.perf_counter() - began
    run.events = i - start
    deadline = time.perf_counter() + 60
    while runner.lag() and time.perf_counter() < deadline:
        time.sleep(0.01)
    stop.set()
    follower.join(30)
    runner.hook = lambda step: None
    run.cpu_per_s = (self_cpu() - cpu0) / run.seconds  # includes the follower's drain
    run.peak_rss_mb = self_peak_rss_mb()
    run.ack_ms = [(t1 - t0) * 1000 for t0, t1, _ in sent]
    run.per_second = buckets([(t1, per_tick) for _, t1, _ in sent], began, run.seconds)
    ci = 0
    for t0, _, need in sent:  # commits are in time order; so are the batches' offsets
        while ci < len(commits) and not all(commits[ci][1].get(k, 0) > v for k, v in need.items()):
            ci += 1
        if ci == len(commits):
            run.note = "the view had not caught up within 60 s after the run"
            break
        run.visible_ms.append((commits[ci][0] - t0) * 1000)
    return run


# -- set-up shared by the ingest and ledger benchmarks ----------------------------------------
def trade_rows(n: int, start: int = 0, accounts: int = ACCOUNTS) -> list[dict[str, Any]]:
    """``n`` trades ``T-start`` onwards, all alike but for their ids and accounts (one of
    ``accounts``): the HTTP, file and publishing benchmarks' workload (``benchmarks.http_ingest``,
    ``test_bench_ingest``, ``test_bench_tracing``)."""
    return [
        {
            "trade_id": f"T-{i}",
            "account_id": f"ACC-{i % accounts}",
            "instrument": "AAPL",
            "side": "BUY",
            "quantity": "100",
            "price": "12.5",
            "currency": "USD",
            "executed_at": "2026-11-25T14:30:00.000000Z",
        }
        for i in range(start, start + n)
    ]


def ingested_records(values: Sequence[bytes], natural_keys: bool = False) -> list[Any]:
    """Pre-encoded values as ingest stores them (the storage floor the ingest benchmarks
    compare with): an ingested record's headers, each with its own UUIDv7 event id (also its
    correlation id), key ``k``; with ``natural_keys`` also the trade's natural key header
    (trade ``T-i`` for the ``i``-th value)."""
    from datetime import UTC, datetime

    from core.ports.eventlog import Record
    from domain.envelope import Envelope
    from ingest.ids import uuid7_bytes

    base = Envelope(event_type="x", producer="bench", occurred_at=datetime.now(UTC)).to_headers()
    ids = uuid7_bytes(len(values))
    return [
        Record(
            value=v,
            key=b"k",
            headers=(base[0], ("ce_id", e), *base[2:5], ("ce_correlationid", e), *base[6:])
            + ((("hub-natural-key", b"trade.id.unique\x1fT-%d" % i),) if natural_keys else ()),
        )
        for i, (v, e) in enumerate(zip(values, ids, strict=True))
    ]


def ledger_records(n: int, start: int = 0) -> list[Any]:
    """``n`` records as the ledger benchmarks append them: 150 random value bytes, one of
    5,000 account keys, a trade event's envelope headers."""
    from core.ports.eventlog import Record
    from domain.envelope import Envelope

    out = []
    for i in range(start, start + n):
        env = Envelope("hub.trading.TradeExecuted", "ingest-api", tenant="acme")
        out.append(Record(os.urandom(150), b"account-%024d" % (i % 5000), env.to_headers()))
    return out


def bulk_hub(data: Path, ledger_store: str) -> Any:
    """A hub on ``data`` set up for bulk loads (``benchmarks.scale``, ``benchmarks.ledger_bytes``):
    projections not started, decisions not recorded, the trade accounts open and the ledger
    checkpointed. The caller closes it."""
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    h = bootstrap(
        load_settings(
            environ={},
            data_dir=data,
            projection_autostart=False,
            policy_record_decisions=False,
            ledger_store=ledger_store,
        )
    )
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
        h.ledger.sync(force_checkpoint=True)
    except BaseException:
        h.close()
        raise
    return h
