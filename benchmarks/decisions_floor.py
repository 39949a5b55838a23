"""Where a recorded decision's per-request cost goes (issue 13, session 17): the fixed cost of
one decision batch, and what an authorized HTTP request spends beside an unauthenticated one.

1. The sink alone, on a real hub data folder (SQLite ``synchronous=FULL``): ``prepare`` (the
   encoder) and ``prepare`` + ``store`` (one ``append_columns``: one transaction, one fsync) of
   batches of 1, 4, 16 and 64 decisions. CPU per batch and per decision: the per-batch floor is
   what a request pays when its decision is stored alone (one request at a time, or requests
   arriving further apart than one fsync).
2. The ASGI app in process (no socket, no uvicorn): ``GET /health`` (no key, no decision),
   ``GET /v1/whoami`` (API key, one ``schema.read`` decision, a trivial ``def`` route) and
   ``GET /v1/topics``, one request at a time; CPU of the event loop's thread and of the other
   threads (decision flushers, the thread pool running ``def`` routes) apart.

Process CPU time (``time.process_time`` / ``time.thread_time``), not wall time: the machine is
shared. Run: ``.venv/bin/python -m benchmarks.decisions_floor [--rounds 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from core.ports.policy import Principal
from governance.decisions import LogDecisionSink, RecordingPolicyEngine
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def sink_block(hub: Hub) -> None:
    engine = hub.policy
    assert isinstance(engine, RecordingPolicyEngine), "the hub must record decisions"
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    user = Principal("user-1", frozenset({"analyst"}), "acme")
    records = [engine._decide(user, "topic.read", "/v1/topics", {})[1] for _ in range(64)]
    sink.store(sink.prepare(records[:1]))  # topic and schema exist before timing
    for size in (1, 4, 16, 64):
        batch = records[:size]
        calls = max(50, 3_000 // size)
        c0 = time.process_time()
        for _ in range(calls):
            sink.prepare(batch)
        prep = (time.process_time() - c0) / calls
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(calls // 4):
            sink.store(sink.prepare(batch))
        cpu = (time.process_time() - c0) / (calls // 4)
        wall = (time.perf_counter() - w0) / (calls // 4)
        print(
            f"  batch of {size:2d}: prepare {1e6 * prep:5.0f} us CPU, prepare + store "
            f"{1e6 * cpu:5.0f} us CPU ({1e6 * cpu / size:5.1f} per decision), "
            f"{1e3 * wall:.2f} ms wall ({load()})",
            flush=True,
        )


def asgi_block(hub: Hub, requests: int) -> None:
    token = str(hub.keys.create(["analyst"], principal="floor").token)
    app = create_app(hub)
    auth = [(b"authorization", b"Basic " + base64.b64encode(token.encode()))]

    def scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080), "state": {},
            "headers": [(b"host", b"127.0.0.1:8080"), (b"accept", b"*/*"), *headers],
        }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def one(path: str, headers: list[tuple[bytes, bytes]]) -> int:
        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope(path, headers), receive, send)
        return status

    async def run() -> None:
        for path, headers in (("/health", []), ("/v1/whoami", auth), ("/v1/topics", auth)):
            status = await one(path, headers)
            if status != 200:
                raise SystemExit(f"GET {path} answered {status}")
            c0, t0 = time.process_time(), time.thread_time()
            for _ in range(requests):
                await one(path, headers)
            cpu, loop = time.process_time() - c0, time.thread_time() - t0
            print(
                f"  GET {path:11s}: {1e6 * cpu / requests:5.0f} us CPU per request (event loop "
                f"{1e6 * loop / requests:4.0f}, other threads {1e6 * (cpu - loop) / requests:4.0f})"
                f" ({load()})",
                flush=True,
            )

    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=1_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hub-decisions-floor-") as tmp:
        hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
        try:
            for _ in range(args.rounds):
                print("decision sink, one batch per call")
                sink_block(hub)
                print("ASGI app in process, one request at a time")
                asgi_block(hub, args.requests)
        finally:
            hub.close()


if __name__ == "__main__":
    main()
