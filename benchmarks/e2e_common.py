"""What the load harness's parts share (``benchmarks/e2e.py`` and ``benchmarks/e2e_kafka.py``,
``benchmarks/scale.py``): the measured ``Run``, the process's CPU and peak-RSS probes, the trade
workload and the embedded publishing run. Apart from ``benchmarks.e2e`` so that ``e2e`` (the
entry point, which runs ``e2e_kafka``) and ``e2e_kafka`` import it without an import cycle.
"""

from __future__ import annotations

import bisect
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
PUBLISHERS = int(os.environ.get("E2E_PUBLISHERS", "8"))  # concurrent embedded publishers


# -- measuring --------------------------------------------------------------------------------
@dataclass
class Run:
    """One measured run: what was sent when, and what the process spent."""

    name: str
    events: int = 0
    seconds: float = 0.0
    ack_ms: list[float] = field(default_factory=list)
    visible_ms: list[float] = field(default_factory=list)
    leaf_ms: list[float] = field(default_factory=list)  # publish -> the batch's leaves committed
    checkpoint_ms: list[float] = field(default_factory=list)  # -> a signed checkpoint holds them
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


# The follower's checkpoint interval in these runs (HUB_CHECKPOINT_EVERY_MS; the product's
# default is 1,000 ms, since every checkpoint is a stored row and a witness copy): what the
# add-to-signed-checkpoint goal (p99 < 100 ms) needs.
FOLLOW_MS = 50


class LedgerWatch:
    """The ledger following the log during a run, as ``hub serve`` runs it (``Ledger.start``),
    or as it did before it was woken by appends (``polled``: a sync every second, a timed
    checkpoint at most every second: the same-run baseline). Records when each sync transaction
    committed (readers of the store see it; its witness copies follow) and the checkpoints it
    signed; ``latencies`` turns
    them into publish -> leaf and publish -> signed checkpoint per batch, after reading every
    checkpoint it saw back from the store and checking its signature."""

    def __init__(self, ledger: Any, polled: bool = False, checkpoint_ms: int = FOLLOW_MS) -> None:
        import dataclasses

        self.ledger = ledger
        self.polled = polled
        self.commits: list[tuple[float, int, int]] = []  # (time, tree size, largest checkpoint)
        self._config = ledger.config
        every = 1_000 if polled else checkpoint_ms
        ledger.config = dataclasses.replace(ledger.config, checkpoint_every_ms=every)
        ledger.sync(force_checkpoint=True)  # start from a checkpointed tree
        self._unsubscribe = ledger.on_commit(self._seen)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if polled:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        else:
            ledger.start()

    def _seen(self, size: int, checkpoints: list[int]) -> None:
        self.commits.append((time.perf_counter(), size, max(checkpoints, default=0)))

    def _poll(self) -> None:  # Ledger.start before it was woken by appends
        while not self._stop.wait(1.0):
            self.ledger.sync()

    def finish(self, last: dict[tuple[str, int], int], deadline_s: float = 60.0) -> str:
        """Let the follower cover the run's last batch (``last``: its highest offset per
        partition) with leaves and a signed checkpoint, stop it; a note when it did not in
        time."""
        ledger, end = self.ledger, time.perf_counter() + deadline_s
        note = ""
        while True:
            idx = [ledger.index_of(t, p, off) for (t, p), off in last.items()]
            cp = ledger.store.latest_checkpoint()
            if cp is not None and all(i is not None and i < cp.size for i in idx):
                break
            if time.perf_counter() > end:
                note = "the ledger had not covered the run within 60 s after it"
                break
            time.sleep(0.05)
        if self._thread is not None:
            self._stop.set()
            self._thread.join(30)
        else:
            ledger.stop()
        self._unsubscribe()
        ledger.config = self._config
        return note

    def latencies(
        self, run: Run, sent: Sequence[tuple[float, float, dict[tuple[str, int], int]]]
    ) -> None:
        from audit.note import open_checkpoint, parse_verifier_key

        ledger = self.ledger
        key = parse_verifier_key(ledger.public_key())
        for size in sorted({c for _, _, c in self.commits if c}):
            cp = ledger.store.checkpoint(size)
            assert cp is not None, f"checkpoint {size} was reported but is not in the store"
            parsed, _ = open_checkpoint(cp.note, [key])  # raises unless signed by the ledger
            assert (parsed.size, parsed.root) == (cp.size, cp.root)
        # the first commit whose tree (leaf) or newest checkpoint (signed) covers a batch's
        # highest index; both grow with time, so bisect (concurrent publishers: batches are
        # not in offset order)
        times = [t for t, _, _ in self.commits]
        sizes = [s for _, s, _ in self.commits]
        signed = [(t, c) for t, _, c in self.commits if c]
        signed_sizes = [c for _, c in signed]
        for t0, _, need in sent:
            found = [ledger.index_of(t, p, off) for (t, p), off in need.items()]
            if None in found:
                continue  # not covered within the deadline (the run's note says so)
            idx = max(i for i in found if i is not None)
            li = bisect.bisect_right(sizes, idx)
            ci = bisect.bisect_right(signed_sizes, idx)
            if li < len(times):
                run.leaf_ms.append((times[li] - t0) * 1000)
            if ci < len(signed):
                run.checkpoint_ms.append((signed[ci][0] - t0) * 1000)


def embedded_run(
    h: Any,
    target: int | None,
    seconds: float,
    start: int,
    label: str = "embedded publish",
    ledger: str = "woken",
    publishers: int = PUBLISHERS,
    batch: int | None = None,
    view: bool = True,
) -> Run:
    """Publish trades for ``seconds`` from ``publishers`` concurrent threads (like HTTP clients)
    while ``market_bars`` and the ledger follow the log; ack, leaf, signed-checkpoint and visible
    latency per batch. ``ledger``: ``woken`` (``Ledger.start``), ``polled`` (the ledger as it
    followed before: see ``LedgerWatch``), or ``off``.

    At ``target`` a batch of ``target / 200`` trades is due every 5 ms (``batch``: batches of
    that many trades instead, one due every ``batch / target`` s), open loop: tick ``t`` is due
    at ``began + t * interval`` and is sent by publisher ``t % publishers``, so a slow
    acknowledgement delays only its own publisher's next ticks, not the schedule (one
    synchronous publisher could never send faster than one batch per acknowledgement). Without
    ``target`` each publisher sends back to back. The ack latency is that of the
    ``publish`` call. ``view=False`` (with ``ledger="off"``: the publish path alone): no
    ``market_bars`` follower runs and no visible latency is measured."""
    from core.events import OutgoingEvent

    runner = h.projections.runner("market_bars")
    if view:
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
    if view:
        follower.start()
    per_tick = batch or max(1, (target or 200_000) // 200)
    interval = per_tick / target if target else 0.0
    suffix = ", ledger polled 1 s (before)" if ledger == "polled" else ""
    if not view and ledger == "off":
        suffix = ", publish only (no view, no ledger following)"
    run = Run(
        f"{label}, {publishers} publishers, {per_tick} events per batch, "
        f"{'as fast as it goes' if target is None else f'{target:,}/s'}{suffix}",
        target=target,
    )
    watch = None if ledger == "off" else LedgerWatch(h.ledger, polled=ledger == "polled")
    sent: list[tuple[float, float, dict[tuple[str, int], int]]] = []
    ticks = [0]
    tick_lock = threading.Lock()
    failures: list[BaseException] = []
    peak_rss_reset()
    cpu0, began = self_cpu(), time.perf_counter()

    def publisher() -> None:
        mine: list[tuple[float, float, dict[tuple[str, int], int]]] = []
        try:
            while True:
                with tick_lock:
                    tick = ticks[0]
                    ticks[0] += 1
                if target is not None:
                    due = began + tick * interval
                    now = time.perf_counter()
                    if due - began >= seconds:
                        break
                    if now < due:
                        time.sleep(due - now)
                elif time.perf_counter() - began >= seconds:
                    break
                i = start + tick * per_tick
                events = [OutgoingEvent(value=trade(i + k)) for k in range(per_tick)]
                t0 = time.perf_counter()
                meta = h.publisher.publish("trades", events, "e2e")
                t1 = time.perf_counter()
                need: dict[tuple[str, int], int] = {}
                for m in meta:
                    tp = (m.topic, m.partition)
                    need[tp] = max(need.get(tp, -1), m.offset)
                mine.append((t0, t1, need))
        except BaseException as exc:  # reported after the run
            failures.append(exc)
        finally:
            with tick_lock:
                sent.extend(mine)

    threads = [threading.Thread(target=publisher) for _ in range(max(1, publishers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    sent.sort(key=lambda s: s[0])
    run.seconds = time.perf_counter() - began
    run.events = len(sent) * per_tick
    deadline = time.perf_counter() + 60
    while view and runner.lag() and time.perf_counter() < deadline:
        time.sleep(0.01)
    stop.set()
    if view:
        follower.join(30)
    runner.hook = lambda step: None
    highest: dict[tuple[str, int], int] = {}  # concurrent publishers: any batch may be last
    for _, _, need in sent:
        for tp, off in need.items():
            highest[tp] = max(highest.get(tp, -1), off)
    ledger_note = "" if watch is None or not sent else watch.finish(highest)
    run.cpu_per_s = (self_cpu() - cpu0) / run.seconds  # includes the followers' drain
    run.peak_rss_mb = self_peak_rss_mb()
    run.ack_ms = [(t1 - t0) * 1000 for t0, t1, _ in sent]
    run.per_second = buckets([(t1, per_tick) for _, t1, _ in sent], began, run.seconds)
    for t0, _, need in sent if view else ():  # the view's positions only grow: bisect
        lo, hi = 0, len(commits)
        while lo < hi:
            mid = (lo + hi) // 2
            if all(commits[mid][1].get(k, 0) > v for k, v in need.items()):
                hi = mid
            else:
                lo = mid + 1
        if lo == len(commits):
            run.note = "the view had not caught up within 60 s after the run"
            break
        run.visible_ms.append((commits[lo][0] - t0) * 1000)
    if watch is not None:
        watch.latencies(run, sent)
        run.note = "; ".join(n for n in (run.note, ledger_note) if n)
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
