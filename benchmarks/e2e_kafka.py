"""The Kafka footprint of the load harness (``make bench-e2e``; issue 13, item 1).

On the local broker (``infra/kafka.sh``, this checkout's ports), in one run:
  1. baselines at their best, as their authors configure them, on 200-byte records:
     - Kafka's own ``kafka-producer-perf-test`` (``ProducerPerformance`` from the broker's version
       of ``kafka-tools``, fetched by ``benchmarks/kafka_tools.sh``), ``acks=all``, idempotent,
       ``linger.ms=5``, 1 MiB batches, no compression (the hub's producer compresses nothing);
     - raw librdkafka produce through confluent-kafka from this Python process: the same producer
       settings, ``produce()`` in a tight loop (``poll(0)`` only when the local queue is full),
       ONE ``flush()`` at the end; with ``acks=all`` (idempotent) and with ``acks=1``;
     - the same raw producer on the very records the hub writes (Avro value, key, the hub's
       envelope headers), so the gap to the hub is the hub's own work, not bigger records;
  2. the hub publishing to Kafka (``Publisher.publish`` on the Kafka EventLog: validation, Avro,
     envelope headers, one idempotent record batch per call, acknowledged) at fixed rates and as
     fast as it goes, with the ``market_bars`` projection and the ledger following the topic
     from Kafka, from 1 and from 8 concurrent publishers (``E2E_KAFKA_PUBLISHERS``): one
     synchronous publisher waits for every acknowledgement, several keep batches in flight as
     a real producer does; then as fast as it goes with nothing following (publish only, the
     figure beside the raw producer's): publish->acknowledged and publish->visible per batch,
     CPU, peak memory; ratio to raw librdkafka;
  3. optionally a py-spy profile of the as-fast-as-it-goes hub run (``--profile``), summarised
     as the functions with the most samples (own and inclusive).

No broker answering and not under CI: the section is skipped, loudly, and the report says so.
Under ``CI=true`` the broker is started with ``infra/kafka.sh start`` and a failure is an error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.e2e_common import (
    ACCOUNTS,
    ROOT,
    Run,
    buckets,
    embedded_run,
    peak_rss_reset,
    proc_cpu,
    proc_peak_rss_mb,
    self_cpu,
    self_peak_rss_mb,
    trade,
)

RECORD_BYTES = 200
# concurrent publishers of the hub runs (the embedded runs use 8): comma list
HUB_PUBLISHERS = tuple(
    int(n) for n in os.environ.get("E2E_KAFKA_PUBLISHERS", "1,8").split(",") if n.strip()
)
PRODUCER_BEST = {
    "linger.ms": 5,
    "batch.size": 1 << 20,
    "compression.type": "none",
}


# -- the broker -------------------------------------------------------------------------------
def checkout_env(name: str) -> str:
    """A variable as ``infra/env.sh`` sets it for this checkout (the environment wins)."""
    out = subprocess.run(
        ["bash", "-c", f'source infra/env.sh >/dev/null; printf %s "${name}"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def broker() -> tuple[str | None, str]:
    """This checkout's broker address, or None and the reason it is not there."""
    script = ROOT / "infra" / "kafka.sh"
    verb = "start" if os.environ.get("CI") == "true" else "status"
    done = subprocess.run(["bash", str(script), verb], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stdout + done.stderr).strip()[-800:]
        if verb == "start":
            raise SystemExit(f"CI=true and 'infra/kafka.sh start' failed:\n{why}")
        return None, (
            "KAFKA FOOTPRINT SKIPPED: no broker answers on this checkout's port "
            f"(HUB_KAFKA_PORT={checkout_env('HUB_KAFKA_PORT')}); start one with "
            "'bash infra/kafka.sh start' (same environment) and run again. " + why
        )
    return f"127.0.0.1:{checkout_env('HUB_KAFKA_PORT')}", ""


def create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
        future.result(30)


# -- baselines --------------------------------------------------------------------------------
def raw_produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes, Any]],
    seconds: float,
    acks: str,
    name: str,
) -> Run:
    """librdkafka through confluent-kafka, as its authors recommend for throughput: produce in a
    tight loop, serve delivery reports only when the local queue is full, one flush at the end.
    Every 1,000th record carries a delivery callback, sampling produce->acknowledged latency."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": acks == "all",
            "acks": acks,
            **PRODUCER_BEST,
        }
    )
    run = Run(name, note=f"acks={acks}" + (", idempotent" if acks == "all" else ""))
    acked: list[float] = []
    lat: list[float] = []

    def sampled(t0: float) -> Any:
        def cb(err: Any, _msg: Any) -> None:
            if err is None:
                now = time.perf_counter()
                acked.append(now)
                lat.append((now - t0) * 1000)

        return cb

    produce, poll = producer.produce, producer.poll
    n, size = 0, len(records)
    peak_rss_reset()
    cpu0, began = self_cpu(), time.perf_counter()
    while time.perf_counter() - began < seconds:
        for k in range(1_000):
            key, value, headers = records[(n + k) % size]
            cb = sampled(time.perf_counter()) if k == 0 else None
            while True:
                try:
                    produce(topic, value, key, headers=headers, on_delivery=cb)
                    break
                except BufferError:
                    poll(0.001)
        n += 1_000
    left = producer.flush(120)
    run.seconds = time.perf_counter() - began
    run.events = n - left
    run.cpu_per_s = (self_cpu() - cpu0) / run.seconds
    run.peak_rss_mb = self_peak_rss_mb()
    run.ack_ms = lat
    run.per_second = buckets([(t, 1_000) for t in acked], began, run.seconds)
    return run


PERF_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec .*?([\d.]+) ms avg latency, ([\d.]+) ms max latency"
    r"(?:, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th)?"
)


def perf_test(bootstrap: str, topic: str, records: int) -> Run:
    """Kafka's own ``kafka-producer-perf-test``: ``records`` records of 200 bytes, flat out."""
    cmd = [
        "bash",
        str(ROOT / "benchmarks" / "kafka_tools.sh"),
        "producer-perf-test",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(RECORD_BYTES),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        *(f"{k}={v}" for k, v in PRODUCER_BEST.items()),
    ]
    subprocess.run([*cmd[:2], "fetch"], check=True, cwd=ROOT)  # not on the clock
    run = Run("kafka-producer-perf-test (Java), acks=all", note="Kafka's own tool; own process")
    began = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    peak = [0.0]
    cpu = [0.0]

    def watch() -> None:  # the JVM is a grandchild (bash execs java: same pid)
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], proc_peak_rss_mb(proc.pid))
                cpu[0] = proc_cpu(proc.pid)
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    intervals: list[tuple[float, int]] = []
    final: re.Match[str] | None = None
    tail: list[str] = []
    for line in proc.stdout:
        tail = ([*tail, line])[-20:]
        m = PERF_LINE.search(line)
        if m is None:
            continue
        if m.group(5) is None:
            intervals.append((time.perf_counter(), int(m.group(1))))
        else:
            final = m
    proc.wait()
    watcher.join(5)
    run.seconds = time.perf_counter() - began
    if proc.returncode != 0 or final is None:
        raise SystemExit(f"kafka-producer-perf-test failed:\n{''.join(tail)}")
    run.events = int(final.group(1))
    run.seconds = run.events / float(final.group(2))  # the tool's own clock (no JVM start-up)
    run.reported = {
        "ack p50": float(final.group(5)),
        "ack p99": float(final.group(7)),
        "ack mean": float(final.group(3)),
    }
    run.cpu_per_s = cpu[0] / run.seconds
    run.peak_rss_mb = peak[0]
    # The tool prints the records of each 5-second window: spread them over its seconds.
    run.per_second = [n // 5 for _, n in intervals for _ in range(5)]
    return run


# -- the hub on Kafka ---------------------------------------------------------------------------
class Profiler:
    """py-spy sampling this process, written as collapsed stacks (``--format raw``)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            return "py-spy not installed (it is in the dev lock: make setup)"
        self.proc = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(self.out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            return f"py-spy could not attach: {err.strip()[-300:]}"
        return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def summarise_profile(path: Path, top: int = 25) -> str:
    """The functions with most samples: own (leaf frame) and inclusive (anywhere on the stack)."""
    if not path.exists():
        return "(no profile written)"
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in {re.sub(r":\d+\)$", ")", f) for f in frames}:  # per function, not per line
            incl[f] += n
    if not total:
        return "(empty profile)"

    def short(frame: str) -> str:
        return frame.replace(str(ROOT) + "/", "").replace(str(Path(sys.prefix)) + "/", "")

    lines = [
        f"{total:,} samples (all threads: publisher and the view's follower) of the hub -> Kafka"
        " run",
        "",
        "own time (the line running when sampled):",
    ]
    lines += [f"  {n / total:6.1%}  {short(f)}" for f, n in own.most_common(top)]
    lines += ["", "inclusive (the function anywhere on the stack):"]
    lines += [f"  {n / total:6.1%}  {short(f)}" for f, n in incl.most_common(top)]
    return "\n".join(lines)


def hub_runs(
    bootstrap: str,
    data: Path,
    rates: Sequence[int | None],
    seconds: float,
    start: int,
    profile: Path | None,
    publishers: Sequence[int] = HUB_PUBLISHERS,
    publish_only: bool = True,
) -> tuple[list[Run], str]:
    """The hub on the Kafka EventLog (one partition per topic), ``market_bars`` and the ledger
    following, at each rate with each count of concurrent ``publishers`` (one synchronous
    publisher waits for each batch's acknowledgement: latency-bound; several keep batches in
    flight, as the embedded runs' 8 and a real producer's queue do). ``publish_only``: then the
    same as fast as it goes with nothing following (neither the view nor the ledger), the
    figure to set beside the raw producer's."""
    from hub.bootstrap import bootstrap as build
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    h = build(
        load_settings(
            environ={},
            data_dir=data,
            event_log="kafka",
            kafka_bootstrap_servers=bootstrap,
            kafka_topic_prefix=f"e2e{uuid.uuid4().hex[:8]}.",
            default_partitions=1,
            projection_autostart=False,
        )
    )
    runs: list[Run] = []
    summary = ""
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
        plan: list[tuple[int | None, int, bool]] = [
            (target, n, True) for target in rates for n in publishers
        ]
        if publish_only:
            plan += [(None, n, False) for n in publishers]
        profiled = False
        for target, n, following in plan:
            print(
                f"hub -> Kafka at {target or 'max'}, {n} publishers"
                + ("" if following else ", publish only")
                + "...",
                flush=True,
            )
            # the profile: the first as-fast-as-it-goes run with the followers
            take = profile is not None and target is None and following and not profiled
            spy = Profiler(profile) if take and profile is not None else None
            why = spy.start() if spy is not None else ""
            try:
                run = embedded_run(
                    h,
                    target,
                    seconds,
                    start,
                    label="hub publish -> Kafka",
                    publishers=n,
                    ledger="woken" if following else "off",
                    view=following,
                )
            finally:
                if spy is not None:
                    spy.stop()
            run.note = "; ".join(x for x in (run.note, why) if x)
            runs.append(run)
            start += 10**7
            if spy is not None and profile is not None:
                profiled = True
                summary = summarise_profile(profile)
    finally:
        h.close()
    return runs, summary


def run_all(
    out: Path,
    seconds: float,
    rates: Sequence[int | None],
    start: int,
    profile: bool,
    publishers: Sequence[int] = HUB_PUBLISHERS,
    publish_only: bool = True,
) -> tuple[list[Run], list[Run], str, str]:
    """(baselines, hub runs, profile summary, skip reason)."""
    bootstrap, why = broker()
    if bootstrap is None:
        print(why, file=sys.stderr, flush=True)
        return [], [], "", why
    from core.events import OutgoingEvent
    from hub.bootstrap import bootstrap as build
    from hub.settings import load_settings

    # The hub's own records (value, key, headers) for the raw producer, prepared once.
    h = build(load_settings(environ={}, data_dir=out / "kafka-prep", projection_autostart=False))
    try:
        sample = h.publisher.prepare(
            "trades", [OutgoingEvent(value=trade(i)) for i in range(2_000)], "e2e"
        )
    finally:
        h.close()
    hub_records = [(r.key, r.value or b"", list(r.headers)) for r in sample]
    hub_bytes = sum(
        len(v) + len(k or b"") + sum(len(a) + len(b) for a, b in hs) for k, v, hs in hub_records
    ) / len(hub_records)
    plain = [(None, os.urandom(RECORD_BYTES), None) for _ in range(1_000)]
    run_id = uuid.uuid4().hex[:8]
    base: list[Run] = []
    for acks in ("all", "1"):
        topic = f"bench.raw.{acks}.{run_id}"
        create_topic(bootstrap, topic)
        print(f"raw librdkafka acks={acks}...", flush=True)
        base.append(
            raw_produce(
                bootstrap,
                topic,
                plain,
                seconds,
                acks,
                f"raw librdkafka produce, 200 B, acks={acks}"
                + (" (baseline)" if acks == "all" else ""),
            )
        )
    topic = f"bench.rawhub.{run_id}"
    create_topic(bootstrap, topic)
    print("raw librdkafka, the hub's records...", flush=True)
    run = raw_produce(
        bootstrap, topic, hub_records, seconds, "all", "raw librdkafka produce, the hub's records"
    )
    run.note += f"; {hub_bytes:.0f} B per record (value, key, headers)"
    base.append(run)
    topic = f"bench.perf.{run_id}"
    create_topic(bootstrap, topic)
    print("kafka-producer-perf-test...", flush=True)
    records = int(min(20_000_000, max(200_000, base[0].rate * seconds)))
    base.append(perf_test(bootstrap, topic, records))
    prof = out / "kafka-profile.txt" if profile else None
    runs, summary = hub_runs(
        bootstrap, out / "kafka-data", rates, seconds, start, prof, publishers, publish_only
    )
    return base, runs, summary, ""
