"""Console benchmark: time from publishing a trade to the Markets chart's data reaching the
browser's stream (``/ui/api/markets/stream``, Server-Sent Events), at a steady 1,000 trades/s,
beside the same run's baseline: publish to the market-bars projection's commit (the earliest the
chart could know). Both as p50 and p99 over every published batch, timed from the start of the
append that carried it. The driver appends, on the clock, every record due so far (see
``_measure``), so the offered rate holds at RATE whatever one append costs.

Beside the latencies it reports what explains them: the machine's load average over the run, the
CPU this process used (cores), and the market-bars runner's commits and batch sizes (records per
commit). On two shared cores the latency follows the CPU the process gets: see
``docs/benchmarks.md`` (the console section) for runs on a busy and on a quiet machine.

The hub serves on 127.0.0.1 (first free port of ``HUB_BENCH_CONSOLE_PORTS``, default
26080-26089) in this process, as ``hub serve`` does; the stream is read by an HTTP client with a
console session. Duration ``HUB_BENCH_CONSOLE_SECONDS`` (default 8). With
``HUB_BENCH_CONSOLE_PROFILE=<prefix>``, py-spy samples this process during the measured window
only: ``<prefix>.gil.txt`` (the thread holding the GIL: where the CPU goes) and
``<prefix>.wall.txt`` (every thread, idle included: where each one waits), as collapsed stacks.
"""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import uvicorn

from core.events import OutgoingEvent
from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.bars_stream import read_bars

RATE = 1_000
SECONDS = float(os.environ.get("HUB_BENCH_CONSOLE_SECONDS", "8"))
MINUTE_US = 1_767_225_600_000_000  # every trade in one 1-minute bar: its count is the progress


@pytest.fixture
def hub(tmp_path):
    """A hub as ``hub serve`` runs it: projections follow the log while the app serves."""
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data"))
    yield h
    h.close()


def _port() -> int:
    first, _, last = os.environ.get("HUB_BENCH_CONSOLE_PORTS", "26080-26089").partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip(f"no free port in {first}-{last}")


def _trades(n: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            value={
                "trade_id": f"b{i}",
                "account_id": f"A{i % 50}",
                "instrument": "BENCH",
                "side": "BUY",
                "quantity": "1.5",
                "price": f"{100 + i % 7}.25",
                "currency": "USD",
                "executed_at": MINUTE_US + i,
            }
        )
        for i in range(n)
    ]


def _profilers(prefix: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on this process (GIL holder, and every thread with idle ones); none without it."""
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not prefix or not os.path.exists(spy):
        return []
    base = [
        spy,
        "record",
        "--pid",
        str(os.getpid()),
        "--rate",
        "100",
        "--format",
        "raw",
        "--nonblocking",
    ]
    procs = [
        subprocess.Popen(
            [*base, *extra, "--output", f"{prefix}.{name}.txt"], stderr=subprocess.PIPE
        )
        for name, extra in (("gil", ["--gil"]), ("wall", ["--threads", "--idle"]))
    ]
    time.sleep(1.0)  # py-spy attaches
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output and exits
    for proc in procs:
        proc.wait(60)


def _cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    values = sorted(values)
    return values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]


def test_publish_to_chart_update_at_1000_per_second(hub, report):
    app = create_app(hub)
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    while not server.started:
        time.sleep(0.05)
    try:
        _measure(hub, app, port, report)
    finally:
        server.should_exit = True
        serving.join(timeout=30)


def _measure(hub, app, port, report):
    issued = hub.keys.create(["admin"], principal="bench")
    token, _ = app.state.console_sessions.open(issued.key_id, "bench")
    per_tick = RATE // 200  # a batch every 5 ms
    total = int(SECONDS * 200) * per_tick
    records = hub.publisher.prepare("trades", _trades(total), "bench", "default")

    runner = hub.projections.runner("market_bars")
    # The baseline: when each commit's rows were written (the commit listener, the earliest the
    # chart could know), and the trades committed so far, counted from the 1-minute bars' partial
    # rows (every trade is in one bar). Not the positions: the log numbers a transaction marker
    # per partition and append, so offsets run ahead of trades (~13 % here).
    commits: list[tuple[float, int]] = []  # (time, trades committed so far)
    folded_so_far = [0]

    def committed_rows(_seq: int, rows: Any) -> None:
        bars = rows.get("ohlcv_1m")
        events = [] if bars is None else bars if isinstance(bars, list) else bars.to_pylist()
        n = sum(int(x["events"]) for x in events)
        folded_so_far[0] += n
        commits.append((time.perf_counter(), folded_so_far[0]))

    stop_listening = runner.on_commit_rows(committed_rows)
    arrivals: list[tuple[float, int]] = []  # (time, trades on the chart)
    ready = threading.Event()
    stop = threading.Event()

    def arrived(at: float, trades: int) -> bool:
        arrivals.append((at, trades))
        ready.set()
        return False

    def read_stream() -> None:
        read_bars(f"http://127.0.0.1:{port}", token, "BENCH", arrived, stop)

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    assert ready.wait(60), "the stream sent no first message"

    # The driver offers RATE records/s on the clock: every append carries every record due by
    # then (5 every 5 ms on time; more when an append took longer than the tick, e.g. a slow
    # commit), so a slow append delays records but never lowers the offered rate. One record
    # per 5 ms tick with a fixed size capped the rate at 1 / (append time): 816/s here, because
    # an append (one log transaction) takes ~6 ms under load.
    sent: list[tuple[float, int]] = []  # (time the append began, trades published so far)
    batches: list[int] = []
    done = 0
    profilers = _profilers(os.environ.get("HUB_BENCH_CONSOLE_PROFILE", ""))
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_s()
    began = time.perf_counter()
    while done < total:
        now = time.perf_counter()
        due = min(total, int((now - began) * RATE))
        if due - done < min(per_tick, total - done):
            time.sleep(max(0.0, began + (done + per_tick) / RATE - now))
            continue
        hub.log.append("trades", records[done:due])
        batches.append(due - done)
        done = due
        sent.append((now, done))
    achieved = total / (time.perf_counter() - began)
    deadline = time.perf_counter() + 60
    while (not arrivals or arrivals[-1][1] < total) and time.perf_counter() < deadline:
        time.sleep(0.05)
    stop.set()
    _stop(profilers)
    stop_listening()
    cores = (_cpu_s() - cpu_before) / (time.perf_counter() - began)
    load = (load_before + os.getloadavg()[0]) / 2

    def latencies(seen: list[tuple[float, int]], base: int) -> list[float]:
        out = []
        for t_pub, count in sent:
            for t_seen, n in seen:
                if t_seen >= t_pub and n - base >= count:
                    out.append((t_seen - t_pub) * 1000)
                    break
        return out

    chart = latencies(arrivals, 0)
    committed = latencies(commits, 0)
    assert len(chart) == len(sent), "the chart never showed every published trade"
    assert committed
    c50, c99 = _percentiles(chart)
    b50, b99 = _percentiles(committed)
    group = "publish->console"
    report.add(group, "achieved publish rate", achieved, "events/s")
    report.add(group, "p50 to the projection's commit", b50, "ms", higher_is_better=False)
    report.add(group, "p99 to the projection's commit", b99, "ms", higher_is_better=False)
    report.add(
        group,
        "p50 to the chart's stream (SSE)",
        c50,
        "ms",
        baseline="p50 to the projection's commit",
        higher_is_better=False,
    )
    report.add(
        group,
        "p99 to the chart's stream (SSE)",
        c99,
        "ms",
        baseline="p99 to the projection's commit",
        higher_is_better=False,
    )
    folded = [b - a for (_, a), (_, b) in itertools.pairwise(commits) if b > a]
    report.add(group, "runner commits", len(commits), "commits")
    report.add(group, "records per commit p50", _percentiles(folded)[0], "records")
    report.add(group, "records per commit max", max(folded, default=0), "records")
    report.add(group, "process CPU (driver + hub)", cores, "cores")
    report.add(group, "load average (1 min, mean)", load, "")
    report.add(group, "stream messages", len(arrivals), "messages")
    report.add(group, "appends", len(batches), "appends")
    report.add(group, "largest append", max(batches), "records")
    assert achieved >= RATE * 0.97, f"the driver offered {achieved:.0f}/s, not {RATE}/s"
