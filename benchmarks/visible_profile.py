"""Where publish -> visible goes on the follower side (issue 13: p99 < 100 ms at 10k events/s):
``python -m benchmarks.visible_profile --rates 10000,50000 --seconds 8``.

The load is ``benchmarks.e2e_common.embedded_run`` (``Publisher.publish`` of 50 trades every
5 ms in this process, ``market_bars`` following in a thread, ``batch_records=5000``); on top of
it the runner's steps are timed by phase through its hook (``read``, ``folded``, ``rows:<table>``,
``offsets``, ``mirrored``), the follower thread's CPU per step is taken with
``time.thread_time`` (wall minus CPU: waiting for the GIL, the disk or chDB's lock), and every
committed append is timestamped where the log bumps its append signal, so that the time from an
append to the runner's next step start (the wake-up) is known.

Output: one Markdown section per rate on stdout (``--out``: also as JSON), with the load average.
It reads only what a ``ProjectionRunner`` and the embedded log expose, so the same script runs
against an older checkout (copy it there) for a same-run comparison.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa  # noqa: F401 - before chDB (STACK-NOTES)

from benchmarks.e2e_common import ACCOUNTS, embedded_run, pct


class Probe:
    """Timestamps of one runner's steps and of the log's appends (``perf_counter`` seconds)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.appends: list[float] = []
        self.waits: list[tuple[float, float, bool]] = []  # (entered, returned, woken by an append)
        self._open: dict[str, Any] | None = None

    def hook(self, step: str) -> None:
        if self._open is not None:
            self._open["marks"].append((step, time.perf_counter(), time.thread_time()))


class _TimedLock:
    """The log's own lock (the Kafka log's ``_lock``: appends hold it while they wait for the
    broker's acknowledgement, reads while they fetch), forwarding every call; the follower's
    wait to take it during a step is added to the step's calls as ``log lock wait``."""

    def __init__(self, inner: Any, probe: Probe) -> None:
        self._inner, self._probe = inner, probe

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        t0 = time.perf_counter()
        got: bool = self._inner.acquire(blocking, timeout)
        rec = self._probe._open
        if rec is not None and threading.get_ident() == rec["thread"]:
            calls = rec.setdefault("calls", {})
            calls["log lock wait"] = calls.get("log lock wait", 0.0) + time.perf_counter() - t0
        return got

    def release(self) -> None:
        self._inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def attach(h: Any, probe: Probe) -> Callable[[], None]:
    """Wrap the market_bars runner's ``step``, its log's ``wait_for_append`` and the append
    signal's notification (``AppendSignal`` has slots: its condition is wrapped, and an append
    to ``trades`` is told from other writes by the topic's counter); returns the undo."""
    runner = h.projections.runner("market_bars")
    log = runner.log
    signal = getattr(log, "_appended", None)
    step0 = runner.step
    wait0 = log.wait_for_append

    def step(bound: Any = None) -> Any:
        rec: dict[str, Any] = {"start": time.perf_counter(), "cpu_start": time.thread_time()}
        rec["thread"] = threading.get_ident()
        rec["marks"] = []
        probe._open = rec
        try:
            got = step0(bound)
        finally:
            probe._open = None
        rec["end"], rec["cpu_end"] = time.perf_counter(), time.thread_time()
        rec["cpu"] = rec["cpu_end"] - rec["cpu_start"]
        rec["events"] = got.events
        if got.events:
            probe.steps.append(rec)
        return got

    def wait(generation: int, timeout_s: float, topics: Sequence[str] | None = None) -> int:
        if topics is None:  # the ledger follower's wait (it shares the log), not the runner's
            waited: int = wait0(generation, timeout_s, topics)
            return waited
        entered = time.perf_counter()
        got: int = wait0(generation, timeout_s, topics)
        probe.waits.append((entered, time.perf_counter(), got != generation))
        return got

    store = runner.store
    timed: dict[str, Callable[..., Any]] = {}
    for name in ("select_over", "_insert"):
        inner = getattr(store, name, None)
        if inner is None:
            continue

        def wrapped(*a: Any, _inner: Callable[..., Any] = inner, _name: str = name) -> Any:
            t0 = time.perf_counter()
            try:
                return _inner(*a)
            finally:
                if probe._open is not None:
                    calls = probe._open.setdefault("calls", {})
                    calls[_name] = calls.get(_name, 0.0) + time.perf_counter() - t0

        timed[name] = wrapped
        setattr(store, name, wrapped)
    lock0 = getattr(log, "_lock", None)
    if lock0 is not None and hasattr(lock0, "acquire"):
        log._lock = _TimedLock(lock0, probe)  # nobody holds it yet: publishing starts after
    runner.step = step
    log.wait_for_append = wait
    cv = signal._cv if signal is not None else None
    notify0 = cv.notify_all if cv is not None else None
    seen = [signal.generation_of(["trades"]) if signal is not None else 0]

    def notify_all() -> None:  # called under the condition's lock, after the counters moved
        assert signal is not None and notify0 is not None
        now = signal.generation_of(["trades"])
        if now != seen[0]:
            seen[0] = now
            probe.appends.append(time.perf_counter())
        notify0()

    if cv is not None:
        cv.notify_all = notify_all

    def undo() -> None:
        if isinstance(getattr(log, "_lock", None), _TimedLock):
            log._lock = lock0
        for name in timed:
            delattr(store, name)
        del runner.step
        del log.wait_for_append
        if cv is not None:
            del cv.notify_all

    return undo


class ThreadCpu:
    """CPU seconds per second of this process's threads over a run, by thread name (Linux
    ``/proc/self/task``): chDB's own threads (``ThreadPool``, ``QueryPipelineEx``,
    ``MergeMutate``...) beside the Python ones (all called ``python``). Sampled every 0.2 s, so
    that a thread that ends before the run does (a publisher) still counts."""

    def __init__(self) -> None:
        self._began = time.perf_counter()
        self._first = self._snap()
        self._last = dict(self._first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _snap() -> dict[str, tuple[str, float]]:
        out: dict[str, tuple[str, float]] = {}
        tick = os.sysconf("SC_CLK_TCK")
        try:
            tids = os.listdir("/proc/self/task")
        except OSError:
            return out
        for tid in tids:
            try:
                stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            out[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
        return out

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self._last.update(self._snap())

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._last.update(self._snap())
        span = time.perf_counter() - self._began
        by: dict[str, float] = {}
        for tid, (name, cpu) in self._last.items():
            by[name] = by.get(name, 0.0) + cpu - self._first.get(tid, (name, 0.0))[1]
        return {k: round(v / span, 3) for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v}


class GcPauses:
    """The garbage collector's pauses during a run, by generation (``gc.callbacks``): a
    collection holds the GIL, so every thread of the process (the follower, the publishers)
    stands still for its length. ``stop`` returns count, total and max ms per generation."""

    def __init__(self) -> None:
        self._at = 0.0
        self.ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._at = time.perf_counter()
        else:
            self.ms[info["generation"]].append((time.perf_counter() - self._at) * 1000)

    def stop(self) -> dict[str, dict[str, float]]:
        gc.callbacks.remove(self._callback)
        return {
            f"gen{g}": {"count": len(v), "total_ms": sum(v), "max_ms": max(v, default=0.0)}
            for g, v in self.ms.items()
        }


def summarize(probe: Probe, run: Any) -> dict[str, Any]:
    steps = probe.steps
    phases: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for s in steps:
        prev, prev_cpu = s["start"], s["cpu_start"]
        for name, at, cpu_at in s["marks"]:
            key = "rows" if name.startswith("rows:") else name
            phases.setdefault(key, []).append((at - prev) * 1000)
            cpus.setdefault(key, []).append((cpu_at - prev_cpu) * 1000)
            prev, prev_cpu = at, cpu_at
        phases.setdefault("after mirrored", []).append((s["end"] - prev) * 1000)
        cpus.setdefault("after mirrored", []).append((s["cpu_end"] - prev_cpu) * 1000)
        for name, secs in s.get("calls", {}).items():
            what = name if name.startswith("log ") else f"chDB {name}"
            phases.setdefault(f"(in the above: {what})", []).append(secs * 1000)
    # collapse several rows:<table> marks of one step into one figure per step
    n = len(steps) or 1
    per_step = {
        k: {
            "mean_ms": sum(v) / n,
            "p50_ms": pct(v, 0.5),
            "p99_ms": pct(v, 0.99),
            # the follower thread's own CPU in the phase; the rest of its wall is off-CPU
            # (waiting for the GIL, a core, chDB's worker or the disk)
            "cpu_mean_ms": sum(cpus[k]) / n if k in cpus else float("nan"),
        }
        for k, v in phases.items()
    }
    wall = [(s["end"] - s["start"]) * 1000 for s in steps]
    cpu = [s["cpu"] * 1000 for s in steps]
    events = [s["events"] for s in steps]
    # wake-up: an idle wait ended by an append -> that append's time and the next step's start
    wakes = []
    starts = sorted(s["start"] for s in steps)
    ai = si = 0
    for entered, returned, woken in probe.waits:
        if not woken:
            continue
        while ai < len(probe.appends) and probe.appends[ai] < entered:
            ai += 1
        while si < len(starts) and starts[si] < returned:
            si += 1
        if ai < len(probe.appends) and si < len(starts):
            wakes.append((starts[si] - probe.appends[ai]) * 1000)
    span = (steps[-1]["end"] - steps[0]["start"]) if steps else 0.0
    busy = sum(s["end"] - s["start"] for s in steps)
    return {
        "run": run.name,
        "events_per_s": round(run.rate),
        "visible_p50_ms": pct(run.visible_ms, 0.5),
        "visible_p95_ms": pct(run.visible_ms, 0.95),
        "visible_p99_ms": pct(run.visible_ms, 0.99),
        "ack_p50_ms": pct(run.ack_ms, 0.5),
        "ack_p95_ms": pct(run.ack_ms, 0.95),
        "ack_p99_ms": pct(run.ack_ms, 0.99),
        "leaf_p50_ms": pct(run.leaf_ms, 0.5),
        "leaf_p95_ms": pct(run.leaf_ms, 0.95),
        "leaf_p99_ms": pct(run.leaf_ms, 0.99),
        "checkpoint_p50_ms": pct(run.checkpoint_ms, 0.5),
        "checkpoint_p95_ms": pct(run.checkpoint_ms, 0.95),
        "checkpoint_p99_ms": pct(run.checkpoint_ms, 0.99),
        "visible_cdf": [round(pct(run.visible_ms, q / 100), 2) for q in range(0, 101, 5)],
        "events": run.events,
        "follower_cpu_s": sum(cpu) / 1000,
        "cpu_s_per_s": run.cpu_per_s,
        "steps": len(steps),
        "steps_per_s": len(steps) / span if span else 0.0,
        "follower_busy_share": busy / span if span else 0.0,
        "records_per_step_p50": pct(events, 0.5),
        "records_per_step_mean": sum(events) / n,
        "step_wall_ms_p50": pct(wall, 0.5),
        "step_wall_ms_p99": pct(wall, 0.99),
        "step_cpu_ms_p50": pct(cpu, 0.5),
        "step_cpu_ms_mean": sum(cpu) / n,
        "phases": per_step,
        "idle_waits_woken": len(wakes),
        "wake_ms_p50": pct(wakes, 0.5),
        "wake_ms_p99": pct(wakes, 0.99),
        "note": run.note,
    }


def _threads_line(res: dict[str, Any]) -> str:
    top = list(res.get("threads_cpu_s_per_s", {}).items())[:6]
    return ", ".join(f"{name} {cpu:.3f}" for name, cpu in top)


def render(res: dict[str, Any], load: str) -> str:
    lines = [
        f"### {res['run']} (load {load})",
        "",
        f"- achieved {res['events_per_s']:,} events/s; visible p50/p95/p99 "
        f"{res['visible_p50_ms']:.1f} / {res['visible_p95_ms']:.1f} / "
        f"{res['visible_p99_ms']:.1f} ms; acknowledged p50/p95/p99 {res['ack_p50_ms']:.1f} / "
        f"{res['ack_p95_ms']:.1f} / {res['ack_p99_ms']:.1f} ms; on the ledger (leaf committed) "
        f"{res['leaf_p50_ms']:.1f} / {res['leaf_p95_ms']:.1f} / {res['leaf_p99_ms']:.1f} ms; "
        f"in a signed checkpoint {res['checkpoint_p50_ms']:.1f} / "
        f"{res['checkpoint_p95_ms']:.1f} / {res['checkpoint_p99_ms']:.1f} ms; "
        f"process CPU {res['cpu_s_per_s']:.2f} s/s",
        f"- follower CPU per event on the visible path: "
        f"{1e6 * res['follower_cpu_s'] / max(1, res['events']):.1f} µs",
        f"- {res['steps']} steps, {res['steps_per_s']:.1f}/s, follower busy "
        f"{res['follower_busy_share']:.0%} of the time; records per step p50 "
        f"{res['records_per_step_p50']:.0f}, mean {res['records_per_step_mean']:.0f}",
        f"- step wall p50 {res['step_wall_ms_p50']:.1f} ms, p99 {res['step_wall_ms_p99']:.1f} ms;"
        f" follower CPU per step p50 {res['step_cpu_ms_p50']:.1f} ms",
        f"- append -> step start after an idle wait: {res['idle_waits_woken']} wake-ups, "
        f"p50 {res['wake_ms_p50']:.2f} ms, p99 {res['wake_ms_p99']:.2f} ms",
        "- CPU s/s by thread name (the run and its drain): " + _threads_line(res),
        "- GC pauses during the run (every thread stands still): "
        + ", ".join(
            f"{g} {v['count']} x, {v['total_ms']:.1f} ms, max {v['max_ms']:.1f} ms"
            for g, v in res.get("gc_pauses", {}).items()
        ),
        "",
        "| phase (time since the previous mark) | mean ms/step | p50 ms | p99 ms "
        "| follower CPU mean ms/step | off-CPU share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k, v in res["phases"].items():
        cpu = v.get("cpu_mean_ms", float("nan"))
        off = 1 - cpu / v["mean_ms"] if v["mean_ms"] and cpu == cpu else float("nan")
        lines.append(
            f"| {k} | {v['mean_ms']:.2f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} "
            f"| {cpu:.2f} | {off:.0%} |"
        )
    if res["note"]:
        lines.append(f"\n{res['note']}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rates", default="10000,50000", help="target events/s ('max': flat out)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--out", default="", help="also write the figures as JSON here")
    ap.add_argument("--batch", type=int, default=0, help="events per publish (0: rate / 200)")
    ap.add_argument("--publishers", type=int, default=0, help="concurrent publishers (0: default)")
    ap.add_argument(
        "--kafka", default="", help="a broker address: the hub on the Kafka EventLog instead"
    )
    ap.add_argument(
        "--ledger",
        choices=("woken", "polled", "off"),
        default="woken",
        help="the ledger following the log during the run (embedded_run's modes)",
    )
    ap.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        help="sys.setswitchinterval for the run, seconds (0: Python's default, 5 ms)",
    )
    ap.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after start-up: the collector no longer scans what start-up made",
    )
    ap.add_argument(
        "--chart",
        nargs="+",
        metavar="LABEL=JSON",
        help="no run: an SVG of the visible-latency CDFs of earlier --out files (to --out)",
    )
    args = ap.parse_args(argv)
    if args.chart:
        return chart(args.chart, Path(args.out or "visible-cdf.svg"))
    if args.switch_interval:
        # how long a thread that asks for the GIL waits for the holder to drop it: every chDB
        # call of the follower takes the GIL back several times while publishers run Python
        sys.setswitchinterval(args.switch_interval)

    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    results = []
    with tempfile.TemporaryDirectory(prefix="visible-profile-") as tmp:
        extra: dict[str, Any] = {}
        if args.kafka:
            import uuid

            extra = {
                "event_log": "kafka",
                "kafka_bootstrap_servers": args.kafka,
                "kafka_topic_prefix": f"vis{uuid.uuid4().hex[:8]}.",
                "default_partitions": 1,
            }
        h = bootstrap(
            load_settings(environ={}, data_dir=Path(tmp), projection_autostart=False, **extra)
        )
        try:
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            if args.gc_freeze:
                gc.collect()
                gc.freeze()
            start = 2 * 10**7
            for r in args.rates.split(","):
                target = None if r == "max" else int(r)
                probe = Probe()
                undo = attach(h, probe)
                runner = h.projections.runner("market_bars")
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                threads = ThreadCpu()
                pauses = GcPauses()
                run = _run_with_probe(
                    h,
                    runner,
                    probe,
                    target,
                    args.seconds,
                    start,
                    args.batch,
                    args.publishers,
                    "hub publish -> Kafka" if args.kafka else "embedded publish",
                    args.ledger,
                )
                threads_cpu = threads.stop()
                gc_pauses = pauses.stop()
                undo()
                start += 10**7
                res = summarize(probe, run)
                res["load"] = load
                res["threads_cpu_s_per_s"] = threads_cpu
                res["gc_pauses"] = gc_pauses
                results.append(res)
                print(render(res, load), flush=True)
        finally:
            h.close()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def chart(specs: Sequence[str], out: Path) -> int:
    """The publish -> visible CDF (every 5th percentile) of each ``LABEL=file.json``."""
    from benchmarks.e2e import svg_lines

    series = []
    for spec in specs:
        label, _, path = spec.partition("=")
        for res in json.loads(Path(path).read_text()):
            cdf = res["visible_cdf"]
            series.append((label, [(ms, q / (len(cdf) - 1)) for q, ms in enumerate(cdf)]))
    out.write_text(svg_lines("publish -> visible, CDF", series, "ms", "share of batches"))
    print(f"chart: {out}")
    return 0


def _run_with_probe(
    h: Any,
    runner: Any,
    probe: Probe,
    target: int | None,
    seconds: float,
    start: int,
    batch: int = 0,
    publishers: int = 0,
    label: str = "embedded publish",
    ledger: str = "woken",
) -> Any:
    """``embedded_run`` with the probe's hook called beside the one it installs."""
    cls = type(runner)
    original = cls.__dict__.get("hook")
    holder: dict[str, Any] = {}

    def get(obj: Any) -> Callable[[str], None]:
        inner = holder.get("hook")

        def both(step: str) -> None:
            probe.hook(step)
            if inner is not None:
                inner(step)

        return both

    def set_(obj: Any, value: Callable[[str], None]) -> None:
        holder["hook"] = value

    # the runner keeps ``hook`` as an instance attribute: route it through a property while the
    # run lasts, so that embedded_run's hook and the probe's both see every mark
    saved = runner.__dict__.pop("hook", None) if hasattr(runner, "__dict__") else None
    cls.hook = property(get, set_)
    try:
        holder["hook"] = saved
        more: dict[str, Any] = {"batch": batch or None, "label": label, "ledger": ledger}
        if publishers:
            more["publishers"] = publishers
        return embedded_run(h, target, seconds, start, **more)
    finally:
        if original is None:
            del cls.hook
        else:
            cls.hook = original
        runner.hook = holder.get("hook") or saved


if __name__ == "__main__":
    raise SystemExit(main())
