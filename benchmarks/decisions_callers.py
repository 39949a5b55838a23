"""How an HTTP route's decision is asked, in process (issue 13): the old ``authorize`` (a sync
dependency: the event loop hands each decision to Starlette's thread pool, whose thread blocks
in ``RecordingPolicyEngine.decide`` until the record's fsync) against the new one (the loop
awaits ``decide_async``: no hop, no blocked thread), alternating in the same process.

Real hub data folder (embedded Rego with its decision cache, SQLite ``synchronous=FULL``, the
real ``LogDecisionSink``). ``--callers`` event-loop tasks each ask ``topic.read`` decisions
(every allow waits for its durable record) for ``--seconds``, mostly cache hits as on a busy
route. Reported: decisions per wall second, process CPU per decision (flushers and fsync included),
latency p50 / p99, decisions per fsync, and the load average.

Run: ``.venv/bin/python -m benchmarks.decisions_callers [--rounds 3] [--seconds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from core.ports.policy import Principal
from governance.decisions import RecordingPolicyEngine
from hub.bootstrap import bootstrap
from hub.settings import load_settings


async def _callers(engine: RecordingPolicyEngine, path: str, callers: int, seconds: float) -> Any:
    users = [Principal(f"user-{k}", frozenset({"analyst"}), "acme") for k in range(50)]
    lat: list[float] = []
    began = time.perf_counter()

    async def caller(k: int) -> None:
        user, ctx = users[k % 50], {"method": "GET"}
        while time.perf_counter() - began < seconds:
            t0 = time.perf_counter()
            if path == "thread":
                d = await run_in_threadpool(engine.decide, user, "topic.read", "/v1/topics", ctx)
            else:
                d = await engine.decide_async(user, "topic.read", "/v1/topics", ctx)
            assert d.allow, d.reason
            lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(caller(k) for k in range(callers)))
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--callers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
        try:
            engine = hub.policy
            assert isinstance(engine, RecordingPolicyEngine), "the hub must record decisions"
            committer = engine.committer
            for _ in range(args.rounds):
                for path in ("thread", "loop"):
                    batches, records = committer.stats.batches, committer.stats.records
                    c0, w0 = time.process_time(), time.perf_counter()
                    lat = asyncio.run(_callers(engine, path, args.callers, args.seconds))
                    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                    n = len(lat)
                    lat.sort()
                    per = (committer.stats.records - records) / max(
                        1, committer.stats.batches - batches
                    )
                    print(
                        f"{path:6s}: {n / wall:7,.0f} dec/s, "
                        f"{1e6 * cpu / n:6.0f} us CPU/dec ({n / cpu:6,.0f}/CPU-s), "
                        f"p50 {1e3 * lat[n // 2]:6.1f} / p99 "
                        f"{1e3 * lat[int(n * 0.99)]:6.1f} ms, {per:5.1f}/fsync, "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        finally:
            hub.close()


if __name__ == "__main__":
    main()
