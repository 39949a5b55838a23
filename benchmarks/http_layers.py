"""Own CPU of each ASGI layer a registry fast-path request crosses (s26, issue 13).

A trivial app (reads the body, answers 200 with 8 bytes) is wrapped layer by layer in the
order ``hub serve`` stacks them above ``hub.api.registry_fast.RegistryFastPath``, innermost
first: the hub's ``BodyLimitMiddleware`` and ``ApiHeadersMiddleware``, FastAPI's
``AppBodyLimitMiddleware`` and ``ExceptionTelemetryMiddleware``, Starlette's
``ServerErrorMiddleware``, uvicorn's ``ProxyHeadersMiddleware``. Each point calls the stack
``-n`` times with a registration-sized POST on uvloop (no socket) and prints the minimum of
seven CPU timings and the difference from the point before (the layer's own cost). Run it
from an old tree's folder (``cd OLD && python -m benchmarks.http_layers``) for a same-run
"before". The socket and uvicorn's parse are not in it: ``benchmarks.registry_socket``'s
hello-world row is their floor.

    python -m benchmarks.http_layers [-n 20000]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import uvloop
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from hub.api.bodylimit import BodyBudget, BodyLimitMiddleware
from hub.api.headers import ApiHeadersMiddleware

BODY = b'{"schema": "{\\"type\\": \\"string\\"}"}'
PATH = "/subjects/x-value/versions"


async def _terminal(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    headers = [(b"content-length", b"8"), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"id":1}'})


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 5555),
        "scheme": "http",
        "root_path": "",
        "method": "POST",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"x"),
            (b"authorization", b"Bearer k:s"),
            (b"content-type", b"application/vnd.schemaregistry.v1+json"),
            (b"content-length", b"%d" % len(BODY)),
        ],
        "state": {},
    }


async def _run(app: Any, n: int) -> None:
    async def send(message: Any) -> None:
        pass

    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive() -> Any:
        return message

    for _ in range(n):
        await app(_scope(), receive, send)


def _cpu_us(app: Any, n: int) -> float:
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(_run(app, 500))
        times = []
        for _ in range(7):
            started = time.process_time()
            loop.run_until_complete(_run(app, n))
            times.append((time.process_time() - started) / n * 1e6)
        return min(times)
    finally:
        loop.close()


LAYERS: list[tuple[str, Callable[[Any], Any]]] = [
    (
        "BodyLimitMiddleware (limit, budget, body timer)",
        lambda a: BodyLimitMiddleware(a, 8 << 20, BodyBudget(64 << 20), 30.0, 16_384),
    ),
    ("ApiHeadersMiddleware", ApiHeadersMiddleware),
    ("AppBodyLimitMiddleware (FastAPI)", lambda a: AppBodyLimitMiddleware(a, None)),
    ("ExceptionTelemetryMiddleware (FastAPI)", ExceptionTelemetryMiddleware),
    ("ServerErrorMiddleware (Starlette)", ServerErrorMiddleware),
    ("ProxyHeadersMiddleware (uvicorn)", lambda a: ProxyHeadersMiddleware(a, "127.0.0.1")),
]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("-n", type=int, default=20_000)
    args = ap.parse_args(argv)
    app: Any = _terminal
    before = _cpu_us(app, args.n)
    print(f"{'the app alone':50} {before:6.2f} CPU us/request")
    for name, wrap in LAYERS:
        app = wrap(app)
        now = _cpu_us(app, args.n)
        load = os.getloadavg()[0]
        print(f"+ {name:48} {now:6.2f}  own {now - before:5.2f}  (load {load:.1f})", flush=True)
        before = now


if __name__ == "__main__":
    main()
