"""Recorded decisions over HTTP (issue 13): many clients on a cheap authorized route, an old tree
alternating with this checkout in the same run.

1. A fresh data folder per run (``http_ingest._prepare``: an admin key), plus an analyst key.
2. ``hub serve`` from a source tree (this checkout, or ``--against DIR``: an unpacked
   ``git archive`` of another commit, same virtualenv), SQLite at its default durability (FULL),
   decision cache and recording at their defaults (every allow waits for its fsync), alert rules
   off, projections not started.
3. ``--clients`` concurrent keep-alive connections from one asyncio ``httpx`` client send
   ``GET /v1/topics`` (one ``topic.read`` decision each, a cache hit after the first) flat out
   for ``--seconds``. Reported: requests (= recorded decisions) per wall second, server CPU per
   request (``psutil``, all the server's threads), answer p50 / p99, and the load average.

Run: ``.venv/bin/python -m benchmarks.http_decisions [--against /tmp/old] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from benchmarks.http_ingest import healthy, load

ROOT = Path(__file__).resolve().parent.parent
ROUTE = "/v1/topics"


def _prepare(data: Path) -> str:
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        return str(h.keys.create(["analyst"], principal="bench").token)
    finally:
        h.close()


def _serve(data: Path, port: int, tree: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(data),
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_LOG_LEVEL": "WARNING",
        "HUB_ALERT_INTERVAL_S": "0",
        "PYTHONPATH": str(tree),  # ``-c`` puts the working folder first on sys.path
    }
    cmd = [sys.executable, "-c", "from hub.cli import main; main()", "serve", "--port", str(port)]
    return healthy(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=tree), port, 180)


async def _load(
    name: str, proc: subprocess.Popen[bytes], token: str, port: int, clients: int, seconds: float
) -> None:
    auth = "Basic " + base64.b64encode(token.encode()).decode()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    lat: list[float] = []
    errors: list[str] = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": auth},
        limits=limits,
        timeout=120,
    ) as c:
        first = await c.get(ROUTE)  # route set-up, the decision schema registered
        if first.status_code != 200:
            raise SystemExit(f"{ROUTE} answered {first.status_code}: {first.text[:200]}")
        server = psutil.Process(proc.pid)
        cpu0 = sum(server.cpu_times()[:2])
        began = time.perf_counter()

        async def client() -> None:
            while time.perf_counter() - began < seconds:
                t0 = time.perf_counter()
                try:
                    r = await c.get(ROUTE)
                except httpx.TransportError as exc:  # e.g. a keep-alive closed as it was reused
                    errors.append(repr(exc))
                    continue
                if r.status_code != 200:
                    errors.append(r.text[:200])
                    continue
                lat.append(time.perf_counter() - t0)

        await asyncio.gather(*(client() for _ in range(clients)))
        wall, cpu = time.perf_counter() - began, sum(server.cpu_times()[:2]) - cpu0
    n = len(lat)
    lat.sort()
    p50 = 1000 * lat[n // 2] if lat else float("nan")
    p99 = 1000 * lat[min(n - 1, int(n * 0.99))] if lat else float("nan")
    print(
        f"  {name}: {n / wall:,.0f} decisions/s, {1e6 * cpu / max(n, 1):.0f} us server CPU "
        f"per request ({n / max(cpu, 1e-9):,.0f}/CPU-s), p50 {p50:.1f} / p99 {p99:.1f} ms, "
        f"{n} requests, {len(errors)} failed{f' (first: {errors[0]})' if errors else ''} "
        f"({load()})",
        flush=True,
    )


def run(name: str, tree: Path, port: int, clients: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="hub-http-decisions-") as tmp:
        data = Path(tmp) / "data"
        token = _prepare(data)
        proc = _serve(data, port, tree)
        try:
            asyncio.run(_load(name, proc, token, port, clients, seconds))
        finally:
            proc.terminate()
            proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=42084)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--against", type=Path, help="an old source tree to alternate with")
    args = ap.parse_args()
    trees = [("this checkout", ROOT)]
    if args.against:
        trees.insert(0, ("old tree", args.against.resolve()))
    for _ in range(args.rounds):
        for name, tree in trees:
            run(name, tree, args.port, args.clients, args.seconds)


if __name__ == "__main__":
    main()
