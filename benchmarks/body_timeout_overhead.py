"""CPU cost of the request-body time bound (``hub.api.bodylimit``, s22 web-left).

Runs ``BodyLimitMiddleware`` over a body of many pieces (as uvicorn hands a large upload to the
app: one ``http.request`` message per read) with the time bound on and off, alternated in one
process, and prints CPU seconds per pair. No network: the pieces are queued, so the figure is
the middleware's own cost (a cancel scope per ``receive``), not the client's speed.

    python benchmarks/body_timeout_overhead.py [pieces] [pairs]
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from hub.api.bodylimit import BodyLimitMiddleware

PIECE = b"x" * 65_536


async def _app(scope: Any, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def one(pieces: int, timeout_s: float | None) -> float:
    middleware = BodyLimitMiddleware(_app, limit=1 << 40, timeout_s=timeout_s, min_rate=16_384)
    messages = [
        {"type": "http.request", "body": PIECE, "more_body": n < pieces - 1} for n in range(pieces)
    ]
    it = iter(messages)

    async def receive() -> Any:
        return next(it)

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "path": "/v1/ingest/x", "headers": []}
    began = time.process_time()
    asyncio.run(middleware(scope, receive, send))
    return time.process_time() - began


def main() -> None:
    pieces = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    for n in range(pairs):
        off = one(pieces, None)
        on = one(pieces, 30.0)
        print(f"pair {n + 1}: off {off:.3f} CPU-s, on {on:.3f} CPU-s ({pieces} pieces of 64 KiB)")


if __name__ == "__main__":
    main()
