"""CPU microseconds per recorded policy decision, phase by phase (issue 13's profile).

Each phase runs alone, in one thread, on a real hub data folder (embedded Rego engine with its
decision cache, SQLite event log, ``synchronous=FULL``), and is timed in process CPU time:

- input build: ``with_now`` + ``decision_input`` (what the engine and the digest read);
- Rego eval: the inner engine's ``decide``, decision cache warm (repeated inputs) and cold
  (every input new: each one evaluated by rego-cpp);
- record: ``input_digest`` (canonical JSON + SHA-256), ``new_decision_id``, the record;
- encode: ``DecisionEncoder.encode`` per record, in batches of ``BATCH``;
- commit: ``LogDecisionSink.store`` per record, in batches of ``BATCH`` (one append, one fsync);
- hand-off and answer: ``CALLERS`` threads through a ``DecisionCommitter`` whose sink stores
  nothing (queueing, flusher wake-up, waking the waiters), one decision per call, then the
  batch API (``enqueue_many``, ``PER_CALL`` per call) and event-loop callers;
- whole: ``RecordingPolicyEngine.decide`` from ``CALLERS`` threads, and ``decide_many``.

Run: ``.venv/bin/python -m benchmarks.decisions_phases [--n 3000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.test_bench_decisions import record
from core.policybundle import decision_input, input_digest, with_now
from core.ports.policy import Principal
from governance.decisions import (
    DecisionCommitter,
    DecisionEncoder,
    DecisionRecord,
    LogDecisionSink,
    RecordingPolicyEngine,
    new_decision_id,
)
from hub.bootstrap import bootstrap
from hub.settings import load_settings

BATCH = 64
CALLERS = 64
PER_CALL = 100


class NullSink:
    """Stores nothing: what is left is the committer's own cost."""

    def prepare(self, records: Sequence[DecisionRecord]) -> Sequence[DecisionRecord]:
        return records

    def store(self, prepared: Any) -> None:
        pass


def cpu_us(n: int, fn: Callable[[int], object]) -> float:
    """Process CPU microseconds per call of ``fn(i)`` over ``n`` calls."""
    started = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - started) * 1e6 / n


def threaded_us(n: int, call: Callable[[int], object], per_call: int = 1) -> tuple[float, float]:
    """``CALLERS`` threads sharing ``n`` decisions; CPU µs and wall µs per decision."""
    calls = max(1, n // per_call)
    counter = iter(range(calls))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            call(i)

    cpu, wall = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = calls * per_call
    return (time.process_time() - cpu) * 1e6 / done, (time.perf_counter() - wall) * 1e6 / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="decisions per phase")
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
        try:
            run(hub, n)
        finally:
            hub.close()
    print(f"load average (1 min): {os.getloadavg()[0]:.1f}")


def run(hub: Any, n: int) -> None:
    engine = hub.policy
    assert isinstance(engine, RecordingPolicyEngine), "the hub must record decisions"
    inner = engine.inner
    users = [Principal(f"user-{k}", frozenset({"analyst"}), "acme") for k in range(50)]

    def req(i: int) -> tuple[Principal, str, str, dict[str, Any]]:
        resource = f"/v1/topics/payments-{i % 16}/events"
        return users[i % 50], "event.read", resource, {"method": "GET"}

    def cold(i: int) -> object:
        resource = f"/v1/topics/cold-{i}/events"
        return inner.decide(users[i % 50], "event.read", resource, {"method": "GET"})

    def built(i: int) -> object:
        p, a, r, c = req(i)
        return decision_input(p, a, r, with_now(c))

    rows: list[tuple[str, float]] = [("input build (with_now + decision_input)", cpu_us(n, built))]
    for i in range(1000):  # warm the decision cache
        inner.decide(*req(i))
    rows.append(("Rego eval, cache warm", cpu_us(n, lambda i: inner.decide(*req(i)))))
    rows.append(("Rego eval, cache cold (new resource each)", cpu_us(n, cold)))
    docs = [built(i) for i in range(n)]
    digest_us = cpu_us(n, lambda i: input_digest(docs[i]))
    rows.append(("input_digest (canonical JSON + SHA-256)", digest_us))
    rows.append(("new_decision_id", cpu_us(n, lambda i: new_decision_id())))
    rows.append(("DecisionRecord (test record)", cpu_us(n, record)))
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append([record(0)])
    encoder = DecisionEncoder(hub.publisher)
    batches = [[record(i * BATCH + k) for k in range(BATCH)] for i in range(max(1, n // BATCH))]
    encode_us = cpu_us(len(batches), lambda i: encoder.encode(batches[i])) / BATCH
    rows.append((f"encode, batches of {BATCH}", encode_us))
    encoded = [encoder.encode(b) for b in batches]
    commit_us = cpu_us(len(encoded), lambda i: sink.store(encoded[i])) / BATCH
    rows.append((f"commit (append + fsync), batches of {BATCH}", commit_us))
    for name, value in rows:
        print(f"{name:58s} {value:9.1f} µs CPU/decision")

    null = DecisionCommitter(NullSink())
    recs = [record(i) for i in range(n)]
    cpu, wall = threaded_us(n, lambda i: null.submit(recs[i], wait=True))
    print(f"{'hand-off + answer, null sink, 64 threads x 1':58s} {cpu:9.1f} µs CPU/decision "
          f"({wall:.1f} µs wall)")  # fmt: skip
    if hasattr(null, "enqueue_many"):
        chunks = [recs[k : k + PER_CALL] for k in range(0, n - PER_CALL + 1, PER_CALL)]
        cpu, wall = threaded_us(
            n, lambda i: null.enqueue_many(chunks[i % len(chunks)], prompt=True).wait(), PER_CALL
        )
        print(f"{f'hand-off + answer, null sink, 64 threads x {PER_CALL}':58s} {cpu:9.1f} µs "
              f"CPU/decision ({wall:.1f} µs wall)")  # fmt: skip

    async def loop_callers() -> None:
        it = iter(range(n))

        async def caller() -> None:
            for i in it:
                await null.enqueue(recs[i], prompt=True).wait_async()

        await asyncio.gather(*(caller() for _ in range(CALLERS)))

    c0, w0 = time.process_time(), time.perf_counter()
    asyncio.run(loop_callers())
    print(f"{'hand-off + answer, null sink, 64 event-loop tasks':58s} "
          f"{(time.process_time() - c0) * 1e6 / n:9.1f} µs CPU/decision "
          f"({(time.perf_counter() - w0) * 1e6 / n:.1f} µs wall)")  # fmt: skip
    null.close()

    cache = getattr(inner, "cache", None)
    cache_was = (cache.hits, cache.misses) if cache is not None else (0, 0)

    def hits() -> str:
        nonlocal cache_was
        if cache is None:
            return "no cache"
        was, cache_was = cache_was, (cache.hits, cache.misses)
        return f"cache hits {cache.hits - was[0]}, misses {cache.misses - was[1]}"

    cpu, wall = threaded_us(n, lambda i: engine.decide(*req(i)))
    print(f"{'whole: RecordingPolicyEngine.decide, 64 threads':58s} {cpu:9.1f} µs CPU/decision "
          f"({wall:.1f} µs wall; {hits()})")  # fmt: skip
    many = getattr(engine, "decide_many", None)
    if many is not None:
        cpu, wall = threaded_us(
            n, lambda i: many([req(i * PER_CALL + k) for k in range(PER_CALL)]), PER_CALL
        )
        print(f"{f'whole: decide_many, 64 threads x {PER_CALL}':58s} {cpu:9.1f} µs "
              f"CPU/decision ({wall:.1f} µs wall; {hits()})")  # fmt: skip


if __name__ == "__main__":
    main()
